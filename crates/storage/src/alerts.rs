//! Incidents and the outbox of their notices (migration 0012).
//!
//! An incident is opened for a key (rule, account, kind) that fires and has no open incident;
//! the partial unique index `incidents_open_key` makes that idempotent, so two processes that
//! evaluate the same condition open one incident between them, and the outbox rows of its
//! notice — one per channel — are written in the transaction that opened it. Resolving is a
//! guarded update (only the process that moves the incident out of its open state writes the
//! recovery notices). So every notice exists exactly once per channel, whoever evaluates, and
//! survives a crash until it is delivered.
//!
//! Deliveries are claimed with a lease (`claimed_until`) like runs: a process that dies
//! mid-send leaves its claim to expire and another sends it; a failure is retried later with
//! the backoff the caller chooses.

use domain::{AlertChannel, AlertRule, IncidentState, Notice, RunState, Severity, SyncKind};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, StorageError, Store};

/// A condition as an evaluation saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// Identifies the condition: at most one open incident per key.
    pub key: String,
    pub rule: AlertRule,
    pub account: Option<String>,
    pub kind: Option<SyncKind>,
    pub severity: Severity,
    pub message: String,
    pub action: String,
}

/// One incident, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncidentRow {
    pub id: i64,
    pub key: String,
    pub rule: AlertRule,
    pub account: Option<String>,
    pub kind: Option<SyncKind>,
    pub severity: Severity,
    pub state: IncidentState,
    pub message: String,
    pub action: String,
    pub opened_at: i64,
    pub last_seen_at: i64,
    pub acknowledged_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// `auto` (the condition cleared) or who resolved it by hand.
    pub resolved_by: Option<String>,
    /// When it passed both escalation thresholds and was raised to critical.
    pub escalated_at: Option<i64>,
}

/// Where the notices of an evaluation go.
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    /// The channels, each with the least severity it tells.
    pub channels: &'a [(AlertChannel, Severity)],
    /// Opened / resolved notices of incidents up to this severity wait for the daily digest
    /// (critical ones never do; escalations never do).
    pub digest_up_to: Option<Severity>,
    /// When the next digest is due (unix ms).
    pub next_digest_at: i64,
}

impl Routing<'_> {
    /// Immediate notices on `channels`, no digest.
    pub fn immediate(channels: &[(AlertChannel, Severity)]) -> Routing<'_> {
        Routing {
            channels,
            digest_up_to: None,
            next_digest_at: 0,
        }
    }

    /// When a notice about an incident of `severity` is due, and whether it waits for the
    /// digest.
    fn due(&self, notice: Notice, severity: Severity, now: i64) -> (i64, bool) {
        let digest = notice != Notice::Escalated
            && severity < Severity::Critical
            && self.digest_up_to.is_some_and(|up_to| severity <= up_to);
        if digest {
            (self.next_digest_at.max(now), true)
        } else {
            (now, false)
        }
    }
}

/// Escalation: an incident still firing (not acknowledged) for `after_ms` that saw at least
/// `failed_runs` failed runs in its scope since it opened is raised to critical, once, and
/// told again. `failed_runs == 0` turns escalation off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    pub after_ms: i64,
    pub failed_runs: i64,
}

impl Escalation {
    pub const OFF: Escalation = Escalation {
        after_ms: i64::MAX,
        failed_runs: 0,
    };
}

/// A run taken over from a holder that died or went silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub run_id: i64,
    pub account: String,
    pub kind: SyncKind,
    /// The holder whose lease expired.
    pub from: String,
    pub at: i64,
    pub state: RunState,
}

/// What one evaluation changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluated {
    /// Incidents this evaluation opened.
    pub opened: Vec<i64>,
    /// Incidents this evaluation resolved (their condition no longer fires).
    pub resolved: Vec<i64>,
    /// Incidents this evaluation escalated.
    pub escalated: Vec<i64>,
}

