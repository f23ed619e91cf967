//! The HTTP client of one eMAG credential pair: pacing, retries, counters, pagination.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::Stream;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use domain::ApiEncoding;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::envelope::{self, Count, Envelope};
use crate::error::{rejection_is_transient, EmagError};
use crate::ratelimit::{limiters_for, Limiters, RateBudget};
use crate::RawItem;

/// Login of one eMAG API user. The password never leaves this type except into the
/// Authorization header.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Which rate bucket a route counts against (emag-api.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteClass {
    Orders,
    Other,
}

impl RouteClass {
    pub fn of(resource: &str) -> RouteClass {
        if resource == "order" || resource.starts_with("order/") {
            RouteClass::Orders
        } else {
            RouteClass::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Orders => "orders",
            RouteClass::Other => "other",
        }
    }
}

/// How eMAG answered one HTTP request: its status code, or no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResponseCode {
    Http(u16),
    /// No answer within `EMAG_API_TIMEOUT`.
    Timeout,
    /// No answer: the connection failed (DNS, refused, TLS, reset).
    Transport,
}

impl std::fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseCode::Http(code) => write!(f, "{code}"),
            ResponseCode::Timeout => f.write_str("timeout"),
            ResponseCode::Transport => f.write_str("transport"),
        }
    }
}

/// How many HTTP requests of a client got one kind of answer (see
/// [`EmagClient::request_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCount {
    pub route_class: RouteClass,
    pub code: ResponseCode,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// e.g. `https://marketplace-api.emag.ro/api-3` (no trailing slash needed).
    pub base_url: String,
    pub credentials: Credentials,
    /// Per request (`EMAG_API_TIMEOUT`).
    pub timeout: Duration,
    /// Retries of a retryable failure (`EMAG_MAX_RETRIES`); 429s are not counted here.
    pub max_retries: u32,
    /// Base of the exponential backoff (`EMAG_RETRY_DELAY`).
    pub retry_delay: Duration,
    /// Longest single backoff.
    pub max_backoff: Duration,
    /// How long a credential may stay rate limited before the call fails.
    pub max_rate_limited: Duration,
    pub rate_budget: RateBudget,
    /// Label for logs (the account name).
    pub label: String,
    /// The largest answer body accepted (`EMAG_API_MAX_BODY`); a larger one is refused while
    /// it streams in, never buffered whole.
    pub max_body: u64,
    /// How requests are encoded until [`EmagClient::set_encoding`] says otherwise.
    pub encoding: ApiEncoding,
}

/// Default of [`ClientConfig::max_body`]: 32 MiB, some 150 times a full page of offers.
pub const DEFAULT_MAX_BODY: u64 = 32 * 1024 * 1024;

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            credentials,
            timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_delay: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
            max_rate_limited: Duration::from_secs(300),
            rate_budget: RateBudget::EMAG,
            label: String::new(),
            max_body: DEFAULT_MAX_BODY,
            encoding: ApiEncoding::JsonData,
        }
    }
}

/// Counters of a client since it was built; take two snapshots for a run's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub requests: u64,
    pub rate_limited: u64,
    pub retries: u64,
    /// `isError` answers to reads that were retried (their messages:
    /// [`EmagClient::retried_messages_since`]).
    pub rejections_retried: u64,
}

impl ClientStats {
    pub fn since(&self, earlier: &ClientStats) -> ClientStats {
        ClientStats {
            requests: self.requests - earlier.requests,
            rate_limited: self.rate_limited - earlier.rate_limited,
            retries: self.retries - earlier.retries,
            rejections_retried: self.rejections_retried - earlier.rejections_retried,
        }
    }
}

/// The messages of the latest `isError` answers to reads that were retried, numbered from the
/// client's start, so a run can take those of its own calls (issue 9, point 5: a read that
/// succeeded when retried still reports what eMAG said). Only eMAG's `messages`/`errors`
/// texts are kept — never `results`, which may hold customer data — each answer's cut by
/// [`domain::run_messages`], and only the last [`RETRIED_KEPT`] answers.
#[derive(Debug, Default)]
struct RetriedRejections {
    /// How many were ever recorded: the number the next one gets.
    next: u64,
    recent: VecDeque<(u64, Vec<String>)>,
}

