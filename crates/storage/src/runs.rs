//! Run rows: every sync is one, from claim to outcome. A run is held by one process (its
//! `holder`); every write of a run presents the holder so a process that lost the run (killed,
//! partitioned, superseded) cannot overwrite the new holder's progress (`LeaseLost`).

use std::sync::LazyLock;

use domain::{ErrorClass, RunCounts, RunOutcome, RunState, RunTrigger, SyncKind};
use sqlx::Row;

use crate::states::{self, lit};
use crate::{now_ms, Result, StorageError, Store};

/// A run this process holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRun {
    pub id: i64,
    pub account: String,
    pub kind: SyncKind,
    pub holder: String,
    pub attempt: i64,
    /// Last page fully written (0 = none yet).
    pub checkpoint_page: i64,
    pub full_scan: bool,
    /// When the database server the run was claimed on started (PostgreSQL's
    /// `pg_postmaster_start_time`, ms); `None` on SQLite. PostgreSQL sessions commit
    /// asynchronously (`synchronous_commit = off`): a server crash may lose the last commits
    /// it acknowledged, and a run that goes on after the restart would build on writes that
    /// are gone — a cursor moved past orders never stored, a run recorded as succeeded
    /// without its last pages (found by the chaos harness). So the writes that claim
    /// progress (a checkpoint, a cursor, a success) refuse a server started since the claim
    /// ([`StorageError::DatabaseRestarted`]); the run fails and its retry reads again.
    pub db_epoch: Option<i64>,
}

/// What `begin_run` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginRun {
    /// A fresh run (or a queued one this process claimed).
    Started(ActiveRun),
    /// An interrupted or abandoned run taken over; continue from its checkpoint.
    Resumed {
        run: ActiveRun,
        previous_holder: Option<String>,
    },
    /// Another live process holds the active run of this (account, kind).
    Busy { run_id: i64, holder: Option<String> },
    /// The scheduled slot already has its run (another instance created it).
    SlotTaken { run_id: i64 },
}

/// What a process asks for when it wants to run (account, kind).
#[derive(Debug, Clone, Copy)]
pub struct RunRequest<'a> {
    pub account: &'a str,
    pub kind: SyncKind,
    pub trigger: RunTrigger,
    pub full_scan: bool,
    /// The scheduled slot (ms) this run is for; runs are unique per (account, kind, slot).
    pub slot: Option<i64>,
    pub holder: &'a str,
    /// A run whose holder has been silent this long may be taken over.
    pub stale_after_ms: i64,
}

/// One row of the runs table, for summaries and status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub account: String,
    pub kind: SyncKind,
    pub trigger: RunTrigger,
    pub state: RunState,
    pub attempt: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub checkpoint_page: i64,
    pub total_items: Option<i64>,
    pub counts: RunCounts,
    pub error_class: Option<ErrorClass>,
    pub error_message: Option<String>,
    pub emag_messages: Vec<String>,
    pub note: Option<String>,
    /// The process holding a running run, and when it last proved it was alive.
    pub holder: Option<String>,
    pub heartbeat_at: Option<i64>,
    /// The scheduled slot (ms) the run is for; `None` for manual runs and resumptions.
    pub slot: Option<i64>,
    /// Set when the run was taken over from a holder that died or went silent (its lease
    /// expired): that holder, and when.
    pub reclaimed_from: Option<String>,
    pub reclaimed_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub account: Option<String>,
    pub kind: Option<SyncKind>,
    pub limit: i64,
}

/// The active run of an (account, kind): a probe of the unique partial index `runs_one_active`.
static ACTIVE_OF_KIND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, state, holder, heartbeat_at FROM runs \
         WHERE account = $1 AND kind = $2 AND state IN {}",
        states::list(&states::ACTIVE)
    )
});

/// The running run of an account: the unique partial index `runs_one_running_per_account`.
static RUNNING_OF_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, holder FROM runs WHERE account = $1 AND state = {}",
        lit(RunState::Running)
    )
});

