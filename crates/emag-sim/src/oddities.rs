//! Odd items: how a real answer can differ from what eMAG documents, applied to chosen offers
//! and orders as they are served (issue 9, point 6). The stored data stays as it was; only
//! the JSON on the wire is bent, so counts and pages stay what they were and a client must
//! cope with the one odd item without losing the rest.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How one served item is bent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "odd", rename_all = "snake_case")]
pub enum Oddity {
    /// Offer `id` is served with an id above every documented range (2^40 + id).
    OfferIdOutOfRange { id: u32 },
    /// Offer `id` is served with a sale price no decimal type holds (1e40).
    OfferPriceOverflow { id: u32 },
    /// Order `id` is served with its first line's `id` missing.
    OrderLineWithoutId { id: u64 },
    /// Order `id` is served with its second line carrying the first line's id.
    OrderDuplicateLineId { id: u64 },
    /// Order `id` is served with a line price no decimal type holds.
    OrderPriceOverflow { id: u64 },
    /// Offer `id` is served with a NUL character (`\u0000`) in its name.
    OfferNameWithNul { id: u32 },
    /// Order `id` is served with a NUL character in its customer's name and its first line's.
    OrderNamesWithNul { id: u64 },
    /// Category `id` is served with a NUL character in its name (reference data).
    CategoryNameWithNul { id: u32 },
    /// The next `order/read` answer for page `page` that holds more than one order is cut
    /// to half of them (once): a page that comes short in the middle of a window.
    OrderPageCut { page: u32 },
}

/// The oddities in force, per account.
#[derive(Debug, Default)]
pub(crate) struct Oddities {
    inner: Mutex<Vec<(String, Oddity)>>,
}

/// Puts a NUL character into the middle of a string value.
fn with_nul(value: &mut Value) {
    if let Value::String(s) = value {
        let at = s
            .char_indices()
            .nth(s.chars().count() / 2)
            .map_or(s.len(), |(i, _)| i);
        s.insert(at, '\0');
    }
}

/// A price far beyond every decimal type's range.
const OVERFLOWING_PRICE: &str = "1e40";

impl Oddities {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Oddity)>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn add(&self, account: &str, oddity: Oddity) {
        self.lock().push((account.to_owned(), oddity));
    }

    /// Bends the served offers of `account` (a JSON array) in place.
    pub(crate) fn bend_offers(&self, account: &str, items: &mut Value) {
        let active: Vec<Oddity> = self.for_account(account);
        if active.is_empty() {
            return;
        }
        for item in items.as_array_mut().into_iter().flatten() {
            let Some(id) = item.get("id").and_then(Value::as_u64) else {
                continue;
            };
            for odd in &active {
                match *odd {
                    Oddity::OfferIdOutOfRange { id: o } if u64::from(o) == id => {
                        item["id"] = Value::from((1_u64 << 40) + id);
                    }
                    Oddity::OfferPriceOverflow { id: o } if u64::from(o) == id => {
                        item["sale_price"] = number(OVERFLOWING_PRICE);
                    }
                    Oddity::OfferNameWithNul { id: o } if u64::from(o) == id => {
                        with_nul(&mut item["name"]);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Bends the served categories of `account` (a JSON array) in place.
    pub(crate) fn bend_categories(&self, account: &str, items: &mut Value) {
        let active: Vec<Oddity> = self.for_account(account);
        for item in items.as_array_mut().into_iter().flatten() {
            let Some(id) = item.get("id").and_then(Value::as_u64) else {
                continue;
            };
            for odd in &active {
                if let Oddity::CategoryNameWithNul { id: o } = *odd {
                    if u64::from(o) == id {
                        with_nul(&mut item["name"]);
                    }
                }
            }
        }
    }

    /// Bends the served orders of `account`, page `page` (a JSON array), in place.
    pub(crate) fn bend_orders(&self, account: &str, page: u32, items: &mut Value) {
        let active: Vec<Oddity> = self.for_account(account);
        if active.is_empty() {
            return;
        }
        let len = items.as_array().map_or(0, Vec::len);
        if len > 1 && self.take(account, Oddity::OrderPageCut { page }) {
            if let Some(list) = items.as_array_mut() {
                list.truncate(len / 2);
            }
        }
        for item in items.as_array_mut().into_iter().flatten() {
            let Some(id) = item.get("id").and_then(Value::as_u64) else {
                continue;
            };
            for odd in &active {
                let lines = item.get_mut("products").and_then(Value::as_array_mut);
                match (*odd, lines) {
                    (Oddity::OrderLineWithoutId { id: o }, Some(lines)) if o == id => {
                        if let Some(Value::Object(first)) = lines.first_mut() {
                            first.remove("id");
                        }
                    }
                    (Oddity::OrderDuplicateLineId { id: o }, Some(lines))
                        if o == id && lines.len() >= 2 =>
                    {
                        let first = lines[0]["id"].clone();
                        lines[1]["id"] = first;
                    }
                    (Oddity::OrderPriceOverflow { id: o }, Some(lines)) if o == id => {
                        if let Some(first) = lines.first_mut() {
                            first["sale_price"] = Value::from(OVERFLOWING_PRICE);
                        }
                    }
                    (Oddity::OrderNamesWithNul { id: o }, lines) if o == id => {
                        if let Some(first) = lines.and_then(|l| l.first_mut()) {
                            with_nul(&mut first["name"]);
                        }
                        with_nul(&mut item["customer"]["name"]);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Removes a one-shot oddity; whether it was there.
    fn take(&self, account: &str, oddity: Oddity) -> bool {
        let mut all = self.lock();
        match all.iter().position(|(a, o)| a == account && *o == oddity) {
            Some(i) => {
                all.remove(i);
                true
            }
            None => false,
        }
    }

    fn for_account(&self, account: &str) -> Vec<Oddity> {
        self.lock()
            .iter()
            .filter(|(a, _)| a == account)
            .map(|(_, o)| *o)
            .collect()
    }
}

/// A JSON number from its text (serde_json keeps it exact with `arbitrary_precision`, and
/// otherwise as the nearest double, which is just as far out of range).
fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_chosen_items_of_the_chosen_account_are_bent() {
        let odd = Oddities::default();
        odd.add("main", Oddity::OfferIdOutOfRange { id: 2 });
        odd.add("main", Oddity::OrderDuplicateLineId { id: 9 });
        let mut offers = json!([{"id": 1}, {"id": 2}]);
        odd.bend_offers("main", &mut offers);
        assert_eq!(offers, json!([{"id": 1}, {"id": 1_099_511_627_778_u64}]));
        let mut other = json!([{"id": 2}]);
        odd.bend_offers("fbe", &mut other);
        assert_eq!(other, json!([{"id": 2}]));
        let mut orders = json!([{"id": 9, "products": [{"id": 5}, {"id": 6}]}]);
        odd.bend_orders("main", 1, &mut orders);
        assert_eq!(orders[0]["products"][1]["id"], json!(5));
    }

    #[test]
    fn a_page_is_cut_once() {
        let odd = Oddities::default();
        odd.add("main", Oddity::OrderPageCut { page: 2 });
        let page = || json!([{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]);
        let mut first = page();
        odd.bend_orders("main", 1, &mut first);
        assert_eq!(first.as_array().map(Vec::len), Some(4));
        let mut second = page();
        odd.bend_orders("main", 2, &mut second);
        assert_eq!(second, json!([{"id": 1}, {"id": 2}]));
        let mut again = page();
        odd.bend_orders("main", 2, &mut again);
        assert_eq!(again.as_array().map(Vec::len), Some(4));
    }
}
