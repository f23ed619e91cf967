//! Amounts: `emag_client::Money` from text, from a JSON string and from a JSON number (offer
//! prices travel as numbers, order money as strings).
//!
//! Oracles: money agrees with rust_decimal — an amount that `Decimal` holds exactly (the
//! literal by `from_str_exact`, or `from_scientific` for an exponent) is read as exactly that
//! number, whichever way it travelled; an amount it cannot hold is refused, never rounded
//! silently; a string and the same text as a JSON string give the same result; what is read
//! prints back to text that reads the same amount.

use std::str::FromStr;

use emag_client::Money;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::items::{exact_decimal, exact_decimal_text};
use crate::corpus::Corpus;
use crate::mutate;
use crate::{Harness, Outcome, Problem};

/// One amount, as it may arrive.
#[derive(Debug, Clone)]
pub(crate) enum Amount {
    /// Text, as `Money::from_str` reads it.
    Text(String),
    /// A JSON document that should be a number literal.
    Number(String),
    /// Text sent as a JSON string.
    JsonString(String),
}

pub(crate) struct MoneyTarget {
    numbers: Vec<String>,
    strings: Vec<String>,
    kept: Vec<Amount>,
}

impl MoneyTarget {
    pub fn new(corpus: &Corpus) -> MoneyTarget {
        MoneyTarget {
            numbers: corpus.number_prices.clone(),
            strings: corpus.string_prices.clone(),
            kept: Vec::new(),
        }
    }

    pub fn seeds(&self) -> usize {
        self.numbers.len() + self.strings.len()
    }
}

fn signature(amount: &Amount, r: &Result<Money, String>) -> String {
    let kind = match amount {
        Amount::Text(_) => "text",
        Amount::Number(_) => "number",
        Amount::JsonString(_) => "string",
    };
    match r {
        Ok(m) => format!("{kind} ok scale {}", m.0.scale()),
        Err(e) => format!("{kind} err {}", crate::shape(e, 40)),
    }
}

impl Harness for MoneyTarget {
    type Input = Amount;

    fn generate(&mut self, rng: &mut ChaCha8Rng) -> Amount {
        let text = match rng.gen_range(0..10) {
            0..=3 => mutate::random_decimal(rng),
            4 => self.numbers.choose(rng).cloned().unwrap_or_default(),
            5 => self.strings.choose(rng).cloned().unwrap_or_default(),
            6 => mutate::interesting_number(rng),
            7 => mutate::interesting_string(rng),
            8 => {
                let mut bytes = mutate::random_decimal(rng).into_bytes();
                for _ in 0..rng.gen_range(1..=3) {
                    mutate::mutate_bytes(rng, &mut bytes, &[]);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => match self.kept.choose(rng) {
                Some(Amount::Text(t) | Amount::Number(t) | Amount::JsonString(t)) => {
                    let mut bytes = t.clone().into_bytes();
                    mutate::mutate_bytes(rng, &mut bytes, &[]);
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                None => mutate::random_decimal(rng),
            },
        };
        match rng.gen_range(0..3) {
            0 => Amount::Text(text),
            1 => Amount::Number(text),
            _ => Amount::JsonString(text),
        }
    }

    fn execute(&mut self, amount: &Amount) -> Outcome {
        let mut out = Outcome::default();
        let r: Result<Money, String> = match amount {
            Amount::Text(t) => Money::from_str(t).map_err(|e| e.to_string()),
            Amount::Number(n) => serde_json::from_str::<Money>(n).map_err(|e| e.to_string()),
            Amount::JsonString(s) => {
                let doc = serde_json::to_string(s).unwrap_or_default();
                let r = serde_json::from_str::<Money>(&doc).map_err(|e| e.to_string());
                let text = Money::from_str(s).map_err(|e| e.to_string());
                out.check(
                    r.as_ref().ok() == text.as_ref().ok(),
                    "string and text disagree",
                    || format!("as JSON {r:?}, as text {text:?}"),
                );
                r
            }
        };
        out.signature = signature(amount, &r);
        let (literal, is_json_number) = match amount {
            Amount::Text(t) | Amount::JsonString(t) => (t.as_str(), false),
            Amount::Number(n) => (n.as_str(), true),
        };
        // A JSON number must be one for the oracle to apply (serde_json decides).
        let applies = !is_json_number
            || matches!(
                serde_json::from_str::<serde_json::Value>(literal),
                Ok(serde_json::Value::Number(_))
            );
        if applies {
            let exact = if is_json_number {
                exact_decimal(literal)
            } else {
                exact_decimal_text(literal)
            };
            match (&r, exact) {
                (Ok(m), Some(d)) => {
                    out.check(m.0 == d, "money disagrees with rust_decimal", || {
                        format!("{literal} read as {m}, exactly {d}")
                    });
                }
                (Ok(m), None) => out.problems.push(Problem::new(
                    "money rounded silently",
                    format!("{literal} is no exact decimal, read as {m}"),
                )),
                (Err(e), Some(d)) => out.problems.push(Problem::new(
                    "money refused",
                    format!("{literal} (exactly {d}) refused: {e}"),
                )),
                (Err(_), None) => {}
            }
        }
        if let Ok(m) = &r {
            let back = Money::from_str(&m.to_string());
            out.check(back.as_ref() == Ok(m), "money does not print back", || {
                format!("{m} reads back as {back:?}")
            });
        }
        out
    }

    fn show(&self, amount: &Amount) -> String {
        format!("{amount:?}")
    }

    fn keep(&mut self, amount: Amount) {
        if self.kept.len() < crate::POOL_MAX {
            self.kept.push(amount);
        }
    }
}
