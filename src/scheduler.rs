//! The scheduler: which (account, kind) is due, and a thin driver that starts due runs.
//!
//! [`evaluate`] is a pure function of a schedule, its run history and the clock: intervals
//! counted from the last run's start, a stable per-schedule offset so starts never fall on
//! round times, retries with capped exponential backoff for transient failures, and one
//! catch-up run (or none) after downtime. [`Scheduler::tick`] applies it to the store's
//! history and starts what is due — at most one run per account at a time in this process,
//! and never a second active run of an (account, kind) anywhere (the store's unique index).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use domain::{ErrorClass, RunState, RunTrigger, SyncKind};
use storage::KindHistory;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{AccountSelection, CatchUp, Config};
use crate::sync::{run_sync_for_slot, Account, RunReport, SyncContext};

/// One thing to run periodically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub account: String,
    pub kind: SyncKind,
    pub interval: Duration,
    /// Stable offset added to every slot (eMAG asks for non-round start times).
    pub offset: Duration,
    /// Cron times (in their zone) instead of the interval.
    pub cron: Option<crate::config::CronSpec>,
    /// Never due by time: only queued manual runs (and their resumption) run.
    pub manual_only: bool,
}

/// Occurrences of a cron spec strictly after `after_ms`, as Unix ms. A wall-clock time that
/// repeats when clocks fall back (03:30 twice on the last Sunday of October in Bucharest)
/// runs once; a time skipped when clocks spring forward does not run that day.
fn cron_after(spec: &crate::config::CronSpec, after_ms: i64, limit: usize) -> Vec<i64> {
    use std::str::FromStr;
    let Ok(schedule) = cron::Schedule::from_str(&spec.expr) else {
        return Vec::new();
    };
    let Some(after) = chrono::DateTime::from_timestamp_millis(after_ms) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut previous_wall: Option<chrono::NaiveDateTime> = None;
    for t in schedule.after(&after.with_timezone(&spec.zone)).take(limit) {
        let wall = t.naive_local();
        if previous_wall == Some(wall) {
            continue;
        }
        previous_wall = Some(wall);
        out.push(t.timestamp_millis());
    }
    out
}

/// How many cron occurrences we look at to count missed slots (a minutely cron after a week
/// of downtime would be 10,080; more than this is reported as "at least").
const CRON_LOOKAHEAD: usize = 20_000;

impl Schedule {
    /// The first slot after a run that started at `started_ms`. Interval slots lie on a
    /// fixed grid (`k × interval + offset` since the Unix epoch), so every instance computes
    /// the same slots and runs never drift; the next one is the first grid point more than
    /// half an interval after the last start (a manual run postpones a slot that would
    /// follow it too closely).
    fn next_slot(&self, started_ms: i64) -> Option<i64> {
        let offset = ms(self.offset);
        match &self.cron {
            None => {
                let interval = ms(self.interval).max(1);
                let k = (started_ms + interval / 2 - offset).div_euclid(interval) + 1;
                Some(k * interval + offset)
            }
            Some(spec) => cron_after(spec, started_ms - offset, 1)
                .first()
                .map(|t| t + offset),
        }
    }

    /// How long apart its runs are: the interval, or for a cron schedule the gap between its
    /// next two times after `now_ms` (what "stale" is measured against).
    pub fn interval_hint(&self, now_ms: i64) -> Duration {
        match &self.cron {
            None => self.interval,
            Some(spec) => match cron_after(spec, now_ms, 2).as_slice() {
                [a, b] => Duration::from_millis(u64::try_from(b - a).unwrap_or(0)),
                _ => self.interval,
            },
        }
    }

    /// Slots after `next` that have passed by `now_ms`, and the first slot after `now_ms`.
    fn passed_since(&self, next: i64, now_ms: i64) -> (i64, i64) {
        let offset = ms(self.offset);
        match &self.cron {
            None => {
                let interval = ms(self.interval).max(1);
                let missed = (now_ms - next) / interval;
                (missed, next + (missed + 1) * interval)
            }
            Some(spec) => {
                let later = cron_after(spec, next - offset, CRON_LOOKAHEAD);
                let missed = later.iter().take_while(|t| **t + offset <= now_ms).count();
                let upcoming = later.get(missed).map(|t| t + offset).unwrap_or(i64::MAX);
                (i64::try_from(missed).unwrap_or(i64::MAX), upcoming)
            }
        }
    }
}

/// Retry and catch-up rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub retry_delay: Duration,
    pub max_retries: u32,
    pub catch_up: CatchUp,
}

impl From<&Config> for Policy {
    fn from(config: &Config) -> Self {
        Policy {
            retry_delay: config.api.retry_delay,
            max_retries: config.api.max_retries,
            catch_up: config.catch_up,
        }
    }
}

/// The scheduler's verdict on one schedule at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run now. `slot` identifies the scheduled occurrence, so that instances racing for it
    /// create one run.
    Due {
        trigger: RunTrigger,
        reason: String,
        slot: Option<i64>,
    },
    /// Not before `at_ms`.
    Wait { at_ms: i64 },
    /// A run of it is in progress (here or elsewhere).
    Running,
}

/// A stable phase for an interval schedule, from its identity: somewhere in
/// [7 s, interval − 7 s), never on a whole minute. Phases spread over the whole interval so
/// that many schedules of one interval start evenly spread, not together.
pub fn stable_offset(account: &str, kind: SyncKind, interval: Duration) -> Duration {
    let span = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    offset_within(account, kind, span.saturating_sub(14_000).max(1))
}

/// A cron schedule's offset: a few seconds past the cron time (never a round time, and the
/// time the seller wrote is kept to the minute).
pub fn cron_offset(account: &str, kind: SyncKind) -> Duration {
    offset_within(account, kind, 50_000)
}

