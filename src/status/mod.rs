//! The one typed model of "how is everything": scheduler instances, accounts (paused, needing
//! attention), every schedule with its last and next run, runs in progress, data freshness
//! against its target, and recent errors.
//!
//! [`Snapshot::read`] builds it from the configuration and the store, with the one lease rule
//! ([`crate::scheduler::lease_of`]) and the scheduler's own verdict ([`evaluate`]). Every front
//! end — `status`, `monitor`, the HTTP API, the page — renders this value and decides nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use domain::{
    AccountKind, ErrorClass, Marketplace, QuarantineKind, RunState, RunTrigger, SyncKind,
};
use serde::{Deserialize, Serialize};
use storage::{InstanceRow, KindHistory, RunRow, StorageError, Store};

mod views;

pub use views::{
    rfc3339, ApiAccount, ApiLogs, ApiScheduler, ApiStatus, Check, HealthAlert, HealthReport,
    HealthStatus,
};

use crate::config::Config;
use crate::scheduler::{
    account_holds, evaluate, lease_of, schedules, AccountHold, Decision, Policy,
};

/// An instance beats every 5 s; three missed beats and it is shown as gone.
pub const INSTANCE_SILENCE: Duration = Duration::from_secs(15);
/// How far back `recent_errors` look.
pub const RECENT_ERRORS_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// At most this many recent errors are listed.
pub const RECENT_ERRORS_MAX: i64 = 20;

/// Everything an operator needs to see, at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Unix ms when it was read.
    pub taken_at: i64,
    pub scheduler: SchedulerStatus,
    pub accounts: Vec<AccountStatus>,
    /// Failed runs of the last 24 hours, newest first.
    pub recent_errors: Vec<RecentError>,
    /// Runs taken over in the last 24 hours from a process that died or went silent.
    pub leases_reclaimed_24h: i64,
    /// Run outcomes of the last hour.
    pub last_hour: storage::RunLogSummary,
    /// The alert incidents not resolved (firing or acknowledged), worst first.
    pub incidents: Vec<storage::IncidentRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerStatus {
    /// At least one scheduler instance is live (on any machine sharing the database).
    pub running: bool,
    /// Instances seen in the last day.
    pub instances: Vec<InstanceStatus>,
}

/// How a scheduler instance is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Beating.
    Live,
    /// Exited cleanly.
    Stopped,
    /// Silent (killed, crashed, or its host is down), or a dead pid on this machine.
    Gone,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Live => "live",
            InstanceState::Stopped => "stopped",
            InstanceState::Gone => "gone",
        }
    }

    /// The state of an instance row at `now_ms`.
    pub fn of(row: &InstanceRow, now_ms: i64) -> InstanceState {
        let this_host = crate::holder_id()
            .split(':')
            .next()
            .is_some_and(|h| h == row.host);
        let local_dead = this_host && !u32::try_from(row.pid).is_ok_and(crate::process_alive);
        if row.stopped_at.is_some() {
            InstanceState::Stopped
        } else if local_dead || now_ms - row.heartbeat_at > ms(INSTANCE_SILENCE) {
            InstanceState::Gone
        } else {
            InstanceState::Live
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    #[serde(flatten)]
    pub row: InstanceRow,
    pub state: InstanceState,
}

/// What an account is doing, the most pressing first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// Its credentials or IP were refused: a person must act (see `attention`).
    NeedsAttention,
    /// Paused by an operator: nothing is scheduled.
    Paused,
    /// A run of it is in progress.
    Running,
    /// Waiting for its next run.
    Idle,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::NeedsAttention => "needs_attention",
            AccountState::Paused => "paused",
            AccountState::Running => "running",
            AccountState::Idle => "idle",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountStatus {
    pub name: String,
    pub account_type: AccountKind,
    pub marketplace: Marketplace,
    pub state: AccountState,
    pub paused: bool,
    pub attention: Option<Attention>,
    /// The request encoding probed and kept for the account (issue 9, point 1); `None` when
    /// not probed yet, or when `EMAG_API_ENCODING` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_encoding: Option<domain::ApiEncoding>,
    /// One entry per kind that runs by time or has run.
    pub kinds: Vec<KindStatus>,
    /// Items eMAG sent that could not be read, kept aside (raw, in the `quarantine` table)
    /// and skipped: one entry per kind of item that has any.
    #[serde(default)]
    pub quarantined: Vec<Quarantined>,
}

/// What is quarantined of one kind of item of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub kind: QuarantineKind,
    /// Distinct items.
    pub items: i64,
    /// Unix ms when eMAG last sent one of them.
    pub last_seen_at: i64,
    /// Why the last one could not be read.
    pub last_reason: String,
}

