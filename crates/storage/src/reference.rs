//! Reference data (VAT rates, handling times, categories): per marketplace, not per account,
//! because it is the same for every seller of a platform.

use std::collections::HashMap;

use sqlx::Row;

use crate::sql::Sql;

use crate::{now_ms, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceRow {
    pub id: i64,
    pub name: Option<String>,
    pub data: String,
    pub content_hash: i64,
}

impl Store {
    pub async fn reference_hashes(
        &self,
        marketplace: &str,
        kind: &str,
    ) -> Result<HashMap<i64, i64>> {
        let rows = sqlx::query(
            "SELECT id, content_hash FROM reference_data WHERE marketplace = $1 AND kind = $2",
        )
        .bind(marketplace)
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn write_reference(
        &self,
        marketplace: &str,
        kind: &str,
        rows: &[ReferenceRow],
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(500) {
            let mut q = Sql::new(
                self.backend(),
                "INSERT INTO reference_data (marketplace, kind, id, name, data, content_hash, \
                 updated_at) VALUES ",
            );
            for (i, r) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" });
                q.bind(marketplace)
                    .push(", ")
                    .bind(kind)
                    .push(", ")
                    .bind(r.id)
                    .push(", ");
                q.bind(r.name.as_deref())
                    .push(", ")
                    .bind(r.data.as_str())
                    .push(", ");
                q.bind(r.content_hash).push(", ").bind(now).push(")");
            }
            q.push(
                " ON CONFLICT (marketplace, kind, id) DO UPDATE SET name = excluded.name, \
                 data = excluded.data, content_hash = excluded.content_hash, \
                 updated_at = excluded.updated_at",
            );
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The stored items of one kind of a marketplace's reference data, by id.
    pub async fn read_reference(&self, marketplace: &str, kind: &str) -> Result<Vec<ReferenceRow>> {
        let rows = sqlx::query(
            "SELECT id, name, data, content_hash FROM reference_data \
             WHERE marketplace = $1 AND kind = $2 ORDER BY id",
        )
        .bind(marketplace)
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReferenceRow {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    data: r.try_get(2)?,
                    content_hash: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn count_reference(&self, marketplace: &str, kind: &str) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) FROM reference_data WHERE marketplace = $1 AND kind = $2")
                .bind(marketplace)
                .bind(kind)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get(0)?)
    }
}
