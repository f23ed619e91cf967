//! The chaos harness (issue 11, point 2): one real `emag-sync start` per backend syncs
//! through a TCP fault proxy to the simulator — and, on PostgreSQL, through another to a
//! private PostgreSQL cluster that is really restarted — while faults are thrown at it, one
//! per *round*; then the store is compared with the simulator's truth.
//!
//! A round:
//!
//! 1. **Arrange**: the simulator's data changes (prices, stock, deleted and new offers, an
//!    offer deleted behind a scan, new orders and status changes, a return moving on), and a
//!    manual run of every account and data kind is queued, as the dashboard's "sync now"
//!    does.
//! 2. **Fault**: at a chosen moment of one account's runs (page *k* of its offer scan, the
//!    *j*-th answer of its order windows, its first return window — read from the
//!    simulator's journal, nothing slept for), one fault: below HTTP through the proxy (a
//!    reset or a half-close mid-body, a blackhole, a stall past the client's timeout, a slow
//!    body, refused connections, every connection cut), in HTTP through the simulator's fault
//!    plan (a burst of 502s, truncated bodies, a storm of 429s), at PostgreSQL (restarted
//!    with `-m fast` or `-m immediate`, down for seconds, its connections cut and refused,
//!    its answers stalled or reset), or at SQLite (its write lock held by another connection
//!    past the engine's busy timeout). The fault ends by itself (a number of answers, a
//!    time).
//! 3. **Recovery**: nobody touches anything; the scheduler must bring every schedule back to
//!    a succeeded run by itself — retries of the runs that failed, or the next scheduled
//!    slot. Every run of the round must have ended succeeded, or failed with a classified
//!    error (`domain::ErrorClass`); nothing may be stuck queued or running. The store is
//!    compared with the simulator: nothing *lost*, *duplicated* or *falsely removed*.
//! 4. **Settle**: every account and kind queued once more, without faults; the store must now
//!    equal the simulator (no *phantom* or *stale* row either), and the same `start` process
//!    must still be running, having done all of it.
//!
//! At the end the scheduler is stopped with SIGTERM (it must exit 0) and everything compared
//! once more. The choices (fault and its parameters per round, the moment, the changes) come
//! from one seed.

pub mod cluster;
pub mod proxy;
pub mod soak;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use domain::{ErrorClass, RunState, RunTrigger, SyncKind};
use emag_sim::{AccountKind, AccountSpec, FaultPlan, Mutation, RunningSim, SimConfig, Simulator};
use rust_decimal::Decimal;
use serde::Serialize;
use storage::{RunRow, Store};
use tokio::process::Command;
use tokio::time::Instant;

use self::cluster::{PgCluster, StopMode};
use self::proxy::{Fault, FaultProxy, Span};
use crate::journal::{AnswerWatch, ScanMark, ScanStep, ScanWatch, ORDER_RESOURCE, RETURN_RESOURCE};
use crate::kill::BackendKind;
use crate::proc::{tail, Proc};
use crate::rng::Rng;
use crate::runs::all_runs;
use crate::truth::{self, Tally};

/// The simulated accounts: a seller-fulfilled and a fulfilled-by-eMAG one.
const ACCOUNTS: [&str; 2] = ["main", "fbe"];
/// The kinds a round syncs and compares (reference data has no truth to compare with).
const DATA_KINDS: [SyncKind; 3] = [SyncKind::Offers, SyncKind::Orders, SyncKind::Returns];
/// Offers per page of a scan.
const PAGE: usize = 100;
/// What `start` prints once its first tick is done (`src/bin/emag-sync/commands/daemon.rs`).
const READY_LINE: &str = "scheduler ready";
/// How long a stopped `start` may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Every schedule's interval (minutes): the shortest there is, so that a schedule whose
/// retries were used up during a fault runs again at its next slot within about a minute.
const INTERVAL_MINUTES: u32 = 1;
/// The children's `EMAG_LEASE_TTL` (seconds).
const LEASE_TTL_SECS: u64 = 30;
/// The children's `EMAG_RETRY_DELAY` (ms) and `EMAG_MAX_RETRIES`: a call is tried four times
/// over about 1.4 s, a failed run retried three times by the scheduler over about as long.
const RETRY_DELAY_MS: u64 = 200;
const MAX_RETRIES: u32 = 3;
/// How often the run history is read while waiting for it to settle, besides at every line
/// the scheduler prints.
const SETTLED_FALLBACK: Duration = Duration::from_secs(5);
/// The longest an armed fault may wait for the answers it is to spoil.
const FAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// Where a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    /// The TCP proxy between the engine and the simulator (below HTTP).
    ApiTcp,
    /// The simulator's fault plan (HTTP answers).
    ApiHttp,
    /// PostgreSQL: the private cluster, or the TCP proxy in front of it.
    Postgres,
    /// SQLite: the database file, locked by another connection.
    Sqlite,
}

impl Place {
    pub fn as_str(self) -> &'static str {
        match self {
            Place::ApiTcp => "engine ↔ simulator, TCP proxy",
            Place::ApiHttp => "simulator's fault plan",
            Place::Postgres => "engine ↔ PostgreSQL",
            Place::Sqlite => "engine ↔ SQLite file",
        }
    }
}

/// The faults a round may throw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The connection reset after some bytes of the next answers.
    ResetMidBody,
    /// A clean end of stream after some bytes of the next answers.
    HalfCloseMidBody,
    /// Nothing more after some bytes of the next answers, the connection left open.
    BlackholeMidBody,
    /// The next answers held back 2 s longer than the client's timeout.
    Stall,
    /// The next answers trickled (slower or faster than the timeout allows).
    SlowBody,
    /// New connections refused for a while.
    Refuse,
    /// Every open connection reset at once.
    CutAll,
    /// A burst of 502s.
    ServerErrors,
    /// Bodies cut in half (after the request was processed).
    Malformed,
    /// A storm of 429s.
    RateLimitStorm,
    /// `pg_ctl restart -m fast`.
    PgRestartFast,
    /// `pg_ctl restart -m immediate` (a crash, then recovery).
    PgRestartImmediate,
    /// PostgreSQL stopped for seconds (some longer than the pool's 10 s wait), then started.
    PgDown,
    /// Every PostgreSQL connection reset, new ones refused for seconds.
    PgCut,
    /// PostgreSQL's next answers held back for seconds.
    PgStall,
    /// PostgreSQL connections reset in the middle of their next answers.
    PgResetMidAnswer,
    /// SQLite's write lock held by another connection for seconds (some longer than the
    /// engine's 10 s busy timeout).
    SqliteLocked,
}

impl FaultKind {
    pub const API: [FaultKind; 10] = [
        FaultKind::ResetMidBody,
        FaultKind::HalfCloseMidBody,
        FaultKind::BlackholeMidBody,
        FaultKind::Stall,
        FaultKind::SlowBody,
        FaultKind::Refuse,
        FaultKind::CutAll,
        FaultKind::ServerErrors,
        FaultKind::Malformed,
        FaultKind::RateLimitStorm,
    ];
    pub const POSTGRES: [FaultKind; 6] = [
        FaultKind::PgRestartFast,
        FaultKind::PgRestartImmediate,
        FaultKind::PgDown,
        FaultKind::PgCut,
        FaultKind::PgStall,
        FaultKind::PgResetMidAnswer,
    ];

    pub const SQLITE: [FaultKind; 1] = [FaultKind::SqliteLocked];

    /// The faults of a backend: every API fault, and the database's own.
    pub fn for_backend(kind: BackendKind) -> Vec<FaultKind> {
        let mut all = FaultKind::API.to_vec();
        match kind {
            BackendKind::Postgres => all.extend(FaultKind::POSTGRES),
            BackendKind::Sqlite => all.extend(FaultKind::SQLITE),
        }
        all
    }

