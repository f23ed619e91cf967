//! The sync engine: one run of one kind for one account, from claim to recorded outcome.
//!
//! `run_sync` claims the (account, kind) run in the store (resuming an abandoned one from its
//! checkpoint), runs the kind's module, and records the outcome with its counters and a
//! classified error. The account and its client are passed in explicitly: nothing here reads
//! globals or the environment.

pub mod encoding;
pub mod items;
mod offers;
mod orders;
mod quarantine;
mod reference;
mod returns;

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{AttentionCause, ErrorClass, RunCounts, RunOutcome, RunTrigger, SyncKind};
use emag_client::{EmagClient, EmagError};
use storage::{ActiveRun, BeginRun, RunRequest, StorageError, Store};
use tokio_util::sync::CancellationToken;

use crate::config::{AccountConfig, SyncSettings};

/// An account ready to sync: its configuration and the client of its credentials.
#[derive(Debug, Clone)]
pub struct Account {
    pub config: AccountConfig,
    pub client: EmagClient,
}

impl Account {
    pub fn name(&self) -> &str {
        self.config.name.as_str()
    }
}

/// Receives progress of running syncs (the CLI draws bars, the daemon may ignore it).
pub trait ProgressSink: Send + Sync {
    /// `done` items so far, of `total` when known (offers are counted first).
    fn progress(&self, account: &str, kind: SyncKind, done: u64, total: Option<u64>);
}

/// What every run needs besides its account.
#[derive(Clone)]
pub struct SyncContext {
    pub store: Store,
    /// This process's identity in run leases: `host:pid:nonce`.
    pub holder: String,
    pub settings: SyncSettings,
    pub cancel: CancellationToken,
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Accounts through which account-agnostic reference data may be read when an account's
    /// own credentials fail (`EMAG_AUTO_FAILOVER`); empty: no failover. Account data (offers,
    /// orders, returns) never fails over.
    pub reference_failover: Arc<Vec<Account>>,
    /// The (account, kind) runs this context claims or executes, shared by its clones.
    pub runs_here: Arc<RunsHere>,
    /// Pages read and not yet stored, for all the runs of this context's clones together.
    pub pages: PageBudget,
}

/// How many pages of offer scans read and not yet stored one process holds at most, all its
/// runs together ([`PageBudget`]). One scan at full speed holds up to 33 (its reader 8 pages
/// ahead, a batch of 8 being prepared and up to two being stored): 128 leave four accounts
/// their whole pipeline, and 128 accounts at their rate limit (three pages a second each)
/// synced as fast as without a budget. A page is about 100 offers of 1.4 KB: ~170 KB
/// decoded, 128 pages ~22 MB (docs/PERFORMANCE.md, "Pages in flight bounded").
pub const PAGES_IN_FLIGHT: usize = 128;

/// Places for pages read and not yet stored, shared by every scan of a process. A scan's
/// reader takes a place for each page it has read before decoding it, and the place comes
/// back when the batch holding the page is committed (or given up). While the writer keeps
/// up nobody waits; when it cannot (hundreds of accounts at once on two cores), readers wait
/// for places instead of each holding a full pipeline of pages: memory grew with the number
/// of accounts before (`emag-bench accounts`, 256 accounts: up to 509 MiB on SQLite and 892
/// MiB on PostgreSQL; 143–156 MiB with the budget). Places are handed out in the order
/// asked (tokio's semaphore is fair), so no account starves.
#[derive(Debug, Clone)]
pub struct PageBudget {
    places: Arc<tokio::sync::Semaphore>,
    size: usize,
}

impl PageBudget {
    /// A budget of `pages` places (at least one).
    pub fn new(pages: usize) -> PageBudget {
        let size = pages.max(1);
        PageBudget {
            places: Arc::new(tokio::sync::Semaphore::new(size)),
            size,
        }
    }

    /// Places taken now.
    pub fn taken(&self) -> usize {
        self.size - self.places.available_permits()
    }

    /// A place for one page, once one is free.
    pub(crate) async fn take(&self) -> PagePlace {
        // `acquire_owned` fails only on a closed semaphore, and this one is never closed.
        PagePlace {
            _permit: Arc::clone(&self.places).acquire_owned().await.ok(),
        }
    }
}

impl Default for PageBudget {
    fn default() -> PageBudget {
        PageBudget::new(PAGES_IN_FLIGHT)
    }
}

/// A page's place in a [`PageBudget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct PagePlace {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The (account, kind) runs a process claims or executes now. A running run under the
/// process's own holder that is not among them was left behind: it ended while the store
/// could not record its end (PostgreSQL restarting, say), and nobody will write it again —
/// so it is taken over at once instead of after its lease expires.
#[derive(Debug, Default)]
pub struct RunsHere(std::sync::Mutex<std::collections::HashSet<(String, SyncKind)>>);

impl RunsHere {
    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<(String, SyncKind)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims (account, kind) for a run of this process until the returned guard is dropped;
    /// `None` when a run of it is claimed or executed here already.
    fn reserve(self: &Arc<Self>, account: &str, kind: SyncKind) -> Option<RunHere> {
        let key = (account.to_owned(), kind);
        self.set().insert(key.clone()).then(|| RunHere {
            runs: Arc::clone(self),
            key,
        })
    }

    pub fn contains(&self, account: &str, kind: SyncKind) -> bool {
        self.set().contains(&(account.to_owned(), kind))
    }
}

/// A run of (account, kind) claimed or executed by this process (see [`RunsHere`]).
#[derive(Debug)]
struct RunHere {
    runs: Arc<RunsHere>,
    key: (String, SyncKind),
}

