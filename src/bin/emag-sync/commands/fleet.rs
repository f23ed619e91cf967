//! `emag-sync bench fleet`: the multi-instance acceptance measurement.
//!
//! Several `emag-sync start` processes share one fresh PostgreSQL database and schedule the
//! same accounts of an in-process simulator (eMAG rate limits on) whose data changes every
//! 20 s; one instance holding a running run is SIGKILLed mid-way. Measured from the `runs`
//! table and the simulator: duplicate runs (two runs of one scheduled slot), overlapping runs
//! of one account, how fast the killed instance's runs were taken over and completed (next to
//! the lease TTL), and whether the database ends equal to the simulator. Exit 0 only when
//! there are no duplicates and no overlaps, every taken-over run completed within the lease
//! TTL, and the data is equal.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use emag_sim::{AccountKind, AccountSpec, Mutation, SimConfig, Simulator};
use emag_sync::config::Config;
use emag_sync::scheduler::Schedule;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

use crate::output::init_logging;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `emag-sync start` processes sharing the database (at least 2: one is killed).
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// Simulated accounts (acc001, acc002, …), each scheduled every minute for every kind.
    #[arg(long, default_value_t = 200)]
    accounts: u32,
    /// How long the fleet runs, in minutes (fractions allowed, e.g. 0.75).
    #[arg(long, default_value_t = 15.0)]
    minutes: f64,
    /// Seconds after the fleet is ready when an instance holding a running run is SIGKILLed
    /// (default: a third of the duration).
    #[arg(long)]
    kill_after: Option<f64>,
    /// Offers per simulated account.
    #[arg(long, default_value_t = 300)]
    offers_per_account: u32,
    /// Orders per simulated account at the start (more arrive while it runs).
    #[arg(long, default_value_t = 40)]
    orders_per_account: u32,
    /// PostgreSQL server on which the benchmark database is created.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Name of the database to create (replaced if it exists; default emag_fleet_<pid>).
    #[arg(long)]
    database: Option<String>,
    /// Lease TTL in seconds for the instances (EMAG_LEASE_TTL; default: emag-sync's).
    #[arg(long)]
    lease_ttl: Option<f64>,
    /// Give every instance its own EMAG_INSTANCE_NAME, so they treat each other as processes
    /// on other machines: a killed holder is then taken over only when its heartbeat is
    /// older than the lease TTL (the cross-host path), not at once from its dead pid.
    #[arg(long)]
    separate_hosts: bool,
    /// Keep the database and the instances' logs even when every check passes (they are
    /// always kept when one fails).
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
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

pub async fn run(args: Args) -> u8 {
    init_logging("warn");
    // Interrupted (Ctrl-C, SIGTERM): dropping the benchmark SIGKILLs its instances
    // (`kill_on_drop`), so none is left running against the database.
    let outcome = tokio::select! {
        outcome = Box::pin(fleet(&args)) => outcome,
        () = super::sync::shutdown_signal() => {
            eprintln!("bench fleet interrupted: instances killed; the database and logs are left as they were");
            return 130;
        }
    };
    match outcome {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: cannot write the JSON report: {e}");
                        return 1;
                    }
                }
            } else {
                print!("{}", report.markdown());
            }
            if report.passed {
                0
            } else {
                eprintln!("bench fleet FAILED: {}", report.failures.join("; "));
                1
            }
        }
        Err(e) => {
            eprintln!("error: bench fleet could not complete: {e:#}");
            1
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

/// A row of `runs`, read as JSON so columns added by later migrations do not break it.
#[derive(Debug, Clone, Deserialize)]
struct Run {
    id: i64,
    account: String,
    kind: String,
    trigger: String,
    state: String,
    attempt: i64,
    slot: Option<i64>,
    holder: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    error_class: Option<String>,
    error_message: Option<String>,
    /// Present once the scheduler records takeovers itself (migration 0004).
    reclaimed_at: Option<i64>,
}

fn pid_of_holder(holder: &str) -> Option<u32> {
    holder.split(':').nth(1)?.parse().ok()
}

async fn query_runs(pool: &PgPool, filter: &str, ids: Option<&[i64]>) -> anyhow::Result<Vec<Run>> {
    let sql = format!("SELECT to_jsonb(r)::text FROM runs r {filter} ORDER BY r.id");
    let mut q = sqlx::query_scalar::<_, String>(&sql);
    if let Some(ids) = ids {
        q = q.bind(ids.to_vec());
    }
    let rows = q.fetch_all(pool).await.context("reading the runs table")?;
    rows.iter()
        .map(|text| serde_json::from_str::<Run>(text).with_context(|| format!("a run row: {text}")))
        .collect()
}

#[derive(Debug, Serialize)]
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
    instance: usize,
    pid: u32,
    /// Seconds after the fleet was ready.
    at_s: f64,
    /// Seconds spent waiting for an instance to hold a running run.
    waited_s: f64,
    runs: Vec<HeldRun>,
}

