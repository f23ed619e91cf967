//! Connecting, migrating and the few places where the two backends differ.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use domain::{AttentionCause, RunState};
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
    /// PostgreSQL only: a native pool for what the `Any` driver cannot send (the binary
    /// `COPY` of a scan's offers, see `offers_pg`). Connects on first use.
    pub(crate) pg: Option<sqlx::PgPool>,
    /// SQLite only: checkpoints beside a scan's writes (see `wal`).
    pub(crate) wal: Option<std::sync::Arc<crate::wal::WalCheckpointer>>,
    backend: Backend,
    url_redacted: String,
    /// The SQLite file whose set-up lock `migrate` takes.
    setup_file: Option<PathBuf>,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Every PostgreSQL session's settings.
///
/// A sync commits once per page, with the page's checkpoint in the same transaction. Waiting
/// for the WAL flush at each commit made the disk's fsync latency the speed of a sync (55 ms a
/// page here). Without the wait, a server crash can lose the last moments of commits — data
/// and checkpoint together, so the next run simply reads those pages again — and never
/// corrupts anything. SQLite's WAL + synchronous=NORMAL makes the same trade.
///
/// Plans: PostgreSQL's own choice (custom plans first, a cached generic one when it costs no
/// more). `force_custom_plan` here once kept a page's hash lookup off a generic plan made
/// while the table was empty (a sequential scan, kept as the table grew); it also planned
/// every foreign-key check of every inserted row and every 1,900-value insert again (perf: a
/// third of the server's time in a first sync). The statements whose best plan depends on a
/// table's size — `IN` lists over offers and orders — are sent unprepared instead
/// (`Sql::bind_list`): planned with their values, every time.
///
/// Notices (`CREATE … IF NOT EXISTS` of a table that exists) are not for the log.
const POSTGRES_SESSION: &str = "SET synchronous_commit = off; SET client_min_messages = warning";

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
                            // The page cache: 4 MiB instead of 2 per connection. A sync's
                            // upserts and lookups walk the offers' B-tree, and with the
                            // default cache most pages came back through a read system call
                            // (100,000 offers: 5.3 → 4.0 s; 16 MiB gained no more and took
                            // the sync's peak RSS from 46 to 92 MiB).
                            // A new file's page size is set before the switch to WAL, which
                            // writes the file's header (see `wal::PAGE_SIZE`); an existing
                            // file keeps its own.
                            conn.execute(
                                format!(
                                    "PRAGMA page_size = {}; \
                                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                     PRAGMA foreign_keys = ON; PRAGMA cache_size = -4096;",
                                    crate::wal::PAGE_SIZE
                                )
                                .as_str(),
                            )
                            .await?;
                            // SQLite's own checkpoints at a higher bound: a scan's writes
                            // have theirs beside them (see `wal`).
                            let page_size = sqlite_page_size(&mut *conn).await?;
                            conn.execute(
                                format!(
                                    "PRAGMA wal_autocheckpoint = {}",
                                    crate::wal::AUTOCHECKPOINT_BYTES / page_size
                                )
                                .as_str(),
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
                            conn.execute(POSTGRES_SESSION).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let options =
                    sqlx::postgres::PgConnectOptions::from_str(url)?.disable_statement_logging();
                Some(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(8)
                        .acquire_timeout(Duration::from_secs(10))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                conn.execute(POSTGRES_SESSION).await?;
                                Ok(())
                            })
                        })
                        .connect_lazy_with(options),
                )
            }
        };
        let wal = match backend {
            Backend::Sqlite => {
                let page_size = sqlite_page_size(&pool).await?;
                Some(std::sync::Arc::new(crate::wal::WalCheckpointer::new(
                    page_size,
                )))
            }
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            pg,
            wal,
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
        let before = self.schema_version().await?;
        if let Some(found) = before {
            if found > known {
                return Err(StorageError::SchemaTooNew { found, known });
            }
        }
        match migrator.run(&self.pool).await {
            Ok(()) => {
                // A migration that rebuilds a table (0014) writes all of it through the WAL,
                // which SQLite keeps at its largest size while any connection stays open (a
                // 200,000-offer file: 1.3 GB of WAL). Written back and emptied now, once; a
                // failure only leaves it to SQLite's own checkpoints.
                if self.backend == Backend::Sqlite && before.is_some_and(|b| b < known) {
                    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                        .execute(&self.pool)
                        .await
                    {
                        tracing::warn!(error = %e, "could not empty the WAL after migrating");
                    }
                }
                Ok(())
            }
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

    /// The database's clock, in Unix milliseconds: the one clock by which every instance
    /// writes heartbeats and judges leases ([`domain::Lease::judge`]), so that hosts whose
    /// clocks disagree never take a live run from each other. An SQLite file lives on this
    /// machine: its clock is this machine's.
    pub async fn clock_ms(&self) -> Result<i64> {
        match self.backend {
            Backend::Sqlite => Ok(crate::now_ms()),
            Backend::Postgres => Ok(sqlx::query_scalar::<_, i64>(POSTGRES_CLOCK_MS)
                .fetch_one(&self.pool)
                .await?),
        }
    }

    /// When the database server started (ms), where a restart can lose acknowledged commits
    /// (PostgreSQL with asynchronous commit); `None` on SQLite. See [`crate::ActiveRun::db_epoch`].
    pub async fn server_epoch(&self) -> Result<Option<i64>> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => Ok(Some(
                sqlx::query_scalar::<_, i64>(crate::runs::POSTGRES_EPOCH_MS)
                    .fetch_one(&self.pool)
                    .await?,
            )),
        }
    }

    /// Moves a sync cursor (`key` of the run's account) as a step of `run`: fenced by its
    /// holder, and refused after a database restart since the claim — a cursor must never
    /// move past writes a crash took back ([`crate::ActiveRun::db_epoch`]).
    pub async fn set_run_cursor(
        &self,
        run: &crate::ActiveRun,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        crate::runs::check_epoch(&mut tx, run).await?;
        // Fenced in the write itself: on SQLite a transaction that reads before it writes
        // may be refused at once ("database is locked") when another connection wrote since
        // its read began, without waiting for the lock.
        let done = sqlx::query(
            "INSERT INTO sync_state (account, key, value, updated_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS \
             (SELECT 1 FROM runs WHERE id = $5 AND holder = $6) \
             ON CONFLICT (account, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(&run.account)
        .bind(key)
        .bind(value)
        .bind(crate::now_ms())
        .bind(run.id)
        .bind(&run.holder)
        .execute(&mut *tx)
        .await?;
        crate::runs::fenced(done.rows_affected(), run.id)?;
        tx.commit().await?;
        Ok(())
    }

    /// A trivial round trip, for health checks.
    pub async fn ping(&self) -> Result<Duration> {
        let start = std::time::Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(start.elapsed())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(pg) = &self.pg {
            pg.close().await;
        }
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

/// PostgreSQL's clock now (not the transaction's start, which `now()` would give).
pub(crate) const POSTGRES_CLOCK_MS: &str =
    "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// [`Store::clock_ms`] inside a transaction.
pub(crate) async fn clock_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<i64> {
    if tx.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
        Ok(sqlx::query_scalar::<_, i64>(POSTGRES_CLOCK_MS)
            .fetch_one(&mut **tx)
            .await?)
    } else {
        Ok(crate::now_ms())
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
        create_private_dir(parent)?;
    }
    Ok(Some(FileLock::migration(db).await?))
}

/// The size of an SQLite file's pages, in bytes (SQLite's range: 512 to 65,536).
async fn sqlite_page_size<'c>(conn: impl Executor<'c, Database = sqlx::Any>) -> sqlx::Result<i64> {
    let size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(conn)
        .await?;
    Ok(size.clamp(512, 65_536))
}

