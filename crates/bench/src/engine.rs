//! `emag-bench sync`: offers per second into SQLite and PostgreSQL, and the peak memory of
//! the syncing process, at several catalog sizes. The simulator runs as a process of its own
//! (limits off) and each sync is a child `emag-sync sync`, so the memory figure is the sync's
//! alone. Figures are printed; nothing here asserts timings.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::{emag_sync_exe, init_logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Catalog sizes (offers) to measure.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<u32>,
    /// PostgreSQL server to create benchmark databases on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Instead: sync this many offers with the simulator's eMAG rate limits ON and report
    /// the achieved request rate and the number of 429 answers.
    #[arg(long)]
    rate_limited_offers: Option<u32>,
}

pub struct SimProcess {
    pub child: Child,
    pub base_url: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_sim(exe: &std::path::Path, offers: u32, limits: bool) -> anyhow::Result<SimProcess> {
    let mut cmd = Command::new(exe);
    cmd.args(["sim", "--port", "0", "--accounts", "main", "--orders", "0"]);
    if !limits {
        cmd.arg("--no-rate-limits");
    }
    let mut child = cmd
        .arg("--offers")
        .arg(offers.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let base_url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| anyhow::anyhow!("simulator did not start: {line:?}"))?
        .to_owned();
    Ok(SimProcess { child, base_url })
}

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

async fn bench(args: Args) -> anyhow::Result<()> {
    let exe = emag_sync_exe()?;
    let dir = tempfile_dir()?;
    if let Some(offers) = args.rate_limited_offers {
        let sim = start_sim(&exe, offers, true)?;
        let url = format!("sqlite://{}/rate.db", dir.display());
        let run = sync_once(&exe, &sim.base_url, &url, true)?;
        let requests = run.summary["runs"][0]["counts"]["requests"]
            .as_u64()
            .unwrap_or(0);
        let waits = run.summary["runs"][0]["counts"]["rate_limit_waits"]
            .as_u64()
            .unwrap_or(0);
        let rate = requests as f64 / run.seconds;
        println!("offers: {offers}, requests: {requests}, 429 answers: {waits}");
        println!(
            "time: {:.1} s (floor at 3 requests/s: {:.1} s), achieved {rate:.3} requests/s = {:.1}% of 3/s",
            run.seconds,
            requests as f64 / 3.0,
            rate / 3.0 * 100.0
        );
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    println!("| offers | backend | seconds | offers/s | peak RSS of the sync (MiB) | re-sync unchanged (s) |");
    println!("|---:|---|---:|---:|---:|---:|");
    for &size in &args.sizes {
        let sim = start_sim(&exe, size, false)?;
        for backend in &args.backends {
            let url = match backend.as_str() {
                "sqlite" => format!("sqlite://{}/bench-{size}.db", dir.display()),
                "postgres" => {
                    emag_bench::pg::fresh_postgres(&args.postgres, &format!("emag_bench_{size}"))
                        .await?
                }
                other => anyhow::bail!("unknown backend {other}"),
            };
            let first = sync_once(&exe, &sim.base_url, &url, false)?;
            let again = sync_once(&exe, &sim.base_url, &url, false)?;
            println!(
                "| {size} | {backend} | {:.2} | {:.0} | {:.1} | {:.2} |",
                first.seconds,
                f64::from(size) / first.seconds,
                first.peak_rss_kib as f64 / 1024.0,
                again.seconds,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct Measured {
    seconds: f64,
    peak_rss_kib: u64,
    summary: serde_json::Value,
}

fn sync_once(
    exe: &std::path::Path,
    base_url: &str,
    database_url: &str,
    limits: bool,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let output = Command::new(exe)
        .args(["sync", "main", "--kind", "offers", "--json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMAG_API_USERNAME", "sim-main")
        .env("EMAG_API_PASSWORD", "pass-main")
        .env("EMAG_API_URL", base_url)
        .env("EMAG_RATE_LIMIT", if limits { "on" } else { "off" })
        .env("EMAG_LOG_LEVEL", "warn")
        .env("DATABASE_URL", database_url)
        .current_dir(std::env::temp_dir())
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        anyhow::bail!(
            "sync failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(Measured {
        seconds,
        peak_rss_kib: summary["peak_rss_kib"].as_u64().unwrap_or(0),
        summary,
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("emag-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
