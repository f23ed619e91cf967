//! Alerts end to end: a refusal by the simulator opens an incident, told once through a real
//! webhook receiver however many evaluations (by two processes' stores) see it, and its
//! recovery told once; a channel that fails is retried until the notice arrives, once.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use domain::{AlertChannel, IncidentState, SyncKind};
use emag_sim::SimConfig;
use emag_sync::alerts::{deliver_due, evaluate_once};
use serde_json::Value;
use storage::Store;
use test_support::DbKind;
use tokio_util::sync::CancellationToken;

use crate::support::{on_both_backends, TestApp};
use crate::webhook::{Answer, Webhook};

/// Sends everything due until nothing is (`ahead_ms` moves the clock of the claim forward,
/// past the retry backoff).
async fn deliver_all(app: &TestApp, ahead_ms: i64) -> (usize, usize) {
    let http = reqwest::Client::new();
    let (mut sent, mut failed) = (0, 0);
    loop {
        let done = deliver_due(&app.config, &app.store, &http, storage::now_ms() + ahead_ms)
            .await
            .expect("deliver");
        let (s, f) = (done.sent, done.failed);
        sent += s;
        failed += f;
        if s + f == 0 {
            return (sent, failed);
        }
        if f > 0 {
            // Failed ones are due again after their backoff only.
            return (sent, failed);
        }
    }
}

/// 50 evaluations, two at a time: one through the app's store, one through a second store on
/// the same database (another process).
async fn evaluate_50_times(app: &TestApp, other: &Store) {
    for _ in 0..25 {
        let (a, b) = tokio::join!(
            evaluate_once(&app.config, &app.store),
            evaluate_once(&app.config, other)
        );
        a.expect("evaluate");
        b.expect("evaluate on the other store");
    }
}

fn about_fbe_access(texts: &[String]) -> Vec<&String> {
    texts
        .iter()
        .filter(|t| t.contains("fbe") && t.contains("access_refused"))
        .collect()
}

async fn a_refusal_is_told_once_and_its_recovery_once_whoever_evaluates(kind: DbKind) {
    let hook = Webhook::start(Answer::Take).await;
    let app = TestApp::with_vars(
        kind,
        SimConfig::default(),
        &[
            ("EMAG_FBE_API_PASSWORD", "not-the-password-of-fbe"),
            ("EMAG_ALERT_WEBHOOK_URL", &hook.url),
        ],
    )
    .await;
    let report = app.sync("fbe", SyncKind::Reference).await;
    assert!(
        report.error.is_some(),
        "the sync with a wrong password failed"
    );
    let attention = app.store.accounts_needing_attention().await.expect("read");
    assert!(
        attention.iter().any(|(a, _, _)| a == "fbe"),
        "{attention:?}"
    );

    let other = Store::open(&app._db.url).await.expect("a second store");
    evaluate_50_times(&app, &other).await;
    let (sent, failed) = deliver_all(&app, 0).await;
    assert_eq!(failed, 0);
    let texts = hook.taken();
    assert_eq!(sent, texts.len());
    assert_eq!(about_fbe_access(&texts).len(), 1, "{texts:#?}");
    assert!(
        about_fbe_access(&texts)[0].contains("[CRITIC] Problemă"),
        "{texts:#?}"
    );
    // Every incident opened was told exactly once.
    let incidents = app.store.incidents(1000).await.expect("incidents");
    assert_eq!(incidents.len(), texts.len(), "{incidents:#?}");

    // The cause is removed (the password fixed: the next sync clears the attention).
    app.store.set_attention("fbe", None).await.expect("clear");
    evaluate_50_times(&app, &other).await;
    deliver_all(&app, 0).await;
    let texts = hook.taken();
    let fbe = about_fbe_access(&texts);
    assert_eq!(fbe.len(), 2, "{texts:#?}");
    assert!(fbe[1].contains("Rezolvat"), "{}", fbe[1]);
    let incidents = app.store.incidents(1000).await.expect("incidents");
    let access = incidents
        .iter()
        .find(|i| i.key == "access_refused:fbe:-")
        .expect("the incident");
    assert_eq!(access.state, IncidentState::Resolved);
    assert_eq!(access.resolved_by.as_deref(), Some("auto"));
    other.close().await;
}