fn offset_within(account: &str, kind: SyncKind, span_ms: u64) -> Duration {
    let digest = blake3::hash(format!("{account}/{kind}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    let seed = u64::from_le_bytes(first);
    let mut ms = 7_000 + seed % span_ms;
    if ms.is_multiple_of(60_000) {
        ms += 1_234;
    }
    Duration::from_millis(ms)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Backoff of the n-th retry: `base × 2^(n-1)` plus up to a quarter more of jitter, at most
/// the schedule's interval. The jitter comes from `seed` (the failed run's id), so every
/// instance computes the same retry time while retries of different runs spread out.
pub fn retry_backoff(base: Duration, failures: u32, interval: Duration, seed: i64) -> Duration {
    let backoff = base.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let jitter = backoff.mul_f64((splitmix64(seed as u64) % 250) as f64 / 1000.0);
    backoff.saturating_add(jitter).min(interval)
}

/// A well-mixed 64-bit hash of an integer (SplitMix64's finaliser).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Decides whether `schedule` is due at `now_ms` given its latest run.
pub fn evaluate(
    schedule: &Schedule,
    history: Option<&KindHistory>,
    now_ms: i64,
    policy: &Policy,
) -> Decision {
    let Some(h) = history else {
        if schedule.manual_only {
            return Decision::Wait { at_ms: i64::MAX };
        }
        return Decision::Due {
            trigger: RunTrigger::Schedule,
            reason: "first run".into(),
            slot: Some(0),
        };
    };
    let run = &h.latest;
    match run.state {
        RunState::Running => return Decision::Running,
        // A manual run queued by another process (CLI, dashboard): this scheduler claims it.
        RunState::Queued => {
            return Decision::Due {
                trigger: run.trigger,
                reason: format!("queued {} run {}", run.trigger, run.id),
                slot: None,
            }
        }
        // A run stopped by a shutdown resumes at once from its checkpoint.
        RunState::Interrupted => {
            return Decision::Due {
                trigger: run.trigger,
                reason: format!("resume interrupted run {}", run.id),
                slot: None,
            }
        }
        // A run an operator cancelled is over: the schedule goes on from its start, as
        // after a success; it is never resumed.
        RunState::Succeeded | RunState::Failed | RunState::Cancelled => {}
    }
    if schedule.manual_only {
        return Decision::Wait { at_ms: i64::MAX };
    }
    let started = run.started_at.unwrap_or(run.created_at);
    let finished = run.finished_at.unwrap_or(started);
    if run.state == RunState::Failed {
        let class = run.error_class.unwrap_or(ErrorClass::Transport);
        if class.is_retryable() && h.failures_in_row <= policy.max_retries {
            let at = finished
                + ms(retry_backoff(
                    policy.retry_delay,
                    h.failures_in_row,
                    schedule.interval,
                    run.id,
                ));
            return if now_ms >= at {
                Decision::Due {
                    trigger: RunTrigger::Retry,
                    reason: format!(
                        "retry {} of {} after {class}",
                        h.failures_in_row, policy.max_retries
                    ),
                    // One retry per failed run, whichever instance gets there first.
                    slot: Some(-run.id),
                }
            } else {
                Decision::Wait { at_ms: at }
            };
        }
    }
    let Some(next) = schedule.next_slot(started) else {
        // A cron expression with no future occurrence (e.g. 30 February).
        return Decision::Wait { at_ms: i64::MAX };
    };
    if now_ms < next {
        return Decision::Wait { at_ms: next };
    }
    let (missed, upcoming) = schedule.passed_since(next, now_ms);
    if missed == 0 {
        return Decision::Due {
            trigger: RunTrigger::Schedule,
            reason: "interval elapsed".into(),
            slot: Some(next),
        };
    }
    match policy.catch_up {
        CatchUp::Once => Decision::Due {
            trigger: RunTrigger::Schedule,
            slot: Some(next),
            reason: format!(
                "catch-up: {} slots passed while nothing ran; running once, {missed} skipped",
                missed + 1
            ),
        },
        // The slot we are in has passed its start; wait for the next regular one.
        CatchUp::Skip => Decision::Wait { at_ms: upcoming },
    }
}

/// What holds an account now, from its running runs: one run per account at a time, across
/// every process sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountHold {
    /// A run of `kind` holds the account under a live lease, until at least `expires_at`.
    Held {
        run_id: i64,
        kind: SyncKind,
        holder: Option<String>,
        expires_at: i64,
    },
    /// A run of `kind` was left running by a process that died or went silent. It is taken
    /// over (resumed from its checkpoint) before anything else of the account may start: its
    /// row still holds the account's one running place, so any other claim would find the
    /// account busy.
    Abandoned {
        run_id: i64,
        kind: SyncKind,
        holder: Option<String>,
    },
}

impl AccountHold {
    pub fn run_id(&self) -> i64 {
        match self {
            AccountHold::Held { run_id, .. } | AccountHold::Abandoned { run_id, .. } => *run_id,
        }
    }

    pub fn kind(&self) -> SyncKind {
        match self {
            AccountHold::Held { kind, .. } | AccountHold::Abandoned { kind, .. } => *kind,
        }
    }
}

/// The lease of a running run at `now_ms`, by the one rule ([`domain::Lease::judge`]), as
/// any process sees it.
pub fn lease_of(run: &storage::RunRow, now_ms: i64, ttl: Duration) -> domain::Lease {
    lease_seen_by(run, now_ms, ttl, None)
}

/// [`lease_of`] as the process of `ctx` sees it: a run under its own holder is alive only
/// while it claims or executes a run of that (account, kind) ([`SyncContext::run_holder_alive`]).
pub fn lease_seen_by(
    run: &storage::RunRow,
    now_ms: i64,
    ttl: Duration,
    ctx: Option<&SyncContext>,
) -> domain::Lease {
    domain::Lease::judge(
        run.holder.as_deref(),
        run.heartbeat_at,
        now_ms,
        ms(ttl),
        |holder| match ctx {
            Some(ctx) => ctx.run_holder_alive(holder, &run.account, run.kind),
            None => crate::holder_is_alive(holder),
        },
    )
}

/// The accounts held by the running runs among `runs` (the latest run of each schedule), as
/// the process of `ctx` sees them ([`lease_seen_by`]). A live lease wins over an abandoned
/// one (the store allows one running run per account; two can only be seen while one view is
/// a tick old).
pub fn account_holds<'a>(
    runs: impl IntoIterator<Item = &'a storage::RunRow>,
    now_ms: i64,
    ttl: Duration,
    ctx: Option<&SyncContext>,
) -> HashMap<String, AccountHold> {
    let mut holds: HashMap<String, AccountHold> = HashMap::new();
    for run in runs {
        if run.state != RunState::Running {
            continue;
        }
        let hold = match lease_seen_by(run, now_ms, ttl, ctx) {
            domain::Lease::Held { expires_at } => AccountHold::Held {
                run_id: run.id,
                kind: run.kind,
                holder: run.holder.clone(),
                expires_at,
            },
            domain::Lease::HolderGone | domain::Lease::Expired => AccountHold::Abandoned {
                run_id: run.id,
                kind: run.kind,
                holder: run.holder.clone(),
            },
        };
        match holds.get(&run.account) {
            Some(AccountHold::Held { .. }) => {}
            _ => {
                holds.insert(run.account.clone(), hold);
            }
        }
    }
    holds
}

/// How many of `plan` run by time (the others are manual-only).
pub fn timed(plan: &[Schedule]) -> usize {
    plan.iter().filter(|s| !s.manual_only).count()
}

/// The schedules of the configuration: every selected account × every kind. Kinds outside
/// the account's sync types (and every kind of an account with `SYNC_INTERVAL=manual`) are
/// manual-only: never due by time, but queued manual runs of them are claimed.
pub fn schedules(config: &Config) -> Vec<Schedule> {
    let mut out = Vec::new();
    for a in &config.accounts {
        let selected = match config.account_selection {
            AccountSelection::Auto => true,
            AccountSelection::Main => a.kind == domain::AccountKind::Main,
            AccountSelection::Fbe => a.kind == domain::AccountKind::Fbe,
        };
        if !selected {
            continue;
        }
        for kind in SyncKind::ALL {
            let interval = a.interval_of(*kind);
            // An explicit orders interval wins over the account's cron.
            let cron = a
                .cron
                .clone()
                .filter(|_| !(*kind == SyncKind::Orders && a.orders_interval.is_some()));
            let offset = match cron {
                Some(_) => cron_offset(a.name.as_str(), *kind),
                None => stable_offset(a.name.as_str(), *kind, interval),
            };
            out.push(Schedule {
                account: a.name.to_string(),
                kind: *kind,
                interval,
                offset,
                cron,
                manual_only: a.manual_only || !a.sync_types.0.contains(kind),
            });
        }
    }
    out
}

/// Housekeeping the daemon does besides syncing.
#[derive(Debug, Clone, Default)]
pub struct Maintenance {
    /// SQLite snapshots before offer syncs (`None` on PostgreSQL or when disabled).
    pub backups: Option<crate::config::BackupSettings>,
    /// Finished runs older than this are deleted (hourly).
    pub run_retention: Option<Duration>,
    /// Tell systemd we are alive on every tick (Type=notify, WatchdogSec).
    pub systemd: bool,
}

/// How often the whole run history is read again (other instances' runs, manual changes).
/// Between reads the scheduler works from what it knows, re-reads one (account, kind) when a
/// run of it ends here or a claim finds its slot taken, and reads queued/running runs every
/// tick.
const FULL_REFRESH: Duration = Duration::from_secs(10);

/// How often an instance proves it is alive in the `instances` table.
const INSTANCE_BEAT: Duration = Duration::from_secs(5);

/// The longest the driver sleeps between ticks (queued manual runs and pauses are seen this
/// quickly).
const MAX_SLEEP: Duration = Duration::from_secs(1);

type Key = (String, SyncKind);

/// A claim that found its account busy: the run it waits for, and the earliest next try.
#[derive(Debug, Clone, Copy)]
struct Blocked {
    by_run: i64,
    retry_at: i64,
}

/// The driver's state: what it knows of every schedule's history, when each schedule is
/// next worth looking at, and the runs this process has in flight (one per account).
pub struct Scheduler {
    pub ctx: SyncContext,
    pub accounts: HashMap<String, Account>,
    pub schedules: Vec<Schedule>,
    pub policy: Policy,
    pub maintenance: Maintenance,
    in_flight: HashMap<String, (SyncKind, JoinHandle<RunReport>)>,
    last_prune: Option<tokio::time::Instant>,
    histories: HashMap<Key, KindHistory>,
    /// Per schedule (same index): not worth evaluating before this instant (ms).
    not_before: Vec<i64>,
    by_account: HashMap<String, Vec<usize>>,
    /// Keys to read again from the store at the next tick.
    dirty: HashSet<Key>,
    refreshed_at: Option<tokio::time::Instant>,
    paused: HashSet<String>,
    /// Schedules (by index) whose claim found the account busy in the store: not tried again
    /// before `retry_at` unless the blocking run is seen to end first.
    blocked: HashMap<usize, Blocked>,
    /// Schedules (by index) that were due while another run held their account, with that
    /// run's id: each wait is logged once, not at every tick.
    announced: HashMap<usize, i64>,
    /// Woken when a run of this process ends, so the account's next due run starts at once.
    finished: Arc<Notify>,
    snapshots: Arc<tokio::sync::Mutex<()>>,
    on_ready: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("schedules", &self.schedules)
            .finish()
    }
}

