//! The API actions proper: each takes the authenticated account and the parsed payload and
//! returns a `Reply`. They know nothing about auth, limits, faults or the journal.

use serde_json::Value;

use crate::catalog;
use crate::form::parse_body_as;
use crate::http::reply::Reply;
use crate::http::route::Route;
use crate::query::{self, FilterError, OfferFilter, OrderAction, OrderFilter, Page, RmaFilter};
use crate::save::{self, StockPatch};
use crate::state::{AccountState, SimState};

/// A reply plus the pagination it used (for the journal).
#[derive(Debug)]
pub(crate) struct Handled {
    pub(crate) reply: Reply,
    pub(crate) page: Option<Page>,
}

impl From<Reply> for Handled {
    fn from(reply: Reply) -> Self {
        Self { reply, page: None }
    }
}

impl From<FilterError> for Handled {
    fn from(error: FilterError) -> Self {
        Reply::error(error.0).into()
    }
}

/// Runs `route` for `account` with the raw request body.
pub(crate) fn handle(
    state: &SimState,
    account: &AccountState,
    route: &Route,
    content_type: Option<&str>,
    body: &[u8],
) -> Handled {
    let Ok((mut payload, encoding)) = parse_body_as(content_type, body) else {
        return Reply::invalid_content().into();
    };
    // A strict simulator ignores the filters of a read sent in another encoding, silently,
    // as a server that does not parse that shape would (issue 9, point 1).
    let is_read =
        matches!(route, Route::Rpc { action, .. } if action == "read" || action == "count");
    if let (Some(accepted), Some(sent)) = (state.config.accept, encoding) {
        if is_read && accepted != sent {
            payload = Value::Object(serde_json::Map::new());
        }
    }
    match route {
        Route::Unknown { .. } => Reply::invalid_url().into(),
        Route::Acknowledge { id } => acknowledge(state, account, *id).into(),
        Route::OfferStock { id } => offer_stock(account, *id, &payload).into(),
        Route::Rpc { resource, action } => {
            match (resource.as_str(), action.as_str()) {
                ("product_offer", "read") => {
                    offers(state, account, &payload, false).unwrap_or_else(Handled::from)
                }
                ("product_offer", "count") => {
                    offers(state, account, &payload, true).unwrap_or_else(Handled::from)
                }
                ("product_offer", "save") => product_offer_save(account, &payload).into(),
                ("offer", "save") => light_save(account, &payload).into(),
                ("order", "read") => orders(state, account, &payload, OrderAction::Read)
                    .unwrap_or_else(Handled::from),
                ("order", "count") => orders(state, account, &payload, OrderAction::Count)
                    .unwrap_or_else(Handled::from),
                ("category", "read") => {
                    categories(state, account, &payload, false).unwrap_or_else(Handled::from)
                }
                ("category", "count") => {
                    categories(state, account, &payload, true).unwrap_or_else(Handled::from)
                }
                ("rma", "read") => {
                    returns(state, account, &payload, false).unwrap_or_else(Handled::from)
                }
                ("rma", "count") => {
                    returns(state, account, &payload, true).unwrap_or_else(Handled::from)
                }
                ("vat", "read") => Reply::ok(&catalog::vat_rates()).into(),
                ("handling_time", "read") => Reply::ok(&catalog::handling_times()).into(),
                _ => Reply::invalid_url().into(),
            }
        }
    }
}

fn page_of(
    state: &SimState,
    filters: &serde_json::Map<String, Value>,
) -> Result<Page, FilterError> {
    query::page(
        filters,
        state.config.max_items_per_page,
        state.config.clamp_items_per_page,
    )
}

/// The page a read of `account` serves: as asked, unless the fault plan breaks paging
/// (every page is page 1, or more items than asked).
fn read_page_of(
    state: &SimState,
    account: &AccountState,
    filters: &serde_json::Map<String, Value>,
    count: bool,
) -> Result<Page, FilterError> {
    let mut page = page_of(state, filters)?;
    if !count {
        let faults = state.faults.paging(account.name());
        if faults.ignore_current_page {
            page.current = 1;
        }
        page.items = page.items.saturating_add(faults.extra_items);
    }
    Ok(page)
}

fn offers(
    state: &SimState,
    account: &AccountState,
    payload: &Value,
    count: bool,
) -> Result<Handled, FilterError> {
    let filters = query::filters(payload)?;
    let page = read_page_of(state, account, &filters, count)?;
    let filter = OfferFilter::parse(&filters)?;
    let reply = if count {
        Reply::ok(&page.count_result(account.offer_count(&filter)))
    } else {
        let offers = account.offer_page(&filter, page);
        if filter.is_empty() {
            state.offer_page_served(account.name(), page.current);
        }
        let mut served = serde_json::to_value(&offers).unwrap_or(Value::Null);
        state.oddities.bend_offers(account.name(), &mut served);
        Reply::ok(&served)
    };
    Ok(Handled {
        reply,
        page: Some(page),
    })
}