impl Drop for RunHere {
    fn drop(&mut self) {
        self.runs.set().remove(&self.key);
    }
}

impl std::fmt::Debug for SyncContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncContext")
            .field("holder", &self.holder)
            .finish()
    }
}

impl SyncContext {
    pub fn new(store: Store, settings: SyncSettings) -> Self {
        SyncContext {
            store,
            holder: crate::holder_id(),
            settings,
            cancel: CancellationToken::new(),
            progress: None,
            reference_failover: Arc::default(),
            runs_here: Arc::default(),
            pages: PageBudget::default(),
        }
    }

    /// Whether the holder of a running run of (account, kind) may still write it: another
    /// process by [`crate::holder_is_alive`]; this one only while it claims or executes a run
    /// of that (account, kind) (see [`RunsHere`]).
    pub fn run_holder_alive(&self, holder: &str, account: &str, kind: SyncKind) -> bool {
        if holder == self.holder {
            self.runs_here.contains(account, kind)
        } else {
            crate::holder_is_alive(holder)
        }
    }

    fn report_progress(&self, account: &str, kind: SyncKind, done: u64, total: Option<u64>) {
        if let Some(p) = &self.progress {
            p.progress(account, kind, done, total);
        }
    }
}

/// How a call of `run_sync` ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    /// Stopped on request (shutdown) with its checkpoint kept; the next run resumes it.
    Interrupted,
    /// Another live process runs this (account, kind) now.
    Busy,
    /// An operator cancelled it (dashboard); it ended at a page boundary, never resumed.
    Cancelled,
}

/// The summary of one run, for the CLI table and `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub run_id: Option<i64>,
    pub account: String,
    pub kind: SyncKind,
    pub status: RunStatus,
    pub resumed_from_page: Option<i64>,
    pub counts: RunCounts,
    pub total_items: Option<u64>,
    pub duration_ms: u64,
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
    pub emag_messages: Vec<String>,
    pub note: Option<String>,
    /// With [`RunStatus::Busy`] when the account was held by another run (not when the
    /// scheduled slot had its run already): the run to wait for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<i64>,
    /// Items eMAG sent that could not be read: stored in quarantine and skipped.
    #[serde(skip_serializing_if = "is_zero")]
    pub quarantined: u64,
    /// Where an offer run's time went (the engine benchmark reads it from `sync --json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Stages>,
}

/// Where an offer run's time went, in ms per stage. The fetcher reads pages while the writer
/// decodes and stores the previous ones: `fetch_ms` overlaps the rest, and `wait_ms` is what
/// the writer spent waiting for a page not read yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stages {
    /// Requests, bodies and the envelope's split into items (fetcher).
    pub fetch_ms: u64,
    /// The writer waiting for the fetcher.
    pub wait_ms: u64,
    /// Items into rows (typed fields).
    pub decode_ms: u64,
    /// Content hashes of the items.
    pub hash_ms: u64,
    /// Reading the stored hashes of a page's offers.
    pub lookup_ms: u64,
    /// Waiting for pages to be written (changed rows, seen ids, checkpoint, in their
    /// transactions). A write under way beside the writer's other work (PostgreSQL: two
    /// batches at once) counts only while the writer waits for it.
    pub write_ms: u64,
}

/// Where an offer scan's time goes while it runs, at full resolution; [`Stages`] once it ends.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StageTimes {
    pub(crate) fetch: Duration,
    pub(crate) wait: Duration,
    pub(crate) decode: Duration,
    pub(crate) hash: Duration,
    pub(crate) lookup: Duration,
    pub(crate) write: Duration,
}

impl StageTimes {
    /// Adds the time since `since` to a stage.
    pub(crate) fn add(slot: &mut Duration, since: Instant) {
        *slot += since.elapsed();
    }

