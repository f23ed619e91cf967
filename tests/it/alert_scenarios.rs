//! Each alert rule from a scenario driven through the simulator and the real scheduler, told
//! through a real webhook receiver, and resolved (with its recovery notice) when the cause is
//! removed: refused credentials, a 5xx storm (failures in a row, the error burst, and the
//! escalation of what still fails), rate limiting, a paused account's stale data, a stopped
//! scheduler, and a run taken over from a dead instance.

use std::time::Duration;

use domain::{AlertRule, IncidentState, RunTrigger, Severity, SyncKind};
use emag_sim::{FaultPlan, SimConfig};
use emag_sync::alerts::{deliver_due, evaluate_at, evaluate_once};
use emag_sync::config::CatchUp;
use emag_sync::scheduler::{Policy, Schedule, Scheduler};
use emag_sync::sync::RunStatus;
use storage::IncidentRow;
use test_support::DbKind;

use crate::support::{bounded, on_both_backends, TestApp};
use crate::webhook::{Answer, Webhook};

on_both_backends!(
    refused_credentials_are_critical_at_once_and_resolve_when_emag_accepts_them,
    a_5xx_storm_fires_failures_and_the_error_burst_escalates_what_still_fails_and_all_resolve,
    rate_limiting_fires_above_its_threshold_and_resolves_an_hour_later,
    a_paused_accounts_stale_data_fires_and_resolves_when_it_is_resumed,
    a_stopped_scheduler_fires_and_resolves_when_one_runs_again,
    a_run_taken_over_from_a_dead_instance_is_told_once_as_info_without_a_recovery,
    a_run_left_by_a_dead_instance_fires_until_it_is_taken_over_and_finished,
);

const HOUR: i64 = 3_600_000;

fn policy() -> Policy {
    Policy {
        retry_delay: Duration::from_secs(5),
        max_retries: 3,
        catch_up: CatchUp::Once,
    }
}

fn schedule(account: &str, kind: SyncKind) -> Schedule {
    Schedule {
        account: account.into(),
        kind,
        interval: Duration::from_secs(1800),
        offset: Duration::from_secs(7),
        cron: None,
        manual_only: false,
    }
}

/// The app with the webhook receiver as its only channel, messages in English, and `extra`.
async fn app_with(kind: DbKind, hook: &Webhook, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("EMAG_ALERT_WEBHOOK_URL", hook.url.as_str()),
        ("EMAG_ALERT_LANGUAGE", "en"),
    ];
    vars.extend_from_slice(extra);
    TestApp::with_vars(kind, SimConfig::default(), &vars).await
}

/// One tick of `scheduler` at `now`, then every run it started to its end.
async fn tick(scheduler: &mut Scheduler, now: i64) -> Vec<emag_sync::sync::RunReport> {
    scheduler.tick(now).await.expect("tick");
    bounded("the runs of a tick", scheduler.wait_idle()).await
}

/// Sends everything due, up to two hours ahead: the latest moment the evaluations of these
/// scenarios are made at (`evaluate_at`), whose notices are due at that moment.
async fn deliver(app: &TestApp) {
    let http = reqwest::Client::new();
    loop {
        let done = deliver_due(&app.config, &app.store, &http, storage::now_ms() + 2 * HOUR)
            .await
            .expect("deliver");
        assert_eq!(done.failed, 0, "the receiver takes every notice");
        if done.sent == 0 {
            return;
        }
    }
}

/// The webhook texts about `rule` (and `account`, when given).
fn told(hook: &Webhook, rule: AlertRule, account: Option<&str>) -> Vec<String> {
    hook.taken()
        .into_iter()
        .filter(|t| t.contains(&format!("— {rule}*")))
        .filter(|t| account.is_none_or(|a| t.contains(&format!(": {a} — "))))
        .collect()
}

async fn incident(app: &TestApp, key: &str) -> Option<IncidentRow> {
    let all = app.store.incidents(1000).await.expect("incidents");
    all.into_iter().find(|i| i.key == key)
}