/// Makes sure a file-backed SQLite database can be created: parent directory exists and
/// `mode=rwc` is set.
fn sqlite_url_with_create(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = query.split('&').any(|p| p == "mode=memory");
    if path != ":memory:" && !path.is_empty() && !memory {
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                create_private_dir(parent)?;
            }
        }
        // Created here, 0600, rather than by SQLite with the umask's mode: SQLite gives the
        // WAL and shared-memory files the mode of the database file.
        if !query.contains("mode=ro") {
            create_private_file(Path::new(path))?;
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

/// Creates `dir` and its missing parents with mode 0700: the files under it hold customer
/// data. Directories that exist keep their mode.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StorageError::CreateDir {
            path: dir.display().to_string(),
            source,
        })
}

/// Creates an empty file with mode 0600 if there is none at `path`; an existing file is
/// left as it is.
fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StorageError::CreateFile {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Why a PostgreSQL `DATABASE_URL` sends passwords and customer data in clear over a
/// network: a host that is not this machine (not loopback, not a Unix socket) without
/// `sslmode=require`, `verify-ca` or `verify-full`. (`prefer`, the default, falls back to
/// clear text whenever the server — or someone in between — says it has no TLS.) `None`
/// when the connection is encrypted or stays on this machine, and for SQLite.
pub fn plaintext_network_warning(url: &str) -> Option<String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    let param = |key: &str| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let mode = param("sslmode").unwrap_or_else(|| "prefer".to_owned());
    if matches!(mode.as_str(), "require" | "verify-ca" | "verify-full") {
        return None;
    }
    // A `host=` parameter wins over the URL's host, as in libpq; a path there is a socket.
    let host = param("host").unwrap_or_else(|| parsed.host_str().unwrap_or("").to_owned());
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.is_empty()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        });
    (!local).then(|| {
        format!(
            "the database connection to {host} is not required to be encrypted (sslmode={mode}): \
             its password and the customer data can cross the network in clear; add \
             ?sslmode=verify-full to DATABASE_URL (or sslmode=require if the server's \
             certificate cannot be verified)"
        )
    })
}

