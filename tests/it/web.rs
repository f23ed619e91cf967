//! The HTTP server, driven over real HTTP on port 0: the seed's `/api/status` shape, the
//! health+json semantics (503 on fail), liveness and readiness, `/metrics` checked by a
//! strict parser, prometheus-parse and `promtool`, problems and security headers, and the
//! `dashboard` and `start` commands as real processes.

use std::collections::HashMap;
use std::process::Stdio;

use domain::SyncKind;
use emag_sim::{FaultPlan, SimConfig};
use emag_sync::sync::RunStatus;
use emag_sync::web::{self, AppState};
use reqwest::StatusCode;
use serde_json::Value;
use storage::Store;
use test_support::DbKind;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::support::{binary, bounded, on_both_backends, sim_vars, TestApp};

/// The server on a port of its own; stopped when dropped.
struct Server {
    base: String,
    http: reqwest::Client,
    cancel: CancellationToken,
}

impl Server {
    /// Binds 127.0.0.1:0 first (ready from here on: connections queue in the backlog), then
    /// serves in a task.
    async fn start(state: AppState) -> Server {
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

    /// The app's server with the clients of its accounts (their request counters).
    async fn of(app: &TestApp) -> Server {
        Server::start(
            AppState::new(app.config.clone(), app.store.clone()).with_api_clients(&app.accounts),
        )
        .await
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        bounded(path, self.http.get(format!("{}{path}", self.base)).send())
            .await
            .expect("a response")
    }

    async fn json(&self, path: &str) -> (StatusCode, String, Value) {
        let r = self.get(path).await;
        let status = r.status();
        let content_type = header(&r, "content-type");
        let body = r.text().await.expect("body");
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (status, content_type, json)
    }

    async fn metrics(&self) -> String {
        let r = self.get("/metrics").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "content-type"),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        r.text().await.expect("metrics body")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The passwords of the simulator's accounts: no response may contain them.
fn passwords(app: &TestApp) -> Vec<String> {
    app.sim
        .sim
        .accounts()
        .iter()
        .map(|a| a.password.clone())
        .collect()
}

/// A live scheduler instance "on another machine", beating into the future so the check
/// cannot see it go silent however slow the machine is.
async fn a_live_instance(store: &Store) {
    let now = storage::now_ms();
    store
        .register_instance(&storage::InstanceRow {
            id: "web-test-host:1:0".into(),
            host: "web-test-host".into(),
            pid: 1,
            version: "0.1.0".into(),
            started_at: now,
            heartbeat_at: now + 600_000,
            schedules: 8,
            running: 0,
            stopped_at: None,
        })
        .await
        .expect("register an instance");
}

on_both_backends!(
    the_status_keeps_the_seed_shape_and_serves_no_credential,
    health_passes_with_fresh_data_and_a_live_scheduler_and_fails_with_nothing_synced,
    an_unreachable_database_fails_health_and_readiness_with_503_but_not_liveness,
    metrics_count_the_runs_made_and_survive_a_new_server_on_the_same_database,
);

async fn the_status_keeps_the_seed_shape_and_serves_no_credential(kind: DbKind) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    assert_eq!(
        app.sync("main", SyncKind::Offers).await.status,
        RunStatus::Succeeded
    );
    app.sim.sim.set_faults(FaultPlan {
        bad_credentials: true,
        accounts: vec!["fbe".into()],
        ..FaultPlan::default()
    });
    assert_eq!(
        app.sync("fbe", SyncKind::Offers).await.status,
        RunStatus::Failed
    );
    let server = Server::of(&app).await;

    let (status, content_type, body) = server.json("/api/status").await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let scheduler = &body["scheduler"];
    assert_eq!(
        scheduler["scheduler_running"], false,
        "no instance registered"
    );
    for account in ["main", "fbe"] {
        let a = &scheduler["accounts"][account];
        for field in ["account_type", "status", "last_sync", "next_sync"] {
            assert!(a.get(field).is_some(), "{account}.{field} in {a}");
        }
        assert_eq!(a["account_type"], account);
    }
    assert!(scheduler["accounts"]["main"]["last_sync"].is_string());
    assert_eq!(scheduler["accounts"]["fbe"]["status"], "needs_attention");
    for field in ["errors_last_hour", "warnings_last_hour", "last_log_time"] {
        assert!(body["logs"].get(field).is_some(), "logs.{field} in {body}");
    }
    assert_eq!(body["logs"]["errors_last_hour"], 1);
    let alerts = body["alerts"].as_array().expect("alerts");
    assert!(!alerts.is_empty());
    for alert in alerts {
        for field in ["type", "message", "action"] {
            assert!(alert[field].is_string(), "{field} in {alert}");
        }
    }
    assert!(alerts.iter().any(|a| a["type"] == "needs_attention"));
    let text = body.to_string();
    for password in passwords(&app) {
        assert!(!text.contains(&password), "a password was served");
    }
}

async fn health_passes_with_fresh_data_and_a_live_scheduler_and_fails_with_nothing_synced(
    kind: DbKind,
) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    let server = Server::of(&app).await;

