//! Decoding eMAG's answer envelope `{isError, messages, errors, results}` with the variations
//! seen in the field: messages as strings or objects, `errors` present or not, `results` an
//! array or an object, counts as strings or numbers. Every answer must say `isError: false`;
//! anything else is an error, never a silent empty result.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::EmagError;
use crate::RawItem;

/// A successful answer: its `results` and any messages eMAG attached.
#[derive(Debug)]
pub struct Envelope<T> {
    pub results: T,
    pub messages: Vec<String>,
}

/// The answer of a `…/count` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub items: u64,
    pub pages: u64,
    pub per_page: u64,
}

/// The envelope as one scan of the body reads it; `results` as `R` (raw, or a page's items).
#[derive(Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
struct RawEnvelope<R> {
    #[serde(rename = "isError", default)]
    is_error: Option<Value>,
    #[serde(default)]
    messages: Option<Value>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    results: Option<R>,
    /// Gateway answers (429, 404, 400) carry a bare `{"message": …}`.
    #[serde(default)]
    message: Option<Value>,
}

const EXCERPT: usize = 300;

pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    domain::storable_text(if text.chars().count() > EXCERPT {
        let cut: String = text.chars().take(EXCERPT).collect();
        format!("{cut}…")
    } else if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text.to_owned()
    })
}

/// `body` without a leading UTF-8 byte-order mark (some proxies and editors add one).
fn without_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body)
}

/// What to show of a body that is not a valid answer: an excerpt of text or HTML (a proxy's
/// error page); for JSON, which may carry customer data, only where it broke.
fn unparsed_excerpt(body: &[u8], e: &serde_json::Error) -> String {
    let text = String::from_utf8_lossy(body);
    if text
        .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .starts_with(['{', '['])
    {
        format!(
            "a JSON body of {} bytes that does not parse: {} at line {} column {}",
            body.len(),
            crate::decode::json_error_without_values(e),
            e.line(),
            e.column()
        )
    } else {
        excerpt(body)
    }
}

/// What a JSON value is, by its shape only: its type, its length, the names of an object's
/// fields that read as field names (a key that does not, may be data).
fn shape_of(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let names: Vec<&str> = map
                .keys()
                .filter(|k| {
                    !k.is_empty()
                        && k.len() <= 40
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(String::as_str)
                .take(10)
                .collect();
            format!(
                "an object of {} field(s){}",
                map.len(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                }
            )
        }
        Value::Array(items) => format!("a list of {} item(s)", items.len()),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Null => "null".into(),
    }
}

/// The names of the top-level fields of a JSON object body (never their values).
fn top_level_keys(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Map<String, Value>>(body) {
        Ok(map) if !map.is_empty() => map.keys().cloned().collect::<Vec<_>>().join(", "),
        Ok(_) => "none".to_owned(),
        Err(_) => "not an object".to_owned(),
    }
}

/// Turns one `messages`/`errors` value into readable strings (as a store can keep them).
fn message_texts(value: Option<&Value>, out: &mut Vec<String>) {
    let before = out.len();
    push_message_texts(value, out);
    for text in &mut out[before..] {
        *text = domain::storable_text(std::mem::take(text));
    }
}

fn push_message_texts(value: Option<&Value>, out: &mut Vec<String>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Array(items)) => {
            for item in items {
                push_message_texts(Some(item), out);
            }
        }
        Some(Value::Object(map)) => {
            let text = ["text", "message", "msg", "error"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str));
            match text {
                Some(t) => out.push(t.to_owned()),
                None => out.push(Value::Object(map.clone()).to_string()),
            }
        }
        Some(other) => out.push(other.to_string()),
    }
}

fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// What an answer that is not an envelope becomes, by its status: `shown` says what it was.
fn unreadable(status: u16, shown: String) -> EmagError {
    match status {
        500..=599 => EmagError::Server { status },
        401 | 403 => EmagError::Unauthorized {
            status,
            messages: vec![shown],
        },
        404 => EmagError::BadUrl {
            status,
            excerpt: shown,
        },
        _ => EmagError::Malformed {
            status,
            excerpt: shown,
        },
    }
}

/// Decodes an answer with HTTP `status` (429 and 3xx are handled by the caller before).
pub fn decode(status: u16, body: &[u8]) -> Result<Envelope<Box<RawValue>>, EmagError> {
    let parsed = serde_json::from_slice(without_bom(body));
    classify(status, body, parsed, |results: Option<&RawValue>| {
        results.map(RawValue::to_owned).unwrap_or_else(raw_null)
    })
}

