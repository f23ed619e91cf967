//! Views of a [`Snapshot`] with a fixed outside shape: the body of `/api/status` (and `monitor
//! json`), which keeps the seed's JSON shape and adds to it, and the health report of `/health`
//! (`application/health+json`) and `monitor health`. They reshape; they decide nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::AccountKind;
use serde::{Deserialize, Serialize};

use super::{
    Condition, InstanceStatus, KindStatus, Level, Next, RecentError, Snapshot, StorageError,
};

/// The body of `GET /api/status` and of `emag-sync monitor json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiStatus {
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub scheduler: ApiScheduler,
    pub logs: ApiLogs,
    /// The seed's `alerts`: `type`, `message`, `action` (plus severity, account, kind).
    pub alerts: Vec<Condition>,
    pub recent_errors: Vec<RecentError>,
    pub leases_reclaimed_24h: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiScheduler {
    pub scheduler_running: bool,
    pub instances: Vec<InstanceStatus>,
    /// By account name.
    pub accounts: BTreeMap<String, ApiAccount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiAccount {
    /// `main` or `fbe`.
    pub account_type: AccountKind,
    /// `needs_attention`, `paused`, `running` or `idle`.
    pub status: String,
    /// RFC 3339: when the freshest succeeded run of any kind started.
    pub last_sync: Option<String>,
    /// RFC 3339: the earliest next scheduled run of any kind; now if one is due.
    pub next_sync: Option<String>,
    pub paused: bool,
    pub attention: Option<super::Attention>,
    pub marketplace: domain::Marketplace,
    /// The request encoding probed for the account (`form`, `json-data`, `json`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_encoding: Option<String>,
    /// Per kind: schedule, last run, freshness, next run, progress.
    pub kinds: Vec<KindStatus>,
}

/// The seed's `logs` section, counted from the run history (not the log files): failed runs
/// are errors, runs that succeeded only after retries or a takeover are warnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiLogs {
    pub errors_last_hour: i64,
    pub warnings_last_hour: i64,
    /// RFC 3339: when the latest run ended.
    pub last_log_time: Option<String>,
    /// Where the counts come from: `runs` (the database).
    pub source: String,
}

/// Unix ms as RFC 3339 UTC (`2026-11-29T22:00:00Z`).
pub fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

impl From<&Snapshot> for ApiStatus {
    fn from(s: &Snapshot) -> Self {
        let accounts = s
            .accounts
            .iter()
            .map(|a| {
                let last_sync = a.kinds.iter().filter_map(|k| k.last_success_at).max();
                let due_now = a.kinds.iter().any(|k| matches!(k.next, Next::Due { .. }));
                let next_at = a
                    .kinds
                    .iter()
                    .filter_map(|k| match k.next {
                        Next::At { at } => Some(at),
                        _ => None,
                    })
                    .min();
                let next_sync = if a.paused {
                    None
                } else if due_now {
                    Some(s.taken_at)
                } else {
                    next_at
                };
                (
                    a.name.clone(),
                    ApiAccount {
                        account_type: a.account_type,
                        status: a.state.as_str().to_owned(),
                        last_sync: last_sync.and_then(rfc3339),
                        next_sync: next_sync.and_then(rfc3339),
                        paused: a.paused,
                        attention: a.attention.clone(),
                        marketplace: a.marketplace,
                        api_encoding: a.api_encoding.map(|e| e.as_str().to_owned()),
                        kinds: a.kinds.clone(),
                    },
                )
            })
            .collect();
        ApiStatus {
            timestamp: rfc3339(s.taken_at).unwrap_or_default(),
            scheduler: ApiScheduler {
                scheduler_running: s.scheduler.running,
                instances: s.scheduler.instances.clone(),
                accounts,
            },
            logs: ApiLogs {
                errors_last_hour: s.last_hour.errors,
                warnings_last_hour: s.last_hour.warnings,
                last_log_time: s.last_hour.last_finished_at.and_then(rfc3339),
                source: "runs".into(),
            },
            alerts: s.conditions(),
            recent_errors: s.recent_errors.clone(),
            leases_reclaimed_24h: s.leases_reclaimed_24h,
        }
    }
}

/// `pass`, `warn` or `fail` (draft-inadarei-api-health-check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Pass,
    Warn,
    Fail,
}

impl From<Level> for HealthStatus {
    fn from(l: Level) -> Self {
        match l {
            Level::Ok => HealthStatus::Pass,
            Level::Warning => HealthStatus::Warn,
            Level::Critical => HealthStatus::Fail,
        }
    }
}

/// One check of the health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_id: Option<String>,
    pub component_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_unit: Option<String>,
    pub status: HealthStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// RFC 3339.
    pub time: String,
    /// Thresholds of a freshness check, in seconds (an extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn_after_s: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_after_s: Option<i64>,
}