impl Store {
    /// Claims the active run of (account, kind), or starts one. A run whose holder is dead
    /// (`holder_alive` says so) or silent for longer than `stale_after_ms` is taken over
    /// with `attempt + 1`; a live holder makes this return `Busy`.
    pub async fn begin_run(
        &self,
        req: &RunRequest<'_>,
        holder_alive: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<BeginRun> {
        let RunRequest {
            account,
            kind,
            trigger,
            full_scan,
            slot,
            holder,
            stale_after_ms,
        } = *req;
        // Two attempts: a unique index may reject our insert when another process created
        // the run between our look and our insert; the second look then sees it.
        for _ in 0..2 {
            if let Some(slot) = slot {
                let taken: Option<(i64,)> = sqlx::query_as(
                    "SELECT id FROM runs WHERE account = $1 AND kind = $2 AND slot = $3",
                )
                .bind(account)
                .bind(kind.as_str())
                .bind(slot)
                .fetch_optional(&self.pool)
                .await?;
                if let Some((run_id,)) = taken {
                    return Ok(BeginRun::SlotTaken { run_id });
                }
            }
            // The database's clock: hosts judging each other's heartbeats must share one.
            let now = self.clock_ms().await?;
            let db_epoch = self.server_epoch().await?;
            let existing = sqlx::query(&ACTIVE_OF_KIND)
                .bind(account)
                .bind(kind.as_str())
                .fetch_optional(&self.pool)
                .await?;

            let Some(row) = existing else {
                let inserted = sqlx::query(
                    "INSERT INTO runs (account, kind, trigger, state, attempt, full_scan, holder, \
                     heartbeat_at, created_at, started_at, slot) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $7, $7, $8) RETURNING id",
                )
                .bind(account)
                .bind(kind.as_str())
                .bind(trigger.as_str())
                .bind(RunState::Running.as_str())
                .bind(i64::from(full_scan))
                .bind(holder)
                .bind(now)
                .bind(slot)
                .fetch_one(&self.pool)
                .await;
                match inserted {
                    Ok(row) => {
                        return Ok(BeginRun::Started(ActiveRun {
                            id: row.try_get(0)?,
                            account: account.to_owned(),
                            kind,
                            holder: holder.to_owned(),
                            attempt: 1,
                            checkpoint_page: 0,
                            full_scan,
                            db_epoch,
                        }))
                    }
                    Err(e) if is_unique_violation(&e) => {
                        if let Some(busy) = self.running_of_account(account).await? {
                            return Ok(busy);
                        }
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            };

            let id: i64 = row.try_get("id")?;
            let state = parse_state(&row.try_get::<String, _>("state")?)?;
            let old_holder: Option<String> = row.try_get("holder")?;
            let heartbeat: Option<i64> = row.try_get("heartbeat_at")?;
            let abandoned = match state {
                RunState::Queued | RunState::Interrupted => true,
                _ => domain::Lease::judge(
                    old_holder.as_deref(),
                    heartbeat,
                    now,
                    stale_after_ms,
                    holder_alive,
                )
                .is_abandoned(),
            };
            if !abandoned {
                return Ok(BeginRun::Busy {
                    run_id: id,
                    holder: old_holder,
                });
            }
            // Compare-and-swap on the previous holder: of two processes taking over the same
            // run, exactly one wins.
            let taken = sqlx::query(
                "UPDATE runs SET state = $6, holder = $1, heartbeat_at = $2, \
                 started_at = COALESCE(started_at, $2), \
                 attempt = CASE WHEN state = $7 THEN attempt ELSE attempt + 1 END, \
                 reclaimed_from = CASE WHEN state = $6 THEN holder ELSE reclaimed_from END, \
                 reclaimed_at = CASE WHEN state = $6 THEN $2 ELSE reclaimed_at END \
                 WHERE id = $3 AND state = $4 AND (holder = $5 OR (holder IS NULL AND $5 IS NULL)) \
                 RETURNING attempt, checkpoint_page, full_scan",
            )
            .bind(holder)
            .bind(now)
            .bind(id)
            .bind(state.as_str())
            .bind(old_holder.clone())
            .bind(RunState::Running.as_str())
            .bind(RunState::Queued.as_str())
            .fetch_optional(&self.pool)
            .await;
            let taken = match taken {
                Ok(t) => t,
                // Another kind of this account is running: resume this one later.
                Err(e) if is_unique_violation(&e) => {
                    match self.running_of_account(account).await? {
                        Some(busy) => return Ok(busy),
                        None => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            };
            let Some(taken) = taken else { continue };
            let run = ActiveRun {
                id,
                account: account.to_owned(),
                kind,
                holder: holder.to_owned(),
                attempt: taken.try_get(0)?,
                checkpoint_page: taken.try_get(1)?,
                full_scan: taken.try_get::<i64, _>(2)? != 0,
                db_epoch,
            };
            return Ok(if state == RunState::Queued {
                BeginRun::Started(run)
            } else {
                BeginRun::Resumed {
                    run,
                    previous_holder: old_holder,
                }
            });
        }
        Err(StorageError::Corrupt {
            table: "runs",
            detail: format!("could not claim the active {kind} run of {account}: contended twice"),
        })
    }

    /// The running run of an account, of any kind, as `Busy`.
    async fn running_of_account(&self, account: &str) -> Result<Option<BeginRun>> {
        let row: Option<(i64, Option<String>)> = sqlx::query_as(&RUNNING_OF_ACCOUNT)
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(run_id, holder)| BeginRun::Busy { run_id, holder }))
    }

    /// Proves this process still holds the run, and tells others it is alive.
    pub async fn heartbeat_run(&self, run: &ActiveRun) -> Result<()> {
        let done = sqlx::query(
            "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND holder = $3 AND state = $4",
        )
        .bind(self.clock_ms().await?)
        .bind(run.id)
        .bind(&run.holder)
        .bind(RunState::Running.as_str())
        .execute(&self.pool)
        .await?;
        fenced(done.rows_affected(), run.id)
    }

    /// Records the expected number of items (from a count call), for progress.
    pub async fn set_run_total(&self, run: &ActiveRun, total: i64) -> Result<()> {
        let done = sqlx::query("UPDATE runs SET total_items = $1 WHERE id = $2 AND holder = $3")
            .bind(total)
            .bind(run.id)
            .bind(&run.holder)
            .execute(&self.pool)
            .await?;
        fenced(done.rows_affected(), run.id)
    }

    /// Adds page counters outside an offer page transaction (orders, reference data).
    pub async fn add_run_counts(&self, run: &ActiveRun, c: &RunCounts) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        add_counts(&mut tx, run, c).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a run with its outcome and eMAG's messages (kept on a success too). `extra` holds
    /// the counters not already written page by page (requests, rate-limit waits, retries,
    /// removals).
    pub async fn finish_run(
        &self,
        run: &ActiveRun,
        outcome: &RunOutcome,
        extra: &RunCounts,
        note: Option<&str>,
    ) -> Result<()> {
        let (state, class, message) = match outcome {
            RunOutcome::Succeeded { .. } => (RunState::Succeeded, None, None),
            RunOutcome::Failed { class, message, .. } => (
                RunState::Failed,
                Some(class.as_str()),
                Some(message.as_str()),
            ),
        };
        // A success without messages stores none (NULL), as before messages were kept on
        // successes; a failure stores its list, empty or not.
        let messages = match outcome {
            RunOutcome::Succeeded { emag_messages } if emag_messages.is_empty() => None,
            _ => Some(serde_json::to_string(outcome.emag_messages()).unwrap_or_default()),
        };
        let mut tx = self.pool.begin().await?;
        // A success vouches for everything the run wrote: not across a server restart.
        if state == RunState::Succeeded {
            check_epoch(&mut tx, run).await?;
        }
        add_counts(&mut tx, run, extra).await?;
        let done = sqlx::query(
            "UPDATE runs SET state = $1, finished_at = $2, error_class = $3, error_message = $4, \
             emag_messages = $5, note = COALESCE($6, note), holder = NULL \
             WHERE id = $7 AND holder = $8",
        )
        .bind(state.as_str())
        .bind(now_ms())
        .bind(class)
        .bind(message)
        .bind(messages)
        .bind(note)
        .bind(run.id)
        .bind(&run.holder)
        .execute(&mut *tx)
        .await?;
        fenced(done.rows_affected(), run.id)?;
        close_ended_run(&mut tx, run.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Leaves a run resumable (graceful shutdown): its checkpoint stays, any process may
    /// continue it.
    pub async fn interrupt_run(&self, run: &ActiveRun, extra: &RunCounts, why: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        add_counts(&mut tx, run, extra).await?;
        let done = sqlx::query(
            "UPDATE runs SET state = $1, holder = NULL, note = $2 \
             WHERE id = $3 AND holder = $4",
        )
        .bind(RunState::Interrupted.as_str())
        .bind(why)
        .bind(run.id)
        .bind(&run.holder)
        .execute(&mut *tx)
        .await?;
        fenced(done.rows_affected(), run.id)?;
        tx.commit().await?;
        Ok(())
    }

    /// Abandons an unfinished run for good (e.g. `sync --full` over an interrupted scan).
    pub async fn supersede_run(&self, run: &ActiveRun, why: &str) -> Result<()> {
        let outcome = RunOutcome::Failed {
            class: ErrorClass::Config,
            message: why.to_owned(),
            emag_messages: Vec::new(),
        };
        self.finish_run(run, &outcome, &RunCounts::default(), Some(why))
            .await
    }

    pub async fn get_run(&self, id: i64) -> Result<Option<RunRow>> {
        let row = sqlx::query(&format!("{RUN_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    /// Most recent runs first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(&format!(
            "{RUN_COLUMNS} WHERE ($1 IS NULL OR account = $1) AND ($2 IS NULL OR kind = $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(filter.account.clone())
        .bind(filter.kind.map(|k| k.as_str()))
        .bind(if filter.limit > 0 { filter.limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }
}

const RUN_COLUMNS: &str = "SELECT id, account, kind, trigger, state, attempt, created_at, \
    started_at, finished_at, checkpoint_page, total_items, pages, items_read, created, updated, \
    unchanged, removed, requests, rate_limit_waits, retries, error_class, error_message, \
    emag_messages, note, holder, heartbeat_at, slot, reclaimed_from, reclaimed_at FROM runs";

// Queries that select runs by state through a partial index carry the state as a literal
// written from `RunState` (see `crate::states`), built once.

/// The active run's state of an (account, kind): `runs_one_active`.
static ACTIVE_STATE_OF_KIND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, state FROM runs WHERE account = $1 AND kind = $2 AND state IN {}",
        states::list(&states::ACTIVE)
    )
});

/// Queued and running runs: `runs_queued` and `runs_one_running_per_account`.
static ACTIVE_RUNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{RUN_COLUMNS} WHERE state = {} UNION ALL {RUN_COLUMNS} WHERE state = {}",
        lit(RunState::Queued),
        lit(RunState::Running)
    )
});

/// Failed runs ended since $1: `runs_failed`.
static RECENT_FAILURES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{RUN_COLUMNS} WHERE finished_at >= $1 AND state = {} \
         ORDER BY finished_at DESC, id DESC LIMIT $2",
        lit(RunState::Failed)
    )
});

