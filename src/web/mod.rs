//! The HTTP server of emag-sync: `/api/status`, `/health` (`application/health+json`),
//! `/livez`, `/readyz` and `/metrics` (Prometheus), served by `emag-sync dashboard` on its
//! own or inside `start`.
//!
//! It renders the one status model ([`crate::status::Snapshot`]) and typed store reads; the
//! handlers decide nothing. The app is built by [`router`] from an [`AppState`], and served
//! by [`serve`] on a listener the caller bound ([`bind`] applies the rule that keeps a server
//! without a token on loopback), so tests serve it on port 0. Errors are RFC 9457 problems
//! ([`Problem`]); every response carries the security headers; no credential is ever served
//! (the snapshot holds none, the config's secrets stay in the state unread).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use emag_client::EmagClient;
use secrecy::SecretString;
use storage::{StorageError, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::status::Snapshot;
use crate::sync::Account;

mod api;
mod auth;
mod events;
mod health;
mod kpis;
pub mod metrics;
mod middleware;
mod openapi;
mod page;
mod problem;
mod router;
mod snapshot_cache;

pub use auth::check_bind;
pub use health::HEALTH_JSON;
pub use middleware::CONTENT_SECURITY_POLICY;
pub use page::asset_names;
pub use problem::{InvalidParam, Problem, PROBLEM_JSON};
pub use router::router;
pub use snapshot_cache::CachedSnapshot;

/// The longest a request waits for the store before answering 503: a health check that
/// hangs is worse than one that fails.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What every handler may use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    store: Store,
    /// The clients of the syncs this process runs, by account name, for the process-local
    /// request counters; empty in a standalone dashboard.
    api_clients: Vec<(String, EmagClient)>,
    totals_cache: metrics::TotalsCache,
    snapshot_cache: snapshot_cache::SnapshotCache,
    /// The one store poller of this process behind `/api/events`.
    events: Arc<events::Hub>,
}

impl AppState {
    pub fn new(config: Config, store: Store) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                config,
                store,
                api_clients: Vec::new(),
                totals_cache: metrics::TotalsCache::default(),
                snapshot_cache: snapshot_cache::SnapshotCache::default(),
                events: Arc::default(),
            }),
        }
    }

    /// The accounts whose eMAG clients this process syncs with (the scheduler's, and the
    /// reference-data failover peers): `/metrics` reports their request counters.
    pub fn with_api_clients<'a>(self, accounts: impl IntoIterator<Item = &'a Account>) -> Self {
        let api_clients = accounts
            .into_iter()
            .map(|a| (a.name().to_owned(), a.client.clone()))
            .collect();
        AppState {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                store: self.inner.store.clone(),
                api_clients,
                totals_cache: metrics::TotalsCache::default(),
                snapshot_cache: snapshot_cache::SnapshotCache::default(),
                events: Arc::clone(&self.inner.events),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The status snapshot shared by this server's requests (see [`snapshot_cache`]: at most
    /// `EMAG_DASHBOARD_STATUS_MAX_AGE` old, twice that while a newer one is read), or why the
    /// store could not give one within [`STORE_TIMEOUT`].
    pub async fn snapshot(&self) -> Result<Arc<CachedSnapshot>, StorageError> {
        self.inner.snapshot_cache.get(self).await
    }

    /// A snapshot read from the store now, bounded by [`STORE_TIMEOUT`].
    async fn read_snapshot(&self) -> Result<Snapshot, StorageError> {
        self.bounded(Snapshot::read(self.config(), self.store()))
            .await
    }

    fn snapshot_cache(&self) -> &snapshot_cache::SnapshotCache {
        &self.inner.snapshot_cache
    }

    /// Makes the next request read a new snapshot: this process changed the store.
    pub(crate) fn invalidate_snapshot(&self) {
        self.inner.snapshot_cache.invalidate();
    }

    /// A trivial round trip to the store, bounded like every read.
    pub async fn ping(&self) -> Result<Duration, StorageError> {
        self.bounded(self.store().ping()).await
    }

    /// `read`, or a pool timeout if the store does not answer within [`STORE_TIMEOUT`].
    pub async fn bounded<T>(
        &self,
        read: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        tokio::time::timeout(STORE_TIMEOUT, read)
            .await
            .unwrap_or(Err(StorageError::Sqlx(sqlx::Error::PoolTimedOut)))
    }

    /// The events poller of this process (`/api/events`).
    pub(crate) fn events(&self) -> &Arc<events::Hub> {
        &self.inner.events
    }

    /// The rendering of the run totals kept between scrapes of `/metrics`.
    pub(crate) fn totals_cache(&self) -> &metrics::TotalsCache {
        &self.inner.totals_cache
    }

    /// The eMAG request counters of this process's clients, summed per account.
    pub fn api_request_counts(&self) -> metrics::ApiRequests {
        let mut out = metrics::ApiRequests::new();
        for (account, client) in &self.inner.api_clients {
            metrics::add_api_requests(&mut out, account, &client.request_counts());
        }
        out
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "refusing to serve the dashboard on {addr} without EMAG_DASHBOARD_TOKEN: that address \
         is reachable from other machines. Set EMAG_DASHBOARD_TOKEN (at least 16 characters, \
         e.g. `openssl rand -hex 32`), or listen on this machine only with \
         --bind 127.0.0.1:8001 (EMAG_DASHBOARD_BIND)"
    )]
    TokenRequired { addr: SocketAddr },
    #[error(
        "cannot listen on {addr}: {source} (is another dashboard running? choose another \
         address with --bind or EMAG_DASHBOARD_BIND)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server stopped: {0}")]
    Serve(std::io::Error),
}

/// Binds the server's listener at `addr`, after the loopback rule ([`check_bind`]).
pub async fn bind(addr: SocketAddr, token: Option<&SecretString>) -> Result<TcpListener, WebError> {
    check_bind(addr, token)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })
}

/// Serves the app on `listener` until `cancel` fires, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> Result<(), WebError> {
    let bound = listener.local_addr().ok();
    axum::serve(listener, router::router_bound(state, bound))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
        .map_err(WebError::Serve)
}
