//! Connecting, migrating and the few places where the two backends differ.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::lock::{sqlite_file, FileLock};
use crate::{Result, StorageError};

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The handle every other layer talks to. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    url_redacted: String,
    /// The SQLite file whose set-up lock `migrate` takes.
    setup_file: Option<PathBuf>,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (and for SQLite creates) the database at `url`. Does not migrate: call
    /// [`Store::migrate`], or use [`Store::open`] for both.
    pub async fn connect(url: &str) -> Result<Self> {
        let _lock = lock_setup(setup_file(url).as_deref()).await?;
        Store::connect_unlocked(url).await
    }

    /// [`Store::connect`] without the set-up lock, for a caller that holds it.
    async fn connect_unlocked(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StorageError::UnsupportedUrl(redact_url(url)));
        };
        let url_redacted = redact_url(url);
        let pool = match backend {
            Backend::Sqlite => {
                let url = sqlite_url_with_create(url)?;
                let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                AnyPoolOptions::new()
                    // SQLite has one writer; a small pool avoids lock ping-pong.
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // The wait for a lock first, so that every later statement has
                            // it. (sqlx's SQLite driver already waits 5 s from the start; the
                            // `Any` options cannot carry a different value.)
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            // WAL lets readers (dashboard, export) work during a sync;
                            // NORMAL is durable at every checkpoint in WAL mode. Switching a
                            // file to WAL needs an exclusive lock that SQLite does not wait
                            // for when two connections try at once; the first connection
                            // switches it under the set-up lock (see `open`), and for a file
                            // already in WAL this is only a read.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // A sync commits once per page, with the page's checkpoint in the
                            // same transaction. Waiting for the WAL flush at each commit made
                            // the disk's fsync latency the speed of a sync (55 ms a page
                            // here). Without the wait, a server crash can lose the last
                            // moments of commits — data and checkpoint together, so the next
                            // run simply reads those pages again — and never corrupts
                            // anything. SQLite's WAL + synchronous=NORMAL makes the same trade.
                            conn.execute("SET synchronous_commit = off").await?;
                            // Prepared statements are cached per connection. A generic plan
                            // fixed while the offers table was still empty is a sequential
                            // scan, and stays one as the table grows: every page's hash
                            // lookup then reads the whole table. Custom plans see the
                            // actual table and use the primary key.
                            conn.execute("SET plan_cache_mode = force_custom_plan")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        Ok(Store {
            pool,
            backend,
            url_redacted,
            setup_file: setup_file(url),
        })
    }

    /// Applies the embedded migrations of this backend. Refuses a schema newer than this
    /// build knows ([`StorageError::SchemaTooNew`]).
    pub async fn migrate(&self) -> Result<()> {
        let _lock = lock_setup(self.setup_file.as_deref()).await?;
        self.migrate_unlocked().await
    }

    /// Connects and migrates: what every command does first. On a file-backed SQLite
    /// database, any number of processes may do this at once, on a new file too: they take
    /// turns for the set-up and the migrations (`<db file>.migrate.lock`), so the first one
    /// creates the file, switches it to WAL and migrates it, and the others find it done.
    pub async fn open(url: &str) -> Result<Self> {
        // Released before the store is used: the lock orders the set-up, not the work.
        let _lock = lock_setup(setup_file(url).as_deref()).await?;
        let store = Store::connect_unlocked(url).await?;
        store.migrate_unlocked().await?;
        Ok(store)
    }

    /// [`Store::migrate`] without the set-up lock, for a caller that holds it. PostgreSQL
    /// needs none: sqlx's migrator takes an advisory lock there.
    async fn migrate_unlocked(&self) -> Result<()> {
        let migrator = self.migrator();
        let known = newest_version(migrator);
        // Checked first for a message that names the version; a newer build migrating at the
        // same moment shows up as an applied version the migrator is missing instead.
        if let Some(found) = self.schema_version().await? {
            if found > known {
                return Err(StorageError::SchemaTooNew { found, known });
            }
        }
        match migrator.run(&self.pool).await {
            Ok(()) => Ok(()),
            Err(sqlx::migrate::MigrateError::VersionMissing(missing)) if missing > known => {
                let found = self.schema_version().await?.unwrap_or(missing);
                Err(StorageError::SchemaTooNew { found, known })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The newest migration applied to the database (`None` before the first).
    pub async fn schema_version(&self) -> Result<Option<i64>> {
        let exists = match self.backend {
            Backend::Sqlite => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master \
                     WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
                    > 0
            }
            // Resolved through the search path, as the migrator's unqualified name is.
            Backend::Postgres => {
                sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        if !exists {
            return Ok(None);
        }
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The newest schema version this build can migrate to.
    pub fn newest_schema_version(&self) -> i64 {
        newest_version(self.migrator())
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with any password replaced, safe to print.
    pub fn url_redacted(&self) -> &str {
        &self.url_redacted
    }

    /// A trivial round trip, for health checks.
    pub async fn ping(&self) -> Result<Duration> {
        let start = std::time::Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(start.elapsed())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Registers or updates a configured account.
    pub async fn upsert_account(
        &self,
        name: &str,
        kind: &str,
        marketplace: &str,
        base_url: &str,
    ) -> Result<()> {
        let now = crate::now_ms();
        sqlx::query(
            "INSERT INTO accounts (name, kind, marketplace, base_url, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             marketplace = excluded.marketplace, base_url = excluded.base_url, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(kind)
        .bind(marketplace)
        .bind(base_url)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_state(&self, account: &str, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_state (account, key, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(account)
        .bind(key)
        .bind(value)
        .bind(crate::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_state(&self, account: &str, key: &str) -> Result<Option<String>> {
        let value: Option<(String,)> =
            sqlx::query_as("SELECT value FROM sync_state WHERE account = $1 AND key = $2")
                .bind(account)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(value.map(|(v,)| v))
    }
}

fn newest_version(migrator: &sqlx::migrate::Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The file whose set-up and migrations take turns (see `crate::lock`): a file-backed SQLite
/// database opened for writing. `None` for PostgreSQL (sqlx's migrator locks there) and for
/// in-memory or read-only SQLite, which no other process can create, switch or migrate.
fn setup_file(url: &str) -> Option<PathBuf> {
    let read_only = url
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|p| p == "mode=ro"));
    sqlite_file(url).filter(|_| !read_only)
}

/// Waits for the set-up lock of `db`, creating its directory if needed.
async fn lock_setup(db: Option<&Path>) -> Result<Option<FileLock>> {
    let Some(db) = db else {
        return Ok(None);
    };
    if let Some(parent) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StorageError::CreateDir {
            path: parent.display().to_string(),
            source,
        })?;
    }
    Ok(Some(FileLock::migration(db).await?))
}

/// Makes sure a file-backed SQLite database can be created: parent directory exists and
/// `mode=rwc` is set.
fn sqlite_url_with_create(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| StorageError::CreateDir {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
        }
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// Replaces the password of a database URL with `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Pauses or resumes an account's scheduled syncs. `false` when no such account is
    /// registered.
    pub async fn set_paused(&self, account: &str, paused: bool) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET paused = $1, paused_at = CASE WHEN $1 = 1 THEN $2 ELSE NULL END \
             WHERE name = $3",
        )
        .bind(i64::from(paused))
        .bind(crate::now_ms())
        .bind(account)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Names of the paused accounts.
    pub async fn paused_accounts(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM accounts WHERE paused = 1 ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// Marks an account as needing a person (`Some(reason)`: credentials or IP refused), or
    /// clears the mark (`None`). The time of the first mark is kept while it stays set.
    pub async fn set_attention(&self, account: &str, reason: Option<&str>) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET attention = $1, \
             attention_at = CASE WHEN $1 IS NULL THEN NULL ELSE COALESCE(attention_at, $2) END \
             WHERE name = $3",
        )
        .bind(reason)
        .bind(crate::now_ms())
        .bind(account)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Accounts needing a person: (name, reason, since ms).
    pub async fn accounts_needing_attention(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT name, attention, attention_at FROM accounts WHERE attention IS NOT NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes finished runs that ended before `before_ms`; returns how many.
    pub async fn prune_runs(&self, before_ms: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM runs WHERE finished_at < $1 AND state IN ('succeeded', 'failed')",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A consistent snapshot of an SQLite database into a new file (`VACUUM INTO`), safe
    /// while syncs write. Not available on PostgreSQL: use pg_dump there.
    pub async fn backup_sqlite_into(&self, path: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StorageError::Unsupported(
                "online backups are for SQLite; on PostgreSQL use pg_dump".into(),
            ));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StorageError::CreateDir {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let target = path.display().to_string().replace('\'', "''");
        sqlx::query(&format!("VACUUM INTO '{target}'"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.example:5432/emag"),
            "postgres://app:***@db.example:5432/emag"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/sub/x.db", dir.path().display());
        let fixed = sqlite_url_with_create(&url).expect("url");
        assert!(fixed.ends_with("x.db?mode=rwc"));
        assert!(dir.path().join("sub").is_dir());
    }
}
