//! A protocol-faithful simulator of the eMAG Marketplace API (`/api-3`), for tests, demos
//! and benchmarks of emag-sync.
//!
//! It serves deterministic, seeded marketplace data per seller account (MAIN and FBE logins
//! whose offer ids overlap but name different products, orders with ids above 2^31, money
//! with four decimals, Romanian diacritics everywhere), enforces eMAG's strict per-credential
//! rate limits, and injects planned faults (502s, hangs, garbage bodies, isError answers,
//! credential and IP rejections). Every API request is journaled; `/__admin/...` routes let a
//! test inspect and steer the simulator over HTTP.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use emag_sim::{SimConfig, Simulator};
//! let running = Simulator::spawn(SimConfig { rate_limits: false, ..SimConfig::default() }).await?;
//! println!("eMAG API at {}", running.base_url);
//! running.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod catalog;
mod clock;
mod config;
mod data;
mod faults;
mod form;
mod http;
mod journal;
mod model;
mod mutation;
mod oddities;
mod query;
mod ratelimit;
mod save;
mod state;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{AccountKind, AccountSpec, OrderWindowLimit, SimConfig, WireEncoding};
pub use faults::FaultPlan;
pub use journal::JournalEntry;
pub use model::{
    CancellationReason, Category, CategoryCharacteristic, Customer, FamilyType,
    FamilyTypeCharacteristic, HandlingTime, HandlingTimeEntry, Offer, OfferCharacteristic,
    OfferDetails, OfferImage, OfferValidationStatus, Order, OrderDetails, OrderLine, Rma, RmaAwb,
    RmaProduct, StockEntry, ValidationStatus, VatRate, Voucher,
};
pub use mutation::{Mutation, MutationOutcome, SimError};
pub use oddities::Oddity;

use state::SimState;

/// A handle on one simulated marketplace; cheap to clone, all clones share the state.
#[derive(Debug, Clone)]
pub struct Simulator {
    state: Arc<SimState>,
}

impl Simulator {
    /// Generates all accounts' data from `config` (deterministic for a given config).
    pub fn new(config: SimConfig) -> Self {
        Self {
            state: Arc::new(SimState::new(config)),
        }
    }

    /// The axum router with the API and admin routes; the state is inside.
    ///
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so IP checks see
    /// the peer address (without it, an account with an allow-list rejects every request).
    pub fn router(&self) -> axum::Router {
        http::router(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `RunningSim::shutdown` (or an I/O error).
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let mut stopped = self.state.shutdown.subscribe();
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            })
            .await
    }

    /// Builds a simulator, binds `127.0.0.1:0` and serves it on a tokio task. The listener is
    /// bound before this returns, so requests can be sent immediately.
    pub async fn spawn(config: SimConfig) -> std::io::Result<RunningSim> {
        let sim = Self::new(config);
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(sim.clone().serve(listener));
        Ok(RunningSim {
            base_url: format!("http://{addr}/api-3"),
            addr,
            sim,
            task,
        })
    }

    /// The configured accounts.
    pub fn accounts(&self) -> Vec<AccountSpec> {
        self.state.accounts.iter().map(|a| a.spec.clone()).collect()
    }

    /// Snapshot of an account's live offers, sorted by id (empty for an unknown account).
    pub fn offers(&self, account: &str) -> Vec<Offer> {
        self.state.account(account).map_or_else(
            |_| Vec::new(),
            |a| {
                let data = a.read();
                data.offers
                    .iter()
                    .map(|r| r.materialize(&data.salts))
                    .collect()
            },
        )
    }

    /// The category tree every account is served (reference data), allowed or not.
    pub fn categories(&self) -> Vec<Category> {
        self.state.categories.clone()
    }

    /// Snapshot of an account's orders of every type, sorted by id (empty for an unknown account).
    pub fn orders(&self, account: &str) -> Vec<Order> {
        self.state
            .account(account)
            .map_or_else(|_| Vec::new(), |a| a.read().orders.clone())
    }

    /// Snapshot of an account's return requests, sorted by `emag_id`.
    pub fn returns(&self, account: &str) -> Vec<Rma> {
        self.state
            .account(account)
            .map_or_else(|_| Vec::new(), |a| a.read().returns.clone())
    }

    /// The journal of API requests, oldest first (at most the last 200,000).
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.state.journal.since(0)
    }

    /// Waits until an API request matching `predicate` has been journaled (entries already
    /// recorded count) and returns its entry. A readiness signal for tests: it wakes on each
    /// new entry, never polls or sleeps. It waits forever if no request ever matches, so pair
    /// it with a timeout where that is possible.
    pub async fn wait_for_request(
        &self,
        predicate: impl Fn(&JournalEntry) -> bool,
    ) -> JournalEntry {
        // Subscribe before scanning so an entry recorded in between still wakes us.
        let mut recorded = self.state.journal.subscribe();
        let mut seen = 0;
        loop {
            for entry in self.state.journal.since(seen) {
                if predicate(&entry) {
                    return entry;
                }
                seen = entry.seq;
            }
            if recorded.changed().await.is_err() {
                // The journal lives as long as `self`; this cannot happen, but never spin.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Replaces the fault plan.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.state.faults.set_plan(plan);
    }

    /// The current fault plan, with its remaining "next N" counters.
    pub fn faults(&self) -> FaultPlan {
        self.state.faults.plan()
    }

    /// Applies a change to an account's data (or the shared clock).
    pub fn mutate(&self, account: &str, m: Mutation) -> Result<MutationOutcome, SimError> {
        self.state.mutate(account, m)
    }

    /// Applies `m` to `account` right after the simulator has taken page `page` of the
    /// account's offer listing (`product_offer/read` without filters) and before it answers
    /// it: the catalog changes while a client pages through it, at the page boundary the test
    /// chose, whatever the timing. Each queued change is applied once, at the first such read
    /// (a failing one is logged and dropped). Reads with filters (by `id`, `status`, …) never
    /// trigger it.
    pub fn mutate_after_offer_page(&self, account: &str, page: u32, m: Mutation) {
        self.state.mutate_after_offer_page(account, page, m);
    }

    /// Applies `m` to `account` right after the simulator has taken page `page` of an
    /// `order/read` of the account (any filters) and before it answers it: orders change
    /// while a client pages through a window. Each queued change is applied once.
    pub fn mutate_after_order_page(&self, account: &str, page: u32, m: Mutation) {
        self.state.mutate_after_order_page(account, page, m);
    }

    /// From now on, serves one item of `account` bent as `oddity` says (the stored data and
    /// the snapshots of [`Simulator::offers`] / [`Simulator::orders`] stay as they are).
    pub fn add_oddity(&self, account: &str, oddity: Oddity) {
        self.state.oddities.add(account, oddity);
    }

    /// The simulator clock: epoch plus elapsed (tokio) time plus `AdvanceClock` jumps.
    pub fn now(&self) -> chrono::NaiveDateTime {
        self.state.clock.now()
    }
}

/// A simulator serving on a local port.
#[derive(Debug)]
pub struct RunningSim {
    /// e.g. `http://127.0.0.1:PORT/api-3`.
    pub base_url: String,
    pub addr: SocketAddr,
    pub sim: Simulator,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningSim {
    /// Stops accepting, cuts hanging requests short and waits for in-flight ones to finish.
    pub async fn shutdown(self) {
        self.sim.state.shutdown.send_replace(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "simulator server stopped with an I/O error"),
            Err(e) => tracing::warn!(error = %e, "simulator server task failed"),
        }
    }
}
