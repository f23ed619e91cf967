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
        let mut c = Command::new(env!("CARGO_BIN_EXE_emag-sync"));
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
        let mut child = self
            .cmd(extra, &["start"])
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