/// Failures in a row of every (account, kind) whose latest run failed: `runs_failed_by_kind`.
static FAILURES_IN_ROW: LazyLock<String> = LazyLock::new(|| {
    let failed = lit(RunState::Failed);
    format!(
        "SELECT l.account, l.kind, (SELECT COUNT(*) FROM runs f \
         WHERE f.account = l.account AND f.kind = l.kind AND f.state = {failed} \
         AND f.id > COALESCE(l.latest_success_id, 0)) \
         FROM latest_runs l JOIN runs r ON r.id = l.latest_id WHERE r.state = {failed}"
    )
});

/// Failures in a row of one (account, kind): `runs_failed_by_kind` after `runs_succeeded`.
static FAILURES_IN_ROW_OF_KIND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT COUNT(*) FROM runs WHERE account = $1 AND kind = $2 AND state = {} \
         AND id > COALESCE((SELECT MAX(id) FROM runs WHERE account = $1 AND kind = $2 \
         AND state = {}), 0)",
        lit(RunState::Failed),
        lit(RunState::Succeeded)
    )
});

/// Decided runs ended since $1 and the success before them: `runs_succeeded`.
static OUTCOMES_SINCE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT account, kind, state, started_at, finished_at, items_read FROM runs \
         WHERE id IN (SELECT (SELECT s.id FROM runs s WHERE s.account = l.account \
         AND s.kind = l.kind AND s.state = {} AND s.finished_at < $1 \
         ORDER BY s.id DESC LIMIT 1) FROM latest_runs l) \
         UNION ALL SELECT account, kind, state, started_at, finished_at, items_read FROM runs \
         WHERE finished_at >= $1 AND state IN {} \
         ORDER BY 1, 2, 5",
        lit(RunState::Succeeded),
        states::list(&states::DECIDED)
    )
});

