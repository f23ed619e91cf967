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

/// `/api/status` is served gzip-compressed to a client that asks for it (the same JSON), and
/// plain to one that does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_is_gzip_compressed_for_clients_that_take_it() {
    use std::io::Read as _;
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let server = Server::start(AppState::new(app.config.clone(), app.store.clone())).await;
    let url = format!("{}/api/status", server.base);
    let plain = server.http.get(&url).send().await.expect("plain");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: Value = plain.json().await.expect("JSON");
    let gz = server
        .http
        .get(&url)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .expect("gzip");
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "accept-encoding");
    let bytes = gz.bytes().await.expect("body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("gunzip");
    let unzipped: Value = serde_json::from_str(&text).expect("JSON");
    // Two reads a moment apart: the same accounts and shape (times may move).
    assert_eq!(
        unzipped["scheduler"]["accounts"]
            .as_object()
            .map(|a| a.len()),
        plain["scheduler"]["accounts"].as_object().map(|a| a.len())
    );
    assert!(unzipped["logs"].is_object());
}

/// One snapshot serves every status request for `EMAG_DASHBOARD_STATUS_MAX_AGE` (an hour
/// here, so time plays no part): a change written behind the server's back is not seen; a
/// mutation through the server, or a change the events poller saw, makes the next request
/// read the store again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_snapshot_is_shared_until_a_change_is_known() {
    const TOKEN: &str = "a-token-of-the-cache-test-0123456789";
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig::default(),
        &[
            ("EMAG_DASHBOARD_STATUS_MAX_AGE", "3600"),
            ("EMAG_DASHBOARD_TOKEN", TOKEN),
        ],
    )
    .await;
    let server = Server::start(AppState::new(app.config.clone(), app.store.clone())).await;
    let paused = |body: &Value, account: &str| {
        body["scheduler"]["accounts"][account]["paused"]
            .as_bool()
            .unwrap_or_else(|| panic!("no {account} in {body}"))
    };
    let status = || async {
        let r = server.get("/api/status").await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("status JSON")
    };
    let first = status().await;
    assert!(!paused(&first, "main") && !paused(&first, "fbe"));

    // Behind the server's back: the shared snapshot is served as it was.
    app.store
        .set_paused("main", true)
        .await
        .expect("pause main");
    let shared = status().await;
    assert!(!paused(&shared, "main"), "the snapshot was read again");
    assert_eq!(shared["timestamp"], first["timestamp"]);

    // Through the server: the next request reads the store (and sees main's pause too).
    let r = server
        .http
        .post(format!("{}/api/accounts/fbe/pause", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("pause fbe");
    assert!(r.status().is_success(), "pause: {}", r.status());
    let after_mutation = status().await;
    assert!(paused(&after_mutation, "fbe") && paused(&after_mutation, "main"));

    // Seen by the events poller (any process's change): read again once the event is out.
    let mut events = EventStream::open(&server).await;
    events.until("ready", |_| true).await;
    app.store
        .set_paused("main", false)
        .await
        .expect("resume main");
    events
        .until("account_resumed", |e| e["account"] == "main")
        .await;
    let after_event = status().await;
    assert!(!paused(&after_event, "main") && paused(&after_event, "fbe"));
}

/// Two dashboard processes on one PostgreSQL (two states, two pollers, two pools) both see a
/// run queued by a third party: nothing depends on the process that wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_on_one_postgres_sees_the_same_events() {
    let app = TestApp::new(DbKind::Postgres, SimConfig::default()).await;
    let other = storage::Store::open(&app._db.url)
        .await
        .expect("a second pool");
    let a = Server::start(AppState::new(app.config.clone(), app.store.clone())).await;
    let b = Server::start(AppState::new(app.config.clone(), other)).await;
    let mut ea = EventStream::open(&a).await;
    let mut eb = EventStream::open(&b).await;
    ea.until("ready", |_| true).await;
    eb.until("ready", |_| true).await;

    let storage::Enqueued::Queued { run_id } = app
        .store
        .enqueue_run("fbe", SyncKind::Orders, false)
        .await
        .expect("queue")
    else {
        panic!("nothing was active")
    };

    let ours = move |v: &Value| v["run_id"] == run_id;
    let (seen_a, _) = ea.until("run_queued", ours).await;
    let (seen_b, _) = eb.until("run_queued", ours).await;
    assert_eq!(seen_a, seen_b);
    assert_eq!(seen_a["account"], "fbe");
}

