//! Exact money. eMAG sends offer prices as JSON numbers and order amounts as strings, with up
//! to four decimals; both become a `Decimal` without passing through binary floating point
//! arithmetic.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A decimal amount as eMAG sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Money(pub Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a decimal amount: {0:?}")]
pub struct MoneyParseError(pub String);

impl FromStr for Money {
    type Err = MoneyParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Decimal::from_str_exact(t)
            .or_else(|_| Decimal::from_scientific(t))
            .map(Money)
            .map_err(|_| MoneyParseError(s.to_owned()))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MoneyVisitor;
        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number or a string holding one")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                Ok(Money(Decimal::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                Ok(Money(Decimal::from(v)))
            }
            // serde_json hands non-integers over as f64. Its shortest round-trip text is the
            // literal eMAG wrote for any amount of up to 15 significant digits, so parsing
            // that text gives the exact decimal, never a binary approximation.
            #[allow(clippy::disallowed_types)]
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                if !v.is_finite() {
                    return Err(E::custom("amount is not a finite number"));
                }
                v.to_string().parse().map_err(E::custom)
            }
        }
        d.deserialize_any(MoneyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_strings_give_the_exact_decimal() {
        let n: Money = serde_json::from_str("32.7731").expect("number");
        let s: Money = serde_json::from_str("\"26.4463\"").expect("string");
        let i: Money = serde_json::from_str("15").expect("integer");
        assert_eq!(n.to_string(), "32.7731");
        assert_eq!(s.to_string(), "26.4463");
        assert_eq!(i.to_string(), "15");
        let tricky: Money = serde_json::from_str("0.1").expect("0.1");
        assert_eq!(tricky.0, Decimal::new(1, 1));
        assert!(serde_json::from_str::<Money>("\"abc\"").is_err());
    }
}
