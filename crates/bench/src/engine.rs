//! `emag-bench sync`: offers (or, with `--kind orders`, orders) per second into SQLite and
//! PostgreSQL, and the peak memory of the syncing process, at several sizes. The simulator
//! runs as a process of its own (limits off) and each sync is a child `emag-sync sync`, so the
//! memory figure is the sync's alone. Figures are printed; nothing here asserts timings.
//!
//! `--engine-only` measures the offer engine alone: the simulator renders every page once,
//! this program serves those bytes from memory, and the sync's own stage split (fetch, wait,
//! decode, hash, lookup, write; `stages` of `sync --json`) is printed per 100,000 offers.
//!
//! `--rate-limited-offers N` / `--rate-limited-orders N`: one sync with eMAG's limits on at
//! both ends, and the request rate it reached against its budget (3/s for offers, 12/s for
//! order routes) with the number of 429 answers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::{emag_sync_exe, init_logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the sizes count and the syncs read: the offer catalog, or orders (both types,
    /// spread by the simulator over the 60 days before it started, all inside the default
    /// backfill of 90 days).
    #[arg(long, value_enum, default_value_t = Kind::Offers)]
    kind: Kind,
    /// Sizes (offers, or orders with `--kind orders`) to measure.
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
    #[arg(long, conflicts_with = "rate_limited_orders")]
    rate_limited_offers: Option<u32>,
    /// Instead: sync this many orders with the simulator's eMAG rate limits ON (12 requests/s
    /// on order routes) and report the achieved request rate and the number of 429 answers.
    #[arg(long)]
    rate_limited_orders: Option<u32>,
    /// Serve pages the simulator rendered once, from memory: the figure is the engine's
    /// alone, with its stage split.
    #[arg(long)]
    engine_only: bool,
}

/// Offers of the catalog beside a benchmark's orders: what their lines name.
const LINE_CATALOG: u32 = 1_000;

/// The data a benchmark syncs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    #[default]
    Offers,
    Orders,
}

impl Kind {
    fn sync_kind(self) -> domain::SyncKind {
        match self {
            Kind::Offers => domain::SyncKind::Offers,
            Kind::Orders => domain::SyncKind::Orders,
        }
    }

    /// eMAG's request budget of the routes this kind reads, per credential pair.
    fn requests_per_second(self) -> f64 {
        match self {
            Kind::Offers => 3.0,
            Kind::Orders => 12.0,
        }
    }