impl Scheduler {
    pub fn new(
        ctx: SyncContext,
        accounts: Vec<Account>,
        schedules: Vec<Schedule>,
        policy: Policy,
    ) -> Self {
        let mut by_account: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in schedules.iter().enumerate() {
            by_account.entry(s.account.clone()).or_default().push(i);
        }
        Scheduler {
            ctx,
            accounts: accounts
                .into_iter()
                .map(|a| (a.name().to_owned(), a))
                .collect(),
            not_before: vec![i64::MIN; schedules.len()],
            schedules,
            policy,
            maintenance: Maintenance::default(),
            in_flight: HashMap::new(),
            last_prune: None,
            histories: HashMap::new(),
            by_account,
            dirty: HashSet::new(),
            refreshed_at: None,
            paused: HashSet::new(),
            blocked: HashMap::new(),
            announced: HashMap::new(),
            finished: Arc::new(Notify::new()),
            snapshots: Arc::default(),
            on_ready: None,
        }
    }

    pub fn with_maintenance(mut self, maintenance: Maintenance) -> Self {
        self.maintenance = maintenance;
        self
    }

    /// Called once, after the first tick of [`Scheduler::run`] (readiness for systemd and
    /// `start --detach`).
    pub fn on_ready(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_ready = Some(Box::new(f));
        self
    }

