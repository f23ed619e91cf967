//! The kill harness (issue 11, point 1): SIGKILL a real `emag-sync sync …` or
//! `emag-sync start` at a chosen moment of a sync, restart it, and compare the store with the
//! simulator's truth.
//!
//! Each backend gets its own database and its own in-process simulator (accounts `main` and
//! `fbe`, every answer delayed by a fixed latency so a run is still in its phase when the kill
//! lands). A *point* is one kill:
//!
//! 1. **Arrange**: the simulator's data changes in the scope the command syncs (prices,
//!    stock, deleted and new offers, new orders and order status changes, return status
//!    changes), and for the target run, changes queued between two pages of its scan (an
//!    offer deleted from a page already read, so the next one moves up unseen).
//! 2. **Kill**: the child runs (`sync <account> --kind <kind>`, or `start` with the runs
//!    queued) and is SIGKILLed when the run reaches the chosen moment: its claim (the
//!    `run claimed` debug line), page *k* of its offer scan, the *j*-th read by id while it
//!    confirms removals, the *j*-th answer of its order windows, or its first return window —
//!    read from the simulator's journal, which records an answer before sending it, so the
//!    child never has it. Nothing is slept for.
//! 3. **Restart**: the same command again (`start`: until no run is queued or running); the
//!    killed run must be resumed (taken over: its attempt grows) or fail with a classified
//!    error. Then the store is compared with the simulator: nothing *lost*, *duplicated* or
//!    *falsely removed*.
//! 4. **Settle**: the same command once more, unkilled; the store must now equal the
//!    simulator (no *phantom* or *stale* row: those a run may leave when the catalog moved
//!    behind pages it had read, and the next run must clear them), and no run may be left
//!    queued, running or interrupted.
//!
//! After its points, each backend gets a final `sync all` and a comparison of everything.
//! The choices (command and phase per point, account, page, deletions, …) come from one seed.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use domain::{RunState, SyncKind};
use emag_sim::{
    AccountKind, AccountSpec, FaultPlan, JournalEntry, Mutation, RunningSim, SimConfig, Simulator,
};
use rust_decimal::Decimal;
use serde::Serialize;
use storage::{RunRow, Store};
use tokio::process::Command;
use tokio::time::Instant;

use crate::journal::{AnswerWatch, ScanMark, ScanStep, ScanWatch, ORDER_RESOURCE, RETURN_RESOURCE};
use crate::proc::{has_field, tail, Proc};
use crate::rng::Rng;
use crate::runs::{all_runs, held_by, run_untouched};
use crate::truth::{self, Tally};

/// The simulated accounts: a seller-fulfilled and a fulfilled-by-eMAG one.
const ACCOUNTS: [&str; 2] = ["main", "fbe"];
/// The kinds a point syncs and compares (reference data has no truth to compare with).
const DATA_KINDS: [SyncKind; 3] = [SyncKind::Offers, SyncKind::Orders, SyncKind::Returns];
/// Offers per page of a scan.
const PAGE: usize = 100;
/// Order reads overlap the stored cursor by three weeks, so even a run right after another
/// reads several 7-day windows of each type: at least six order answers per run.
const ORDERS_OVERLAP_HOURS: u32 = 21 * 24;
/// Fewer order answers than a run has at least ([`ORDERS_OVERLAP_HOURS`]): a kill after one
/// of them lands with the run still reading.
const ORDER_ANSWERS_BEFORE_THE_END: u32 = 5;
/// The log line of a run's claim, and of its end (`src/sync/mod.rs`, debug level).
const CLAIMED_LINE: &str = "run claimed";
const ENDED_LINE: &str = "run ended";
/// What `start` prints once its first tick is done (`src/bin/emag-sync/commands/daemon.rs`).
const READY_LINE: &str = "scheduler ready";
/// How long a stopped `start` may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Which store a backend is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

/// A database the harness may fill: fresh, used by nothing else.
#[derive(Debug, Clone)]
pub struct Backend {
    pub kind: BackendKind,
    pub url: String,
}

/// The command that is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `emag-sync sync <account> --kind <kind>`.
    Sync,
    /// `emag-sync start`, with the runs of every account and kind queued.
    Start,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Sync => "sync",
            Target::Start => "start",
        }
    }
}

/// Where in a run the kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Right after the claim, before the first answer (any kind).
    Claimed,
    /// After page *k* of a full offer scan was answered.
    OfferScan,
    /// After the *j*-th read by id that confirms removals (offers deleted in the simulator,
    /// and one that moved up a page unseen).
    Removals,
    /// After the *j*-th answer of the order windows.
    OrderWindows,
    /// After the first return window was answered.
    Returns,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Claimed,
        Phase::OfferScan,
        Phase::Removals,
        Phase::OrderWindows,
        Phase::Returns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Claimed => "claimed",
            Phase::OfferScan => "offer scan",
            Phase::Removals => "removal confirmation",
            Phase::OrderWindows => "order windows",
            Phase::Returns => "returns",
        }
    }
}

/// Every (command, phase) pair, each as likely.
fn combos() -> Vec<(Target, Phase)> {
    [Target::Sync, Target::Start]
        .into_iter()
        .flat_map(|t| Phase::ALL.into_iter().map(move |p| (t, p)))
        .collect()
}

/// The (command, phase) of each point of each backend: the pairs in an order shuffled from
/// the seed, dealt in turn, the second backend continuing where the first stopped — so a few
/// points cover as many different pairs as they can, and 10 or more per backend cover all.
pub fn plan(seed: u64, backends: usize, points: usize) -> Vec<Vec<(Target, Phase)>> {
    let mut order = combos();
    Rng::fork(seed, u64::MAX).shuffle(&mut order);
    (0..backends)
        .map(|b| {
            (0..points)
                .map(|i| order[(b * points + i) % order.len()])
                .collect()
        })
        .collect()
}

