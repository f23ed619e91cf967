//! Filters and pagination of read/count actions, parsed from the request payload into typed
//! values before any data is touched. Every violation becomes a `FilterError` whose text is
//! served as an `isError:true` message, so a client sees exactly which filter was wrong.

use chrono::{Months, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

use crate::clock::DATETIME_FORMAT;
use crate::config::OrderWindowLimit;

/// A filter the simulator refuses, with the message served to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterError(pub(crate) String);

impl FilterError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The filter object of a read/count payload; an empty list (PHP's `[]`) counts as empty.
pub(crate) fn filters(payload: &Value) -> Result<Map<String, Value>, FilterError> {
    match payload {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(Map::new()),
        Value::Array(items) if items.is_empty() => Ok(Map::new()),
        _ => Err(FilterError::new(
            "Invalid request: data must be an object of filters",
        )),
    }
}

fn present<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(v) => Some(v),
    }
}

/// An unsigned integer from a JSON number or numeric string.
pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9.0e15)
                .and_then(|f| format!("{f:.0}").parse().ok())
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn int_list(value: &Value) -> Option<Vec<u64>> {
    match value {
        Value::Array(items) => items.iter().map(as_u64).collect(),
        other => as_u64(other).map(|v| vec![v]),
    }
}

fn u32_list(
    map: &Map<String, Value>,
    key: &str,
    max: u64,
) -> Result<Option<Vec<u32>>, FilterError> {
    let Some(value) = present(map, key) else {
        return Ok(None);
    };
    int_list(value)
        .filter(|list| list.iter().all(|&v| v <= max))
        .map(|list| {
            Some(
                list.into_iter()
                    .filter_map(|v| u32::try_from(v).ok())
                    .collect(),
            )
        })
        .ok_or_else(|| {
            FilterError::new(format!(
                "Invalid {key}: expected an integer or a list of integers up to {max}"
            ))
        })
}

fn u64_list(map: &Map<String, Value>, key: &str) -> Result<Option<Vec<u64>>, FilterError> {
    let Some(value) = present(map, key) else {
        return Ok(None);
    };
    int_list(value).map(Some).ok_or_else(|| {
        FilterError::new(format!(
            "Invalid {key}: expected an integer or a list of integers"
        ))
    })
}

fn code_list(
    map: &Map<String, Value>,
    key: &str,
    allowed: &[u8],
) -> Result<Option<Vec<u8>>, FilterError> {
    let Some(value) = present(map, key) else {
        return Ok(None);
    };
    let allowed_text = allowed
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let error = || FilterError::new(format!("Invalid {key}: allowed values are {allowed_text}"));
    let list = int_list(value).ok_or_else(error)?;
    list.into_iter()
        .map(|v| {
            u8::try_from(v)
                .ok()
                .filter(|c| allowed.contains(c))
                .ok_or_else(error)
        })
        .collect::<Result<Vec<u8>, _>>()
        .map(Some)
}

fn string_filter(map: &Map<String, Value>, key: &str) -> Result<Option<String>, FilterError> {
    match present(map, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(FilterError::new(format!(
            "Invalid {key}: expected a string"
        ))),
    }
}

/// `currentPage` / `itemsPerPage` after defaults and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) current: u32,
    pub(crate) items: u32,
}

impl Page {
    /// Offset of the first item of this page.
    pub(crate) fn offset(self) -> usize {
        (self.current as usize - 1).saturating_mul(self.items as usize)
    }

    /// The `count` result: strings, as eMAG sends them.
    pub(crate) fn count_result(self, total: usize) -> Value {
        let pages = total.div_ceil(self.items as usize);
        serde_json::json!({
            "noOfItems": total.to_string(),
            "noOfPages": pages.to_string(),
            "itemsPerPage": self.items.to_string(),
        })
    }

    /// The slice of `items` this page covers (empty past the end).
    pub(crate) fn slice<T>(self, items: &[T]) -> &[T] {
        let start = self.offset().min(items.len());
        let end = start.saturating_add(self.items as usize).min(items.len());
        &items[start..end]
    }
}