    /// Runs of this process that ended: their (account, kind) is read again and the
    /// account's other schedules are looked at now.
    /// A claim that found its account busy waits — for the blocking run to be seen ending, or
    /// for a quarter of the lease TTL — instead of trying again at the next tick.
    fn reap(&mut self, now_ms: i64) {
        let ended: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, (_, handle))| handle.is_finished())
            .map(|(account, _)| account.clone())
            .collect();
        for account in ended {
            let Some((kind, handle)) = self.in_flight.remove(&account) else {
                continue;
            };
            self.dirty.insert((account.clone(), kind));
            self.wake_account(&account);
            let report = match futures::FutureExt::now_or_never(handle) {
                Some(Ok(report)) => report,
                Some(Err(e)) => {
                    tracing::error!(account.name = %account, sync.kind = %kind, error = %e, "a sync task ended abnormally");
                    continue;
                }
                None => continue,
            };
            let Some(by_run) = report.blocked_by else {
                continue;
            };
            let Some(i) = self.index_of(&account, kind) else {
                continue;
            };
            let retry_at = now_ms.saturating_add(ms(self.ctx.settings.stale_after / 4));
            self.blocked.insert(i, Blocked { by_run, retry_at });
            self.announce_wait(
                i,
                by_run,
                report.note.as_deref().unwrap_or("the account is busy"),
            );
        }
    }

    fn index_of(&self, account: &str, kind: SyncKind) -> Option<usize> {
        self.by_account
            .get(account)?
            .iter()
            .copied()
            .find(|&i| self.schedules[i].kind == kind)
    }

    /// Logs, once per blocking run, that schedule `i` is due but waits for run `by_run`.
    fn announce_wait(&mut self, i: usize, by_run: i64, why: &str) {
        if self.announced.insert(i, by_run) == Some(by_run) {
            return;
        }
        let s = &self.schedules[i];
        tracing::info!(
            account.name = %s.account, sync.kind = %s.kind, blocking.run = by_run, reason = %why,
            "a due run waits for the account's running run (one run per account at a time)"
        );
    }

    fn wake_account(&mut self, account: &str) {
        for &i in self.by_account.get(account).into_iter().flatten() {
            self.not_before[i] = i64::MIN;
        }
    }

    fn wake(&mut self, key: &Key) {
        for &i in self.by_account.get(&key.0).into_iter().flatten() {
            if self.schedules[i].kind == key.1 {
                self.not_before[i] = i64::MIN;
            }
        }
    }

    /// Brings the known histories up to date: in full every [`FULL_REFRESH`], otherwise the
    /// dirty keys, and every tick the queued and running runs.
    async fn refresh(&mut self) -> anyhow::Result<()> {
        if self
            .refreshed_at
            .is_none_or(|t| t.elapsed() >= FULL_REFRESH)
        {
            let all = self.ctx.store.kind_histories().await?;
            self.histories = all
                .into_iter()
                .map(|h| ((h.account.clone(), h.kind), h))
                .collect();
            self.refreshed_at = Some(tokio::time::Instant::now());
            self.dirty.clear();
            self.not_before.fill(i64::MIN);
        } else {
            for key in std::mem::take(&mut self.dirty) {
                self.reload(key).await?;
            }
        }
        let active = self.ctx.store.active_runs().await?;
        let active_ids: HashSet<i64> = active.iter().map(|r| r.id).collect();
        for run in active {
            let key = (run.account.clone(), run.kind);
            let known = self.histories.get(&key).map(|h| &h.latest);
            if known.is_some_and(|k| k.id > run.id) {
                continue;
            }
            let changed = known.is_none_or(|k| k.id != run.id || k.state != run.state);
            let failures_in_row = self.histories.get(&key).map_or(0, |h| h.failures_in_row);
            self.histories.insert(
                key.clone(),
                KindHistory {
                    account: run.account.clone(),
                    kind: run.kind,
                    latest: run,
                    failures_in_row,
                },
            );
            if changed {
                self.wake(&key);
            }
        }
        // Runs we knew as queued or running that are neither any more ended (or were
        // interrupted) elsewhere: read their outcome.
        let ended: Vec<Key> = self
            .histories
            .iter()
            .filter(|(_, h)| {
                matches!(h.latest.state, RunState::Running | RunState::Queued)
                    && !active_ids.contains(&h.latest.id)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in ended {
            // The account's other schedules may have been waiting for this run.
            self.wake_account(&key.0);
            self.reload(key).await?;
        }
        Ok(())
    }

    async fn reload(&mut self, key: Key) -> anyhow::Result<()> {
        match self.ctx.store.kind_history(&key.0, key.1).await? {
            Some(h) => {
                self.histories.insert(key.clone(), h);
            }
            None => {
                self.histories.remove(&key);
            }
        }
        self.wake(&key);
        Ok(())
    }

    /// One step: reap finished runs, bring the history up to date, start what is due.
    /// Returns the (account, kind, trigger) started.
    pub async fn tick(
        &mut self,
        now_ms: i64,
    ) -> anyhow::Result<Vec<(String, SyncKind, RunTrigger)>> {
        self.reap(now_ms);
        self.refresh().await?;
        self.paused = self
            .ctx
            .store
            .paused_accounts()
            .await?
            .into_iter()
            .collect();
        let ttl = self.ctx.settings.stale_after;
        // One run per account at a time, across processes: what holds each account now, by
        // the database's clock (the one the heartbeats are written by).
        let lease_now = self.ctx.store.clock_ms().await?;
        let holds = account_holds(
            self.histories.values().map(|h| &h.latest),
            lease_now,
            ttl,
            Some(&self.ctx),
        );
        let mut due = Vec::new();
        let mut waits = Vec::new();
        let mut unblocked = Vec::new();
        for (i, schedule) in self.schedules.iter().enumerate() {
            if self.not_before[i] > now_ms
                || self.in_flight.contains_key(&schedule.account)
                || self.paused.contains(&schedule.account)
            {
                continue;
            }
            let hold = holds.get(&schedule.account);
            if let Some(b) = self.blocked.get(&i).copied() {
                // Still held by the run our claim ran into: wait for its end or the retry time.
                if now_ms < b.retry_at && hold.is_some_and(|h| h.run_id() == b.by_run) {
                    continue;
                }
                unblocked.push(i);
            }
            let key = (schedule.account.clone(), schedule.kind);
            let history = self.histories.get(&key);
            let decision = match hold {
                Some(AccountHold::Held {
                    run_id,
                    kind,
                    holder,
                    expires_at,
                }) if *kind != schedule.kind => {
                    // Another kind runs under a live lease: look again when it ends (its end
                    // wakes the account) or its lease would expire.
                    let why = matches!(
                        evaluate(schedule, history, now_ms, &self.policy),
                        Decision::Due { .. }
                    )
                    .then(|| {
                        format!(
                            "{kind} run {run_id} holds the account ({})",
                            holder.as_deref().unwrap_or("unknown holder")
                        )
                    });
                    waits.push((i, *expires_at, why.map(|why| (*run_id, why))));
                    continue;
                }
                // The abandoned run is resumed first, by its own schedule: nothing else of the
                // account can be claimed while its row holds the account's running place.
                Some(AccountHold::Abandoned { kind, .. }) if *kind != schedule.kind => continue,
                // A run left "running" by a process that died (or went silent) is resumed
                // like an interrupted one; otherwise its account would wait forever.
                Some(AccountHold::Abandoned { run_id, holder, .. }) => {
                    let Some(h) = history.filter(|h| h.latest.id == *run_id) else {
                        continue;
                    };
                    tracing::info!(
                        account.name = %schedule.account, sync.kind = %schedule.kind, run.id = run_id,
                        previous.holder = holder.as_deref().unwrap_or("-"),
                        "taking over a run whose holder died or went silent"
                    );
                    let mut h = h.clone();
                    h.latest.state = RunState::Interrupted;
                    evaluate(schedule, Some(&h), now_ms, &self.policy)
                }
                _ => evaluate(schedule, history, now_ms, &self.policy),
            };
            due.push((i, decision));
        }
        for i in unblocked {
            self.blocked.remove(&i);
        }
        for (i, expires_at, announce) in waits {
            self.not_before[i] = expires_at;
            if let Some((by_run, why)) = announce {
                self.announce_wait(i, by_run, &why);
            }
        }
        let mut started = Vec::new();
        for (i, decision) in due {
            // A stop was asked for (SIGTERM): runs in flight finish their page, nothing new
            // starts — not even the run a stopping one has just interrupted, whose end may
            // have woken this tick.
            if self.ctx.cancel.is_cancelled() {
                break;
            }
            let schedule = &self.schedules[i];
            if self.in_flight.contains_key(&schedule.account) {
                continue;
            }
            let (trigger, reason, slot) = match decision {
                Decision::Due {
                    trigger,
                    reason,
                    slot,
                } => (trigger, reason, slot),
                Decision::Wait { at_ms } => {
                    self.not_before[i] = at_ms;
                    continue;
                }
                // Looked at every tick: its holder may go silent.
                Decision::Running => continue,
            };
            let Some(account) = self.accounts.get(&schedule.account).cloned() else {
                self.not_before[i] = i64::MAX;
                continue;
            };
            self.announced.remove(&i);
            tracing::info!(
                account.name = %schedule.account, sync.kind = %schedule.kind,
                run.trigger = %trigger, reason = %reason, "starting a scheduled run"
            );
            let ctx = self.ctx.clone();
            let kind = schedule.kind;
            let backups = self
                .maintenance
                .backups
                .clone()
                .filter(|_| kind == SyncKind::Offers);
            let finished = self.finished.clone();
            let snapshots = self.snapshots.clone();
            let handle = tokio::spawn(async move {
                if let Some(b) = backups {
                    // One snapshot at a time: offer syncs of two accounts starting together
                    // take one snapshot between them, not two racing for one file name.
                    let _one = snapshots.lock().await;
                    snapshot_if_due(&ctx, &b).await;
                }
                let report = run_sync_for_slot(&ctx, &account, kind, trigger, false, slot).await;
                finished.notify_one();
                report
            });
            self.in_flight
                .insert(schedule.account.clone(), (kind, handle));
            started.push((schedule.account.clone(), kind, trigger));
        }
        Ok(started)
    }
}

impl Scheduler {
    /// How long the driver may sleep after a tick at `now_ms`: until the earliest schedule
    /// worth looking at, at most [`MAX_SLEEP`].
    fn sleep_after(&self, now_ms: i64) -> Duration {
        let earliest = self
            .schedules
            .iter()
            .zip(&self.not_before)
            .filter(|(s, at)| {
                **at > now_ms
                    && !self.in_flight.contains_key(&s.account)
                    && !self.paused.contains(&s.account)
            })
            .map(|(_, at)| *at)
            .min()
            .unwrap_or(i64::MAX);
        let wait = u64::try_from(earliest.saturating_sub(now_ms)).unwrap_or(0);
        Duration::from_millis(wait).clamp(Duration::from_millis(2), MAX_SLEEP)
    }

    fn notify_systemd(&self, states: &[sd_notify::NotifyState<'_>]) {
        if self.maintenance.systemd {
            let _ = sd_notify::notify(states);
        }
    }

    async fn prune_if_due(&mut self) {
        let Some(retention) = self.maintenance.run_retention else {
            return;
        };
        if self
            .last_prune
            .is_some_and(|t| t.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        self.last_prune = Some(tokio::time::Instant::now());
        let before = storage::now_ms() - ms(retention);
        match self.ctx.store.prune_runs(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                runs = n,
                retention_days = retention.as_secs() / 86_400,
                "pruned old run history"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not prune old runs; will try again in an hour");
            }
        }
    }

    /// Waits for every run in flight to end (tests and shutdown: run until idle).
    pub async fn wait_idle(&mut self) -> Vec<RunReport> {
        let mut reports = Vec::new();
        let in_flight: Vec<_> = self.in_flight.drain().collect();
        for (account, (kind, handle)) in in_flight {
            if let Ok(report) = handle.await {
                reports.push(report);
            }
            self.dirty.insert((account.clone(), kind));
            self.wake_account(&account);
        }
        reports
    }

    fn instance_row(&self, started_at: i64) -> storage::InstanceRow {
        storage::InstanceRow {
            id: self.ctx.holder.clone(),
            host: self
                .ctx
                .holder
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned(),
            pid: i64::from(std::process::id()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at,
            heartbeat_at: storage::now_ms(),
            schedules: i64::try_from(timed(&self.schedules)).unwrap_or(i64::MAX),
            running: i64::try_from(self.in_flight.len()).unwrap_or(i64::MAX),
            stopped_at: None,
        }
    }

    /// Announces this instance, then ticks whenever a schedule is due (at least every
    /// second) until `ctx.cancel` fires; then lets runs in flight finish their page and
    /// checkpoint.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let started_at = storage::now_ms();
        let row = self.instance_row(started_at);
        if let Err(e) = self.ctx.store.register_instance(&row).await {
            tracing::warn!(error = %e, "could not register this instance; `status` will not list it");
        }
        let mut last_beat = tokio::time::Instant::now();
        loop {
            let now = storage::now_ms();
            match self.tick(now).await {
                // The watchdog is fed by the loop itself: a wedged loop gets restarted.
                Ok(_) => self.notify_systemd(&[sd_notify::NotifyState::Watchdog]),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "scheduler tick failed; trying again next tick");
                    // Read everything again next time: a failed refresh may have left gaps.
                    self.refreshed_at = None;
                }
            }
            if let Some(ready) = self.on_ready.take() {
                ready();
            }
            if last_beat.elapsed() >= INSTANCE_BEAT {
                last_beat = tokio::time::Instant::now();
                let running = i64::try_from(self.in_flight.len()).unwrap_or(i64::MAX);
                let status = format!(
                    "serving {} schedule(s); {running} run(s) in flight",
                    timed(&self.schedules)
                );
                self.notify_systemd(&[sd_notify::NotifyState::Status(&status)]);
                if let Err(e) = self
                    .ctx
                    .store
                    .beat_instance(&self.ctx.holder, storage::now_ms(), running)
                    .await
                {
                    tracing::warn!(error = %e, "instance heartbeat failed");
                }
            }
            self.prune_if_due().await;
            let sleep = self.sleep_after(storage::now_ms());
            let finished = self.finished.clone();
            tokio::select! {
                // A stop wins over a run's end that woke the loop at the same moment.
                biased;
                () = self.ctx.cancel.cancelled() => break,
                () = tokio::time::sleep(sleep) => {}
                () = finished.notified() => {}
            }
        }
        self.notify_systemd(&[sd_notify::NotifyState::Stopping]);
        for report in self.wait_idle().await {
            tracing::info!(
                account.name = %report.account, sync.kind = %report.kind, status = ?report.status,
                "run ended at shutdown"
            );
        }
        if let Err(e) = self
            .ctx
            .store
            .stop_instance(&self.ctx.holder, storage::now_ms())
            .await
        {
            tracing::warn!(error = %e, "could not record this instance's stop");
        }
        Ok(())
    }
}

