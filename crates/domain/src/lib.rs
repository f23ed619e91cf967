//! Pure types and rules of emag-sync: accounts, sync kinds, run states and outcomes, error
//! classes. No I/O and no async here: everything is a value parsed at the edge and trusted in
//! the core. Each enum that reaches the database maps to its text form in exactly one place
//! (`as_str` / `FromStr`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Raised when a string from config, the CLI or the database is not a valid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: expected {expected}")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Declares a C-like enum whose database/CLI text form is defined once.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }
    };
}

text_enum!(
    /// Which kind of eMAG seller account: the seller ships (MAIN) or eMAG does (FBE).
    AccountKind, "account kind" { Main => "main", Fbe => "fbe" }
);

text_enum!(
    /// The eMAG platforms sharing the Marketplace API.
    Marketplace, "marketplace" {
        EmagRo => "emag_ro", EmagBg => "emag_bg", EmagHu => "emag_hu",
        FashionDaysRo => "fashiondays_ro", FashionDaysBg => "fashiondays_bg",
    }
);

impl Marketplace {
    /// The production API base URL of the platform (emag-api.md §1).
    pub fn api_url(self) -> &'static str {
        match self {
            Marketplace::EmagRo => "https://marketplace-api.emag.ro/api-3",
            Marketplace::EmagBg => "https://marketplace-api.emag.bg/api-3",
            Marketplace::EmagHu => "https://marketplace-api.emag.hu/api-3",
            Marketplace::FashionDaysRo => "https://marketplace-ro-api.fashiondays.com/api-3",
            Marketplace::FashionDaysBg => "https://marketplace-bg-api.fashiondays.com/api-3",
        }
    }

    /// Accepts the short forms sellers write (`ro`, `bg`, `hu`, `fd_ro`, `fd_bg`) too.
    pub fn parse_lenient(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "ro" | "emag.ro" => Ok(Marketplace::EmagRo),
            "bg" | "emag.bg" => Ok(Marketplace::EmagBg),
            "hu" | "emag.hu" => Ok(Marketplace::EmagHu),
            "fd_ro" | "fashiondays.ro" => Ok(Marketplace::FashionDaysRo),
            "fd_bg" | "fashiondays.bg" => Ok(Marketplace::FashionDaysBg),
            other => other.parse(),
        }
    }
}

text_enum!(
    /// What a run synchronises.
    SyncKind, "sync kind" { Offers => "offers", Orders => "orders", Reference => "reference", Returns => "returns" }
);

text_enum!(
    /// What an alert watches for (issue 10). Each rule is decided in one place
    /// (`emag_sync::alerts`) from the status snapshot.
    AlertRule, "alert rule" {
        ConsecutiveFailures => "consecutive_failures", StaleData => "stale_data",
        AccessRefused => "access_refused", RateLimited => "rate_limited",
        SchedulerDown => "scheduler_down", ErrorBurst => "error_burst",
        Takeover => "takeover", StoppedRun => "stopped_run",
    }
);

text_enum!(
    /// How bad an alert is; ordered, so the worst is the greatest.
    Severity, "severity" { Info => "info", Warning => "warning", Critical => "critical" }
);

text_enum!(
    /// Life of an incident: firing until acknowledged or resolved; resolved is terminal (a
    /// condition that comes back opens a new incident).
    IncidentState, "incident state" {
        Firing => "firing", Acknowledged => "acknowledged", Resolved => "resolved",
    }
);

text_enum!(
    /// What a notice in the alert outbox tells. `Escalated`: an incident still firing past
    /// both escalation thresholds (now critical).
    Notice, "notice" {
        Opened => "opened", Resolved => "resolved", Escalated => "escalated", Test => "test",
    }
);

text_enum!(
    /// Where alerts are delivered.
    AlertChannel, "alert channel" {
        Webhook => "webhook", Email => "email", Sms => "sms", Ntfy => "ntfy", Telegram => "telegram",
    }
);

text_enum!(
    /// Why a run exists.
    RunTrigger, "run trigger" { Schedule => "schedule", Manual => "manual", Retry => "retry", Callback => "callback" }
);

