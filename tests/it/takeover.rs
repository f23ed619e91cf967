//! A scheduler takes over a run whose holder died — whichever kind that run is and whatever
//! else of the account is due — and waits quietly while it cannot (issue 7: the survivor used
//! to retry the account's other kinds a thousand times a second and never took the dead run
//! over). Real processes on a real database; the kill lands while the victim holds its run.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{RunState, SyncKind};
use emag_sim::{FaultPlan, SimConfig, Simulator};
use test_support::{DbKind, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{
    assert_offers_match, assert_orders_match, binary, bounded, on_both_backends, sim_vars,
};

/// The lease TTL of both processes (the smallest emag-sync accepts).
const TTL_MS: i64 = 10_000;
/// The measurement window after the kill: run starts of the account are counted in it.
const WINDOW: Duration = Duration::from_secs(60);
/// A log line without its terminal colours.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// PostgreSQL: two `start` processes "on two machines" (different instance names). SQLite:
/// one scheduler per file, so the dead holder is a killed `sync` process on this machine.
async fn a_dead_holders_orders_run_is_taken_over_while_the_accounts_other_kinds_wait(kind: DbKind) {
    // Arrange: every answer to account main takes 4 s, so the victim's orders run is still
    // claimed and unfinished when its first answer arrives (an orders sync reads at least
    // type 3 and type 2).
    let sim = Simulator::spawn(SimConfig {
        offers_per_account: 150,
        orders_per_account: 30,
        faults: FaultPlan {
            latency_ms: 4_000,
            accounts: vec!["main".into()],
            ..FaultPlan::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let db = TestDb::new(kind).await;
    let store = storage::Store::open(&db.url).await.expect("store");
    let mut vars = sim_vars(&sim, &db.url);
    vars.insert("EMAG_LEASE_TTL".into(), (TTL_MS / 1000).to_string());
    vars.insert("EMAG_API_TIMEOUT".into(), "30".into());
    vars.insert("NO_COLOR".into(), "1".into());
    let dir_a = tempfile::tempdir().expect("dir");
    let dir_b = tempfile::tempdir().expect("dir");
    let with = |extra: &[(&str, &str)]| -> HashMap<String, String> {
        let mut v = vars.clone();
        v.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        v
    };
    let pid_a = dir_a.path().join("a.pid").display().to_string();
    let pid_b = dir_b.path().join("b.pid").display().to_string();
    let mut victim = match kind {
        DbKind::Postgres => {
            let mut cmd = binary(
                &with(&[
                    ("EMAG_INSTANCE_NAME", "host-a"),
                    ("EMAG_PID_FILE", &pid_a),
                    ("EMAG_MAIN_SYNC_TYPES", "orders"),
                    ("EMAG_FBE_SYNC_TYPES", "orders"),
                ]),
                dir_a.path(),
            );
            cmd.arg("start");
            cmd
        }
        DbKind::Sqlite => {
            let mut cmd = binary(&with(&[]), dir_a.path());
            cmd.args(["sync", "main", "--kind", "orders"]);
            cmd
        }
    };
    let mut victim = victim
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the victim");

    bounded(
        "the victim's first answered order read",
        sim.sim.wait_for_request(|e| {
            e.account.as_deref() == Some("main")
                && e.resource == "order"
                && e.action == "read"
                && e.status == 200
        }),
    )
    .await;
    let victim_pid = victim.id().expect("pid");
    let held = store
        .active_runs()
        .await
        .expect("active runs")
        .into_iter()
        .find(|r| r.account == "main" && r.kind == SyncKind::Orders)
        .expect("the victim holds main's orders run");
    assert_eq!(held.state, RunState::Running);
    let victim_holder = held.holder.clone().expect("a holder");
    assert!(
        victim_holder.contains(&format!(":{victim_pid}:")),
        "{victim_holder} is the victim (pid {victim_pid})"
    );

    // Act: SIGKILL the victim while it holds the run, then run the survivor.
    victim.kill().await.expect("SIGKILL");
    let killed_at = storage::now_ms();
    let window_end = tokio::time::Instant::now() + WINDOW;
    sim.sim.set_faults(FaultPlan::default());
    // On PostgreSQL the survivor is "on another machine": it can judge the victim only by its
    // heartbeat. On SQLite it shares the machine and sees the victim's pid is gone.
    let survivor_vars = match kind {
        DbKind::Postgres => with(&[("EMAG_INSTANCE_NAME", "host-b"), ("EMAG_PID_FILE", &pid_b)]),
        DbKind::Sqlite => with(&[("EMAG_PID_FILE", &pid_b)]),
    };
    let mut survivor = binary(&survivor_vars, dir_b.path())
        .env("EMAG_LOG_LEVEL", "info")
        .arg("start")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the survivor");
    let mut stdout = BufReader::new(survivor.stdout.take().expect("stdout")).lines();
    let ready = bounded("the survivor's readiness line", stdout.next_line())
        .await
        .expect("read")
        .expect("a readiness line");
    assert!(ready.contains("scheduler ready"), "{ready}");
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut stderr = BufReader::new(survivor.stderr.take().expect("stderr")).lines();
    let sink = log.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            sink.lock().expect("log").push(plain(&line));
        }
    });

    // The measurement window: the survivor is watched for a minute after the kill.
    tokio::time::sleep_until(window_end).await;
    let starts_in_window = log
        .lock()
        .expect("log")
        .iter()
        .filter(|l| l.contains("starting a scheduled run") && l.contains("account.name=main"))
        .count();
    let stop = binary(&with(&[("EMAG_PID_FILE", &pid_b)]), dir_b.path())
        .arg("stop")
        .output()
        .await
        .expect("stop");
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let exit = bounded("the survivor's exit", survivor.wait())
        .await
        .expect("wait");
    assert!(exit.success(), "the survivor stopped cleanly");
    bounded("the end of the survivor's log", reader)
        .await
        .expect("log reader");

    // Assert: taken over within the TTL plus two seconds, recorded, and finished.
    let run = store
        .get_run(held.id)
        .await
        .expect("read the run")
        .expect("the run is kept");
    let lines = log.lock().expect("log").join("\n");
    assert_eq!(run.state, RunState::Succeeded, "{run:?}\n{lines}");
    assert_eq!(
        run.reclaimed_from.as_deref(),
        Some(victim_holder.as_str()),
        "the takeover is recorded"
    );
    let taken_after = run.reclaimed_at.expect("reclaimed_at") - killed_at;
    assert!(
        taken_after <= TTL_MS + 2_000,
        "taken over {taken_after} ms after the kill (TTL {TTL_MS} ms)"
    );
    assert!(
        (1..20).contains(&starts_in_window),
        "{starts_in_window} run starts of account main in the minute after the kill\n{lines}"
    );
    assert_offers_match(&store, &sim, "main").await;
    assert_orders_match(&store, &sim, "main").await;
}

on_both_backends!(a_dead_holders_orders_run_is_taken_over_while_the_accounts_other_kinds_wait);
