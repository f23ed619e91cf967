//! Decoding eMAG's JSON without quoting it. serde's messages quote the value they choke on
//! (`invalid type: string "Ion Popescu, 0722…", expected u64`), and an error ends up in logs,
//! in `runs.error_message` and on the dashboard: customer names, phones and addresses must
//! not. The errors here name the field's path and what was wrong, never the value.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A `T` read from a JSON object only. serde's derived structs also take a JSON list of their
/// fields in order, so `[5, "x"]` read as an offer with id 5 (found by the fuzzer, issue 11):
/// an item, a line or a customer that is not an object is odd, not data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Only(PhantomData)).map(Object)
    }
}

/// An item or answer that did not decode: where, and what kind of problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem} (line {line}, column {column})", .path.as_deref().map(|p| format!("field {p}: ")).unwrap_or_default())]
pub struct DecodeError {
    /// The path of the field, e.g. `products[0].id`; `None` at the top level.
    pub path: Option<String>,
    /// serde's description with every quoted value replaced by `…`.
    pub problem: String,
    pub line: usize,
    pub column: usize,
}

/// Decodes `raw` as a `T`; the error names the failing field's path, not its value.
pub fn decode_json<T: DeserializeOwned>(raw: &str) -> Result<T, DecodeError> {
    let error = |path: Option<String>, e: &serde_json::Error| DecodeError {
        path,
        problem: json_error_without_values(e),
        line: e.line(),
        column: e.column(),
    };
    let mut de = serde_json::Deserializer::from_str(raw);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        error((path != ".").then_some(path), e.inner())
    })?;
    de.end().map_err(|e| error(None, &e))?;
    Ok(value)
}

/// serde_json's message for `e` without the values it quotes and without its position
/// suffix: `invalid type: string "…", expected u64`. Field names (`missing field `id``)
/// stay: they come from our types or are keys, not customer data.
pub fn json_error_without_values(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let text = text.strip_suffix(&suffix).unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A string value, written with Debug escapes: skip to its unescaped end.
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"…\"");
            }
            // `integer `5``, `unknown variant `x``: a value, unless it names a field.
            '`' => {
                let quoted: String = chars.by_ref().take_while(|&c| c != '`').collect();
                if out.ends_with("field ") {
                    out.push('`');
                    out.push_str(&quoted);
                    out.push('`');
                } else {
                    out.push_str("`…`");
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Line {
        id: u64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        id: u64,
        #[serde(default)]
        phone: Option<u64>,
        #[serde(default)]
        products: Vec<Line>,
    }

    #[test]
    fn an_object_is_read_from_an_object_only() {
        let o: Object<Line> = serde_json::from_str(r#"{"id": 5}"#).expect("an object");
        assert_eq!(o.0.id, 5);
        assert!(
            serde_json::from_str::<Line>("[5]").is_ok(),
            "serde's own rule"
        );
        let e = serde_json::from_str::<Object<Line>>("[5]").expect_err("a list");
        assert!(e.to_string().contains("expected an object"), "{e}");
    }

    #[test]
    fn decode_errors_name_the_field_and_never_quote_the_customer_data() {
        for (raw, path, secret) in [
            (
                r#"{"id": 1, "products": [{"id": "Ion Popescu, Str. Lalelelor 3"}]}"#,
                "products[0].id",
                "Popescu",
            ),
            (r#"{"id": 1, "phone": 40722123456.5}"#, "phone", "722123456"),
            (r#"{"id": 1, "phone": true}"#, "phone", "true"),
            (r#"{"id": "0722 123 456"}"#, "id", "123"),
            (r#"{"id": -722123456}"#, "id", "722123456"),
        ] {
            let err = decode_json::<Order>(raw).expect_err(raw);
            let shown = err.to_string();
            assert_eq!(err.path.as_deref(), Some(path), "{shown}");
            assert!(shown.contains(&format!("field {path}")), "{shown}");
            assert!(!shown.contains(secret), "{raw} quoted in {shown}");
        }
        let err = decode_json::<Order>(r#"{"phone": 1}"#).expect_err("no id");
        assert!(err.to_string().contains("missing field `id`"), "{err}");
        // Invalid JSON: the position, not the text.
        let err = decode_json::<Order>(r#"{"id": 1, "name": "Ion Popescu"#).expect_err("cut");
        assert!(!err.to_string().contains("Popescu"), "{err}");
        assert!(decode_json::<Order>(r#"{"id": 7} trailing"#).is_err());
        assert_eq!(decode_json::<Order>(r#"{"id": 7}"#).expect("ok").id, 7);
    }
}
