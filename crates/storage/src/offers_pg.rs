//! PostgreSQL's way of writing a scan's pages: the offers go in by binary `COPY`, the bulk
//! path of the server, instead of multi-row `INSERT … VALUES` statements of 1,900 bound values
//! that the executor evaluates row by row. `COPY` has no `ON CONFLICT`, so:
//!
//! - offers the store held no row of (a first sync: nearly all of them) are copied straight
//!   into `offers`;
//! - offers it may hold are copied into a temporary table of the connection and merged from
//!   there by one `INSERT … SELECT … ON CONFLICT DO UPDATE`, the same upsert as SQLite's.
//!
//! Everything else of the page write (fence, checkpoint, listed ids, counters) is the same
//! statement as on SQLite, in the same transaction; the sqlx `Any` driver cannot send `COPY`,
//! so this path has its own native pool ([`crate::Store`]'s `pg`). The run's row is read
//! first and written last, just before the commit: two batches of a run can be copied at
//! once on two connections, and they commit in their order (see `write_pages`).

use std::collections::HashMap;
use std::future::Future;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, Postgres, Transaction};

use crate::offers::{
    fence_page, id_blob, OfferPage, OfferRow, FENCE_READ, OFFER_COLUMNS, OFFER_UPSERT, SCAN_PAGE,
};
use crate::runs::{add_counts_query, fenced, same_epoch, ActiveRun, POSTGRES_EPOCH_MS};
use crate::{Result, StorageError};

/// The connection's merge table: created on first use, emptied at each commit.
const INCOMING: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS offers_incoming \
     (LIKE offers INCLUDING DEFAULTS) ON COMMIT DELETE ROWS";

/// Writes `pages` in one transaction (see [`crate::Store::write_offer_pages_after`]): the
/// offers first, then — once `earlier` says the run's earlier pages are committed — the
/// fence, checkpoint, ids and counters, and the commit. Nothing locks the run's row before
/// that point, so the next batch's offers can be copied on another connection while this
/// one commits. When an offer given as new was stored after all (the caller's guess was
/// wrong), the copy fails on the primary key and the pages are written again with every
/// offer merged.
pub(crate) async fn write_pages(
    mut conn: PoolConnection<Postgres>,
    run: &ActiveRun,
    pages: &[OfferPage<'_>],
    now: i64,
    earlier: impl Future<Output = bool> + Send,
) -> Result<()> {
    match stage(&mut conn, run, pages, now, Guess::Trusted).await {
        Ok(tx) => return commit_after(tx, run, pages, earlier).await,
        Err(StorageError::Sqlx(sqlx::Error::Database(e))) if e.is_unique_violation() => {
            tracing::warn!(
                run.id = run.id,
                "an offer given as new was stored already: the batch is written again, merged"
            );
        }
        Err(e) => return Err(e),
    }
    let tx = stage(&mut conn, run, pages, now, Guess::Ignored).await?;
    commit_after(tx, run, pages, earlier).await
}

/// Commits the staged `tx` once `earlier` says the run's earlier pages are committed;
/// otherwise drops it, which rolls the offers back.
async fn commit_after(
    tx: Transaction<'_, Postgres>,
    run: &ActiveRun,
    pages: &[OfferPage<'_>],
    earlier: impl Future<Output = bool> + Send,
) -> Result<()> {
    if !earlier.await {
        return Err(StorageError::EarlierWriteFailed(run.id));
    }
    finish(tx, run, pages).await
}

/// Whether the pages' `created` offers are copied without a conflict check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Guess {
    Trusted,
    Ignored,
}

/// Opens the pages' transaction and writes their offers into it.
async fn stage<'c>(
    conn: &'c mut PgConnection,
    run: &ActiveRun,
    pages: &[OfferPage<'_>],
    now: i64,
    guess: Guess,
) -> Result<Transaction<'c, Postgres>> {
    let mut tx = conn.begin().await?;
    // A checkpoint past pages a server crash took back would skip them on resume.
    if let Some(claimed) = run.db_epoch {
        let epoch: i64 = sqlx::query_scalar(POSTGRES_EPOCH_MS)
            .fetch_one(&mut *tx)
            .await?;
        same_epoch(run, claimed, epoch)?;
    }
    // The fence, read: a stale holder copies nothing. It is written in `finish`, which a
    // take-over since this read fails, rolling the offers back.
    let held = sqlx::query(FENCE_READ)
        .bind(run.id)
        .bind(&run.holder)
        .bind(domain::RunState::Running.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    fenced(u64::from(held.is_some()), run.id)?;

    // One row per offer id, the last page's: a catalog moving during the scan may list an
    // offer on two pages of one batch, and one command may not write a row twice.
    let mut new = Latest::default();
    let mut merged = Latest::default();
    for page in pages {
        match guess {
            Guess::Trusted => new.extend(page.created),
            Guess::Ignored => merged.extend(page.created),
        }
        merged.extend(page.updated);
    }
    let account = run.account.as_str();
    if !new.is_empty() {
        copy(
            &mut tx,
            &format!("COPY offers ({OFFER_COLUMNS}) FROM STDIN (FORMAT binary)"),
            &new.rows(),
            account,
            now,
        )
        .await?;
    }
    if !merged.is_empty() {
        sqlx::query(INCOMING).execute(&mut *tx).await?;
        copy(
            &mut tx,
            &format!("COPY offers_incoming ({OFFER_COLUMNS}) FROM STDIN (FORMAT binary)"),
            &merged.rows(),
            account,
            now,
        )
        .await?;
        sqlx::query(&format!(
            "INSERT INTO offers ({OFFER_COLUMNS}) SELECT {OFFER_COLUMNS} FROM offers_incoming\
             {OFFER_UPSERT}"
        ))
        .execute(&mut *tx)
        .await?;
    }

    // Listed again: an offer a scan missed is not missing any more (see the SQLite path).
    // Sent unprepared, like every look-up among a growing table's rows (`Sql::bind_list`).
    let listed: Vec<i64> = pages
        .iter()
        .filter(|p| p.reset_missed)
        .flat_map(|p| p.seen_ids.iter().map(|&id| i64::from(id)))
        .collect();
    if !listed.is_empty() {
        sqlx::query(
            "UPDATE offers SET missed_scans = 0, missed_by_run = NULL \
             WHERE account = $1 AND missed_scans > 0 AND id = ANY($2)",
        )
        .bind(account)
        .bind(&listed)
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    }
    Ok(tx)
}

/// Fences the run, moves its checkpoint, records the pages' ids and counters, and commits.
async fn finish(
    mut tx: Transaction<'_, Postgres>,
    run: &ActiveRun,
    pages: &[OfferPage<'_>],
) -> Result<()> {
    let checkpoint = pages.iter().filter_map(|p| p.checkpoint).next_back();
    let done = fence_page(checkpoint, run).execute(&mut *tx).await?;
    fenced(done.rows_affected(), run.id)?;
    let mut counts = domain::RunCounts::default();
    for page in pages {
        sqlx::query(SCAN_PAGE)
            .bind(run.id)
            .bind(page.key)
            .bind(id_blob(page.seen_ids))
            .execute(&mut *tx)
            .await?;
        counts.add(&page.counts);
    }
    let clock: i64 = sqlx::query_scalar(crate::db::POSTGRES_CLOCK_MS)
        .fetch_one(&mut *tx)
        .await?;
    let done = add_counts_query(&counts, clock, run)
        .execute(&mut *tx)
        .await?;
    fenced(done.rows_affected(), run.id)?;
    tx.commit().await?;
    Ok(())
}

/// Offers by id, the last one given of each.
#[derive(Default)]
struct Latest<'a> {
    by_id: HashMap<i64, &'a OfferRow>,
}

impl<'a> Latest<'a> {
    fn extend(&mut self, rows: &'a [OfferRow]) {
        self.by_id.extend(rows.iter().map(|r| (r.id, r)));
    }

    fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// In id order: the order of the table's key, so the index grows at its right edge.
    fn rows(&self) -> Vec<&'a OfferRow> {
        let mut rows: Vec<&OfferRow> = self.by_id.values().copied().collect();
        rows.sort_unstable_by_key(|r| r.id);
        rows
    }
}

