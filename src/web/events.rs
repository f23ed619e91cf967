//! `GET /api/events`: Server-Sent Events of what changes — runs queued, started, progressing
//! and finished, accounts paused and resumed, attention set and cleared.
//!
//! The events are derived from the store, not from this process's scheduler: several
//! dashboards on one PostgreSQL must all see every run, and on SQLite the process serving the
//! page is often not the one syncing. One poller per server process ([`Hub`]) reads the small
//! "what is moving" view ([`Observed`]: active runs, paused accounts, attention) every
//! [`POLL_EVERY`], diffs it against the previous read ([`diff`], pure) and fans the events out
//! through a `broadcast` channel, so a hundred open pages cost one poll. The poller runs only
//! while someone listens. A client too slow to keep up gets a `resync` event (re-read
//! `/api/status`) instead of a silent gap.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use domain::{RunState, RunTrigger, SyncKind};
use futures::Stream;
use serde::Serialize;
use storage::{RunRow, StorageError, Store};
use tokio::sync::{broadcast, watch};
use tokio::time::MissedTickBehavior;

use super::AppState;

/// How often the poller reads the store.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Events a client may fall behind before it is told to resync.
const CHANNEL_CAPACITY: usize = 256;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One change, as sent: the SSE event name is [`Event::name`], the data its JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunQueued {
        run_id: i64,
        account: String,
        kind: SyncKind,
        trigger: RunTrigger,
    },
    RunStarted {
        run_id: i64,
        account: String,
        kind: SyncKind,
        attempt: i64,
    },
    RunProgress {
        run_id: i64,
        account: String,
        kind: SyncKind,
        page: i64,
        items_read: u64,
        total: Option<i64>,
        /// Items read per second since the previous poll.
        items_per_s: f64,
    },
    RunFinished {
        run_id: i64,
        account: String,
        kind: SyncKind,
        /// The run's state when it left the active set: succeeded, failed, cancelled, or
        /// interrupted (resumed later).
        outcome: RunState,
        items_read: u64,
        error: Option<String>,
    },
    AccountPaused {
        account: String,
    },
    AccountResumed {
        account: String,
    },
    AttentionSet {
        account: String,
        reason: String,
    },
    AttentionCleared {
        account: String,
    },
    /// Sent first on every stream, once the poller has read the store since the client
    /// connected: from here on every change arrives as an event, so this is when to read
    /// `/api/status`.
    Ready,
    /// The client missed events: re-read the whole status.
    Resync,
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunQueued { .. } => "run_queued",
            Event::RunStarted { .. } => "run_started",
            Event::RunProgress { .. } => "run_progress",
            Event::RunFinished { .. } => "run_finished",
            Event::AccountPaused { .. } => "account_paused",
            Event::AccountResumed { .. } => "account_resumed",
            Event::AttentionSet { .. } => "attention_set",
            Event::AttentionCleared { .. } => "attention_cleared",
            Event::Ready => "ready",
            Event::Resync => "resync",
        }
    }
}

/// What the poller saw at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Unix ms of the read.
    pub at: i64,
    /// Queued and running runs by id.
    pub active: BTreeMap<i64, RunRow>,
    pub paused: BTreeSet<String>,
    /// Account → reason.
    pub attention: BTreeMap<String, String>,
}

impl Observed {
    pub async fn read(store: &Store) -> Result<Observed, StorageError> {
        let at = storage::now_ms();
        let active = store
            .active_runs()
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let paused = store.paused_accounts().await?.into_iter().collect();
        let attention = store
            .accounts_needing_attention()
            .await?
            .into_iter()
            .map(|(account, reason, _)| (account, reason))
            .collect();
        Ok(Observed {
            at,
            active,
            paused,
            attention,
        })
    }
}

