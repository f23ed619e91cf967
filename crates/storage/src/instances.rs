//! Scheduler instances: each `start` process registers itself and beats while it runs, so
//! `status` — from any machine sharing the store — lists the live ones.

use sqlx::Row;

use crate::{Result, Store};

/// One scheduler process, as it announced itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceRow {
    /// The holder id its runs carry (`host:pid:nonce`).
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Schedules it serves and runs it had in flight at its last beat.
    pub schedules: i64,
    pub running: i64,
    /// Set when it stopped cleanly.
    pub stopped_at: Option<i64>,
}

/// How long the rows of instances that stopped or went silent are kept: the uptime record of
/// the last 30 days' KPIs, with room to spare.
pub const INSTANCE_HISTORY_MS: i64 = 35 * 86_400_000;

impl Store {
    /// When each instance seen since `since` lived: (started_at, last sign of life), for the
    /// scheduler's uptime.
    pub async fn instance_lifetimes(&self, since: i64) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT started_at, COALESCE(stopped_at, heartbeat_at) FROM instances \
             WHERE COALESCE(stopped_at, heartbeat_at) >= $1 ORDER BY started_at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Announces (or re-announces) an instance.
    pub async fn register_instance(&self, i: &InstanceRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (id, host, pid, version, started_at, heartbeat_at, schedules, running) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, \
             schedules = excluded.schedules, running = excluded.running, stopped_at = NULL",
        )
        .bind(&i.id)
        .bind(&i.host)
        .bind(i.pid)
        .bind(&i.version)
        .bind(i.started_at)
        .bind(i.heartbeat_at)
        .bind(i.schedules)
        .bind(i.running)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A beat of a registered instance.
    pub async fn beat_instance(&self, id: &str, now: i64, running: i64) -> Result<()> {
        sqlx::query("UPDATE instances SET heartbeat_at = $1, running = $2 WHERE id = $3")
            .bind(now)
            .bind(running)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks an instance as stopped (clean exit).
    pub async fn stop_instance(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE instances SET stopped_at = $1, running = 0 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Instances that beat after `since`, or stopped after it. Rows silent for longer than
    /// [`INSTANCE_HISTORY`] are deleted: until then they are the scheduler's uptime record.
    pub async fn recent_instances(&self, since: i64) -> Result<Vec<InstanceRow>> {
        sqlx::query("DELETE FROM instances WHERE heartbeat_at < $1 AND COALESCE(stopped_at, heartbeat_at) < $1")
            .bind(crate::now_ms() - INSTANCE_HISTORY_MS)
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT id, host, pid, version, started_at, heartbeat_at, schedules, running, stopped_at \
             FROM instances WHERE heartbeat_at >= $1 OR stopped_at >= $1 ORDER BY started_at, id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InstanceRow {
                    id: r.try_get("id")?,
                    host: r.try_get("host")?,
                    pid: r.try_get("pid")?,
                    version: r.try_get("version")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    schedules: r.try_get("schedules")?,
                    running: r.try_get("running")?,
                    stopped_at: r.try_get("stopped_at")?,
                })
            })
            .collect()
    }
}
