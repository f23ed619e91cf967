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
//!
//! Besides the snapshot, two [`Signals`] feed the rules: the 429 waits of each account in the
//! last hour (rate limiting) and the runs taken over from a dead instance (an info notice,
//! resolved silently when its window passes). An incident still firing past both escalation
//! thresholds is raised to critical and told again; notices of low severity may wait for a
//! daily digest; quiet hours hold a channel's non-critical notices until they end.

use std::time::Duration;

use domain::{AlertChannel, AlertRule, Notice, Severity};
use secrecy::ExposeSecret;
use storage::{
    Delivery, Escalation, Evaluated, Firing, IncidentRow, Routing, StorageError, Store, Takeover,
};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Language, QuietHours};
use crate::status::{ConditionKind, InstanceState, Level, Snapshot};

/// The rules [`evaluate`] decides: an open incident of one of them whose condition no longer
/// fires is resolved.
pub const EVALUATED_RULES: [AlertRule; 8] = [
    AlertRule::SchedulerDown,
    AlertRule::AccessRefused,
    AlertRule::StaleData,
    AlertRule::StoppedRun,
    AlertRule::ConsecutiveFailures,
    AlertRule::ErrorBurst,
    AlertRule::RateLimited,
    AlertRule::Takeover,
];

/// Rules about events, not conditions: their incidents resolve without a recovery notice.
pub const SILENT_RECOVERY: [AlertRule; 1] = [AlertRule::Takeover];

/// At most this many notices are sent per delivery round.
const ROUND: usize = 50;

/// What the rules read beside the status snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// 429 waits per account in the last hour (runs finished in it, or running).
    pub rate_limit_waits: Vec<(String, i64)>,
    /// Runs taken over within the takeover window, newest first.
    pub takeovers: Vec<Takeover>,
}

impl Signals {
    pub async fn read(
        config: &Config,
        store: &Store,
        now_ms: i64,
    ) -> Result<Signals, StorageError> {
        let window = i64::try_from(config.alerts.takeover_window.as_millis()).unwrap_or(i64::MAX);
        Ok(Signals {
            rate_limit_waits: store.rate_limit_waits_since(now_ms - 3_600_000).await?,
            takeovers: if window > 0 {
                store.takeovers_since(now_ms.saturating_sub(window)).await?
            } else {
                Vec::new()
            },
        })
    }
}

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

