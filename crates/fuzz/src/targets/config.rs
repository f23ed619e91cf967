//! The configuration: variables through `Config::from_vars`, and `.env` files through
//! `config::parse_dotenv` and then `Config::from_vars`.
//!
//! Every secret (passwords, tokens, the webhook URL, the database password) is a canary
//! holding [`SECRET_STEM`]. Oracles: no problem ever holds a secret; every problem names a
//! variable (or the file); an accepted configuration holds only cron schedules that fire; a
//! `.env` file changed only in ways that keep its meaning (a UTF-8 BOM, CRLF line ends,
//! comments and blank lines, `export`, quotes around a value) gives the same variables.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use emag_sync::config::{parse_dotenv, Config, ConfigErrors};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{show_bytes, Pool};
use crate::mutate;
use crate::{shape, Harness, Outcome, Problem};

/// What every secret of the base configuration holds (and nothing else does).
pub const SECRET_STEM: &str = "Kq9sekrit";

/// A valid seller's configuration touching every section, each secret a canary derived from
/// `seed`.
pub fn base_vars(seed: u64) -> BTreeMap<String, String> {
    let mut n = 0u64;
    let mut secret = || {
        n += 1;
        format!(
            "{SECRET_STEM}{:016x}",
            seed.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(n)
        )
    };
    let mut vars = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        vars.insert(k.to_owned(), v);
    };
    set(
        "DATABASE_URL",
        format!("postgres://emag:{}@127.0.0.1:5432/emag", secret()),
    );
    set("EMAG_API_USERNAME", "seller@example.ro".into());
    set("EMAG_API_PASSWORD", secret());
    set("EMAG_FBE_API_USERNAME", "seller-fbe@example.ro".into());
    set("EMAG_FBE_API_PASSWORD", secret());
    set("EMAG_BG_API_USERNAME", "seller@example.bg".into());
    set("EMAG_BG_API_PASSWORD", secret());
    set("EMAG_BG_MARKETPLACE", "bg".into());
    set("EMAG_BG_SYNC_CRON", "17 */2 * * *".into());
    set("EMAG_BG_SYNC_TZ", "Europe/Sofia".into());
    set("EMAG_ACCOUNT_TYPE", "auto".into());
    set("EMAG_AUTO_FAILOVER", "true".into());
    set("EMAG_MAIN_SYNC_INTERVAL", "30".into());
    set("EMAG_FBE_SYNC_INTERVAL", "60".into());
    set("EMAG_MAIN_SYNC_TYPES", "full".into());
    set("EMAG_FBE_SYNC_TYPES", "products_only".into());
    set("EMAG_MAIN_ORDERS_INTERVAL", "10".into());
    set("EMAG_CATCH_UP", "once".into());
    set("EMAG_API_TIMEOUT", "30".into());
    set("EMAG_MAX_RETRIES", "3".into());
    set("EMAG_RETRY_DELAY", "5".into());
    set("EMAG_LOG_LEVEL", "info".into());
    set("EMAG_LOG_RETENTION_DAYS", "30".into());
    set("EMAG_ORDERS_OVERLAP_HOURS", "24".into());
    set("EMAG_ORDERS_BACKFILL_DAYS", "90".into());
    set("EMAG_LEASE_TTL", "120".into());
    set("EMAG_FRESHNESS_TARGET", "30".into());
    set("EMAG_DASHBOARD_BIND", "127.0.0.1:8001".into());
    set("EMAG_DASHBOARD_TOKEN", secret());
    set(
        "EMAG_ALERT_WEBHOOK_URL",
        format!("https://hooks.example.com/services/{}", secret()),
    );
    set("EMAG_SMTP_HOST", "smtp.example.com".into());
    set("EMAG_SMTP_PORT", "587".into());
    set("EMAG_SMTP_USERNAME", "alerts@shop.ro".into());
    set("EMAG_SMTP_PASSWORD", secret());
    set("EMAG_SMTP_FROM", "alerts@shop.ro".into());
    set("EMAG_ALERT_EMAIL_TO", "ops@shop.ro".into());
    set("EMAG_TELEGRAM_BOT_TOKEN", secret());
    set("EMAG_TELEGRAM_CHAT_ID", "-100123".into());
    set("EMAG_NTFY_TOPIC", "shop-alerts".into());
    set("EMAG_NTFY_TOKEN", secret());
    set("EMAG_SMS_ACCOUNT_SID", "AC0123456789".into());
    set("EMAG_SMS_AUTH_TOKEN", secret());
    set("EMAG_SMS_FROM", "+40700000000".into());
    set("EMAG_SMS_TO", "+40722000000".into());
    set("EMAG_ALERT_QUIET_HOURS", "22:00-07:00".into());
    set("EMAG_ALERT_DIGEST_AT", "08:30".into());
    set("EMAG_ALERT_LANGUAGE", "ro".into());
    vars
}

