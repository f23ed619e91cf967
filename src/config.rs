//! Configuration from `.env` and the environment (the environment wins), with the variable
//! names sellers already use. Parsed once into typed values; every problem is collected and
//! reported together with the variable's name and how to fix it. Passwords are
//! `SecretString` from here on and never printed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use domain::{AccountKind, AccountName, ApiEncoding, Marketplace, SyncKind};
use emag_client::{ClientConfig, Credentials, RateBudget};
use secrecy::SecretString;

/// Default store: an SQLite file next to where the command runs.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/emag-sync.db";

/// Where the dashboard listens unless told otherwise: this machine only (the seed's port).
pub const DEFAULT_DASHBOARD_BIND: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8001);
/// The shortest dashboard token accepted: it guards mutations and any non-loopback address.
pub const MIN_DASHBOARD_TOKEN_LEN: usize = 16;

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.variable, self.problem, self.fix)
    }
}

/// All problems found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the configuration has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// What a scheduled sync of an account covers (`EMAG_<NAME>_SYNC_TYPES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTypes(pub Vec<SyncKind>);

impl SyncTypes {
    fn parse(text: &str) -> Result<SyncTypes, String> {
        let mut kinds = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let add: &[SyncKind] = match part.to_ascii_lowercase().as_str() {
                "full" | "all" => SyncKind::ALL,
                "products_only" | "offers" | "products" => &[SyncKind::Offers],
                "orders_only" | "orders" => &[SyncKind::Orders],
                "reference" => &[SyncKind::Reference],
                "returns" => &[SyncKind::Returns],
                other => return Err(format!("unknown sync type {other:?}")),
            };
            for k in add {
                if !kinds.contains(k) {
                    kinds.push(*k);
                }
            }
        }
        if kinds.is_empty() {
            return Err("empty list".to_owned());
        }
        Ok(SyncTypes(kinds))
    }
}

/// One configured eMAG account.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub name: AccountName,
    pub kind: AccountKind,
    pub marketplace: Marketplace,
    pub base_url: String,
    pub credentials: Credentials,
    /// Variable holding the username, for messages ("check EMAG_FBE_API_PASSWORD").
    pub username_var: String,
    pub password_var: String,
    pub sync_interval: Duration,
    /// `EMAG_<NAME>_SYNC_INTERVAL=manual`: nothing is scheduled; runs happen when asked.
    pub manual_only: bool,
    /// Orders may be read more often than the rest (`EMAG_<NAME>_ORDERS_INTERVAL`).
    pub orders_interval: Option<Duration>,
    /// Cron times instead of the interval (`EMAG_<NAME>_SYNC_CRON`, zone `EMAG_<NAME>_SYNC_TZ`).
    pub cron: Option<CronSpec>,
    pub sync_types: SyncTypes,
}

impl AccountConfig {
    /// Minutes between two scheduled runs of `kind`. Reference data changes rarely: at most
    /// daily unless the account's own interval is longer.
    pub fn interval_of(&self, kind: SyncKind) -> Duration {
        match kind {
            SyncKind::Orders => self.orders_interval.unwrap_or(self.sync_interval),
            SyncKind::Reference => self.sync_interval.max(Duration::from_secs(24 * 3600)),
            _ => self.sync_interval,
        }
    }
}

/// A validated cron expression and the IANA zone its wall-clock times are read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    /// Normalised to the 6-field form with seconds that the `cron` crate reads.
    pub expr: String,
    pub zone: chrono_tz::Tz,
}

impl CronSpec {
    /// Accepts the usual 5 fields (`min hour day month weekday`) or 6 with seconds. Days of
    /// the week are best written by name (`Mon-Fri`): in numbers the `cron` crate counts
    /// 1 = Sunday.
    pub fn parse(expr: &str, zone: &str) -> Result<CronSpec, String> {
        let fields = expr.split_whitespace().count();
        let expr = match fields {
            5 => format!("0 {}", expr.trim()),
            6 | 7 => expr.trim().to_owned(),
            _ => {
                return Err(format!(
                    "{expr:?} has {fields} fields, expected 5 (min hour day month weekday)"
                ))
            }
        };
        let schedule = <cron::Schedule as std::str::FromStr>::from_str(&expr).map_err(|e| {
            // The cron crate's message repeats the expression over several lines with a
            // caret under the fault; its last line says what is wrong.
            let text = e.to_string();
            let reason = text
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty() && *l != "^")
                .unwrap_or("not understood")
                .to_owned();
            format!("{expr:?} is not a cron expression: {reason}")
        })?;
        let zone = parse_zone(zone)?;
        // A schedule of a day that does not exist (30 February, 31 April) or of past years
        // only parses, and then never runs anything, silently (found by the fuzzer, issue 11).
        if schedule.upcoming(zone).next().is_none() {
            return Err(format!(
                "{expr:?} never fires: no such day in any month it names, or only years that are past"
            ));
        }
        Ok(CronSpec { expr, zone })
    }
}

/// An IANA time zone name (`Europe/Bucharest`).
fn parse_zone(zone: &str) -> Result<chrono_tz::Tz, String> {
    zone.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("{zone:?} is not an IANA time zone"))
}

/// What the scheduler does with a schedule that missed slots while nothing ran
/// (`EMAG_CATCH_UP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// One catch-up run now; the missed slots are logged as skipped.
    Once,
    /// No catch-up: wait for the next regular slot.
    Skip,
}

/// Which accounts the scheduler serves (`EMAG_ACCOUNT_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSelection {
    Main,
    Fbe,
    Auto,
}

/// Settings of the HTTP client shared by every account.
#[derive(Debug, Clone, Copy)]
pub struct ApiSettings {
    pub timeout: Duration,
    pub max_retries: u32,
    pub retry_delay: Duration,
    pub rate_budget: RateBudget,
    /// The largest answer body accepted, in bytes (`EMAG_API_MAX_BODY`, default 32 MiB).
    pub max_body: u64,
    /// How requests are encoded (`EMAG_API_ENCODING`, default auto).
    pub encoding: EncodingChoice,
}

/// `EMAG_API_ENCODING`: one encoding for every account, or `auto` — probe each account once
/// and keep the first encoding whose filters eMAG honours (issue 9, point 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingChoice {
    Auto,
    Fixed(ApiEncoding),
}

/// Reads a size in bytes: a whole number with an optional binary unit (`K`, `KiB`, `M`,
/// `MiB`, `G`, `GiB`; `KB`/`MB`/`GB` are read as binary too).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Settings of the sync engine.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    pub orders_backfill_days: u32,
    pub orders_overlap: Duration,
    /// The longest `modifiedAfter`..`modifiedBefore` window of one order read
    /// (`EMAG_ORDERS_WINDOW_DAYS`): eMAG says "one month" without saying which.
    pub orders_window_days: u32,
    /// At most this many offers missing from a complete scan are confirmed one by one with a
    /// read by id (`EMAG_REMOVAL_CONFIRM_MAX`); more wait for a second scan to miss them.
    pub removal_confirm_max: u64,
    /// The largest share (percent) of an account's live offers one run may mark removed
    /// without a full sync confirming it (`EMAG_MAX_REMOVED_SHARE`).
    pub max_removed_share_percent: u64,
    /// A run whose holder has been silent this long may be taken over (`EMAG_LEASE_TTL`).
    pub stale_after: Duration,
    /// How each account's request encoding is chosen before a run (`EMAG_API_ENCODING`).
    pub api_encoding: EncodingChoice,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            orders_backfill_days: 90,
            orders_overlap: Duration::from_secs(24 * 3600),
            orders_window_days: DEFAULT_ORDERS_WINDOW_DAYS,
            removal_confirm_max: 300,
            max_removed_share_percent: 20,
            stale_after: DEFAULT_LEASE_TTL,
            api_encoding: EncodingChoice::Auto,
        }
    }
}

/// The longest interval of a schedule, in minutes (a year); `manual` is for never.
pub const MAX_INTERVAL_MINUTES: u64 = 525_600;
/// The longest duration in seconds (timeouts, delays, leases, periods): a day. Anything
/// longer is a typo, and values near u64::MAX overflow where a time is added to them.
pub const MAX_SECONDS: Duration = Duration::from_secs(86_400);
/// The longest period in hours (order overlap, backups): a year.
const MAX_HOURS: u64 = 8_760;
/// The longest first backfill of orders, in days: ten years.
const MAX_BACKFILL_DAYS: u32 = 3_650;

/// Order reads span at most this many days (`EMAG_ORDERS_WINDOW_DAYS`).
pub const DEFAULT_ORDERS_WINDOW_DAYS: u32 = 7;
/// eMAG's limit is "one month"; the shortest month bounds the setting.
pub const MAX_ORDERS_WINDOW_DAYS: u32 = 28;

/// How long a silent run holder keeps its run (`EMAG_LEASE_TTL`, seconds).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(120);
/// The shortest lease accepted: a few heartbeats must fit in it, with room for a slow write.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(10);
/// Heartbeats are never further apart than this, whatever the lease.
const MAX_HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

