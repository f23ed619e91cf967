//! The database of `emag-sync demo`: recreated on every run, so the demo must only ever
//! delete a database it made itself. Its databases carry a mark in the SQLite header
//! (`PRAGMA application_id`), readable without opening the file as a database.

use std::path::{Path, PathBuf};

/// The SQLite `application_id` of a database made by the demo: "EMDM".
pub const DEMO_APPLICATION_ID: u32 = 0x454D_444D;

/// The demo's own default database: also replaced without a mark (demos older than the mark
/// made it).
pub const DEFAULT_DEMO_DATABASE: &str = "data/demo.db";

/// Why the demo may not replace a file.
#[derive(Debug, thiserror::Error)]
pub enum DemoDbError {
    #[error(
        "{} exists and was not made by `emag-sync demo`: the demo recreates its database on \
         every run, so it deletes only its own. Give --database a new file (or leave it out \
         for {DEFAULT_DEMO_DATABASE}), or remove {} yourself if you mean to",
        .0.display(), .0.display()
    )]
    NotOurs(PathBuf),
    #[error("cannot {what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether the file at `path` is a demo database: an SQLite file whose header holds
/// [`DEMO_APPLICATION_ID`]. `Ok(None)` when there is no file.
pub fn is_demo_database(path: &Path) -> std::io::Result<Option<bool>> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut header = Vec::with_capacity(100);
    file.by_ref().take(100).read_to_end(&mut header)?;
    let marked = header.len() == 100
        && header.starts_with(b"SQLite format 3\0")
        && header[68..72] == DEMO_APPLICATION_ID.to_be_bytes();
    Ok(Some(marked))
}

/// Deletes the demo database at `path` (with its `-wal` and `-shm`) so the demo can make it
/// anew, or refuses if the file there is not the demo's: no file, an empty one, a marked one
/// or the unmarked default path may go; anything else is someone's data.
pub fn remove_for_new_demo(path: &Path) -> Result<(), DemoDbError> {
    let io = |what, source| DemoDbError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let empty = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0);
    let ours = match is_demo_database(path).map_err(|e| io("read", e))? {
        None => true,
        Some(marked) => marked || empty || path == Path::new(DEFAULT_DEMO_DATABASE),
    };
    if !ours {
        return Err(DemoDbError::NotOurs(path.to_owned()));
    }
    for ext in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        match std::fs::remove_file(PathBuf::from(p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("delete", e)),
        }
    }
    Ok(())
}

/// Creates a new, empty demo database at `path`, marked as the demo's (migrate it with
/// `storage::Store::open` next).
pub async fn create_demo_database(path: &Path) -> Result<(), DemoDbError> {
    use sqlx::{ConnectOptions, Connection, Executor};
    let io = |what, source| DemoDbError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::pidfile::create_private_dir(dir).map_err(|e| io("create the directory of", e))?;
    }
    let db_error = |e: sqlx::Error| io("create", std::io::Error::other(e));
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .map_err(db_error)?;
    // Written to the file itself (the default rollback journal, not WAL), so the mark is in
    // the header from the start.
    conn.execute(format!("PRAGMA application_id = {DEMO_APPLICATION_ID}").as_str())
        .await
        .map_err(db_error)?;
    conn.close().await.map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_demo_replaces_its_own_database_and_refuses_anyone_elses() {
        let dir = tempfile::tempdir().expect("dir");
        // Someone's database, and a file that is no database at all.
        let theirs = dir.path().join("shop.db");
        std::fs::write(&theirs, b"SQLite format 3\0 not ours, 100 bytes of header needed ................................................................").expect("write");
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "my notes").expect("write");
        for path in [&theirs, &notes] {
            let err = remove_for_new_demo(path).expect_err("refused");
            assert!(matches!(err, DemoDbError::NotOurs(_)), "{err}");
            assert!(
                err.to_string().contains("not made by `emag-sync demo`"),
                "{err}"
            );
            assert!(path.exists(), "{} kept", path.display());
        }

        // A demo database: marked, and replaced.
        let demo = dir.path().join("sub/demo.db");
        remove_for_new_demo(&demo).expect("no file yet");
        create_demo_database(&demo).await.expect("create");
        assert_eq!(is_demo_database(&demo).expect("read"), Some(true));
        let store = storage::Store::open(&format!("sqlite://{}", demo.display()))
            .await
            .expect("migrate the demo database");
        store.close().await;
        assert_eq!(
            is_demo_database(&demo).expect("read"),
            Some(true),
            "still marked once migrated"
        );
        remove_for_new_demo(&demo).expect("ours");
        assert!(!demo.exists());
    }
}
