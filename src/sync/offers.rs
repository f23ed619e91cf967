//! Offer sync: a full paginated scan (eMAG has no modified-since filter for offers).
//!
//! Each page is written in one transaction with the run's checkpoint and the ids it held, so
//! a killed scan resumes at its next page. A fetcher task reads the next pages while the
//! writer stores the current one; on PostgreSQL two batches are stored at once, committing
//! in page order (see [`Writes`]). An unchanged offer (same content hash) costs no write.
//! Offers not seen are considered for removal only after a scan that saw the whole catalog:
//! if the count moved while scanning (or, for a resumed scan, since its first attempt), the
//! scan is repeated once; if it still does not add up, removals wait for the next scan — a
//! partial scan never hides anything.
//!
//! Even a complete scan can miss a live offer: offset pages shift when an offer on a page
//! already read is deleted, and the next offer moves up into that page unseen (issue 9,
//! point 7). So an offer the scan did not list is marked removed only when eMAG confirms it
//! is gone — by a read of that id when few are missing (one id per request, as eMAG
//! documents), otherwise by a second complete scan in a row that misses it too. A scan that
//! saw no offer at all removes nothing, and no run removes more than a fifth of the account's
//! live offers unless a full sync (`sync --full`) confirms it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{storable_text, AttentionCause, QuarantineKind, RunCounts, SyncKind};
use emag_client::{Count, EmagError, Money, Object, Page, PageLoop};
use roaring::RoaringBitmap;
use serde::Deserialize;
use serde_json::{Map, Value};
use storage::{ActiveRun, OfferPage, OfferRow, PageWriter};
use tokio::sync::mpsc;

use super::quarantine::{join_notes, Odd, Quarantine};
use super::{
    changed_rows, content_hash, split_changed_rows, Account, KindResult, PagePlace, StageTimes,
    SyncContext, SyncError,
};

const PER_PAGE: u32 = 100;
/// Pages already read are written together, up to this many per transaction.
const PAGES_PER_WRITE: usize = 8;
/// Pages of a repeat pass are stored under these keys, apart from the first pass's.
const REPEAT_PASS_KEY: i64 = 1_000_000_000;
/// Offers a read by id put back are stored under this key, apart from every pass's pages.
const CONFIRMED_KEY: i64 = 2_000_000_000;
const REMOVAL_BATCH: i64 = 10_000;
// At most `SyncSettings::removal_confirm_max` (`EMAG_REMOVAL_CONFIRM_MAX`, 300) missing
// offers are confirmed one by one with a read by id (eMAG's id filter takes one id; 300 reads
// are 100 s of the 3-per-second budget). With more, an offer must be missed by
// [`MISSES_TO_REMOVE`] complete scans in a row instead. One run marks at most
// `SyncSettings::max_removed_share_percent` (`EMAG_MAX_REMOVED_SHARE`, 20 %) of the account's
// live offers removed unless a full sync confirms it; a refusal raises attention.
/// Consecutive complete scans that must miss an offer when there are too many to read by id.
const MISSES_TO_REMOVE: i64 = 2;

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
    let text = match v? {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        Value::Object(o) => o.get("name").and_then(Value::as_str)?.to_owned(),
        other => other.to_string(),
    };
    Some(storable_text(text))
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

/// The row of offer `raw`, whose content hash is `hash` (see [`content_hash`]).
pub(crate) fn to_row(raw: &str, hash: i64) -> Result<(u32, OfferRow), Odd> {
    let Object(f): Object<OfferFields> =
        serde_json::from_str(raw).map_err(|e| Odd::shape(raw, "offer", &e))?;
    let id = u32::try_from(f.id)
        .map_err(|_| Odd::new(&f.id, format!("offer id {} is out of range", f.id)))?;
    let row = OfferRow {
        id: i64::from(id),
        part_number: f.part_number.map(storable_text),
        part_number_key: f.part_number_key.map(storable_text),
        name: f.name.map(storable_text),
        brand: text(f.brand.as_ref()),
        status: int(f.status.as_ref()),
        sale_price: f.sale_price.map(|m| m.to_string()),
        recommended_price: f.recommended_price.map(|m| m.to_string()),
        currency: f.currency.map(storable_text),
        vat_id: int(f.vat_id.as_ref()),
        general_stock: int(f.general_stock.as_ref()),
        estimated_stock: int(f.estimated_stock.as_ref()),
        ean: serde_json::to_string(&eans(f.ean.as_ref())).unwrap_or_else(|_| "[]".into()),
        data: raw.to_owned(),
        content_hash: hash,
    };
    Ok((id, row))
}

