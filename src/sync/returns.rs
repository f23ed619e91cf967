//! Returns (RMA), for seller-fulfilled (type 3) and FBE (type 2) returns separately: like
//! `order/read`, `rma/read` lists only type 3 unless asked for type 2 (eMAG's changelog).
//!
//! Each type is read by creation-date window (the only date filter eMAG offers), from the
//! last complete run's start minus the order overlap, or the backfill period on the first
//! run. A return changes state for weeks after it was created (new → approved → received →
//! finalized), long after its creation window was read, so the stored returns that are not
//! closed yet are read again by id, [`REREAD_MAX`] per type and run, in turn.

use std::collections::HashSet;

use domain::{storable_text, OrderType, QuarantineKind, SyncKind};
use emag_client::PageLoop;
use serde_json::{Map, Value};
use storage::{ActiveRun, ReturnRow};

use super::offers::int;
use super::orders::{emag_now, read_start, EMAG_TIME};
use super::quarantine::{join_notes, Odd, Quarantine};
use super::{changed_rows, content_hash, Account, KindResult, SyncContext, SyncError};

const PER_PAGE: u32 = 100;
/// Open returns read again by id per type and run (one request each, on the 3-per-second
/// budget of non-order resources: 100 reads take about 35 s).
const REREAD_MAX: i64 = 100;

fn cursor_key(t: OrderType) -> String {
    format!("returns.cursor.type{}", t.code())
}

/// Where the next round of re-reads of open returns starts (an emag_id; 0 from the first).
fn reread_key(t: OrderType) -> String {
    format!("returns.reread_after.type{}", t.code())
}

pub(crate) fn to_row(raw: &str, asked: OrderType) -> Result<ReturnRow, Odd> {
    let v: Value = serde_json::from_str(raw).map_err(|e| Odd::shape(raw, "return", &e))?;
    let emag_id = int(v.get("emag_id"))
        .or_else(|| int(v.get("id")))
        .ok_or_else(|| Odd {
            item_id: None,
            reason: "a return without a readable emag_id".into(),
        })?;
    Ok(ReturnRow {
        emag_id,
        order_id: int(v.get("order_id")),
        rma_type: int(v.get("type")).or(Some(asked.code())),
        status: int(v.get("request_status")),
        date: v
            .get("date")
            .and_then(Value::as_str)
            .map(|d| storable_text(d.to_owned())),
        data: raw.to_owned(),
        content_hash: content_hash(raw),
    })
}

pub(crate) async fn sync_returns(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
    full: bool,
) -> Result<KindResult, SyncError> {
    let now = emag_now();
    let mut done = 0;
    let mut quarantine = Quarantine::new(QuarantineKind::Return);
    let mut notes = Vec::new();
    for rma_type in OrderType::ALL {
        let key = cursor_key(rma_type);
        let (_, start) = read_start(ctx, account, &key, full, now).await?;
        let mut filters = Map::new();
        filters.insert("type".into(), rma_type.code().into());
        filters.insert(
            "date_start".into(),
            start.format(EMAG_TIME).to_string().into(),
        );
        let mut seen = HashSet::new();
        // No count for returns: the loop is bounded by the page cap and stops at a page that
        // repeats the previous one (an API that ignores `currentPage`).
        let mut pages = PageLoop::new("rma", 1, PER_PAGE, None);
        while let Some(page_no) = pages.next_page() {
            if ctx.cancel.is_cancelled() {
                return Err(SyncError::Cancelled);
            }
            let mut page = account
                .client
                .read_page("rma", &filters, page_no, PER_PAGE)
                .await?;
            pages.accept(&mut page)?;
            let rows = decode(account, &page.items, rma_type, &mut quarantine);
            seen.extend(rows.iter().map(|r| r.emag_id));
            done += write(ctx, run, rows).await?;
            ctx.report_progress(account.name(), SyncKind::Returns, done, None);
            if page.last {
                break;
            }
        }
        notes.push(reread_open(ctx, account, run, rma_type, &seen, &mut quarantine).await?);
        quarantine.flush(ctx, run).await?;
        ctx.store
            .set_run_cursor(run, &key, &now.format(EMAG_TIME).to_string())
            .await?;
    }
    quarantine.flush(ctx, run).await?;
    notes.push(quarantine.note());
    Ok(KindResult {
        note: join_notes(notes),
        quarantined: quarantine.count(),
        ..KindResult::default()
    })
}