/// A snapshot before an offer sync, at most once per `every`. A failed snapshot is logged and
/// the sync goes on: missing one backup must not stop the data from being kept current.
async fn snapshot_if_due(ctx: &SyncContext, b: &crate::config::BackupSettings) {
    if crate::backup::newest_age(&b.dir).is_some_and(|age| age < b.every) {
        return;
    }
    match crate::backup::backup_now(&ctx.store, &b.dir, b.keep).await {
        Ok(path) => {
            tracing::info!(backup.path = %path.display(), "database snapshot written before the offer sync");
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "database snapshot failed; syncing anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::RunCounts;
    use storage::RunRow;

    const MIN: i64 = 60_000;

    fn schedule() -> Schedule {
        Schedule {
            account: "main".into(),
            kind: SyncKind::Offers,
            interval: Duration::from_secs(30 * 60),
            offset: Duration::from_secs(17),
            cron: None,
            manual_only: false,
        }
    }

    /// A daily 03:30 Bucharest schedule with no offset, and Unix ms of a Bucharest wall time.
    fn daily_0330() -> Schedule {
        Schedule {
            offset: Duration::ZERO,
            cron: Some(
                crate::config::CronSpec::parse("30 3 * * *", "Europe/Bucharest").expect("cron"),
            ),
            ..schedule()
        }
    }

    fn utc_ms(text: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .expect("time")
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn cron_slots_follow_the_zones_wall_clock_in_winter_and_summer() {
        let p = policy(CatchUp::Once);
        // Winter (UTC+2): 03:30 Bucharest = 01:30 UTC. Summer (UTC+3): 00:30 UTC.
        let h = history(RunState::Succeeded, utc_ms("2026-01-10 01:30:00"), None, 0);
        assert_eq!(
            evaluate(&daily_0330(), Some(&h), utc_ms("2026-01-10 12:00:00"), &p),
            Decision::Wait {
                at_ms: utc_ms("2026-01-11 01:30:00")
            }
        );
        let h = history(RunState::Succeeded, utc_ms("2026-07-10 00:30:00"), None, 0);
        assert_eq!(
            evaluate(&daily_0330(), Some(&h), utc_ms("2026-07-10 12:00:00"), &p),
            Decision::Wait {
                at_ms: utc_ms("2026-07-11 00:30:00")
            }
        );
    }

    #[test]
    fn on_the_spring_forward_day_the_skipped_time_does_not_run() {
        // 29 March 2026: Bucharest clocks jump 03:00 → 04:00; 03:30 does not exist.
        let p = policy(CatchUp::Once);
        let h = history(RunState::Succeeded, utc_ms("2026-03-28 01:30:00"), None, 0);
        let Decision::Wait { at_ms } =
            evaluate(&daily_0330(), Some(&h), utc_ms("2026-03-28 12:00:00"), &p)
        else {
            panic!("not due")
        };
        assert_eq!(
            at_ms,
            utc_ms("2026-03-30 00:30:00"),
            "next run is 30 March 03:30 EEST"
        );
    }

    #[test]
    fn on_the_fall_back_day_the_repeated_time_runs_once() {
        // 25 October 2026: Bucharest clocks fall back 04:00 → 03:00; 03:30 happens twice
        // (00:30 and 01:30 UTC). After the first, the next run is the following day.
        let p = policy(CatchUp::Once);
        let h = history(RunState::Succeeded, utc_ms("2026-10-25 00:30:00"), None, 0);
        assert_eq!(
            evaluate(&daily_0330(), Some(&h), utc_ms("2026-10-25 01:45:00"), &p),
            Decision::Wait {
                at_ms: utc_ms("2026-10-26 01:30:00")
            }
        );
    }

    #[test]
    fn cron_catch_up_counts_the_missed_days() {
        let h = history(RunState::Succeeded, utc_ms("2026-01-10 01:30:00"), None, 0);
        let now = utc_ms("2026-01-14 12:00:00"); // 11, 12, 13, 14 January passed
        let once = evaluate(&daily_0330(), Some(&h), now, &policy(CatchUp::Once));
        assert!(
            matches!(&once, Decision::Due { reason, slot: Some(s), .. } if reason.contains("3 skipped") && *s == utc_ms("2026-01-11 01:30:00")),
            "{once:?}"
        );
        let skip = evaluate(&daily_0330(), Some(&h), now, &policy(CatchUp::Skip));
        assert_eq!(
            skip,
            Decision::Wait {
                at_ms: utc_ms("2026-01-15 01:30:00")
            }
        );
    }

    fn policy(catch_up: CatchUp) -> Policy {
        Policy {
            retry_delay: Duration::from_secs(5),
            max_retries: 3,
            catch_up,
        }
    }

    fn history(
        state: RunState,
        started: i64,
        error: Option<ErrorClass>,
        failures: u32,
    ) -> KindHistory {
        KindHistory {
            account: "main".into(),
            kind: SyncKind::Offers,
            failures_in_row: failures,
            latest: RunRow {
                id: 1,
                account: "main".into(),
                kind: SyncKind::Offers,
                trigger: RunTrigger::Schedule,
                state,
                attempt: 1,
                created_at: started,
                started_at: Some(started),
                finished_at: Some(started + MIN),
                checkpoint_page: 0,
                total_items: None,
                counts: RunCounts::default(),
                error_class: error,
                error_message: None,
                emag_messages: Vec::new(),
                note: None,
                holder: None,
                heartbeat_at: None,
                slot: None,
                reclaimed_from: None,
                reclaimed_at: None,
            },
        }
    }

    #[test]
    fn the_interval_counts_from_the_last_start_plus_the_stable_offset() {
        let h = history(RunState::Succeeded, 0, None, 0);
        let p = policy(CatchUp::Once);
        assert_eq!(
            evaluate(&schedule(), Some(&h), 29 * MIN, &p),
            Decision::Wait {
                at_ms: 30 * MIN + 17_000
            }
        );
        assert!(matches!(
            evaluate(&schedule(), Some(&h), 30 * MIN + 17_000, &p),
            Decision::Due {
                trigger: RunTrigger::Schedule,
                ..
            }
        ));
        assert!(matches!(
            evaluate(&schedule(), None, 0, &p),
            Decision::Due { .. }
        ));
    }

    #[test]
    fn slots_stay_on_the_grid_and_a_manual_run_postpones_a_close_slot() {
        let p = policy(CatchUp::Once);
        // Started 40 s late for its 30:17 slot: the next slot is still 60:17, not 60:57.
        let late = history(RunState::Succeeded, 30 * MIN + 57_000, None, 0);
        assert_eq!(
            evaluate(&schedule(), Some(&late), 31 * MIN, &p),
            Decision::Wait {
                at_ms: 60 * MIN + 17_000
            }
        );
        // A manual run a minute before the 60:17 slot: the next is 90:17.
        let manual = history(RunState::Succeeded, 59 * MIN, None, 0);
        assert_eq!(
            evaluate(&schedule(), Some(&manual), 60 * MIN, &p),
            Decision::Wait {
                at_ms: 90 * MIN + 17_000
            }
        );
    }

    #[test]
    fn a_manual_only_schedule_is_never_due_by_time_but_claims_queued_runs() {
        let p = policy(CatchUp::Once);
        let manual = Schedule {
            manual_only: true,
            ..schedule()
        };
        assert_eq!(
            evaluate(&manual, None, MIN, &p),
            Decision::Wait { at_ms: i64::MAX }
        );
        let done = history(RunState::Succeeded, 0, None, 0);
        assert_eq!(
            evaluate(&manual, Some(&done), 999 * MIN, &p),
            Decision::Wait { at_ms: i64::MAX }
        );
        let failed = history(RunState::Failed, 0, Some(ErrorClass::Server), 1);
        assert_eq!(
            evaluate(&manual, Some(&failed), 999 * MIN, &p),
            Decision::Wait { at_ms: i64::MAX },
            "a manual run is not retried by time"
        );
        let mut queued = history(RunState::Queued, 0, None, 0);
        queued.latest.trigger = RunTrigger::Manual;
        assert!(matches!(
            evaluate(&manual, Some(&queued), MIN, &p),
            Decision::Due {
                trigger: RunTrigger::Manual,
                ..
            }
        ));
    }

    #[test]
    fn kinds_outside_the_sync_types_and_manual_accounts_are_manual_only() {
        let vars: HashMap<String, String> = [
            ("EMAG_API_USERNAME", "m"),
            ("EMAG_API_PASSWORD", "p"),
            ("EMAG_FBE_API_USERNAME", "f"),
            ("EMAG_FBE_API_PASSWORD", "p"),
            ("EMAG_FBE_SYNC_TYPES", "products_only"),
            ("EMAG_BG_API_USERNAME", "b"),
            ("EMAG_BG_API_PASSWORD", "p"),
            ("EMAG_BG_SYNC_INTERVAL", "manual"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = Config::from_vars(&vars).expect("config");
        let plan = schedules(&config);
        let timed_of = |account: &str| -> Vec<SyncKind> {
            plan.iter()
                .filter(|s| s.account == account && !s.manual_only)
                .map(|s| s.kind)
                .collect()
        };
        assert_eq!(timed_of("main").len(), 4);
        assert_eq!(timed_of("fbe"), vec![SyncKind::Offers]);
        assert!(timed_of("bg").is_empty());
        assert_eq!(
            plan.len(),
            12,
            "every kind of every account can be asked for"
        );
        assert_eq!(timed(&plan), 5);
    }

    #[test]
    fn an_account_is_held_by_a_live_lease_and_released_to_its_abandoned_runs_own_schedule() {
        let ttl = Duration::from_secs(10);
        let now = 100 * MIN;
        let running = |id: i64, kind: SyncKind, beat: i64| {
            let mut h = history(RunState::Running, now - MIN, None, 0);
            h.latest.id = id;
            h.latest.kind = kind;
            h.latest.holder = Some("another-host:1:0".into());
            h.latest.heartbeat_at = Some(beat);
            h.latest
        };
        let live = running(1, SyncKind::Orders, now - 9_000);
        assert_eq!(
            account_holds([&live], now, ttl, None).get("main"),
            Some(&AccountHold::Held {
                run_id: 1,
                kind: SyncKind::Orders,
                holder: Some("another-host:1:0".into()),
                expires_at: now + 1_000
            })
        );
        let silent = running(2, SyncKind::Orders, now - 10_000);
        assert_eq!(
            account_holds([&silent], now, ttl, None).get("main"),
            Some(&AccountHold::Abandoned {
                run_id: 2,
                kind: SyncKind::Orders,
                holder: Some("another-host:1:0".into())
            }),
            "silent for exactly the TTL: abandoned"
        );
        let offers = running(3, SyncKind::Offers, now);
        let holds = account_holds([&silent, &offers], now, ttl, None);
        assert_eq!(
            holds.get("main").map(AccountHold::run_id),
            Some(3),
            "a live lease wins"
        );
        let done = history(RunState::Succeeded, now - MIN, None, 0).latest;
        assert!(account_holds([&done], now, ttl, None).is_empty());
    }

    #[test]
    fn a_queued_manual_run_is_claimed_at_once() {
        let p = policy(CatchUp::Once);
        let mut h = history(RunState::Queued, 0, None, 0);
        h.latest.trigger = RunTrigger::Manual;
        assert!(matches!(
            evaluate(&schedule(), Some(&h), MIN, &p),
            Decision::Due {
                trigger: RunTrigger::Manual,
                slot: None,
                ..
            }
        ));
    }

    #[test]
    fn a_running_schedule_is_not_started_again_and_an_interrupted_one_resumes() {
        let p = policy(CatchUp::Once);
        assert_eq!(
            evaluate(
                &schedule(),
                Some(&history(RunState::Running, 0, None, 0)),
                99 * MIN,
                &p
            ),
            Decision::Running
        );
        assert!(matches!(
            evaluate(
                &schedule(),
                Some(&history(RunState::Interrupted, 0, None, 0)),
                MIN,
                &p
            ),
            Decision::Due { .. }
        ));
    }

    #[test]
    fn transient_failures_retry_with_growing_backoff_until_the_limit() {
        let p = policy(CatchUp::Once);
        let finished = MIN;
        let wait = |h: &KindHistory| match evaluate(&schedule(), Some(h), finished, &p) {
            Decision::Wait { at_ms } => at_ms - finished,
            other => panic!("{other:?}"),
        };
        let h1 = history(RunState::Failed, 0, Some(ErrorClass::Server), 1);
        assert!((5_000..6_250).contains(&wait(&h1)), "{}", wait(&h1));
        let h3 = history(RunState::Failed, 0, Some(ErrorClass::Timeout), 3);
        let third = wait(&h3);
        assert!((20_000..25_000).contains(&third), "{third}");
        assert_eq!(third, wait(&h3), "the same retry time for every instance");
        assert!(matches!(
            evaluate(&schedule(), Some(&h3), finished + third, &p),
            Decision::Due {
                trigger: RunTrigger::Retry,
                ..
            }
        ));
        // Past the limit, the regular interval applies.
        let h4 = history(RunState::Failed, 0, Some(ErrorClass::Server), 4);
        assert_eq!(
            evaluate(&schedule(), Some(&h4), finished, &p),
            Decision::Wait {
                at_ms: 30 * MIN + 17_000
            }
        );
    }

    #[test]
    fn a_run_failed_on_the_database_is_retried_with_backoff_not_at_the_next_slot() {
        // A PostgreSQL restart mid-run fails the run with a storage error; before the chaos
        // harness it waited for the schedule's next slot (30 minutes here).
        let p = policy(CatchUp::Once);
        let h = history(RunState::Failed, 0, Some(ErrorClass::Storage), 1);
        match evaluate(&schedule(), Some(&h), MIN, &p) {
            Decision::Wait { at_ms } => assert!(at_ms - MIN < 6_250, "{at_ms}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            evaluate(&schedule(), Some(&h), MIN + 6_250, &p),
            Decision::Due {
                trigger: RunTrigger::Retry,
                ..
            }
        ));
    }

    #[test]
    fn auth_failures_are_not_retried() {
        let p = policy(CatchUp::Once);
        let h = history(RunState::Failed, 0, Some(ErrorClass::Auth), 1);
        assert_eq!(
            evaluate(&schedule(), Some(&h), 2 * MIN, &p),
            Decision::Wait {
                at_ms: 30 * MIN + 17_000
            }
        );
    }

    #[test]
    fn backoff_is_capped_by_the_interval() {
        assert_eq!(
            retry_backoff(Duration::from_secs(60), 10, Duration::from_secs(600), 7),
            Duration::from_secs(600)
        );
        // Retries of different runs spread out instead of all landing on base × 2^(n-1).
        let spread: std::collections::BTreeSet<Duration> = (1..50)
            .map(|id| retry_backoff(Duration::from_secs(8), 1, Duration::from_secs(600), id))
            .collect();
        assert!(spread.len() > 40, "{spread:?}");
        assert!(spread
            .iter()
            .all(|d| *d >= Duration::from_secs(8) && *d < Duration::from_secs(10)));
    }

    #[test]
    fn after_downtime_one_catch_up_run_or_the_next_regular_slot() {
        let h = history(RunState::Succeeded, 0, None, 0);
        let now = 100 * MIN; // three slots missed
        let once = evaluate(&schedule(), Some(&h), now, &policy(CatchUp::Once));
        assert!(
            matches!(&once, Decision::Due { reason, .. } if reason.contains("3 slot")),
            "{once:?}"
        );
        let skip = evaluate(&schedule(), Some(&h), now, &policy(CatchUp::Skip));
        assert_eq!(
            skip,
            Decision::Wait {
                at_ms: 120 * MIN + 17_000
            }
        );
    }

    #[test]
    fn offsets_are_stable_bounded_and_never_whole_minutes() {
        for (account, interval) in [("main", 30), ("fbe", 60), ("bg", 1), ("hu", 1440)] {
            for kind in SyncKind::ALL {
                let interval = Duration::from_secs(interval * 60);
                let a = stable_offset(account, *kind, interval);
                assert_eq!(a, stable_offset(account, *kind, interval));
                assert!(
                    a >= Duration::from_secs(7)
                        && a + Duration::from_secs(7)
                            <= interval.max(Duration::from_secs(14)) + Duration::from_secs(1),
                    "{a:?} for {interval:?}"
                );
                assert_ne!(a.as_millis() % 60_000, 0);
                let c = cron_offset(account, *kind);
                assert!(
                    c >= Duration::from_secs(7) && c < Duration::from_secs(58),
                    "{c:?}"
                );
                assert_ne!(c.as_millis() % 60_000, 0);
            }
        }
        assert_ne!(
            stable_offset("main", SyncKind::Offers, Duration::from_secs(1800)),
            stable_offset("fbe", SyncKind::Offers, Duration::from_secs(1800))
        );
    }
}
