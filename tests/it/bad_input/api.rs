//! Malformed requests to every JSON API route, generated with proptest from the server's own
//! OpenAPI document (plus the JSON routes it does not describe): garbage and oversized path
//! parameters and query values, broken percent-escapes and UTF-8, malformed and wrong-shaped
//! JSON bodies, wrong content types, bodies past the limit, with the token, without it, with
//! a wrong one. Every answer is below 500; every 4xx carries a JSON problem; no answer holds a
//! secret of the configuration; the server still answers `/livez` and `/health` afterwards.
//!
//! Cases per route: 256, or `EMAG_TEST_CASES`. The seed is fixed (per route), so a run is
//! repeatable; a failure is shrunk to the smallest request that shows it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use emag_sync::config::Config;
use emag_sync::web::{self, AppState};
use proptest::prelude::*;
use proptest::test_runner::{
    Config as PropConfig, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use serde_json::Value;
use storage::Store;
use test_support::TestDb;
use tokio_util::sync::CancellationToken;

use super::{canary, credential_secrets, leaked};
use crate::support::bounded;

/// The JSON routes the OpenAPI document does not describe, with their query parameters.
const UNDOCUMENTED: [(&str, &str, &[&str]); 3] = [
    ("get", "/api/status", &[]),
    ("get", "/api/kpis", &["days"]),
    ("get", "/api/series", &["range", "account", "kind"]),
];

/// One operation of the API: a method on a path template.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    /// `/api/runs/{id}`.
    template: String,
    /// Query parameters the document names.
    query: Vec<String>,
    /// Whether it takes a body, and of which content types.
    body_types: Vec<String>,
}

/// The operations of the OpenAPI document, and the undocumented JSON routes.
fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let paths = doc["paths"]
        .as_object()
        .expect("paths in the OpenAPI document");
    for (template, item) in paths {
        for (method, op) in item.as_object().expect("a path item") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let query = params
                .iter()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            let body_types = op["requestBody"]["content"]
                .as_object()
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default();
            out.push(Operation {
                method: method.clone(),
                template: template.clone(),
                query,
                body_types,
            });
        }
    }
    for (method, path, query) in UNDOCUMENTED {
        if !out.iter().any(|o| o.method == method && o.template == path) {
            out.push(Operation {
                method: method.into(),
                template: path.into(),
                query: query.iter().map(|q| (*q).to_owned()).collect(),
                body_types: Vec::new(),
            });
        }
    }
    out
}

/// A request body, kept small in `Debug` output.
#[derive(Clone)]
enum Body {
    None,
    Bytes(Vec<u8>),
    /// A JSON string of this many bytes: past the server's body limit.
    Huge(usize),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::None => write!(f, "None"),
            Body::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Body::Huge(n) => write!(f, "Huge({n})"),
        }
    }
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    /// The dashboard's token.
    Token,
    /// `Authorization` with anything else.
    Header(String),
    /// A session cookie that no login opened.
    Cookie(String),
    /// The cookie of a session opened by `POST /login`.
    Session,
}

/// One generated request.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    /// Path and query as sent (already encoded, or broken on purpose).
    target: String,
    content_type: Option<String>,
    body: Body,
    auth: Auth,
    /// `Origin` / `Sec-Fetch-Site`, as a browser on another site would send.
    origin: Option<(&'static str, String)>,
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

/// Escapes that are broken, decode to invalid UTF-8 or to a control byte, or walk up a path.
const RAW_JUNK: [&str; 14] = [
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
];

/// A path parameter: valid names and ids, numbers past i64, any text, any bytes, long ones.
fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        5 => prop::sample::select(vec!["main", "fbe", "shop2", "MAIN", "1", "2", "0", "-1"])
            .prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{19,40}",
        3 => any::<String>().prop_map(|s| encode(s.as_bytes())),
        2 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| encode(&b)),
        1 => "[a-zA-Z0-9]{1000,6000}",
        2 => prop::collection::vec(prop::sample::select(RAW_JUNK.to_vec()), 1..4)
            .prop_map(|parts| parts.concat()),
    ]
    .boxed()
}

/// A query value: like a path parameter, plus times, limits and kinds near the valid ones.
fn query_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => segment(),
        2 => prop::sample::select(vec![
            "7", "30", "24h", "7d", "offers", "orders", "succeeded", "schedule", "500", "501",
            "1e3", "2026-11-29T22:00:00Z", "2026-13-45T99:00:00Z", "9999999999999999999",
            "true", "",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z]{10000,40000}",
    ]
    .boxed()
}

