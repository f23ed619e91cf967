//! Offer sync: a full paginated scan (eMAG has no modified-since filter for offers).
//!
//! Each page is written in one transaction with the run's checkpoint and the ids it held, so
//! a killed scan resumes at its next page. A fetcher task reads the next pages while the
//! writer stores the current one. An unchanged offer (same content hash) costs no write.
//! Offers not seen are marked removed only after a scan that provably saw the whole catalog:
//! if the count moved while scanning, the scan is repeated once; if it still does not add
//! up, removals wait for the next scan — a partial scan never hides anything.

use std::collections::HashMap;

use domain::{RunCounts, SyncKind};
use emag_client::{EmagError, Money, Page};
use roaring::RoaringBitmap;
use serde::Deserialize;
use serde_json::{Map, Value};
use storage::{ActiveRun, OfferRow};
use tokio::sync::mpsc;

use super::{changed_rows, content_hash, Account, KindResult, SyncContext, SyncError};

const PER_PAGE: u32 = 100;
/// Pages of a repeat pass are stored under these keys, apart from the first pass's.
const REPEAT_PASS_KEY: i64 = 1_000_000_000;
const REMOVAL_BATCH: i64 = 10_000;

/// The fields we keep in columns; the whole item is kept as JSON beside them.
#[derive(Deserialize)]
struct OfferFields {
    id: u64,
    #[serde(default)]
    part_number: Option<String>,
    #[serde(default)]
    part_number_key: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    brand: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    sale_price: Option<Money>,
    #[serde(default)]
    recommended_price: Option<Money>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    vat_id: Option<Value>,
    #[serde(default)]
    general_stock: Option<Value>,
    #[serde(default)]
    estimated_stock: Option<Value>,
    #[serde(default)]
    ean: Option<Value>,
}

/// Integers arrive as numbers or numeric strings.
pub(crate) fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_owned),
        other => Some(other.to_string()),
    }
}

fn eans(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn to_row(raw: &str) -> Result<(u32, OfferRow), SyncError> {
    let f: OfferFields = serde_json::from_str(raw)
        .map_err(|e| SyncError::Item(format!("offer: {e}: {}", excerpt(raw))))?;
    let id = u32::try_from(f.id)
        .map_err(|_| SyncError::Item(format!("offer id {} is out of range", f.id)))?;
    let row = OfferRow {
        id: i64::from(id),
        part_number: f.part_number,
        part_number_key: f.part_number_key,
        name: f.name,
        brand: text(f.brand.as_ref()),
        status: int(f.status.as_ref()),
        sale_price: f.sale_price.map(|m| m.to_string()),
        recommended_price: f.recommended_price.map(|m| m.to_string()),
        currency: f.currency,
        vat_id: int(f.vat_id.as_ref()),
        general_stock: int(f.general_stock.as_ref()),
        estimated_stock: int(f.estimated_stock.as_ref()),
        ean: serde_json::to_string(&eans(f.ean.as_ref())).unwrap_or_else(|_| "[]".into()),
        data: raw.to_owned(),
        content_hash: content_hash(raw),
    };
    Ok((id, row))
}

pub(crate) fn excerpt(raw: &str) -> String {
    raw.chars().take(200).collect()
}

/// State of one scan across pages and passes.
struct Scan<'a> {
    ctx: &'a SyncContext,
    account: &'a Account,
    run: &'a ActiveRun,
    seen: RoaringBitmap,
    total: Option<u64>,
}