    pub(crate) fn to_stages(self) -> Stages {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Stages {
            fetch_ms: ms(self.fetch),
            wait_ms: ms(self.wait),
            decode_ms: ms(self.decode),
            hash_ms: ms(self.hash),
            lookup_ms: ms(self.lookup),
            write_ms: ms(self.write),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a kind's module stopped early.
#[derive(Debug)]
pub(crate) enum SyncError {
    Api(EmagError),
    Storage(StorageError),
    /// A result item that does not have the shape eMAG documents.
    Item(String),
    /// The pages of a read did not add up to eMAG's own count, even when read again.
    Incomplete(String),
    /// eMAG's answers break the protocol in a way no single call shows (no request encoding
    /// has its filters honoured).
    Protocol(String),
    Cancelled,
}

impl From<EmagError> for SyncError {
    fn from(e: EmagError) -> Self {
        SyncError::Api(e)
    }
}

impl From<StorageError> for SyncError {
    fn from(e: StorageError) -> Self {
        SyncError::Storage(e)
    }
}

/// What a kind's module hands back on success: counters not yet written and a note.
#[derive(Debug, Default)]
pub(crate) struct KindResult {
    pub extra: RunCounts,
    pub note: Option<String>,
    pub total: Option<u64>,
    /// Items that could not be decoded and were quarantined (the run succeeds with a warning).
    pub quarantined: u64,
    /// The run succeeded but the account needs a person for this cause (e.g. a refused large
    /// removal); `None` clears a mark of the kind's own cause (see [`KindResult::clears`]).
    pub attention: Option<(AttentionCause, String)>,
    /// The mark this successful run clears when it raises none: an offer run that removed
    /// without refusing clears a refused-removal mark.
    pub clears: Option<AttentionCause>,
    /// What eMAG said through credentials other than the account's own (reference data read
    /// through another account); the account's own client reports its messages itself.
    pub emag_messages: Vec<String>,
    /// Where the run's time went (offers).
    pub stages: Option<Stages>,
}

/// Runs one sync of `kind` for `account` now and records it.
pub async fn run_sync(
    ctx: &SyncContext,
    account: &Account,
    kind: SyncKind,
    trigger: RunTrigger,
    full: bool,
) -> RunReport {
    run_sync_for_slot(ctx, account, kind, trigger, full, None).await
}

/// Runs one sync for a scheduled `slot` (ms): of several instances that find the same slot
/// due, one runs it.
pub async fn run_sync_for_slot(
    ctx: &SyncContext,
    account: &Account,
    kind: SyncKind,
    trigger: RunTrigger,
    full: bool,
    slot: Option<i64>,
) -> RunReport {
    let started = Instant::now();
    let mut report = RunReport {
        run_id: None,
        account: account.name().to_owned(),
        kind,
        status: RunStatus::Failed,
        resumed_from_page: None,
        counts: RunCounts::default(),
        total_items: None,
        duration_ms: 0,
        error_class: None,
        error: None,
        emag_messages: Vec::new(),
        note: None,
        blocked_by: None,
        quarantined: 0,
        stages: None,
    };
    let Some((run, _here)) = claim_run(ctx, account, kind, trigger, full, slot, &mut report).await
    else {
        return report;
    };
    report.run_id = Some(run.id);
    // Readiness for harnesses that act at a run's claim (the kill harness SIGKILLs here).
    tracing::debug!(
        account.name = account.name(), sync.kind = %kind, run.id = run.id,
        run.attempt = run.attempt, checkpoint.page = run.checkpoint_page, "run claimed"
    );

    // The heartbeat runs beside the work, so a page that takes long (slow answers, retries
    // with backoff) does not make the run look abandoned to other instances.
    // Each run stops on its own token, a child of the process's: an operator's cancel of
    // this run (seen by the heartbeat task) stops it alone, a shutdown stops them all.
    let run_ctx = SyncContext {
        cancel: ctx.cancel.child_token(),
        ..ctx.clone()
    };
    let operator_cancel = Arc::new(std::sync::OnceLock::new());
    // Stopped however this function ends: a panic in a kind's code (or the task being dropped)
    // must not leave a heartbeat keeping the lease alive — the account would be blocked until
    // the process restarts instead of being taken over after the lease TTL.
    let heartbeat = AbortOnDrop(tokio::spawn(keep_alive(
        ctx.store.clone(),
        run.clone(),
        ctx.settings.heartbeat_every(),
        run_ctx.cancel.clone(),
        Arc::clone(&operator_cancel),
    )));
    let before = account.client.stats();
    let result = {
        let ctx = &run_ctx;
        // Reference data settles the encoding itself: when the account's own credentials
        // fail, it may still be read through another account.
        let settled = match kind {
            SyncKind::Reference => Ok(()),
            _ => encoding::ensure_encoding(ctx, account).await,
        };
        match settled {
            Err(e) => Err(e),
            Ok(()) => match kind {
                SyncKind::Offers => offers::sync_offers(ctx, account, &run).await,
                SyncKind::Orders => orders::sync_orders(ctx, account, &run, full).await,
                SyncKind::Reference => reference_with_failover(ctx, account, &run).await,
                SyncKind::Returns => returns::sync_returns(ctx, account, &run, full).await,
            },
        }
    };
    drop(heartbeat);
    let api = account.client.stats().since(&before);
    // The messages of the reads eMAG answered `isError` and that were retried: kept on the
    // run however it ends (issue 9, point 5), not only logged.
    let retried_messages = account.client.retried_messages_since(&before);
    let with_api = |mut extra: RunCounts| {
        extra.requests += api.requests;
        extra.rate_limit_waits += api.rate_limited;
        extra.retries += api.retries;
        extra
    };

    let mut raised = None;
    let ending = match result {
        Ok(done) => {
            report.status = RunStatus::Succeeded;
            report.note = done.note.clone();
            report.total_items = done.total;
            report.quarantined = done.quarantined;
            report.stages = done.stages;
            if done.quarantined > 0 {
                tracing::warn!(
                    account.name = account.name(), sync.kind = %kind, run.id = run.id,
                    items.quarantined = done.quarantined,
                    "the run succeeded but skipped items it could not read (quarantined)"
                );
            }
            raised = Some((done.attention.clone(), done.clears));
            let messages = domain::run_messages(retried_messages.iter().chain(&done.emag_messages));
            report.emag_messages = messages.clone();
            Ending::Finish {
                outcome: RunOutcome::Succeeded {
                    emag_messages: messages,
                },
                extra: with_api(done.extra),
                note: done.note,
            }
        }
        Err(SyncError::Cancelled) if operator_cancel.get().is_some() => {
            let by = operator_cancel.get().cloned().unwrap_or_default();
            let note = format!("cancelled by {by} at page {}", report_page(ctx, &run).await);
            tracing::info!(account.name = account.name(), sync.kind = %kind, run.id = run.id, "run cancelled by an operator");
            report.status = RunStatus::Cancelled;
            report.note = Some(note.clone());
            Ending::Cancel {
                extra: with_api(RunCounts::default()),
                note,
            }
        }
        Err(SyncError::Cancelled) => {
            report.status = RunStatus::Interrupted;
            report.note =
                Some("stopped on request; the next sync resumes from the checkpoint".into());
            Ending::Interrupt {
                extra: with_api(RunCounts::default()),
            }
        }
        Err(err) => {
            let (class, mut message, messages) = describe(account, &err);
            // The error's own messages first, then those of the answers retried before it.
            let messages = domain::run_messages(messages.iter().chain(&retried_messages));
            if let SyncError::Api(e) = &err {
                if encoding::forget_after(ctx, account, e).await {
                    message.push_str(
                        "; the request encoding will be probed again before the next run",
                    );
                }
            }
            tracing::error!(
                account.name = account.name(), sync.kind = %kind, run.id = run.id,
                error.class = %class, error = %message, "sync run failed"
            );
            report.error_class = Some(class);
            report.error = Some(message.clone());
            report.emag_messages = messages.clone();
            if matches!(err, SyncError::Storage(StorageError::LeaseLost(_))) {
                Ending::Lost
            } else {
                Ending::Finish {
                    outcome: RunOutcome::Failed {
                        class,
                        message,
                        emag_messages: messages,
                    },
                    extra: with_api(RunCounts::default()),
                    note: None,
                }
            }
        }
    };
    let write = |e: &Ending| {
        let store = ctx.store.clone();
        let run = run.clone();
        let e = e.clone();
        async move { e.write(&store, &run).await }
    };
    let mut recorded = record_ending(ctx, &run, &ending, write).await;
    if let Err(e @ StorageError::DatabaseRestarted(_)) = &recorded {
        // The database restarted since the claim: a crash may have taken back writes this
        // run made, so it ends failed (retried), not succeeded on top of them.
        let message = format!("account {}: {e}", account.name());
        tracing::error!(
            account.name = account.name(), sync.kind = %kind, run.id = run.id,
            error.class = %ErrorClass::Storage, error = %message, "sync run failed"
        );
        report.status = RunStatus::Failed;
        report.error_class = Some(ErrorClass::Storage);
        report.error = Some(message.clone());
        raised = None;
        let failed = Ending::Finish {
            outcome: RunOutcome::Failed {
                class: ErrorClass::Storage,
                message,
                emag_messages: report.emag_messages.clone(),
            },
            extra: ending.extra(),
            note: None,
        };
        recorded = record_ending(ctx, &run, &failed, write).await;
    }
    record_attention(ctx, account, kind, &report).await;
    if let Some((attention, clears)) = raised {
        record_kind_attention(ctx, account, attention, clears).await;
    }
    if let Err(e) = recorded {
        report.status = RunStatus::Failed;
        report.error_class = Some(ErrorClass::Storage);
        report.error = Some(format!("cannot record the run's outcome: {e}"));
    }
    if let Ok(Some(row)) = ctx.store.get_run(run.id).await {
        report.counts = row.counts;
    }
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // Logged once the outcome is stored: whoever reads the store after this line sees it.
    tracing::debug!(
        account.name = account.name(), sync.kind = %kind, run.id = run.id,
        status = ?report.status, duration_ms = report.duration_ms, "run ended"
    );
    report
}

/// What the end of a run writes to its row.
#[derive(Debug, Clone)]
enum Ending {
    /// Succeeded or failed: its outcome, the counters not written page by page, a note.
    Finish {
        outcome: RunOutcome,
        extra: RunCounts,
        note: Option<String>,
    },
    /// An operator's cancel.
    Cancel { extra: RunCounts, note: String },
    /// A stop on request: resumable from its checkpoint.
    Interrupt { extra: RunCounts },
    /// Taken over by another process: nothing of ours is accepted any more.
    Lost,
}

impl Ending {
    /// The state the row is left in.
    fn state(&self) -> Option<domain::RunState> {
        match self {
            Ending::Finish {
                outcome: RunOutcome::Succeeded { .. },
                ..
            } => Some(domain::RunState::Succeeded),
            Ending::Finish { .. } => Some(domain::RunState::Failed),
            Ending::Cancel { .. } => Some(domain::RunState::Cancelled),
            Ending::Interrupt { .. } => Some(domain::RunState::Interrupted),
            Ending::Lost => None,
        }
    }

    /// The counters the end adds.
    fn extra(&self) -> RunCounts {
        match self {
            Ending::Finish { extra, .. }
            | Ending::Cancel { extra, .. }
            | Ending::Interrupt { extra } => *extra,
            Ending::Lost => RunCounts::default(),
        }
    }

    async fn write(&self, store: &Store, run: &ActiveRun) -> Result<(), StorageError> {
        match self {
            Ending::Finish {
                outcome,
                extra,
                note,
            } => store.finish_run(run, outcome, extra, note.as_deref()).await,
            Ending::Cancel { extra, note } => store.cancel_run(run, extra, note).await,
            Ending::Interrupt { extra } => {
                store.interrupt_run(run, extra, "stopped on request").await
            }
            Ending::Lost => Ok(()),
        }
    }
}

/// The first wait before writing a run's end again, and the longest.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(2);
/// How long a run's end is written again at most (or the lease TTL, if shorter): a `sync`
/// in a terminal should not hang for minutes, and a longer outage ends in the lease's
/// takeover anyway.
const RECORD_RETRY_LIMIT: Duration = Duration::from_secs(30);
/// How long a run's end is written again once a stop was asked for: a stopping process
/// should go, and the next start takes over a run whose holder is gone at once.
const RECORD_RETRY_STOPPING: Duration = Duration::from_secs(5);

/// Writes a run's end with `write`, again and again while the store is away (a database
/// restarting, its connections cut). Until the end is written the row says `running` under
/// this process's lease, which no process takes over before `EMAG_LEASE_TTL` of silence: one
/// failed write held the account that long, and the scheduler retried nothing meanwhile
/// (found by the chaos harness: a PostgreSQL restart at a run's end blocked the account for
/// the whole TTL). Gives up after [`RECORD_RETRY_LIMIT`] or the lease TTL if shorter (another
/// process may take the run over from then on, and our write would be refused anyway), at
/// once when the run was taken over, and [`RECORD_RETRY_STOPPING`] after a stop was asked
/// for.
async fn record_ending<'e, F, Fut>(
    ctx: &SyncContext,
    run: &ActiveRun,
    ending: &'e Ending,
    write: F,
) -> Result<(), StorageError>
where
    F: Fn(&'e Ending) -> Fut,
    Fut: std::future::Future<Output = Result<(), StorageError>>,
{
    let started = tokio::time::Instant::now();
    let mut wait = RECORD_RETRY_FIRST;
    let mut failures: u32 = 0;
    loop {
        let error = match write(ending).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(
                        account.name = %run.account, sync.kind = %run.kind, run.id = run.id,
                        attempts = failures + 1, "the run's end is recorded"
                    );
                }
                return Ok(());
            }
            Err(StorageError::LeaseLost(id)) if failures > 0 => {
                // An earlier attempt may have been written with its answer lost (the
                // connection cut after the commit): then the row is ours and ended as this
                // end says. A takeover would have raised the attempt; a claim a crash took
                // back left it queued.
                return match ctx.store.get_run(run.id).await {
                    Ok(Some(row))
                        if row.attempt == run.attempt
                            && row.holder.is_none()
                            && Some(row.state) == ending.state() =>
                    {
                        Ok(())
                    }
                    _ => Err(StorageError::LeaseLost(id)),
                };
            }
            Err(e @ (StorageError::LeaseLost(_) | StorageError::DatabaseRestarted(_))) => {
                return Err(e)
            }
            Err(e) => e,
        };
        failures += 1;
        let limit = ctx.settings.stale_after.min(if ctx.cancel.is_cancelled() {
            RECORD_RETRY_STOPPING
        } else {
            RECORD_RETRY_LIMIT
        });
        if started.elapsed() + wait > limit {
            tracing::error!(
                account.name = %run.account, sync.kind = %run.kind, run.id = run.id,
                attempts = failures, error = %error,
                "cannot record the run's end; it stays running until its lease expires and another run takes it over"
            );
            return Err(error);
        }
        if failures == 1 {
            tracing::warn!(
                account.name = %run.account, sync.kind = %run.kind, run.id = run.id,
                error = %error, "cannot record the run's end; trying again while the database is away"
            );
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECORD_RETRY_MAX);
    }
}

