//! Malformed configurations, one per row: each starts from a valid `.env` with three accounts
//! and every alert channel (every secret a fresh canary), changes one thing, and runs
//! `emag-sync status` on it with nothing else in the environment. Each must exit 2 with a
//! message that names the variable at fault and says how to fix it, without a panic and
//! without any secret of the configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::StreamExt;

use super::{canary, credential_secrets, leaked};
use crate::support::bounded;

/// The accounts of the valid configuration: (name, variable prefix, user).
const ACCOUNTS: [(&str, &str, &str); 3] = [
    ("main", "EMAG_API", "main-user@shop.ro"),
    ("fbe", "EMAG_FBE_API", "fbe-user@shop.ro"),
    ("shop2", "EMAG_SHOP2_API", "bg-user@shop.bg"),
];

/// One configuration a case runs: the `.env` it writes, what else it puts beside it.
struct Setup {
    dir: PathBuf,
    /// The `.env` file's variables (written one per line, quoted as dotenvy reads them).
    vars: BTreeMap<String, String>,
    /// Lines written after the variables exactly as given: lines that do not parse.
    raw_lines: Vec<String>,
    /// Variables of the process environment (it wins over `.env`).
    process_env: BTreeMap<String, String>,
    /// Arguments before the subcommand (`--env-file …`).
    global_args: Vec<String>,
    /// Runs after `.env` is written: to replace it with something unreadable.
    after_write: Option<fn(&Path)>,
    /// Every secret of the configuration.
    secrets: Vec<String>,
}

impl Setup {
    fn valid(dir: &Path) -> Setup {
        let mut s = Setup {
            dir: dir.to_owned(),
            vars: BTreeMap::new(),
            raw_lines: Vec::new(),
            process_env: BTreeMap::new(),
            global_args: Vec::new(),
            after_write: None,
            secrets: Vec::new(),
        };
        for (_, prefix, user) in ACCOUNTS {
            let password = canary();
            s.secrets.extend(credential_secrets(user, &password));
            s.set(&format!("{prefix}_USERNAME"), user);
            s.set(&format!("{prefix}_PASSWORD"), &password);
        }
        s.set("EMAG_SHOP2_MARKETPLACE", "bg");
        s.set(
            "DATABASE_URL",
            &format!("sqlite://{}/emag-sync.db", dir.display()),
        );
        s.set("EMAG_LOG_LEVEL", "warn");
        s.secret("EMAG_DASHBOARD_TOKEN", &canary());
        let hook = format!("https://hooks.example.com/services/T0/B0/{}", canary());
        s.secret("EMAG_ALERT_WEBHOOK_URL", &hook);
        s.set("EMAG_SMTP_HOST", "smtp.example.com");
        s.set("EMAG_SMTP_USERNAME", "alerts@shop.ro");
        s.secret("EMAG_SMTP_PASSWORD", &canary());
        s.set("EMAG_SMTP_FROM", "alerts@shop.ro");
        s.set("EMAG_ALERT_EMAIL_TO", "ops@shop.ro, owner@shop.ro");
        s.set("EMAG_NTFY_URL", "https://ntfy.example.com");
        s.set("EMAG_NTFY_TOPIC", "shop-alerts-7f3c");
        s.secret("EMAG_NTFY_TOKEN", &canary());
        s.secret("EMAG_TELEGRAM_BOT_TOKEN", &format!("123456:{}", canary()));
        s.set("EMAG_TELEGRAM_CHAT_ID", "-1001234567890");
        s.set("EMAG_SMS_ACCOUNT_SID", "AC0123456789abcdef");
        s.secret("EMAG_SMS_AUTH_TOKEN", &canary());
        s.set("EMAG_SMS_FROM", "+40700000000");
        s.set("EMAG_SMS_TO", "+40711111111,+40722222222");
        s
    }

    fn set(&mut self, name: &str, value: &str) {
        self.vars.insert(name.to_owned(), value.to_owned());
    }

    fn secret(&mut self, name: &str, value: &str) {
        self.secrets.push(value.to_owned());
        self.set(name, value);
    }

    fn remove(&mut self, name: &str) {
        self.vars.remove(name);
    }

    /// The value of a variable of the valid configuration.
    fn var(&self, name: &str) -> String {
        self.vars.get(name).cloned().unwrap_or_default()
    }