#[derive(Debug, Serialize)]
struct HeldRun {
    id: i64,
    account: String,
    kind: String,
    attempt_before: i64,
    /// It ended before the SIGKILL landed (nothing to take over).
    finished_before_kill: bool,
    taken_over: bool,
    taken_over_by: Option<String>,
    /// Seconds from the SIGKILL until another holder was seen (100 ms polls).
    takeover_s: Option<f64>,
    /// The same, from the run's own `reclaimed_at` where the schema has it.
    reclaimed_at_s: Option<f64>,
    /// Seconds from the SIGKILL until the run finished.
    completed_s: Option<f64>,
    state: String,
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

async fn fleet(args: &Args) -> anyhow::Result<Report> {
    let timeline = Timeline::from_args(args)?;
    let exe = std::env::current_exe().context("cannot find the emag-sync executable")?;
    let db_name = args
        .database
        .clone()
        .unwrap_or_else(|| format!("emag_fleet_{}", std::process::id()));
    if db_name.is_empty()
        || !db_name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!("--database must be lowercase letters, digits and _ (got {db_name:?})");
    }
    let dir = std::env::temp_dir().join(format!("emag-sync-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the work directory {}", dir.display()))?;

    let db_url = super::bench::fresh_postgres(&args.postgres, &db_name)
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
        .filter(|s| matches!(s.kind, domain::SyncKind::Offers | domain::SyncKind::Orders))
        .map(|s| s.interval)
        .max()
        .unwrap_or(Duration::from_secs(60));