    /// The name on the command line (`--faults`) and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ResetMidBody => "reset-mid-body",
            FaultKind::HalfCloseMidBody => "half-close-mid-body",
            FaultKind::BlackholeMidBody => "blackhole-mid-body",
            FaultKind::Stall => "stall",
            FaultKind::SlowBody => "slow-body",
            FaultKind::Refuse => "refuse",
            FaultKind::CutAll => "cut-all",
            FaultKind::ServerErrors => "server-errors",
            FaultKind::Malformed => "malformed",
            FaultKind::RateLimitStorm => "rate-limit-storm",
            FaultKind::PgRestartFast => "pg-restart-fast",
            FaultKind::PgRestartImmediate => "pg-restart-immediate",
            FaultKind::PgDown => "pg-down",
            FaultKind::PgCut => "pg-cut",
            FaultKind::PgStall => "pg-stall",
            FaultKind::PgResetMidAnswer => "pg-reset-mid-answer",
            FaultKind::SqliteLocked => "sqlite-locked",
        }
    }

    /// The fault named `name` (see [`FaultKind::name`]).
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::API
            .into_iter()
            .chain(FaultKind::POSTGRES)
            .chain(FaultKind::SQLITE)
            .find(|f| f.name() == name.trim())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::ResetMidBody => "reset mid-body",
            FaultKind::HalfCloseMidBody => "half-close mid-body",
            FaultKind::BlackholeMidBody => "blackhole mid-body",
            FaultKind::Stall => "stall past the timeout",
            FaultKind::SlowBody => "slow body",
            FaultKind::Refuse => "connections refused",
            FaultKind::CutAll => "every connection cut",
            FaultKind::ServerErrors => "502 burst",
            FaultKind::Malformed => "malformed bodies",
            FaultKind::RateLimitStorm => "429 storm",
            FaultKind::PgRestartFast => "PostgreSQL restart (fast)",
            FaultKind::PgRestartImmediate => "PostgreSQL restart (immediate)",
            FaultKind::PgDown => "PostgreSQL down for seconds",
            FaultKind::PgCut => "PostgreSQL connections cut, refused",
            FaultKind::PgStall => "PostgreSQL answers stalled",
            FaultKind::PgResetMidAnswer => "PostgreSQL reset mid-answer",
            FaultKind::SqliteLocked => "SQLite write lock held elsewhere",
        }
    }

    pub fn place(self) -> Place {
        match self {
            FaultKind::ResetMidBody
            | FaultKind::HalfCloseMidBody
            | FaultKind::BlackholeMidBody
            | FaultKind::Stall
            | FaultKind::SlowBody
            | FaultKind::Refuse
            | FaultKind::CutAll => Place::ApiTcp,
            FaultKind::ServerErrors | FaultKind::Malformed | FaultKind::RateLimitStorm => {
                Place::ApiHttp
            }
            FaultKind::SqliteLocked => Place::Sqlite,
            _ => Place::Postgres,
        }
    }
}

/// The fault of each round of each backend: the backend's faults (those of `only`, when
/// given) in an order shuffled from the seed, dealt in turn, so a few rounds throw as many
/// different faults as they can and every fault comes as often as the others.
pub fn plan(
    seed: u64,
    backends: &[BackendKind],
    rounds: usize,
    only: &[FaultKind],
) -> Vec<Vec<FaultKind>> {
    backends
        .iter()
        .enumerate()
        .map(|(b, kind)| {
            let mut order = FaultKind::for_backend(*kind);
            if !only.is_empty() {
                order.retain(|f| only.contains(f));
            }
            if order.is_empty() {
                return Vec::new();
            }
            Rng::fork(seed, u64::MAX - b as u64).shuffle(&mut order);
            (0..rounds).map(|i| order[i % order.len()]).collect()
        })
        .collect()
}

/// What the harness is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `emag-sync` binary to run.
    pub exe: PathBuf,
    pub backends: Vec<BackendKind>,
    /// Faults (rounds) per backend.
    pub rounds: usize,
    /// Only these faults (empty: every fault of the backend).
    pub only: Vec<FaultKind>,
    pub seed: u64,
    /// Added by the simulator to every answer.
    pub latency: Duration,
    /// Offers and orders per simulated account at the start.
    pub offers: u32,
    pub orders: u32,
    /// The children's `EMAG_API_TIMEOUT`: stalls last 2 s longer.
    pub api_timeout: Duration,
    /// Logs, the SQLite file, pid files and the children's working directories go here.
    pub dir: PathBuf,
    /// The longest a step may take (a moment to come, a settling pass).
    pub step_timeout: Duration,
    /// The longest the scheduler may take to recover after a fault ended: its retries, or
    /// its next slot (one interval) — and a run left behind by a recording that failed,
    /// taken over after the lease TTL.
    pub recovery_timeout: Duration,
    /// Print a line per round on stderr.
    pub verbose: bool,
}

impl Options {
    pub fn new(exe: PathBuf, backends: Vec<BackendKind>, dir: PathBuf) -> Options {
        Options {
            exe,
            backends,
            rounds: 50,
            only: Vec::new(),
            seed: 1,
            latency: Duration::from_millis(20),
            offers: 450,
            orders: 200,
            api_timeout: Duration::from_secs(1),
            dir,
            step_timeout: Duration::from_secs(120),
            recovery_timeout: Duration::from_secs(
                u64::from(INTERVAL_MINUTES) * 60 + LEASE_TTL_SECS + 60,
            ),
            verbose: false,
        }
    }
}

/// How the runs of a round ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunTally {
    pub runs: usize,
    pub succeeded: usize,
    /// Failed runs by error class.
    pub failed: BTreeMap<ErrorClass, usize>,
    /// Failed without a classified error: never acceptable.
    pub unclassified: usize,
    /// Still queued, running or interrupted at the end of the round: never acceptable.
    pub unfinished: usize,
    /// Runs the scheduler started as retries of failed ones.
    pub retries: usize,
    /// Runs the scheduler started at a scheduled slot.
    pub scheduled: usize,
    /// Calls the engine retried inside runs, and 429 waits.
    pub call_retries: u64,
    pub rate_limit_waits: u64,
}

impl RunTally {
    fn of(runs: &[RunRow]) -> RunTally {
        let mut t = RunTally {
            runs: runs.len(),
            ..RunTally::default()
        };
        for r in runs {
            match (r.state, r.error_class) {
                (RunState::Succeeded, _) => t.succeeded += 1,
                (RunState::Failed, Some(class)) => *t.failed.entry(class).or_default() += 1,
                (RunState::Failed, None) => t.unclassified += 1,
                (RunState::Queued | RunState::Running | RunState::Interrupted, _) => {
                    t.unfinished += 1;
                }
                (RunState::Cancelled, _) => {}
            }
            match r.trigger {
                RunTrigger::Retry => t.retries += 1,
                RunTrigger::Schedule => t.scheduled += 1,
                _ => {}
            }
            t.call_retries += r.counts.retries;
            t.rate_limit_waits += r.counts.rate_limit_waits;
        }
        t
    }

    fn add(&mut self, o: &RunTally) {
        self.runs += o.runs;
        self.succeeded += o.succeeded;
        for (class, n) in &o.failed {
            *self.failed.entry(*class).or_default() += n;
        }
        self.unclassified += o.unclassified;
        self.unfinished += o.unfinished;
        self.retries += o.retries;
        self.scheduled += o.scheduled;
        self.call_retries += o.call_retries;
        self.rate_limit_waits += o.rate_limit_waits;
    }

