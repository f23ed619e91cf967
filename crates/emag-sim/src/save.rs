//! Offer writes through the API: `product_offer/save` (create or full update),
//! `offer/save` (the light API: price/stock/status of existing offers, per-item results) and
//! `PATCH offer_stock/{id}`.
//!
//! Every item is validated on a copy and committed only when all its rules hold, so a
//! rejected item never leaves a half-applied offer behind. FBE stock belongs to eMAG's
//! warehouses: resending the current value is accepted (MagFlow does that), changing it is not.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::catalog;
use crate::config::AccountKind;
use crate::data::{offer_validation_status, validation_status, MAX_OFFER_ID};
use crate::model::{HandlingTimeEntry, Offer, OfferDetails, StockEntry};
use crate::query::as_u64;
use crate::state::{set_offer_stock, AccountData};
use crate::wire::decimal_from_value;

/// eMAG's documented cap on entities per save request.
pub(crate) const MAX_SAVE_ENTITIES: usize = 50;

const FBE_STOCK_MESSAGE: &str =
    "Stock of offers fulfilled by eMAG (FBE) is managed by eMAG warehouses; stock has NOT been changed.";

/// Result of a whole save request that is answered with one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SaveReport {
    pub(crate) messages: Vec<String>,
    pub(crate) is_error: bool,
}

/// The entities of a save payload: a list, or a single object taken as a list of one.
pub(crate) fn entities(payload: &Value) -> Result<Vec<Value>, String> {
    let items = match payload {
        Value::Array(items) => items.clone(),
        Value::Object(map) if map.is_empty() => Vec::new(),
        Value::Object(_) => vec![payload.clone()],
        _ => return Err("Invalid request: data must be a list of entities".to_owned()),
    };
    if items.is_empty() {
        return Err("No entities were sent".to_owned());
    }
    if items.len() > MAX_SAVE_ENTITIES {
        return Err(format!(
            "Maximum {MAX_SAVE_ENTITIES} entities per request exceeded ({} sent)",
            items.len()
        ));
    }
    Ok(items)
}

fn offer_id(item: &Value) -> Option<u32> {
    item.get("id")
        .and_then(as_u64)
        .filter(|&id| (1..=u64::from(MAX_OFFER_ID)).contains(&id))
        .and_then(|id| u32::try_from(id).ok())
}

fn price(value: &Value, field: &str) -> Result<Decimal, String> {
    let price = decimal_from_value(value).ok_or_else(|| format!("{field} must be a number"))?;
    if price <= Decimal::ZERO {
        return Err(format!("{field} must be greater than 0"));
    }
    if price.normalize().scale() > 4 {
        return Err(format!("{field} must have at most 4 decimals"));
    }
    Ok(price)
}

/// Stock as `N`, `[{"warehouse_id":1,"value":N}]` or `{"value":N}`.
fn stock_value(value: &Value) -> Result<u32, String> {
    let raw = match value {
        Value::Array(items) => items
            .first()
            .and_then(|s| s.get("value"))
            .cloned()
            .unwrap_or(Value::Null),
        Value::Object(map) => map.get("value").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    let negative = raw.as_f64().is_some_and(|n| n < 0.0)
        || raw.as_str().is_some_and(|s| s.trim().starts_with('-'));
    if negative {
        return Err("Stock should be 0 or more".to_owned());
    }
    as_u64(&raw)
        .filter(|&v| v <= 65_535)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| "Stock should be an integer between 0 and 65535".to_owned())
}

fn small_int(value: &Value, field: &str, max: u64) -> Result<u32, String> {
    let raw = match value {
        Value::Array(items) => items
            .first()
            .and_then(|s| s.get("value"))
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    as_u64(&raw)
        .filter(|&v| v <= max)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| format!("{field} should be an integer between 0 and {max}"))
}

/// Rules every stored offer must satisfy.
fn validate_offer(offer: &Offer) -> Result<(), String> {
    if offer.sale_price < offer.min_sale_price || offer.sale_price > offer.max_sale_price {
        return Err("Sale price is outside the min_sale_price / max_sale_price range".to_owned());
    }
    if offer.min_sale_price > offer.max_sale_price {
        return Err("min_sale_price must not exceed max_sale_price".to_owned());
    }
    if offer
        .recommended_price
        .is_some_and(|r| r <= offer.sale_price)
    {
        return Err("Recommended price must be greater than the sale price".to_owned());
    }
    if offer.status > 2 {
        return Err("Status must be 0, 1 or 2".to_owned());
    }
    if !catalog::vat_rates()
        .iter()
        .any(|v| v.vat_id == offer.vat_id)
    {
        return Err(format!("Invalid vat_id {}", offer.vat_id));
    }
    Ok(())
}