/// The conditions of `snapshot` and `signals` that fire under `config`'s rules. Pure.
pub fn evaluate(config: &Config, snapshot: &Snapshot, signals: &Signals) -> Vec<Firing> {
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
            let (message, action) = match settings.language {
                Language::En => (c.message.clone(), c.action.clone()),
                Language::Ro => romanian(&c, snapshot),
            };
            Firing {
                key: key(rule, c.account.as_deref(), c.sync_kind),
                rule,
                account: c.account,
                kind: c.sync_kind,
                severity: severity(c.severity),
                message,
                action,
            }
        })
        .collect();
    let ro = settings.language == Language::Ro;
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
                message: if ro {
                    format!(
                        "{} {}: {} rulări eșuate la rând; ultima: {}",
                        a.name,
                        k.kind,
                        k.failures_in_row,
                        last.and_then(|r| r.error_message.as_deref())
                            .unwrap_or("fără mesaj")
                    )
                } else {
                    format!(
                        "{} {}: {} failed runs in a row; the last: {}",
                        a.name,
                        k.kind,
                        k.failures_in_row,
                        last.and_then(|r| r.error_message.as_deref())
                            .unwrap_or("no message")
                    )
                },
                action: if ro {
                    format!(
                        "vedeți eroarea cu `emag-sync runs --account {}`; planificatorul \
                         reîncearcă singur",
                        a.name
                    )
                } else {
                    format!(
                        "see `emag-sync runs --account {}` for the error; the scheduler retries \
                         by itself",
                        a.name
                    )
                },
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
            message: if ro {
                format!(
                    "{errors} rulări eșuate în ultima oră (mai mult de {})",
                    settings.errors_per_hour
                )
            } else {
                format!(
                    "{errors} runs failed in the last hour (more than {})",
                    settings.errors_per_hour
                )
            },
            action: if ro {
                "vedeți erorile recente în `emag-sync monitor report` sau în panou".into()
            } else {
                "see the recent errors in `emag-sync monitor report` or the dashboard".into()
            },
        });
    }
    for (account, waits) in &signals.rate_limit_waits {
        if *waits <= settings.rate_limit_waits {
            continue;
        }
        out.push(Firing {
            key: key(AlertRule::RateLimited, Some(account), None),
            rule: AlertRule::RateLimited,
            account: Some(account.clone()),
            kind: None,
            severity: Severity::Warning,
            message: if ro {
                format!(
                    "contul {account}: eMAG a răspuns 429 (prea multe cereri) de {waits} ori în \
                     ultima oră (mai mult de {})",
                    settings.rate_limit_waits
                )
            } else {
                format!(
                    "account {account}: eMAG answered 429 (too many requests) {waits} times in \
                     the last hour (more than {})",
                    settings.rate_limit_waits
                )
            },
            action: if ro {
                format!(
                    "limita eMAG e comună tuturor programelor care folosesc utilizatorul API al \
                     contului {account}: opriți-l sau încetiniți-l pe celălalt (și lăsați \
                     EMAG_RATE_LIMIT pornit)"
                )
            } else {
                format!(
                    "eMAG's limit is shared by every program using the API user of {account}: \
                     stop or slow the other one (and keep EMAG_RATE_LIMIT on)"
                )
            },
        });
    }
    // One notice per (account, kind) taken over, about its latest takeover.
    let mut told: Vec<(&str, domain::SyncKind)> = Vec::new();
    for t in &signals.takeovers {
        if told.contains(&(t.account.as_str(), t.kind)) {
            continue;
        }
        told.push((t.account.as_str(), t.kind));
        let when = chrono::DateTime::from_timestamp_millis(t.at)
            .map(|d| d.format("%H:%M:%S UTC").to_string())
            .unwrap_or_default();
        out.push(Firing {
            key: key(AlertRule::Takeover, Some(&t.account), Some(t.kind)),
            rule: AlertRule::Takeover,
            account: Some(t.account.clone()),
            kind: Some(t.kind),
            severity: Severity::Info,
            message: if ro {
                format!(
                    "rularea {} ({} {}) a fost preluată la {when} de la {}, care nu mai \
                     răspundea; continuă de la ultimul punct salvat (acum {})",
                    t.run_id, t.account, t.kind, t.from, t.state
                )
            } else {
                format!(
                    "{} {} run {} was taken over at {when} from {}, which stopped answering; \
                     it continues from its checkpoint (now {})",
                    t.account, t.kind, t.run_id, t.from, t.state
                )
            },
            action: if ro {
                "nimic de făcut dacă cealaltă instanță a fost oprită intenționat; altfel \
                 verificați de ce s-a oprit (`emag-sync status` listează instanțele)"
                    .into()
            } else {
                "nothing to do if the other instance was stopped on purpose; otherwise check \
                 why it died (`emag-sync status` lists the instances)"
                    .into()
            },
        });
    }
    out
}

