//! `emag-sync` child processes of the harnesses: started with their output copied line by
//! line (without terminal colours) to a log file and to the harness, killed or stopped, and
//! what they printed read back (a field of a log line, the end of a log for an error message).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running `emag-sync` child whose output lines the harness reads.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub pid: u32,
    /// Its stdout and stderr lines, as they come.
    pub lines: mpsc::UnboundedReceiver<String>,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` (`what` names it in errors) with its stdout and stderr copied to `log`
    /// and to [`Proc::lines`].
    pub fn spawn(mut cmd: Command, what: &str, log: PathBuf) -> anyhow::Result<Proc> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{what}`"))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("`{what}` exited at once"))?;
        let file = Arc::new(Mutex::new(
            std::fs::File::create(&log)
                .with_context(|| format!("cannot create {}", log.display()))?,
        ));
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(out, Arc::clone(&file), tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(err, file, tx));
        }
        Ok(Proc {
            child,
            pid,
            lines,
            log,
        })
    }

    /// SIGKILL, and reaped, so its pid is free of doubt: a dead holder.
    pub async fn kill(&mut self) {
        if let Err(e) = self.child.start_kill() {
            tracing::debug!(pid = self.pid, error = %e, "the child had already exited");
        }
        if let Err(e) = self.child.wait().await {
            tracing::warn!(pid = self.pid, error = %e, "cannot reap a killed child");
        }
    }

    /// Whether it has exited (reaped if so), and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then a clean exit (status 0) within `timeout`; killed if it takes longer.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let pid = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| anyhow::anyhow!("pid {} is not a process id", self.pid))?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .with_context(|| format!("cannot send SIGTERM to pid {}", self.pid))?;
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => bail!(
                "`start` exited with {status} after SIGTERM; log {}:\n{}",
                self.log.display(),
                tail(&self.log, 15)
            ),
            Ok(Err(e)) => Err(e).context("waiting for `start` to exit"),
            Err(_) => {
                self.kill().await;
                bail!(
                    "`start` did not exit within {} s of SIGTERM",
                    timeout.as_secs()
                )
            }
        }
    }
}

/// Copies a child's output, line by line without colours, to its log file and to the
/// harness.
async fn forward(
    pipe: impl AsyncRead + Unpin,
    file: Arc<Mutex<std::fs::File>>,
    tx: mpsc::UnboundedSender<String>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = strip_ansi(&line);
        if let Ok(mut f) = file.lock() {
            // A log that cannot be written loses diagnostics, not the measurement.
            let _ignored = writeln!(f, "{line}");
        }
        // The harness may have stopped listening (the child is being killed).
        let _ignored = tx.send(line);
    }
}

/// The text of a line without its ANSI escape sequences (`ESC [ … final byte`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A field of `/proc/<pid>/status` given in kB (`VmRSS`, `VmHWM`), in KiB; `pid` may be
/// `self`. `None` where the OS does not tell it, or the process is gone.
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Whether a log line carries `name=value` as one of its fields (tracing's text format,
/// which quotes a field recorded as a string: `name="value"`).
pub fn has_field(line: &str, name: &str, value: &str) -> bool {
    let plain = format!("{name}={value}");
    let quoted = format!("{name}=\"{value}\"");
    line.split_whitespace().any(|w| w == plain || w == quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stripped_and_fields_found_whole() {
        let line = "\u{1b}[2m2026-12-01T10:00:00Z\u{1b}[0m DEBUG run claimed \u{1b}[3maccount.name\u{1b}[0m\u{1b}[2m=\u{1b}[0mmain sync.kind=offers";
        let plain = strip_ansi(line);
        assert_eq!(
            plain,
            "2026-12-01T10:00:00Z DEBUG run claimed account.name=main sync.kind=offers"
        );
        assert!(has_field(&plain, "account.name", "main"));
        assert!(!has_field(&plain, "account.name", "mai"));
        assert!(has_field(&plain, "sync.kind", "offers"));
        assert!(has_field(
            r#"run ended account.name="fbe" run.id=3"#,
            "account.name",
            "fbe"
        ));
    }
}