/// Applies the light-API fields of `item` to `offer`.
fn apply_light_fields(
    offer: &mut Offer,
    item: &Map<String, Value>,
    kind: AccountKind,
) -> Result<(), String> {
    if let Some(v) = item.get("sale_price") {
        offer.sale_price = price(v, "sale_price")?;
    }
    if let Some(v) = item.get("min_sale_price") {
        offer.min_sale_price = price(v, "min_sale_price")?;
    }
    if let Some(v) = item.get("max_sale_price") {
        offer.max_sale_price = price(v, "max_sale_price")?;
    }
    if let Some(v) = item.get("recommended_price") {
        offer.recommended_price = if v.is_null() {
            None
        } else {
            Some(price(v, "recommended_price")?)
        };
    }
    if let Some(v) = item.get("status") {
        let status = small_int(v, "status", 2)?;
        offer.status = u8::try_from(status).unwrap_or(0);
    }
    if let Some(v) = item.get("vat_id") {
        offer.vat_id = small_int(v, "vat_id", u64::from(u32::MAX))?;
    }
    if let Some(v) = item.get("handling_time") {
        let days = small_int(v, "handling_time", 255)?;
        offer.handling_time = vec![HandlingTimeEntry {
            warehouse_id: 1,
            value: days,
        }];
    }
    if let Some(v) = item.get("warranty") {
        offer.warranty = small_int(v, "warranty", 255)?;
    }
    if let Some(v) = item.get("stock") {
        let stock = stock_value(v)?;
        let current = offer.stock.first().map_or(0, |s| s.value);
        if kind == AccountKind::Fbe && stock != current {
            return Err(FBE_STOCK_MESSAGE.to_owned());
        }
        set_offer_stock(offer, stock);
    }
    if offer.buy_button_rank <= 1 {
        offer.best_offer_sale_price = offer.sale_price;
    }
    Ok(())
}

/// Applies content fields (name, brand, …) of a product_offer/save item.
fn apply_content_fields(offer: &mut Offer, item: &Map<String, Value>) -> Result<(), String> {
    let text = |key: &str, max: usize| -> Result<Option<String>, String> {
        match item.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => {
                Ok(Some(s.clone()))
            }
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("{key} must be a string of 1 to {max} characters")),
        }
    };
    if let Some(name) = text("name", 255)? {
        offer.name = name;
    }
    if let Some(brand) = text("brand", 255)? {
        offer.brand = brand;
    }
    if let Some(description) = text("description", 100_000)? {
        offer.description = description;
    }
    if let Some(part_number) = text("part_number", 25)? {
        // eMAG strips spaces, commas and semicolons from part numbers on save.
        offer.part_number = part_number
            .chars()
            .filter(|c| !matches!(c, ' ' | ',' | ';'))
            .collect();
    }
    if let Some(pnk) = text("part_number_key", 32)? {
        offer.part_number_key = pnk;
    }
    if let Some(v) = item.get("category_id") {
        offer.category_id = small_int(v, "category_id", 65_535)?;
    }
    if let Some(v) = item.get("ean") {
        let eans: Vec<String> = match v {
            Value::Array(items) => items
                .iter()
                .filter_map(|e| {
                    e.as_str()
                        .map(str::to_owned)
                        .or_else(|| as_u64(e).map(|n| n.to_string()))
                })
                .collect(),
            Value::String(s) => vec![s.clone()],
            other => as_u64(other)
                .map(|n| vec![n.to_string()])
                .unwrap_or_default(),
        };
        if eans
            .iter()
            .any(|e| !(6..=14).contains(&e.len()) || !e.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("EAN codes must have 6 to 14 digits".to_owned());
        }
        offer.ean = eans;
    }
    Ok(())
}

fn new_offer(id: u32, salts_detail: u64) -> Offer {
    Offer {
        id,
        part_number: String::new(),
        part_number_key: String::new(),
        name: String::new(),
        brand: String::new(),
        description: String::new(),
        url: String::new(),
        category_id: 0,
        vendor_category_id: None,
        ean: Vec::new(),
        status: 1,
        sale_price: Decimal::ONE,
        recommended_price: None,
        min_sale_price: Decimal::ONE,
        max_sale_price: Decimal::ONE,
        best_offer_sale_price: Decimal::ONE,
        best_offer_recommended_price: None,
        currency: "RON".to_owned(),
        vat_id: 9,
        stock: vec![StockEntry {
            warehouse_id: 1,
            value: 0,
        }],
        general_stock: 0,
        estimated_stock: 0,
        handling_time: vec![HandlingTimeEntry {
            warehouse_id: 1,
            value: 0,
        }],
        warranty: 24,
        images: Vec::new(),
        characteristics: Vec::new(),
        number_of_offers: 1,
        buy_button_rank: 1,
        ownership: 1,
        // New documentation waits for eMAG's validation.
        validation_status: validation_status(1),
        translation_validation_status: validation_status(1),
        offer_validation_status: offer_validation_status(1),
        genius_eligibility: 0,
        genius_eligibility_type: 1,
        genius_computed: 0,
        manufacturer: false,
        eu_representative: false,
        offer_details: OfferDetails { id: salts_detail },
    }
}