/// [`decode`] and then [`results_as_items`] in one scan of the body, as a page is read: the
/// items are found while the envelope is, not by reading `results` again. The outcome is
/// theirs in every case: an answer that is not a success is [`decode`]'s error; a success
/// whose `results` holds no items carries [`results_as_items`]'s error, which the caller
/// raises (it is not retried); a body the one scan cannot read (broken, or a number past
/// `f64` as `results` itself, which a raw `results` is not asked to read) is read the two
/// ways instead.
pub fn decode_items(
    status: u16,
    body: &[u8],
) -> Result<Envelope<Result<Vec<RawItem>, EmagError>>, EmagError> {
    match serde_json::from_slice::<RawEnvelope<Results<'_>>>(without_bom(body)) {
        Ok(env) => classify(status, body, Ok(env), |results| {
            items_of(results.unwrap_or(Results::Null))
        }),
        Err(_) => decode(status, body).map(|env| Envelope {
            results: results_as_items(&env.results),
            messages: env.messages,
        }),
    }
}

/// What the answer `body` with HTTP `status`, read as `parsed`, is: its envelope (`results`
/// made `T` by `results`) or its classified error.
fn classify<R, T>(
    status: u16,
    body: &[u8],
    parsed: Result<RawEnvelope<R>, serde_json::Error>,
    results: impl FnOnce(Option<R>) -> T,
) -> Result<Envelope<T>, EmagError> {
    let body = without_bom(body);
    let env = match parsed {
        // serde reads a list as the struct's fields in order: `[false, [], null, [...]]`
        // would be a successful answer. An answer is an object.
        Ok(_) if !body.trim_ascii_start().starts_with(b"{") => {
            return Err(unreadable(
                status,
                format!(
                    "a JSON list of {} bytes where an answer object belongs",
                    body.len()
                ),
            ))
        }
        Ok(env) => env,
        Err(e) => return Err(unreadable(status, unparsed_excerpt(body, &e))),
    };
    let mut messages = Vec::new();
    message_texts(env.messages.as_ref(), &mut messages);
    message_texts(env.message.as_ref(), &mut messages);
    let mut errors = Vec::new();
    message_texts(env.errors.as_ref(), &mut errors);

    match status {
        401 | 403 => return Err(EmagError::Unauthorized { status, messages }),
        // A JSON 404 may carry anything in `results`: only its messages are shown.
        404 => {
            messages.extend(errors);
            return Err(EmagError::BadUrl {
                status,
                excerpt: if messages.is_empty() {
                    "(a JSON answer without a message)".to_owned()
                } else {
                    messages.join("; ")
                },
            });
        }
        500..=599 => return Err(EmagError::Server { status }),
        200..=299 => {}
        _ => {
            messages.extend(errors);
            return Err(EmagError::Rejected { messages });
        }
    }

    match env.is_error.as_ref().and_then(truthy) {
        Some(false) => Ok(Envelope {
            results: results(env.results),
            messages,
        }),
        Some(true) => {
            let all: Vec<String> = messages.iter().chain(errors.iter()).cloned().collect();
            let lower = all.join(" ").to_ascii_lowercase();
            Err(if lower.contains("invalid vendor ip") {
                EmagError::IpNotWhitelisted { messages: all }
            } else if lower.contains("not allowed to use this api") {
                EmagError::Unauthorized {
                    status,
                    messages: all,
                }
            } else {
                EmagError::Rejected { messages: all }
            })
        }
        // The body is JSON, maybe with customer data in `results`: named by shape only.
        None => Err(EmagError::Malformed {
            status,
            excerpt: format!(
                "answer without a valid isError ({}; fields: {})",
                env.is_error
                    .as_ref()
                    .map_or("isError missing", |v| match v {
                        Value::Null => "isError is null",
                        Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                            "isError is neither true nor false"
                        }
                        Value::Array(_) | Value::Object(_) => "isError is a list or an object",
                    }),
                top_level_keys(body)
            ),
        }),
    }
}

fn raw_null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

/// Reads `results` as a list of raw items; an object keyed by id is accepted as its values
/// (in the order of their keys; a key given twice keeps its last value).
pub fn results_as_items(results: &RawValue) -> Result<Vec<RawItem>, EmagError> {
    let read =
        serde_json::from_str::<Results<'_>>(results.get()).map_err(|e| EmagError::Malformed {
            status: 200,
            excerpt: format!(
                "results unreadable: {}",
                crate::decode::json_error_without_values(&e)
            ),
        })?;
    items_of(read)
}

