//! SQLite's WAL written back into the database beside a bulk writer, not inside its commits.
//!
//! SQLite's own checkpoints run in the commit that takes the WAL past
//! `wal_autocheckpoint` pages: the writer stops to copy the WAL into the database file. In a
//! scan's writes that was a good part of the commits' time (commit: half of the write stage
//! per 100,000 offers). After each batch of a scan, the store starts a passive checkpoint on
//! another connection — the other core copies while the writer goes on. A WAL only starts
//! over when a write begins with every page of it written back, which a checkpoint running
//! beside the writes rarely allows; so when the WAL has grown past [`WAL_BOUND_PAGES`], the
//! next batch first waits for the checkpoint and writes back what is left, and the WAL
//! starts over. SQLite's own checkpoints stay on, at twice that bound, for every other write.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::Result;

/// The WAL pages past which a batch waits for the WAL to be written back (16 MiB of 4 KiB
/// pages).
pub(crate) const WAL_BOUND_PAGES: i64 = 4_000;

/// SQLite's own checkpoint threshold on every connection (`PRAGMA wal_autocheckpoint`).
pub(crate) const AUTOCHECKPOINT_PAGES: i64 = 2 * WAL_BOUND_PAGES;

/// The background checkpoints of one store.
#[derive(Debug)]
pub(crate) struct WalCheckpointer {
    /// Held by the checkpoint in progress.
    turn: Arc<Semaphore>,
    /// Pages in the WAL when the last checkpoint ended.
    pages: Arc<AtomicI64>,
}

impl WalCheckpointer {
    pub(crate) fn new() -> Self {
        WalCheckpointer {
            turn: Arc::new(Semaphore::new(1)),
            pages: Arc::new(AtomicI64::new(0)),
        }
    }

    /// After a bulk commit: a passive checkpoint on another connection, unless one runs.
    pub(crate) fn start(&self, pool: &AnyPool) {
        let Ok(turn) = Arc::clone(&self.turn).try_acquire_owned() else {
            return;
        };
        let pool = pool.clone();
        let pages = Arc::clone(&self.pages);
        tokio::spawn(async move {
            match checkpoint(&pool).await {
                Ok(n) => pages.store(n, Ordering::Relaxed),
                // Only a later checkpoint (ours or SQLite's own) is delayed; a passive one
                // does not fail on a busy database, so this is worth a look (disk, file).
                Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
            }
            drop(turn);
        });
    }

    /// Before a bulk write: past [`WAL_BOUND_PAGES`], waits for the checkpoint in progress
    /// and writes back the rest, so that the write starts the WAL over.
    pub(crate) async fn bound(&self, pool: &AnyPool) {
        if self.pages.load(Ordering::Relaxed) <= WAL_BOUND_PAGES {
            return;
        }
        let _turn = self
            .turn
            .acquire()
            .await
            .expect("the semaphore is never closed");
        match checkpoint(pool).await {
            // Every page is back (unless a reader still uses them): the next write starts
            // the WAL over, and the next checkpoint tells its new size.
            Ok(_) => self.pages.store(0, Ordering::Relaxed),
            // The write goes on; SQLite's own checkpoints still bound the WAL.
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint before a write failed"),
        }
    }
}

/// A passive checkpoint (it never waits for readers or writers); the pages in the WAL.
async fn checkpoint(pool: &AnyPool) -> Result<i64> {
    let (_busy, pages, _written): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
    Ok(pages)
}