fn decode(
    account: &Account,
    items: &[emag_client::RawItem],
    rma_type: OrderType,
    quarantine: &mut Quarantine,
) -> Vec<ReturnRow> {
    let mut rows = Vec::with_capacity(items.len());
    for raw in items {
        match to_row(raw.get(), rma_type) {
            Ok(row) => rows.push(row),
            Err(why) => quarantine.add(account.name(), raw.get(), why),
        }
    }
    rows
}

async fn write(ctx: &SyncContext, run: &ActiveRun, rows: Vec<ReturnRow>) -> Result<u64, SyncError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.emag_id).collect();
    let stored = ctx.store.return_hashes(&run.account, &ids).await?;
    let (changed, counts) = changed_rows(rows, &stored, |r| r.emag_id, |r| r.content_hash);
    ctx.store.write_returns(run, &changed, &counts).await?;
    Ok(counts.items_read)
}

/// Reads again, by id, the stored returns of `rma_type` that are not closed and that the
/// window did not list (`seen`); a note when eMAG did not apply the id filter.
async fn reread_open(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
    rma_type: OrderType,
    seen: &HashSet<i64>,
    quarantine: &mut Quarantine,
) -> Result<Option<String>, SyncError> {
    let key = reread_key(rma_type);
    let after = ctx
        .store
        .get_state(account.name(), &key)
        .await?
        .and_then(|a| a.parse().ok())
        .unwrap_or(0_i64);
    let open = ctx
        .store
        .open_return_ids(account.name(), rma_type.code(), after, REREAD_MAX)
        .await?;
    let mut rows = Vec::new();
    let mut note = None;
    for &emag_id in open.iter().filter(|id| !seen.contains(id)) {
        if ctx.cancel.is_cancelled() {
            return Err(SyncError::Cancelled);
        }
        let mut filters = Map::new();
        filters.insert("type".into(), rma_type.code().into());
        filters.insert("emag_id".into(), emag_id.into());
        let page = account.client.read_page("rma", &filters, 1, 1).await?;
        let got = decode(account, &page.items, rma_type, quarantine);
        match got.as_slice() {
            [] => {}
            [one] if one.emag_id == emag_id => rows.extend(got),
            _ => {
                tracing::warn!(
                    account.name = account.name(), rma.emag_id = emag_id, answered = page.items.len(),
                    "a read of one return by id was answered with other returns; open returns are not re-read"
                );
                note = Some(format!(
                    "the read of return {emag_id} by id was answered with other returns (the filter was not applied); open returns were not read again"
                ));
                break;
            }
        }
    }
    let mut counts_rows = rows;
    counts_rows.sort_by_key(|r| r.emag_id);
    if !counts_rows.is_empty() {
        let ids: Vec<i64> = counts_rows.iter().map(|r| r.emag_id).collect();
        let stored = ctx.store.return_hashes(&run.account, &ids).await?;
        let (changed, mut counts) =
            changed_rows(counts_rows, &stored, |r| r.emag_id, |r| r.content_hash);
        counts.pages = 0;
        ctx.store.write_returns(run, &changed, &counts).await?;
    }
    // The next run goes on after the last one read, or starts over after a short round.
    let next = match open.last() {
        Some(last) if open.len() as i64 >= REREAD_MAX => *last,
        _ => 0,
    };
    ctx.store
        .set_run_cursor(run, &key, &next.to_string())
        .await?;
    Ok(note)
}
