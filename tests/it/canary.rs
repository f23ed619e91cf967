//! The canary: a password configured for every account never leaves its configuration. A
//! session of use — `test`, `sync all`, every read command, the scheduler with its dashboard
//! and every endpoint of it, a mutation, a refused login, and an account whose password eMAG
//! refuses — then every HTTP response (headers and body), every line the commands printed,
//! every file they wrote (logs, pid, exports) and every database row is searched for each
//! password, plain and as the Basic credentials the client sends.

use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use emag_sim::{AccountSpec, SimConfig, Simulator};
use rand::RngCore;
use serde_json::Value;
use sqlx::{Connection, Row};
use test_support::{DbKind, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{binary, bounded, on_both_backends, sim_vars};
use crate::webhook::{Answer, Webhook};

const TOKEN: &str = "canary-test-dashboard-token-0123456789";

/// Everything the session showed, wrote or answered, with where it came from.
#[derive(Default)]
struct Seen(Vec<(String, Vec<u8>)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.push((what.into(), bytes.into()));
    }

    fn files_under(&mut self, dir: &Path) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                self.files_under(&path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                self.add(format!("file {}", path.display()), bytes);
            }
        }
    }

    fn assert_none_holds(&self, needles: &[String]) {
        assert!(
            self.0.len() > 30,
            "too little was looked at: {}",
            self.0.len()
        );
        for (what, bytes) in &self.0 {
            for needle in needles {
                let hit = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
                assert!(!hit, "{what} holds a secret ({} bytes)", bytes.len());
            }
        }
    }
}

