//! `GET /metrics`: Prometheus text exposition format 0.0.4.
//!
//! Run and record counters come from the store (`run_totals`, added to in the transaction
//! that ends each run), so they are the same from every process sharing the database and
//! survive restarts and the pruning of old runs; one query reads them however long the run
//! history is. Only the eMAG request counters by route class and HTTP code live in this
//! process (the clients of the scheduler it runs), and their HELP says so.
//!
//! The text is written by a small writer rather than a metrics registry: every value is read
//! fresh from the store at scrape time, so there is nothing to register or keep in step. The
//! part rendered from `run_totals` (most of the text: a few series per account and kind) is
//! kept between scrapes while the totals' version is unchanged — with 1,000 accounts reading
//! and rendering it costs ~100 ms, reading the version one cheap row.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use domain::{AlertChannel, RunState, SyncKind};
use emag_client::RequestCount;
use storage::{ActiveRunCounts, OutboxCounts, RunTotals};

use super::problem::Problem;
use super::AppState;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn get(State(state): State<AppState>) -> Response {
    let unavailable = |e: storage::StorageError| {
        Problem::database_unavailable(&e)
            .with_instance("/metrics")
            .into_response()
    };
    let store = state.store();
    let read = async {
        tokio::try_join!(
            store.run_totals_version(),
            store.active_run_counts(),
            store.outbox_counts()
        )
    };
    let (version, active, alerts) = match state.bounded(read).await {
        Ok(read) => read,
        Err(e) => return unavailable(e),
    };
    let cache = state.totals_cache();
    let stored = match cache.get(version) {
        Some(stored) => stored,
        None => match state.bounded(store.run_totals()).await {
            Ok(totals) => cache.put(version, StoredTotals::of(&totals)),
            Err(e) => return unavailable(e),
        },
    };
    let body = render(&stored, &active, &state.api_request_counts(), &alerts);
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// The eMAG requests this process sent, per (account, route class, code).
pub type ApiRequests = BTreeMap<(String, &'static str, String), u64>;

/// Adds one client's request counts to `into`, under its account's name.
pub fn add_api_requests(into: &mut ApiRequests, account: &str, counts: &[RequestCount]) {
    for c in counts {
        *into
            .entry((
                account.to_owned(),
                c.route_class.as_str(),
                c.code.to_string(),
            ))
            .or_insert(0) += c.count;
    }
}

/// The families rendered from the run totals, and the ended runs that were reclaimed (their
/// family adds the active ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTotals {
    text: String,
    reclaimed: u64,
}

/// The latest [`StoredTotals`] and the totals' version they were rendered from.
#[derive(Debug, Default)]
pub struct TotalsCache(Mutex<Option<(u64, Arc<StoredTotals>)>>);

impl TotalsCache {
    fn get(&self, version: u64) -> Option<Arc<StoredTotals>> {
        let cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, stored)| Arc::clone(stored))
    }

    /// Keeps `stored` as the rendering of `version`. Totals read after the version was are
    /// at least as new: a later scrape sees a newer version and reads them again.
    fn put(&self, version: u64, stored: StoredTotals) -> Arc<StoredTotals> {
        let stored = Arc::new(stored);
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((version, Arc::clone(&stored)));
        stored
    }
}

