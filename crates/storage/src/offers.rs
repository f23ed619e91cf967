//! Offers keyed by (account, id). A page of a scan is written in one transaction with the
//! run's checkpoint and the ids it held, so a killed scan resumes at its next page and still
//! knows everything it saw. Unchanged rows (same content hash) are not written at all.

use std::collections::HashMap;

use sqlx::Row;

use crate::sql::{runs_of_few_sizes, Sql};

use crate::runs::{add_counts, fenced, ActiveRun};
use crate::{now_ms, Result, Store};

/// One offer as stored; `data` is the offer's JSON exactly as eMAG sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRow {
    pub id: i64,
    pub part_number: Option<String>,
    pub part_number_key: Option<String>,
    pub name: Option<String>,
    pub brand: Option<String>,
    pub status: Option<i64>,
    pub sale_price: Option<String>,
    pub recommended_price: Option<String>,
    pub currency: Option<String>,
    pub vat_id: Option<i64>,
    pub general_stock: Option<i64>,
    pub estimated_stock: Option<i64>,
    /// JSON array of strings.
    pub ean: String,
    pub data: String,
    pub content_hash: i64,
}

/// What the store holds of an offer, to decide whether a fetched one changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHash {
    pub content_hash: i64,
    pub removed: bool,
}

/// Offers of one upsert at most: a page of a scan (eMAG's largest page) in one statement.
const OFFERS_PER_UPSERT: usize = 100;

/// Ids per `IN` list: SQLite allows 32766 bound values per statement.
const IDS_PER_LIST: usize = 500;

/// The columns an offer write sets, in the order of [`OfferRow`]'s fields and then `removed`,
/// `first_seen_at`, `updated_at`.
pub(crate) const OFFER_COLUMNS: &str = "account, id, part_number, part_number_key, name, brand, \
     status, sale_price, recommended_price, currency, vat_id, general_stock, estimated_stock, \
     ean, data, content_hash, removed, first_seen_at, updated_at";

/// What an offer already stored takes from a new write of it (`excluded`): a listed offer is
/// live and missed by no scan.
pub(crate) const OFFER_UPSERT: &str = " ON CONFLICT (account, id) DO UPDATE SET \
     part_number = excluded.part_number, part_number_key = excluded.part_number_key, \
     name = excluded.name, brand = excluded.brand, status = excluded.status, \
     sale_price = excluded.sale_price, recommended_price = excluded.recommended_price, \
     currency = excluded.currency, vat_id = excluded.vat_id, \
     general_stock = excluded.general_stock, estimated_stock = excluded.estimated_stock, \
     ean = excluded.ean, data = excluded.data, content_hash = excluded.content_hash, \
     removed = 0, removed_at = NULL, missed_scans = 0, missed_by_run = NULL, \
     updated_at = excluded.updated_at";

/// [`FENCE_PAGE`]'s test without its write, for a transaction that must not lock the run's
/// row until it is about to commit (`$1` the run, `$2` its holder, `$3` running).
pub(crate) const FENCE_READ: &str =
    "SELECT 1 FROM runs WHERE id = $1 AND holder = $2 AND state = $3";

/// The fence of a page write: the run is still ours and running; moves its checkpoint.
pub(crate) const FENCE_PAGE: &str =
    "UPDATE runs SET checkpoint_page = COALESCE($1, checkpoint_page) \
     WHERE id = $2 AND holder = $3 AND state = $4";

/// [`FENCE_PAGE`] with its values, for a connection of either kind: the `Any` pool's or
/// the native PostgreSQL pool's (`offers_pg`).
pub(crate) fn fence_page<'q, DB: sqlx::Database>(
    checkpoint: Option<i64>,
    run: &'q ActiveRun,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(FENCE_PAGE)
        .bind(checkpoint)
        .bind(run.id)
        .bind(run.holder.as_str())
        .bind(domain::RunState::Running.as_str())
}