/// A database URL safe to print: the password of the user-info and any `password=` /
/// `sslpassword=` parameter replaced with `***`. A URL that does not parse (often because
/// its password holds a `/`, `#` or space) still gets everything between `://` and its last
/// `@` replaced, so no part of the password shows.
pub fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "***";
    let secret_param = |k: &str| {
        let k = k.to_ascii_lowercase();
        k == "password" || k == "sslpassword"
    };
    // `user:pw@host/db` parses too, as scheme `user` and a path: without a host, an `@`
    // is read by the rule for what does not parse.
    // A host that is no host name (the url crate takes `emag"pw.0.0.1` as an opaque host of a
    // postgres:// URL) is read by that rule too: it may be user-info with its `@` lost.
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|p| p.has_host() || !url.contains('@'))
        .filter(|p| {
            p.host_str().is_none_or(|h| {
                h.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '.' | '-' | '_' | '[' | ']' | ':' | '%')
                })
            })
        });
    if let Some(mut parsed) = parsed {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some(HIDDEN));
        }
        if parsed.query_pairs().any(|(k, _)| secret_param(&k)) {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret_param(&k) {
                        HIDDEN.into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return parsed.to_string();
    }
    // Not a URL: hide the user-info by the rule above and keep the host alone — what follows
    // it in a string that does not parse may be anything, another line's password included
    // (`…@127.0.0.1:SWORD="…"`, found by the fuzzer, issue 11) — then the password
    // parameters.
    let host_of = |rest: &str| {
        let end = rest.find([':', '/', '?', '#']).unwrap_or(rest.len());
        let cut = if end < rest.len() { "…" } else { "" };
        format!("{}{cut}", &rest[..end])
    };
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start + 3 => {
            format!("{}{HIDDEN}@{}", &url[..start + 3], host_of(&url[at + 1..]))
        }
        (None, Some(at)) => format!("{HIDDEN}@{}", host_of(&url[at + 1..])),
        // No `@`: `scheme://user:password` without its host (or with its `@` lost) reads as
        // a host and a port, and either may hold the password. What follows the host is
        // never shown, nor a host that is no host name (found by the fuzzer, issue 11), nor
        // one before a `:` — that may be the user name, which may hold the password
        // (`postgres://postgres:postgres`; found by the fuzzer's full run, issue 11).
        (Some(start), None) => {
            let rest = &url[start + 3..];
            let end = rest.find([':', '/', '?', '#']).unwrap_or(rest.len());
            let host = &rest[..end];
            let named = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            match (named, rest[end..].chars().next()) {
                (true, None) => url.to_owned(),
                (true, Some(c)) if c != ':' => format!("{}{host}…", &url[..start + 3]),
                _ => format!("{}{HIDDEN}", &url[..start + 3]),
            }
        }
        _ => url.to_owned(),
    };
    let lower = out.to_ascii_lowercase();
    let mut cuts = Vec::new();
    for key in ["sslpassword=", "password="] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(key) {
            let start = from + i + key.len();
            let end = lower[start..].find('&').map_or(lower.len(), |e| start + e);
            // `password=` inside `sslpassword=` is the same value, cut once.
            if !cuts.iter().any(|&(s, _)| s == start) {
                cuts.push((start, end));
            }
            from = start;
        }
    }
    cuts.sort_unstable();
    for (start, end) in cuts.into_iter().rev() {
        out.replace_range(start..end, HIDDEN);
    }
    out
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

    /// Names of every account registered in the store, configured now or earlier.
    pub async fn account_names(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM accounts ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
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
    /// clears that mark (`None`). The time of the first mark is kept while it stays set.
    pub async fn set_attention(&self, account: &str, reason: Option<&str>) -> Result<()> {
        match reason {
            Some(reason) => {
                self.raise_attention(account, AttentionCause::Access, reason)
                    .await
            }
            None => self.clear_attention(account, AttentionCause::Access).await,
        }
    }

    /// Marks an account as needing a person for `cause`. Refused access outranks a refused
    /// removal: a removal mark never hides an access one.
    pub async fn raise_attention(
        &self,
        account: &str,
        cause: AttentionCause,
        reason: &str,
    ) -> Result<()> {
        let guard = match cause {
            AttentionCause::Access => "",
            AttentionCause::Removals => " AND (attention IS NULL OR attention_cause = 'removals')",
        };
        sqlx::query(&format!(
            "UPDATE accounts SET attention = $1, attention_cause = $2, \
             attention_at = CASE WHEN attention_cause = $2 OR (attention_cause IS NULL AND $2 = 'access') \
             THEN COALESCE(attention_at, $3) ELSE $3 END \
             WHERE name = $4{guard}"
        ))
        .bind(reason)
        .bind(cause.as_str())
        .bind(crate::now_ms())
        .bind(account)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Clears an account's mark if it was raised for `cause` (a mark from before causes were
    /// recorded counts as refused access).
    pub async fn clear_attention(&self, account: &str, cause: AttentionCause) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET attention = NULL, attention_at = NULL, attention_cause = NULL \
             WHERE name = $1 AND attention IS NOT NULL \
             AND COALESCE(attention_cause, 'access') = $2",
        )
        .bind(account)
        .bind(cause.as_str())
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
        let done = sqlx::query("DELETE FROM runs WHERE finished_at < $1 AND state IN ($2, $3)")
            .bind(before_ms)
            .bind(RunState::Succeeded.as_str())
            .bind(RunState::Failed.as_str())
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
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(parent)?;
        }
        // An empty file is a valid target for VACUUM INTO; created 0600 first, so the
        // snapshot never exists with the umask's mode.
        create_private_file(path)?;
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

    /// A SQLite database of schema 13 keeps every offer (marks and removals too), order,
    /// order line, return and reference item through their move to rowid tables (0014); the
    /// keys still refuse duplicates and an order's lines still go with it.
    #[tokio::test]
    async fn sqlite_rows_survive_the_move_to_rowid_tables() {
        // Arrange: a database migrated to schema 13 only, holding rows of every moved table.
        let db = test_support::TestDb::sqlite();
        let store = Store::connect(&db.url).await.expect("connect");
        let old = tempfile::tempdir().expect("temp dir");
        let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        for entry in std::fs::read_dir(&all).expect("read the migrations") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if name.as_str() < "0014" {
                std::fs::copy(&path, old.path().join(&name)).expect("copy a migration");
            }
        }
        sqlx::migrate::Migrator::new(old.path())
            .await
            .expect("the first 13 migrations")
            .run(&store.pool)
            .await
            .expect("migrate to 13");
        assert_eq!(store.schema_version().await.expect("version"), Some(13));
        store
            .upsert_account("main", "main", "ro", "http://127.0.0.1:1/api-3")
            .await
            .expect("account");
        for id in [3_i64, 1, 2] {
            sqlx::query(
                "INSERT INTO offers (account, id, name, ean, data, content_hash, removed, \
                 first_seen_at, updated_at, removed_at, missed_scans, missed_by_run) \
                 VALUES ('main', ?, ?, '[]', ?, ?, ?, 1, 2, ?, ?, ?)",
            )
            .bind(id)
            .bind(format!("offer {id}"))
            .bind(format!("{{\"id\":{id}}}"))
            .bind(id * 7)
            .bind(i64::from(id == 2))
            .bind((id == 2).then_some(5_i64))
            .bind(i64::from(id == 3))
            .bind((id == 3).then_some(9_i64))
            .execute(&store.pool)
            .await
            .expect("an offer");
            sqlx::query(
                "INSERT INTO orders (account, id, order_type, status, modified, customer_name, \
                 data, content_hash, first_seen_at, updated_at) \
                 VALUES ('main', ?, 3, 1, '2026-11-30 10:00:00', 'Ion', ?, ?, 1, 2)",
            )
            .bind(id * 100)
            .bind(format!("{{\"id\":{}}}", id * 100))
            .bind(id * 11)
            .execute(&store.pool)
            .await
            .expect("an order");
            for line in 1..=2_i64 {
                sqlx::query(
                    "INSERT INTO order_lines (account, order_id, line_id, product_id, name, \
                     quantity) VALUES ('main', ?, ?, ?, 'line', 1)",
                )
                .bind(id * 100)
                .bind(line)
                .bind(id)
                .execute(&store.pool)
                .await
                .expect("an order line");
            }
            sqlx::query(
                "INSERT INTO returns (account, emag_id, order_id, status, data, content_hash, \
                 updated_at, rma_type) VALUES ('main', ?, ?, 1, '{}', ?, 2, 3)",
            )
            .bind(id * 1000)
            .bind(id * 100)
            .bind(id * 13)
            .execute(&store.pool)
            .await
            .expect("a return");
            sqlx::query(
                "INSERT INTO reference_data (marketplace, kind, id, name, data, content_hash, \
                 updated_at) VALUES ('ro', 'vat', ?, 'TVA', '{}', ?, 2)",
            )
            .bind(id)
            .bind(id * 17)
            .execute(&store.pool)
            .await
            .expect("a reference item");
        }
        let dumps = [
            "SELECT group_concat(line, ' | ') FROM (SELECT account || ',' || id || ',' || \
             name || ',' || data || ',' || content_hash || ',' || removed || ',' || \
             COALESCE(removed_at, '-') || ',' || missed_scans || ',' || \
             COALESCE(missed_by_run, '-') || ',' || first_seen_at || ',' || updated_at \
             AS line FROM offers ORDER BY account, id)",
            "SELECT group_concat(line, ' | ') FROM (SELECT account || ',' || id || ',' || \
             order_type || ',' || modified || ',' || customer_name || ',' || data || ',' || \
             content_hash AS line FROM orders ORDER BY account, id)",
            "SELECT group_concat(line, ' | ') FROM (SELECT account || ',' || order_id || ',' || \
             line_id || ',' || product_id AS line FROM order_lines \
             ORDER BY account, order_id, line_id)",
            "SELECT group_concat(line, ' | ') FROM (SELECT account || ',' || emag_id || ',' || \
             order_id || ',' || content_hash || ',' || rma_type AS line FROM returns \
             ORDER BY account, emag_id)",
            "SELECT group_concat(line, ' | ') FROM (SELECT marketplace || ',' || kind || ',' || \
             id || ',' || name || ',' || content_hash AS line FROM reference_data \
             ORDER BY marketplace, kind, id)",
        ];
        let mut before = Vec::new();
        for dump in dumps {
            let text: String = sqlx::query_scalar(dump)
                .fetch_one(&store.pool)
                .await
                .expect("dump");
            before.push(text);
        }

        // Act
        store.migrate().await.expect("migrate to the newest schema");

        // Assert: the same rows, in rowid tables whose keys still hold; the WAL that carried
        // the rebuilt tables is written back and emptied.
        let wal = std::fs::metadata(format!("{}-wal", db.url.trim_start_matches("sqlite://")))
            .map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the WAL is emptied after the migration");
        for (dump, before) in dumps.iter().zip(&before) {
            let after: String = sqlx::query_scalar(dump)
                .fetch_one(&store.pool)
                .await
                .expect("dump");
            assert_eq!(&after, before);
        }
        assert!(before[0].contains("main,2,offer 2"), "{}", before[0]);
        assert_eq!(before[2].matches("main,").count(), 6, "{}", before[2]);
        for table in ["offers", "orders", "returns", "reference_data"] {
            let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(rowid) FROM {table}"))
                .fetch_one(&store.pool)
                .await
                .unwrap_or_else(|e| panic!("{table} is a rowid table: {e}"));
            assert_eq!(rows, 3, "{table}");
        }
        for duplicate in [
            "INSERT INTO offers (account, id, ean, data, content_hash, first_seen_at, \
             updated_at) VALUES ('main', 1, '[]', '{}', 0, 1, 1)",
            "INSERT INTO orders (account, id, order_type, data, content_hash, first_seen_at, \
             updated_at) VALUES ('main', 100, 3, '{}', 0, 1, 1)",
            "INSERT INTO returns (account, emag_id, data, content_hash, updated_at) \
             VALUES ('main', 1000, '{}', 0, 1)",
            "INSERT INTO reference_data (marketplace, kind, id, data, content_hash, \
             updated_at) VALUES ('ro', 'vat', 1, '{}', 0, 1)",
        ] {
            let refused = sqlx::query(duplicate).execute(&store.pool).await;
            assert!(refused.is_err(), "a duplicate key is refused: {duplicate}");
        }
        let indexes: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' \
             AND name IN ('offers_missed', 'orders_modified')",
        )
        .fetch_one(&store.pool)
        .await
        .expect("indexes");
        assert_eq!(indexes, 2);
        let dangling: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&store.pool)
            .await
            .expect("foreign key check");
        assert!(dangling.is_empty(), "{dangling:?}");
        // An order's lines still go with it: their reference followed the rename.
        sqlx::query("DELETE FROM orders WHERE account = 'main' AND id = 200")
            .execute(&store.pool)
            .await
            .expect("delete an order");
        let lines: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM order_lines WHERE order_id = 200")
                .fetch_one(&store.pool)
                .await
                .expect("count lines");
        assert_eq!(lines, 0);
    }

    /// The raw JSON columns are compressed with lz4 where the server has it (migration 0015;
    /// this machine's server does, asked here rather than assumed), and a value long enough
    /// for TOAST to compress is stored with lz4 and reads back as written.
    #[tokio::test]
    async fn postgres_compresses_the_raw_json_with_lz4_where_the_server_has_it() {
        // Arrange
        let db = test_support::TestDb::postgres().await;
        let store = Store::open(&db.url).await.expect("open");
        let lz4: bool = sqlx::query_scalar(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings \
             WHERE name = 'default_toast_compression'",
        )
        .fetch_one(&store.pool)
        .await
        .expect("the server's compression methods");
        assert!(lz4, "this machine's PostgreSQL is built with lz4");
        store
            .upsert_account("main", "main", "ro", "http://127.0.0.1:1/api-3")
            .await
            .expect("account");
        let long = format!("{{\"id\":7,\"details\":\"{}\"}}", "customer ".repeat(1_000));

        // Act
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, a.attcompression::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             WHERE a.attname = 'data' AND c.relkind = 'r' \
               AND c.relnamespace = current_schema()::regnamespace ORDER BY 1",
        )
        .fetch_all(&store.pool)
        .await
        .expect("columns");
        sqlx::query(
            "INSERT INTO orders (account, id, order_type, data, content_hash, first_seen_at, \
             updated_at) VALUES ('main', 7, 3, $1, 1, 1, 1)",
        )
        .bind(long.as_str())
        .execute(&store.pool)
        .await
        .expect("insert an order");
        let (method, stored): (Option<String>, String) =
            sqlx::query_as("SELECT pg_column_compression(data), data FROM orders WHERE id = 7")
                .fetch_one(&store.pool)
                .await
                .expect("read it back");

        // Assert
        let tables: Vec<&str> = columns.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            tables,
            [
                "offers",
                "orders",
                "quarantine",
                "reference_data",
                "returns"
            ]
        );
        for (table, compression) in &columns {
            assert_eq!(compression, "l", "{table}.data is compressed with lz4");
        }
        assert_eq!(method.as_deref(), Some("lz4"));
        assert_eq!(stored, long);
    }

    /// sqlx is built with TLS (rustls): `sslmode=require` gives an encrypted session where the
    /// server offers TLS, and a clear error where it does not; `verify-full` never accepts a
    /// certificate it cannot verify (the test server's is self-signed).
    #[tokio::test]
    async fn postgres_connections_use_tls_when_the_url_requires_it() {
        let db = test_support::TestDb::postgres().await;
        let server_tls = {
            let plain = Store::connect(&db.url).await.expect("connect");
            let ssl: String = sqlx::query_scalar("SHOW ssl")
                .fetch_one(&plain.pool)
                .await
                .expect("show ssl");
            plain.close().await;
            ssl == "on"
        };
        let required = Store::open(&format!("{}?sslmode=require", db.url)).await;
        if server_tls {
            let store = required.expect("sslmode=require connects");
            let encrypted: bool =
                sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                    .fetch_one(&store.pool)
                    .await
                    .expect("pg_stat_ssl");
            assert!(encrypted, "the session is encrypted");
            store.close().await;
            let verified = Store::connect(&format!("{}?sslmode=verify-full", db.url)).await;
            let err = verified.expect_err("a self-signed certificate is not trusted");
            assert!(
                err.to_string().to_ascii_lowercase().contains("certificate"),
                "{err}"
            );
        } else {
            let err = required.expect_err("no TLS on the server");
            assert!(err.to_string().contains("TLS"), "{err}");
        }
    }

    #[test]
    fn only_a_network_postgres_connection_without_required_tls_is_warned_about() {
        for url in [
            "postgres://app@db.example/emag",
            "postgres://app@db.example/emag?sslmode=prefer",
            "postgresql://app@10.0.0.5:5432/emag?sslmode=disable",
            "postgres://app@0.0.0.0/emag",
            "postgres:///emag?host=db.example",
        ] {
            let warning = plaintext_network_warning(url).unwrap_or_else(|| panic!("{url}"));
            assert!(warning.contains("sslmode=verify-full"), "{warning}");
        }
        for url in [
            "postgres://app@db.example/emag?sslmode=require",
            "postgres://app@db.example/emag?sslmode=verify-full",
            "postgres://app@localhost/emag",
            "postgres://app@127.0.0.1:5432/emag",
            "postgres://app@[::1]/emag",
            "postgres:///emag?host=/var/run/postgresql",
            "sqlite://data/x.db",
        ] {
            assert_eq!(plaintext_network_warning(url), None, "{url}");
        }
    }

    #[test]
    fn database_url_passwords_are_redacted_even_when_the_url_does_not_parse() {
        for (url, secret) in [
            // A `/` or `#` in the password ends the authority: no valid port, no URL.
            ("postgres://app:pa/ss@db.example:5432/emag", "pa/ss"),
            ("postgres://app:x#y@db.example/emag", "x#y"),
            ("postgres://app:s3 cret@db.example:5432/emag", "s3 cret"),
            ("postgres://app:p@ss@db.example:notaport/emag", "p@ss"),
            ("app:s3cret@db.example/emag", "s3cret"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
            assert!(shown.contains("db.example"), "the host stays: {shown}");
        }
        for (url, secret) in [
            (
                "postgres://db.example/emag?user=app&password=s3cret&sslmode=require",
                "s3cret",
            ),
            (
                "postgres://db.example:x/emag?sslpassword=k3y&password=s3cret",
                "s3cret",
            ),
        ] {
            let shown = redact_url(url);
            assert!(
                !shown.contains(secret) && !shown.contains("k3y"),
                "{url} shown as {shown}"
            );
        }
        // The host stays where the URL parses (before a bad port it may be a user name: see
        // below).
        assert!(
            redact_url("postgres://db.example/emag?user=app&password=s3cret&sslmode=require")
                .contains("db.example")
        );
    }

    #[test]
    fn a_password_without_a_host_after_it_is_redacted_too() {
        // Found by the fuzzer (issue 11): without an `@`, the password read as a bad port
        // and the whole URL was shown.
        for (url, secret) in [
            ("postgres://emag:s3cretPW", "s3cretPW"),
            ("postgres://emag:s3cret#PW/emag", "s3cret"),
            ("postgres://em}g:s3cretPW", "s3cretPW"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
        }
        // After the host of a URL that does not parse, anything may follow.
        assert_eq!(
            redact_url("postgres://emag:pw1@127.0.0.1:SWORD=\"s3cretPW\""),
            "postgres://***@127.0.0.1…"
        );
        // Twice in one value (a quote left open over two lines), or with its `@` lost.
        let twice = "postgres://emag:s3cretPW\nDATABASE_URL=\"postgres://emag:s3cretPW";
        assert_eq!(redact_url(twice), "postgres://***");
        // Before a `:`, a host or a user name, which may hold the password (the full run of
        // the fuzzer: a user name that holds it).
        assert_eq!(redact_url("postgres://db.example:5432x"), "postgres://***");
        for url in [
            "postgres://emagKq9sekritdc:Kq9sekritdc",
            "postgres://eKq9sekritdcmag:.q9sekritdc",
            "postgres://postgres:postgres",
        ] {
            assert_eq!(redact_url(url), "postgres://***", "{url}");
        }
        assert_eq!(
            redact_url("postgres://emag\"s3cretPW.0.0.1:5432/emag"),
            "postgres://***"
        );
        // A URL that parses keeps its host and port.
        assert_eq!(
            redact_url("postgres://db.example:5432/emag"),
            "postgres://db.example:5432/emag"
        );
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