/// Variables the mutator sets (the base's, and more of `src/config.rs`).
const NAMES: &[&str] = &[
    "EMAG_API_URL",
    "EMAG_MARKETPLACE",
    "EMAG_FBE_API_URL",
    "EMAG_FBE_MARKETPLACE",
    "EMAG_BG_ACCOUNT_KIND",
    "EMAG_FBE_ACCOUNT_KIND",
    "EMAG_MAIN_SYNC_CRON",
    "EMAG_MAIN_SYNC_TZ",
    "EMAG_FBE_SYNC_CRON",
    "EMAG_BG_SYNC_INTERVAL",
    "EMAG_FBE_ORDERS_INTERVAL",
    "EMAG_API_ENCODING",
    "EMAG_API_MAX_BODY",
    "EMAG_RATE_LIMIT",
    "EMAG_ORDERS_WINDOW_DAYS",
    "EMAG_REMOVAL_CONFIRM_MAX",
    "EMAG_MAX_REMOVED_SHARE",
    "EMAG_BACKUP_DIR",
    "EMAG_BACKUP_KEEP",
    "EMAG_BACKUP_INTERVAL_HOURS",
    "EMAG_RUN_RETENTION_DAYS",
    "EMAG_INSTANCE_NAME",
    "EMAG_FRESHNESS_CRITICAL",
    "EMAG_ALERT_CONSECUTIVE_FAILURES",
    "EMAG_ALERT_ERRORS_PER_HOUR",
    "EMAG_ALERT_EVALUATE_EVERY",
    "EMAG_ALERT_RATE_LIMIT_WAITS",
    "EMAG_ALERT_TAKEOVER_WINDOW",
    "EMAG_ALERT_ESCALATE_AFTER",
    "EMAG_ALERT_ESCALATE_FAILURES",
    "EMAG_ALERT_DIGEST",
    "EMAG_ALERT_TZ",
    "EMAG_ALERT_SEND_TIMEOUT",
    "EMAG_ALERT_RETRY_DELAY",
    "EMAG_SMTP_TLS",
    "EMAG_SMS_MIN_SEVERITY",
    "EMAG_SMS_API_URL",
    "EMAG_TELEGRAM_API_URL",
    "EMAG_NTFY_URL",
    "EMAG_DASHBOARD_STATUS_MAX_AGE",
    "EMAG_DASHBOARD_URL",
    "EMAG_LOG_FILE",
    "EMAG_PID_FILE",
];

/// Values near the valid ones of each family: numbers, durations, cron, zones, addresses.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "30",
    "abc",
    "manual",
    "MANUAL",
    "1e3",
    "99999999999",
    "18446744073709551616",
    "0.5",
    "250ms",
    "1.0001",
    "10%",
    "150",
    "true",
    "yes",
    "off",
    "never",
    "once",
    "skip",
    "full,orders",
    "offers,,books",
    "main",
    "fbe",
    "auto",
    "ro",
    "bg",
    "xx",
    "form",
    "json-data",
    "64MiB",
    "1TB",
    "17 */2 * * *",
    "0 0 30 2 *",
    "0 0 31 4 *",
    "0 0 29 2 *",
    "0 0 31 2 Mon",
    "0 0 31 11 *",
    "* * * * * * 1999",
    "0 0 * * * * 2200",
    "60 * * * *",
    "*/0 * * * *",
    "0 0 1 1 * 2025",
    "Europe/Bucharest",
    "Europe/Nowhere",
    "UTC",
    "22:00-07:00",
    "25:00-07:00",
    "08:30",
    "127.0.0.1:8001",
    "0.0.0.0:8001",
    "[::1]:0",
    "localhost:8001",
    "https://marketplace-api.emag.ro/api-3",
    "https://user:pw@x.ro/api-3",
    "ftp://x",
    "not a url",
    "sqlite://data/x.db",
    "sqlite::memory:",
    "postgres://u@127.0.0.1:notaport/db",
    "postgres://u@h/db?sslmode=sometimes",
    "mysql://x",
    "a@b",
    "@",
    "info",
    "trace",
    "loud",
];

