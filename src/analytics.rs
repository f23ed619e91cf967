//! KPIs per account and kind over a window (7 or 30 days), against the seed's targets:
//! success rate (> 98 %), data freshness as the time-weighted share within its threshold,
//! recovery time from a first failure to the next success (< 5 min), and the scheduler's
//! uptime (99.9 %).
//!
//! [`Kpis::compute`] is pure (runs and instance lifetimes in, figures out); [`Kpis::read`]
//! fetches its inputs from the store. The freshness threshold of a kind is the one `status`
//! judges it by ([`crate::status::freshness_warn_after`]), so the two never disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::{RunState, SyncKind};
use serde::{Deserialize, Serialize};
use storage::{RunOutcomePoint, StorageError, Store};

use crate::config::Config;
use crate::scheduler::schedules;
use crate::status::freshness_warn_after;

/// The seed's targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Share of runs that succeed (0.98).
    pub success_rate: f64,
    /// Share of time the data is within its freshness threshold (0.98 as well: the seed asks
    /// for "freshness < 30 min", which a schedule can hold nearly always).
    pub freshness_share: f64,
    /// Longest acceptable time from a first failure to the next success.
    pub recovery_ms: i64,
    /// Share of time a scheduler instance is live (0.999).
    pub uptime: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            success_rate: 0.98,
            freshness_share: 0.98,
            recovery_ms: 5 * 60_000,
            uptime: 0.999,
        }
    }
}

/// The KPIs of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    pub days: u32,
    /// Unix ms of the window's start and end.
    pub from: i64,
    pub to: i64,
    pub targets: Targets,
    /// Share of the window with at least one live scheduler instance; `None` when no
    /// instance was ever recorded.
    pub uptime: Option<f64>,
    pub kinds: Vec<KindKpis>,
}

/// The KPIs of one (account, kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindKpis {
    pub account: String,
    pub kind: SyncKind,
    pub runs: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// `None` without runs in the window.
    pub success_rate: Option<f64>,
    /// The freshness threshold applied (ms).
    pub freshness_threshold_ms: i64,
    /// Share of the window in which the data was no older than the threshold.
    pub freshness_share: f64,
    /// Recoveries: from the first failure after a success to the next success.
    pub recoveries: u64,
    pub recovery_p50_ms: Option<i64>,
    pub recovery_max_ms: Option<i64>,
    /// Failing since this Unix ms, with no success yet.
    pub failing_since: Option<i64>,
}

impl KindKpis {
    /// Whether each KPI meets its target (`None`: nothing to judge).
    pub fn meets(&self, t: &Targets) -> [Option<bool>; 3] {
        [
            self.success_rate.map(|r| r >= t.success_rate),
            Some(self.freshness_share >= t.freshness_share),
            self.recovery_max_ms.map(|m| m <= t.recovery_ms),
        ]
    }
}

impl Kpis {
    /// Reads the runs and instance lifetimes of the last `days` and computes the KPIs.
    pub async fn read(
        config: &Config,
        store: &Store,
        days: u32,
        now_ms: i64,
    ) -> Result<Kpis, StorageError> {
        let from = now_ms - i64::from(days) * 86_400_000;
        let runs = store.outcomes_since(from).await?;
        let lives = store.instance_lifetimes(from).await?;
        Ok(Kpis::compute(config, &runs, &lives, days, now_ms))
    }

    /// The KPIs of `runs` (finished runs of the window, plus each schedule's last success
    /// before it, in run order per account and kind) and instance `lives` (started, last
    /// seen) over the `days` before `now_ms`. Only the configured schedules that run by time
    /// are judged.
    pub fn compute(
        config: &Config,
        runs: &[RunOutcomePoint],
        lives: &[(i64, i64)],
        days: u32,
        now_ms: i64,
    ) -> Kpis {
        let from = now_ms - i64::from(days) * 86_400_000;
        let mut by_kind: BTreeMap<(&str, SyncKind), Vec<&RunOutcomePoint>> = BTreeMap::new();
        for r in runs {
            by_kind
                .entry((r.account.as_str(), r.kind))
                .or_default()
                .push(r);
        }
        let mut kinds = Vec::new();
        for s in schedules(config).iter().filter(|s| !s.manual_only) {
            let threshold = ms(freshness_warn_after(
                config.freshness_target,
                s.interval_hint(now_ms),
            ));
            let points = by_kind
                .get(&(s.account.as_str(), s.kind))
                .map(Vec::as_slice)
                .unwrap_or_default();
            kinds.push(kind_kpis(
                &s.account, s.kind, points, threshold, from, now_ms,
            ));
        }
        Kpis {
            days,
            from,
            to: now_ms,
            targets: Targets::default(),
            uptime: uptime(lives, from, now_ms),
            kinds,
        }
    }
}