/// The page and its assets over HTTP: embedded, hashed, cached for a year, guarded by the CSP,
/// and referring to nothing outside the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_from_the_binary_with_nothing_external() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let server = Server::start(AppState::new(app.config.clone(), app.store.clone())).await;

    let page = server.get("/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/html"));
    let html = page.text().await.expect("html");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains(" style="), "no inline style");
    assert!(!html.contains(" onclick="), "no inline handler");

    for name in web::asset_names() {
        let path = format!("/assets/{name}");
        assert!(html.contains(&path), "the page links {path}");
        let r = server.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["cache-control"]
            .to_str()
            .expect("cache")
            .contains("immutable"));
        let body = r.text().await.expect("asset");
        let body = body.replace("http://www.w3.org/2000/svg", "");
        for external in ["http://", "https://", "url(", "@import", "@font-face"] {
            assert!(!body.contains(external), "{path} refers to {external}");
        }
    }
    assert_eq!(server.get("/assets/app.0000000000.js").await.status(), 404);
}

/// The page in real headless Chromium, driven over the DevTools protocol.
mod browser {
    use domain::SyncKind;
    use emag_sim::SimConfig;
    use emag_sync::scheduler::Scheduler;
    use emag_sync::web::AppState;
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use test_support::DbKind;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::process::{Child, ChildStdin};
    use tokio::sync::oneshot;

    use super::{manual_only, policy, Server, STEP};
    use crate::support::TestApp;

    const TOKEN: &str = "page-test-token-0123456789";

    type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

    /// Chromium over `--remote-debugging-pipe` (fd 3 in, fd 4 out, NUL-separated JSON): no
    /// port, no websocket, nothing to find. Killed when dropped.
    struct Chromium {
        _child: Child,
        input: ChildStdin,
        next_id: u64,
        pending: Pending,
        /// Every event received, in order.
        events: Arc<Mutex<Vec<Value>>>,
        session: Option<String>,
        _profile: tempfile::TempDir,
    }

    impl Chromium {
        async fn launch() -> Chromium {
            let profile = tempfile::tempdir().expect("profile dir");
            let mut cmd = tokio::process::Command::new("sh");
            // The shell hands our stdin/stdout pipes to Chromium as fds 3 and 4.
            cmd.arg("-c")
                .arg(r#"exec chromium "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
                .arg("sh")
                .args([
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--remote-debugging-pipe",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--disable-default-apps",
                    "--hide-scrollbars",
                    "--mute-audio",
                    "--lang=ro-RO",
                    "--force-prefers-reduced-motion",
                    "about:blank",
                ])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            let mut child = cmd
                .spawn()
                .expect("run chromium (apt-get install -y chromium)");
            let input = child.stdin.take().expect("stdin");
            let output = child.stdout.take().expect("stdout");
            let pending: Pending = Arc::default();
            let events: Arc<Mutex<Vec<Value>>> = Arc::default();
            let (p, e) = (Arc::clone(&pending), Arc::clone(&events));
            tokio::spawn(async move {
                let mut reader = BufReader::new(output);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(0, &mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if buf.last() == Some(&0) {
                        buf.pop();
                    }
                    let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
                        continue;
                    };
                    if let Some(id) = msg.get("id").and_then(Value::as_u64) {
                        if let Some(tx) = p.lock().expect("pending").remove(&id) {
                            // The caller may have timed out and gone: nothing to tell.
                            tx.send(msg).ok();
                        }
                    } else {
                        e.lock().expect("events").push(msg);
                    }
                }
            });
            Chromium {
                _child: child,
                input,
                next_id: 0,
                pending,
                events,
                session: None,
                _profile: profile,
            }
        }