async fn a_failing_channel_is_retried_until_the_notice_arrives_once(kind: DbKind) {
    let hook = Webhook::failing_first(3).await;
    let app = TestApp::with_vars(
        kind,
        SimConfig::default(),
        &[
            ("EMAG_FBE_API_PASSWORD", "not-the-password-of-fbe"),
            ("EMAG_ALERT_WEBHOOK_URL", &hook.url),
        ],
    )
    .await;
    app.sync("fbe", SyncKind::Reference).await;
    let opened = evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate")
        .opened
        .len();
    assert!(opened >= 1);
    // The receiver fails the first three posts; each failed notice waits for its backoff.
    let (_, failed) = deliver_all(&app, 0).await;
    assert!(failed >= 1);
    let (again, _) = deliver_all(&app, 0).await;
    assert_eq!(again, 0, "a failed notice waits for its backoff");
    let mut ahead = 0;
    while hook.taken().len() < opened {
        ahead += 3_600_000;
        assert!(
            ahead < 10 * 3_600_000,
            "never delivered: {:?}",
            hook.taken()
        );
        deliver_all(&app, ahead).await;
    }
    assert_eq!(
        hook.received().len(),
        opened + 3,
        "three posts refused, then each notice once"
    );
    assert_eq!(hook.taken().len(), opened, "each notice arrives once");
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!(
        counts,
        vec![(
            AlertChannel::Webhook,
            storage::OutboxCounts {
                delivered: i64::try_from(opened).expect("n"),
                pending: 0,
                failing: 0,
                failed_attempts: 3,
            }
        )]
    );
    // As /metrics shows them.
    let text = emag_sync::web::metrics::render(
        &emag_sync::web::metrics::StoredTotals::of(&[]),
        &storage::ActiveRunCounts::default(),
        &emag_sync::web::metrics::ApiRequests::new(),
        &counts,
    );
    assert!(
        text.contains(&format!(
            "emag_alerts_sent_total{{channel=\"webhook\",outcome=\"delivered\"}} {opened}\n"
        )),
        "{text}"
    );
    assert!(text.contains("emag_alerts_sent_total{channel=\"webhook\",outcome=\"failed\"} 3\n"));
}

on_both_backends!(
    a_refusal_is_told_once_and_its_recovery_once_whoever_evaluates,
    a_failing_channel_is_retried_until_the_notice_arrives_once,
);

/// Every request a fake ntfy / Telegram / Twilio server got: (path, headers, body).
type Captured = Arc<Mutex<Vec<(String, axum::http::HeaderMap, String)>>>;

async fn capture(
    State(got): State<Captured>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    got.lock()
        .expect("got")
        .push((uri.path().to_owned(), headers, body));
    (StatusCode::OK, Json(serde_json::json!({"ok": true})))
}

