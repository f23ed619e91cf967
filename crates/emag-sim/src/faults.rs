//! Fault injection: a plan of misbehaviours (gateway errors, hangs, latency, garbage bodies,
//! isError answers, credential and IP rejections, and protocol breaches: paging ignored, more
//! items than asked, redirects, oversized bodies) and the per-request decision drawn from it.
//!
//! "Next N" counters are consumed under one lock together with the random roll, so two
//! concurrent requests never both take the last unit, and the whole decision for a request is
//! made in one place: the HTTP layer only executes it.

use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What should go wrong, and for whom. `Default` is "nothing".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultPlan {
    /// The next N API requests answer 502 with an HTML gateway page.
    pub server_error_next: u32,
    /// Probability (per mille, 0..=1000) that any API request answers 502.
    pub server_error_per_mille: u32,
    /// Added to every API answer.
    pub latency_ms: u64,
    /// The next N API requests stall `hang_ms` before answering (to trip client timeouts).
    pub hang_next: u32,
    /// How long a hang lasts (default 30 s).
    pub hang_ms: u64,
    /// The next N API requests answer 200 with a truncated JSON body (after being processed).
    pub malformed_next: u32,
    /// The next N API requests answer 200 `isError:true` without being processed.
    pub is_error_next: u32,
    /// The next N API requests answer 429 as eMAG's limiter does (as if another program used
    /// the same API user's budget), without being processed.
    pub rate_limited_next: u32,
    /// The message of those answers (default: a transient "…please retry" message).
    pub is_error_message: Option<String>,
    /// Reads ignore `currentPage`: every page is page 1.
    pub ignore_current_page: bool,
    /// Reads answer this many items more than `itemsPerPage` asked for.
    pub extra_items: u32,
    /// The next N API requests answer `301 Moved Permanently` to the same URL.
    pub redirect_next: u32,
    /// The next N API requests answer a valid envelope padded to `oversize_bytes`, streamed
    /// without a Content-Length.
    pub oversize_next: u32,
    /// Size of those answers (default 64 MiB).
    pub oversize_bytes: u64,
    /// Every request is answered 401 as if the credentials were wrong.
    pub bad_credentials: bool,
    /// Every request is answered with the "Invalid vendor ip" error.
    pub ip_blocked: bool,
    /// Empty: faults apply to every account; otherwise only to these account names.
    pub accounts: Vec<String>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            server_error_next: 0,
            server_error_per_mille: 0,
            latency_ms: 0,
            hang_next: 0,
            hang_ms: 30_000,
            malformed_next: 0,
            is_error_next: 0,
            rate_limited_next: 0,
            is_error_message: None,
            ignore_current_page: false,
            extra_items: 0,
            redirect_next: 0,
            oversize_next: 0,
            oversize_bytes: 64 * 1024 * 1024,
            bad_credentials: false,
            ip_blocked: false,
            accounts: Vec::new(),
        }
    }
}

impl FaultPlan {
    fn applies_to(&self, account: Option<&str>) -> bool {
        self.accounts.is_empty() || account.is_some_and(|a| self.accounts.iter().any(|x| x == a))
    }
}

/// How a request that passed authentication should be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum FaultOutcome {
    /// Process normally.
    #[default]
    Normal,
    /// 502 with an HTML body, not processed.
    ServerError,
    /// 200 `isError:true`, not processed.
    IsError,
    /// 429, not processed.
    RateLimited,
    /// Processed, but the body is cut in half.
    Malformed,
    /// 301 to the same URL, not processed.
    Redirect,
    /// A valid envelope padded to this many bytes, not processed.
    Oversize(u64),
}

/// How reads of one account page, when the plan breaks paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PagingFaults {
    /// Every page is page 1.
    pub(crate) ignore_current_page: bool,
    /// Items added to what `itemsPerPage` asked for.
    pub(crate) extra_items: u32,
}

/// The full decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FaultDecision {
    pub(crate) outcome: FaultOutcome,
    /// Latency plus any hang, waited before answering.
    pub(crate) delay: Duration,
}

/// The live plan plus the random stream for probabilistic faults.
#[derive(Debug)]
pub(crate) struct FaultState {
    inner: Mutex<(FaultPlan, ChaCha8Rng)>,
}