/// Why an account needs a person, since when, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attention {
    /// What eMAG refused, with the fix (the variable to check or the IP to whitelist).
    pub reason: String,
    /// Unix ms of the first refusal.
    pub since: i64,
}

/// How a kind is scheduled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScheduleSpec {
    Interval {
        minutes: u64,
    },
    Cron {
        expr: String,
        zone: String,
    },
    /// Runs only when asked (`sync --queue`, the dashboard).
    Manual,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindStatus {
    pub kind: SyncKind,
    pub schedule: ScheduleSpec,
    pub last_run: Option<RunSummary>,
    /// Unix ms when the latest succeeded run started: its data is at least this fresh.
    pub last_success_at: Option<i64>,
    /// `None` for kinds that run only when asked.
    pub freshness: Option<Freshness>,
    pub next: Next,
    /// The run in progress, if any.
    pub progress: Option<Progress>,
    /// Failed runs since the latest success (0 when the latest run did not fail).
    #[serde(default)]
    pub failures_in_row: u32,
}

/// The facts of one run that the views show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: i64,
    pub trigger: RunTrigger,
    pub state: RunState,
    /// > 1: resumed or taken over.
    pub attempt: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub items_read: u64,
    pub error_class: Option<ErrorClass>,
    pub error_message: Option<String>,
    pub emag_messages: Vec<String>,
    pub note: Option<String>,
    /// Taken over from this holder after it died or went silent.
    pub reclaimed_from: Option<String>,
}

impl From<&RunRow> for RunSummary {
    fn from(r: &RunRow) -> Self {
        RunSummary {
            id: r.id,
            trigger: r.trigger,
            state: r.state,
            attempt: r.attempt,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.finished_at.zip(r.started_at).map(|(f, s)| f - s),
            items_read: r.counts.items_read,
            error_class: r.error_class,
            error_message: r.error_message.clone(),
            emag_messages: r.emag_messages.clone(),
            note: r.note.clone(),
            reclaimed_from: r.reclaimed_from.clone(),
        }
    }
}

/// When a kind runs next, in the scheduler's own terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Next {
    /// Due now; a scheduler starts it at its next tick.
    Due { reason: String },
    /// Not before this Unix ms.
    At { at: i64 },
    /// Running now.
    Running,
    /// Its account is paused.
    Paused,
    /// Manual only: when asked.
    WhenAsked,
    /// Due, but another run holds the account (one run per account at a time).
    WaitsFor {
        run_id: i64,
        kind: SyncKind,
        holder: Option<String>,
    },
    /// Due, after the account's run left by a stopped process is resumed.
    AfterStoppedRun { run_id: i64, kind: SyncKind },
    /// A cron expression with no future time.
    Never,
}

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub run_id: i64,
    /// Pages checkpointed so far.
    pub page: i64,
    pub items_read: u64,
    /// Items eMAG counted for the scan, when known (offers).
    pub total_items: Option<i64>,
    pub holder: Option<String>,
    /// `false`: its process died or went silent; the next scheduler tick resumes it.
    pub alive: bool,
}

/// How fresh a kind's data is, judged against its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// Milliseconds since the latest succeeded run started; `None`: never synced.
    pub age_ms: Option<i64>,
    /// Older than this is a warning: the target, or one interval plus five minutes for kinds
    /// synced less often.
    pub warn_after_ms: i64,
    /// Older than this is critical: `EMAG_FRESHNESS_CRITICAL`, or twice the warning threshold.
    pub critical_after_ms: i64,
    pub level: Level,
}

/// A health level, in the order of the Nagios plugin convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

impl Freshness {
    /// Judges `age_ms` against thresholds; data never synced is critical.
    pub fn judge(age_ms: Option<i64>, warn_after_ms: i64, critical_after_ms: i64) -> Freshness {
        let level = match age_ms {
            None => Level::Critical,
            Some(age) if age > critical_after_ms => Level::Critical,
            Some(age) if age > warn_after_ms => Level::Warning,
            Some(_) => Level::Ok,
        };
        Freshness {
            age_ms,
            warn_after_ms,
            critical_after_ms,
            level,
        }
    }
}