/// Errors, warnings and the latest end since $1: `runs_failed`, `runs_warned`, `runs_finished`.
static RUN_LOG_SUMMARY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT (SELECT COUNT(*) FROM runs WHERE state = {} AND finished_at >= $1), \
         (SELECT COUNT(*) FROM runs WHERE {} AND finished_at >= $1), \
         (SELECT MAX(finished_at) FROM runs WHERE finished_at >= $1)",
        lit(RunState::Failed),
        *states::WARNED
    )
});

fn run_from_row(r: &sqlx::any::AnyRow) -> Result<RunRow> {
    let corrupt = |detail: String| StorageError::Corrupt {
        table: "runs",
        detail,
    };
    let kind: String = r.try_get("kind")?;
    let trigger: String = r.try_get("trigger")?;
    let class: Option<String> = r.try_get("error_class")?;
    let messages: Option<String> = r.try_get("emag_messages")?;
    let count =
        |name: &str| -> Result<u64> { Ok(u64::try_from(r.try_get::<i64, _>(name)?).unwrap_or(0)) };
    Ok(RunRow {
        id: r.try_get("id")?,
        account: r.try_get("account")?,
        kind: kind.parse().map_err(|e| corrupt(format!("{e}")))?,
        trigger: trigger.parse().map_err(|e| corrupt(format!("{e}")))?,
        state: parse_state(&r.try_get::<String, _>("state")?)?,
        attempt: r.try_get("attempt")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        checkpoint_page: r.try_get("checkpoint_page")?,
        total_items: r.try_get("total_items")?,
        counts: RunCounts {
            pages: count("pages")?,
            items_read: count("items_read")?,
            created: count("created")?,
            updated: count("updated")?,
            unchanged: count("unchanged")?,
            removed: count("removed")?,
            requests: count("requests")?,
            rate_limit_waits: count("rate_limit_waits")?,
            retries: count("retries")?,
        },
        error_class: class
            .map(|c| c.parse())
            .transpose()
            .map_err(|e| corrupt(format!("{e}")))?,
        error_message: r.try_get("error_message")?,
        emag_messages: messages
            .map(|m| serde_json::from_str(&m).unwrap_or_default())
            .unwrap_or_default(),
        note: r.try_get("note")?,
        holder: r.try_get("holder")?,
        heartbeat_at: r.try_get("heartbeat_at")?,
        slot: r.try_get("slot")?,
        reclaimed_from: r.try_get("reclaimed_from")?,
        reclaimed_at: r.try_get("reclaimed_at")?,
    })
}