/// More than a run keeps ([`domain::RUN_MESSAGES_MAX`] distinct messages): a run's calls
/// retried more often than this repeat themselves.
const RETRIED_KEPT: usize = 32;

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    rejections: Mutex<RetriedRejections>,
    /// Requests by route class and answer. A lock per HTTP request costs nothing next to the
    /// request; the map holds a handful of keys.
    by_answer: Mutex<std::collections::BTreeMap<(RouteClass, ResponseCode), u64>>,
}

/// One page of a paginated read.
#[derive(Debug)]
pub struct Page {
    pub number: u32,
    pub items: Vec<RawItem>,
    /// Fewer items than asked for — or, once a [`PageLoop`] accepted it, the loop asks for
    /// no further page: this was the last page.
    pub last: bool,
}

/// The client of one credential pair. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EmagClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    limiters: Arc<Limiters>,
    counters: Arc<Counters>,
    /// The request encoding in use, shared by every clone (the probe sets it once).
    encoding: Arc<AtomicU8>,
}

impl EmagClient {
    pub fn new(config: ClientConfig) -> Result<Self, EmagError> {
        let http = Self::http(config.timeout)?;
        Ok(Self::with_http(config, http))
    }

    /// The HTTP client (connection pool, TLS set-up) that [`EmagClient::with_http`] lets
    /// many accounts share: every account of a marketplace talks to the same host.
    pub fn http(timeout: Duration) -> Result<reqwest::Client, EmagError> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("emag-sync/", env!("CARGO_PKG_VERSION")))
            // A 301/302 would turn the POST into a GET without a body: eMAG would answer it
            // as an unfiltered read. A redirect is reported instead (issue 9, point 2).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EmagError::Transport(e.to_string()))
    }

    /// A client of one credential pair over a shared HTTP client (built by
    /// [`EmagClient::http`] with this config's timeout).
    pub fn with_http(config: ClientConfig, http: reqwest::Client) -> Self {
        let limiters = limiters_for(
            &config.base_url,
            &config.credentials.username,
            config.rate_budget,
        );
        let encoding = Arc::new(AtomicU8::new(encoding_code(config.encoding)));
        EmagClient {
            http,
            config: Arc::new(config),
            limiters,
            counters: Arc::default(),
            encoding,
        }
    }

    /// The request encoding in use.
    pub fn encoding(&self) -> ApiEncoding {
        encoding_of(self.encoding.load(Ordering::Relaxed))
    }

    /// Switches the request encoding of this client and all its clones.
    pub fn set_encoding(&self, encoding: ApiEncoding) {
        self.encoding
            .store(encoding_code(encoding), Ordering::Relaxed);
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            rate_limited: self.counters.rate_limited.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            rejections_retried: self.rejections().next,
        }
    }

    /// The distinct messages of the `isError` answers retried since the snapshot `earlier`
    /// (of this client), oldest first, bounded as a run keeps them ([`domain::run_messages`]).
    /// Like the counters, they are the client's: calls made meanwhile through a clone of it
    /// count too.
    pub fn retried_messages_since(&self, earlier: &ClientStats) -> Vec<String> {
        let log = self.rejections();
        domain::run_messages(
            log.recent
                .iter()
                .filter(|(n, _)| *n >= earlier.rejections_retried)
                .flat_map(|(_, messages)| messages.iter()),
        )
    }

    fn rejections(&self) -> MutexGuard<'_, RetriedRejections> {
        // A panic while recording leaves a consistent log: keep using it.
        self.counters
            .rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn record_retried_rejection(&self, messages: &[String]) {
        let mut log = self.rejections();
        let n = log.next;
        log.next += 1;
        if log.recent.len() == RETRIED_KEPT {
            log.recent.pop_front();
        }
        log.recent.push_back((n, domain::run_messages(messages)));
    }

    /// HTTP requests sent since the client was built, by route class and answer (429s
    /// included), in a stable order.
    pub fn request_counts(&self) -> Vec<RequestCount> {
        self.answers()
            .iter()
            .map(|(&(route_class, code), &count)| RequestCount {
                route_class,
                code,
                count,
            })
            .collect()
    }

    fn answers(
        &self,
    ) -> MutexGuard<'_, std::collections::BTreeMap<(RouteClass, ResponseCode), u64>> {
        // A panic while counting leaves a consistent map: keep counting.
        self.counters
            .by_answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn count_answer(&self, class: RouteClass, code: ResponseCode) {
        *self.answers().entry((class, code)).or_insert(0) += 1;
    }

    /// Calls `{resource}/{action}` with `data` in the client's encoding, pacing, waiting out
    /// 429s and retrying retryable failures. An `isError` answer to a read (`read`, `count`:
    /// idempotent) is retried too, unless its message is a known validation or permission
    /// message; a write is never retried on `isError`. Returns the decoded envelope.
    pub async fn call(
        &self,
        resource: &str,
        action: &str,
        data: &Value,
    ) -> Result<Envelope<RawItem>, EmagError> {
        self.call_with(resource, action, data, envelope::decode)
            .await
    }

    /// [`EmagClient::call`] whose answers are decoded by `decode` (the envelope and its
    /// results in one scan).
    async fn call_with<T>(
        &self,
        resource: &str,
        action: &str,
        data: &Value,
        decode: fn(u16, &[u8]) -> Result<Envelope<T>, EmagError>,
    ) -> Result<Envelope<T>, EmagError> {
        let url = format!(
            "{}/{}/{}",
            self.config.base_url.trim_end_matches('/'),
            resource,
            action
        );
        let class = RouteClass::of(resource);
        let is_read = matches!(action, "read" | "count");
        let (content_type, body) = encode_body(self.encoding(), is_read, data)?;
        let what = (resource, action);
        let mut attempt: u32 = 0;
        let mut limited_since: Option<Instant> = None;
        let mut limited_round: u32 = 0;
        loop {
            self.limiters.acquire(class).await;
            let started = Instant::now();
            let result = self
                .send_once(class, what, &url, content_type, &body, decode)
                .await;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = match result {
                Ok(SendOutcome::Answer(env)) => Ok(env),
                Ok(SendOutcome::RateLimited) => {
                    // Not a failure: the budget of this credential is spent (maybe by another
                    // process). Wait and send the same request again.
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let since = *limited_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.config.max_rate_limited {
                        return Err(EmagError::RateLimited {
                            waited_secs: since.elapsed().as_secs(),
                        });
                    }
                    limited_round += 1;
                    let wait = Duration::from_millis(500)
                        .saturating_mul(limited_round.min(8))
                        .min(Duration::from_secs(5));
                    tracing::debug!(
                        account.name = %self.config.label, api.resource = resource,
                        api.action = action, wait_ms = wait.as_millis() as u64,
                        "eMAG answered 429; waiting before sending the request again"
                    );
                    tokio::time::sleep(jitter(wait)).await;
                    continue;
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(env) => {
                    tracing::trace!(
                        account.name = %self.config.label, api.resource = resource,
                        api.action = action, duration_ms = started.elapsed().as_millis() as u64,
                        "eMAG call succeeded"
                    );
                    return Ok(env);
                }
                Err(e) if retryable(&e, is_read) && attempt < self.config.max_retries => {
                    attempt += 1;
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    if let EmagError::Rejected { messages } = &e {
                        self.record_retried_rejection(messages);
                    }
                    let wait = backoff(self.config.retry_delay, attempt, self.config.max_backoff);
                    tracing::warn!(
                        account.name = %self.config.label, api.resource = resource,
                        api.action = action, error = %e, attempt, wait_ms = wait.as_millis() as u64,
                        "eMAG call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn send_once<T>(
        &self,
        class: RouteClass,
        (resource, action): (&str, &str),
        url: &str,
        content_type: &'static str,
        body: &[u8],
        decode: fn(u16, &[u8]) -> Result<Envelope<T>, EmagError>,
    ) -> Result<SendOutcome<T>, EmagError> {
        let creds = &self.config.credentials;
        let mut response = self
            .http
            .post(url)
            .basic_auth(&creds.username, Some(creds.password.expose_secret()))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                let e = self.transport_error(&e);
                let code = match e {
                    EmagError::Timeout { .. } => ResponseCode::Timeout,
                    _ => ResponseCode::Transport,
                };
                self.count_answer(class, code);
                e
            })?;
        let status = response.status().as_u16();
        self.count_answer(class, ResponseCode::Http(status));
        if status == 429 {
            return Ok(SendOutcome::RateLimited);
        }
        if (300..400).contains(&status) {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("(no Location header)")
                .to_owned();
            return Err(EmagError::Redirected { status, location });
        }
        let limit = self.config.max_body;
        let too_large = |declared| EmagError::BodyTooLarge {
            resource: resource.to_owned(),
            action: action.to_owned(),
            limit,
            declared,
        };
        if let Some(declared) = response.content_length().filter(|&n| n > limit) {
            return Err(too_large(Some(declared)));
        }
        // Read as a stream: a body without Content-Length is refused as soon as it passes the
        // limit, never buffered whole.
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large(None));
            }
            bytes.extend_from_slice(&chunk);
        }
        decode(status, &bytes).map(SendOutcome::Answer)
    }

    fn transport_error(&self, e: &reqwest::Error) -> EmagError {
        if e.is_timeout() {
            EmagError::Timeout {
                timeout_secs: self.config.timeout.as_secs().max(1),
            }
        } else {
            // reqwest's Display omits the cause (connection refused, DNS…); walk the chain.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            EmagError::Transport(text)
        }
    }

    /// `{resource}/count` with the given filters.
    pub async fn count(
        &self,
        resource: &str,
        filters: &Map<String, Value>,
    ) -> Result<Count, EmagError> {
        let env = self
            .call(resource, "count", &Value::Object(filters.clone()))
            .await?;
        envelope::results_as_count(&env.results)
    }

    /// One page of `{resource}/read`.
    pub async fn read_page(
        &self,
        resource: &str,
        filters: &Map<String, Value>,
        page: u32,
        per_page: u32,
    ) -> Result<Page, EmagError> {
        let mut data = filters.clone();
        data.insert("currentPage".into(), page.into());
        data.insert("itemsPerPage".into(), per_page.into());
        let env = self
            .call_with(
                resource,
                "read",
                &Value::Object(data),
                envelope::decode_items,
            )
            .await?;
        let items = env.results?;
        if items.len() > per_page as usize {
            return Err(EmagError::TooManyItems {
                resource: resource.to_owned(),
                page,
                asked: per_page,
                got: items.len(),
            });
        }
        let last = items.len() < per_page as usize;
        Ok(Page {
            number: page,
            items,
            last,
        })
    }

    /// Pages of `{resource}/read` from `first_page` on, bounded and checked by a
    /// [`PageLoop`]: by `count` when given, else ending after the first short or empty page
    /// (eMAG sends no totals with reads).
    pub fn pages<'a>(
        &'a self,
        resource: &'a str,
        filters: Map<String, Value>,
        first_page: u32,
        per_page: u32,
        count: Option<Count>,
    ) -> impl Stream<Item = Result<Page, EmagError>> + 'a {
        let guard = PageLoop::new(resource, first_page, per_page, count);
        futures::stream::try_unfold(guard, move |mut guard| {
            let filters = filters.clone();
            async move {
                let Some(number) = guard.next_page() else {
                    return Ok(None);
                };
                let mut page = self.read_page(resource, &filters, number, per_page).await?;
                guard.accept(&mut page)?;
                Ok(Some((page, guard)))
            }
        })
    }
}