    fn failed_text(&self) -> String {
        if self.failed.is_empty() {
            return "0".to_owned();
        }
        self.failed
            .iter()
            .map(|(c, n)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// When the steps of a round happened, in seconds from its start.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timeline {
    pub moment: f64,
    pub fault_ended: f64,
    pub recovered: Option<f64>,
    pub settle_queued: f64,
    pub settled: Option<f64>,
}

/// One fault and what followed it.
#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    pub backend: BackendKind,
    pub index: usize,
    pub fault: FaultKind,
    /// The fault's parameters, in words.
    pub detail: String,
    /// The moment it was thrown at.
    pub moment: String,
    /// The moment came (the fault was thrown mid-run, not after the runs ended).
    pub reached: bool,
    /// Answers spoiled, connections refused or cut, restarts: what the fault did.
    pub applied: u64,
    /// From the moment to the end of the fault.
    pub fault_secs: f64,
    /// The runs of the round (queued, retried, scheduled) until the settling pass.
    pub runs: RunTally,
    /// Every schedule came back to a succeeded run by itself.
    pub recovered: bool,
    /// From the end of the fault until then.
    pub recovery_secs: Option<f64>,
    /// The store against the simulator after the recovery, and after the settling pass.
    pub after_recovery: Tally,
    pub after_settle: Tally,
    /// The settling runs all succeeded.
    pub settled: bool,
    /// The same `start` process was running at the end of the round.
    pub scheduler_alive: bool,
    /// Seconds from the round's start: the moment came, the fault ended, every schedule
    /// was back to success, the settling pass was queued, it ended.
    pub timeline: Timeline,
    pub seconds: f64,
    pub notes: Vec<String>,
    /// Problems of the harness or of the engine that fail the round.
    pub errors: Vec<String>,
    pub examples: Vec<String>,
}

impl RoundResult {
    fn failures(&self) -> Vec<String> {
        let what = format!(
            "{} round {} ({}: {}, at {})",
            self.backend.as_str(),
            self.index + 1,
            self.fault.as_str(),
            self.detail,
            self.moment
        );
        let mut out = Vec::new();
        let (a, b) = (&self.after_recovery, &self.after_settle);
        let harmful = (
            a.lost.max(b.lost),
            a.duplicated.max(b.duplicated),
            a.falsely_removed.max(b.falsely_removed),
        );
        if harmful != (0, 0, 0) {
            out.push(format!(
                "{what}: {} lost, {} duplicated, {} falsely removed row(s)",
                harmful.0, harmful.1, harmful.2
            ));
        }
        if b.unsettled() > 0 {
            out.push(format!(
                "{what}: the store did not settle: {} phantom, {} stale row(s) after a pass without faults",
                b.phantom, b.stale
            ));
        }
        if self.runs.unclassified > 0 {
            out.push(format!(
                "{what}: {} run(s) failed without a classified error",
                self.runs.unclassified
            ));
        }
        if self.runs.unfinished > 0 {
            out.push(format!(
                "{what}: {} run(s) left queued, running or interrupted",
                self.runs.unfinished
            ));
        }
        if !self.recovered {
            out.push(format!(
                "{what}: the scheduler did not bring every schedule back to success by itself"
            ));
        }
        if !self.settled {
            out.push(format!("{what}: a settling run did not succeed"));
        }
        if !self.scheduler_alive {
            out.push(format!("{what}: the scheduler process did not survive"));
        }
        out.extend(self.errors.iter().map(|e| format!("{what}: {e}")));
        out
    }
}

/// The end of a backend.
#[derive(Debug, Clone, Serialize)]
pub struct FinalCheck {
    pub backend: BackendKind,
    /// The scheduler's pid, the same from the first round to the last.
    pub scheduler_pid: u32,
    /// `start` processes the harness had to start again (one that died): 0.
    pub scheduler_restarts: u32,
    /// It exited 0 within a minute of SIGTERM.
    pub clean_exit: bool,
    pub data: Tally,
    pub runs: RunTally,
    pub examples: Vec<String>,
    pub errors: Vec<String>,
}

impl FinalCheck {
    /// What fails the end of a backend: any difference from the simulator, a run left
    /// unfinished or unclassified, a scheduler that had to be started again or did not exit 0.
    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let b = self.backend.as_str();
        if self.data.mismatches() > 0 {
            out.push(format!(
                "{b} final check: {} lost, {} duplicated, {} falsely removed, {} phantom, {} stale row(s)",
                self.data.lost, self.data.duplicated, self.data.falsely_removed, self.data.phantom, self.data.stale
            ));
        }
        if self.runs.unfinished + self.runs.unclassified > 0 {
            out.push(format!(
                "{b} final check: {} run(s) unfinished, {} failed without a class",
                self.runs.unfinished, self.runs.unclassified
            ));
        }
        if self.scheduler_restarts > 0 {
            out.push(format!(
                "{b} final check: the scheduler had to be started {} more time(s)",
                self.scheduler_restarts
            ));
        }
        if !self.clean_exit {
            out.push(format!(
                "{b} final check: the scheduler did not exit 0 on SIGTERM"
            ));
        }
        out.extend(self.errors.iter().map(|e| format!("{b} final check: {e}")));
        out
    }

    /// The end of a backend in one line.
    fn summary(&self) -> String {
        format!(
            "final check, {}: scheduler pid {} from the first round to the last ({} restart(s)), {} on SIGTERM; {} run(s) in all ({} succeeded, failed: {}, {} unfinished, {} unclassified); {} live items compared: {} lost, {} duplicated, {} falsely removed, {} phantom, {} stale",
            self.backend.as_str(),
            self.scheduler_pid,
            self.scheduler_restarts,
            if self.clean_exit { "exit 0" } else { "NOT a clean exit" },
            self.runs.runs,
            self.runs.succeeded,
            self.runs.failed_text(),
            self.runs.unfinished,
            self.runs.unclassified,
            self.data.expected,
            self.data.lost,
            self.data.duplicated,
            self.data.falsely_removed,
            self.data.phantom,
            self.data.stale
        )
    }
}

/// Everything the harness measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub rounds_per_backend: usize,
    pub api_timeout_secs: f64,
    pub latency_ms: u64,
    pub rounds: Vec<RoundResult>,
    pub finals: Vec<FinalCheck>,
    pub seconds: f64,
    pub failures: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn judge(&mut self) {
        let mut failures: Vec<String> = self.rounds.iter().flat_map(|r| r.failures()).collect();
        for f in &self.finals {
            failures.extend(f.failures());
        }
        self.failures = failures;
    }

    /// The per-fault table (Markdown), a line per backend's end, and what failed.
    pub fn markdown(&self) -> String {
        #[derive(Default)]
        struct Row {
            rounds: usize,
            reached: usize,
            applied: u64,
            runs: RunTally,
            recovered: usize,
            recovery_max: f64,
            lost: usize,
            duplicated: usize,
            falsely_removed: usize,
            unsettled: usize,
            alive: usize,
            seconds: f64,
        }
        impl Row {
            fn add(&mut self, r: &RoundResult) {
                let (a, b) = (&r.after_recovery, &r.after_settle);
                self.rounds += 1;
                self.reached += usize::from(r.reached);
                self.applied += r.applied;
                self.runs.add(&r.runs);
                self.recovered += usize::from(r.recovered);
                self.recovery_max = self.recovery_max.max(r.recovery_secs.unwrap_or(0.0));
                self.lost += a.lost.max(b.lost);
                self.duplicated += a.duplicated.max(b.duplicated);
                self.falsely_removed += a.falsely_removed.max(b.falsely_removed);
                self.unsettled += b.unsettled();
                self.alive += usize::from(r.scheduler_alive);
                self.seconds += r.seconds;
            }
            fn line(&self, o: &mut String, backend: &str, what: &str, place: &str) {
                let _ = writeln!(
                    o,
                    "| {backend} | {what} | {place} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {:.1} | {} | {} | {} | {} | {} | {} | {:.1} |",
                    self.rounds,
                    self.reached,
                    self.applied,
                    self.runs.runs,
                    self.runs.succeeded,
                    self.runs.failed_text(),
                    self.runs.call_retries,
                    self.runs.retries,
                    self.runs.scheduled,
                    self.recovered,
                    self.rounds,
                    self.recovery_max,
                    self.lost,
                    self.duplicated,
                    self.falsely_removed,
                    self.unsettled,
                    self.runs.unfinished + self.runs.unclassified,
                    self.alive,
                    self.seconds
                );
            }
        }
        let mut o = String::new();
        let _ = writeln!(
            o,
            "| backend | fault | where | rounds | mid-run | applied | runs | succeeded | failed (class) | calls retried in runs | runs retried / scheduled | recovered by itself | max recovery (s) | lost | duplicated | falsely removed | not settled | unfinished or unclassified | scheduler alive | time (s) |"
        );
        let _ = writeln!(
            o,
            "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let mut by: BTreeMap<(BackendKind, FaultKind), Row> = BTreeMap::new();
        let mut per_backend: BTreeMap<BackendKind, Row> = BTreeMap::new();
        for r in &self.rounds {
            by.entry((r.backend, r.fault)).or_default().add(r);
            per_backend.entry(r.backend).or_default().add(r);
        }
        for (backend, total) in &per_backend {
            for ((b, f), row) in by.iter().filter(|((b, _), _)| b == backend) {
                row.line(&mut o, b.as_str(), f.as_str(), f.place().as_str());
            }
            total.line(&mut o, backend.as_str(), "**all**", "");
        }
        let _ = writeln!(o);
        for f in &self.finals {
            let _ = writeln!(o, "{}", f.summary());
        }
        let summary = format!(
            "seed {}, {} round(s) per backend, API timeout {} s, simulator latency {} ms, {:.1} s in all",
            self.seed,
            self.rounds_per_backend,
            self.api_timeout_secs,
            self.latency_ms,
            self.seconds,
        );
        let examples = self
            .rounds
            .iter()
            .flat_map(|r| r.examples.iter())
            .chain(self.finals.iter().flat_map(|f| f.examples.iter()));
        crate::verdict::write_tail(
            &mut o,
            &summary,
            "; after a recovery, phantom and stale rows are allowed — the settling pass must clear them",
            examples,
            &self.failures,
        );
        o
    }
}