/// The message and action of condition `c` in Romanian, from the facts of `snapshot` (the
/// status model words them in English). A refusal's action is eMAG's reason as classified,
/// which names the variables to fix.
fn romanian(c: &crate::status::Condition, snapshot: &Snapshot) -> (String, String) {
    let account = c.account.as_deref().unwrap_or("-");
    let kind = snapshot
        .account(account)
        .and_then(|a| a.kinds.iter().find(|k| Some(k.kind) == c.sync_kind));
    match c.kind {
        ConditionKind::SchedulerDown => (
            "nu rulează nicio instanță a planificatorului: nimic nu se mai sincronizează \
             automat"
                .into(),
            "porniți-l: `emag-sync start --detach` (sau `systemctl start emag-sync`)".into(),
        ),
        ConditionKind::NeedsAttention => (
            format!("contul {account}: eMAG refuză accesul"),
            c.action.clone(),
        ),
        ConditionKind::StoppedRun => {
            let p = kind.and_then(|k| k.progress.as_ref());
            (
                format!(
                    "rularea {} ({account} {}) a fost lăsată de un proces oprit ({})",
                    p.map_or(0, |p| p.run_id),
                    c.sync_kind.map_or("-", domain::SyncKind::as_str),
                    p.and_then(|p| p.holder.as_deref()).unwrap_or("necunoscut")
                ),
                "un planificator pornit o reia la următorul pas; porniți unul dacă nu rulează \
                 niciunul"
                    .into(),
            )
        }
        ConditionKind::StaleData => {
            let what = c.sync_kind.map_or("-", domain::SyncKind::as_str);
            let f = kind.and_then(|k| k.freshness);
            let message = match f.and_then(|f| f.age_ms) {
                Some(age) => format!(
                    "datele {what} ale contului {account} au {} min (învechite după {} min)",
                    age / 60_000,
                    f.map_or(0, |f| f.warn_after_ms / 60_000)
                ),
                None => format!(
                    "datele {what} ale contului {account} nu au fost sincronizate niciodată"
                ),
            };
            let paused = snapshot.account(account).is_some_and(|a| a.paused);
            let last = kind.and_then(|k| k.last_run.as_ref());
            let action = match last {
                _ if paused => format!(
                    "contul este în pauză: nimic nu îl sincronizează; reluați-l cu \
                     `emag-sync resume {account}` (sau din panou)"
                ),
                Some(r) if r.state == domain::RunState::Failed => format!(
                    "ultima rulare a eșuat: {}; vedeți `emag-sync runs --account {account}`",
                    r.error_message.as_deref().unwrap_or("eroare necunoscută")
                ),
                _ => format!(
                    "verificați că rulează un planificator; sincronizați acum cu \
                     `emag-sync sync {account} --kind {what}`"
                ),
            };
            (message, action)
        }
    }
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

/// The escalation thresholds of `config`.
pub fn escalation(config: &Config) -> Escalation {
    let a = &config.alerts;
    if a.escalate_failures == 0 {
        return Escalation::OFF;
    }
    Escalation {
        after_ms: i64::try_from(a.escalate_after.as_millis()).unwrap_or(i64::MAX),
        failed_runs: i64::from(a.escalate_failures),
    }
}

/// Reads the snapshot and the signals, evaluates the rules and records the result (incidents
/// opened, escalated and resolved, their notices queued).
pub async fn evaluate_once(config: &Config, store: &Store) -> Result<Evaluated, StorageError> {
    evaluate_at(config, store, storage::now_ms()).await
}

/// [`evaluate_once`] as if the clock read `read_at` (a later time shows what an hour without
/// news, or an incident held for its escalation time, does).
pub async fn evaluate_at(
    config: &Config,
    store: &Store,
    read_at: i64,
) -> Result<Evaluated, StorageError> {
    let state = crate::status::StoreState::read(store, read_at).await?;
    let snapshot = Snapshot::build(config, &state, read_at);
    let signals = Signals::read(config, store, read_at).await?;
    let firing = evaluate(config, &snapshot, &signals);
    let channels = channels(config);
    let now = read_at.max(storage::now_ms());
    store
        .record_evaluation(
            &firing,
            &EVALUATED_RULES,
            &SILENT_RECOVERY,
            routing(config, &channels, now),
            escalation(config),
            read_at,
            now,
        )
        .await
}

/// Where notices go under `config` at `now`: `channels`, and the digest if one is set.
pub fn routing<'a>(
    config: &Config,
    channels: &'a [(AlertChannel, Severity)],
    now: i64,
) -> Routing<'a> {
    let a = &config.alerts;
    Routing {
        channels,
        digest_up_to: a.digest,
        next_digest_at: next_digest_at(a.digest_at, a.zone, now),
    }
}

/// Resolves incident `id` by hand (`by` says who), with its recovery notice. False if it
/// is not open.
pub async fn resolve_by_hand(
    config: &Config,
    store: &Store,
    id: i64,
    by: &str,
) -> Result<bool, StorageError> {
    let channels = channels(config);
    let now = storage::now_ms();
    store
        .resolve_incident(id, by, routing(config, &channels, now), now)
        .await
}

/// The local date-time `naive` in `zone` as unix ms; a time skipped by a DST change is taken
/// an hour later.
fn local_ms(zone: chrono_tz::Tz, naive: chrono::NaiveDateTime) -> i64 {
    use chrono::TimeZone as _;
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        })
        .map_or(i64::MAX, |t| t.timestamp_millis())
}

/// The first moment after `now` at which the local clock of `zone` reads `at`.
pub fn next_digest_at(at: chrono::NaiveTime, zone: chrono_tz::Tz, now: i64) -> i64 {
    let Some(utc) = chrono::DateTime::from_timestamp_millis(now) else {
        return now;
    };
    let today = utc.with_timezone(&zone).date_naive();
    [
        today,
        today + chrono::Duration::days(1),
        today + chrono::Duration::days(2),
    ]
    .into_iter()
    .map(|d| local_ms(zone, d.and_time(at)))
    .find(|t| *t > now)
    .unwrap_or(now)
}

