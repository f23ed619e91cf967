//! `emag-sync start` as a daemon: `--detach`, one scheduler per SQLite file, log retention
//! by age. Real processes; readiness is read from their output or their exit, never slept
//! for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use emag_sim::{RunningSim, SimConfig};
use test_support::TestDb;

use crate::support::{bounded, sim_vars};

/// A working directory, the variables of a seller using the simulator, and the binary.
struct Env {
    _sim: RunningSim,
    dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

impl Env {
    async fn new(database_url: &str) -> Env {
        let sim = emag_sim::Simulator::spawn(SimConfig::default())
            .await
            .expect("sim");
        let dir = tempfile::tempdir().expect("dir");
        let mut vars = sim_vars(&sim, database_url);
        vars.insert("EMAG_PID_FILE".into(), pid_file(dir.path(), "a"));
        Env {
            _sim: sim,
            dir,
            vars,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary in the working directory with these variables (and `extra` over them).
    fn cmd(&self, extra: &[(&str, &str)], args: &[&str]) -> Command {
        self.cmd_via(&[], extra, args)
    }

    /// [`Env::cmd`] run by a wrapper command (`unshare …`, `sh -c …`) that ends by running the
    /// binary, given as the wrapper's next argument.
    fn cmd_via(&self, wrapper: &[&str], extra: &[(&str, &str)], args: &[&str]) -> Command {
        let bin = env!("CARGO_BIN_EXE_emag-sync");
        let mut c = match wrapper.split_first() {
            None => Command::new(bin),
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
        };
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("EMAG_LOG_LEVEL", "info")
            .envs(&self.vars)
            .envs(extra.iter().copied())
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, extra: &[(&str, &str)], args: &[&str]) -> Output {
        bounded(&args.join(" "), self.cmd(extra, args).output())
            .await
            .expect("run emag-sync")
    }

    /// `start` in the foreground, once it printed its readiness line; returns its pid.
    async fn start_foreground(&self, extra: &[(&str, &str)]) -> (Child, u32) {
        self.start_foreground_via(&[], extra).await
    }

    /// [`Env::start_foreground`] through a wrapper (see [`Env::cmd_via`]); the pid is the
    /// wrapper's.
    async fn start_foreground_via(&self, wrapper: &[&str], extra: &[(&str, &str)]) -> (Child, u32) {
        let mut child = self
            .cmd_via(wrapper, extra, &["start"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = bounded("the readiness line", lines.next_line())
            .await
            .expect("read")
            .expect("a readiness line before the end of the output");
        assert!(ready.contains("scheduler ready"), "{ready}");
        let pid = child.id().expect("pid");
        // Keep reading so the scheduler never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (child, pid)
    }
}

fn pid_file(dir: &Path, name: &str) -> String {
    dir.join(format!("{name}.pid")).display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stops a scheduler the test started if the test ends early, so no process outlives it.
struct StopOnDrop(u32);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if emag_sync::process_alive(self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.0.to_string()])
                .status();
        }
    }
}

/// The process group of a process (`/proc/PID/stat`, the field after state and ppid).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_detach_returns_once_ready_and_stop_ends_it() {
    let db = TestDb::sqlite();
    let env = Env::new(&db.url).await;
    // Log files from earlier days: the old daily files of this log go at start, nothing else.
    let logs = env.path("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let now = SystemTime::now();
    let old = now - Duration::from_secs(40 * 86_400);
    for (name, modified) in [
        ("emag_sync_scheduler.log.2020-01-01", old),
        ("emag_sync_scheduler.log.2020-01-02", now),
        ("notes.txt", old),
        ("other.log.2020-01-01", old),
    ] {
        let f = std::fs::File::create(logs.join(name)).expect("create");
        f.set_modified(modified).expect("mtime");
    }
    let retention = [("EMAG_LOG_RETENTION_DAYS", "7")];

    let started = env.run(&retention, &["start", "--detach"]).await;
    assert!(
        started.status.success(),
        "start --detach: {}{}",
        text(&started.stdout),
        text(&started.stderr)
    );
    let stdout = text(&started.stdout);
    let pid: u32 = stdout
        .split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a pid in {stdout:?}"));
    let _guard = StopOnDrop(pid);
    assert!(
        stdout.contains("started in the background") && stdout.contains("emag-sync stop"),
        "{stdout}"
    );
    assert!(
        emag_sync::process_alive(pid),
        "the scheduler runs after start returned"
    );
    assert_eq!(
        process_group(pid),
        Some(pid),
        "the scheduler leads its own process group"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/0")).ok(),
        Some(PathBuf::from("/dev/null")),
        "its stdin is /dev/null"
    );
    let output = std::fs::read_to_string(logs.join("emag_sync_scheduler.out")).expect(".out");
    assert!(
        output.contains("scheduler ready") && output.contains(&format!("pid {pid}")),
        "the readiness line is in the output file: {output}"
    );

    // Retention by age, done before the scheduler said it was ready.
    assert!(!logs.join("emag_sync_scheduler.log.2020-01-01").exists());
    for kept in [
        "emag_sync_scheduler.log.2020-01-02",
        "notes.txt",
        "other.log.2020-01-01",
    ] {
        assert!(logs.join(kept).exists(), "{kept} is kept");
    }

    // A second detached start fails with the scheduler's own error.
    let again = env.run(&[], &["start", "--detach"]).await;
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already running"),
        "{}",
        text(&again.stderr)
    );

