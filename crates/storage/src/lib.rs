//! The store of emag-sync: one schema and one set of queries over SQLite (embedded default)
//! or PostgreSQL (production, several instances), chosen by `DATABASE_URL`.
//!
//! Both backends go through `sqlx::Any` with portable SQL (`$N` parameters, `ON CONFLICT`,
//! partial unique indexes), so behaviour cannot drift between them; where a backend needs its
//! own DDL it has its own migration directory. Values cross this boundary as plain integers
//! and text: Unix milliseconds for our clocks, eMAG's datetimes and money as the exact text
//! eMAG sent. The conformance suite in `tests/` runs every behaviour on both backends.

mod alerts;
mod db;
mod encoding;
mod export;
mod instances;
mod lock;
mod offers;
mod offers_pg;
mod orders;
mod quarantine;
mod reference;
mod runs;
mod sql;
mod states;
mod totals;
mod wal;

pub use alerts::{
    Delivery, Escalation, Evaluated, Firing, IncidentRow, OutboxCounts, Routing, Takeover,
};
pub use db::{plaintext_network_warning, redact_url, Backend, Store};
pub use encoding::KeptEncoding;
pub use export::{ExportOffer, ExportOrder, ExportOrderLine};
pub use instances::{InstanceRow, INSTANCE_HISTORY_MS};
pub use lock::sqlite_file;
pub use offers::{OfferPage, OfferRow, PageWriter, StoredHash};
pub use orders::{OrderLineRow, OrderRow, ReturnRow};
pub use quarantine::{QuarantineRow, QuarantineSummary, QuarantinedItem};
pub use reference::ReferenceRow;
pub use runs::{
    ActiveRun, BeginRun, CancelRun, Enqueued, KindHistory, RunFilter, RunLogSummary,
    RunOutcomePoint, RunPage, RunQuery, RunRequest, RunRow, RUN_PAGE_MAX,
};
pub use totals::{ActiveRunCounts, RunTotals};

/// Errors of the storage layer, classified once here.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported DATABASE_URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the file {path}: {source}")]
    CreateFile {
        path: String,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the database schema is at version {found} but this emag-sync knows up to {known}: \
         a newer emag-sync has migrated it; upgrade emag-sync"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "cannot take the migration lock {path} (it lets processes sharing the SQLite file \
         take turns setting it up): {source}; check the permissions of the database directory"
    )]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("run {0} is not held by this process any more (taken over by another)")]
    LeaseLost(i64),
    #[error(
        "the database server restarted during run {0}: a crash may have lost its last writes \
         (asynchronous commit), so it does not build on them; the next run reads again"
    )]
    DatabaseRestarted(i64),
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "the pages of run {0} written before these failed to commit, so these were not \
         committed either (a checkpoint must not pass pages that are not stored)"
    )]
    EarlierWriteFailed(i64),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