/// A page decoded off the writer's path: the rows (with their content hashes) and ids it
/// listed, and the items that could not be read.
struct Decoded {
    number: u32,
    last: bool,
    ids: Vec<u32>,
    rows: Vec<OfferRow>,
    /// Odd items, raw, with why.
    odd: Vec<(String, Odd)>,
    /// Hashes of odd items whose id fits no offer id (counted as seen).
    odd_without_id: Vec<i64>,
    decode: Duration,
    hash: Duration,
    /// The page's place among the process's pages in flight, until its batch is stored.
    place: PagePlace,
}

impl Decoded {
    /// What identifies each item of the page, for [`PageLoop::accept_keyed`]: its offer id,
    /// or (with the top bit set, apart from any id) the hash of an item without one.
    fn keys(&self) -> Vec<u64> {
        let ids = self.ids.iter().map(|&id| u64::from(id));
        let odd = self.odd_without_id.iter().map(|&h| h as u64 | 1 << 63);
        ids.chain(odd).collect()
    }
}

fn decode(page: &Page, place: PagePlace) -> Decoded {
    let mut out = Decoded {
        number: page.number,
        last: page.last,
        ids: Vec::with_capacity(page.items.len()),
        rows: Vec::with_capacity(page.items.len()),
        odd: Vec::new(),
        odd_without_id: Vec::new(),
        decode: Duration::ZERO,
        hash: Duration::ZERO,
        place,
    };
    for item in &page.items {
        let hashing = Instant::now();
        let hash = content_hash(item.get());
        StageTimes::add(&mut out.hash, hashing);
        let decoding = Instant::now();
        let decoded = to_row(item.get(), hash);
        StageTimes::add(&mut out.decode, decoding);
        match decoded {
            Ok((id, row)) => {
                out.ids.push(id);
                out.rows.push(row);
            }
            Err(odd) => {
                // An odd offer whose id is a valid one is still listed: it must not become a
                // removal candidate.
                match odd.item_id.as_deref().and_then(|i| i.parse::<u32>().ok()) {
                    Some(id) => out.ids.push(id),
                    None => out.odd_without_id.push(hash),
                }
                out.odd.push((item.get().to_owned(), odd));
            }
        }
    }
    out
}

/// State of one scan across pages and passes.
struct Scan<'a> {
    ctx: &'a SyncContext,
    account: &'a Account,
    run: &'a ActiveRun,
    seen: RoaringBitmap,
    total: Option<u64>,
    quarantine: Quarantine,
    /// Distinct odd items (by content) whose id fits no offer id: counted as seen.
    odd_without_id: std::collections::HashSet<i64>,
    /// Where the time went.
    stages: StageTimes,
    /// The account had no offer stored when this (not resumed) scan began: an offer is
    /// stored only if this run listed it before, so only those are looked up.
    first_sync: bool,
    /// Some offer of the account carried a missed-scan mark when the scan began.
    marks_to_clear: bool,
}

impl Scan<'_> {
    /// Offers the scan has accounted for: listed, or odd ones it quarantined.
    fn accounted(&self) -> u64 {
        self.seen.len() + self.odd_without_id.len() as u64
    }
}