/// Aborts its task when dropped: by the normal end of a run, and by unwinding too.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Proves every `every` that a running run is alive; other instances take a run over only
/// after `SyncSettings::stale_after` (`EMAG_LEASE_TTL`, several beats) of silence. `every`
/// comes from `SyncSettings::heartbeat_every`, so the two stay consistent.
///
/// It also looks for an operator's cancel request of the run (dashboard) at least every
/// [`CANCEL_POLL`]: on one it records who asked in `cancelled_by` and fires `cancel`, the
/// run's own token, which the kinds' page loops honour at their next page boundary.
async fn keep_alive(
    store: Store,
    run: ActiveRun,
    every: Duration,
    cancel: CancellationToken,
    cancelled_by: Arc<std::sync::OnceLock<String>>,
) {
    let poll = every.min(CANCEL_POLL);
    let beats_per_poll = u32::try_from(every.as_millis() / poll.as_millis().max(1))
        .unwrap_or(1)
        .max(1);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut ticks: u32 = 0;
    loop {
        tick.tick().await;
        match store.run_cancel_requested(run.id).await {
            Ok(Some((_, by))) if cancelled_by.get().is_none() => {
                // Set before firing: the run reads who asked once it sees the token.
                let _already = cancelled_by.set(if by.is_empty() { "operator".into() } else { by });
                cancel.cancel();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(run.id = run.id, error = %e, "cannot read the run's cancel request; retrying");
            }
        }
        ticks = ticks.wrapping_add(1);
        if !ticks.is_multiple_of(beats_per_poll) {
            continue;
        }
        match store.heartbeat_run(&run).await {
            Ok(()) => {}
            Err(StorageError::LeaseLost(id)) => {
                // The run's own next write fails with LeaseLost too and ends it; nothing it
                // writes from here on is accepted.
                tracing::warn!(run.id = id, account.name = %run.account, "run taken over by another process");
                return;
            }
            Err(e) => tracing::warn!(run.id = run.id, error = %e, "heartbeat failed; retrying"),
        }
    }
}

