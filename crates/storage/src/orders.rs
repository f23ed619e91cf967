//! Orders keyed by (account, id) with their lines, and returns (RMA). An order whose content
//! hash is unchanged is not written; a changed one is replaced with its lines in one
//! transaction.

use std::collections::HashMap;

use sqlx::Row;

use crate::sql::{runs_of_few_sizes, Sql};

use crate::runs::{add_counts, ActiveRun};
use crate::{now_ms, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub id: i64,
    pub order_type: i64,
    pub status: Option<i64>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub payment_mode_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub customer_name: Option<String>,
    /// The order's JSON exactly as eMAG sent it (customer, vouchers, lines and all).
    pub data: String,
    pub content_hash: i64,
    pub lines: Vec<OrderLineRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLineRow {
    pub line_id: i64,
    pub product_id: Option<i64>,
    pub part_number: Option<String>,
    pub name: Option<String>,
    pub quantity: Option<i64>,
    pub sale_price: Option<String>,
    pub currency: Option<String>,
    pub vat: Option<String>,
    pub status: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnRow {
    pub emag_id: i64,
    pub order_id: Option<i64>,
    /// 3 seller-fulfilled, 2 FBE: the `type` it is read back with.
    pub rma_type: Option<i64>,
    pub status: Option<i64>,
    pub date: Option<String>,
    pub data: String,
    pub content_hash: i64,
}

const CHUNK: usize = 400;
/// Rows of one multi-row `INSERT` at most (see [`runs_of_few_sizes`]).
const ROWS_PER_INSERT: usize = 128;

/// Which orders of a page are merged into stored rows, their stored lines deleted before the
/// page's lines go in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// The orders the caller says the store holds; the others are inserted.
    Updated,
    /// Every order of the page: the caller's word was wrong.
    All,
}

/// One multi-row `INSERT` of `rows` into `orders`; with `merge`, a stored order is updated
/// in place (its `first_seen_at` kept), without it a stored order refuses the statement.
fn insert_orders<'q>(
    backend: crate::Backend,
    account: &'q str,
    rows: &'q [OrderRow],
    now: i64,
    merge: bool,
) -> Sql<'q> {
    let mut q = Sql::new(
        backend,
        "INSERT INTO orders (account, id, order_type, status, date, modified, payment_mode_id, \
         customer_id, customer_name, data, content_hash, first_seen_at, updated_at) VALUES ",
    );
    for (i, o) in rows.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(account).push(", ").bind(o.id).push(", ");
        q.bind(o.order_type).push(", ").bind(o.status).push(", ");
        q.bind(o.date.as_deref())
            .push(", ")
            .bind(o.modified.as_deref())
            .push(", ");
        q.bind(o.payment_mode_id)
            .push(", ")
            .bind(o.customer_id)
            .push(", ");
        q.bind(o.customer_name.as_deref())
            .push(", ")
            .bind(o.data.as_str())
            .push(", ");
        q.bind(o.content_hash)
            .push(", ")
            .bind(now)
            .push(", ")
            .bind(now)
            .push(")");
    }
    if merge {
        q.push(
            " ON CONFLICT (account, id) DO UPDATE SET order_type = excluded.order_type, \
             status = excluded.status, date = excluded.date, modified = excluded.modified, \
             payment_mode_id = excluded.payment_mode_id, customer_id = excluded.customer_id, \
             customer_name = excluded.customer_name, data = excluded.data, \
             content_hash = excluded.content_hash, updated_at = excluded.updated_at",
        );
    }
    q
}

impl Store {
    /// Stored content hashes of the given orders of an account.
    pub async fn order_hashes(&self, account: &str, ids: &[i64]) -> Result<HashMap<i64, i64>> {
        self.hashes("orders", "id", account, ids).await
    }

    pub async fn return_hashes(&self, account: &str, ids: &[i64]) -> Result<HashMap<i64, i64>> {
        self.hashes("returns", "emag_id", account, ids).await
    }

