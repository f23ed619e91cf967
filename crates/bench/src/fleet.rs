//! `emag-bench fleet`: the multi-instance acceptance measurement.
//!
//! Several `emag-sync start` processes share one fresh PostgreSQL database and schedule the
//! same accounts of an in-process simulator (eMAG rate limits on) whose data changes every
//! 20 s. The holder of one chosen run is SIGKILLed at a chosen moment of that run
//! (`--kill-moment`: right after its claim, when page 1 of an offer scan is answered,
//! mid-scan, or as an offer scan turns to its removals; by default one of those at random,
//! replayable with `--seed`). Measured from the runs table, the instances' logs and
//! `/proc`, and the simulator: duplicate runs (two runs of one scheduled slot), overlapping
//! runs of one account, how fast the killed instance's runs were taken over (next to the
//! lease TTL) and completed, whether each takeover was recorded (`reclaimed_from`), how
//! often each survivor tried to start a run of the victim's account in the minute after the
//! kill and how much CPU it used (a hot loop shows in both), and whether the database ends
//! equal to the simulator. Exit 0 only when there are no duplicates and no overlaps, every
//! run of the killed instance was taken over within the lease TTL plus a tick, recorded and
//! completed, no survivor retried the victim's account in a hot loop, and the data is equal.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use domain::{RunState, RunTrigger, SyncKind};
use emag_sim::{AccountKind, AccountSpec, Mutation, SimConfig, Simulator};
use emag_sync::config::Config;
use emag_sync::scheduler::Schedule;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use storage::RunRow;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

use crate::journal::{ScanMark, ScanStep, ScanWatch};
use crate::proc::{strip_ansi, tail};
use crate::rng::{seed_from_clock, Rng};
use crate::runs::{all_runs, pid_of_holder, untouched};
use crate::{pg, truth};

/// What the fleet is: its size, its timeline, the kill, the database (the flags of
/// `emag-bench fleet`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `emag-sync start` processes sharing the database (at least 2: one is killed).
    #[arg(long, default_value_t = 3)]
    pub instances: usize,
    /// Simulated accounts (acc001, acc002, …), each scheduled every minute for every kind.
    #[arg(long, default_value_t = 200)]
    pub accounts: u32,
    /// How long the fleet runs, in minutes (fractions allowed, e.g. 0.75).
    #[arg(long, default_value_t = 15.0)]
    pub minutes: f64,
    /// Seconds after the fleet is ready when the search for the run to kill begins (default:
    /// a third of the duration); its holder is SIGKILLed when that run reaches the moment.
    #[arg(long)]
    pub kill_after: Option<f64>,
    /// The moment of the victim run's life at which its holder is SIGKILLed.
    #[arg(long, value_enum, default_value_t = KillMoment::Random)]
    pub kill_moment: KillMoment,
    /// Seed of the random choices (the moment when `random`, the victim run or account);
    /// default: from the clock. Always in the report, so that a failing run can be replayed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Offers per simulated account.
    #[arg(long, default_value_t = 300)]
    pub offers_per_account: u32,
    /// Orders per simulated account at the start (more arrive while it runs).
    #[arg(long, default_value_t = 40)]
    pub orders_per_account: u32,
    /// PostgreSQL server on which the benchmark database is created.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres: String,
    /// Name of the database to create (replaced if it exists; default emag_fleet_<pid>).
    #[arg(long)]
    pub database: Option<String>,
    /// Lease TTL in seconds for the instances (EMAG_LEASE_TTL; default: emag-sync's).
    #[arg(long)]
    pub lease_ttl: Option<f64>,
    /// Give every instance its own EMAG_INSTANCE_NAME, so they treat each other as processes
    /// on other machines: a killed holder is then taken over only when its heartbeat is
    /// older than the lease TTL (the cross-host path), not at once from its dead pid.
    #[arg(long)]
    pub separate_hosts: bool,
    /// Keep the database and the instances' logs even when every check passes (they are
    /// always kept when one fails).
    #[arg(long)]
    pub keep: bool,
}

/// The simulated marketplace changes this often while mutations are on.
const MUTATE_EVERY: Duration = Duration::from_secs(20);
/// Mutations stop this long before the end (or 40 % of the duration when that is shorter).
const QUIET_AT_MOST: Duration = Duration::from_secs(180);
/// How long an instance may take to print its readiness line.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an instance may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Measurement polls of the runs table.
const POLL: Duration = Duration::from_millis(100);
/// Polls for a fresh claim (`--kill-moment claimed`): the claimed run's first page is at
/// least one rate-budget interval (a few hundred ms) away, its first heartbeat a quarter TTL.
const CLAIM_POLL: Duration = Duration::from_millis(3);
/// The survivors' attempts to start a run of the victim's account are counted this long
/// after the kill.
const HOT_LOOP_WINDOW: Duration = Duration::from_secs(60);
/// More attempts than this in the window, on one survivor, is a hot loop. The rule is at
/// most one claim per blocked schedule per quarter TTL: with the fleet's 1-minute schedules
/// (three kinds due every minute) and a 15 s TTL that stays near 15 in a minute.
const HOT_LOOP_MAX_STARTS: usize = 20;
/// What the scheduler logs at each attempt to start a run (`Scheduler::tick`), with the
/// account as `account.name=…`: one line per claim attempt, blocked or not.
const START_LINE: &str = "starting a scheduled run";
/// `/proc/PID/stat` counts CPU time in USER_HZ ticks, 100 a second on every Linux ABI (the
/// binary has no libc to ask `sysconf`).
const CLOCK_TICKS_PER_S: f64 = 100.0;
/// When, in the life of the victim run, its holder is SIGKILLed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KillMoment {
    /// One of the others, chosen from the seed.
    Random,
    /// Right after a claim, before the run has written anything (no page, no heartbeat).
    Claimed,
    /// When the simulator has answered page 1 of an offer scan, before the page is stored.
    FirstPage,
    /// A run with pages written.
    MidScan,
    /// An offers run after its last page: the count it reads before marking removals.
    Removals,
}

/// A kill moment once `random` has been resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Moment {
    Claimed,
    FirstPage,
    MidScan,
    Removals,
}

impl Moment {
    const ALL: [Moment; 4] = [
        Moment::Claimed,
        Moment::FirstPage,
        Moment::MidScan,
        Moment::Removals,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Moment::Claimed => "claimed",
            Moment::FirstPage => "first-page",
            Moment::MidScan => "mid-scan",
            Moment::Removals => "removals",
        }
    }

    /// Whether a run in this state, read just after the SIGKILL, was at this moment.
    /// `untouched`: no page, no checkpoint, no heartbeat since the claim.
    fn reached(self, state: RunState, pages: u64, untouched: bool) -> bool {
        state == RunState::Running
            && match self {
                Moment::Claimed => untouched,
                Moment::FirstPage => pages == 0,
                Moment::MidScan | Moment::Removals => pages > 0,
            }
    }
}

impl Moment {
    /// The moment of an offer scan the journal watch strikes at (`FirstPage`, `Removals`).
    fn scan_mark(self) -> ScanMark {
        match self {
            Moment::Removals => ScanMark::Recount,
            _ => ScanMark::FirstPage,
        }
    }
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl KillMoment {
    fn as_str(self) -> &'static str {
        match self {
            KillMoment::Random => "random",
            KillMoment::Claimed => Moment::Claimed.as_str(),
            KillMoment::FirstPage => Moment::FirstPage.as_str(),
            KillMoment::MidScan => Moment::MidScan.as_str(),
            KillMoment::Removals => Moment::Removals.as_str(),
        }
    }

    fn resolve(self, rng: &mut Rng) -> Moment {
        match self {
            KillMoment::Random => Moment::ALL[rng.below(Moment::ALL.len())],
            KillMoment::Claimed => Moment::Claimed,
            KillMoment::FirstPage => Moment::FirstPage,
            KillMoment::MidScan => Moment::MidScan,
            KillMoment::Removals => Moment::Removals,
        }
    }
}

/// The timeline, validated from the flags.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    duration: Duration,
    kill_after: Duration,
    mutate_until: Duration,
}

impl Timeline {
    fn from_args(args: &Args) -> anyhow::Result<Timeline> {
        if !(args.minutes.is_finite() && args.minutes > 0.0) {
            bail!("--minutes must be more than 0 (got {})", args.minutes);
        }
        if args.instances < 2 {
            bail!("--instances must be at least 2: one is killed and another takes its runs over");
        }
        if args.accounts == 0 {
            bail!("--accounts must be at least 1");
        }
        let duration = Duration::from_secs_f64(args.minutes * 60.0);
        let kill_after = match args.kill_after {
            None => duration / 3,
            Some(s) if s.is_finite() && s > 0.0 && s < duration.as_secs_f64() => {
                Duration::from_secs_f64(s)
            }
            Some(s) => bail!(
                "--kill-after must be between 0 and the duration ({:.0} s), got {s}",
                duration.as_secs_f64()
            ),
        };
        let quiet = QUIET_AT_MOST.min(duration.mul_f64(0.4));
        Ok(Timeline {
            duration,
            kill_after,
            mutate_until: duration - quiet,
        })
    }
}