/// How soon a running run notices an operator's cancel at most (plus its current page).
const CANCEL_POLL: Duration = Duration::from_secs(1);

/// The last page a run wrote, for the note of its end.
async fn report_page(ctx: &SyncContext, run: &ActiveRun) -> i64 {
    match ctx.store.get_run(run.id).await {
        Ok(Some(row)) => row.checkpoint_page,
        _ => run.checkpoint_page,
    }
}

/// Reference data through the account's own credentials, or — when they fail and failover
/// is on — through another account of the same marketplace. The run stays the account's and
/// its note says whose credentials served it.
async fn reference_with_failover(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
) -> Result<KindResult, SyncError> {
    let first = match encoding::ensure_encoding(ctx, account).await {
        Ok(()) => reference::sync_reference(ctx, account, run).await,
        Err(e) => Err(e),
    };
    let Err(SyncError::Api(own_error)) = &first else {
        return first;
    };
    let peers = ctx.reference_failover.iter().filter(|p| {
        p.name() != account.name() && p.config.marketplace == account.config.marketplace
    });
    for peer in peers {
        tracing::warn!(
            account.name = account.name(), failover.account = peer.name(), error = %own_error,
            "reading reference data through another account of the marketplace"
        );
        let before = peer.client.stats();
        let result = match encoding::ensure_encoding(ctx, peer).await {
            Ok(()) => reference::sync_reference(ctx, peer, run).await,
            Err(e) => Err(e),
        };
        let api = peer.client.stats().since(&before);
        if let Ok(mut done) = result {
            done.extra.requests += api.requests;
            done.extra.rate_limit_waits += api.rate_limited;
            done.extra.retries += api.retries;
            done.emag_messages = own_error
                .emag_messages()
                .into_iter()
                .chain(peer.client.retried_messages_since(&before))
                .chain(done.emag_messages)
                .collect();
            done.note = Some(format!(
                "read through account {} (EMAG_AUTO_FAILOVER) because {} failed: {own_error}",
                peer.name(),
                account.name()
            ));
            return Ok(done);
        }
    }
    first
}

