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

/// The time range of a chart, and the width of its bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Range {
    /// The last 24 hours, by hour.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, by 6 hours.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days, by day.
    #[serde(rename = "30d")]
    Month,
}

impl Range {
    pub const ALL: [Range; 3] = [Range::Day, Range::Week, Range::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    pub fn parse(text: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn span_ms(self) -> i64 {
        match self {
            Range::Day => 86_400_000,
            Range::Week => 7 * 86_400_000,
            Range::Month => 30 * 86_400_000,
        }
    }

    pub fn bucket_ms(self) -> i64 {
        match self {
            Range::Day => 3_600_000,
            Range::Week => 6 * 3_600_000,
            Range::Month => 86_400_000,
        }
    }
}

/// The charts of a range: one [`Bucket`] per bar, oldest first, over the judged schedules
/// (optionally one account and/or kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub range: Range,
    /// Unix ms: the first bucket's start, and now.
    pub from: i64,
    pub to: i64,
    pub bucket_ms: i64,
    pub account: Option<String>,
    pub kind: Option<SyncKind>,
    pub targets: Targets,
    pub buckets: Vec<Bucket>,
}

/// One bar: the runs that finished in it, and how fresh the data was during it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Unix ms.
    pub start: i64,
    pub succeeded: u64,
    pub failed: u64,
    /// `None` without runs.
    pub success_rate: Option<f64>,
    /// Durations of the succeeded runs (ms).
    pub duration_p50_ms: Option<i64>,
    pub duration_max_ms: Option<i64>,
    /// Items read by the runs that finished in it.
    pub items_read: u64,
    /// Share of the bucket's time, over the schedules shown, in which their data was no
    /// older than its threshold (the rule of [`Kpis`] and `status`); `None` with no
    /// schedule to judge.
    pub freshness_share: Option<f64>,
}

impl Series {
    /// Reads the runs of `range` and computes its series.
    pub async fn read(
        config: &Config,
        store: &Store,
        range: Range,
        account: Option<&str>,
        kind: Option<SyncKind>,
        now_ms: i64,
    ) -> Result<Series, StorageError> {
        let runs = store.outcomes_since(now_ms - range.span_ms()).await?;
        Ok(Series::compute(config, &runs, range, account, kind, now_ms))
    }