/// One `emag-sync start` process.
#[derive(Debug)]
struct Instance {
    index: usize,
    pid: u32,
    child: Child,
    killed: bool,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

/// The live instance (its index) holding `run`, if one of ours does.
fn holder_instance(run: &RunRow, live: &HashMap<u32, usize>) -> Option<usize> {
    run.holder
        .as_deref()
        .and_then(pid_of_holder)
        .and_then(|pid| live.get(&pid).copied())
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    passed: bool,
    failures: Vec<String>,
    warnings: Vec<String>,
    instances: usize,
    accounts: u32,
    offers_per_account: u32,
    orders_per_account: u32,
    minutes: f64,
    database: String,
    /// Seconds from the first instance's start to the stop signal.
    seconds_run: f64,
    /// Seconds waited after the duration for every account to sync after the last change.
    settle_seconds: f64,
    lease_ttl_seconds: f64,
    /// Instances named apart (EMAG_INSTANCE_NAME): takeovers wait for the lease to expire.
    separate_hosts: bool,
    /// The seed of the random choices: `--seed` with it (and the same flags) replays them.
    seed: u64,
    /// `--kill-moment` as asked (`random` is resolved in `kill.moment`).
    kill_moment_asked: String,
    mutation_rounds: u32,
    mutations: u64,
    last_mutation_s: Option<f64>,
    runs_total: usize,
    runs_by_kind: BTreeMap<String, KindFigures>,
    runs_by_trigger: BTreeMap<String, usize>,
    /// Two runs of the same (account, kind, slot).
    duplicates: usize,
    duplicate_examples: Vec<String>,
    /// Scheduled runs of one schedule less than half an interval apart (different slots).
    early_reruns: usize,
    early_rerun_examples: Vec<String>,
    /// Pairs of runs of one account whose [started_at, finished_at] intersect.
    overlaps: usize,
    /// Of those, pairs of the same kind.
    overlaps_same_kind: usize,
    overlap_examples: Vec<String>,
    failed_runs: Vec<String>,
    interrupted_by_stop: usize,
    left_running: usize,
    kill: Option<KillReport>,
    /// Runs of the killed instance that another instance took over.
    taken_over: usize,
    taken_over_completed: usize,
    /// The instances left running after the kill (all of them when nothing was killed).
    survivors: Vec<Survivor>,
    /// Seconds of the hot-loop window (60 s after the kill) the fleet still ran.
    hot_loop_window_s: Option<f64>,
    exits: Vec<InstanceExit>,
    data: DataCheck,
    data_mismatches: usize,
    logs: String,
}

#[derive(Debug, Default, Serialize)]
struct KindFigures {
    schedules: usize,
    runs: usize,
    succeeded: usize,
    failed: usize,
    interrupted: usize,
    running: usize,
    per_schedule_min: usize,
    per_schedule_max: usize,
    /// About how many runs each schedule should have had in the window.
    per_schedule_expected: usize,
}

#[derive(Debug, Serialize)]
struct KillReport {
    moment: Moment,
    instance: usize,
    pid: u32,
    /// Seconds after the fleet was ready.
    at_s: f64,
    /// Seconds spent waiting for a run to reach the moment.
    waited_s: f64,
    victim: VictimRun,
    /// Every run the killed instance held (the victim among them).
    runs: Vec<HeldRun>,
    #[serde(skip)]
    kill_ms: i64,
    /// CPU ticks of each survivor (by pid) when the SIGKILL landed.
    #[serde(skip)]
    cpu_ticks_at_kill: HashMap<u32, u64>,
}

/// The run whose moment decided the kill, as the SIGKILL left it.
#[derive(Debug, Serialize)]
struct VictimRun {
    id: i64,
    account: String,
    kind: SyncKind,
    holder: String,
    state_at_kill: RunState,
    pages_at_kill: u64,
    checkpoint_at_kill: i64,
    total_items: Option<i64>,
    /// Milliseconds from the run's claim (`started_at`) to the SIGKILL.
    kill_after_claim_ms: Option<i64>,
    /// `heartbeat_at − started_at` at the kill: 0 when nothing was written since the claim.
    heartbeat_after_claim_ms: Option<i64>,
    /// The run was at the moment when the SIGKILL landed (not already past it).
    on_target: bool,
}

impl VictimRun {
    /// `seen` is the run as found before the kill, `now` as read just after it.
    fn at_kill(seen: &RunRow, now: Option<&RunRow>, kill_ms: i64, moment: Moment) -> VictimRun {
        let run = now.unwrap_or(seen);
        VictimRun {
            id: run.id,
            account: run.account.clone(),
            kind: run.kind,
            holder: seen.holder.clone().unwrap_or_default(),
            state_at_kill: run.state,
            pages_at_kill: run.counts.pages,
            checkpoint_at_kill: run.checkpoint_page,
            total_items: run.total_items,
            kill_after_claim_ms: run.started_at.map(|s| kill_ms - s),
            heartbeat_after_claim_ms: run.heartbeat_at.zip(run.started_at).map(|(h, s)| h - s),
            on_target: moment.reached(
                run.state,
                run.counts.pages,
                untouched(
                    run.counts.pages,
                    run.checkpoint_page,
                    run.started_at,
                    run.heartbeat_at,
                ),
            ),
        }
    }
}

/// A survivor of the kill.
#[derive(Debug, Serialize)]
struct Survivor {
    instance: usize,
    pid: u32,
    /// Its "starting a scheduled run" log lines for the victim's account in the minute after
    /// the kill: one per claim attempt.
    victim_account_starts: Option<usize>,
    /// CPU time (user + system) from its start to the stop signal.
    cpu_s: Option<f64>,
    /// The part of it after the kill.
    cpu_after_kill_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct HeldRun {
    id: i64,
    account: String,
    kind: SyncKind,
    attempt_before: i64,
    /// It ended before the SIGKILL landed (nothing to take over).
    finished_before_kill: bool,
    taken_over: bool,
    taken_over_by: Option<String>,
    /// Seconds from the SIGKILL until another holder was seen (100 ms polls).
    takeover_s: Option<f64>,
    /// The same, from the run's own `reclaimed_at`.
    reclaimed_at_s: Option<f64>,
    /// The holder the run was taken over from, as the takeover recorded it.
    reclaimed_from: Option<String>,
    /// Seconds from the SIGKILL until the run finished.
    completed_s: Option<f64>,
    /// `None` once the row is gone.
    state: Option<RunState>,
}

impl HeldRun {
    fn new(run: &RunRow) -> HeldRun {
        HeldRun {
            id: run.id,
            account: run.account.clone(),
            kind: run.kind,
            attempt_before: run.attempt,
            finished_before_kill: false,
            taken_over: false,
            taken_over_by: None,
            takeover_s: None,
            reclaimed_at_s: None,
            reclaimed_from: None,
            completed_s: None,
            state: Some(run.state),
        }
    }

    /// One look at the run's row (`None`: deleted) at `now_ms`; `pids` names the instances.
    fn observe(
        &mut self,
        row: Option<&RunRow>,
        now_ms: i64,
        kill_ms: i64,
        pids: &HashMap<u32, usize>,
    ) {
        let Some(row) = row else {
            self.state = None;
            return;
        };
        self.state = Some(row.state);
        if row.attempt > self.attempt_before && !self.taken_over {
            self.taken_over = true;
            let seen = row.finished_at.map_or(now_ms, |f| f.min(now_ms));
            self.takeover_s = Some(ms_to_s(seen - kill_ms));
            self.taken_over_by = row.holder.as_deref().map(|h| {
                match pid_of_holder(h).and_then(|p| pids.get(&p).map(|i| (p, *i))) {
                    Some((p, i)) => format!("instance {i} (pid {p})"),
                    None => h.to_owned(),
                }
            });
        }
        self.reclaimed_from.clone_from(&row.reclaimed_from);
        if let Some(at) = row.reclaimed_at {
            self.reclaimed_at_s = Some(ms_to_s(at - kill_ms));
        }
        if row.state.is_terminal() && self.completed_s.is_none() {
            let at = row.finished_at.unwrap_or(now_ms);
            self.completed_s = Some(ms_to_s(at - kill_ms));
            self.finished_before_kill = !self.taken_over && at <= kill_ms;
        }
    }

