//! `emag-bench accounts`: how many accounts one instance syncs at their full rate limit at
//! once. N accounts on a simulator process of their own, eMAG's limits ON on both sides
//! (3 requests/s per credential pair for offers: 300 offers/s per account), each with a
//! catalog that takes `--seconds` to read at that rate; one `emag-sync sync all --kind
//! offers` syncs them all at once. An account keeps its full rate when its run takes no
//! longer than its requests at 3/s (the floor); the instance falls behind when the slowest
//! account's run is more than 5 % over its floor. Figures are printed; nothing asserts
//! timings. The simulator shares the machine's cores with the instance: on one machine the
//! figure is a lower bound of what the instance alone can do.

use std::process::Command;
use std::time::Instant;

use crate::engine::{start_sim_for, SimProcess};
use crate::{emag_sync_exe, init_logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Numbers of accounts to try, in order (the run stops at the first that falls behind
    /// unless `--all`).
    #[arg(long, value_delimiter = ',', default_value = "8,16,32,48,64,96,128")]
    counts: Vec<u32>,
    /// Seconds one account's catalog takes at its full rate (300 offers per second).
    #[arg(long, default_value_t = 30)]
    seconds: u32,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// PostgreSQL server to create benchmark databases on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Measure every count, even after one fell behind.
    #[arg(long)]
    all: bool,
}

/// How far over its floor the slowest account may be for the instance to keep up.
const BEHIND: f64 = 1.05;

pub async fn run(args: Args) -> u8 {
    init_logging("warn");
    match bench(args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: benchmark failed: {e:#}");
            1
        }
    }
}

fn names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("a{i:03}")).collect()
}

struct Outcome {
    seconds: f64,
    /// Each account's run time over its floor (its requests at 3/s), sorted.
    over_floor: Vec<f64>,
    offers: u64,
    requests: u64,
    answers_429: u64,
    failed: usize,
    peak_rss_kib: u64,
}

fn sync_all(
    exe: &std::path::Path,
    sim: &SimProcess,
    n: u32,
    database_url: &str,
) -> anyhow::Result<Outcome> {
    let mut cmd = Command::new(exe);
    cmd.args(["sync", "all", "--kind", "offers", "--json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMAG_RATE_LIMIT", "on")
        .env("EMAG_LOG_LEVEL", "warn")
        .env("DATABASE_URL", database_url)
        .current_dir(std::env::temp_dir());
    for name in names(n) {
        let prefix = format!("EMAG_{}_API", name.to_ascii_uppercase());
        cmd.env(format!("{prefix}_USERNAME"), format!("sim-{name}"))
            .env(format!("{prefix}_PASSWORD"), format!("pass-{name}"))
            .env(format!("{prefix}_URL"), &sim.base_url);
    }
    let started = Instant::now();
    let output = cmd.output()?;
    let seconds = started.elapsed().as_secs_f64();
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        anyhow::anyhow!(
            "sync all: {e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let runs = summary["runs"].as_array().cloned().unwrap_or_default();
    let mut out = Outcome {
        seconds,
        over_floor: Vec::with_capacity(runs.len()),
        offers: 0,
        requests: 0,
        answers_429: 0,
        failed: 0,
        peak_rss_kib: summary["peak_rss_kib"].as_u64().unwrap_or(0),
    };
    for run in &runs {
        let counts = &run["counts"];
        let requests = counts["requests"].as_u64().unwrap_or(0);
        let ms = run["duration_ms"].as_f64().unwrap_or(0.0);
        if run["status"].as_str() != Some("succeeded") {
            out.failed += 1;
        }
        out.requests += requests;
        out.answers_429 += counts["rate_limit_waits"].as_u64().unwrap_or(0);
        out.offers += counts["created"].as_u64().unwrap_or(0)
            + counts["updated"].as_u64().unwrap_or(0)
            + counts["unchanged"].as_u64().unwrap_or(0);
        // The floor: requests at 3 per second, the first one at once.
        let floor_ms = requests.saturating_sub(1) as f64 * 1000.0 / 3.0;
        if floor_ms > 0.0 {
            out.over_floor.push(ms / floor_ms);
        }
    }
    out.over_floor.sort_by(f64::total_cmp);
    if runs.len() != n as usize {
        anyhow::bail!("{} runs for {n} accounts", runs.len());
    }
    Ok(out)
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let exe = emag_sync_exe()?;
    let dir = std::env::temp_dir().join(format!("emag-sync-accounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let offers = args.seconds * 300;
    println!(
        "{offers} offers per account ({} s at 300 offers/s); behind = slowest account > {:.0} % of its floor",
        args.seconds,
        BEHIND * 100.0
    );
    println!("| backend | accounts | seconds | offers/s (all) | requests/s (all) | run / floor: median | slowest | 429 | failed | peak RSS (MiB) | |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for backend in &args.backends {
        for &n in &args.counts {
            let sim = start_sim_for(&exe, &names(n).join(","), offers, 0, true)?;
            let url = match backend.as_str() {
                "sqlite" => format!("sqlite://{}/accounts-{n}.db", dir.display()),
                "postgres" => {
                    emag_bench::pg::fresh_postgres(
                        &args.postgres,
                        &format!("emag_bench_accounts_{n}"),
                    )
                    .await?
                }
                other => anyhow::bail!("unknown backend {other}"),
            };
            let o = sync_all(&exe, &sim, n, &url)?;
            drop(sim);
            let median = o
                .over_floor
                .get(o.over_floor.len() / 2)
                .copied()
                .unwrap_or(0.0);
            let slowest = o.over_floor.last().copied().unwrap_or(0.0);
            let behind = slowest > BEHIND || o.failed > 0;
            println!(
                "| {backend} | {n} | {:.1} | {:.0} | {:.1} | {median:.3} | {slowest:.3} | {} | {} | {:.1} | {} |",
                o.seconds,
                o.offers as f64 / o.seconds,
                o.requests as f64 / o.seconds,
                o.answers_429,
                o.failed,
                o.peak_rss_kib as f64 / 1024.0,
                if behind { "**behind**" } else { "keeps up" },
            );
            if behind && !args.all {
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