/// Cron expressions at the edges: days that do not exist, fields out of range, years past.
const CRONS: &[&str] = &[
    "17 */2 * * *",
    "0 0 30 2 *",
    "0 0 31 4 *",
    "0 0 31 6,9,11 *",
    "0 0 29 2 *",
    "0 0 31 2 Mon",
    "0 0 1 1 * 2025",
    "0 0 * * * * 2200",
    "* * * * * * 1999",
    "60 * * * *",
    "*/0 * * * *",
    "0 0 L * *",
    "0 0 ? * *",
];

/// A secret of the base found in `text`.
fn secret_in(text: &str) -> bool {
    // Case-blind: an account name is shown lower-cased.
    text.to_ascii_lowercase()
        .contains(&SECRET_STEM.to_ascii_lowercase())
}

/// Whether `name` holds a secret.
fn is_secret(name: &str) -> bool {
    name.ends_with("PASSWORD")
        || name.ends_with("TOKEN")
        || name == "EMAG_ALERT_WEBHOOK_URL"
        || name == "DATABASE_URL"
}

/// Judges `Config::from_vars(vars)`.
/// Whether a value shows it took in other lines of a `.env` file (a line break, or `NAME=`
/// of one of our variables): the configuration can tell, and must not show it.
fn took_in_lines(value: &str) -> bool {
    value.contains(['\n', '\r'])
        || ["EMAG_", "DATABASE_URL="].iter().any(|start| {
            value.match_indices(start).any(|(at, _)| {
                let rest = &value[at..];
                let len = rest
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(rest.len());
                rest[len..].starts_with('=')
            })
        })
}

/// Judges `Config::from_vars(vars)`; secrets in problems only with `check_secrets`.
fn judge_config(out: &mut Outcome, vars: &HashMap<String, String>, check_secrets: bool) {
    // A secret that ended up inside another variable's value where nothing shows it (a line
    // break lost and part of the next name with it: `EMAG_API_TIMEOUT=30ELEGRAM_BOT_TOKEN=…`)
    // is that variable's value to the parser, and quoting a bad value is the rule. Where the
    // value shows it took in other lines, the secret must stay hidden.
    let secrets_unrecognisable = vars
        .iter()
        .any(|(k, v)| !is_secret(k) && secret_in(v) && !took_in_lines(v));
    match Config::from_vars(vars) {
        Err(ConfigErrors(problems)) => {
            // By each problem's variable and the first words of what is wrong (values left
            // out): a new kind of problem is an outcome, a new combination of them is not.
            let mut kinds: Vec<String> = problems
                .iter()
                .map(|p| {
                    let words: String = p
                        .problem
                        .split_whitespace()
                        .skip(1)
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ");
                    format!("{} {}", p.variable, shape(&words, 30))
                })
                .collect();
            kinds.sort_unstable();
            kinds.dedup();
            out.signature.push_str(&format!(
                " problem {}",
                kinds.first().cloned().unwrap_or_default()
            ));
            for p in &problems {
                if check_secrets && !secrets_unrecognisable && secret_in(&p.to_string()) {
                    out.problems.push(Problem::new(
                        "secret in a configuration problem",
                        p.to_string(),
                    ));
                }
                out.check(
                    !p.variable.is_empty() && !p.problem.is_empty() && !p.fix.is_empty(),
                    "configuration problem without a name or fix",
                    || format!("{p:?}"),
                );
                out.check(
                    !p.problem.contains('\n') && !p.fix.contains('\n'),
                    "multi-line problem",
                    || p.to_string(),
                );
            }
        }
        Ok(config) => {
            out.signature.push_str(" ok");
            for account in &config.accounts {
                if let Some(spec) = &account.cron {
                    let fires = cron::Schedule::from_str(&spec.expr).ok().and_then(|s| {
                        let now = chrono::Utc::now().with_timezone(&spec.zone);
                        s.after(&now).next()
                    });
                    out.check(
                        fires.is_some(),
                        "a cron schedule that never fires accepted",
                        || {
                            format!(
                                "{}: {:?} in {}",
                                account.name.as_str(),
                                spec.expr,
                                spec.zone
                            )
                        },
                    );
                }
            }
        }
    }
}

/// The variables target.
pub(crate) struct Vars {
    base: BTreeMap<String, String>,
    kept: Vec<BTreeMap<String, String>>,
}

impl Vars {
    pub fn new(seed: u64) -> Vars {
        Vars {
            base: base_vars(seed),
            kept: Vec::new(),
        }
    }

    pub fn seeds(&self) -> usize {
        1
    }
}