/// Runs every round of every backend, one backend after the other.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let plans = plan(opts.seed, &opts.backends, opts.rounds, &opts.only);
    let mut report = Report {
        seed: opts.seed,
        rounds_per_backend: opts.rounds,
        api_timeout_secs: opts.api_timeout.as_secs_f64(),
        latency_ms: u64::try_from(opts.latency.as_millis()).unwrap_or(u64::MAX),
        rounds: Vec::new(),
        finals: Vec::new(),
        seconds: 0.0,
        failures: Vec::new(),
    };
    for (b, (backend, plan)) in opts.backends.iter().zip(plans).enumerate() {
        let mut bench = Bench::new(opts, *backend).await?;
        let outcome = bench.rounds(b, &plan, &mut report).await;
        let finished = match outcome {
            Ok(()) => bench.finish().await,
            Err(e) => Err(e),
        };
        let passed = match finished {
            Ok(check) => {
                let ok = check.errors.is_empty();
                report.finals.push(check);
                ok
            }
            Err(e) => {
                bench.close(false).await;
                return Err(e);
            }
        };
        let rounds_ok = report
            .rounds
            .iter()
            .filter(|r| r.backend == *backend)
            .all(|r| r.failures().is_empty());
        bench.close(passed && rounds_ok).await;
    }
    report.seconds = secs(started.elapsed());
    report.judge();
    Ok(report)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// A round in one line, for progress.
fn one_line(r: &RoundResult) -> String {
    let failures = r.failures();
    format!(
        "chaos: {} {:>2} {} ({}) at {}{}: applied {}, {:.1} s; runs {} ({} succeeded, failed {}, {} retried, {} scheduled; {} call retries, {} 429 waits); {}; after recovery {} lost/{} dup/{} falsely removed, after settling {} unsettled; {:.1} s (moment {:.1}, fault over {:.1}, recovered {}, settle queued {:.1}, settled {}){}",
        r.backend.as_str(),
        r.index + 1,
        r.fault.as_str(),
        r.detail,
        r.moment,
        if r.reached { "" } else { " (NOT mid-run)" },
        r.applied,
        r.fault_secs,
        r.runs.runs,
        r.runs.succeeded,
        r.runs.failed_text(),
        r.runs.retries,
        r.runs.scheduled,
        r.runs.call_retries,
        r.runs.rate_limit_waits,
        match r.recovery_secs {
            Some(s) if r.recovered => format!("recovered by itself in {s:.1} s"),
            _ => "NOT recovered".to_owned(),
        },
        r.after_recovery.lost,
        r.after_recovery.duplicated,
        r.after_recovery.falsely_removed,
        r.after_settle.unsettled(),
        r.seconds,
        r.timeline.moment,
        r.timeline.fault_ended,
        r.timeline
            .recovered
            .map_or_else(|| "-".to_owned(), |t| format!("{t:.1}")),
        r.timeline.settle_queued,
        r.timeline
            .settled
            .map_or_else(|| "-".to_owned(), |t| format!("{t:.1}")),
        if failures.is_empty() {
            String::new()
        } else {
            format!(
                "; FAILED: {}; notes: {}",
                failures.join("; "),
                r.notes.join("; ")
            )
        }
    )
}

/// The moment of a round's fault.
#[derive(Debug, Clone)]
enum Moment {
    /// Page `k` of an offer scan of the account answered.
    OfferPage { account: String, k: u32 },
    /// The `j`-th answer of the account's order windows (a run reads at least one window of
    /// each order type: two answers).
    OrderAnswer { account: String, j: u32 },
    /// The account's first return window answered.
    ReturnWindow { account: String },
}

impl Moment {
    fn describe(&self) -> String {
        match self {
            Moment::OfferPage { account, k } => format!("{account} offer page {k}"),
            Moment::OrderAnswer { account, j } => format!("{account} order answer {j}"),
            Moment::ReturnWindow { account } => format!("{account} first return window"),
        }
    }

    /// Whether the journal entry is the moment (entries one at a time, from the round's
    /// start).
    fn watch(&self) -> Box<dyn FnMut(&emag_sim::JournalEntry) -> bool + Send> {
        match self {
            Moment::OfferPage { account, k } => {
                let mut w = ScanWatch::new(account, ScanMark::Page(*k));
                Box::new(move |e| w.observe(e) == Some(ScanStep::Strike))
            }
            Moment::OrderAnswer { account, j } => {
                let mut w = AnswerWatch::new(account, ORDER_RESOURCE, *j);
                Box::new(move |e| w.observe(e))
            }
            Moment::ReturnWindow { account } => {
                let mut w = AnswerWatch::new(account, RETURN_RESOURCE, 1);
                Box::new(move |e| w.observe(e))
            }
        }
    }
}

/// A fault with its parameters.
#[derive(Debug, Clone)]
enum Throw {
    /// A proxy fault (the API's, or PostgreSQL's) for a span.
    Proxy {
        pg: bool,
        fault: Fault,
        span: Span,
    },
    /// Every connection of a proxy cut, then new ones refused for a while.
    Cut {
        pg: bool,
        refuse: Option<Duration>,
    },
    /// The simulator's fault plan (counters of next answers).
    Sim(FaultPlan),
    PgRestart(StopMode),
    PgDown {
        mode: StopMode,
        hold: Duration,
    },
    /// SQLite's write lock taken by another connection (`BEGIN IMMEDIATE`) and held.
    SqliteLock {
        hold: Duration,
    },
}

/// One backend: its store, simulator, proxies, cluster, and the scheduler.
struct Bench<'a> {
    opts: &'a Options,
    kind: BackendKind,
    /// The harness's own connection (to PostgreSQL directly, not through the proxy).
    store: Store,
    store_url: String,
    sim: RunningSim,
    api: FaultProxy,
    pg: Option<(PgCluster, FaultProxy)>,
    dir: PathBuf,
    vars: HashMap<String, String>,
    scheduler: Option<Proc>,
    scheduler_pid: u32,
    scheduler_restarts: u32,
    accounts: Vec<String>,
}

impl<'a> Bench<'a> {
    async fn new(opts: &'a Options, kind: BackendKind) -> anyhow::Result<Bench<'a>> {
        let dir = opts.dir.join(kind.as_str());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let sim = Simulator::spawn(SimConfig {
            accounts: vec![AccountSpec::main(), AccountSpec::fbe()],
            offers_per_account: opts.offers,
            orders_per_account: opts.orders,
            rate_limits: false,
            faults: FaultPlan {
                latency_ms: u64::try_from(opts.latency.as_millis()).unwrap_or(u64::MAX),
                ..FaultPlan::default()
            },
            ..SimConfig::default()
        })
        .await
        .context("cannot start the simulator")?;
        let api = FaultProxy::start(sim.addr)
            .await
            .context("cannot start the API's fault proxy")?;
        let (store_url, child_url, pg) = match kind {
            BackendKind::Sqlite => {
                let url = format!("sqlite://{}/chaos.db", dir.display());
                (url.clone(), url, None)
            }
            BackendKind::Postgres => {
                let cluster = PgCluster::create()
                    .await
                    .context("cannot create the private PostgreSQL cluster")?;
                let proxy = FaultProxy::start(cluster.addr())
                    .await
                    .context("cannot start PostgreSQL's fault proxy")?;
                let through = format!("postgres://postgres@{}/{}", proxy.addr(), cluster::DATABASE);
                (cluster.url(), through, Some((cluster, proxy)))
            }
        };
        let store = Store::open(&store_url)
            .await
            .with_context(|| format!("cannot open {}", storage::redact_url(&store_url)))?;
        let vars = child_vars(&sim, &api, &child_url, &dir, opts.api_timeout);
        let mut bench = Bench {
            opts,
            kind,
            store,
            store_url,
            sim,
            api,
            pg,
            dir,
            vars,
            scheduler: None,
            scheduler_pid: 0,
            scheduler_restarts: 0,
            accounts: ACCOUNTS.iter().map(|a| (*a).to_owned()).collect(),
        };
        bench.start_scheduler("scheduler").await?;
        Ok(bench)
    }

    fn sim(&self) -> &Simulator {
        &self.sim.sim
    }

    /// Starts `emag-sync start` and waits for its readiness line.
    async fn start_scheduler(&mut self, name: &str) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.opts.exe);
        cmd.args(["start", "--no-dashboard"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.vars)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let log = self.dir.join(format!("{name}.log"));
        let mut child = Proc::spawn(cmd, "emag-sync start", log)?;
        let deadline = Instant::now() + self.opts.step_timeout;
        loop {
            tokio::select! {
                line = child.lines.recv() => match line {
                    Some(line) if line.contains(READY_LINE) => break,
                    Some(_) => {}
                    None => bail!(
                        "`start` exited before it was ready; log {}:\n{}",
                        child.log.display(),
                        tail(&child.log, 15)
                    ),
                },
                () = tokio::time::sleep_until(deadline) => {
                    child.kill().await;
                    bail!("`start` was not ready within {} s", self.opts.step_timeout.as_secs());
                }
            }
        }
        self.scheduler_pid = child.pid;
        self.scheduler = Some(child);
        Ok(())
    }