/// The whole exposition: the build, the stored totals, and the live gauges and counters.
pub fn render(
    stored: &StoredTotals,
    active: &ActiveRunCounts,
    api: &ApiRequests,
    alerts: &[(AlertChannel, OutboxCounts)],
) -> String {
    let mut w = Exposition {
        out: String::with_capacity(stored.text.len() + 4096),
    };
    w.family(
        "emag_sync_build_info",
        "gauge",
        "The running emag-sync build: always 1, with its version as a label.",
    );
    w.sample(
        "emag_sync_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    w.out.push_str(&stored.text);

    w.family(
        "emag_sync_runs_in_progress",
        "gauge",
        "Sync runs running now, in any process sharing the database.",
    );
    w.sample("emag_sync_runs_in_progress", &[], active.running);
    w.family(
        "emag_sync_runs_queued",
        "gauge",
        "Sync runs asked for (sync --queue, the dashboard) and not yet claimed by a scheduler.",
    );
    w.sample("emag_sync_runs_queued", &[], active.queued);

    w.family(
        "emag_sync_leases_reclaimed_total",
        "counter",
        "Runs taken over from a process that died or went silent past its lease (from the \
         database).",
    );
    w.sample(
        "emag_sync_leases_reclaimed_total",
        &[],
        stored.reclaimed + active.reclaimed,
    );

    w.family(
        "emag_api_requests_total",
        "counter",
        "HTTP requests to the eMAG API by account, route class and answer code (timeout or \
         transport: no answer). Process-local: counted by this process since it started, so \
         only a process that runs syncs (start) has any.",
    );
    for ((account, route_class, code), n) in api {
        w.sample(
            "emag_api_requests_total",
            &[
                ("account", account),
                ("route_class", route_class),
                ("code", code),
            ],
            *n,
        );
    }

    w.family(
        "emag_alerts_sent_total",
        "counter",
        "Alert notices by channel: delivered, and failed attempts of notices still pending          (from the database's outbox: every instance, across restarts).",
    );
    for (channel, c) in alerts {
        w.sample(
            "emag_alerts_sent_total",
            &[("channel", channel.as_str()), ("outcome", "delivered")],
            u64::try_from(c.delivered).unwrap_or(0),
        );
        w.sample(
            "emag_alerts_sent_total",
            &[("channel", channel.as_str()), ("outcome", "failed")],
            u64::try_from(c.failed_attempts).unwrap_or(0),
        );
    }
    w.family(
        "emag_alerts_pending",
        "gauge",
        "Alert notices waiting in the outbox (new, or retried after a failure), by channel.",
    );
    for (channel, c) in alerts {
        w.sample(
            "emag_alerts_pending",
            &[("channel", channel.as_str())],
            u64::try_from(c.pending).unwrap_or(0),
        );
    }
    w.out
}

impl StoredTotals {
    /// Renders the families that come from the run totals.
    pub fn of(totals: &[RunTotals]) -> StoredTotals {
        let mut by_kind: BTreeMap<(&str, SyncKind), KindSums> = BTreeMap::new();
        let mut rate_limited: BTreeMap<&str, u64> = BTreeMap::new();
        let mut reclaimed = 0;
        for t in totals {
            let k = by_kind.entry((t.account.as_str(), t.kind)).or_default();
            k.runs += t.runs;
            k.duration_ms += t.duration_ms;
            k.created += t.created;
            k.updated += t.updated;
            k.unchanged += t.unchanged;
            k.removed += t.removed;
            if t.outcome == RunState::Succeeded {
                k.last_success_ms = k.last_success_ms.max(t.last_started_at);
            }
            *rate_limited.entry(t.account.as_str()).or_insert(0) += t.rate_limit_waits;
            reclaimed += t.reclaimed;
        }

        let mut w = Exposition::default();
        w.family(
            "emag_sync_runs_total",
            "counter",
            "Sync runs that ended, by account, kind, trigger and outcome (from the database: \
         every instance, across restarts).",
        );
        for t in totals {
            w.sample(
                "emag_sync_runs_total",
                &[
                    ("account", &t.account),
                    ("kind", t.kind.as_str()),
                    ("trigger", t.trigger.as_str()),
                    ("outcome", t.outcome.as_str()),
                ],
                t.runs,
            );
        }

        w.family(
            "emag_sync_run_duration_seconds",
            "summary",
            "Duration of the sync runs that ended, start to end (a resumed run's whole life), by \
         account and kind (from the database).",
        );
        for ((account, kind), k) in &by_kind {
            let labels = [("account", *account), ("kind", kind.as_str())];
            w.sample(
                "emag_sync_run_duration_seconds_sum",
                &labels,
                Seconds(k.duration_ms),
            );
            w.sample("emag_sync_run_duration_seconds_count", &labels, k.runs);
        }

        w.family(
            "emag_sync_last_success_timestamp_seconds",
            "gauge",
            "Start of the latest succeeded run of the account and kind, Unix seconds: its data \
         is at least this fresh.",
        );
        for ((account, kind), k) in &by_kind {
            if let Some(ms) = k.last_success_ms {
                w.sample(
                    "emag_sync_last_success_timestamp_seconds",
                    &[("account", *account), ("kind", kind.as_str())],
                    Seconds(u64::try_from(ms).unwrap_or(0)),
                );
            }
        }

        w.family(
            "emag_sync_records_total",
            "counter",
            "Records written by ended sync runs, by account, kind and operation (created, \
         updated, unchanged, removed; from the database).",
        );
        for ((account, kind), k) in &by_kind {
            for (op, n) in [
                ("created", k.created),
                ("updated", k.updated),
                ("unchanged", k.unchanged),
                ("removed", k.removed),
            ] {
                w.sample(
                    "emag_sync_records_total",
                    &[("account", *account), ("kind", kind.as_str()), ("op", op)],
                    n,
                );
            }
        }

        w.family(
            "emag_api_rate_limited_total",
            "counter",
            "eMAG answers 429 (rate limited) met by ended sync runs, by account (from the \
         database: every instance, across restarts).",
        );
        for (account, n) in &rate_limited {
            w.sample("emag_api_rate_limited_total", &[("account", account)], *n);
        }
        StoredTotals {
            text: w.out,
            reclaimed,
        }
    }
}

#[derive(Debug, Default)]
struct KindSums {
    runs: u64,
    duration_ms: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    removed: u64,
    last_success_ms: Option<i64>,
}

/// Milliseconds written as seconds with three decimals, exactly (no float rounding).
struct Seconds(u64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// A writer of the text format: `# HELP` and `# TYPE` once per family, then its samples.
#[derive(Debug, Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // HELP escapes backslash and newline; label values also escape the double quote.
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, " {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::RunTrigger;

    fn totals(account: &str, outcome: RunState, runs: u64) -> RunTotals {
        RunTotals {
            account: account.into(),
            kind: SyncKind::Offers,
            trigger: RunTrigger::Schedule,
            outcome,
            runs,
            duration_ms: 1_500 * runs,
            items_read: 10,
            created: 3,
            updated: 2,
            unchanged: 1,
            removed: 0,
            requests: 4,
            rate_limit_waits: 1,
            reclaimed: 1,
            last_started_at: Some(1_700_000_000_123),
            last_finished_at: Some(1_700_000_001_000),
        }
    }

    #[test]
    fn counters_are_summed_per_account_and_kind_and_label_values_are_escaped() {
        let rows = [
            totals("main", RunState::Succeeded, 2),
            totals("main", RunState::Failed, 1),
            totals("we\"ird\\", RunState::Failed, 1),
        ];
        let active = ActiveRunCounts {
            running: 1,
            reclaimed: 1,
            ..ActiveRunCounts::default()
        };
        let mut api = ApiRequests::new();
        api.insert(("main".into(), "orders", "429".into()), 2);
        let text = render(&StoredTotals::of(&rows), &active, &api, &[]);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has(
                r#"emag_sync_runs_total{account="main",kind="offers",trigger="schedule",outcome="succeeded"} 2"#
            ),
            "{text}"
        );
        assert!(has(
            r#"emag_sync_run_duration_seconds_sum{account="main",kind="offers"} 4.500"#
        ));
        assert!(has(
            r#"emag_sync_run_duration_seconds_count{account="main",kind="offers"} 3"#
        ));
        assert!(has(
            r#"emag_sync_records_total{account="main",kind="offers",op="created"} 6"#
        ));
        assert!(has(
            r#"emag_sync_last_success_timestamp_seconds{account="main",kind="offers"} 1700000000.123"#
        ));
        assert!(
            has("emag_sync_leases_reclaimed_total 4"),
            "3 ended + 1 active"
        );
        assert!(has(r#"emag_api_rate_limited_total{account="main"} 2"#));
        assert!(has(
            r#"emag_api_requests_total{account="main",route_class="orders",code="429"} 2"#
        ));
        assert!(has(
            r#"emag_sync_runs_total{account="we\"ird\\",kind="offers",trigger="schedule",outcome="failed"} 1"#
        ));
        assert!(
            !text.contains(r#"emag_sync_last_success_timestamp_seconds{account="we"#),
            "never succeeded: no last success"
        );
        assert!(text.ends_with('\n'));
    }
}
