//! The dashboard's JSON API through its real router (`emag_sync::web::router`), in-process
//! with `tower::ServiceExt::oneshot`, over a real SQLite store with three accounts and a few
//! runs. The routes come from the server's own OpenAPI document, plus the JSON routes it does
//! not describe; `/api/events` (an endless stream) is left out.
//!
//! `api-query` bends GET routes: path parameters and query strings (known filters with valid,
//! near-valid and junk values, repeated, empty, broken escapes). `api-body` bends POST routes:
//! JSON and form bodies (mutated from valid ones), content types and credentials.
//!
//! Oracles: never a 5xx; every 4xx an `application/problem+json` body whose `status` is the
//! answer's; every 2xx JSON; no secret of the configuration in any header or body; a filter
//! given twice with different values is refused (400), never silently one of them.

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use storage::Store;
use tower::ServiceExt;

use super::{show_bytes, Pool};
use crate::mutate;
use crate::{Harness, Outcome, Problem};

/// One operation of the API.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    /// `/api/runs/{id}`.
    template: String,
    /// Query parameters the document names.
    query: Vec<String>,
    /// Content types of its body, if it takes one.
    body_types: Vec<String>,
}

/// The JSON routes the OpenAPI document does not describe.
const UNDOCUMENTED: [(&str, &[&str]); 4] = [
    ("/api/status", &[]),
    ("/api/kpis", &["days"]),
    ("/api/series", &["range", "account", "kind"]),
    ("/api/session", &[]),
];

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().into_iter().flatten() {
        if template == "/api/events" {
            continue;
        }
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            let body_types = op["requestBody"]["content"]
                .as_object()
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default();
            out.push(Operation {
                method,
                template: template.clone(),
                query,
                body_types,
            });
        }
    }
    for (path, query) in UNDOCUMENTED {
        if !out
            .iter()
            .any(|o| o.method == Method::GET && o.template == path)
        {
            out.push(Operation {
                method: Method::GET,
                template: path.into(),
                query: query.iter().map(|q| (*q).to_owned()).collect(),
                body_types: Vec::new(),
            });
        }
    }
    out
}

/// Who sends a request.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Token,
    Header(String),
    Cookie(String),
}

/// One request.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    method: Method,
    target: String,
    /// The operation's template, for the outcome.
    template: String,
    content_type: Option<String>,
    body: Vec<u8>,
    auth: Auth,
    /// The query parameters the operation documents.
    names: Vec<String>,
}

/// Percent-encodes every byte but the unreserved ones.
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const RAW_JUNK: &[&str] = &[
    "%",
    "%G1",
    "%zz",
    "%FF",
    "%C3%28",
    "%ED%A0%80",
    "%00",
    "%0A",
    "%2F",
    "..",
    ".",
    "%2e%2e",
    "%25",
    "+",
    "%EF%BB%BF",
];

fn segment(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..10) {
        0..=3 => (*[
            "main", "fbe", "bg", "MAIN", "1", "2", "3", "0", "-1", "999999",
        ]
        .choose(rng)
        .unwrap_or(&"main"))
        .to_owned(),
        4 => rng.gen::<i64>().to_string(),
        5 => "9".repeat(rng.gen_range(19..40)),
        6 => encode(mutate::interesting_string(rng).as_bytes()),
        7 => encode(
            &(0..rng.gen_range(0..24))
                .map(|_| rng.gen())
                .collect::<Vec<u8>>(),
        ),
        _ => (0..rng.gen_range(1..4))
            .map(|_| *RAW_JUNK.choose(rng).unwrap_or(&"%"))
            .collect(),
    }
}

/// A value for filter `name`: valid, near-valid or junk.
fn value(rng: &mut ChaCha8Rng, name: &str) -> String {
    let valid: &[&str] = match name {
        "account" => &["main", "fbe", "bg", "nobody"],
        "kind" => &["offers", "orders", "reference", "returns", "all", "Offers"],
        "outcome" | "state" => &[
            "succeeded",
            "failed",
            "cancelled",
            "running",
            "queued",
            "interrupted",
        ],
        "trigger" => &["schedule", "manual", "retry", "callback"],
        "since" | "until" => &[
            "2026-11-29T22:00:00Z",
            "1764000000000",
            "2026-13-45T99:00:00Z",
            "0",
            "-1",
        ],
        "limit" => &["1", "50", "500", "501", "0", "-5", "1e3"],
        "after" => &["1", "2", "0", "-1", "9223372036854775807"],
        "days" => &["7", "30", "31", "0"],
        "range" => &["24h", "7d", "30d", "1y"],
        _ => &["1", "x", "true"],
    };
    match rng.gen_range(0..10) {
        0..=5 => (*valid.choose(rng).unwrap_or(&"1")).to_owned(),
        6 => segment(rng),
        7 => encode(mutate::interesting_number(rng).as_bytes()),
        8 => String::new(),
        _ => "z".repeat(rng.gen_range(1000..20_000)),
    }
}

