//! Alerts in real `start` processes: a channel that hangs or fails does not slow syncing and
//! its notices arrive once it answers; a SIGKILL between an incident's opening and its
//! delivery still delivers it, once, after the restart; two instances sharing PostgreSQL tell
//! each incident and its recovery once between them.

use std::collections::HashMap;
use std::process::Stdio;

use domain::{IncidentState, RunState, SyncKind};
use emag_sim::{FaultPlan, RunningSim, SimConfig, Simulator};
use storage::Store;
use test_support::{DbKind, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::watch;

use crate::support::{binary, bounded, sim_vars};
use crate::webhook::{Answer, Webhook};

const FBE_REFUSED: &str = "fbe — access_refused";

/// The variables of a `start` against `sim` on `url` telling `hook`, quickly.
fn vars(
    sim: &RunningSim,
    url: &str,
    hook: &Webhook,
    dir: &std::path::Path,
) -> HashMap<String, String> {
    let mut v = sim_vars(sim, url);
    for (k, val) in [
        ("EMAG_ALERT_WEBHOOK_URL", hook.url.as_str()),
        ("EMAG_ALERT_LANGUAGE", "en"),
        ("EMAG_ALERT_EVALUATE_EVERY", "0.2"),
        ("EMAG_ALERT_SEND_TIMEOUT", "1"),
        ("EMAG_ALERT_RETRY_DELAY", "0.2"),
        ("EMAG_LEASE_TTL", "10"),
    ] {
        v.insert(k.into(), val.into());
    }
    v.insert(
        "EMAG_PID_FILE".into(),
        dir.join("emag-sync.pid").display().to_string(),
    );
    v
}

/// A `start` process and the lines of its log (debug level), as they come.
struct Started {
    child: Child,
    log: watch::Receiver<Vec<String>>,
}

impl Started {
    /// Waits until the log holds at least `n` lines with `needle` (counting from the start).
    async fn logged(&self, needle: &str, n: usize) {
        let mut log = self.log.clone();
        bounded(
            &format!("{n} log line(s) with {needle:?}"),
            log.wait_for(|lines| lines.iter().filter(|l| l.contains(needle)).count() >= n),
        )
        .await
        .expect("the log reader lives as long as the process");
    }

    /// How many log lines hold `needle` so far.
    fn count(&self, needle: &str) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

/// `start --no-dashboard` in the foreground, once it printed its readiness line.
async fn start(vars: &HashMap<String, String>, dir: &std::path::Path) -> Started {
    let mut child = binary(vars, dir)
        .env("EMAG_LOG_LEVEL", "debug")
        .env("NO_COLOR", "1")
        .args(["start", "--no-dashboard"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = bounded("the readiness line", lines.next_line())
        .await
        .expect("read")
        .expect("a readiness line");
    assert!(ready.contains("scheduler ready"), "{ready}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (tx, log) = watch::channel(Vec::new());
    let mut errors = BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = errors.next_line().await {
            tx.send_modify(|lines| lines.push(line));
        }
    });
    Started { child, log }
}

/// SIGTERM, and the exit.
async fn stop(started: Started) {
    let mut child = started.child;
    let pid = child.id().expect("pid").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let status = bounded("the stop", child.wait()).await.expect("wait");
    assert!(status.success(), "{status:?}");
}

/// Waits for run `id` of `process` to end (its "run ended" line is logged once the outcome is
/// stored); returns its row.
async fn finished(process: &Started, store: &Store, id: i64) -> storage::RunRow {
    let mut log = process.log.clone();
    bounded(
        "the run's end",
        log.wait_for(|lines| {
            lines
                .iter()
                .any(|l| l.contains("run ended") && l.contains(&format!("run.id={id} ")))
        }),
    )
    .await
    .expect("log");
    store.get_run(id).await.expect("read").expect("the run")
}

/// Queues a manual run of (account, kind) for the running scheduler; returns its id.
async fn queue(store: &Store, account: &str, kind: SyncKind) -> i64 {
    match store
        .enqueue_run(account, kind, false)
        .await
        .expect("queue")
    {
        storage::Enqueued::Queued { run_id } | storage::Enqueued::AlreadyActive { run_id, .. } => {
            run_id
        }
    }
}

/// Queues main's reference, offers and orders one after the other for the running scheduler;
/// returns how long each ran (ms) and its requests.
async fn three_runs_of_main(process: &Started, store: &Store) -> Vec<(SyncKind, i64, u64)> {
    let mut took = Vec::new();
    for kind in [SyncKind::Reference, SyncKind::Offers, SyncKind::Orders] {
        let id = queue(store, "main", kind).await;
        let run = finished(process, store, id).await;
        assert_eq!(run.state, RunState::Succeeded, "{run:?}");
        took.push((
            kind,
            run.finished_at.unwrap_or(0) - run.started_at.unwrap_or(0),
            run.counts.requests,
        ));
    }
    took
}

/// Waits until each of `a` and `b` has evaluated the rules `n` more times.
async fn more_evaluations(a: &Started, b: &Started, n: usize) {
    let (from_a, from_b) = (a.count("alerts evaluated"), b.count("alerts evaluated"));
    a.logged("alerts evaluated", from_a + n).await;
    b.logged("alerts evaluated", from_b + n).await;
}

/// Waits until nothing is pending in the outbox (every notice, in its backoff or not, is out):
/// read again after each delivery round `process` logs.
async fn drained(process: &Started, store: &Store) {
    loop {
        let rounds = process.count("alerts delivered");
        let counts = store.outbox_counts().await.expect("counts");
        if counts.iter().all(|(_, c)| c.pending == 0) {
            return;
        }
        process.logged("alerts delivered", rounds + 1).await;
    }
}

fn about<'a>(texts: &'a [String], needle: &str) -> Vec<&'a String> {
    texts.iter().filter(|t| t.contains(needle)).collect()
}

/// A channel that hangs, then fails, then answers: the scheduler's runs go on meanwhile (three
/// queued runs of main end while a send hangs), and the notice arrives once when it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_then_failing_channel_never_holds_up_syncing_and_its_notice_arrives_once() {
    let sim = Simulator::spawn(SimConfig::default()).await.expect("sim");
    let hook = Webhook::start(Answer::Hold).await;

    // The pace without any alert channel: the same three runs in a process of their own.
    let (base_db, base_dir) = (TestDb::sqlite(), tempfile::tempdir().expect("dir"));
    let mut base_vars = vars(&sim, &base_db.url, &hook, base_dir.path());
    base_vars.remove("EMAG_ALERT_WEBHOOK_URL");
    base_vars.insert("EMAG_FBE_API_PASSWORD".into(), "not-the-password".into());
    let child = start(&base_vars, base_dir.path()).await;
    let base_store = Store::open(&base_db.url).await.expect("store");
    let baseline = three_runs_of_main(&child, &base_store).await;
    stop(child).await;

    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().expect("dir");
    let mut vars = vars(&sim, &db.url, &hook, dir.path());
    vars.insert("EMAG_FBE_API_PASSWORD".into(), "not-the-password".into());
    let child = start(&vars, dir.path()).await;
    let store = Store::open(&db.url).await.expect("store");
    hook.received_at_least(1).await;
    let took = three_runs_of_main(&child, &store).await;
    // The channel held every send all along (each cut by the 1 s timeout and tried again).
    assert!(hook.taken().is_empty(), "{:?}", hook.taken());
    eprintln!(
        "runs of main (kind, ms, requests) without a channel: {baseline:?}; while the channel hung: {took:?}; \
         sends tried meanwhile: {}",
        hook.received().len()
    );

    let before = hook.received().len();
    hook.set(Answer::Fail);
    hook.received_at_least(before + 2).await;
    hook.set(Answer::Take);
    hook.taken_about(FBE_REFUSED).await;
    drained(&child, &store).await;
    stop(child).await;
    let taken = hook.taken();
    assert_eq!(about(&taken, FBE_REFUSED).len(), 1, "{taken:#?}");
    assert!(about(&hook.received(), FBE_REFUSED).len() >= 3);
    let counts = store.outbox_counts().await.expect("counts");
    let webhook = counts[0].1;
    assert_eq!(webhook.pending, 0, "{counts:?}");
    assert!(webhook.failed_attempts >= 2, "{counts:?}");
}