fn parse_kind(text: &str) -> Result<SyncKind> {
    text.parse().map_err(|e| StorageError::Corrupt {
        table: "runs",
        detail: format!("{e}"),
    })
}

fn parse_state(text: &str) -> Result<RunState> {
    text.parse().map_err(|e| StorageError::Corrupt {
        table: "runs",
        detail: format!("{e}"),
    })
}

/// What every ending of a run does in the transaction that ends it: its outcome joins the
/// totals of /metrics (never missed or doubled), and its scan's page ids are dropped.
async fn close_ended_run(tx: &mut sqlx::Transaction<'_, sqlx::Any>, run_id: i64) -> Result<()> {
    crate::totals::add_run_to_totals(tx, run_id).await?;
    sqlx::query("DELETE FROM scan_pages WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Proves inside `tx` that this process still holds `run` (and beats for it): a write of a
/// run taken over fails with `LeaseLost` before it changes anything.
pub(crate) async fn hold_lease_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &ActiveRun,
) -> Result<()> {
    let now = crate::db::clock_in(tx).await?;
    let done = sqlx::query("UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND holder = $3")
        .bind(now)
        .bind(run.id)
        .bind(&run.holder)
        .execute(&mut **tx)
        .await?;
    fenced(done.rows_affected(), run.id)
}

/// PostgreSQL's start time in ms: the same for as long as the server runs.
pub(crate) const POSTGRES_EPOCH_MS: &str =
    "SELECT CAST(EXTRACT(EPOCH FROM pg_postmaster_start_time()) * 1000 AS BIGINT)";

/// Refuses, inside the caller's transaction, a database server started since `run` was
/// claimed (see [`ActiveRun::db_epoch`]). If the server restarts after this look, the
/// transaction itself fails.
pub(crate) async fn check_epoch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &ActiveRun,
) -> Result<()> {
    let Some(claimed) = run.db_epoch else {
        return Ok(());
    };
    let now: i64 = sqlx::query_scalar(POSTGRES_EPOCH_MS)
        .fetch_one(&mut **tx)
        .await?;
    same_epoch(run, claimed, now)
}

/// The rule of [`check_epoch`], for a caller that read the server's start time (`now`) on
/// a connection of its own kind (the native PostgreSQL path of `offers_pg`).
pub(crate) fn same_epoch(run: &ActiveRun, claimed: i64, now: i64) -> Result<()> {
    if now == claimed {
        Ok(())
    } else {
        Err(StorageError::DatabaseRestarted(run.id))
    }
}

