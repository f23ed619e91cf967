//! Quarantine: items eMAG sent that cannot be decoded (issue 9, point 6), kept raw with the
//! reason so one odd item is skipped instead of blocking its account, and a person can look
//! at it. The raw text may hold customer data: it is stored here and returned only by
//! [`Store::quarantined_items`], never put in errors or runs.

use domain::QuarantineKind;
use sqlx::Row;

use crate::runs::ActiveRun;
use crate::sql::Sql;
use crate::{now_ms, Result, StorageError, Store};

/// One item to quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRow {
    pub kind: QuarantineKind,
    /// The item's id when it could be read at all (as text: it may be out of every range).
    pub item_id: Option<String>,
    /// Why it could not be decoded: our words, never the item's values.
    pub reason: String,
    /// The item exactly as eMAG sent it.
    pub data: String,
    /// Content hash of `data`: the same item seen again is one row.
    pub content_hash: i64,
}

/// What is quarantined for one account and kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantineSummary {
    pub account: String,
    pub kind: QuarantineKind,
    /// Distinct items.
    pub items: i64,
    /// Unix ms when one of them was last sent.
    pub last_seen_at: i64,
    /// The reason of the item seen last.
    pub last_reason: String,
}

/// A quarantined item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedItem {
    pub kind: QuarantineKind,
    pub item_id: Option<String>,
    pub reason: String,
    pub data: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub times_seen: i64,
}

fn kind_of(text: &str) -> Result<QuarantineKind> {
    text.parse()
        .map_err(|e: domain::ParseError| StorageError::Corrupt {
            table: "quarantine",
            detail: e.to_string(),
        })
}

impl Store {
    /// Stores `items` of the run's account in quarantine; an item already there (same text)
    /// is seen once more.
    pub async fn quarantine_items(&self, run: &ActiveRun, items: &[QuarantineRow]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for item in items {
            let mut q = Sql::new(
                self.backend(),
                "INSERT INTO quarantine (account, kind, content_hash, item_id, reason, data, \
                 run_id, first_seen_at, last_seen_at, times_seen) VALUES (",
            );
            q.bind(run.account.as_str())
                .push(", ")
                .bind(item.kind.as_str())
                .push(", ")
                .bind(item.content_hash)
                .push(", ");
            q.bind(item.item_id.as_deref())
                .push(", ")
                .bind(item.reason.as_str())
                .push(", ")
                .bind(item.data.as_str())
                .push(", ");
            q.bind(run.id)
                .push(", ")
                .bind(now)
                .push(", ")
                .bind(now)
                .push(", 1)");
            q.push(
                " ON CONFLICT (account, kind, content_hash) DO UPDATE SET \
                 reason = excluded.reason, run_id = excluded.run_id, \
                 last_seen_at = excluded.last_seen_at, times_seen = quarantine.times_seen + 1",
            );
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Per account and kind: how many items are quarantined, when one was last sent, and why.
    pub async fn quarantine_summary(&self) -> Result<Vec<QuarantineSummary>> {
        let rows = sqlx::query(
            "SELECT q.account, q.kind, COUNT(*), MAX(q.last_seen_at), \
             (SELECT r.reason FROM quarantine r WHERE r.account = q.account AND r.kind = q.kind \
              ORDER BY r.last_seen_at DESC, r.content_hash LIMIT 1) \
             FROM quarantine q GROUP BY q.account, q.kind ORDER BY q.account, q.kind",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QuarantineSummary {
                    account: r.try_get(0)?,
                    kind: kind_of(&r.try_get::<String, _>(1)?)?,
                    items: r.try_get(2)?,
                    last_seen_at: r.try_get(3)?,
                    last_reason: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The quarantined items of an account, the last seen first (raw data included).
    pub async fn quarantined_items(
        &self,
        account: &str,
        limit: i64,
    ) -> Result<Vec<QuarantinedItem>> {
        let rows = sqlx::query(
            "SELECT kind, item_id, reason, data, first_seen_at, last_seen_at, times_seen \
             FROM quarantine WHERE account = $1 \
             ORDER BY last_seen_at DESC, content_hash LIMIT $2",
        )
        .bind(account)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QuarantinedItem {
                    kind: kind_of(&r.try_get::<String, _>(0)?)?,
                    item_id: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    data: r.try_get(3)?,
                    first_seen_at: r.try_get(4)?,
                    last_seen_at: r.try_get(5)?,
                    times_seen: r.try_get(6)?,
                })
            })
            .collect()
    }
}