    /// Still to be followed: neither finished nor gone.
    fn open(&self) -> bool {
        self.state.is_some() && self.completed_s.is_none()
    }
}

#[derive(Debug, Serialize)]
struct InstanceExit {
    instance: usize,
    pid: u32,
    killed: bool,
    code: Option<i32>,
    note: String,
}

#[derive(Debug, Default, Serialize)]
struct DataCheck {
    offers_compared: usize,
    offer_mismatches: usize,
    orders_compared: usize,
    order_mismatches: usize,
    examples: Vec<String>,
}

impl DataCheck {
    /// The offers and orders of the shared comparison.
    fn of(check: truth::DataCheck) -> DataCheck {
        DataCheck {
            offers_compared: check.offers.expected,
            offer_mismatches: check.offers.mismatches(),
            orders_compared: check.orders.expected,
            order_mismatches: check.orders.mismatches(),
            examples: check.examples,
        }
    }
}

const EXAMPLES: usize = 10;

fn push_example(list: &mut Vec<String>, text: impl FnOnce() -> String) {
    if list.len() < EXAMPLES {
        list.push(text());
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

fn ms_to_s(ms: i64) -> f64 {
    (ms as f64 / 100.0).round() / 10.0
}

/// Runs the fleet of `emag-sync start` processes (`exe`) and measures it: the report says
/// whether every check passed ([`Report::passed`]) and why not.
pub async fn fleet(args: &Args, exe: &Path) -> anyhow::Result<Report> {
    let timeline = Timeline::from_args(args)?;
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    let mut rng = Rng::new(seed);
    let moment = args.kill_moment.resolve(&mut rng);
    let db_name = args
        .database
        .clone()
        .unwrap_or_else(|| format!("emag_fleet_{}", std::process::id()));
    pg::check_own_database(&db_name).context("--database")?;
    let dir = std::env::temp_dir().join(format!("emag-sync-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the work directory {}", dir.display()))?;

    let db_url = pg::fresh_postgres(&args.postgres, &db_name)
        .await
        .with_context(|| {
            format!(
                "cannot create the database {db_name} on {} (is PostgreSQL running? see --postgres)",
                storage::redact_url(&args.postgres)
            )
        })?;
    let store = storage::Store::open(&db_url)
        .await
        .with_context(|| format!("cannot migrate {}", storage::redact_url(&db_url)))?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .context("cannot connect to the benchmark database")?;

    let names: Vec<String> = (1..=args.accounts).map(|i| format!("acc{i:03}")).collect();
    let sim = Simulator::spawn(SimConfig {
        accounts: names
            .iter()
            .map(|n| AccountSpec::named(n, AccountKind::Main))
            .collect(),
        offers_per_account: args.offers_per_account,
        orders_per_account: args.orders_per_account,
        rate_limits: true,
        ..SimConfig::default()
    })
    .await
    .context("cannot start the simulator")?;

    let vars = instance_vars(&names, &sim.base_url, &db_url, args.lease_ttl);
    let config = Config::from_vars(&vars)
        .map_err(|e| anyhow::anyhow!("the instances' configuration is invalid: {e}"))?;
    let lease_ttl = config.sync.stale_after;
    let mut schedules = emag_sync::scheduler::schedules(&config);
    schedules.retain(|s| !s.manual_only);
    let interval = schedules
        .iter()
        .filter(|s| matches!(s.kind, SyncKind::Offers | SyncKind::Orders))
        .map(|s| s.interval)
        .max()
        .unwrap_or(Duration::from_secs(60));

    progress(&format!(
        "{} instances, {} accounts ({} schedules), {:.1} min, SIGKILL at the {moment} moment of a run found after {:.0} s (seed {seed}), database {}, logs in {}",
        args.instances,
        names.len(),
        schedules.len(),
        timeline.duration.as_secs_f64() / 60.0,
        timeline.kill_after.as_secs_f64(),
        storage::redact_url(&db_url),
        dir.display()
    ));

    // Start every instance, then wait for each one's readiness line.
    let spawned_ms = storage::now_ms();
    let mut instances = Vec::new();
    let mut stdouts = Vec::new();
    for index in 0..args.instances {
        let (instance, stdout) = spawn_instance(exe, &vars, &dir, index, args.separate_hosts)?;
        instances.push(instance);
        stdouts.push(stdout);
    }
    for (instance, stdout) in instances.iter_mut().zip(stdouts) {
        wait_ready(instance, stdout).await?;
    }
    let t0 = Instant::now();
    let t0_ms = storage::now_ms();
    progress(&format!(
        "fleet ready: pids {}",
        instances
            .iter()
            .map(|i| i.pid.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let mutations = tokio::spawn(mutate(
        sim.sim.clone(),
        names.clone(),
        args.offers_per_account,
        t0,
        t0 + timeline.mutate_until,
    ));

    // The kill, and the takeover of the killed instance's runs.
    tokio::time::sleep_until(t0 + timeline.kill_after).await;
    let setup = KillSetup {
        store: &store,
        sim: &sim.sim,
        names: &names,
        t0_ms,
        search: interval + Duration::from_secs(30),
        lease_ttl,
    };
    let kill = Box::pin(kill_one(&setup, &mut instances, moment, &mut rng)).await?;

    tokio::time::sleep_until(t0 + timeline.duration).await;
    let stats = mutations.await.context("the mutation task failed")?;

    // Every account must have synced after the last change before the data can be compared.
    let settle_from = Instant::now();
    let settle_deadline = settle_from + interval * 2 + Duration::from_secs(60);
    let mut settled = false;
    while Instant::now() < settle_deadline {
        if synced_after(&pool, stats.last_ms.unwrap_or(0)).await? >= 2 * names.len() {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settle_seconds = secs(settle_from.elapsed());

    // Stop: SIGTERM to every instance still alive, then wait for each. Their CPU time is
    // read first: /proc forgets a process once it has been waited for.
    let cpu_at_stop: HashMap<u32, u64> = instances
        .iter()
        .filter(|i| !i.killed)
        .filter_map(|i| cpu_ticks(i.pid).map(|t| (i.pid, t)))
        .collect();
    let stop_ms = storage::now_ms();
    progress("stopping the fleet (SIGTERM)");
    let exits = stop_all(&mut instances).await;
    let end_ms = storage::now_ms();
    let (survivors, hot_loop_window_s) =
        survivor_figures(&instances, kill.as_ref(), &cpu_at_stop, stop_ms);

    let runs = all_runs(&store).await?;
    let mut report = Report {
        passed: false,
        failures: Vec::new(),
        warnings: Vec::new(),
        instances: args.instances,
        accounts: args.accounts,
        offers_per_account: args.offers_per_account,
        orders_per_account: args.orders_per_account,
        minutes: args.minutes,
        database: storage::redact_url(&db_url),
        seconds_run: ms_to_s(stop_ms - spawned_ms),
        settle_seconds,
        lease_ttl_seconds: secs(lease_ttl),
        separate_hosts: args.separate_hosts,
        seed,
        kill_moment_asked: args.kill_moment.as_str().to_owned(),
        mutation_rounds: stats.rounds,
        mutations: stats.changes,
        last_mutation_s: stats.last_ms.map(|ms| ms_to_s(ms - t0_ms)),
        runs_total: runs.len(),
        runs_by_kind: BTreeMap::new(),
        runs_by_trigger: BTreeMap::new(),
        duplicates: 0,
        duplicate_examples: Vec::new(),
        early_reruns: 0,
        early_rerun_examples: Vec::new(),
        overlaps: 0,
        overlaps_same_kind: 0,
        overlap_examples: Vec::new(),
        failed_runs: Vec::new(),
        interrupted_by_stop: 0,
        left_running: 0,
        taken_over: 0,
        taken_over_completed: 0,
        survivors,
        hot_loop_window_s,
        kill: None,
        exits,
        data: DataCheck::default(),
        data_mismatches: 0,
        logs: dir.display().to_string(),
    };
    analyze_runs(&mut report, &runs, &schedules, spawned_ms, t0_ms, end_ms);
    report.data = DataCheck::of(
        truth::compare(
            &store,
            &sim.sim,
            &names,
            &[SyncKind::Offers, SyncKind::Orders],
        )
        .await?,
    );
    report.data_mismatches = report.data.offer_mismatches + report.data.order_mismatches;
    if !settled {
        report.warnings.push(format!(
            "not every account synced offers and orders after the last change within {settle_seconds:.0} s of the end"
        ));
    }
    judge(&mut report, kill, lease_ttl, args.separate_hosts);

    sim.shutdown().await;
    store.close().await;
    pool.close().await;
    if report.passed && !args.keep {
        pg::drop_database(&args.postgres, &db_name).await;
        let _ = std::fs::remove_dir_all(&dir);
        report.logs = "removed (--keep keeps them)".to_owned();
    } else {
        report.warnings.push(format!(
            "kept for inspection: database {} and logs in {}",
            storage::redact_url(&db_url),
            dir.display()
        ));
    }
    Ok(report)
}

fn progress(message: &str) {
    eprintln!("fleet: {message}");
}

/// The variables each instance gets: one MAIN-kind account per simulated account, every
/// kind every minute.
fn instance_vars(
    names: &[String],
    base_url: &str,
    db_url: &str,
    lease_ttl: Option<f64>,
) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for name in names {
        let upper = name.to_ascii_uppercase();
        vars.insert(format!("EMAG_{upper}_API_USERNAME"), format!("sim-{name}"));
        vars.insert(format!("EMAG_{upper}_API_PASSWORD"), format!("pass-{name}"));
        vars.insert(format!("EMAG_{upper}_API_URL"), base_url.to_owned());
        vars.insert(format!("EMAG_{upper}_SYNC_INTERVAL"), "1".to_owned());
        vars.insert(format!("EMAG_{upper}_SYNC_TYPES"), "full".to_owned());
    }
    vars.insert("DATABASE_URL".to_owned(), db_url.to_owned());
    vars.insert("EMAG_LOG_LEVEL".to_owned(), "info".to_owned());
    if let Some(ttl) = lease_ttl {
        vars.insert("EMAG_LEASE_TTL".to_owned(), format!("{ttl}"));
    }
    vars
}

fn spawn_instance(
    exe: &Path,
    vars: &HashMap<String, String>,
    dir: &Path,
    index: usize,
    separate_hosts: bool,
) -> anyhow::Result<(Instance, ChildStdout)> {
    let stderr_path = dir.join(format!("instance-{index}.stderr"));
    let stderr = std::fs::File::create(&stderr_path)
        .with_context(|| format!("cannot create {}", stderr_path.display()))?;
    let mut child = Command::new(exe)
        .arg("start")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars)
        .env("EMAG_PID_FILE", dir.join(format!("instance-{index}.pid")))
        .env("EMAG_LOG_FILE", dir.join(format!("instance-{index}.log")))
        .envs(separate_hosts.then(|| ("EMAG_INSTANCE_NAME", format!("fleet-host-{index}"))))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} start", exe.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("instance {index} exited at once"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("instance {index}: no stdout pipe"))?;
    Ok((
        Instance {
            index,
            pid,
            child,
            killed: false,
            stdout_path: dir.join(format!("instance-{index}.stdout")),
            stderr_path,
        },
        stdout,
    ))
}

/// Reads the instance's stdout into its file until the readiness line, then keeps draining
/// it on a task so the pipe never fills.
async fn wait_ready(instance: &mut Instance, stdout: ChildStdout) -> anyhow::Result<()> {
    let mut lines = BufReader::new(stdout).lines();
    let mut file = tokio::fs::File::create(&instance.stdout_path)
        .await
        .with_context(|| format!("cannot create {}", instance.stdout_path.display()))?;
    let ready = tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            file.write_all(format!("{line}\n").as_bytes()).await?;
            if line.contains("scheduler ready") {
                return Ok(true);
            }
        }
        Ok::<bool, std::io::Error>(false)
    })
    .await;
    let what = format!("instance {} (pid {})", instance.index, instance.pid);
    match ready {
        Ok(Ok(true)) => {
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if file
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            Ok(())
        }
        Ok(Ok(false)) => {
            let status = instance.child.wait().await.ok();
            bail!(
                "{what} exited before it was ready ({}); its stderr ends with:\n{}",
                status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string()),
                tail(&instance.stderr_path, 20)
            )
        }
        Ok(Err(e)) => Err(e).with_context(|| format!("reading the output of {what}")),
        Err(_) => bail!(
            "{what} did not print its readiness line within {} s; see {}",
            READY_TIMEOUT.as_secs(),
            instance.stderr_path.display()
        ),
    }
}

#[derive(Debug, Default)]
struct MutationStats {
    rounds: u32,
    changes: u64,
    last_ms: Option<i64>,
}

/// Every 20 s until `until`: for every account a price and a stock change, a new order and an
/// order status change, so that scheduled runs always have something to bring over.
async fn mutate(
    sim: Simulator,
    names: Vec<String>,
    offers: u32,
    start: Instant,
    until: Instant,
) -> MutationStats {
    let mut stats = MutationStats::default();
    let mut tick = tokio::time::interval_at(start + MUTATE_EVERY, MUTATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            return stats;
        }
        stats.rounds += 1;
        let round = stats.rounds;
        for (i, name) in names.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(0);
            let mut changes: Vec<Mutation> = Vec::new();
            if offers > 0 {
                let id = 1 + (round * 7 + i * 13) % offers;
                changes.push(Mutation::SetPrice {
                    id,
                    sale_price: Decimal::new(10_000 + i64::from(round) * 137 + i64::from(i), 2),
                });
                changes.push(Mutation::SetStock {
                    id: 1 + id % offers,
                    stock: (round + i) % 9,
                });
            }
            changes.push(Mutation::AddOrders {
                count: 1,
                order_type: 3,
            });
            let orders = sim.orders(name);
            if !orders.is_empty() {
                let pick = &orders[((round * 5 + i) as usize) % orders.len()];
                changes.push(Mutation::SetOrderStatus {
                    id: pick.id,
                    status: (pick.status + 1) % 6,
                });
            }
            for m in changes {
                match sim.mutate(name, m) {
                    Ok(_) => stats.changes += 1,
                    Err(e) => {
                        tracing::warn!(account = %name, error = %e, "a simulator change was refused");
                    }
                }
            }
        }
        stats.last_ms = Some(storage::now_ms());
    }
}