/// The most pages a read without a count may take (a million items at 100 a page): a bound
/// for loops that trust eMAG to end with a short page.
pub const PAGES_WITHOUT_COUNT: u32 = 10_000;

/// Bounds and checks one paginated read (issue 9, point 2), so a loop that trusts eMAG's
/// paging ends — with a classified error naming what was seen — whatever eMAG answers:
///
/// - with a count, only the pages it announced are asked for (not the empty page after the
///   last), plus one more when the last announced page came back fuller than announced (items
///   added while reading); full pages beyond that end the loop with
///   [`EmagError::TooManyPages`]. Without a count, at most [`PAGES_WITHOUT_COUNT`] pages;
/// - a page listing exactly the ids of the page before it ends the loop with
///   [`EmagError::PageRepeated`] (eMAG ignoring `currentPage` would repeat page 1 forever);
/// - a page with more items than asked for is refused by [`EmagClient::read_page`] itself.
///
/// The driver asks [`PageLoop::next_page`] which page to read, reads it, and hands it to
/// [`PageLoop::accept`], which checks it and marks it `last` when the loop is over.
#[derive(Debug, Clone)]
pub struct PageLoop {
    resource: String,
    per_page: u32,
    next: Option<u32>,
    /// Items the count announced, if the loop has a count.
    count_items: Option<u64>,
    /// The last page the count announced (`u32::MAX` without a count).
    last_counted: u32,
    /// No page past this one is asked for.
    bound: u32,
    /// The previous page's number and sorted item fingerprints.
    previous: Option<(u32, Vec<u64>)>,
}

