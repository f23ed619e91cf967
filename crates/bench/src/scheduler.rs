//! `emag-bench scheduler`: how late do runs start when one instance serves many
//! schedules? N accounts on an in-process simulator (limits off, one request per run: the
//! `returns` kind of an account without returns), one scheduler, real store. Every
//! scheduled run records its slot (the grid time it was due) and its start; lateness is the
//! difference. The first runs of every schedule start together (a cold start) and are
//! reported apart from the steady state. Figures are printed; nothing asserts timings.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use emag_sim::{AccountKind, AccountSpec, SimConfig, Simulator};
use emag_sync::config::Config;
use emag_sync::scheduler::{schedules, Policy, Scheduler};
use emag_sync::sync::SyncContext;
use sqlx::Row;
use storage::Store;

use crate::{init_logging, peak_rss_kib};
use emag_bench::pg::fresh_postgres;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Schedules (one account each).
    #[arg(long, default_value_t = 10_000)]
    schedules: u32,
    /// Interval of every schedule, minutes.
    #[arg(long, default_value_t = 1)]
    interval_minutes: u32,
    /// How long the scheduler runs, minutes (the first interval is the cold start).
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
}

pub async fn run(args: Args) -> u8 {
    init_logging("error");
    match bench(&args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: scheduler benchmark failed: {e:#}");
            1
        }
    }
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let names: Vec<String> = (1..=args.schedules).map(|i| format!("b{i:05}")).collect();
    let sim = Simulator::spawn(SimConfig {
        accounts: names
            .iter()
            .map(|n| AccountSpec::named(n, AccountKind::Main))
            .collect(),
        offers_per_account: 1,
        orders_per_account: 0,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await?;
    println!(
        "{} schedules (returns, one request per run) every {} min, beside {} manual-only ones (the \
         accounts' other kinds), {:.1} min per backend; simulator limits off",
        args.schedules,
        args.interval_minutes,
        (domain::SyncKind::ALL.len() - 1) * args.schedules as usize,
        args.minutes
    );
    println!("| backend | cold start: first runs started in (s) | steady runs | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | CPU of the process | peak RSS (MiB) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let dir = std::env::temp_dir().join(format!("emag-sync-bench-sched-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for backend in &args.backends {
        let url = match backend.as_str() {
            "sqlite" => format!("sqlite://{}/sched.db", dir.display()),
            "postgres" => fresh_postgres(&args.postgres, "emag_bench_scheduler").await?,
            other => anyhow::bail!("unknown backend {other}"),
        };
        let mut vars = HashMap::new();
        for n in &names {
            let up = n.to_ascii_uppercase();
            vars.insert(format!("EMAG_{up}_API_USERNAME"), format!("sim-{n}"));
            vars.insert(format!("EMAG_{up}_API_PASSWORD"), format!("pass-{n}"));
            vars.insert(format!("EMAG_{up}_API_URL"), sim.base_url.clone());
            vars.insert(format!("EMAG_{up}_SYNC_TYPES"), "returns".into());
            vars.insert(
                format!("EMAG_{up}_SYNC_INTERVAL"),
                args.interval_minutes.to_string(),
            );
        }
        vars.insert("DATABASE_URL".into(), url.clone());
        let config = Config::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = Store::open(&url).await?;
        let accounts = emag_sync::accounts::select(&config, &store, "all").await?;
        let plan = schedules(&config);
        let policy = Policy::from(&config);
        let ctx = SyncContext::new(store.clone(), config.sync);
        let cancel = ctx.cancel.clone();
        let began = storage::now_ms();
        let cpu_before = cpu_seconds();
        let wall = Instant::now();
        let driver = tokio::spawn(Scheduler::new(ctx, accounts, plan, policy).run());
        tokio::time::sleep(Duration::from_secs_f64(args.minutes * 60.0)).await;
        cancel.cancel();
        driver.await??;
        let cpu = cpu_seconds() - cpu_before;
        let wall = wall.elapsed().as_secs_f64();

        let m = measure(&url, began).await?;
        println!(
            "| {backend} | {:.1} | {} | {} | {} | {} | {} | {:.0}% of one core | {:.0} |",
            m.cold_start_s,
            m.lateness_ms.len(),
            pct(&m.lateness_ms, 50.0),
            pct(&m.lateness_ms, 90.0),
            pct(&m.lateness_ms, 99.0),
            m.lateness_ms.last().copied().unwrap_or(0),
            cpu / wall * 100.0,
            peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
        );
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct Measured {
    /// From the scheduler's start to the start of the last first run.
    cold_start_s: f64,
    /// Lateness of every run of a grid slot, sorted.
    lateness_ms: Vec<i64>,
}

async fn measure(url: &str, began: i64) -> anyhow::Result<Measured> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await?;
    let first: (Option<i64>,) = sqlx::query_as("SELECT MAX(started_at) FROM runs WHERE slot = 0")
        .fetch_one(&pool)
        .await?;
    let rows = sqlx::query(
        "SELECT started_at - slot FROM runs WHERE trigger = 'schedule' AND slot > 0 \
         AND started_at IS NOT NULL",
    )
    .fetch_all(&pool)
    .await?;
    let mut lateness_ms = rows
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
    lateness_ms.sort_unstable();
    pool.close().await;
    Ok(Measured {
        cold_start_s: first.0.map_or(0.0, |t| (t - began) as f64 / 1000.0),
        lateness_ms,
    })
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