    /// The baseline, then every round.
    async fn rounds(
        &mut self,
        b: usize,
        plan: &[FaultKind],
        report: &mut Report,
    ) -> anyhow::Result<()> {
        self.baseline().await?;
        for (i, fault) in plan.iter().enumerate() {
            let part = u64::try_from(b * 100_000 + i).unwrap_or(u64::MAX);
            let mut rng = Rng::fork(self.opts.seed, part);
            let result = self.round(i, *fault, &mut rng).await?;
            if self.opts.verbose {
                eprintln!("{}", one_line(&result));
            }
            report.rounds.push(result);
        }
        Ok(())
    }

    /// Every schedule's first run (the scheduler starts them at once), then the data as the
    /// simulator has it.
    async fn baseline(&mut self) -> anyhow::Result<()> {
        let baseline = self.wait_until_settled(self.opts.step_timeout).await?;
        if baseline.is_none() {
            bail!(
                "the scheduler's first runs did not all succeed within {} s",
                self.opts.step_timeout.as_secs()
            );
        }
        let check = truth::compare(&self.store, self.sim(), &self.accounts, &DATA_KINDS).await?;
        if check.total().mismatches() > 0 {
            bail!(
                "the first sync does not equal the simulator: {:?}",
                check.examples
            );
        }
        Ok(())
    }

    /// One round: arrange, fault, recovery, check, settle, check.
    async fn round(
        &mut self,
        index: usize,
        fault: FaultKind,
        rng: &mut Rng,
    ) -> anyhow::Result<RoundResult> {
        let started = Instant::now();
        let runs_before = last_run_id(&self.store).await?;
        // Arrange first: the moment's page must still be there after the changes.
        self.arrange(rng);
        let (throw, detail) = self.choose(fault, rng);
        let moment = self.choose_moment(fault, rng);
        let mut result = RoundResult {
            backend: self.kind,
            index,
            fault,
            detail,
            moment: moment.describe(),
            reached: false,
            applied: 0,
            fault_secs: 0.0,
            runs: RunTally::default(),
            recovered: false,
            recovery_secs: None,
            after_recovery: Tally::default(),
            after_settle: Tally::default(),
            settled: false,
            scheduler_alive: false,
            timeline: Timeline::default(),
            seconds: 0.0,
            notes: Vec::new(),
            errors: Vec::new(),
            examples: Vec::new(),
        };

        // Every account and data kind queued.
        let after = self.sim().journal().last().map_or(0, |e| e.seq);
        self.queue_all().await?;

        // The fault, at its moment.
        let watch = RefCell::new(moment.watch());
        let waited = tokio::time::timeout(
            self.opts.step_timeout,
            self.sim()
                .wait_for_request(|e| e.seq > after && (watch.borrow_mut())(e)),
        )
        .await;
        result.reached = waited.is_ok();
        if !result.reached {
            result
                .notes
                .push("the moment did not come; the fault was thrown anyway".to_owned());
        }
        let thrown = Instant::now();
        result.timeline.moment = secs(thrown - started);
        match self.throw(&throw).await {
            Ok((applied, notes)) => {
                result.applied = applied;
                result.notes.extend(notes);
            }
            Err(e) => result.errors.push(format!("throwing the fault: {e:#}")),
        }
        let fault_ended = Instant::now();
        result.fault_secs = secs(fault_ended - thrown);
        result.timeline.fault_ended = secs(fault_ended - started);

        // Recovery, by the scheduler alone. The runs are tallied from the history that
        // showed it (a scheduled slot may start another run the next moment).
        let mut round_runs = None;
        match self.wait_until_settled(self.opts.recovery_timeout).await {
            Ok(Some(runs)) => {
                result.recovered = true;
                result.recovery_secs = Some(secs(fault_ended.elapsed()));
                result.timeline.recovered = Some(secs(started.elapsed()));
                round_runs = Some(runs);
            }
            Ok(None) => result.notes.push(format!(
                "not recovered within {} s: {}",
                self.opts.recovery_timeout.as_secs(),
                self.describe_latest().await
            )),
            Err(e) => result
                .errors
                .push(format!("waiting for the recovery: {e:#}")),
        }
        let check = truth::compare(&self.store, self.sim(), &self.accounts, &DATA_KINDS).await?;
        result.after_recovery = check.total();
        result.examples.extend(check.examples.into_iter().map(|e| {
            format!(
                "{} #{}, after the recovery: {e}",
                self.kind.as_str(),
                index + 1
            )
        }));
        let round_runs: Vec<RunRow> = match round_runs {
            Some(runs) => runs,
            None => all_runs(&self.store).await?,
        }
        .into_iter()
        .filter(|r| r.id > runs_before)
        .collect();
        result.runs = RunTally::of(&round_runs);
        for r in round_runs.iter().filter(|r| r.state == RunState::Failed) {
            if result.notes.len() < 12 {
                result.notes.push(format!(
                    "run {} ({} {}, {}) failed: {}",
                    r.id,
                    r.account,
                    r.kind,
                    r.trigger,
                    r.error_message.as_deref().unwrap_or("-")
                ));
            }
        }

        // Settle: everything once more, without faults.
        let settle_from = round_runs.last().map_or(runs_before, |r| r.id);
        self.queue_all().await?;
        result.timeline.settle_queued = secs(started.elapsed());
        match self.wait_until_settled(self.opts.step_timeout).await {
            Ok(Some(_)) => result.timeline.settled = Some(secs(started.elapsed())),
            Ok(None) => result.errors.push(format!(
                "the settling pass did not end within {} s: {}",
                self.opts.step_timeout.as_secs(),
                self.describe_latest().await
            )),
            Err(e) => result.errors.push(format!("settling: {e:#}")),
        }
        let settling: Vec<RunRow> = all_runs(&self.store)
            .await?
            .into_iter()
            .filter(|r| r.id > settle_from)
            .collect();
        result.settled =
            !settling.is_empty() && settling.iter().all(|r| r.state == RunState::Succeeded);
        if !result.settled {
            for r in settling.iter().filter(|r| r.state != RunState::Succeeded) {
                result.notes.push(format!(
                    "settling run {} ({} {}) {}: {}",
                    r.id,
                    r.account,
                    r.kind,
                    r.state,
                    r.error_message.as_deref().unwrap_or("-")
                ));
            }
        }
        let check = truth::compare(&self.store, self.sim(), &self.accounts, &DATA_KINDS).await?;
        result.after_settle = check.total();
        result.examples.extend(check.examples.into_iter().map(|e| {
            format!(
                "{} #{}, after the settling pass: {e}",
                self.kind.as_str(),
                index + 1
            )
        }));

        // The same scheduler did all of it.
        result.scheduler_alive = match self.scheduler.as_mut() {
            Some(p) => match p.exited() {
                None => true,
                Some(status) => {
                    result.errors.push(format!(
                        "the scheduler exited ({status}); log {}:\n{}",
                        p.log.display(),
                        tail(&p.log, 20)
                    ));
                    false
                }
            },
            None => false,
        };
        if !result.scheduler_alive {
            self.scheduler_restarts += 1;
            let name = format!("scheduler-{}", self.scheduler_restarts);
            self.start_scheduler(&name).await?;
        }
        result.seconds = secs(started.elapsed());
        Ok(result)
    }

