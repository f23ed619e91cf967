//! The scheduler against the simulator: the step, and `start` / `stop` / `status` as
//! processes.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use domain::{RunTrigger, SyncKind};
use emag_sim::SimConfig;
use emag_sync::config::CatchUp;
use emag_sync::scheduler::{Policy, Schedule, Scheduler};
use emag_sync::sync::RunStatus;
use test_support::{DbKind, TestDb};

use crate::support::{binary, on_both_backends, sim_vars, TestApp};

on_both_backends!(
    a_tick_starts_what_is_due_once_one_run_per_account_and_nothing_twice,
    three_instances_sharing_one_store_run_each_slot_exactly_once,
    a_queued_manual_run_is_claimed_by_the_next_tick,
);

/// A working directory, an SQLite database and the variables of a `start` against `sim`,
/// with its pid file in that directory.
fn daemon_env(
    sim: &emag_sim::RunningSim,
) -> (
    tempfile::TempDir,
    TestDb,
    std::collections::HashMap<String, String>,
) {
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDb::sqlite();
    let mut vars = sim_vars(sim, &db.url);
    vars.insert(
        "EMAG_PID_FILE".into(),
        dir.path().join("emag-sync.pid").display().to_string(),
    );
    (dir, db, vars)
}

fn policy() -> Policy {
    Policy {
        retry_delay: Duration::from_secs(5),
        max_retries: 3,
        catch_up: CatchUp::Once,
    }
}

/// Offer schedules of main and fbe, with a snapshot before offer syncs at most hourly.
fn offers_with_snapshots(app: &TestApp, backups: &std::path::Path) -> Scheduler {
    let maintenance = emag_sync::scheduler::Maintenance {
        backups: Some(emag_sync::config::BackupSettings {
            dir: backups.to_owned(),
            keep: 7,
            every: Duration::from_secs(3600),
        }),
        run_retention: None,
        systemd: false,
    };
    let schedules = vec![
        schedule("main", SyncKind::Offers),
        schedule("fbe", SyncKind::Offers),
    ];
    Scheduler::new(app.ctx.clone(), app.accounts.clone(), schedules, policy())
        .with_maintenance(maintenance)
}

fn schedule(account: &str, kind: SyncKind) -> Schedule {
    Schedule {
        account: account.into(),
        kind,
        interval: Duration::from_secs(1800),
        offset: Duration::from_secs(11),
        cron: None,
        manual_only: false,
    }
}