/// The body of `/health` (`application/health+json`) and the source of `monitor health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub status: HealthStatus,
    pub version: String,
    pub description: String,
    /// What makes the status what it is (the conditions), for a person.
    pub notes: Vec<String>,
    /// `database:responseTime`, `scheduler:instances`, and `<account>:<kind>:freshness`.
    pub checks: BTreeMap<String, Vec<Check>>,
    /// The alert incidents not resolved (firing or acknowledged), worst first.
    pub alerts: Vec<HealthAlert>,
}

/// An open alert incident as `/health` and `monitor health` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthAlert {
    pub id: i64,
    #[serde(rename = "type")]
    pub rule: domain::AlertRule,
    pub severity: domain::Severity,
    pub state: domain::IncidentState,
    pub account: Option<String>,
    pub kind: Option<domain::SyncKind>,
    /// RFC 3339, when it opened.
    pub since: String,
    pub escalated: bool,
    pub message: String,
    pub action: String,
}

impl HealthAlert {
    fn of(i: &storage::IncidentRow) -> HealthAlert {
        HealthAlert {
            id: i.id,
            rule: i.rule,
            severity: i.severity,
            state: i.state,
            account: i.account.clone(),
            kind: i.kind,
            since: rfc3339(i.opened_at).unwrap_or_default(),
            escalated: i.escalated_at.is_some(),
            message: i.message.clone(),
            action: i.action.clone(),
        }
    }

    /// One line for a person.
    pub fn line(&self) -> String {
        format!(
            "alert {} [{} {}{}] {}: {} — {} (since {})",
            self.id,
            self.severity,
            self.state,
            if self.escalated { ", escalated" } else { "" },
            self.rule,
            self.message,
            self.action,
            self.since
        )
    }
}

impl HealthReport {
    /// The report of a snapshot read in `db_time` (or of a database that could not be read).
    pub fn of(snapshot: Result<&Snapshot, &StorageError>, db_time: Duration, now_ms: i64) -> Self {
        let time = rfc3339(now_ms).unwrap_or_default();
        let mut checks = BTreeMap::new();
        let db_ms = i64::try_from(db_time.as_millis()).unwrap_or(i64::MAX);
        let (db_status, db_output) = match snapshot {
            Ok(_) => (HealthStatus::Pass, None),
            Err(e) => (HealthStatus::Fail, Some(e.to_string())),
        };
        checks.insert(
            "database:responseTime".to_owned(),
            vec![Check {
                component_id: None,
                component_type: "datastore".into(),
                observed_value: Some(db_ms.into()),
                observed_unit: Some("ms".into()),
                status: db_status,
                output: db_output.clone(),
                time: time.clone(),
                warn_after_s: None,
                critical_after_s: None,
            }],
        );
        let Ok(snap) = snapshot else {
            return HealthReport {
                status: HealthStatus::Fail,
                version: env!("CARGO_PKG_VERSION").into(),
                description: "emag-sync".into(),
                notes: vec![format!(
                    "the database cannot be read: {}",
                    db_output.unwrap_or_default()
                )],
                checks,
                alerts: Vec::new(),
            };
        };
        let live = snap
            .scheduler
            .instances
            .iter()
            .filter(|i| i.state == super::InstanceState::Live)
            .count();
        checks.insert(
            "scheduler:instances".to_owned(),
            vec![Check {
                component_id: None,
                component_type: "system".into(),
                observed_value: Some(live.into()),
                observed_unit: None,
                status: if snap.scheduler.running {
                    HealthStatus::Pass
                } else {
                    HealthStatus::Fail
                },
                output: None,
                time: time.clone(),
                warn_after_s: None,
                critical_after_s: None,
            }],
        );
        for a in &snap.accounts {
            for k in &a.kinds {
                let Some(f) = k.freshness else { continue };
                // A paused account's data ages by the operator's choice: shown, not judged.
                let status = if a.paused {
                    HealthStatus::Pass
                } else {
                    f.level.into()
                };
                checks.insert(
                    format!("{}:{}:freshness", a.name, k.kind),
                    vec![Check {
                        component_id: Some(format!("{}/{}", a.name, k.kind)),
                        component_type: "component".into(),
                        observed_value: f.age_ms.map(|age| (age / 1000).into()),
                        observed_unit: Some("s".into()),
                        status,
                        output: f.age_ms.is_none().then(|| "never synced".to_owned()),
                        time: time.clone(),
                        warn_after_s: Some(f.warn_after_ms / 1000),
                        critical_after_s: Some(f.critical_after_ms / 1000),
                    }],
                );
            }
        }
        let conditions = snap.conditions();
        let status = conditions
            .iter()
            .map(|c| HealthStatus::from(c.severity))
            .max()
            .unwrap_or(HealthStatus::Pass);
        HealthReport {
            status,
            version: env!("CARGO_PKG_VERSION").into(),
            description: "emag-sync".into(),
            notes: conditions
                .iter()
                .map(|c| format!("{}: {} — {}", c.kind.as_str(), c.message, c.action))
                .collect(),
            checks,
            alerts: snap.incidents.iter().map(HealthAlert::of).collect(),
        }
    }
}