/// A query string: the documented names and others, repeated, empty, broken.
fn query(names: Vec<String>) -> BoxedStrategy<Option<String>> {
    let mut keys: Vec<String> = names;
    keys.extend(["foo", "", "limit[]", "kind%00", "%FF", "a b"].map(str::to_owned));
    let pair = (prop::sample::select(keys), query_value()).prop_map(|(k, v)| format!("{k}={v}"));
    prop_oneof![
        2 => Just(None),
        6 => prop::collection::vec(pair, 1..6).prop_map(|p| Some(p.join("&"))),
        1 => prop::sample::select(vec!["&&", "=", "==&=", "%", "&=x", "?"])
            .prop_map(|q| Some(q.to_owned())),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::from),
        prop::sample::select(vec!["offers", "orders", "reference", "returns", "all"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["kind", "full", "token", "id", "x", ""])
                    .prop_map(str::to_owned),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn body() -> BoxedStrategy<Body> {
    let bytes = |s: String| Body::Bytes(s.into_bytes());
    prop_oneof![
        8 => Just(Body::None),
        6 => json_value().prop_map(move |v| bytes(v.to_string())),
        4 => prop::sample::select(vec![
            r#"{"kind":"offers"}"#, r#"{"kind":"offers","full":true}"#, r#"{"kind":"books"}"#,
            r#"{"kind":"offers","full":"yes"}"#, r#"{"kind":"offers","extra":1}"#, r#"{"kind":"#,
            r#"{"kind":"offers"}}"#, "[]", "null", "\"offers\"", "token=", "token=x&token=y",
        ])
        .prop_map(|s| Body::Bytes(s.as_bytes().to_vec())),
        4 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Body::Bytes),
        4 => ".{0,64}".prop_map(move |s| bytes(format!("token={}", encode(s.as_bytes())))),
        1 => (2_100_000usize..2_300_000).prop_map(Body::Huge),
    ]
    .boxed()
}

fn content_type() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        2 => Just(None),
        6 => prop::sample::select(vec![
            "application/json", "application/json; charset=utf-8", "application/problem+json",
            "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
            "application/xml", "application/json; charset=latin1", "*/*", "",
        ])
        .prop_map(|c| Some(c.to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
    .boxed()
}

fn auth() -> BoxedStrategy<Auth> {
    prop_oneof![
        2 => Just(Auth::None),
        6 => Just(Auth::Token),
        1 => "Bearer [ -~]{0,40}".prop_map(Auth::Header),
        1 => "[ -~]{0,40}".prop_map(Auth::Header),
        1 => "[!-~&&[^;]]{0,64}".prop_map(Auth::Cookie),
        2 => Just(Auth::Session),
    ]
    .boxed()
}

fn origin() -> BoxedStrategy<Option<(&'static str, String)>> {
    prop_oneof![
        4 => Just(None),
        1 => prop::sample::select(vec!["http://evil.example", "null", "http://127.0.0.1:1"])
            .prop_map(|o| Some(("origin", o.to_owned()))),
        1 => prop::sample::select(vec!["cross-site", "same-origin", "none", "same-site"])
            .prop_map(|s| Some(("sec-fetch-site", s.to_owned()))),
    ]
    .boxed()
}

/// Requests to `op`: mostly its own method, sometimes another.
fn requests(op: &Operation) -> BoxedStrategy<Req> {
    let params = op.template.matches('{').count();
    let template = op.template.clone();
    let method = op.method.clone();
    let methods = prop_oneof![
        12 => Just(method),
        1 => prop::sample::select(vec!["get", "post", "put", "delete", "patch", "options"])
            .prop_map(str::to_owned),
    ];
    // The documented content types often, so bodies get past the type check to the parser.
    let content_types = if op.body_types.is_empty() {
        content_type()
    } else {
        prop_oneof![
            1 => prop::sample::select(op.body_types.clone()).prop_map(Some),
            1 => content_type(),
        ]
        .boxed()
    };
    (
        methods,
        prop::collection::vec(segment(), params),
        query(op.query.clone()),
        content_types,
        body(),
        auth(),
        origin(),
    )
        .prop_map(
            move |(method, segments, query, content_type, body, auth, origin)| {
                let mut path = String::new();
                let mut rest = template.as_str();
                let mut segments = segments.into_iter();
                while let Some(open) = rest.find('{') {
                    let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
                    path.push_str(&rest[..open]);
                    path.push_str(&segments.next().unwrap_or_default());
                    rest = &rest[close..];
                }
                path.push_str(rest);
                let target = match query {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                Req {
                    method,
                    target,
                    content_type,
                    body,
                    auth,
                    origin,
                }
            },
        )
        .boxed()
}

/// The server under test, its secrets, and a client.
struct Fixture {
    base: String,
    http: reqwest::Client,
    token: String,
    /// `emag_session=…` of a session opened with the token.
    session: String,
    secrets: Vec<String>,
    cancel: CancellationToken,
    _db: TestDb,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Fixture {
    /// A dashboard with a token, three accounts and every alert channel configured (every
    /// secret a canary), a few runs in its store, on a port of its own.
    async fn start() -> Fixture {
        let db = TestDb::sqlite();
        let token = canary();
        let mut secrets = vec![token.clone()];
        let mut vars: HashMap<String, String> = HashMap::new();
        for (prefix, user) in [
            ("EMAG_API", "main-user@shop.ro"),
            ("EMAG_FBE_API", "fbe-user@shop.ro"),
            ("EMAG_SHOP2_API", "bg-user@shop.bg"),
        ] {
            let password = canary();
            secrets.extend(credential_secrets(user, &password));
            vars.insert(format!("{prefix}_USERNAME"), user.into());
            vars.insert(format!("{prefix}_PASSWORD"), password);
        }
        let hook = format!("https://hooks.example.com/services/{}", canary());
        let smtp = canary();
        let bot = canary();
        secrets.extend([hook.clone(), smtp.clone(), bot.clone()]);
        for (k, v) in [
            ("DATABASE_URL", db.url.as_str()),
            ("EMAG_DASHBOARD_TOKEN", token.as_str()),
            ("EMAG_ALERT_WEBHOOK_URL", hook.as_str()),
            ("EMAG_SMTP_HOST", "smtp.example.com"),
            ("EMAG_SMTP_PASSWORD", smtp.as_str()),
            ("EMAG_SMTP_FROM", "alerts@shop.ro"),
            ("EMAG_ALERT_EMAIL_TO", "ops@shop.ro"),
            ("EMAG_TELEGRAM_BOT_TOKEN", bot.as_str()),
            ("EMAG_TELEGRAM_CHAT_ID", "-100123"),
            ("EMAG_SHOP2_MARKETPLACE", "bg"),
        ] {
            vars.insert(k.into(), v.into());
        }
        let config = Config::from_vars(&vars).expect("a valid configuration");
        let store = Store::open(&db.url).await.expect("open the store");
        emag_sync::accounts::select(&config, &store, "all")
            .await
            .expect("register the accounts");
        for (account, kind) in [
            ("main", domain::SyncKind::Offers),
            ("fbe", domain::SyncKind::Orders),
        ] {
            store
                .enqueue_run(account, kind, false)
                .await
                .expect("a queued run");
        }
        let listener = web::bind(
            "127.0.0.1:0".parse().expect("addr"),
            config.dashboard.token.as_ref(),
        )
        .await
        .expect("bind a free port");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let cancel = CancellationToken::new();
        tokio::spawn(web::serve(
            listener,
            AppState::new(config, store),
            cancel.clone(),
        ));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            // A connection per request: the server closes one whose request body it did not
            // read, and a pooled connection reused at that moment is not an answer to judge.
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let login = bounded(
            "login",
            http.post(format!("{base}/login"))
                .form(&[("token", token.as_str())])
                .send(),
        )
        .await
        .expect("a login");
        assert_eq!(login.status(), 303, "the token opens a session");
        let session = login
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        Fixture {
            base,
            http,
            token,
            session,
            secrets,
            cancel,
            _db: db,
        }
    }

    /// Sends `req`: its status (`None`: not sent, or cut off while sending a body past the
    /// limit), or what is wrong with the answer.
    async fn check(&self, req: &Req) -> Result<Option<u16>, String> {
        let url = format!("{}{}", self.base, req.target);
        let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|e| e.to_string())?;
        let mut builder = self.http.request(method, &url);
        if let Some(ct) = &req.content_type {
            builder = builder.header("content-type", ct);
        }
        builder = match &req.auth {
            Auth::None => builder,
            Auth::Token => builder.bearer_auth(&self.token),
            Auth::Header(h) => builder.header("authorization", h),
            Auth::Cookie(c) => builder.header("cookie", format!("emag_session={c}")),
            Auth::Session => builder.header("cookie", &self.session),
        };
        if let Some((name, value)) = &req.origin {
            builder = builder.header(*name, value);
        }
        let huge = matches!(req.body, Body::Huge(_));
        builder = match &req.body {
            Body::None => builder,
            Body::Bytes(b) => builder.body(b.clone()),
            Body::Huge(n) => builder.body(format!("\"{}\"", "x".repeat(*n))),
        };
        let response = match builder.send().await {
            Ok(r) => r,
            // The server may answer a body past its limit before reading it and close the
            // connection while the client is still sending: not an answer to judge. That it
            // still serves is checked after every case.
            Err(e) if huge || e.is_builder() => return Ok(None),
            Err(e) => return Err(format!("no answer: {e:?}")),
        };
        let status = response.status().as_u16();
        let headers: Vec<String> = response
            .headers()
            .values()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.map_err(|e| format!("body: {e}"))?;
        if status >= 500 {
            return Err(format!("{status}: {body}"));
        }
        if (400..500).contains(&status) {
            if !content_type.contains("json") {
                return Err(format!(
                    "{status} with content type {content_type:?}: {body}"
                ));
            }
            if serde_json::from_str::<Value>(&body).is_err() {
                return Err(format!("{status} whose body is not JSON: {body}"));
            }
        }
        let mut seen = headers.join("\n");
        seen.push_str(&body);
        let secrets = leaked(&seen, &self.secrets);
        if !secrets.is_empty() {
            return Err(format!("{status} holds secrets {secrets:?}: {seen}"));
        }
        Ok(Some(status))
    }

    /// `/livez` answers 200 and `/health` a health report: the server is up.
    async fn assert_alive(&self) {
        let live = bounded(
            "livez",
            self.http.get(format!("{}/livez", self.base)).send(),
        )
        .await
        .expect("the server answers /livez");
        assert_eq!(live.status(), 200);
        let health = bounded(
            "health",
            self.http.get(format!("{}/health", self.base)).send(),
        )
        .await
        .expect("the server answers /health");
        let body: Value = health.json().await.expect("a health report");
        assert!(body["status"].is_string(), "{body}");
    }
}

/// Cases per route: 256, or `EMAG_TEST_CASES`.
fn cases_per_route() -> u32 {
    std::env::var("EMAG_TEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_to_every_json_route_get_a_4xx_problem_never_a_5xx_or_a_secret() {
    // Arrange: the server, and its routes from its own OpenAPI document.
    let fx = Fixture::start().await;
    let doc: Value = bounded(
        "openapi",
        fx.http.get(format!("{}/openapi.json", fx.base)).send(),
    )
    .await
    .expect("the OpenAPI document")
    .json()
    .await
    .expect("JSON");
    let ops = operations(&doc);
    assert!(ops.len() >= 18, "{ops:?}");
    let cases = cases_per_route();

    // Act + Assert: every route, its own deterministic stream of requests.
    let handle = tokio::runtime::Handle::current();
    for (i, op) in ops.iter().enumerate() {
        let route = format!("{} {}", op.method.to_ascii_uppercase(), op.template);
        let config = PropConfig {
            cases,
            failure_persistence: None,
            max_shrink_iters: 512,
            ..PropConfig::default()
        };
        let mut seed = [0x5e; 32];
        seed[0] = u8::try_from(i).expect("fewer than 256 routes");
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        // Status → count; `None`: not sent.
        let seen: Mutex<BTreeMap<Option<u16>, u32>> = Mutex::default();
        #[expect(
            clippy::result_large_err,
            reason = "proptest's TestRunner::run answers its own TestError, request and all"
        )]
        let result = tokio::task::block_in_place(|| {
            runner.run(&requests(op), |req| {
                let status = handle.block_on(fx.check(&req)).map_err(|e| {
                    TestCaseError::fail(format!("{} {}: {e}", req.method, req.target))
                })?;
                *seen.lock().expect("statuses").entry(status).or_default() += 1;
                Ok(())
            })
        });
        if let Err(e) = result {
            panic!("{route}: {e}");
        }
        fx.assert_alive().await;

        // The requests reached the handlers: each route refused some (4xx) and answered
        // others with something else than 404, and few were not sent at all.
        let seen = seen.into_inner().expect("statuses");
        let total: u32 = seen.values().sum();
        let unsent = seen.get(&None).copied().unwrap_or(0);
        eprintln!("{route}: {total} requests, {unsent} not sent, by status {seen:?}");
        assert!(
            unsent * 10 <= total,
            "{route}: {unsent} of {total} not sent"
        );
        let answered = |f: fn(u16) -> bool| seen.keys().flatten().any(|s| f(*s));
        assert!(
            answered(|s| (400..500).contains(&s)),
            "{route}: no 4xx {seen:?}"
        );
        assert!(answered(|s| s != 404), "{route}: only 404 {seen:?}");
    }
    fx.assert_alive().await;
}