/// The events that lead from `prev` to `next`, and the ids of runs that left the active set
/// (the caller reads their outcome: [`finished`]). Pure.
pub fn diff(prev: &Observed, next: &Observed) -> (Vec<Event>, Vec<i64>) {
    let mut out = Vec::new();
    for (id, run) in &next.active {
        let before = prev.active.get(id);
        let account = run.account.clone();
        let kind = run.kind;
        if before.is_none() && run.state == RunState::Queued {
            out.push(Event::RunQueued {
                run_id: *id,
                account: account.clone(),
                kind,
                trigger: run.trigger,
            });
        }
        let was_running = before.is_some_and(|b| b.state == RunState::Running);
        if run.state == RunState::Running && !was_running {
            out.push(Event::RunStarted {
                run_id: *id,
                account: account.clone(),
                kind,
                attempt: run.attempt,
            });
        }
        if run.state == RunState::Running {
            let (items_before, seen_at) = match before {
                Some(b) if b.state == RunState::Running => (b.counts.items_read, prev.at),
                _ => (0, run.started_at.unwrap_or(next.at)),
            };
            let moved = before.is_none_or(|b| {
                b.checkpoint_page != run.checkpoint_page
                    || b.counts.items_read != run.counts.items_read
                    || b.total_items != run.total_items
                    || b.state != run.state
            });
            if moved {
                let secs = (next.at - seen_at).max(1) as f64 / 1000.0;
                let delta = run.counts.items_read.saturating_sub(items_before) as f64;
                out.push(Event::RunProgress {
                    run_id: *id,
                    account,
                    kind,
                    page: run.checkpoint_page,
                    items_read: run.counts.items_read,
                    total: run.total_items,
                    items_per_s: (delta / secs * 10.0).round() / 10.0,
                });
            }
        }
    }
    let gone = prev
        .active
        .keys()
        .filter(|id| !next.active.contains_key(id))
        .copied()
        .collect();
    for account in next.paused.difference(&prev.paused) {
        out.push(Event::AccountPaused {
            account: account.clone(),
        });
    }
    for account in prev.paused.difference(&next.paused) {
        out.push(Event::AccountResumed {
            account: account.clone(),
        });
    }
    for (account, reason) in &next.attention {
        if prev.attention.get(account) != Some(reason) {
            out.push(Event::AttentionSet {
                account: account.clone(),
                reason: reason.clone(),
            });
        }
    }
    for account in prev.attention.keys() {
        if !next.attention.contains_key(account) {
            out.push(Event::AttentionCleared {
                account: account.clone(),
            });
        }
    }
    (out, gone)
}

/// The event of a run that left the active set, read back as it is now.
pub fn finished(run: &RunRow) -> Event {
    Event::RunFinished {
        run_id: run.id,
        account: run.account.clone(),
        kind: run.kind,
        outcome: run.state,
        items_read: run.counts.items_read,
        error: run.error_message.clone(),
    }
}

/// The poller of one server process and its subscribers.
#[derive(Debug)]
pub struct Hub {
    sender: broadcast::Sender<Event>,
    /// Completed polls, counted: a new subscriber is ready once it moves.
    polls: watch::Sender<u64>,
    polling: AtomicBool,
    /// Polls that saw something change: a shared status snapshot read before the latest
    /// one is stale ([`super::snapshot_cache`]).
    changes: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            sender: broadcast::channel(CHANNEL_CAPACITY).0,
            polls: watch::channel(0).0,
            polling: AtomicBool::new(false),
            changes: AtomicU64::new(0),
        }
    }
}

/// One client's view of the hub.
#[derive(Debug)]
pub struct Subscription {
    events: broadcast::Receiver<Event>,
    polls: watch::Receiver<u64>,
    /// The poll count when it subscribed; `None` once `ready` was sent.
    waiting_past: Option<u64>,
}

impl Hub {
    /// How many polls saw something change so far.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Every event from now on, after a `ready` one; starts the poller if none runs.
    pub fn subscribe(self: &Arc<Self>, store: &Store) -> Subscription {
        let events = self.sender.subscribe();
        let polls = self.polls.subscribe();
        let waiting_past = Some(*polls.borrow());
        if !self.polling.swap(true, Ordering::SeqCst) {
            tokio::spawn(Arc::clone(self).poll(store.clone()));
        }
        Subscription {
            events,
            polls,
            waiting_past,
        }
    }

    /// Reads, diffs and sends until nobody listens. A failed read is logged once per
    /// outage and retried at the next tick; the previous view is kept, so nothing is lost
    /// but time.
    async fn poll(self: Arc<Self>, store: Store) {
        let mut ticks = tokio::time::interval(POLL_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut prev: Option<Observed> = None;
        let mut failing = false;
        loop {
            ticks.tick().await;
            if self.sender.receiver_count() == 0 {
                self.polling.store(false, Ordering::SeqCst);
                // A subscriber that came between the count and the store saw `polling` still
                // true and started nothing: carry on for it.
                if self.sender.receiver_count() == 0 || self.polling.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
            match self.step(&store, prev.as_ref()).await {
                Ok(next) => {
                    if failing {
                        tracing::info!("the events poller reads the store again");
                        failing = false;
                    }
                    prev = Some(next);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "the events poller cannot read the store; retrying");
                        failing = true;
                    }
                }
            }
        }
    }

