//! `emag-bench kill`: the kill harness (`emag_bench::kill`) on fresh databases, its table on
//! stdout, exit 1 on any lost, duplicated or falsely removed row, any store that did not
//! settle, any run left unfinished or kill that missed its phase.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use emag_bench::kill::{self, Backend, BackendKind, Options};
use emag_bench::{pg, rng};

use crate::{emag_sync_exe, init_logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kills per backend.
    #[arg(long, default_value_t = 50)]
    points: usize,
    /// Backends, comma-separated: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Seed of every choice (command and phase per point, account, page, changes); default:
    /// from the clock. Always printed, so that a run can be replayed.
    #[arg(long)]
    seed: Option<u64>,
    /// Milliseconds the simulator adds to every answer: a run is still in its phase when the
    /// kill lands.
    #[arg(long, default_value_t = 40)]
    latency_ms: u64,
    /// Offers per simulated account at the start (100 per page).
    #[arg(long, default_value_t = 450)]
    offers: u32,
    /// Orders per simulated account at the start (returns follow: about one in fifteen).
    #[arg(long, default_value_t = 400)]
    orders: u32,
    /// PostgreSQL server on which the database emag_kill_<pid> is created (and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Keep the databases and the children's logs even when every check passes (they are
    /// always kept when one fails).
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> u8 {
    init_logging("warn");
    match Box::pin(kill_points(&args)).await {
        Ok(passed) => u8::from(!passed),
        Err(e) => {
            eprintln!("error: bench kill could not complete: {e:#}");
            1
        }
    }
}

async fn kill_points(args: &Args) -> anyhow::Result<bool> {
    let exe = emag_sync_exe()?;
    let seed = args.seed.unwrap_or_else(rng::seed_from_clock);
    let dir = std::env::temp_dir().join(format!("emag-sync-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the work directory {}", dir.display()))?;
    let pg_name = format!("emag_kill_{}", std::process::id());
    let mut backends = Vec::new();
    for name in &args.backends {
        match name.trim() {
            "sqlite" => backends.push(Backend {
                kind: BackendKind::Sqlite,
                url: format!("sqlite://{}/kill.db", dir.display()),
            }),
            "postgres" => backends.push(Backend {
                kind: BackendKind::Postgres,
                url: pg::fresh_postgres(&args.postgres, &pg_name)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot create the database {pg_name} on {} (is PostgreSQL running? see --postgres)",
                            storage::redact_url(&args.postgres)
                        )
                    })?,
            }),
            other => anyhow::bail!("--backends: {other:?} is not sqlite or postgres"),
        }
    }
    eprintln!(
        "kill: {} point(s) per backend on {}, seed {seed}, latency {} ms, logs in {}",
        args.points,
        args.backends.join(", "),
        args.latency_ms,
        dir.display()
    );
    let mut opts = Options::new(exe, backends, dir.clone());
    opts.points = args.points;
    opts.seed = seed;
    opts.latency = Duration::from_millis(args.latency_ms);
    opts.offers = args.offers;
    opts.orders = args.orders;
    opts.verbose = true;
    let report = kill::run(&opts).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("writing the JSON report")?
        );
    } else {
        print!("{}", report.markdown());
    }
    let passed = report.passed();
    if passed && !args.keep {
        if args.backends.iter().any(|b| b.trim() == "postgres") {
            pg::drop_database(&args.postgres, &pg_name).await;
        }
        remove_dir(&dir);
    } else {
        eprintln!(
            "kill: kept for inspection: logs and the SQLite file in {}{}",
            dir.display(),
            if args.backends.iter().any(|b| b.trim() == "postgres") {
                format!(", database {pg_name}")
            } else {
                String::new()
            }
        );
    }
    if !passed {
        eprintln!("bench kill FAILED: {}", report.failures.join("; "));
    }
    Ok(passed)
}

fn remove_dir(dir: &PathBuf) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("warning: cannot remove {}: {e}", dir.display());
    }
}