/// The freshness warning threshold of a kind synced every `interval`: the target, or — for
/// kinds synced less often than that — one interval plus five minutes (a healthy schedule's
/// data is at most one interval plus a run old).
pub fn freshness_warn_after(target: Duration, interval: Duration) -> Duration {
    target.max(interval + Duration::from_secs(300))
}

/// A failed run of the last hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentError {
    pub run_id: i64,
    pub account: String,
    pub kind: SyncKind,
    /// Unix ms when it ended.
    pub at: i64,
    pub class: Option<ErrorClass>,
    pub message: Option<String>,
    pub emag_messages: Vec<String>,
}

/// What [`Snapshot::build`] reads from the store.
#[derive(Debug, Clone, Default)]
pub struct StoreState {
    pub histories: Vec<KindHistory>,
    pub last_successes: Vec<RunRow>,
    pub paused: Vec<String>,
    pub instances: Vec<InstanceRow>,
    pub reclaimed_24h: i64,
    pub attention: Vec<(String, String, i64)>,
    pub failures: Vec<RunRow>,
    /// Run outcomes of the last hour (the `logs` section of `/api/status`).
    pub last_hour: storage::RunLogSummary,
    /// What is quarantined, per account and kind.
    pub quarantine: Vec<storage::QuarantineSummary>,
    /// The request encoding kept per account.
    pub encodings: Vec<(String, domain::ApiEncoding)>,
    /// The database's clock when read, by which leases are judged (heartbeats are written
    /// by it); `None`: the snapshot's time.
    pub db_clock_ms: Option<i64>,
    /// The alert incidents not resolved.
    pub incidents: Vec<storage::IncidentRow>,
}

impl StoreState {
    /// Reads everything the snapshot needs. A failed read is an error, never an empty
    /// section that would look like "nothing to report".
    pub async fn read(store: &Store, now_ms: i64) -> Result<StoreState, StorageError> {
        let day_ago = now_ms - 86_400_000;
        Ok(StoreState {
            histories: store.kind_histories().await?,
            last_successes: store.last_successes().await?,
            paused: store.paused_accounts().await?,
            instances: store.recent_instances(day_ago).await?,
            reclaimed_24h: store.reclaimed_runs(day_ago).await?,
            attention: store.accounts_needing_attention().await?,
            failures: store
                .recent_failures(now_ms - ms(RECENT_ERRORS_WINDOW), RECENT_ERRORS_MAX)
                .await?,
            last_hour: store.run_log_summary(now_ms - 3_600_000).await?,
            quarantine: store.quarantine_summary().await?,
            encodings: store
                .api_encodings()
                .await?
                .into_iter()
                .map(|(account, kept)| (account, kept.encoding))
                .collect(),
            db_clock_ms: Some(store.clock_ms().await?),
            incidents: store.open_incidents().await?,
        })
    }
}

impl Snapshot {
    /// Reads the store and builds the snapshot at the current time.
    pub async fn read(config: &Config, store: &Store) -> Result<Snapshot, StorageError> {
        let now = storage::now_ms();
        let state = StoreState::read(store, now).await?;
        Ok(Snapshot::build(config, &state, now))
    }

