//! Exact money. eMAG sends offer prices as JSON numbers and order amounts as strings, with up
//! to four decimals; both become a `Decimal` from the text eMAG wrote, without passing
//! through binary floating point.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

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
    /// From the literal eMAG wrote, never through binary floating point: a JSON number is
    /// read as its text (`Box<RawValue>`), so `12345678901234567.89` stays exactly that
    /// (through `f64` it became `12345678901234568`), and an amount `Decimal` cannot hold
    /// exactly is refused instead of rounded. The error never repeats the value.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        let refused = |what: &str| de::Error::custom(format!("not a decimal amount: {what}"));
        match text.as_bytes().first() {
            Some(b'"') => {
                let s: String = serde_json::from_str(text).map_err(|_| refused("a string"))?;
                s.parse()
                    .map_err(|_| refused("a string that holds no exact decimal"))
            }
            Some(b'-' | b'0'..=b'9') => text
                .parse()
                .map_err(|_| refused("a number no decimal of 28 digits holds exactly")),
            Some(b't' | b'f') => Err(refused("a boolean")),
            Some(b'[') => Err(refused("a list")),
            Some(b'{') => Err(refused("an object")),
            _ => Err(refused("null")),
        }
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

    #[test]
    fn amounts_past_fifteen_digits_are_read_exactly_or_refused_never_rounded() {
        // Found by the fuzzer (issue 11): these passed through f64 and came out rounded.
        for literal in [
            "12345678901234567.89",
            "121666.128540506429",
            "-918679324844962.912",
            "79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "1e3",
        ] {
            let m: Money = serde_json::from_str(literal).expect(literal);
            let exact = Decimal::from_str_exact(literal)
                .or_else(|_| Decimal::from_scientific(literal))
                .expect("exact");
            assert_eq!(m.0, exact, "{literal}");
        }
        for literal in [
            "3.141592653589793238462643383279",
            "1e40",
            "79228162514264337593543950336",
        ] {
            let e = serde_json::from_str::<Money>(literal).expect_err(literal);
            assert!(
                !e.to_string().contains("3.14") && !e.to_string().contains("7922"),
                "{e}"
            );
        }
        // In an object, as the engine reads prices; null is no amount.
        #[derive(serde::Deserialize)]
        struct Offer {
            sale_price: Option<Money>,
        }
        let o: Offer =
            serde_json::from_str(r#"{"sale_price": 26.44630000000000001}"#).expect("offer");
        assert_eq!(
            o.sale_price.map(|m| m.to_string()).as_deref(),
            Some("26.44630000000000001")
        );
        let o: Offer = serde_json::from_str(r#"{"sale_price": null}"#).expect("null");
        assert!(o.sale_price.is_none());
        let e = serde_json::from_str::<Offer>(r#"{"sale_price": "Ana Pop"}"#)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.is_some_and(|e| !e.contains("Ana")),
            "the value is never repeated"
        );
    }
}
