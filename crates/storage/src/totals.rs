//! Running totals of ended runs, for counters that must survive restarts and the pruning of
//! old runs (Prometheus `/metrics`). `run_totals` holds one row per (account, kind, trigger,
//! outcome); the transaction that ends a run adds the run to its row
//! ([`add_run_to_totals`], called by `finish_run`), so the totals never disagree with the runs
//! that ended and a reader needs one query over a table of a few rows per schedule, however
//! long the run history grows.

use std::sync::LazyLock;

use domain::{RunState, RunTrigger, SyncKind};
use sqlx::Row;

use crate::{states, Result, StorageError, Store};

/// The active runs by state, in one read of the unique partial index `runs_one_active`.
static ACTIVE_RUN_COUNTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT COALESCE(SUM(CASE WHEN state = $1 THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN state = $2 THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN state = $3 THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN reclaimed_from IS NULL THEN 0 ELSE 1 END), 0) \
         FROM runs WHERE state IN {}",
        states::list(&states::ACTIVE)
    )
});

/// The totals of the runs of one (account, kind, trigger) that ended with one outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunTotals {
    pub account: String,
    pub kind: SyncKind,
    pub trigger: RunTrigger,
    /// `Succeeded` or `Failed`: the terminal states.
    pub outcome: RunState,
    pub runs: u64,
    /// Sum of the runs' durations (start to end, a resumed run's whole life).
    pub duration_ms: u64,
    pub items_read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub requests: u64,
    pub rate_limit_waits: u64,
    /// Runs that had been taken over from a holder whose lease expired.
    pub reclaimed: u64,
    /// Unix ms: the latest start and end among these runs.
    pub last_started_at: Option<i64>,
    pub last_finished_at: Option<i64>,
}

/// The runs that have not ended: what the gauges of `/metrics` show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ActiveRunCounts {
    pub running: u64,
    pub queued: u64,
    /// Left by a stopped process, resumable.
    pub interrupted: u64,
    /// Active runs that were taken over from a holder whose lease expired (they move to
    /// [`RunTotals::reclaimed`] when they end, in the same transaction).
    pub reclaimed: u64,
}

/// Adds the run `run_id`, just ended in `tx`, to its `run_totals` row.
pub(crate) async fn add_run_to_totals(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: i64,
) -> Result<()> {
    // SQLite needs the WHERE clause of an INSERT … SELECT … ON CONFLICT (parsing ambiguity);
    // GREATEST/MAX(a, b) differ between the backends, hence the CASEs.
    sqlx::query(
        "INSERT INTO run_totals (account, kind, trigger, outcome, runs, duration_ms, items_read, \
         created, updated, unchanged, removed, requests, rate_limit_waits, reclaimed, \
         last_started_at, last_finished_at) \
         SELECT account, kind, trigger, state, 1, COALESCE(finished_at - started_at, 0), \
         items_read, created, updated, unchanged, removed, requests, rate_limit_waits, \
         CASE WHEN reclaimed_from IS NULL THEN 0 ELSE 1 END, started_at, finished_at \
         FROM runs WHERE id = $1 \
         ON CONFLICT (account, kind, trigger, outcome) DO UPDATE SET \
         runs = run_totals.runs + excluded.runs, \
         duration_ms = run_totals.duration_ms + excluded.duration_ms, \
         items_read = run_totals.items_read + excluded.items_read, \
         created = run_totals.created + excluded.created, \
         updated = run_totals.updated + excluded.updated, \
         unchanged = run_totals.unchanged + excluded.unchanged, \
         removed = run_totals.removed + excluded.removed, \
         requests = run_totals.requests + excluded.requests, \
         rate_limit_waits = run_totals.rate_limit_waits + excluded.rate_limit_waits, \
         reclaimed = run_totals.reclaimed + excluded.reclaimed, \
         last_started_at = CASE WHEN run_totals.last_started_at IS NULL \
           OR excluded.last_started_at > run_totals.last_started_at \
           THEN excluded.last_started_at ELSE run_totals.last_started_at END, \
         last_finished_at = CASE WHEN run_totals.last_finished_at IS NULL \
           OR excluded.last_finished_at > run_totals.last_finished_at \
           THEN excluded.last_finished_at ELSE run_totals.last_finished_at END",
    )
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Every row of the run totals, ordered by account, kind, trigger and outcome.
    pub async fn run_totals(&self) -> Result<Vec<RunTotals>> {
        let rows = sqlx::query(
            "SELECT account, kind, trigger, outcome, runs, duration_ms, items_read, created, \
             updated, unchanged, removed, requests, rate_limit_waits, reclaimed, \
             last_started_at, last_finished_at FROM run_totals \
             ORDER BY account, kind, trigger, outcome",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(totals_from_row).collect()
    }

    /// A number that grows with every run added to the totals (their sum of runs), so a
    /// reader can tell in one cheap read whether [`Store::run_totals`] changed since it last
    /// looked.
    pub async fn run_totals_version(&self) -> Result<u64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT CAST(COALESCE(SUM(runs), 0) AS BIGINT) FROM run_totals")
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many runs are running, queued or interrupted now, in one read of the active runs
    /// (a partial index: as cheap with a million ended runs as with none).
    pub async fn active_run_counts(&self) -> Result<ActiveRunCounts> {
        let (running, queued, interrupted, reclaimed): (i64, i64, i64, i64) =
            sqlx::query_as(&ACTIVE_RUN_COUNTS)
                .bind(RunState::Running.as_str())
                .bind(RunState::Queued.as_str())
                .bind(RunState::Interrupted.as_str())
                .fetch_one(&self.pool)
                .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(ActiveRunCounts {
            running: count(running),
            queued: count(queued),
            interrupted: count(interrupted),
            reclaimed: count(reclaimed),
        })
    }
}

fn totals_from_row(r: &sqlx::any::AnyRow) -> Result<RunTotals> {
    let corrupt = |detail: String| StorageError::Corrupt {
        table: "run_totals",
        detail,
    };
    let text = |name: &str| -> Result<String> { Ok(r.try_get::<String, _>(name)?) };
    let count =
        |name: &str| -> Result<u64> { Ok(u64::try_from(r.try_get::<i64, _>(name)?).unwrap_or(0)) };
    Ok(RunTotals {
        account: text("account")?,
        kind: text("kind")?.parse().map_err(|e| corrupt(format!("{e}")))?,
        trigger: text("trigger")?
            .parse()
            .map_err(|e| corrupt(format!("{e}")))?,
        outcome: text("outcome")?
            .parse()
            .map_err(|e| corrupt(format!("{e}")))?,
        runs: count("runs")?,
        duration_ms: count("duration_ms")?,
        items_read: count("items_read")?,
        created: count("created")?,
        updated: count("updated")?,
        unchanged: count("unchanged")?,
        removed: count("removed")?,
        requests: count("requests")?,
        rate_limit_waits: count("rate_limit_waits")?,
        reclaimed: count("reclaimed")?,
        last_started_at: r.try_get("last_started_at")?,
        last_finished_at: r.try_get("last_finished_at")?,
    })
}