pub(crate) fn fenced(rows: u64, run_id: i64) -> Result<()> {
    if rows == 0 {
        Err(StorageError::LeaseLost(run_id))
    } else {
        Ok(())
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Adds a run's counters (`$1`…`$9`: pages, items read, created, updated, unchanged, removed,
/// requests, rate-limit waits, retries) and beats its heart (`$10`), fenced by the holder
/// (`$11` the run, `$12` its holder).
pub(crate) const ADD_COUNTS: &str =
    "UPDATE runs SET pages = pages + $1, items_read = items_read + $2, \
     created = created + $3, updated = updated + $4, unchanged = unchanged + $5, \
     removed = removed + $6, requests = requests + $7, \
     rate_limit_waits = rate_limit_waits + $8, retries = retries + $9, heartbeat_at = $10 \
     WHERE id = $11 AND holder = $12";

/// The values of [`ADD_COUNTS`]' `$1`…`$9`.
pub(crate) fn count_values(c: &RunCounts) -> [i64; 9] {
    [
        c.pages,
        c.items_read,
        c.created,
        c.updated,
        c.unchanged,
        c.removed,
        c.requests,
        c.rate_limit_waits,
        c.retries,
    ]
    .map(to_i64)
}

/// Adds counters to a run inside the caller's transaction, fenced by the holder.
pub(crate) async fn add_counts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &ActiveRun,
    c: &RunCounts,
) -> Result<()> {
    let clock = crate::db::clock_in(tx).await?;
    let done = add_counts_query(c, clock, run).execute(&mut **tx).await?;
    fenced(done.rows_affected(), run.id)
}

/// [`ADD_COUNTS`] with its values (`clock` the database's time in ms), for a connection of
/// either kind: the `Any` pool's or the native PostgreSQL pool's (`offers_pg`).
pub(crate) fn add_counts_query<'q, DB: sqlx::Database>(
    c: &RunCounts,
    clock: i64,
    run: &'q ActiveRun,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::query(ADD_COUNTS);
    for v in count_values(c) {
        q = q.bind(v);
    }
    q.bind(clock).bind(run.id).bind(run.holder.as_str())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// One finished run, as the KPIs see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcomePoint {
    pub account: String,
    pub kind: SyncKind,
    /// Succeeded or failed.
    pub state: RunState,
    pub started_at: i64,
    pub finished_at: i64,
    /// Items the run read.
    pub items_read: u64,
}

/// How the runs that ended in a period went (see [`Store::run_log_summary`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunLogSummary {
    /// Failed runs.
    pub errors: i64,
    /// Runs that succeeded only after retries or a takeover.
    pub warnings: i64,
    /// Unix ms when the latest of them ended.
    pub last_finished_at: Option<i64>,
}

/// What the scheduler needs to know of one (account, kind): its latest run and how many
/// runs in a row have failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindHistory {
    pub account: String,
    pub kind: SyncKind,
    pub latest: RunRow,
    pub failures_in_row: u32,
}