/// `results` as a page reads it, borrowed from the body: its items, or what it was instead.
enum Results<'a> {
    List(Vec<&'a RawValue>),
    /// An object's values in the order of their keys; a key given twice keeps its last.
    Keyed(std::collections::BTreeMap<String, &'a RawValue>),
    Null,
    /// A JSON string, boolean or number: no items.
    Scalar(&'static str),
}

impl<'de: 'a, 'a> Deserialize<'de> for Results<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Shape<'a> {
            type Value = Results<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list, an object or null")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    items.push(item);
                }
                Ok(Results::List(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = std::collections::BTreeMap::new();
                while let Some((key, item)) = map.next_entry::<String, &'de RawValue>()? {
                    items.insert(key, item);
                }
                Ok(Results::Keyed(items))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Results::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Results::Null)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Results::Scalar("string"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Results::Scalar("boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Results::Scalar("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Results::Scalar("number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Results::Scalar("number"))
            }
        }
        deserializer.deserialize_any(Shape(std::marker::PhantomData))
    }
}

/// The items `results` holds (owned: a page outlives its body).
fn items_of(results: Results<'_>) -> Result<Vec<RawItem>, EmagError> {
    match results {
        Results::List(items) => Ok(items.into_iter().map(RawValue::to_owned).collect()),
        Results::Keyed(items) => Ok(items.into_values().map(RawValue::to_owned).collect()),
        Results::Null => Ok(Vec::new()),
        Results::Scalar(kind) => Err(EmagError::Malformed {
            status: 200,
            excerpt: format!("unexpected results: a JSON {kind} instead of a list or an object"),
        }),
    }
}

