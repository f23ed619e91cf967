//! Request bodies: JSON with or without the `data` wrapper, or PHP-style form encoding
//! (`data[currentPage]=1`, `data[0][id]=5`, `data[status][]=1`), all turned into one
//! `serde_json::Value` so the handlers never care how the client spoke.
//!
//! Form values stay strings; the filter parsers accept numeric strings wherever eMAG takes
//! numbers, which is exactly what the official PHP samples rely on.

use serde_json::{Map, Value};

use crate::config::WireEncoding;

/// The body could not be understood at all (eMAG: 400 `Invalid content`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid content")]
pub(crate) struct InvalidContent;

/// Parses a request body into the payload the action works on (the `data` part).
#[cfg(test)]
pub(crate) fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, InvalidContent> {
    parse_body_as(content_type, body).map(|(payload, _)| payload)
}

/// Like [`parse_body`], also saying how the client encoded it (an empty body passes for any
/// encoding: it carries no filters to ignore).
pub(crate) fn parse_body_as(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(Value, Option<WireEncoding>), InvalidContent> {
    let text = std::str::from_utf8(body).map_err(|_| InvalidContent)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok((Value::Object(Map::new()), None));
    }
    let is_form = content_type
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
        || (!trimmed.starts_with('{') && !trimmed.starts_with('[') && trimmed.contains('='));
    let (value, encoding) = if is_form {
        (parse_form(trimmed), WireEncoding::Form)
    } else {
        let value = serde_json::from_str::<Value>(trimmed).map_err(|_| InvalidContent)?;
        let wrapped = value.as_object().is_some_and(|m| m.contains_key("data"));
        let encoding = if wrapped {
            WireEncoding::JsonData
        } else {
            WireEncoding::Json
        };
        (value, encoding)
    };
    Ok((unwrap_data(value), Some(encoding)))
}

/// `{"data": X}` becomes `X`; anything else is taken as the payload itself.
fn unwrap_data(value: Value) -> Value {
    match value {
        Value::Object(mut map) if map.contains_key("data") => {
            map.remove("data").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Parses `a[b][c]=v&...` into nested objects; objects keyed 0..n become arrays.
pub(crate) fn parse_form(text: &str) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in url::form_urlencoded::parse(text.as_bytes()) {
        let segments = split_key(&key);
        insert(&mut root, &segments, value.into_owned());
    }
    normalize_arrays(root)
}

fn split_key(key: &str) -> Vec<String> {
    let Some(open) = key.find('[') else {
        return vec![key.to_owned()];
    };
    let mut segments = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        match stripped.find(']') {
            Some(close) => {
                segments.push(stripped[..close].to_owned());
                rest = &stripped[close + 1..];
            }
            None => {
                // Unbalanced bracket: PHP keeps the remainder literally; so do we.
                segments.push(stripped.to_owned());
                break;
            }
        }
    }
    segments
}

fn insert(node: &mut Value, segments: &[String], value: String) {
    let Some((head, rest)) = segments.split_first() else {
        *node = Value::String(value);
        return;
    };
    if head.is_empty() {
        if !node.is_array() {
            *node = Value::Array(Vec::new());
        }
        if let Value::Array(items) = node {
            items.push(Value::Null);
            if let Some(last) = items.last_mut() {
                insert(last, rest, value);
            }
        }
        return;
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(map) = node {
        let child = map.entry(head.clone()).or_insert(Value::Null);
        insert(child, rest, value);
    }
}

fn normalize_arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let all_indices = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if all_indices {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse::<usize>().unwrap_or(0), normalize_arrays(v)))
                    .collect();
                items.sort_by_key(|(k, _)| *k);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (k, normalize_arrays(v)))
                        .collect(),
                )
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_arrays).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn php_style_pagination_becomes_the_same_payload_as_json() {
        let form = parse_body(
            Some("application/x-www-form-urlencoded"),
            b"data[currentPage]=2&data[itemsPerPage]=10",
        );
        assert_eq!(form, Ok(json!({"currentPage": "2", "itemsPerPage": "10"})));
    }

    #[test]
    fn indexed_and_pushed_keys_become_lists() {
        let value = parse_form("data[0][id]=5&data[0][sale_price]=9.5&data[1][id]=6");
        assert_eq!(
            value,
            json!({"data": [{"id": "5", "sale_price": "9.5"}, {"id": "6"}]})
        );
        let pushed = parse_form("data[status][]=1&data[status][]=2");
        assert_eq!(pushed, json!({"data": {"status": ["1", "2"]}}));
    }

    #[test]
    fn json_with_and_without_the_data_wrapper_yields_the_same_payload() {
        let wrapped = parse_body(Some("application/json"), br#"{"data": {"status": 1}}"#);
        let bare = parse_body(None, br#"{"status": 1}"#);
        assert_eq!(wrapped, bare);
    }

    #[test]
    fn an_empty_body_is_an_empty_filter_and_broken_json_is_invalid_content() {
        assert_eq!(parse_body(None, b"  "), Ok(json!({})));
        assert_eq!(
            parse_body(Some("application/json"), b"{\"data\": "),
            Err(InvalidContent)
        );
    }
}