/// What the kill needs from the benchmark.
#[derive(Debug)]
struct KillSetup<'a> {
    store: &'a storage::Store,
    sim: &'a Simulator,
    names: &'a [String],
    t0_ms: i64,
    /// How long to wait for a run to reach the moment.
    search: Duration,
    lease_ttl: Duration,
}

/// The run chosen to die, as found before the kill, and its holder.
#[derive(Debug)]
struct Target {
    run: RunRow,
    instance: usize,
    /// The holder's running runs seen at the same time (the target among them).
    held: Vec<RunRow>,
}

impl Target {
    fn of(run: &RunRow, active: &[RunRow], live: &HashMap<u32, usize>) -> Option<Target> {
        let instance = holder_instance(run, live)?;
        let held = active
            .iter()
            .filter(|r| r.state == RunState::Running && r.holder == run.holder)
            .cloned()
            .collect();
        Some(Target {
            run: run.clone(),
            instance,
            held,
        })
    }
}

/// Finds a run at `moment` (waiting up to `setup.search`), SIGKILLs its holder at once, then
/// follows every run the holder had until each is finished by another instance (or the
/// lease TTL plus two minutes has passed).
async fn kill_one(
    setup: &KillSetup<'_>,
    instances: &mut [Instance],
    moment: Moment,
    rng: &mut Rng,
) -> anyhow::Result<Option<KillReport>> {
    let searching = Instant::now();
    let live: HashMap<u32, usize> = instances
        .iter()
        .filter(|i| !i.killed)
        .map(|i| (i.pid, i.index))
        .collect();
    let target = match moment {
        Moment::Claimed => {
            find_running(setup, &live, rng, CLAIM_POLL, |run, since_ms| {
                run.started_at.is_some_and(|s| s >= since_ms)
                    && untouched(
                        run.counts.pages,
                        run.checkpoint_page,
                        run.started_at,
                        run.heartbeat_at,
                    )
            })
            .await?
        }
        Moment::MidScan => {
            find_running(setup, &live, rng, POLL, |run, _| run.counts.pages > 0).await?
        }
        Moment::FirstPage | Moment::Removals => watch_scan(setup, &live, rng, moment).await?,
    };
    let Some(target) = target else {
        progress(&format!(
            "no run reached the {moment} moment within {} s; nothing was killed",
            setup.search.as_secs()
        ));
        return Ok(None);
    };
    let waited_s = secs(searching.elapsed());

    let instance = &mut instances[target.instance];
    let kill_ms = storage::now_ms();
    instance
        .child
        .start_kill()
        .with_context(|| format!("cannot SIGKILL pid {}", instance.pid))?;
    // Read at once: nobody writes the run until it is taken over, and the new holder's first
    // page is a rate-budget interval away.
    let at_kill = setup
        .store
        .get_run(target.run.id)
        .await
        .context("reading the killed run")?;
    let active = setup
        .store
        .active_runs()
        .await
        .context("reading the active runs after the kill")?;
    instance
        .child
        .wait()
        .await
        .with_context(|| format!("waiting for the killed pid {}", instance.pid))?;
    instance.killed = true;
    let (victim_index, pid) = (instance.index, instance.pid);
    let cpu_ticks_at_kill = instances
        .iter()
        .filter(|i| !i.killed)
        .filter_map(|i| cpu_ticks(i.pid).map(|t| (i.pid, t)))
        .collect();

    // The holder's runs: those seen with the target, and any it claimed since.
    let mut held: BTreeMap<i64, &RunRow> = target.held.iter().map(|r| (r.id, r)).collect();
    for run in active
        .iter()
        .filter(|r| r.state == RunState::Running && r.holder == target.run.holder)
    {
        held.entry(run.id).or_insert(run);
    }
    held.entry(target.run.id).or_insert(&target.run);
    let victim = VictimRun::at_kill(&target.run, at_kill.as_ref(), kill_ms, moment);
    progress(&format!(
        "SIGKILLed instance {victim_index} (pid {pid}) at {:.1} s at the {moment} moment{}: run {} ({} {}) {} ms after its claim, {} page(s) written, checkpoint {}; it held run(s) {:?}",
        ms_to_s(kill_ms - setup.t0_ms),
        if victim.on_target { "" } else { " (MISSED: the run was past it)" },
        victim.id,
        victim.account,
        victim.kind,
        victim.kill_after_claim_ms.map_or("?".to_owned(), |ms| ms.to_string()),
        victim.pages_at_kill,
        victim.checkpoint_at_kill,
        held.keys().collect::<Vec<_>>()
    ));

    let mut report: Vec<HeldRun> = held.values().map(|r| HeldRun::new(r)).collect();
    let pids: HashMap<u32, usize> = instances.iter().map(|i| (i.pid, i.index)).collect();
    let deadline = Instant::now() + setup.lease_ttl + Duration::from_secs(120);
    loop {
        let now_ms = storage::now_ms();
        for held in &mut report {
            let row = setup
                .store
                .get_run(held.id)
                .await
                .context("reading a run of the killed instance")?;
            held.observe(row.as_ref(), now_ms, kill_ms, &pids);
        }
        let open = report.iter().filter(|h| h.open()).count();
        if open == 0 {
            break;
        }
        if Instant::now() > deadline {
            progress(&format!(
                "{open} run(s) of the killed instance still unfinished {:.0} s after the kill",
                ms_to_s(storage::now_ms() - kill_ms)
            ));
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for h in &report {
        progress(&format!(
            "run {} ({} {}){}: taken over {} after {} s by {} (reclaimed_from {}), {} after {} s",
            h.id,
            h.account,
            h.kind,
            if h.id == victim.id {
                ", the victim"
            } else {
                ""
            },
            if h.taken_over { "yes" } else { "NO" },
            h.takeover_s.map_or("-".to_owned(), |s| format!("{s:.1}")),
            h.taken_over_by.as_deref().unwrap_or("-"),
            h.reclaimed_from.as_deref().unwrap_or("NOT SET"),
            h.state.map_or("deleted", RunState::as_str),
            h.completed_s.map_or("-".to_owned(), |s| format!("{s:.1}")),
        ));
    }
    Ok(Some(KillReport {
        moment,
        instance: victim_index,
        pid,
        at_s: ms_to_s(kill_ms - setup.t0_ms),
        waited_s,
        victim,
        runs: report,
        kill_ms,
        cpu_ticks_at_kill,
    }))
}

/// Polls the store every `poll` (up to `setup.search`) until running runs held by our live
/// instances satisfy `fits(run, since_ms)` (`since_ms`: when the search began), and picks
/// one of them at random.
async fn find_running(
    setup: &KillSetup<'_>,
    live: &HashMap<u32, usize>,
    rng: &mut Rng,
    poll: Duration,
    fits: impl Fn(&RunRow, i64) -> bool,
) -> anyhow::Result<Option<Target>> {
    let since_ms = storage::now_ms();
    let deadline = Instant::now() + setup.search;
    loop {
        let active = setup
            .store
            .active_runs()
            .await
            .context("reading the active runs")?;
        let candidates: Vec<&RunRow> = active
            .iter()
            .filter(|r| {
                r.state == RunState::Running
                    && holder_instance(r, live).is_some()
                    && fits(r, since_ms)
            })
            .collect();
        if let Some(run) = rng.pick(&candidates) {
            return Ok(Target::of(run, &active, live));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(poll).await;
    }
}

/// Picks an account at random and follows its offer scans in the simulator's journal until
/// one reaches `moment` (`FirstPage` or `Removals`); returns at once with the holder found
/// when that scan began, so the kill lands before the instance acts on the answer.
async fn watch_scan(
    setup: &KillSetup<'_>,
    live: &HashMap<u32, usize>,
    rng: &mut Rng,
    moment: Moment,
) -> anyhow::Result<Option<Target>> {
    let Some(account) = rng.pick(setup.names).cloned() else {
        return Ok(None);
    };
    progress(&format!(
        "waiting for an offer scan of {account} to reach the {moment} moment"
    ));
    let deadline = Instant::now() + setup.search;
    let watch = RefCell::new(ScanWatch::new(&account, moment.scan_mark()));
    let step = Cell::new(None);
    // Entries already journaled are history: a page answered before now is no moment.
    let mut after = setup.sim.journal().last().map_or(0, |e| e.seq);
    let mut armed: Option<Target> = None;
    loop {
        let since = after;
        let entry = setup.sim.wait_for_request(|e| {
            if e.seq <= since {
                return false;
            }
            let s = watch.borrow_mut().observe(e);
            step.set(s);
            s.is_some()
        });
        let Ok(entry) = tokio::time::timeout_at(deadline, entry).await else {
            return Ok(None);
        };
        after = entry.seq;
        match step.take() {
            // The run is claimed before its first request: find its holder now, while its
            // next request waits for the rate budget.
            Some(ScanStep::Began) => {
                armed = offers_run_of(setup.store, &account, live).await?;
            }
            Some(ScanStep::Strike) => {
                if let Some(target) = armed.take() {
                    return Ok(Some(target));
                }
                if let Some(target) = offers_run_of(setup.store, &account, live).await? {
                    return Ok(Some(target));
                }
            }
            None => {}
        }
    }
}

/// The running offers run of `account` held by one of our live instances.
async fn offers_run_of(
    store: &storage::Store,
    account: &str,
    live: &HashMap<u32, usize>,
) -> anyhow::Result<Option<Target>> {
    let active = store
        .active_runs()
        .await
        .context("reading the active runs")?;
    Ok(active
        .iter()
        .find(|r| {
            r.state == RunState::Running
                && r.account == account
                && r.kind == SyncKind::Offers
                && holder_instance(r, live).is_some()
        })
        .and_then(|r| Target::of(r, &active, live)))
}

/// User + system CPU ticks of a live process.
fn cpu_ticks(pid: u32) -> Option<u64> {
    cpu_ticks_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime from the text of `/proc/PID/stat`.
fn cpu_ticks_of(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count fields after its
    // last ')'. What follows starts at field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_to_s(ticks: u64) -> f64 {
    (ticks as f64 / CLOCK_TICKS_PER_S * 10.0).round() / 10.0
}

/// The survivors' attempts to start a run of the victim's account in the minute after the
/// kill (from their logs) and their CPU time; and how much of that minute the fleet ran.
fn survivor_figures(
    instances: &[Instance],
    kill: Option<&KillReport>,
    cpu_at_stop: &HashMap<u32, u64>,
    stop_ms: i64,
) -> (Vec<Survivor>, Option<f64>) {
    let window = kill.map(|k| {
        let end = (k.kill_ms + i64::try_from(HOT_LOOP_WINDOW.as_millis()).unwrap_or(i64::MAX))
            .min(stop_ms);
        (k.kill_ms, end)
    });
    let survivors = instances
        .iter()
        .filter(|i| !i.killed)
        .map(|i| {
            let cpu = cpu_at_stop.get(&i.pid).copied();
            let at_kill = kill.and_then(|k| k.cpu_ticks_at_kill.get(&i.pid).copied());
            let starts = kill.zip(window).and_then(|(k, (from, to))| {
                let log = std::fs::read_to_string(&i.stderr_path).ok()?;
                Some(count_starts(&log, &k.victim.account, from, to))
            });
            Survivor {
                instance: i.index,
                pid: i.pid,
                victim_account_starts: starts,
                cpu_s: cpu.map(ticks_to_s),
                cpu_after_kill_s: cpu
                    .zip(at_kill)
                    .map(|(end, start)| ticks_to_s(end.saturating_sub(start))),
            }
        })
        .collect();
    (survivors, window.map(|(from, to)| ms_to_s(to - from)))
}

/// The `START_LINE` lines of an instance's log (its stderr: ANSI colours and all) for
/// `account` logged within `[from_ms, to_ms]`.
fn count_starts(log: &str, account: &str, from_ms: i64, to_ms: i64) -> usize {
    let field = format!("account.name={account}");
    log.lines()
        .filter(|line| line.contains(START_LINE))
        .map(strip_ansi)
        .filter(|line| line.split_whitespace().any(|w| w == field))
        .filter_map(|line| {
            let stamp = line.split_whitespace().next()?;
            chrono::DateTime::parse_from_rfc3339(stamp)
                .ok()
                .map(|t| t.timestamp_millis())
        })
        .filter(|ms| (from_ms..=to_ms).contains(ms))
        .count()
}

/// How many (account, offers|orders) pairs have a succeeded run started after `after_ms`.
async fn synced_after(pool: &PgPool, after_ms: i64) -> anyhow::Result<usize> {
    // A count the store has no call for; the state and kinds come from their enums.
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT DISTINCT account, kind FROM runs \
         WHERE state = $1 AND kind IN ($2, $3) AND started_at > $4) s",
    )
    .bind(RunState::Succeeded.as_str())
    .bind(SyncKind::Offers.as_str())
    .bind(SyncKind::Orders.as_str())
    .bind(after_ms)
    .fetch_one(pool)
    .await
    .context("reading the runs table")?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// SIGTERM to every live instance at once, then waits for each to exit.
async fn stop_all(instances: &mut [Instance]) -> Vec<InstanceExit> {
    for instance in instances.iter().filter(|i| !i.killed) {
        let _ = Command::new("kill")
            .args(["-TERM", &instance.pid.to_string()])
            .status()
            .await;
    }
    let mut exits = Vec::new();
    for instance in instances.iter_mut() {
        if instance.killed {
            exits.push(InstanceExit {
                instance: instance.index,
                pid: instance.pid,
                killed: true,
                code: None,
                note: "SIGKILLed by the benchmark".to_owned(),
            });
            continue;
        }
        let (code, note) = match tokio::time::timeout(STOP_TIMEOUT, instance.child.wait()).await {
            Ok(Ok(status)) => (
                status.code(),
                if status.success() {
                    "stopped cleanly".to_owned()
                } else {
                    format!(
                        "exited with {status}; see {}",
                        instance.stderr_path.display()
                    )
                },
            ),
            Ok(Err(e)) => (None, format!("cannot wait for it: {e}")),
            Err(_) => {
                let _ = instance.child.start_kill();
                let _ = instance.child.wait().await;
                (
                    None,
                    format!(
                        "did not exit within {} s of SIGTERM; killed",
                        STOP_TIMEOUT.as_secs()
                    ),
                )
            }
        };
        exits.push(InstanceExit {
            instance: instance.index,
            pid: instance.pid,
            killed: false,
            code,
            note,
        });
    }
    exits
}

/// Duplicates, overlaps, states and counts per schedule, from every run of the benchmark.
fn analyze_runs(
    report: &mut Report,
    runs: &[RunRow],
    schedules: &[Schedule],
    spawned_ms: i64,
    t0_ms: i64,
    end_ms: i64,
) {
    let rel = |ms: i64| ms_to_s(ms - t0_ms);
    // Duplicates: two runs of one (account, kind, slot).
    let mut by_slot: HashMap<(&str, SyncKind, i64), Vec<i64>> = HashMap::new();
    for r in runs {
        if let Some(slot) = r.slot {
            by_slot
                .entry((r.account.as_str(), r.kind, slot))
                .or_default()
                .push(r.id);
        }
    }
    for ((account, kind, slot), ids) in &by_slot {
        if ids.len() > 1 {
            report.duplicates += ids.len() - 1;
            push_example(&mut report.duplicate_examples, || {
                format!("{account} {kind} slot {slot}: runs {ids:?}")
            });
        }
    }

    // Overlaps: runs of one account whose [start, end] intersect (touching ends do not). A
    // run never finished counts as lasting until every instance had exited.
    let mut by_account: BTreeMap<&str, Vec<&RunRow>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.started_at.is_some()) {
        by_account.entry(&r.account).or_default().push(r);
    }
    let end_of = |r: &RunRow| r.finished_at.unwrap_or(end_ms);
    for list in by_account.values_mut() {
        list.sort_by_key(|r| r.started_at);
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let (Some(a_start), Some(b_start)) = (a.started_at, b.started_at) else {
                    continue;
                };
                if b_start >= end_of(a) {
                    break;
                }
                report.overlaps += 1;
                if a.kind == b.kind {
                    report.overlaps_same_kind += 1;
                }
                push_example(&mut report.overlap_examples, || {
                    format!(
                        "{}: run {} {} [{:.1} s, {:.1} s] and run {} {} [{:.1} s, {:.1} s]",
                        a.account,
                        a.id,
                        a.kind,
                        rel(a_start),
                        rel(end_of(a)),
                        b.id,
                        b.kind,
                        rel(b_start),
                        rel(end_of(b))
                    )
                });
            }
        }
    }

    // States, triggers, and runs per schedule.
    let mut per_schedule: HashMap<(&str, SyncKind), Vec<&RunRow>> = HashMap::new();
    for r in runs {
        *report
            .runs_by_trigger
            .entry(r.trigger.as_str().to_owned())
            .or_default() += 1;
        let k = report
            .runs_by_kind
            .entry(r.kind.as_str().to_owned())
            .or_default();
        k.runs += 1;
        match r.state {
            RunState::Succeeded => k.succeeded += 1,
            // The fleet cancels nothing: a cancelled run is reported like a failed one.
            RunState::Failed | RunState::Cancelled => {
                k.failed += 1;
                push_example(&mut report.failed_runs, || {
                    format!(
                        "run {} {} {} ({}): {}",
                        r.id,
                        r.account,
                        r.kind,
                        r.error_class.map_or("?", |c| c.as_str()),
                        r.error_message
                            .as_deref()
                            .unwrap_or("")
                            .chars()
                            .take(200)
                            .collect::<String>()
                    )
                });
            }
            RunState::Interrupted => {
                k.interrupted += 1;
                report.interrupted_by_stop += 1;
            }
            RunState::Queued | RunState::Running => {
                k.running += 1;
                report.left_running += 1;
            }
        }
        per_schedule
            .entry((r.account.as_str(), r.kind))
            .or_default()
            .push(r);
    }
    let window_ms = (end_ms - spawned_ms).max(0);
    for s in schedules {
        let kind = s.kind.as_str();
        let list = per_schedule
            .get_mut(&(s.account.as_str(), s.kind))
            .map(std::mem::take)
            .unwrap_or_default();
        let interval_ms = i64::try_from(s.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let expected = usize::try_from(1 + window_ms / interval_ms).unwrap_or(0);
        let k = report.runs_by_kind.entry(kind.to_owned()).or_default();
        k.per_schedule_min = if k.schedules == 0 {
            list.len()
        } else {
            k.per_schedule_min.min(list.len())
        };
        k.per_schedule_max = k.per_schedule_max.max(list.len());
        k.per_schedule_expected = k.per_schedule_expected.max(expected);
        k.schedules += 1;
        // Scheduled runs of one schedule closer than half an interval: a double run that
        // slipped past the slot index under two different slots.
        let mut starts: Vec<(i64, i64)> = list
            .iter()
            .filter(|r| r.trigger == RunTrigger::Schedule)
            .filter_map(|r| r.started_at.map(|t| (t, r.id)))
            .collect();
        starts.sort_unstable();
        for pair in starts.windows(2) {
            if pair[1].0 - pair[0].0 < interval_ms / 2 {
                report.early_reruns += 1;
                push_example(&mut report.early_rerun_examples, || {
                    format!(
                        "{} {kind}: runs {} and {} started {:.1} s apart",
                        s.account,
                        pair[0].1,
                        pair[1].1,
                        (pair[1].0 - pair[0].0) as f64 / 1000.0
                    )
                });
            }
        }
    }
}

/// Slack after the lease TTL: the lease expires `ttl` after the holder's last heartbeat (at
/// most one heartbeat before the kill), and the survivors notice within a tick (at most 1 s).
const TAKEOVER_SLACK_S: f64 = 2.0;

/// Pass or fail: duplicates, overlaps, the takeover of the killed instance's runs, the
/// survivors' claim attempts and the data decide; the rest is reported as warnings.
///
/// Every run the killed instance held must be taken over within the lease TTL plus the
/// slack (on one host its dead pid is seen at the next tick; across hosts, with
/// `--separate-hosts`, only its expired lease tells), with the takeover recorded
/// (`reclaimed_from`), and end succeeded; on one host it must also be completed within the
/// TTL. A survivor that tried to start runs of the victim's account more than
/// `HOT_LOOP_MAX_STARTS` times in the minute after the kill is in a hot loop.
fn judge(report: &mut Report, kill: Option<KillReport>, lease_ttl: Duration, separate_hosts: bool) {
    let ttl = lease_ttl.as_secs_f64();
    if report.duplicates > 0 {
        report.failures.push(format!(
            "{} duplicate run(s) (same account, kind and slot)",
            report.duplicates
        ));
    }
    if report.overlaps > 0 {
        report.failures.push(format!(
            "{} pair(s) of overlapping runs of one account ({} of the same kind)",
            report.overlaps, report.overlaps_same_kind
        ));
    }
    match &kill {
        None => report.failures.push(
            "no instance was killed: no run reached the kill moment after --kill-after".to_owned(),
        ),
        Some(k) => {
            let v = &k.victim;
            if !v.on_target {
                report.warnings.push(format!(
                    "the SIGKILL landed past the {} moment: run {} ({} {}) was {} with {} page(s), checkpoint {} (replay with --kill-moment {} --seed {})",
                    k.moment,
                    v.id,
                    v.account,
                    v.kind,
                    v.state_at_kill,
                    v.pages_at_kill,
                    v.checkpoint_at_kill,
                    k.moment,
                    report.seed
                ));
            }
            let held: Vec<&HeldRun> = k.runs.iter().filter(|h| !h.finished_before_kill).collect();
            report.taken_over = held.iter().filter(|h| h.taken_over).count();
            report.taken_over_completed = held
                .iter()
                .filter(|h| h.taken_over && h.state == Some(RunState::Succeeded))
                .count();
            if held.is_empty() {
                report.failures.push(
                    "the killed instance's runs all ended before the SIGKILL: nothing was taken over"
                        .to_owned(),
                );
            }
            let state = |h: &HeldRun| h.state.map_or("deleted", RunState::as_str);
            for h in held {
                let which = if h.id == v.id {
                    format!("run {} ({} {}, the victim)", h.id, h.account, h.kind)
                } else {
                    format!("run {} ({} {})", h.id, h.account, h.kind)
                };
                if !h.taken_over {
                    report.failures.push(format!(
                        "{which} of the killed instance was not taken over (state {})",
                        state(h)
                    ));
                    continue;
                }
                if let Some(s) = h.takeover_s.filter(|s| *s > ttl + TAKEOVER_SLACK_S) {
                    report.failures.push(format!(
                        "{which} was taken over {s:.1} s after the kill, later than the lease TTL plus a tick ({ttl:.0} s + {TAKEOVER_SLACK_S} s)"
                    ));
                }
                if h.reclaimed_from.is_none() {
                    report.failures.push(format!(
                        "{which} was taken over but the takeover is not recorded (reclaimed_from is empty)"
                    ));
                }
                if h.state != Some(RunState::Succeeded) {
                    report
                        .failures
                        .push(format!("{which} was taken over but ended {}", state(h)));
                } else if !separate_hosts && h.completed_s.is_some_and(|s| s > ttl) {
                    report.failures.push(format!(
                        "{which} was completed {:.1} s after the kill, later than the lease TTL ({ttl:.0} s)",
                        h.completed_s.unwrap_or(0.0)
                    ));
                }
            }
            for s in &report.survivors {
                if let Some(n) = s.victim_account_starts.filter(|n| *n > HOT_LOOP_MAX_STARTS) {
                    report.failures.push(format!(
                        "instance {} (pid {}) tried to start a run of {} {n} times in the {:.0} s after the kill (at most {HOT_LOOP_MAX_STARTS}): a hot loop",
                        s.instance,
                        s.pid,
                        v.account,
                        report.hot_loop_window_s.unwrap_or(0.0)
                    ));
                }
                if s.victim_account_starts.is_none() {
                    report.warnings.push(format!(
                        "the log of instance {} (pid {}) could not be read: its claim attempts were not counted",
                        s.instance, s.pid
                    ));
                }
            }
            if let Some(w) = report
                .hot_loop_window_s
                .filter(|w| *w + 0.5 < HOT_LOOP_WINDOW.as_secs_f64())
            {
                report.warnings.push(format!(
                    "the fleet stopped {w:.0} s after the kill: claim attempts were counted over that, not over {} s",
                    HOT_LOOP_WINDOW.as_secs()
                ));
            }
        }
    }
    report.kill = kill;
    if report.data_mismatches > 0 {
        report.failures.push(format!(
            "data differs from the simulator: {} offer(s), {} order(s)",
            report.data.offer_mismatches, report.data.order_mismatches
        ));
    }
    if report.early_reruns > 0 {
        report.warnings.push(format!(
            "{} scheduled run(s) started less than half an interval after the previous one of their schedule",
            report.early_reruns
        ));
    }
    if !report.failed_runs.is_empty() {
        let failed: usize = report.runs_by_kind.values().map(|k| k.failed).sum();
        report.warnings.push(format!("{failed} run(s) failed"));
    }
    if report.left_running > 0 {
        report.warnings.push(format!(
            "{} run(s) still running or queued after every instance exited",
            report.left_running
        ));
    }
    for e in &report.exits {
        if !e.killed && e.code != Some(0) {
            report.warnings.push(format!(
                "instance {} (pid {}): {}",
                e.instance, e.pid, e.note
            ));
        }
    }
    report.passed = report.failures.is_empty();
}

impl Report {
    /// Every check passed.
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// What failed, one line each (empty when [`Report::passed`]).
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// The report as the command prints it.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "## emag-sync bench fleet\n");
        let _ = writeln!(o, "| | |\n|---|---|");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(o, "| {k} | {v} |");
        };
        row(
            "result",
            if self.passed { "PASS" } else { "FAIL" }.to_owned(),
        );
        row(
            "instances",
            format!(
                "{} (pids {})",
                self.instances,
                self.exits
                    .iter()
                    .map(|e| e.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        row(
            "accounts",
            format!(
                "{} × {} offers, {} orders; simulator in-process, rate limits on",
                self.accounts, self.offers_per_account, self.orders_per_account
            ),
        );
        row(
            "duration",
            format!(
                "{} min; stopped after {:.1} s (settle wait {:.1} s)",
                self.minutes, self.seconds_run, self.settle_seconds
            ),
        );
        row(
            "changes to the simulator",
            format!(
                "{} in {} rounds, the last at {}",
                self.mutations,
                self.mutation_rounds,
                self.last_mutation_s
                    .map_or("-".to_owned(), |s| format!("{s:.1} s"))
            ),
        );
        row(
            "runs",
            format!(
                "{}: {}; triggers {}",
                self.runs_total,
                self.runs_by_kind
                    .iter()
                    .map(|(k, f)| format!("{k} {}", f.runs))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.runs_by_trigger
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        row(
            "duplicate runs (same account, kind, slot)",
            self.duplicates.to_string(),
        );
        row(
            "scheduled runs < ½ interval apart",
            self.early_reruns.to_string(),
        );
        row(
            "overlapping runs (one account)",
            format!("{} (same kind: {})", self.overlaps, self.overlaps_same_kind),
        );
        row(
            "kill moment",
            format!(
                "{} (asked: {}; seed {})",
                self.kill.as_ref().map_or("-", |k| k.moment.as_str()),
                self.kill_moment_asked,
                self.seed
            ),
        );
        match &self.kill {
            Some(k) => {
                row(
                    "killed",
                    format!(
                        "instance {} (pid {}) at {:.1} s (waited {:.1} s for the moment), holding {} run(s)",
                        k.instance,
                        k.pid,
                        k.at_s,
                        k.waited_s,
                        k.runs.len()
                    ),
                );
                let v = &k.victim;
                row(
                    "victim run",
                    format!(
                        "run {} ({} {}): killed {} ms after its claim, {} page(s) written, checkpoint {}, total {}, heartbeat {} ms after the claim, {}; {}",
                        v.id,
                        v.account,
                        v.kind,
                        v.kill_after_claim_ms
                            .map_or("?".to_owned(), |ms| ms.to_string()),
                        v.pages_at_kill,
                        v.checkpoint_at_kill,
                        v.total_items.map_or("-".to_owned(), |n| n.to_string()),
                        v.heartbeat_after_claim_ms
                            .map_or("?".to_owned(), |ms| ms.to_string()),
                        v.state_at_kill,
                        if v.on_target {
                            "at the moment"
                        } else {
                            "MISSED: past the moment"
                        }
                    ),
                );
                let range = |v: Vec<f64>| match (
                    v.iter().copied().reduce(f64::min),
                    v.iter().copied().reduce(f64::max),
                ) {
                    (Some(a), Some(b)) => format!("{a:.1}–{b:.1} s"),
                    _ => "-".to_owned(),
                };
                row(
                    "taken over",
                    format!(
                        "{} of {}, completed {}; takeover {}, completion {} after the kill",
                        self.taken_over,
                        k.runs.iter().filter(|h| !h.finished_before_kill).count(),
                        self.taken_over_completed,
                        range(k.runs.iter().filter_map(|h| h.takeover_s).collect()),
                        range(k.runs.iter().filter_map(|h| h.completed_s).collect())
                    ),
                );
            }
            None => row("killed", "nothing (no run reached the moment)".to_owned()),
        }
        if let Some(k) = &self.kill {
            row(
                &format!(
                    "survivors' attempts to start a run of {} in the {:.0} s after the kill",
                    k.victim.account,
                    self.hot_loop_window_s.unwrap_or(0.0)
                ),
                format!(
                    "{} (at most {HOT_LOOP_MAX_STARTS} each)",
                    self.survivors
                        .iter()
                        .map(|s| format!(
                            "instance {}: {}",
                            s.instance,
                            s.victim_account_starts
                                .map_or("?".to_owned(), |n| n.to_string())
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let cpu = |v: Option<f64>| v.map_or("?".to_owned(), |s| format!("{s:.1} s"));
        row(
            "survivors' CPU time (user + system)",
            self.survivors
                .iter()
                .map(|s| {
                    format!(
                        "instance {}: {} ({} after the kill)",
                        s.instance,
                        cpu(s.cpu_s),
                        cpu(s.cpu_after_kill_s)
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        row(
            "lease TTL",
            format!(
                "{:.0} s{}",
                self.lease_ttl_seconds,
                if self.separate_hosts {
                    " (instances named apart: a dead holder is known only when its lease expires)"
                } else {
                    " (one host: a dead holder's pid is gone at once)"
                }
            ),
        );
        let failed: usize = self.runs_by_kind.values().map(|k| k.failed).sum();
        row("failed runs", failed.to_string());
        row(
            "interrupted by the stop / left running",
            format!("{} / {}", self.interrupted_by_stop, self.left_running),
        );
        row(
            "instance exits",
            self.exits
                .iter()
                .map(|e| match (e.killed, e.code) {
                    (true, _) => "killed".to_owned(),
                    (false, Some(c)) => c.to_string(),
                    (false, None) => "?".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        row(
            "data vs simulator",
            format!(
                "offers {} compared, {} mismatches; orders {} compared, {} mismatches",
                self.data.offers_compared,
                self.data.offer_mismatches,
                self.data.orders_compared,
                self.data.order_mismatches
            ),
        );

        let _ = writeln!(
            o,
            "\n| kind | schedules | runs | succeeded | failed | interrupted | running | runs per schedule (min–max) | expected ≈ |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (kind, f) in &self.runs_by_kind {
            let _ = writeln!(
                o,
                "| {kind} | {} | {} | {} | {} | {} | {} | {}–{} | {} |",
                f.schedules,
                f.runs,
                f.succeeded,
                f.failed,
                f.interrupted,
                f.running,
                f.per_schedule_min,
                f.per_schedule_max,
                f.per_schedule_expected
            );
        }
        if let Some(k) = &self.kill {
            let _ = writeln!(
                o,
                "\n| run of the killed instance | account | kind | taken over by | takeover (s) | reclaimed_at (s) | reclaimed_from | completed (s) | state |"
            );
            let _ = writeln!(o, "|---:|---|---|---|---:|---:|---|---:|---|");
            let num = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.1}"));
            for h in &k.runs {
                let _ = writeln!(
                    o,
                    "| {}{} | {} | {} | {} | {} | {} | {} | {} | {}{} |",
                    h.id,
                    if h.id == k.victim.id { " (victim)" } else { "" },
                    h.account,
                    h.kind,
                    h.taken_over_by.as_deref().unwrap_or("-"),
                    num(h.takeover_s),
                    num(h.reclaimed_at_s),
                    h.reclaimed_from.as_deref().unwrap_or("-"),
                    num(h.completed_s),
                    h.state.map_or("deleted", RunState::as_str),
                    if h.finished_before_kill {
                        " (ended before the kill)"
                    } else {
                        ""
                    }
                );
            }
        }
        let lists = [
            ("duplicates", &self.duplicate_examples),
            ("scheduled runs too close", &self.early_rerun_examples),
            ("overlaps", &self.overlap_examples),
            ("failed runs", &self.failed_runs),
            ("data mismatches", &self.data.examples),
            ("warnings", &self.warnings),
            ("FAILED", &self.failures),
        ];
        for (title, list) in lists {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(o, "\n{title}:");
            for line in list.iter() {
                let _ = writeln!(o, "- {line}");
            }
        }
        let _ = writeln!(
            o,
            "\n{}",
            match (self.passed, self.separate_hosts) {
                (true, false) => "PASS: no duplicate or overlapping runs, the killed instance's runs were taken over (recorded) and completed within the lease TTL, no survivor retried in a hot loop, the data equals the simulator's.",
                (true, true) => "PASS: no duplicate or overlapping runs, the killed instance's runs were taken over (recorded) when their lease expired and completed, no survivor retried in a hot loop, the data equals the simulator's.",
                (false, _) => "FAIL",
            }
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_judged_from_the_run_at_the_kill() {
        assert!(Moment::Claimed.reached(RunState::Running, 0, true));
        assert!(!Moment::Claimed.reached(RunState::Succeeded, 0, true));
        assert!(Moment::FirstPage.reached(RunState::Running, 0, false));
        assert!(!Moment::FirstPage.reached(RunState::Running, 1, false));
        assert!(Moment::Removals.reached(RunState::Running, 4, false));
    }

    #[test]
    fn the_same_seed_makes_the_same_choices() {
        let choose = |seed| {
            let mut rng = Rng::new(seed);
            let moment = KillMoment::Random.resolve(&mut rng);
            (moment, rng.below(200), rng.pick(&[1, 2, 3]).copied())
        };
        assert_eq!(choose(42), choose(42));
        let moments: std::collections::HashSet<Moment> = (0..64)
            .map(|seed| KillMoment::Random.resolve(&mut Rng::new(seed)))
            .collect();
        assert_eq!(
            moments.len(),
            Moment::ALL.len(),
            "random reaches every moment"
        );
    }

    #[test]
    fn claim_attempts_are_counted_per_account_inside_the_window() {
        let log = "\
\u{1b}[2m2026-12-01T10:00:00.500000Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m starting a scheduled run \u{1b}[3maccount.name\u{1b}[0m\u{1b}[2m=\u{1b}[0macc001 \u{1b}[3msync.kind\u{1b}[0m\u{1b}[2m=\u{1b}[0moffers
2026-12-01T10:00:01.000000Z  INFO starting a scheduled run account.name=acc001 sync.kind=orders
2026-12-01T10:00:01.000000Z  INFO starting a scheduled run account.name=acc0010 sync.kind=orders
2026-12-01T10:00:02.000000Z  INFO run finished account.name=acc001
2026-12-01T10:01:30.000000Z  INFO starting a scheduled run account.name=acc001 sync.kind=returns
";
        let from = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .map(|t| t.timestamp_millis())
            .unwrap_or(0);
        assert_eq!(count_starts(log, "acc001", from, from + 60_000), 2);
        assert_eq!(count_starts(log, "acc0010", from, from + 60_000), 1);
    }

    /// A kill at the claimed moment of run 7 (acc003 offers), taken over after
    /// `takeover_s`, recorded or not, with survivors that tried `starts` times each.
    fn judged(takeover_s: f64, recorded: bool, starts: &[usize]) -> Report {
        let mut report = Report {
            seed: 11,
            survivors: starts
                .iter()
                .enumerate()
                .map(|(i, n)| Survivor {
                    instance: i + 1,
                    pid: 100 + u32::try_from(i).unwrap_or(0),
                    victim_account_starts: Some(*n),
                    cpu_s: Some(1.0),
                    cpu_after_kill_s: Some(0.5),
                })
                .collect(),
            hot_loop_window_s: Some(60.0),
            ..Report::default()
        };
        let kill = KillReport {
            moment: Moment::Claimed,
            instance: 0,
            pid: 99,
            at_s: 30.0,
            waited_s: 1.0,
            victim: VictimRun {
                id: 7,
                account: "acc003".to_owned(),
                kind: SyncKind::Offers,
                holder: "fleet-host-0:99:ab".to_owned(),
                state_at_kill: RunState::Running,
                pages_at_kill: 0,
                checkpoint_at_kill: 0,
                total_items: None,
                kill_after_claim_ms: Some(4),
                heartbeat_after_claim_ms: Some(0),
                on_target: true,
            },
            runs: vec![HeldRun {
                id: 7,
                account: "acc003".to_owned(),
                kind: SyncKind::Offers,
                attempt_before: 1,
                finished_before_kill: false,
                taken_over: true,
                taken_over_by: Some("instance 1 (pid 100)".to_owned()),
                takeover_s: Some(takeover_s),
                reclaimed_at_s: Some(takeover_s),
                reclaimed_from: recorded.then(|| "fleet-host-0:99:ab".to_owned()),
                completed_s: Some(takeover_s + 1.0),
                state: Some(RunState::Succeeded),
            }],
            kill_ms: 0,
            cpu_ticks_at_kill: HashMap::new(),
        };
        judge(&mut report, Some(kill), Duration::from_secs(15), true);
        report
    }

    #[test]
    fn a_recorded_takeover_at_lease_expiry_without_a_hot_loop_passes() {
        let report = judged(15.0, true, &[4, 5]);
        assert!(report.passed, "{:?}", report.failures);
    }

    #[test]
    fn a_late_or_unrecorded_takeover_and_a_hot_loop_fail() {
        let report = judged(40.0, false, &[3, 21]);
        assert!(!report.passed);
        let failures = report.failures.join("\n");
        assert!(
            failures.contains("taken over 40.0 s after the kill"),
            "{failures}"
        );
        assert!(failures.contains("reclaimed_from is empty"), "{failures}");
        assert!(
            failures.contains("instance 2 (pid 101) tried to start a run of acc003 21 times"),
            "{failures}"
        );
        assert!(!failures.contains("instance 1 "), "{failures}");
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat =
            "4242 (emag (sync) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 31 0 0 20 0 8 0 1 2 3";
        assert_eq!(cpu_ticks_of(stat), Some(281));
        assert_eq!(cpu_ticks_of("garbage"), None);
    }
}