    let status = env.run(&[], &["status", "--json"]).await;
    assert!(status.status.success(), "{}", text(&status.stderr));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["scheduler_running"], true, "{status}");
    assert_eq!(status["pid"], pid, "{status}");

    let stop = env.run(&[], &["stop"]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(!emag_sync::process_alive(pid), "stop waits for the exit");
    assert!(!env.path("a.pid").exists(), "the pid file is removed");
    let output = std::fs::read_to_string(logs.join("emag_sync_scheduler.out")).expect(".out");
    assert!(
        output.contains("emag-sync scheduler stopped"),
        "a clean exit: {output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_detach_reports_a_scheduler_that_cannot_start() {
    let db = TestDb::sqlite();
    let env = Env::new(&db.url).await;
    // The pid file cannot be written: its directory is a file.
    std::fs::write(env.path("blocked"), "").expect("file");
    let pid_file = env.path("blocked/emag-sync.pid").display().to_string();
    let failed = env
        .run(&[("EMAG_PID_FILE", &pid_file)], &["start", "--detach"])
        .await;
    assert_eq!(failed.status.code(), Some(1));
    let stderr = text(&failed.stderr);
    assert!(
        stderr.contains("did not start") && stderr.contains("cannot write the pid file"),
        "the scheduler's own error is shown: {stderr}"
    );
    assert!(stderr.contains("emag_sync_scheduler.out"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_scheduler_on_the_same_sqlite_file_is_refused() {
    let db = TestDb::sqlite();
    let env = Env::new(&db.url).await;
    let db_file = db
        .url
        .strip_prefix("sqlite://")
        .expect("sqlite url")
        .to_owned();
    let (mut first, pid) = env.start_foreground(&[]).await;
    let _guard = StopOnDrop(pid);

    let other_pid_file = pid_file(env.dir.path(), "b");
    let b = [("EMAG_PID_FILE", other_pid_file.as_str())];
    let second = env.run(&b, &["start"]).await;
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("already runs on the SQLite database {db_file}"))
            && stderr.contains(&format!("(pid {pid})"))
            && stderr.contains(".scheduler.lock"),
        "names the file and the pid holding it: {stderr}"
    );
    assert!(
        first.try_wait().expect("try_wait").is_none(),
        "the first scheduler keeps running"
    );
    assert!(!Path::new(&other_pid_file).exists());

    let stop = env.run(&[], &["stop"]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let exit = bounded("the first scheduler's exit", first.wait())
        .await
        .expect("wait");
    assert!(exit.success());

    // The lock goes with its process: now the other one may start.
    let (mut second, _) = env.start_foreground(&b).await;
    let stop = env.run(&b, &["stop"]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let exit = bounded("the second scheduler's exit", second.wait())
        .await
        .expect("wait");
    assert!(exit.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_schedulers_may_share_one_postgres_database() {
    let db = TestDb::postgres().await;
    let env = Env::new(&db.url).await;
    let other_pid_file = pid_file(env.dir.path(), "b");
    let b = [("EMAG_PID_FILE", other_pid_file.as_str())];
    let (mut first, first_pid) = env.start_foreground(&[]).await;
    let _first_guard = StopOnDrop(first_pid);
    let (mut second, second_pid) = env.start_foreground(&b).await;
    let _second_guard = StopOnDrop(second_pid);
    for (extra, child) in [(&[][..], &mut first), (&b[..], &mut second)] {
        let stop = env.run(extra, &["stop"]).await;
        assert!(stop.status.success(), "{}", text(&stop.stderr));
        let exit = bounded("a scheduler's exit", child.wait())
            .await
            .expect("wait");
        assert!(exit.success());
    }
}

/// Every file and directory under `dir` whose mode gives group or others any permission.
fn not_private(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue; // removed meanwhile (a WAL at close)
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                found.push(format!("{:o} {}", mode, path.display()));
            }
            if meta.is_dir() {
                todo.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_the_daemon_creates_is_private_to_its_user() {
    // Arrange: everything under one working directory, made by the daemon itself, run with
    // the common umask 022 (what a shell or a service manager without UMask gives it).
    let work = tempfile::tempdir().expect("dir");
    let db_url = format!("sqlite://{}/data/emag.db", work.path().display());
    let env = Env::new(&db_url).await;
    let umask_022 = ["sh", "-c", "umask 022 && exec \"$0\" \"$@\""];
    let vars = [
        ("EMAG_PID_FILE", "run/emag-sync.pid"),
        ("EMAG_BACKUP_DIR", "backups"),
    ];
    let created = [
        env.path("run"),
        env.path("logs"),
        env.path("backups"),
        work.path().join("data"),
    ];

    // Act: a detached scheduler (pid file, locks, database with WAL, logs, its output
    // file), a snapshot taken while it runs, then a clean stop.
    let started = bounded(
        "start --detach",
        env.cmd_via(&umask_022, &vars, &["start", "--detach"])
            .output(),
    )
    .await
    .expect("start");
    assert!(started.status.success(), "{}", text(&started.stderr));
    let backup = bounded(
        "backup",
        env.cmd_via(&umask_022, &vars, &["backup"]).output(),
    )
    .await
    .expect("backup");
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    let wal = work.path().join("data/emag.db-wal");
    assert!(
        wal.exists(),
        "the database is in WAL mode while the scheduler runs"
    );
    let mut while_running = not_private(env.dir.path());
    while_running.extend(not_private(work.path()));

    let stop = env.run(&vars, &["stop"]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let mut after = not_private(env.dir.path());
    after.extend(not_private(work.path()));

    // Assert: the daemon made each kind of file, and none is readable by anyone else.
    for dir in &created {
        assert!(dir.is_dir(), "{} was created", dir.display());
    }
    assert!(
        std::fs::read_dir(env.path("backups"))
            .expect("backups")
            .count()
            > 0,
        "a snapshot was written"
    );
    assert!(
        std::fs::read_dir(env.path("logs")).expect("logs").count() >= 2,
        "the log and the output file"
    );
    assert!(
        while_running.is_empty() && after.is_empty(),
        "files or directories open to group/others: {while_running:?} {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pid_file_naming_another_live_process_neither_blocks_start_nor_gets_it_signalled() {
    // Arrange: a pid file left by a killed scheduler, whose pid now belongs to an unrelated
    // live process.
    let db = TestDb::sqlite();
    let env = Env::new(&db.url).await;
    let mut unrelated = Command::new("sleep")
        .arg("600")
        .kill_on_drop(true)
        .spawn()
        .expect("sleep");
    let unrelated_pid = unrelated.id().expect("pid");
    std::fs::write(env.path("a.pid"), format!("{unrelated_pid}\n")).expect("pid file");

    // Act and assert: `stop` does not signal it …
    let stop = env.run(&[], &["stop"]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(
        text(&stop.stdout).contains("not running"),
        "{}",
        text(&stop.stdout)
    );
    assert!(
        unrelated.try_wait().expect("try_wait").is_none(),
        "the unrelated process was not signalled"
    );

    // … and `start` is not refused because of it.
    let (mut scheduler, pid) = env.start_foreground(&[]).await;
    let _guard = StopOnDrop(pid);
    assert_eq!(
        std::fs::read_to_string(env.path("a.pid"))
            .expect("pid file")
            .trim(),
        pid.to_string()
    );
    let stop = env.run(&[], &["stop"]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let exit = bounded("the scheduler's exit", scheduler.wait())
        .await
        .expect("wait");
    assert!(exit.success());
    assert!(
        unrelated.try_wait().expect("try_wait").is_none(),
        "still not signalled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_scheduler_starts_again_at_once() {
    let db = TestDb::sqlite();
    let env = Env::new(&db.url).await;
    let (mut first, pid) = env.start_foreground(&[]).await;
    let _guard = StopOnDrop(pid);

    first.start_kill().expect("SIGKILL");
    let exit = bounded("the killed scheduler's exit", first.wait())
        .await
        .expect("wait");
    assert!(!exit.success());
    assert!(env.path("a.pid").exists(), "a SIGKILL leaves the pid file");

    let (mut second, second_pid) = env.start_foreground(&[]).await;
    let _second_guard = StopOnDrop(second_pid);
    let stop = env.run(&[], &["stop"]).await;
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let exit = bounded("the scheduler's exit", second.wait())
        .await
        .expect("wait");
    assert!(exit.success());
}

/// Waits until no process holds the lock of the pid file at `path` (a dying process's locks
/// go when the kernel closes its files): the readiness signal of "the old scheduler is gone".
async fn lock_released(path: PathBuf) {
    let released = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        file.lock()?;
        file.unlock()
    });
    bounded("the pid file's lock to be released", released)
        .await
        .expect("join")
        .expect("lock");
}

/// The scheduler as PID 1 of a container: its pid file names pid 1 after every restart, and
/// pid 1 is then the new scheduler itself. `unshare` gives it a PID namespace of its own;
/// `--kill-child` SIGKILLs it when `unshare` is killed, as a container runtime would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_that_is_pid_1_in_a_container_starts_again_after_a_sigkill() {
    let db = TestDb::sqlite();
    let env = Env::new(&db.url).await;
    let mut container = vec!["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
    if !rustix::process::geteuid().is_root() {
        container.push("--map-root-user");
    }
    // Left by the last scheduler of this container.
    std::fs::write(env.path("a.pid"), "1\n").expect("pid file");

    for round in ["first start", "restart after SIGKILL"] {
        let (mut scheduler, _) = env.start_foreground_via(&container, &[]).await;
        assert_eq!(
            std::fs::read_to_string(env.path("a.pid"))
                .expect("pid file")
                .trim(),
            "1",
            "{round}: the scheduler is pid 1 in its namespace"
        );
        // Seen from outside, pid 1 is this machine's init: never signalled.
        let stop = env.run(&[], &["stop"]).await;
        assert_eq!(stop.status.code(), Some(1), "{round}");
        assert!(
            text(&stop.stderr).contains("nothing was signalled"),
            "{round}: {}",
            text(&stop.stderr)
        );
        scheduler.start_kill().expect("SIGKILL the container");
        bounded("the container's exit", scheduler.wait())
            .await
            .expect("wait");
        lock_released(env.path("a.pid")).await;
    }
}