impl SyncSettings {
    /// How often a running run proves it is alive: at least four beats per lease, and at
    /// most every 10 s (the default 120 s lease beats every 10 s). A holder is taken over only
    /// after several missed beats.
    pub fn heartbeat_every(&self) -> Duration {
        (self.stale_after / 4).clamp(Duration::from_millis(100), MAX_HEARTBEAT_EVERY)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub accounts: Vec<AccountConfig>,
    pub account_selection: AccountSelection,
    pub auto_failover: bool,
    pub api: ApiSettings,
    pub sync: SyncSettings,
    pub log_level: String,
    pub log_retention_days: u32,
    pub catch_up: CatchUp,
    /// Where `start` writes its pid and `stop` finds it (`EMAG_PID_FILE`).
    pub pid_file: std::path::PathBuf,
    /// The scheduler's log file, rotated daily (`EMAG_LOG_FILE`).
    pub log_file: std::path::PathBuf,
    pub backups: BackupSettings,
    /// Finished runs older than this are pruned by the scheduler (`EMAG_RUN_RETENTION_DAYS`).
    pub run_retention_days: u32,
    /// This process's name in run leases and in `status` instead of the host name
    /// (`EMAG_INSTANCE_NAME`): for containers with random host names. Processes with
    /// different names are told apart like processes on different machines.
    pub instance_name: Option<String>,
    /// How old synced data may be before it is reported stale (`EMAG_FRESHNESS_TARGET`,
    /// minutes, default 30: the seed's target). A kind synced less often than that is held
    /// to its own interval plus five minutes instead.
    pub freshness_target: Duration,
    /// How old data may be before it is critical (`EMAG_FRESHNESS_CRITICAL`, minutes); by
    /// default twice the warning threshold of each kind.
    pub freshness_critical: Option<Duration>,
    pub dashboard: DashboardSettings,
    pub alerts: AlertSettings,
}

/// The language of alert messages (`EMAG_ALERT_LANGUAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Ro,
    En,
}

/// Alert rules and channels (`EMAG_ALERT_*`).
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Failed runs in a row of one (account, kind) that open an incident
    /// (`EMAG_ALERT_CONSECUTIVE_FAILURES`, default 2).
    pub consecutive_failures: u32,
    /// Failed runs in the last hour, all accounts, above which an incident opens
    /// (`EMAG_ALERT_ERRORS_PER_HOUR`, default 5: the original system's rule).
    pub errors_per_hour: i64,
    /// How often the scheduler evaluates the rules (`EMAG_ALERT_EVALUATE_EVERY`, seconds,
    /// default 30).
    pub evaluate_every: Duration,
    /// A Slack-compatible incoming webhook (`EMAG_ALERT_WEBHOOK_URL`). Its path is a secret
    /// (Slack's holds the token): never printed, logged or stored.
    pub webhook_url: Option<SecretString>,
    /// Messages in Romanian (default) or English (`EMAG_ALERT_LANGUAGE=ro|en`).
    pub language: Language,
    /// The dashboard's public address, for links in messages (`EMAG_DASHBOARD_URL`).
    pub dashboard_url: Option<String>,
    /// Push through ntfy (`EMAG_NTFY_URL`, `EMAG_NTFY_TOPIC`, optional `EMAG_NTFY_TOKEN`).
    pub ntfy: Option<NtfySettings>,
    /// A Telegram bot (`EMAG_TELEGRAM_BOT_TOKEN`, `EMAG_TELEGRAM_CHAT_ID`;
    /// `EMAG_TELEGRAM_API_URL` for a relay or a test server).
    pub telegram: Option<TelegramSettings>,
    /// SMS through a Twilio-compatible API (`EMAG_SMS_ACCOUNT_SID`, `EMAG_SMS_AUTH_TOKEN`,
    /// `EMAG_SMS_FROM`, `EMAG_SMS_TO`, `EMAG_SMS_API_URL`); critical alerts only unless
    /// `EMAG_SMS_MIN_SEVERITY` says otherwise (SMS costs money).
    pub sms: Option<SmsSettings>,
    /// Email through SMTP (`EMAG_SMTP_HOST`, `EMAG_SMTP_PORT`, `EMAG_SMTP_USERNAME`,
    /// `EMAG_SMTP_PASSWORD`, `EMAG_SMTP_FROM`, `EMAG_SMTP_TLS`, `EMAG_ALERT_EMAIL_TO`).
    pub email: Option<EmailSettings>,
    /// 429 waits of one account within an hour above which an incident opens
    /// (`EMAG_ALERT_RATE_LIMIT_WAITS`, default 20).
    pub rate_limit_waits: i64,
    /// How long a run taken over from a dead instance is told as news
    /// (`EMAG_ALERT_TAKEOVER_WINDOW`, minutes, default 15; 0 = never told).
    pub takeover_window: Duration,
    /// An incident still firing this long (`EMAG_ALERT_ESCALATE_AFTER`, minutes, default 30)…
    pub escalate_after: Duration,
    /// …that saw this many failed runs since it opened (`EMAG_ALERT_ESCALATE_FAILURES`,
    /// default 3; 0 = no escalation) is raised to critical and told again.
    pub escalate_failures: u32,
    /// Incidents up to this severity are told in one daily digest instead of at once
    /// (`EMAG_ALERT_DIGEST=off|info|warning`, default off; critical ones never wait).
    pub digest: Option<domain::Severity>,
    /// When the digest is sent, local time (`EMAG_ALERT_DIGEST_AT`, default 08:00).
    pub digest_at: chrono::NaiveTime,
    /// The zone of the digest's hour and of quiet hours (`EMAG_ALERT_TZ`, default
    /// Europe/Bucharest).
    pub zone: chrono_tz::Tz,
    /// Hours in which a channel tells only critical alerts; the rest wait for their end
    /// (`EMAG_ALERT_QUIET_HOURS=22:00-07:00` for every channel,
    /// `EMAG_ALERT_QUIET_HOURS_<CHANNEL>` for one, `off` to exempt it).
    pub quiet_hours: Vec<(domain::AlertChannel, QuietHours)>,
    /// How long one send may take (`EMAG_ALERT_SEND_TIMEOUT`, seconds, default 10).
    pub send_timeout: Duration,
    /// The first wait before a failed send is tried again, doubling up to an hour
    /// (`EMAG_ALERT_RETRY_DELAY`, seconds, default 30).
    pub retry_delay: Duration,
}

/// A daily window of local time, `from` included, `to` excluded; it may wrap midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: chrono::NaiveTime,
    pub to: chrono::NaiveTime,
}

/// `HH:MM` (24 h).
pub fn parse_clock(text: &str) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(text.trim(), "%H:%M").ok()
}

impl std::str::FromStr for QuietHours {
    type Err = ();
    /// `22:00-07:00`.
    fn from_str(text: &str) -> Result<QuietHours, ()> {
        let (from, to) = text.split_once('-').ok_or(())?;
        let (from, to) = (parse_clock(from).ok_or(())?, parse_clock(to).ok_or(())?);
        if from == to {
            return Err(());
        }
        Ok(QuietHours { from, to })
    }
}

/// How the SMTP connection is protected (`EMAG_SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587; the default).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all: only for a relay on this machine (refused for any other host).
    None,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NtfySettings {
    /// The server, e.g. https://ntfy.sh.
    pub url: String,
    pub topic: String,
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub api_url: String,
    pub bot_token: SecretString,
    pub chat_id: String,
}

#[derive(Debug, Clone)]
pub struct SmsSettings {
    pub api_url: String,
    pub account_sid: String,
    pub auth_token: SecretString,
    pub from: String,
    pub to: Vec<String>,
    pub min_severity: domain::Severity,
}

/// The HTTP server: dashboard, JSON API, health and metrics (`EMAG_DASHBOARD_*`).
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// Where it listens (`EMAG_DASHBOARD_BIND`, default 127.0.0.1:8001; `--bind` overrides).
    pub bind: std::net::SocketAddr,
    /// The bearer token of mutations (`EMAG_DASHBOARD_TOKEN`); without one the server only
    /// listens on loopback addresses. Never served or logged.
    pub token: Option<SecretString>,
    /// How old the status snapshot behind `/api/status`, `/health`, the accounts and
    /// schedules may be when served (`EMAG_DASHBOARD_STATUS_MAX_AGE`, seconds, default 1;
    /// 0 reads the store for every request). One read serves every request in that time, so
    /// a page open on many screens, or a monitor polling hard, costs the store one read a
    /// second however many ask; live changes reach the page through `/api/events` anyway.
    pub status_max_age: Duration,
}

/// SQLite snapshots before offer syncs (`EMAG_BACKUP_*`).
#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub dir: std::path::PathBuf,
    /// Snapshots kept (`EMAG_BACKUP_KEEP`, 0 disables automatic snapshots).
    pub keep: usize,
    /// At most one automatic snapshot per this period (`EMAG_BACKUP_INTERVAL_HOURS`).
    pub every: Duration,
}

impl Config {
    /// Reads `.env` (if present) under the process environment. `.env` values never go into
    /// the process environment: they are read into the map and parsed from there.
    pub fn load(dotenv: Option<&Path>) -> Result<Config, ConfigErrors> {
        let config = Config::from_vars(&gather_vars(dotenv)?)?;
        if let Some(name) = &config.instance_name {
            crate::set_instance_name(name);
        }
        Ok(config)
    }

    /// Parses a configuration from variables (for tests and embedding).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
        // A value that took in other lines is refused unread and never shown: a quote opened
        // on its line and closed lines later (or a lost line break) puts the lines between
        // into it — other variables, their passwords among them — and a problem quoting the
        // value printed them (found by the fuzzer, issue 11).
        let swallowed: Vec<&String> = vars
            .iter()
            .filter(|(_, v)| holds_other_lines(v))
            .map(|(k, _)| k)
            .collect();
        let kept: HashMap<String, String>;
        let vars = if swallowed.is_empty() {
            vars
        } else {
            kept = vars
                .iter()
                .filter(|(k, _)| !swallowed.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            &kept
        };
        let mut p = Parser {
            vars,
            problems: Vec::new(),
            probe: None,
            probed: std::cell::Cell::new(false),
        };
        // Each is named if its name reads as one of ours (a garbled line's name may hold
        // anything, and an unknown variable is ignored anyway).
        let mut names: Vec<&String> = swallowed
            .into_iter()
            .filter(|k| {
                *k == "DATABASE_URL"
                    || (k.starts_with("EMAG_")
                        && k.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            })
            .collect();
        names.sort();
        for name in names {
            p.problem(
                name,
                "its value runs over several lines or holds another variable's line (a quote \
                 opened and closed lines later, or a lost line break); the value is not shown",
                "close each quote on the line it opens, one NAME=value per line",
            );
        }
        let config = p.config();
        if p.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(p.problems))
        }
    }

    pub fn account(&self, name: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.name.as_str() == name)
    }

    /// The client settings of one account.
    pub fn client_config(&self, account: &AccountConfig) -> ClientConfig {
        let mut c = ClientConfig::new(account.base_url.clone(), account.credentials.clone());
        c.timeout = self.api.timeout;
        c.max_retries = self.api.max_retries;
        c.retry_delay = self.api.retry_delay;
        c.rate_budget = self.api.rate_budget;
        c.label = account.name.to_string();
        c.max_body = self.api.max_body;
        // With auto, the probe (or the encoding kept in the store) sets it before any sync.
        if let EncodingChoice::Fixed(encoding) = self.api.encoding {
            c.encoding = encoding;
        }
        c
    }

    /// Problems that only matter for commands that talk to eMAG.
    pub fn require_accounts(&self) -> Result<(), ConfigErrors> {
        if self.accounts.is_empty() {
            return Err(ConfigErrors(vec![ConfigProblem {
                variable: "EMAG_API_USERNAME".into(),
                problem: "no eMAG account is configured".into(),
                fix: "set EMAG_API_USERNAME and EMAG_API_PASSWORD (MAIN), and/or \
                      EMAG_FBE_API_USERNAME and EMAG_FBE_API_PASSWORD (FBE), in .env"
                    .into(),
            }]));
        }
        Ok(())
    }
}