/// Sends `rows` through `statement` (a `COPY … FROM STDIN (FORMAT binary)` naming
/// [`OFFER_COLUMNS`]).
async fn copy(
    conn: &mut PgConnection,
    statement: &str,
    rows: &[&OfferRow],
    account: &str,
    now: i64,
) -> Result<()> {
    let mut out = BinaryCopy::new(rows.iter().map(|r| r.data.len() + 256).sum());
    for o in rows {
        out.row(19);
        out.text(Some(account));
        out.int8(Some(o.id));
        out.text(o.part_number.as_deref());
        out.text(o.part_number_key.as_deref());
        out.text(o.name.as_deref());
        out.text(o.brand.as_deref());
        out.int8(o.status);
        out.text(o.sale_price.as_deref());
        out.text(o.recommended_price.as_deref());
        out.text(o.currency.as_deref());
        out.int8(o.vat_id);
        out.int8(o.general_stock);
        out.int8(o.estimated_stock);
        out.text(Some(&o.ean));
        out.text(Some(&o.data));
        out.int8(Some(o.content_hash));
        out.int8(Some(0));
        out.int8(Some(now));
        out.int8(Some(now));
    }
    let mut sink = conn.copy_in_raw(statement).await?;
    if let Err(e) = sink.send(out.finish()).await {
        // Ends the copy on the server; the error that matters is the first.
        let _ = sink.abort("emag-sync: the copy failed").await;
        return Err(e.into());
    }
    sink.finish().await?;
    Ok(())
}

/// PostgreSQL's binary `COPY` format: a signature and flags, then per row the number of
/// fields and each field as its length and bytes (-1: NULL), then -1.
struct BinaryCopy {
    buf: Vec<u8>,
}

impl BinaryCopy {
    const SIGNATURE: &'static [u8] = b"PGCOPY\n\xff\r\n\0";

    fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 32);
        buf.extend_from_slice(Self::SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        BinaryCopy { buf }
    }

    fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn text(&mut self, v: Option<&str>) {
        match v {
            Some(s) => {
                let len = i32::try_from(s.len()).expect("a text field is far below 2 GiB");
                self.buf.extend_from_slice(&len.to_be_bytes());
                self.buf.extend_from_slice(s.as_bytes());
            }
            None => self.null(),
        }
    }

    fn int8(&mut self, v: Option<i64>) {
        match v {
            Some(n) => {
                self.buf.extend_from_slice(&8i32.to_be_bytes());
                self.buf.extend_from_slice(&n.to_be_bytes());
            }
            None => self.null(),
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_copy_is_its_signature_then_length_prefixed_fields_then_minus_one() {
        // Arrange
        let mut out = BinaryCopy::new(0);

        // Act
        out.row(3);
        out.text(Some("ab"));
        out.int8(Some(-2));
        out.text(None);
        let bytes = out.finish();

        // Assert
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0, 3]);
        want.extend([0, 0, 0, 2, b'a', b'b']);
        want.extend([0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        want.extend([0xff, 0xff, 0xff, 0xff]);
        want.extend([0xff, 0xff]);
        assert_eq!(bytes, want);
    }
}