/// What the harness is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `emag-sync` binary to kill.
    pub exe: PathBuf,
    pub backends: Vec<Backend>,
    /// Kills per backend.
    pub points: usize,
    pub seed: u64,
    /// Added to every answer of the simulator.
    pub latency: Duration,
    /// Offers and orders per simulated account at the start.
    pub offers: u32,
    pub orders: u32,
    /// Logs, pid files and the children's working directories go here.
    pub dir: PathBuf,
    /// The longest any one step (a child reaching its moment, a restart, a settle) may take.
    pub step_timeout: Duration,
    /// Print a line per point on stderr.
    pub verbose: bool,
}

impl Options {
    pub fn new(exe: PathBuf, backends: Vec<Backend>, dir: PathBuf) -> Options {
        Options {
            exe,
            backends,
            points: 50,
            seed: 1,
            latency: Duration::from_millis(40),
            offers: 450,
            orders: 400,
            dir,
            step_timeout: Duration::from_secs(120),
            verbose: false,
        }
    }
}

/// One kill and what followed it.
#[derive(Debug, Clone, Serialize)]
pub struct PointResult {
    pub backend: BackendKind,
    pub index: usize,
    pub target: Target,
    pub phase: Phase,
    pub account: String,
    pub kind: SyncKind,
    /// Page *k*, or the *j*-th read or answer, the kill waited for (0 for a claim).
    pub nth: u32,
    /// The kill found the run running in the phase (not ended, not elsewhere).
    pub landed: bool,
    pub victim_run: Option<i64>,
    pub checkpoint_at_kill: Option<i64>,
    /// Other runs the killed process held at the kill (`start`).
    pub collateral_runs: usize,
    /// Processes started after the kill until the killed run was over (restarts).
    pub restarts: u32,
    /// The killed run went on in a later attempt and ended.
    pub resumed: bool,
    /// The killed run ended failed with a classified error.
    pub cleanly_failed: bool,
    /// The store against the simulator after the restart, and after the settling run.
    pub after_restart: Tally,
    pub after_settle: Tally,
    /// Runs of this point still queued, running or interrupted at its end, or failed
    /// without a classified error.
    pub unfinished_runs: usize,
    /// Runs of this point that failed with a classified error.
    pub failed_runs: usize,
    pub seconds: f64,
    pub notes: Vec<String>,
    /// Problems of the harness itself (a child that did not start, a step over its time).
    pub errors: Vec<String>,
    pub examples: Vec<String>,
}

impl PointResult {
    /// Lost, duplicated and falsely removed rows, the worse of the two checks per category.
    fn worst(&self) -> Tally {
        let (a, b) = (&self.after_restart, &self.after_settle);
        Tally {
            expected: b.expected,
            lost: a.lost.max(b.lost),
            duplicated: a.duplicated.max(b.duplicated),
            falsely_removed: a.falsely_removed.max(b.falsely_removed),
            phantom: b.phantom,
            stale: b.stale,
        }
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let what = format!(
            "{} point {} ({} {}, {} {} #{})",
            self.backend.as_str(),
            self.index + 1,
            self.target.as_str(),
            self.phase.as_str(),
            self.account,
            self.kind,
            self.nth
        );
        let w = self.worst();
        if w.harmful() > 0 {
            out.push(format!(
                "{what}: {} lost, {} duplicated, {} falsely removed row(s)",
                w.lost, w.duplicated, w.falsely_removed
            ));
        }
        if w.unsettled() > 0 {
            out.push(format!(
                "{what}: the store did not settle: {} phantom, {} stale row(s) after an unkilled run",
                w.phantom, w.stale
            ));
        }
        if self.unfinished_runs > 0 {
            out.push(format!(
                "{what}: {} run(s) left unfinished",
                self.unfinished_runs
            ));
        }
        if !self.landed {
            out.push(format!("{what}: the kill missed its phase"));
        } else if !(self.resumed || self.cleanly_failed) {
            out.push(format!(
                "{what}: the killed run {} was neither resumed nor cleanly failed",
                self.victim_run.unwrap_or(0)
            ));
        }
        out.extend(self.errors.iter().map(|e| format!("{what}: {e}")));
        out
    }
}

/// The end of a backend: a final unkilled `sync all` and everything compared.
#[derive(Debug, Clone, Serialize)]
pub struct FinalCheck {
    pub backend: BackendKind,
    pub data: Tally,
    pub unfinished_runs: usize,
    pub runs: usize,
    pub examples: Vec<String>,
    pub errors: Vec<String>,
}

