//! Opening the store from many processes at once: on a new SQLite file the migrations run
//! once and every process proceeds (issue 7). Real processes of the real binary; readiness is
//! read from their output, never slept for.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use emag_sim::{SimConfig, Simulator};
use sqlx::{Connection, SqliteConnection};
use test_support::TestDb;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::support::{binary, sim_vars};

/// A hung process fails the test instead of hanging the suite.
const STEP: Duration = Duration::from_secs(60);

const ROUNDS: usize = 20;

/// What each round starts at once on its new file: one scheduler (a second one is refused by
/// design) and seven commands that open the store and read it.
const COMMANDS: [&[&str]; 8] = [
    &["start"],
    &["status"],
    &["status", "--json"],
    &["export", "offers"],
    &["export", "orders"],
    &["migrate"],
    &["migrate"],
    &["runs"],
];

/// How one process ended, for the report of the whole test.
struct Ended {
    command: String,
    failure: Option<String>,
    stdout: String,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that exits by itself.
async fn run_to_exit(vars: &HashMap<String, String>, dir: &Path, args: &[&str]) -> Ended {
    let command = args.join(" ");
    let mut cmd = binary(vars, dir);
    cmd.args(args).kill_on_drop(true);
    let (failure, stdout) = match tokio::time::timeout(STEP, cmd.output()).await {
        Err(_) => (
            Some(format!("did not exit within {} s", STEP.as_secs())),
            String::new(),
        ),
        Ok(Err(e)) => (Some(format!("cannot run: {e}")), String::new()),
        Ok(Ok(out)) if out.status.success() => (None, text(&out.stdout)),
        Ok(Ok(out)) => (
            Some(format!("{}: {}", out.status, text(&out.stderr).trim())),
            text(&out.stdout),
        ),
    };
    Ended {
        command,
        failure,
        stdout,
    }
}

/// Runs `start` until it reports ready, then stops it with SIGTERM and expects a clean exit.
async fn run_scheduler(vars: &HashMap<String, String>, dir: &Path) -> Ended {
    let command = "start".to_owned();
    let mut child = match binary(vars, dir)
        .arg("start")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Ended {
                command,
                failure: Some(format!("cannot run: {e}")),
                stdout: String::new(),
            }
        }
    };
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stdout = String::new();
    let ready = tokio::time::timeout(STEP, async {
        while let Ok(Some(line)) = lines.next_line().await {
            stdout.push_str(&line);
            stdout.push('\n');
            if line.contains("scheduler ready") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if ready {
        let pid = child.id().expect("pid of a running scheduler").to_string();
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await;
        assert!(killed.is_ok_and(|s| s.success()), "SIGTERM to {pid}");
    }
    // After SIGTERM (or without readiness: it exited, or it hangs and is killed on drop).
    let rest = tokio::time::timeout(STEP, async {
        while let Ok(Some(line)) = lines.next_line().await {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        child.wait().await
    })
    .await;
    let stderr = stderr.await.unwrap_or_default();
    let failure = match rest {
        Err(_) => Some(format!("did not exit within {} s", STEP.as_secs())),
        Ok(Err(e)) => Some(format!("cannot wait: {e}")),
        Ok(Ok(status)) if !ready => {
            Some(format!("{status} before it was ready: {}", stderr.trim()))
        }
        Ok(Ok(status)) if !status.success() || !stdout.contains("scheduler stopped") => Some(
            format!("{status} after SIGTERM: {}{}", stdout, stderr.trim()),
        ),
        Ok(Ok(_)) => None,
    };
    Ended {
        command,
        failure,
        stdout,
    }
}

/// Everything the schema consists of: tables, indexes, their SQL, and the applied migrations.
async fn schema_of(url: &str) -> (Vec<(String, String, Option<String>)>, Vec<(i64, bool)>) {
    let mut conn = SqliteConnection::connect(url).await.expect("open the file");
    let objects = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read the schema");
    let migrations =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("read the applied migrations");
    let _ = conn.close().await;
    (objects, migrations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_open_a_new_sqlite_file_at_once_and_migrate_it_once() {
    // Arrange: a small catalog so the scheduler's first syncs finish quickly; the schema that
    // one process alone makes, to compare every round's file with.
    let sim = Simulator::spawn(SimConfig {
        offers_per_account: 20,
        orders_per_account: 5,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let reference = TestDb::sqlite();
    storage::Store::open(&reference.url)
        .await
        .expect("migrate the reference database")
        .close()
        .await;
    let expected = schema_of(&reference.url).await;
    assert!(!expected.1.is_empty() && expected.1.iter().all(|(_, ok)| *ok));
    let newest = expected.1.last().map(|(v, _)| *v).expect("a migration");

    let started = Instant::now();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let db = TestDb::sqlite();
        let dir = tempfile::tempdir().expect("dir");
        let mut vars = sim_vars(&sim, &db.url);
        vars.insert(
            "EMAG_PID_FILE".into(),
            dir.path().join("emag-sync.pid").display().to_string(),
        );
        let file = db.url.strip_prefix("sqlite://").expect("sqlite url");
        assert!(!Path::new(file).exists(), "each round starts on a new file");

        // Act: all eight at once; each process spends far longer starting up than the
        // loop takes to launch them, so they reach the database together.
        let ended = futures::future::join_all(COMMANDS.iter().map(|args| {
            let (vars, dir) = (&vars, dir.path());
            async move {
                if args[0] == "start" {
                    run_scheduler(vars, dir).await
                } else {
                    run_to_exit(vars, dir, args).await
                }
            }
        }))
        .await;

        // Assert (per round, reported together at the end).
        for e in ended {
            if let Some(why) = e.failure {
                failures.push(format!("round {round}: `{}`: {why}", e.command));
            } else if e.command == "migrate"
                && !e.stdout.contains(&format!("schema version {newest}"))
            {
                failures.push(format!("round {round}: `migrate` printed {:?}", e.stdout));
            }
        }
        let found = schema_of(&db.url).await;
        if found.1 != expected.1 {
            failures.push(format!("round {round}: applied migrations {:?}", found.1));
        }
        if found.0 != expected.0 {
            failures.push(format!(
                "round {round}: the schema differs from one process's"
            ));
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{ROUNDS} rounds of {} processes in {:.1} s: {} failed",
        COMMANDS.len(),
        elapsed.as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures ({} processes in all):\n{}",
        failures.len(),
        ROUNDS * COMMANDS.len(),
        failures.join("\n")
    );
}
