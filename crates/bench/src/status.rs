//! `emag-bench status`: what one status snapshot read costs with a long run history. A fresh
//! database (SQLite file, PostgreSQL `emag_bench_status`) gets `--accounts` accounts × 4 kinds
//! and `--runs` runs, then [`StoreState::read`] — what every `/api/status`, `/health`,
//! `status` and `monitor` call reads — is timed `--reads` times, and each store read of it
//! on its own. Figures are printed; nothing asserts timings.
//!
//! The history is written with multi-row `INSERT`s rather than through `begin_run` /
//! `finish_run` (a million runs one by one would take most of an hour); it is shaped like a
//! real one: every schedule runs every `--interval-minutes`, the runs of all schedules
//! interleaved in time (ids), ~3 % failures, ~5 % successes after retries, ~0.5 % taken over
//! from a silent holder, one account in ten failing its latest 30 order runs, one in fifty
//! never having succeeded at returns, and one in twenty with an offer run in progress.

use std::time::{Duration, Instant};

use domain::{ErrorClass, RunState, RunTrigger, SyncKind};
use emag_sync::status::StoreState;
use sqlx::{Connection, Executor};
use storage::Store;

use crate::init_logging;
use emag_bench::pg::fresh_postgres;

/// The run history both `status` and `load` measure against.
#[derive(Debug, clap::Args)]
pub struct History {
    /// Accounts (each with all 4 kinds).
    #[arg(long, default_value_t = 1_000)]
    pub accounts: u32,
    /// Runs in the history.
    #[arg(long, default_value_t = 1_000_000)]
    pub runs: u64,
    /// Interval of every schedule, minutes: how far apart a schedule's runs lie in time.
    #[arg(long, default_value_t = 15)]
    pub interval_minutes: u32,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres: String,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    history: History,
    /// Timed snapshot reads per backend (after 3 untimed ones).
    #[arg(long, default_value_t = 200)]
    reads: u32,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
}

