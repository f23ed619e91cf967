//! Trust with the real eMAG API (issue 9, points 1, 2 and 5): every page loop bounded and
//! checked, transient `isError` answers to reads retried, and the request encoding probed
//! against a simulator strict about one encoding.

use std::time::{Duration, Instant};

use domain::{ApiEncoding, ErrorClass, SyncKind};
use emag_sim::{FaultPlan, SimConfig, WireEncoding};
use emag_sync::sync::RunStatus;
use test_support::DbKind;

use crate::support::{bounded, on_both_backends, TestApp};

fn small(offers: u32) -> SimConfig {
    SimConfig {
        rate_limits: false,
        offers_per_account: offers,
        ..SimConfig::default()
    }
}

/// Offer-listing reads the simulator served, in order (page numbers).
fn offer_pages(app: &TestApp, account: &str) -> Vec<Option<u32>> {
    app.sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| {
            e.account.as_deref() == Some(account)
                && e.resource == "product_offer"
                && e.action == "read"
        })
        .map(|e| e.page)
        .collect()
}

// ---- Point 2: bounded, checked page loops.

async fn a_simulator_that_ignores_current_page_ends_the_offer_scan_with_a_clear_error(
    kind: DbKind,
) {
    let app = TestApp::with_vars(kind, small(450), &[("EMAG_API_ENCODING", "json-data")]).await;
    app.sim.sim.set_faults(FaultPlan {
        ignore_current_page: true,
        ..FaultPlan::default()
    });

    let started = Instant::now();
    let report = bounded("the offer scan", app.sync("main", SyncKind::Offers)).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.error_class, Some(ErrorClass::Protocol));
    let message = report.error.clone().expect("message");
    assert!(
        message.contains("page 2 of product_offer with the same 100 items as page 1")
            && message.contains("currentPage"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // Two pages read, then stopped: nothing was removed or lost.
    assert_eq!(offer_pages(&app, "main").len(), 2);
    let run = app
        .store
        .get_run(report.run_id.expect("run"))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(run.error_class, Some(ErrorClass::Protocol));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_all_against_a_simulator_that_ignores_current_page_ends_in_bounded_time() {
    let app = TestApp::new(DbKind::Sqlite, small(450)).await;
    app.sim.sim.set_faults(FaultPlan {
        ignore_current_page: true,
        ..FaultPlan::default()
    });

    let reports = bounded("sync all", app.sync_all()).await;

    let offers: Vec<_> = reports
        .iter()
        .filter(|r| r.kind == SyncKind::Offers)
        .collect();
    assert_eq!(offers.len(), 2);
    for r in offers {
        assert_eq!(r.status, RunStatus::Failed, "{r:?}");
        assert_eq!(r.error_class, Some(ErrorClass::Protocol), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_items_than_asked_for_end_the_run_naming_both_numbers() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        small(250),
        &[("EMAG_API_ENCODING", "json-data")],
    )
    .await;
    app.sim.sim.set_faults(FaultPlan {
        extra_items: 5,
        ..FaultPlan::default()
    });

    let report = bounded("the offer scan", app.sync("main", SyncKind::Offers)).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.error_class, Some(ErrorClass::Protocol));
    let message = report.error.expect("message");
    assert!(
        message.contains("105 items to product_offer/read page 1 that asked for at most 100"),
        "{message}"
    );
    assert_eq!(
        app.store.count_offers("main").await.expect("count").0,
        0,
        "nothing of an untrusted page is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_and_names_where_it_points() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        small(50),
        &[("EMAG_API_ENCODING", "json-data")],
    )
    .await;
    app.sim.sim.set_faults(FaultPlan {
        redirect_next: 1,
        ..FaultPlan::default()
    });

    let report = bounded("the offer sync", app.sync("main", SyncKind::Offers)).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.error_class, Some(ErrorClass::Config));
    let message = report.error.expect("message");
    assert!(
        message.contains("HTTP 301 redirecting to /api-3/product_offer/count"),
        "{message}"
    );
    // The redirect was not followed: no GET reached the simulator.
    assert!(app.sim.sim.journal().iter().all(|e| e.method == "POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_while_it_streams_in() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        small(50),
        &[
            ("EMAG_API_ENCODING", "json-data"),
            ("EMAG_API_MAX_BODY", "1MiB"),
        ],
    )
    .await;
    app.sim.sim.set_faults(FaultPlan {
        oversize_next: 1,
        // Far more than the test could buffer quickly: refused after the first MiB.
        oversize_bytes: 8 * 1024 * 1024 * 1024,
        ..FaultPlan::default()
    });

    let report = bounded("the offer sync", app.sync("main", SyncKind::Offers)).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.error_class, Some(ErrorClass::Protocol));
    let message = report.error.expect("message");
    assert!(
        message.contains("larger than the 1048576 bytes allowed (EMAG_API_MAX_BODY)"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_whose_count_fills_its_last_page_does_not_ask_for_the_empty_page_after_it() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        small(200),
        &[("EMAG_API_ENCODING", "json-data")],
    )
    .await;

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(offer_pages(&app, "main"), [Some(1), Some(2)]);
    // count, 2 pages, recount.
    assert_eq!(report.counts.requests, 4);
    app.assert_offers_match("main").await;
}

// ---- Point 5: isError answered to a read.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_is_error_on_a_read_is_retried_and_the_run_succeeds() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        small(250),
        &[
            ("EMAG_API_ENCODING", "json-data"),
            ("EMAG_MAX_RETRIES", "3"),
        ],
    )
    .await;
    app.sim.sim.set_faults(FaultPlan {
        is_error_next: 2,
        is_error_message: Some("Temporary problem, please retry".into()),
        ..FaultPlan::default()
    });

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.retries, 2);
    app.assert_offers_match("main").await;
}

