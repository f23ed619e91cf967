//! The rate budget of one credential pair (emag-api.md §5): order routes ≤ 12 requests in any
//! second and ≤ 720 in any minute; all other routes together ≤ 3 and ≤ 180.
//!
//! A GCRA limiter with burst 1 spaces requests evenly, which satisfies both windows at once
//! (a burst > 1 would let 4 requests fall into one second). The spacing carries a small
//! margin because the server measures arrival times, and network jitter moves them.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::client::RouteClass;

/// The minimum spacing of requests per route class. `None` disables pacing (benchmarks
/// against a simulator with limits off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    pub other_spacing: Option<Duration>,
    pub orders_spacing: Option<Duration>,
}

impl RateBudget {
    /// eMAG's documented limits: 3/s for other routes, 12/s for orders, with a 2% margin.
    pub const EMAG: RateBudget = RateBudget {
        other_spacing: Some(Duration::from_millis(340)),
        orders_spacing: Some(Duration::from_millis(85)),
    };
    pub const UNLIMITED: RateBudget = RateBudget {
        other_spacing: None,
        orders_spacing: None,
    };
}

impl Default for RateBudget {
    fn default() -> Self {
        RateBudget::EMAG
    }
}

#[derive(Debug)]
pub(crate) struct Limiters {
    other: Option<DefaultDirectRateLimiter>,
    orders: Option<DefaultDirectRateLimiter>,
}

impl Limiters {
    fn new(budget: RateBudget) -> Self {
        let make = |spacing: Option<Duration>| {
            spacing
                .and_then(Quota::with_period)
                .map(|q| RateLimiter::direct(q.allow_burst(NonZeroU32::MIN)))
        };
        Limiters {
            other: make(budget.other_spacing),
            orders: make(budget.orders_spacing),
        }
    }

    /// Waits until this credential may send a request of `class`.
    pub(crate) async fn acquire(&self, class: RouteClass) {
        let limiter = match class {
            RouteClass::Orders => &self.orders,
            RouteClass::Other => &self.other,
        };
        if let Some(l) = limiter {
            l.until_ready().await;
        }
    }
}

/// One budget per (base URL, username): two clients for the same credential pair in one
/// process share it, since eMAG counts per credential, not per client object.
pub(crate) fn limiters_for(base_url: &str, username: &str, budget: RateBudget) -> Arc<Limiters> {
    type Key = (String, String, String);
    static REGISTRY: LazyLock<Mutex<HashMap<Key, Arc<Limiters>>>> = LazyLock::new(Default::default);
    let key = (
        base_url.to_owned(),
        username.to_owned(),
        format!("{budget:?}"),
    );
    let mut map = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(key)
        .or_insert_with(|| Arc::new(Limiters::new(budget)))
        .clone()
}