async fn a_tick_starts_what_is_due_once_one_run_per_account_and_nothing_twice(kind: DbKind) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    let policy = policy();
    let schedules = vec![
        schedule("main", SyncKind::Offers),
        schedule("main", SyncKind::Orders),
        schedule("fbe", SyncKind::Offers),
    ];
    let mut scheduler = Scheduler::new(app.ctx.clone(), app.accounts.clone(), schedules, policy);
    let now = storage::now_ms();

    let first = scheduler.tick(now).await.expect("tick");
    // One run per account at a time: main's offers and fbe's offers, not main's orders yet.
    assert_eq!(
        first,
        vec![
            ("main".into(), SyncKind::Offers, RunTrigger::Schedule),
            ("fbe".into(), SyncKind::Offers, RunTrigger::Schedule)
        ]
    );
    assert!(
        scheduler.tick(now).await.expect("tick").is_empty(),
        "nothing starts twice while running"
    );
    let reports = scheduler.wait_idle().await;
    assert!(
        reports.iter().all(|r| r.status == RunStatus::Succeeded),
        "{reports:?}"
    );

    let second = scheduler.tick(now).await.expect("tick");
    assert_eq!(
        second,
        vec![("main".into(), SyncKind::Orders, RunTrigger::Schedule)]
    );
    scheduler.wait_idle().await;
    assert!(
        scheduler.tick(now + 60_000).await.expect("tick").is_empty(),
        "intervals not elapsed"
    );
    let later = scheduler.tick(now + 47 * 60_000).await.expect("tick");
    assert_eq!(
        later.len(),
        2,
        "after the interval, both accounts are due again: {later:?}"
    );
    scheduler.wait_idle().await;
    app.assert_offers_match("main").await;
    app.assert_orders_match("main").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_runs_the_schedules_and_stop_ends_it_cleanly() {
    let sim = emag_sim::Simulator::spawn(SimConfig::default())
        .await
        .expect("sim");
    let (dir, _db, vars) = daemon_env(&sim);
    let cmd = |args: &[&str]| {
        let mut c = binary(&vars, dir.path());
        c.args(args);
        c
    };
    let mut daemon = cmd(&["start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut lines = BufReader::new(daemon.stdout.take().expect("stdout")).lines();
    let ready = lines
        .next_line()
        .await
        .expect("read")
        .expect("a readiness line");
    assert!(ready.contains("scheduler ready"), "{ready}");

    let second = cmd(&["start"]).output().await.expect("second start");
    assert_eq!(
        second.status.code(),
        Some(1),
        "a second scheduler on the same pid file refuses"
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));

    // The store shows the first scheduled run as soon as it starts; `status` reads it.
    let status = cmd(&["status", "--json"]).output().await.expect("status");
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["scheduler_running"], true);
    let kinds: usize = status["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| a["kinds"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(kinds >= 5, "{status}");
    let pid = i64::from(daemon.id().expect("pid"));
    let instances = status["scheduler"]["instances"]
        .as_array()
        .expect("instances");
    assert!(
        instances
            .iter()
            .any(|i| i["pid"] == pid && i["state"] == "live"),
        "the running instance is listed as live: {instances:?}"
    );

    // A manual run queued from another process is claimed by the running scheduler.
    let queued = cmd(&["sync", "main", "--kind", "returns", "--queue", "--json"])
        .output()
        .await
        .expect("queue");
    assert!(
        queued.status.success(),
        "{}",
        String::from_utf8_lossy(&queued.stderr)
    );
    let queued: serde_json::Value = serde_json::from_slice(&queued.stdout).expect("json");
    assert_eq!(queued[0]["account"], "main");

    let stop = cmd(&["stop"]).output().await.expect("stop");
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let exit = daemon.wait().await.expect("wait");
    assert!(exit.success(), "the scheduler exits 0 after SIGTERM");
    assert!(
        !dir.path().join("emag-sync.pid").exists(),
        "the pid file is removed"
    );
    let status = cmd(&["status", "--json"]).output().await.expect("status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["scheduler_running"], false);
    assert!(
        status["scheduler"]["instances"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["pid"] == pid && i["state"] == "stopped")),
        "a clean stop is recorded: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_an_offer_scan_exits_at_once_the_next_start_resumes_it_a_kill_shows_as_gone() {
    let sim = emag_sim::Simulator::spawn(SimConfig {
        offers_per_account: 3000,
        accounts: vec![emag_sim::AccountSpec::main()],
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let (dir, db, mut vars) = daemon_env(&sim);
    vars.insert("EMAG_MAIN_SYNC_TYPES".into(), "offers".into());
    let cmd = |args: &[&str]| {
        let mut c = binary(&vars, dir.path());
        c.args(args).stderr(Stdio::null());
        c
    };
    let start = || async {
        let mut daemon = cmd(&["start"])
            .stdout(Stdio::piped())
            // A failed assertion must not leave a scheduler running after the test.
            .kill_on_drop(true)
            .spawn()
            .expect("start");
        let mut lines = BufReader::new(daemon.stdout.take().expect("stdout")).lines();
        let ready = lines.next_line().await.expect("read").expect("ready line");
        assert!(ready.contains("scheduler ready"), "{ready}");
        daemon
    };
    let scanning = |after: u64| {
        move |e: &emag_sim::JournalEntry| {
            e.seq > after && e.resource == "product_offer" && e.action == "read" && e.status == 200
        }
    };

    let mut daemon = start().await;
    // Readiness signal: the scan has reached page 6 of 30.
    let sixth = sim
        .sim
        .wait_for_request(move |e| scanning(0)(e) && e.page >= Some(6))
        .await;
    let asked = std::time::Instant::now();
    let stop = cmd(&["stop"]).output().await.expect("stop");
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stdout)
    );
    assert!(daemon.wait().await.expect("wait").success());
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(10), "stop took {took:?}");

    let store = storage::Store::open(&db.url).await.expect("store");
    let runs = store
        .list_runs(&storage::RunFilter {
            kind: Some(SyncKind::Offers),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1);
    let stopped = &runs[0];
    assert_eq!(stopped.state, domain::RunState::Interrupted);
    assert!(stopped.checkpoint_page >= 5, "{stopped:?}");

    // The next start takes the same run up at the page after its checkpoint.
    let mut again = start().await;
    let first = sim.sim.wait_for_request(scanning(sixth.seq)).await;
    assert_eq!(
        first.page,
        Some(u32::try_from(stopped.checkpoint_page + 1).expect("page")),
        "resumed after the checkpoint, not from page 1"
    );
    let pid = i64::from(again.id().expect("pid"));
    let run = store.get_run(stopped.id).await.expect("run").expect("row");
    assert_eq!(run.attempt, 2, "{run:?}");

    // Killed instead of stopped: `status` shows the instance as gone and the run as waiting
    // for the next scheduler.
    again.kill().await.expect("SIGKILL");
    let status = cmd(&["status", "--json"]).output().await.expect("status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["scheduler_running"], false, "{status}");
    assert!(
        status["scheduler"]["instances"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["pid"] == pid && i["state"] == "gone")),
        "{status}"
    );
    let offers = status["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "main"))
        .and_then(|a| a["kinds"].as_array())
        .and_then(|k| k.iter().find(|k| k["kind"] == "offers"))
        .expect("offers schedule");
    assert_eq!(
        offers["progress"]["alive"], false,
        "its process stopped; the next scheduler tick resumes it: {offers}"
    );
    let text = cmd(&["status"]).output().await.expect("status");
    assert!(
        // The table wraps its prose cells to 120 columns: the note spans lines.
        ["its", "process", "stopped", "resumes"]
            .iter()
            .all(|w| String::from_utf8_lossy(&text.stdout).contains(w)),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}

async fn a_queued_manual_run_is_claimed_by_the_next_tick(kind: DbKind) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    let policy = policy();
    // A schedule that is not due: its last run was just now.
    let mut scheduler = Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![schedule("main", SyncKind::Returns)],
        policy,
    );
    assert_eq!(
        scheduler.tick(storage::now_ms()).await.expect("tick").len(),
        1
    );
    scheduler.wait_idle().await;
    assert!(scheduler
        .tick(storage::now_ms())
        .await
        .expect("tick")
        .is_empty());

    let storage::Enqueued::Queued { run_id } = app
        .store
        .enqueue_run("main", SyncKind::Returns, false)
        .await
        .expect("queue")
    else {
        panic!("nothing was active")
    };
    assert_eq!(
        app.store
            .enqueue_run("main", SyncKind::Returns, false)
            .await
            .expect("queue again"),
        storage::Enqueued::AlreadyActive {
            run_id,
            state: domain::RunState::Queued
        },
        "a second request joins the queued run"
    );
    let started = scheduler.tick(storage::now_ms()).await.expect("tick");
    assert_eq!(
        started,
        vec![("main".into(), SyncKind::Returns, RunTrigger::Manual)]
    );
    let reports = scheduler.wait_idle().await;
    assert_eq!(reports[0].run_id, Some(run_id), "the queued row itself ran");
    assert_eq!(reports[0].status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_syncs_starting_together_take_one_snapshot_between_them() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let backups = tempfile::tempdir().expect("dir");
    let mut scheduler = offers_with_snapshots(&app, backups.path());
    assert_eq!(
        scheduler.tick(storage::now_ms()).await.expect("tick").len(),
        2
    );
    let reports = scheduler.wait_idle().await;
    assert!(
        reports.iter().all(|r| r.status == RunStatus::Succeeded),
        "{reports:?}"
    );
    assert_eq!(emag_sync::backup::snapshots(backups.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_taken_at_the_same_moment_are_two_whole_files() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    assert_eq!(
        app.sync("main", SyncKind::Offers).await.status,
        RunStatus::Succeeded
    );
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = tokio::join!(
        emag_sync::backup::backup_now(&app.store, dir.path(), 7),
        emag_sync::backup::backup_now(&app.store, dir.path(), 7)
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_ne!(a, b);
    assert_eq!(emag_sync::backup::snapshots(dir.path()), {
        let mut both = vec![a, b];
        both.sort();
        both
    });
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "no partial file left: {left:?}");
    for snapshot in emag_sync::backup::snapshots(dir.path()) {
        let copy = storage::Store::open(&format!("sqlite://{}", snapshot.display()))
            .await
            .expect("open snapshot");
        assert_eq!(copy.count_offers("main").await.expect("count"), (250, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_accounts_are_skipped_and_offer_syncs_take_one_snapshot_per_period() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let backups = tempfile::tempdir().expect("dir");
    let mut scheduler = offers_with_snapshots(&app, backups.path());
    assert!(app.store.set_paused("fbe", true).await.expect("pause"));
    let now = storage::now_ms();

    let first = scheduler.tick(now).await.expect("tick");
    assert_eq!(
        first,
        vec![("main".into(), SyncKind::Offers, RunTrigger::Schedule)],
        "fbe is paused"
    );
    scheduler.wait_idle().await;
    assert_eq!(
        emag_sync::backup::snapshots(backups.path()).len(),
        1,
        "a snapshot before the offer sync"
    );

    assert!(app.store.set_paused("fbe", false).await.expect("resume"));
    let second = scheduler.tick(now).await.expect("tick");
    assert_eq!(
        second,
        vec![("fbe".into(), SyncKind::Offers, RunTrigger::Schedule)]
    );
    scheduler.wait_idle().await;
    assert_eq!(
        emag_sync::backup::snapshots(backups.path()).len(),
        1,
        "at most one snapshot per period"
    );
    // The snapshot is a readable database holding what was synced before it.
    let snapshot = &emag_sync::backup::snapshots(backups.path())[0];
    let copy = storage::Store::open(&format!("sqlite://{}", snapshot.display()))
        .await
        .expect("open snapshot");
    assert_eq!(
        copy.count_offers("main").await.expect("count"),
        (0, 0),
        "taken before main's first sync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_command_keeps_the_newest_snapshots() {
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDb::sqlite();
    let run = |_: ()| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_emag-sync"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db.url)
            .env("EMAG_BACKUP_DIR", dir.path().join("backups"))
            .env("EMAG_BACKUP_KEEP", "2")
            .current_dir(dir.path())
            .arg("backup");
        c
    };
    for _ in 0..3 {
        let out = run(()).output().await.expect("backup");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("snapshot written"));
    }
    assert_eq!(
        emag_sync::backup::snapshots(&dir.path().join("backups")).len(),
        2
    );
}

async fn three_instances_sharing_one_store_run_each_slot_exactly_once(kind: DbKind) {
    let app = TestApp::new(
        kind,
        SimConfig {
            offers_per_account: 150,
            ..SimConfig::default()
        },
    )
    .await;
    let policy = policy();
    let plan = vec![
        schedule("main", SyncKind::Offers),
        schedule("main", SyncKind::Reference),
        schedule("fbe", SyncKind::Offers),
        schedule("fbe", SyncKind::Orders),
    ];
    let mut instances: Vec<Scheduler> = (0..3)
        .map(|_| Scheduler::new(app.ctx.clone(), app.accounts.clone(), plan.clone(), policy))
        .collect();
    let now = storage::now_ms();

    // Every instance ticks at the same instant, round after round, until all is idle.
    for _ in 0..4 {
        let [a, b, c] = &mut instances[..] else {
            unreachable!()
        };
        let (ra, rb, rc) = tokio::join!(a.tick(now), b.tick(now), c.tick(now));
        ra.expect("tick");
        rb.expect("tick");
        rc.expect("tick");
        for s in instances.iter_mut() {
            s.wait_idle().await;
        }
    }

    let runs = app
        .store
        .list_runs(&storage::RunFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("runs");
    for (account, kind) in [
        ("main", SyncKind::Offers),
        ("main", SyncKind::Reference),
        ("fbe", SyncKind::Offers),
        ("fbe", SyncKind::Orders),
    ] {
        let of: Vec<_> = runs
            .iter()
            .filter(|r| r.account == account && r.kind == kind)
            .collect();
        assert_eq!(
            of.len(),
            1,
            "{account}/{kind}: one run for the slot: {of:?}"
        );
        assert_eq!(of[0].state, domain::RunState::Succeeded);
    }
    // One account never runs two things at once, whichever instance started them.
    for account in ["main", "fbe"] {
        let of: Vec<_> = runs.iter().filter(|r| r.account == account).collect();
        assert_eq!(of.len(), 2);
        let (x, y) = (of[0], of[1]);
        assert!(
            x.started_at >= y.finished_at || y.started_at >= x.finished_at,
            "{account}: overlapping runs {x:?} {y:?}"
        );
    }
    app.assert_offers_match("fbe").await;
}

/// Starts main's offer run of slot 0 under `holder` (a lease of two minutes, heartbeat now),
/// as a scheduler would.
async fn scheduled_offers_run(app: &TestApp, holder: &str) -> storage::ActiveRun {
    let begun = app
        .store
        .begin_run(
            &storage::RunRequest {
                account: "main",
                kind: SyncKind::Offers,
                trigger: RunTrigger::Schedule,
                full_scan: false,
                slot: Some(0),
                holder,
                stale_after_ms: 120_000,
            },
            &|_| true,
        )
        .await
        .expect("begin");
    let storage::BeginRun::Started(run) = begun else {
        panic!("{begun:?}")
    };
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_left_running_by_a_killed_process_is_resumed_by_the_next_tick() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    // A holder on this host whose process no longer exists.
    let mut gone = std::process::Command::new("true").spawn().expect("spawn");
    let dead_pid = gone.id();
    gone.wait().expect("wait");
    let host = emag_sync::holder_id()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let dead_holder = format!("{host}:{dead_pid}:0");
    let dead_run = scheduled_offers_run(&app, &dead_holder).await;
    let policy = policy();
    let mut scheduler = Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![
            schedule("main", SyncKind::Offers),
            schedule("main", SyncKind::Orders),
        ],
        policy,
    );

    let started = scheduler.tick(storage::now_ms()).await.expect("tick");

    assert_eq!(
        started,
        vec![("main".into(), SyncKind::Offers, RunTrigger::Schedule)]
    );
    let reports = scheduler.wait_idle().await;
    assert_eq!(
        reports[0].run_id,
        Some(dead_run.id),
        "the abandoned run itself is continued"
    );
    assert_eq!(reports[0].status, RunStatus::Succeeded);
    let row = app
        .store
        .get_run(dead_run.id)
        .await
        .expect("run")
        .expect("row");
    assert_eq!(row.attempt, 2);
    assert_eq!(
        row.reclaimed_from.as_deref(),
        Some(dead_holder.as_str()),
        "shown as reclaimed, from whom"
    );
    assert_eq!(app.store.reclaimed_runs(0).await.expect("count"), 1);
    app.assert_offers_match("main").await;
}

/// Found by the chaos harness (an immediate PostgreSQL restart as a run ended): the run failed,
/// its end could not be recorded while the server was down, and its row stayed "running"
/// under this live process's own holder, heartbeat fresh — so the account waited for the
/// lease to expire (30 s) although nobody would ever write that run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_this_process_left_running_is_taken_over_at_once_not_when_its_lease_expires() {
    // Arrange: main's offer run running under this process's holder, heartbeat now, a lease
    // of two minutes, and nothing of this process executing it.
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let left = scheduled_offers_run(&app, &app.ctx.holder).await;
    let mut scheduler = Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![
            schedule("main", SyncKind::Offers),
            schedule("main", SyncKind::Orders),
        ],
        policy(),
    );

    // Act
    let started = scheduler.tick(storage::now_ms()).await.expect("tick");

    // Assert: the left run is resumed by the first tick, the account's other kind waits
    assert_eq!(
        started,
        vec![("main".into(), SyncKind::Offers, RunTrigger::Schedule)]
    );
    let reports = scheduler.wait_idle().await;
    assert_eq!(reports[0].run_id, Some(left.id), "the left run itself");
    assert_eq!(reports[0].status, RunStatus::Succeeded, "{:?}", reports[0]);
    let row = app.store.get_run(left.id).await.expect("run").expect("row");
    assert_eq!(row.attempt, 2);
    app.assert_offers_match("main").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_this_process_executes_is_not_claimed_twice_by_it() {
    // Arrange: main's offer run executing in this process, stopped mid-scan by a slow answer
    let app = TestApp::new(
        DbKind::Sqlite,
        SimConfig {
            offers_per_account: 300,
            faults: emag_sim::FaultPlan {
                latency_ms: 60_000,
                accounts: vec!["main".into()],
                ..emag_sim::FaultPlan::default()
            },
            ..SimConfig::default()
        },
    )
    .await;
    let ctx = app.ctx.clone();
    let main = |app: &TestApp| {
        app.accounts
            .iter()
            .find(|a| a.name() == "main")
            .cloned()
            .expect("account main")
    };
    let account = main(&app);
    let first = tokio::spawn(async move {
        emag_sync::sync::run_sync_for_slot(
            &ctx,
            &account,
            SyncKind::Offers,
            RunTrigger::Manual,
            false,
            None,
        )
        .await
    });
    crate::support::bounded("the first run's claim", async {
        while !app.ctx.runs_here.contains("main", SyncKind::Offers) {
            tokio::task::yield_now().await;
        }
    })
    .await;

    // Act: the same process asks for the same run again
    let second = emag_sync::sync::run_sync_for_slot(
        &app.ctx,
        &main(&app),
        SyncKind::Offers,
        RunTrigger::Manual,
        false,
        None,
    )
    .await;

    // Assert
    assert_eq!(second.status, RunStatus::Busy, "{second:?}");
    first.abort();
}

/// Found by the full suite on a loaded machine (the stop test above saw attempt 3): a stopping
/// scheduler's run ended interrupted, its end woke the loop, and the tick resumed that very
/// run after the stop was asked for — one more claim and request while shutting down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_asked_to_stop_starts_nothing_not_even_the_run_it_just_interrupted() {
    // Arrange: main's offer run interrupted by this process's stop, and a stop asked for.
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let mut ctx = app.ctx.clone();
    ctx.cancel = tokio_util::sync::CancellationToken::new();
    let run = scheduled_offers_run(&app, &ctx.holder).await;
    app.store
        .interrupt_run(&run, &domain::RunCounts::default(), "stopped on request")
        .await
        .expect("interrupt");
    ctx.cancel.cancel();
    let mut scheduler = Scheduler::new(
        ctx,
        app.accounts.clone(),
        vec![
            schedule("main", SyncKind::Offers),
            schedule("fbe", SyncKind::Offers),
        ],
        policy(),
    );

    // Act
    let started = scheduler.tick(storage::now_ms()).await.expect("tick");

    // Assert: nothing started, the interrupted run waits for the next scheduler.
    assert!(started.is_empty(), "{started:?}");
    let row = app.store.get_run(run.id).await.expect("run").expect("row");
    assert_eq!((row.state, row.attempt), (domain::RunState::Interrupted, 1));
    let runs = app
        .store
        .list_runs(&storage::RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1, "no run of fbe either: {runs:?}");
}