pub async fn run(args: Args) -> u8 {
    init_logging("error");
    match bench(&args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: status benchmark failed: {e:#}");
            1
        }
    }
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let h = &args.history;
    println!(
        "{} accounts × {} kinds, {} runs (one per schedule every {} min), {} timed reads",
        h.accounts,
        SyncKind::ALL.len(),
        h.runs,
        h.interval_minutes,
        args.reads
    );
    let dir = std::env::temp_dir().join(format!("emag-sync-bench-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut table = Vec::new();
    for backend in &args.backends {
        let (url, fill_s) = prepare(backend, &dir, "emag_bench_status", h).await?;
        let store = Store::open(&url).await?;
        println!("{backend}: filled in {fill_s:.1} s");
        let now = storage::now_ms();
        for _ in 0..3 {
            StoreState::read(&store, now).await?;
        }
        let mut whole = Vec::new();
        for _ in 0..args.reads {
            let t = Instant::now();
            let state = StoreState::read(&store, now).await?;
            whole.push(t.elapsed());
            std::hint::black_box(state);
        }
        let parts = time_parts(&store, now, args.reads.min(50)).await?;
        table.push((backend.clone(), fill_s, whole, parts));
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!("| backend | fill (s) | StoreState::read p50 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---:|---:|---:|---:|");
    for (backend, fill_s, whole, _) in &mut table {
        let (p50, p99, max) = percentiles(whole);
        println!("| {backend} | {fill_s:.1} | {p50:.2} | {p99:.2} | {max:.2} |");
    }
    println!();
    println!("p50 of each store read on its own (ms):");
    println!();
    let names: Vec<&str> = table
        .first()
        .map(|t| t.3.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    println!(
        "| backend | {} |",
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---:|".repeat(names.len()));
    for (backend, _, _, parts) in &mut table {
        let cells: Vec<String> = parts
            .iter_mut()
            .map(|(_, d)| format!("{:.2}", percentiles(d).0))
            .collect();
        println!("| {backend} | {} |", cells.join(" | "));
    }
    Ok(())
}

/// A fresh database of `backend` (a file in `dir`, or PostgreSQL database `pg_name`) holding
/// the accounts and run history of `h`; its URL and the seconds the fill took.
pub async fn prepare(
    backend: &str,
    dir: &std::path::Path,
    pg_name: &str,
    h: &History,
) -> anyhow::Result<(String, f64)> {
    let url = match backend {
        "sqlite" => format!("sqlite://{}/{pg_name}.db", dir.display()),
        "postgres" => fresh_postgres(&h.postgres, pg_name).await?,
        other => anyhow::bail!("unknown backend {other}"),
    };
    let store = Store::open(&url).await?;
    let filled = Instant::now();
    fill(&store, &url, h).await?;
    // The totals `/metrics` reads are kept by the code that ends each run; the bulk load
    // bypassed it, so they are built as migration 0006 built them from existing runs.
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    conn.execute("DELETE FROM run_totals").await?;
    conn.execute(
        "INSERT INTO run_totals (account, kind, trigger, outcome, runs, duration_ms, items_read, \
         created, updated, unchanged, removed, requests, rate_limit_waits, reclaimed, \
         last_started_at, last_finished_at) \
         SELECT account, kind, trigger, state, COUNT(*), COALESCE(SUM(finished_at - started_at), 0), \
         SUM(items_read), SUM(created), SUM(updated), SUM(unchanged), SUM(removed), SUM(requests), \
         SUM(rate_limit_waits), SUM(CASE WHEN reclaimed_from IS NULL THEN 0 ELSE 1 END), \
         MAX(started_at), MAX(finished_at) FROM runs WHERE state IN ('succeeded', 'failed') \
         GROUP BY account, kind, trigger, state",
    )
    .await?;
    conn.close().await?;
    let fill_s = filled.elapsed().as_secs_f64();
    store.close().await;
    if backend == "postgres" {
        // The bulk load updated every `latest_runs` row ~250 times inside a few large
        // transactions, leaving a 4,000-row table thousands of pages long; steady state
        // (one update per run start or success, HOT-pruned, autovacuumed) keeps it a few
        // dozen pages. ANALYZE is what autovacuum does soon after a bulk load; without it
        // the planner sees empty tables.
        let mut conn = sqlx::AnyConnection::connect(&url).await?;
        conn.execute("VACUUM FULL latest_runs").await?;
        conn.execute("VACUUM ANALYZE").await?;
        conn.close().await?;
    }
    Ok((url, fill_s))
}

type Parts = Vec<(&'static str, Vec<Duration>)>;

/// Times each read of [`StoreState::read`] alone, `reads` times.
async fn time_parts(store: &Store, now: i64, reads: u32) -> anyhow::Result<Parts> {
    let day_ago = now - 86_400_000;
    let mut parts: Parts = [
        "kind_histories",
        "last_successes",
        "reclaimed_runs",
        "recent_failures",
        "run_log_summary",
        "others",
    ]
    .into_iter()
    .map(|n| (n, Vec::new()))
    .collect();
    for _ in 0..reads {
        let t = Instant::now();
        std::hint::black_box(store.kind_histories().await?);
        parts[0].1.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(store.last_successes().await?);
        parts[1].1.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(store.reclaimed_runs(day_ago).await?);
        parts[2].1.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(store.recent_failures(day_ago, 20).await?);
        parts[3].1.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(store.run_log_summary(now - 3_600_000).await?);
        parts[4].1.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(store.paused_accounts().await?);
        std::hint::black_box(store.recent_instances(day_ago).await?);
        std::hint::black_box(store.accounts_needing_attention().await?);
        parts[5].1.push(t.elapsed());
    }
    Ok(parts)
}

/// p50, p99 and max in milliseconds.
pub fn percentiles(samples: &mut [Duration]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99), at(1.0))
}

/// A stable pseudo-random number of `i` (splitmix64): the same history on every backend.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes the accounts and the run history (see the module doc).
async fn fill(store: &Store, url: &str, args: &History) -> anyhow::Result<()> {
    for a in 0..args.accounts {
        let name = account_name(a);
        store
            .upsert_account(&name, &name, "emag_ro", "http://bench/api-3")
            .await?;
    }
    let kinds = SyncKind::ALL;
    let schedules = u64::from(args.accounts) * kinds.len() as u64;
    let per_schedule = args.runs.div_ceil(schedules.max(1));
    let step_ms = i64::from(args.interval_minutes) * 60_000;
    let now = storage::now_ms();
    let first_at = now - i64::try_from(per_schedule)? * step_ms;
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    const ROWS_PER_INSERT: u64 = 1_000;
    const INSERTS_PER_TX: u64 = 20;
    let mut i = 0_u64;
    while i < args.runs {
        let mut tx = conn.begin().await?;
        for _ in 0..INSERTS_PER_TX {
            if i >= args.runs {
                break;
            }
            let mut sql = String::from(
                "INSERT INTO runs (account, kind, trigger, state, attempt, created_at, \
                 started_at, finished_at, items_read, retries, holder, heartbeat_at, \
                 error_class, error_message, reclaimed_from, reclaimed_at) VALUES ",
            );
            let end = (i + ROWS_PER_INSERT).min(args.runs);
            for n in i..end {
                if n > i {
                    sql.push(',');
                }
                sql.push_str(&run_values(n, schedules, per_schedule, first_at, step_ms));
            }
            tx.execute(sql.as_str()).await?;
            i = end;
        }
        tx.commit().await?;
    }
    conn.close().await?;
    Ok(())
}

pub fn account_name(a: u32) -> String {
    format!("bench{a:04}")
}

/// The `VALUES` tuple of run `n` (0-based, in id order). Every value is generated here, so
/// writing them as literals is safe.
fn run_values(n: u64, schedules: u64, per_schedule: u64, first_at: i64, step_ms: i64) -> String {
    let kinds = SyncKind::ALL;
    let schedule = n % schedules;
    let round = n / schedules;
    let account = u32::try_from(schedule / kinds.len() as u64).unwrap_or(0);
    let kind = kinds[usize::try_from(schedule % kinds.len() as u64).unwrap_or(0)];
    let last_rounds = per_schedule.saturating_sub(round);
    let spread = i64::try_from(schedule * 60_000 / schedules.max(1)).unwrap_or(0);
    let started = first_at + i64::try_from(round).unwrap_or(0) * step_ms + spread;
    let r = mix(n) % 1000;
    let in_progress = last_rounds == 1 && account % 20 == 0 && kind == SyncKind::Offers;
    let state = if in_progress {
        RunState::Running
    } else if (account % 10 == 1 && kind == SyncKind::Orders && last_rounds <= 30)
        || (account % 50 == 2 && kind == SyncKind::Returns)
        || r < 30
    {
        RunState::Failed
    } else {
        RunState::Succeeded
    };
    let retries = if state == RunState::Succeeded && r >= 950 {
        1 + r % 3
    } else {
        0
    };
    let reclaimed = !in_progress && (100..105).contains(&r);
    let finished = started + 20_000 + i64::try_from(mix(n + 1) % 60_000).unwrap_or(0);
    let text = |s: &str| format!("'{s}'");
    let null = || "NULL".to_owned();
    [
        text(&account_name(account)),
        text(kind.as_str()),
        text(RunTrigger::Schedule.as_str()),
        text(state.as_str()),
        if reclaimed { "2" } else { "1" }.to_owned(),
        started.to_string(),
        started.to_string(),
        if in_progress {
            null()
        } else {
            finished.to_string()
        },
        (r * 7).to_string(),
        retries.to_string(),
        if in_progress {
            text("bench:1:x")
        } else {
            null()
        },
        if in_progress {
            started.to_string()
        } else {
            null()
        },
        if state == RunState::Failed {
            text(ErrorClass::Server.as_str())
        } else {
            null()
        },
        if state == RunState::Failed {
            text("502 from eMAG")
        } else {
            null()
        },
        if reclaimed { text("gone:2:y") } else { null() },
        if reclaimed {
            (started + 10_000).to_string()
        } else {
            null()
        },
    ]
    .iter()
    .fold(String::from("("), |mut acc, v| {
        if acc.len() > 1 {
            acc.push_str(", ");
        }
        acc.push_str(v);
        acc
    }) + ")"
}