async fn refused_credentials_are_critical_at_once_and_resolve_when_emag_accepts_them(kind: DbKind) {
    let hook = Webhook::start(Answer::Take).await;
    let app = app_with(kind, &hook, &[]).await;
    app.sim.sim.set_faults(FaultPlan {
        bad_credentials: true,
        accounts: vec!["fbe".into()],
        ..FaultPlan::default()
    });
    let mut scheduler = Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![schedule("fbe", SyncKind::Offers)],
        policy(),
    );
    let now = storage::now_ms();
    let reports = tick(&mut scheduler, now).await;
    assert!(
        reports.iter().all(|r| r.status != RunStatus::Succeeded),
        "{reports:?}"
    );
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let opened = told(&hook, AlertRule::AccessRefused, Some("fbe"));
    assert_eq!(opened.len(), 1, "{:#?}", hook.taken());
    assert!(
        opened[0].starts_with("*[CRITICAL] Problem"),
        "{}",
        opened[0]
    );
    assert!(
        opened[0].contains("EMAG_FBE_API"),
        "names the variables: {}",
        opened[0]
    );

    // eMAG accepts the credentials again; the scheduler's next run clears the refusal.
    app.sim.sim.set_faults(FaultPlan::default());
    let reports = tick(&mut scheduler, now + HOUR).await;
    assert!(
        reports.iter().any(|r| r.status == RunStatus::Succeeded),
        "{reports:?}"
    );
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let all = told(&hook, AlertRule::AccessRefused, Some("fbe"));
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[1].starts_with("*[CRITICAL] Resolved"), "{}", all[1]);
    let i = incident(&app, "access_refused:fbe:-")
        .await
        .expect("incident");
    assert_eq!(
        (i.state, i.resolved_by.as_deref()),
        (IncidentState::Resolved, Some("auto"))
    );
}

async fn a_5xx_storm_fires_failures_and_the_error_burst_escalates_what_still_fails_and_all_resolve(
    kind: DbKind,
) {
    let hook = Webhook::start(Answer::Take).await;
    let app = app_with(
        kind,
        &hook,
        &[
            ("EMAG_ALERT_CONSECUTIVE_FAILURES", "2"),
            ("EMAG_ALERT_ERRORS_PER_HOUR", "2"),
            ("EMAG_ALERT_ESCALATE_AFTER", "10"),
            ("EMAG_ALERT_ESCALATE_FAILURES", "2"),
        ],
    )
    .await;
    app.sim.sim.set_faults(FaultPlan {
        server_error_per_mille: 1000,
        accounts: vec!["main".into()],
        ..FaultPlan::default()
    });
    // Every failed run is retried (the next slot would be computed from the real start of
    // the last run, which this test's clock has left behind).
    let retries = Policy {
        max_retries: 20,
        ..policy()
    };
    let mut scheduler = Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![schedule("main", SyncKind::Offers)],
        retries,
    );
    let now = storage::now_ms();
    // Each tick a minute apart is past the retry backoff: a retry runs and fails.
    let mut failed = 0;
    let mut minute = 0;
    while failed < 3 {
        let reports = tick(&mut scheduler, now + minute * 60_000).await;
        failed += reports
            .iter()
            .filter(|r| r.status == RunStatus::Failed)
            .count();
        minute += 1;
        assert!(minute < 30, "the storm never failed three runs");
    }
    let e = evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    assert!(!e.opened.is_empty());
    deliver(&app).await;
    let failures = told(&hook, AlertRule::ConsecutiveFailures, Some("main"));
    assert_eq!(failures.len(), 1, "{:#?}", hook.taken());
    assert!(
        failures[0].starts_with("*[WARNING] Problem"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0].contains("3 failed runs in a row"),
        "{}",
        failures[0]
    );
    let burst = told(&hook, AlertRule::ErrorBurst, None);
    assert_eq!(burst.len(), 1, "{:#?}", hook.taken());

    // Still failing: two more failed runs, and ten minutes later the incidents escalate —
    // once, whatever the number of evaluations.
    let mut more = 0;
    while more < 2 {
        let reports = tick(&mut scheduler, now + minute * 60_000).await;
        more += reports
            .iter()
            .filter(|r| r.status == RunStatus::Failed)
            .count();
        minute += 1;
        assert!(minute < 60, "the storm stopped failing runs");
    }
    let later = storage::now_ms() + 11 * 60_000;
    let e = evaluate_at(&app.config, &app.store, later)
        .await
        .expect("evaluate");
    for _ in 0..5 {
        let again = evaluate_at(&app.config, &app.store, later + 1_000)
            .await
            .expect("evaluate");
        assert!(again.escalated.is_empty(), "escalated once only");
    }
    let escalated: Vec<i64> = e.escalated;
    let failing = incident(&app, "consecutive_failures:main:offers")
        .await
        .expect("incident");
    assert!(escalated.contains(&failing.id), "{escalated:?}");
    assert_eq!(failing.severity, Severity::Critical);
    assert!(failing.escalated_at.is_some());
    deliver(&app).await;
    let failures = told(&hook, AlertRule::ConsecutiveFailures, Some("main"));
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert!(
        failures[1].starts_with("*[CRITICAL] Escalated"),
        "{}",
        failures[1]
    );

    // The storm ends: the next run succeeds, the failures resolve at once; the burst when
    // its hour has passed.
    app.sim.sim.set_faults(FaultPlan::default());
    let reports = tick(&mut scheduler, now + 2 * HOUR).await;
    assert!(
        reports.iter().any(|r| r.status == RunStatus::Succeeded),
        "{reports:?}"
    );
    evaluate_at(&app.config, &app.store, later + 2_000)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let failures = told(&hook, AlertRule::ConsecutiveFailures, Some("main"));
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(
        failures[2].starts_with("*[CRITICAL] Resolved"),
        "{}",
        failures[2]
    );
    evaluate_at(&app.config, &app.store, later + HOUR)
        .await
        .expect("evaluate");
    deliver(&app).await;
    // The burst escalated with the failures (an incident about no account counts the failed
    // runs of all), so its recovery is critical too.
    let burst = told(&hook, AlertRule::ErrorBurst, None);
    assert_eq!(burst.len(), 3, "{burst:#?}");
    assert!(
        burst[1].starts_with("*[CRITICAL] Escalated"),
        "{}",
        burst[1]
    );
    assert!(burst[2].starts_with("*[CRITICAL] Resolved"), "{}", burst[2]);
}