    /// The snapshot of `state` at `now_ms`: pure, so every rule here is tested without I/O.
    pub fn build(config: &Config, state: &StoreState, now_ms: i64) -> Snapshot {
        let policy = Policy::from(config);
        let ttl = config.sync.stale_after;
        let histories: HashMap<(&str, SyncKind), &KindHistory> = state
            .histories
            .iter()
            .map(|h| ((h.account.as_str(), h.kind), h))
            .collect();
        let successes: HashMap<(&str, SyncKind), &RunRow> = state
            .last_successes
            .iter()
            .map(|r| ((r.account.as_str(), r.kind), r))
            .collect();
        let paused: HashSet<&str> = state.paused.iter().map(String::as_str).collect();
        let attention: HashMap<&str, Attention> = state
            .attention
            .iter()
            .map(|(account, reason, since)| {
                (
                    account.as_str(),
                    Attention {
                        reason: reason.clone(),
                        since: *since,
                    },
                )
            })
            .collect();
        let lease_now = state.db_clock_ms.unwrap_or(now_ms);
        let holds = account_holds(
            state.histories.iter().map(|h| &h.latest),
            lease_now,
            ttl,
            None,
        );
        let plan = schedules(config);

        let mut accounts = Vec::new();
        for a in &config.accounts {
            let name = a.name.as_str();
            let is_paused = paused.contains(name);
            let mut kinds = Vec::new();
            for s in plan.iter().filter(|s| s.account == name) {
                let h = histories.get(&(name, s.kind)).copied();
                // Kinds an account does not sync by time are shown once they have run.
                if s.manual_only && h.is_none() {
                    continue;
                }
                let hold = holds.get(name).filter(|hold| hold.kind() != s.kind);
                let next = match evaluate(s, h, now_ms, &policy) {
                    _ if is_paused => Next::Paused,
                    Decision::Due { .. } if hold.is_some() => match hold {
                        Some(AccountHold::Held {
                            run_id,
                            kind,
                            holder,
                            ..
                        }) => Next::WaitsFor {
                            run_id: *run_id,
                            kind: *kind,
                            holder: holder.clone(),
                        },
                        Some(AccountHold::Abandoned { run_id, kind, .. }) => {
                            Next::AfterStoppedRun {
                                run_id: *run_id,
                                kind: *kind,
                            }
                        }
                        None => Next::Never,
                    },
                    Decision::Wait { .. } if s.manual_only => Next::WhenAsked,
                    Decision::Wait { at_ms: i64::MAX } => Next::Never,
                    Decision::Due { reason, .. } => Next::Due { reason },
                    Decision::Wait { at_ms } => Next::At { at: at_ms },
                    Decision::Running => Next::Running,
                };
                let last = h.map(|h| &h.latest);
                let progress = last
                    .filter(|r| r.state == RunState::Running)
                    .map(|r| Progress {
                        run_id: r.id,
                        page: r.checkpoint_page,
                        items_read: r.counts.items_read,
                        total_items: r.total_items,
                        holder: r.holder.clone(),
                        alive: !lease_of(r, lease_now, ttl).is_abandoned(),
                    });
                let last_success_at = successes
                    .get(&(name, s.kind))
                    .and_then(|r| r.started_at.or(Some(r.created_at)));
                let freshness = (!s.manual_only).then(|| {
                    let warn = ms(freshness_warn_after(
                        config.freshness_target,
                        s.interval_hint(now_ms),
                    ));
                    let critical = config
                        .freshness_critical
                        .map_or(warn.saturating_mul(2), |c| ms(c).max(warn));
                    Freshness::judge(
                        last_success_at.map(|at| (now_ms - at).max(0)),
                        warn,
                        critical,
                    )
                });
                kinds.push(KindStatus {
                    kind: s.kind,
                    schedule: match (&s.cron, s.manual_only) {
                        (_, true) => ScheduleSpec::Manual,
                        (Some(c), false) => ScheduleSpec::Cron {
                            expr: c.expr.clone(),
                            zone: c.zone.to_string(),
                        },
                        (None, false) => ScheduleSpec::Interval {
                            minutes: s.interval.as_secs() / 60,
                        },
                    },
                    last_run: last.map(RunSummary::from),
                    failures_in_row: h.map_or(0, |h| h.failures_in_row),
                    last_success_at,
                    freshness,
                    next,
                    progress,
                });
            }
            let quarantined = state
                .quarantine
                .iter()
                .filter(|q| q.account == name)
                .map(|q| Quarantined {
                    kind: q.kind,
                    items: q.items,
                    last_seen_at: q.last_seen_at,
                    last_reason: q.last_reason.clone(),
                })
                .collect();
            let api_encoding = state
                .encodings
                .iter()
                .find(|(account, _)| account == name)
                .map(|(_, e)| *e);
            let attention = attention.get(name).cloned();
            let state = if attention.is_some() {
                AccountState::NeedsAttention
            } else if is_paused {
                AccountState::Paused
            } else if kinds.iter().any(|k| k.progress.is_some()) {
                AccountState::Running
            } else {
                AccountState::Idle
            };
            accounts.push(AccountStatus {
                name: name.to_owned(),
                account_type: a.kind,
                marketplace: a.marketplace,
                state,
                paused: is_paused,
                attention,
                api_encoding,
                kinds,
                quarantined,
            });
        }

        let instances: Vec<InstanceStatus> = state
            .instances
            .iter()
            .map(|row| InstanceStatus {
                state: InstanceState::of(row, now_ms),
                row: row.clone(),
            })
            .collect();
        Snapshot {
            taken_at: now_ms,
            scheduler: SchedulerStatus {
                running: instances.iter().any(|i| i.state == InstanceState::Live),
                instances,
            },
            accounts,
            recent_errors: state
                .failures
                .iter()
                .map(|r| RecentError {
                    run_id: r.id,
                    account: r.account.clone(),
                    kind: r.kind,
                    at: r.finished_at.unwrap_or(r.created_at),
                    class: r.error_class,
                    message: r.error_message.clone(),
                    emag_messages: r.emag_messages.clone(),
                })
                .collect(),
            leases_reclaimed_24h: state.reclaimed_24h,
            last_hour: state.last_hour,
            incidents: state.incidents.clone(),
        }
    }