/// A page's listed ids (little-endian `u32`s) under its key.
pub(crate) const SCAN_PAGE: &str =
    "INSERT INTO scan_pages (run_id, page, ids) VALUES ($1, $2, $3) \
     ON CONFLICT (run_id, page) DO UPDATE SET ids = excluded.ids";

/// One scanned page to write: its key, the checkpoint it moves to (the first pass's pages),
/// the ids it listed, the offers that changed, and its counters.
#[derive(Debug, Clone, Copy)]
pub struct OfferPage<'a> {
    pub key: i64,
    pub checkpoint: Option<i64>,
    pub seen_ids: &'a [u32],
    /// Changed offers the store held no row of when the caller looked (under the run's
    /// lease, after the run's earlier pages were written). PostgreSQL copies them into the
    /// table without a conflict check; if one was stored after all, the pages are written
    /// again as if every offer were in `updated`, so a wrong guess costs time, not data.
    pub created: &'a [OfferRow],
    /// Changed offers the store may hold (another content hash, or marked removed).
    pub updated: &'a [OfferRow],
    pub counts: domain::RunCounts,
    /// Clear the missed-scan marks of the listed offers. `false` only when the account had
    /// no marked offer when the scan began (see [`Store::offers_marked_missed`]): marks are
    /// set after a scan, never during one.
    pub reset_missed: bool,
}

/// A connection a batch of a scan's pages is written on: see [`Store::page_writer`].
#[derive(Debug)]
pub struct PageWriter(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

/// A page's listed ids as stored in `scan_pages`: little-endian `u32`s.
pub(crate) fn id_blob(ids: &[u32]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(ids.len() * 4);
    for id in ids {
        blob.extend_from_slice(&id.to_le_bytes());
    }
    blob
}

/// The upserts that write `rows` of `account`: runs of a few lengths only (see
/// [`runs_of_few_sizes`]). A long `start` meets every number of changed offers per page,
/// and each number written as one statement was a program of its own cached on every SQLite
/// connection it ran on (a 100-row upsert is about 300 KB; sqlx keeps up to 100 per connection).
fn offer_upserts<'q>(
    backend: crate::Backend,
    account: &'q str,
    rows: &'q [OfferRow],
    now: i64,
) -> impl Iterator<Item = Sql<'q>> {
    runs_of_few_sizes(rows, OFFERS_PER_UPSERT).map(move |run| {
        let mut q = Sql::new(backend, "INSERT INTO offers (");
        q.push(OFFER_COLUMNS).push(") VALUES ");
        for (i, o) in run.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.bind(account).push(", ").bind(o.id).push(", ");
            q.bind(o.part_number.as_deref()).push(", ");
            q.bind(o.part_number_key.as_deref()).push(", ");
            q.bind(o.name.as_deref())
                .push(", ")
                .bind(o.brand.as_deref())
                .push(", ");
            q.bind(o.status)
                .push(", ")
                .bind(o.sale_price.as_deref())
                .push(", ");
            q.bind(o.recommended_price.as_deref()).push(", ");
            q.bind(o.currency.as_deref())
                .push(", ")
                .bind(o.vat_id)
                .push(", ");
            q.bind(o.general_stock)
                .push(", ")
                .bind(o.estimated_stock)
                .push(", ");
            q.bind(o.ean.as_str())
                .push(", ")
                .bind(o.data.as_str())
                .push(", ");
            q.bind(o.content_hash)
                .push(", 0, ")
                .bind(now)
                .push(", ")
                .bind(now)
                .push(")");
        }
        q.push(OFFER_UPSERT);
        q
    })
}

