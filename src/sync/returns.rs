//! Returns (RMA): read by creation-date window (the only filter eMAG offers), from the last
//! complete run's start minus the order overlap, or the backfill period on the first run.

use domain::SyncKind;
use serde_json::{Map, Value};
use storage::{ActiveRun, ReturnRow};

use super::offers::int;
use super::orders::{emag_now, read_start, EMAG_TIME};
use super::{changed_rows, content_hash, Account, KindResult, SyncContext, SyncError};

const CURSOR: &str = "returns.cursor";

pub(crate) async fn sync_returns(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
    full: bool,
) -> Result<KindResult, SyncError> {
    let now = emag_now();
    let (_, start) = read_start(ctx, account, CURSOR, full, now).await?;
    let mut filters = Map::new();
    filters.insert(
        "date_start".into(),
        start.format(EMAG_TIME).to_string().into(),
    );
    let mut page_no = 1;
    let mut done = 0;
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(SyncError::Cancelled);
        }
        let page = account
            .client
            .read_page("rma", &filters, page_no, 100)
            .await?;
        let mut rows = Vec::with_capacity(page.items.len());
        for raw in &page.items {
            let v: Value = emag_client::decode_json(raw.get())
                .map_err(|e| SyncError::Item(format!("rma: {e}")))?;
            // Named by its fields, never by its JSON (customer data).
            let emag_id = int(v.get("emag_id"))
                .or_else(|| int(v.get("id")))
                .ok_or_else(|| {
                    let fields = v
                        .as_object()
                        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                        .unwrap_or_else(|| "not an object".to_owned());
                    SyncError::Item(format!("rma without emag_id (fields: {fields})"))
                })?;
            rows.push(ReturnRow {
                emag_id,
                order_id: int(v.get("order_id")),
                status: int(v.get("request_status")),
                date: v.get("date").and_then(Value::as_str).map(str::to_owned),
                data: raw.get().to_owned(),
                content_hash: content_hash(raw.get()),
            });
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.emag_id).collect();
        let stored = ctx.store.return_hashes(&run.account, &ids).await?;
        let (changed, counts) = changed_rows(rows, &stored, |r| r.emag_id, |r| r.content_hash);
        ctx.store.write_returns(run, &changed, &counts).await?;
        done += counts.items_read;
        ctx.report_progress(account.name(), SyncKind::Returns, done, None);
        if page.last {
            break;
        }
        page_no += 1;
    }
    ctx.store
        .set_state(account.name(), CURSOR, &now.format(EMAG_TIME).to_string())
        .await?;
    Ok(KindResult::default())
}