    /// The concrete fault of a round, and its parameters in words.
    fn choose(&self, fault: FaultKind, rng: &mut Rng) -> (Throw, String) {
        let timeout = self.opts.api_timeout;
        let stall = timeout + Duration::from_secs(2);
        let api = |fault, span| Throw::Proxy {
            pg: false,
            fault,
            span,
        };
        let pg = |fault, span| Throw::Proxy {
            pg: true,
            fault,
            span,
        };
        let latency = u64::try_from(self.opts.latency.as_millis()).unwrap_or(u64::MAX);
        match fault {
            FaultKind::ResetMidBody => {
                let (n, h) = (cut_at(rng), rng.between(1, 8));
                (
                    api(Fault::ResetAfterBytes(n), Span::Answers(h)),
                    format!("reset after {n} bytes, {h} answer(s)"),
                )
            }
            FaultKind::HalfCloseMidBody => {
                let (n, h) = (cut_at(rng), rng.between(1, 8));
                (
                    api(Fault::HalfCloseAfterBytes(n), Span::Answers(h)),
                    format!("FIN after {n} bytes, {h} answer(s)"),
                )
            }
            FaultKind::BlackholeMidBody => {
                let (n, h) = (cut_at(rng), rng.between(1, 6));
                (
                    api(Fault::BlackholeAfterBytes(n), Span::Answers(h)),
                    format!("silence after {n} bytes, {h} answer(s)"),
                )
            }
            FaultKind::Stall => {
                let h = rng.between(1, 6);
                (
                    api(Fault::Stall(stall), Span::Answers(h)),
                    format!("{:.1} s stall, {h} answer(s)", stall.as_secs_f64()),
                )
            }
            FaultKind::SlowBody => {
                // Too slow for the timeout (a page of offers is tens of kB), or slow but in
                // time.
                let bps = if rng.one_in(2) {
                    u64::from(rng.between(2_000, 20_000))
                } else {
                    u64::from(rng.between(400_000, 2_000_000))
                };
                let h = rng.between(1, 8);
                (
                    api(Fault::Bandwidth(bps), Span::Answers(h)),
                    format!("{} kB/s, {h} answer(s)", bps / 1000),
                )
            }
            FaultKind::Refuse => {
                let ms = rng.between(300, 4_000);
                (
                    api(
                        Fault::Refuse,
                        Span::For(Duration::from_millis(u64::from(ms))),
                    ),
                    format!("refused for {:.1} s", f64::from(ms) / 1000.0),
                )
            }
            FaultKind::CutAll => (
                Throw::Cut {
                    pg: false,
                    refuse: None,
                },
                "every open connection reset".to_owned(),
            ),
            FaultKind::ServerErrors => {
                let n = rng.between(2, 12);
                (
                    Throw::Sim(FaultPlan {
                        latency_ms: latency,
                        server_error_next: n,
                        ..FaultPlan::default()
                    }),
                    format!("next {n} answers 502"),
                )
            }
            FaultKind::Malformed => {
                let n = rng.between(1, 8);
                (
                    Throw::Sim(FaultPlan {
                        latency_ms: latency,
                        malformed_next: n,
                        ..FaultPlan::default()
                    }),
                    format!("next {n} bodies cut in half"),
                )
            }
            FaultKind::RateLimitStorm => {
                let n = rng.between(2, 8);
                (
                    Throw::Sim(FaultPlan {
                        latency_ms: latency,
                        rate_limited_next: n,
                        ..FaultPlan::default()
                    }),
                    format!("next {n} answers 429"),
                )
            }
            FaultKind::PgRestartFast => (
                Throw::PgRestart(StopMode::Fast),
                "pg_ctl restart -m fast".to_owned(),
            ),
            FaultKind::PgRestartImmediate => (
                Throw::PgRestart(StopMode::Immediate),
                "pg_ctl restart -m immediate".to_owned(),
            ),
            FaultKind::PgDown => {
                let ms = rng.between(1_000, 14_000);
                let mode = if rng.one_in(2) {
                    StopMode::Fast
                } else {
                    StopMode::Immediate
                };
                (
                    Throw::PgDown {
                        mode,
                        hold: Duration::from_millis(u64::from(ms)),
                    },
                    format!(
                        "stopped (-m {}) for {:.1} s",
                        mode.as_arg(),
                        f64::from(ms) / 1000.0
                    ),
                )
            }
            FaultKind::PgCut => {
                let ms = rng.between(300, 4_000);
                (
                    Throw::Cut {
                        pg: true,
                        refuse: Some(Duration::from_millis(u64::from(ms))),
                    },
                    format!(
                        "every connection reset, new ones refused for {:.1} s",
                        f64::from(ms) / 1000.0
                    ),
                )
            }
            FaultKind::PgStall => {
                let (ms, h) = (rng.between(500, 3_000), rng.between(1, 10));
                (
                    pg(
                        Fault::Stall(Duration::from_millis(u64::from(ms))),
                        Span::Answers(h),
                    ),
                    format!("{:.1} s stall, {h} answer(s)", f64::from(ms) / 1000.0),
                )
            }
            FaultKind::SqliteLocked => {
                let ms = rng.between(1_000, 14_000);
                (
                    Throw::SqliteLock {
                        hold: Duration::from_millis(u64::from(ms)),
                    },
                    format!("write lock held for {:.1} s", f64::from(ms) / 1000.0),
                )
            }
            FaultKind::PgResetMidAnswer => {
                let (n, h) = (u64::from(rng.between(0, 120)), rng.between(1, 6));
                (
                    pg(Fault::ResetAfterBytes(n), Span::Answers(h)),
                    format!("reset after {n} bytes, {h} answer(s)"),
                )
            }
        }
    }

    /// The moment of a round: mostly an offer page (where the engine writes most), else an
    /// order answer or the first return window.
    fn choose_moment(&self, fault: FaultKind, rng: &mut Rng) -> Moment {
        let account = rng
            .pick(&self.accounts)
            .cloned()
            .unwrap_or_else(|| ACCOUNTS[0].to_owned());
        let pages = u32::try_from(self.sim().offers(&account).len().div_ceil(PAGE))
            .unwrap_or(1)
            .max(1);
        let at_the_store = matches!(fault.place(), Place::Postgres | Place::Sqlite);
        let roll = rng.below(if at_the_store { 5 } else { 8 });
        match roll {
            0..=3 | 5 => Moment::OfferPage {
                account,
                k: rng.between(1, pages),
            },
            4 | 6 => Moment::OrderAnswer {
                account,
                j: rng.between(1, 2),
            },
            _ => Moment::ReturnWindow { account },
        }
    }