async fn rate_limiting_fires_above_its_threshold_and_resolves_an_hour_later(kind: DbKind) {
    let hook = Webhook::start(Answer::Take).await;
    let app = app_with(kind, &hook, &[("EMAG_ALERT_RATE_LIMIT_WAITS", "2")]).await;
    // Another program spends main's budget: three answers in a row are 429.
    app.sim.sim.set_faults(FaultPlan {
        rate_limited_next: 3,
        accounts: vec!["main".into()],
        ..FaultPlan::default()
    });
    let mut scheduler = Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![schedule("main", SyncKind::Reference)],
        policy(),
    );
    let reports = tick(&mut scheduler, storage::now_ms()).await;
    assert!(
        reports.iter().all(|r| r.status == RunStatus::Succeeded),
        "429s are waited out, not failures: {reports:?}"
    );
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let limited = told(&hook, AlertRule::RateLimited, Some("main"));
    assert_eq!(limited.len(), 1, "{:#?}", hook.taken());
    assert!(
        limited[0].contains("3 times in the last hour"),
        "{}",
        limited[0]
    );
    // An hour without a 429.
    evaluate_at(&app.config, &app.store, storage::now_ms() + HOUR + 60_000)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let limited = told(&hook, AlertRule::RateLimited, Some("main"));
    assert_eq!(limited.len(), 2, "{limited:#?}");
    assert!(limited[1].contains("Resolved"), "{}", limited[1]);
}

