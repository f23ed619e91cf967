//! Offer, order and return items through the engine's own decoders
//! (`emag_sync::sync::items`), as one item of `results` reaches them.
//!
//! Oracles: an odd item's reason never quotes customer data (a canary), unless the canary sits
//! in an id, which reasons may name; its item id is the one sent. A decoded row keeps the
//! item's text and hash, its id, every amount exactly as sent (the decimal of the literal,
//! by rust_decimal), one line per order line with distinct ids, and no NUL character in any
//! text column (PostgreSQL refuses those: the run would fail on one backend only).

use domain::OrderType;
use emag_sync::sync::items::{content_hash, offer_row, order_row, return_row, Odd};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{show_bytes, Pool};
use crate::corpus::Corpus;
use crate::{canary, shape, Harness, Outcome, Problem, Target};

/// The decimal a money literal as sent denotes (a JSON number, or a string holding one), or
/// `None` when rust_decimal cannot hold it exactly.
pub(crate) fn exact_decimal(literal: &str) -> Option<Decimal> {
    if literal.starts_with('"') {
        exact_decimal_text(&serde_json::from_str::<String>(literal).ok()?)
    } else {
        exact_decimal_text(literal)
    }
}

/// The decimal `text` denotes (blanks around it allowed), or `None` when rust_decimal cannot
/// hold it exactly.
pub(crate) fn exact_decimal_text(text: &str) -> Option<Decimal> {
    let t = text.trim();
    Decimal::from_str_exact(t)
        .or_else(|_| Decimal::from_scientific(t))
        .ok()
}

/// Whether the amount a row holds is the one sent.
fn same_amount(row: Option<&str>, sent: Option<&RawValue>) -> Result<(), String> {
    let sent = sent.map(RawValue::get).filter(|s| *s != "null");
    match (row, sent) {
        (None, None) => Ok(()),
        (Some(r), Some(s)) => match (r.parse::<Decimal>(), exact_decimal(s)) {
            (Ok(a), Some(b)) if a == b => Ok(()),
            (Ok(_), None) => Err(format!("{s} is no exact decimal, stored as {r}")),
            (a, b) => Err(format!("sent {s} (exactly {b:?}), stored {r} ({a:?})")),
        },
        (r, s) => Err(format!("sent {s:?}, stored {r:?}")),
    }
}

/// The text of every value under an `id` or `emag_id` key of `v` (reasons may quote ids).
fn id_texts(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "id" || k == "emag_id" {
                    out.push_str(&v.to_string());
                }
                id_texts(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| id_texts(i, out)),
        _ => {}
    }
}

fn no_nul(out: &mut Outcome, column: &str, value: Option<&str>) {
    if value.is_some_and(|v| v.contains('\0')) {
        out.problems.push(Problem::new(
            "NUL in a text column",
            format!("{column}: {value:?}"),
        ));
    }
}

#[derive(Deserialize)]
struct OfferMoney<'a> {
    #[serde(borrow, default)]
    sale_price: Option<&'a RawValue>,
    #[serde(borrow, default)]
    recommended_price: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OrderMoney<'a> {
    #[serde(borrow, default)]
    products: Option<Vec<LineMoney<'a>>>,
}

#[derive(Deserialize)]
struct LineMoney<'a> {
    #[serde(borrow, default)]
    sale_price: Option<&'a RawValue>,
}

/// The offers, orders or returns target.
pub(crate) struct Items {
    target: Target,
    pool: Pool,
}

impl Items {
    pub fn new(target: Target, corpus: &Corpus) -> Items {
        let seeds = match target {
            Target::Offers => &corpus.offers,
            Target::Orders => &corpus.orders,
            _ => &corpus.returns,
        };
        Items {
            target,
            pool: Pool::new(seeds.iter().map(|s| (3, s.clone().into_bytes()))),
        }
    }

    pub fn seeds(&self) -> usize {
        self.pool.seeds()
    }

    fn odd(&self, out: &mut Outcome, raw: &str, parsed: Option<&Value>, odd: &Odd) {
        if let Some(mark) = canary::found(&odd.reason) {
            let mut ids = String::new();
            match parsed {
                Some(v) => id_texts(v, &mut ids),
                // Not a value serde_json holds (a number past f64, nesting past 128): the
                // text after every id key.
                None => {
                    for key in ["\"id\":", "\"emag_id\":"] {
                        for (at, _) in raw.match_indices(key) {
                            ids.extend(raw[at..].chars().skip(key.len()).take(40));
                        }
                    }
                }
            }
            if !ids.contains(mark) {
                out.problems.push(Problem::new(
                    "customer data in a quarantine reason",
                    odd.reason.clone(),
                ));
            }
        }
        if let (Some(id), Some(parsed)) = (&odd.item_id, parsed) {
            let sent = Some(parsed)
                .and_then(|v| v.get("id").or_else(|| v.get("emag_id")))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            out.check(
                sent.as_deref() == Some(id.as_str()),
                "odd item under another id",
                || format!("{id} for {}", raw.chars().take(200).collect::<String>()),
            );
        }
    }
}

impl Harness for Items {
    type Input = (u16, Vec<u8>);

    fn generate(&mut self, rng: &mut ChaCha8Rng) -> (u16, Vec<u8>) {
        let (_, bytes) = self.pool.mutant(rng);
        (if rng.gen_bool(0.5) { 2 } else { 3 }, bytes)
    }