impl PageLoop {
    /// A loop reading pages from `first_page` (a resumed scan starts past 1) of `per_page`
    /// items, bounded by `count` when eMAG gave one.
    pub fn new(resource: &str, first_page: u32, per_page: u32, count: Option<Count>) -> Self {
        let per_page = per_page.max(1);
        let first = first_page.max(1);
        let (count_items, last_counted, bound) = match count {
            Some(c) => {
                let last = u32::try_from(c.items.div_ceil(u64::from(per_page))).unwrap_or(u32::MAX);
                (Some(c.items), last, last.saturating_add(1))
            }
            None => (None, u32::MAX, PAGES_WITHOUT_COUNT),
        };
        PageLoop {
            resource: resource.to_owned(),
            per_page,
            next: (first <= last_counted.min(bound)).then_some(first),
            count_items,
            last_counted,
            bound,
            previous: None,
        }
    }

    /// The page to read next; `None` when the loop is over.
    pub fn next_page(&self) -> Option<u32> {
        self.next
    }

    /// Checks `page`, the answer for [`PageLoop::next_page`], and decides the next one; sets
    /// `page.last` when there is none. An error ends the loop: the answer cannot be trusted.
    pub fn accept(&mut self, page: &mut Page) -> Result<(), EmagError> {
        let prints = fingerprints(&page.items);
        self.accept_keyed(page, prints)
    }