/// Pagination parameters: defaults 1 and 100; `itemsPerPage` above `max` is rejected or
/// clamped depending on the simulator config.
pub(crate) fn page(map: &Map<String, Value>, max: u32, clamp: bool) -> Result<Page, FilterError> {
    let current = match present(map, "currentPage") {
        None => 1,
        Some(v) => as_u64(v)
            .filter(|&p| (1..=65_535).contains(&p))
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| {
                FilterError::new("Invalid currentPage: expected an integer between 1 and 65535")
            })?,
    };
    let items = match present(map, "itemsPerPage") {
        None => 100.min(max),
        Some(v) => {
            let requested = as_u64(v).filter(|&n| n >= 1).ok_or_else(|| {
                FilterError::new(format!(
                    "Invalid itemsPerPage: expected an integer between 1 and {max}"
                ))
            })?;
            if requested > u64::from(max) {
                if clamp {
                    max
                } else {
                    return Err(FilterError::new(format!(
                        "Invalid itemsPerPage: the maximum number of items per page is {max}"
                    )));
                }
            } else {
                u32::try_from(requested).unwrap_or(max)
            }
        }
    };
    Ok(Page { current, items })
}

/// Filters of product_offer/read and count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OfferFilter {
    pub(crate) ids: Option<Vec<u32>>,
    pub(crate) status: Option<Vec<u8>>,
    pub(crate) part_number: Option<String>,
    pub(crate) part_number_key: Option<String>,
    pub(crate) general_stock: Option<u32>,
    pub(crate) estimated_stock: Option<u32>,
    pub(crate) offer_validation_status: Option<u8>,
}

impl OfferFilter {
    pub(crate) fn parse(map: &Map<String, Value>) -> Result<Self, FilterError> {
        let single = |key: &str| -> Result<Option<u32>, FilterError> {
            Ok(u32_list(map, key, u64::from(u32::MAX))?.and_then(|l| l.first().copied()))
        };
        Ok(Self {
            ids: u32_list(map, "id", u64::from(u32::MAX))?,
            status: code_list(map, "status", &[0, 1, 2])?,
            part_number: string_filter(map, "part_number")?,
            part_number_key: string_filter(map, "part_number_key")?,
            general_stock: single("general_stock")?,
            estimated_stock: single("estimated_stock")?,
            offer_validation_status: code_list(map, "offer_validation_status", &[1, 2])?
                .and_then(|l| l.first().copied()),
        })
    }

    /// True when no filter is set, so a page is a plain slice.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Which action the order filters are for: the pairing rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderAction {
    Read,
    Count,
}

/// A `[after, before)` window on one date field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) after: Option<NaiveDateTime>,
    pub(crate) before: Option<NaiveDateTime>,
}

impl Window {
    pub(crate) fn contains(&self, t: NaiveDateTime) -> bool {
        self.after.is_none_or(|a| t >= a) && self.before.is_none_or(|b| t < b)
    }
}

fn datetime(map: &Map<String, Value>, key: &str) -> Result<Option<NaiveDateTime>, FilterError> {
    let Some(value) = present(map, key) else {
        return Ok(None);
    };
    let text = value.as_str().unwrap_or_default().trim();
    NaiveDateTime::parse_from_str(text, DATETIME_FORMAT)
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(Some)
        .ok_or_else(|| {
            FilterError::new(format!(
                "Invalid {key}: expected a date formatted YYYY-mm-dd HH:ii:ss"
            ))
        })
}

fn window(
    map: &Map<String, Value>,
    field: &str,
    action: OrderAction,
    limit: OrderWindowLimit,
) -> Result<Window, FilterError> {
    let after_key = format!("{field}After");
    let before_key = format!("{field}Before");
    let after = datetime(map, &after_key)?;
    let before = datetime(map, &before_key)?;
    match (after, before, action) {
        (None, Some(_), _) => {
            return Err(FilterError::new(format!(
                "{before_key} requires {after_key}"
            )));
        }
        (Some(_), None, OrderAction::Count) => {
            return Err(FilterError::new(format!(
                "{after_key} requires {before_key}"
            )));
        }
        (Some(a), Some(b), _) => {
            if b <= a {
                return Err(FilterError::new(format!(
                    "{before_key} must be later than {after_key}"
                )));
            }
            let longest = match limit {
                OrderWindowLimit::CalendarMonth => a.checked_add_months(Months::new(1)),
                OrderWindowLimit::Days(days) => {
                    a.checked_add_signed(chrono::Duration::days(i64::from(days)))
                }
            };
            if longest.is_some_and(|longest| b > longest) {
                return Err(FilterError::new(format!(
                    "The maximum interval between {after_key} and {before_key} is one month"
                )));
            }
        }
        _ => {}
    }
    Ok(Window { after, before })
}

