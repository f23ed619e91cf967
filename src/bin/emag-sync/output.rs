//! Terminal output shared by commands: logging set-up, progress bars, the run summary.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use domain::SyncKind;
use emag_sync::sync::{ProgressSink, RunReport, RunStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

fn filter(level: &str) -> tracing_subscriber::EnvFilter {
    let level = match level {
        "warning" => "warn",
        "critical" => "error",
        other => other,
    };
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{level},sqlx=warn,hyper=warn,reqwest=warn,h2=warn"
        ))
    })
}

/// Logs to stderr at `level` (EMAG_LOG_LEVEL), unless RUST_LOG says otherwise.
pub fn init_logging(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Logs to stderr and to `file`, rotated daily, keeping `keep_days` files. The guard must
/// live as long as the process logs (it flushes the file writer on drop).
pub fn init_logging_with_file(
    level: &str,
    file: &std::path::Path,
    keep_days: u32,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("emag_sync_scheduler.log");
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(name)
        .max_log_files(usize::try_from(keep_days.max(1)).unwrap_or(30))
        .build(dir)?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::registry()
        .with(filter(level))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(false),
        )
        .try_init()?;
    Ok(guard)
}

/// Progress bars on a terminal: pages done / total, items per second, ETA.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<(String, SyncKind), (ProgressBar, Instant)>>,
}

impl Bars {
    /// `None` when stderr is not a terminal (logs and CI stay clean).
    pub fn for_terminal() -> Option<Bars> {
        std::io::stderr().is_terminal().then(|| Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        })
    }
}

impl ProgressSink for Bars {
    fn progress(&self, account: &str, kind: SyncKind, done: u64, total: Option<u64>) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let (bar, _) = bars.entry((account.to_owned(), kind)).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
            let style = if total.is_some() {
                "{prefix:>16} [{bar:30}] {pos}/{len} items  {per_sec}  ETA {eta}"
            } else {
                "{prefix:>16} {spinner} {pos} items  {per_sec}"
            };
            bar.set_style(
                ProgressStyle::with_template(style)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{account}/{kind}"));
            (bar, Instant::now())
        });
        if let Some(t) = total {
            bar.set_length(t.max(done));
        }
        bar.set_position(done);
    }
}

impl Bars {
    pub fn finish(&self) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        for (bar, _) in bars.values() {
            bar.finish_and_clear();
        }
    }
}

/// The table printed after `sync`.
pub fn summary_table(reports: &[RunReport]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "account",
        "kind",
        "status",
        "read",
        "created",
        "updated",
        "unchanged",
        "removed",
        "requests",
        "429 waits",
        "retries",
        "time",
        "details",
    ]);
    for r in reports {
        let status = match r.status {
            RunStatus::Succeeded => "ok",
            RunStatus::Failed => "FAILED",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Busy => "busy",
        };
        let mut details = r
            .error
            .clone()
            .or_else(|| r.note.clone())
            .unwrap_or_default();
        if let Some(page) = r.resumed_from_page.filter(|p| *p > 0) {
            details = format!("resumed after page {page}. {details}");
        }
        let c = &r.counts;
        table.add_row(vec![
            r.account.clone(),
            r.kind.to_string(),
            status.to_owned(),
            c.items_read.to_string(),
            c.created.to_string(),
            c.updated.to_string(),
            c.unchanged.to_string(),
            c.removed.to_string(),
            c.requests.to_string(),
            c.rate_limit_waits.to_string(),
            c.retries.to_string(),
            format!("{:.1}s", r.duration_ms as f64 / 1000.0),
            details,
        ]);
    }
    table
}

/// Peak resident memory of this process in KiB (VmHWM), where the OS tells it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