    /// [`PageLoop::accept`] for a caller that has read every item of the page already:
    /// `keys` holds one key per item that identifies it (its id; for an item without one,
    /// a hash of its text), derived the same way on every page of the loop. The loop then
    /// does not read the items again (for offers, that read was a sixth of the decoding).
    pub fn accept_keyed(&mut self, page: &mut Page, mut keys: Vec<u64>) -> Result<(), EmagError> {
        debug_assert_eq!(keys.len(), page.items.len(), "one key per item");
        keys.sort_unstable();
        if let Some((previous, seen)) = &self.previous {
            if !keys.is_empty() && previous + 1 == page.number && *seen == keys {
                return Err(EmagError::PageRepeated {
                    resource: self.resource.clone(),
                    page: page.number,
                    previous: *previous,
                    items: page.items.len(),
                });
            }
        }
        self.previous = Some((page.number, keys));
        let full = page.items.len() >= self.per_page as usize;
        self.next = if !full {
            None
        } else if page.number < self.last_counted.min(self.bound) {
            Some(page.number + 1)
        } else if page.number == self.last_counted && page.number < self.bound {
            // The last announced page is full: read one more only if the count expected fewer
            // items on it (items were added while reading); else the next page is empty.
            let before = u64::from(page.number - 1) * u64::from(self.per_page);
            let expected = self.count_items.unwrap_or(0).saturating_sub(before);
            (page.items.len() as u64 > expected).then_some(page.number + 1)
        } else {
            return Err(EmagError::TooManyPages {
                resource: self.resource.clone(),
                page: page.number,
                count_items: self.count_items,
                bound: self.bound,
            });
        };
        page.last = self.next.is_none();
        Ok(())
    }
}

