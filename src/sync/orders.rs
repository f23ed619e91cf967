//! Order sync: incremental by `modifiedAfter`, for seller-fulfilled (type 3) and FBE
//! (type 2) orders alike — eMAG returns type 2 only when asked, and one account may hold both.
//!
//! The cursor of each type is the latest `modified` read or stored after a complete run; the
//! next run reads from cursor − overlap (eMAG changes orders after the fact) in windows of at
//! most `EMAG_ORDERS_WINDOW_DAYS` (eMAG's "one month" is not defined, so we stay well inside
//! it). A window whose first page is full is sized with `order/count` for the same filters,
//! and its pages must add up to that count — a page that came short mid-window is noticed and
//! the window read again. The first run backfills a configurable number of days.
//!
//! The cursor only moves when every window was read, so a failed or killed run re-reads
//! rather than skips; it never moves to a `modified` later than eMAG's clock (such an outlier
//! would make every later run start in the future); and a read that finds no order with a
//! `modified` (no order of that type, or answers without the field) still moves it to the
//! read's start, so an account without FBE orders does not backfill on every run.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use domain::{storable_text, OrderType, QuarantineKind, SyncKind};
use emag_client::{Money, Object};
use serde::Deserialize;
use serde_json::{Map, Value};
use storage::{ActiveRun, OrderLineRow, OrderRow};

use super::offers::int;
use super::quarantine::{Odd, Quarantine};
use super::{content_hash, split_changed_rows, Account, KindResult, SyncContext, SyncError};

const PER_PAGE: u32 = 100;
pub(crate) const EMAG_TIME: &str = "%Y-%m-%d %H:%M:%S";
/// A window whose pages do not add up to its count is read this many times at most.
const WINDOW_ATTEMPTS: u32 = 2;

#[derive(Deserialize)]
struct OrderFields {
    id: u64,
    #[serde(default, rename = "type")]
    order_type: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default)]
    payment_mode_id: Option<Value>,
    #[serde(default)]
    customer: Option<Object<CustomerFields>>,
    #[serde(default)]
    products: Option<Vec<Object<LineFields>>>,
}

#[derive(Deserialize)]
struct CustomerFields {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct LineFields {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    product_id: Option<Value>,
    #[serde(default)]
    part_number: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    quantity: Option<Value>,
    #[serde(default)]
    sale_price: Option<Money>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    vat: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
}

pub(crate) fn to_row(raw: &str, asked: OrderType) -> Result<OrderRow, Odd> {
    let Object(f): Object<OrderFields> =
        serde_json::from_str(raw).map_err(|e| Odd::shape(raw, "order", &e))?;
    let id = i64::try_from(f.id)
        .map_err(|_| Odd::new(&f.id, format!("order id {} is out of range", f.id)))?;
    let mut line_ids = HashSet::new();
    let lines = f
        .products
        .unwrap_or_default()
        .into_iter()
        .map(|Object(l)| {
            let line_id = int(Some(&l.id))
                .ok_or_else(|| Odd::new(&f.id, "an order line has no readable id"))?;
            if !line_ids.insert(line_id) {
                return Err(Odd::new(
                    &f.id,
                    format!("order line id {line_id} appears twice in the order"),
                ));
            }
            Ok(OrderLineRow {
                line_id,
                product_id: int(l.product_id.as_ref()),
                part_number: l.part_number.map(storable_text),
                name: l.name.map(storable_text),
                quantity: int(l.quantity.as_ref()),
                sale_price: l.sale_price.map(|m| m.to_string()),
                currency: l.currency.map(storable_text),
                vat: match l.vat {
                    Some(Value::String(s)) => Some(storable_text(s)),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                },
                status: int(l.status.as_ref()),
            })
        })
        .collect::<Result<Vec<_>, Odd>>()?;
    Ok(OrderRow {
        id,
        order_type: int(f.order_type.as_ref()).unwrap_or(asked.code()),
        status: int(f.status.as_ref()),
        date: f.date.map(storable_text),
        modified: f.modified.map(storable_text),
        payment_mode_id: int(f.payment_mode_id.as_ref()),
        customer_id: f.customer.as_ref().and_then(|c| int(c.0.id.as_ref())),
        customer_name: f.customer.and_then(|c| c.0.name).map(storable_text),
        data: raw.to_owned(),
        content_hash: content_hash(raw),
        lines,
    })
}

/// eMAG's clock: Romanian local time, which the API's datetimes are written in.
pub(crate) fn emag_now() -> NaiveDateTime {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Bucharest)
        .naive_local()
}