    /// A simulator of one account `main` holding `size` items of this kind. Orders come
    /// with a catalog of [`LINE_CATALOG`] offers their lines are drawn from (1–3 lines each;
    /// without offers an order has none); offers come without orders.
    fn start_sim(
        self,
        exe: &std::path::Path,
        size: u32,
        limits: bool,
    ) -> anyhow::Result<SimProcess> {
        let (offers, orders) = match self {
            Kind::Offers => (size, 0),
            Kind::Orders => (LINE_CATALOG, size),
        };
        start_sim_for(exe, "main", offers, orders, limits)
    }
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

/// A simulator process serving `accounts` (comma-separated names), `offers` and `orders`
/// each.
pub fn start_sim_for(
    exe: &std::path::Path,
    accounts: &str,
    offers: u32,
    orders: u32,
    limits: bool,
) -> anyhow::Result<SimProcess> {
    let mut cmd = Command::new(exe);
    cmd.args(["sim", "--port", "0", "--accounts", accounts]);
    if !limits {
        cmd.arg("--no-rate-limits");
    }
    let mut child = cmd
        .arg("--offers")
        .arg(offers.to_string())
        .arg("--orders")
        .arg(orders.to_string())
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
    let limited = match (args.rate_limited_offers, args.rate_limited_orders) {
        (Some(n), _) => Some((Kind::Offers, n)),
        (_, Some(n)) => Some((Kind::Orders, n)),
        (None, None) => None,
    };
    if let Some((kind, size)) = limited {
        rate_limited(&exe, &dir, kind, size)?;
    } else if args.kind == Kind::Orders {
        anyhow::ensure!(
            !args.engine_only,
            "--engine-only serves pre-rendered offer pages; it does not apply to --kind orders"
        );
        orders(&exe, &dir, &args).await?;
    } else {
        offers(&exe, &dir, &args).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One sync of `size` items with eMAG's limits on at both ends: the request rate it reached.
fn rate_limited(
    exe: &std::path::Path,
    dir: &std::path::Path,
    kind: Kind,
    size: u32,
) -> anyhow::Result<()> {
    let sim = kind.start_sim(exe, size, true)?;
    let url = format!("sqlite://{}/rate.db", dir.display());
    let how = How {
        kind,
        limits: true,
        ..How::default()
    };
    let run = sync_once(exe, &sim.base_url, &url, &how)?;
    let counts = &run.summary["runs"][0]["counts"];
    let requests = counts["requests"].as_u64().unwrap_or(0);
    let waits = counts["rate_limit_waits"].as_u64().unwrap_or(0);
    let items = counts["items_read"].as_u64().unwrap_or(0);
    let budget = kind.requests_per_second();
    let rate = requests as f64 / run.seconds;
    println!(
        "{}: {size} ({items} read), requests: {requests}, 429 answers: {waits}",
        kind.sync_kind().as_str()
    );
    println!(
        "time: {:.1} s (floor at {budget} requests/s: {:.1} s), achieved {rate:.3} requests/s = {:.1}% of {budget}/s",
        run.seconds,
        requests as f64 / budget,
        rate / budget * 100.0
    );
    Ok(())
}

/// A fresh database of `backend` for one size.
async fn database(
    args: &Args,
    dir: &std::path::Path,
    backend: &str,
    name: &str,
) -> anyhow::Result<String> {
    Ok(match backend {
        "sqlite" => format!("sqlite://{}/{name}.db", dir.display()),
        "postgres" => {
            emag_bench::pg::fresh_postgres(&args.postgres, &format!("emag_{name}")).await?
        }
        other => anyhow::bail!("unknown backend {other}"),
    })
}

async fn offers(exe: &std::path::Path, dir: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    if args.engine_only {
        println!(
            "| offers | backend | seconds | offers/s | peak RSS (MiB) | per 100k (ms): fetch | wait | decode | hash | lookup | write | re-sync unchanged (s) |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!("| offers | backend | seconds | offers/s | peak RSS of the sync (MiB) | re-sync unchanged (s) |");
        println!("|---:|---|---:|---:|---:|---:|");
    }
    for &size in &args.sizes {
        let sim = Kind::Offers.start_sim(exe, size, false)?;
        // Engine only: the simulator renders once and stops; its pages are served from here.
        let (_sim, _served, base_url) = if args.engine_only {
            let pages = prerender(&sim.base_url, size).await?;
            drop(sim);
            let (server, url) = serve_prerendered(pages).await?;
            (None, Some(server), url)
        } else {
            let url = sim.base_url.clone();
            (Some(sim), None, url)
        };
        for backend in &args.backends {
            let url = database(args, dir, backend, &format!("bench_{size}")).await?;
            let how = How {
                encoding: args.engine_only.then_some("json-data"),
                ..How::default()
            };
            let first = sync_once(exe, &base_url, &url, &how)?;
            let again = sync_once(exe, &base_url, &url, &how)?;
            if args.engine_only {
                let stage = |name: &str| {
                    first.summary["runs"][0]["stages"][name]
                        .as_f64()
                        .unwrap_or(0.0)
                        * 100_000.0
                        / f64::from(size)
                };
                println!(
                    "| {size} | {backend} | {:.2} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} |",
                    first.seconds,
                    f64::from(size) / first.seconds,
                    first.peak_rss_kib as f64 / 1024.0,
                    stage("fetch_ms"),
                    stage("wait_ms"),
                    stage("decode_ms"),
                    stage("hash_ms"),
                    stage("lookup_ms"),
                    stage("write_ms"),
                    again.seconds,
                );
            } else {
                println!(
                    "| {size} | {backend} | {:.2} | {:.0} | {:.1} | {:.2} |",
                    first.seconds,
                    f64::from(size) / first.seconds,
                    first.peak_rss_kib as f64 / 1024.0,
                    again.seconds,
                );
            }
        }
    }
    Ok(())
}

/// First sync of every order of the backfill period, then an incremental sync (the cursor
/// minus the overlap: about the last day) and a full one with nothing changed.
async fn orders(exe: &std::path::Path, dir: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    println!(
        "| orders | backend | requests | seconds | orders/s | peak RSS of the sync (MiB) | incremental: orders read | seconds | full re-sync unchanged (s) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &size in &args.sizes {
        let sim = Kind::Orders.start_sim(exe, size, false)?;
        for backend in &args.backends {
            let url = database(args, dir, backend, &format!("bench_orders_{size}")).await?;
            let how = How {
                kind: Kind::Orders,
                ..How::default()
            };
            let first = sync_once(exe, &sim.base_url, &url, &how)?;
            let counts = &first.summary["runs"][0]["counts"];
            let read = counts["items_read"].as_u64().unwrap_or(0);
            anyhow::ensure!(
                read == u64::from(size) && counts["created"].as_u64() == Some(read),
                "the first sync read {read} orders and created {}, not the simulator's {size}",
                counts["created"]
            );
            let incremental = sync_once(exe, &sim.base_url, &url, &how)?;
            let full = sync_once(exe, &sim.base_url, &url, &How { full: true, ..how })?;
            println!(
                "| {size} | {backend} | {} | {:.2} | {:.0} | {:.1} | {} | {:.2} | {:.2} |",
                counts["requests"].as_u64().unwrap_or(0),
                first.seconds,
                read as f64 / first.seconds,
                first.peak_rss_kib as f64 / 1024.0,
                incremental.summary["runs"][0]["counts"]["items_read"]
                    .as_u64()
                    .unwrap_or(0),
                incremental.seconds,
                full.seconds,
            );
        }
    }
    Ok(())
}

/// Every page of main's catalog as the simulator answers it, and its count answer.
struct Prerendered {
    count: bytes::Bytes,
    pages: Vec<bytes::Bytes>,
}

/// Reads the whole catalog of `size` offers from the simulator once, 100 per page.
async fn prerender(sim_url: &str, size: u32) -> anyhow::Result<Prerendered> {
    let http = reqwest::Client::new();
    let post = |action: &str, data: serde_json::Value| {
        http.post(format!("{sim_url}/product_offer/{action}"))
            .basic_auth("sim-main", Some("pass-main"))
            .json(&serde_json::json!({ "data": data }))
            .send()
    };
    let count = post("count", serde_json::json!({})).await?.bytes().await?;
    let mut pages = Vec::new();
    for page in 1..=size.div_ceil(100) {
        let body = post(
            "read",
            serde_json::json!({"currentPage": page, "itemsPerPage": 100}),
        )
        .await?
        .error_for_status()?
        .bytes()
        .await?;
        pages.push(body);
    }
    Ok(Prerendered { count, pages })
}

/// Serves `pages` as eMAG would (`product_offer/count` and `/read` with `currentPage`, in
/// the `json-data` encoding) until the returned token is dropped.
async fn serve_prerendered(
    pages: Prerendered,
) -> anyhow::Result<(tokio_util::sync::DropGuard, String)> {
    use axum::extract::{Path, State};
    use std::sync::Arc;
    const EMPTY: &str = r#"{"isError":false,"messages":[],"results":[]}"#;
    async fn answer(
        State(pages): State<Arc<Prerendered>>,
        Path((_resource, action)): Path<(String, String)>,
        body: bytes::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
        if action == "count" {
            return (json, pages.count.clone()).into_response();
        }
        let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let page = asked["data"]["currentPage"].as_u64().unwrap_or(1);
        let body = usize::try_from(page)
            .ok()
            .and_then(|p| p.checked_sub(1))
            .and_then(|i| pages.pages.get(i).cloned())
            .unwrap_or_else(|| bytes::Bytes::from_static(EMPTY.as_bytes()));
        (json, body).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/{resource}/{action}", axum::routing::post(answer))
        .with_state(Arc::new(pages));
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    Ok((cancel.drop_guard(), url))
}

struct Measured {
    seconds: f64,
    peak_rss_kib: u64,
    summary: serde_json::Value,
}

/// How one `emag-sync sync` of the benchmark runs.
#[derive(Debug, Clone, Copy, Default)]
struct How {
    kind: Kind,
    /// eMAG's rate limits kept by the client (`EMAG_RATE_LIMIT`).
    limits: bool,
    /// `--full`: every order window of the backfill period, not from the cursor.
    full: bool,
    /// `EMAG_API_ENCODING`, when not the default.
    encoding: Option<&'static str>,
}

fn sync_once(
    exe: &std::path::Path,
    base_url: &str,
    database_url: &str,
    how: &How,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.args([
        "sync",
        "main",
        "--kind",
        how.kind.sync_kind().as_str(),
        "--json",
    ]);
    if how.full {
        cmd.arg("--full");
    }
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMAG_API_USERNAME", "sim-main")
        .env("EMAG_API_PASSWORD", "pass-main")
        .env("EMAG_API_URL", base_url)
        .env("EMAG_RATE_LIMIT", if how.limits { "on" } else { "off" })
        .env("EMAG_LOG_LEVEL", "warn")
        .env("DATABASE_URL", database_url)
        .current_dir(std::env::temp_dir());
    if let Some(e) = how.encoding {
        cmd.env("EMAG_API_ENCODING", e);
    }
    let output = cmd.output()?;
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
