//! Bad input: wrong credentials, blocked IPs, 5xx bursts, malformed answers, timeouts.

use domain::{ErrorClass, SyncKind};
use emag_sim::{FaultPlan, SimConfig};
use emag_sync::sync::RunStatus;
use test_support::DbKind;

use crate::support::{on_both_backends, TestApp};

on_both_backends!(a_wrong_password_fails_clearly_and_keeps_what_was_synced);

async fn a_wrong_password_fails_clearly_and_keeps_what_was_synced(kind: DbKind) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    assert_eq!(
        app.sync("fbe", SyncKind::Offers).await.status,
        RunStatus::Succeeded
    );
    let before = app.store.count_offers("fbe").await.expect("count");

    app.sim.sim.set_faults(FaultPlan {
        bad_credentials: true,
        accounts: vec!["fbe".into()],
        ..FaultPlan::default()
    });
    let failed = app.sync("fbe", SyncKind::Offers).await;

    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error_class, Some(ErrorClass::Auth));
    let message = failed.error.clone().expect("message");
    assert!(message.contains("account fbe"), "{message}");
    assert!(message.contains("EMAG_FBE_API_PASSWORD"), "{message}");
    assert_eq!(
        failed.emag_messages,
        vec!["You are not allowed to use this API.".to_owned()]
    );
    assert_eq!(failed.counts.retries, 0, "credentials are not retried");
    assert_eq!(
        app.store.count_offers("fbe").await.expect("count"),
        before,
        "nothing lost or hidden"
    );
    let run = app
        .store
        .get_run(failed.run_id.expect("run"))
        .await
        .expect("row")
        .expect("run row");
    assert_eq!(run.error_class, Some(ErrorClass::Auth));
    // MAIN is not affected by FBE's credentials.
    assert_eq!(
        app.sync("main", SyncKind::Offers).await.status,
        RunStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_malformed_answers_and_timeouts_are_retried_until_the_run_succeeds() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig {
            rate_limits: false,
            ..SimConfig::default()
        },
        &[("EMAG_API_TIMEOUT", "0.3"), ("EMAG_MAX_RETRIES", "3")],
    )
    .await;
    app.sim.sim.set_faults(FaultPlan {
        server_error_next: 2,
        malformed_next: 1,
        hang_next: 1,
        hang_ms: 5_000,
        ..FaultPlan::default()
    });

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    // The simulator consumes a planned hang together with the fault it hangs before, so
    // the four planned faults show as at least three failed attempts.
    assert!(report.counts.retries >= 3, "{:?}", report.counts);
    app.assert_offers_match("main").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_longer_than_the_retries_fails_the_run_with_the_cause_recorded() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig {
            rate_limits: false,
            ..SimConfig::default()
        },
        &[("EMAG_MAX_RETRIES", "2")],
    )
    .await;
    assert_eq!(
        app.sync("main", SyncKind::Offers).await.status,
        RunStatus::Succeeded
    );
    app.sim.sim.set_faults(FaultPlan {
        server_error_next: 10,
        ..FaultPlan::default()
    });

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.error_class, Some(ErrorClass::Server));
    assert!(
        report
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("HTTP 502"),
        "{:?}",
        report.error
    );
    assert_eq!(report.counts.retries, 2);
    assert_eq!(
        app.store.count_offers("main").await.expect("count"),
        (250, 0),
        "a failed scan removes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_ip_is_named_as_such_and_not_retried() {
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    app.sim.sim.set_faults(FaultPlan {
        ip_blocked: true,
        ..FaultPlan::default()
    });

    let report = app.sync("main", SyncKind::Orders).await;

    assert_eq!(report.error_class, Some(ErrorClass::IpNotWhitelisted));
    assert!(report
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("whitelist"));
    assert_eq!(report.counts.retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_data_fails_over_to_a_healthy_account_but_account_data_never_does() {
    // A fixed encoding: the probe of main (the failover peer) reads one of main's own offers,
    // which the journal check below could not tell from an FBE offer read with main's login.
    let mut app = TestApp::with_vars(
        DbKind::Sqlite,
        SimConfig::default(),
        &[("EMAG_API_ENCODING", "json-data")],
    )
    .await;
    app.ctx.reference_failover = emag_sync::accounts::failover_peers(&app.config);
    app.sim.sim.set_faults(FaultPlan {
        bad_credentials: true,
        accounts: vec!["fbe".into()],
        ..FaultPlan::default()
    });

    let reference = app.sync("fbe", SyncKind::Reference).await;
    let offers = app.sync("fbe", SyncKind::Offers).await;

    assert_eq!(
        reference.status,
        RunStatus::Succeeded,
        "{:?}",
        reference.error
    );
    let note = reference.note.clone().unwrap_or_default();
    assert!(note.contains("through account main"), "{note}");
    assert!(
        app.store
            .count_reference("emag_ro", "vat")
            .await
            .expect("vat")
            > 0
    );
    assert_eq!(
        offers.error_class,
        Some(ErrorClass::Auth),
        "FBE's offers are never read with MAIN's credentials"
    );
    assert_eq!(app.store.count_offers("fbe").await.expect("count"), (0, 0));
    let attention = app
        .store
        .accounts_needing_attention()
        .await
        .expect("attention");
    assert_eq!(attention.len(), 1, "{attention:?}");
    assert_eq!(
        attention[0].0, "fbe",
        "refused credentials mark the account"
    );
    assert!(
        attention[0].1.contains("EMAG_FBE_API_PASSWORD"),
        "{attention:?}"
    );
    app.sim.sim.set_faults(FaultPlan::default());
    assert_eq!(
        app.sync("fbe", SyncKind::Offers).await.status,
        RunStatus::Succeeded
    );
    assert!(
        app.store
            .accounts_needing_attention()
            .await
            .expect("attention")
            .is_empty(),
        "a run with the account's own credentials clears the mark"
    );
    let fbe_requests: Vec<_> = app
        .sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.resource == "product_offer")
        .collect();
    assert!(
        fbe_requests
            .iter()
            .all(|e| e.account.as_deref() == Some("fbe")),
        "offer reads only with fbe's login"
    );
}