/// SIGKILL while the first notice is being sent (the channel holds it): after a restart the
/// notice is sent again and arrives once; nothing else is told twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_an_incident_and_its_delivery_still_delivers_it_once_after_restart() {
    let sim = Simulator::spawn(SimConfig::default()).await.expect("sim");
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().expect("dir");
    let hook = Webhook::start(Answer::Hold).await;
    let mut vars = vars(&sim, &db.url, &hook, dir.path());
    vars.insert("EMAG_FBE_API_PASSWORD".into(), "not-the-password".into());
    // Long enough that the kill lands while the send is held.
    vars.insert("EMAG_ALERT_SEND_TIMEOUT".into(), "3".into());
    let mut child = start(&vars, dir.path()).await;
    hook.received_at_least(1).await;
    child.child.start_kill().expect("SIGKILL");
    bounded("the killed process", child.child.wait())
        .await
        .expect("wait");

    let store = Store::open(&db.url).await.expect("store");
    let open = store.open_incidents().await.expect("incidents");
    assert!(
        open.iter()
            .any(|i| i.key == "access_refused:fbe:-" && i.state == IncidentState::Firing),
        "{open:#?}"
    );
    let counts = store.outbox_counts().await.expect("counts");
    assert_eq!(counts[0].1.delivered, 0, "{counts:?}");
    assert!(counts[0].1.pending >= 1, "{counts:?}");

    hook.set(Answer::Take);
    let child = start(&vars, dir.path()).await;
    hook.taken_about(FBE_REFUSED).await;
    drained(&child, &store).await;
    stop(child).await;
    let taken = hook.taken();
    assert_eq!(about(&taken, FBE_REFUSED).len(), 1, "{taken:#?}");
    // The held attempt reached the receiver but was never answered: the receiver saw the
    // notice twice and took it once.
    assert_eq!(about(&hook.received(), FBE_REFUSED).len(), 2);
    let mut seen = std::collections::HashSet::new();
    for t in &taken {
        assert!(seen.insert(t), "told twice: {t}");
    }
}