async fn a_paused_accounts_stale_data_fires_and_resolves_when_it_is_resumed(kind: DbKind) {
    let hook = Webhook::start(Answer::Take).await;
    let app = app_with(kind, &hook, &[]).await;
    let mut scheduler = Scheduler::new(
        app.ctx.clone(),
        app.accounts.clone(),
        vec![schedule("fbe", SyncKind::Offers)],
        policy(),
    );
    let reports = tick(&mut scheduler, storage::now_ms()).await;
    assert!(reports.iter().all(|r| r.status == RunStatus::Succeeded));
    // Paused, and two hours pass by the data's clock.
    app.store.set_paused("fbe", true).await.expect("pause");
    let pool = sqlx::AnyPool::connect(&app._db.url).await.expect("connect");
    sqlx::query(
        "UPDATE runs SET started_at = started_at - 7200000, finished_at = finished_at - 7200000, \
         created_at = created_at - 7200000",
    )
    .execute(&pool)
    .await
    .expect("age the runs");
    pool.close().await;
    let reports = tick(&mut scheduler, storage::now_ms()).await;
    assert!(
        reports.is_empty(),
        "a paused account is not synced: {reports:?}"
    );
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let stale = told(&hook, AlertRule::StaleData, Some("fbe"));
    let offers: Vec<&String> = stale.iter().filter(|t| t.contains("fbe offers")).collect();
    assert_eq!(offers.len(), 1, "{stale:#?}");
    assert!(offers[0].starts_with("*[WARNING] Problem"), "{}", offers[0]);
    assert!(offers[0].contains("emag-sync resume fbe"), "{}", offers[0]);

    app.store.set_paused("fbe", false).await.expect("resume");
    let reports = tick(&mut scheduler, storage::now_ms()).await;
    assert!(
        reports.iter().any(|r| r.status == RunStatus::Succeeded),
        "{reports:?}"
    );
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let i = incident(&app, "stale_data:fbe:offers")
        .await
        .expect("incident");
    assert_eq!(i.state, IncidentState::Resolved);
    let stale = told(&hook, AlertRule::StaleData, Some("fbe"));
    assert!(
        stale
            .iter()
            .any(|t| t.starts_with("*[WARNING] Resolved") && t.contains("fbe offers")),
        "{stale:#?}"
    );
}

/// `Scheduler::run` in this process until `cancel`; returns once it is ready.
async fn run_scheduler(
    app: &TestApp,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut ctx = app.ctx.clone();
    ctx.cancel = tokio_util::sync::CancellationToken::new();
    ctx.holder = format!("{}:{}", ctx.holder, rand::random::<u32>());
    let cancel = ctx.cancel.clone();
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let scheduler = Scheduler::new(
        ctx,
        app.accounts.clone(),
        vec![schedule("main", SyncKind::Reference)],
        policy(),
    )
    .on_ready(move || {
        let _ = ready.send(());
    });
    let task = tokio::spawn(scheduler.run());
    bounded("the scheduler's first tick", is_ready)
        .await
        .expect("ready");
    (cancel, task)
}

async fn a_stopped_scheduler_fires_and_resolves_when_one_runs_again(kind: DbKind) {
    let hook = Webhook::start(Answer::Take).await;
    let app = app_with(kind, &hook, &[]).await;
    let (cancel, task) = run_scheduler(&app).await;
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    assert!(incident(&app, "scheduler_down:-:-").await.is_none());
    cancel.cancel();
    bounded("the scheduler's stop", task)
        .await
        .expect("join")
        .expect("run");
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let down = told(&hook, AlertRule::SchedulerDown, None);
    assert_eq!(down.len(), 1, "{:#?}", hook.taken());
    assert!(down[0].starts_with("*[CRITICAL] Problem"), "{}", down[0]);
    assert!(down[0].contains("emag-sync start"), "{}", down[0]);

    let (cancel, task) = run_scheduler(&app).await;
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let down = told(&hook, AlertRule::SchedulerDown, None);
    assert_eq!(down.len(), 2, "{down:#?}");
    assert!(down[1].starts_with("*[CRITICAL] Resolved"), "{}", down[1]);
    cancel.cancel();
    bounded("the scheduler's stop", task)
        .await
        .expect("join")
        .expect("run");
}

/// The claim of main's offers (the scheduler's own call) as `holder` makes it.
fn offers_of_main(holder: &str) -> storage::RunRequest<'_> {
    storage::RunRequest {
        account: "main",
        kind: SyncKind::Offers,
        trigger: RunTrigger::Schedule,
        full_scan: false,
        slot: None,
        holder,
        stale_after_ms: 10_000,
    }
}

/// An instance on another machine claims main's offers (and then dies).
async fn claim_offers_of_main(app: &TestApp, holder: &str) {
    let begun = app
        .store
        .begin_run(&offers_of_main(holder), &|_| true)
        .await
        .expect("claim");
    assert!(matches!(begun, storage::BeginRun::Started(_)), "{begun:?}");
}