/// Credentials or IP refused: the account needs a person (shown by `status`, kept in the
/// store for every process). A run that read the account's data with its own credentials
/// clears the mark.
async fn record_attention(
    ctx: &SyncContext,
    account: &Account,
    kind: SyncKind,
    report: &RunReport,
) {
    let reason = match (&report.status, report.error_class) {
        (RunStatus::Failed, Some(ErrorClass::Auth | ErrorClass::IpNotWhitelisted)) => {
            Some(report.error.as_deref().unwrap_or("credentials refused"))
        }
        // Reference data read through another account says nothing of this one's access.
        (RunStatus::Succeeded, _) if !(kind == SyncKind::Reference && report.note.is_some()) => {
            None
        }
        _ => return,
    };
    if let Err(e) = ctx.store.set_attention(account.name(), reason).await {
        tracing::warn!(account.name = account.name(), error = %e, "cannot record the account's attention mark");
    }
}

/// A mark a successful run raises or clears for a cause of its own (e.g. a refused large
/// removal), beside the access mark of [`record_attention`].
async fn record_kind_attention(
    ctx: &SyncContext,
    account: &Account,
    attention: Option<(AttentionCause, String)>,
    clears: Option<AttentionCause>,
) {
    let done = match (attention, clears) {
        (Some((cause, reason)), _) => {
            ctx.store
                .raise_attention(account.name(), cause, &reason)
                .await
        }
        (None, Some(cause)) => ctx.store.clear_attention(account.name(), cause).await,
        (None, None) => return,
    };
    if let Err(e) = done {
        tracing::warn!(account.name = account.name(), error = %e, "cannot record the account's attention mark");
    }
}

/// Claims the (account, kind) run for this process, resuming an abandoned one — unless a
/// full sync was asked for, which closes the unfinished scan and starts afresh. `None` (with
/// the reason in `report`) when another process holds it or the store failed. The run stays
/// this process's (see [`RunsHere`]) while the returned guard lives.
async fn claim_run(
    ctx: &SyncContext,
    account: &Account,
    kind: SyncKind,
    trigger: RunTrigger,
    full: bool,
    slot: Option<i64>,
    report: &mut RunReport,
) -> Option<(ActiveRun, RunHere)> {
    let Some(here) = ctx.runs_here.reserve(account.name(), kind) else {
        report.status = RunStatus::Busy;
        report.note = Some(format!(
            "a {kind} run of account {} is in progress in this process",
            account.name()
        ));
        return None;
    };
    let request = RunRequest {
        account: account.name(),
        kind,
        trigger,
        full_scan: full,
        slot,
        holder: &ctx.holder,
        stale_after_ms: i64::try_from(ctx.settings.stale_after.as_millis()).unwrap_or(i64::MAX),
    };
    let storage_failure = |report: &mut RunReport, what: &str, e: StorageError| {
        report.error_class = Some(ErrorClass::Storage);
        report.error = Some(format!("{what}: {e}"));
    };
    loop {
        // This process claims no other run of (account, kind) now (`here`): a running one under
        // its own holder was left behind, and is taken over at once.
        let begun = ctx
            .store
            .begin_run(&request, &|h: &str| {
                h != ctx.holder && crate::holder_is_alive(h)
            })
            .await;
        match begun {
            Ok(BeginRun::Started(run)) => return Some((run, here)),
            Ok(BeginRun::Resumed { run, .. }) if full && run.checkpoint_page > 0 => {
                if let Err(e) = ctx
                    .store
                    .supersede_run(&run, "superseded by a full sync")
                    .await
                {
                    storage_failure(report, "cannot close the unfinished run", e);
                    return None;
                }
            }
            Ok(BeginRun::Resumed {
                run,
                previous_holder,
            }) => {
                tracing::info!(
                    account.name = account.name(), sync.kind = %kind, run.id = run.id,
                    run.attempt = run.attempt, checkpoint.page = run.checkpoint_page,
                    previous.holder = previous_holder.as_deref().unwrap_or("-"),
                    "resuming an unfinished run from its checkpoint"
                );
                report.resumed_from_page = Some(run.checkpoint_page);
                return Some((run, here));
            }
            Ok(BeginRun::SlotTaken { run_id }) => {
                report.run_id = Some(run_id);
                report.status = RunStatus::Busy;
                report.note = Some(format!("this scheduled slot already has run {run_id}"));
                return None;
            }
            Ok(BeginRun::Busy { run_id, holder }) => {
                report.run_id = Some(run_id);
                report.blocked_by = Some(run_id);
                report.status = RunStatus::Busy;
                report.note = Some(format!(
                    "run {run_id} is in progress in another process ({})",
                    holder.as_deref().unwrap_or("unknown")
                ));
                return None;
            }
            Err(e) => {
                storage_failure(report, "cannot start the run", e);
                return None;
            }
        }
    }
}

