//! `emag-bench`: the benchmarks of emag-sync and its multi-instance acceptance harness, kept
//! out of the product binary. They drive a real `emag-sync` binary (by default the one beside
//! this program: build both with `cargo build --release --workspace`) against the simulator,
//! print figures, and assert no timings.
//!
//! - `emag-bench sync`: offer- and order-sync throughput and peak memory at several sizes,
//!   and the request rate reached with eMAG's limits on.
//! - `emag-bench accounts`: how many accounts one instance syncs at their full rate at once.
//! - `emag-bench scheduler`: lateness of run starts with many schedules on one instance.
//! - `emag-bench fleet`: several `start` processes sharing one PostgreSQL schedule, one killed
//!   (the harness is `emag_bench::fleet`).
//! - `emag-bench kill`: `sync` and `start` SIGKILLed at chosen moments of their runs, restarted,
//!   and the store compared with the simulator (the harness is `emag_bench::kill`).
//! - `emag-bench chaos`: faults thrown at a running `start` — through a TCP proxy to the
//!   simulator and to a private PostgreSQL cluster that is restarted — and the store compared
//!   with the simulator after the scheduler recovered by itself (`emag_bench::chaos`).
//! - `emag-bench soak`: the same running `start` kept at ordinary work while the data churns,
//!   its memory read after every round and the store compared with the simulator.
//! - `emag-bench status`: the cost of one status snapshot read with a long run history.
//! - `emag-bench load`: `/api/status` and `/metrics` latency at a constant request rate, and
//!   the server's peak memory, with that history.

mod accounts;
mod chaos_cmd;
mod engine;
mod fleet_cmd;
mod harness;
mod kill_cmd;
mod load;
mod scheduler;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "emag-bench",
    version,
    about = "Benchmarks of emag-sync (figures, no assertions on timings)"
)]
struct Cli {
    /// The emag-sync binary to measure (default: `emag-sync` beside this program).
    #[arg(long, global = true, value_name = "PATH")]
    emag_sync: Option<PathBuf>,

    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Offers (or orders, `--kind orders`) per second into SQLite and PostgreSQL and the
    /// sync's peak memory, per size (simulator limits off), or the request rate with eMAG's
    /// limits on.
    Sync(engine::Args),
    /// How many accounts one instance syncs at their full rate limit at once (300 offers/s
    /// each) before it falls behind, on SQLite and PostgreSQL.
    Accounts(accounts::Args),
    /// Lateness of run starts: many schedules on one scheduler instance, on SQLite and
    /// PostgreSQL.
    Scheduler(scheduler::Args),
    /// Several `start` processes sharing one PostgreSQL schedule, one of them killed at a
    /// chosen moment: duplicate and overlapping runs, takeover time, hot loops, data equal to
    /// the simulator's.
    Fleet(fleet_cmd::Args),
    /// SIGKILLs `sync` and `start` at chosen moments (offer scan pages, removal
    /// confirmation, order windows, returns, right after a claim), restarts them and compares
    /// the store with the simulator: exit 1 on any lost, duplicated or falsely removed row,
    /// any store that did not settle, any run left unfinished.
    Kill(kill_cmd::Args),
    /// Faults below and in HTTP (resets and half-closes mid-body, stalls past the timeout,
    /// slow bodies, refused and cut connections, 502 bursts, malformed bodies, 429 storms)
    /// and at PostgreSQL (restarts, outages, cut connections) thrown at a running scheduler:
    /// exit 1 unless every run succeeded or failed with a classified error, the scheduler
    /// recovered by itself, and nothing was lost, duplicated or falsely removed.
    Chaos(chaos_cmd::Args),
    /// A running scheduler kept at ordinary work for many rounds while the seller's data
    /// churns (a share of the catalog repriced, from none to all of it; offers removed and
    /// added; orders added and moved on): its resident memory after each round, and exit 1
    /// unless every run succeeded and every round ended with the store equal to the simulator.
    Soak(chaos_cmd::SoakArgs),
    /// Latency of the status snapshot's store reads (`/api/status`, `/health`, `status`)
    /// with many accounts and a long run history, on SQLite and PostgreSQL.
    Status(status::Args),
    /// `/api/status` and `/metrics` of a real dashboard process at a constant request rate
    /// (open loop), with many accounts and a long run history: latency percentiles and the
    /// server's peak RSS, on SQLite and PostgreSQL.
    Load(load::Args),
}

static EMAG_SYNC: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The `emag-sync` binary the benchmarks run: `--emag-sync`, or the one beside this program.
pub fn emag_sync_exe() -> anyhow::Result<PathBuf> {
    if let Some(Some(path)) = EMAG_SYNC.get() {
        return Ok(path.clone());
    }
    let here = std::env::current_exe()?;
    let beside = here.with_file_name(format!("emag-sync{}", std::env::consts::EXE_SUFFIX));
    if beside.is_file() {
        return Ok(beside);
    }
    anyhow::bail!(
        "no emag-sync binary at {}: build it too (`cargo build --release --workspace`) or pass --emag-sync PATH",
        beside.display()
    )
}

/// Logs to stderr at `level` (a filter: `warn`, `warn,sqlx=error`), unless RUST_LOG says
/// otherwise.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("sqlx=warn,hyper=warn,reqwest=warn,{level}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Peak resident memory of this process in KiB (VmHWM), where the OS tells it.
pub fn peak_rss_kib() -> Option<u64> {
    peak_rss_kib_of("self")
}

/// Peak resident memory of process `pid` (`self`: this one) in KiB (VmHWM).
pub fn peak_rss_kib_of(pid: &str) -> Option<u64> {
    emag_bench::proc::status_kib(pid, "VmHWM")
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = EMAG_SYNC.set(cli.emag_sync.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async move {
        match cli.what {
            What::Sync(args) => engine::run(args).await,
            What::Accounts(args) => accounts::run(args).await,
            What::Scheduler(args) => scheduler::run(args).await,
            What::Fleet(args) => fleet_cmd::run(args).await,
            What::Kill(args) => kill_cmd::run(args).await,
            What::Chaos(args) => chaos_cmd::run(args).await,
            What::Soak(args) => chaos_cmd::run_soak(args).await,
            What::Status(args) => status::run(args).await,
            What::Load(args) => load::run(args).await,
        }
    });
    ExitCode::from(code)
}
