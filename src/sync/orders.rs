//! Order sync: incremental by `modifiedAfter`, for seller-fulfilled (type 3) and FBE
//! (type 2) orders alike — eMAG returns type 2 only when asked, and one account may hold both.
//!
//! The cursor of each type is the latest `modified` stored after a complete run; the next run
//! reads from cursor − overlap (eMAG changes orders after the fact), in windows of at most one
//! calendar month as the API demands. The first run backfills a configurable number of days.
//! The cursor only moves when every window was read, so a failed or killed run re-reads
//! rather than skips.

use chrono::{Months, NaiveDateTime};
use domain::{OrderType, SyncKind};
use emag_client::Money;
use serde::Deserialize;
use serde_json::{Map, Value};
use storage::{ActiveRun, OrderLineRow, OrderRow};

use super::offers::int;
use super::{changed_rows, content_hash, Account, KindResult, SyncContext, SyncError};

const PER_PAGE: u32 = 100;
pub(crate) const EMAG_TIME: &str = "%Y-%m-%d %H:%M:%S";

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
    customer: Option<CustomerFields>,
    #[serde(default)]
    products: Option<Vec<LineFields>>,
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

fn to_row(raw: &str, asked: OrderType) -> Result<OrderRow, SyncError> {
    // The errors name the field, never the order's JSON (names, phones, addresses).
    let bad = |e: String| SyncError::Item(format!("order: {e}"));
    let f: OrderFields = emag_client::decode_json(raw).map_err(|e| bad(e.to_string()))?;
    let id = i64::try_from(f.id).map_err(|_| bad(format!("id {} out of range", f.id)))?;
    let lines = f
        .products
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            Ok(OrderLineRow {
                line_id: int(Some(&l.id)).ok_or_else(|| bad("order line without id".into()))?,
                product_id: int(l.product_id.as_ref()),
                part_number: l.part_number,
                name: l.name,
                quantity: int(l.quantity.as_ref()),
                sale_price: l.sale_price.map(|m| m.to_string()),
                currency: l.currency,
                vat: match l.vat {
                    Some(Value::String(s)) => Some(s),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                },
                status: int(l.status.as_ref()),
            })
        })
        .collect::<Result<Vec<_>, SyncError>>()?;
    Ok(OrderRow {
        id,
        order_type: int(f.order_type.as_ref()).unwrap_or(asked.code()),
        status: int(f.status.as_ref()),
        date: f.date,
        modified: f.modified,
        payment_mode_id: int(f.payment_mode_id.as_ref()),
        customer_id: f.customer.as_ref().and_then(|c| int(c.id.as_ref())),
        customer_name: f.customer.and_then(|c| c.name),
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

/// `[start, start + 1 month)` windows up to `now`; the last one is open-ended so orders
/// modified while we read are not cut off by a clock difference.
pub(crate) fn month_windows(
    start: NaiveDateTime,
    now: NaiveDateTime,
) -> Vec<(NaiveDateTime, Option<NaiveDateTime>)> {
    let mut out = Vec::new();
    let mut from = start;
    loop {
        match from.checked_add_months(Months::new(1)) {
            Some(to) if to < now => {
                out.push((from, Some(to)));
                from = to;
            }
            _ => {
                out.push((from, None));
                return out;
            }
        }
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
    let cursor = if full {
        None
    } else {
        ctx.store
            .get_state(account.name(), cursor_key)
            .await?
            .and_then(|c| NaiveDateTime::parse_from_str(&c, EMAG_TIME).ok())
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
    let mut done_items = 0u64;
    for order_type in OrderType::ALL {
        let (cursor, start) = read_start(ctx, account, &cursor_key(order_type), full, now).await?;
        let mut newest: Option<String> = None;
        for (from, to) in month_windows(start, now) {
            let mut filters = Map::new();
            filters.insert("type".into(), order_type.code().into());
            filters.insert(
                "modifiedAfter".into(),
                from.format(EMAG_TIME).to_string().into(),
            );
            if let Some(to) = to {
                filters.insert(
                    "modifiedBefore".into(),
                    to.format(EMAG_TIME).to_string().into(),
                );
            }
            let mut page_no = 1;
            loop {
                if ctx.cancel.is_cancelled() {
                    return Err(SyncError::Cancelled);
                }
                let page = account
                    .client
                    .read_page("order", &filters, page_no, PER_PAGE)
                    .await?;
                let rows = page
                    .items
                    .iter()
                    .map(|i| to_row(i.get(), order_type))
                    .collect::<Result<Vec<_>, _>>()?;
                for r in &rows {
                    if let Some(m) = &r.modified {
                        if newest.as_deref().is_none_or(|n| m.as_str() > n) {
                            newest = Some(m.clone());
                        }
                    }
                }
                write_orders(ctx, run, rows).await?;
                done_items += page.items.len() as u64;
                ctx.report_progress(account.name(), SyncKind::Orders, done_items, None);
                if page.last {
                    break;
                }
                page_no += 1;
            }
        }
        // Every window of this type was read: the cursor may move (never backwards).
        let stored = ctx
            .store
            .latest_order_modified(account.name(), order_type.code())
            .await?;
        let best = [
            cursor.map(|c| c.format(EMAG_TIME).to_string()),
            newest,
            stored,
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(best) = best {
            ctx.store
                .set_state(account.name(), &cursor_key(order_type), &best)
                .await?;
        }
    }
    Ok(KindResult::default())
}

async fn write_orders(
    ctx: &SyncContext,
    run: &ActiveRun,
    rows: Vec<OrderRow>,
) -> Result<(), SyncError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let stored = ctx.store.order_hashes(&run.account, &ids).await?;
    let (changed, counts) = changed_rows(rows, &stored, |r| r.id, |r| r.content_hash);
    ctx.store.write_orders(run, &changed, &counts).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, EMAG_TIME).expect("time")
    }

    #[test]
    fn windows_never_exceed_one_calendar_month_and_the_last_is_open() {
        let w = month_windows(t("2025-01-31 10:00:00"), t("2025-04-15 00:00:00"));
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[0],
            (t("2025-01-31 10:00:00"), Some(t("2025-02-28 10:00:00")))
        );
        assert_eq!(
            w[1],
            (t("2025-02-28 10:00:00"), Some(t("2025-03-28 10:00:00")))
        );
        assert_eq!(w[2], (t("2025-03-28 10:00:00"), None));
        assert_eq!(
            month_windows(t("2025-04-14 00:00:00"), t("2025-04-15 00:00:00")).len(),
            1
        );
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

    fn item_error(e: SyncError) -> String {
        match e {
            SyncError::Item(text) => text,
            other => panic!("an item error, not {other:?}"),
        }
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
            assert!(err.starts_with("order"), "{err}");
        }
        let err =
            item_error(to_row(r#"{"id": "Ana Pop"}"#, OrderType::Seller).expect_err("bad id"));
        assert!(err.contains("field id"), "{err}");
    }
}