    progress(&format!(
        "{} instances, {} accounts ({} schedules), {:.1} min, SIGKILL after {:.0} s, database {}, logs in {}",
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
        let (instance, stdout) = spawn_instance(&exe, &vars, &dir, index, args.separate_hosts)?;
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
    let search = interval + Duration::from_secs(30);
    let kill = kill_one(&pool, &mut instances, t0_ms, search, lease_ttl).await?;

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

    // Stop: SIGTERM to every instance still alive, then wait for each.
    let stop_ms = storage::now_ms();
    progress("stopping the fleet (SIGTERM)");
    let exits = stop_all(&mut instances).await;
    let end_ms = storage::now_ms();

    let runs = query_runs(&pool, "", None).await?;
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
        kill: None,
        exits,
        data: DataCheck::default(),
        data_mismatches: 0,
        logs: dir.display().to_string(),
    };
    analyze_runs(&mut report, &runs, &schedules, spawned_ms, t0_ms, end_ms);
    report.data = compare_data(&store, &sim.sim, &names).await?;
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
        drop_database(&args.postgres, &db_name).await;
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

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
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

/// Waits (polling, up to `search`) until an instance holds a running run, SIGKILLs it and
/// follows its runs until each is finished by another instance (or the lease TTL plus two
/// minutes has passed).
async fn kill_one(
    pool: &PgPool,
    instances: &mut [Instance],
    t0_ms: i64,
    search: Duration,
    lease_ttl: Duration,
) -> anyhow::Result<Option<KillReport>> {
    let searching = Instant::now();
    let (victim, held) = loop {
        let running = query_runs(pool, "WHERE r.state = 'running'", None).await?;
        let mut by_instance: BTreeMap<usize, Vec<Run>> = BTreeMap::new();
        for run in running {
            let pid = run.holder.as_deref().and_then(pid_of_holder);
            if let Some(inst) = instances.iter().find(|i| Some(i.pid) == pid && !i.killed) {
                by_instance.entry(inst.index).or_default().push(run);
            }
        }
        // The instance holding the most runs: the most takeovers to measure.
        if let Some((index, runs)) = by_instance.into_iter().max_by_key(|(_, runs)| runs.len()) {
            break (index, runs);
        }
        if searching.elapsed() > search {
            progress(&format!(
                "no instance held a running run within {} s; nothing was killed",
                search.as_secs()
            ));
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    };
    let waited_s = secs(searching.elapsed());
    let instance = &mut instances[victim];
    let kill_ms = storage::now_ms();
    instance
        .child
        .start_kill()
        .with_context(|| format!("cannot SIGKILL pid {}", instance.pid))?;
    let _ = instance.child.wait().await;
    instance.killed = true;
    let pid = instance.pid;
    let ids: Vec<i64> = held.iter().map(|r| r.id).collect();
    progress(&format!(
        "SIGKILLed instance {victim} (pid {pid}) at {:.1} s, holding run(s) {ids:?}",
        ms_to_s(kill_ms - t0_ms)
    ));

    let mut report: Vec<HeldRun> = held
        .iter()
        .map(|r| HeldRun {
            id: r.id,
            account: r.account.clone(),
            kind: r.kind.clone(),
            attempt_before: r.attempt,
            finished_before_kill: false,
            taken_over: false,
            taken_over_by: None,
            takeover_s: None,
            reclaimed_at_s: None,
            completed_s: None,
            state: r.state.clone(),
        })
        .collect();
    let pids: HashMap<u32, usize> = instances.iter().map(|i| (i.pid, i.index)).collect();
    let deadline = Instant::now() + lease_ttl + Duration::from_secs(120);
    loop {
        let now_ms = storage::now_ms();
        let rows: HashMap<i64, Run> = query_runs(pool, "WHERE r.id = ANY($1)", Some(&ids))
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        for held in &mut report {
            let Some(row) = rows.get(&held.id) else {
                held.state = "deleted".to_owned();
                continue;
            };
            held.state = row.state.clone();
            let finished = matches!(row.state.as_str(), "succeeded" | "failed");
            if row.attempt > held.attempt_before && !held.taken_over {
                held.taken_over = true;
                let seen = row.finished_at.map_or(now_ms, |f| f.min(now_ms));
                held.takeover_s = Some(ms_to_s(seen - kill_ms));
                held.taken_over_by = row.holder.as_deref().map(|h| {
                    match pid_of_holder(h).and_then(|p| pids.get(&p).map(|i| (p, *i))) {
                        Some((p, i)) => format!("instance {i} (pid {p})"),
                        None => h.to_owned(),
                    }
                });
            }
            if let Some(at) = row.reclaimed_at {
                held.reclaimed_at_s = Some(ms_to_s(at - kill_ms));
            }
            if finished && held.completed_s.is_none() {
                let at = row.finished_at.unwrap_or(now_ms);
                held.completed_s = Some(ms_to_s(at - kill_ms));
                held.finished_before_kill = !held.taken_over && at <= kill_ms;
            }
        }
        let open = report.iter().filter(|h| h.completed_s.is_none()).count();
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
            "run {} ({} {}): taken over {} after {} s by {}, {} after {} s",
            h.id,
            h.account,
            h.kind,
            if h.taken_over { "yes" } else { "NO" },
            h.takeover_s.map_or("-".to_owned(), |s| format!("{s:.1}")),
            h.taken_over_by.as_deref().unwrap_or("-"),
            h.state,
            h.completed_s.map_or("-".to_owned(), |s| format!("{s:.1}")),
        ));
    }
    Ok(Some(KillReport {
        instance: victim,
        pid,
        at_s: ms_to_s(kill_ms - t0_ms),
        waited_s,
        runs: report,
    }))
}

/// How many (account, offers|orders) pairs have a succeeded run started after `after_ms`.
async fn synced_after(pool: &PgPool, after_ms: i64) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT DISTINCT account, kind FROM runs \
         WHERE state = 'succeeded' AND kind IN ('offers', 'orders') AND started_at > $1) s",
    )
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
    runs: &[Run],
    schedules: &[Schedule],
    spawned_ms: i64,
    t0_ms: i64,
    end_ms: i64,
) {
    let rel = |ms: i64| ms_to_s(ms - t0_ms);
    // Duplicates: two runs of one (account, kind, slot).
    let mut by_slot: HashMap<(&str, &str, i64), Vec<i64>> = HashMap::new();
    for r in runs {
        if let Some(slot) = r.slot {
            by_slot
                .entry((r.account.as_str(), r.kind.as_str(), slot))
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
    let mut by_account: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.started_at.is_some()) {
        by_account.entry(&r.account).or_default().push(r);
    }
    let end_of = |r: &Run| r.finished_at.unwrap_or(end_ms);
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
    let mut per_schedule: HashMap<(&str, &str), Vec<&Run>> = HashMap::new();
    for r in runs {
        *report.runs_by_trigger.entry(r.trigger.clone()).or_default() += 1;
        let k = report.runs_by_kind.entry(r.kind.clone()).or_default();
        k.runs += 1;
        match r.state.as_str() {
            "succeeded" => k.succeeded += 1,
            "failed" => {
                k.failed += 1;
                push_example(&mut report.failed_runs, || {
                    format!(
                        "run {} {} {} ({}): {}",
                        r.id,
                        r.account,
                        r.kind,
                        r.error_class.as_deref().unwrap_or("?"),
                        r.error_message
                            .as_deref()
                            .unwrap_or("")
                            .chars()
                            .take(200)
                            .collect::<String>()
                    )
                });
            }
            "interrupted" => {
                k.interrupted += 1;
                report.interrupted_by_stop += 1;
            }
            _ => {
                k.running += 1;
                report.left_running += 1;
            }
        }
        per_schedule
            .entry((r.account.as_str(), r.kind.as_str()))
            .or_default()
            .push(r);
    }
    let window_ms = (end_ms - spawned_ms).max(0);
    for s in schedules {
        let kind = s.kind.as_str();
        let list = per_schedule
            .get_mut(&(s.account.as_str(), kind))
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
            .filter(|r| r.trigger == "schedule")
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

/// The stored live offers and orders of every account against the simulator's.
async fn compare_data(
    store: &storage::Store,
    sim: &Simulator,
    names: &[String],
) -> anyhow::Result<DataCheck> {
    type OfferKey = (Option<Decimal>, Option<i64>, Option<i64>, Option<i64>);
    type LineKey = (i64, Option<i64>, Option<Decimal>, Option<i64>);
    type OrderKey = (i64, Option<i64>, Option<String>, Vec<LineKey>);
    fn dec(text: Option<&str>) -> Option<Decimal> {
        text.and_then(|t| t.parse::<Decimal>().ok())
            .map(|d| d.normalize())
    }
    fn diff<K: Ord + std::fmt::Debug + Copy, V: PartialEq + std::fmt::Debug>(
        account: &str,
        what: &str,
        got: &BTreeMap<K, V>,
        want: &BTreeMap<K, V>,
        examples: &mut Vec<String>,
    ) -> usize {
        let mut n = 0;
        for (id, w) in want {
            match got.get(id) {
                Some(g) if g == w => {}
                Some(g) => {
                    n += 1;
                    push_example(examples, || {
                        format!("{account} {what} {id:?}: database {g:?}, simulator {w:?}")
                    });
                }
                None => {
                    n += 1;
                    push_example(examples, || {
                        format!("{account} {what} {id:?}: missing from the database")
                    });
                }
            }
        }
        for id in got.keys().filter(|id| !want.contains_key(id)) {
            n += 1;
            push_example(examples, || {
                format!("{account} {what} {id:?}: in the database, not in the simulator")
            });
        }
        n
    }

    let mut check = DataCheck::default();
    for name in names {
        let got: BTreeMap<i64, OfferKey> = store
            .export_offers(Some(name), None, 100_000_000)
            .await
            .with_context(|| format!("reading the offers of {name}"))?
            .into_iter()
            .filter(|o| !o.removed)
            .map(|o| {
                let key = (
                    dec(o.sale_price.as_deref()),
                    o.general_stock,
                    o.estimated_stock,
                    o.status,
                );
                (o.id, key)
            })
            .collect();
        let want: BTreeMap<i64, OfferKey> = sim
            .offers(name)
            .into_iter()
            .map(|o| {
                let key = (
                    Some(o.sale_price.normalize()),
                    Some(i64::from(o.general_stock)),
                    Some(i64::from(o.estimated_stock)),
                    Some(i64::from(o.status)),
                );
                (i64::from(o.id), key)
            })
            .collect();
        check.offers_compared += want.len();
        check.offer_mismatches += diff(name, "offer", &got, &want, &mut check.examples);

        let got: BTreeMap<i64, OrderKey> = store
            .export_orders(Some(name), None, 100_000_000)
            .await
            .with_context(|| format!("reading the orders of {name}"))?
            .into_iter()
            .map(|o| {
                let lines = o
                    .products
                    .iter()
                    .map(|l| (l.id, l.quantity, dec(l.sale_price.as_deref()), l.status))
                    .collect();
                (o.id, (o.order_type, o.status, o.modified, lines))
            })
            .collect();
        let want: BTreeMap<i64, OrderKey> = sim
            .orders(name)
            .into_iter()
            .map(|o| {
                let lines = o
                    .products
                    .iter()
                    .map(|l| {
                        (
                            i64::try_from(l.id).unwrap_or(-1),
                            Some(i64::from(l.quantity)),
                            Some(l.sale_price.normalize()),
                            Some(i64::from(l.status)),
                        )
                    })
                    .collect();
                let key = (
                    i64::from(o.order_type),
                    Some(i64::from(o.status)),
                    Some(o.modified.format("%Y-%m-%d %H:%M:%S").to_string()),
                    lines,
                );
                (i64::try_from(o.id).unwrap_or(-1), key)
            })
            .collect();
        check.orders_compared += want.len();
        check.order_mismatches += diff(name, "order", &got, &want, &mut check.examples);
    }
    Ok(check)
}

/// Pass or fail: duplicates, overlaps, the takeover of the killed instance's runs and the
/// data decide; the rest is reported as warnings.
/// Slack on the cross-host path: the lease expires `ttl` after the holder's last heartbeat
/// (at most one heartbeat before the kill), and the survivors notice within a tick.
const TAKEOVER_SLACK_S: f64 = 2.0;

/// On one host a dead holder's pid is gone at once, so its runs must be *completed* within the
/// lease TTL. Across hosts (`--separate-hosts`) nobody can know the holder died before its
/// lease expires: its runs must be *taken over* when it does (TTL + a tick) and completed.
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
        None => report
            .failures
            .push("no instance was killed: none held a running run after --kill-after".to_owned()),
        Some(k) => {
            let held: Vec<&HeldRun> = k.runs.iter().filter(|h| !h.finished_before_kill).collect();
            report.taken_over = held.iter().filter(|h| h.taken_over).count();
            report.taken_over_completed = held
                .iter()
                .filter(|h| h.taken_over && h.state == "succeeded")
                .count();
            if held.is_empty() {
                report.failures.push(
                    "the killed instance's runs all ended before the SIGKILL: nothing was taken over"
                        .to_owned(),
                );
            }
            for h in held {
                if !h.taken_over {
                    report.failures.push(format!(
                        "run {} of the killed instance was not taken over (state {})",
                        h.id, h.state
                    ));
                } else if h.state != "succeeded" {
                    report
                        .failures
                        .push(format!("run {} was taken over but ended {}", h.id, h.state));
                } else if separate_hosts && h.takeover_s.is_some_and(|s| s > ttl + TAKEOVER_SLACK_S)
                {
                    report.failures.push(format!(
                        "run {} was taken over {:.1} s after the kill, later than its lease expiry ({ttl:.0} s + {TAKEOVER_SLACK_S} s)",
                        h.id,
                        h.takeover_s.unwrap_or(0.0)
                    ));
                } else if !separate_hosts && h.completed_s.is_some_and(|s| s > ttl) {
                    report.failures.push(format!(
                        "run {} was completed {:.1} s after the kill, later than the lease TTL ({ttl:.0} s)",
                        h.id,
                        h.completed_s.unwrap_or(0.0)
                    ));
                }
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

async fn drop_database(admin: &str, name: &str) {
    use sqlx::{Connection, Executor};
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await;
        let _ = conn.close().await;
    }
}

impl Report {
    fn markdown(&self) -> String {
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
        match &self.kill {
            Some(k) => {
                row(
                    "killed",
                    format!(
                        "instance {} (pid {}) at {:.1} s (waited {:.1} s for a running run), holding {} run(s)",
                        k.instance,
                        k.pid,
                        k.at_s,
                        k.waited_s,
                        k.runs.len()
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
            None => row("killed", "nothing (no running run found)".to_owned()),
        }
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
                "\n| run of the killed instance | account | kind | taken over by | takeover (s) | reclaimed_at (s) | completed (s) | state |"
            );
            let _ = writeln!(o, "|---:|---|---|---|---:|---:|---:|---|");
            let num = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.1}"));
            for h in &k.runs {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {}{} |",
                    h.id,
                    h.account,
                    h.kind,
                    h.taken_over_by.as_deref().unwrap_or("-"),
                    num(h.takeover_s),
                    num(h.reclaimed_at_s),
                    num(h.completed_s),
                    h.state,
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
                (true, false) => "PASS: no duplicate or overlapping runs, the killed instance's runs were taken over and completed within the lease TTL, the data equals the simulator's.",
                (true, true) => "PASS: no duplicate or overlapping runs, the killed instance's runs were taken over when their lease expired and completed, the data equals the simulator's.",
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
    fn holders_name_their_pid() {
        assert_eq!(pid_of_holder("host:1234:00ab"), Some(1234));
        assert_eq!(pid_of_holder("host"), None);
    }
}