    let (status, content_type, report) = server.json("/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{report}");
    assert_eq!(content_type, "application/health+json");
    assert_eq!(report["status"], "fail");
    assert_eq!(
        report["checks"]["database:responseTime"][0]["status"],
        "pass"
    );
    assert_eq!(
        report["checks"]["main:offers:freshness"][0]["status"],
        "fail"
    );
    assert_eq!(
        report["checks"]["main:offers:freshness"][0]["output"],
        "never synced"
    );

    for r in app.sync_all().await {
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    }
    a_live_instance(&app.store).await;
    let (status, content_type, report) = server.json("/health").await;

    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(content_type, "application/health+json");
    assert_eq!(report["status"], "pass", "{report}");
    let db = &report["checks"]["database:responseTime"][0];
    assert_eq!(
        (db["status"].as_str(), db["observedUnit"].as_str()),
        (Some("pass"), Some("ms"))
    );
    assert_eq!(
        report["checks"]["scheduler:instances"][0]["observedValue"],
        1
    );
    assert_eq!(
        report["checks"]["fbe:offers:freshness"][0]["status"],
        "pass"
    );
}

async fn an_unreachable_database_fails_health_and_readiness_with_503_but_not_liveness(
    kind: DbKind,
) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    let server = Server::of(&app).await;
    assert_eq!(server.get("/readyz").await.status(), StatusCode::OK);

    app.store.close().await;

    let (status, content_type, report) = server.json("/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/health+json");
    assert_eq!(report["status"], "fail");
    let db = &report["checks"]["database:responseTime"][0];
    assert_eq!(db["status"], "fail", "{report}");
    assert!(db["output"].is_string(), "{report}");
    for path in ["/readyz", "/api/status", "/metrics"] {
        let (status, content_type, problem) = server.json(path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert_eq!(problem["status"], 503);
        assert_eq!(
            problem["type"],
            "urn:emag-sync:problem:database-unavailable"
        );
        assert_eq!(problem["instance"], path);
    }
    let live = server.get("/livez").await;
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(live.text().await.expect("body"), "ok\n");
}

