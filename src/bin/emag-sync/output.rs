//! Terminal output shared by commands: logging set-up, progress bars, the run summary.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use comfy_table::Table;
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

/// Logs to `file`, rotated daily (`<file name>.YYYY-MM-DD`), and to stderr unless
/// `to_stderr` is false (a detached scheduler, whose stderr is a file nobody rotates). Old
/// files are removed by age with [`prune_old_logs`], not here. The guard must live as long as
/// the process logs (it flushes the file writer on drop).
pub fn init_logging_with_file(
    level: &str,
    file: &Path,
    to_stderr: bool,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (dir, name) = log_dir_and_prefix(file);
    std::fs::create_dir_all(&dir)?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(name)
        .build(&dir)?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::registry()
        .with(filter(level))
        .with(to_stderr.then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
        }))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(false),
        )
        .try_init()?;
    Ok(guard)
}

/// The directory of the log file and the prefix of its daily files (its file name).
pub fn log_dir_and_prefix(file: &Path) -> (PathBuf, String) {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("emag_sync_scheduler.log");
    (dir.to_owned(), name.to_owned())
}

/// Whether `file_name` is one of the daily files the appender writes for `prefix`:
/// exactly `<prefix>.YYYY-MM-DD`.
fn is_daily_log_of(file_name: &str, prefix: &str) -> bool {
    file_name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|date| {
            date.len() == 10 && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
        })
}

/// Removes the daily files of the log `file` (`<name>.YYYY-MM-DD` in its directory) last
/// modified more than `retention_days` (at least 1) before `now`; never any other file.
/// Returns the files removed; problems are logged and skipped.
pub fn prune_old_logs(file: &Path, retention_days: u32, now: SystemTime) -> Vec<PathBuf> {
    let (dir, prefix) = log_dir_and_prefix(file);
    let retention = Duration::from_secs(86_400 * u64::from(retention_days.max(1)));
    let Some(cutoff) = now.checked_sub(retention) else {
        return Vec::new();
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(log.dir = %dir.display(), error = %e, "cannot list the log directory to remove old logs");
            return Vec::new();
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| is_daily_log_of(n, &prefix)) {
            continue;
        }
        // Not followed: a symlink or directory of that name is not ours to delete.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() || meta.modified().map_or(true, |m| m >= cutoff) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) => {
                tracing::warn!(log.file = %path.display(), error = %e, "cannot remove an old log file");
            }
        }
    }
    removed.sort();
    removed
}

/// [`prune_old_logs`] now, logging what it removed.
pub fn prune_old_logs_now(file: &Path, retention_days: u32) {
    let removed = prune_old_logs(file, retention_days, SystemTime::now());
    if !removed.is_empty() {
        let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        tracing::info!(
            files = removed.len(),
            retention_days = retention_days.max(1),
            removed = %names.join(", "),
            "removed old log files (EMAG_LOG_RETENTION_DAYS)"
        );
    }
}

/// Removes old log files once a day from now on (the caller prunes once at start).
pub fn spawn_daily_log_pruning(file: PathBuf, retention_days: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let day = Duration::from_secs(86_400);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + day, day);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let file = file.clone();
            let _ = tokio::task::spawn_blocking(move || prune_old_logs_now(&file, retention_days))
                .await;
        }
    })
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
    let mut table = crate::render::table(vec![
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
            RunStatus::Cancelled => "cancelled",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_old_logs_removes_only_old_daily_files_of_this_log() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("emag_sync_scheduler.log");
        let now = SystemTime::now();
        let days_ago = |d: u64| now - Duration::from_secs(d * 86_400);
        let make = |name: &str, modified: SystemTime| {
            let f = std::fs::File::create(dir.path().join(name)).expect("create");
            f.set_modified(modified).expect("set mtime");
        };
        // Old daily files of this log: removed.
        make("emag_sync_scheduler.log.2024-01-01", days_ago(40));
        make("emag_sync_scheduler.log.2024-01-20", days_ago(8));
        // Recent daily files: kept.
        make("emag_sync_scheduler.log.2024-01-25", days_ago(6));
        make("emag_sync_scheduler.log.2024-01-30", now);
        // Old files that are not this log's daily files: kept.
        make("emag_sync_scheduler.log", days_ago(40));
        make("emag_sync_scheduler.out", days_ago(40));
        make("emag_sync_scheduler.log.2024-01-01.gz", days_ago(40));
        make("emag_sync_scheduler.log.old", days_ago(40));
        make("other.log.2024-01-01", days_ago(40));
        make("xemag_sync_scheduler.log.2024-01-01", days_ago(40));
        std::fs::create_dir(dir.path().join("emag_sync_scheduler.log.2023-12-31")).expect("dir");

        let removed = prune_old_logs(&log, 7, now);
        assert_eq!(
            removed,
            vec![
                dir.path().join("emag_sync_scheduler.log.2024-01-01"),
                dir.path().join("emag_sync_scheduler.log.2024-01-20"),
            ]
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "emag_sync_scheduler.log",
                "emag_sync_scheduler.log.2023-12-31",
                "emag_sync_scheduler.log.2024-01-01.gz",
                "emag_sync_scheduler.log.2024-01-25",
                "emag_sync_scheduler.log.2024-01-30",
                "emag_sync_scheduler.log.old",
                "emag_sync_scheduler.out",
                "other.log.2024-01-01",
                "xemag_sync_scheduler.log.2024-01-01",
            ]
        );
        // 0 days means 1: the file being written today is never removed.
        assert_eq!(
            prune_old_logs(&log, 0, now),
            vec![dir.path().join("emag_sync_scheduler.log.2024-01-25")]
        );
        assert!(dir
            .path()
            .join("emag_sync_scheduler.log.2024-01-30")
            .exists());
        assert!(prune_old_logs(&dir.path().join("missing/x.log"), 7, now).is_empty());
    }
}
