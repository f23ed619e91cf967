//! `emag-bench kill`: the kill harness (`emag_bench::kill`) on fresh databases, its table on
//! stdout, exit 1 on any lost, duplicated or falsely removed row, any store that did not
//! settle, any run left unfinished or kill that missed its phase.

use std::time::Duration;

use anyhow::Context as _;
use emag_bench::kill::{self, Backend, BackendKind, Options};
use emag_bench::{pg, rng};

use crate::harness::{print_report, WorkDir};
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
    let work = WorkDir::create("kill")?;
    let dir = work.path().to_owned();
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
    let mut opts = Options::new(exe, backends, dir);
    opts.points = args.points;
    opts.seed = seed;
    opts.latency = Duration::from_millis(args.latency_ms);
    opts.offers = args.offers;
    opts.orders = args.orders;
    opts.verbose = true;
    let report = kill::run(&opts).await?;
    let passed = print_report("kill", &report, args.json)?;
    let postgres = args.backends.iter().any(|b| b.trim() == "postgres");
    let remove = passed && !args.keep;
    if remove && postgres {
        pg::drop_database(&args.postgres, &pg_name).await;
    }
    let also = if postgres && !remove {
        format!(", database {pg_name}")
    } else {
        String::new()
    };
    work.finish(remove, &also);
    Ok(passed)
}