    /// Throws the fault and waits for its end; returns what it did and notes.
    async fn throw(&self, throw: &Throw) -> anyhow::Result<(u64, Vec<String>)> {
        let mut notes = Vec::new();
        match throw {
            Throw::Proxy { pg, fault, span } => {
                let proxy = self.proxy(*pg)?;
                let before = proxy.stats().applied;
                proxy.set_for(*fault, *span);
                if tokio::time::timeout(FAULT_TIMEOUT, proxy.until_passing())
                    .await
                    .is_err()
                {
                    proxy.set(Fault::Pass);
                    notes.push(format!(
                        "the fault was not used up within {} s; disarmed",
                        FAULT_TIMEOUT.as_secs()
                    ));
                }
                Ok((proxy.stats().applied - before, notes))
            }
            Throw::Cut { pg, refuse } => {
                let proxy = self.proxy(*pg)?;
                let cut = proxy.cut_all();
                if let Some(d) = refuse {
                    proxy.set_for(Fault::Refuse, Span::For(*d));
                    proxy.until_passing().await;
                    proxy.wait_until(|s| s.listening).await;
                }
                Ok((cut, notes))
            }
            Throw::Sim(plan) => {
                let before = self.sim().journal().last().map_or(0, |e| e.seq);
                self.sim().set_faults(plan.clone());
                let sim = self.sim().clone();
                let spent = tokio::time::timeout(
                    FAULT_TIMEOUT,
                    self.sim().wait_for_request(move |_| {
                        let p = sim.faults();
                        p.server_error_next + p.malformed_next + p.rate_limited_next == 0
                    }),
                )
                .await;
                let left = self.sim().faults();
                self.sim().set_faults(FaultPlan {
                    latency_ms: plan.latency_ms,
                    ..FaultPlan::default()
                });
                if spent.is_err() {
                    notes.push(format!(
                        "the plan was not used up within {} s: {left:?}",
                        FAULT_TIMEOUT.as_secs()
                    ));
                }
                let spoiled = self
                    .sim()
                    .journal()
                    .iter()
                    .filter(|e| e.seq > before && (e.status == 502 || e.status == 429))
                    .count() as u64;
                let planned = u64::from(
                    plan.server_error_next + plan.malformed_next + plan.rate_limited_next,
                );
                let unused = u64::from(
                    left.server_error_next + left.malformed_next + left.rate_limited_next,
                );
                Ok((spoiled.max(planned - unused), notes))
            }
            Throw::PgRestart(mode) => {
                let cluster = self.cluster()?;
                let took = cluster.restart(*mode).await?;
                notes.push(format!("PostgreSQL away for {:.2} s", took.as_secs_f64()));
                Ok((1, notes))
            }
            Throw::SqliteLock { hold } => {
                use sqlx::Connection as _;
                let mut conn = sqlx::SqliteConnection::connect(&self.store_url)
                    .await
                    .context("cannot open the SQLite file to lock it")?;
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .context("cannot take SQLite's write lock")?;
                // The lock held is the fault: the engine's writers wait, then give up.
                tokio::time::sleep(*hold).await;
                sqlx::query("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .context("cannot release SQLite's write lock")?;
                let _closed = conn.close().await;
                Ok((1, notes))
            }
            Throw::PgDown { mode, hold } => {
                let cluster = self.cluster()?;
                cluster.stop(*mode).await?;
                // The outage itself: how long the database is gone is the fault.
                tokio::time::sleep(*hold).await;
                cluster.start().await?;
                Ok((1, notes))
            }
        }
    }

    fn proxy(&self, pg: bool) -> anyhow::Result<&FaultProxy> {
        if !pg {
            return Ok(&self.api);
        }
        match &self.pg {
            Some((_, proxy)) => Ok(proxy),
            None => bail!("a PostgreSQL fault on a backend without PostgreSQL"),
        }
    }

    fn cluster(&self) -> anyhow::Result<&PgCluster> {
        match &self.pg {
            Some((cluster, _)) => Ok(cluster),
            None => bail!("a PostgreSQL fault on a backend without PostgreSQL"),
        }
    }

    /// A manual run of every account and data kind, as the dashboard's "sync now" queues it.
    async fn queue_all(&self) -> anyhow::Result<()> {
        for account in &self.accounts {
            for kind in DATA_KINDS {
                self.store
                    .enqueue_run(account, kind, false)
                    .await
                    .with_context(|| format!("cannot queue a run of {account} {kind}"))?;
            }
        }
        Ok(())
    }

    /// Waits until the run history is settled ([`settled_history`]), looking at the store at
    /// every line the scheduler prints (a claim and an end of a run print one each) — at
    /// most `within`. The history that showed it, or `None` when the time ran out.
    async fn wait_until_settled(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<Option<Vec<RunRow>>> {
        let deadline = Instant::now() + within;
        // A look every few seconds as well: the store may have been away (PostgreSQL
        // restarting) at the last line, after which no line may come.
        let mut fallback = tokio::time::interval(SETTLED_FALLBACK);
        fallback.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The store may be away for a moment (PostgreSQL restarting): look again at the
            // next line.
            if let Ok(runs) = all_runs(&self.store).await {
                if settled_history(&runs) {
                    return Ok(Some(runs));
                }
            }
            let Some(child) = self.scheduler.as_mut() else {
                bail!("no scheduler is running");
            };
            tokio::select! {
                line = child.lines.recv() => {
                    if line.is_none() {
                        bail!(
                            "the scheduler exited; log {}:\n{}",
                            child.log.display(),
                            tail(&child.log, 20)
                        );
                    }
                    // Every line that came meanwhile: one look at the store for all.
                    while child.lines.try_recv().is_ok() {}
                }
                _ = fallback.tick() => {}
                () = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    /// The latest run of every schedule, for a message.
    async fn describe_latest(&self) -> String {
        match all_runs(&self.store).await {
            Ok(runs) => latest_runs(&runs)
                .values()
                .map(|r| {
                    format!(
                        "{} {} run {} {} ({}){}",
                        r.account,
                        r.kind,
                        r.id,
                        r.state,
                        r.trigger,
                        r.error_class.map(|c| format!(" {c}")).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("cannot read the runs: {e:#}"),
        }
    }

    /// Changes the simulator's data: every account, offers, orders and returns.
    fn arrange(&self, rng: &mut Rng) {
        let sim = self.sim();
        for account in &self.accounts {
            let main = self.account_kind(account) == AccountKind::Main;
            let mut ids: Vec<u32> = sim.offers(account).iter().map(|o| o.id).collect();
            let pages = u32::try_from(ids.len().div_ceil(PAGE)).unwrap_or(1);
            // Deleted before the runs: the scan misses them and must confirm them gone.
            let deletions = rng.between(0, 2) as usize;
            let sorted = ids.clone();
            rng.shuffle(&mut ids);
            for id in ids.iter().take(deletions) {
                self.change(account, Mutation::RemoveOffer { id: *id });
            }
            for id in ids.iter().skip(deletions).take(2) {
                let cents = 1_000 + i64::from(rng.between(0, 900_000));
                self.change(
                    account,
                    Mutation::SetPrice {
                        id: *id,
                        sale_price: Decimal::new(cents, 2),
                    },
                );
            }
            if main {
                if let Some(id) = ids.get(deletions + 2) {
                    self.change(
                        account,
                        Mutation::SetStock {
                            id: *id,
                            stock: rng.between(0, 40),
                        },
                    );
                }
            }
            if rng.one_in(3) {
                self.change(
                    account,
                    Mutation::AddOffers {
                        count: rng.between(1, 60),
                    },
                );
            }
            if pages > 1 && rng.one_in(3) {
                // An offer of a page already read deleted while the scan goes on: the next
                // one moves up into that page unseen.
                let p = rng.between(1, pages - 1);
                let read = &sorted[..sorted.len().min(p as usize * PAGE)];
                if let Some(&id) = rng.pick(read) {
                    sim.mutate_after_offer_page(account, p, Mutation::RemoveOffer { id });
                }
            }
            self.change(
                account,
                Mutation::AddOrders {
                    count: rng.between(1, 3),
                    order_type: if main { 3 } else { 2 },
                },
            );
            let orders = sim.orders(account);
            for _ in 0..rng.between(1, 2) {
                if let Some(o) = rng.pick(&orders) {
                    self.change(
                        account,
                        Mutation::SetOrderStatus {
                            id: o.id,
                            status: (o.status + 1) % 6,
                        },
                    );
                }
            }
            self.advance_a_return(account, rng);
        }
    }

    /// A return moves on while eMAG handles it ([`truth::return_moving_on`]).
    fn advance_a_return(&self, account: &str, rng: &mut Rng) {
        if let Some(m) = truth::return_moving_on(self.sim(), account, rng) {
            self.change(account, m);
        }
    }

    /// Applies one change; a refused one is logged (FBE accounts, say, keep no stock).
    fn change(&self, account: &str, m: Mutation) -> bool {
        match self.sim().mutate(account, m) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(account, error = %e, "a simulator change was refused");
                false
            }
        }
    }

    fn account_kind(&self, account: &str) -> AccountKind {
        self.sim()
            .accounts()
            .into_iter()
            .find(|a| a.name == account)
            .map_or(AccountKind::Main, |a| a.kind)
    }

    /// The end of a backend: the scheduler stopped with SIGTERM, everything compared.
    async fn finish(&mut self) -> anyhow::Result<FinalCheck> {
        let mut errors = Vec::new();
        let clean_exit = match self.scheduler.as_mut() {
            Some(child) => match child.terminate(STOP_TIMEOUT).await {
                Ok(()) => true,
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    false
                }
            },
            None => false,
        };
        self.scheduler = None;
        let check = truth::compare(&self.store, self.sim(), &self.accounts, &DATA_KINDS).await?;
        let runs = all_runs(&self.store).await?;
        Ok(FinalCheck {
            backend: self.kind,
            scheduler_pid: self.scheduler_pid,
            scheduler_restarts: self.scheduler_restarts,
            clean_exit,
            data: check.total(),
            runs: RunTally::of(&runs),
            examples: check.examples,
            errors,
        })
    }

    /// Stops everything; the private cluster is removed when every check passed (kept for
    /// inspection otherwise).
    async fn close(mut self, passed: bool) {
        if let Some(mut child) = self.scheduler.take() {
            child.kill().await;
        }
        self.store.close().await;
        self.api.shutdown().await;
        self.sim.shutdown().await;
        if let Some((cluster, proxy)) = self.pg.take() {
            proxy.shutdown().await;
            if passed {
                cluster.destroy().await;
            } else {
                if let Err(e) = cluster.stop(StopMode::Fast).await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot stop the private PostgreSQL cluster");
                }
                eprintln!(
                    "chaos: kept for inspection: the private PostgreSQL cluster in {}",
                    cluster.dir().display()
                );
            }
        }
    }
}

/// Where a mid-body fault cuts: small cuts land in every answer (a count's is about 250
/// bytes with its headers), large ones only in pages of offers or orders.
fn cut_at(rng: &mut Rng) -> u64 {
    if rng.one_in(2) {
        u64::from(rng.between(0, 240))
    } else {
        u64::from(rng.between(240, 40_000))
    }
}

/// The latest run of each (account, kind).
fn latest_runs(runs: &[RunRow]) -> BTreeMap<(String, SyncKind), &RunRow> {
    let mut latest: BTreeMap<(String, SyncKind), &RunRow> = BTreeMap::new();
    for r in runs {
        let key = (r.account.clone(), r.kind);
        if latest.get(&key).is_none_or(|l| l.id < r.id) {
            latest.insert(key, r);
        }
    }
    latest
}

/// Nothing queued, running or interrupted, and the latest run of every (account, kind) that
/// has one succeeded — every data kind of every account among them.
fn settled_history(runs: &[RunRow]) -> bool {
    let latest = latest_runs(runs);
    let every_data_kind = ACCOUNTS.iter().all(|a| {
        DATA_KINDS
            .iter()
            .all(|k| latest.contains_key(&((*a).to_owned(), *k)))
    });
    every_data_kind
        && latest.values().all(|r| r.state == RunState::Succeeded)
        && !runs.iter().any(|r| {
            matches!(
                r.state,
                RunState::Queued | RunState::Running | RunState::Interrupted
            )
        })
}

async fn last_run_id(store: &Store) -> anyhow::Result<i64> {
    Ok(all_runs(store).await?.last().map_or(0, |r| r.id))
}

/// The scheduler's environment: a seller's variables for the simulator's two accounts
/// through the proxy, the database, every kind every minute, a short timeout, quick retries,
/// debug logs (the lines the harness wakes up on).
fn child_vars(
    sim: &RunningSim,
    api: &FaultProxy,
    database_url: &str,
    dir: &Path,
    api_timeout: Duration,
) -> HashMap<String, String> {
    let base_url = format!("http://{}/api-3", api.addr());
    let mut vars = HashMap::new();
    for a in sim.sim.accounts() {
        let prefix = if a.name == "main" {
            "EMAG".to_owned()
        } else {
            format!("EMAG_{}", a.name.to_ascii_uppercase())
        };
        vars.insert(format!("{prefix}_API_USERNAME"), a.username.clone());
        vars.insert(format!("{prefix}_API_PASSWORD"), a.password.clone());
        vars.insert(format!("{prefix}_API_URL"), base_url.clone());
        let name = a.name.to_ascii_uppercase();
        vars.insert(
            format!("EMAG_{name}_SYNC_INTERVAL"),
            INTERVAL_MINUTES.to_string(),
        );
        // Every kind scheduled (an FBE account syncs offers only by default): a schedule
        // that runs by time is also one whose failed runs the scheduler retries.
        vars.insert(format!("EMAG_{name}_SYNC_TYPES"), "full".to_owned());
    }
    for (k, v) in [
        ("DATABASE_URL", database_url.to_owned()),
        ("EMAG_RATE_LIMIT", "off".to_owned()),
        ("EMAG_API_TIMEOUT", format!("{}", api_timeout.as_secs_f64())),
        ("EMAG_RETRY_DELAY", format!("{RETRY_DELAY_MS}ms")),
        ("EMAG_MAX_RETRIES", MAX_RETRIES.to_string()),
        ("EMAG_LEASE_TTL", LEASE_TTL_SECS.to_string()),
        ("EMAG_BACKUP_KEEP", "0".to_owned()),
        ("EMAG_LOG_LEVEL", "debug".to_owned()),
        ("NO_COLOR", "1".to_owned()),
        (
            "EMAG_PID_FILE",
            dir.join("emag-sync.pid").display().to_string(),
        ),
        (
            "EMAG_LOG_FILE",
            dir.join("emag-sync-daemon.log").display().to_string(),
        ),
    ] {
        vars.insert(k.to_owned(), v);
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_rounds_throw_different_faults_and_enough_throw_every_one() {
        let backends = [BackendKind::Sqlite, BackendKind::Postgres];
        let few = plan(3, &backends, 6, &[]);
        for rounds in &few {
            let distinct: std::collections::HashSet<_> = rounds.iter().collect();
            assert_eq!(distinct.len(), 6, "{few:?}");
        }
        assert!(few[0].iter().all(|f| f.place() != Place::Postgres));
        let full = plan(3, &backends, 50, &[]);
        for (b, rounds) in backends.iter().zip(&full) {
            let distinct: std::collections::HashSet<_> = rounds.iter().collect();
            assert_eq!(distinct.len(), FaultKind::for_backend(*b).len());
        }
        assert_eq!(plan(3, &backends, 6, &[]), few, "the seed decides");
        let only = plan(3, &backends, 4, &[FaultKind::PgDown, FaultKind::Stall]);
        assert_eq!(only[0], vec![FaultKind::Stall; 4]);
        assert_eq!(
            only[1].iter().filter(|f| **f == FaultKind::PgDown).count(),
            2
        );
        for f in FaultKind::API.into_iter().chain(FaultKind::POSTGRES) {
            assert_eq!(FaultKind::parse(f.name()), Some(f));
        }
    }

    fn run(id: i64, account: &str, kind: SyncKind, state: RunState) -> RunRow {
        RunRow {
            id,
            account: account.to_owned(),
            kind,
            trigger: RunTrigger::Manual,
            state,
            attempt: 1,
            created_at: 0,
            started_at: None,
            finished_at: None,
            checkpoint_page: 0,
            total_items: None,
            counts: domain::RunCounts::default(),
            error_class: (state == RunState::Failed).then_some(ErrorClass::Transport),
            error_message: None,
            emag_messages: Vec::new(),
            note: None,
            holder: None,
            heartbeat_at: None,
            slot: None,
            reclaimed_from: None,
            reclaimed_at: None,
        }
    }

    #[test]
    fn a_history_is_settled_when_every_schedules_latest_run_succeeded_and_nothing_is_active() {
        let mut runs = Vec::new();
        let mut id = 0;
        for a in ACCOUNTS {
            for k in DATA_KINDS {
                id += 1;
                runs.push(run(id, a, k, RunState::Failed));
                id += 1;
                runs.push(run(id, a, k, RunState::Succeeded));
            }
        }
        assert!(settled_history(&runs), "earlier failures do not count");
        runs.push(run(100, "main", SyncKind::Offers, RunState::Failed));
        assert!(!settled_history(&runs), "a latest failure does");
        runs.push(run(101, "main", SyncKind::Offers, RunState::Succeeded));
        runs.push(run(102, "fbe", SyncKind::Orders, RunState::Queued));
        assert!(!settled_history(&runs), "a queued run");
        runs.pop();
        runs.retain(|r| !(r.account == "fbe" && r.kind == SyncKind::Returns));
        assert!(!settled_history(&runs), "a data kind never run");
    }

    #[test]
    fn run_tallies_sort_outcomes_and_triggers() {
        let mut retried = run(3, "fbe", SyncKind::Orders, RunState::Succeeded);
        retried.trigger = RunTrigger::Retry;
        let mut unclassified = run(4, "fbe", SyncKind::Offers, RunState::Failed);
        unclassified.error_class = None;
        let t = RunTally::of(&[
            run(1, "main", SyncKind::Offers, RunState::Failed),
            run(2, "main", SyncKind::Offers, RunState::Running),
            retried,
            unclassified,
        ]);
        assert_eq!(
            (t.runs, t.succeeded, t.unfinished, t.unclassified, t.retries),
            (4, 1, 1, 1, 1)
        );
        assert_eq!(t.failed_text(), "1 transport");
    }
}