async fn a_canary_password_never_leaves_its_config(kind: DbKind) {
    let mut random = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut random);
    let canary: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let password = |who: &str| format!("CANARY{canary}{who}");
    let mut sim_config = SimConfig::default();
    for a in &mut sim_config.accounts {
        a.password = password(&a.name);
    }
    // A third account eMAG knows, configured with a password it refuses.
    let mut shop = AccountSpec::named("shop", emag_sim::AccountKind::Main);
    shop.password = password("shop-real");
    sim_config.accounts.push(shop.clone());
    let sim = Simulator::spawn(sim_config.clone()).await.expect("sim");
    let db = TestDb::new(kind).await;
    let dir = tempfile::tempdir().expect("dir");
    // The alert webhook's path is a channel secret (Slack's holds its token).
    let hook_secret = format!("hook{canary}");
    let hook = Webhook::start_at(&format!("/services/{hook_secret}"), Answer::Take).await;
    let mut vars = sim_vars(&sim, &db.url);
    vars.insert("EMAG_ALERT_WEBHOOK_URL".into(), hook.url.clone());
    // The other channels point at the same receiver, which refuses them (404): their
    // failures are logged and stored, and must name no token either.
    let hook_base = hook
        .url
        .split("/services/")
        .next()
        .unwrap_or_default()
        .to_owned();
    let channel_secrets = [
        ("EMAG_NTFY_TOKEN", format!("ntfy{canary}")),
        ("EMAG_TELEGRAM_BOT_TOKEN", format!("42:tg{canary}")),
        ("EMAG_SMS_AUTH_TOKEN", format!("sms{canary}")),
        ("EMAG_SMTP_PASSWORD", format!("smtp{canary}")),
    ];
    for (name, secret) in &channel_secrets {
        vars.insert((*name).into(), secret.clone());
    }
    for (name, value) in [
        ("EMAG_NTFY_URL", hook_base.as_str()),
        ("EMAG_NTFY_TOPIC", "alerts"),
        ("EMAG_TELEGRAM_API_URL", hook_base.as_str()),
        ("EMAG_TELEGRAM_CHAT_ID", "1"),
        ("EMAG_SMS_API_URL", hook_base.as_str()),
        ("EMAG_SMS_ACCOUNT_SID", "AC1"),
        ("EMAG_SMS_FROM", "+40700000000"),
        ("EMAG_SMS_TO", "+40711111111"),
        // Nobody listens there: the sends fail and are logged.
        ("EMAG_SMTP_HOST", "127.0.0.1"),
        ("EMAG_SMTP_PORT", "9"),
        ("EMAG_SMTP_TLS", "none"),
        ("EMAG_SMTP_USERNAME", "alerts"),
        ("EMAG_SMTP_FROM", "alerts@shop.example"),
        ("EMAG_ALERT_EMAIL_TO", "owner@shop.example"),
    ] {
        vars.insert(name.into(), value.into());
    }
    vars.insert("EMAG_SHOP_API_PASSWORD".into(), password("shop-wrong"));
    vars.insert("EMAG_DASHBOARD_TOKEN".into(), TOKEN.into());
    vars.insert("EMAG_DASHBOARD_BIND".into(), "127.0.0.1:0".into());
    vars.insert("EMAG_LOG_LEVEL".into(), "debug".into());
    vars.insert(
        "EMAG_LOG_FILE".into(),
        dir.path().join("logs/emag-sync.log").display().to_string(),
    );
    vars.insert(
        "EMAG_PID_FILE".into(),
        dir.path().join("emag-sync.pid").display().to_string(),
    );
    vars.insert(
        "EMAG_BACKUP_DIR".into(),
        dir.path().join("backups").display().to_string(),
    );

    let mut needles: Vec<String> = Vec::new();
    let mut creds = |user: &str, pass: &str| {
        needles.push(pass.to_owned());
        needles.push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")));
    };
    for a in &sim_config.accounts {
        creds(&a.username, &a.password);
    }
    creds(&shop.username, &password("shop-wrong"));
    needles.push(TOKEN.to_owned());
    needles.push(hook_secret.clone());
    for (_, secret) in &channel_secrets {
        needles.push(secret.clone());
    }
    needles.push(base64::engine::general_purpose::STANDARD.encode(format!("AC1:sms{canary}")));

    let mut seen = Seen::default();
    let commands: &[&[&str]] = &[
        &["test"],
        &["sync", "all"],
        &["sync", "shop", "offers"],
        &["status"],
        &["status", "--json"],
        &["runs"],
        &["monitor", "report"],
        &["monitor", "json"],
        &["monitor", "health"],
        &["report", "--days", "7", "--format", "json"],
        &["export", "offers"],
        &["export", "orders", "--format", "csv"],
        &["alerts", "check"],
        &["alerts", "test"],
        &["alerts", "list"],
        &["alerts", "list", "--json"],
    ];
    for args in commands {
        let out = bounded("a command", binary(&vars, dir.path()).args(*args).output())
            .await
            .expect("run");
        seen.add(format!("stdout of {args:?}"), out.stdout);
        seen.add(format!("stderr of {args:?}"), out.stderr);
    }

    // The scheduler with its dashboard; every endpoint.
    let mut child = binary(&vars, dir.path())
        .arg("start")
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
    seen.add("start's readiness line", ready.clone());
    let base = ready
        .split_once(", dashboard ")
        .map(|(_, url)| url.trim().trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("no dashboard URL in {ready:?}"));
    let http = reqwest::Client::new();
    let fetch = |req: reqwest::RequestBuilder, what: String| {
        let req = req.build().expect("request");
        let http = http.clone();
        async move {
            let r = bounded(&what, http.execute(req)).await.expect("response");
            let head = format!("{:?}", r.headers());
            let body = bounded(&what, r.bytes()).await.unwrap_or_default();
            (what, head, body.to_vec())
        }
    };
    let mut paths: Vec<String> = [
        "/",
        "/api/status",
        "/health",
        "/livez",
        "/readyz",
        "/metrics",
        "/api/accounts",
        "/api/accounts/main",
        "/api/accounts/shop",
        "/api/schedules",
        "/api/runs?limit=200",
        "/api/kpis?days=7",
        "/api/series?range=24h",
        "/api/session",
        "/openapi.json",
        "/docs/",
        "/nope",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    let runs: Value = http
        .get(format!("{base}/api/runs?limit=200"))
        .send()
        .await
        .expect("runs")
        .json()
        .await
        .expect("runs JSON");
    let ids: Vec<i64> = runs["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_i64()).collect())
        .unwrap_or_default();
    assert!(ids.len() >= 8, "the session made runs: {runs}");
    paths.extend(ids.iter().map(|id| format!("/api/runs/{id}")));
    let mut answers = Vec::new();
    for path in &paths {
        answers.push(fetch(http.get(format!("{base}{path}")), format!("GET {path}")).await);
    }
    answers.push(
        fetch(
            http.post(format!("{base}/api/accounts/main/sync"))
                .bearer_auth(TOKEN)
                .json(&serde_json::json!({"kind": "offers"})),
            "POST sync with the token".into(),
        )
        .await,
    );
    answers.push(
        fetch(
            http.post(format!("{base}/api/accounts/main/pause"))
                .bearer_auth(password("main")),
            "POST pause with a password as token".into(),
        )
        .await,
    );
    answers.push(
        fetch(
            http.post(format!("{base}/login"))
                .form(&[("token", password("fbe"))]),
            "POST /login with a password".into(),
        )
        .await,
    );
    for (what, head, body) in answers {
        seen.add(format!("headers of {what}"), head);
        seen.add(format!("body of {what}"), body);
    }
    let pid = child.id().expect("pid").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let out = bounded("start's exit", child.wait_with_output())
        .await
        .expect("wait");
    seen.add("start's stdout", rest);
    seen.add("start's stderr", out.stderr);

    // Every message sent to the alert channel.
    let sent = hook.taken();
    assert!(sent.len() >= 2, "the alerts were sent: {sent:?}");
    assert!(
        sent.iter().any(|t| t.contains("shop")),
        "the refused account was told of: {sent:#?}"
    );
    for (i, text) in sent.iter().enumerate() {
        seen.add(format!("alert message {i}"), text.clone());
    }

    seen.files_under(dir.path());
    dump_database(&db, &mut seen).await;
    seen.assert_none_holds(&needles);
}

/// Every row of every table, as text (PostgreSQL), or the database files byte for byte
/// (SQLite: the file, its WAL, and whatever else lies beside it).
async fn dump_database(db: &TestDb, seen: &mut Seen) {
    match db.kind {
        DbKind::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://");
            let dir = Path::new(path).parent().expect("db dir");
            seen.files_under(dir);
        }
        DbKind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut conn)
            .await
            .expect("tables");
            assert!(tables.len() >= 5, "{tables:?}");
            for table in tables {
                let rows = sqlx::query(&format!("SELECT CAST(t AS TEXT) FROM \"{table}\" t"))
                    .fetch_all(&mut conn)
                    .await
                    .expect("rows");
                let text: Vec<String> = rows
                    .iter()
                    .map(|r| r.try_get::<String, _>(0).unwrap_or_default())
                    .collect();
                seen.add(format!("rows of {table}"), text.join("\n"));
            }
        }
    }
}

on_both_backends!(a_canary_password_never_leaves_its_config);