    fn execute(&mut self, (asked, bytes): &(u16, Vec<u8>)) -> Outcome {
        let raw = String::from_utf8_lossy(bytes);
        let raw = raw.as_ref();
        let asked = if *asked == 2 {
            OrderType::Fbe
        } else {
            OrderType::Seller
        };
        let parsed = serde_json::from_str::<Value>(raw).ok();
        let mut out = Outcome::default();
        let sig = |r: Result<(), &Odd>| match r {
            Ok(()) => "ok".to_owned(),
            Err(odd) => format!("odd {} {}", odd.item_id.is_some(), shape(&odd.reason, 80)),
        };
        match self.target {
            Target::Offers => match offer_row(raw) {
                Err(odd) => {
                    out.signature = sig(Err(&odd));
                    self.odd(&mut out, raw, parsed.as_ref(), &odd);
                }
                Ok(row) => {
                    out.signature = sig(Ok(()));
                    out.check(
                        row.data == raw && row.content_hash == content_hash(raw),
                        "row not the item",
                        || "data or hash differ".into(),
                    );
                    let id = parsed
                        .as_ref()
                        .and_then(|v| v.get("id"))
                        .and_then(Value::as_u64);
                    out.check(
                        parsed.is_none() || id == u64::try_from(row.id).ok(),
                        "row under another id",
                        || format!("{} for {id:?}", row.id),
                    );
                    if let Ok(money) = serde_json::from_str::<OfferMoney<'_>>(raw) {
                        for (column, stored, sent) in [
                            ("sale_price", row.sale_price.as_deref(), money.sale_price),
                            (
                                "recommended_price",
                                row.recommended_price.as_deref(),
                                money.recommended_price,
                            ),
                        ] {
                            if let Err(e) = same_amount(stored, sent) {
                                out.problems.push(Problem::new(
                                    "amount not as sent",
                                    format!("{column}: {e}"),
                                ));
                            }
                        }
                    }
                    for (column, value) in [
                        ("part_number", row.part_number.as_deref()),
                        ("part_number_key", row.part_number_key.as_deref()),
                        ("name", row.name.as_deref()),
                        ("brand", row.brand.as_deref()),
                        ("currency", row.currency.as_deref()),
                        ("ean", Some(row.ean.as_str())),
                    ] {
                        no_nul(&mut out, column, value);
                    }
                }
            },
            Target::Orders => match order_row(raw, asked) {
                Err(odd) => {
                    out.signature = sig(Err(&odd));
                    self.odd(&mut out, raw, parsed.as_ref(), &odd);
                }
                Ok(row) => {
                    out.signature = format!("ok {} lines", row.lines.len().min(3));
                    out.check(
                        row.data == raw && row.content_hash == content_hash(raw),
                        "row not the item",
                        || "data or hash differ".into(),
                    );
                    let id = parsed
                        .as_ref()
                        .and_then(|v| v.get("id"))
                        .and_then(Value::as_u64);
                    out.check(
                        parsed.is_none() || id == u64::try_from(row.id).ok(),
                        "row under another id",
                        || format!("{} for {id:?}", row.id),
                    );
                    let mut ids: Vec<i64> = row.lines.iter().map(|l| l.line_id).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    out.check(
                        ids.len() == row.lines.len(),
                        "order lines under one id",
                        || format!("{} lines, {} ids", row.lines.len(), ids.len()),
                    );
                    match serde_json::from_str::<OrderMoney<'_>>(raw) {
                        Ok(money) => {
                            let sent = money.products.unwrap_or_default();
                            out.check(sent.len() == row.lines.len(), "order lines lost", || {
                                format!("{} sent, {} kept", sent.len(), row.lines.len())
                            });
                            for (line, sent) in row.lines.iter().zip(&sent) {
                                if let Err(e) =
                                    same_amount(line.sale_price.as_deref(), sent.sale_price)
                                {
                                    out.problems.push(Problem::new(
                                        "amount not as sent",
                                        format!("line {}: {e}", line.line_id),
                                    ));
                                }
                            }
                        }
                        Err(e) => out.problems.push(Problem::new(
                            "amount not as sent",
                            format!("lines unreadable: {e}"),
                        )),
                    }
                    for (column, value) in [
                        ("date", row.date.as_deref()),
                        ("modified", row.modified.as_deref()),
                        ("customer_name", row.customer_name.as_deref()),
                    ] {
                        no_nul(&mut out, column, value);
                    }
                    for line in &row.lines {
                        for (column, value) in [
                            ("line part_number", line.part_number.as_deref()),
                            ("line name", line.name.as_deref()),
                            ("line currency", line.currency.as_deref()),
                            ("line vat", line.vat.as_deref()),
                        ] {
                            no_nul(&mut out, column, value);
                        }
                    }
                }
            },
            _ => match return_row(raw, asked) {
                Err(odd) => {
                    out.signature = sig(Err(&odd));
                    self.odd(&mut out, raw, parsed.as_ref(), &odd);
                }
                Ok(row) => {
                    out.signature = sig(Ok(()));
                    out.check(
                        row.data == raw && row.content_hash == content_hash(raw),
                        "row not the item",
                        || "data or hash differ".into(),
                    );
                    no_nul(&mut out, "date", row.date.as_deref());
                }
            },
        }
        out
    }

    fn show(&self, (asked, bytes): &(u16, Vec<u8>)) -> String {
        format!("type {asked}: {}", show_bytes(bytes))
    }

    fn keep(&mut self, (asked, bytes): (u16, Vec<u8>)) {
        self.pool.add(asked, bytes);
    }
}