/// A query string for `names`.
fn query(rng: &mut ChaCha8Rng, names: &[String]) -> Option<String> {
    if rng.gen_bool(0.15) {
        return None;
    }
    if rng.gen_bool(0.05) {
        let junk = ["&&", "=", "==&=", "%", "&=x", "?", "a=1&&b", "%FF=1"];
        return Some((*junk.choose(rng).unwrap_or(&"=")).to_owned());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for _ in 0..rng.gen_range(1..5) {
        let name = match (names.choose(rng), rng.gen_range(0..10)) {
            (Some(n), 0..=7) => n.clone(),
            _ => (*["foo", "", "limit[]", "kind%00", "%FF", "a b", "ACCOUNT"]
                .choose(rng)
                .unwrap_or(&"foo"))
            .to_owned(),
        };
        let v = value(rng, &name);
        pairs.push((name, v));
    }
    // A documented filter twice, sometimes.
    if rng.gen_bool(0.15) {
        if let Some(name) = names.choose(rng) {
            pairs.push((name.clone(), value(rng, name)));
            pairs.push((name.clone(), value(rng, name)));
        }
    }
    Some(
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// The documented filters of `names` that `target`'s query gives twice with different
/// non-blank values, read as the server reads a query. Only the JSON API takes filters (a
/// mutated path may reach the dashboard's page, which reads no query), and a `#` ends what
/// a client sends: a `?` after it is no query.
fn repeated_filters(target: &str, names: &[String]) -> Vec<String> {
    let sent = target.split('#').next().unwrap_or_default();
    let Some((path, q)) = sent.split_once('?') else {
        return Vec::new();
    };
    if !path.starts_with("/api/") {
        return Vec::new();
    }
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        let v = v.trim().to_owned();
        if names.iter().any(|n| *n == k) && !v.is_empty() {
            values.entry(k.into_owned()).or_default().push(v);
        }
    }
    values
        .into_iter()
        .filter(|(_, vs)| {
            let mut distinct = vs.clone();
            distinct.sort();
            distinct.dedup();
            distinct.len() > 1
        })
        .map(|(k, _)| k)
        .collect()
}

fn auth(rng: &mut ChaCha8Rng) -> Auth {
    match rng.gen_range(0..12) {
        0..=1 => Auth::None,
        2..=8 => Auth::Token,
        9 => Auth::Header(format!(
            "Bearer {}",
            encode(mutate::interesting_string(rng).as_bytes())
        )),
        10 => Auth::Header(
            (*["Basic", "Bearer", "", "Token x"]
                .choose(rng)
                .unwrap_or(&""))
            .to_owned(),
        ),
        _ => Auth::Cookie(encode(mutate::interesting_string(rng).as_bytes())),
    }
}

/// The API under test.
pub(crate) struct Api {
    router: Router,
    runtime: tokio::runtime::Runtime,
    ops: Vec<Operation>,
    token: String,
    secrets: Vec<String>,
    bodies: Pool,
    kept: Vec<Req>,
    _dir: tempfile::TempDir,
}

impl Api {
    /// The server: a token, three accounts and every alert channel configured (every secret a
    /// canary), three runs in a fresh SQLite store. `bodies`: the POST routes, else the GETs.
    pub fn new(bodies: bool) -> anyhow::Result<Api> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/fuzz.db", dir.path().display());
        let mut vars: HashMap<String, String> = super::config::base_vars(1).into_iter().collect();
        vars.insert("DATABASE_URL".into(), url.clone());
        let secrets: Vec<String> = vars
            .values()
            .filter(|v| v.contains(super::config::SECRET_STEM))
            .map(|v| {
                // The webhook's secret part, or the whole value.
                v.rsplit('/').next().unwrap_or(v).to_owned()
            })
            .collect();
        let token = vars
            .get("EMAG_DASHBOARD_TOKEN")
            .cloned()
            .unwrap_or_default();
        let config = emag_sync::config::Config::from_vars(&vars)
            .map_err(|e| anyhow::anyhow!("the fuzzer's configuration: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let router = runtime.block_on(async {
            let store = Store::open(&url).await?;
            emag_sync::accounts::select(&config, &store, "all").await?;
            for (account, kind) in [
                ("main", domain::SyncKind::Offers),
                ("fbe", domain::SyncKind::Orders),
                ("bg", domain::SyncKind::Returns),
            ] {
                store.enqueue_run(account, kind, false).await?;
            }
            anyhow::Ok(emag_sync::web::router(emag_sync::web::AppState::new(
                config, store,
            )))
        })?;
        let mut api = Api {
            router,
            runtime,
            ops: Vec::new(),
            token,
            secrets,
            bodies: Pool::new([
                (0, br#"{"kind":"offers"}"#.to_vec()),
                (0, br#"{"kind":"orders","full":true}"#.to_vec()),
                (0, br#"{"kind":"returns","full":false}"#.to_vec()),
                (0, b"{}".to_vec()),
                (1, b"token=".to_vec()),
                (1, b"token=x&token=y".to_vec()),
            ]),
            kept: Vec::new(),
            _dir: dir,
        };
        let (status, _, doc) = api.send(&Req {
            method: Method::GET,
            target: "/openapi.json".into(),
            template: "/openapi.json".into(),
            content_type: None,
            body: Vec::new(),
            auth: Auth::None,
            names: Vec::new(),
        })?;
        anyhow::ensure!(status == 200, "GET /openapi.json answered {status}");
        let doc: Value = serde_json::from_slice(&doc)?;
        let token_form = format!("token={}", api.token);
        api.bodies.add(1, token_form.into_bytes());
        api.ops = operations(&doc)
            .into_iter()
            .filter(|o| (o.method == Method::POST) == bodies)
            .collect();
        anyhow::ensure!(!api.ops.is_empty(), "no operations in the OpenAPI document");
        Ok(api)
    }

    pub fn seeds(&self) -> usize {
        self.ops.len()
    }

    /// Sends `req` through the router: status, headers (as text) and body.
    fn send(&self, req: &Req) -> anyhow::Result<(u16, String, Vec<u8>)> {
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(&req.target);
        if let Some(ct) = &req.content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder = match &req.auth {
            Auth::None => builder,
            Auth::Token => builder.header(header::AUTHORIZATION, format!("Bearer {}", self.token)),
            Auth::Header(h) => builder.header(header::AUTHORIZATION, h),
            Auth::Cookie(c) => builder.header(header::COOKIE, format!("emag_session={c}")),
        };
        let request = builder.body(Body::from(req.body.clone()))?;
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect::<Vec<_>>()
                .join("\n");
            let body = axum::body::to_bytes(response.into_body(), 64 << 20).await?;
            Ok((status, headers, body.to_vec()))
        })
    }

    fn fill(&self, template: &str, rng: &mut ChaCha8Rng) -> String {
        let mut path = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            path.push_str(&rest[..open]);
            path.push_str(&segment(rng));
            rest = &rest[close..];
        }
        path.push_str(rest);
        path
    }
}

impl Harness for Api {
    type Input = Req;

    fn generate(&mut self, rng: &mut ChaCha8Rng) -> Req {
        // Sometimes a request that did something new, its query or body bent again.
        if let Some(kept) = self.kept.choose(rng).filter(|_| rng.gen_bool(0.2)).cloned() {
            let mut req = kept;
            let mut target = req.target.into_bytes();
            if req.method == Method::GET || rng.gen_bool(0.3) {
                mutate::mutate_bytes(rng, &mut target, &[]);
            } else {
                mutate::mutate_bytes(rng, &mut req.body, &[]);
            }
            req.target = String::from_utf8_lossy(&target).into_owned();
            if !req.target.starts_with('/') {
                req.target.insert(0, '/');
            }
            return req;
        }
        let op = self
            .ops
            .choose(rng)
            .cloned()
            .unwrap_or_else(|| self.ops[0].clone());
        let path = self.fill(&op.template, rng);
        let q = query(rng, &op.query);
        let target = match q {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let (content_type, body) = if op.method == Method::POST {
            let (kind, body) = self.bodies.mutant(rng);
            let body = if rng.gen_bool(0.2) {
                self.bodies.pick(rng).bytes.clone()
            } else {
                body
            };
            let documented = op.body_types.choose(rng).cloned().unwrap_or_else(|| {
                if kind == 1 {
                    "application/x-www-form-urlencoded".into()
                } else {
                    "application/json".into()
                }
            });
            let ct = match rng.gen_range(0..10) {
                0..=6 => Some(documented),
                7 => None,
                _ => Some(
                    (*[
                        "application/json; charset=utf-8",
                        "text/plain",
                        "application/x-www-form-urlencoded",
                        "multipart/form-data; boundary=x",
                        "application/json; charset=latin1",
                        "*/*",
                        "",
                    ]
                    .choose(rng)
                    .unwrap_or(&""))
                    .to_owned(),
                ),
            };
            (ct, body)
        } else {
            (None, Vec::new())
        };
        // A GET with a method it does not take, now and then.
        let method = if rng.gen_bool(0.03) {
            [
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
                Method::OPTIONS,
                Method::HEAD,
            ]
            .choose(rng)
            .cloned()
            .unwrap_or(Method::PUT)
        } else {
            op.method.clone()
        };
        Req {
            method,
            target,
            template: op.template,
            content_type,
            body,
            auth: auth(rng),
            names: op.query,
        }
    }

    fn execute(&mut self, req: &Req) -> Outcome {
        let (status, headers, body) = match self.send(req) {
            Ok(answer) => answer,
            // A request the HTTP types refuse to build (an invalid URI) never reaches a server.
            Err(e) if e.downcast_ref::<axum::http::Error>().is_some() => {
                return Outcome::new("not a request");
            }
            Err(e) => {
                let mut out = Outcome::new("no answer");
                out.problems.push(Problem::new("no answer", e.to_string()));
                return out;
            }
        };
        let mut out = Outcome::new(format!("{} {} {status}", req.method, req.template));
        let text = String::from_utf8_lossy(&body);
        let content_type = headers
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or_default()
            .to_owned();
        if status >= 500 {
            out.problems.push(Problem::new(
                "5xx",
                format!("{status}: {}", text.chars().take(500).collect::<String>()),
            ));
        }
        if (400..500).contains(&status) && req.method != Method::HEAD {
            let problem = serde_json::from_slice::<Value>(&body).ok();
            let ok = content_type.starts_with("application/problem+json")
                && problem.as_ref().is_some_and(|p| {
                    p["status"].as_u64() == Some(u64::from(status)) && p["title"].is_string()
                });
            out.check(ok, "4xx not a JSON problem", || {
                format!(
                    "{status} {content_type:?}: {}",
                    text.chars().take(500).collect::<String>()
                )
            });
        }
        if (200..300).contains(&status)
            && req.method != Method::HEAD
            && content_type.contains("json")
        {
            out.check(
                serde_json::from_slice::<Value>(&body).is_ok(),
                "2xx not JSON",
                || text.chars().take(500).collect(),
            );
        }
        let everything = format!("{headers}\n{text}");
        if let Some(s) = self
            .secrets
            .iter()
            .find(|s| everything.contains(s.as_str()))
        {
            out.problems.push(Problem::new(
                "secret in an answer",
                format!("{s} in {status}"),
            ));
        }
        let repeated = repeated_filters(&req.target, &req.names);
        if !repeated.is_empty() && status != 404 && status != 405 {
            out.check(status == 400, "a repeated filter not refused", || {
                format!(
                    "{repeated:?} repeated, answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                )
            });
        }
        out
    }

    fn show(&self, req: &Req) -> String {
        format!(
            "{} {} content-type {:?} auth {:?} body {}",
            req.method,
            req.target.chars().take(600).collect::<String>(),
            req.content_type,
            req.auth,
            show_bytes(&req.body[..req.body.len().min(600)])
        )
    }

    fn keep(&mut self, req: Req) {
        if self.kept.len() < crate::POOL_MAX {
            self.kept.push(req);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::repeated_filters;

    #[test]
    fn only_an_api_query_sent_to_the_server_has_repeated_filters() {
        let names = ["days".to_owned(), "kind".to_owned()];
        assert_eq!(
            repeated_filters("/api/kpis?days=0&days=7", &names),
            ["days"]
        );
        // Found by the full run: the page takes no filters, and after a `#` nothing is sent.
        assert!(repeated_filters("/?kind=returns&kind=Offers", &names).is_empty());
        assert!(repeated_filters("/#api/kpis?days=0&days=7", &names).is_empty());
        assert!(repeated_filters("/api/kpis#?days=0&days=7", &names).is_empty());
        // The same value twice, or a blank one, is no conflict.
        assert!(repeated_filters("/api/kpis?days=7&days=7&kind=", &names).is_empty());
    }
}