text_enum!(
    /// Life of a run row. `Running` is the only non-terminal state a process holds.
    /// `Cancelled`: an operator stopped it (queued, interrupted, or running at a page
    /// boundary); terminal, never resumed, neither a success nor a failure.
    RunState, "run state" {
        Queued => "queued", Running => "running", Succeeded => "succeeded",
        Failed => "failed", Interrupted => "interrupted", Cancelled => "cancelled",
    }
);

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }
}

text_enum!(
    /// The class of a failure, decided where the error is born (see `emag_client::EmagError`).
    ErrorClass, "error class" {
        Auth => "auth", IpNotWhitelisted => "ip_not_whitelisted", RateLimited => "rate_limited",
        Rejected => "rejected", Malformed => "malformed", Server => "server", Timeout => "timeout",
        Transport => "transport", Storage => "storage", Config => "config",
        Protocol => "protocol",
    }
);

text_enum!(
    /// How a request's filters travel to eMAG (issue 9, point 1): PHP-style form fields
    /// `data[currentPage]=1` (eMAG's own samples), JSON `{"data": {...}}`, or JSON with the
    /// filters at the top level (saves keep `data`). No source settles which one eMAG honours,
    /// so the client probes it per account and keeps the first whose filters are applied.
    ApiEncoding, "request encoding" { Form => "form", JsonData => "json-data", Json => "json" }
);

impl ErrorClass {
    /// Whether trying the same call again later can succeed. Auth, IP and config problems
    /// need a person, and so does a call eMAG rejected (`isError: true`): sending the same
    /// filters again gets the same answer. So does a protocol violation (pages repeated, more
    /// items than asked, an oversized body): the same request gets the same answer. Everything
    /// transient may heal by itself — a database that went away mid-run too (restarted, its
    /// connections cut): a run failed on it is retried with backoff like one failed on eMAG,
    /// instead of waiting for the schedule's next slot (found by the chaos harness; a store
    /// that stays broken is retried `EMAG_MAX_RETRIES` times and no more).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::Malformed
                | ErrorClass::Server
                | ErrorClass::Timeout
                | ErrorClass::Transport
                | ErrorClass::Storage
        )
    }
}

text_enum!(
    /// Why an account needs a person. `Access`: eMAG refused its credentials or IP (cleared by
    /// any run that reads with them); `Removals`: a complete offer scan would remove more
    /// offers than one run may (cleared by an offer run that removes without refusing).
    AttentionCause, "attention cause" { Access => "access", Removals => "removals" }
);

text_enum!(
    /// What a quarantined item was when eMAG sent it.
    QuarantineKind, "quarantine kind" { Offer => "offer", Order => "order", Return => "return" }
);

/// eMAG order `type`: 3 fulfilled by the seller, 2 fulfilled by eMAG (FBE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OrderType {
    Fbe = 2,
    Seller = 3,
}

impl OrderType {
    pub const ALL: [OrderType; 2] = [OrderType::Seller, OrderType::Fbe];

    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            2 => Some(OrderType::Fbe),
            3 => Some(OrderType::Seller),
            _ => None,
        }
    }
}

/// A configured account's name: lowercase ASCII letters, digits and `_`, as in
/// `EMAG_<NAME>_API_USERNAME`. Offer ids repeat across accounts, so this name is half of
/// every key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let lower = s.trim().to_ascii_lowercase();
        let valid = !lower.is_empty()
            && lower.len() <= 40
            && lower.starts_with(|c: char| c.is_ascii_lowercase())
            && lower
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(AccountName(lower))
        } else {
            Err(ParseError {
                what: "account name",
                value: s.to_owned(),
                expected: "letters, digits and _ starting with a letter (at most 40)",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AccountName {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        AccountName::parse(&value)
    }
}

impl From<AccountName> for String {
    fn from(value: AccountName) -> String {
        value.0
    }
}

impl FromStr for AccountName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        AccountName::parse(s)
    }
}

/// Counters of one run, written with its outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub pages: u64,
    pub items_read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub requests: u64,
    pub rate_limit_waits: u64,
    pub retries: u64,
}

impl RunCounts {
    pub fn add(&mut self, other: &RunCounts) {
        self.pages += other.pages;
        self.items_read += other.items_read;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.removed += other.removed;
        self.requests += other.requests;
        self.rate_limit_waits += other.rate_limit_waits;
        self.retries += other.retries;
    }
}

