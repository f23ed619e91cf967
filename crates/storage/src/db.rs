//! Connecting, migrating and the few places where the two backends differ.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

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
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (and for SQLite creates) the database at `url`. Does not migrate: call
    /// [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
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
                            // WAL lets readers (dashboard, export) work during a sync;
                            // NORMAL is durable at every checkpoint in WAL mode.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
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
        })
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATOR.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATOR.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Connects and migrates: what every command does first.
    pub async fn open(url: &str) -> Result<Self> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
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

/// Makes sure a file-backed SQLite database can be created: parent directory exists and
/// `mode=rwc` is set.
fn sqlite_url_with_create(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(parent) = std::path::Path::new(path).parent() {
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
    pub async fn backup_sqlite_into(&self, path: &std::path::Path) -> Result<()> {
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
