//! The HTTP client of one eMAG credential pair: pacing, retries, counters, pagination.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::envelope::{self, Count, Envelope};
use crate::error::EmagError;
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
}

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
        }
    }
}

/// Counters of a client since it was built; take two snapshots for a run's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub requests: u64,
    pub rate_limited: u64,
    pub retries: u64,
}

impl ClientStats {
    pub fn since(&self, earlier: &ClientStats) -> ClientStats {
        ClientStats {
            requests: self.requests - earlier.requests,
            rate_limited: self.rate_limited - earlier.rate_limited,
            retries: self.retries - earlier.retries,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    /// Requests by route class and answer. A lock per HTTP request costs nothing next to the
    /// request; the map holds a handful of keys.
    by_answer: std::sync::Mutex<std::collections::BTreeMap<(RouteClass, ResponseCode), u64>>,
}

/// One page of a paginated read.
#[derive(Debug)]
pub struct Page {
    pub number: u32,
    pub items: Vec<RawItem>,
    /// Fewer items than asked for: this was the last page.
    pub last: bool,
}

/// The client of one credential pair. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EmagClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    limiters: Arc<Limiters>,
    counters: Arc<Counters>,
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
        EmagClient {
            http,
            config: Arc::new(config),
            limiters,
            counters: Arc::default(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            rate_limited: self.counters.rate_limited.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
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
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(RouteClass, ResponseCode), u64>>
    {
        // A panic while counting leaves a consistent map: keep counting.
        self.counters
            .by_answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count_answer(&self, class: RouteClass, code: ResponseCode) {
        *self.answers().entry((class, code)).or_insert(0) += 1;
    }

    /// Calls `{resource}/{action}` with `{"data": data}`, pacing, waiting out 429s and
    /// retrying retryable failures. Returns the decoded envelope.
    pub async fn call(
        &self,
        resource: &str,
        action: &str,
        data: &Value,
    ) -> Result<Envelope<RawItem>, EmagError> {
        let url = format!(
            "{}/{}/{}",
            self.config.base_url.trim_end_matches('/'),
            resource,
            action
        );
        let class = RouteClass::of(resource);
        let body = serde_json::to_vec(&serde_json::json!({ "data": data }))
            .map_err(|e| EmagError::Transport(format!("cannot encode the request: {e}")))?;
        let mut attempt: u32 = 0;
        let mut limited_since: Option<Instant> = None;
        let mut limited_round: u32 = 0;
        loop {
            self.limiters.acquire(class).await;
            let started = Instant::now();
            let result = self.send_once(class, &url, &body).await;
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
                Err(e) if e.is_retryable() && attempt < self.config.max_retries => {
                    attempt += 1;
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
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

    async fn send_once(
        &self,
        class: RouteClass,
        url: &str,
        body: &[u8],
    ) -> Result<SendOutcome, EmagError> {
        let creds = &self.config.credentials;
        let response = self
            .http
            .post(url)
            .basic_auth(&creds.username, Some(creds.password.expose_secret()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
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
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        envelope::decode(status, &bytes).map(SendOutcome::Answer)
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
        let env = self.call(resource, "read", &Value::Object(data)).await?;
        let items = envelope::results_as_items(&env.results)?;
        let last = items.len() < per_page as usize;
        Ok(Page {
            number: page,
            items,
            last,
        })
    }

    /// Pages of `{resource}/read` from `first_page` on, ending after the first short or
    /// empty page (eMAG sends no totals with reads).
    pub fn pages<'a>(
        &'a self,
        resource: &'a str,
        filters: Map<String, Value>,
        first_page: u32,
        per_page: u32,
    ) -> impl Stream<Item = Result<Page, EmagError>> + 'a {
        futures::stream::try_unfold(Some(first_page), move |next| {
            let filters = filters.clone();
            async move {
                let Some(number) = next else { return Ok(None) };
                let page = self.read_page(resource, &filters, number, per_page).await?;
                let next = if page.last { None } else { Some(number + 1) };
                Ok(Some((page, next)))
            }
        })
    }
}

enum SendOutcome {
    Answer(Envelope<RawItem>),
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