/// How a finished run ended; recorded once, with a classified error when it failed.
/// `emag_messages` are what eMAG said on the way, recorded either way: a run that succeeded
/// after reads answered `isError: true` and retried keeps their messages (issue 9, point 5).
/// Build them with [`run_messages`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded {
        emag_messages: Vec<String>,
    },
    Failed {
        class: ErrorClass,
        message: String,
        emag_messages: Vec<String>,
    },
}

impl RunOutcome {
    /// Succeeded, and eMAG had nothing to say.
    pub fn succeeded() -> Self {
        RunOutcome::Succeeded {
            emag_messages: Vec::new(),
        }
    }

    pub fn emag_messages(&self) -> &[String] {
        match self {
            RunOutcome::Succeeded { emag_messages } | RunOutcome::Failed { emag_messages, .. } => {
                emag_messages
            }
        }
    }
}

/// The most distinct eMAG messages a run keeps.
pub const RUN_MESSAGES_MAX: usize = 10;
/// The most characters of one eMAG message a run keeps.
pub const RUN_MESSAGE_CHARS: usize = 300;

/// eMAG's messages as a run keeps them: the distinct texts in the order eMAG sent them, at
/// most [`RUN_MESSAGES_MAX`], each cut to [`RUN_MESSAGE_CHARS`] characters (an ellipsis
/// marks a cut). eMAG repeats its message on every retried answer, and a run row is read by
/// every view of the history: it stays small whatever eMAG sends.
pub fn run_messages<I, S>(messages: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut kept: Vec<String> = Vec::new();
    for message in messages {
        let text = message.as_ref().trim();
        if text.is_empty() {
            continue;
        }
        let text = match text.char_indices().nth(RUN_MESSAGE_CHARS - 1) {
            Some((cut, _)) if text[cut..].chars().nth(1).is_some() => {
                format!("{}…", &text[..cut])
            }
            _ => text.to_owned(),
        };
        if !kept.contains(&text) {
            kept.push(text);
            if kept.len() == RUN_MESSAGES_MAX {
                break;
            }
        }
    }
    kept
}

/// How the lease of a running run stands: the one liveness rule of emag-sync, used by the
/// claim in the store, the scheduler and every view (`status`, the dashboard).
///
/// A lease is held while its holder may still be running and its last heartbeat is less than
/// the TTL old. It is abandoned when its holder is known to be gone (a dead pid on this host:
/// at once) or has been silent for the whole TTL (any host). At exactly `heartbeat + ttl` the
/// lease has expired: every reader draws the line in the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lease {
    /// Its holder is alive and beat within the TTL; it may be taken over at `expires_at` (ms)
    /// if it stays silent until then.
    Held { expires_at: i64 },
    /// No holder, or the holder's process is known to be gone.
    HolderGone,
    /// The holder has not beaten for the whole TTL.
    Expired,
}

impl Lease {
    /// The state at `now_ms` of a lease held by `holder` that last beat at `heartbeat_at`.
    /// `holder_alive` says whether the holder's process may still run (only this host can
    /// know a process is gone; a holder on another host is judged by its heartbeat alone).
    pub fn judge(
        holder: Option<&str>,
        heartbeat_at: Option<i64>,
        now_ms: i64,
        ttl_ms: i64,
        holder_alive: impl FnOnce(&str) -> bool,
    ) -> Lease {
        let Some(holder) = holder else {
            return Lease::HolderGone;
        };
        if !holder_alive(holder) {
            return Lease::HolderGone;
        }
        match heartbeat_at {
            Some(beat) if now_ms < beat.saturating_add(ttl_ms) => Lease::Held {
                expires_at: beat.saturating_add(ttl_ms),
            },
            _ => Lease::Expired,
        }
    }

    /// Whether another process may take the run over now.
    pub fn is_abandoned(self) -> bool {
        !matches!(self, Lease::Held { .. })
    }
}

