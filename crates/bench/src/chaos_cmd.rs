//! `emag-bench chaos`: the chaos harness (`emag_bench::chaos`) on fresh databases — a SQLite
//! file, and a private PostgreSQL cluster it may restart — its table on stdout, exit 1 on any
//! lost, duplicated or falsely removed row, any store that did not settle, any run left
//! unfinished or failed without a classified error, any schedule the scheduler did not bring
//! back by itself, a scheduler that did not survive. And `emag-bench soak`: the same
//! scheduler at ordinary work without faults (`emag_bench::chaos::soak`), its memory after
//! every round, exit 1 on any failed run or any round that did not end equal to the simulator.

use std::time::Duration;

use emag_bench::chaos::{self, soak, FaultKind, Options};
use emag_bench::kill::BackendKind;
use emag_bench::rng;

use crate::harness::{print_report, WorkDir};
use crate::{emag_sync_exe, init_logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Faults (rounds) per backend.
    #[arg(long, default_value_t = 50)]
    rounds: usize,
    /// Backends, comma-separated: sqlite, postgres (a private cluster, initdb'd and started
    /// by the harness: PostgreSQL's server programs must be installed — EMAG_PG_BIN names
    /// their directory if they are not in /usr/lib/postgresql/*/bin).
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Only these faults, comma-separated (default: every fault of the backend): reset-mid-body,
    /// half-close-mid-body, blackhole-mid-body, stall, slow-body, refuse, cut-all,
    /// server-errors, malformed, rate-limit-storm; on PostgreSQL pg-restart-fast,
    /// pg-restart-immediate, pg-down, pg-cut, pg-stall, pg-reset-mid-answer; on SQLite
    /// sqlite-locked.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Seed of every choice (fault and parameters per round, moment, changes); default: from
    /// the clock. Always printed, so that a run can be replayed.
    #[arg(long)]
    seed: Option<u64>,
    /// The engine's EMAG_API_TIMEOUT in seconds; stalls last 2 s longer.
    #[arg(long, default_value_t = 1.0)]
    api_timeout: f64,
    /// Milliseconds the simulator adds to every answer.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Offers per simulated account at the start (100 per page).
    #[arg(long, default_value_t = 450)]
    offers: u32,
    /// Orders per simulated account at the start.
    #[arg(long, default_value_t = 200)]
    orders: u32,
    /// Keep the logs and the SQLite file even when every check passes (they, and the
    /// private PostgreSQL cluster, are always kept when one fails).
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> u8 {
    // PostgreSQL restarts are the point: the harness's own connections noticing them are not
    // news.
    init_logging("warn,sqlx=error");
    match Box::pin(chaos_rounds(&args)).await {
        Ok(passed) => u8::from(!passed),
        Err(e) => {
            eprintln!("error: bench chaos could not complete: {e:#}");
            1
        }
    }
}

async fn chaos_rounds(args: &Args) -> anyhow::Result<bool> {
    let exe = emag_sync_exe()?;
    let seed = args.seed.unwrap_or_else(rng::seed_from_clock);
    if !(args.api_timeout > 0.0 && args.api_timeout <= 60.0) {
        anyhow::bail!(
            "--api-timeout: {} is not within (0, 60] seconds",
            args.api_timeout
        );
    }
    let backends = backend_kinds(&args.backends)?;
    let mut only = Vec::new();
    for name in &args.faults {
        match FaultKind::parse(name) {
            Some(f) => only.push(f),
            None => anyhow::bail!("--faults: {name:?} is not a fault (see --help)"),
        }
    }
    let dir = WorkDir::create("chaos")?;
    eprintln!(
        "chaos: {} round(s) per backend on {}, seed {seed}, API timeout {} s, latency {} ms, logs in {}",
        args.rounds,
        args.backends.join(", "),
        args.api_timeout,
        args.latency_ms,
        dir.path().display()
    );
    let mut opts = Options::new(exe, backends, dir.path().to_owned());
    opts.rounds = args.rounds;
    opts.only = only;
    opts.seed = seed;
    opts.api_timeout = Duration::from_secs_f64(args.api_timeout);
    opts.latency = Duration::from_millis(args.latency_ms);
    opts.offers = args.offers;
    opts.orders = args.orders;
    opts.verbose = true;
    let report = chaos::run(&opts).await?;
    let passed = print_report("chaos", &report, args.json)?;
    dir.finish(passed && !args.keep, "");
    Ok(passed)
}

/// `--backends`, as given.
fn backend_kinds(names: &[String]) -> anyhow::Result<Vec<BackendKind>> {
    names
        .iter()
        .map(|name| match name.trim() {
            "sqlite" => Ok(BackendKind::Sqlite),
            "postgres" => Ok(BackendKind::Postgres),
            other => anyhow::bail!("--backends: {other:?} is not sqlite or postgres"),
        })
        .collect()
}

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Rounds per backend (each: the data churns, every account and kind synced, memory read,
    /// the store compared with the simulator).
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Backends, comma-separated: sqlite, postgres (a private cluster, as for `chaos`).
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Seed of every change; default: from the clock. Always printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Milliseconds the simulator adds to every answer.
    #[arg(long, default_value_t = 2)]
    latency_ms: u64,
    /// Offers per simulated account at the start (100 per page; the churn keeps the size).
    #[arg(long, default_value_t = 3_000)]
    offers: u32,
    /// Orders per simulated account at the start (each round adds 1–20 more).
    #[arg(long, default_value_t = 1_000)]
    orders: u32,
    /// Keep the logs and the SQLite file even when every check passes.
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub async fn run_soak(args: SoakArgs) -> u8 {
    init_logging("warn,sqlx=error");
    match Box::pin(soak_rounds(&args)).await {
        Ok(passed) => u8::from(!passed),
        Err(e) => {
            eprintln!("error: bench soak could not complete: {e:#}");
            1
        }
    }
}

async fn soak_rounds(args: &SoakArgs) -> anyhow::Result<bool> {
    let exe = emag_sync_exe()?;
    let seed = args.seed.unwrap_or_else(rng::seed_from_clock);
    let backends = backend_kinds(&args.backends)?;
    let dir = WorkDir::create("soak")?;
    eprintln!(
        "soak: {} round(s) per backend on {}, seed {seed}, {} offers and {} orders per account, logs in {}",
        args.rounds,
        args.backends.join(", "),
        args.offers,
        args.orders,
        dir.path().display()
    );
    let mut opts = Options::new(exe, backends, dir.path().to_owned());
    opts.rounds = args.rounds;
    opts.seed = seed;
    opts.latency = Duration::from_millis(args.latency_ms);
    opts.offers = args.offers;
    opts.orders = args.orders;
    opts.verbose = true;
    let report = soak::run(&opts).await?;
    let passed = print_report("soak", &report, args.json)?;
    dir.finish(passed && !args.keep, "");
    Ok(passed)
}