impl Scan<'_> {
    /// Reads pages from `first_page` on, writing each; `key_offset` separates a repeat
    /// pass's pages from the first pass's; only the first pass moves the checkpoint. The
    /// pages asked for are bounded by `count` and checked by a [`PageLoop`]: a scan ends with
    /// a protocol error rather than read the same page forever.
    async fn pass(
        &mut self,
        first_page: u32,
        key_offset: i64,
        count: Count,
    ) -> Result<(), SyncError> {
        let (tx, mut rx) = mpsc::channel::<Result<Decoded, EmagError>>(PAGES_PER_WRITE);
        let client = self.account.client.clone();
        let cancel = self.ctx.cancel.clone();
        let budget = self.ctx.pages.clone();
        let mut pages = PageLoop::new("product_offer", first_page, PER_PAGE, Some(count));
        let fetch_us = Arc::new(AtomicU64::new(0));
        let fetched = Arc::clone(&fetch_us);
        let fetcher = tokio::spawn(async move {
            let no_filters = Map::new();
            while let Some(number) = pages.next_page() {
                let asked = Instant::now();
                let page = tokio::select! {
                    page = client.read_page("product_offer", &no_filters, number, PER_PAGE) => page,
                    () = cancel.cancelled() => return,
                };
                let us = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
                fetched.fetch_add(us, Ordering::Relaxed);
                // A place among the process's pages in flight before the page grows into
                // rows: when the writer cannot keep up, the reader waits here and reads no
                // further (see `PageBudget`).
                let place = tokio::select! {
                    place = budget.take() => place,
                    () = cancel.cancelled() => return,
                };
                // Decoded here, beside the writer: the two cores share the work. The loop
                // checks the page by the ids the decoding read.
                let page = page.and_then(|mut p| {
                    let mut decoded = decode(&p, place);
                    pages.accept_keyed(&mut p, decoded.keys())?;
                    decoded.last = p.last;
                    Ok(decoded)
                });
                let last = page.as_ref().map(|p| p.last).unwrap_or(true);
                if tx.send(page).await.is_err() || last {
                    return;
                }
            }
        });
        let mut writes = Writes::default();
        let result = async {
            // What ends the scan before its last page: a failed read, or a cancel.
            let ended: Option<SyncError> = loop {
                let waited = Instant::now();
                let Some(page) = rx.recv().await else {
                    break None;
                };
                StageTimes::add(&mut self.stages.wait, waited);
                // Pages already read go into the same transaction (up to PAGES_PER_WRITE);
                // a failed read after them is reported once they are stored.
                let page = match page {
                    Ok(page) => page,
                    Err(e) => break Some(e.into()),
                };
                let mut batch = vec![page];
                let mut failed = None;
                while batch.len() < PAGES_PER_WRITE && !batch.last().is_some_and(|p| p.last) {
                    match rx.try_recv() {
                        Ok(Ok(p)) => batch.push(p),
                        Ok(Err(e)) => {
                            failed = Some(e);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let last = batch.last().is_some_and(|p| p.last);
                self.write_pages(&mut writes, batch, key_offset).await?;
                if let Some(e) = failed {
                    break Some(e.into());
                }
                if self.ctx.cancel.is_cancelled() && !last {
                    break Some(SyncError::Cancelled);
                }
            };
            // However the scan ended, the batches under way are stored before it is reported.
            self.settle(&mut writes, 0).await?;
            match ended {
                Some(e) => Err(e),
                None if self.ctx.cancel.is_cancelled() => Err(SyncError::Cancelled),
                None => Ok(()),
            }
        }
        .await;
        // The reader is gone when the pass returns: no request of this run after it, and the
        // page it held (and that page's place among the pages in flight) dropped. A panic
        // in it is this scan's, not a short catalog.
        fetcher.abort();
        if let Err(e) = fetcher.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        self.stages.fetch += Duration::from_micros(fetch_us.load(Ordering::Relaxed));
        result
    }

    /// Starts storing `pages` (in order) in one transaction with the checkpoint of the last,
    /// beside the batches still under way (see [`Writes`]).
    async fn write_pages(
        &mut self,
        writes: &mut Writes,
        pages: Vec<Decoded>,
        key_offset: i64,
    ) -> Result<(), SyncError> {
        let mut ids = RoaringBitmap::new();
        for page in &pages {
            ids.extend(page.ids.iter().copied());
        }
        // No more batches under way than the store gains from, and an offer in one batch
        // under way at a time: two transactions writing one row would wait for each other
        // (one for the row, the other for the commit before it). The look-ups below then
        // also see every earlier write of the offers they look up.
        let writers = self.ctx.store.offer_page_writers();
        while !writes.under_way.is_empty()
            && (writes.under_way.len() >= writers
                || writes.under_way.iter().any(|w| !w.ids.is_disjoint(&ids)))
        {
            let left = writes.under_way.len() - 1;
            self.settle(writes, left).await?;
        }
        let keys: usize = pages.iter().map(|p| p.rows.len()).sum();
        let mut listed = Vec::with_capacity(pages.len());
        let mut places = Vec::with_capacity(pages.len());
        for page in pages {
            let Decoded {
                number,
                ids,
                rows,
                odd,
                odd_without_id,
                decode,
                hash,
                place,
                ..
            } = page;
            places.push(place);
            self.stages.decode += decode;
            self.stages.hash += hash;
            self.odd_without_id.extend(odd_without_id);
            for (raw, why) in odd {
                self.quarantine.add(self.account.name(), &raw, why);
            }
            listed.push((number, ids, rows));
        }
        self.quarantine.flush(self.ctx, self.run).await?;
        // One lookup per page: one statement shape (100 ids), prepared once. A batch-sized
        // IN list has a shape per batch size, each planned anew (PostgreSQL: 0.8 → 7 s per
        // 100,000 offers).
        let looking = Instant::now();
        let mut stored: HashMap<i64, i64> = HashMap::with_capacity(keys);
        for page in listed.iter().map(|(_, _, rows)| rows) {
            let ids: Vec<i64> = page
                .iter()
                .map(|r| r.id)
                .filter(|&id| {
                    !self.first_sync || u32::try_from(id).is_ok_and(|id| self.seen.contains(id))
                })
                .collect();
            if ids.is_empty() {
                continue;
            }
            let found = self
                .ctx
                .store
                .offer_hashes(self.run.account.as_str(), &ids)
                .await?;
            // An offer marked removed that shows up again is written (and counted as
            // updated), whatever its hash: its stored hash is replaced by one no content has.
            stored.extend(
                found
                    .into_iter()
                    .map(|(id, s)| (id, if s.removed { -1 } else { s.content_hash })),
            );
        }
        StageTimes::add(&mut self.stages.lookup, looking);
        let mut batch = Vec::with_capacity(listed.len());
        for (number, ids, rows) in listed {
            let (created, updated, counts) =
                split_changed_rows(rows, &stored, |r| r.id, |r| r.content_hash);
            let key = key_offset + i64::from(number);
            batch.push(PageWrite {
                key,
                checkpoint: (key_offset == 0).then_some(key),
                ids,
                created,
                updated,
                counts,
            });
        }
        // Taken here, in page order: see `Store::page_writer`.
        let writer = self.ctx.store.page_writer().await?;
        let batch = Batch {
            pages: batch,
            ids,
            places,
        };
        writes.start(self.ctx, self.run, writer, batch, self.marks_to_clear);
        Ok(())
    }

    /// Waits until at most `left` batches are under way, oldest first, adding each stored
    /// batch's ids to those the scan has seen.
    async fn settle(&mut self, writes: &mut Writes, left: usize) -> Result<(), SyncError> {
        while writes.under_way.len() > left {
            let writing = Instant::now();
            let stored = writes.finish_oldest().await;
            StageTimes::add(&mut self.stages.write, writing);
            self.seen |= stored?;
            self.ctx.report_progress(
                self.account.name(),
                SyncKind::Offers,
                self.seen.len(),
                self.total,
            );
        }
        Ok(())
    }
}

/// A page to store, owned by the task that writes it.
struct PageWrite {
    key: i64,
    checkpoint: Option<i64>,
    ids: Vec<u32>,
    created: Vec<OfferRow>,
    updated: Vec<OfferRow>,
    counts: RunCounts,
}

/// Pages to store in one transaction: what each writes, all their ids, their places among
/// the process's pages in flight.
struct Batch {
    pages: Vec<PageWrite>,
    ids: RoaringBitmap,
    places: Vec<PagePlace>,
}

/// One batch being stored by a task of its own.
struct Writing {
    task: tokio::task::JoinHandle<Result<(), storage::StorageError>>,
    /// The offers its pages listed.
    ids: RoaringBitmap,
}

/// The batches of a scan being stored, oldest first. Each commits only after the one
/// before it (a chain of signals), so a checkpoint never passes a page that is not stored;
/// on PostgreSQL the next batch's offers are copied meanwhile on another connection. A
/// scan that ends early (an error) drops this, and the batches still under way are
/// stopped: those not committed roll back.
#[derive(Default)]
struct Writes {
    under_way: std::collections::VecDeque<Writing>,
    /// Says when the newest batch is committed (dropped unsent when it fails).
    newest_committed: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Writes {
    fn start(
        &mut self,
        ctx: &SyncContext,
        run: &ActiveRun,
        writer: PageWriter,
        batch: Batch,
        reset_missed: bool,
    ) {
        let Batch { pages, ids, places } = batch;
        let (committed, signal) = tokio::sync::oneshot::channel();
        let earlier = self.newest_committed.replace(signal);
        let store = ctx.store.clone();
        let run = run.clone();
        let task = tokio::spawn(async move {
            // The pages' places come back when this task ends: stored, failed or aborted.
            let _places = places;
            let writes: Vec<OfferPage<'_>> = pages
                .iter()
                .map(|p| OfferPage {
                    key: p.key,
                    checkpoint: p.checkpoint,
                    seen_ids: &p.ids,
                    created: &p.created,
                    updated: &p.updated,
                    counts: p.counts,
                    reset_missed,
                })
                .collect();
            let earlier = async move {
                match earlier {
                    Some(signal) => signal.await.is_ok(),
                    None => true,
                }
            };
            store
                .write_offer_pages_after(writer, &run, &writes, earlier)
                .await?;
            let _ = committed.send(());
            Ok(())
        });
        self.under_way.push_back(Writing { task, ids });
    }

    /// Waits for the oldest batch; its ids once stored.
    async fn finish_oldest(&mut self) -> Result<RoaringBitmap, SyncError> {
        let Some(Writing { task, ids }) = self.under_way.pop_front() else {
            return Ok(RoaringBitmap::new());
        };
        match task.await {
            Ok(stored) => stored.map(|()| ids).map_err(SyncError::from),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(SyncError::Cancelled),
        }
    }
}

impl Drop for Writes {
    fn drop(&mut self) {
        for writing in &self.under_way {
            writing.task.abort();
        }
    }
}

pub(crate) async fn sync_offers(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
) -> Result<KindResult, SyncError> {
    let client = &account.client;
    // A resumed scan read its first pages under the count of an earlier attempt.
    let earlier_total = if run.checkpoint_page > 0 {
        ctx.store
            .get_run(run.id)
            .await?
            .and_then(|r| r.total_items)
            .and_then(|t| u64::try_from(t).ok())
    } else {
        None
    };
    let count = client.count("product_offer", &Map::new()).await?;
    let total = count.items;
    ctx.store
        .set_run_total(run, i64::try_from(total).unwrap_or(i64::MAX))
        .await?;
    let mut seen = RoaringBitmap::new();
    if run.checkpoint_page > 0 {
        seen.extend(ctx.store.scanned_ids(run.id).await?);
    }
    let first_sync = run.checkpoint_page == 0 && !ctx.store.has_offers(&run.account).await?;
    let marks_to_clear = ctx.store.offers_marked_missed(&run.account).await?;
    let mut scan = Scan {
        ctx,
        account,
        run,
        seen,
        total: Some(total),
        quarantine: Quarantine::new(QuarantineKind::Offer),
        odd_without_id: std::collections::HashSet::new(),
        stages: StageTimes::default(),
        first_sync,
        marks_to_clear,
    };
    let first = u32::try_from(run.checkpoint_page + 1).unwrap_or(1);
    scan.pass(first, 0, count).await?;

    // Did the scan see the whole catalog? Pages are offsets: when offers come or go while
    // they are read, the others shift across page boundaries, and an offer that moves up into
    // a page already read is never listed. Counts that add up prove nothing then — the
    // deleted offer was listed in its place — and an offer the store does not hold yet (new
    // since the last scan, or a first scan) cannot be found by the reads by id that settle
    // missing ones: so when the count moved during this run's scan, it is scanned once more.
    let recount = client.count("product_offer", &Map::new()).await?;
    let moved = recount.items != total || earlier_total.is_some_and(|t| t != recount.items);
    let mut complete = !moved && scan.accounted() >= recount.items;
    let mut note = None;
    if !complete {
        tracing::warn!(
            account.name = account.name(),
            seen = scan.seen.len(),
            "the catalog moved during the offer scan; scanning it once more before removals"
        );
        scan.pass(1, REPEAT_PASS_KEY, recount).await?;
        let now_total = client.count("product_offer", &Map::new()).await?.items;
        complete = scan.accounted() >= now_total;
        if !complete {
            note = Some(format!(
                "catalog moved during the scan ({} seen of {now_total}); removals wait for the next complete scan",
                scan.seen.len()
            ));
        }
    }

    let mut extra = RunCounts::default();
    let mut attention = None;
    let mut clears = None;
    if complete {
        let settled = if scan.first_sync {
            // Nothing was stored when this scan began and only this run writes the account's
            // offers (it holds the lease): every stored offer is one the scan listed. Walking
            // them would read back the whole catalog just written (PostgreSQL: 1.3 s per
            // 100,000 offers).
            Settled::NoneMissing
        } else {
            settle_missing(ctx, account, run, &mut scan.quarantine, &scan.seen).await?
        };
        extra.removed = settled.removed();
        let share = ctx.settings.max_removed_share_percent;
        note = settled.note(account.name(), share);
        if let Settled::Refused { .. } = settled {
            attention = note.clone().map(|n| (AttentionCause::Removals, n));
        } else {
            clears = Some(AttentionCause::Removals);
        }
    }
    scan.quarantine.flush(ctx, run).await?;
    Ok(KindResult {
        extra,
        note: join_notes([note, scan.quarantine.note()]),
        total: Some(total),
        quarantined: scan.quarantine.count(),
        attention,
        clears,
        stages: Some(scan.stages.to_stages()),
        ..KindResult::default()
    })
}

/// What became of the stored offers a complete scan did not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Every live stored offer was listed.
    NoneMissing,
    /// eMAG listed no offer at all: an empty answer is no evidence that `live` offers went.
    EmptyScan { live: u64 },
    /// `removed` offers marked removed; `kept` of the missing ones were found by id (they
    /// moved up a page while the scan read) and stored; `waiting` were missed once and wait
    /// for a second complete scan.
    Done {
        removed: u64,
        kept: u64,
        waiting: u64,
    },
    /// `gone` offers would go, more than the share one run may remove of `live`: none was.
    Refused { gone: u64, live: u64, kept: u64 },
    /// The read of offer `asked` by id was answered with `answered` offers, not that one
    /// alone (eMAG did not apply the filter): the `missing` offers could not be confirmed
    /// and none was removed.
    Unconfirmed {
        missing: u64,
        asked: i64,
        answered: usize,
    },
}

impl Settled {
    fn removed(self) -> u64 {
        match self {
            Settled::Done { removed, .. } => removed,
            _ => 0,
        }
    }

    fn note(self, account: &str, share: u64) -> Option<String> {
        match self {
            Settled::NoneMissing | Settled::Done { kept: 0, waiting: 0, .. } => None,
            Settled::EmptyScan { live } => Some(format!(
                "eMAG listed no offer; the {live} stored offers are kept (a scan that sees no offer never removes any)"
            )),
            Settled::Done { kept, waiting, .. } => {
                let mut parts = Vec::new();
                if kept > 0 {
                    parts.push(format!(
                        "{kept} offers the scan missed (the catalog moved while it read) were read by id and kept"
                    ));
                }
                if waiting > 0 {
                    parts.push(format!(
                        "{waiting} offers were not listed; they are marked removed when the next complete scan misses them too"
                    ));
                }
                Some(parts.join("; "))
            }
            Settled::Refused { gone, live, kept } => {
                let found = if kept > 0 {
                    format!(" ({kept} more the scan missed were read by id and kept)")
                } else {
                    String::new()
                };
                Some(format!(
                    "{gone} of {live} live offers ({}%) are gone from eMAG{found}, more than {share}% in one run \
                     (EMAG_MAX_REMOVED_SHARE), so none was marked removed; to confirm, run \
                     `emag-sync sync {account} --kind offers --full`",
                    gone * 100 / live.max(1)
                ))
            }
            Settled::Unconfirmed { missing, asked, answered } => Some(format!(
                "{missing} offers were not listed, but the read of offer {asked} by id was answered with {answered} offers, \
                 not that one alone (the id filter was not applied), so none was confirmed gone or marked removed"
            )),
        }
    }
}

/// Decides the fate of the live stored offers the complete scan did not list (`seen` holds
/// every id it listed). Walks the store in id batches, so memory does not grow with the
/// catalog: at most `EMAG_REMOVAL_CONFIRM_MAX` ids are held.
async fn settle_missing(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
    quarantine: &mut Quarantine,
    seen: &RoaringBitmap,
) -> Result<Settled, SyncError> {
    let confirm_max = ctx.settings.removal_confirm_max;
    let share = ctx.settings.max_removed_share_percent;
    let (live, _) = ctx.store.count_offers(&run.account).await?;
    let live = u64::try_from(live).unwrap_or(0);
    if seen.is_empty() {
        if live > 0 {
            tracing::warn!(
                account.name = account.name(),
                offers.live = live,
                "eMAG listed no offer; nothing is marked removed on an empty answer"
            );
            return Ok(Settled::EmptyScan { live });
        }
        return Ok(Settled::NoneMissing);
    }

    // Every complete scan that misses an offer is counted on it, so the second one in a row
    // is known whichever way this run confirms.
    let mut missing = 0_u64;
    let mut few = Vec::new();
    let mut after = 0_i64;
    loop {
        let ids = ctx
            .store
            .live_offer_ids(&run.account, after, REMOVAL_BATCH)
            .await?;
        let Some(&last) = ids.last() else { break };
        after = last;
        let unseen: Vec<i64> = ids
            .into_iter()
            .filter(|id| u32::try_from(*id).map_or(true, |i| !seen.contains(i)))
            .collect();
        if unseen.is_empty() {
            continue;
        }
        ctx.store.record_offer_misses(run, &unseen).await?;
        missing += unseen.len() as u64;
        if missing <= confirm_max {
            few.extend(unseen);
        } else {
            few = Vec::new();
        }
    }
    if missing == 0 {
        return Ok(Settled::NoneMissing);
    }

    let (gone, kept, waiting) = if missing <= confirm_max {
        match confirm_by_id(ctx, account, run, quarantine, &few).await? {
            Confirmed::Checked { gone, kept } => (Removal::Ids(gone), kept, 0),
            Confirmed::FilterIgnored { asked, answered } => {
                tracing::warn!(
                    account.name = account.name(),
                    offers.missing = missing,
                    offer.id = asked,
                    answered,
                    "a read of one offer by id was answered with other offers; nothing is marked removed"
                );
                return Ok(Settled::Unconfirmed {
                    missing,
                    asked,
                    answered,
                });
            }
        }
    } else {
        let twice = ctx.store.count_missed_offers(run, MISSES_TO_REMOVE).await?;
        (Removal::MissedTwice(twice), 0, missing - twice)
    };

    let count = gone.count();
    if count * 100 > live * share && !run.full_scan {
        tracing::warn!(
            account.name = account.name(),
            offers.gone = count,
            offers.live = live,
            "more than {share}% of the account's offers are gone from eMAG; \
             none is marked removed until a full sync confirms it"
        );
        return Ok(Settled::Refused {
            gone: count,
            live,
            kept,
        });
    }
    let removed = match gone {
        Removal::Ids(ids) if ids.is_empty() => 0,
        Removal::Ids(ids) => ctx.store.mark_offers_removed(run, &ids).await?,
        Removal::MissedTwice(0) => 0,
        Removal::MissedTwice(_) => {
            ctx.store
                .mark_missed_offers_removed(run, MISSES_TO_REMOVE)
                .await?
        }
    };
    Ok(Settled::Done {
        removed,
        kept,
        waiting,
    })
}

/// The offers to mark removed.
enum Removal {
    /// Confirmed gone one by one.
    Ids(Vec<i64>),
    /// This many, missed by [`MISSES_TO_REMOVE`] complete scans in a row (found in the store).
    MissedTwice(u64),
}

impl Removal {
    fn count(&self) -> u64 {
        match self {
            Removal::Ids(ids) => ids.len() as u64,
            Removal::MissedTwice(n) => *n,
        }
    }
}

/// What the reads by id said.
enum Confirmed {
    /// `gone`: eMAG has no such offer; `kept`: found (and stored).
    Checked { gone: Vec<i64>, kept: u64 },
    /// eMAG answered the read of `asked` with other or more offers: its filter was not
    /// applied.
    FilterIgnored { asked: i64, answered: usize },
}

/// Reads each missing offer by id (`product_offer/read` with `id`, one per request as eMAG
/// documents). An offer found is stored like a scanned one: it moved up a page while the
/// scan read and was missed, and it is alive.
async fn confirm_by_id(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
    quarantine: &mut Quarantine,
    ids: &[i64],
) -> Result<Confirmed, SyncError> {
    let mut gone = Vec::new();
    let mut found = Vec::new();
    // Found by id but unreadable: it exists, so it is kept (and quarantined), not removed.
    let mut odd_kept = 0_u64;
    for &id in ids {
        if ctx.cancel.is_cancelled() {
            return Err(SyncError::Cancelled);
        }
        let mut filter = Map::new();
        filter.insert("id".into(), id.into());
        let page = account
            .client
            .read_page("product_offer", &filter, 1, 1)
            .await?;
        match page.items.as_slice() {
            [] => gone.push(id),
            [item] => {
                let (got, row) = match to_row(item.get(), content_hash(item.get())) {
                    Ok(decoded) => decoded,
                    Err(odd) if odd.item_id.as_deref() == Some(id.to_string().as_str()) => {
                        quarantine.add(account.name(), item.get(), odd);
                        odd_kept += 1;
                        continue;
                    }
                    Err(odd) => {
                        quarantine.add(account.name(), item.get(), odd);
                        return Ok(Confirmed::FilterIgnored {
                            asked: id,
                            answered: 1,
                        });
                    }
                };
                if i64::from(got) != id {
                    return Ok(Confirmed::FilterIgnored {
                        asked: id,
                        answered: 1,
                    });
                }
                found.push((got, row));
            }
            more => {
                return Ok(Confirmed::FilterIgnored {
                    asked: id,
                    answered: more.len(),
                })
            }
        }
    }
    let kept = found.len() as u64 + odd_kept;
    if !found.is_empty() {
        tracing::info!(
            account.name = account.name(),
            offers.kept = kept,
            "offers the scan missed while the catalog moved were found by id and kept"
        );
        let (ids, rows): (Vec<u32>, Vec<OfferRow>) = found.into_iter().unzip();
        let keys: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let stored = ctx.store.offer_hashes(&run.account, &keys).await?;
        let stored: HashMap<i64, i64> = stored
            .into_iter()
            .map(|(id, s)| (id, if s.removed { -1 } else { s.content_hash }))
            .collect();
        let (changed, mut counts) = changed_rows(rows, &stored, |r| r.id, |r| r.content_hash);
        counts.pages = 0;
        ctx.store
            .write_offer_page(run, CONFIRMED_KEY, None, &ids, &changed, &counts)
            .await?;
    }
    Ok(Confirmed::Checked { gone, kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_that_is_a_list_is_odd_and_names_and_prices_are_kept_as_sent() {
        // Found by the fuzzer (issue 11): `[9]` read as offer 9 (serde takes a list as the
        // struct's fields in order); a NUL in a name failed the write on PostgreSQL only; a
        // price of more than 15 digits came back rounded through f64.
        for raw in ["[9]", r#"[4294967295, "PN-1"]"#] {
            let odd = to_row(raw, 0).expect_err(raw);
            assert!(odd.reason.contains("expected an object"), "{}", odd.reason);
            assert_eq!(odd.item_id, None);
        }
        let raw = r#"{"id": 7, "name": "Cana\u0000 mare", "part_number": "\u0000",
            "brand": {"name": "Ursus\u0000"}, "sale_price": 12345678901234567.89}"#;
        let (id, row) = to_row(raw, 0).expect("a row");
        assert_eq!(id, 7);
        assert_eq!(row.name.as_deref(), Some("Cana\u{fffd} mare"));
        assert_eq!(row.part_number.as_deref(), Some("\u{fffd}"));
        assert_eq!(row.brand.as_deref(), Some("Ursus\u{fffd}"));
        assert_eq!(row.sale_price.as_deref(), Some("12345678901234567.89"));
    }
}