    /// The series of `runs` (as [`Kpis::compute`] takes them). Pure.
    pub fn compute(
        config: &Config,
        runs: &[RunOutcomePoint],
        range: Range,
        account: Option<&str>,
        kind: Option<SyncKind>,
        now_ms: i64,
    ) -> Series {
        let width = range.bucket_ms();
        // Buckets end on a multiple of their width (whole hours / days, UTC); the last one
        // is the current, partial one.
        let count = range.span_ms() / width;
        let last_start = now_ms - now_ms.rem_euclid(width);
        let from = last_start - (count - 1) * width;
        let shown = |a: &str, k: SyncKind| {
            account.is_none_or(|want| want == a) && kind.is_none_or(|want| want == k)
        };
        let mut buckets: Vec<Bucket> = (0..count)
            .map(|i| Bucket {
                start: from + i * width,
                succeeded: 0,
                failed: 0,
                success_rate: None,
                duration_p50_ms: None,
                duration_max_ms: None,
                items_read: 0,
                freshness_share: None,
            })
            .collect();
        let mut durations: Vec<Vec<i64>> = vec![Vec::new(); buckets.len()];
        for r in runs.iter().filter(|r| shown(&r.account, r.kind)) {
            let Ok(i) = usize::try_from((r.finished_at - from).div_euclid(width)) else {
                continue;
            };
            let Some(b) = buckets.get_mut(i) else {
                continue;
            };
            b.items_read += r.items_read;
            match r.state {
                RunState::Succeeded => {
                    b.succeeded += 1;
                    durations[i].push((r.finished_at - r.started_at).max(0));
                }
                RunState::Failed => b.failed += 1,
                _ => {}
            }
        }
        for (b, d) in buckets.iter_mut().zip(&mut durations) {
            let runs = b.succeeded + b.failed;
            b.success_rate = (runs > 0).then(|| b.succeeded as f64 / runs as f64);
            d.sort_unstable();
            b.duration_p50_ms = d.get(d.len().saturating_sub(1) / 2).copied();
            b.duration_max_ms = d.last().copied();
        }

        // Freshness: per judged schedule, its stale time in each bucket.
        let mut successes: BTreeMap<(&str, SyncKind), Vec<(i64, i64)>> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.state == RunState::Succeeded) {
            successes
                .entry((r.account.as_str(), r.kind))
                .or_default()
                .push((r.started_at, r.finished_at));
        }
        let judged: Vec<_> = schedules(config)
            .into_iter()
            .filter(|s| !s.manual_only && shown(&s.account, s.kind))
            .collect();
        if !judged.is_empty() {
            let mut stale = vec![0_i64; buckets.len()];
            let mut spans = vec![0_i64; buckets.len()];
            for s in &judged {
                let threshold = ms(freshness_warn_after(
                    config.freshness_target,
                    s.interval_hint(now_ms),
                ));
                let points = successes
                    .get(&(s.account.as_str(), s.kind))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for (i, b) in buckets.iter().enumerate() {
                    let end = (b.start + width).min(now_ms);
                    stale[i] += stale_time(points, threshold, b.start, end);
                    spans[i] += (end - b.start).max(0);
                }
            }
            for (i, b) in buckets.iter_mut().enumerate() {
                b.freshness_share = (spans[i] > 0).then(|| 1.0 - stale[i] as f64 / spans[i] as f64);
            }
        }
        Series {
            range,
            from,
            to: now_ms,
            bucket_ms: width,
            account: account.map(str::to_owned),
            kind,
            targets: Targets::default(),
            buckets,
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
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
            items_read: 10,
        }
    }

    /// MAIN syncing offers only: the configuration the analytics and alert tests judge by.
    pub(crate) fn config() -> Config {
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

    #[test]
    fn series_put_each_run_in_the_bucket_it_finished_in_and_judge_freshness_per_bucket() {
        const HOUR: i64 = 3_600_000;
        let now = 100 * DAY + 30 * MIN; // half past midnight: the last bucket is 30 min long
                                        // Offers every 30 min: successes through the day, then a failing stretch of 5 hours
                                        // that ends 2 hours ago.
        let mut runs = Vec::new();
        let mut t = now - DAY;
        while t < now - 7 * HOUR {
            runs.push(point(SyncKind::Offers, RunState::Succeeded, t));
            t += 30 * MIN;
        }
        while t < now - 2 * HOUR {
            runs.push(point(SyncKind::Offers, RunState::Failed, t));
            t += 30 * MIN;
        }
        while t < now - MIN {
            runs.push(point(SyncKind::Offers, RunState::Succeeded, t));
            t += 30 * MIN;
        }
        let s = Series::compute(&config(), &runs, Range::Day, None, None, now);
        assert_eq!(s.buckets.len(), 24);
        assert_eq!(s.buckets[23].start, 100 * DAY);
        assert_eq!(s.from, 100 * DAY - 23 * HOUR);
        let total: u64 = s.buckets.iter().map(|b| b.succeeded + b.failed).sum();
        let in_range = runs.iter().filter(|r| r.finished_at >= s.from).count() as u64;
        assert_eq!(total, in_range);
        // A failing hour: no success, nothing read by a success, stale once the last
        // success is older than the threshold (30 min target + 0 → the kind's threshold).
        let failing = s
            .buckets
            .iter()
            .find(|b| b.start == 100 * DAY - 4 * HOUR)
            .expect("bucket");
        assert_eq!(failing.succeeded, 0);
        assert_eq!(failing.failed, 2);
        assert_eq!(failing.success_rate, Some(0.0));
        assert_eq!(failing.freshness_share, Some(0.0));
        let good = &s.buckets[5];
        assert_eq!(good.success_rate, Some(1.0));
        assert_eq!(good.freshness_share, Some(1.0));
        assert_eq!(good.duration_p50_ms, Some(MIN));
        assert_eq!(good.items_read, 20);
        // Another kind shows nothing of offers.
        let orders = Series::compute(
            &config(),
            &runs,
            Range::Day,
            None,
            Some(SyncKind::Orders),
            now,
        );
        assert!(orders.buckets.iter().all(|b| b.succeeded + b.failed == 0));
        assert!(orders.buckets.iter().all(|b| b.freshness_share.is_none()));
        assert_eq!(Range::parse("7d"), Some(Range::Week));
        assert_eq!(Range::parse("1y"), None);
    }
}
