//! SQLite's WAL written back into the database beside a bulk writer, not inside its commits.
//!
//! SQLite's own checkpoints run in the commit that takes the WAL past
//! `wal_autocheckpoint` pages: the writer stops to copy the WAL into the database file. In a
//! scan's writes that was a good part of the commits' time (commit: half of the write stage
//! per 100,000 offers). After each batch of a scan, the store starts a passive checkpoint on
//! another connection — the other core copies while the writer goes on. A WAL only starts
//! over when a write begins with every page of it written back, which a checkpoint running
//! beside the writes rarely allows; so when the WAL has grown past [`WAL_BOUND_BYTES`], the
//! next batch first waits for the checkpoint and writes back what is left, and the WAL
//! starts over. SQLite's own checkpoints stay on, at twice that bound, for every other write.
//! Both bounds are in bytes: SQLite counts pages, and a file's pages are 4 KiB or 16 KiB
//! (see [`PAGE_SIZE`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::Result;

/// The page size of a new SQLite database file (SQLite's default is 4 KiB). An offer row is
/// about 1.4 KB and an order's over 2 KB: a 4 KiB page held two offers or one order and left
/// the rest empty, which every write carried into the WAL and back into the file. 16 KiB
/// pages hold eleven offers or seven orders: 100,000 offers take 167 MB instead of 208, and
/// their first sync is 15 % faster, 24 % at 1,000,000 (docs/PERFORMANCE.md). A file keeps the
/// page size it was made with: an older file stays at 4 KiB (`PRAGMA page_size` changes only
/// an empty file).
pub(crate) const PAGE_SIZE: i64 = 16_384;

/// The WAL size past which a batch waits for the WAL to be written back.
pub(crate) const WAL_BOUND_BYTES: i64 = 16 << 20;

/// SQLite's own checkpoint threshold on every connection (`PRAGMA wal_autocheckpoint`,
/// given in pages of the file).
pub(crate) const AUTOCHECKPOINT_BYTES: i64 = 2 * WAL_BOUND_BYTES;

/// The background checkpoints of one store.
#[derive(Debug)]
pub(crate) struct WalCheckpointer {
    /// Held by the checkpoint in progress.
    turn: Arc<Semaphore>,
    /// Pages in the WAL when the last checkpoint ended.
    pages: Arc<AtomicI64>,
    /// [`WAL_BOUND_BYTES`] in pages of the file.
    bound_pages: i64,
}

impl WalCheckpointer {
    /// The checkpoints of a file whose pages are `page_size` bytes.
    pub(crate) fn new(page_size: i64) -> Self {
        WalCheckpointer {
            turn: Arc::new(Semaphore::new(1)),
            pages: Arc::new(AtomicI64::new(0)),
            bound_pages: WAL_BOUND_BYTES / page_size,
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

    /// Before a bulk write: past [`WAL_BOUND_BYTES`], waits for the checkpoint in progress
    /// and writes back the rest, so that the write starts the WAL over.
    pub(crate) async fn bound(&self, pool: &AnyPool) {
        if self.pages.load(Ordering::Relaxed) <= self.bound_pages {
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