/// Checks one product_offer/save item and returns the offer to store.
fn save_one(data: &AccountData, kind: AccountKind, item: &Value) -> Result<Offer, String> {
    let map = item.as_object().ok_or("each entity must be an object")?;
    let id = offer_id(item)
        .ok_or_else(|| format!("id is required and must be between 1 and {MAX_OFFER_ID}"))?;
    let mut offer = match data.offer(id) {
        Some(existing) => existing,
        None => {
            let missing: Vec<&str> = [
                "status",
                "sale_price",
                "min_sale_price",
                "max_sale_price",
                "vat_id",
                "stock",
            ]
            .into_iter()
            .filter(|k| map.get(*k).is_none_or(Value::is_null))
            .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "Offer {id}: missing required fields for a new offer: {}",
                    missing.join(", ")
                ));
            }
            let attaches = map.contains_key("part_number_key") || map.contains_key("ean");
            let documents = ["name", "brand", "part_number", "category_id"]
                .iter()
                .all(|k| map.contains_key(*k));
            if !attaches && !documents {
                return Err(format!(
                    "Offer {id}: a new offer needs part_number_key or ean, or name, brand, part_number and category_id"
                ));
            }
            if map.get("status").and_then(as_u64) == Some(2) {
                return Err(format!("Offer {id}: status 2 is only allowed on update"));
            }
            let mut offer = new_offer(id, 900_000_000 + u64::from(id));
            if kind == AccountKind::Fbe {
                // The first stock of an FBE offer is whatever eMAG's warehouse reports: 0.
                let mut without_stock = map.clone();
                without_stock.remove("stock");
                apply_content_fields(&mut offer, &without_stock)
                    .map_err(|e| format!("Offer {id}: {e}"))?;
                apply_light_fields(&mut offer, &without_stock, kind)
                    .map_err(|e| format!("Offer {id}: {e}"))?;
                validate_offer(&offer).map_err(|e| format!("Offer {id}: {e}"))?;
                return Ok(offer);
            }
            offer
        }
    };
    apply_content_fields(&mut offer, map).map_err(|e| format!("Offer {id}: {e}"))?;
    apply_light_fields(&mut offer, map, kind).map_err(|e| format!("Offer {id}: {e}"))?;
    validate_offer(&offer).map_err(|e| format!("Offer {id}: {e}"))?;
    Ok(offer)
}

/// product_offer/save: valid items are stored, invalid ones reported; `isError` when any
/// item failed (eMAG also stores offers whose documentation has errors).
pub(crate) fn save_offers(
    data: &mut AccountData,
    kind: AccountKind,
    items: &[Value],
) -> SaveReport {
    let mut messages = Vec::new();
    for item in items {
        match save_one(data, kind, item) {
            Ok(offer) => match data.offer_mut(offer.id) {
                Some(slot) => *slot = offer,
                None => data.insert_offer(offer),
            },
            Err(message) => messages.push(message),
        }
    }
    SaveReport {
        is_error: !messages.is_empty(),
        messages,
    }
}

/// offer/save (light API): per-item results keyed by offer id.
pub(crate) fn light_save(data: &mut AccountData, kind: AccountKind, items: &[Value]) -> Value {
    let mut results = Map::new();
    for (position, item) in items.iter().enumerate() {
        let key = item
            .get("id")
            .and_then(as_u64)
            .map_or_else(|| position.to_string(), |id| id.to_string());
        let outcome = (|| -> Result<String, String> {
            let map = item.as_object().ok_or("Each entity must be an object")?;
            let id = offer_id(item).ok_or_else(|| {
                format!("id is required and must be between 1 and {MAX_OFFER_ID}")
            })?;
            let mut offer = data
                .offer(id)
                .ok_or_else(|| format!("Offer {id} does not exist"))?;
            apply_light_fields(&mut offer, map, kind)?;
            validate_offer(&offer)?;
            if let Some(slot) = data.offer_mut(id) {
                *slot = offer;
            }
            Ok(format!("Offer {id} updated successfully"))
        })();
        let entry = match outcome {
            Ok(message) => json!({"isError": false, "messages": [message]}),
            Err(message) => json!({"isError": true, "messages": [message]}),
        };
        results.insert(key, entry);
    }
    Value::Object(results)
}

/// Outcome of `PATCH offer_stock/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StockPatch {
    Updated,
    UnknownOffer,
    /// 400 "Validation errors in your request" with this message for field `stock`.
    Rejected(String),
}

pub(crate) fn patch_stock(
    data: &mut AccountData,
    kind: AccountKind,
    id: u32,
    body: &Value,
) -> StockPatch {
    let Some(current) = data.offer(id) else {
        return StockPatch::UnknownOffer;
    };
    let Some(raw) = body.get("stock").or_else(|| body.get("value")) else {
        return StockPatch::Rejected("stock is required".to_owned());
    };
    let stock = match stock_value(raw) {
        Ok(stock) => stock,
        Err(message) => return StockPatch::Rejected(message),
    };
    if kind == AccountKind::Fbe && current.stock.first().map_or(0, |s| s.value) != stock {
        return StockPatch::Rejected(FBE_STOCK_MESSAGE.to_owned());
    }
    if let Some(offer) = data.offer_mut(id) {
        set_offer_stock(offer, stock);
    }
    StockPatch::Updated
}