    /// One poll: read, diff against `prev`, send. The first read sends nothing (there is
    /// nothing to compare with; a new client reads `/api/status` first).
    async fn step(&self, store: &Store, prev: Option<&Observed>) -> Result<Observed, StorageError> {
        let next = tokio::time::timeout(super::STORE_TIMEOUT, Observed::read(store))
            .await
            .unwrap_or(Err(StorageError::Sqlx(sqlx::Error::PoolTimedOut)))?;
        let Some(prev) = prev else {
            self.polls.send_modify(|n| *n += 1);
            return Ok(next);
        };
        let (events, gone) = diff(prev, &next);
        let mut finished_events = Vec::new();
        for id in gone {
            if let Some(run) = store.get_run(id).await? {
                finished_events.push(finished(&run));
            }
        }
        if !events.is_empty() || !finished_events.is_empty() {
            // Before the events go out: a client that reads `/api/status` on one gets a
            // snapshot read after the change.
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
        for event in finished_events.into_iter().chain(events) {
            // No receiver is not an error: the next tick stops the poller.
            if self.sender.send(event).is_err() {
                break;
            }
        }
        self.polls.send_modify(|n| *n += 1);
        Ok(next)
    }
}

/// `GET /api/events`.
pub async fn get(State(state): State<AppState>) -> impl IntoResponse {
    let rx = state.events().subscribe(state.store());
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // Tells nginx not to buffer the stream.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Sse::new(stream(rx)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    )
}

fn stream(sub: Subscription) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold(sub, |mut sub| async move {
        let event = if let Some(past) = sub.waiting_past.take() {
            // The hub outlives every stream, so the sender is never dropped; if it were,
            // `ready` now is still the truth (nothing more will come).
            if sub.polls.wait_for(|n| *n > past).await.is_err() {
                tracing::debug!("the events hub closed before its first poll");
            }
            Event::Ready
        } else {
            match sub.events.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(_)) => Event::Resync,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        };
        let sse = SseEvent::default()
            .event(event.name())
            .json_data(&event)
            .unwrap_or_else(|_| SseEvent::default().event("resync").data("{}"));
        Some((Ok(sse), sub))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::RunCounts;

    fn run(id: i64, state: RunState, page: i64, items: u64) -> RunRow {
        RunRow {
            id,
            account: "main".into(),
            kind: SyncKind::Offers,
            trigger: RunTrigger::Manual,
            state,
            attempt: 1,
            created_at: 0,
            started_at: Some(1_000),
            finished_at: None,
            checkpoint_page: page,
            total_items: Some(1000),
            counts: RunCounts {
                items_read: items,
                ..RunCounts::default()
            },
            error_class: None,
            error_message: None,
            emag_messages: Vec::new(),
            note: None,
            holder: None,
            heartbeat_at: None,
            slot: None,
            reclaimed_from: None,
            reclaimed_at: None,
        }
    }

    fn seen(at: i64, runs: Vec<RunRow>) -> Observed {
        Observed {
            at,
            active: runs.into_iter().map(|r| (r.id, r)).collect(),
            ..Observed::default()
        }
    }

    #[test]
    fn a_run_is_queued_then_started_then_progresses_then_leaves() {
        let empty = seen(0, vec![]);
        let queued = seen(1_000, vec![run(7, RunState::Queued, 0, 0)]);
        let running = seen(2_000, vec![run(7, RunState::Running, 1, 100)]);
        let further = seen(3_000, vec![run(7, RunState::Running, 3, 300)]);

        let (e, _) = diff(&empty, &queued);
        assert_eq!(
            e.iter().map(Event::name).collect::<Vec<_>>(),
            ["run_queued"]
        );
        let (e, _) = diff(&queued, &running);
        assert_eq!(
            e.iter().map(Event::name).collect::<Vec<_>>(),
            ["run_started", "run_progress"]
        );
        let (e, _) = diff(&running, &further);
        match &e[..] {
            [Event::RunProgress {
                page, items_per_s, ..
            }] => {
                assert_eq!(*page, 3);
                assert!((items_per_s - 200.0).abs() < 0.01, "{items_per_s}");
            }
            other => panic!("{other:?}"),
        }
        let (e, gone) = diff(&further, &empty);
        assert!(e.is_empty());
        assert_eq!(gone, [7]);
        let (e, _) = diff(&further, &further);
        assert!(e.is_empty(), "nothing moved, nothing sent");
    }

    #[test]
    fn pause_and_attention_changes_are_events_both_ways() {
        let plain = Observed::default();
        let mut marked = Observed::default();
        marked.paused.insert("fbe".into());
        marked
            .attention
            .insert("main".into(), "whitelist 1.2.3.4".into());
        let (e, _) = diff(&plain, &marked);
        assert_eq!(
            e.iter().map(Event::name).collect::<Vec<_>>(),
            ["account_paused", "attention_set"]
        );
        let (e, _) = diff(&marked, &plain);
        assert_eq!(
            e.iter().map(Event::name).collect::<Vec<_>>(),
            ["account_resumed", "attention_cleared"]
        );
    }
}
