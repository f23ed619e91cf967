//! The file lock that serializes, across processes, what must happen once per SQLite file:
//! creating it, switching it to WAL and migrating it.
//!
//! SQLite has no advisory lock of its own (sqlx's migrator takes one on PostgreSQL only), and
//! its own locks cannot order two processes that each begin with "is the table there?". So
//! every process that opens a file-backed database takes an exclusive OS lock on a sibling file,
//! `<db file>.migrate.lock`, for the set-up, and releases it before it does its work. The OS
//! releases the lock however the holder ends, so a killed process never leaves it behind. The
//! lock file itself stays: removing it would let a waiter hold a lock on a deleted file while
//! a newcomer locks a new one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Result, StorageError};

/// The file of a file-backed SQLite `DATABASE_URL`, read as sqlx reads it; `None` for
/// PostgreSQL and in-memory SQLite.
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// `<db file>.<purpose>.lock`, beside the database.
fn sibling_lock_path(db: &Path, purpose: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or(db.as_os_str()).to_os_string();
    name.push(format!(".{purpose}.lock"));
    db.with_file_name(name)
}

/// An exclusive lock on a file, held until dropped (closing the file releases it).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for the migration lock of the SQLite file `db`. The holder's pid is written into
    /// the lock file, so that a process that has to wait can say for whom.
    pub(crate) async fn migration(db: &Path) -> Result<FileLock> {
        let path = sibling_lock_path(db, "migrate");
        let lock_error = |source| StorageError::Lock {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(lock_error)?;
        let file = match file.try_lock() {
            Ok(()) => file,
            Err(TryLockError::Error(e)) => return Err(lock_error(e)),
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                tracing::info!(
                    lock.file = %path.display(),
                    holder.pid = holder.trim(),
                    "another emag-sync process is setting up or migrating the database; waiting for it"
                );
                // `lock` blocks the thread until the holder lets go (or dies).
                tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                    .await
                    .map_err(|e| lock_error(std::io::Error::other(e)))?
                    .map_err(lock_error)?
            }
        };
        // Only informative (the waiter's log line): a failure here changes nothing.
        if file.set_len(0).is_ok() {
            let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
        }
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_file_backed_sqlite_urls_have_a_file() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/emag/s1.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/emag/s1.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://data/emag.db"),
            Some(PathBuf::from("data/emag.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(
            sibling_lock_path(Path::new("/d/s1.db"), "migrate"),
            PathBuf::from("/d/s1.db.migrate.lock")
        );
        assert_eq!(
            sibling_lock_path(Path::new("s1.db"), "migrate"),
            PathBuf::from("s1.db.migrate.lock")
        );
    }

    /// Whether another process could take the lock at `path` now.
    fn is_free(path: &Path) -> bool {
        let file = File::open(path).expect("the lock file exists");
        match file.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(e)) => panic!("try_lock: {e}"),
        }
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_and_passes_to_a_waiter_when_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("x.db");
        let path = dir.path().join("x.db.migrate.lock");

        let first = FileLock::migration(&db).await.expect("first");
        assert!(!is_free(&path), "held by the first");
        let second = tokio::spawn({
            let db = db.clone();
            async move { FileLock::migration(&db).await }
        });
        drop(first);
        let second = tokio::time::timeout(std::time::Duration::from_secs(30), second)
            .await
            .expect("the waiter gets the lock once it is free")
            .expect("join")
            .expect("second");
        assert!(!is_free(&path), "held by the second");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read").trim(),
            std::process::id().to_string(),
            "the holder's pid"
        );
        drop(second);
        assert!(is_free(&path));
    }
}