/// This process takes over the run `dead` left.
async fn take_over_offers_of_main(app: &TestApp, dead: &str) -> storage::ActiveRun {
    let taken = app
        .store
        .begin_run(&offers_of_main(&app.ctx.holder), &|h| h != dead)
        .await
        .expect("take over");
    let storage::BeginRun::Resumed { run, .. } = taken else {
        panic!("not taken over: {taken:?}");
    };
    run
}

async fn a_run_taken_over_from_a_dead_instance_is_told_once_as_info_without_a_recovery(
    kind: DbKind,
) {
    let hook = Webhook::start(Answer::Take).await;
    let app = app_with(kind, &hook, &[("EMAG_ALERT_TAKEOVER_WINDOW", "15")]).await;
    // An instance on another machine claimed main's offers and died; this process's claim
    // (the scheduler's own call) takes the run over.
    let dead = "other-host:4242:dead";
    claim_offers_of_main(&app, dead).await;
    let run = take_over_offers_of_main(&app, dead).await;
    for _ in 0..3 {
        evaluate_once(&app.config, &app.store)
            .await
            .expect("evaluate");
    }
    deliver(&app).await;
    let takeovers = told(&hook, AlertRule::Takeover, Some("main"));
    assert_eq!(takeovers.len(), 1, "{:#?}", hook.taken());
    assert!(
        takeovers[0].starts_with("*[INFO] Problem"),
        "{}",
        takeovers[0]
    );
    assert!(takeovers[0].contains(dead), "{}", takeovers[0]);
    assert!(
        takeovers[0].contains(&format!("run {}", run.id)),
        "{}",
        takeovers[0]
    );
    // Past the window it resolves, silently: there is nothing to recover from.
    evaluate_at(&app.config, &app.store, storage::now_ms() + 16 * 60_000)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let i = incident(&app, "takeover:main:offers")
        .await
        .expect("incident");
    assert_eq!(i.state, IncidentState::Resolved);
    assert_eq!(told(&hook, AlertRule::Takeover, Some("main")).len(), 1);
}

async fn a_run_left_by_a_dead_instance_fires_until_it_is_taken_over_and_finished(kind: DbKind) {
    let hook = Webhook::start(Answer::Take).await;
    // The shortest lease emag-sync accepts: a holder silent for 10 s has left its run.
    let app = app_with(kind, &hook, &[("EMAG_LEASE_TTL", "10")]).await;
    let dead = "other-host:4243:dead";
    claim_offers_of_main(&app, dead).await;
    // Still within its lease: nothing to say.
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    assert!(incident(&app, "stopped_run:main:offers").await.is_none());
    // Eleven seconds of silence (leases are judged by the database's clock: the heartbeat is
    // aged where it is stored).
    let pool = sqlx::AnyPool::connect(&app._db.url).await.expect("connect");
    sqlx::query("UPDATE runs SET heartbeat_at = heartbeat_at - 11000")
        .execute(&pool)
        .await
        .expect("age the heartbeat");
    pool.close().await;
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let stopped = told(&hook, AlertRule::StoppedRun, Some("main"));
    assert_eq!(stopped.len(), 1, "{:#?}", hook.taken());
    assert!(
        stopped[0].starts_with("*[WARNING] Problem"),
        "{}",
        stopped[0]
    );
    assert!(stopped[0].contains(dead), "{}", stopped[0]);

    // A live process takes it over and finishes it.
    let run = take_over_offers_of_main(&app, dead).await;
    app.store
        .finish_run(
            &run,
            &domain::RunOutcome::succeeded(),
            &domain::RunCounts::default(),
            None,
        )
        .await
        .expect("finish");
    evaluate_once(&app.config, &app.store)
        .await
        .expect("evaluate");
    deliver(&app).await;
    let stopped = told(&hook, AlertRule::StoppedRun, Some("main"));
    assert_eq!(stopped.len(), 2, "{stopped:#?}");
    assert!(
        stopped[1].starts_with("*[WARNING] Resolved"),
        "{}",
        stopped[1]
    );
}