/// When the quiet hours `q` of `zone` that hold `now` end, or `None` if `now` is not in them.
pub fn quiet_until(q: QuietHours, zone: chrono_tz::Tz, now: i64) -> Option<i64> {
    let utc = chrono::DateTime::from_timestamp_millis(now)?;
    let local = utc.with_timezone(&zone);
    let (date, time) = (local.date_naive(), local.time());
    let inside = if q.from < q.to {
        time >= q.from && time < q.to
    } else {
        time >= q.from || time < q.to
    };
    if !inside {
        return None;
    }
    let end_date = if q.from < q.to || time < q.to {
        date
    } else {
        date + chrono::Duration::days(1)
    };
    Some(local_ms(zone, end_date.and_time(q.to)))
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
                Notice::Escalated => "Escaladat",
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
                Notice::Escalated => "Escalated",
                Notice::Test => "Test",
            },
            "since",
            "What to do",
            "The problem is gone.",
        ),
    };
    let mut body = match notice {
        Notice::Resolved => format!("{}\n{back} ({since} {when})", incident.message),
        Notice::Escalated => format!(
            "{}\n{}\n{todo}: {}",
            incident.message,
            match language {
                Language::Ro =>
                    format!("Încă nerezolvat, din {when}, cu rulări eșuate între timp."),
                Language::En => format!("Still unresolved since {when}, with failed runs since."),
            },
            incident.action
        ),
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

/// One message for the digest notices of a channel: a line per notice, oldest first.
pub fn render_digest(
    deliveries: &[Delivery],
    language: Language,
    dashboard_url: Option<&str>,
) -> Message {
    let title = match language {
        Language::Ro => format!(
            "[Rezumat zilnic] emag-sync: {} notificări",
            deliveries.len()
        ),
        Language::En => format!("[Daily digest] emag-sync: {} notices", deliveries.len()),
    };
    let mut body = String::new();
    for d in deliveries {
        let one = render(&d.incident, d.notice, language, None);
        let first = one.body.lines().next().unwrap_or_default();
        body.push_str(&format!("- {} · {first}\n", one.title));
    }
    if let Some(url) = dashboard_url {
        body.push_str(&format!("{url}/\n"));
    }
    Message {
        title,
        body: body.trim_end().to_owned(),
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
                answer(
                    channel,
                    a.send_timeout,
                    r.timeout(a.send_timeout).send().await,
                )?;
            }
            return Ok(());
        }
        AlertChannel::Email => {
            let e = a
                .email
                .as_ref()
                .ok_or_else(|| not_configured("EMAG_SMTP_HOST"))?;
            return send_email(e, message, a.send_timeout).await;
        }
    };
    answer(
        channel,
        a.send_timeout,
        request.timeout(a.send_timeout).send().await,
    )
}