async fn metrics_count_the_runs_made_and_survive_a_new_server_on_the_same_database(kind: DbKind) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    let mut made = Vec::new();
    for (account, kind) in [
        ("main", SyncKind::Offers),
        ("main", SyncKind::Offers),
        ("main", SyncKind::Orders),
        ("fbe", SyncKind::Offers),
    ] {
        made.push(app.sync(account, kind).await);
    }
    assert!(
        made.iter().all(|r| r.status == RunStatus::Succeeded),
        "{made:?}"
    );
    let server = Server::of(&app).await;

    let text = server.metrics().await;

    let families = check_exposition(&text);
    check_with_promtool(&text).await;
    let scraped = parse_scrape(&text);
    let runs = |account: &str, kind: &str| runs_of(&scraped, account, kind);
    assert_eq!(runs("main", "offers"), Some(2.0));
    assert_eq!(runs("main", "orders"), Some(1.0));
    assert_eq!(runs("fbe", "offers"), Some(1.0));
    assert_eq!(runs("fbe", "orders"), None, "no run, no series");
    let created: u64 = made
        .iter()
        .filter(|r| r.account == "main" && r.kind == SyncKind::Offers)
        .map(|r| r.counts.created)
        .sum();
    assert!(created > 0);
    assert_eq!(
        value(
            &scraped,
            "emag_sync_records_total",
            &[("account", "main"), ("kind", "offers"), ("op", "created"),]
        ),
        Some(created as f64)
    );
    let unchanged = made[1].counts.unchanged;
    assert!(unchanged > 0, "the second scan found the offers unchanged");
    assert_eq!(
        value(
            &scraped,
            "emag_sync_records_total",
            &[("account", "main"), ("kind", "offers"), ("op", "unchanged"),]
        ),
        Some(unchanged as f64)
    );
    assert_eq!(
        value(
            &scraped,
            "emag_sync_run_duration_seconds_count",
            &[("account", "main"), ("kind", "offers"),]
        ),
        Some(2.0)
    );
    let last_success = value(
        &scraped,
        "emag_sync_last_success_timestamp_seconds",
        &[("account", "main"), ("kind", "offers")],
    )
    .expect("last success");
    let now = storage::now_ms() as f64 / 1000.0;
    assert!(
        last_success <= now && last_success > now - 600.0,
        "{last_success}"
    );
    assert_eq!(
        value(&scraped, "emag_sync_runs_in_progress", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&scraped, "emag_sync_leases_reclaimed_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &scraped,
            "emag_sync_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // The process-local request counters are this process's clients' own: every request
    // the runs made, offers under `other`, orders under `orders` (the encoding probe of an
    // account's first run reads one page of orders too).
    let api = |account: &str, class: &str| -> f64 {
        scraped
            .samples
            .iter()
            .filter(|s| {
                s.metric == "emag_api_requests_total"
                    && s.labels.get("account") == Some(account)
                    && s.labels.get("route_class") == Some(class)
            })
            .map(|s| number(&s.value))
            .sum()
    };
    let requests = |account: &str| -> u64 {
        made.iter()
            .filter(|r| r.account == account)
            .map(|r| r.counts.requests)
            .sum()
    };
    assert_eq!(
        api("main", "other") + api("main", "orders"),
        requests("main") as f64
    );
    assert!(api("main", "orders") > 0.0);
    assert_eq!(
        api("fbe", "other") + api("fbe", "orders"),
        requests("fbe") as f64
    );
    assert!(value(
        &scraped,
        "emag_api_requests_total",
        &[
            ("account", "main"),
            ("route_class", "other"),
            ("code", "200"),
        ]
    )
    .is_some());
    assert!(families.contains("emag_api_rate_limited_total"));

    // One more run: the next scrape counts it (the rendering kept between scrapes follows
    // the totals).
    made.push(app.sync("fbe", SyncKind::Offers).await);
    let scraped = parse_scrape(&server.metrics().await);
    assert_eq!(runs_of(&scraped, "fbe", "offers"), Some(2.0));

    // A new server on the same database, as after a restart: the same run counters; the
    // request counters of the old process are gone with it.
    drop(server);
    let store = Store::open(&app._db.url).await.expect("reopen the store");
    let restarted = Server::start(AppState::new(app.config.clone(), store)).await;
    let again = restarted.metrics().await;
    check_exposition(&again);
    let after = parse_scrape(&again);
    for (account, kind) in [("main", "offers"), ("main", "orders"), ("fbe", "offers")] {
        let labels = [
            ("account", account),
            ("kind", kind),
            ("trigger", "manual"),
            ("outcome", "succeeded"),
        ];
        assert_eq!(
            value(&after, "emag_sync_runs_total", &labels),
            value(&scraped, "emag_sync_runs_total", &labels),
            "{account} {kind}"
        );
    }
    assert!(after
        .samples
        .iter()
        .all(|s| s.metric != "emag_api_requests_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_a_problem_and_every_response_the_security_headers() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let server = Server::of(&app).await;

    for path in [
        "/",
        "/nope",
        "/api/nope",
        "/api/status/../../etc/passwd",
        "/%ff%fe",
        "/api/status?x=%00",
    ] {
        let r = server.get(path).await;
        let status = r.status();
        // `/` is the dashboard's page; `/api/status` ignores unknown query parameters.
        let expected = if path == "/" || path.starts_with("/api/status?") {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expected, "{path}");
        assert_security_headers(&r, path);
        if status == StatusCode::NOT_FOUND {
            assert_eq!(
                header(&r, "content-type"),
                "application/problem+json",
                "{path}"
            );
            let problem: Value = r.json().await.expect("problem json");
            assert_eq!(problem["status"], 404, "{path}");
            assert_eq!(problem["title"], "Not Found");
        }
    }
    for path in ["/livez", "/readyz", "/health", "/api/status", "/metrics"] {
        assert_security_headers(&server.get(path).await, path);
    }
    let r = bounded(
        "a POST",
        server
            .http
            .post(format!("{}/api/status", server.base))
            .body("{}")
            .send(),
    )
    .await
    .expect("response");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_security_headers(&r, "POST /api/status");
    assert_eq!(header(&r, "content-type"), "application/problem+json");
}

fn assert_security_headers(r: &reqwest::Response, what: &str) {
    assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(r, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(r, "referrer-policy"), "no-referrer", "{what}");
    let csp = header(r, "content-security-policy");
    assert!(csp.starts_with("default-src 'self'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_refuses_an_address_other_machines_reach_without_a_token() {
    let db = test_support::TestDb::sqlite();
    let dir = tempfile::tempdir().expect("dir");
    let vars = HashMap::from([("DATABASE_URL".to_owned(), db.url.clone())]);

    let out = bounded(
        "dashboard",
        binary(&vars, dir.path())
            .args(["dashboard", "--bind", "0.0.0.0:0"])
            .output(),
    )
    .await
    .expect("run the dashboard");

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to serve the dashboard on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("EMAG_DASHBOARD_TOKEN"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_command_prints_its_url_serves_and_exits_cleanly_on_sigterm() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut child = binary(&sim_vars(&app.sim, &app._db.url), dir.path())
        .args(["dashboard", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the dashboard");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = bounded("the URL line", lines.next_line())
        .await
        .expect("read")
        .expect("a line");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("a URL in {first:?}"));

    let live = bounded("livez", reqwest::get(format!("{url}/livez")))
        .await
        .expect("livez");
    assert_eq!(live.status(), StatusCode::OK);
    let status: Value = bounded("status", reqwest::get(format!("{url}/api/status")))
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert!(
        status["scheduler"]["accounts"]["main"].is_object(),
        "{status}"
    );

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = bounded("the exit", child.wait()).await.expect("wait");
    assert_eq!(exit.code(), Some(0));
    let last = bounded("the last line", lines.next_line())
        .await
        .expect("read");
    assert_eq!(last.as_deref(), Some("emag-sync dashboard stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_serves_the_dashboard_unless_told_not_to_and_schedules_when_the_port_is_taken() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut vars = sim_vars(&app.sim, &app._db.url);
    vars.insert(
        "EMAG_PID_FILE".into(),
        dir.path().join("a.pid").display().to_string(),
    );
    // A port that is taken, for the third start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();

    for (extra, args, serves) in [
        (("EMAG_DASHBOARD_BIND", "127.0.0.1:0"), &["start"][..], true),
        (
            ("EMAG_DASHBOARD_BIND", "127.0.0.1:0"),
            &["start", "--no-dashboard"][..],
            false,
        ),
        (
            ("EMAG_DASHBOARD_BIND", taken_addr.as_str()),
            &["start"][..],
            false,
        ),
    ] {
        let mut child = binary(&vars, dir.path())
            .env(extra.0, extra.1)
            .env("EMAG_LOG_FILE", dir.path().join("logs/s.log"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = bounded("the readiness line", lines.next_line())
            .await
            .expect("read")
            .expect("a readiness line");
        assert!(ready.contains("scheduler ready"), "{ready}");
        let url = ready
            .split_once(", dashboard ")
            .map(|(_, url)| url.trim().to_owned());
        assert_eq!(url.is_some(), serves, "{args:?} {extra:?}: {ready}");
        if let Some(url) = url {
            let status: Value = bounded("status", reqwest::get(format!("{url}/api/status")))
                .await
                .expect("status")
                .json()
                .await
                .expect("json");
            assert_eq!(status["scheduler"]["scheduler_running"], true, "{status}");
        }
        let pid = child.id().expect("pid").to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let out = bounded("the exit", child.wait_with_output())
            .await
            .expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        if extra.1 == taken_addr {
            assert!(stderr.contains("cannot listen on"), "{stderr}");
            assert!(stderr.contains("without the dashboard"), "{stderr}");
        }
    }
    drop(taken);
}

/// Parses the exposition strictly: every line is a `# HELP`, a `# TYPE` or a sample of a
/// family declared before it, with valid names, quoted label values and a number. Returns the
/// declared families.
fn check_exposition(text: &str) -> std::collections::BTreeSet<String> {
    use std::collections::BTreeSet;
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut helped = BTreeSet::new();
    let mut typed: HashMap<String, String> = HashMap::new();
    assert!(text.ends_with('\n'), "the text ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(name_ok(name) && !help.is_empty(), "{line}");
            assert!(
                helped.insert(name.to_owned()),
                "one HELP per family: {line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{line}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("name value");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("a number in {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, Some(labels.strip_suffix('}').expect("}"))),
                None => (series, None),
            };
            assert!(name_ok(name), "{line}");
            let family = ["_sum", "_count", "_bucket"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains_key(*f)))
                .unwrap_or(name);
            let kind = typed
                .get(family)
                .unwrap_or_else(|| panic!("no TYPE before {line}"));
            if kind == "counter" {
                assert!(family.ends_with("_total"), "{line}");
            }
            if let Some(labels) = labels {
                check_labels(labels, line, &name_ok);
            }
        }
    }
    for name in typed.keys() {
        assert!(helped.contains(name), "{name} has a HELP");
    }
    helped
}

/// `name="value",…` with valid names and values escaped as the format says (`\\`, `\"`,
/// `\n`).
fn check_labels(mut rest: &str, line: &str, name_ok: &dyn Fn(&str) -> bool) {
    let mut seen = std::collections::BTreeSet::new();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {line}"));
        assert!(
            name_ok(name) && seen.insert(name),
            "label {name:?} in {line}"
        );
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let escaped = chars.next().map(|(_, c)| c);
                    assert!(
                        matches!(escaped, Some('\\' | '"' | 'n')),
                        "escape in {line}"
                    );
                }
                Some((i, '"')) => break i,
                Some(_) => {}
                None => panic!("unterminated label value in {line}"),
            }
        };
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// `promtool check metrics` on the text: where promtool is missing the test fails, unless
/// EMAG_TEST_NO_PROMTOOL=1 says this machine cannot have it (CI installs it: .ci/run).
async fn check_with_promtool(text: &str) {
    use tokio::io::AsyncWriteExt;
    let spawned = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if std::env::var("EMAG_TEST_NO_PROMTOOL").as_deref() == Ok("1") => {
            eprintln!("promtool not run ({e}): EMAG_TEST_NO_PROMTOOL=1");
            return;
        }
        Err(e) => panic!(
            "promtool is needed to check /metrics ({e}): apt-get install prometheus, or set \
             EMAG_TEST_NO_PROMTOOL=1 on a machine that cannot have it"
        ),
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let out = bounded("promtool", child.wait_with_output())
        .await
        .expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parse_scrape(text: &str) -> prometheus_parse::Scrape {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("parse the exposition");
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(scrape.samples.len(), samples, "every sample line parsed");
    scrape
}

fn number(v: &prometheus_parse::Value) -> f64 {
    match v {
        prometheus_parse::Value::Counter(n)
        | prometheus_parse::Value::Gauge(n)
        | prometheus_parse::Value::Untyped(n) => *n,
        other => panic!("not a number: {other:?}"),
    }
}

/// Succeeded manual runs of (account, kind) in the scrape.
fn runs_of(scraped: &prometheus_parse::Scrape, account: &str, kind: &str) -> Option<f64> {
    value(
        scraped,
        "emag_sync_runs_total",
        &[
            ("account", account),
            ("kind", kind),
            ("trigger", "manual"),
            ("outcome", "succeeded"),
        ],
    )
}

/// The value of the sample of `metric` with exactly these labels.
fn value(scraped: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scraped
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| number(&s.value))
}