        /// One command (to the page's session once attached); its result or its error.
        async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
            self.next_id += 1;
            let id = self.next_id;
            let mut msg = json!({ "id": id, "method": method, "params": params });
            if let Some(s) = &self.session {
                msg["sessionId"] = json!(s);
            }
            let (tx, rx) = oneshot::channel();
            self.pending.lock().expect("pending").insert(id, tx);
            let mut bytes = serde_json::to_vec(&msg).expect("json");
            bytes.push(0);
            self.input
                .write_all(&bytes)
                .await
                .expect("write to chromium");
            self.input.flush().await.expect("flush");
            let reply = tokio::time::timeout(STEP, rx)
                .await
                .unwrap_or_else(|_| panic!("chromium did not answer {method}"))
                .expect("chromium went away");
            match reply.get("error") {
                Some(e) => Err(e.to_string()),
                None => Ok(reply["result"].clone()),
            }
        }

        async fn must(&mut self, method: &str, params: Value) -> Value {
            self.call(method, params)
                .await
                .unwrap_or_else(|e| panic!("{method}: {e}"))
        }

        /// A new page, attached, with the domains whose events the test checks.
        async fn open_page(&mut self) {
            let target = self
                .must("Target.createTarget", json!({ "url": "about:blank" }))
                .await;
            let attached = self
                .must(
                    "Target.attachToTarget",
                    json!({ "targetId": target["targetId"], "flatten": true }),
                )
                .await;
            self.session = Some(attached["sessionId"].as_str().expect("session").to_owned());
            for domain in [
                "Page.enable",
                "Runtime.enable",
                "Network.enable",
                "Log.enable",
            ] {
                self.must(domain, json!({})).await;
            }
        }