/// One email to every recipient of `EMAG_ALERT_EMAIL_TO`: plain text and HTML.
async fn send_email(
    e: &crate::config::EmailSettings,
    message: &Message,
    timeout: Duration,
) -> Result<(), SendError> {
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
        .timeout(Some(timeout));
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
            timeout.as_secs_f64()
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
    timeout: Duration,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<(), SendError> {
    match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(SendError(format!("{channel} answered {}", r.status()))),
        Err(e) if e.is_timeout() => Err(SendError(format!(
            "{channel} did not answer within {} s",
            timeout.as_secs_f64()
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

/// When a notice that failed `attempts` times (this one included) is tried again: `first`
/// (30 s by default), doubling, at most an hour.
pub fn retry_after(first: Duration, attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    first
        .saturating_mul(1 << doublings.min(10))
        .min(Duration::from_secs(3600))
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Notices sent (a digest counts each notice in it).
    pub sent: usize,
    /// Notices whose send failed (due again after their backoff).
    pub failed: usize,
    /// Notices held back by their channel's quiet hours.
    pub postponed: usize,
}

/// The quiet hours of `channel` that hold `now`, as their end: only for notices that are not
/// critical (an incident escalated since it opened is critical).
fn quiet_for(config: &Config, channel: AlertChannel, severity: Severity, now: i64) -> Option<i64> {
    if severity >= Severity::Critical {
        return None;
    }
    let a = &config.alerts;
    a.quiet_hours
        .iter()
        .find(|(c, _)| *c == channel)
        .and_then(|(_, q)| quiet_until(*q, a.zone, now))
}

fn ms_after(d: Duration) -> i64 {
    storage::now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sends the notices due at `now`, one claim at a time (each claim outlives one send, so a
/// notice is never claimed twice while it is being sent): at most one round's worth.
pub async fn deliver_due(
    config: &Config,
    store: &Store,
    http: &reqwest::Client,
    now: i64,
) -> Result<Delivered, StorageError> {
    let a = &config.alerts;
    // A claim lasts two send timeouts: the send is cut by the first.
    let lease = i64::try_from(a.send_timeout.as_millis().saturating_mul(2)).unwrap_or(i64::MAX);
    let mut done = Delivered::default();
    while done.sent + done.failed + done.postponed < ROUND {
        let Some(first) = store.claim_deliveries(now, lease, 1).await?.pop() else {
            break;
        };
        let (channel, severity) = (first.channel, first.incident.severity);
        let batch = if first.digest {
            let mut all = vec![first];
            let limit = i64::try_from(ROUND).unwrap_or(50);
            all.extend(store.claim_digest(channel, now, lease, limit).await?);
            all
        } else {
            vec![first]
        };
        if let Some(until) = quiet_for(config, channel, severity, now) {
            for d in &batch {
                store.postpone_delivery(d.id, until).await?;
            }
            done.postponed += batch.len();
            continue;
        }
        let message = if batch[0].digest {
            render_digest(&batch, a.language, a.dashboard_url.as_deref())
        } else {
            render(
                &batch[0].incident,
                batch[0].notice,
                a.language,
                a.dashboard_url.as_deref(),
            )
        };
        let worst = batch
            .iter()
            .map(|d| d.incident.severity)
            .max()
            .unwrap_or(severity);
        match send(config, http, channel, &message, worst).await {
            Ok(()) => {
                let at = storage::now_ms();
                for d in &batch {
                    store.delivered(d.id, at).await?;
                    tracing::info!(incident = d.incident.id, channel = %d.channel, notice = %d.notice, digest = d.digest, "alert sent");
                }
                done.sent += batch.len();
            }
            Err(SendError(why)) => {
                for d in &batch {
                    let wait = retry_after(a.retry_delay, d.attempts + 1);
                    store.delivery_failed(d.id, &why, ms_after(wait)).await?;
                    tracing::warn!(incident = d.incident.id, channel = %d.channel, attempt = d.attempts + 1, "alert not sent: {why}; retrying in {} s", wait.as_secs());
                }
                done.failed += batch.len();
            }
        }
    }
    Ok(done)
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
                // Readiness for harnesses that wait for evaluations.
                tracing::debug!(
                    opened = e.opened.len(),
                    escalated = e.escalated.len(),
                    resolved = e.resolved.len(),
                    "alerts evaluated"
                );
                for id in &e.opened {
                    tracing::warn!(incident = id, "alert opened");
                }
                for id in &e.escalated {
                    tracing::warn!(incident = id, "alert escalated");
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
            r = deliver => match r {
                // Logged once the outbox says so: whoever reads it after this line sees it.
                Ok(d) => tracing::debug!(
                    sent = d.sent, failed = d.failed, postponed = d.postponed, "alerts delivered"
                ),
                Err(e) => tracing::warn!("delivering alerts failed: {e}"),
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
            evaluate(&config(), s, &Signals::default())
                .iter()
                .filter(|f| f.rule == AlertRule::StaleData)
                .count()
        };
        assert_eq!(stale(&fresh_install(2)), 0, "two minutes after start");
        assert_eq!(stale(&fresh_install(45)), 1, "past the 35-minute threshold");
    }

    #[test]
    fn messages_are_worded_in_romanian_by_default_and_in_english_on_request() {
        let ro = evaluate(&config(), &fresh_install(45), &Signals::default());
        let stale = ro
            .iter()
            .find(|f| f.rule == AlertRule::StaleData)
            .expect("stale");
        assert!(
            stale.message.contains("nu au fost sincronizate niciodată"),
            "{}",
            stale.message
        );
        assert!(stale.action.contains("verificați"), "{}", stale.action);
        let mut en = config();
        en.alerts.language = Language::En;
        let stale = evaluate(&en, &fresh_install(45), &Signals::default())
            .into_iter()
            .find(|f| f.rule == AlertRule::StaleData)
            .expect("stale");
        assert!(stale.message.contains("never synced"), "{}", stale.message);
    }

    fn utc(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .expect("time")
            .timestamp_millis()
    }

    #[test]
    fn the_digest_is_due_at_its_local_hour_across_midnight_and_dst() {
        let at = chrono::NaiveTime::from_hms_opt(8, 0, 0).expect("time");
        let bucharest = chrono_tz::Europe::Bucharest;
        // Winter: UTC+2. 05:00 UTC is 07:00 local: today 08:00 local = 06:00 UTC.
        assert_eq!(
            next_digest_at(at, bucharest, utc("2026-11-30T05:00:00Z")),
            utc("2026-11-30T06:00:00Z")
        );
        // Past it: tomorrow.
        assert_eq!(
            next_digest_at(at, bucharest, utc("2026-11-30T06:00:00Z")),
            utc("2026-12-01T06:00:00Z")
        );
        // Summer: UTC+3.
        assert_eq!(
            next_digest_at(at, bucharest, utc("2026-07-01T12:00:00Z")),
            utc("2026-07-02T05:00:00Z")
        );
        // 03:30 local does not exist on the spring-forward night: an hour later.
        let skipped = chrono::NaiveTime::from_hms_opt(3, 30, 0).expect("time");
        assert_eq!(
            next_digest_at(skipped, bucharest, utc("2026-03-28T23:00:00Z")),
            utc("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn quiet_hours_hold_until_their_end_and_may_wrap_midnight() {
        let zone = chrono_tz::Europe::Bucharest;
        let night: QuietHours = "22:00-07:00".parse().expect("window");
        // 23:30 local (21:30 UTC) → 07:00 local next day (05:00 UTC).
        assert_eq!(
            quiet_until(night, zone, utc("2026-11-30T21:30:00Z")),
            Some(utc("2026-12-01T05:00:00Z"))
        );
        // 03:00 local → 07:00 local the same day.
        assert_eq!(
            quiet_until(night, zone, utc("2026-12-01T01:00:00Z")),
            Some(utc("2026-12-01T05:00:00Z"))
        );
        // 07:00 local exactly is no longer quiet; noon is not.
        assert_eq!(quiet_until(night, zone, utc("2026-12-01T05:00:00Z")), None);
        assert_eq!(quiet_until(night, zone, utc("2026-12-01T10:00:00Z")), None);
        let lunch: QuietHours = "12:00-13:00".parse().expect("window");
        assert_eq!(
            quiet_until(lunch, zone, utc("2026-12-01T10:30:00Z")),
            Some(utc("2026-12-01T11:00:00Z"))
        );
        assert!("22:00".parse::<QuietHours>().is_err());
        assert!("22:00-22:00".parse::<QuietHours>().is_err());
        assert!("25:00-07:00".parse::<QuietHours>().is_err());
    }

    #[test]
    fn rate_limiting_above_the_threshold_and_takeovers_fire_once_per_account_and_kind() {
        let mut cfg = config();
        cfg.alerts.language = Language::En;
        let snapshot = fresh_install(2);
        let now = snapshot.taken_at;
        let takeover = |run_id, kind| Takeover {
            run_id,
            account: "main".into(),
            kind,
            from: "dead-host:7:abc".into(),
            at: now - 60_000,
            state: domain::RunState::Running,
        };
        let signals = Signals {
            rate_limit_waits: vec![("fbe".into(), 21), ("main".into(), 20)],
            takeovers: vec![
                takeover(9, domain::SyncKind::Offers),
                takeover(8, domain::SyncKind::Offers),
                takeover(7, domain::SyncKind::Orders),
            ],
        };
        let fired = evaluate(&cfg, &snapshot, &signals);
        let limited: Vec<&Firing> = fired
            .iter()
            .filter(|f| f.rule == AlertRule::RateLimited)
            .collect();
        assert_eq!(
            limited.len(),
            1,
            "20 waits is not more than 20: {limited:?}"
        );
        assert_eq!(limited[0].key, "rate_limited:fbe:-");
        assert!(limited[0].message.contains("21 times"));
        let taken: Vec<&Firing> = fired
            .iter()
            .filter(|f| f.rule == AlertRule::Takeover)
            .collect();
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert_eq!(taken[0].key, "takeover:main:offers");
        assert_eq!(taken[0].severity, Severity::Info);
        assert!(taken[0].message.contains("run 9"), "{}", taken[0].message);
        assert!(taken[0].message.contains("dead-host:7:abc"));
    }

    #[test]
    fn retries_back_off_from_30_seconds_to_an_hour() {
        let first = Duration::from_secs(30);
        assert_eq!(retry_after(first, 1), Duration::from_secs(30));
        assert_eq!(retry_after(first, 2), Duration::from_secs(60));
        assert_eq!(retry_after(first, 4), Duration::from_secs(240));
        assert_eq!(retry_after(first, 50), Duration::from_secs(3600));
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
            escalated_at: None,
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