async fn a_read_that_succeeded_after_an_is_error_keeps_emags_message_on_its_run(kind: DbKind) {
    let app = TestApp::with_vars(
        kind,
        small(150),
        &[
            ("EMAG_API_ENCODING", "json-data"),
            ("EMAG_MAX_RETRIES", "3"),
        ],
    )
    .await;
    let temporary = "Temporary problem, please retry";
    app.sim.sim.set_faults(FaultPlan {
        is_error_next: 1,
        is_error_message: Some(temporary.into()),
        ..FaultPlan::default()
    });

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.retries, 1);
    assert_eq!(report.emag_messages, [temporary.to_owned()]);
    let row = app
        .store
        .get_run(report.run_id.expect("a run"))
        .await
        .expect("read the run")
        .expect("the run row");
    assert_eq!(row.state, domain::RunState::Succeeded);
    assert_eq!(row.error_class, None);
    // eMAG's message alone: nothing of the answers' results (customer data) is kept.
    assert_eq!(row.emag_messages, [temporary.to_owned()]);
    app.assert_offers_match("main").await;
    // The next run, answered without isError, has nothing to say.
    let quiet = app.sync("main", SyncKind::Offers).await;
    assert_eq!(quiet.status, RunStatus::Succeeded, "{:?}", quiet.error);
    assert!(quiet.emag_messages.is_empty(), "{:?}", quiet.emag_messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_is_error_on_a_read_is_not_retried_and_its_message_is_recorded() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        small(250),
        &[
            ("EMAG_API_ENCODING", "json-data"),
            ("EMAG_MAX_RETRIES", "3"),
        ],
    )
    .await;
    let validation = "Invalid itemsPerPage: the maximum number of items per page is 100";
    app.sim.sim.set_faults(FaultPlan {
        is_error_next: 1,
        is_error_message: Some(validation.into()),
        ..FaultPlan::default()
    });

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.error_class, Some(ErrorClass::Rejected));
    assert_eq!(report.counts.retries, 0);
    assert_eq!(report.emag_messages, [validation.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_is_errors_past_the_retry_budget_fail_the_run_with_the_messages() {
    let app = TestApp::with_vars(
        DbKind::Sqlite,
        small(50),
        &[
            ("EMAG_API_ENCODING", "json-data"),
            ("EMAG_MAX_RETRIES", "2"),
        ],
    )
    .await;
    app.sim.sim.set_faults(FaultPlan {
        is_error_next: 10,
        is_error_message: Some("Temporary problem, please retry".into()),
        ..FaultPlan::default()
    });

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.error_class, Some(ErrorClass::Rejected));
    assert_eq!(report.counts.retries, 2);
    assert_eq!(report.counts.requests, 3);
    assert_eq!(
        report.emag_messages,
        ["Temporary problem, please retry".to_owned()]
    );
}

// ---- Point 1: the request encoding, probed.

fn strict(accept: WireEncoding) -> SimConfig {
    SimConfig {
        accept: Some(accept),
        ..small(150)
    }
}

fn expected(accept: WireEncoding) -> ApiEncoding {
    match accept {
        WireEncoding::Form => ApiEncoding::Form,
        WireEncoding::JsonData => ApiEncoding::JsonData,
        WireEncoding::Json => ApiEncoding::Json,
    }
}

on_both_backends!(
    a_simulator_that_ignores_current_page_ends_the_offer_scan_with_a_clear_error,
    sync_all_in_each_strict_encoding_probes_it_keeps_it_and_gets_the_data,
    a_read_that_succeeded_after_an_is_error_keeps_emags_message_on_its_run,
);

async fn sync_all_in_each_strict_encoding_probes_it_keeps_it_and_gets_the_data(kind: DbKind) {
    for accept in [
        WireEncoding::Form,
        WireEncoding::JsonData,
        WireEncoding::Json,
    ] {
        let app = TestApp::new(kind, strict(accept)).await;

        let reports = bounded("sync all", app.sync_all()).await;

        for r in &reports {
            assert_eq!(r.status, RunStatus::Succeeded, "{accept:?}: {r:?}");
        }
        for account in ["main", "fbe"] {
            let kept = app
                .store
                .api_encoding(account)
                .await
                .expect("read")
                .expect("kept");
            assert_eq!(kept.encoding, expected(accept), "{accept:?} {account}");
            app.assert_offers_match(account).await;
            app.assert_orders_match(account).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_against_each_strict_mode_picks_the_right_encoding() {
    for accept in [
        WireEncoding::Form,
        WireEncoding::JsonData,
        WireEncoding::Json,
    ] {
        let app = TestApp::new(DbKind::Sqlite, strict(accept)).await;
        for account in ["main", "fbe"] {
            let client = &app.account(account).client;
            let settled = emag_sync::sync::encoding::probe_encoding(client)
                .await
                .expect("probe")
                .expect("one honoured");
            assert_eq!(settled.encoding, expected(accept), "{accept:?} {account}");
            assert_eq!(client.encoding(), expected(accept));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_encoding_that_stops_working_is_forgotten_and_probed_again() {
    let app = TestApp::new(DbKind::Sqlite, strict(WireEncoding::Form)).await;
    // A wrong encoding kept from before (eMAG changed, or it was kept by another version).
    app.store
        .set_api_encoding("main", Some(ApiEncoding::Json))
        .await
        .expect("keep");

    let failed = bounded("the offer sync", app.sync("main", SyncKind::Offers)).await;

    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error_class, Some(ErrorClass::Protocol));
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("probed again")),
        "{failed:?}"
    );
    assert_eq!(app.store.api_encoding("main").await.expect("read"), None);

    let next = bounded("the next offer sync", app.sync("main", SyncKind::Offers)).await;

    assert_eq!(next.status, RunStatus::Succeeded, "{:?}", next.error);
    let kept = app
        .store
        .api_encoding("main")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.encoding, ApiEncoding::Form);
    app.assert_offers_match("main").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_command_probes_each_strict_encoding_and_status_shows_the_one_kept() {
    for (accept, name) in [
        (WireEncoding::Form, "form"),
        (WireEncoding::JsonData, "json-data"),
        (WireEncoding::Json, "json"),
    ] {
        let sim = emag_sim::Simulator::spawn(strict(accept))
            .await
            .expect("sim");
        let dir = tempfile::tempdir().expect("dir");
        let db = test_support::TestDb::sqlite();
        let vars = crate::support::sim_vars(&sim, &db.url);

        let out = bounded(
            "emag-sync test",
            crate::support::binary(&vars, dir.path())
                .arg("test")
                .output(),
        )
        .await
        .expect("run test");

        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {stdout}");
        assert_eq!(
            stdout
                .matches(&format!("request encoding: {name} (probed: "))
                .count(),
            2,
            "{name}: {stdout}"
        );
        if accept != WireEncoding::JsonData {
            assert!(
                stdout.contains("json-data: itemsPerPage=1 answered with 100 offers"),
                "{name}: {stdout}"
            );
        }

        let status = bounded(
            "emag-sync status",
            crate::support::binary(&vars, dir.path())
                .arg("status")
                .output(),
        )
        .await
        .expect("run status");
        let text = String::from_utf8_lossy(&status.stdout);
        assert_eq!(
            text.matches(&format!("request encoding: {name} (probed)"))
                .count(),
            2,
            "{name}: {text}"
        );
        sim.shutdown().await;
    }
}