/// A notice claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub channel: AlertChannel,
    pub notice: Notice,
    /// Attempts before this one.
    pub attempts: i64,
    /// Kept for the daily digest: sent with the other digest notices of its channel.
    pub digest: bool,
    pub incident: IncidentRow,
}

/// How the outbox of one channel stands, for `/metrics` and `alerts list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub delivered: i64,
    pub pending: i64,
    /// Pending notices that failed at least once.
    pub failing: i64,
    /// Failed attempts of all time (a counter: attempts only grow, rows are kept).
    pub failed_attempts: i64,
}

const INCIDENT_COLUMNS: &str = "SELECT id, key, rule, account, kind, severity, state, message, \
     action, opened_at, last_seen_at, acknowledged_at, resolved_at, resolved_by, escalated_at \
     FROM incidents";

fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        table,
        detail: e.to_string(),
    }
}

fn incident_from_row(row: &AnyRow) -> Result<IncidentRow> {
    let text = |name: &str| -> Result<String> { Ok(row.try_get::<String, _>(name)?) };
    let kind: Option<String> = row.try_get("kind")?;
    Ok(IncidentRow {
        id: row.try_get("id")?,
        key: text("key")?,
        rule: text("rule")?.parse().map_err(|e| corrupt("incidents", e))?,
        account: row.try_get("account")?,
        kind: kind
            .map(|k| k.parse().map_err(|e| corrupt("incidents", e)))
            .transpose()?,
        severity: text("severity")?
            .parse()
            .map_err(|e| corrupt("incidents", e))?,
        state: text("state")?
            .parse()
            .map_err(|e| corrupt("incidents", e))?,
        message: text("message")?,
        action: text("action")?,
        opened_at: row.try_get("opened_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        resolved_at: row.try_get("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
        escalated_at: row.try_get("escalated_at")?,
    })
}

impl Store {
    /// Records one evaluation made at `now` from a view of the store read at `read_at`:
    /// opens an incident (and its notices on `channels`) for each firing key without an open
    /// one, refreshes the open ones, and resolves (with recovery notices) the open incidents
    /// of `rules` whose key no longer fires — unless another evaluation saw them firing after
    /// `read_at`, which is newer news than this one — and escalates the open ones that passed
    /// both thresholds of `escalation`. Rules in `silent_recovery` resolve without a notice
    /// (events such as a takeover: there is nothing to recover from).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_evaluation(
        &self,
        firing: &[Firing],
        rules: &[AlertRule],
        silent_recovery: &[AlertRule],
        routing: Routing<'_>,
        escalation: Escalation,
        read_at: i64,
        now: i64,
    ) -> Result<Evaluated> {
        let mut out = Evaluated::default();
        let mut tx = self.pool.begin().await?;
        for f in firing {
            let opened: Option<i64> = sqlx::query_scalar(
                "INSERT INTO incidents (key, rule, account, kind, severity, state, message, \
                 action, opened_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, 'firing', $6, $7, \
                 $8, $8) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&f.key)
            .bind(f.rule.as_str())
            .bind(f.account.as_deref())
            .bind(f.kind.map(SyncKind::as_str))
            .bind(f.severity.as_str())
            .bind(&f.message)
            .bind(&f.action)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            match opened {
                Some(id) => {
                    enqueue_all(&mut tx, id, routing, Notice::Opened, f.severity, now).await?;
                    out.opened.push(id);
                }
                None => {
                    // Open already: it is still firing; its text follows the condition's, its
                    // severity too unless it was escalated.
                    sqlx::query(
                        "UPDATE incidents SET last_seen_at = $2, message = $3, action = $4, \
                         severity = CASE WHEN escalated_at IS NULL THEN $5 ELSE severity END \
                         WHERE key = $1 AND state <> 'resolved'",
                    )
                    .bind(&f.key)
                    .bind(now)
                    .bind(&f.message)
                    .bind(&f.action)
                    .bind(f.severity.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        let open = sqlx::query(&format!("{INCIDENT_COLUMNS} WHERE state <> 'resolved'"))
            .fetch_all(&mut *tx)
            .await?;
        for row in &open {
            let incident = incident_from_row(row)?;
            let (id, severity) = (incident.id, incident.severity);
            let still = firing.iter().any(|f| f.key == incident.key);
            if still {
                if escalates(&mut tx, &incident, escalation, now).await? {
                    let done = sqlx::query(
                        "UPDATE incidents SET escalated_at = $2, severity = $3 \
                         WHERE id = $1 AND escalated_at IS NULL AND state = 'firing'",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(Severity::Critical.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 1 {
                        let notice = Notice::Escalated;
                        enqueue_all(&mut tx, id, routing, notice, Severity::Critical, now).await?;
                        out.escalated.push(id);
                    }
                }
                continue;
            }
            if !rules.contains(&incident.rule) || incident.last_seen_at > read_at {
                continue;
            }
            let done = sqlx::query(
                "UPDATE incidents SET state = 'resolved', resolved_at = $2, resolved_by = 'auto' \
                 WHERE id = $1 AND state <> 'resolved'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                if !silent_recovery.contains(&incident.rule) {
                    enqueue_all(&mut tx, id, routing, Notice::Resolved, severity, now).await?;
                }
                out.resolved.push(id);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Acknowledges an open incident: no more reminders; it still resolves by itself.
    /// False if there is no such open incident.
    pub async fn acknowledge_incident(&self, id: i64, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE incidents SET state = 'acknowledged', acknowledged_at = $2 \
             WHERE id = $1 AND state = 'firing'",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Resolves an open incident by hand, with a recovery notice on `channels`. A condition
    /// that still fires opens a new incident at the next evaluation. False if there is no
    /// such open incident.
    pub async fn resolve_incident(
        &self,
        id: i64,
        by: &str,
        routing: Routing<'_>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let severity: Option<String> =
            sqlx::query_scalar("SELECT severity FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(severity) = severity else {
            return Ok(false);
        };
        let severity: Severity = severity.parse().map_err(|e| corrupt("incidents", e))?;
        let done = sqlx::query(
            "UPDATE incidents SET state = 'resolved', resolved_at = $2, resolved_by = $3 \
             WHERE id = $1 AND state <> 'resolved'",
        )
        .bind(id)
        .bind(now)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        let resolved = done.rows_affected() == 1;
        if resolved {
            enqueue_all(&mut tx, id, routing, Notice::Resolved, severity, now).await?;
        }
        tx.commit().await?;
        Ok(resolved)
    }

    /// The open incidents, worst first, then the latest resolved ones (at most `limit` in
    /// all), newest first within each.
    pub async fn incidents(&self, limit: i64) -> Result<Vec<IncidentRow>> {
        let rows = sqlx::query(&format!(
            "{INCIDENT_COLUMNS} ORDER BY CASE WHEN state = 'resolved' THEN 1 ELSE 0 END, \
             CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, id DESC \
             LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(incident_from_row).collect()
    }

    /// The incidents not resolved (firing or acknowledged), worst first, then newest.
    pub async fn open_incidents(&self) -> Result<Vec<IncidentRow>> {
        // A scan of the partial unique index `incidents_open_key` (its condition, as written).
        let rows = sqlx::query(&format!(
            "{INCIDENT_COLUMNS} WHERE state <> 'resolved' ORDER BY \
             CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(incident_from_row).collect()
    }

    pub async fn incident(&self, id: i64) -> Result<Option<IncidentRow>> {
        let row = sqlx::query(&format!("{INCIDENT_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(incident_from_row).transpose()
    }

    /// Claims up to `limit` notices due at `now` for `lease_ms`: not delivered, not claimed
    /// by a live claim. Oldest first.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        self.claim_due(None, now, lease_ms, limit).await
    }

    /// Claims every due digest notice of `channel` (at most `limit`), to be sent as one
    /// message.
    pub async fn claim_digest(
        &self,
        channel: AlertChannel,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        self.claim_due(Some(channel), now, lease_ms, limit).await
    }

    /// Claims due notices (only the digest ones of a channel, when given) in one
    /// transaction. Each is claimed by id under a guard that makes a claim raced by another
    /// process a no-op here.
    async fn claim_due(
        &self,
        digest_of: Option<AlertChannel>,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        const DUE: &str = "SELECT id, channel, notice, attempts, incident_id, digest \
             FROM alert_outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= $1)";
        let mut tx = self.pool.begin().await?;
        let due: Vec<(i64, String, String, i64, i64, i64)> = match digest_of {
            None => {
                sqlx::query_as(&format!("{DUE} ORDER BY id LIMIT $2"))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?
            }
            Some(channel) => {
                sqlx::query_as(&format!(
                    "{DUE} AND digest = 1 AND channel = $3 ORDER BY id LIMIT $2"
                ))
                .bind(now)
                .bind(limit)
                .bind(channel.as_str())
                .fetch_all(&mut *tx)
                .await?
            }
        };
        let mut out = Vec::with_capacity(due.len());
        for (id, channel, notice, attempts, incident_id, digest) in due {
            let done = sqlx::query(
                "UPDATE alert_outbox SET claimed_until = $2 WHERE id = $1 \
                 AND delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $3)",
            )
            .bind(id)
            .bind(now + lease_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                continue;
            }
            let row = sqlx::query(&format!("{INCIDENT_COLUMNS} WHERE id = $1"))
                .bind(incident_id)
                .fetch_one(&mut *tx)
                .await?;
            out.push(Delivery {
                id,
                channel: channel.parse().map_err(|e| corrupt("alert_outbox", e))?,
                notice: notice.parse().map_err(|e| corrupt("alert_outbox", e))?,
                attempts,
                digest: digest != 0,
                incident: incident_from_row(&row)?,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Gives a claimed notice back, due at `until` (quiet hours): no attempt is counted.
    pub async fn postpone_delivery(&self, id: i64, until: i64) -> Result<()> {
        sqlx::query(
            "UPDATE alert_outbox SET claimed_until = NULL, next_attempt_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a claimed notice sent.
    pub async fn delivered(&self, id: i64, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE alert_outbox SET delivered_at = $2, attempts = attempts + 1, \
             claimed_until = NULL, last_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt; the notice is due again at `retry_at`. `error` must hold no
    /// secret (the caller's classified description).
    pub async fn delivery_failed(&self, id: i64, error: &str, retry_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE alert_outbox SET attempts = attempts + 1, claimed_until = NULL, \
             last_error = $2, next_attempt_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// 429 waits per account in the runs that finished since `since` or are still running,
    /// for the rate-limit rule.
    pub async fn rate_limit_waits_since(&self, since: i64) -> Result<Vec<(String, i64)>> {
        // Two ranges of partial / plain indexes (`runs_finished`, and the running state written
        // as in `runs_one_running_per_account`), summed per account here.
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT account, rate_limit_waits FROM runs WHERE finished_at >= $1 \
             AND rate_limit_waits > 0 UNION ALL \
             SELECT account, rate_limit_waits FROM runs WHERE state = '{}' \
             AND rate_limit_waits > 0",
            RunState::Running.as_str()
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, i64)> = Vec::new();
        for (account, waits) in rows {
            match out.iter_mut().find(|(a, _)| *a == account) {
                Some((_, n)) => *n += waits,
                None => out.push((account, waits)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Runs taken over since `since` from a holder whose lease expired, newest first.
    pub async fn takeovers_since(&self, since: i64) -> Result<Vec<Takeover>> {
        // A range of the partial index `runs_reclaimed`.
        let rows: Vec<(i64, String, String, Option<String>, i64, String)> = sqlx::query_as(
            "SELECT id, account, kind, reclaimed_from, reclaimed_at, state FROM runs \
             WHERE reclaimed_at >= $1 ORDER BY reclaimed_at DESC, id DESC",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(run_id, account, kind, from, at, state)| {
                Ok(Takeover {
                    run_id,
                    account,
                    kind: kind.parse().map_err(|e| corrupt("runs", e))?,
                    from: from.unwrap_or_default(),
                    at,
                    state: state.parse().map_err(|e| corrupt("runs", e))?,
                })
            })
            .collect()
    }

    /// Delivered and pending notices per channel.
    pub async fn outbox_counts(&self) -> Result<Vec<(AlertChannel, OutboxCounts)>> {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT channel, \
             SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN delivered_at IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN delivered_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN delivered_at IS NOT NULL THEN attempts - 1 ELSE attempts END) \
             FROM alert_outbox GROUP BY channel ORDER BY channel",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(channel, delivered, pending, failing, failed_attempts)| {
                Ok((
                    channel.parse().map_err(|e| corrupt("alert_outbox", e))?,
                    OutboxCounts {
                        delivered,
                        pending,
                        failing,
                        failed_attempts,
                    },
                ))
            })
            .collect()
    }
}

/// The channels that tell an incident of `severity`: those whose minimum it reaches.
fn told(
    channels: &[(AlertChannel, Severity)],
    severity: Severity,
) -> impl Iterator<Item = AlertChannel> + '_ {
    channels
        .iter()
        .filter(move |(_, min)| severity >= *min)
        .map(|(c, _)| *c)
}

/// Queues `notice` about incident `incident` (of `severity`) on every channel that tells it.
async fn enqueue_all(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    incident: i64,
    routing: Routing<'_>,
    notice: Notice,
    severity: Severity,
    now: i64,
) -> Result<()> {
    let (due, digest) = routing.due(notice, severity, now);
    for channel in told(routing.channels, severity) {
        sqlx::query(
            "INSERT INTO alert_outbox (incident_id, channel, notice, created_at, \
             next_attempt_at, digest) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(incident)
        .bind(channel.as_str())
        .bind(notice.as_str())
        .bind(now)
        .bind(due)
        .bind(i32::from(digest))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Whether `incident`, still firing, passed both thresholds of `escalation` at `now`: firing
/// (not acknowledged, not escalated) for `after_ms`, and at least `failed_runs` failed runs
/// of its account (and kind) — of any account for an incident about none — since it opened.
async fn escalates(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    incident: &IncidentRow,
    escalation: Escalation,
    now: i64,
) -> Result<bool> {
    if escalation.failed_runs <= 0
        || incident.state != IncidentState::Firing
        || incident.escalated_at.is_some()
        || now.saturating_sub(incident.opened_at) < escalation.after_ms
    {
        return Ok(false);
    }
    // `runs_failed` (finished_at, partial on the failed state) serves the range: the state
    // is written as in the index, so SQLite's planner can match it.
    let mut sql = format!(
        "SELECT COUNT(*) FROM runs WHERE state = '{}' AND finished_at >= $1",
        RunState::Failed.as_str()
    );
    if incident.account.is_some() {
        sql.push_str(" AND account = $2");
    }
    if incident.kind.is_some() {
        sql.push_str(if incident.account.is_some() {
            " AND kind = $3"
        } else {
            " AND kind = $2"
        });
    }
    let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(incident.opened_at);
    if let Some(a) = &incident.account {
        q = q.bind(a.as_str());
    }
    if let Some(k) = incident.kind {
        q = q.bind(k.as_str());
    }
    let (failed,) = q.fetch_one(&mut **tx).await?;
    Ok(failed >= escalation.failed_runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_tells_only_incidents_at_least_as_severe_as_its_minimum() {
        let channels = [
            (AlertChannel::Webhook, Severity::Info),
            (AlertChannel::Sms, Severity::Critical),
        ];
        assert_eq!(
            told(&channels, Severity::Warning).collect::<Vec<_>>(),
            vec![AlertChannel::Webhook]
        );
        assert_eq!(
            told(&channels, Severity::Critical).collect::<Vec<_>>(),
            vec![AlertChannel::Webhook, AlertChannel::Sms]
        );
    }
}