fn kind_kpis(
    account: &str,
    kind: SyncKind,
    points: &[&RunOutcomePoint],
    threshold: i64,
    from: i64,
    to: i64,
) -> KindKpis {
    let in_window: Vec<&&RunOutcomePoint> =
        points.iter().filter(|p| p.finished_at >= from).collect();
    let succeeded = in_window
        .iter()
        .filter(|p| p.state == RunState::Succeeded)
        .count() as u64;
    let failed = in_window
        .iter()
        .filter(|p| p.state == RunState::Failed)
        .count() as u64;
    let runs = succeeded + failed;

    // Freshness: the data's age at t is t minus the start of the latest success finished by
    // t; stale time is where that age exceeds the threshold.
    let successes: Vec<(i64, i64)> = points
        .iter()
        .filter(|p| p.state == RunState::Succeeded)
        .map(|p| (p.started_at, p.finished_at))
        .collect();
    let stale = stale_time(&successes, threshold, from, to);
    let span = (to - from).max(1);
    let freshness_share = 1.0 - stale as f64 / span as f64;

    // Recoveries: first failure after a success (or the window's start) → next success.
    let mut recoveries = Vec::new();
    let mut failing_since: Option<i64> = None;
    for p in &in_window {
        match p.state {
            RunState::Failed => {
                failing_since.get_or_insert(p.finished_at);
            }
            RunState::Succeeded => {
                if let Some(since) = failing_since.take() {
                    recoveries.push(p.finished_at - since);
                }
            }
            _ => {}
        }
    }
    recoveries.sort_unstable();
    KindKpis {
        account: account.to_owned(),
        kind,
        runs,
        succeeded,
        failed,
        success_rate: (runs > 0).then(|| succeeded as f64 / runs as f64),
        freshness_threshold_ms: threshold,
        freshness_share,
        recoveries: recoveries.len() as u64,
        recovery_p50_ms: recoveries
            .get(recoveries.len().saturating_sub(1) / 2)
            .copied(),
        recovery_max_ms: recoveries.last().copied(),
        failing_since,
    }
}

/// Time within [from, to] in which the data was older than `threshold`, given the successes
/// as (started, finished) in finishing order. Before the first success the data is stale.
fn stale_time(successes: &[(i64, i64)], threshold: i64, from: i64, to: i64) -> i64 {
    let mut stale = 0;
    // From `cursor` on, the data's age is measured from `fresh_as_of` (None: never synced).
    let mut cursor = from;
    let mut fresh_as_of: Option<i64> = None;
    let stale_between = |fresh_as_of: Option<i64>, a: i64, b: i64| -> i64 {
        if b <= a {
            return 0;
        }
        match fresh_as_of {
            None => b - a,
            Some(start) => {
                let stale_from = (start + threshold).max(a);
                (b - stale_from).max(0)
            }
        }
    };
    for &(started, finished) in successes {
        if finished <= from {
            fresh_as_of = Some(fresh_as_of.map_or(started, |f| f.max(started)));
            continue;
        }
        let until = finished.min(to);
        stale += stale_between(fresh_as_of, cursor, until);
        cursor = until;
        fresh_as_of = Some(fresh_as_of.map_or(started, |f| f.max(started)));
        if cursor >= to {
            return stale;
        }
    }
    stale + stale_between(fresh_as_of, cursor, to)
}