impl Store {
    /// The stored hashes of the given offer ids of an account.
    pub async fn offer_hashes(
        &self,
        account: &str,
        ids: &[i64],
    ) -> Result<HashMap<i64, StoredHash>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_LIST) {
            let mut q = Sql::new(
                self.backend(),
                "SELECT id, content_hash, removed FROM offers WHERE account = ",
            );
            q.bind(account)
                .push(" AND id IN ")
                .bind_list(chunk.iter().copied());
            let rows = q.fetch_all(&self.pool).await?;
            for r in rows {
                out.insert(
                    r.try_get(0)?,
                    StoredHash {
                        content_hash: r.try_get(1)?,
                        removed: r.try_get::<i64, _>(2)? != 0,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Writes one scanned page atomically: the changed offers, the page's ids (under
    /// `page_key`), the run's checkpoint (when given) and counters. Fails with `LeaseLost` (writing nothing) when the run was
    /// taken over. `changed` holds only offers whose hash differs from the store's;
    /// `created` says how many of them are new.
    pub async fn write_offer_page(
        &self,
        run: &ActiveRun,
        page_key: i64,
        checkpoint: Option<i64>,
        seen_ids: &[u32],
        changed: &[OfferRow],
        counts: &domain::RunCounts,
    ) -> Result<()> {
        self.write_offer_pages(
            run,
            &[OfferPage {
                key: page_key,
                checkpoint,
                seen_ids,
                created: &[],
                updated: changed,
                counts: *counts,
                reset_missed: true,
            }],
        )
        .await
    }

    /// Whether the account has any offer stored (a first sync of it has nothing to compare).
    pub async fn has_offers(&self, account: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM offers WHERE account = $1 LIMIT 1")
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Whether any offer of the account carries a missed-scan mark (the partial index
    /// `offers_missed`).
    pub async fn offers_marked_missed(&self, account: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 FROM offers WHERE account = $1 AND missed_scans > 0 LIMIT 1")
                .bind(account)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Writes several scanned pages in one transaction (fewer commits when pages arrive
    /// faster than they are written): as if each were written by [`Store::write_offer_page`]
    /// in order, the checkpoint ending at the last one that moves it.
    pub async fn write_offer_pages(&self, run: &ActiveRun, pages: &[OfferPage<'_>]) -> Result<()> {
        let writer = self.page_writer().await?;
        self.write_offer_pages_after(writer, run, pages, std::future::ready(true))
            .await
    }

    /// How many [`Store::write_offer_pages_after`] of one run may be under way at once to
    /// gain anything: PostgreSQL copies a batch's offers while the batch before it
    /// commits (two server processes, two cores); SQLite has one writer.
    pub fn offer_page_writers(&self) -> usize {
        if self.pg.is_some() {
            2
        } else {
            1
        }
    }

    /// The connection the next batch of a scan's pages will be written on (PostgreSQL;
    /// SQLite writes through its pool). A scan takes them in page order, each once the
    /// one before it is taken: a batch that waits for the one before it to commit then
    /// never holds a connection that batch still waits for.
    pub async fn page_writer(&self) -> Result<PageWriter> {
        Ok(PageWriter(match &self.pg {
            Some(pg) => Some(pg.acquire().await?),
            None => None,
        }))
    }

    /// [`Store::write_offer_pages`] on `writer` that commits only once `earlier` says
    /// `true` — that the run's pages before these are committed — so that a checkpoint
    /// never passes pages that are not stored. On PostgreSQL the offers are copied before
    /// that (beside the earlier batch's commit, on another connection); the fence is read
    /// first and written, with the checkpoint, ids and counters, after it. When `earlier`
    /// says `false` nothing is written: [`crate::StorageError::EarlierWriteFailed`].
    /// Batches under way together must not hold the same offer: one could wait for the
    /// other's row while the other waits for it to commit.
    pub async fn write_offer_pages_after(
        &self,
        writer: PageWriter,
        run: &ActiveRun,
        pages: &[OfferPage<'_>],
        earlier: impl std::future::Future<Output = bool> + Send,
    ) -> Result<()> {
        let now = now_ms();
        if let Some(conn) = writer.0 {
            return crate::offers_pg::write_pages(conn, run, pages, now, earlier).await;
        }
        // One writer: nothing to do before the earlier batch has committed.
        if !earlier.await {
            return Err(crate::StorageError::EarlierWriteFailed(run.id));
        }
        let checkpoint = pages.iter().filter_map(|p| p.checkpoint).next_back();
        if let Some(wal) = &self.wal {
            wal.bound(&self.pool).await;
        }
        let mut tx = self.pool.begin().await?;
        // A checkpoint past pages a server crash took back would skip them on resume.
        crate::runs::check_epoch(&mut tx, run).await?;
        // Fence first: a stale holder must not write a single offer.
        let done = fence_page(checkpoint, run).execute(&mut *tx).await?;
        fenced(done.rows_affected(), run.id)?;
        let mut counts = domain::RunCounts::default();
        for page in pages {
            self.write_page_in(&mut tx, run, page, now).await?;
            counts.add(&page.counts);
        }
        add_counts(&mut tx, run, &counts).await?;
        tx.commit().await?;
        let wrote = pages
            .iter()
            .any(|p| !p.created.is_empty() || !p.updated.is_empty());
        if let (Some(wal), true) = (&self.wal, wrote) {
            wal.start(&self.pool);
        }
        Ok(())
    }

    /// One page's rows, seen ids and page record, inside the caller's fenced transaction
    /// (SQLite: a conflict check costs the same as the insert's own unique-key check, so new
    /// and changed offers take one upsert).
    async fn write_page_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run: &ActiveRun,
        page: &OfferPage<'_>,
        now: i64,
    ) -> Result<()> {
        let OfferPage {
            key: page_key,
            seen_ids,
            created,
            updated,
            reset_missed,
            ..
        } = *page;

        let backend = self.backend();
        let upserts = [created, updated]
            .into_iter()
            .flat_map(|rows| offer_upserts(backend, &run.account, rows, now));
        for q in upserts {
            q.execute(&mut **tx).await?;
        }
        // Listed again: an offer a scan missed is not missing any more. Unchanged offers are
        // not written above, so this touches the (few) missed ones only.
        let to_reset = if reset_missed { seen_ids } else { &[] };
        for chunk in to_reset.chunks(IDS_PER_LIST) {
            let mut q = Sql::new(
                self.backend(),
                "UPDATE offers SET missed_scans = 0, missed_by_run = NULL WHERE account = ",
            );
            q.bind(run.account.as_str())
                .push(" AND missed_scans > 0 AND id IN ")
                .bind_list(chunk.iter().map(|&id| i64::from(id)));
            q.execute(&mut **tx).await?;
        }

        sqlx::query(SCAN_PAGE)
            .bind(run.id)
            .bind(page_key)
            .bind(id_blob(seen_ids))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Every offer id a run's pages held so far (for a resumed scan).
    pub async fn scanned_ids(&self, run_id: i64) -> Result<Vec<u32>> {
        let rows = sqlx::query("SELECT ids FROM scan_pages WHERE run_id = $1")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        let mut ids = Vec::new();
        for r in rows {
            let blob: Vec<u8> = r.try_get(0)?;
            ids.extend(
                blob.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        Ok(ids)
    }

    /// Ids of an account's offers not marked removed, ascending, from `after` on, at most
    /// `limit`: the removal pass walks them in batches so memory stays flat.
    pub async fn live_offer_ids(&self, account: &str, after: i64, limit: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT id FROM offers WHERE account = $1 AND removed = 0 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(account)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Counts one more complete scan that did not list these live offers of the run's
    /// account; a run counts each offer once however often it is resumed. Fails with
    /// `LeaseLost` when the run was taken over.
    pub async fn record_offer_misses(&self, run: &ActiveRun, ids: &[i64]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        crate::runs::hold_lease_in(&mut tx, run).await?;
        for chunk in ids.chunks(IDS_PER_LIST) {
            let mut q = Sql::new(
                self.backend(),
                "UPDATE offers SET missed_scans = missed_scans + 1, missed_by_run = ",
            );
            q.bind(run.id)
                .push(" WHERE account = ")
                .bind(run.account.as_str());
            q.push(" AND removed = 0 AND (missed_by_run IS NULL OR missed_by_run <> ")
                .bind(run.id)
                .push(") AND id IN ")
                .bind_list(chunk.iter().copied());
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many live offers of the run's account this run found missing after at least
    /// `scans` complete scans in a row.
    pub async fn count_missed_offers(&self, run: &ActiveRun, scans: i64) -> Result<u64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM offers WHERE account = $1 AND missed_scans >= $2 \
             AND removed = 0 AND missed_by_run = $3",
        )
        .bind(run.account.as_str())
        .bind(scans)
        .bind(run.id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0))
    }

    /// Marks removed the live offers of the run's account that this run found missing after
    /// at least `scans` complete scans in a row; one statement, whatever their number.
    pub async fn mark_missed_offers_removed(&self, run: &ActiveRun, scans: i64) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        crate::runs::hold_lease_in(&mut tx, run).await?;
        let removed = sqlx::query(
            "UPDATE offers SET removed = 1, removed_at = $1, updated_at = $1 \
             WHERE account = $2 AND missed_scans >= $3 AND removed = 0 AND missed_by_run = $4",
        )
        .bind(now)
        .bind(run.account.as_str())
        .bind(scans)
        .bind(run.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(removed)
    }

    /// Marks the given offers removed: only offers eMAG no longer has (confirmed by a read by
    /// id, or missed by consecutive complete scans).
    pub async fn mark_offers_removed(&self, run: &ActiveRun, ids: &[i64]) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        crate::runs::hold_lease_in(&mut tx, run).await?;
        let mut removed = 0;
        for chunk in ids.chunks(IDS_PER_LIST) {
            let mut q = Sql::new(
                self.backend(),
                "UPDATE offers SET removed = 1, removed_at = ",
            );
            q.bind(now).push(", updated_at = ").bind(now);
            q.push(" WHERE account = ").bind(run.account.as_str());
            q.push(" AND removed = 0 AND id IN ")
                .bind_list(chunk.iter().copied());
            removed += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Number of offers of an account: (live, removed).
    pub async fn count_offers(&self, account: &str) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(CASE WHEN removed = 0 THEN 1 END), \
             COUNT(CASE WHEN removed = 1 THEN 1 END) FROM offers WHERE account = $1",
        )
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{offer_upserts, OfferRow};
    use crate::Backend;

    fn offer(id: i64) -> OfferRow {
        OfferRow {
            id,
            part_number: Some(format!("PN-{id}")),
            part_number_key: None,
            name: Some(format!("offer {id}")),
            brand: None,
            status: Some(1),
            sale_price: Some("10".to_owned()),
            recommended_price: None,
            currency: Some("RON".to_owned()),
            vat_id: Some(9),
            general_stock: Some(1),
            estimated_stock: Some(1),
            ean: "[]".to_owned(),
            data: format!("{{\"id\":{id}}}"),
            content_hash: id,
        }
    }

    #[test]
    fn any_number_of_changed_offers_is_written_by_few_statement_shapes_holding_every_row() {
        let rows: Vec<OfferRow> = (1..=600).map(offer).collect();
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let mut shapes = BTreeSet::new();
            for n in 0..=rows.len() {
                let mut written = 0;
                for q in offer_upserts(backend, "main", &rows[..n], 1) {
                    written += q.bound();
                    shapes.insert(q.text().to_owned());
                }
                assert_eq!(written, n * 18, "every value of the {n} rows is bound once");
            }
            assert_eq!(shapes.len(), 8, "{backend:?}: 1, 2, 4, … 64 and 100 rows");
        }
    }
}