    pub fn account(&self, name: &str) -> Option<&AccountStatus> {
        self.accounts.iter().find(|a| a.name == name)
    }
}

/// A condition an operator should act on, derived from a snapshot: the seed's `alerts` entries
/// of `/api/status` (`type`, `message`, `action`). Stored incidents with acknowledgement and
/// delivery build on these (the alerts module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionKind,
    pub severity: Level,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// The sync kind concerned, if any.
    pub sync_kind: Option<SyncKind>,
    pub message: String,
    /// What to do about it.
    pub action: String,
}

/// The kinds of condition, each decided once in [`Snapshot::conditions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// No scheduler instance is live.
    SchedulerDown,
    /// eMAG refused an account's credentials or IP.
    NeedsAttention,
    /// A kind's data is older than its threshold.
    StaleData,
    /// A run's holder died or went silent and nobody has resumed it yet.
    StoppedRun,
}

impl ConditionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::SchedulerDown => "scheduler_down",
            ConditionKind::NeedsAttention => "needs_attention",
            ConditionKind::StaleData => "stale_data",
            ConditionKind::StoppedRun => "stopped_run",
        }
    }
}

impl Snapshot {
    /// What needs an operator now, most severe first. Paused accounts raise nothing: pausing
    /// is an operator's own decision.
    pub fn conditions(&self) -> Vec<Condition> {
        let mut out = Vec::new();
        if !self.scheduler.running {
            out.push(Condition {
                kind: ConditionKind::SchedulerDown,
                severity: Level::Critical,
                account: None,
                sync_kind: None,
                message: "no scheduler instance is running: nothing is synced by time".into(),
                action: "start it: `emag-sync start --detach` (or `systemctl start emag-sync`)"
                    .into(),
            });
        }
        for a in &self.accounts {
            if let Some(att) = &a.attention {
                out.push(Condition {
                    kind: ConditionKind::NeedsAttention,
                    severity: Level::Critical,
                    account: Some(a.name.clone()),
                    sync_kind: None,
                    message: format!("account {}: eMAG refuses its access", a.name),
                    action: att.reason.clone(),
                });
            }
            for k in &a.kinds {
                // A paused account is not resumed by a scheduler: only its freshness counts
                // (data is judged stale however it came to be, a pause held too long too).
                if let Some(p) = k.progress.as_ref().filter(|p| !p.alive && !a.paused) {
                    out.push(Condition {
                        kind: ConditionKind::StoppedRun,
                        severity: Level::Warning,
                        account: Some(a.name.clone()),
                        sync_kind: Some(k.kind),
                        message: format!(
                            "{} {} run {} was left by a process that stopped ({})",
                            a.name,
                            k.kind,
                            p.run_id,
                            p.holder.as_deref().unwrap_or("unknown holder")
                        ),
                        action: "a running scheduler resumes it at its next tick; start one if none runs"
                            .into(),
                    });
                }
                let Some(f) = k.freshness.filter(|f| f.level > Level::Ok) else {
                    continue;
                };
                let age = match f.age_ms {
                    Some(age) => format!("{} min old", age / 60_000),
                    None => "never synced".into(),
                };
                out.push(Condition {
                    kind: ConditionKind::StaleData,
                    // Paused on purpose: a warning however old, never a failed health check.
                    severity: if a.paused {
                        f.level.min(Level::Warning)
                    } else {
                        f.level
                    },
                    account: Some(a.name.clone()),
                    sync_kind: Some(k.kind),
                    message: format!(
                        "{} {} data is {age} (stale after {} min)",
                        a.name,
                        k.kind,
                        f.warn_after_ms / 60_000
                    ),
                    action: match &k.last_run {
                        _ if a.paused => format!(
                            "the account is paused: nothing syncs it; resume it with \
                             `emag-sync resume {}` (or from the dashboard)",
                            a.name
                        ),
                        Some(r) if r.state == RunState::Failed => format!(
                            "the last run failed: {}; see `emag-sync runs --account {}`",
                            r.error_message.as_deref().unwrap_or("unknown error"),
                            a.name
                        ),
                        _ => format!(
                            "check that a scheduler runs; sync now with `emag-sync sync {} --kind {}`",
                            a.name, k.kind
                        ),
                    },
                });
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.severity));
        out
    }