impl Store {
    /// The latest run of every (account, kind) that has one.
    pub async fn kind_histories(&self) -> Result<Vec<KindHistory>> {
        // `latest_runs` (migration 0007, kept by triggers) names the latest run of every
        // (account, kind): one primary-key probe each, however long the history.
        let rows = sqlx::query(&format!(
            "{RUN_COLUMNS} WHERE id IN (SELECT latest_id FROM latest_runs) ORDER BY account, kind"
        ))
        .fetch_all(&self.pool)
        .await?;
        let latest = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        // Failures in a row of every (account, kind) whose latest run failed, in one query
        // rather than one each: the failed runs after its latest success, a range count of
        // `runs_failed_by_kind` per failing (account, kind).
        let failures: std::collections::HashMap<(String, String), i64> =
            if latest.iter().any(|r| r.state == RunState::Failed) {
                sqlx::query_as::<_, (String, String, i64)>(&FAILURES_IN_ROW)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(|(account, kind, n)| ((account, kind), n))
                    .collect()
            } else {
                Default::default()
            };
        Ok(latest
            .into_iter()
            .map(|latest| {
                let failures_in_row = if latest.state == RunState::Failed {
                    failures
                        .get(&(latest.account.clone(), latest.kind.as_str().to_owned()))
                        .map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX))
                } else {
                    0
                };
                KindHistory {
                    account: latest.account.clone(),
                    kind: latest.kind,
                    latest,
                    failures_in_row,
                }
            })
            .collect())
    }

    /// The latest run of one (account, kind), if it has one.
    pub async fn kind_history(&self, account: &str, kind: SyncKind) -> Result<Option<KindHistory>> {
        let row = sqlx::query(&format!(
            "{RUN_COLUMNS} WHERE account = $1 AND kind = $2 ORDER BY id DESC LIMIT 1"
        ))
        .bind(account)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(self.history_of(run_from_row(&r)?).await?)),
            None => Ok(None),
        }
    }

    /// The latest succeeded run of every (account, kind) that has one: how fresh its data is.
    pub async fn last_successes(&self) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(&format!(
            "{RUN_COLUMNS} WHERE id IN (SELECT latest_success_id FROM latest_runs \
             WHERE latest_success_id IS NOT NULL) ORDER BY account, kind"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Failed runs that ended at or after `since`, newest first, at most `limit`.
    pub async fn recent_failures(&self, since: i64, limit: i64) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(&RECENT_FAILURES)
            .bind(since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The finished (succeeded or failed) runs that ended at or after `since`, and the latest
    /// success of each (account, kind) before it, in run order: what the KPIs are computed from.
    pub async fn outcomes_since(&self, since: i64) -> Result<Vec<RunOutcomePoint>> {
        /// account, kind, state, started_at, finished_at, items_read
        type Outcome = (String, String, String, Option<i64>, Option<i64>, i64);
        // The success before the period: per (account, kind) of `latest_runs`, a backward
        // walk of `runs_succeeded` that stops at the first success ended before `since`
        // (it passes only the period's successes), not a grouping of the whole history.
        let rows: Vec<Outcome> = sqlx::query_as(&OUTCOMES_SINCE)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(
                |(account, kind, state, started_at, finished_at, items_read)| {
                    Ok(RunOutcomePoint {
                        account,
                        kind: parse_kind(&kind)?,
                        state: parse_state(&state)?,
                        started_at: started_at.unwrap_or_default(),
                        finished_at: finished_at.unwrap_or_default(),
                        items_read: u64::try_from(items_read).unwrap_or(0),
                    })
                },
            )
            .collect()
    }

    /// Outcomes of the runs that ended at or after `since`: failures are errors; successes
    /// that needed retries or a takeover are warnings.
    pub async fn run_log_summary(&self, since: i64) -> Result<RunLogSummary> {
        // Three index reads (`runs_failed`, `runs_warned`, `runs_finished`) instead of a visit
        // to every run of the period: with 1,000 accounts an hour holds thousands of runs.
        // The `runs_warned` condition is written exactly as in its index, or SQLite would not
        // see that the partial index applies.
        let (errors, warnings, last): (i64, i64, Option<i64>) = sqlx::query_as(&RUN_LOG_SUMMARY)
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(RunLogSummary {
            errors,
            warnings,
            last_finished_at: last,
        })
    }

    /// Runs taken over since `since` from a holder whose lease expired (died or silent).
    pub async fn reclaimed_runs(&self, since: i64) -> Result<i64> {
        // A range of the partial index `runs_reclaimed`: takeovers are rare.
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM runs WHERE reclaimed_at >= $1")
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Queued and running runs: what a scheduler must look at every tick (manual runs to
    /// claim, holders that went silent).
    pub async fn active_runs(&self) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(&ACTIVE_RUNS).fetch_all(&self.pool).await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Queues a manual run of (account, kind) for a scheduler to claim. If the (account,
    /// kind) already has an active run (queued, running or interrupted), that run is
    /// returned instead: it will cover what was asked.
    pub async fn enqueue_run(
        &self,
        account: &str,
        kind: SyncKind,
        full_scan: bool,
    ) -> Result<Enqueued> {
        for _ in 0..2 {
            let existing: Option<(i64, String)> = sqlx::query_as(&ACTIVE_STATE_OF_KIND)
                .bind(account)
                .bind(kind.as_str())
                .fetch_optional(&self.pool)
                .await?;
            if let Some((run_id, state)) = existing {
                return Ok(Enqueued::AlreadyActive {
                    run_id,
                    state: parse_state(&state)?,
                });
            }
            let inserted = sqlx::query(
                "INSERT INTO runs (account, kind, trigger, state, attempt, full_scan, created_at) \
                 VALUES ($1, $2, $3, $4, 1, $5, $6) RETURNING id",
            )
            .bind(account)
            .bind(kind.as_str())
            .bind(RunTrigger::Manual.as_str())
            .bind(RunState::Queued.as_str())
            .bind(i64::from(full_scan))
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await;
            match inserted {
                Ok(row) => {
                    return Ok(Enqueued::Queued {
                        run_id: row.try_get(0)?,
                    })
                }
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StorageError::Corrupt {
            table: "runs",
            detail: format!("could not queue a {kind} run of {account}: contended twice"),
        })
    }

    async fn history_of(&self, latest: RunRow) -> Result<KindHistory> {
        let failures_in_row = if latest.state == RunState::Failed {
            let row = sqlx::query(&FAILURES_IN_ROW_OF_KIND)
                .bind(&latest.account)
                .bind(latest.kind.as_str())
                .fetch_one(&self.pool)
                .await?;
            u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(u32::MAX)
        } else {
            0
        };
        Ok(KindHistory {
            account: latest.account.clone(),
            kind: latest.kind,
            latest,
            failures_in_row,
        })
    }
}

/// A page of the run history: filters, and where the previous page ended (keyset pagination
/// by id descending, so a page is an index range however long the history grows and rows
/// added meanwhile never shift it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    pub account: Option<String>,
    pub kind: Option<SyncKind>,
    pub state: Option<RunState>,
    pub trigger: Option<RunTrigger>,
    /// Unix ms: runs created at or after / before.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only runs with a smaller id: the last id of the previous page.
    pub before_id: Option<i64>,
    /// At most this many (1..=500; anything else is clamped).
    pub limit: i64,
}

/// One page of runs, newest first, and the cursor of the next page if there may be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPage {
    pub items: Vec<RunRow>,
    pub next: Option<i64>,
}

/// The most runs one page holds.
pub const RUN_PAGE_MAX: i64 = 500;

/// What a request to cancel a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelRun {
    /// It was queued or interrupted: it is cancelled now.
    Cancelled,
    /// It is running: its holder stops it at its next page boundary.
    Requested,
    /// It had ended already (in this state).
    AlreadyEnded(RunState),
    NotFound,
}

impl Store {
    /// A page of the run history (see [`RunQuery`]).
    pub async fn list_runs_page(&self, q: &RunQuery) -> Result<RunPage> {
        let limit = q.limit.clamp(1, RUN_PAGE_MAX);
        let rows = sqlx::query(&format!(
            "{RUN_COLUMNS} WHERE ($1 IS NULL OR account = $1) AND ($2 IS NULL OR kind = $2) \
             AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR trigger = $4) \
             AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
             AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8"
        ))
        .bind(q.account.clone())
        .bind(q.kind.map(|k| k.as_str()))
        .bind(q.state.map(|s| s.as_str()))
        .bind(q.trigger.map(|t| t.as_str()))
        .bind(q.since)
        .bind(q.until)
        .bind(q.before_id)
        // One more than asked: whether a next page exists, without a COUNT.
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut items = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = if more {
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok(RunPage { items, next })
    }

    /// An operator's cancel of run `id`: a queued or interrupted run ends `cancelled` now; a
    /// running one gets a cancel request its holder sees on its next heartbeat
    /// ([`Store::run_cancel_requested`]) and ends at its next page boundary
    /// ([`Store::cancel_run`]).
    pub async fn request_run_cancel(&self, id: i64, by: &str) -> Result<CancelRun> {
        let note = format!("cancelled by {by}");
        // Compare-and-swap on the state read, so a run claimed meanwhile is asked, not ended.
        for _ in 0..3 {
            let Some((state,)) =
                sqlx::query_as::<_, (String,)>("SELECT state FROM runs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            else {
                return Ok(CancelRun::NotFound);
            };
            let state = parse_state(&state)?;
            let done = match state {
                RunState::Queued | RunState::Interrupted => {
                    let mut tx = self.pool.begin().await?;
                    let done = sqlx::query(
                        "UPDATE runs SET state = $1, finished_at = $2, note = $3, holder = NULL, \
                         cancel_requested_at = $2, cancel_requested_by = $4 \
                         WHERE id = $5 AND state = $6",
                    )
                    .bind(RunState::Cancelled.as_str())
                    .bind(now_ms())
                    .bind(&note)
                    .bind(by)
                    .bind(id)
                    .bind(state.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 1 {
                        close_ended_run(&mut tx, id).await?;
                        tx.commit().await?;
                        return Ok(CancelRun::Cancelled);
                    }
                    tx.rollback().await?;
                    false
                }
                RunState::Running => {
                    let done = sqlx::query(
                        "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, $1), \
                         cancel_requested_by = COALESCE(cancel_requested_by, $2) \
                         WHERE id = $3 AND state = $4",
                    )
                    .bind(now_ms())
                    .bind(by)
                    .bind(id)
                    .bind(RunState::Running.as_str())
                    .execute(&self.pool)
                    .await?;
                    done.rows_affected() == 1
                }
                ended => return Ok(CancelRun::AlreadyEnded(ended)),
            };
            if done {
                return Ok(CancelRun::Requested);
            }
        }
        Err(StorageError::Corrupt {
            table: "runs",
            detail: format!("could not cancel run {id}: its state changed three times"),
        })
    }

    /// Who asked to cancel run `id` and when (unix ms), if anyone did.
    pub async fn run_cancel_requested(&self, id: i64) -> Result<Option<(i64, String)>> {
        let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT cancel_requested_at, cancel_requested_by FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(at, by)| at.map(|at| (at, by.unwrap_or_default()))))
    }

    /// Ends a run this process holds as `cancelled` (an operator asked): terminal, never
    /// resumed; the pages written stay written, `extra` holds the counters not yet written.
    pub async fn cancel_run(&self, run: &ActiveRun, extra: &RunCounts, note: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        add_counts(&mut tx, run, extra).await?;
        let done = sqlx::query(
            "UPDATE runs SET state = $1, finished_at = $2, note = $3, holder = NULL \
             WHERE id = $4 AND holder = $5",
        )
        .bind(RunState::Cancelled.as_str())
        .bind(now_ms())
        .bind(note)
        .bind(run.id)
        .bind(&run.holder)
        .execute(&mut *tx)
        .await?;
        fenced(done.rows_affected(), run.id)?;
        close_ended_run(&mut tx, run.id).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// What `enqueue_run` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Enqueued {
    Queued { run_id: i64 },
    AlreadyActive { run_id: i64, state: RunState },
}