/// Everything the harness measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub points_per_backend: usize,
    pub latency_ms: u64,
    pub points: Vec<PointResult>,
    pub finals: Vec<FinalCheck>,
    pub seconds: f64,
    pub failures: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Kills that landed in their phase.
    pub fn landed(&self) -> usize {
        self.points.iter().filter(|p| p.landed).count()
    }

    fn judge(&mut self) {
        let mut failures: Vec<String> = self.points.iter().flat_map(|p| p.failures()).collect();
        for f in &self.finals {
            let b = f.backend.as_str();
            if f.data.mismatches() > 0 {
                failures.push(format!(
                    "{b} final check: {} lost, {} duplicated, {} falsely removed, {} phantom, {} stale row(s)",
                    f.data.lost, f.data.duplicated, f.data.falsely_removed, f.data.phantom, f.data.stale
                ));
            }
            if f.unfinished_runs > 0 {
                failures.push(format!(
                    "{b} final check: {} run(s) left unfinished",
                    f.unfinished_runs
                ));
            }
            failures.extend(f.errors.iter().map(|e| format!("{b} final check: {e}")));
        }
        self.failures = failures;
    }

    /// The per-phase table (Markdown), a line per backend's final check, and what failed.
    pub fn markdown(&self) -> String {
        #[derive(Default)]
        struct Row {
            points: usize,
            landed: usize,
            restarts: u32,
            resumed: usize,
            failed_clean: usize,
            lost: usize,
            duplicated: usize,
            falsely_removed: usize,
            unsettled: usize,
            unfinished: usize,
            seconds: f64,
        }
        impl Row {
            fn add(&mut self, p: &PointResult) {
                let w = p.worst();
                self.points += 1;
                self.landed += usize::from(p.landed);
                self.restarts += p.restarts;
                self.resumed += usize::from(p.resumed);
                self.failed_clean += usize::from(p.cleanly_failed);
                self.lost += w.lost;
                self.duplicated += w.duplicated;
                self.falsely_removed += w.falsely_removed;
                self.unsettled += w.unsettled();
                self.unfinished += p.unfinished_runs;
                self.seconds += p.seconds;
            }
            fn line(&self, o: &mut String, backend: &str, what: &str) {
                let _ = writeln!(
                    o,
                    "| {backend} | {what} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {:.1} |",
                    self.points,
                    self.landed,
                    self.restarts,
                    self.resumed,
                    self.failed_clean,
                    self.lost,
                    self.duplicated,
                    self.falsely_removed,
                    self.unsettled,
                    self.unfinished,
                    self.seconds
                );
            }
        }
        let mut o = String::new();
        let _ = writeln!(
            o,
            "| backend | command: phase | points | kills landed in phase | restarts | resumed / cleanly failed | lost | duplicated | falsely removed | not settled (phantom + stale) | unfinished runs | time (s) |"
        );
        let _ = writeln!(
            o,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let mut by: BTreeMap<(BackendKind, Target, Phase), Row> = BTreeMap::new();
        let mut per_backend: BTreeMap<BackendKind, Row> = BTreeMap::new();
        let mut all = Row::default();
        for p in &self.points {
            by.entry((p.backend, p.target, p.phase)).or_default().add(p);
            per_backend.entry(p.backend).or_default().add(p);
            all.add(p);
        }
        for (backend, total) in &per_backend {
            for ((b, t, ph), row) in by.iter().filter(|((b, ..), _)| b == backend) {
                row.line(
                    &mut o,
                    b.as_str(),
                    &format!("{}: {}", t.as_str(), ph.as_str()),
                );
            }
            total.line(&mut o, backend.as_str(), "**all**");
        }
        all.line(&mut o, "**both**", "**all**");
        let _ = writeln!(o);
        for f in &self.finals {
            let _ = writeln!(
                o,
                "final check, {}: {} run(s), {} unfinished; {} live items compared: {} lost, {} duplicated, {} falsely removed, {} phantom, {} stale",
                f.backend.as_str(),
                f.runs,
                f.unfinished_runs,
                f.data.expected,
                f.data.lost,
                f.data.duplicated,
                f.data.falsely_removed,
                f.data.phantom,
                f.data.stale
            );
        }
        let summary = format!(
            "seed {}, {} point(s) per backend, simulator latency {} ms, {:.1} s in all",
            self.seed, self.points_per_backend, self.latency_ms, self.seconds,
        );
        let examples = self
            .points
            .iter()
            .flat_map(|p| p.examples.iter())
            .chain(self.finals.iter().flat_map(|f| f.examples.iter()));
        crate::verdict::write_tail(
            &mut o,
            &summary,
            "; after a restart, phantom and stale rows are allowed — the settling run must clear them",
            examples,
            &self.failures,
        );
        o
    }
}

/// Runs every point of every backend, one after another.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let plans = plan(opts.seed, opts.backends.len(), opts.points);
    let mut report = Report {
        seed: opts.seed,
        points_per_backend: opts.points,
        latency_ms: u64::try_from(opts.latency.as_millis()).unwrap_or(u64::MAX),
        points: Vec::new(),
        finals: Vec::new(),
        seconds: 0.0,
        failures: Vec::new(),
    };
    for (b, (backend, plan)) in opts.backends.iter().zip(plans).enumerate() {
        let bench = Bench::new(opts, backend).await?;
        for (i, (target, phase)) in plan.into_iter().enumerate() {
            let part = u64::try_from(b * 100_000 + i).unwrap_or(u64::MAX);
            let mut rng = Rng::fork(opts.seed, part);
            let result = bench.point(i, target, phase, &mut rng).await?;
            if opts.verbose {
                eprintln!("{}", one_line(&result));
            }
            report.points.push(result);
        }
        report.finals.push(bench.final_check().await?);
        bench.close().await;
    }
    report.seconds = secs(started.elapsed());
    report.judge();
    Ok(report)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// A point in one line, for progress.
fn one_line(p: &PointResult) -> String {
    let w = p.worst();
    format!(
        "kill: {} {:>2} {} {} {} {} #{}: {}{}, {} other run(s) killed with it, {} restart(s), {}; lost {}, duplicated {}, falsely removed {}, not settled {}, unfinished runs {}; {:.1} s{}",
        p.backend.as_str(),
        p.index + 1,
        p.target.as_str(),
        p.phase.as_str(),
        p.account,
        p.kind,
        p.nth,
        if p.landed { "landed" } else { "MISSED" },
        p.victim_run
            .map(|id| format!(" (run {id}, checkpoint {})", p.checkpoint_at_kill.unwrap_or(0)))
            .unwrap_or_default(),
        p.collateral_runs,
        p.restarts,
        if p.resumed {
            "resumed"
        } else if p.cleanly_failed {
            "failed cleanly"
        } else {
            "NOT resumed"
        },
        w.lost,
        w.duplicated,
        w.falsely_removed,
        w.unsettled(),
        p.unfinished_runs,
        p.seconds,
        if p.failures().is_empty() {
            String::new()
        } else {
            format!(
                "; notes: {}; errors: {}",
                p.notes.join("; "),
                p.errors.join("; ")
            )
        }
    )
}