/// Text as both stores keep it: U+0000, which PostgreSQL's `text` columns refuse, becomes
/// U+FFFD (the replacement character) — on SQLite too, so both backends hold the same. Applied
/// where outside text enters a row (eMAG's items and messages); found by the fuzzer (issue 11).
pub fn storable_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_for_every_enum_value() {
        for k in SyncKind::ALL {
            assert_eq!(k.as_str().parse::<SyncKind>(), Ok(*k));
        }
        for s in RunState::ALL {
            assert_eq!(s.as_str().parse::<RunState>(), Ok(*s));
        }
        for c in ErrorClass::ALL {
            assert_eq!(c.as_str().parse::<ErrorClass>(), Ok(*c));
        }
    }

    #[test]
    fn account_names_are_lowercased_and_validated() {
        assert_eq!(AccountName::parse("FBE").map(|a| a.0), Ok("fbe".to_owned()));
        assert!(AccountName::parse("").is_err());
        assert!(AccountName::parse("9lives").is_err());
        assert!(AccountName::parse("a-b").is_err());
    }

    #[test]
    fn marketplaces_accept_short_forms_and_give_api_urls() {
        assert_eq!(Marketplace::parse_lenient("RO"), Ok(Marketplace::EmagRo));
        assert_eq!(
            Marketplace::parse_lenient("fd-bg"),
            Ok(Marketplace::FashionDaysBg)
        );
        assert!(Marketplace::parse_lenient("de").is_err());
        assert!(Marketplace::EmagHu.api_url().ends_with("/api-3"));
    }

    #[test]
    fn run_messages_are_distinct_bounded_in_number_and_cut_in_length() {
        let long = "é".repeat(RUN_MESSAGE_CHARS + 5);
        let exact = "x".repeat(RUN_MESSAGE_CHARS);
        let kept = run_messages([
            "Temporary problem, please retry",
            " Temporary problem, please retry ",
            "",
            long.as_str(),
            exact.as_str(),
        ]);
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert_eq!(kept[0], "Temporary problem, please retry");
        assert_eq!(kept[1].chars().count(), RUN_MESSAGE_CHARS);
        assert!(kept[1].ends_with('…'));
        assert_eq!(
            kept[2], exact,
            "a message of exactly the limit is kept whole"
        );

        let many: Vec<String> = (0..25).map(|i| format!("message {i}")).collect();
        let kept = run_messages(&many);
        assert_eq!(kept.len(), RUN_MESSAGES_MAX);
        assert_eq!(kept[0], "message 0", "the first ones are kept, in order");
    }

    #[test]
    fn auth_and_config_errors_are_not_retried() {
        assert!(!ErrorClass::Auth.is_retryable());
        assert!(!ErrorClass::IpNotWhitelisted.is_retryable());
        assert!(!ErrorClass::Config.is_retryable());
        assert!(ErrorClass::Server.is_retryable());
        assert!(ErrorClass::Storage.is_retryable());
    }

    #[test]
    fn nul_becomes_the_replacement_character_and_other_text_stays() {
        assert_eq!(storable_text("a\0b\0".into()), "a\u{fffd}b\u{fffd}");
        assert_eq!(storable_text("Șoseaua \u{feff}".into()), "Șoseaua \u{feff}");
    }

    #[test]
    fn a_lease_expires_at_exactly_heartbeat_plus_ttl_and_a_gone_holder_at_once() {
        let alive = |_: &str| true;
        assert_eq!(
            Lease::judge(Some("h:1:a"), Some(1_000), 10_999, 10_000, alive),
            Lease::Held { expires_at: 11_000 }
        );
        assert_eq!(
            Lease::judge(Some("h:1:a"), Some(1_000), 11_000, 10_000, alive),
            Lease::Expired
        );
        assert_eq!(
            Lease::judge(Some("h:1:a"), Some(1_000), 2_000, 10_000, |_| false),
            Lease::HolderGone
        );
        assert_eq!(
            Lease::judge(None, Some(1_000), 2_000, 10_000, alive),
            Lease::HolderGone
        );
        assert_eq!(
            Lease::judge(Some("h:1:a"), None, 2_000, 10_000, alive),
            Lease::Expired
        );
        assert!(!Lease::Held { expires_at: 0 }.is_abandoned());
        assert!(Lease::Expired.is_abandoned() && Lease::HolderGone.is_abandoned());
    }
}
