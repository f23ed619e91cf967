//! `emag-bench load`: `/api/status` and `/metrics` of a real `emag-sync dashboard` process
//! under a constant request rate, with the history of `emag-bench status` in its store
//! (1,000 accounts × 4 kinds, 1,000,000 runs by default), on SQLite and PostgreSQL.
//!
//! The load is open-loop: request `i` is due at `start + i / rate` whatever became of the
//! earlier ones, and its latency is counted from that moment to the last byte of the body,
//! so a server that falls behind shows it in the tail instead of slowing the load down
//! (no coordinated omission). Requests go over `--connections` kept-alive connections of
//! one HTTP/1.1 client; the load generator shares the machine's cores with the server, so
//! the figures are an upper bound of what the server alone costs. The server's peak RSS is
//! its `VmHWM` at the end. Figures are printed; nothing asserts timings.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use domain::SyncKind;
use tokio::sync::Semaphore;

use crate::status::{account_name, percentiles, prepare, History};
use crate::{emag_sync_exe, init_logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    history: History,
    /// Requests per second.
    #[arg(long, default_value_t = 2_000)]
    rate: u32,
    /// Seconds of load per endpoint (after `--warm-up` seconds at the same rate).
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    #[arg(long, default_value_t = 3)]
    warm_up: u32,
    /// Kept-alive connections the requests share.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Endpoints to load, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "/api/status,/metrics")]
    paths: Vec<String>,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// The `Accept-Encoding` the requests send (`gzip`, as browsers and Prometheus do; the
    /// bodies are not decompressed: that is the client's cost, not the server's).
    #[arg(long, default_value = "gzip")]
    accept_encoding: String,
    /// `EMAG_DASHBOARD_STATUS_MAX_AGE` of the server (seconds; its default when not given).
    #[arg(long)]
    status_max_age: Option<String>,
}

pub async fn run(args: Args) -> u8 {
    init_logging("error");
    match bench(&args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: load benchmark failed: {e:#}");
            1
        }
    }
}