/// One backend: its store, its simulator, its children's environment.
struct Bench<'a> {
    opts: &'a Options,
    kind: BackendKind,
    store: Store,
    sim: RunningSim,
    dir: PathBuf,
    vars: HashMap<String, String>,
    accounts: Vec<String>,
}

/// The run a point aims at.
#[derive(Debug, Clone)]
struct Aim {
    target: Target,
    phase: Phase,
    account: String,
    kind: SyncKind,
    nth: u32,
}

impl Aim {
    /// The `sync` arguments of the point (also its restart and settle).
    fn sync_args(&self) -> Vec<String> {
        vec![
            "sync".to_owned(),
            self.account.clone(),
            "--kind".to_owned(),
            self.kind.as_str().to_owned(),
            "--json".to_owned(),
        ]
    }

    /// What the point syncs, compares and changes: the one (account, kind) of `sync`, every
    /// account and kind of `start`.
    fn scope(&self) -> (Vec<String>, Vec<SyncKind>) {
        match self.target {
            Target::Sync => (vec![self.account.clone()], vec![self.kind]),
            Target::Start => (
                ACCOUNTS.iter().map(|a| (*a).to_owned()).collect(),
                DATA_KINDS.to_vec(),
            ),
        }
    }
}

/// What ended the wait for the moment.
#[derive(Debug)]
enum Moment {
    /// The journal entry the watch struck at was recorded.
    Answered,
    /// The claim line of this run.
    Claimed(i64),
    /// The target run ended first (`start`).
    RunEnded,
    /// The child ended first.
    Exited(Option<ExitStatus>),
}

