//! Configuration of a simulator instance: which seller accounts exist, how much data each
//! holds, which protocol limits are enforced and which faults are planned from the start.
//!
//! Everything here is plain data so a test can build a config with struct-update syntax
//! (`SimConfig { seed: 7, ..SimConfig::default() }`).

use std::net::IpAddr;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::clock::bucharest_now_minute;
use crate::faults::FaultPlan;

/// The kind of seller login. API-wise both are plain credential pairs; the difference shows
/// only in the data (FBE accounts hold mostly type-2 orders and cannot change stock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// Seller-fulfilled marketplace account: every order is type 3.
    Main,
    /// Fulfilled-by-eMAG account: about three orders in four are type 2.
    Fbe,
}

/// One simulated seller login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSpec {
    /// Account name, used by the admin routes, the journal and the data seed.
    pub name: String,
    /// Basic-auth username (`sim-{name}` for the constructors below).
    pub username: String,
    /// Basic-auth password (`pass-{name}` for the constructors below).
    pub password: String,
    /// MAIN or FBE.
    pub kind: AccountKind,
    /// When set, requests from any other peer address are answered with the
    /// "Invalid vendor ip" error, as eMAG does for IPs missing from the whitelist.
    pub allowed_ips: Option<Vec<IpAddr>>,
}

impl AccountSpec {
    /// The default MAIN account, named `main`.
    pub fn main() -> Self {
        Self::named("main", AccountKind::Main)
    }

    /// The default FBE account, named `fbe`.
    pub fn fbe() -> Self {
        Self::named("fbe", AccountKind::Fbe)
    }

    /// An account with deterministic credentials derived from its name, so tests and the demo
    /// never need to share secrets out of band.
    pub fn named(name: &str, kind: AccountKind) -> Self {
        Self {
            name: name.to_owned(),
            username: format!("sim-{name}"),
            password: format!("pass-{name}"),
            kind,
            allowed_ips: None,
        }
    }
}

/// How a client may send a read's filters (issue 9, point 1). With
/// [`SimConfig::accept`] set, the simulator is strict about one of them: the filters of a
/// read or count sent any other way are silently ignored, as a real server would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireEncoding {
    /// PHP-style form fields: `data[currentPage]=1&data[itemsPerPage]=100`.
    Form,
    /// JSON with the filters under `data`: `{"data": {"currentPage": 1}}`.
    JsonData,
    /// JSON with the filters at the top level: `{"currentPage": 1}`.
    Json,
}

impl WireEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            WireEncoding::Form => "form",
            WireEncoding::JsonData => "json-data",
            WireEncoding::Json => "json",
        }
    }
}

impl std::str::FromStr for WireEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "form" => Ok(WireEncoding::Form),
            "json-data" | "json_data" => Ok(WireEncoding::JsonData),
            "json" => Ok(WireEncoding::Json),
            other => Err(format!(
                "{other:?} is not an encoding: write form, json-data or json"
            )),
        }
    }
}

/// Everything that shapes one simulator instance.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice; the same config always yields the same data.
    pub seed: u64,
    /// Seller accounts served by this instance.
    pub accounts: Vec<AccountSpec>,
    /// Offers generated per account (ids 1..=N). Scales to 1,000,000.
    pub offers_per_account: u32,
    /// Orders generated per account, spread over the 60 days before `epoch`.
    pub orders_per_account: u32,
    /// Enforce eMAG's sliding-window rate limits per credential.
    pub rate_limits: bool,
    /// Upper bound of `itemsPerPage` (eMAG: 100).
    pub max_items_per_page: u32,
    /// `false`: a larger `itemsPerPage` is rejected with `isError:true`; `true`: it is clamped.
    pub clamp_items_per_page: bool,
    /// "Now" of the generated data, Europe/Bucharest local time; the simulator clock starts
    /// here and runs with real (or tokio-paused) time.
    pub epoch: NaiveDateTime,
    /// Faults active from the first request.
    pub faults: FaultPlan,
    /// `None`: every encoding is understood. `Some(e)`: only `e`; reads and counts sent any
    /// other way are answered as if they had no filters (and no paging).
    pub accept: Option<WireEncoding>,
    /// The longest `…After`..`…Before` window order filters accept. eMAG documents "one
    /// month" without saying which, so this is a switch; the default is the strictest
    /// reading, the shortest month.
    pub order_window: OrderWindowLimit,
}

/// How long an order filter window may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderWindowLimit {
    /// Up to the same time one calendar month later (Jan 31 → Feb 28).
    CalendarMonth,
    /// At most this many days.
    Days(u32),
}

impl Default for OrderWindowLimit {
    fn default() -> Self {
        OrderWindowLimit::Days(28)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            accounts: vec![AccountSpec::main(), AccountSpec::fbe()],
            offers_per_account: 250,
            orders_per_account: 120,
            rate_limits: true,
            max_items_per_page: 100,
            clamp_items_per_page: false,
            epoch: bucharest_now_minute(),
            faults: FaultPlan::default(),
            accept: None,
            order_window: OrderWindowLimit::default(),
        }
    }
}