/// Filters of order/read and order/count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderFilter {
    pub(crate) ids: Option<Vec<u64>>,
    /// eMAG defaults to 3: FBE orders only come back when asked for.
    pub(crate) types: Vec<u8>,
    pub(crate) status: Option<Vec<u8>>,
    pub(crate) payment_mode_id: Option<Vec<u8>>,
    pub(crate) is_complete: Option<u8>,
    pub(crate) created: Window,
    pub(crate) modified: Window,
}

impl OrderFilter {
    pub(crate) fn parse(
        map: &Map<String, Value>,
        action: OrderAction,
        limit: OrderWindowLimit,
    ) -> Result<Self, FilterError> {
        Ok(Self {
            ids: u64_list(map, "id")?,
            types: code_list(map, "type", &[2, 3])?.unwrap_or_else(|| vec![3]),
            status: code_list(map, "status", &[0, 1, 2, 3, 4, 5])?,
            payment_mode_id: code_list(map, "payment_mode_id", &[1, 2, 3])?,
            is_complete: code_list(map, "is_complete", &[0, 1])?.and_then(|l| l.first().copied()),
            created: window(map, "created", action, limit)?,
            modified: window(map, "modified", action, limit)?,
        })
    }

    pub(crate) fn matches(&self, order: &crate::model::Order) -> bool {
        self.types.contains(&order.order_type)
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&order.id))
            && self
                .status
                .as_ref()
                .is_none_or(|s| s.contains(&order.status))
            && self
                .payment_mode_id
                .as_ref()
                .is_none_or(|p| p.contains(&order.payment_mode_id))
            && self.is_complete.is_none_or(|c| c == order.is_complete)
            && self.created.contains(order.date)
            && self.modified.contains(order.modified)
    }
}

/// Filters of rma/read and rma/count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RmaFilter {
    pub(crate) emag_ids: Option<Vec<u64>>,
    pub(crate) order_ids: Option<Vec<u64>>,
    pub(crate) product_ids: Option<Vec<u64>>,
    pub(crate) types: Option<Vec<u8>>,
    pub(crate) request_status: Option<Vec<u8>>,
    pub(crate) date_start: Option<NaiveDateTime>,
    pub(crate) date_end: Option<NaiveDateTime>,
}

impl RmaFilter {
    pub(crate) fn parse(map: &Map<String, Value>) -> Result<Self, FilterError> {
        let emag_ids = match u64_list(map, "emag_id")? {
            Some(ids) => Some(ids),
            None => u64_list(map, "id")?,
        };
        let date_start = datetime(map, "date_start")?;
        // A bare date as the end bound means "until the end of that day".
        let date_end = datetime(map, "date_end")?.map(|d| {
            let date_only = present(map, "date_end")
                .and_then(Value::as_str)
                .is_some_and(|s| s.trim().len() == 10);
            if date_only {
                d + chrono::Duration::days(1) - chrono::Duration::seconds(1)
            } else {
                d
            }
        });
        Ok(Self {
            emag_ids,
            order_ids: u64_list(map, "order_id")?,
            product_ids: u64_list(map, "product_id")?,
            // Like order/read since the same changelog entry: without `type`, only
            // seller-fulfilled (3) returns are listed.
            types: Some(code_list(map, "type", &[2, 3])?.unwrap_or_else(|| vec![3])),
            request_status: code_list(map, "request_status", &[1, 2, 3, 4, 5, 6, 7])?,
            date_start,
            date_end,
        })
    }

    pub(crate) fn matches(&self, rma: &crate::model::Rma) -> bool {
        self.emag_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&rma.emag_id))
            && self
                .order_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&rma.order_id))
            && self.product_ids.as_ref().is_none_or(|ids| {
                rma.products
                    .iter()
                    .any(|p| ids.contains(&u64::from(p.product_id)))
            })
            && self
                .types
                .as_ref()
                .is_none_or(|t| t.contains(&rma.rma_type))
            && self
                .request_status
                .as_ref()
                .is_none_or(|s| s.contains(&rma.request_status))
            && self.date_start.is_none_or(|d| rma.date >= d)
            && self.date_end.is_none_or(|d| rma.date <= d)
    }
}