/// The classified error of a failed run, with a message that names the account and says
/// what to do.
fn describe(account: &Account, err: &SyncError) -> (ErrorClass, String, Vec<String>) {
    let name = account.name();
    match err {
        SyncError::Api(e) => {
            let hint = match e {
                EmagError::Unauthorized { .. } => format!(
                    " — check {} and {} of account {name}, and that the API user has API rights",
                    account.config.username_var, account.config.password_var
                ),
                EmagError::IpNotWhitelisted { .. } => format!(
                    " — add this machine's public IP to the whitelist of account {name} in the eMAG seller UI"
                ),
                EmagError::BadUrl { .. } => format!(" — base URL {}", account.config.base_url),
                EmagError::Transport(_) | EmagError::Timeout { .. } => {
                    format!(" — base URL {}", account.config.base_url)
                }
                _ => String::new(),
            };
            (
                e.class(),
                format!("account {name}: {e}{hint}"),
                e.emag_messages(),
            )
        }
        SyncError::Storage(e) => (
            ErrorClass::Storage,
            format!("account {name}: {e}"),
            Vec::new(),
        ),
        SyncError::Item(why) => (
            ErrorClass::Malformed,
            format!("account {name}: eMAG sent an item we cannot read: {why}"),
            Vec::new(),
        ),
        SyncError::Incomplete(what) => (
            ErrorClass::Malformed,
            format!("account {name}: eMAG's pages did not add up: {what}"),
            Vec::new(),
        ),
        SyncError::Protocol(why) => (
            ErrorClass::Protocol,
            format!("account {name}: {why}"),
            Vec::new(),
        ),
        SyncError::Cancelled => (ErrorClass::Transport, "cancelled".into(), Vec::new()),
    }
}

/// Keeps the rows of one page whose content differs from the store's (`stored`: key →
/// content hash; a hash no content has, such as a negative one, forces a write) and counts
/// the page: created, updated, unchanged. A key that appears twice in a page (the remote
/// list moved while we read) is kept once, in its later — fresher — copy.
pub(crate) fn changed_rows<R>(
    rows: Vec<R>,
    stored: &std::collections::HashMap<i64, i64>,
    key: impl Fn(&R) -> i64,
    hash: impl Fn(&R) -> i64,
) -> (Vec<R>, RunCounts) {
    let mut changed = Vec::new();
    let counts = sort_changed(rows, stored, key, hash, |row, _| changed.push(row));
    (changed, counts)
}

/// [`changed_rows`], with the rows the store does not hold (`created`) apart from those it
/// holds in another version (`updated`): (created, updated, counts).
pub(crate) fn split_changed_rows<R>(
    rows: Vec<R>,
    stored: &std::collections::HashMap<i64, i64>,
    key: impl Fn(&R) -> i64,
    hash: impl Fn(&R) -> i64,
) -> (Vec<R>, Vec<R>, RunCounts) {
    let (mut created, mut updated) = (Vec::new(), Vec::new());
    let counts = sort_changed(rows, stored, key, hash, |row, new| {
        if new {
            created.push(row);
        } else {
            updated.push(row);
        }
    });
    (created, updated, counts)
}

/// Hands each changed row of a page to `keep` with whether it is new, and counts the page.
fn sort_changed<R>(
    rows: Vec<R>,
    stored: &std::collections::HashMap<i64, i64>,
    key: impl Fn(&R) -> i64,
    hash: impl Fn(&R) -> i64,
    mut keep: impl FnMut(R, bool),
) -> RunCounts {
    let mut counts = RunCounts {
        pages: 1,
        items_read: rows.len() as u64,
        ..RunCounts::default()
    };
    let mut last = std::collections::HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        last.insert(key(row), i);
    }
    for (i, row) in rows.into_iter().enumerate() {
        if last.get(&key(&row)) != Some(&i) {
            continue;
        }
        match stored.get(&key(&row)) {
            Some(h) if *h == hash(&row) => counts.unchanged += 1,
            Some(_) => {
                counts.updated += 1;
                keep(row, false);
            }
            None => {
                counts.created += 1;
                keep(row, true);
            }
        }
    }
    counts
}

