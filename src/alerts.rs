//! Alerts: rules decided from the status snapshot, incidents stored so each is told once (and
//! its recovery once) whoever evaluates, and an outbox delivered with retries.
//!
//! - [`evaluate`] is pure: the snapshot in, the conditions that fire out ([`Firing`], keyed by
//!   rule, account and kind). It builds on [`Snapshot::conditions`] (scheduler down, access
//!   refused, stale data, stopped runs) and adds failures in a row and the hourly error burst.
//! - [`evaluate_once`] reads a snapshot and records the evaluation in the store, which opens
//!   and resolves incidents and writes their notices to the outbox in the same transaction.
//! - [`deliver_due`] claims due notices and sends them; a failure is retried with backoff, a
//!   channel that hangs is cut by its timeout, and nothing here touches the sync.
//! - [`run`] does both on a timer inside `start`; `emag-sync alerts` lists, acknowledges and
//!   resolves.
//!
//! Channels: a Slack-compatible webhook, email (SMTP), ntfy, a Telegram bot and SMS (Twilio).
//! The rate-limit rule and the run takeover notice are not evaluated yet (they need the 429
//! counts per hour in the store).

use std::time::Duration;

use domain::{AlertChannel, AlertRule, Notice, Severity};
use secrecy::ExposeSecret;
use storage::{Delivery, Evaluated, Firing, IncidentRow, StorageError, Store};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Language};
use crate::status::{ConditionKind, InstanceState, Level, Snapshot};

/// The rules [`evaluate`] decides: an open incident of one of them whose condition no longer
/// fires is resolved.
pub const EVALUATED_RULES: [AlertRule; 6] = [
    AlertRule::SchedulerDown,
    AlertRule::AccessRefused,
    AlertRule::StaleData,
    AlertRule::StoppedRun,
    AlertRule::ConsecutiveFailures,
    AlertRule::ErrorBurst,
];

/// How long a claimed notice is ours before another process may send it.
const CLAIM_MS: i64 = 60_000;
/// One send may take this long; a channel that hangs longer is a failed attempt.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

fn severity(level: Level) -> Severity {
    match level {
        Level::Critical => Severity::Critical,
        Level::Warning => Severity::Warning,
        _ => Severity::Info,
    }
}

fn key(rule: AlertRule, account: Option<&str>, kind: Option<domain::SyncKind>) -> String {
    format!(
        "{}:{}:{}",
        rule.as_str(),
        account.unwrap_or("-"),
        kind.map_or("-", domain::SyncKind::as_str)
    )
}

