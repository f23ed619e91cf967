//! The status snapshot shared by the requests of one server.
//!
//! Reading a snapshot costs the store a few index reads per (account, kind) — ~100 ms with
//! 1,000 accounts and a million runs — and rendering `/api/status` a few milliseconds more;
//! a page open on several screens, a monitor polling hard or a load balancer's health
//! checks must not each pay that. So one read serves every request for
//! [`DashboardSettings::status_max_age`](crate::config::DashboardSettings::status_max_age)
//! (1 s by default), and the JSON body of `/api/status` is rendered once per read.
//!
//! When the snapshot has aged past that, the next request starts one read in the background
//! and is answered with the snapshot it has, provided that is less than twice the age old;
//! every later request is answered the same until the read lands. Only a request that finds
//! no snapshot, or one older than twice the age (the server was idle), waits for a read, and
//! concurrent such requests wait for the same one. So a served snapshot is at most twice the
//! age old, and requests under load never wait for the store. A read that fails is not kept:
//! the request that waited for it gets the error (503), and the next one tries again.
//!
//! A snapshot is dropped at once when the store is known to have changed: a mutation
//! through this server (pause, sync now, cancel), or a change seen by the events poller
//! (any process's runs, pauses, attention; it polls while a page listens). So the page that
//! gets an event, or that made a change, reads a snapshot taken after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use axum::body::Bytes;
use storage::StorageError;

use crate::status::{ApiStatus, Snapshot};

use super::AppState;

/// One read of the store, and what was rendered from it.
#[derive(Debug)]
pub struct CachedSnapshot {
    pub snapshot: Snapshot,
    /// When its read began: it shows the store as of then or later.
    read_at: Instant,
    /// [`SnapshotCache::generation`] when its read began.
    generation: u64,
    status_json: OnceLock<Bytes>,
    status_gzip: OnceLock<Bytes>,
}

impl CachedSnapshot {
    fn new(snapshot: Snapshot, read_at: Instant, generation: u64) -> CachedSnapshot {
        CachedSnapshot {
            snapshot,
            read_at,
            generation,
            status_json: OnceLock::new(),
            status_gzip: OnceLock::new(),
        }
    }

    /// The body of `/api/status`, rendered on first use.
    pub fn status_json(&self) -> Bytes {
        self.status_json
            .get_or_init(|| {
                serde_json::to_vec(&ApiStatus::from(&self.snapshot))
                    // A derived Serialize of plain data with string keys cannot fail.
                    .unwrap_or_default()
                    .into()
            })
            .clone()
    }

    /// The same body gzip-compressed, also once per snapshot: with 1,000 accounts the JSON
    /// is ~2.3 MB and copying it is what a busy server spends its time on; compressed it is
    /// a small fraction of that (browsers and monitors ask for gzip).
    pub fn status_json_gzip(&self) -> Bytes {
        self.status_gzip
            .get_or_init(|| {
                use std::io::Write as _;
                let json = self.status_json();
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(json.len() / 8),
                    flate2::Compression::fast(),
                );
                // Writing to a Vec cannot fail.
                let _ = gz.write_all(&json);
                gz.finish().unwrap_or_default().into()
            })
            .clone()
    }
}

#[derive(Debug, Default)]
pub struct SnapshotCache {
    current: Mutex<Option<Arc<CachedSnapshot>>>,
    /// Held by the one read in progress.
    reading: Arc<tokio::sync::Mutex<()>>,
    /// Changes made through this server (mutations of the API).
    invalidated: AtomicU64,
}

impl SnapshotCache {
    fn current(&self) -> Option<Arc<CachedSnapshot>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes every snapshot read so far stale.
    pub fn invalidate(&self) {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
    }

    /// Moves whenever the store is known to have changed: a mutation through this server,
    /// or a change the events poller saw (made by any process). A snapshot read before it
    /// moved is not served.
    fn generation(&self, state: &AppState) -> u64 {
        self.invalidated.load(Ordering::SeqCst) + state.events().changes()
    }

    fn keep(&self, snapshot: Snapshot, read_at: Instant, generation: u64) -> Arc<CachedSnapshot> {
        let cached = Arc::new(CachedSnapshot::new(snapshot, read_at, generation));
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&cached));
        cached
    }

    /// A snapshot no older than the rule of the module doc allows.
    pub async fn get(&self, state: &AppState) -> Result<Arc<CachedSnapshot>, StorageError> {
        let max_age = state.config().dashboard.status_max_age;
        let arrived = Instant::now();
        let generation = self.generation(state);
        if let Some(cached) = self.current().filter(|c| c.generation == generation) {
            let age = cached.read_at.elapsed();
            if age < max_age {
                return Ok(cached);
            }
            if age < max_age * 2 {
                if let Ok(guard) = Arc::clone(&self.reading).try_lock_owned() {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _reading = guard;
                        let started = Instant::now();
                        let generation = state.snapshot_cache().generation(&state);
                        match state.read_snapshot().await {
                            Ok(snapshot) => {
                                state.snapshot_cache().keep(snapshot, started, generation);
                            }
                            Err(e) => {
                                tracing::warn!("reading the status snapshot failed: {e}");
                            }
                        }
                    });
                }
                return Ok(cached);
            }
        }
        let _reading = self.reading.lock().await;
        // Another request may have read it while this one waited: a read that began after
        // this request arrived is as good as its own.
        if let Some(cached) = self.current() {
            let read_since = cached.read_at >= arrived && cached.generation >= generation;
            let fresh =
                cached.generation == self.generation(state) && cached.read_at.elapsed() < max_age;
            if read_since || fresh {
                return Ok(cached);
            }
        }
        let started = Instant::now();
        let generation = self.generation(state);
        let snapshot = state.read_snapshot().await?;
        Ok(self.keep(snapshot, started, generation))
    }
}