/// Consecutive `[from, from + len)` windows from `start` until one reaches past `now`. Every
/// window is closed (`order/count` needs both bounds); the last one ends after `now`, so
/// orders modified while we read, or stamped a little ahead by eMAG's clock, are in it.
pub(crate) fn windows(
    start: NaiveDateTime,
    now: NaiveDateTime,
    len: chrono::Duration,
) -> Vec<(NaiveDateTime, NaiveDateTime)> {
    let len = len.max(chrono::Duration::hours(1));
    let mut out = Vec::new();
    let mut from = start;
    loop {
        let to = from + len;
        out.push((from, to));
        if to > now {
            return out;
        }
        from = to;
    }
}

/// Where an incremental read starts: the stored cursor (unless `full`) minus the overlap, or
/// the backfill period before `now`. Returns the cursor too, which only ever moves forward.
pub(crate) async fn read_start(
    ctx: &SyncContext,
    account: &Account,
    cursor_key: &str,
    full: bool,
    now: NaiveDateTime,
) -> Result<(Option<NaiveDateTime>, NaiveDateTime), SyncError> {
    let stored = if full {
        None
    } else {
        ctx.store
            .get_state(account.name(), cursor_key)
            .await?
            .and_then(|c| NaiveDateTime::parse_from_str(&c, EMAG_TIME).ok())
    };
    // A cursor in the future (written before cursors were checked against eMAG's clock)
    // would start every read after the orders still to come: start over instead.
    let cursor = match stored {
        Some(c) if c > now => {
            tracing::warn!(
                account.name = account.name(), cursor.key = cursor_key, cursor = %c,
                "the stored cursor is later than eMAG's clock; reading the backfill period again"
            );
            None
        }
        other => other,
    };
    let overlap = chrono::Duration::from_std(ctx.settings.orders_overlap)
        .unwrap_or_else(|_| chrono::Duration::hours(24));
    let backfill = chrono::Duration::days(i64::from(ctx.settings.orders_backfill_days));
    let start = match cursor {
        Some(c) => c - overlap,
        None => now - backfill,
    };
    Ok((cursor, start))
}

fn cursor_key(t: OrderType) -> String {
    format!("orders.cursor.type{}", t.code())
}