/// What is wrong with a `.env` file, by line number and variable name only: dotenvy's own
/// message quotes the line — and an unclosed quote everything after it — so a password would
/// be printed. `content` is the file's text.
fn dotenv_error(content: &str, e: &dotenvy::Error) -> String {
    let dotenvy::Error::LineParse(text, _) = e else {
        return format!("cannot read: {e}");
    };
    let line = content
        .find(text.as_str())
        .map(|at| content[..at].matches('\n').count() + 1);
    // The name from the file's own line: dotenvy's text may start inside the value. A line
    // without `=` (`EMAG_API_PASSWORD secret`) is named by its first word. Either is shown
    // only when it is a name emag-sync reads: a line holding only a password (`abc==`) must
    // not have it shown as a name, nor one whose `=` was lost between name and value
    // (`EMAG_API_PASSWORDsecret`, found by the fuzzer, issue 11).
    let name = line
        .and_then(|n| content.lines().nth(n - 1))
        .map(|l| l.trim_start().trim_start_matches("export "))
        .and_then(|l| match l.split_once('=') {
            Some((name, _)) => Some(name.trim()),
            None => l.split_whitespace().next(),
        })
        .filter(|n| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && is_variable_name(n)
        });
    match (line, name) {
        (Some(line), Some(name)) => format!("line {line} ({name}) cannot be parsed"),
        (Some(line), None) => format!("line {line} cannot be parsed"),
        (None, Some(name)) => format!("the line of {name} cannot be parsed"),
        (None, None) => "a line cannot be parsed".into(),
    }
}

/// Parses `url` as the store will, without connecting: a port that is not a number or an
/// unknown `sslmode` is a configuration problem (exit 2), not a failure to open. The message
/// never holds the URL's password, whatever the driver quotes.
fn check_database_url(url: &str) -> Result<(), String> {
    use std::str::FromStr;
    let parsed = if url.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(url).map(drop)
    } else {
        sqlx::postgres::PgConnectOptions::from_str(url).map(drop)
    };
    parsed.map_err(|e| {
        let mut text = e.to_string();
        let userinfo = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|authority| authority.rsplit_once('@'))
            .map(|(userinfo, _)| userinfo);
        if let Some((_, password)) = userinfo.and_then(|u| u.split_once(':')) {
            if !password.is_empty() {
                text = text.replace(password, "***");
            }
        }
        text
    })
}

/// `.env` under the environment; the environment wins.
pub fn gather_vars(dotenv: Option<&Path>) -> Result<HashMap<String, String>, ConfigErrors> {
    let mut vars = HashMap::new();
    let path = dotenv.unwrap_or(Path::new(".env"));
    if path.exists() {
        let content = std::fs::read(path).map_err(|e| {
            ConfigErrors(vec![ConfigProblem {
                variable: path.display().to_string(),
                problem: format!("cannot read: {e}"),
                fix: "make it a readable text file, or give another with --env-file".into(),
            }])
        })?;
        vars = parse_dotenv(&path.display().to_string(), &content)?;
    } else if dotenv.is_some() {
        return Err(ConfigErrors(vec![ConfigProblem {
            variable: path.display().to_string(),
            problem: "file not found".into(),
            fix: "give the path of an existing .env file".into(),
        }]));
    }
    for (k, v) in std::env::vars() {
        if k.starts_with("EMAG_") || k == "DATABASE_URL" {
            vars.insert(k, v);
        }
    }
    Ok(vars)
}

/// The variables of a `.env` file whose bytes are `content`; `file` names it in problems.
/// A problem names the file, the line and the variable, never a value.
pub fn parse_dotenv(file: &str, content: &[u8]) -> Result<HashMap<String, String>, ConfigErrors> {
    // Editors on Windows save a byte-order mark first; dotenvy would take it for part of the
    // first name and refuse the line (found by the fuzzer, issue 11).
    let content = content.strip_prefix(b"\xef\xbb\xbf").unwrap_or(content);
    let mut vars = HashMap::new();
    for item in dotenvy::from_read_iter(content) {
        match item {
            Ok((k, v)) => {
                vars.insert(k, v);
            }
            Err(e) => {
                let fix = if matches!(e, dotenvy::Error::LineParse(..)) {
                    "write one NAME=value per line; quote a value with spaces, and close \
                     every quote"
                } else {
                    "make it a readable text file in UTF-8, or give another with --env-file"
                };
                return Err(ConfigErrors(vec![ConfigProblem {
                    variable: file.to_owned(),
                    problem: dotenv_error(&String::from_utf8_lossy(content), &e),
                    fix: fix.into(),
                }]));
            }
        }
    }
    Ok(vars)
}

/// Whether `value` took in other lines of a `.env` file: it runs over several lines, or holds
/// `NAME=` of one of our variables.
fn holds_other_lines(value: &str) -> bool {
    if value.contains(['\n', '\r']) {
        return true;
    }
    ["EMAG_", "DATABASE_URL="].iter().any(|start| {
        value.match_indices(start).any(|(at, _)| {
            let rest = &value[at..];
            let name_len = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            rest[name_len..].starts_with('=')
        })
    })
}

/// Whether emag-sync reads a variable named `name`: a `.env` problem may show such a word of
/// a broken line; any other word may be a value (a password whose `=` was lost).
pub fn is_variable_name(name: &str) -> bool {
    let mut vars = HashMap::from([(name.to_owned(), "x".to_owned())]);
    // Account variables are read for configured accounts only: every account `name` could
    // belong to (`EMAG_SHOP2_SYNC_CRON` → SHOP2, SHOP2_SYNC), and MAIN, is configured.
    let mut prefixes = vec!["EMAG_API".to_owned()];
    prefixes.extend(
        name.match_indices('_')
            .map(|(at, _)| name[..at].to_owned())
            .filter(|p| p.len() > "EMAG_".len() && p.starts_with("EMAG_")),
    );
    for prefix in prefixes {
        let middle = prefix.strip_prefix("EMAG_").unwrap_or(&prefix);
        let prefix = if middle == "API" {
            prefix.clone()
        } else {
            format!("{prefix}_API")
        };
        for suffix in ["USERNAME", "PASSWORD"] {
            vars.entry(format!("{prefix}_{suffix}"))
                .or_insert_with(|| "x".to_owned());
        }
    }
    let mut p = Parser {
        vars: &vars,
        problems: Vec::new(),
        probe: Some(name),
        probed: std::cell::Cell::new(false),
    };
    p.config();
    p.probed.get()
}

struct Parser<'a> {
    vars: &'a HashMap<String, String>,
    problems: Vec<ConfigProblem>,
    /// A name [`is_variable_name`] asks about, and whether it was read.
    probe: Option<&'a str>,
    probed: std::cell::Cell<bool>,
}