/// A stable 63-bit content hash of an item's JSON text.
pub(crate) fn content_hash(text: &str) -> i64 {
    let digest = blake3::hash(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_le_bytes(first) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context whose store is never used: `record_ending` is given its writes.
    async fn context(stale_after: Duration) -> (SyncContext, ActiveRun, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = Store::open(&url).await.expect("store");
        let settings = SyncSettings {
            stale_after,
            ..crate::config::Config::from_vars(&std::collections::HashMap::new())
                .expect("defaults")
                .sync
        };
        let run = ActiveRun {
            id: 1,
            account: "main".into(),
            kind: SyncKind::Offers,
            holder: "h:1:a".into(),
            attempt: 1,
            checkpoint_page: 0,
            full_scan: false,
            db_epoch: None,
        };
        (SyncContext::new(store, settings), run, dir)
    }

    fn away() -> StorageError {
        StorageError::Sqlx(sqlx::Error::PoolTimedOut)
    }

    /// A write that fails `failures` times, then succeeds; counts its calls.
    fn flaky(
        failures: u32,
        calls: &std::sync::atomic::AtomicU32,
    ) -> impl Fn(&Ending) -> std::future::Ready<Result<(), StorageError>> + '_ {
        move |_| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(if n < failures { Err(away()) } else { Ok(()) })
        }
    }

    #[tokio::test]
    async fn a_runs_end_is_written_again_while_the_database_is_away() {
        // Before the chaos harness one failed write left the run `running` under a live
        // lease: its account blocked for the whole lease TTL.
        let (ctx, run, _dir) = context(Duration::from_secs(120)).await;
        tokio::time::pause();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let ended = record_ending(&ctx, &run, &Ending::Lost, flaky(4, &calls)).await;
        assert!(ended.is_ok(), "{ended:?}");
        assert_eq!(calls.into_inner(), 5);
    }

    #[tokio::test]
    async fn a_runs_end_is_given_up_after_the_lease_ttl_and_soon_after_a_stop() {
        // The stores are opened before the clock is paused (a pool's timeouts run on it).
        let (ctx, run, _dir) = context(Duration::from_secs(20)).await;
        let (long_ttl, _, _long_dir) = context(Duration::from_secs(120)).await;
        tokio::time::pause();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let ended = record_ending(&ctx, &run, &Ending::Lost, flaky(u32::MAX, &calls)).await;
        assert!(ended.is_err());
        let took = started.elapsed();
        assert!(
            took <= Duration::from_secs(20) && took >= Duration::from_secs(15),
            "{took:?}"
        );

        // A long lease: no longer than the limit (a `sync` in a terminal does not hang).
        let started = tokio::time::Instant::now();
        let ended = record_ending(&long_ttl, &run, &Ending::Lost, flaky(u32::MAX, &calls)).await;
        assert!(ended.is_err());
        let took = started.elapsed();
        assert!(
            took <= RECORD_RETRY_LIMIT && took >= RECORD_RETRY_LIMIT / 2,
            "{took:?}"
        );

        long_ttl.cancel.cancel();
        let started = tokio::time::Instant::now();
        let ended = record_ending(&long_ttl, &run, &Ending::Lost, flaky(u32::MAX, &calls)).await;
        assert!(ended.is_err());
        assert!(
            started.elapsed() <= RECORD_RETRY_STOPPING,
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_run_taken_over_is_not_written_again() {
        let (ctx, run, _dir) = context(Duration::from_secs(120)).await;
        let calls = std::sync::atomic::AtomicU32::new(0);
        let ended = record_ending(&ctx, &run, &Ending::Lost, |_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(Err(StorageError::LeaseLost(1)))
        })
        .await;
        assert!(
            matches!(ended, Err(StorageError::LeaseLost(1))),
            "{ended:?}"
        );
        assert_eq!(calls.into_inner(), 1);
    }

    #[tokio::test]
    async fn an_end_written_by_an_attempt_whose_answer_was_lost_counts_as_written() {
        // The first write committed but its answer never came (the connection was cut after
        // the commit); the second finds the row no longer held by this process.
        let (ctx, _, _dir) = context(Duration::from_secs(120)).await;
        ctx.store
            .upsert_account("main", "main", "emag_ro", "http://127.0.0.1:1/api-3")
            .await
            .expect("account");
        let request = RunRequest {
            account: "main",
            kind: SyncKind::Offers,
            trigger: RunTrigger::Manual,
            full_scan: false,
            slot: None,
            holder: "h:1:a",
            stale_after_ms: 120_000,
        };
        let Ok(BeginRun::Started(run)) = ctx.store.begin_run(&request, &|_| true).await else {
            panic!("a run starts");
        };
        let ending = Ending::Finish {
            outcome: RunOutcome::Succeeded {
                emag_messages: Vec::new(),
            },
            extra: RunCounts::default(),
            note: None,
        };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let ended = record_ending(&ctx, &run, &ending, |e| {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let (store, run) = (ctx.store.clone(), run.clone());
            async move {
                let written = e.write(&store, &run).await;
                if first {
                    written?;
                    return Err(away());
                }
                written
            }
        })
        .await;
        assert!(ended.is_ok(), "{ended:?}");
        assert_eq!(calls.into_inner(), 2);
        let row = ctx.store.get_run(run.id).await.expect("read").expect("row");
        assert_eq!(row.state, domain::RunState::Succeeded);
    }

    #[tokio::test]
    async fn a_panicking_run_stops_its_heartbeat() {
        // The "heartbeat" holds a sender: when its task is aborted, its future is dropped and
        // the receiver learns it — a readiness signal, no sleep.
        let (alive, stopped) = tokio::sync::oneshot::channel::<()>();
        let beating = tokio::spawn(async move {
            let _alive = alive;
            std::future::pending::<()>().await;
        });
        let run = tokio::spawn(async move {
            let _heartbeat = AbortOnDrop(beating);
            panic!("a kind's code panics mid-run");
        });
        assert!(run.await.is_err_and(|e| e.is_panic()));
        let ended = tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .expect("the heartbeat task is aborted when the run unwinds");
        assert!(
            ended.is_err(),
            "it ended by being dropped, not by beating on"
        );
    }
}