        async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
            self.must(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
            )
            .await;
        }

        async fn eval(&mut self, expr: &str) -> Result<Value, String> {
            let r = self
                .call(
                    "Runtime.evaluate",
                    json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
                )
                .await?;
            if let Some(e) = r.get("exceptionDetails") {
                return Err(e.to_string());
            }
            Ok(r["result"]["value"].clone())
        }

        /// Waits, inside the page, until `cond` (a JS expression) holds; fails after [`STEP`].
        async fn wait_for(&mut self, what: &str, cond: &str) {
            let js = format!(
                "new Promise(done => {{ const t0 = Date.now(); (function check() {{ \
                   let ok = false; try {{ ok = !!({cond}); }} catch (_) {{}} \
                   if (ok) done(true); else if (Date.now() - t0 > 10000) done(false); \
                   else setTimeout(check, 50); }})(); }})"
            );
            let deadline = tokio::time::Instant::now() + STEP;
            while tokio::time::Instant::now() < deadline {
                // An error is a page being replaced (navigation): ask again.
                if let Ok(Value::Bool(true)) = self.eval(&js).await {
                    return;
                }
            }
            let html = self
                .eval("document.body ? document.body.innerText : ''")
                .await;
            panic!("the page never showed {what} ({cond}); it shows: {html:?}");
        }

        async fn text(&mut self, expr: &str) -> String {
            match self.eval(expr).await {
                Ok(Value::String(s)) => s,
                other => panic!("{expr}: {other:?}"),
            }
        }

        async fn click(&mut self, selector: &str) {
            let js = format!(
                "(() => {{ const el = document.querySelector({sel}); if (!el) return false; el.click(); return true; }})()",
                sel = json!(selector)
            );
            assert_eq!(
                self.eval(&js).await,
                Ok(Value::Bool(true)),
                "nothing to click at {selector}"
            );
        }

        /// A PNG of the whole page at `width`, written to docs/screenshots/`name`.
        async fn screenshot(&mut self, name: &str, width: u32, height: u32, mobile: bool) {
            self.viewport(width, height, mobile).await;
            // A passing notice is not part of the picture.
            self.eval("document.querySelector('#toast').classList.add('hidden')")
                .await
                .expect("hide the notice");
            let full = self
                .eval("Math.ceil(document.documentElement.scrollHeight)")
                .await
                .ok()
                .and_then(|v| v.as_u64())
                .unwrap_or(u64::from(height));
            let shot = self
                .must(
                    "Page.captureScreenshot",
                    json!({ "format": "png", "captureBeyondViewport": true,
                            "clip": { "x": 0, "y": 0, "width": width, "height": full, "scale": 1 } }),
                )
                .await;
            let png = base64_decode(shot["data"].as_str().expect("png data"));
            assert!(png.starts_with(b"\x89PNG"), "a PNG");
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&dir).expect("screenshots dir");
            std::fs::write(dir.join(name), png).expect("write the screenshot");
            self.viewport(width, height, mobile).await;
        }

        fn events(&self) -> Vec<Value> {
            self.events.lock().expect("events").clone()
        }
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        let value = |c: u8| -> u32 {
            match c {
                b'A'..=b'Z' => u32::from(c - b'A'),
                b'a'..=b'z' => u32::from(c - b'a') + 26,
                b'0'..=b'9' => u32::from(c - b'0') + 52,
                b'+' => 62,
                b'/' => 63,
                other => panic!("not base64: {other}"),
            }
        };
        let clean: Vec<u8> = text.bytes().filter(|c| *c != b'=' && *c != b'\n').collect();
        let mut out = Vec::with_capacity(clean.len() * 3 / 4);
        for chunk in clean.chunks(4) {
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                n |= value(*c) << (18 - 6 * i);
            }
            let bytes = n.to_be_bytes();
            out.extend_from_slice(&bytes[1..chunk.len()]);
        }
        out
    }

    #[test]
    fn base64_decodes_what_chromium_sends() {
        assert_eq!(base64_decode("aGVsbG8="), b"hello");
        assert_eq!(base64_decode("aGk="), b"hi");
        assert_eq!(base64_decode("YWJj"), b"abc");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_page_shows_both_accounts_follows_a_run_live_pauses_and_speaks_two_languages() {
        if std::env::var_os("EMAG_TEST_NO_BROWSER").is_some() {
            eprintln!("EMAG_TEST_NO_BROWSER is set: the browser test is skipped");
            return;
        }
        // Arrange: enough offers that a scan spans many pages under eMAG's rate limits; a
        // server with a token; a scheduler that claims queued runs of main's offers.
        let sim = SimConfig {
            offers_per_account: 4000,
            ..SimConfig::default()
        };
        let app = TestApp::with_vars(DbKind::Sqlite, sim, &[("EMAG_DASHBOARD_TOKEN", TOKEN)]).await;
        let server = Server::start(AppState::new(app.config.clone(), app.store.clone())).await;
        let scheduler = Scheduler::new(
            app.ctx.clone(),
            app.accounts.clone(),
            vec![manual_only("main", SyncKind::Offers)],
            policy(),
        );
        let scheduler = tokio::spawn(scheduler.run());
        let mut chrome = Chromium::launch().await;
        chrome.open_page().await;
        chrome.viewport(1280, 800, false).await;

        // The page loads, in Romanian, with both accounts.
        chrome
            .must(
                "Page.navigate",
                json!({ "url": format!("{}/", server.base) }),
            )
            .await;
        chrome
            .wait_for(
                "both accounts",
                r#"document.querySelector('.card[data-account="main"]') && document.querySelector('.card[data-account="fbe"]')"#,
            )
            .await;
        chrome
            .wait_for(
                "the live feed",
                "document.querySelector('#live').dataset.state === 'live'",
            )
            .await;
        assert_eq!(chrome.text("document.documentElement.lang").await, "ro");
        chrome
            .eval("window.__sameDocument = true")
            .await
            .expect("mark");

        // The token, through the page's own form.
        chrome.click("#auth-open").await;
        chrome
            .eval(&format!(
                "document.querySelector('#token').value = {}",
                json!(TOKEN)
            ))
            .await
            .expect("type the token");
        chrome
            .eval("document.querySelector('#auth-form').requestSubmit()")
            .await
            .expect("submit");
        // The form opens a session (POST /login) and closes; the page keeps no token: the
        // cookie is HttpOnly, nothing is in the page's storage.
        chrome
            .wait_for(
                "the session opened",
                "document.querySelector('#auth').classList.contains('hidden')",
            )
            .await;
        let kept = chrome
            .eval(&format!(
                "JSON.stringify([document.cookie, Object.entries(localStorage), Object.entries(sessionStorage)]).includes({})",
                json!(TOKEN)
            ))
            .await;
        assert_eq!(kept, Ok(Value::Bool(false)), "the page kept the token");
        let cookie_visible = chrome
            .eval("document.cookie.includes('emag_session')")
            .await;
        assert_eq!(
            cookie_visible,
            Ok(Value::Bool(false)),
            "the session cookie is not HttpOnly"
        );

        // Sync now: the run is queued by the page (or, without the endpoint, by the store),
        // claimed by the scheduler, and its progress moves on the card without a reload.
        chrome
            .click(r#".card[data-account="main"] button[data-action="sync"][data-kind="offers"]"#)
            .await;
        chrome
            .wait_for(
                "the run queued or the control hidden",
                r#"document.querySelector('.card[data-account="main"] [data-action="cancel"]') || document.querySelector('.card[data-account="main"] [data-progress]') || !document.querySelector('[data-action="sync"]')"#,
            )
            .await;
        let sync_endpoint = chrome
            .eval(r#"!!document.querySelector('[data-action="sync"]')"#)
            .await
            == Ok(Value::Bool(true));
        if !sync_endpoint {
            eprintln!("POST /api/accounts/{{name}}/sync is not served: the run is queued through the store");
            app.store
                .enqueue_run("main", SyncKind::Offers, false)
                .await
                .expect("queue");
        }
        let items = r#"(document.querySelector('.card[data-account="main"] [data-progress] .items') || {}).textContent"#;
        chrome.wait_for("the run's progress", items).await;
        let first = chrome.text(items).await;
        chrome
            .wait_for(
                "the progress moving",
                &format!("{items} && {items} !== {}", json!(first)),
            )
            .await;
        chrome
            .screenshot("dashboard-running.png", 1280, 800, false)
            .await;
        chrome
            .wait_for(
                "the run finished",
                r#"!document.querySelector('.card[data-account="main"] [data-progress]') && document.querySelector('.card[data-account="main"] .kind[data-kind="offers"] .outcome.succeeded')"#,
            )
            .await;

        // The charts: the finished run is a bar of the last 24 hours (the page reads the
        // series again when its range changes); 7 days shows the same runs in 28 bars.
        chrome.click(r#"#charts .seg-btn[data-range="7d"]"#).await;
        chrome
            .wait_for(
                "the 7-day charts with the run",
                r#"document.querySelector('#charts .seg-btn[data-range="7d"].active') && document.querySelectorAll('#charts-body .chart[data-chart="runs"] svg > g').length === 28 && document.querySelector('#charts-body .chart[data-chart="runs"] rect.bar-ok') && document.querySelector('#charts-body .chart[data-chart="items"] rect.bar')"#,
            )
            .await;

        // The drill-down into the run: its counts and checkpoint.
        chrome.click("#runs-body tr[data-run]").await;
        chrome
            .wait_for(
                "the run's detail",
                "!document.querySelector('#drawer').classList.contains('hidden') && document.querySelector('#drawer-body [data-count=\"items_read\"]').textContent.replace(/\\D/g, '') === '4000'",
            )
            .await;
        chrome
            .screenshot("dashboard-run.png", 1280, 800, false)
            .await;
        chrome.click("#drawer-close").await;

        // Pause shows on the card.
        chrome
            .click(r#".card[data-account="fbe"] button[data-action="pause"]"#)
            .await;
        chrome
            .wait_for(
                "fbe paused or the control hidden",
                r#"document.querySelector('.card[data-account="fbe"]').dataset.state === 'paused' || !document.querySelector('[data-action="pause"], [data-action="resume"]')"#,
            )
            .await;
        let paused_by_page = chrome
            .eval(r#"!!document.querySelector('[data-action="pause"], [data-action="resume"]')"#)
            .await
            == Ok(Value::Bool(true));
        if !paused_by_page {
            eprintln!("POST /api/accounts/{{name}}/pause is not served: paused through the store");
            app.store.set_paused("fbe", true).await.expect("pause");
        }
        chrome
            .wait_for(
                "fbe paused",
                r#"document.querySelector('.card[data-account="fbe"]').dataset.state === 'paused' && document.querySelector('.card[data-account="fbe"] .pausebox')"#,
            )
            .await;
        chrome
            .screenshot("dashboard-desktop.png", 1280, 800, false)
            .await;

        // The language switch.
        let pill = r#"document.querySelector('.card[data-account="fbe"] .pill.state').textContent"#;
        assert_eq!(chrome.text(pill).await, "În pauză");
        chrome.click("#lang").await;
        chrome
            .wait_for("English", "document.documentElement.lang === 'en'")
            .await;
        assert_eq!(chrome.text(pill).await, "Paused");
        chrome
            .screenshot("dashboard-desktop-en.png", 1280, 800, false)
            .await;
        chrome.click("#lang").await;
        chrome
            .wait_for("Romanian again", "document.documentElement.lang === 'ro'")
            .await;
        chrome
            .screenshot("dashboard-phone.png", 390, 844, true)
            .await;
        chrome
            .must(
                "Emulation.setEmulatedMedia",
                json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
            )
            .await;
        chrome
            .screenshot("dashboard-dark.png", 1280, 800, false)
            .await;
        assert_eq!(
            chrome.eval("window.__sameDocument === true").await,
            Ok(Value::Bool(true)),
            "the page was never reloaded"
        );

        // Nothing left the machine, and nothing went wrong in the console.
        let events = chrome.events();
        let origin = server.base.clone();
        let mut errors = Vec::new();
        for e in &events {
            let p = &e["params"];
            match e["method"].as_str().unwrap_or("") {
                "Network.requestWillBeSent" => {
                    let url = p["request"]["url"].as_str().unwrap_or("");
                    assert!(
                        url.starts_with(&format!("{origin}/"))
                            || url.starts_with("data:")
                            || url == "about:blank",
                        "a request left the machine: {url}"
                    );
                }
                "Runtime.exceptionThrown" => errors.push(p["exceptionDetails"].to_string()),
                "Runtime.consoleAPICalled" if p["type"] == "error" => {
                    errors.push(p["args"].to_string());
                }
                "Log.entryAdded" if p["entry"]["level"] == "error" => {
                    let entry = &p["entry"];
                    let url = entry["url"].as_str().unwrap_or("");
                    // A JSON endpoint still being built answers 404: said, not failed.
                    let optional = ["/api/runs", "/api/kpis", "/api/accounts"]
                        .iter()
                        .any(|p| url.contains(p));
                    if entry["source"] == "network" && optional {
                        eprintln!("optional endpoint missing: {url}");
                    } else {
                        errors.push(entry.to_string());
                    }
                }
                _ => {}
            }
        }
        assert!(errors.is_empty(), "console errors: {errors:#?}");
        let requests = events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .count();
        assert!(
            requests >= 5,
            "the page, its assets and the API were requested"
        );
        scheduler.abort();
    }
}