impl Parser<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        if self.probe == Some(name) {
            self.probed.set(true);
        }
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, variable: &str, problem: impl Into<String>, fix: impl Into<String>) {
        // One line per problem: the variable, what is wrong and the fix read together.
        let one_line = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
        self.problems.push(ConfigProblem {
            variable: variable.to_owned(),
            problem: one_line(problem.into()),
            fix: one_line(fix.into()),
        });
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str, default: T, fix: &str) -> T {
        match self.get(name) {
            None => default,
            Some(text) => match text.parse() {
                Ok(v) => v,
                Err(_) => {
                    self.problem(name, format!("{text:?} is not a valid number"), fix);
                    default
                }
            },
        }
    }

    /// Whole minutes.
    fn minutes(&mut self, name: &str, default: u64) -> Duration {
        let minutes = self.number_in::<u64>(
            name,
            default,
            0..=525_600,
            "write whole minutes, at most a year, e.g. 30",
        );
        Duration::from_secs(minutes * 60)
    }

    /// `HH:MM-HH:MM`, or `off`.
    fn quiet_hours(&mut self, name: &str) -> Option<QuietHours> {
        let text = self.get(name)?.to_owned();
        if text.eq_ignore_ascii_case("off") {
            return None;
        }
        match text.parse() {
            Ok(q) => Some(q),
            Err(()) => {
                self.problem(
                    name,
                    format!("{text:?} is not a window of hours"),
                    "write FROM-TO in 24-hour time, e.g. 22:00-07:00, or off",
                );
                None
            }
        }
    }

    /// A whole number within `range`. Bounds keep every later sum of times and dates from
    /// overflowing (u64::MAX minutes is a number, not an interval).
    fn number_in<T>(
        &mut self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
        fix: &str,
    ) -> T
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(text) = self.get(name) else {
            return default;
        };
        match text.parse::<T>() {
            Ok(v) if range.contains(&v) => v,
            Ok(v) => {
                self.problem(
                    name,
                    format!("{v} is outside {} to {}", range.start(), range.end()),
                    fix,
                );
                default
            }
            Err(_) => {
                self.problem(name, format!("{text:?} is not a valid number"), fix);
                default
            }
        }
    }

    /// An http(s) URL without its trailing slash; `None` when unset or (with a problem) not
    /// such a URL. The value is not repeated: a relay's URL may hold a key.
    fn http_url(&mut self, name: &str) -> Option<String> {
        let text = self.get(name)?.to_owned();
        match url::Url::parse(&text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
                Some(text.trim_end_matches('/').to_owned())
            }
            _ => {
                self.problem(
                    name,
                    "not an http(s) URL",
                    "write the server's address, e.g. https://example.com",
                );
                None
            }
        }
    }

    fn bytes(&mut self, name: &str, default: u64) -> u64 {
        match self.get(name) {
            None => default,
            Some(text) => match parse_bytes(text) {
                Some(n) => n,
                None => {
                    self.problem(
                        name,
                        format!("{text:?} is not a size"),
                        "write bytes or a size with a unit, e.g. 33554432 or 32MiB",
                    );
                    default
                }
            },
        }
    }

    fn encoding(&mut self) -> EncodingChoice {
        match self.get("EMAG_API_ENCODING") {
            None => EncodingChoice::Auto,
            Some(text) if text.eq_ignore_ascii_case("auto") => EncodingChoice::Auto,
            Some(text) => match text.parse::<ApiEncoding>() {
                Ok(e) => EncodingChoice::Fixed(e),
                Err(_) => {
                    self.problem(
                        "EMAG_API_ENCODING",
                        format!("{text:?} is not a request encoding"),
                        "write auto (the default), form, json-data or json",
                    );
                    EncodingChoice::Auto
                }
            },
        }
    }

    fn seconds(&mut self, name: &str, default: Duration) -> Duration {
        match self.get(name) {
            None => default,
            Some(text) => match parse_seconds(text) {
                Some(d) if d <= MAX_SECONDS => d,
                Some(_) => {
                    self.problem(
                        name,
                        format!("{text:?} is longer than a day"),
                        format!("write at most {} seconds, e.g. 30", MAX_SECONDS.as_secs()),
                    );
                    default
                }
                None => {
                    self.problem(
                        name,
                        format!("{text:?} is not a number of seconds"),
                        "write seconds, e.g. 30 or 0.5",
                    );
                    default
                }
            },
        }
    }

    /// A share in percent: `20`, `20%` or `20 %`, from 0 to 100.
    fn percent(&mut self, name: &str, default: u64) -> u64 {
        let Some(text) = self.get(name) else {
            return default;
        };
        match text.trim().trim_end_matches('%').trim().parse::<u64>() {
            Ok(v) if v <= 100 => v,
            _ => {
                self.problem(
                    name,
                    format!("{text:?} is not a percentage from 0 to 100"),
                    "write a whole percentage, e.g. 20",
                );
                default
            }
        }
    }

    fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(other) => {
                self.problem(
                    name,
                    format!("{other:?} is not true/false"),
                    "write true or false",
                );
                default
            }
        }
    }

    fn config(&mut self) -> Config {
        let database_url = self
            .get("DATABASE_URL")
            .unwrap_or(DEFAULT_DATABASE_URL)
            .to_owned();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            self.problem(
                "DATABASE_URL",
                "unsupported database URL",
                "use sqlite://data/emag-sync.db or postgres://user@host:5432/db",
            );
        } else if let Err(e) = check_database_url(&database_url) {
            self.problem(
                "DATABASE_URL",
                format!(
                    "{} is not a usable URL: {e}",
                    storage::redact_url(&database_url)
                ),
                "use sqlite://data/emag-sync.db or postgres://user:password@host:5432/db \
                 (percent-encode special characters of the password)",
            );
        }
        let account_selection = match self
            .get("EMAG_ACCOUNT_TYPE")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("auto" | "both" | "all") => AccountSelection::Auto,
            Some("main") => AccountSelection::Main,
            Some("fbe") => AccountSelection::Fbe,
            Some(other) => {
                self.problem(
                    "EMAG_ACCOUNT_TYPE",
                    format!("{other:?} is not an account type"),
                    "write main, fbe or auto",
                );
                AccountSelection::Auto
            }
        };
        let auto_failover = self.flag("EMAG_AUTO_FAILOVER", true);
        let api = ApiSettings {
            timeout: self.seconds("EMAG_API_TIMEOUT", Duration::from_secs(30)),
            max_retries: self.number("EMAG_MAX_RETRIES", 3, "write a whole number, e.g. 3"),
            retry_delay: self.seconds("EMAG_RETRY_DELAY", Duration::from_secs(5)),
            rate_budget: if self.flag("EMAG_RATE_LIMIT", true) {
                RateBudget::EMAG
            } else {
                RateBudget::UNLIMITED
            },
            max_body: self.bytes("EMAG_API_MAX_BODY", emag_client::DEFAULT_MAX_BODY),
            encoding: self.encoding(),
        };
        if api.max_body < 64 * 1024 {
            self.problem(
                "EMAG_API_MAX_BODY",
                format!("{} bytes cannot hold a page of offers", api.max_body),
                "write at least 64KiB; the default is 32MiB",
            );
        }
        if api.timeout.is_zero() {
            self.problem("EMAG_API_TIMEOUT", "must be more than 0", "write e.g. 30");
        }
        let sync = SyncSettings {
            orders_backfill_days: self.number_in(
                "EMAG_ORDERS_BACKFILL_DAYS",
                90,
                0..=MAX_BACKFILL_DAYS,
                "write a number of days from 0 to 3650, e.g. 90",
            ),
            orders_overlap: Duration::from_secs(
                3600 * self.number_in(
                    "EMAG_ORDERS_OVERLAP_HOURS",
                    24,
                    0..=MAX_HOURS,
                    "write hours from 0 to 8760, e.g. 24",
                ),
            ),
            orders_window_days: self.number(
                "EMAG_ORDERS_WINDOW_DAYS",
                DEFAULT_ORDERS_WINDOW_DAYS,
                "write a number of days from 1 to 28, e.g. 7",
            ),
            removal_confirm_max: self.number(
                "EMAG_REMOVAL_CONFIRM_MAX",
                300,
                "write a whole number of offers, e.g. 300",
            ),
            max_removed_share_percent: self.percent("EMAG_MAX_REMOVED_SHARE", 20),
            stale_after: self.seconds("EMAG_LEASE_TTL", DEFAULT_LEASE_TTL),
            api_encoding: api.encoding,
        };
        if !(1..=MAX_ORDERS_WINDOW_DAYS).contains(&sync.orders_window_days) {
            self.problem(
                "EMAG_ORDERS_WINDOW_DAYS",
                format!(
                    "{} days is outside 1..={MAX_ORDERS_WINDOW_DAYS}: eMAG refuses windows longer than a month",
                    sync.orders_window_days
                ),
                "write a number of days from 1 to 28, e.g. 7 (the default)",
            );
        }
        if sync.stale_after < MIN_LEASE_TTL {
            self.problem(
                "EMAG_LEASE_TTL",
                format!(
                    "{} s is too short: a run's lease must outlast several heartbeats",
                    sync.stale_after.as_secs_f64()
                ),
                format!(
                    "write at least {} seconds, e.g. 120 (the default)",
                    MIN_LEASE_TTL.as_secs()
                ),
            );
        }
        let log_level = self
            .get("EMAG_LOG_LEVEL")
            .unwrap_or("info")
            .to_ascii_lowercase();
        if ![
            "trace", "debug", "info", "warning", "warn", "error", "critical",
        ]
        .contains(&log_level.as_str())
        {
            self.problem(
                "EMAG_LOG_LEVEL",
                format!("{log_level:?} is not a log level"),
                "write one of debug, info, warning, error",
            );
        }
        let log_retention_days = self.number(
            "EMAG_LOG_RETENTION_DAYS",
            30,
            "write a number of days, e.g. 30",
        );
        let catch_up = match self
            .get("EMAG_CATCH_UP")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("once") => CatchUp::Once,
            Some("skip") => CatchUp::Skip,
            Some(other) => {
                self.problem(
                    "EMAG_CATCH_UP",
                    format!("{other:?} is not a policy"),
                    "write once or skip",
                );
                CatchUp::Once
            }
        };
        let pid_file = self
            .get("EMAG_PID_FILE")
            .unwrap_or("data/emag-sync.pid")
            .into();
        let log_file = self
            .get("EMAG_LOG_FILE")
            .unwrap_or("logs/emag_sync_scheduler.log")
            .into();
        let backups = BackupSettings {
            dir: self.get("EMAG_BACKUP_DIR").unwrap_or("data/backups").into(),
            keep: self.number(
                "EMAG_BACKUP_KEEP",
                7,
                "write how many snapshots to keep, e.g. 7",
            ),
            every: Duration::from_secs(
                3600 * self.number_in(
                    "EMAG_BACKUP_INTERVAL_HOURS",
                    24,
                    0..=MAX_HOURS,
                    "write hours from 0 to 8760, e.g. 24",
                ),
            ),
        };
        let run_retention_days = self.number(
            "EMAG_RUN_RETENTION_DAYS",
            90,
            "write a number of days, e.g. 90",
        );
        let instance_name = self
            .get("EMAG_INSTANCE_NAME")
            .map(str::trim)
            .map(str::to_owned);
        if let Some(name) = &instance_name {
            if name.is_empty()
                || name.len() > 64
                || name.contains(|c: char| c == ':' || c.is_whitespace())
            {
                self.problem(
                    "EMAG_INSTANCE_NAME",
                    format!("{name:?} is not a usable name"),
                    "write up to 64 characters without spaces or ':', e.g. sync-eu-1",
                );
            }
        }
        let freshness_target = Duration::from_secs(
            60 * self
                .number_in(
                    "EMAG_FRESHNESS_TARGET",
                    30,
                    0..=MAX_INTERVAL_MINUTES,
                    "write minutes from 1 to 525600, e.g. 30",
                )
                .max(1),
        );
        let freshness_critical = self.get("EMAG_FRESHNESS_CRITICAL").is_some().then(|| {
            Duration::from_secs(
                60 * self
                    .number_in(
                        "EMAG_FRESHNESS_CRITICAL",
                        60,
                        0..=MAX_INTERVAL_MINUTES,
                        "write minutes from 1 to 525600, e.g. 60",
                    )
                    .max(1),
            )
        });
        let dashboard = self.dashboard();
        let alerts = self.alerts();
        let accounts = self.accounts();
        Config {
            dashboard,
            alerts,
            freshness_critical,
            freshness_target,
            instance_name,
            log_file,
            backups,
            run_retention_days,
            catch_up,
            pid_file,
            database_url,
            accounts,
            account_selection,
            auto_failover,
            api,
            sync,
            log_level,
            log_retention_days,
        }
    }

    fn alerts(&mut self) -> AlertSettings {
        let consecutive_failures = self
            .number::<u32>(
                "EMAG_ALERT_CONSECUTIVE_FAILURES",
                2,
                "write how many failed runs in a row open an alert, e.g. 2",
            )
            .max(1);
        let errors_per_hour = i64::from(self.number::<u32>(
            "EMAG_ALERT_ERRORS_PER_HOUR",
            5,
            "write how many failed runs in an hour are too many, e.g. 5",
        ));
        let evaluate_every = self
            .seconds("EMAG_ALERT_EVALUATE_EVERY", Duration::from_secs(30))
            .max(Duration::from_millis(10));
        let webhook_url = match self.get("EMAG_ALERT_WEBHOOK_URL").map(str::to_owned) {
            None => None,
            Some(text) => match url::Url::parse(&text) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(SecretString::from(text)),
                // The value is a secret: never repeated.
                _ => {
                    self.problem(
                        "EMAG_ALERT_WEBHOOK_URL",
                        "not an http(s) URL",
                        "paste the incoming-webhook URL of Slack, Mattermost or a relay",
                    );
                    None
                }
            },
        };
        let language = match self.get("EMAG_ALERT_LANGUAGE").map(str::to_ascii_lowercase) {
            None => Language::Ro,
            Some(l) if l == "ro" => Language::Ro,
            Some(l) if l == "en" => Language::En,
            Some(other) => {
                self.problem(
                    "EMAG_ALERT_LANGUAGE",
                    format!("{other:?} is not a language of the alerts"),
                    "write ro or en",
                );
                Language::Ro
            }
        };
        let ntfy = self.http_url("EMAG_NTFY_URL").and_then(|url| {
            let Some(topic) = self.get("EMAG_NTFY_TOPIC").map(str::to_owned) else {
                self.problem(
                    "EMAG_NTFY_TOPIC",
                    "missing while EMAG_NTFY_URL is set",
                    "write the topic the phones subscribe to, e.g. emag-shop-alerts-7f3c",
                );
                return None;
            };
            Some(NtfySettings {
                url,
                topic,
                token: self
                    .get("EMAG_NTFY_TOKEN")
                    .map(|t| SecretString::from(t.to_owned())),
            })
        });
        let telegram = match (
            self.get("EMAG_TELEGRAM_BOT_TOKEN").map(str::to_owned),
            self.get("EMAG_TELEGRAM_CHAT_ID").map(str::to_owned),
        ) {
            (None, None) => None,
            (Some(token), Some(chat_id)) => Some(TelegramSettings {
                api_url: self
                    .http_url("EMAG_TELEGRAM_API_URL")
                    .unwrap_or_else(|| "https://api.telegram.org".to_owned()),
                bot_token: SecretString::from(token),
                chat_id,
            }),
            (Some(_), None) | (None, Some(_)) => {
                self.problem(
                    "EMAG_TELEGRAM_BOT_TOKEN",
                    "set without EMAG_TELEGRAM_CHAT_ID, or the other way round",
                    "set both: the bot's token from @BotFather and the chat's id",
                );
                None
            }
        };
        let sms = match self.get("EMAG_SMS_ACCOUNT_SID").map(str::to_owned) {
            None => None,
            Some(account_sid) => {
                let token = self.get("EMAG_SMS_AUTH_TOKEN").map(str::to_owned);
                let from = self.get("EMAG_SMS_FROM").map(str::to_owned);
                let to: Vec<String> = self
                    .get("EMAG_SMS_TO")
                    .map(|t| {
                        t.split(',')
                            .map(|n| n.trim().to_owned())
                            .filter(|n| !n.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                let min_severity = match self.get("EMAG_SMS_MIN_SEVERITY").map(str::parse) {
                    None => domain::Severity::Critical,
                    Some(Ok(s)) => s,
                    Some(Err(_)) => {
                        self.problem(
                            "EMAG_SMS_MIN_SEVERITY",
                            "not a severity",
                            "write critical, warning or info",
                        );
                        domain::Severity::Critical
                    }
                };
                match (token, from) {
                    (Some(token), Some(from)) if !to.is_empty() => Some(SmsSettings {
                        api_url: self
                            .http_url("EMAG_SMS_API_URL")
                            .unwrap_or_else(|| "https://api.twilio.com".to_owned()),
                        account_sid,
                        auth_token: SecretString::from(token),
                        from,
                        to,
                        min_severity,
                    }),
                    _ => {
                        self.problem(
                            "EMAG_SMS_ACCOUNT_SID",
                            "set without EMAG_SMS_AUTH_TOKEN, EMAG_SMS_FROM and EMAG_SMS_TO",
                            "set all four (EMAG_SMS_TO: numbers separated by commas, +40…)",
                        );
                        None
                    }
                }
            }
        };
        let email = self.email();
        let rate_limit_waits = self
            .number::<i64>(
                "EMAG_ALERT_RATE_LIMIT_WAITS",
                20,
                "write how many 429 waits of one account in an hour are too many, e.g. 20",
            )
            .max(1);
        let takeover_window = self.minutes("EMAG_ALERT_TAKEOVER_WINDOW", 15);
        let escalate_after = self.minutes("EMAG_ALERT_ESCALATE_AFTER", 30);
        let escalate_failures = self.number::<u32>(
            "EMAG_ALERT_ESCALATE_FAILURES",
            3,
            "write how many failed runs (with EMAG_ALERT_ESCALATE_AFTER) escalate an alert, \
             e.g. 3; 0 turns escalation off",
        );
        let digest = match self
            .get("EMAG_ALERT_DIGEST")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("off" | "no" | "0" | "false") => None,
            Some("info") => Some(domain::Severity::Info),
            Some("warning") => Some(domain::Severity::Warning),
            Some(other) => {
                self.problem(
                    "EMAG_ALERT_DIGEST",
                    format!("{other:?} is not a digest setting"),
                    "write off, info (info alerts in the daily digest) or warning (info and \
                     warning); critical alerts are always sent at once",
                );
                None
            }
        };
        let digest_at = match self.get("EMAG_ALERT_DIGEST_AT").map(str::to_owned) {
            None => chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
            Some(text) => parse_clock(&text).unwrap_or_else(|| {
                self.problem(
                    "EMAG_ALERT_DIGEST_AT",
                    format!("{text:?} is not a time of day"),
                    "write HH:MM, e.g. 08:00",
                );
                chrono::NaiveTime::default()
            }),
        };
        let zone = match self.get("EMAG_ALERT_TZ").map(str::to_owned) {
            None => chrono_tz::Europe::Bucharest,
            Some(text) => text.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
                self.problem(
                    "EMAG_ALERT_TZ",
                    format!("{text:?} is not an IANA time zone"),
                    "write a zone such as Europe/Bucharest",
                );
                chrono_tz::Europe::Bucharest
            }),
        };
        let all_quiet = self.quiet_hours("EMAG_ALERT_QUIET_HOURS");
        let mut quiet_hours = Vec::new();
        for channel in domain::AlertChannel::ALL {
            let name = format!(
                "EMAG_ALERT_QUIET_HOURS_{}",
                channel.as_str().to_ascii_uppercase()
            );
            let own = if self.get(&name).is_some() {
                self.quiet_hours(&name)
            } else {
                all_quiet
            };
            if let Some(q) = own {
                quiet_hours.push((*channel, q));
            }
        }
        let send_timeout = self
            .seconds("EMAG_ALERT_SEND_TIMEOUT", Duration::from_secs(10))
            .max(Duration::from_millis(100));
        let retry_delay = self
            .seconds("EMAG_ALERT_RETRY_DELAY", Duration::from_secs(30))
            .max(Duration::from_millis(10));
        AlertSettings {
            retry_delay,
            rate_limit_waits,
            takeover_window,
            escalate_after,
            escalate_failures,
            digest,
            digest_at,
            zone,
            quiet_hours,
            send_timeout,
            consecutive_failures,
            errors_per_hour,
            evaluate_every,
            webhook_url,
            email,
            ntfy,
            telegram,
            sms,
            language,
            dashboard_url: self.http_url("EMAG_DASHBOARD_URL"),
        }
    }

    fn email(&mut self) -> Option<EmailSettings> {
        let host = self.get("EMAG_SMTP_HOST")?.to_owned();
        let tls = match self
            .get("EMAG_SMTP_TLS")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls" | "implicit" | "ssl") => SmtpTls::Implicit,
            Some("none") => SmtpTls::None,
            Some(other) => {
                self.problem(
                    "EMAG_SMTP_TLS",
                    format!("{other:?} is not a TLS mode"),
                    "write starttls (port 587), tls (port 465) or none (a relay on this machine)",
                );
                SmtpTls::StartTls
            }
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if tls == SmtpTls::None && !loopback {
            self.problem(
                "EMAG_SMTP_TLS",
                "none is allowed only for a relay on this machine: the password and the \
                 messages would cross the network in clear",
                "write starttls or tls",
            );
        }
        let default_port = match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 587,
            SmtpTls::None => 25,
        };
        let port = self.number("EMAG_SMTP_PORT", default_port, "write a port, e.g. 587");
        let from = self.get("EMAG_SMTP_FROM").map(str::to_owned);
        let to: Vec<String> = self
            .get("EMAG_ALERT_EMAIL_TO")
            .map(|t| {
                t.split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let (Some(from), false) = (from, to.is_empty()) else {
            self.problem(
                "EMAG_SMTP_HOST",
                "set without EMAG_SMTP_FROM or EMAG_ALERT_EMAIL_TO",
                "set the sender (EMAG_SMTP_FROM) and the recipients (EMAG_ALERT_EMAIL_TO, \
                 separated by commas)",
            );
            return None;
        };
        // Parsed as the sender parses them: a typo shows at start, not at the first alert.
        for (variable, address) in std::iter::once(("EMAG_SMTP_FROM", &from))
            .chain(to.iter().map(|t| ("EMAG_ALERT_EMAIL_TO", t)))
        {
            if address.parse::<lettre::message::Mailbox>().is_err() {
                self.problem(
                    variable,
                    format!("{address:?} is not an email address"),
                    "write name@example.com or \"Name <name@example.com>\"; separate \
                     recipients by commas",
                );
            }
        }
        Some(EmailSettings {
            host,
            port,
            tls,
            username: self.get("EMAG_SMTP_USERNAME").map(str::to_owned),
            password: self
                .get("EMAG_SMTP_PASSWORD")
                .map(|p| SecretString::from(p.to_owned())),
            from,
            to,
        })
    }

    fn dashboard(&mut self) -> DashboardSettings {
        let bind = match self.get("EMAG_DASHBOARD_BIND") {
            None => DEFAULT_DASHBOARD_BIND,
            Some(text) => match text.parse() {
                Ok(addr) => addr,
                Err(_) => {
                    self.problem(
                        "EMAG_DASHBOARD_BIND",
                        format!("{text:?} is not an address with a port"),
                        "write e.g. 127.0.0.1:8001 (this machine only) or 0.0.0.0:8001 (every \
                         interface, needs EMAG_DASHBOARD_TOKEN)",
                    );
                    DEFAULT_DASHBOARD_BIND
                }
            },
        };
        let token = self.get("EMAG_DASHBOARD_TOKEN").map(str::to_owned);
        if token
            .as_ref()
            .is_some_and(|t| t.chars().count() < MIN_DASHBOARD_TOKEN_LEN)
        {
            // The value itself is never repeated.
            self.problem(
                "EMAG_DASHBOARD_TOKEN",
                format!("shorter than {MIN_DASHBOARD_TOKEN_LEN} characters: too easy to guess"),
                "generate one, e.g. `openssl rand -hex 32`",
            );
        }
        let status_max_age = self.seconds("EMAG_DASHBOARD_STATUS_MAX_AGE", Duration::from_secs(1));
        DashboardSettings {
            bind,
            token: token.map(SecretString::from),
            status_max_age,
        }
    }

    /// MAIN from `EMAG_API_*` (or `EMAG_MAIN_API_*`), every other account from
    /// `EMAG_<NAME>_API_USERNAME`.
    fn accounts(&mut self) -> Vec<AccountConfig> {
        let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
        if self.vars.contains_key("EMAG_API_USERNAME")
            || self.vars.contains_key("EMAG_API_PASSWORD")
        {
            prefixes.insert("main".into(), "EMAG_API".into());
        }
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        for key in names {
            let Some(middle) = key.strip_prefix("EMAG_").and_then(|k| {
                k.strip_suffix("_API_USERNAME")
                    .or_else(|| k.strip_suffix("_API_PASSWORD"))
            }) else {
                continue;
            };
            if middle.is_empty() {
                continue;
            }
            let name = middle.to_ascii_lowercase();
            let prefix = format!("EMAG_{middle}_API");
            if let Some(existing) = prefixes.get(&name) {
                if existing != &prefix {
                    self.problem(
                        &format!("{prefix}_USERNAME"),
                        format!("account {name} is configured twice ({existing}_* and {prefix}_*)"),
                        "keep one of the two sets of variables",
                    );
                }
                continue;
            }
            prefixes.insert(name, prefix);
        }
        let mut out = Vec::new();
        for (name, prefix) in prefixes {
            if let Some(account) = self.account(&name, &prefix) {
                out.push(account);
            }
        }
        out
    }

    fn account(&mut self, name: &str, prefix: &str) -> Option<AccountConfig> {
        let upper = name.to_ascii_uppercase();
        let username_var = format!("{prefix}_USERNAME");
        let password_var = format!("{prefix}_PASSWORD");
        let url_var = format!("{prefix}_URL");
        let account_name = match AccountName::parse(name) {
            Ok(n) => Some(n),
            Err(e) => {
                self.problem(
                    &username_var,
                    e.to_string(),
                    "use letters, digits and _ in NAME",
                );
                None
            }
        };
        let username = self.get(&username_var).map(str::to_owned);
        let password = self.get(&password_var).map(str::to_owned);
        if username.is_none() {
            self.problem(
                &username_var,
                format!("account {name}: username missing"),
                format!("set {username_var} to the API user of the {name} account"),
            );
        }
        if password.is_none() {
            self.problem(
                &password_var,
                format!("account {name}: password missing"),
                format!("set {password_var} to the API password of the {name} account"),
            );
        }
        // MAIN's may also be the seed's EMAG_MARKETPLACE: a problem names the one read.
        let marketplace_var = match format!("EMAG_{upper}_MARKETPLACE") {
            own if name == "main" && self.get(&own).is_none() => "EMAG_MARKETPLACE".to_owned(),
            own => own,
        };
        let marketplace = match self.get(&marketplace_var) {
            None => Marketplace::EmagRo,
            Some(text) => match Marketplace::parse_lenient(text) {
                Ok(m) => m,
                Err(e) => {
                    self.problem(
                        &marketplace_var,
                        e.to_string(),
                        "write ro, bg, hu, fd_ro or fd_bg",
                    );
                    Marketplace::EmagRo
                }
            },
        };
        let base_url = match self.get(&url_var) {
            None => marketplace.api_url().to_owned(),
            Some(u) => match url::Url::parse(u) {
                // Credentials in a URL end up in logs, `status` and the accounts table, and
                // eMAG takes them only as the Authorization header.
                Ok(p) if !p.username().is_empty() || p.password().is_some() => {
                    self.problem(
                        &url_var,
                        "the URL holds a user name or password (user:pass@); emag-sync does not accept credentials in a URL",
                        format!(
                            "remove the user:pass@ part and set the credentials in {prefix}_USERNAME and {prefix}_PASSWORD"
                        ),
                    );
                    String::new()
                }
                Ok(p) if p.scheme() == "http" || p.scheme() == "https" => {
                    u.trim_end_matches('/').to_owned()
                }
                _ => {
                    self.problem(
                        &url_var,
                        format!("{:?} is not an http(s) URL", storage::redact_url(u)),
                        "write e.g. https://marketplace-api.emag.ro/api-3",
                    );
                    String::new()
                }
            },
        };
        let kind_var = format!("EMAG_{upper}_ACCOUNT_KIND");
        let kind = match self.get(&kind_var) {
            Some(text) => text.parse().unwrap_or_else(|e: domain::ParseError| {
                self.problem(&kind_var, e.to_string(), "write main or fbe");
                AccountKind::Main
            }),
            None if name == "fbe" => AccountKind::Fbe,
            None => AccountKind::Main,
        };
        let interval_var = format!("EMAG_{upper}_SYNC_INTERVAL");
        let default_interval = if kind == AccountKind::Fbe { 60 } else { 30 };
        // `manual`: no scheduled runs; runs only when asked (`sync --queue`, `sync`).
        let manual_only = self
            .get(&interval_var)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("manual"));
        let minutes: u64 = if manual_only {
            default_interval
        } else {
            self.number_in(
                &interval_var,
                default_interval,
                1..=MAX_INTERVAL_MINUTES,
                "write minutes from 1 to 525600 (a year), e.g. 30, or manual",
            )
        };
        let orders_var = format!("EMAG_{upper}_ORDERS_INTERVAL");
        let orders_interval = self.get(&orders_var).is_some().then(|| {
            let m = self.number_in(
                &orders_var,
                1,
                1..=MAX_INTERVAL_MINUTES,
                "write minutes from 1 to 525600 (a year), e.g. 10",
            );
            Duration::from_secs(60 * m)
        });
        let cron_var = format!("EMAG_{upper}_SYNC_CRON");
        let tz_var = format!("EMAG_{upper}_SYNC_TZ");
        let cron = match self.get(&cron_var) {
            None => None,
            Some(_) if self.get(&tz_var).is_some_and(|z| parse_zone(z).is_err()) => {
                let zone = self.get(&tz_var).unwrap_or_default().to_owned();
                self.problem(
                    &tz_var,
                    format!("{zone:?} is not an IANA time zone"),
                    "write a zone such as Europe/Bucharest (the default) or UTC",
                );
                None
            }
            Some(expr) => {
                let zone = self.get(&tz_var).unwrap_or("Europe/Bucharest").to_owned();
                match CronSpec::parse(expr, &zone) {
                    Ok(spec) => Some(spec),
                    Err(e) => {
                        self.problem(
                            &cron_var,
                            e,
                            format!("write e.g. \"17 */2 * * *\" (every two hours at :17) and an IANA zone in {tz_var}"),
                        );
                        None
                    }
                }
            }
        };
        let types_var = format!("EMAG_{upper}_SYNC_TYPES");
        let sync_types = match self.get(&types_var) {
            None => SyncTypes(if kind == AccountKind::Fbe {
                vec![SyncKind::Offers]
            } else {
                SyncKind::ALL.to_vec()
            }),
            Some(text) => SyncTypes::parse(text).unwrap_or_else(|e| {
                self.problem(
                    &types_var,
                    e,
                    "write a comma-separated list of full, products_only, orders_only, offers, orders, reference, returns",
                );
                SyncTypes(SyncKind::ALL.to_vec())
            }),
        };
        Some(AccountConfig {
            name: account_name?,
            kind,
            marketplace,
            base_url,
            credentials: Credentials {
                username: username?,
                password: SecretString::from(password?),
            },
            username_var,
            password_var,
            sync_interval: Duration::from_secs(60 * minutes),
            manual_only,
            orders_interval,
            cron,
            sync_types,
        })
    }
}

