//! Per-test databases: every test gets its own SQLite file or its own PostgreSQL database,
//! so tests never see each other's rows and can run in parallel.
//!
//! PostgreSQL comes from `EMAG_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
//! the server every machine of ours runs); a fresh database is created from it per test and
//! dropped when the test ends.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// Which backend a test database uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    pub const ALL: [DbKind; 2] = [DbKind::Sqlite, DbKind::Postgres];
}

/// A database that lives as long as the test.
#[derive(Debug)]
pub struct TestDb {
    pub kind: DbKind,
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL server tests use.
pub fn pg_admin_url() -> String {
    std::env::var("EMAG_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new(kind: DbKind) -> TestDb {
        match kind {
            DbKind::Sqlite => TestDb::sqlite(),
            DbKind::Postgres => TestDb::postgres().await,
        }
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temp dir for the test database");
        let url = format!("sqlite://{}/test.db", dir.path().display());
        TestDb {
            kind: DbKind::Sqlite,
            url,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = pg_admin_url();
        let name = format!(
            "emag_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} is needed by this test (start it, or set EMAG_TEST_PG_URL): {e}")
        });
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb {
            kind: DbKind::Postgres,
            url: format!("{base}/{name}"),
            pg_name: Some(name),
            _dir: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee; use a small runtime of our own on a
        // plain thread so this works from both sync and async test contexts.
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
