//! The dashboard page and its live feed: `/api/events` (Server-Sent Events) followed through a
//! queued run from queue to finish; the page and its assets over HTTP (embedded, hashed
//! names, CSP, nothing external); and the page in real headless Chromium (see `browser`).

use std::time::Duration;

use domain::{RunTrigger, SyncKind};
use emag_sim::SimConfig;
use emag_sync::config::CatchUp;
use emag_sync::scheduler::{Policy, Schedule, Scheduler};
use emag_sync::web::{self, AppState};
use serde_json::Value;
use test_support::DbKind;
use tokio_util::sync::CancellationToken;

use crate::support::TestApp;

/// Every wait is bounded: a hang fails the test.
const STEP: Duration = Duration::from_secs(60);

/// The server on a port of its own; stopped when dropped.
pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    cancel: CancellationToken,
}

impl Server {
    pub async fn start(state: AppState) -> Server {
        let listener = web::bind("127.0.0.1:0".parse().expect("addr"), None)
            .await
            .expect("bind a free port");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let cancel = CancellationToken::new();
        tokio::spawn(web::serve(listener, state, cancel.clone()));
        Server {
            base,
            http: reqwest::Client::new(),
            cancel,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        tokio::time::timeout(STEP, self.http.get(format!("{}{path}", self.base)).send())
            .await
            .unwrap_or_else(|_| panic!("GET {path} hung"))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// An open `/api/events` stream, read event by event.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    pub async fn open(server: &Server) -> EventStream {
        let response = server.get("/api/events").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (name, data), skipping keep-alive comments.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                let json = serde_json::from_str(&data).expect("event data is JSON");
                return (name, json);
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("read the stream")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads until an event named `name` for which `pick` holds; every event read on the
    /// way is returned too. Fails after [`STEP`].
    pub async fn until(
        &mut self,
        name: &str,
        pick: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<(String, Value)>) {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(STEP, async {
            loop {
                let (n, data) = self.next().await;
                if n == name && pick(&data) {
                    return data;
                }
                seen.push((n, data));
            }
        })
        .await;
        match found {
            Ok(data) => (data, seen),
            Err(_) => panic!("no {name} event within {} s; saw {seen:?}", STEP.as_secs()),
        }
    }
}

fn manual_only(account: &str, kind: SyncKind) -> Schedule {
    Schedule {
        account: account.into(),
        kind,
        interval: Duration::from_secs(1800),
        offset: Duration::from_secs(11),
        cron: None,
        manual_only: true,
    }
}

fn policy() -> Policy {
    Policy {
        retry_delay: Duration::from_secs(5),
        max_retries: 3,
        catch_up: CatchUp::Once,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_a_queued_run_from_queue_to_finish() {
    // Arrange: the server, its event stream ready, a scheduler that only claims queued runs.
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let server = Server::start(AppState::new(app.config.clone(), app.store.clone())).await;
    let mut events = EventStream::open(&server).await;
    events.until("ready", |_| true).await;
    let mut scheduler = Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![manual_only("main", SyncKind::Offers)],
        policy(),
    );

    // Act: queue a run (as the page's "sync now" does), then let the scheduler run it.
    let storage::Enqueued::Queued { run_id } = app
        .store
        .enqueue_run("main", SyncKind::Offers, false)
        .await
        .expect("queue")
    else {
        panic!("nothing was active")
    };
    let is_ours = move |v: &Value| v["run_id"] == run_id;
    let (queued, _) = events.until("run_queued", is_ours).await;
    let started = scheduler.tick(storage::now_ms()).await.expect("tick");
    assert_eq!(
        started,
        vec![("main".into(), SyncKind::Offers, RunTrigger::Manual)]
    );
    let reports = scheduler.wait_idle().await;
    let (done, on_the_way) = events.until("run_finished", is_ours).await;

    // Assert: queued, then finished with the outcome and what was read.
    assert_eq!(queued["account"], "main");
    assert_eq!(queued["kind"], "offers");
    assert_eq!(queued["trigger"], "manual");
    assert_eq!(done["outcome"], "succeeded", "{reports:?}");
    assert_eq!(
        done["items_read"],
        app.sim.sim.offers("main").len() as u64,
        "every offer read"
    );
    // A run may start and end between two polls; whatever was seen of it is in order.
    for (name, data) in &on_the_way {
        if data["run_id"] == run_id {
            assert!(
                ["run_started", "run_progress"].contains(&name.as_str()),
                "{name}: {data}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_of_pause_and_resume() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let server = Server::start(AppState::new(app.config.clone(), app.store.clone())).await;
    let mut events = EventStream::open(&server).await;
    events.until("ready", |_| true).await;

    app.store.set_paused("fbe", true).await.expect("pause");
    let (paused, _) = events.until("account_paused", |_| true).await;
    app.store.set_paused("fbe", false).await.expect("resume");
    let (resumed, _) = events.until("account_resumed", |_| true).await;

    assert_eq!(paused["account"], "fbe");
    assert_eq!(resumed["account"], "fbe");
}
