//! `emag-sync alerts`: the incidents (open first), acknowledge or resolve one, evaluate the
//! rules now, or send a test message through every configured channel.

use std::path::Path;

use domain::{IncidentState, Notice, Severity};
use emag_sync::alerts;
use storage::IncidentRow;

use super::{load_config, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: Option<What>,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The open incidents, then the latest resolved ones (the default).
    List {
        /// How many to show.
        #[arg(long, default_value_t = 30)]
        limit: i64,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an open incident: no reminders; it still resolves by itself.
    Ack { id: i64 },
    /// Resolve an incident by hand (a recovery notice is sent); it opens again if the
    /// condition still holds at the next evaluation.
    Resolve { id: i64 },
    /// Evaluate the rules now and send what is due (what `start` does every
    /// EMAG_ALERT_EVALUATE_EVERY seconds).
    Check,
    /// Send a test message through every configured channel (or one) and say which worked.
    Test {
        /// Only this channel: webhook, email, sms, ntfy or telegram.
        #[arg(long)]
        channel: Option<domain::AlertChannel>,
    },
}

pub async fn run(env_file: Option<&Path>, args: Args) -> u8 {
    let config = match load_config(env_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let code = match args.what.unwrap_or(What::List {
        limit: 30,
        json: false,
    }) {
        What::List { limit, json } => match store.incidents(limit.clamp(1, 1000)).await {
            Ok(rows) if json => match serde_json::to_string_pretty(&rows) {
                Ok(text) => {
                    println!("{text}");
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            },
            Ok(rows) => {
                print_incidents(&rows);
                0
            }
            Err(e) => {
                eprintln!("error: cannot read the incidents: {e}");
                1
            }
        },
        What::Ack { id } => match store.acknowledge_incident(id, storage::now_ms()).await {
            Ok(true) => {
                println!("incident {id} acknowledged");
                0
            }
            Ok(false) => {
                eprintln!("error: no firing incident {id} (see `emag-sync alerts list`)");
                1
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        What::Resolve { id } => {
            match alerts::resolve_by_hand(&config, &store, id, "operator (cli)").await {
                Ok(true) => {
                    println!("incident {id} resolved");
                    0
                }
                Ok(false) => {
                    eprintln!("error: no open incident {id} (see `emag-sync alerts list`)");
                    1
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        What::Check => check(&config, &store).await,
        What::Test { channel } => test(&config, channel).await,
    };
    store.close().await;
    code
}

async fn check(config: &emag_sync::config::Config, store: &storage::Store) -> u8 {
    let evaluated = match alerts::evaluate_once(config, store).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: evaluating the rules failed: {e}");
            return 1;
        }
    };
    let http = reqwest::Client::new();
    match alerts::deliver_due(config, store, &http, storage::now_ms()).await {
        Ok(done) => {
            println!(
                "{} incident(s) opened, {} escalated, {} resolved; {} notice(s) sent, {} failed \
                 (retried later), {} held by quiet hours",
                evaluated.opened.len(),
                evaluated.escalated.len(),
                evaluated.resolved.len(),
                done.sent,
                done.failed,
                done.postponed
            );
            u8::from(done.failed > 0)
        }
        Err(e) => {
            eprintln!("error: delivering failed: {e}");
            1
        }
    }
}

async fn test(config: &emag_sync::config::Config, only: Option<domain::AlertChannel>) -> u8 {
    let mut channels = alerts::channels(config);
    if let Some(only) = only {
        if !channels.iter().any(|(c, _)| *c == only) {
            eprintln!(
                "error: the {only} channel is not configured (see the EMAG_* variables of \
                 .env.example)"
            );
            return 2;
        }
        channels.retain(|(c, _)| *c == only);
    }
    if channels.is_empty() {
        eprintln!(
            "error: no alert channel is configured: set EMAG_ALERT_WEBHOOK_URL, EMAG_SMTP_HOST, \
             EMAG_NTFY_URL, EMAG_TELEGRAM_BOT_TOKEN or EMAG_SMS_ACCOUNT_SID (see .env.example)"
        );
        return 2;
    }
    let now = storage::now_ms();
    let incident = IncidentRow {
        id: 0,
        key: "test".into(),
        rule: domain::AlertRule::SchedulerDown,
        account: None,
        kind: None,
        severity: Severity::Info,
        state: IncidentState::Firing,
        message: "emag-sync test message: this channel works".into(),
        action: "nothing to do".into(),
        opened_at: now,
        last_seen_at: now,
        acknowledged_at: None,
        resolved_at: None,
        resolved_by: None,
        escalated_at: None,
    };
    let message = alerts::render(
        &incident,
        Notice::Test,
        config.alerts.language,
        config.alerts.dashboard_url.as_deref(),
    );
    let http = reqwest::Client::new();
    let mut failed = 0;
    for (c, _) in channels {
        match alerts::send(config, &http, c, &message, Severity::Info).await {
            Ok(()) => println!("{c}: sent"),
            Err(alerts::SendError(why)) => {
                println!("{c}: FAILED: {why}");
                failed += 1;
            }
        }
    }
    u8::from(failed > 0)
}

fn print_incidents(rows: &[IncidentRow]) {
    if rows.is_empty() {
        println!("no incidents");
        return;
    }
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    for r in rows {
        println!(
            "#{} {} {} {} [{}] {}",
            r.id,
            r.state,
            r.severity,
            time(r.opened_at),
            r.rule,
            r.message
        );
        match r.state {
            IncidentState::Resolved => println!(
                "    resolved {} by {}",
                r.resolved_at.map(time).unwrap_or_default(),
                r.resolved_by.as_deref().unwrap_or("?")
            ),
            _ => println!("    fix: {}", r.action),
        }
    }
}