    fn env_path(&self) -> PathBuf {
        self.dir.join(".env")
    }

    fn write(&self) {
        let mut text = String::from("# written by the bad-input tests\n");
        for (k, v) in &self.vars {
            text.push_str(&format!("{k}={}\n", quote(v)));
        }
        for line in &self.raw_lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(self.env_path(), text).expect("write .env");
        if let Some(after) = self.after_write {
            after(&self.env_path());
        }
    }

    /// `emag-sync <global args> status` in the directory, with only this environment.
    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_emag-sync"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.process_env)
            .args(&self.global_args)
            .arg("status")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }
}

/// A `.env` value as dotenvy reads it back unchanged: single quotes are literal (no `$`
/// substitution, no escapes); a value holding one is double-quoted with escapes.
fn quote(v: &str) -> String {
    if !v.contains('\'') {
        return format!("'{v}'");
    }
    let escaped = v
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$");
    format!("\"{escaped}\"")
}

/// What a case changes in the valid configuration.
enum Edit {
    /// One variable of `.env` set to a value.
    Set(&'static str, &'static str),
    /// One variable left out of `.env`.
    Remove(&'static str),
    /// Anything else.
    With(fn(&mut Setup)),
}

struct Case {
    what: &'static str,
    /// What stderr must name: the variable (or the `.env` file) at fault.
    names: &'static str,
    edit: Edit,
}

const fn set(what: &'static str, var: &'static str, value: &'static str) -> Case {
    Case {
        what,
        names: var,
        edit: Edit::Set(var, value),
    }
}

const fn with(what: &'static str, names: &'static str, edit: fn(&mut Setup)) -> Case {
    Case {
        what,
        names,
        edit: Edit::With(edit),
    }
}

fn cases() -> Vec<Case> {
    vec![
        // Accounts and their credentials.
        Case {
            what: "MAIN's password missing",
            names: "EMAG_API_PASSWORD",
            edit: Edit::Remove("EMAG_API_PASSWORD"),
        },
        set("MAIN's password empty", "EMAG_API_PASSWORD", ""),
        set("MAIN's password only spaces", "EMAG_API_PASSWORD", "   "),
        Case {
            what: "FBE's user name missing",
            names: "EMAG_FBE_API_USERNAME",
            edit: Edit::Remove("EMAG_FBE_API_USERNAME"),
        },
        with(
            "a third account with a password and no user name",
            "EMAG_SHOP3_API_USERNAME",
            |s| s.secret("EMAG_SHOP3_API_PASSWORD", &canary()),
        ),
        with(
            "an account name starting with a digit",
            "EMAG_2SHOP_API_USERNAME",
            |s| {
                s.set("EMAG_2SHOP_API_USERNAME", "u");
                s.secret("EMAG_2SHOP_API_PASSWORD", &canary());
            },
        ),
        with(
            "MAIN configured twice (EMAG_API_* and EMAG_MAIN_API_*)",
            "EMAG_MAIN_API_USERNAME",
            |s| {
                s.set("EMAG_MAIN_API_USERNAME", "other@shop.ro");
                s.secret("EMAG_MAIN_API_PASSWORD", &canary());
            },
        ),
        with(
            "FBE configured twice in two spellings",
            "EMAG_Fbe_API_USERNAME",
            |s| {
                s.set("EMAG_Fbe_API_USERNAME", "other@shop.ro");
                s.secret("EMAG_Fbe_API_PASSWORD", &canary());
            },
        ),
        set("MAIN's URL not a URL", "EMAG_API_URL", "marketplace api"),
        set(
            "FBE's URL with another scheme",
            "EMAG_FBE_API_URL",
            "ftp://marketplace-api.emag.ro/api-3",
        ),
        with(
            "MAIN's URL holding the user and password",
            "EMAG_API_URL",
            |s| {
                let url = format!(
                    "https://{}:{}@marketplace-api.emag.ro/api-3",
                    "main-user",
                    s.var("EMAG_API_PASSWORD")
                );
                s.set("EMAG_API_URL", &url);
            },
        ),
        with(
            "a URL that does not parse, with the password in it",
            "EMAG_SHOP2_API_URL",
            |s| {
                let url = format!(
                    "https://bg-user:{} x@marketplace-api.emag.bg:port/api-3",
                    s.var("EMAG_SHOP2_API_PASSWORD")
                );
                s.set("EMAG_SHOP2_API_URL", &url);
            },
        ),
        set(
            "an unknown marketplace",
            "EMAG_SHOP2_MARKETPLACE",
            "emag.pl",
        ),
        set(
            "an unknown marketplace for MAIN under the seed's name",
            "EMAG_MARKETPLACE",
            "amazon",
        ),
        set("an unknown account kind", "EMAG_SHOP2_ACCOUNT_KIND", "both"),
        set(
            "an account selection that is none of main/fbe/auto",
            "EMAG_ACCOUNT_TYPE",
            "primary",
        ),
        set(
            "failover neither true nor false",
            "EMAG_AUTO_FAILOVER",
            "maybe",
        ),
        // Intervals and schedules.
        set("an interval of 0 minutes", "EMAG_MAIN_SYNC_INTERVAL", "0"),
        set("a negative interval", "EMAG_FBE_SYNC_INTERVAL", "-5"),
        set("an interval in letters", "EMAG_SHOP2_SYNC_INTERVAL", "abc"),
        set("an interval with a unit", "EMAG_MAIN_SYNC_INTERVAL", "30m"),
        set(
            "an interval of u64::MAX minutes",
            "EMAG_MAIN_SYNC_INTERVAL",
            "18446744073709551615",
        ),
        set(
            "an interval whose seconds just fit in u64",
            "EMAG_FBE_SYNC_INTERVAL",
            "307445734561825860",
        ),
        set("an orders interval of 0", "EMAG_MAIN_ORDERS_INTERVAL", "0"),
        set(
            "an orders interval of u64::MAX minutes",
            "EMAG_MAIN_ORDERS_INTERVAL",
            "18446744073709551615",
        ),
        set(
            "a cron schedule in words",
            "EMAG_MAIN_SYNC_CRON",
            "every hour",
        ),
        set(
            "a cron schedule with a minute 61",
            "EMAG_FBE_SYNC_CRON",
            "61 * * * *",
        ),
        // Found by the fuzzer (issue 11): a day no month has parsed, and never ran.
        set(
            "a cron schedule on 30 February, which never fires",
            "EMAG_MAIN_SYNC_CRON",
            "0 6 30 2 *",
        ),
        with(
            "a cron schedule in a zone that does not exist",
            "EMAG_MAIN_SYNC_TZ",
            |s| {
                s.set("EMAG_MAIN_SYNC_CRON", "17 */2 * * *");
                s.set("EMAG_MAIN_SYNC_TZ", "Mars/Olympus");
            },
        ),
        set("an unknown sync type", "EMAG_FBE_SYNC_TYPES", "everything"),
        set("a list of no sync types", "EMAG_MAIN_SYNC_TYPES", " , ,"),
        // The HTTP client.
        set("a timeout of 0", "EMAG_API_TIMEOUT", "0"),
        set("a negative timeout", "EMAG_API_TIMEOUT", "-1"),
        set("a timeout in words", "EMAG_API_TIMEOUT", "soon"),
        set(
            "a timeout past the largest duration",
            "EMAG_API_TIMEOUT",
            "18446744073709551615.5",
        ),
        set("negative retries", "EMAG_MAX_RETRIES", "-1"),
        set("retries in words", "EMAG_MAX_RETRIES", "abc"),
        set("a retry delay in words", "EMAG_RETRY_DELAY", "a bit"),
        set(
            "a retry delay of u64::MAX milliseconds",
            "EMAG_RETRY_DELAY",
            "18446744073709551615ms",
        ),
        set("a rate limit flag in words", "EMAG_RATE_LIMIT", "sometimes"),
        set(
            "a body cap too small for a page",
            "EMAG_API_MAX_BODY",
            "1KiB",
        ),
        set("a body cap in words", "EMAG_API_MAX_BODY", "lots"),
        set(
            "a body cap past u64",
            "EMAG_API_MAX_BODY",
            "99999999999999G",
        ),
        set("an unknown request encoding", "EMAG_API_ENCODING", "xml"),
        // The sync engine.
        set("a negative backfill", "EMAG_ORDERS_BACKFILL_DAYS", "-1"),
        set(
            "a backfill of four billion days",
            "EMAG_ORDERS_BACKFILL_DAYS",
            "4294967295",
        ),
        set(
            "an overlap of u64::MAX hours",
            "EMAG_ORDERS_OVERLAP_HOURS",
            "18446744073709551615",
        ),
        set("an order window of 0 days", "EMAG_ORDERS_WINDOW_DAYS", "0"),
        set(
            "an order window past a month",
            "EMAG_ORDERS_WINDOW_DAYS",
            "31",
        ),
        set(
            "a removal confirmation cap in words",
            "EMAG_REMOVAL_CONFIRM_MAX",
            "many",
        ),
        set(
            "a removed share over 100 %",
            "EMAG_MAX_REMOVED_SHARE",
            "120%",
        ),
        set(
            "a removed share in words",
            "EMAG_MAX_REMOVED_SHARE",
            "a fifth",
        ),
        set("a lease shorter than the heartbeats", "EMAG_LEASE_TTL", "5"),
        set(
            "a lease of u64::MAX seconds",
            "EMAG_LEASE_TTL",
            "18446744073709551615",
        ),
        // Logs, runs, backups, freshness, instance.
        set("an unknown log level", "EMAG_LOG_LEVEL", "loud"),
        set("a negative log retention", "EMAG_LOG_RETENTION_DAYS", "-3"),
        set("an unknown catch-up policy", "EMAG_CATCH_UP", "always"),
        set("a negative number of backups", "EMAG_BACKUP_KEEP", "-1"),
        set(
            "a backup period of u64::MAX hours",
            "EMAG_BACKUP_INTERVAL_HOURS",
            "18446744073709551615",
        ),
        set(
            "a run retention in words",
            "EMAG_RUN_RETENTION_DAYS",
            "forever",
        ),
        set(
            "an instance name with a space",
            "EMAG_INSTANCE_NAME",
            "sync eu 1",
        ),
        set(
            "a freshness target in words",
            "EMAG_FRESHNESS_TARGET",
            "half an hour",
        ),
        set(
            "a freshness target of u64::MAX minutes",
            "EMAG_FRESHNESS_TARGET",
            "18446744073709551615",
        ),
        set(
            "a critical freshness of u64::MAX minutes",
            "EMAG_FRESHNESS_CRITICAL",
            "18446744073709551615",
        ),
        // The store.
        set(
            "an unsupported database",
            "DATABASE_URL",
            "mysql://shop@db/emag",
        ),
        set(
            "a database path without a scheme",
            "DATABASE_URL",
            "data/emag-sync.db",
        ),
        with(
            "a PostgreSQL URL whose port is not a number, with a password",
            "DATABASE_URL",
            |s| {
                let password = canary();
                s.secrets.push(password.clone());
                s.set(
                    "DATABASE_URL",
                    &format!("postgres://emag:{password}@db.internal:port/emag"),
                );
            },
        ),
        with(
            "a PostgreSQL URL with an unknown sslmode, with a password",
            "DATABASE_URL",
            |s| {
                let password = canary();
                s.secrets.push(password.clone());
                s.set(
                    "DATABASE_URL",
                    &format!("postgres://emag:{password}@127.0.0.1:5432/test?sslmode=sometimes"),
                );
            },
        ),
        // The dashboard.
        set(
            "a bind address without a port",
            "EMAG_DASHBOARD_BIND",
            "localhost",
        ),
        set(
            "a bind port past 65535",
            "EMAG_DASHBOARD_BIND",
            "127.0.0.1:99999",
        ),
        with(
            "a dashboard token too short to be safe",
            "EMAG_DASHBOARD_TOKEN",
            |s| {
                let short = canary()[..14].to_owned();
                s.secret("EMAG_DASHBOARD_TOKEN", &short);
            },
        ),
        set(
            "a snapshot age in words",
            "EMAG_DASHBOARD_STATUS_MAX_AGE",
            "fresh",
        ),
        set(
            "a dashboard URL that is not a URL",
            "EMAG_DASHBOARD_URL",
            "dashboard",
        ),
        // Alert rules.
        set(
            "consecutive failures in words",
            "EMAG_ALERT_CONSECUTIVE_FAILURES",
            "two",
        ),
        set(
            "a negative error budget",
            "EMAG_ALERT_ERRORS_PER_HOUR",
            "-5",
        ),
        set(
            "an evaluation period in words",
            "EMAG_ALERT_EVALUATE_EVERY",
            "often",
        ),
        set("an unknown alert language", "EMAG_ALERT_LANGUAGE", "de"),
        set(
            "a digest setting in words",
            "EMAG_ALERT_DIGEST",
            "sometimes",
        ),
        set(
            "a digest hour past midnight",
            "EMAG_ALERT_DIGEST_AT",
            "25:00",
        ),
        set(
            "quiet hours without minutes",
            "EMAG_ALERT_QUIET_HOURS",
            "22-07",
        ),
        set(
            "quiet hours of one channel that end as they start",
            "EMAG_ALERT_QUIET_HOURS_SMS",
            "22:00-22:00",
        ),
        set(
            "an unknown alert time zone",
            "EMAG_ALERT_TZ",
            "Mars/Olympus",
        ),
        set(
            "an escalation time in words",
            "EMAG_ALERT_ESCALATE_AFTER",
            "half an hour",
        ),
        set(
            "an escalation time of centuries",
            "EMAG_ALERT_ESCALATE_AFTER",
            "99999999999",
        ),
        set(
            "a negative escalation count",
            "EMAG_ALERT_ESCALATE_FAILURES",
            "-3",
        ),
        set(
            "a rate-limit threshold in words",
            "EMAG_ALERT_RATE_LIMIT_WAITS",
            "many",
        ),
        set(
            "a takeover window in words",
            "EMAG_ALERT_TAKEOVER_WINDOW",
            "soon",
        ),
        set("a send timeout in words", "EMAG_ALERT_SEND_TIMEOUT", "ten"),
        set("a retry delay in words", "EMAG_ALERT_RETRY_DELAY", "later"),
        with(
            "a webhook URL without a scheme",
            "EMAG_ALERT_WEBHOOK_URL",
            |s| {
                let url = format!("hooks.example.com/services/{}", canary());
                s.secret("EMAG_ALERT_WEBHOOK_URL", &url);
            },
        ),
        // Email.
        Case {
            what: "an SMTP host without a sender",
            names: "EMAG_SMTP_FROM",
            edit: Edit::Remove("EMAG_SMTP_FROM"),
        },
        set("an SMTP port past 65535", "EMAG_SMTP_PORT", "99999"),
        set("an unknown SMTP TLS mode", "EMAG_SMTP_TLS", "ssl3"),
        set(
            "SMTP without TLS to another machine",
            "EMAG_SMTP_TLS",
            "none",
        ),
        set(
            "a sender that is not an address",
            "EMAG_SMTP_FROM",
            "alerts at shop",
        ),
        set(
            "a recipient that is not an address",
            "EMAG_ALERT_EMAIL_TO",
            "ops@shop.ro, owner",
        ),
        // ntfy, Telegram, SMS.
        Case {
            what: "an ntfy server without a topic",
            names: "EMAG_NTFY_TOPIC",
            edit: Edit::Remove("EMAG_NTFY_TOPIC"),
        },
        set("an ntfy server that is not a URL", "EMAG_NTFY_URL", "ntfy"),
        Case {
            what: "a Telegram bot without a chat",
            names: "EMAG_TELEGRAM_CHAT_ID",
            edit: Edit::Remove("EMAG_TELEGRAM_CHAT_ID"),
        },
        set(
            "a Telegram API that is not a URL",
            "EMAG_TELEGRAM_API_URL",
            "telegram relay",
        ),
        Case {
            what: "an SMS account without recipients",
            names: "EMAG_SMS_TO",
            edit: Edit::Remove("EMAG_SMS_TO"),
        },
        set("an unknown SMS severity", "EMAG_SMS_MIN_SEVERITY", "urgent"),
        set("an SMS API that is not a URL", "EMAG_SMS_API_URL", "twilio"),
        // The process environment wins over .env: its bad values are named the same way.
        with(
            "a bad timeout in the environment over a good one in .env",
            "EMAG_API_TIMEOUT",
            |s| {
                s.set("EMAG_API_TIMEOUT", "30");
                s.process_env
                    .insert("EMAG_API_TIMEOUT".into(), "never".into());
            },
        ),
        // The .env file itself.
        with(
            "a .env line with a stray quote holding a password",
            "EMAG_API_PASSWORD",
            |s| {
                let password = s.var("EMAG_API_PASSWORD");
                s.remove("EMAG_API_PASSWORD");
                s.raw_lines.push(format!("EMAG_API_PASSWORD=\"{password}"));
                s.raw_lines.push("EMAG_API_TIMEOUT=30".into());
            },
        ),
        with(
            "a .env line with a stray single quote holding a password",
            "EMAG_FBE_API_PASSWORD",
            |s| {
                let password = s.var("EMAG_FBE_API_PASSWORD");
                s.remove("EMAG_FBE_API_PASSWORD");
                s.raw_lines
                    .push(format!("EMAG_FBE_API_PASSWORD='{password}"));
            },
        ),
        with(
            "a .env password with a space and no quotes",
            "EMAG_API_PASSWORD",
            |s| {
                let password = s.var("EMAG_API_PASSWORD");
                s.remove("EMAG_API_PASSWORD");
                s.raw_lines
                    .push(format!("EMAG_API_PASSWORD={password} {password}"));
            },
        ),
        with(
            "a .env line without '=' holding a password",
            "EMAG_API_PASSWORD",
            |s| {
                let password = s.var("EMAG_API_PASSWORD");
                s.remove("EMAG_API_PASSWORD");
                s.raw_lines.push(format!("EMAG_API_PASSWORD {password}"));
            },
        ),
        with("a .env that is a directory", ".env", |s| {
            s.after_write = Some(|path| {
                std::fs::remove_file(path).expect("remove .env");
                std::fs::create_dir(path).expect("a directory named .env");
            });
        }),
        with("a .env that is not UTF-8", ".env", |s| {
            s.after_write = Some(|path| {
                let mut bytes = std::fs::read(path).expect("read .env");
                bytes.extend_from_slice(b"EMAG_LOG_FILE=\xff\xfe\n");
                std::fs::write(path, bytes).expect("write .env");
            });
        }),
        with(
            "--env-file naming a file that does not exist",
            "missing.env",
            |s| {
                s.global_args = vec!["--env-file".into(), "missing.env".into()];
            },
        ),
    ]
}

/// What one case did wrong, if anything.
async fn run_case(case: &Case) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("dir");
    let mut setup = Setup::valid(dir.path());
    match &case.edit {
        Edit::Set(var, value) => setup.set(var, value),
        Edit::Remove(var) => setup.remove(var),
        Edit::With(edit) => edit(&mut setup),
    }
    setup.write();
    let out = bounded(case.what, setup.command().output())
        .await
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let both = format!("{stdout}{stderr}");
    let mut wrong = Vec::new();
    if out.status.code() != Some(2) {
        wrong.push(format!("exit {:?}, not 2", out.status.code()));
    }
    if both.contains("panicked") {
        wrong.push("a panic".to_owned());
    }
    // The variable is named on a line that also says how to fix it.
    if !stderr
        .lines()
        .any(|l| l.contains(case.names) && l.contains("fix:"))
    {
        wrong.push(format!("no line naming {} with a fix", case.names));
    }
    let secrets = leaked(&both, &setup.secrets);
    if !secrets.is_empty() {
        wrong.push(format!("secrets printed: {secrets:?}"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} ({}): {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            case.what,
            case.names,
            wrong.join("; ")
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_valid_configuration_of_the_table_runs_status_and_prints_no_secret() {
    // Arrange: the configuration every bad case starts from.
    let dir = tempfile::tempdir().expect("dir");
    let setup = Setup::valid(dir.path());
    setup.write();

    // Act
    let out = bounded("status", setup.command().output())
        .await
        .expect("run");

    // Assert: it works, so each case's failure is its own change's.
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{both}");
    assert!(both.contains("shop2"), "{both}");
    assert_eq!(leaked(&both, &setup.secrets), Vec::<&str>::new(), "{both}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_configuration_exits_2_naming_its_variable_without_panic_or_secret() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());

    // Four binaries at a time: each case has its own directory.
    let failures: Vec<String> = futures::stream::iter(cases.iter())
        .map(run_case)
        .buffer_unordered(4)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;

    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