/// ntfy, Telegram and SMS against one local server standing in for all three: each channel
/// gets one message per incident, SMS only the critical ones, each request carrying its
/// secret where the service expects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_telegram_and_sms_each_tell_an_incident_once_and_sms_only_critical_ones() {
    let got: Captured = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().fallback(capture).with_state(Arc::clone(&got));
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig::default(),
        &[
            ("EMAG_FBE_API_PASSWORD", "not-the-password-of-fbe"),
            ("EMAG_NTFY_URL", &base),
            ("EMAG_NTFY_TOPIC", "shop-alerts"),
            ("EMAG_NTFY_TOKEN", "tk_ntfy_secret"),
            ("EMAG_TELEGRAM_API_URL", &base),
            ("EMAG_TELEGRAM_BOT_TOKEN", "123:tg-secret"),
            ("EMAG_TELEGRAM_CHAT_ID", "-100200"),
            ("EMAG_SMS_API_URL", &base),
            ("EMAG_SMS_ACCOUNT_SID", "AC123"),
            ("EMAG_SMS_AUTH_TOKEN", "sms-secret"),
            ("EMAG_SMS_FROM", "+40700000000"),
            ("EMAG_SMS_TO", "+40711111111, +40722222222"),
            ("EMAG_ALERT_LANGUAGE", "en"),
        ],
    )
    .await;
    app.sync("fbe", SyncKind::Reference).await;
    let evaluated = evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    let incidents = app.store.incidents(100).await.expect("incidents");
    let critical = incidents
        .iter()
        .filter(|i| i.severity == domain::Severity::Critical)
        .count();
    assert!(critical >= 1, "{incidents:#?}");
    let (_, failed) = deliver_all(&app, 0).await;
    assert_eq!(failed, 0);
    let got = got.lock().expect("got").clone();
    let on = |prefix: &str| {
        got.iter()
            .filter(|(p, _, _)| p.starts_with(prefix))
            .collect::<Vec<_>>()
    };

    let ntfy = on("/shop-alerts");
    assert_eq!(ntfy.len(), evaluated.opened.len());
    for (_, headers, _) in &ntfy {
        assert_eq!(headers["authorization"], "Bearer tk_ntfy_secret");
    }
    assert!(ntfy
        .iter()
        .any(|(_, h, body)| h["priority"] == "5" && body.contains("eMAG refuses")));

    let telegram = on("/bot123:tg-secret/sendMessage");
    assert_eq!(telegram.len(), evaluated.opened.len());
    let sent: Value = serde_json::from_str(&telegram[0].2).expect("telegram JSON");
    assert_eq!(sent["chat_id"], "-100200");

    // Two numbers × the critical incidents only.
    let sms = on("/2010-04-01/Accounts/AC123/Messages.json");
    assert_eq!(sms.len(), 2 * critical, "{sms:#?}");
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC123:sms-secret")
    );
    for (_, headers, body) in &sms {
        assert_eq!(headers["authorization"], basic.as_str());
        assert!(body.contains("From=%2B40700000000"), "{body}");
        assert!(body.contains("CRITICAL"), "{body}");
    }
    cancel.cancel();
}