impl FaultState {
    pub(crate) fn new(plan: FaultPlan, seed: u64) -> Self {
        Self {
            inner: Mutex::new((plan, ChaCha8Rng::seed_from_u64(seed ^ 0x0fa0_17fa))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (FaultPlan, ChaCha8Rng)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn plan(&self) -> FaultPlan {
        self.lock().0.clone()
    }

    pub(crate) fn set_plan(&self, plan: FaultPlan) {
        self.lock().0 = plan;
    }

    /// Whether credentials must be treated as wrong. The plan's `accounts` list is matched
    /// against the account the sent username belongs to, or the sent username itself (the
    /// password is not trusted here, so the username is all there is).
    pub(crate) fn rejects_credentials(
        &self,
        account: Option<&str>,
        username: Option<&str>,
    ) -> bool {
        let guard = self.lock();
        let plan = &guard.0;
        plan.bad_credentials
            && (plan.applies_to(account)
                || username.is_some_and(|u| plan.accounts.iter().any(|a| a == u)))
    }

    /// Whether `account`'s requests are blocked as coming from a non-whitelisted IP.
    pub(crate) fn blocks_ip(&self, account: &str) -> bool {
        let guard = self.lock();
        guard.0.ip_blocked && guard.0.applies_to(Some(account))
    }

    /// Draws the decision for one authenticated request of `account`, consuming counters.
    pub(crate) fn decide(&self, account: &str) -> FaultDecision {
        let mut guard = self.lock();
        let (plan, rng) = &mut *guard;
        if !plan.applies_to(Some(account)) {
            return FaultDecision::default();
        }
        let mut delay = Duration::from_millis(plan.latency_ms);
        if plan.hang_next > 0 {
            plan.hang_next -= 1;
            delay += Duration::from_millis(plan.hang_ms);
        }
        let outcome = if plan.server_error_next > 0 {
            plan.server_error_next -= 1;
            FaultOutcome::ServerError
        } else if plan.server_error_per_mille > 0
            && rng.gen_range(0..1000) < plan.server_error_per_mille
        {
            FaultOutcome::ServerError
        } else if plan.rate_limited_next > 0 {
            plan.rate_limited_next -= 1;
            FaultOutcome::RateLimited
        } else if plan.is_error_next > 0 {
            plan.is_error_next -= 1;
            FaultOutcome::IsError
        } else if plan.malformed_next > 0 {
            plan.malformed_next -= 1;
            FaultOutcome::Malformed
        } else if plan.redirect_next > 0 {
            plan.redirect_next -= 1;
            FaultOutcome::Redirect
        } else if plan.oversize_next > 0 {
            plan.oversize_next -= 1;
            FaultOutcome::Oversize(plan.oversize_bytes)
        } else {
            FaultOutcome::Normal
        };
        FaultDecision { outcome, delay }
    }

    /// The message of a planned `isError` answer.
    pub(crate) fn is_error_message(&self) -> Option<String> {
        self.lock().0.is_error_message.clone()
    }

    /// How `account`'s reads page under the plan.
    pub(crate) fn paging(&self, account: &str) -> PagingFaults {
        let guard = self.lock();
        if !guard.0.applies_to(Some(account)) {
            return PagingFaults::default();
        }
        PagingFaults {
            ignore_current_page: guard.0.ignore_current_page,
            extra_items: guard.0.extra_items,
        }
    }

    /// The latency every answer of `account` (or of an unidentified caller) gets.
    pub(crate) fn latency(&self, account: Option<&str>) -> Duration {
        let guard = self.lock();
        if guard.0.applies_to(account) {
            Duration::from_millis(guard.0.latency_ms)
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_counters_are_consumed_one_request_at_a_time() {
        let state = FaultState::new(
            FaultPlan {
                server_error_next: 2,
                ..FaultPlan::default()
            },
            1,
        );
        assert_eq!(state.decide("main").outcome, FaultOutcome::ServerError);
        assert_eq!(state.decide("main").outcome, FaultOutcome::ServerError);
        assert_eq!(state.decide("main").outcome, FaultOutcome::Normal);
        assert_eq!(state.plan().server_error_next, 0);
    }

    #[test]
    fn faults_limited_to_an_account_leave_the_others_alone() {
        let plan = FaultPlan {
            is_error_next: 1,
            accounts: vec!["fbe".into()],
            ..FaultPlan::default()
        };
        let state = FaultState::new(plan, 1);
        assert_eq!(state.decide("main").outcome, FaultOutcome::Normal);
        assert_eq!(state.decide("fbe").outcome, FaultOutcome::IsError);
    }

    #[test]
    fn a_plan_decodes_from_partial_json_with_the_default_hang() {
        let plan: FaultPlan = serde_json::from_str(r#"{"hang_next": 1}"#).unwrap_or_default();
        assert_eq!(plan.hang_next, 1);
        assert_eq!(plan.hang_ms, 30_000);
    }

    #[test]
    fn the_error_rate_is_deterministic_for_a_seed() {
        let plan = FaultPlan {
            server_error_per_mille: 500,
            ..FaultPlan::default()
        };
        let draw = |state: &FaultState| {
            (0..64)
                .map(|_| state.decide("main").outcome)
                .collect::<Vec<_>>()
        };
        let a = draw(&FaultState::new(plan.clone(), 9));
        let b = draw(&FaultState::new(plan, 9));
        assert_eq!(a, b);
        assert!(a.contains(&FaultOutcome::ServerError) && a.contains(&FaultOutcome::Normal));
    }
}
