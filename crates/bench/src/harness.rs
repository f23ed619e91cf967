//! What the harness commands (`kill`, `chaos`, `soak`) share around their run: a work
//! directory kept only when something failed (or on `--keep`), and the report printed as its
//! table or as JSON, with the verdict.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

/// A harness's report as the commands print it.
pub trait Report: Serialize {
    /// The table, for people.
    fn markdown(&self) -> String;
    /// What failed; empty when the run passed.
    fn failures(&self) -> &[String];
}

impl Report for emag_bench::kill::Report {
    fn markdown(&self) -> String {
        emag_bench::kill::Report::markdown(self)
    }
    fn failures(&self) -> &[String] {
        &self.failures
    }
}

impl Report for emag_bench::chaos::Report {
    fn markdown(&self) -> String {
        emag_bench::chaos::Report::markdown(self)
    }
    fn failures(&self) -> &[String] {
        &self.failures
    }
}

impl Report for emag_bench::chaos::soak::SoakReport {
    fn markdown(&self) -> String {
        emag_bench::chaos::soak::SoakReport::markdown(self)
    }
    fn failures(&self) -> &[String] {
        &self.failures
    }
}

/// Prints `report` (`json`: as JSON, else its table), and what failed on stderr; whether the
/// run passed.
pub fn print_report(what: &str, report: &impl Report, json: bool) -> anyhow::Result<bool> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).context("writing the JSON report")?
        );
    } else {
        print!("{}", report.markdown());
    }
    let failures = report.failures();
    if !failures.is_empty() {
        eprintln!("bench {what} FAILED: {}", failures.join("; "));
    }
    Ok(failures.is_empty())
}

/// The directory of one harness run: its logs, SQLite files, pid files.
#[derive(Debug)]
pub struct WorkDir {
    what: &'static str,
    path: PathBuf,
}

impl WorkDir {
    /// A fresh directory under the system's temporary one, named after the harness and this
    /// process.
    pub fn create(what: &'static str) -> anyhow::Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("emag-sync-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create the work directory {}", path.display()))?;
        Ok(WorkDir { what, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory when `remove`; otherwise names it (and `also`, what else was
    /// kept) for inspection.
    pub fn finish(self, remove: bool, also: &str) {
        if remove {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                eprintln!("warning: cannot remove {}: {e}", self.path.display());
            }
        } else {
            eprintln!(
                "{}: kept for inspection: logs and the SQLite file in {}{also}",
                self.what,
                self.path.display()
            );
        }
    }
}