impl<'a> Bench<'a> {
    async fn new(opts: &'a Options, backend: &Backend) -> anyhow::Result<Bench<'a>> {
        let dir = opts.dir.join(backend.kind.as_str());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let store = Store::open(&backend.url)
            .await
            .with_context(|| format!("cannot open {}", storage::redact_url(&backend.url)))?;
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
        let vars = child_vars(&sim, &backend.url, &dir);
        Ok(Bench {
            opts,
            kind: backend.kind,
            store,
            sim,
            dir,
            vars,
            accounts: ACCOUNTS.iter().map(|a| (*a).to_owned()).collect(),
        })
    }

    async fn close(self) {
        self.store.close().await;
        self.sim.shutdown().await;
    }

    fn sim(&self) -> &Simulator {
        &self.sim.sim
    }

    /// One point: arrange, kill, restart, compare, settle, compare.
    async fn point(
        &self,
        index: usize,
        target: Target,
        phase: Phase,
        rng: &mut Rng,
    ) -> anyhow::Result<PointResult> {
        let started = Instant::now();
        let account = rng
            .pick(&self.accounts)
            .cloned()
            .unwrap_or_else(|| ACCOUNTS[0].to_owned());
        let kind = match phase {
            Phase::Claimed => *rng.pick(&DATA_KINDS).unwrap_or(&SyncKind::Offers),
            Phase::OfferScan | Phase::Removals => SyncKind::Offers,
            Phase::OrderWindows => SyncKind::Orders,
            Phase::Returns => SyncKind::Returns,
        };
        let mut aim = Aim {
            target,
            phase,
            account,
            kind,
            nth: 0,
        };
        let mut result = PointResult {
            backend: self.kind,
            index,
            target,
            phase,
            account: aim.account.clone(),
            kind,
            nth: 0,
            landed: false,
            victim_run: None,
            checkpoint_at_kill: None,
            collateral_runs: 0,
            restarts: 0,
            resumed: false,
            cleanly_failed: false,
            after_restart: Tally::default(),
            after_settle: Tally::default(),
            unfinished_runs: 0,
            failed_runs: 0,
            seconds: 0.0,
            notes: Vec::new(),
            errors: Vec::new(),
            examples: Vec::new(),
        };
        let runs_before = all_runs(&self.store).await?.last().map_or(0, |r| r.id);
        let tag = format!("{:03}", index + 1);

        // Arrange.
        if phase == Phase::Removals {
            self.ensure_offers_stored(&aim.account, &tag).await?;
        }
        aim.nth = self.arrange(&aim, rng);
        result.nth = aim.nth;
        if target == Target::Start {
            self.queue_all(&tag).await?;
        }

        // Kill at the moment.
        let after = self.sim().journal().last().map_or(0, |e| e.seq);
        let args: Vec<String> = match target {
            Target::Sync => aim.sync_args(),
            Target::Start => vec!["start".to_owned(), "--no-dashboard".to_owned()],
        };
        let mut victim = self.spawn(&args, &format!("{tag}-killed"))?;
        let moment = self.wait_for_moment(&mut victim, &aim, after).await;
        victim.kill().await;
        let moment = match moment {
            Ok(m) => m,
            Err(e) => {
                result.errors.push(format!(
                    "{e:#}; log {}:\n{}",
                    victim.log.display(),
                    tail(&victim.log, 15)
                ));
                Moment::Exited(None)
            }
        };
        let reached = matches!(moment, Moment::Answered | Moment::Claimed(_));
        let found = self.find_victim(&aim, &moment, victim.pid).await?;
        let attempt_at_kill = found.as_ref().map(|r| r.attempt);
        if let Some(run) = &found {
            result.victim_run = Some(run.id);
            result.checkpoint_at_kill = Some(run.checkpoint_page);
            result.landed = reached && landed(&aim, run, victim.pid);
            if !result.landed {
                result.notes.push(format!(
                    "run {} was {} with checkpoint {} at the kill",
                    run.id, run.state, run.checkpoint_page
                ));
            }
        } else {
            result.notes.push(match &moment {
                Moment::Exited(status) => format!(
                    "the child ended ({}) before its run reached the moment",
                    status.map_or_else(|| "?".to_owned(), |s| s.to_string())
                ),
                _ => "the run ended before the moment".to_owned(),
            });
        }
        result.collateral_runs = self
            .store
            .active_runs()
            .await?
            .iter()
            .filter(|r| held_by(r, victim.pid) && Some(r.id) != result.victim_run)
            .count();

        // Restart until the killed run is over.
        match self.rerun(&aim, &format!("{tag}-restart"), false).await {
            Ok(note) => result.notes.extend(note),
            Err(e) => result.errors.push(format!("restart: {e:#}")),
        }
        result.restarts += 1;
        let (accounts, kinds) = aim.scope();
        let check = truth::compare(&self.store, self.sim(), &accounts, &kinds).await?;
        result.after_restart = check.total();
        result.examples.extend(check.examples.into_iter().map(|e| {
            format!(
                "{} #{}, after the restart: {e}",
                self.kind.as_str(),
                index + 1
            )
        }));

        // Settle: once more, unkilled.
        match self.rerun(&aim, &format!("{tag}-settle"), true).await {
            Ok(note) => result.notes.extend(note),
            Err(e) => result.errors.push(format!("settling run: {e:#}")),
        }
        let check = truth::compare(&self.store, self.sim(), &accounts, &kinds).await?;
        result.after_settle = check.total();
        result.examples.extend(check.examples.into_iter().map(|e| {
            format!(
                "{} #{}, after the settling run: {e}",
                self.kind.as_str(),
                index + 1
            )
        }));

        // Every run of the point ended; the killed one resumed or cleanly failed.
        let runs: Vec<RunRow> = all_runs(&self.store)
            .await?
            .into_iter()
            .filter(|r| r.id > runs_before || Some(r.id) == result.victim_run)
            .collect();
        result.unfinished_runs = runs.iter().filter(|r| unfinished(r)).count();
        result.failed_runs = runs
            .iter()
            .filter(|r| r.state == RunState::Failed && r.error_class.is_some())
            .count();
        if let Some(run) = runs.iter().find(|r| Some(r.id) == result.victim_run) {
            let later = attempt_at_kill.is_some_and(|a| run.attempt > a);
            result.resumed = later && run.state == RunState::Succeeded;
            result.cleanly_failed = run.state == RunState::Failed && run.error_class.is_some();
            if run.state.is_terminal() && !later {
                result.notes.push(format!(
                    "run {} ended {} in the killed attempt",
                    run.id, run.state
                ));
            }
        }
        for r in runs
            .iter()
            .filter(|r| unfinished(r) || r.state == RunState::Failed)
        {
            result.notes.push(format!(
                "run {} ({} {}) {}{}",
                r.id,
                r.account,
                r.kind,
                r.state,
                r.error_message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
        result.seconds = secs(started.elapsed());
        Ok(result)
    }

    /// A removal needs stored offers: a first, unkilled offer sync of `account` if it has none.
    async fn ensure_offers_stored(&self, account: &str, tag: &str) -> anyhow::Result<()> {
        let (live, _) = self.store.count_offers(account).await?;
        if live > 0 {
            return Ok(());
        }
        let args: Vec<String> = ["sync", account, "--kind", "offers", "--json"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let out = self.run_to_end(&args, &format!("{tag}-prepare")).await?;
        if !out.success() {
            bail!("the first offer sync of {account} failed: {out:?}");
        }
        Ok(())
    }

    /// Changes the simulator's data in the point's scope and queues changes between pages of
    /// the target run; returns the point's *k* or *j*.
    fn arrange(&self, aim: &Aim, rng: &mut Rng) -> u32 {
        let sim = self.sim();
        let (accounts, kinds) = aim.scope();
        let mut removed_from_target = 0_u32;
        for account in &accounts {
            let is_target = *account == aim.account;
            let main = self.account_kind(account) == AccountKind::Main;
            if kinds.contains(&SyncKind::Offers) {
                let live: Vec<u32> = sim.offers(account).iter().map(|o| o.id).collect();
                // Deleted before the run: the scan misses them and must confirm them gone.
                let deletions = if is_target && aim.phase == Phase::Removals {
                    rng.between(2, 5)
                } else {
                    rng.between(0, 2)
                };
                let mut ids = live.clone();
                rng.shuffle(&mut ids);
                for id in ids.iter().take(deletions as usize) {
                    if self.change(account, Mutation::RemoveOffer { id: *id }) && is_target {
                        removed_from_target += 1;
                    }
                }
                for id in ids.iter().skip(deletions as usize).take(2) {
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
                    if let Some(id) = ids.get(deletions as usize + 2) {
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
                            count: rng.between(1, 120),
                        },
                    );
                }
            }
            if kinds.contains(&SyncKind::Orders) {
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
            }
            if kinds.contains(&SyncKind::Returns) {
                if let Some(m) = truth::return_moving_on(sim, account, rng) {
                    self.change(account, m);
                }
            }
        }

        // The target run: changes between its pages, and the moment it is killed at.
        let offers: Vec<u32> = sim.offers(&aim.account).iter().map(|o| o.id).collect();
        let pages = u32::try_from(offers.len().div_ceil(PAGE))
            .unwrap_or(1)
            .max(1);
        match aim.phase {
            Phase::Claimed => 0,
            Phase::OfferScan => {
                let k = rng.between(1, pages);
                if rng.one_in(2) {
                    self.delete_behind_the_scan(aim, &offers, k.min(pages - 1), rng);
                }
                if rng.one_in(2) {
                    // A price changed on a page the scan has read: stale until the next run.
                    let p = rng.between(1, k);
                    let read = &offers[..offers.len().min(p as usize * PAGE)];
                    if let Some(&id) = rng.pick(read) {
                        sim.mutate_after_offer_page(
                            &aim.account,
                            p,
                            Mutation::SetPrice {
                                id,
                                sale_price: Decimal::new(4_242, 2),
                            },
                        );
                    }
                }
                k
            }
            Phase::Removals => {
                let moved =
                    rng.one_in(2) && self.delete_behind_the_scan(aim, &offers, pages - 1, rng);
                // Reads by id: one per deleted offer, one for the offer that moved up. The
                // last read is the run's last answer, so the kill waits for one before it.
                let reads = removed_from_target + u32::from(moved);
                rng.between(1, reads.saturating_sub(1).max(1))
            }
            Phase::OrderWindows => {
                if rng.one_in(2) {
                    let orders = sim.orders(&aim.account);
                    if let Some(o) = rng.pick(&orders) {
                        sim.mutate_after_order_page(
                            &aim.account,
                            1,
                            Mutation::SetOrderStatus {
                                id: o.id,
                                status: (o.status + 1) % 6,
                            },
                        );
                    }
                }
                rng.between(1, ORDER_ANSWERS_BEFORE_THE_END)
            }
            // Each type's window is one read; the type-2 window always follows the type-3 one.
            Phase::Returns => 1,
        }
    }

    /// Queues, for when page `up_to` (or an earlier one) of the target's scan has been read,
    /// the deletion of an offer on a page already read: the next page's first offer moves up
    /// into it unseen, and the scan must find it by id rather than remove it. False when the
    /// scan has a single page (nothing can move up).
    fn delete_behind_the_scan(&self, aim: &Aim, offers: &[u32], up_to: u32, rng: &mut Rng) -> bool {
        if up_to == 0 {
            return false;
        }
        let p = rng.between(1, up_to);
        let read = &offers[..offers.len().min(p as usize * PAGE)];
        let Some(&id) = rng.pick(read) else {
            return false;
        };
        self.sim()
            .mutate_after_offer_page(&aim.account, p, Mutation::RemoveOffer { id });
        true
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

    /// A queued manual run of every account and kind, for `start` to claim, queued as an
    /// operator does it: `sync all --queue`.
    async fn queue_all(&self, tag: &str) -> anyhow::Result<()> {
        let args: Vec<String> = ["sync", "all", "--kind", "all", "--queue"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let out = self.run_to_end(&args, &format!("{tag}-queue")).await?;
        if !out.success() {
            bail!("`sync all --queue` failed: {out:?}");
        }
        Ok(())
    }

    /// Waits until the target run reaches its moment, the child ends, or the step times out.
    async fn wait_for_moment(
        &self,
        child: &mut Proc,
        aim: &Aim,
        after: u64,
    ) -> anyhow::Result<Moment> {
        let deadline = Instant::now() + self.opts.step_timeout;
        if aim.phase == Phase::Claimed {
            loop {
                tokio::select! {
                    line = child.lines.recv() => match line {
                        Some(line) => {
                            if let Some(id) = claim_of(&line, &aim.account, aim.kind) {
                                return Ok(Moment::Claimed(id));
                            }
                        }
                        None => return Ok(Moment::Exited(child.child.wait().await.ok())),
                    },
                    () = tokio::time::sleep_until(deadline) => {
                        bail!("the run's claim did not come within {} s", self.opts.step_timeout.as_secs())
                    }
                }
            }
        }
        let watch = RefCell::new(Watch::new(aim));
        let journal = self
            .sim()
            .wait_for_request(|e| e.seq > after && watch.borrow_mut().strikes(e));
        tokio::pin!(journal);
        loop {
            tokio::select! {
                // An answer is journaled before it is sent: its run cannot end before it.
                biased;
                _entry = &mut journal => return Ok(Moment::Answered),
                line = child.lines.recv() => match line {
                    Some(line) => {
                        if ended(&line, &aim.account, aim.kind) {
                            return Ok(Moment::RunEnded);
                        }
                    }
                    None => return Ok(Moment::Exited(child.child.wait().await.ok())),
                },
                () = tokio::time::sleep_until(deadline) => {
                    bail!("the run did not reach the moment within {} s", self.opts.step_timeout.as_secs())
                }
            }
        }
    }

    /// The killed run: the claimed one, or the target's running run the dead child held.
    async fn find_victim(
        &self,
        aim: &Aim,
        moment: &Moment,
        pid: u32,
    ) -> anyhow::Result<Option<RunRow>> {
        if let Moment::Claimed(id) = moment {
            return Ok(self.store.get_run(*id).await?);
        }
        Ok(self
            .store
            .active_runs()
            .await?
            .into_iter()
            .find(|r| r.account == aim.account && r.kind == aim.kind && held_by(r, pid)))
    }

    /// The point's command again, to its end: `sync` once; `start` until no run is queued or
    /// running, then stopped with SIGTERM. Notes what it says of its runs.
    /// `queue`: queue every account's runs for `start` first (a settling run; a restart
    /// finishes what the killed one left).
    async fn rerun(&self, aim: &Aim, name: &str, queue: bool) -> anyhow::Result<Option<String>> {
        match aim.target {
            Target::Sync => {
                let out = self.run_to_end(&aim.sync_args(), name).await?;
                if out.success() {
                    Ok(None)
                } else {
                    Ok(Some(format!("{name}: {out:?}")))
                }
            }
            Target::Start => {
                if queue {
                    self.queue_all(name).await?;
                }
                self.start_until_idle(name).await.map(|()| None)
            }
        }
    }

    /// `start` until the store has no queued or running run (checked at each of its log
    /// lines: every claim and every end of a run logs one), then SIGTERM and a clean exit.
    async fn start_until_idle(&self, name: &str) -> anyhow::Result<()> {
        let mut child = self.spawn(&["start".to_owned(), "--no-dashboard".to_owned()], name)?;
        let deadline = Instant::now() + self.opts.step_timeout;
        let waited = async {
            // Ready first: by then it has its SIGTERM handler, and has run its first tick.
            loop {
                tokio::select! {
                    line = child.lines.recv() => match line {
                        Some(line) if line.contains(READY_LINE) => break,
                        Some(_) => {}
                        None => bail!("`start` exited before it was ready"),
                    },
                    () = tokio::time::sleep_until(deadline) => {
                        bail!("`start` was not ready within {} s", self.opts.step_timeout.as_secs());
                    }
                }
            }
            loop {
                if self.store.active_runs().await?.is_empty() {
                    return Ok(());
                }
                tokio::select! {
                    line = child.lines.recv() => if line.is_none() {
                        bail!("`start` exited while runs were still queued or running");
                    },
                    () = tokio::time::sleep_until(deadline) => {
                        bail!("runs still queued or running {} s after `start`", self.opts.step_timeout.as_secs());
                    }
                }
            }
        }
        .await;
        if let Err(e) = waited {
            child.kill().await;
            return Err(e.context(format!(
                "log {}:\n{}",
                child.log.display(),
                tail(&child.log, 15)
            )));
        }
        child.terminate(STOP_TIMEOUT).await
    }

    /// Runs `args` to their end (bounded by the step time); stderr goes to the log `name`.
    async fn run_to_end(&self, args: &[String], name: &str) -> anyhow::Result<CliOutcome> {
        let log = self.dir.join(format!("{name}.log"));
        let out = tokio::time::timeout(
            self.opts.step_timeout,
            self.command(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output(),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "`emag-sync {}` did not end within {} s",
                args.join(" "),
                self.opts.step_timeout.as_secs()
            )
        })?
        .with_context(|| format!("cannot run `emag-sync {}`", args.join(" ")))?;
        std::fs::write(&log, &out.stderr)
            .with_context(|| format!("cannot write {}", log.display()))?;
        let summary: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        Ok(CliOutcome {
            status: out.status,
            runs: summary["runs"]
                .as_array()
                .map(|runs| {
                    runs.iter()
                        .map(|r| {
                            format!(
                                "{}/{} run {} {}{}",
                                r["account"].as_str().unwrap_or("?"),
                                r["kind"].as_str().unwrap_or("?"),
                                r["run_id"],
                                r["status"].as_str().unwrap_or("?"),
                                r["error"]
                                    .as_str()
                                    .map(|e| format!(": {e}"))
                                    .unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            log,
        })
    }

    /// The last step of a backend: an unkilled `sync all`, and every account and kind
    /// compared.
    async fn final_check(&self) -> anyhow::Result<FinalCheck> {
        let mut errors = Vec::new();
        let args: Vec<String> = ["sync", "all", "--kind", "all", "--json"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        match self.run_to_end(&args, "final").await {
            Ok(out) if out.success() => {}
            Ok(out) => errors.push(format!("the final `sync all` failed: {out:?}")),
            Err(e) => errors.push(format!("{e:#}")),
        }
        let check = truth::compare(&self.store, self.sim(), &self.accounts, &DATA_KINDS).await?;
        let runs = all_runs(&self.store).await?;
        Ok(FinalCheck {
            backend: self.kind,
            data: check.total(),
            unfinished_runs: runs.iter().filter(|r| unfinished(r)).count(),
            runs: runs.len(),
            examples: check.examples,
            errors,
        })
    }

    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.opts.exe);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.vars)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    fn spawn(&self, args: &[String], name: &str) -> anyhow::Result<Proc> {
        let log = self.dir.join(format!("{name}.log"));
        Proc::spawn(
            self.command(args),
            &format!("emag-sync {}", args.join(" ")),
            log,
        )
    }
}

/// What a `sync` run to its end said.
struct CliOutcome {
    status: ExitStatus,
    runs: Vec<String>,
    log: PathBuf,
}

impl CliOutcome {
    fn success(&self) -> bool {
        self.status.success()
    }
}

impl std::fmt::Debug for CliOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}]; log {}:\n{}",
            self.status,
            self.runs.join(", "),
            self.log.display(),
            tail(&self.log, 10)
        )
    }
}

/// Which journal entries a point waits for.
#[derive(Debug)]
enum Watch {
    Scan(ScanWatch),
    Answers(AnswerWatch),
}

impl Watch {
    fn new(aim: &Aim) -> Watch {
        match aim.phase {
            Phase::OfferScan => Watch::Scan(ScanWatch::new(&aim.account, ScanMark::Page(aim.nth))),
            Phase::Removals => {
                Watch::Scan(ScanWatch::new(&aim.account, ScanMark::ReadById(aim.nth)))
            }
            Phase::OrderWindows => {
                Watch::Answers(AnswerWatch::new(&aim.account, ORDER_RESOURCE, aim.nth))
            }
            Phase::Returns | Phase::Claimed => Watch::Answers(AnswerWatch::new(
                &aim.account,
                RETURN_RESOURCE,
                aim.nth.max(1),
            )),
        }
    }

    fn strikes(&mut self, e: &JournalEntry) -> bool {
        match self {
            Watch::Scan(w) => w.observe(e) == Some(ScanStep::Strike),
            Watch::Answers(w) => w.observe(e),
        }
    }
}

/// Whether a log line is `what` of a run of (`account`, `kind`).
fn run_line(line: &str, what: &str, account: &str, kind: SyncKind) -> bool {
    line.contains(what)
        && has_field(line, "account.name", account)
        && has_field(line, "sync.kind", kind.as_str())
}

/// Whether a log line tells the end of a run of (`account`, `kind`).
fn ended(line: &str, account: &str, kind: SyncKind) -> bool {
    run_line(line, ENDED_LINE, account, kind)
}

/// The run id of a `run claimed` line of (`account`, `kind`).
fn claim_of(line: &str, account: &str, kind: SyncKind) -> Option<i64> {
    if !run_line(line, CLAIMED_LINE, account, kind) {
        return None;
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("run.id="))
        .and_then(|id| id.parse().ok())
}

/// Whether the kill found the run in its phase: running, held by the killed child, and —
/// for a claim — with nothing written since.
fn landed(aim: &Aim, run: &RunRow, pid: u32) -> bool {
    run.state == RunState::Running
        && held_by(run, pid)
        && run.account == aim.account
        && run.kind == aim.kind
        && match aim.phase {
            Phase::Claimed => run_untouched(run),
            // Every page was written before removals are confirmed.
            Phase::Removals => run.checkpoint_page > 0,
            _ => true,
        }
}

/// A run that did not end as it should: still queued, running or interrupted, or failed
/// without a classified error.
fn unfinished(run: &RunRow) -> bool {
    matches!(
        run.state,
        RunState::Queued | RunState::Running | RunState::Interrupted
    ) || (run.state == RunState::Failed && run.error_class.is_none())
}

/// The children's environment: a seller's variables for the simulator's two accounts, the
/// database, no rate budget (the simulator's latency paces the runs), nothing scheduled by
/// time (`start` runs what is queued and what it takes over), debug logs (the claim line).
fn child_vars(sim: &RunningSim, database_url: &str, dir: &Path) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for a in sim.sim.accounts() {
        let prefix = if a.name == "main" {
            "EMAG".to_owned()
        } else {
            format!("EMAG_{}", a.name.to_ascii_uppercase())
        };
        vars.insert(format!("{prefix}_API_USERNAME"), a.username.clone());
        vars.insert(format!("{prefix}_API_PASSWORD"), a.password.clone());
        vars.insert(format!("{prefix}_API_URL"), sim.base_url.clone());
        let name = a.name.to_ascii_uppercase();
        vars.insert(format!("EMAG_{name}_SYNC_INTERVAL"), "manual".to_owned());
    }
    for (k, v) in [
        ("DATABASE_URL", database_url.to_owned()),
        ("EMAG_RATE_LIMIT", "off".to_owned()),
        (
            "EMAG_ORDERS_OVERLAP_HOURS",
            ORDERS_OVERLAP_HOURS.to_string(),
        ),
        ("EMAG_API_TIMEOUT", "30".to_owned()),
        ("EMAG_RETRY_DELAY", "10ms".to_owned()),
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
    fn a_few_points_cover_different_pairs_and_ten_cover_all() {
        let few = plan(7, 2, 4);
        let pairs: std::collections::HashSet<(Target, Phase)> =
            few.iter().flatten().copied().collect();
        assert_eq!(pairs.len(), 8, "{few:?}");
        let phases: std::collections::HashSet<Phase> = pairs.iter().map(|p| p.1).collect();
        assert_eq!(phases.len(), Phase::ALL.len(), "{few:?}");
        for backend in plan(7, 2, 10) {
            let all: std::collections::HashSet<_> = backend.into_iter().collect();
            assert_eq!(all.len(), combos().len());
        }
        assert_eq!(plan(7, 2, 4), few, "the seed decides");
    }

    #[test]
    fn a_claim_line_names_its_run() {
        let line = "2026-12-01T10:00:00.1Z DEBUG run claimed account.name=fbe sync.kind=orders run.id=17 run.attempt=1 checkpoint.page=0";
        assert_eq!(claim_of(line, "fbe", SyncKind::Orders), Some(17));
        assert_eq!(claim_of(line, "main", SyncKind::Orders), None);
        assert_eq!(claim_of(line, "fbe", SyncKind::Offers), None);
        assert_eq!(
            claim_of(
                "run ended account.name=fbe sync.kind=orders run.id=17",
                "fbe",
                SyncKind::Orders
            ),
            None
        );
    }

    #[test]
    fn harmful_rows_unsettled_rows_unfinished_runs_and_missed_kills_fail_a_point() {
        let point = |f: &dyn Fn(&mut PointResult)| {
            let mut p = PointResult {
                backend: BackendKind::Sqlite,
                index: 0,
                target: Target::Sync,
                phase: Phase::OfferScan,
                account: "main".into(),
                kind: SyncKind::Offers,
                nth: 2,
                landed: true,
                victim_run: Some(3),
                checkpoint_at_kill: Some(1),
                collateral_runs: 0,
                restarts: 1,
                resumed: true,
                cleanly_failed: false,
                after_restart: Tally::default(),
                after_settle: Tally::default(),
                unfinished_runs: 0,
                failed_runs: 0,
                seconds: 1.0,
                notes: Vec::new(),
                errors: Vec::new(),
                examples: Vec::new(),
            };
            f(&mut p);
            p.failures()
        };
        assert!(point(&|_| {}).is_empty());
        // Stale after the restart is allowed; not after the settling run.
        assert!(point(&|p| p.after_restart.stale = 3).is_empty());
        assert_eq!(point(&|p| p.after_settle.phantom = 1).len(), 1);
        assert_eq!(point(&|p| p.after_restart.falsely_removed = 1).len(), 1);
        assert_eq!(point(&|p| p.unfinished_runs = 1).len(), 1);
        assert_eq!(point(&|p| p.landed = false).len(), 1);
        assert_eq!(point(&|p| p.resumed = false).len(), 1);
        assert!(point(&|p| {
            p.resumed = false;
            p.cleanly_failed = true;
        })
        .is_empty());
    }
}