/// What identifies each item of a page: its `id` (or `emag_id`), or its whole text when it
/// has neither.
fn fingerprints(items: &[RawItem]) -> Vec<u64> {
    #[derive(Deserialize)]
    struct Ids<'a> {
        #[serde(default, borrow)]
        id: Option<&'a RawValue>,
        #[serde(default, borrow)]
        emag_id: Option<&'a RawValue>,
    }
    items
        .iter()
        .map(|item| {
            let key = serde_json::from_str::<Ids<'_>>(item.get())
                .ok()
                .and_then(|ids| ids.id.or(ids.emag_id))
                .map_or(item.get(), RawValue::get);
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(key.trim_matches('"'), &mut h);
            std::hash::Hasher::finish(&h)
        })
        .collect()
}

fn encoding_code(e: ApiEncoding) -> u8 {
    match e {
        ApiEncoding::Form => 0,
        ApiEncoding::JsonData => 1,
        ApiEncoding::Json => 2,
    }
}

fn encoding_of(code: u8) -> ApiEncoding {
    match code {
        0 => ApiEncoding::Form,
        2 => ApiEncoding::Json,
        _ => ApiEncoding::JsonData,
    }
}

/// The request body of `data` in `encoding`: its content type and bytes. With
/// [`ApiEncoding::Json`] the filters of a read sit at the top level; saves keep `data`.
pub(crate) fn encode_body(
    encoding: ApiEncoding,
    is_read: bool,
    data: &Value,
) -> Result<(&'static str, Vec<u8>), EmagError> {
    const JSON: &str = "application/json";
    let json = |v: &Value| {
        serde_json::to_vec(v)
            .map_err(|e| EmagError::Transport(format!("cannot encode the request: {e}")))
    };
    match encoding {
        ApiEncoding::JsonData => Ok((JSON, json(&serde_json::json!({ "data": data }))?)),
        ApiEncoding::Json if is_read && data.is_object() => Ok((JSON, json(data)?)),
        ApiEncoding::Json => Ok((JSON, json(&serde_json::json!({ "data": data }))?)),
        ApiEncoding::Form => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form_fields("data", data, &mut form);
            Ok((
                "application/x-www-form-urlencoded",
                form.finish().into_bytes(),
            ))
        }
    }
}

/// PHP's `http_build_query` shape: `data[a][0][b]=v`; booleans as 1/0, null as empty.
fn form_fields(key: &str, value: &Value, form: &mut url::form_urlencoded::Serializer<'_, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                form_fields(&format!("{key}[{k}]"), v, form);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                form_fields(&format!("{key}[{i}]"), v, form);
            }
        }
        Value::Null => {
            form.append_pair(key, "");
        }
        Value::Bool(b) => {
            form.append_pair(key, if *b { "1" } else { "0" });
        }
        Value::Number(n) => {
            form.append_pair(key, &n.to_string());
        }
        Value::String(s) => {
            form.append_pair(key, s);
        }
    }
}

/// Whether a failed call is tried again: a retryable class, or an `isError` answer to a read
/// whose messages are not a known validation or permission message.
fn retryable(e: &EmagError, is_read: bool) -> bool {
    match e {
        EmagError::Rejected { messages } => is_read && rejection_is_transient(messages),
        other => other.is_retryable(),
    }
}