/// The conditions of `snapshot` that fire under `config`'s rules. Pure.
pub fn evaluate(config: &Config, snapshot: &Snapshot) -> Vec<Firing> {
    let settings = &config.alerts;
    // Data never synced is no news while the scheduler that will sync it has just started
    // (a fresh install would get an alert per kind, then a recovery per kind, in its first
    // minutes): it fires once a live instance has run longer than the kind's threshold.
    let uptime = snapshot
        .scheduler
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Live)
        .map(|i| snapshot.taken_at - i.row.started_at)
        .max();
    let never_synced_yet = |account: Option<&str>, kind: Option<domain::SyncKind>| {
        let freshness = snapshot
            .accounts
            .iter()
            .find(|a| Some(a.name.as_str()) == account)
            .and_then(|a| a.kinds.iter().find(|k| Some(k.kind) == kind))
            .and_then(|k| k.freshness);
        match (freshness, uptime) {
            (Some(f), Some(up)) => f.age_ms.is_none() && up < f.warn_after_ms,
            _ => false,
        }
    };
    let mut out: Vec<Firing> = snapshot
        .conditions()
        .into_iter()
        .filter(|c| {
            c.kind != ConditionKind::StaleData
                || !never_synced_yet(c.account.as_deref(), c.sync_kind)
        })
        .map(|c| {
            let rule = match c.kind {
                ConditionKind::SchedulerDown => AlertRule::SchedulerDown,
                ConditionKind::NeedsAttention => AlertRule::AccessRefused,
                ConditionKind::StaleData => AlertRule::StaleData,
                ConditionKind::StoppedRun => AlertRule::StoppedRun,
            };
            Firing {
                key: key(rule, c.account.as_deref(), c.sync_kind),
                rule,
                account: c.account,
                kind: c.sync_kind,
                severity: severity(c.severity),
                message: c.message,
                action: c.action,
            }
        })
        .collect();
    for a in snapshot.accounts.iter().filter(|a| !a.paused) {
        for k in &a.kinds {
            if k.failures_in_row < settings.consecutive_failures {
                continue;
            }
            let last = k.last_run.as_ref();
            out.push(Firing {
                key: key(AlertRule::ConsecutiveFailures, Some(&a.name), Some(k.kind)),
                rule: AlertRule::ConsecutiveFailures,
                account: Some(a.name.clone()),
                kind: Some(k.kind),
                severity: Severity::Warning,
                message: format!(
                    "{} {}: {} failed runs in a row; the last: {}",
                    a.name,
                    k.kind,
                    k.failures_in_row,
                    last.and_then(|r| r.error_message.as_deref())
                        .unwrap_or("no message")
                ),
                action: format!(
                    "see `emag-sync runs --account {}` for the error; the scheduler retries by itself",
                    a.name
                ),
            });
        }
    }
    let errors = snapshot.last_hour.errors;
    if errors > settings.errors_per_hour {
        out.push(Firing {
            key: key(AlertRule::ErrorBurst, None, None),
            rule: AlertRule::ErrorBurst,
            account: None,
            kind: None,
            severity: Severity::Warning,
            message: format!(
                "{errors} runs failed in the last hour (more than {})",
                settings.errors_per_hour
            ),
            action: "see the recent errors in `emag-sync monitor report` or the dashboard".into(),
        });
    }
    out
}

/// The channels configured, in a fixed order, each with the least severity it tells.
pub fn channels(config: &Config) -> Vec<(AlertChannel, Severity)> {
    let a = &config.alerts;
    let mut out = Vec::new();
    if a.webhook_url.is_some() {
        out.push((AlertChannel::Webhook, Severity::Info));
    }
    if a.email.is_some() {
        out.push((AlertChannel::Email, Severity::Info));
    }
    if a.ntfy.is_some() {
        out.push((AlertChannel::Ntfy, Severity::Info));
    }
    if a.telegram.is_some() {
        out.push((AlertChannel::Telegram, Severity::Info));
    }
    if let Some(sms) = &a.sms {
        out.push((AlertChannel::Sms, sms.min_severity));
    }
    out
}

/// Reads the snapshot, evaluates the rules and records the result (incidents opened and
/// resolved, their notices queued).
pub async fn evaluate_once(config: &Config, store: &Store) -> Result<Evaluated, StorageError> {
    let read_at = storage::now_ms();
    let snapshot = Snapshot::read(config, store).await?;
    let firing = evaluate(config, &snapshot);
    store
        .record_evaluation(
            &firing,
            &EVALUATED_RULES,
            &channels(config),
            read_at,
            storage::now_ms(),
        )
        .await
}

/// A message as every channel renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub body: String,
}

/// The message of a notice about `incident`, in `language`, with a link to the dashboard
/// when its address is known. Names the account, what happened, since when and what to do.
pub fn render(
    incident: &IncidentRow,
    notice: Notice,
    language: Language,
    dashboard_url: Option<&str>,
) -> Message {
    let when = chrono::DateTime::from_timestamp_millis(incident.opened_at)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let whom = incident.account.as_deref().unwrap_or("emag-sync");
    let (sev, title, since, todo, back) = match language {
        Language::Ro => (
            match incident.severity {
                Severity::Critical => "CRITIC",
                Severity::Warning => "AVERTISMENT",
                Severity::Info => "INFO",
            },
            match notice {
                Notice::Opened => "Problemă",
                Notice::Resolved => "Rezolvat",
                Notice::Test => "Test",
            },
            "din",
            "Ce faceți",
            "Problema nu mai apare.",
        ),
        Language::En => (
            match incident.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "WARNING",
                Severity::Info => "INFO",
            },
            match notice {
                Notice::Opened => "Problem",
                Notice::Resolved => "Resolved",
                Notice::Test => "Test",
            },
            "since",
            "What to do",
            "The problem is gone.",
        ),
    };
    let mut body = match notice {
        Notice::Resolved => format!("{}\n{back} ({since} {when})", incident.message),
        _ => format!(
            "{}\n{since} {when}\n{todo}: {}",
            incident.message, incident.action
        ),
    };
    if let Some(url) = dashboard_url {
        body.push_str(&format!("\n{url}/"));
    }
    Message {
        title: format!("[{sev}] {title}: {whom} — {}", incident.rule),
        body,
    }
}