    async fn hashes(
        &self,
        table: &str,
        key: &str,
        account: &str,
        ids: &[i64],
    ) -> Result<HashMap<i64, i64>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut q = Sql::new(
                self.backend(),
                format!("SELECT {key}, content_hash FROM {table} WHERE account = "),
            );
            q.bind(account).push(&format!(" AND {key} IN "));
            q.bind_list(chunk.iter().copied());
            for r in q.fetch_all(&self.pool).await? {
                out.insert(r.try_get(0)?, r.try_get(1)?);
            }
        }
        Ok(out)
    }

    /// Writes a page's changed orders (with their lines) and the run's counters in one
    /// transaction. `created` are orders the store held no row of (nearly all of a first
    /// sync), `updated` those it held in another version: only the lines of `updated` orders
    /// are deleted before the page's lines go in, so a first sync deletes nothing. (That
    /// `DELETE … IN (…)` was also where PostgreSQL, before its first `ANALYZE` of a growing
    /// table, scanned every line of the account for each page.) Should an order given as
    /// created be stored after all, its primary key refuses the page, which is written again
    /// with every order merged and its lines replaced.
    pub async fn write_orders(
        &self,
        run: &ActiveRun,
        created: &[OrderRow],
        updated: &[OrderRow],
        counts: &domain::RunCounts,
    ) -> Result<()> {
        match self
            .write_orders_replacing(run, created, updated, counts, Replace::Updated)
            .await
        {
            Err(crate::StorageError::Sqlx(sqlx::Error::Database(e)))
                if e.is_unique_violation() && !created.is_empty() =>
            {
                tracing::warn!(
                    run.id = run.id,
                    "an order given as new was stored already: the page is written again, \
                     every order merged and its lines replaced"
                );
                self.write_orders_replacing(run, created, updated, counts, Replace::All)
                    .await
            }
            other => other,
        }
    }

    async fn write_orders_replacing(
        &self,
        run: &ActiveRun,
        created: &[OrderRow],
        updated: &[OrderRow],
        counts: &domain::RunCounts,
        replace: Replace,
    ) -> Result<()> {
        let now = now_ms();
        let account = run.account.as_str();
        let mut tx = self.pool.begin().await?;
        add_counts(&mut tx, run, counts).await?;
        let replaced = match replace {
            Replace::Updated => updated,
            Replace::All => &[created, updated].concat(),
        };
        for chunk in replaced.chunks(CHUNK) {
            let mut del = Sql::new(self.backend(), "DELETE FROM order_lines WHERE account = ");
            del.bind(account).push(" AND order_id IN ");
            del.bind_list(chunk.iter().map(|o| o.id));
            del.execute(&mut *tx).await?;
        }
        // Orders given as created go in by a plain `INSERT`: should one be stored after all,
        // its primary key refuses the page, which is then written again (`Replace::All`).
        let merged = [(created, replace == Replace::All), (updated, true)];
        for (rows, merge) in merged {
            for chunk in runs_of_few_sizes(rows, ROWS_PER_INSERT) {
                insert_orders(self.backend(), account, chunk, now, merge)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let lines: Vec<(i64, &OrderLineRow)> = created
            .iter()
            .chain(updated)
            .flat_map(|o| o.lines.iter().map(move |l| (o.id, l)))
            .collect();
        for lines in runs_of_few_sizes(&lines, ROWS_PER_INSERT) {
            let mut q = Sql::new(
                self.backend(),
                "INSERT INTO order_lines (account, order_id, line_id, product_id, part_number, \
                 name, quantity, sale_price, currency, vat, status) VALUES ",
            );
            for (i, (order_id, l)) in lines.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" });
                q.bind(account).push(", ").bind(*order_id).push(", ");
                q.bind(l.line_id).push(", ").bind(l.product_id).push(", ");
                q.bind(l.part_number.as_deref())
                    .push(", ")
                    .bind(l.name.as_deref());
                q.push(", ")
                    .bind(l.quantity)
                    .push(", ")
                    .bind(l.sale_price.as_deref());
                q.push(", ")
                    .bind(l.currency.as_deref())
                    .push(", ")
                    .bind(l.vat.as_deref());
                q.push(", ").bind(l.status).push(")");
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The latest `modified` stored for an account's orders of one type that is not after
    /// `not_after` (eMAG's datetime text, which sorts as time): the order cursor. An order
    /// stamped in the future must not carry the cursor past orders still to come.
    pub async fn latest_order_modified(
        &self,
        account: &str,
        order_type: i64,
        not_after: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT MAX(modified) FROM orders WHERE account = $1 AND order_type = $2 \
             AND modified <= $3",
        )
        .bind(account)
        .bind(order_type)
        .bind(not_after)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn count_orders(&self, account: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM orders WHERE account = $1")
            .bind(account)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// `emag_id`s above `after` of an account's stored returns of `rma_type` (3 or 2; a
    /// return stored without type counts as either) whose status is not final (refused 4,
    /// cancelled 5 and finalized 7 are; an unknown status is not), in id order, at most
    /// `limit`: a return changes state over weeks, long after its creation window was read.
    pub async fn open_return_ids(
        &self,
        account: &str,
        rma_type: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT emag_id FROM returns WHERE account = $1 AND emag_id > $2 \
             AND (status IS NULL OR status NOT IN (4, 5, 7)) \
             AND COALESCE(rma_type, $3) = $3 ORDER BY emag_id LIMIT $4",
        )
        .bind(account)
        .bind(after)
        .bind(rma_type)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// (emag_id, type, status) of an account's stored returns, by id.
    pub async fn return_statuses(
        &self,
        account: &str,
    ) -> Result<Vec<(i64, Option<i64>, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT emag_id, rma_type, status FROM returns WHERE account = $1 ORDER BY emag_id",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Writes changed returns and the run's counters in one transaction.
    pub async fn write_returns(
        &self,
        run: &ActiveRun,
        changed: &[ReturnRow],
        counts: &domain::RunCounts,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        add_counts(&mut tx, run, counts).await?;
        for chunk in runs_of_few_sizes(changed, ROWS_PER_INSERT) {
            let mut q = Sql::new(
                self.backend(),
                "INSERT INTO returns (account, emag_id, order_id, rma_type, status, date, data, \
                 content_hash, updated_at) VALUES ",
            );
            for (i, r) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" });
                q.bind(run.account.as_str())
                    .push(", ")
                    .bind(r.emag_id)
                    .push(", ");
                q.bind(r.order_id).push(", ").bind(r.rma_type).push(", ");
                q.bind(r.status).push(", ");
                q.bind(r.date.as_deref())
                    .push(", ")
                    .bind(r.data.as_str())
                    .push(", ");
                q.bind(r.content_hash).push(", ").bind(now).push(")");
            }
            q.push(
                 " ON CONFLICT (account, emag_id) DO UPDATE SET order_id = excluded.order_id, \
                 rma_type = excluded.rma_type, status = excluded.status, date = excluded.date, data = excluded.data, \
                 content_hash = excluded.content_hash, updated_at = excluded.updated_at",
            );
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