/// Reads a `…/count` answer: `{"noOfItems": "38", "noOfPages": "1", "itemsPerPage": "100"}`.
pub fn results_as_count(results: &RawValue) -> Result<Count, EmagError> {
    let value: Value = serde_json::from_str(results.get()).map_err(|e| EmagError::Malformed {
        status: 200,
        excerpt: format!(
            "count answer unreadable: {}",
            crate::decode::json_error_without_values(&e)
        ),
    })?;
    // Some answers wrap the object in a one-element list.
    let obj = match &value {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    };
    let field = |name: &str| -> Option<u64> {
        match obj.get(name)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    // The answer may be a read's, customers and all (eMAG ignoring the action): described
    // by its shape, never quoted.
    let items = field("noOfItems").ok_or_else(|| EmagError::Malformed {
        status: 200,
        excerpt: format!("count answer lacks noOfItems: {}", shape_of(obj)),
    })?;
    let per_page = field("itemsPerPage").unwrap_or(100).max(1);
    let pages = field("noOfPages").unwrap_or(items.div_ceil(per_page));
    Ok(Count {
        items,
        pages,
        per_page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_object_messages_are_both_read() {
        let body = br#"{"isError":true,"messages":["a",{"type":"error","text":"b"}],"errors":[{"message":"c"}],"results":[]}"#;
        match decode(200, body) {
            Err(EmagError::Rejected { messages }) => assert_eq!(messages, ["a", "b", "c"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_is_error_answer_carries_its_messages_and_never_its_results() {
        // What a run records of an isError answer are these messages: customer data that
        // eMAG may put in `results` stays out of them.
        let body = br#"{"isError":true,"messages":["Temporary problem, please retry"],"results":[{"customer":{"name":"Ion Popescu","phone_1":"0722000000"}}]}"#;
        match decode(200, body) {
            Err(EmagError::Rejected { messages }) => {
                assert_eq!(messages, ["Temporary problem, please retry"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vendor_ip_and_not_allowed_messages_are_classified() {
        let ip = br#"{"isError":true,"messages":["ERROR: Invalid vendor ip [188.214.106.10]"],"results":[]}"#;
        assert!(matches!(
            decode(200, ip),
            Err(EmagError::IpNotWhitelisted { .. })
        ));
        let auth =
            br#"{"isError":true,"messages":["You are not allowed to use this API."],"results":[]}"#;
        assert!(matches!(
            decode(401, auth),
            Err(EmagError::Unauthorized { status: 401, .. })
        ));
        assert!(matches!(
            decode(200, auth),
            Err(EmagError::Unauthorized { status: 200, .. })
        ));
    }

    #[test]
    fn a_malformed_answer_never_quotes_the_customer_data_in_it() {
        let customer = br#"{"isError":false,"results":[{"id":1,"customer":{"name":"Ion Popescu","phone":"0722123456"}}"#;
        let no_flag =
            br#"{"results":[{"id":1,"customer":{"name":"Ion Popescu","phone":"0722123456"}}]}"#;
        let odd_results = br#"{"isError":false,"results":"Ion Popescu 0722123456"}"#;
        let mut shown = Vec::new();
        for (status, body) in [
            (200, &customer[..]),
            (401, customer),
            (404, customer),
            (200, no_flag),
        ] {
            shown.push(decode(status, body).expect_err("malformed").to_string());
        }
        let env = decode(200, odd_results).expect("an envelope");
        shown.push(
            results_as_items(&env.results)
                .expect_err("not items")
                .to_string(),
        );
        for text in &shown {
            assert!(
                !text.contains("Popescu") && !text.contains("0722"),
                "customer data in: {text}"
            );
        }
        assert!(shown[0].contains("does not parse"), "{}", shown[0]);
        assert!(shown[3].contains("fields: results"), "{}", shown[3]);
        // Text that is not JSON (a proxy's page) is still shown, to say what answered.
        let html = decode(400, b"<html>blocked by proxy</html>").expect_err("html");
        assert!(html.to_string().contains("blocked by proxy"), "{html}");
    }

    #[test]
    fn answers_without_is_error_or_not_json_are_malformed() {
        assert!(matches!(
            decode(200, b"{\"results\":[]}"),
            Err(EmagError::Malformed { .. })
        ));
        assert!(matches!(
            decode(200, b"{\"isError\":fal"),
            Err(EmagError::Malformed { .. })
        ));
        assert!(matches!(
            decode(502, b"<html>bad gateway</html>"),
            Err(EmagError::Server { status: 502 })
        ));
        assert!(matches!(
            decode(404, br#"{"message":"Invalid URL"}"#),
            Err(EmagError::BadUrl { .. })
        ));
    }

    #[test]
    fn results_may_be_a_list_an_object_or_absent() {
        let env = decode(
            200,
            br#"{"isError":false,"messages":[],"results":[{"id":1},{"id":2}]}"#,
        )
        .expect("ok");
        assert_eq!(results_as_items(&env.results).expect("items").len(), 2);
        let env = decode(200, br#"{"isError":"false","results":{"1":{"id":1}}}"#).expect("ok");
        assert_eq!(results_as_items(&env.results).expect("items").len(), 1);
        let env = decode(200, br#"{"isError":false}"#).expect("ok");
        assert!(results_as_items(&env.results).expect("items").is_empty());
    }

    #[test]
    fn a_count_answer_that_is_not_a_count_names_its_shape_never_its_data() {
        // Found by the fuzzer (issue 11): a read's answer where a count belongs was quoted.
        let read = br#"{"isError":false,"results":[{"id":1,"customer":{"name":"Ion Popescu","phone":"0722123456"}}]}"#;
        let env = decode(200, read).expect("an envelope");
        let e = results_as_count(&env.results).expect_err("not a count");
        let shown = e.to_string();
        assert!(
            !shown.contains("Popescu") && !shown.contains("0722"),
            "{shown}"
        );
        assert!(
            shown.contains("lacks noOfItems: an object of 2 field(s) (customer, id)"),
            "{shown}"
        );
        let keyed = br#"{"isError":false,"results":{"Ion Popescu":1}}"#;
        let env = decode(200, keyed).expect("an envelope");
        let shown = results_as_count(&env.results)
            .expect_err("no count")
            .to_string();
        assert!(
            !shown.contains("Popescu"),
            "a key that is not a field name is data: {shown}"
        );
    }

    #[test]
    fn a_list_is_not_an_answer_and_a_404_shows_only_its_messages() {
        // Found by the fuzzer (issue 11): serde read a list as the envelope's fields in order.
        let list = br#"[false, [], null, [{"id": 1, "name": "Ion Popescu"}]]"#;
        match decode(200, list) {
            Err(EmagError::Malformed { excerpt, .. }) => {
                assert!(excerpt.contains("a JSON list"), "{excerpt}");
                assert!(!excerpt.contains("Popescu"), "{excerpt}");
            }
            other => panic!("a list decoded as {other:?}"),
        }
        let not_found =
            br#"{"isError":true,"messages":["Invalid URL"],"results":[{"name":"Ion Popescu"}]}"#;
        match decode(404, not_found) {
            Err(EmagError::BadUrl { excerpt, .. }) => assert_eq!(excerpt, "Invalid URL"),
            other => panic!("{other:?}"),
        }
        // A byte-order mark before the JSON changes nothing.
        let bom = b"\xef\xbb\xbf{\"isError\":false,\"results\":[{\"id\":1}]}";
        let env = decode(200, bom).expect("an answer with a BOM");
        assert_eq!(results_as_items(&env.results).expect("items").len(), 1);
        // A NUL in eMAG's message is kept as U+FFFD (PostgreSQL's text refuses U+0000).
        let nul = br#"{"isError":true,"messages":["bad\u0000value"],"results":[]}"#;
        match decode(200, nul) {
            Err(EmagError::Rejected { messages }) => assert_eq!(messages, ["bad\u{fffd}value"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_arrive_as_strings_or_numbers() {
        let env = decode(200, br#"{"isError":false,"results":{"noOfItems":"230","noOfPages":"3","itemsPerPage":"100"}}"#).expect("ok");
        assert_eq!(
            results_as_count(&env.results).expect("count"),
            Count {
                items: 230,
                pages: 3,
                per_page: 100
            }
        );
        let env = decode(200, br#"{"isError":false,"results":{"noOfItems":5}}"#).expect("ok");
        assert_eq!(
            results_as_count(&env.results).expect("count"),
            Count {
                items: 5,
                pages: 1,
                per_page: 100
            }
        );
    }

    /// The items of an answer read in one scan are those read in two, and its errors the
    /// same errors.
    #[test]
    fn a_page_read_in_one_scan_is_the_page_read_in_two() {
        let bodies: [(u16, &[u8]); 16] = [
            (200, br#"{"isError":false,"messages":["m"],"results":[{"id":2},{"id":1,"x":[1,{"y":"]"}]}, 3, "s", null]}"#),
            (200, br#"{"isError":false,"results":{"b":{"id":2},"a":{"id":1},"b":{"id":3},"10":{"id":10}}}"#),
            (200, br#"{"isError":false,"results":null}"#),
            (200, br#"{"isError":false}"#),
            (200, br#"{"isError":false,"results":[]}"#),
            (200, br#"{"isError":false,"results":{}}"#),
            (200, br#"{"isError":false,"results":"Ion Popescu"}"#),
            (200, br#"{"isError":"0","results":17.5}"#),
            (200, br#"{"isError":false,"results":true}"#),
            (200, br#"{"isError":true,"messages":["Temporary"],"results":"x"}"#),
            (401, br#"{"isError":false,"results":5}"#),
            (200, b"\xef\xbb\xbf{\"isError\":false,\"results\":[{\"id\":\"\\u00e9\"}]}"),
            (200, br#"{"isError":false,"results":[{"id":1}"#),
            // Found by the fuzzer: what one scan cannot read is read the two ways.
            (499, br#"{"isError":false,"results":-1e400}"#),
            (200, br#"{"isError":true,"messages":["Temporary"],"results":1e400}"#),
            (200, b"{\"isError\":false,\"results\":[{\"id\":1,\"n\":\"\xbf\"}]}"),
        ];
        let texts =
            |items: &[RawItem]| items.iter().map(|i| i.get().to_owned()).collect::<Vec<_>>();
        for (status, body) in bodies {
            let shown = String::from_utf8_lossy(body);
            let two =
                decode(status, body).map(|env| (results_as_items(&env.results), env.messages));
            let one = decode_items(status, body).map(|env| (env.results, env.messages));
            match (one, two) {
                (Ok((one, m1)), Ok((two, m2))) => {
                    assert_eq!(m1, m2, "{shown}");
                    match (one, two) {
                        (Ok(one), Ok(two)) => assert_eq!(texts(&one), texts(&two), "{shown}"),
                        (Err(one), Err(two)) => {
                            assert_eq!(one.to_string(), two.to_string(), "{shown}");
                        }
                        (one, two) => panic!("{shown}: {one:?} against {two:?}"),
                    }
                }
                (Err(one), Err(two)) => assert_eq!(one.to_string(), two.to_string(), "{shown}"),
                (one, two) => panic!("{shown}: {one:?} against {two:?}"),
            }
        }
        // An object keyed by id: its values in the order of the keys, a repeated key's last.
        let env = decode_items(200, bodies[1].1).expect("an envelope");
        assert_eq!(
            texts(&env.results.expect("items")),
            [r#"{"id":10}"#, r#"{"id":1}"#, r#"{"id":3}"#]
        );
        // A scalar where items belong: named by its kind, never quoted.
        let env = decode_items(200, br#"{"isError":false,"results":"Ion Popescu"}"#).expect("ok");
        let e = env.results.expect_err("not items").to_string();
        assert!(e.contains("a JSON string") && !e.contains("Popescu"), "{e}");
    }
}
