//! A webhook receiver on a port of its own, for the alert tests: it records every post and
//! answers as the test says — 200, 500 (also for the first N posts only) or never — and
//! counts arrivals on a watch channel the test can wait on.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::support::bounded;

/// The path of the receiver's URL: its last part is what a test looks for as a secret.
pub(crate) const HOOK_PATH: &str = "/services/T000/B000/secret-path";

/// How the receiver answers a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Answer {
    /// Never answers (the sender's timeout cuts it).
    Hold = 0,
    /// 500.
    Fail = 1,
    /// 200: delivered.
    Take = 2,
}

#[derive(Clone)]
struct Board {
    answer: Arc<AtomicU8>,
    /// Posts still to be answered 500 before `answer` applies.
    fail_first: Arc<AtomicU32>,
    /// The `text` of every post, answered or not.
    received: Arc<Mutex<Vec<String>>>,
    /// The `text` of the posts answered 200.
    taken: Arc<Mutex<Vec<String>>>,
    /// How many posts arrived / were answered 200 (readiness for the test).
    arrivals: watch::Sender<(usize, usize)>,
}

async fn answer(State(board): State<Board>, Json(body): Json<Value>) -> StatusCode {
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    board.received.lock().expect("received").push(text.clone());
    board.arrivals.send_modify(|(r, _)| *r += 1);
    let failing_first = board
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    match board.answer.load(Ordering::SeqCst) {
        0 => std::future::pending().await,
        1 => StatusCode::INTERNAL_SERVER_ERROR,
        _ => {
            board.taken.lock().expect("taken").push(text);
            board.arrivals.send_modify(|(_, t)| *t += 1);
            StatusCode::OK
        }
    }
}

pub(crate) struct Webhook {
    pub(crate) url: String,
    board: Board,
    cancel: CancellationToken,
}

impl Webhook {
    /// A receiver at [`HOOK_PATH`] answering `answer`.
    pub(crate) async fn start(answer: Answer) -> Webhook {
        Webhook::start_at(HOOK_PATH, answer).await
    }

    /// A receiver at [`HOOK_PATH`] answering 500 to the first `n` posts, then 200.
    pub(crate) async fn failing_first(n: u32) -> Webhook {
        let hook = Webhook::start(Answer::Take).await;
        hook.board.fail_first.store(n, Ordering::SeqCst);
        hook
    }

    /// A receiver of posts to `path` (whose secret part a test may look for).
    pub(crate) async fn start_at(path: &str, answer: Answer) -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Webhook::serve(listener, path, answer)
    }

    /// A receiver of posts to `path` on `listener`.
    pub(crate) fn serve(listener: tokio::net::TcpListener, path: &str, answer: Answer) -> Webhook {
        let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
        let board = Board {
            answer: Arc::new(AtomicU8::new(answer as u8)),
            fail_first: Arc::default(),
            received: Arc::default(),
            taken: Arc::default(),
            arrivals: watch::channel((0, 0)).0,
        };
        let app = Router::new()
            .route(path, post(self::answer))
            .with_state(board.clone());
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Webhook { url, board, cancel }
    }

    pub(crate) fn set(&self, answer: Answer) {
        self.board.answer.store(answer as u8, Ordering::SeqCst);
    }

    /// Arrivals: (posts received, posts answered 200).
    pub(crate) fn arrivals(&self) -> watch::Receiver<(usize, usize)> {
        self.board.arrivals.subscribe()
    }

    /// Waits until at least `n` posts arrived (answered or not).
    pub(crate) async fn received_at_least(&self, n: usize) {
        let mut rx = self.arrivals();
        bounded("posts to the receiver", rx.wait_for(|(r, _)| *r >= n))
            .await
            .expect("receiver alive");
    }

    /// Waits until a post about `needle` was answered 200.
    pub(crate) async fn taken_about(&self, needle: &str) {
        let mut rx = self.arrivals();
        bounded(
            "a delivered notice",
            rx.wait_for(|_| self.taken().iter().any(|t| t.contains(needle))),
        )
        .await
        .expect("receiver alive");
    }

    /// The texts of every post received, answered or not.
    pub(crate) fn received(&self) -> Vec<String> {
        self.board.received.lock().expect("received").clone()
    }

    /// The texts of the posts delivered (answered 200).
    pub(crate) fn taken(&self) -> Vec<String> {
        self.board.taken.lock().expect("taken").clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
