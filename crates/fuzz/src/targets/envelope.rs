//! eMAG's answers as the client decodes them: the envelope (`decode_answer`), then its results
//! as items and as a count.
//!
//! Oracles: the error is classified by the HTTP status as documented (5xx server, 401/403
//! auth, 404 the URL); a 2xx answer succeeds only when its `isError` is false; no error
//! quotes customer data (a canary) unless eMAG put it in its own `messages`, or the body is not
//! JSON at all (a proxy's page is shown to say what answered); `results` as items are as many
//! as the list (or the object's distinct keys); a successful answer re-encoded decodes to the
//! same results and messages; a page read in one scan (`decode_items`) gives the same items,
//! messages and errors as the envelope and then its results read apart. Counts: the numbers
//! read are the ones sent, and a page loop bounded by the count ends.

use emag_client::{
    decode_answer, decode_items, results_as_count, results_as_items, Count, EmagError, Page,
    PageLoop,
};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{show_bytes, Pool};
use crate::corpus::Corpus;
use crate::{canary, shape, Harness, Outcome};

/// Statuses an answer may come with (429 and 3xx never reach the decoder: the client handles
/// them first).
const STATUSES: &[u16] = &[
    100, 200, 201, 202, 204, 206, 299, 400, 401, 403, 404, 405, 409, 410, 413, 418, 422, 451, 499,
    500, 501, 502, 503, 504, 520, 599, 600, 999,
];

/// Whether `body` reads as JSON to a person (its first non-blank character opens one; a
/// byte-order mark before it changes nothing).
fn looks_like_json(body: &[u8]) -> bool {
    String::from_utf8_lossy(body)
        .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .starts_with(['{', '['])
}

/// The text of eMAG's own message fields of `body` (where a canary may legitimately be), as
/// sent (raw: the rest of the body may be nested past what a `Value` holds).
fn message_fields(body: &[u8]) -> String {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let Ok(map) = serde_json::from_slice::<std::collections::BTreeMap<String, Box<RawValue>>>(body)
    else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| ["messages", "errors", "message"].contains(&k.as_str()))
        .map(|(_, v)| v.get())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A customer canary `text` holds that the rules do not allow for this `body`.