/// Two `start` processes ("two machines") on one PostgreSQL database evaluate the same
/// incident every 0.2 s: one notice and one recovery notice between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_tell_an_incident_and_its_recovery_once_between_them() {
    let sim = Simulator::spawn(SimConfig::default()).await.expect("sim");
    sim.sim.set_faults(FaultPlan {
        bad_credentials: true,
        accounts: vec!["fbe".into()],
        ..FaultPlan::default()
    });
    let db = TestDb::new(DbKind::Postgres).await;
    let hook = Webhook::start(Answer::Take).await;
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut vars_a = vars(&sim, &db.url, &hook, dir_a.path());
    vars_a.insert("EMAG_INSTANCE_NAME".into(), "machine-a".into());
    let mut vars_b = vars(&sim, &db.url, &hook, dir_b.path());
    vars_b.insert("EMAG_INSTANCE_NAME".into(), "machine-b".into());
    let a = start(&vars_a, dir_a.path()).await;
    let b = start(&vars_b, dir_b.path()).await;
    let store = Store::open(&db.url).await.expect("store");
    hook.taken_about(FBE_REFUSED).await;
    let first = store
        .open_incidents()
        .await
        .expect("incidents")
        .into_iter()
        .find(|i| i.key == "access_refused:fbe:-")
        .expect("the incident");
    // Both keep evaluating it: ten more evaluations each.
    more_evaluations(&a, &b, 10).await;

    // eMAG accepts fbe again; a queued run clears the refusal.
    sim.sim.set_faults(FaultPlan::default());
    let run = queue(&store, "fbe", SyncKind::Reference).await;
    let ended = tokio::select! {
        r = finished(&a, &store, run) => r,
        r = finished(&b, &store, run) => r,
    };
    assert_eq!(ended.state, RunState::Succeeded);
    let mut arrivals = hook.arrivals();
    bounded(
        "the recovery notice",
        arrivals.wait_for(|_| about(&hook.taken(), FBE_REFUSED).len() >= 2),
    )
    .await
    .expect("receiver alive");
    // Five more evaluations by each, then stop.
    more_evaluations(&a, &b, 5).await;
    stop(a).await;
    stop(b).await;
    let taken = hook.taken();
    let fbe = about(&taken, FBE_REFUSED);
    assert_eq!(fbe.len(), 2, "{taken:#?}");
    assert!(
        fbe[0].contains("Problem") && fbe[1].contains("Resolved"),
        "{fbe:#?}"
    );
    let mut seen = std::collections::HashSet::new();
    for t in &taken {
        assert!(seen.insert(t), "told twice: {t}");
    }
    let incident = store.incident(first.id).await.expect("read").expect("row");
    assert_eq!(incident.state, IncidentState::Resolved);
}
