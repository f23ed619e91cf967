//! eMAG's rate limits as strict sliding-window logs, per credential and route class.
//!
//! A token bucket with burst > 1 lets a client put more than the limit into some 1-second
//! interval; the simulator must catch exactly that bug, so it keeps the timestamps of
//! accepted requests and refuses a request when the trailing 1 s or 60 s already holds the
//! limit. Rejected requests are not logged, so a client hammering with 429s does not extend
//! its own penalty. Time is tokio time so tests can pause and advance it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The two budgets eMAG defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RouteClass {
    /// `order/*`: 12 per second, 720 per minute.
    Orders,
    /// Everything else, cumulated: 3 per second, 180 per minute.
    Other,
}

impl RouteClass {
    pub(crate) fn of_resource(resource: &str) -> Self {
        if resource == "order" {
            Self::Orders
        } else {
            Self::Other
        }
    }

    fn per_second(self) -> usize {
        match self {
            Self::Orders => 12,
            Self::Other => 3,
        }
    }

    fn per_minute(self) -> usize {
        match self {
            Self::Orders => 720,
            Self::Other => 180,
        }
    }
}

/// The verdict for one request plus the values of the `X-RateLimit-*-3second` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateVerdict {
    pub(crate) allowed: bool,
    pub(crate) limit_3s: u32,
    pub(crate) remaining_3s: u32,
}

/// Accepted requests younger than `window` at `now`.
fn within(log: &VecDeque<Instant>, now: Instant, window: Duration) -> usize {
    log.iter()
        .rev()
        .take_while(|&&t| now.duration_since(t) < window)
        .count()
}

/// Sliding-window logs keyed by (username, class).
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: Mutex<HashMap<(String, RouteClass), VecDeque<Instant>>>,
}

const SECOND: Duration = Duration::from_secs(1);
const THREE_SECONDS: Duration = Duration::from_secs(3);
const MINUTE: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// Admits (and logs) or refuses one request of `username` in `class` at `now`.
    pub(crate) fn admit(&self, username: &str, class: RouteClass, now: Instant) -> RateVerdict {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let log = windows.entry((username.to_owned(), class)).or_default();
        // An entry exactly one window old has left the window: (now - window, now].
        while log
            .front()
            .is_some_and(|&t| now.duration_since(t) >= MINUTE)
        {
            log.pop_front();
        }
        let allowed =
            within(log, now, SECOND) < class.per_second() && log.len() < class.per_minute();
        if allowed {
            log.push_back(now);
        }
        let limit_3s = class.per_second() * 3;
        RateVerdict {
            allowed,
            limit_3s: u32::try_from(limit_3s).unwrap_or(u32::MAX),
            remaining_3s: u32::try_from(limit_3s.saturating_sub(within(log, now, THREE_SECONDS)))
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fourth_other_request_within_one_second_is_refused_and_not_logged() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit("u", RouteClass::Other, start).allowed);
        }
        let refused = limiter.admit("u", RouteClass::Other, start + Duration::from_millis(999));
        assert!(!refused.allowed);
        assert_eq!(refused.remaining_3s, 6);
        // One second after the first three, the window is free again.
        assert!(
            limiter
                .admit("u", RouteClass::Other, start + SECOND)
                .allowed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn order_routes_have_their_own_budget_of_twelve_per_second() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit("u", RouteClass::Other, now).allowed);
        }
        for _ in 0..12 {
            assert!(limiter.admit("u", RouteClass::Orders, now).allowed);
        }
        assert!(!limiter.admit("u", RouteClass::Orders, now).allowed);
        assert!(limiter.admit("other-user", RouteClass::Orders, now).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_with_each_accepted_request_rather_than_resetting_per_second() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert!(limiter.admit("u", RouteClass::Other, at(0)).allowed);
        assert!(limiter.admit("u", RouteClass::Other, at(500)).allowed);
        assert!(limiter.admit("u", RouteClass::Other, at(900)).allowed);
        assert!(limiter.admit("u", RouteClass::Other, at(1000)).allowed);
        // 500, 900 and 1000 are all within the last second at 1200.
        assert!(!limiter.admit("u", RouteClass::Other, at(1200)).allowed);
        assert!(limiter.admit("u", RouteClass::Other, at(1500)).allowed);
    }
}