fn leaked(text: &str, body: &[u8]) -> Option<String> {
    let mark = canary::found(text)?;
    if !looks_like_json(body) || canary::found(&message_fields(body)).is_some_and(|m| m == mark) {
        return None;
    }
    Some(text.chars().take(600).collect())
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

/// An outcome by its kind: the error's variant and our own words, never the excerpt of a
/// body (every garbage body would be an outcome of its own and churn the pool).
fn signature_of<T>(r: &Result<T, EmagError>, ok: impl FnOnce(&T) -> String) -> String {
    const OURS: [&str; 8] = [
        "a JSON body of ",
        "a JSON list of ",
        "answer without a valid isError",
        "results is not a list",
        "results object unreadable",
        "unexpected results: ",
        "count answer ",
        "(empty body)",
    ];
    match r {
        Ok(v) => format!("ok {}", ok(v)),
        Err(EmagError::Malformed { excerpt, .. }) => {
            if OURS.iter().any(|p| excerpt.starts_with(p)) {
                // Our first words say which rule refused it; the rest (field names, serde's
                // reason) would make every mutated key an outcome of its own.
                let words: Vec<&str> = excerpt.split_whitespace().take(5).collect();
                format!("malformed {}", shape(&words.join(" "), 60))
            } else {
                "malformed text".to_owned()
            }
        }
        Err(e) => format!("{} {}", e.class(), e.emag_messages().len().min(3)),
    }
}

/// The envelope target.
pub(crate) struct Envelope {
    pool: Pool,
}

impl Envelope {
    pub fn new(corpus: &Corpus) -> Envelope {
        Envelope {
            pool: Pool::new(corpus.answers.iter().map(|a| (a.status, a.body.clone()))),
        }
    }

    pub fn seeds(&self) -> usize {
        self.pool.seeds()
    }
}

impl Harness for Envelope {
    type Input = (u16, Vec<u8>);

    fn generate(&mut self, rng: &mut ChaCha8Rng) -> (u16, Vec<u8>) {
        let (status, body) = self.pool.mutant(rng);
        let status = if status == 429 || (300..400).contains(&status) || rng.gen_bool(0.15) {
            *STATUSES.choose(rng).unwrap_or(&200)
        } else {
            status
        };
        (status, body)
    }

    fn execute(&mut self, (status, body): &(u16, Vec<u8>)) -> Outcome {
        let status = *status;
        let r = decode_answer(status, body);
        let mut out = Outcome::new(format!(
            "{status_class} {}",
            signature_of(&r, |e| format!("{} message(s)", e.messages.len().min(3))),
            status_class = status / 100
        ));
        one_scan_agrees(&mut out, status, body, &r);
        let parsed = serde_json::from_slice::<Value>(body).ok();
        match (&r, status) {
            (Err(EmagError::Server { status: s }), 500..=599) => {
                out.check(*s == status, "misclassified", || format!("{status} as {s}"));
            }
            (_, 500..=599) => out.problems.push(crate::Problem::new(
                "misclassified",
                format!("HTTP {status} not a server error: {r:?}"),
            )),
            (Err(EmagError::Unauthorized { .. }), 401 | 403)
            | (Err(EmagError::BadUrl { .. }), 404) => {}
            (_, 401 | 403 | 404) => out.problems.push(crate::Problem::new(
                "misclassified",
                format!("HTTP {status} answered {:?}", r.as_ref().map(|_| "success")),
            )),
            // Not a value serde_json holds (a number past f64, nesting past 128): unjudged.
            (Ok(_), 200..=299) if parsed.is_none() => {}
            (Ok(_), 200..=299) => {
                let flag = parsed
                    .as_ref()
                    .and_then(|v| v.get("isError"))
                    .and_then(truthy);
                out.check(flag == Some(false), "success without isError false", || {
                    format!("isError {flag:?}")
                });
            }
            (Ok(_), _) => out.problems.push(crate::Problem::new(
                "misclassified",
                format!("HTTP {status} decoded as a success"),
            )),
            (Err(_), _) => {}
        }
        match &r {
            Err(e) => {
                let text = format!("{e} {:?}", e.emag_messages());
                if let Some(shown) = leaked(&text, body) {
                    out.problems.push(crate::Problem::new(
                        "customer data in an answer's error",
                        shown,
                    ));
                }
            }
            Ok(env) => {
                check_results(&mut out, &env.results, parsed.as_ref());
                // Re-encoded, the same answer.
                let again = format!(
                    r#"{{"isError":false,"messages":{},"results":{}}}"#,
                    serde_json::to_string(&env.messages).unwrap_or_default(),
                    env.results.get()
                );
                match decode_answer(200, again.as_bytes()) {
                    Ok(back) => out.check(
                        back.results.get() == env.results.get() && back.messages == env.messages,
                        "no round trip",
                        || {
                            format!(
                                "{again} decoded as {:?} {:?}",
                                back.results.get(),
                                back.messages
                            )
                        },
                    ),
                    Err(e) => out.problems.push(crate::Problem::new(
                        "no round trip",
                        format!("{again}: {e}"),
                    )),
                }
            }
        }
        out
    }

    fn show(&self, (status, body): &(u16, Vec<u8>)) -> String {
        format!("HTTP {status} {}", show_bytes(body))
    }

    fn keep(&mut self, (status, body): (u16, Vec<u8>)) {
        self.pool.add(status, body);
    }
}

/// `decode_items` (a page's envelope and items in one scan) against `two` (the envelope) and
/// then its results as items: the same items, messages and errors.
fn one_scan_agrees(
    out: &mut Outcome,
    status: u16,
    body: &[u8],
    two: &Result<emag_client::Envelope<Box<RawValue>>, EmagError>,
) {
    let texts =
        |items: &[Box<RawValue>]| items.iter().map(|i| i.get().to_owned()).collect::<Vec<_>>();
    let one = decode_items(status, body);
    let same = match (&one, two) {
        (Ok(one), Ok(two)) => {
            one.messages == two.messages
                && match (&one.results, results_as_items(&two.results)) {
                    (Ok(a), Ok(b)) => texts(a) == texts(&b),
                    (Err(a), Err(b)) => a.to_string() == b.to_string(),
                    _ => false,
                }
        }
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    };
    out.check(same, "one scan differs", || {
        format!(
            "decode_items {:?} against decode_answer {:?}",
            one.as_ref().map(|e| e.results.as_ref().map(|i| i.len())),
            two.as_ref()
                .map(|e| results_as_items(&e.results).map(|i| i.len()))
        )
    });
}

fn check_results(out: &mut Outcome, results: &RawValue, parsed: Option<&Value>) {
    let expected = match parsed.map(|v| v.get("results")) {
        None => None,
        Some(None | Some(Value::Null)) => Some(0),
        Some(Some(Value::Array(items))) => Some(items.len()),
        Some(Some(Value::Object(map))) => Some(map.len()),
        Some(Some(_)) => Some(usize::MAX),
    };
    let items = results_as_items(results);
    match (&items, expected) {
        (Ok(items), Some(usize::MAX)) => out.problems.push(crate::Problem::new(
            "items from a scalar",
            format!("{} items", items.len()),
        )),
        (Ok(items), Some(n)) => out.check(items.len() == n, "items lost", || {
            format!("{} items read of {n}", items.len())
        }),
        (Ok(_), None) => {}
        (Err(e), _) => {
            if let Some(found) = canary::found(&e.to_string()) {
                out.problems.push(crate::Problem::new(
                    "customer data in an answer's error",
                    format!("{found}: {e}"),
                ));
            }
        }
    }
    out.signature.push_str(&format!(
        " / items {}",
        signature_of(&items, |i| format!("{}", i.len().min(2)))
    ));
    if let Err(e) = results_as_count(results) {
        if let Some(found) = canary::found(&e.to_string()) {
            out.problems.push(crate::Problem::new(
                "customer data in a count error",
                format!("{found}: {e}"),
            ));
        }
    }
}

/// The count target.
pub(crate) struct CountTarget {
    pool: Pool,
}

impl CountTarget {
    pub fn new(corpus: &Corpus) -> CountTarget {
        CountTarget {
            pool: Pool::new(corpus.counts.iter().map(|a| (200, a.body.clone()))),
        }
    }

    pub fn seeds(&self) -> usize {
        self.pool.seeds()
    }
}

/// A count field as eMAG may send it: a number or numeric text.
fn count_field(obj: &Value, name: &str) -> Option<u64> {
    match obj.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Drives a page loop of 100-item pages bounded by `count`, every page full (the worst
/// case); the pages it asked for, or `None` when it did not end within `limit`.
fn pages_asked(count: Count, limit: u32) -> Option<u32> {
    let mut guard = PageLoop::new("product_offer", 1, 100, Some(count));
    let mut asked = 0;
    while let Some(number) = guard.next_page() {
        asked += 1;
        if asked > limit {
            return None;
        }
        let items: Vec<emag_client::RawItem> = (0..100)
            .map(|i| {
                RawValue::from_string(format!(r#"{{"id":{}}}"#, u64::from(number) * 100 + i))
                    .unwrap_or_else(|_| unreachable!("an object is JSON"))
            })
            .collect();
        let mut page = Page {
            number,
            items,
            last: false,
        };
        if guard.accept(&mut page).is_err() || page.last {
            break;
        }
    }
    Some(asked)
}

impl Harness for CountTarget {
    type Input = Vec<u8>;

    fn generate(&mut self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        self.pool.mutant(rng).1
    }

    fn execute(&mut self, body: &Vec<u8>) -> Outcome {
        let count = decode_answer(200, body).map(|env| {
            let count = results_as_count(&env.results);
            (count, env.results)
        });
        let (count, results) = match count {
            Ok((count, results)) => (count, Some(results)),
            Err(e) => (Err(e), None),
        };
        let mut out = Outcome::new(signature_of(&count, |c| {
            format!("{} {}", c.per_page.min(101), (c.pages > 0) as u8)
        }));
        match (&count, results) {
            (Err(e), _) => {
                if let Some(shown) = leaked(&e.to_string(), body) {
                    out.problems
                        .push(crate::Problem::new("customer data in a count error", shown));
                }
            }
            (Ok(c), Some(results)) => {
                let value: Value = serde_json::from_str(results.get()).unwrap_or(Value::Null);
                let obj = match &value {
                    Value::Array(items) if items.len() == 1 => &items[0],
                    other => other,
                };
                out.check(
                    count_field(obj, "noOfItems") == Some(c.items),
                    "count not as sent",
                    || format!("{c:?} from {}", results.get()),
                );
                out.check(c.per_page >= 1, "count without a page size", || {
                    format!("{c:?}")
                });
                // Pages of 100 the loop may ask for: the announced ones plus one.
                let announced = u32::try_from(c.items.div_ceil(100)).unwrap_or(u32::MAX);
                if announced < 5_000 {
                    let asked = pages_asked(*c, announced + 2);
                    out.check(
                        asked.is_some_and(|a| a <= announced + 1),
                        "page loop past its count",
                        || format!("{c:?}: asked {asked:?} pages"),
                    );
                }
            }
            (Ok(_), None) => {}
        }
        out
    }

    fn show(&self, body: &Vec<u8>) -> String {
        show_bytes(body)
    }

    fn keep(&mut self, body: Vec<u8>) {
        self.pool.add(200, body);
    }
}
