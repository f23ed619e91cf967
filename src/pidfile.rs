//! The scheduler's pid file, and the one rule for "is a scheduler running from it".
//!
//! A pid alone proves nothing: after a SIGKILL or a power loss the file stays behind and its
//! pid may belong to any process by now — or, in a container, to the new scheduler itself
//! (PID 1 again). So the running scheduler holds an exclusive OS lock on its pid file for as
//! long as it lives; the OS releases it however the process ends. A scheduler runs from a pid
//! file exactly when the file is locked, and a pid read from it is signalled only if that
//! process is emag-sync.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many times [`PidFile::acquire`] retries when the file it locked was replaced under it
/// (a scheduler exiting removes its pid file while another one starts).
const ACQUIRE_ATTEMPTS: usize = 5;

/// Why a pid file could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// A live scheduler holds the lock (its pid, when it has written it and is emag-sync).
    #[error("emag-sync is already running ({}pid file {})", .pid.map(|p| format!("pid {p}, ")).unwrap_or_default(), .path.display())]
    Running { path: PathBuf, pid: Option<u32> },
    #[error("cannot write the pid file {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The pid file of this running scheduler: locked and holding this process's pid until
/// dropped, then removed.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    file: File,
}

impl PidFile {
    /// Locks `path` (created 0600, its directory 0700 if it has to be created) and writes this
    /// process's pid into it. A file left by a dead scheduler is taken over, whatever pid it
    /// names; a live scheduler's lock gives [`PidFileError::Running`].
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let io = |source| PidFileError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io)?;
        }
        for _ in 0..ACQUIRE_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(PidFileError::Running {
                        path: path.to_owned(),
                        pid: match running(path) {
                            Running::Yes(pid) => Some(pid),
                            _ => None,
                        },
                    })
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            // The holder before us removes the file as it exits: if we locked that removed
            // file, the lock guards nothing; open the path again.
            let same = match (file.metadata(), std::fs::metadata(path)) {
                (Ok(locked), Ok(named)) => {
                    locked.dev() == named.dev() && locked.ino() == named.ino()
                }
                _ => false,
            };
            if !same {
                continue;
            }
            file.set_len(0).map_err(io)?;
            (&file)
                .write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(io)?;
            return Ok(PidFile {
                path: path.to_owned(),
                file,
            });
        }
        Err(io(std::io::Error::other(
            "the file kept being replaced while locking it",
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Removed while still locked (a starter that opened it meanwhile sees it replaced),
        // then unlocked by closing.
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(pid.file = %self.path.display(), error = %e, "cannot remove the pid file");
        }
        let _ = self.file.unlock();
    }
}

/// Whether a scheduler runs from a pid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    /// No live scheduler: no file, or a file no process holds (whatever pid it names).
    No,
    /// A live emag-sync scheduler with this pid.
    Yes(u32),
    /// The file is locked, but the pid in it is missing (a scheduler starting this instant)
    /// or not an emag-sync process that this machine can see (e.g. a scheduler in another
    /// PID namespace): never signal it.
    Unverified(Option<u32>),
}

/// Whether a scheduler runs from `path`: the lock decides, the pid is named only if it is an
/// emag-sync process. Taking the lock to test it for a moment is harmless: a scheduler
/// starting at that very instant is told one is running and can simply be started again.
pub fn running(path: &Path) -> Running {
    let Ok(file) = File::open(path) else {
        return Running::No;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            return Running::No;
        }
        Err(TryLockError::WouldBlock) => {}
        // Cannot tell: treat as held, and signal nothing.
        Err(TryLockError::Error(_)) => return Running::Unverified(None),
    }
    let pid = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    match pid {
        Some(pid) if is_emag_sync(pid) => Running::Yes(pid),
        pid => Running::Unverified(pid),
    }
}

/// Whether process `pid` runs this program: the file name of its executable is this
/// executable's (or `emag-sync`), also after an upgrade replaced the file (` (deleted)`).
pub fn is_emag_sync(pid: u32) -> bool {
    if !crate::process_alive(pid) {
        return false;
    }
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    let name = exe.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name else {
        return false;
    };
    let name = name.strip_suffix(" (deleted)").unwrap_or(&name);
    let ours = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()));
    name == "emag-sync" || ours.as_deref() == Some(name)
}

/// Creates `dir` and its missing parents with mode 0700 (the files under it hold customer
/// data); directories that exist keep their mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_nobody_holds_is_not_running_whatever_pid_it_names() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("x.pid");
        assert_eq!(running(&path), Running::No, "no file");
        // This very process is alive, and is not holding the file.
        std::fs::write(&path, format!("{}\n", std::process::id())).expect("write");
        assert_eq!(running(&path), Running::No);
    }

    #[test]
    fn a_held_pid_file_is_running_and_a_second_acquire_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("run/x.pid");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(&path, "1\n").expect("a stale pid");
        let held = PidFile::acquire(&path).expect("a stale file is taken over");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read").trim(),
            std::process::id().to_string()
        );
        // Held, by a process running this very executable.
        assert_eq!(running(&path), Running::Yes(std::process::id()));
        assert!(matches!(
            PidFile::acquire(&path),
            Err(PidFileError::Running { .. })
        ));
        drop(held);
        assert!(!path.exists(), "removed on drop");
        assert_eq!(running(&path), Running::No);
    }

    #[test]
    fn a_pid_file_and_its_new_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("run/sub/x.pid");
        let held = PidFile::acquire(&path).expect("acquire");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("run")), 0o700);
        assert_eq!(mode(&dir.path().join("run/sub")), 0o700);
        drop(held);
    }
}