/// What one endpoint did under load.
struct Measured {
    path: String,
    sent: usize,
    ok: usize,
    errors: HashMap<String, usize>,
    latencies: Vec<Duration>,
    body_bytes: usize,
    elapsed: Duration,
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let exe = emag_sync_exe()?;
    let h = &args.history;
    println!(
        "{} accounts × {} kinds, {} runs; {} req/s for {} s per endpoint (after {} s warm-up), \
         {} connections; server {}",
        h.accounts,
        SyncKind::ALL.len(),
        h.runs,
        args.rate,
        args.seconds,
        args.warm_up,
        args.connections,
        exe.display()
    );
    let dir = std::env::temp_dir().join(format!("emag-sync-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    let mut peaks = Vec::new();
    for backend in &args.backends {
        let (url, fill_s) = prepare(backend, &dir, "emag_bench_load", h).await?;
        println!("{backend}: filled in {fill_s:.1} s");
        let mut server =
            Server::spawn(&exe, &dir, &url, h.accounts, args.status_max_age.as_deref())?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(args.connections)
            .timeout(Duration::from_secs(30))
            .build()?;
        for path in &args.paths {
            let target = format!("{}{path}", server.base);
            // Warm-up: connections opened, caches filled, at the measured rate.
            let enc = args.accept_encoding.as_str();
            load(
                &http,
                &target,
                enc,
                args.rate,
                args.warm_up,
                args.connections,
            )
            .await;
            let m = load(
                &http,
                &target,
                enc,
                args.rate,
                args.seconds,
                args.connections,
            )
            .await;
            rows.push((backend.clone(), m));
        }
        let peak_kib = server.peak_rss_kib();
        server.stop();
        peaks.push((backend.clone(), peak_kib));
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!(
        "| backend | endpoint | body as sent (KiB) | sent | ok | errors | achieved (req/s) | p50 (ms) | p99 (ms) | max (ms) |"
    );
    println!("|---|---|---:|---:|---:|---|---:|---:|---:|---:|");
    for (backend, m) in &mut rows {
        let (p50, p99, max) = percentiles(&mut m.latencies);
        let errors = if m.errors.is_empty() {
            "0".to_owned()
        } else {
            m.errors
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| {backend} | `{}` | {:.0} | {} | {} | {errors} | {:.0} | {p50:.2} | {p99:.2} | {max:.2} |",
            m.path,
            m.body_bytes as f64 / 1024.0,
            m.sent,
            m.ok,
            m.ok as f64 / m.elapsed.as_secs_f64(),
        );
    }
    println!();
    for (backend, kib) in &peaks {
        println!(
            "{backend}: server peak RSS (VmHWM) {:.1} MiB",
            *kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// `rate` requests a second to `target` for `seconds`, open-loop (see the module doc); at
/// most `connections` in flight (a request due while all are busy waits, and its wait
/// counts in its latency).
async fn load(
    http: &reqwest::Client,
    target: &str,
    accept_encoding: &str,
    rate: u32,
    seconds: u32,
    connections: usize,
) -> Measured {
    let total = u64::from(rate) * u64::from(seconds);
    let slots = Arc::new(Semaphore::new(connections));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tokio::time::sleep_until(due).await;
        let slot = Arc::clone(&slots);
        let http = http.clone();
        let target = target.to_owned();
        let encoding = accept_encoding.to_owned();
        tasks.push(tokio::spawn(async move {
            let _slot = slot.acquire_owned().await;
            let result = async {
                let r = http
                    .get(&target)
                    .header("accept-encoding", encoding)
                    .send()
                    .await?;
                let status = r.status();
                let body = r.bytes().await?;
                Ok::<_, reqwest::Error>((status, body.len()))
            }
            .await;
            (due.elapsed(), result)
        }));
    }
    let mut m = Measured {
        path: target
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap_or_default(),
        sent: tasks.len(),
        ok: 0,
        errors: HashMap::new(),
        latencies: Vec::with_capacity(tasks.len()),
        body_bytes: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await {
            Ok((latency, Ok((status, bytes)))) if status.is_success() => {
                m.ok += 1;
                m.body_bytes = bytes;
                m.latencies.push(latency);
            }
            Ok((latency, Ok((status, _)))) => {
                *m.errors.entry(status.to_string()).or_default() += 1;
                m.latencies.push(latency);
            }
            Ok((_, Err(e))) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else {
                    "connection"
                };
                *m.errors.entry(kind.to_owned()).or_default() += 1;
            }
            Err(_) => *m.errors.entry("task".to_owned()).or_default() += 1,
        }
    }
    m.elapsed = start.elapsed();
    m
}

/// An `emag-sync dashboard` process on a free port of this machine.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn spawn(
        exe: &std::path::Path,
        dir: &std::path::Path,
        database_url: &str,
        accounts: u32,
        status_max_age: Option<&str>,
    ) -> anyhow::Result<Server> {
        let mut cmd = Command::new(exe);
        cmd.args(["dashboard", "--bind", "127.0.0.1:0"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("EMAG_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(age) = status_max_age {
            cmd.env("EMAG_DASHBOARD_STATUS_MAX_AGE", age);
        }
        for a in 0..accounts {
            let prefix = format!("EMAG_{}_API", account_name(a).to_ascii_uppercase());
            cmd.env(format!("{prefix}_USERNAME"), format!("user{a}"))
                .env(format!("{prefix}_PASSWORD"), "not-used-by-the-dashboard")
                .env(format!("{prefix}_URL"), "http://127.0.0.1:9/api-3");
        }
        let mut child = cmd.spawn()?;
        // Readiness: the server prints its address once it listens.
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout of the server"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_digit()).to_owned())
            .ok_or_else(|| anyhow::anyhow!("the server did not print its address: {line:?}"))?;
        Ok(Server { child, base })
    }

    /// The process's peak resident set (`VmHWM`), KiB.
    fn peak_rss_kib(&self) -> u64 {
        crate::peak_rss_kib_of(&self.child.id().to_string()).unwrap_or(0)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_open_loop_sends_every_request_of_its_schedule_and_counts_failures() {
        // A port nothing listens on: every request fails, none is lost from the count.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let http = reqwest::Client::new();
        let m = load(&http, &format!("http://{addr}/x"), "gzip", 200, 1, 8).await;
        assert_eq!(m.sent, 200);
        assert_eq!(m.ok, 0);
        assert_eq!(m.errors.values().sum::<usize>(), 200);
        assert_eq!(m.path, "/x");
    }
}