/// Why a send failed, without any secret (no URL, no token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError(pub String);

fn not_configured(variable: &str) -> SendError {
    SendError(format!("not configured ({variable})"))
}

/// Sends one message through `channel`. Every request carries its secret only where the
/// service expects it; errors name the channel and the HTTP status, never the URL.
pub async fn send(
    config: &Config,
    http: &reqwest::Client,
    channel: AlertChannel,
    message: &Message,
    severity: Severity,
) -> Result<(), SendError> {
    let a = &config.alerts;
    let request = match channel {
        AlertChannel::Webhook => {
            let url = a
                .webhook_url
                .as_ref()
                .ok_or_else(|| not_configured("EMAG_ALERT_WEBHOOK_URL"))?;
            // Slack's incoming-webhook payload: `text` is shown everywhere (Mattermost and
            // Teams relays take it too).
            http.post(url.expose_secret()).json(&serde_json::json!({
                "text": format!("*{}*\n{}", message.title, message.body),
            }))
        }
        AlertChannel::Ntfy => {
            let n = a
                .ntfy
                .as_ref()
                .ok_or_else(|| not_configured("EMAG_NTFY_URL"))?;
            let priority = match severity {
                Severity::Critical => "5",
                Severity::Warning => "4",
                Severity::Info => "3",
            };
            let tags = if severity == Severity::Critical {
                "rotating_light"
            } else {
                "warning"
            };
            let mut r = http
                .post(format!("{}/{}", n.url, n.topic))
                .header("Title", encode_header(&message.title))
                .header("Priority", priority)
                .header("Tags", tags)
                .body(message.body.clone());
            if let Some(token) = &n.token {
                r = r.bearer_auth(token.expose_secret());
            }
            r
        }
        AlertChannel::Telegram => {
            let t = a
                .telegram
                .as_ref()
                .ok_or_else(|| not_configured("EMAG_TELEGRAM_BOT_TOKEN"))?;
            http.post(format!(
                "{}/bot{}/sendMessage",
                t.api_url,
                t.bot_token.expose_secret()
            ))
            .json(&serde_json::json!({
                "chat_id": t.chat_id,
                "text": format!("{}\n{}", message.title, message.body),
                "disable_web_page_preview": true,
            }))
        }
        AlertChannel::Sms => {
            let s = a
                .sms
                .as_ref()
                .ok_or_else(|| not_configured("EMAG_SMS_ACCOUNT_SID"))?;
            // One message per number; the first that fails fails the notice, and all are
            // sent again: a duplicate SMS beats a lost one.
            let text = sms_text(message);
            for to in &s.to {
                let r = http
                    .post(format!(
                        "{}/2010-04-01/Accounts/{}/Messages.json",
                        s.api_url, s.account_sid
                    ))
                    .basic_auth(&s.account_sid, Some(s.auth_token.expose_secret()))
                    .form(&[
                        ("To", to.as_str()),
                        ("From", s.from.as_str()),
                        ("Body", text.as_str()),
                    ]);
                answer(channel, r.timeout(SEND_TIMEOUT).send().await)?;
            }
            return Ok(());
        }
        AlertChannel::Email => {
            let e = a
                .email
                .as_ref()
                .ok_or_else(|| not_configured("EMAG_SMTP_HOST"))?;
            return send_email(e, message).await;
        }
    };
    answer(channel, request.timeout(SEND_TIMEOUT).send().await)
}