/// The optional `id` filter of category/read.
pub(crate) fn category_id(map: &Map<String, Value>) -> Result<Option<u32>, FilterError> {
    Ok(u32_list(map, "id", u64::from(u32::MAX))?.and_then(|l| l.first().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MONTH: OrderWindowLimit = OrderWindowLimit::CalendarMonth;

    fn map(v: &Value) -> Map<String, Value> {
        filters(v).unwrap_or_default()
    }

    #[test]
    fn a_window_limit_in_days_refuses_one_second_more() {
        let seven = OrderWindowLimit::Days(7);
        let ok = map(
            &json!({"modifiedAfter": "2025-01-01 00:00:00", "modifiedBefore": "2025-01-08 00:00:00"}),
        );
        assert!(OrderFilter::parse(&ok, OrderAction::Count, seven).is_ok());
        let long = map(
            &json!({"modifiedAfter": "2025-01-01 00:00:00", "modifiedBefore": "2025-01-08 00:00:01"}),
        );
        assert!(OrderFilter::parse(&long, OrderAction::Read, seven).is_err());
        assert!(OrderFilter::parse(&long, OrderAction::Read, MONTH).is_ok());
    }

    #[test]
    fn returns_without_a_type_are_the_seller_fulfilled_ones() {
        assert_eq!(
            RmaFilter::parse(&map(&json!({}))).map(|f| f.types),
            Ok(Some(vec![3]))
        );
        assert_eq!(
            RmaFilter::parse(&map(&json!({"type": 2}))).map(|f| f.types),
            Ok(Some(vec![2]))
        );
    }

    #[test]
    fn page_defaults_to_the_first_hundred() {
        assert_eq!(
            page(&map(&json!({})), 100, false),
            Ok(Page {
                current: 1,
                items: 100
            })
        );
    }

    #[test]
    fn too_many_items_per_page_are_rejected_or_clamped_as_configured() {
        assert!(page(&map(&json!({"itemsPerPage": 101})), 100, false).is_err());
        assert_eq!(
            page(&map(&json!({"itemsPerPage": "101"})), 100, true),
            Ok(Page {
                current: 1,
                items: 100
            })
        );
    }

    #[test]
    fn count_math_rounds_pages_up_and_speaks_strings() {
        let p = Page {
            current: 1,
            items: 100,
        };
        assert_eq!(
            p.count_result(230),
            json!({"noOfItems": "230", "noOfPages": "3", "itemsPerPage": "100"})
        );
    }

    #[test]
    fn a_modified_before_needs_its_after_on_read_and_both_need_each_other_on_count() {
        let before_only = map(&json!({"modifiedBefore": "2025-10-13 00:00:00"}));
        assert!(OrderFilter::parse(&before_only, OrderAction::Read, MONTH).is_err());
        let after_only = map(&json!({"modifiedAfter": "2025-10-13 00:00:00"}));
        assert!(OrderFilter::parse(&after_only, OrderAction::Read, MONTH).is_ok());
        assert!(OrderFilter::parse(&after_only, OrderAction::Count, MONTH).is_err());
    }

    #[test]
    fn a_window_of_exactly_one_calendar_month_is_accepted_and_one_second_more_is_not() {
        let ok = map(
            &json!({"createdAfter": "2025-01-31 10:00:00", "createdBefore": "2025-02-28 10:00:00"}),
        );
        assert!(OrderFilter::parse(&ok, OrderAction::Count, MONTH).is_ok());
        let too_long = map(
            &json!({"createdAfter": "2025-01-31 10:00:00", "createdBefore": "2025-02-28 10:00:01"}),
        );
        assert_eq!(
            OrderFilter::parse(&too_long, OrderAction::Count, MONTH).err(),
            Some(FilterError(
                "The maximum interval between createdAfter and createdBefore is one month".into()
            ))
        );
    }

    #[test]
    fn order_type_defaults_to_three_and_rejects_unknown_codes() {
        let default =
            OrderFilter::parse(&map(&json!({})), OrderAction::Read, MONTH).map(|f| f.types);
        assert_eq!(default, Ok(vec![3]));
        assert!(OrderFilter::parse(&map(&json!({"type": 1})), OrderAction::Read, MONTH).is_err());
        let fbe = OrderFilter::parse(&map(&json!({"type": "2"})), OrderAction::Read, MONTH)
            .map(|f| f.types);
        assert_eq!(fbe, Ok(vec![2]));
    }
}