enum SendOutcome<T> {
    Answer(Envelope<T>),
    RateLimited,
}

/// `base × 2^(attempt-1)`, capped, with ±25% jitter so retries of many accounts spread out.
pub(crate) fn backoff(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    jitter(exp.min(cap))
}

fn jitter(d: Duration) -> Duration {
    let factor = rand::thread_rng().gen_range(750..=1250u32);
    d.saturating_mul(factor) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_is_capped() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(30);
        for attempt in 1..=3u32 {
            let nominal = base * (1 << (attempt - 1));
            let d = backoff(base, attempt, cap);
            assert!(
                d >= nominal * 3 / 4 && d <= nominal * 5 / 4,
                "{attempt}: {d:?}"
            );
        }
        assert!(backoff(base, 20, cap) <= cap * 5 / 4);
    }

    fn page(number: u32, ids: std::ops::Range<u32>, per_page: u32) -> Page {
        let items: Vec<RawItem> = ids
            .map(|id| RawValue::from_string(format!(r#"{{"id":{id},"x":"y"}}"#)).expect("json"))
            .collect();
        let last = items.len() < per_page as usize;
        Page {
            number,
            items,
            last,
        }
    }

    fn count(items: u64) -> Count {
        Count {
            items,
            pages: items.div_ceil(100),
            per_page: 100,
        }
    }

    #[test]
    fn a_page_repeating_the_previous_pages_ids_ends_the_loop() {
        let mut pages = PageLoop::new("product_offer", 1, 100, Some(count(1_000)));
        let mut first = page(1, 1..101, 100);
        pages.accept(&mut first).expect("page 1");
        assert_eq!(pages.next_page(), Some(2));
        let mut again = page(2, 1..101, 100);
        match pages.accept(&mut again) {
            Err(EmagError::PageRepeated {
                page: 2,
                previous: 1,
                items: 100,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_page_whose_keys_repeat_the_previous_pages_ends_the_loop_in_any_order() {
        let mut pages = PageLoop::new("product_offer", 1, 100, Some(count(1_000)));
        let mut first = page(1, 1..101, 100);
        pages
            .accept_keyed(&mut first, (1..101).collect())
            .expect("page 1");
        let mut second = page(2, 101..201, 100);
        pages
            .accept_keyed(&mut second, (101..201).rev().collect())
            .expect("page 2");
        let mut again = page(3, 101..201, 100);
        match pages.accept_keyed(&mut again, (101..201).collect()) {
            Err(EmagError::PageRepeated {
                page: 3,
                previous: 2,
                items: 100,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn with_a_count_the_empty_page_after_the_last_is_not_asked_for() {
        let mut pages = PageLoop::new("product_offer", 1, 100, Some(count(200)));
        for n in 1..=2 {
            assert_eq!(pages.next_page(), Some(n));
            let mut p = page(n, (n - 1) * 100 + 1..n * 100 + 1, 100);
            pages.accept(&mut p).expect("page");
            assert_eq!(p.last, n == 2, "page {n}");
        }
        assert_eq!(pages.next_page(), None);
        // Nothing counted: nothing asked.
        assert_eq!(
            PageLoop::new("product_offer", 1, 100, Some(count(0))).next_page(),
            None
        );
    }

    #[test]
    fn one_page_past_the_count_is_read_when_items_were_added_and_no_more() {
        let mut pages = PageLoop::new("product_offer", 1, 100, Some(count(150)));
        let mut p1 = page(1, 1..101, 100);
        pages.accept(&mut p1).expect("page 1");
        // 50 were announced on page 2; it came back full: items were added meanwhile.
        let mut p2 = page(2, 101..201, 100);
        pages.accept(&mut p2).expect("page 2");
        assert_eq!(pages.next_page(), Some(3));
        let mut p3 = page(3, 201..301, 100);
        match pages.accept(&mut p3) {
            Err(EmagError::TooManyPages {
                page: 3,
                count_items: Some(150),
                bound: 3,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_a_count_full_pages_end_at_the_hard_bound() {
        let mut pages = PageLoop::new("category", PAGES_WITHOUT_COUNT, 2, None);
        let mut p = page(PAGES_WITHOUT_COUNT, 1..3, 2);
        assert!(matches!(
            pages.accept(&mut p),
            Err(EmagError::TooManyPages {
                count_items: None,
                ..
            })
        ));
        // A resumed scan starts where it left off; a short page ends it.
        let mut pages = PageLoop::new("category", 7, 2, None);
        assert_eq!(pages.next_page(), Some(7));
        let mut short = page(7, 1..2, 2);
        pages.accept(&mut short).expect("short page");
        assert!(short.last);
        assert_eq!(pages.next_page(), None);
    }

    #[test]
    fn every_encoding_carries_the_same_filters() {
        let data = serde_json::json!({"currentPage": 2, "type": [2, 3], "flag": true});
        let (ct, form) = encode_body(ApiEncoding::Form, true, &data).expect("form");
        assert_eq!(ct, "application/x-www-form-urlencoded");
        assert_eq!(
            String::from_utf8(form).expect("utf8"),
            "data%5BcurrentPage%5D=2&data%5Bflag%5D=1&data%5Btype%5D%5B0%5D=2&data%5Btype%5D%5B1%5D=3"
        );
        let (_, wrapped) = encode_body(ApiEncoding::JsonData, true, &data).expect("json-data");
        assert_eq!(
            serde_json::from_slice::<Value>(&wrapped).expect("json"),
            serde_json::json!({ "data": data })
        );
        let (_, top) = encode_body(ApiEncoding::Json, true, &data).expect("json");
        assert_eq!(serde_json::from_slice::<Value>(&top).expect("json"), data);
        // A save keeps `data` in the top-level encoding.
        let save = serde_json::json!([{"id": 1}]);
        let (_, body) = encode_body(ApiEncoding::Json, false, &save).expect("save");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).expect("json"),
            serde_json::json!({ "data": save })
        );
    }

    #[test]
    fn is_error_is_retried_on_reads_only_and_never_for_validation_messages() {
        let transient = EmagError::Rejected {
            messages: vec!["Temporary problem, please retry".into()],
        };
        let validation = EmagError::Rejected {
            messages: vec!["Invalid currentPage: expected an integer".into()],
        };
        assert!(retryable(&transient, true));
        assert!(
            !retryable(&transient, false),
            "a write is never retried on isError"
        );
        assert!(!retryable(&validation, true));
    }

    #[test]
    fn a_run_gets_the_messages_of_the_retried_is_errors_since_its_snapshot_once_each() {
        let client = EmagClient::new(ClientConfig::new(
            "http://127.0.0.1:9/api-3",
            Credentials {
                username: "u".into(),
                password: SecretString::from("p"),
            },
        ))
        .expect("client");
        client.record_retried_rejection(&["of an earlier run".into()]);
        let before = client.stats();
        for _ in 0..3 {
            client.record_retried_rejection(&["Temporary problem, please retry".into()]);
        }
        client.record_retried_rejection(&["x".repeat(1000)]);

        let messages = client.retried_messages_since(&before);

        assert_eq!(client.stats().since(&before).rejections_retried, 4);
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[0], "Temporary problem, please retry");
        assert_eq!(messages[1].chars().count(), domain::RUN_MESSAGE_CHARS);
        assert!(client.retried_messages_since(&client.stats()).is_empty());
    }

    #[test]
    fn order_routes_have_their_own_budget() {
        assert_eq!(RouteClass::of("order"), RouteClass::Orders);
        assert_eq!(RouteClass::of("order/attachments"), RouteClass::Orders);
        assert_eq!(RouteClass::of("product_offer"), RouteClass::Other);
    }

    #[test]
    fn credentials_never_show_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: SecretString::from("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