/// One email to every recipient of `EMAG_ALERT_EMAIL_TO`: plain text and HTML.
async fn send_email(e: &crate::config::EmailSettings, message: &Message) -> Result<(), SendError> {
    use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    let bad_address = |what: &str| SendError(format!("email: {what} is not an address"));
    let from: Mailbox = e.from.parse().map_err(|_| bad_address("EMAG_SMTP_FROM"))?;
    let mut builder = lettre::Message::builder()
        .from(from)
        .subject(message.title.clone());
    for to in &e.to {
        builder = builder.to(to.parse().map_err(|_| bad_address("EMAG_ALERT_EMAIL_TO"))?);
    }
    let html = format!(
        "<!doctype html><html><body><h3>{}</h3><p>{}</p></body></html>",
        escape_html(&message.title),
        escape_html(&message.body).replace('\n', "<br>")
    );
    let email = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(message.body.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|_| SendError("email: the message could not be built".into()))?;
    let relay = match e.tls {
        crate::config::SmtpTls::StartTls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host)
        }
        crate::config::SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host),
        crate::config::SmtpTls::None => Ok(
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host),
        ),
    };
    let mut transport = relay
        .map_err(|_| SendError("email: cannot set up TLS for the SMTP host".into()))?
        .port(e.port)
        .timeout(Some(SEND_TIMEOUT));
    if let (Some(user), Some(password)) = (&e.username, &e.password) {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    match transport.build().send(email).await {
        Ok(_) => Ok(()),
        // lettre's errors quote the server's reply, never our credentials; we still say it
        // in our own words.
        Err(err) if err.is_permanent() => Err(SendError(
            "email: the SMTP server refused the message (check EMAG_SMTP_USERNAME / \
             EMAG_SMTP_PASSWORD and the addresses)"
                .into(),
        )),
        Err(err) if err.is_timeout() => Err(SendError(format!(
            "email: the SMTP server did not answer within {} s",
            SEND_TIMEOUT.as_secs()
        ))),
        Err(_) => Err(SendError("email: cannot talk to the SMTP server".into())),
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An HTTP channel's answer as a result, in words without secrets (a reqwest error's text
/// holds the URL, which holds the Telegram token: it is never used).
fn answer(
    channel: AlertChannel,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<(), SendError> {
    match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(SendError(format!("{channel} answered {}", r.status()))),
        Err(e) if e.is_timeout() => Err(SendError(format!(
            "{channel} did not answer within {} s",
            SEND_TIMEOUT.as_secs()
        ))),
        Err(e) if e.is_connect() => Err(SendError(format!("cannot connect to {channel}"))),
        Err(_) => Err(SendError(format!("the {channel} request failed"))),
    }
}

/// A header value ntfy shows as the title: non-ASCII (Romanian diacritics) is sent as
/// RFC 2047 UTF-8 base64, which ntfy decodes.
fn encode_header(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        use base64::Engine as _;
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

/// An SMS: the title and the first line of the body, at most 300 characters.
fn sms_text(message: &Message) -> String {
    let first = message.body.lines().next().unwrap_or_default();
    format!("{} {}", message.title, first)
        .chars()
        .take(300)
        .collect()
}

/// When a notice that failed `attempts` times (this one included) is tried again: 30 s,
/// doubling, at most an hour.
pub fn retry_after(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(30u64.saturating_mul(1 << doublings.min(7))).min(Duration::from_secs(3600))
}

/// Sends the notices due at `now`; returns (sent, failed).
pub async fn deliver_due(
    config: &Config,
    store: &Store,
    http: &reqwest::Client,
    now: i64,
) -> Result<(usize, usize), StorageError> {
    let due: Vec<Delivery> = store.claim_deliveries(now, CLAIM_MS, 50).await?;
    let (mut sent, mut failed) = (0, 0);
    for d in due {
        let message = render(
            &d.incident,
            d.notice,
            config.alerts.language,
            config.alerts.dashboard_url.as_deref(),
        );
        match send(config, http, d.channel, &message, d.incident.severity).await {
            Ok(()) => {
                store.delivered(d.id, storage::now_ms()).await?;
                tracing::info!(incident = d.incident.id, channel = %d.channel, notice = %d.notice, "alert sent");
                sent += 1;
            }
            Err(SendError(why)) => {
                let wait = retry_after(d.attempts + 1);
                let retry_at =
                    storage::now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                store.delivery_failed(d.id, &why, retry_at).await?;
                tracing::warn!(incident = d.incident.id, channel = %d.channel, attempt = d.attempts + 1, "alert not sent: {why}; retrying in {} s", wait.as_secs());
                failed += 1;
            }
        }
    }
    Ok((sent, failed))
}

/// Evaluates and delivers every `EMAG_ALERT_EVALUATE_EVERY` until `cancel`; what fails is
/// logged and tried again at the next tick. Runs beside the scheduler, never inside a sync.
pub async fn run(config: Config, store: Store, cancel: CancellationToken) {
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("alerts are off: cannot build the HTTP client: {e}");
            return;
        }
    };
    let mut ticks = tokio::time::interval(config.alerts.evaluate_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match evaluate_once(&config, &store).await {
            Ok(e) => {
                for id in &e.opened {
                    tracing::warn!(incident = id, "alert opened");
                }
                for id in &e.resolved {
                    tracing::info!(incident = id, "alert resolved");
                }
            }
            Err(e) => tracing::warn!("evaluating the alert rules failed: {e}"),
        }
        let deliver = deliver_due(&config, &store, &http, storage::now_ms());
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = deliver => if let Err(e) = r {
                tracing::warn!("delivering alerts failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::tests::config;

    /// Nothing synced yet, with a scheduler that started `minutes` ago.
    fn fresh_install(minutes: i64) -> Snapshot {
        let now = 1_764_460_800_000;
        let state = crate::status::StoreState {
            instances: vec![storage::InstanceRow {
                id: "host:1:a".into(),
                host: "host".into(),
                pid: 1,
                version: "0".into(),
                started_at: now - minutes * 60_000,
                heartbeat_at: now - 1_000,
                schedules: 1,
                running: 1,
                stopped_at: None,
            }],
            ..Default::default()
        };
        Snapshot::build(&config(), &state, now)
    }

    #[test]
    fn never_synced_data_is_not_alerted_while_a_just_started_scheduler_syncs_it() {
        let stale = |s: &Snapshot| {
            evaluate(&config(), s)
                .iter()
                .filter(|f| f.rule == AlertRule::StaleData)
                .count()
        };
        assert_eq!(stale(&fresh_install(2)), 0, "two minutes after start");
        assert_eq!(stale(&fresh_install(45)), 1, "past the 35-minute threshold");
    }

    #[test]
    fn retries_back_off_from_30_seconds_to_an_hour() {
        assert_eq!(retry_after(1), Duration::from_secs(30));
        assert_eq!(retry_after(2), Duration::from_secs(60));
        assert_eq!(retry_after(4), Duration::from_secs(240));
        assert_eq!(retry_after(50), Duration::from_secs(3600));
    }

    #[test]
    fn messages_name_the_account_the_problem_since_when_and_the_fix_in_both_languages() {
        let incident = IncidentRow {
            id: 7,
            key: "access_refused:fbe:-".into(),
            rule: AlertRule::AccessRefused,
            account: Some("fbe".into()),
            kind: None,
            severity: Severity::Critical,
            state: domain::IncidentState::Firing,
            message: "account fbe: eMAG refuses its access".into(),
            action: "check EMAG_FBE_API_PASSWORD".into(),
            opened_at: 1_764_460_800_000,
            last_seen_at: 1_764_460_800_000,
            acknowledged_at: None,
            resolved_at: None,
            resolved_by: None,
        };
        let ro = render(
            &incident,
            Notice::Opened,
            Language::Ro,
            Some("https://x.example"),
        );
        assert_eq!(ro.title, "[CRITIC] Problemă: fbe — access_refused");
        assert!(ro.body.contains("din 2025-11-30 00:00 UTC"), "{}", ro.body);
        assert!(ro.body.contains("Ce faceți: check EMAG_FBE_API_PASSWORD"));
        assert!(ro.body.ends_with("https://x.example/"));
        let en = render(&incident, Notice::Resolved, Language::En, None);
        assert_eq!(en.title, "[CRITICAL] Resolved: fbe — access_refused");
        assert!(en.body.contains("The problem is gone."));
    }
}
