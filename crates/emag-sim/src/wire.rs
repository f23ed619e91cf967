//! Serde helpers for eMAG's wire conventions: offer money travels as JSON numbers, order money
//! as strings with exactly four decimals, datetimes as `YYYY-mm-dd HH:ii:ss` local time.
//!
//! Decoding is lenient on purpose (number or string) because sellers' clients send both and
//! the official PHP samples send everything form-encoded, i.e. as strings. Values are kept as
//! `Decimal` end to end; the only float is the one serde_json needs to print a JSON number.

use std::str::FromStr;

use chrono::NaiveDateTime;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

use crate::clock::DATETIME_FORMAT;

/// Parses a decimal from a JSON value that may be a number or a numeric string.
pub(crate) fn decimal_from_value(value: &serde_json::Value) -> Option<Decimal> {
    match value {
        serde_json::Value::Number(n) => Decimal::from_str(&n.to_string()).ok().or_else(|| {
            n.as_f64()
                .and_then(|f| Decimal::from_str(&f.to_string()).ok())
        }),
        serde_json::Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

/// Formats a decimal the way orders carry money: rounded to and padded to four places.
pub(crate) fn decimal_string4(value: Decimal) -> String {
    let mut rounded = value.round_dp(4);
    rounded.rescale(4);
    rounded.to_string()
}

fn decimal_to_f64(value: Decimal) -> f64 {
    // Shortest round-trip printing of the nearest f64 reproduces up to 4 decimals exactly.
    value.to_f64().unwrap_or(0.0)
}

struct LenientDecimal;

impl<'de> Visitor<'de> for LenientDecimal {
    type Value = Decimal;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a decimal number or a numeric string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        Decimal::from_str(&v.to_string()).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        Decimal::from_str(v.trim()).map_err(E::custom)
    }
}

fn deserialize_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(LenientDecimal)
}

/// Decimal as a JSON number (offers, VAT rates).
pub(crate) mod number {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(decimal_to_f64(*value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        deserialize_lenient(d)
    }
}

/// Optional decimal as a JSON number or `null`.
pub(crate) mod opt_number {
    use super::*;
    use serde::Deserialize;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_f64(decimal_to_f64(*v)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Decimal>, D::Error> {
        let value = Option::<serde_json::Value>::deserialize(d)?;
        match value {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => decimal_from_value(&v)
                .map(Some)
                .ok_or_else(|| de::Error::custom(format!("invalid decimal {v}"))),
        }
    }
}

/// Decimal as a string with exactly four decimals (order money, VAT of order lines).
pub(crate) mod string4 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&decimal_string4(*value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        deserialize_lenient(d)
    }
}

/// Decimal that travels as a plain string (mutations, admin bodies): exact both ways.
pub(crate) mod lenient {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        deserialize_lenient(d)
    }
}

/// `YYYY-mm-dd HH:ii:ss` datetimes.
pub(crate) mod datetime {
    use super::*;
    use serde::Deserialize;

    pub(crate) fn serialize<S: Serializer>(value: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&value.format(DATETIME_FORMAT))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let raw = String::deserialize(d)?;
        NaiveDateTime::parse_from_str(&raw, DATETIME_FORMAT).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_money_is_padded_to_four_decimals() {
        assert_eq!(decimal_string4(Decimal::new(21, 2)), "0.2100");
        assert_eq!(decimal_string4(Decimal::new(327731, 4)), "32.7731");
        assert_eq!(decimal_string4(Decimal::new(-5, 0)), "-5.0000");
    }

    #[test]
    fn decimals_decode_from_numbers_and_strings_exactly() {
        let from_number = decimal_from_value(&serde_json::json!(32.7731));
        let from_string = decimal_from_value(&serde_json::json!("32.7731"));
        assert_eq!(from_number, Some(Decimal::new(327731, 4)));
        assert_eq!(from_string, Some(Decimal::new(327731, 4)));
    }
}