fn orders(
    state: &SimState,
    account: &AccountState,
    payload: &Value,
    action: OrderAction,
) -> Result<Handled, FilterError> {
    let filters = query::filters(payload)?;
    let page = read_page_of(state, account, &filters, action == OrderAction::Count)?;
    let filter = OrderFilter::parse(&filters, action, state.config.order_window)?;
    let reply = match action {
        OrderAction::Count => Reply::ok(&page.count_result(account.order_count(&filter))),
        OrderAction::Read => {
            let orders = account.order_page(&filter, page);
            state.order_page_served(account.name(), page.current);
            let mut served = serde_json::to_value(&orders).unwrap_or(Value::Null);
            state
                .oddities
                .bend_orders(account.name(), page.current, &mut served);
            Reply::ok(&served)
        }
    };
    Ok(Handled {
        reply,
        page: Some(page),
    })
}

fn categories(
    state: &SimState,
    account: &AccountState,
    payload: &Value,
    count: bool,
) -> Result<Handled, FilterError> {
    let filters = query::filters(payload)?;
    let page = read_page_of(state, account, &filters, count)?;
    let id = query::category_id(&filters)?;
    // Only active (allowed) categories are listed, as eMAG does without parameters.
    let mut selected: Vec<_> = state
        .categories
        .iter()
        .filter(|c| id.map_or(c.is_allowed == 1, |id| c.id == id))
        .cloned()
        .collect();
    if id.is_none() {
        // Characteristic values are only sent for a single-category read.
        for category in &mut selected {
            for characteristic in &mut category.characteristics {
                characteristic.values.clear();
            }
        }
    }
    let reply = if count {
        Reply::ok(&page.count_result(selected.len()))
    } else {
        let mut served = serde_json::to_value(page.slice(&selected)).unwrap_or(Value::Null);
        state.oddities.bend_categories(account.name(), &mut served);
        Reply::ok(&served)
    };
    Ok(Handled {
        reply,
        page: Some(page),
    })
}

fn returns(
    state: &SimState,
    account: &AccountState,
    payload: &Value,
    count: bool,
) -> Result<Handled, FilterError> {
    let filters = query::filters(payload)?;
    let page = read_page_of(state, account, &filters, count)?;
    let filter = RmaFilter::parse(&filters)?;
    let data = account.read();
    let matching: Vec<_> = data.returns.iter().filter(|r| filter.matches(r)).collect();
    let reply = if count {
        Reply::ok(&page.count_result(matching.len()))
    } else {
        Reply::ok(page.slice(&matching))
    };
    Ok(Handled {
        reply,
        page: Some(page),
    })
}

fn product_offer_save(account: &AccountState, payload: &Value) -> Reply {
    let items = match save::entities(payload) {
        Ok(items) => items,
        Err(message) => return Reply::error(message),
    };
    let report = save::save_offers(&mut account.write(), account.kind(), &items);
    if report.is_error {
        Reply::errors(report.messages)
    } else {
        Reply::ok(&[] as &[Value])
    }
}

fn light_save(account: &AccountState, payload: &Value) -> Reply {
    let items = match save::entities(payload) {
        Ok(items) => items,
        Err(message) => return Reply::error(message),
    };
    let results = save::light_save(&mut account.write(), account.kind(), &items);
    Reply::ok_with_messages(Vec::new(), &results)
}

fn offer_stock(account: &AccountState, id: Option<u32>, payload: &Value) -> Reply {
    let not_found = || Reply::Bare {
        status: axum::http::StatusCode::NOT_FOUND,
        body: serde_json::json!({"message": "This offer does not exist"}),
    };
    let Some(id) = id else {
        return not_found();
    };
    if !payload.is_object() {
        return Reply::invalid_content();
    }
    match save::patch_stock(&mut account.write(), account.kind(), id, payload) {
        StockPatch::Updated => Reply::NoContent,
        StockPatch::UnknownOffer => not_found(),
        StockPatch::Rejected(message) => Reply::Bare {
            status: axum::http::StatusCode::BAD_REQUEST,
            body: serde_json::json!({
                "message": "Validation errors in your request",
                "errors": [{"message": message, "field": "stock"}],
            }),
        },
    }
}

fn acknowledge(state: &SimState, account: &AccountState, id: Option<u64>) -> Reply {
    let Some(id) = id else {
        return Reply::error("Invalid order id");
    };
    let now = state.clock.now();
    let mut data = account.write();
    let Some(order) = data.order(id) else {
        return Reply::error(format!("Order {id} does not exist"));
    };
    if order.order_type != 3 {
        return Reply::error(format!(
            "Order {id} is fulfilled by eMAG and cannot be acknowledged"
        ));
    }
    if order.status != 1 {
        return Reply::error(format!(
            "Order {id} cannot be acknowledged in status {}",
            order.status
        ));
    }
    match data.set_order_status(id, 2, now) {
        Ok(_) => Reply::ok(&[] as &[Value]),
        Err(e) => Reply::error(e.to_string()),
    }
}