/// `30`, `0.5`, `250ms` → a duration.
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        return ms.trim().parse().ok().map(Duration::from_millis);
    }
    let t = t.strip_suffix('s').unwrap_or(t);
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    if frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let millis: u64 = format!("{frac:0<3}").parse().ok()?;
    Duration::from_secs(secs).checked_add(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn seed_variable_names_give_main_and_fbe_accounts() {
        let c = Config::from_vars(&vars(&[
            ("EMAG_API_USERNAME", "m@x.ro"),
            ("EMAG_API_PASSWORD", "pm"),
            ("EMAG_FBE_API_USERNAME", "f@x.ro"),
            ("EMAG_FBE_API_PASSWORD", "pf"),
            ("EMAG_MAIN_SYNC_INTERVAL", "30"),
            ("EMAG_FBE_SYNC_INTERVAL", "60"),
            ("EMAG_FBE_SYNC_TYPES", "products_only"),
        ]))
        .expect("valid");
        assert_eq!(c.accounts.len(), 2);
        let fbe = c.account("fbe").expect("fbe");
        assert_eq!(fbe.kind, AccountKind::Fbe);
        assert_eq!(fbe.credentials.password.expose_secret(), "pf");
        assert_eq!(fbe.sync_types, SyncTypes(vec![SyncKind::Offers]));
        let main = c.account("main").expect("main");
        assert_eq!(main.base_url, "https://marketplace-api.emag.ro/api-3");
        assert_eq!(main.sync_interval, Duration::from_secs(1800));
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
    }

    #[test]
    fn more_accounts_follow_the_name_pattern_with_url_and_marketplace() {
        let c = Config::from_vars(&vars(&[
            ("EMAG_BG_API_USERNAME", "b"),
            ("EMAG_BG_API_PASSWORD", "p"),
            ("EMAG_BG_MARKETPLACE", "bg"),
            ("EMAG_HU_API_USERNAME", "h"),
            ("EMAG_HU_API_PASSWORD", "p"),
            ("EMAG_HU_API_URL", "http://127.0.0.1:9/api-3/"),
        ]))
        .expect("valid");
        assert_eq!(
            c.account("bg").expect("bg").base_url,
            "https://marketplace-api.emag.bg/api-3"
        );
        assert_eq!(
            c.account("hu").expect("hu").base_url,
            "http://127.0.0.1:9/api-3"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_variable() {
        let err = Config::from_vars(&vars(&[
            ("EMAG_API_USERNAME", "m"),
            ("EMAG_FBE_API_PASSWORD", "p"),
            ("EMAG_API_TIMEOUT", "soon"),
            ("EMAG_MAX_RETRIES", "-1"),
            ("EMAG_FBE_SYNC_TYPES", "everything"),
            ("DATABASE_URL", "mysql://x"),
        ]))
        .expect_err("invalid");
        let names: Vec<&str> = err.0.iter().map(|p| p.variable.as_str()).collect();
        for expected in [
            "EMAG_API_PASSWORD",
            "EMAG_FBE_API_USERNAME",
            "EMAG_API_TIMEOUT",
            "EMAG_MAX_RETRIES",
            "EMAG_FBE_SYNC_TYPES",
            "DATABASE_URL",
        ] {
            assert!(names.contains(&expected), "{expected} missing in {names:?}");
        }
    }

    #[test]
    fn api_urls_with_user_info_are_refused_without_showing_the_password() {
        for url in [
            "https://seller:s3cret@marketplace-api.emag.ro/api-3",
            "https://seller@marketplace-api.emag.ro/api-3",
            "https://:s3cret@marketplace-api.emag.ro/api-3",
        ] {
            let err = Config::from_vars(&vars(&[
                ("EMAG_API_USERNAME", "m"),
                ("EMAG_API_PASSWORD", "p"),
                ("EMAG_API_URL", url),
            ]))
            .expect_err("user-info refused");
            let problem = err
                .0
                .iter()
                .find(|p| p.variable == "EMAG_API_URL")
                .unwrap_or_else(|| panic!("a problem for EMAG_API_URL: {err}"));
            assert!(
                problem.problem.contains("user name or password"),
                "{problem:?}"
            );
            assert!(problem.fix.contains("EMAG_API_USERNAME"), "{problem:?}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        // Not a URL at all, with a password in it: refused, the password not shown.
        let err = Config::from_vars(&vars(&[
            ("EMAG_API_USERNAME", "m"),
            ("EMAG_API_PASSWORD", "p"),
            (
                "EMAG_API_URL",
                "https://seller:s3 cret@marketplace-api.emag.ro:x/api-3",
            ),
        ]))
        .expect_err("not a URL");
        assert!(err.to_string().contains("EMAG_API_URL"), "{err}");
        assert!(!err.to_string().contains("s3 cret"), "{err}");
    }

    #[test]
    fn cron_schedules_take_five_fields_and_an_iana_zone() {
        let c = Config::from_vars(&vars(&[
            ("EMAG_API_USERNAME", "m"),
            ("EMAG_API_PASSWORD", "p"),
            ("EMAG_MAIN_SYNC_CRON", "17 */2 * * *"),
        ]))
        .expect("valid");
        let spec = c
            .account("main")
            .and_then(|a| a.cron.clone())
            .expect("cron");
        assert_eq!(spec.expr, "0 17 */2 * * *");
        assert_eq!(spec.zone, chrono_tz::Europe::Bucharest);
        let err = Config::from_vars(&vars(&[
            ("EMAG_API_USERNAME", "m"),
            ("EMAG_API_PASSWORD", "p"),
            ("EMAG_MAIN_SYNC_CRON", "every hour"),
        ]))
        .expect_err("invalid");
        assert_eq!(err.0[0].variable, "EMAG_MAIN_SYNC_CRON");
        assert!(CronSpec::parse("0 3 * * *", "Mars/Olympus").is_err());
    }

    #[test]
    fn a_cron_schedule_that_never_fires_is_refused_at_load() {
        // Found by the fuzzer (issue 11): these parsed, and the schedule never ran.
        for expr in [
            "0 0 30 2 *",
            "0 0 31 4 *",
            "0 0 31 2 Mon",
            "0 0 0 1 1 * 2025",
        ] {
            let err = Config::from_vars(&vars(&[
                ("EMAG_API_USERNAME", "m"),
                ("EMAG_API_PASSWORD", "p"),
                ("EMAG_MAIN_SYNC_CRON", expr),
            ]))
            .expect_err(expr);
            assert_eq!(err.0[0].variable, "EMAG_MAIN_SYNC_CRON", "{expr}");
            assert!(err.0[0].problem.contains("never fires"), "{}", err.0[0]);
        }
        // 29 February fires, every four years.
        assert!(CronSpec::parse("0 0 29 2 *", "Europe/Bucharest").is_ok());
    }

    #[test]
    fn a_dotenv_file_with_a_byte_order_mark_reads_like_one_without() {
        // Found by the fuzzer (issue 11): line 1 was refused as unparseable.
        let plain = b"EMAG_API_USERNAME=m\nEMAG_API_PASSWORD=p\n";
        let mut marked = b"\xef\xbb\xbf".to_vec();
        marked.extend_from_slice(plain);
        let read = parse_dotenv(".env", &marked).expect("a .env with a BOM");
        assert_eq!(read, parse_dotenv(".env", plain).expect("a .env"));
        assert_eq!(read.get("EMAG_API_USERNAME").map(String::as_str), Some("m"));
    }

    #[test]
    fn a_dotenv_line_whose_name_and_value_run_together_is_named_by_its_number_only() {
        // Found by the fuzzer (issue 11): the `=` lost, the first word was name and password.
        let secret = "s3cretVALUE42";
        for line in [
            format!("EMAG_API_PASSWORD{secret}"),
            format!("EMAG_API_PASSWORD{secret} \"x"),
        ] {
            let text = format!("EMAG_API_USERNAME=m\n{line}\n");
            let err = parse_dotenv(".env", text.as_bytes()).expect_err(&line);
            let shown = err.to_string();
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("line 2"), "{shown}");
        }
        // With a space, the name is ours and shown; a password alone on its line is not.
        let err = parse_dotenv(".env", format!("EMAG_API_PASSWORD {secret}\n").as_bytes())
            .expect_err("no =");
        assert!(err.to_string().contains("(EMAG_API_PASSWORD)"), "{err}");
        assert!(!err.to_string().contains(secret), "{err}");
        for line in ["s3cretVALUE42==\"x", "EMAG_FBE_API_PASSWORD='x"] {
            let err = parse_dotenv(".env", format!("{line}\n").as_bytes()).expect_err(line);
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        assert!(is_variable_name("EMAG_FBE_API_PASSWORD") && is_variable_name("DATABASE_URL"));
        assert!(is_variable_name("EMAG_SHOP2_SYNC_CRON") && is_variable_name("EMAG_API_TIMEOUT"));
        assert!(!is_variable_name("EMAG_API_PASSWORDs3cret") && !is_variable_name("s3cret"));
    }

    #[test]
    fn a_value_that_took_in_other_lines_is_refused_and_never_shown() {
        // Found by the fuzzer (issue 11): a quote left open on DATABASE_URL's line took the
        // next lines into its value, and the problem about the URL printed them, a password
        // among them; two lines run together did the same for a number.
        let secret = "s3cretPW42";
        for (name, value) in [
            (
                "DATABASE_URL",
                format!("postgres://emag@db/emag\nEMAG_SMTP_HOST=x\nEMAG_API_PASSWORD={secret}\n"),
            ),
            ("EMAG_API_TIMEOUT", format!("30EMAG_API_PASSWORD={secret}")),
            ("EMAG_MAIN_SYNC_TYPES", format!("full\r\n{secret}")),
        ] {
            let err = Config::from_vars(&vars(&[
                ("EMAG_API_USERNAME", "m"),
                ("EMAG_API_PASSWORD", "p"),
                (name, value.as_str()),
            ]))
            .expect_err(name);
            let shown = err.to_string();
            assert!(!shown.contains(secret), "{shown}");
            assert!(
                err.0
                    .iter()
                    .any(|p| p.variable == name && p.problem.contains("several lines")),
                "{shown}"
            );
        }
        // An `=` in a value is not another line.
        assert!(!holds_other_lines("postgres://db/emag?options=-c%20x"));
        assert!(!holds_other_lines("abc=="));
    }

    #[test]
    fn an_instance_name_is_a_plain_word() {
        let base = [("EMAG_API_USERNAME", "m"), ("EMAG_API_PASSWORD", "p")];
        assert_eq!(
            Config::from_vars(&vars(&base))
                .expect("valid")
                .instance_name,
            None
        );
        let with = |name: &str| {
            let mut v = vars(&base);
            v.insert("EMAG_INSTANCE_NAME".into(), name.into());
            Config::from_vars(&v)
        };
        assert_eq!(
            with("sync-eu-1").expect("valid").instance_name.as_deref(),
            Some("sync-eu-1")
        );
        for bad in ["a:b", "two words", "x/y:1"] {
            let err = with(bad).expect_err(bad);
            assert_eq!(err.0[0].variable, "EMAG_INSTANCE_NAME", "{bad:?}");
        }
    }

    #[test]
    fn order_windows_and_removal_guards_are_configurable_and_validated() {
        let base = [("EMAG_API_USERNAME", "m"), ("EMAG_API_PASSWORD", "p")];
        let c = Config::from_vars(&vars(&base)).expect("valid");
        assert_eq!(c.sync.orders_window_days, 7);
        assert_eq!(c.sync.removal_confirm_max, 300);
        assert_eq!(c.sync.max_removed_share_percent, 20);

        let with = |extra: &[(&str, &str)]| {
            let mut v = vars(&base);
            for (k, val) in extra {
                v.insert((*k).into(), (*val).into());
            }
            Config::from_vars(&v)
        };
        let c = with(&[
            ("EMAG_ORDERS_WINDOW_DAYS", "3"),
            ("EMAG_REMOVAL_CONFIRM_MAX", "50"),
            ("EMAG_MAX_REMOVED_SHARE", "35%"),
        ])
        .expect("valid");
        assert_eq!(
            (
                c.sync.orders_window_days,
                c.sync.removal_confirm_max,
                c.sync.max_removed_share_percent
            ),
            (3, 50, 35)
        );
        for (var, bad) in [
            ("EMAG_ORDERS_WINDOW_DAYS", "0"),
            ("EMAG_ORDERS_WINDOW_DAYS", "31"),
            ("EMAG_REMOVAL_CONFIRM_MAX", "many"),
            ("EMAG_MAX_REMOVED_SHARE", "120"),
            ("EMAG_MAX_REMOVED_SHARE", "a fifth"),
        ] {
            let err = with(&[(var, bad)]).expect_err(bad);
            assert_eq!(err.0.len(), 1, "{var}={bad}: {err}");
            assert_eq!(err.0[0].variable, var, "{bad}");
        }
    }

    #[test]
    fn the_lease_ttl_is_configurable_validated_and_sets_the_heartbeat() {
        let base = [("EMAG_API_USERNAME", "m"), ("EMAG_API_PASSWORD", "p")];
        let c = Config::from_vars(&vars(&base)).expect("valid");
        assert_eq!(c.sync.stale_after, Duration::from_secs(120));
        assert_eq!(c.sync.heartbeat_every(), Duration::from_secs(10));

        let with = |ttl: &str| {
            let mut v = vars(&base);
            v.insert("EMAG_LEASE_TTL".into(), ttl.into());
            Config::from_vars(&v)
        };
        let c = with("30").expect("30 s is valid");
        assert_eq!(c.sync.stale_after, Duration::from_secs(30));
        assert_eq!(c.sync.heartbeat_every(), Duration::from_millis(7_500));
        let c = with("10").expect("the minimum is valid");
        assert_eq!(c.sync.heartbeat_every(), Duration::from_millis(2_500));
        let c = with("3600").expect("valid");
        assert_eq!(c.sync.heartbeat_every(), Duration::from_secs(10));

        for bad in ["9", "0", "9.5", "soon", "-5"] {
            let err = with(bad).expect_err(bad);
            assert_eq!(err.0.len(), 1, "{bad}: {err}");
            assert_eq!(err.0[0].variable, "EMAG_LEASE_TTL", "{bad}");
        }
        let err = with("5").expect_err("too short");
        assert!(
            err.0[0].problem.contains("too short") && err.0[0].fix.contains("at least 10"),
            "{err}"
        );

        // Whatever the lease, several beats fit in it.
        for secs in [10, 11, 45, 120, 600, 86_400] {
            let s = SyncSettings {
                stale_after: Duration::from_secs(secs),
                ..SyncSettings::default()
            };
            assert!(s.heartbeat_every() * 4 <= s.stale_after, "{secs}");
        }
    }

    #[test]
    fn the_dashboard_listens_on_loopback_by_default_and_takes_a_long_token() {
        let base = [("EMAG_API_USERNAME", "m"), ("EMAG_API_PASSWORD", "p")];
        let c = Config::from_vars(&vars(&base)).expect("valid");
        assert_eq!(c.dashboard.bind, "127.0.0.1:8001".parse().expect("addr"));
        assert!(c.dashboard.token.is_none());

        let with = |extra: &[(&str, &str)]| {
            let mut v = vars(&base);
            v.extend(vars(extra));
            Config::from_vars(&v)
        };
        let token = "0123456789abcdef0123";
        let c = with(&[
            ("EMAG_DASHBOARD_BIND", "0.0.0.0:9000"),
            ("EMAG_DASHBOARD_TOKEN", token),
        ])
        .expect("valid");
        assert_eq!(c.dashboard.bind, "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(
            c.dashboard.token.as_ref().map(|t| t.expose_secret()),
            Some(token)
        );
        assert!(
            !format!("{c:?}").contains(token),
            "the token never shows in Debug"
        );
        let c = with(&[("EMAG_DASHBOARD_BIND", "[::1]:8001")]).expect("IPv6");
        assert!(c.dashboard.bind.ip().is_loopback());

        let err = with(&[
            ("EMAG_DASHBOARD_BIND", "localhost"),
            ("EMAG_DASHBOARD_TOKEN", "short-secret"),
        ])
        .expect_err("both wrong");
        let variables: Vec<&str> = err.0.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            variables,
            ["EMAG_DASHBOARD_BIND", "EMAG_DASHBOARD_TOKEN"],
            "{err}"
        );
        assert!(!err.to_string().contains("short-secret"), "{err}");
    }

    #[test]
    fn body_cap_and_encoding_are_settings_with_clear_errors() {
        let c = Config::from_vars(&vars(&[])).expect("defaults");
        assert_eq!(c.api.max_body, 32 * 1024 * 1024);
        assert_eq!(c.api.encoding, EncodingChoice::Auto);
        let c = Config::from_vars(&vars(&[
            ("EMAG_API_MAX_BODY", "8MiB"),
            ("EMAG_API_ENCODING", "form"),
        ]))
        .expect("valid");
        assert_eq!(c.api.max_body, 8 * 1024 * 1024);
        assert_eq!(c.api.encoding, EncodingChoice::Fixed(ApiEncoding::Form));
        assert_eq!(parse_bytes("33554432"), Some(32 * 1024 * 1024));
        assert_eq!(parse_bytes("64 KiB"), Some(64 * 1024));
        let errors = Config::from_vars(&vars(&[
            ("EMAG_API_MAX_BODY", "lots"),
            ("EMAG_API_ENCODING", "xml"),
        ]))
        .expect_err("invalid");
        let names: Vec<&str> = errors.0.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(names, ["EMAG_API_MAX_BODY", "EMAG_API_ENCODING"]);
    }

    #[test]
    fn seconds_accept_fractions_and_milliseconds() {
        assert_eq!(parse_seconds("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_seconds("x"), None);
    }

    #[test]
    fn sync_types_really_differ() {
        assert_eq!(
            SyncTypes::parse("full").expect("full").0,
            SyncKind::ALL.to_vec()
        );
        assert_eq!(
            SyncTypes::parse("orders_only").expect("o").0,
            vec![SyncKind::Orders]
        );
        assert!(SyncTypes::parse("nope").is_err());
    }

    #[test]
    fn a_malformed_env_line_is_named_by_number_and_variable_never_by_its_value() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(".env");
        for (text, want) in [
            (
                "EMAG_API_USERNAME=u\nEMAG_API_PASSWORD=\"s3cr3t-canary\nDATABASE_URL=x\n",
                "line 2 (EMAG_API_PASSWORD) cannot be parsed",
            ),
            (
                "EMAG_API_USERNAME=u\nEMAG_API_PASSWORD=s3cr3t canary with space\n",
                "line 2 (EMAG_API_PASSWORD) cannot be parsed",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let errors = gather_vars(Some(&path)).expect_err("malformed");
            let shown = errors.to_string();
            assert!(shown.contains(want), "{shown}");
            assert!(
                !shown.contains("s3cr3t"),
                "the value is never shown: {shown}"
            );
        }
    }
}