/// Share of [from, to] covered by at least one instance's life.
fn uptime(lives: &[(i64, i64)], from: i64, to: i64) -> Option<f64> {
    if lives.is_empty() || to <= from {
        return None;
    }
    let mut spans: Vec<(i64, i64)> = lives
        .iter()
        .map(|&(a, b)| (a.max(from), b.min(to)))
        .filter(|(a, b)| b > a)
        .collect();
    spans.sort_unstable();
    let mut covered = 0;
    let mut end = from;
    for (a, b) in spans {
        if b <= end {
            continue;
        }
        covered += b - a.max(end);
        end = b;
    }
    Some(covered as f64 / (to - from) as f64)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    fn point(kind: SyncKind, state: RunState, started: i64) -> RunOutcomePoint {
        RunOutcomePoint {
            account: "main".into(),
            kind,
            state,
            started_at: started,
            finished_at: started + MIN,
        }
    }

    fn config() -> Config {
        let vars: std::collections::HashMap<String, String> = [
            ("EMAG_API_USERNAME", "m"),
            ("EMAG_API_PASSWORD", "p"),
            ("EMAG_MAIN_SYNC_TYPES", "offers"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Config::from_vars(&vars).expect("config")
    }

    #[test]
    fn stale_time_counts_where_the_age_passes_the_threshold() {
        // Successes every 30 min (taking 1 min), threshold 35 min: never stale.
        let s: Vec<(i64, i64)> = (0..10)
            .map(|i| (i * 30 * MIN, i * 30 * MIN + MIN))
            .collect();
        assert_eq!(stale_time(&s, 35 * MIN, MIN, 270 * MIN), 0);
        // Nothing before the window: stale until the first success finishes (1 min); then a
        // 2-hour gap: stale from 35 min until the next one finishes at 121 min.
        let s = [(0, MIN), (120 * MIN, 121 * MIN)];
        assert_eq!(stale_time(&s, 35 * MIN, 0, 150 * MIN), MIN + 86 * MIN);
        // Never synced: stale all along.
        assert_eq!(stale_time(&[], 35 * MIN, 0, 100 * MIN), 100 * MIN);
        // A success before the window counts as the data's age at its start.
        let s = [(-10 * MIN, -9 * MIN)];
        assert_eq!(stale_time(&s, 35 * MIN, 0, 60 * MIN), 35 * MIN);
    }

    #[test]
    fn uptime_is_the_share_covered_by_any_instance() {
        assert_eq!(uptime(&[], 0, 100), None);
        assert_eq!(uptime(&[(0, 100)], 0, 100), Some(1.0));
        // Two overlapping instances and a gap of 20.
        assert_eq!(uptime(&[(0, 50), (30, 60), (80, 100)], 0, 100), Some(0.8));
        assert_eq!(uptime(&[(-50, 10)], 0, 100), Some(0.1));
    }

    #[test]
    fn kpis_count_success_rate_freshness_and_recoveries_per_kind() {
        let now = 10 * DAY;
        let mut runs = Vec::new();
        // Half-hourly offers for the last day; two failures in a row at 12:00 and 12:30,
        // recovered at 13:00 (finishing 13:01).
        for i in 0..48 {
            let t = now - DAY + i * 30 * MIN;
            let state = if i == 24 || i == 25 {
                RunState::Failed
            } else {
                RunState::Succeeded
            };
            runs.push(point(SyncKind::Offers, state, t));
        }
        let kpis = Kpis::compute(&config(), &runs, &[(now - 2 * DAY, now)], 1, now);
        assert_eq!(kpis.uptime, Some(1.0));
        let offers = kpis
            .kinds
            .iter()
            .find(|k| k.kind == SyncKind::Offers)
            .expect("offers");
        assert_eq!((offers.runs, offers.succeeded, offers.failed), (48, 46, 2));
        assert!((offers.success_rate.expect("rate") - 46.0 / 48.0).abs() < 1e-9);
        assert_eq!(offers.recoveries, 1);
        assert_eq!(
            offers.recovery_max_ms,
            Some(60 * MIN),
            "12:01 failure → 13:01 success"
        );
        assert_eq!(offers.freshness_threshold_ms, 35 * MIN);
        // Stale: from the start (no success before the window) until 00:01, and from 11:30+35
        // = 12:05 until 13:01.
        let stale = MIN + 56 * MIN;
        let want = 1.0 - stale as f64 / DAY as f64;
        assert!(
            (offers.freshness_share - want).abs() < 1e-9,
            "{}",
            offers.freshness_share
        );
        assert_eq!(
            offers.meets(&kpis.targets),
            [Some(false), Some(false), Some(false)]
        );
        assert_eq!(
            kpis.kinds.len(),
            1,
            "only schedules that run by time are judged"
        );
    }
}
