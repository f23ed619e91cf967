//! SQLite snapshots: `VACUUM INTO` a timestamped file under the backup directory, keeping
//! the newest N. On PostgreSQL, backups are pg_dump's job (see README).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use storage::Store;

const PREFIX: &str = "emag-sync-";
const SUFFIX: &str = ".db";

/// Writes a snapshot now and prunes old ones; returns the new file. The snapshot is written
/// under a hidden name of its own and linked to its final name only when complete, so a
/// crash mid-write never leaves a half snapshot among the snapshots, and two snapshots taken
/// in the same millisecond (two processes, or two tasks) get two names.
pub async fn backup_now(store: &Store, dir: &Path, keep: usize) -> anyhow::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let partial = dir.join(format!(
        ".{PREFIX}{stamp}-{}-{}.partial",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = store.backup_sqlite_into(&partial).await;
    let linked = written.map_err(anyhow::Error::from).and_then(|()| {
        (0..1000)
            .map(|n| match n {
                0 => dir.join(format!("{PREFIX}{stamp}{SUFFIX}")),
                n => dir.join(format!("{PREFIX}{stamp}-{n}{SUFFIX}")),
            })
            .find_map(|path| match std::fs::hard_link(&partial, &path) {
                Ok(()) => Some(Ok(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(anyhow::anyhow!(
                    "cannot name the snapshot {}: {e}",
                    path.display()
                ))),
            })
            .unwrap_or_else(|| Err(anyhow::anyhow!("no free snapshot name")))
    });
    let _ = std::fs::remove_file(&partial);
    let path = linked?;
    prune(dir, keep.max(1))?;
    Ok(path)
}

/// Our snapshots in `dir`, oldest first (the names sort by time).
pub fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    files.sort();
    files
}

fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let files = snapshots(dir);
    for old in files.iter().take(files.len().saturating_sub(keep)) {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// How long ago the newest snapshot was written, if there is one.
pub fn newest_age(dir: &Path) -> Option<Duration> {
    let newest = snapshots(dir).pop()?;
    let modified = std::fs::metadata(newest).ok()?.modified().ok()?;
    SystemTime::now().duration_since(modified).ok()
}