/// The dashboard's alerts API: the incidents, and acknowledge / resolve with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_acknowledges_and_resolves_incidents_with_the_token() {
    const TOKEN: &str = "alerts-api-test-token-0123456789";
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig::default(),
        &[
            ("EMAG_FBE_API_PASSWORD", "not-the-password-of-fbe"),
            ("EMAG_DASHBOARD_TOKEN", TOKEN),
        ],
    )
    .await;
    app.sync("fbe", SyncKind::Reference).await;
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    let listener = emag_sync::web::bind("127.0.0.1:0".parse().expect("addr"), None)
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let cancel = CancellationToken::new();
    tokio::spawn(emag_sync::web::serve(
        listener,
        emag_sync::web::AppState::new(app.config.clone(), app.store.clone()),
        cancel.clone(),
    ));
    let http = reqwest::Client::new();
    let list: Value = http
        .get(format!("{base}/api/alerts"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let access = list
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["rule"] == "access_refused")
        .unwrap_or_else(|| panic!("no access_refused incident in {list}"));
    assert_eq!(access["state"], "firing");
    assert_eq!(access["severity"], "critical");
    let id = access["id"].as_i64().expect("id");

    let post = |verb: &str, token: Option<&str>| {
        let mut r = http.post(format!("{base}/api/alerts/{id}/{verb}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post("ack", None).await.expect("ack").status(), 401);
    let acked = post("ack", Some(TOKEN)).await.expect("ack");
    assert_eq!(acked.status(), 200);
    assert_eq!(
        acked.json::<Value>().await.expect("JSON")["state"],
        "acknowledged"
    );
    assert_eq!(post("ack", Some(TOKEN)).await.expect("ack").status(), 409);
    let resolved = post("resolve", Some(TOKEN)).await.expect("resolve");
    assert_eq!(resolved.status(), 200);
    let resolved: Value = resolved.json().await.expect("JSON");
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["resolved_by"], "operator (bearer token)");
    let unknown = http
        .post(format!("{base}/api/alerts/999999/resolve"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status(), 404);
    cancel.cancel();
}

/// A minimal SMTP receiver on a port of its own: it takes every message (no TLS, no AUTH:
/// a relay on this machine) and keeps its DATA.
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<String>>>, CancellationToken) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let cancel = CancellationToken::new();
    let (keep, stop) = (Arc::clone(&got), cancel.clone());
    tokio::spawn(async move {
        loop {
            let (socket, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
            };
            let keep = Arc::clone(&keep);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 test ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            keep.lock().expect("got").push(std::mem::take(body));
                            data = None;
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    (port, got, cancel)
}

/// Email through a real SMTP conversation: one message per incident to every recipient,
/// plain text and HTML, in Romanian by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_tells_an_incident_once_in_plain_text_and_html() {
    let (port, got, stop) = smtp_receiver().await;
    let port = port.to_string();
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig::default(),
        &[
            ("EMAG_FBE_API_PASSWORD", "not-the-password-of-fbe"),
            ("EMAG_SMTP_HOST", "127.0.0.1"),
            ("EMAG_SMTP_PORT", &port),
            ("EMAG_SMTP_TLS", "none"),
            ("EMAG_SMTP_FROM", "emag-sync <alerts@shop.example>"),
            (
                "EMAG_ALERT_EMAIL_TO",
                "owner@shop.example, ops@shop.example",
            ),
        ],
    )
    .await;
    app.sync("fbe", SyncKind::Reference).await;
    let opened = evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate")
        .opened
        .len();
    let (sent, failed) = deliver_all(&app, 0).await;
    assert_eq!((sent, failed), (opened, 0));
    let mails = got.lock().expect("got").clone();
    assert_eq!(mails.len(), opened);
    let access = mails
        .iter()
        .find(|m| m.contains("access_refused"))
        .expect("the refusal's email");
    assert!(
        access.contains("To: owner@shop.example, ops@shop.example"),
        "{access}"
    );
    assert!(access.contains("multipart/alternative"), "{access}");
    assert!(access.contains("text/html"), "{access}");
    assert!(access.contains("Problem"), "{access}");
    stop.cancel();
}

fn firing(key: &str, rule: domain::AlertRule, severity: domain::Severity) -> storage::Firing {
    storage::Firing {
        key: key.into(),
        rule,
        account: Some("main".into()),
        kind: None,
        severity,
        message: format!("{key} happened"),
        action: format!("fix {key}"),
    }
}

/// Records one evaluation of `firing` as `start` does (the app's routing and escalation).
async fn record(app: &TestApp, firing: &[storage::Firing]) -> storage::Evaluated {
    let channels = emag_sync::alerts::channels(&app.config);
    let now = storage::now_ms();
    app.store
        .record_evaluation(
            firing,
            &[
                domain::AlertRule::StaleData,
                domain::AlertRule::AccessRefused,
            ],
            &[],
            emag_sync::alerts::routing(&app.config, &channels, now),
            emag_sync::alerts::escalation(&app.config),
            now,
            now,
        )
        .await
        .expect("record")
}

/// With the digest on for warnings, a critical incident is told at once and the warnings
/// wait for one message at the digest's hour, which lists them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_severities_wait_for_one_daily_digest_and_critical_ones_do_not() {
    use domain::{AlertRule, Severity};
    let hook = Webhook::start(Answer::Take).await;
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig::default(),
        &[
            ("EMAG_ALERT_WEBHOOK_URL", &hook.url),
            ("EMAG_ALERT_LANGUAGE", "en"),
            ("EMAG_ALERT_DIGEST", "warning"),
            ("EMAG_ALERT_DIGEST_AT", "08:00"),
        ],
    )
    .await;
    let now = storage::now_ms();
    record(
        &app,
        &[
            firing(
                "stale_data:main:offers",
                AlertRule::StaleData,
                Severity::Warning,
            ),
            firing(
                "stale_data:main:orders",
                AlertRule::StaleData,
                Severity::Warning,
            ),
            firing(
                "access_refused:main:-",
                AlertRule::AccessRefused,
                Severity::Critical,
            ),
        ],
    )
    .await;
    let (sent, failed) = deliver_all(&app, 0).await;
    assert_eq!((sent, failed), (1, 0));
    assert!(
        hook.taken()[0].contains("access_refused"),
        "{:?}",
        hook.taken()
    );

    // Just before the digest's hour nothing more; at it, one message for both.
    let at = emag_sync::alerts::next_digest_at(
        chrono::NaiveTime::from_hms_opt(8, 0, 0).expect("time"),
        chrono_tz::Europe::Bucharest,
        now,
    );
    let http = reqwest::Client::new();
    let early = deliver_due(&app.config, &app.store, &http, at - 1_000)
        .await
        .expect("deliver");
    assert_eq!(early.sent, 0);
    let digest = deliver_due(&app.config, &app.store, &http, at)
        .await
        .expect("deliver");
    assert_eq!(digest.sent, 2, "both notices, in one message");
    let texts = hook.taken();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(
        texts[1].contains("[Daily digest] emag-sync: 2 notices"),
        "{}",
        texts[1]
    );
    assert!(
        texts[1].contains("stale_data:main:offers happened"),
        "{}",
        texts[1]
    );
    assert!(
        texts[1].contains("stale_data:main:orders happened"),
        "{}",
        texts[1]
    );
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!(counts[0].1.delivered, 3);
    assert_eq!(counts[0].1.pending, 0);
}