    /// The overall level: the most severe condition's.
    pub fn level(&self) -> Level {
        self.conditions()
            .iter()
            .map(|c| c.severity)
            .max()
            .unwrap_or(Level::Ok)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::RunCounts;

    const MIN: i64 = 60_000;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars: HashMap<String, String> = [
            ("EMAG_API_USERNAME", "m"),
            ("EMAG_API_PASSWORD", "p"),
            ("EMAG_FBE_API_USERNAME", "f"),
            ("EMAG_FBE_API_PASSWORD", "p"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Config::from_vars(&vars).expect("config")
    }

    fn run(id: i64, account: &str, kind: SyncKind, state: RunState, started: i64) -> RunRow {
        RunRow {
            id,
            account: account.into(),
            kind,
            trigger: RunTrigger::Schedule,
            state,
            attempt: 1,
            created_at: started,
            started_at: Some(started),
            finished_at: (state != RunState::Running).then_some(started + 1_000),
            checkpoint_page: 3,
            total_items: Some(500),
            counts: RunCounts {
                items_read: 300,
                ..RunCounts::default()
            },
            error_class: (state == RunState::Failed).then_some(ErrorClass::Server),
            error_message: (state == RunState::Failed).then(|| "502".to_owned()),
            emag_messages: Vec::new(),
            note: None,
            holder: (state == RunState::Running).then(|| "another-host:1:0".to_owned()),
            heartbeat_at: (state == RunState::Running).then_some(started),
            slot: None,
            reclaimed_from: None,
            reclaimed_at: None,
        }
    }

    fn history(r: RunRow) -> KindHistory {
        KindHistory {
            account: r.account.clone(),
            kind: r.kind,
            latest: r,
            failures_in_row: 0,
        }
    }

    #[test]
    fn freshness_is_judged_against_the_target_or_the_kinds_own_interval() {
        let target = Duration::from_secs(30 * 60);
        assert_eq!(
            freshness_warn_after(target, Duration::from_secs(15 * 60)),
            target
        );
        assert_eq!(
            freshness_warn_after(target, Duration::from_secs(3600)),
            Duration::from_secs(65 * 60),
            "an hourly kind is not stale after 30 minutes"
        );
        assert_eq!(Freshness::judge(Some(10), 20, 40).level, Level::Ok);
        assert_eq!(Freshness::judge(Some(20), 20, 40).level, Level::Ok);
        assert_eq!(Freshness::judge(Some(21), 20, 40).level, Level::Warning);
        assert_eq!(Freshness::judge(Some(41), 20, 40).level, Level::Critical);
        assert_eq!(Freshness::judge(None, 20, 40).level, Level::Critical);
    }

    #[test]
    fn a_snapshot_shows_progress_waits_freshness_attention_and_errors() {
        let config = config(&[("EMAG_LEASE_TTL", "60")]);
        let now = 1_000 * MIN;
        let state = StoreState {
            histories: vec![
                history(run(
                    5,
                    "main",
                    SyncKind::Orders,
                    RunState::Running,
                    now - 10_000,
                )),
                history(run(
                    4,
                    "main",
                    SyncKind::Offers,
                    RunState::Succeeded,
                    now - 90 * MIN,
                )),
                history(run(
                    3,
                    "fbe",
                    SyncKind::Offers,
                    RunState::Failed,
                    now - 5 * MIN,
                )),
            ],
            last_successes: vec![run(
                4,
                "main",
                SyncKind::Offers,
                RunState::Succeeded,
                now - 90 * MIN,
            )],
            paused: vec![],
            instances: vec![],
            reclaimed_24h: 2,
            attention: vec![("fbe".into(), "credentials refused".into(), now - MIN)],
            failures: vec![run(
                3,
                "fbe",
                SyncKind::Offers,
                RunState::Failed,
                now - 5 * MIN,
            )],
            last_hour: storage::RunLogSummary {
                errors: 1,
                warnings: 0,
                last_finished_at: Some(now - 4 * MIN),
            },
            quarantine: vec![storage::QuarantineSummary {
                account: "fbe".into(),
                kind: QuarantineKind::Order,
                items: 2,
                last_seen_at: now - MIN,
                last_reason: "order line id 7 appears twice in the order".into(),
            }],
            encodings: vec![("main".into(), domain::ApiEncoding::Form)],
            db_clock_ms: None,
            incidents: vec![],
        };
        let snap = Snapshot::build(&config, &state, now);
        assert_eq!(
            snap.account("fbe").expect("fbe").quarantined,
            vec![Quarantined {
                kind: QuarantineKind::Order,
                items: 2,
                last_seen_at: now - MIN,
                last_reason: "order line id 7 appears twice in the order".into(),
            }]
        );
        assert!(snap.account("main").expect("main").quarantined.is_empty());

        let main = snap.account("main").expect("main");
        assert_eq!(main.state, AccountState::Running);
        assert_eq!(main.api_encoding, Some(domain::ApiEncoding::Form));
        let kind = |a: &AccountStatus, k: SyncKind| a.kinds.iter().find(|x| x.kind == k).cloned();
        let orders = kind(main, SyncKind::Orders).expect("orders");
        assert_eq!(orders.next, Next::Running);
        let p = orders.progress.expect("progress");
        assert!(p.alive);
        assert_eq!((p.page, p.total_items), (3, Some(500)));
        let offers = kind(main, SyncKind::Offers).expect("offers");
        assert_eq!(
            offers.next,
            Next::WaitsFor {
                run_id: 5,
                kind: SyncKind::Orders,
                holder: Some("another-host:1:0".into())
            },
            "due, but the account's orders run holds it"
        );
        let f = offers.freshness.expect("freshness");
        assert_eq!(f.age_ms, Some(90 * MIN));
        assert_eq!(f.level, Level::Critical, "90 min against 35 min / 70 min");
        assert_eq!(
            kind(main, SyncKind::Returns)
                .and_then(|k| k.freshness)
                .map(|f| f.level),
            Some(Level::Critical),
            "never synced"
        );

        let fbe = snap.account("fbe").expect("fbe");
        assert_eq!(fbe.state, AccountState::NeedsAttention);
        assert_eq!(snap.recent_errors.len(), 1);
        assert_eq!(snap.recent_errors[0].message.as_deref(), Some("502"));
        assert_eq!(snap.leases_reclaimed_24h, 2);
        assert!(!snap.scheduler.running);

        // The views: the seed's shape, the conditions, the health report.
        let conditions = snap.conditions();
        assert_eq!(conditions[0].severity, Level::Critical);
        let kinds: Vec<ConditionKind> = conditions.iter().map(|c| c.kind).collect();
        assert!(kinds.contains(&ConditionKind::SchedulerDown), "{kinds:?}");
        assert!(kinds.contains(&ConditionKind::NeedsAttention), "{kinds:?}");
        assert!(kinds.contains(&ConditionKind::StaleData), "{kinds:?}");
        let api = serde_json::to_value(ApiStatus::from(&snap)).expect("json");
        assert_eq!(api["scheduler"]["scheduler_running"], false);
        assert_eq!(api["scheduler"]["accounts"]["main"]["account_type"], "main");
        assert_eq!(api["scheduler"]["accounts"]["main"]["status"], "running");
        assert_eq!(
            api["scheduler"]["accounts"]["fbe"]["status"],
            "needs_attention"
        );
        assert_eq!(api["logs"]["errors_last_hour"], 1);
        assert_eq!(api["alerts"][0]["type"], "scheduler_down");
        assert!(api["alerts"][0]["action"]
            .as_str()
            .is_some_and(|a| a.contains("start")));
        let health = HealthReport::of(Ok(&snap), Duration::from_millis(3), now);
        assert_eq!(health.status, HealthStatus::Fail);
        let offers = &health.checks["main:offers:freshness"][0];
        assert_eq!(offers.observed_value, Some((90 * 60).into()));
        assert_eq!(offers.status, HealthStatus::Fail);
        assert_eq!(offers.warn_after_s, Some(35 * 60));
        let down = HealthReport::of(
            Err(&StorageError::UnsupportedUrl("x".into())),
            Duration::ZERO,
            now,
        );
        assert_eq!(down.status, HealthStatus::Fail);
        assert_eq!(
            down.checks["database:responseTime"][0].status,
            HealthStatus::Fail
        );

        // A minute later the orders holder is silent past the 60 s lease: abandoned.
        let later = Snapshot::build(&config, &state, now + 51_000);
        let main = later.account("main").expect("main");
        let orders = kind(main, SyncKind::Orders).expect("orders");
        assert!(!orders.progress.expect("progress").alive);
        assert_eq!(
            kind(main, SyncKind::Offers).map(|k| k.next),
            Some(Next::AfterStoppedRun {
                run_id: 5,
                kind: SyncKind::Orders
            })
        );
    }

    #[test]
    fn a_healthy_fleet_passes_and_a_paused_account_only_warns_of_its_stale_data() {
        let config = config(&[("EMAG_FBE_SYNC_TYPES", "offers")]);
        let now = 1_000 * MIN;
        let mut histories = Vec::new();
        let mut last_successes = Vec::new();
        for (id, (account, kind)) in [
            ("main", SyncKind::Offers),
            ("main", SyncKind::Orders),
            ("main", SyncKind::Reference),
            ("main", SyncKind::Returns),
            ("fbe", SyncKind::Offers),
        ]
        .into_iter()
        .enumerate()
        {
            let r = run(
                id as i64 + 1,
                account,
                kind,
                RunState::Succeeded,
                now - 5 * MIN,
            );
            histories.push(history(r.clone()));
            last_successes.push(r);
        }
        let live = InstanceRow {
            id: "another-host:1:0".into(),
            host: "another-host".into(),
            pid: 1,
            version: "0.1.0".into(),
            started_at: now - 60 * MIN,
            heartbeat_at: now - 2_000,
            schedules: 5,
            running: 0,
            stopped_at: None,
        };
        let mut state = StoreState {
            histories,
            last_successes,
            instances: vec![live],
            ..StoreState::default()
        };
        let snap = Snapshot::build(&config, &state, now);
        assert!(snap.scheduler.running);
        assert_eq!(snap.conditions(), Vec::new());
        assert_eq!(snap.level(), Level::Ok);
        assert_eq!(
            HealthReport::of(Ok(&snap), Duration::from_millis(1), now).status,
            HealthStatus::Pass
        );
        // Ten hours later everything is stale — a paused account's data too, but as a
        // warning that says it is paused (a pause held too long), never critical.
        state.paused = vec!["fbe".into()];
        state.instances[0].heartbeat_at = now + 600 * MIN;
        let later = Snapshot::build(&config, &state, now + 600 * MIN);
        let fbe: Vec<Condition> = later
            .conditions()
            .into_iter()
            .filter(|c| c.account.as_deref() == Some("fbe"))
            .collect();
        assert!(!fbe.is_empty());
        assert!(fbe.iter().all(|c| c.kind == ConditionKind::StaleData
            && c.severity == Level::Warning
            && c.action.contains("emag-sync resume fbe")));
        assert_eq!(later.level(), Level::Critical);
        let health = HealthReport::of(Ok(&later), Duration::from_millis(1), now + 600 * MIN);
        assert_eq!(
            health.checks["fbe:offers:freshness"][0].status,
            HealthStatus::Pass
        );
        assert_eq!(
            health.checks["main:offers:freshness"][0].status,
            HealthStatus::Fail
        );
    }

    #[test]
    fn paused_accounts_say_so_before_anything_else_but_attention() {
        let config = config(&[]);
        let state = StoreState {
            paused: vec!["main".into()],
            ..StoreState::default()
        };
        let snap = Snapshot::build(&config, &state, 1_000 * MIN);
        let main = snap.account("main").expect("main");
        assert_eq!(main.state, AccountState::Paused);
        assert!(main.kinds.iter().all(|k| k.next == Next::Paused));
    }
}
