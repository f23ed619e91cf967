//! The JSON API of the dashboard over real HTTP on port 0: accounts, schedules, the run
//! history (typed filters, keyset pages, problems naming the field at fault), the operator's
//! controls (sync now, pause/resume, cancel of a queued or running run) behind the bearer
//! token or a same-origin session, the OpenAPI description and Swagger UI, and no credential
//! in any body.

use std::time::Duration;

use domain::{RunState, SyncKind};
use emag_sim::{FaultPlan, SimConfig};
use emag_sync::config::CatchUp;
use emag_sync::scheduler::{Policy, Schedule, Scheduler};
use emag_sync::sync::RunStatus;
use emag_sync::web::{self, AppState};
use reqwest::StatusCode;
use serde_json::{json, Value};
use test_support::DbKind;
use tokio_util::sync::CancellationToken;

use crate::support::{bounded, on_both_backends, TestApp};

const TOKEN: &str = "test-dashboard-token-0123456789";

/// The server on a port of its own; stopped when dropped. Every body it sent is kept, for
/// the canary check.
struct Server {
    base: String,
    http: reqwest::Client,
    cancel: CancellationToken,
    bodies: std::sync::Mutex<Vec<String>>,
}

impl Server {
    async fn of(app: &TestApp) -> Server {
        let listener = web::bind("127.0.0.1:0".parse().expect("addr"), None)
            .await
            .expect("bind a free port");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let cancel = CancellationToken::new();
        let state = AppState::new(app.config.clone(), app.store.clone());
        tokio::spawn(web::serve(listener, state, cancel.clone()));
        Server {
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cancel,
            bodies: std::sync::Mutex::new(Vec::new()),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, String, Value) {
        let r = bounded("a request", req.send()).await.expect("a response");
        let status = r.status();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.text().await.expect("body");
        self.bodies.lock().expect("bodies").push(body.clone());
        let json = serde_json::from_str(&body).unwrap_or(Value::Null);
        (status, content_type, json)
    }

    async fn get(&self, path: &str) -> (StatusCode, String, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// A mutation with the bearer token.
    async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, String, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    fn assert_no_secret(&self, secrets: &[String]) {
        let bodies = self.bodies.lock().expect("bodies");
        assert!(!bodies.is_empty());
        for body in bodies.iter() {
            for s in secrets {
                assert!(!body.contains(s.as_str()), "a body holds a secret: {body}");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn app_with_token(kind: DbKind, sim: SimConfig) -> TestApp {
    TestApp::with_vars(kind, sim, &[("EMAG_DASHBOARD_TOKEN", TOKEN)]).await
}

fn secrets(app: &TestApp) -> Vec<String> {
    let mut out: Vec<String> = app
        .sim
        .sim
        .accounts()
        .iter()
        .map(|a| a.password.clone())
        .collect();
    out.push(TOKEN.to_owned());
    out
}

/// A scheduler of main's `kind` every 30 minutes.
fn scheduler_of(app: &TestApp, kind: SyncKind) -> Scheduler {
    let schedule = Schedule {
        account: "main".into(),
        kind,
        interval: Duration::from_secs(1800),
        offset: Duration::from_secs(11),
        cron: None,
        manual_only: false,
    };
    let policy = Policy {
        retry_delay: Duration::from_secs(5),
        max_retries: 3,
        catch_up: CatchUp::Once,
    };
    Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![schedule],
        policy,
    )
}

fn problem_fields(body: &Value) -> Vec<String> {
    body["invalid-params"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

on_both_backends!(
    runs_are_filtered_and_paged_by_id_and_bad_filters_name_their_field,
    accounts_and_schedules_render_the_snapshot_and_an_unknown_account_is_404,
    mutations_need_the_token_or_a_same_origin_session,
    without_a_token_a_loopback_server_takes_changes_but_not_from_another_origin,
    sync_now_queues_a_run_that_the_next_scheduler_tick_claims_and_pause_shows_in_status,
    cancel_ends_a_queued_run_at_once_and_stops_a_running_scan_at_a_page_boundary,
);

async fn runs_are_filtered_and_paged_by_id_and_bad_filters_name_their_field(kind: DbKind) {
    // Arrange: eight runs of two accounts and kinds, one of them failed.
    let app = app_with_token(kind, SimConfig::default()).await;
    for _ in 0..2 {
        for account in ["main", "fbe"] {
            for k in [SyncKind::Reference, SyncKind::Orders] {
                let r = app.sync(account, k).await;
                assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
            }
        }
    }
    let server = Server::of(&app).await;

    // Act + Assert: every run, three pages of three, newest first, no overlap.
    let mut seen = Vec::new();
    let mut after: Option<i64> = None;
    for page in 0..4 {
        let path = match after {
            Some(a) => format!("/api/runs?limit=3&after={a}"),
            None => "/api/runs?limit=3".to_owned(),
        };
        let (status, _, body) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids: Vec<i64> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| r["id"].as_i64().expect("id"))
            .collect();
        seen.extend(ids.iter().copied());
        after = body["next"].as_i64();
        if after.is_none() {
            assert_eq!(page, 2, "8 runs make three pages of 3");
            break;
        }
        assert_eq!(after, ids.last().copied());
    }
    assert_eq!(seen.len(), 8);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

    let (_, _, body) = server.get("/api/runs?account=fbe&kind=orders").await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    for r in items {
        assert_eq!(r["account"], "fbe");
        assert_eq!(r["kind"], "orders");
        assert_eq!(r["state"], "succeeded");
        assert_eq!(r["trigger"], "manual");
        assert!(r["duration_ms"].as_i64().is_some(), "{r}");
        assert!(r["counts"]["requests"].as_u64().unwrap_or(0) > 0, "{r}");
    }
    let (_, _, body) = server.get("/api/runs?outcome=failed").await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(0));
    let (_, _, body) = server
        .get("/api/runs?trigger=manual&since=2000-01-01T00:00:00Z&limit=500")
        .await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(8));
    let (_, _, body) = server.get("/api/runs?until=946684800000").await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(0));

    let id = seen[0];
    let (status, _, one) = server.get(&format!("/api/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["id"], id);
    for field in [
        "attempt",
        "counts",
        "duration_ms",
        "trigger",
        "state",
        "error_class",
        "emag_messages",
        "note",
        "checkpoint_page",
        "reclaimed_from",
        "reclaimed_at",
    ] {
        assert!(one.get(field).is_some(), "{field} in {one}");
    }

    // Bad values: a 400 problem naming each field at fault.
    for (query, fields) in [
        ("kind=stock", vec!["kind"]),
        ("outcome=ok", vec!["outcome"]),
        ("trigger=cron", vec!["trigger"]),
        ("since=yesterday", vec!["since"]),
        ("limit=0", vec!["limit"]),
        ("limit=501", vec!["limit"]),
        ("after=-1", vec!["after"]),
        ("colour=red", vec!["colour"]),
        ("kind=x&limit=abc", vec!["kind", "limit"]),
        // A filter given twice (found by the fuzzer, issue 11).
        ("account=main&account=fbe", vec!["account"]),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            vec!["until"],
        ),
    ] {
        let (status, content_type, body) = server.get(&format!("/api/runs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(content_type, "application/problem+json", "{query}");
        assert_eq!(problem_fields(&body), fields, "{query}: {body}");
    }
    for path in ["/api/runs/abc", "/api/runs/99999999999999999999"] {
        let (status, content_type, _) = server.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(content_type, "application/problem+json");
    }
    let (status, content_type, _) = server.get("/api/runs/424242").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/problem+json");
    server.assert_no_secret(&secrets(&app));
}

async fn accounts_and_schedules_render_the_snapshot_and_an_unknown_account_is_404(kind: DbKind) {
    let app = app_with_token(kind, SimConfig::default()).await;
    assert_eq!(
        app.sync("main", SyncKind::Reference).await.status,
        RunStatus::Succeeded
    );
    let server = Server::of(&app).await;

    let (status, _, body) = server.get("/api/accounts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["fbe", "main"]);
    for a in body.as_array().expect("list") {
        for field in [
            "account_type",
            "marketplace",
            "state",
            "paused",
            "attention",
        ] {
            assert!(a.get(field).is_some(), "{field} in {a}");
        }
    }

    let (status, _, main) = server.get("/api/accounts/main").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(main["name"], "main");
    assert_eq!(main["kinds"].as_array().map(Vec::len), Some(4), "{main}");

    let (status, content_type, body) = server.get("/api/accounts/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(content_type, "application/problem+json");
    let (status, _, _) = server
        .post("/api/accounts/nobody/sync", Some(json!({"kind": "offers"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, body) = server.get("/api/schedules").await;
    assert_eq!(status, StatusCode::OK);
    let schedules = body.as_array().expect("a list");
    let (_, _, fbe) = server.get("/api/accounts/fbe").await;
    let kinds = 4 + fbe["kinds"].as_array().map_or(0, Vec::len);
    assert_eq!(schedules.len(), kinds, "one per (account, kind): {body}");
    let reference = schedules
        .iter()
        .find(|s| s["account"] == "main" && s["kind"] == "reference")
        .expect("main/reference");
    assert_eq!(reference["last_run"]["state"], "succeeded", "{reference}");
    assert!(reference["next"]["type"].is_string(), "{reference}");

    // The description lists every path, and Swagger UI loads its configuration from a file.
    let (status, _, spec) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/accounts",
        "/api/accounts/{name}",
        "/api/accounts/{name}/sync",
        "/api/accounts/{name}/pause",
        "/api/accounts/{name}/resume",
        "/api/schedules",
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/cancel",
        "/login",
        "/logout",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} in the spec");
    }
    let docs = bounded(
        "/docs/",
        server.http.get(format!("{}/docs/", server.base)).send(),
    )
    .await
    .expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    let csp = docs
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = docs.text().await.expect("html");
    assert!(html.contains("swagger-initializer.js"), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");
    let init = bounded(
        "initializer",
        server
            .http
            .get(format!("{}/docs/swagger-initializer.js", server.base))
            .send(),
    )
    .await
    .expect("initializer");
    assert_eq!(init.status(), StatusCode::OK);
    assert!(init.text().await.expect("js").contains("/openapi.json"));

    // Nothing panics on odd input.
    for path in [
        "/api/accounts/%00",
        "/api/accounts/%E2%82",
        "/api/runs?limit=%FF",
        "/api/runs?&&==&",
        "/api/runs/0",
        "/api/runs/-1/cancel",
    ] {
        let (status, _, _) = server.get(path).await;
        assert!(status.as_u16() < 500, "{path}: {status}");
    }
    server.assert_no_secret(&secrets(&app));
}

async fn mutations_need_the_token_or_a_same_origin_session(kind: DbKind) {
    let app = app_with_token(kind, SimConfig::default()).await;
    let server = Server::of(&app).await;
    let url = format!("{}/api/accounts/main/pause", server.base);

    // No credential, a wrong one: refused with a problem.
    let (status, content_type, body) = server.send(server.http.post(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(content_type, "application/problem+json");
    let (status, _, _) = server
        .send(server.http.post(&url).bearer_auth("not-the-token-at-all"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The bearer token works.
    let (status, _, body) = server.post("/api/accounts/main/pause", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"name": "main", "paused": true}));

    // A login with the wrong token opens nothing; with the right one, a cookie that is
    // HttpOnly, SameSite=Strict, and is not the token.
    let login = format!("{}/login", server.base);
    let r = server
        .http
        .post(&login)
        .form(&[("token", "wrong")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    let r = server
        .http
        .post(&login)
        .form(&[("token", TOKEN)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    assert!(!set_cookie.contains(TOKEN), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();

    let resume = format!("{}/api/accounts/main/resume", server.base);
    // The cookie without a same-origin signal: refused (CSRF).
    let (status, _, body) = server
        .send(server.http.post(&resume).header("cookie", &cookie))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, _) = server
        .send(
            server
                .http
                .post(&resume)
                .header("cookie", &cookie)
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // With the page's own origin: accepted.
    let (status, _, body) = server
        .send(
            server
                .http
                .post(&resume)
                .header("cookie", &cookie)
                .header("origin", &server.base),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], false);

    // After logout the cookie is worth nothing.
    let r = server
        .http
        .post(format!("{}/logout", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, _, _) = server
        .send(
            server
                .http
                .post(&resume)
                .header("cookie", &cookie)
                .header("origin", &server.base),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Reads stay open.
    let (status, _, _) = server.get("/api/accounts").await;
    assert_eq!(status, StatusCode::OK);
    server.assert_no_secret(&secrets(&app));
}

async fn without_a_token_a_loopback_server_takes_changes_but_not_from_another_origin(kind: DbKind) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    let server = Server::of(&app).await;
    let url = format!("{}/api/accounts/main/pause", server.base);

    let (status, _, body) = server
        .send(
            server
                .http
                .post(&url)
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("EMAG_DASHBOARD_TOKEN"),
        "{body}"
    );
    let (status, _, _) = server
        .send(server.http.post(&url).bearer_auth("anything-at-all-here"))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no token is valid when none is set"
    );

    let (status, _, body) = server.send(server.http.post(&url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], true);
    let (status, _, _) = server
        .send(
            server
                .http
                .post(format!("{}/login", server.base))
                .form(&[("token", "whatever")]),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nothing to log in with");
    server.assert_no_secret(&secrets(&app));
}

async fn sync_now_queues_a_run_that_the_next_scheduler_tick_claims_and_pause_shows_in_status(
    kind: DbKind,
) {
    let app = app_with_token(kind, SimConfig::default()).await;
    let server = Server::of(&app).await;

    // A bad body names its field.
    let (status, content_type, body) = server
        .post("/api/accounts/main/sync", Some(json!({"kind": "stock"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(content_type, "application/problem+json");
    let (status, _, _) = server
        .post("/api/accounts/main/sync", Some(json!({"full": true})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing panics on any body: not JSON, the wrong type, another media type, bytes.
    for (content_type, body) in [
        ("application/json", b"{".to_vec()),
        ("application/json", b"[]".to_vec()),
        (
            "application/json",
            br#"{"kind":"offers","full":"yes"}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"kind":"offers","extra":1}"#.to_vec(),
        ),
        ("text/plain", b"kind=offers".to_vec()),
        ("application/json", vec![0xff, 0xfe, 0x00]),
    ] {
        let (status, content_type_back, _) = server
            .send(
                server
                    .http
                    .post(format!("{}/api/accounts/main/sync", server.base))
                    .bearer_auth(TOKEN)
                    .header("content-type", content_type)
                    .body(body.clone()),
            )
            .await;
        assert!(status.is_client_error(), "{body:?}: {status}");
        assert_eq!(content_type_back, "application/problem+json", "{body:?}");
    }

    // Act: sync now, twice: the second joins the first.
    let (status, _, first) = server
        .post("/api/accounts/main/sync", Some(json!({"kind": "orders"})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["joined"], false);
    let run_id = first["run_id"].as_i64().expect("run id");
    let (_, _, second) = server
        .post(
            "/api/accounts/main/sync",
            Some(json!({"kind": "orders", "full": false})),
        )
        .await;
    assert_eq!(second, json!({"run_id": run_id, "joined": true}));
    let (_, _, run) = server.get(&format!("/api/runs/{run_id}")).await;
    assert_eq!(run["state"], "queued");
    assert_eq!(run["trigger"], "manual");

    // The next scheduler tick claims the queued run rather than starting another.
    let mut scheduler = scheduler_of(&app, SyncKind::Orders);
    let started = scheduler.tick(storage::now_ms()).await.expect("tick");
    assert_eq!(
        started,
        vec![("main".into(), SyncKind::Orders, domain::RunTrigger::Manual)]
    );
    let reports = bounded("the claimed run", scheduler.wait_idle()).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].run_id, Some(run_id), "{reports:?}");
    assert_eq!(reports[0].status, RunStatus::Succeeded);

    // Pause and resume show in /api/status.
    let (status, _, _) = server.post("/api/accounts/fbe/pause", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, s) = server.get("/api/status").await;
    assert_eq!(s["scheduler"]["accounts"]["fbe"]["paused"], true, "{s}");
    assert_eq!(s["scheduler"]["accounts"]["fbe"]["status"], "paused");
    let (status, _, body) = server.post("/api/accounts/fbe/resume", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"name": "fbe", "paused": false}));
    let (_, _, s) = server.get("/api/status").await;
    assert_eq!(s["scheduler"]["accounts"]["fbe"]["paused"], false);
    server.assert_no_secret(&secrets(&app));
}

async fn cancel_ends_a_queued_run_at_once_and_stops_a_running_scan_at_a_page_boundary(
    kind: DbKind,
) {
    // Arrange: a catalog of 30 pages that answers slowly.
    let app = app_with_token(
        kind,
        SimConfig {
            offers_per_account: 3_000,
            faults: FaultPlan {
                latency_ms: 150,
                accounts: vec!["main".into()],
                ..FaultPlan::default()
            },
            ..SimConfig::default()
        },
    )
    .await;
    let server = Server::of(&app).await;

    // A queued run is cancelled at once and is over.
    let (_, _, queued) = server
        .post("/api/accounts/fbe/sync", Some(json!({"kind": "returns"})))
        .await;
    let queued_id = queued["run_id"].as_i64().expect("id");
    let (status, _, body) = server
        .post(&format!("/api/runs/{queued_id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["outcome"], "cancelled");
    let row = app
        .store
        .get_run(queued_id)
        .await
        .expect("read")
        .expect("run");
    assert_eq!(row.state, RunState::Cancelled);
    assert!(row
        .note
        .as_deref()
        .unwrap_or_default()
        .starts_with("cancelled by"));
    let (status, _, _) = server
        .post(&format!("/api/runs/{queued_id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = server.post("/api/runs/987654/cancel", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = server
        .send(
            server
                .http
                .post(format!("{}/api/runs/{queued_id}/cancel", server.base)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Act: start a full offer scan; once its second page is answered, cancel it.
    let ctx = app.ctx.clone();
    let account = app.account("main").clone();
    let scan = tokio::spawn(async move {
        emag_sync::sync::run_sync(
            &ctx,
            &account,
            SyncKind::Offers,
            domain::RunTrigger::Manual,
            false,
        )
        .await
    });
    bounded(
        "the scan's second page",
        app.sim.sim.wait_for_request(|e| {
            e.account.as_deref() == Some("main")
                && e.resource == "product_offer"
                && e.action == "read"
                && e.page == Some(2)
                && e.status == 200
        }),
    )
    .await;
    let running = app
        .store
        .active_runs()
        .await
        .expect("active")
        .into_iter()
        .find(|r| r.account == "main" && r.kind == SyncKind::Offers)
        .expect("the running scan");
    let (status, _, body) = server
        .post(&format!("/api/runs/{}/cancel", running.id), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["outcome"], "requested");
    let report = bounded("the cancelled scan", scan).await.expect("join");

    // Assert: it stopped at a page boundary, before the end, cancelled and terminal.
    assert_eq!(report.status, RunStatus::Cancelled, "{report:?}");
    let row = app
        .store
        .get_run(running.id)
        .await
        .expect("read")
        .expect("run");
    assert_eq!(row.state, RunState::Cancelled);
    assert!(row.state.is_terminal());
    assert!(row.checkpoint_page >= 2, "{row:?}");
    assert!(row.checkpoint_page < 30, "stopped early: {row:?}");
    assert!(
        row.note
            .as_deref()
            .unwrap_or_default()
            .starts_with("cancelled by operator"),
        "{row:?}"
    );
    let (_, _, detail) = server.get(&format!("/api/runs/{}", running.id)).await;
    assert_eq!(detail["state"], "cancelled");
    assert!(detail["cancel_requested_at"].is_string(), "{detail}");
    // Nothing resumes it: a scheduler finds nothing due (an interrupted run would be resumed
    // at once), and the (account, kind) has no active run, so a new one starts afresh.
    let mut scheduler = scheduler_of(&app, SyncKind::Offers);
    let due = scheduler.tick(storage::now_ms()).await.expect("tick");
    assert!(due.is_empty(), "{due:?}");
    let next = app
        .store
        .enqueue_run("main", SyncKind::Offers, false)
        .await
        .expect("enqueue");
    assert!(
        matches!(next, storage::Enqueued::Queued { run_id } if run_id > running.id),
        "{next:?}"
    );
    server.assert_no_secret(&secrets(&app));
}