/// Quiet hours hold a channel's warnings until they end; a critical alert goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_warnings_until_they_end_and_let_critical_alerts_through() {
    use domain::{AlertRule, Severity};
    let hook = Webhook::start(Answer::Take).await;
    // A window around this moment, by Bucharest's clock.
    let local = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Bucharest);
    let from = (local - chrono::Duration::hours(1)).format("%H:%M");
    let to = (local + chrono::Duration::hours(1)).format("%H:%M");
    let window = format!("{from}-{to}");
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig::default(),
        &[
            ("EMAG_ALERT_WEBHOOK_URL", &hook.url),
            ("EMAG_ALERT_QUIET_HOURS", "03:00-03:01"),
            ("EMAG_ALERT_QUIET_HOURS_WEBHOOK", &window),
        ],
    )
    .await;
    record(
        &app,
        &[
            firing(
                "stale_data:main:offers",
                AlertRule::StaleData,
                Severity::Warning,
            ),
            firing(
                "access_refused:main:-",
                AlertRule::AccessRefused,
                Severity::Critical,
            ),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let now = storage::now_ms();
    let first = deliver_due(&app.config, &app.store, &http, now)
        .await
        .expect("deliver");
    assert_eq!((first.sent, first.postponed), (1, 1));
    assert!(hook.taken()[0].contains("access_refused"));
    // Held: not due again before the window ends, due at its end.
    let end = emag_sync::alerts::quiet_until(
        app.config.alerts.quiet_hours[0].1,
        chrono_tz::Europe::Bucharest,
        now,
    )
    .expect("in the window");
    assert!(end > now + 59 * 60_000 - 60_000, "ends in about an hour");
    let held = deliver_due(&app.config, &app.store, &http, end - 1_000)
        .await
        .expect("deliver");
    assert_eq!((held.sent, held.postponed), (0, 0));
    let after = deliver_due(&app.config, &app.store, &http, end)
        .await
        .expect("deliver");
    assert_eq!(after.sent, 1);
    let texts = hook.taken();
    assert_eq!(texts.len(), 2);
    assert!(texts[1].contains("stale_data"), "{}", texts[1]);
    // Attempts were not spent on the wait.
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!(counts[0].1.failed_attempts, 0);
}

/// A channel whose server is down (connection refused): the notice fails, waits for its
/// backoff, and arrives once when a server listens on that address again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_and_the_notice_arrives_once_the_channel_is_back() {
    // An address nothing listens on (bound, then closed).
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let path = "/services/T000/B000/refused";
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig::default(),
        &[
            ("EMAG_FBE_API_PASSWORD", "not-the-password-of-fbe"),
            ("EMAG_ALERT_WEBHOOK_URL", &format!("http://{addr}{path}")),
        ],
    )
    .await;
    app.sync("fbe", SyncKind::Reference).await;
    let opened = evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate")
        .opened
        .len();
    assert!(opened >= 1);
    let (sent, failed) = deliver_all(&app, 0).await;
    assert_eq!((sent, failed), (0, opened), "refused: every notice failed");
    let counts = app.store.outbox_counts().await.expect("counts");
    assert_eq!(counts[0].1.failing, i64::try_from(opened).expect("n"));

    // The channel comes back on the same address.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let hook = Webhook::serve(listener, path, Answer::Take);
    let (sent, failed) = deliver_all(&app, 3_600_000).await;
    assert_eq!((sent, failed), (opened, 0));
    assert_eq!(hook.taken().len(), opened, "each notice once");
    let (again, _) = deliver_all(&app, 7_200_000).await;
    assert_eq!(again, 0, "nothing is sent twice");
}
