//! SQLite snapshots: `VACUUM INTO` a timestamped file under the backup directory, keeping
//! the newest N. On PostgreSQL, backups are pg_dump's job (see README).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use storage::Store;

const PREFIX: &str = "emag-sync-";
const SUFFIX: &str = ".db";

/// Writes a snapshot now and prunes old ones; returns the new file.
pub async fn backup_now(store: &Store, dir: &Path, keep: usize) -> anyhow::Result<PathBuf> {
    let name = format!(
        "{PREFIX}{}{SUFFIX}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let path = dir.join(name);
    store.backup_sqlite_into(&path).await?;
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