impl Scan<'_> {
    /// Reads pages from `first_page` on, writing each; `key_offset` separates a repeat
    /// pass's pages from the first pass's; only the first pass moves the checkpoint.
    async fn pass(&mut self, first_page: u32, key_offset: i64) -> Result<(), SyncError> {
        let (tx, mut rx) = mpsc::channel::<Result<Page, EmagError>>(2);
        let client = self.account.client.clone();
        let cancel = self.ctx.cancel.clone();
        let fetcher = tokio::spawn(async move {
            let mut number = first_page;
            let no_filters = Map::new();
            loop {
                let page = tokio::select! {
                    page = client.read_page("product_offer", &no_filters, number, PER_PAGE) => page,
                    () = cancel.cancelled() => return,
                };
                let last = page.as_ref().map(|p| p.last).unwrap_or(true);
                if tx.send(page).await.is_err() || last {
                    return;
                }
                number += 1;
            }
        });
        let result = async {
            while let Some(page) = rx.recv().await {
                let page = page?;
                self.write_page(&page, key_offset).await?;
                if self.ctx.cancel.is_cancelled() && !page.last {
                    return Err(SyncError::Cancelled);
                }
            }
            if self.ctx.cancel.is_cancelled() {
                return Err(SyncError::Cancelled);
            }
            Ok(())
        }
        .await;
        fetcher.abort();
        result
    }

    async fn write_page(&mut self, page: &Page, key_offset: i64) -> Result<(), SyncError> {
        let mut ids = Vec::with_capacity(page.items.len());
        let mut rows = Vec::with_capacity(page.items.len());
        for item in &page.items {
            let (id, row) = to_row(item.get())?;
            ids.push(id);
            rows.push(row);
        }
        let keys: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let stored = self
            .ctx
            .store
            .offer_hashes(self.run.account.as_str(), &keys)
            .await?;
        // An offer marked removed that shows up again is written (and counted as updated),
        // whatever its hash: its stored hash is replaced by one no content has.
        let stored: HashMap<i64, i64> = stored
            .into_iter()
            .map(|(id, s)| (id, if s.removed { -1 } else { s.content_hash }))
            .collect();
        let (changed, counts) = changed_rows(rows, &stored, |r| r.id, |r| r.content_hash);
        let key = key_offset + i64::from(page.number);
        self.ctx
            .store
            .write_offer_page(
                self.run,
                key,
                (key_offset == 0).then_some(key),
                &ids,
                &changed,
                &counts,
            )
            .await?;
        self.seen.extend(ids.iter().copied());
        self.ctx.report_progress(
            self.account.name(),
            SyncKind::Offers,
            self.seen.len(),
            self.total,
        );
        Ok(())
    }
}

pub(crate) async fn sync_offers(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
) -> Result<KindResult, SyncError> {
    let client = &account.client;
    let total = client.count("product_offer", &Map::new()).await?.items;
    ctx.store
        .set_run_total(run, i64::try_from(total).unwrap_or(i64::MAX))
        .await?;
    let mut seen = RoaringBitmap::new();
    if run.checkpoint_page > 0 {
        seen.extend(ctx.store.scanned_ids(run.id).await?);
    }
    let mut scan = Scan {
        ctx,
        account,
        run,
        seen,
        total: Some(total),
    };
    let first = u32::try_from(run.checkpoint_page + 1).unwrap_or(1);
    scan.pass(first, 0).await?;

    // Did the scan see the whole catalog? Pages shift when offers come or go meanwhile.
    let mut complete = scan.seen.len() >= client.count("product_offer", &Map::new()).await?.items;
    let mut note = None;
    if !complete {
        tracing::warn!(
            account.name = account.name(),
            seen = scan.seen.len(),
            "the catalog moved during the offer scan; scanning it once more before removals"
        );
        scan.pass(1, REPEAT_PASS_KEY).await?;
        let now_total = client.count("product_offer", &Map::new()).await?.items;
        complete = scan.seen.len() >= now_total;
        if !complete {
            note = Some(format!(
                "catalog moved during the scan ({} seen of {now_total}); removals wait for the next complete scan",
                scan.seen.len()
            ));
        }
    }

    let mut extra = RunCounts::default();
    if complete {
        extra.removed = mark_unseen_removed(ctx, run, &scan.seen).await?;
    }
    Ok(KindResult {
        extra,
        note,
        total: Some(total),
    })
}

/// Marks every live offer of the account that the complete scan did not see, walking the
/// store in id batches so memory does not grow with the catalog.
async fn mark_unseen_removed(
    ctx: &SyncContext,
    run: &ActiveRun,
    seen: &RoaringBitmap,
) -> Result<u64, SyncError> {
    let mut after = 0_i64;
    let mut removed = 0;
    loop {
        let ids = ctx
            .store
            .live_offer_ids(&run.account, after, REMOVAL_BATCH)
            .await?;
        let Some(&last) = ids.last() else { break };
        after = last;
        let gone: Vec<i64> = ids
            .into_iter()
            .filter(|id| {
                u32::try_from(*id)
                    .map(|i| !seen.contains(i))
                    .unwrap_or(true)
            })
            .collect();
        if !gone.is_empty() {
            removed += ctx.store.mark_offers_removed(run, &gone).await?;
        }
    }
    Ok(removed)
}