pub(crate) async fn sync_orders(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
    full: bool,
) -> Result<KindResult, SyncError> {
    let now = emag_now();
    let len = chrono::Duration::days(i64::from(ctx.settings.orders_window_days.max(1)));
    let mut read = Progress::default();
    let mut quarantine = Quarantine::new(QuarantineKind::Order);
    let mut outliers = 0_u64;
    for order_type in OrderType::ALL {
        let key = cursor_key(order_type);
        let (cursor, start) = read_start(ctx, account, &key, full, now).await?;
        let mut found = Found::default();
        for (from, to) in windows(start, now, len) {
            let window = Window {
                order_type,
                from,
                to,
            };
            read_window(
                ctx,
                account,
                run,
                &window,
                &mut read,
                &mut found,
                &mut quarantine,
            )
            .await?;
        }
        // Every window of this type was read: the cursor may move, never backwards and never
        // past eMAG's clock (read again now: the reads took time).
        let limit = emag_now().format(EMAG_TIME).to_string();
        let newest = found.newest.filter(|m| {
            let ahead = m.as_str() > limit.as_str();
            if ahead {
                outliers += 1;
                tracing::warn!(
                    account.name = account.name(),
                    order.r#type = order_type.code(),
                    order.modified = m.as_str(),
                    emag.now = limit.as_str(),
                    "an order is modified later than eMAG's clock; the order cursor ignores it"
                );
            }
            !ahead
        });
        let stored = ctx
            .store
            .latest_order_modified(account.name(), order_type.code(), &limit)
            .await?;
        // Nothing with a `modified` to go by: everything up to the read's start was seen.
        let start_of_read = (!found.any_modified).then(|| now.format(EMAG_TIME).to_string());
        let best = [
            cursor.map(|c| c.format(EMAG_TIME).to_string()),
            newest,
            stored,
            start_of_read,
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(best) = best {
            ctx.store.set_run_cursor(run, &key, &best).await?;
        }
    }
    quarantine.flush(ctx, run).await?;
    let outlier_note = (outliers > 0).then(|| {
        format!("{outliers} order(s) are modified later than eMAG's clock; the cursor ignored them")
    });
    Ok(KindResult {
        note: super::quarantine::join_notes([quarantine.note(), outlier_note]),
        quarantined: quarantine.count(),
        ..KindResult::default()
    })
}

/// One `modifiedAfter`..`modifiedBefore` window of one order type.
struct Window {
    order_type: OrderType,
    from: NaiveDateTime,
    to: NaiveDateTime,
}

impl Window {
    fn filters(&self) -> Map<String, Value> {
        let mut filters = Map::new();
        filters.insert("type".into(), self.order_type.code().into());
        filters.insert(
            "modifiedAfter".into(),
            self.from.format(EMAG_TIME).to_string().into(),
        );
        filters.insert(
            "modifiedBefore".into(),
            self.to.format(EMAG_TIME).to_string().into(),
        );
        filters
    }
}

/// Items read so far in the run, for progress.
#[derive(Default)]
struct Progress {
    items: u64,
}

/// What the windows of one type held for the cursor.
#[derive(Default)]
struct Found {
    /// The latest `modified` among the orders read.
    newest: Option<String>,
    /// Whether any order read had a `modified` at all.
    any_modified: bool,
}

/// Reads one window: page 1, and when it is full, the pages `order/count` announces for the
/// same filters. The distinct orders read (quarantined ones included) must reach the count;
/// if they do not (a page came short, or orders moved between pages while we read), the
/// window is read again, [`WINDOW_ATTEMPTS`] times at most, and then the run fails without
/// moving the cursor.
async fn read_window(
    ctx: &SyncContext,
    account: &Account,
    run: &ActiveRun,
    window: &Window,
    read: &mut Progress,
    found: &mut Found,
    quarantine: &mut Quarantine,
) -> Result<(), SyncError> {
    let filters = window.filters();
    let mut shortfall = None;
    for attempt in 1..=WINDOW_ATTEMPTS {
        let mut seen = HashSet::new();
        let mut odd = 0_u64;
        let mut page_no = 1;
        let mut pages = 1;
        let mut expected = None;
        // The page read last, stored while the next one is read: at most one write under way,
        // so pages are stored in the order they were read.
        let mut unstored: Option<Vec<OrderRow>> = None;
        while page_no <= pages {
            if ctx.cancel.is_cancelled() {
                write_orders(ctx, run, unstored.take()).await?;
                return Err(SyncError::Cancelled);
            }
            let (stored, page) = tokio::join!(
                write_orders(ctx, run, unstored.take()),
                account
                    .client
                    .read_page("order", &filters, page_no, PER_PAGE)
            );
            // What was read before is stored before a failed read is reported.
            stored?;
            let page = page?;
            let mut rows = Vec::with_capacity(page.items.len());
            for item in &page.items {
                match to_row(item.get(), window.order_type) {
                    Ok(row) => rows.push(row),
                    Err(why) => {
                        odd += 1;
                        quarantine.add(account.name(), item.get(), why);
                    }
                }
            }
            for r in &rows {
                seen.insert(r.id);
                if let Some(m) = &r.modified {
                    found.any_modified = true;
                    if found.newest.as_deref().is_none_or(|n| m.as_str() > n) {
                        found.newest = Some(m.clone());
                    }
                }
            }
            unstored = Some(rows);
            let full = page.items.len() >= PER_PAGE as usize;
            read.items += page.items.len() as u64;
            ctx.report_progress(account.name(), SyncKind::Orders, read.items, None);
            if page_no == 1 && full {
                // More than one page: size the window so a short page cannot end it early.
                let (stored, count) = tokio::join!(
                    write_orders(ctx, run, unstored.take()),
                    account.client.count("order", &filters)
                );
                stored?;
                let count = count?;
                pages = u32::try_from(
                    count
                        .pages
                        .min(count.items.div_ceil(u64::from(PER_PAGE)) + 1),
                )
                .unwrap_or(u32::MAX)
                .max(1);
                expected = Some((count.items, count.pages));
            }
            page_no += 1;
        }
        write_orders(ctx, run, unstored).await?;
        quarantine.flush(ctx, run).await?;
        let Some((items, announced)) = expected else {
            return Ok(());
        };
        let got = seen.len() as u64 + odd;
        if got >= items {
            return Ok(());
        }
        tracing::warn!(
            account.name = account.name(), order.r#type = window.order_type.code(),
            window.from = %window.from, window.to = %window.to, attempt,
            orders.counted = items, orders.read = got,
            "the pages of an order window held fewer orders than order/count said; reading it again"
        );
        shortfall = Some((items, announced, got));
    }
    let (items, announced, got) = shortfall.unwrap_or_default();
    Err(SyncError::Incomplete(format!(
        "orders of type {} modified from {} to {}: order/count said {items} in {announced} page(s), \
         but the pages held {got}, {WINDOW_ATTEMPTS} times; the order cursor was not moved, the next run reads the window again",
        window.order_type.code(),
        window.from.format(EMAG_TIME),
        window.to.format(EMAG_TIME),
    )))
}

/// Stores one page's orders (those whose content changed) and the page's counts; `None`
/// (no page read yet) stores nothing.
async fn write_orders(
    ctx: &SyncContext,
    run: &ActiveRun,
    page: Option<Vec<OrderRow>>,
) -> Result<(), SyncError> {
    let Some(rows) = page else {
        return Ok(());
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let stored = ctx.store.order_hashes(&run.account, &ids).await?;
    let (created, updated, counts) =
        split_changed_rows(rows, &stored, |r| r.id, |r| r.content_hash);
    ctx.store
        .write_orders(run, &created, &updated, &counts)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, EMAG_TIME).expect("time")
    }

    #[test]
    fn windows_are_at_most_the_set_length_and_the_last_reaches_past_now() {
        let week = chrono::Duration::days(7);
        let w = windows(t("2025-01-01 10:00:00"), t("2025-01-20 00:00:00"), week);
        assert_eq!(
            w,
            vec![
                (t("2025-01-01 10:00:00"), t("2025-01-08 10:00:00")),
                (t("2025-01-08 10:00:00"), t("2025-01-15 10:00:00")),
                (t("2025-01-15 10:00:00"), t("2025-01-22 10:00:00")),
            ]
        );
        // 90 days of backfill: 13 windows, none longer than a week.
        let start = t("2025-01-01 00:00:00");
        let w = windows(start, start + chrono::Duration::days(90), week);
        assert_eq!(w.len(), 13);
        assert!(w.iter().all(|(a, b)| *b - *a == week));
        // A start already past now is one window.
        assert_eq!(windows(t("2025-02-01 00:00:00"), start, week).len(), 1);
    }

    #[test]
    fn odd_orders_are_refused_with_a_reason_that_quotes_nothing_of_them() {
        let order = |products: &str| {
            format!(
                r#"{{"id": 3115257165, "customer": {{"name": "Ana Pop"}}, "products": {products}}}"#
            )
        };
        let cases = [
            (order(r#"[{"product_id": 1}]"#), "no readable id"),
            (
                order(r#"[{"id": 7, "sale_price": "1.0"}, {"id": 7, "sale_price": "2.0"}]"#),
                "appears twice",
            ),
            (
                order(r#"[{"id": 7, "sale_price": "1e40"}]"#),
                "not a readable order",
            ),
            (
                r#"{"id": 18446744073709551615, "customer": {"name": "Ana Pop"}}"#.to_owned(),
                "out of range",
            ),
        ];
        for (raw, why) in cases {
            let odd = to_row(&raw, OrderType::Seller).expect_err(why);
            assert!(odd.reason.contains(why), "{why}: {}", odd.reason);
            assert!(!odd.reason.contains("Ana"), "{}", odd.reason);
            assert!(odd.item_id.is_some(), "{why}");
        }
    }

    #[test]
    fn an_order_a_line_or_a_customer_that_is_a_list_is_odd_not_data() {
        // Found by the fuzzer (issue 11): serde read a list as the struct's fields in order,
        // so `[5]` was an order with id 5 and `[-9223372036854775808]` a line with that id.
        for raw in [
            "[3115257165]",
            r#"{"id": 5, "products": [[-9223372036854775808]]}"#,
            r#"{"id": 5, "customer": [778, "Ana Pop"]}"#,
        ] {
            let odd = to_row(raw, OrderType::Seller).expect_err(raw);
            assert!(
                odd.reason.contains("expected an object"),
                "{raw}: {}",
                odd.reason
            );
            assert!(!odd.reason.contains("Ana"), "{}", odd.reason);
        }
    }

    #[test]
    fn names_with_nul_are_kept_with_the_replacement_character() {
        // Found by the fuzzer (issue 11): PostgreSQL's text refuses U+0000.
        let raw = r#"{"id": 5, "customer": {"name": "Ana\u0000Pop"},
            "products": [{"id": 1, "name": "Cana\u0000", "vat": "0.21\u0000"}]}"#;
        let row = to_row(raw, OrderType::Seller).expect("a row");
        assert_eq!(row.customer_name.as_deref(), Some("Ana\u{fffd}Pop"));
        assert_eq!(row.lines[0].name.as_deref(), Some("Cana\u{fffd}"));
        assert_eq!(row.lines[0].vat.as_deref(), Some("0.21\u{fffd}"));
        assert_eq!(row.data, raw, "the item itself is kept as sent");
    }

    #[test]
    fn order_rows_keep_big_ids_exact_money_and_lines() {
        let raw = r#"{"id": 3115257165, "status": 4, "type": 2, "payment_mode_id": 3,
            "date": "2025-10-12 09:01:13", "modified": "2025-10-12 18:44:05",
            "customer": {"id": 778, "name": "Ana Pop"},
            "products": [{"id": 90311, "product_id": 1209, "quantity": 1,
                          "sale_price": "26.4463", "status": 1, "currency": "RON", "vat": "0.2100"}]}"#;
        let row = to_row(raw, OrderType::Seller).expect("row");
        assert_eq!(row.id, 3_115_257_165);
        assert_eq!(row.order_type, 2);
        assert_eq!(row.customer_name.as_deref(), Some("Ana Pop"));
        assert_eq!(row.lines[0].sale_price.as_deref(), Some("26.4463"));
        assert_eq!(row.lines[0].vat.as_deref(), Some("0.2100"));
    }

    fn item_error(e: Odd) -> String {
        e.reason
    }

    #[test]
    fn an_order_that_does_not_decode_is_named_by_field_not_by_its_customer_data() {
        for raw in [
            // A customer's details in a field that should hold a number.
            r#"{"id": "Ana Pop, 0722123456, Str. Lalelelor 3", "type": 3}"#,
            r#"{"id": 5, "customer": {"id": 1, "name": "Ana Pop"}, "products": [{"quantity": 1, "name": "Ana Pop 0722123456"}]}"#,
            r#"{"id": 5, "customer": {"id": 1, "name": "Ana Pop", "phone": "0722123456"}"#,
        ] {
            let err = item_error(to_row(raw, OrderType::Seller).expect_err(raw));
            assert!(
                !err.contains("Ana Pop") && !err.contains("0722123456"),
                "customer data in the error: {err}"
            );
            assert!(err.contains("order"), "{err}");
        }
    }
}