/// A value for a variable: near-valid, interesting, another variable's (never a secret's
/// into a non-secret), or the current one bent.
fn value_for(rng: &mut ChaCha8Rng, current: Option<&str>) -> String {
    match rng.gen_range(0..8) {
        0..=2 => (*VALUES.choose(rng).unwrap_or(&"")).to_owned(),
        3 => mutate::interesting_string(rng),
        4 => mutate::interesting_number(rng),
        _ => {
            let mut bytes = current.unwrap_or("30").as_bytes().to_vec();
            for _ in 0..rng.gen_range(1..=3) {
                mutate::mutate_bytes(rng, &mut bytes, &[]);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

/// An account name for new `EMAG_<NAME>_…` variables.
fn account_name(rng: &mut ChaCha8Rng) -> String {
    const NAMES: &[&str] = &[
        "SHOP2",
        "HU",
        "FD_RO",
        "X",
        "API",
        "MAIN",
        "FBE",
        "A_B",
        "9",
        "ÄÖ",
        "MAIN_",
        "_",
        "LONGLONGLONGLONGLONGLONGLONGLONGLONGLONGLONGLONGLONGLONGLONGLONGLONG1",
    ];
    (*NAMES.choose(rng).unwrap_or(&"X")).to_owned()
}

fn mutate_vars(rng: &mut ChaCha8Rng, vars: &mut BTreeMap<String, String>) {
    let keys: Vec<String> = vars.keys().cloned().collect();
    match rng.gen_range(0..10) {
        0..=3 => {
            let name = if rng.gen_bool(0.6) {
                keys.choose(rng).cloned().unwrap_or_default()
            } else {
                (*NAMES.choose(rng).unwrap_or(&"EMAG_API_URL")).to_owned()
            };
            let value = value_for(rng, vars.get(&name).map(String::as_str));
            // A secret stays a secret: only bent, never swapped for a non-secret's value.
            if secret_in(&value) && !is_secret(&name) {
                return;
            }
            vars.insert(name, value);
        }
        4 => {
            if let Some(k) = keys.choose(rng) {
                vars.remove(k);
            }
        }
        5 => {
            let name = account_name(rng);
            vars.insert(format!("EMAG_{name}_API_USERNAME"), "u@x.ro".into());
            if rng.gen_bool(0.8) {
                vars.insert(
                    format!("EMAG_{name}_API_PASSWORD"),
                    format!("{SECRET_STEM}{name}"),
                );
            }
            if rng.gen_bool(0.5) {
                let value = value_for(rng, None);
                let suffix = [
                    "MARKETPLACE",
                    "SYNC_INTERVAL",
                    "SYNC_CRON",
                    "API_URL",
                    "ACCOUNT_KIND",
                    "SYNC_TYPES",
                ]
                .choose(rng)
                .copied()
                .unwrap_or("SYNC_INTERVAL");
                vars.insert(format!("EMAG_{name}_{suffix}"), value);
            }
        }
        6 => {
            // A secret bent (still a secret).
            let secrets: Vec<&String> = keys.iter().filter(|k| is_secret(k)).collect();
            if let Some(k) = secrets.choose(rng) {
                let current = vars.get(*k).cloned().unwrap_or_default();
                let mut bytes = current.into_bytes();
                let at = rng.gen_range(0..=bytes.len());
                let extra = mutate::interesting_string(rng);
                bytes.splice(at..at, extra.bytes());
                vars.insert((*k).clone(), String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        7 => {
            let name = account_name(rng);
            vars.insert(
                format!("EMAG_{name}_SYNC_CRON"),
                value_for(rng, Some("0 0 30 2 *")),
            );
            vars.insert(
                "EMAG_MAIN_SYNC_CRON".into(),
                (*CRONS.choose(rng).unwrap_or(&"")).to_owned(),
            );
        }
        8 => {
            // A name bent: lower case, a space, a NUL.
            if let Some(k) = keys.choose(rng) {
                if let Some(v) = vars.remove(k) {
                    let bent = match rng.gen_range(0..3) {
                        0 => k.to_ascii_lowercase(),
                        1 => format!("{k} "),
                        _ => format!("{k}\0"),
                    };
                    vars.insert(bent, v);
                }
            }
        }
        _ => {
            vars.insert(
                format!("EMAG_{}", mutate::interesting_string(rng)),
                value_for(rng, None),
            );
        }
    }
}

impl Harness for Vars {
    type Input = BTreeMap<String, String>;

    fn generate(&mut self, rng: &mut ChaCha8Rng) -> BTreeMap<String, String> {
        let mut vars = match self.kept.choose(rng) {
            Some(kept) if rng.gen_bool(0.5) => kept.clone(),
            _ => self.base.clone(),
        };
        for _ in 0..rng.gen_range(1..=4) {
            mutate_vars(rng, &mut vars);
        }
        vars
    }

    fn execute(&mut self, vars: &BTreeMap<String, String>) -> Outcome {
        let mut out = Outcome::new("vars");
        let map: HashMap<String, String> = vars.clone().into_iter().collect();
        judge_config(&mut out, &map, true);
        out
    }

    fn show(&self, vars: &BTreeMap<String, String>) -> String {
        // Only what differs from the base.
        let mut diff: Vec<String> = vars
            .iter()
            .filter(|(k, v)| self.base.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k:?}={v:?}"))
            .collect();
        diff.extend(
            self.base
                .keys()
                .filter(|k| !vars.contains_key(*k))
                .map(|k| format!("{k:?} removed")),
        );
        format!("the base configuration with {}", diff.join(", "))
    }

    fn keep(&mut self, vars: BTreeMap<String, String>) {
        if self.kept.len() < crate::POOL_MAX {
            self.kept.push(vars);
        }
    }
}

/// One `.env` input: its bytes, and the variables it must give when only meaning-preserving
/// changes were made.
#[derive(Debug, Clone)]
pub(crate) struct EnvFile {
    bytes: Vec<u8>,
    expected: Option<BTreeMap<String, String>>,
}

/// The `.env` target.
pub(crate) struct Dotenv {
    base: BTreeMap<String, String>,
    pool: Pool,
}

impl Dotenv {
    pub fn new(seed: u64) -> Dotenv {
        let base = base_vars(seed);
        let example = include_str!("../../../../.env.example");
        let plain = render(&base, &mut ChaCha8Rng::seed_from_u64(seed), false);
        Dotenv {
            pool: Pool::new([(0, example.as_bytes().to_vec()), (0, plain)]),
            base,
        }
    }

    pub fn seeds(&self) -> usize {
        self.pool.seeds()
    }
}

/// `vars` as a `.env` file; with `styled`, each line in a random meaning-preserving style.
fn render(vars: &BTreeMap<String, String>, rng: &mut ChaCha8Rng, styled: bool) -> Vec<u8> {
    let mut out = String::new();
    let crlf = styled && rng.gen_bool(0.3);
    let eol = if crlf { "\r\n" } else { "\n" };
    if styled && rng.gen_bool(0.3) {
        out.push('\u{feff}');
    }
    for (k, v) in vars {
        if styled && rng.gen_bool(0.1) {
            out.push_str("# a comment = with \"quotes\" and 'more'");
            out.push_str(eol);
        }
        if styled && rng.gen_bool(0.1) {
            out.push_str(eol);
        }
        let export = if styled && rng.gen_bool(0.1) {
            "export "
        } else {
            ""
        };
        let quoted = if !styled || v.contains(' ') {
            // Values with spaces are double-quoted (the cron): as a seller writes them.
            if v.contains(' ') {
                format!("\"{v}\"")
            } else {
                v.clone()
            }
        } else {
            match rng.gen_range(0..3) {
                0 => format!("\"{v}\""),
                1 => format!("'{v}'"),
                _ => v.clone(),
            }
        };
        out.push_str(&format!("{export}{k}={quoted}{eol}"));
    }
    out.into_bytes()
}

/// Changes that break a line the way people do: a stray quote, no `=`, lines joined or cut.
fn break_lines(rng: &mut ChaCha8Rng, bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        return bytes.to_vec();
    }
    let at = rng.gen_range(0..lines.len());
    let line = lines[at].clone();
    match rng.gen_range(0..9) {
        // A quote opened and never closed.
        0 | 1 => {
            lines[at] = match line.split_once('=') {
                Some((k, v)) => format!(
                    "{k}={}{}",
                    ["\"", "'", "`"].choose(rng).unwrap_or(&"\""),
                    v.trim_matches(['"', '\''])
                ),
                None => format!("\"{line}"),
            }
        }
        // The `=` gone, or a space instead.
        2 => lines[at] = line.replacen('=', if rng.gen_bool(0.5) { " " } else { "" }, 1),
        // Only the value left on the line.
        3 => {
            lines[at] = line
                .split_once('=')
                .map(|(_, v)| v.to_owned())
                .unwrap_or(line);
        }
        // Two lines joined.
        4 if at + 1 < lines.len() => {
            let next = lines.remove(at + 1);
            lines[at] = format!("{line}{next}");
        }
        // A quote inside the value.
        5 => lines[at] = line.replacen('=', "=a\"b", 1),
        // A value with an escape or a substitution.
        6 => {
            lines[at] = format!(
                "{line}{}",
                [
                    "\\",
                    "\\n",
                    // Not a password's: a value that asks for one by name gets it.
                    "${EMAG_API_TIMEOUT}",
                    "$HOME",
                    "${",
                    " # comment",
                    "\\\""
                ]
                .choose(rng)
                .unwrap_or(&"\\")
            );
        }
        // The line twice.
        7 => lines.insert(at, line),
        _ => lines[at] = format!("{line}{}", mutate::interesting_string(rng)),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

impl Harness for Dotenv {
    type Input = EnvFile;

    fn generate(&mut self, rng: &mut ChaCha8Rng) -> EnvFile {
        match rng.gen_range(0..10) {
            // The base in another style: same meaning.
            0..=2 => EnvFile {
                bytes: render(&self.base, rng, true),
                expected: Some(self.base.clone()),
            },
            3..=5 => {
                let style = rng.gen_bool(0.5);
                let styled = render(&self.base, rng, style);
                let mut bytes = styled;
                for _ in 0..rng.gen_range(1..=2) {
                    bytes = break_lines(rng, &bytes);
                }
                EnvFile {
                    bytes,
                    expected: None,
                }
            }
            _ => {
                let (_, mut bytes) = self.pool.mutant(rng);
                if rng.gen_bool(0.5) {
                    bytes = break_lines(rng, &bytes);
                }
                EnvFile {
                    bytes,
                    expected: None,
                }
            }
        }
    }

    fn execute(&mut self, file: &EnvFile) -> Outcome {
        let mut out = Outcome::default();
        // A secret inside a line's *name* (a line that lost its `=` and its line break, and
        // took the next name: `EMAG_ALERT_WEBHOOK_URL<secret>EMAG_API_PASSWORD=…`) is shown
        // as a name: names are shown by design. Such files are not judged for secrets.
        let text = String::from_utf8_lossy(&file.bytes);
        let secret_in_a_name = text.lines().any(|line| {
            let name = line
                .trim_start_matches('\u{feff}')
                .split(['=', ' ', '\t'])
                .next()
                .unwrap_or_default();
            secret_in(name)
        });
        match parse_dotenv("fuzz.env", &file.bytes) {
            Err(ConfigErrors(problems)) => {
                out.signature = format!(
                    "unreadable {}",
                    shape(
                        &problems
                            .iter()
                            .map(|p| p.problem.clone())
                            .collect::<Vec<_>>()
                            .join(";"),
                        60
                    )
                );
                for p in &problems {
                    if !secret_in_a_name && secret_in(&p.to_string()) {
                        out.problems
                            .push(Problem::new("secret in a .env problem", p.to_string()));
                    }
                    out.check(
                        p.variable == "fuzz.env",
                        "a .env problem not naming the file",
                        || p.to_string(),
                    );
                }
                out.check(file.expected.is_none(), ".env meaning changed", || {
                    format!("refused: {problems:?}")
                });
            }
            Ok(vars) => {
                out.signature = "read".into();
                if let Some(expected) = &file.expected {
                    let got: BTreeMap<String, String> = vars.clone().into_iter().collect();
                    out.check(&got == expected, ".env meaning changed", || {
                        let missing: Vec<&String> =
                            expected.keys().filter(|k| !got.contains_key(*k)).collect();
                        let extra: Vec<&String> =
                            got.keys().filter(|k| !expected.contains_key(*k)).collect();
                        format!("missing {missing:?}, unexpected {extra:?}")
                    });
                }
                judge_config(&mut out, &vars, !secret_in_a_name);
            }
        }
        out
    }

    fn show(&self, file: &EnvFile) -> String {
        show_bytes(&file.bytes)
    }

    fn keep(&mut self, file: EnvFile) {
        self.pool.add(0, file.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_configuration_is_valid_and_its_secrets_are_canaries() {
        let vars: HashMap<String, String> = base_vars(7).into_iter().collect();
        let config = Config::from_vars(&vars);
        assert!(config.is_ok(), "{:?}", config.err());
        let secrets = vars.iter().filter(|(_, v)| secret_in(v)).count();
        assert_eq!(secrets, vars.keys().filter(|k| is_secret(k)).count());
    }
}
