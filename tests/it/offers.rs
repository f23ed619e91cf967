//! Offer sync against the simulator: exact copies, changes, removals, no-op re-syncs,
//! resumption, rate limits.

use domain::SyncKind;
use emag_sim::{Mutation, SimConfig};
use emag_sync::sync::{PageBudget, RunStatus};
use rust_decimal::Decimal;
use test_support::DbKind;

use crate::support::{bounded, on_both_backends, TestApp};

on_both_backends!(
    sync_all_then_export_equals_the_simulator_with_accounts_kept_apart,
    price_changes_and_removals_are_reflected_and_an_unchanged_resync_writes_nothing,
    an_interrupted_scan_resumes_from_its_checkpoint_without_loss_or_false_removal,
    one_page_in_flight_for_the_whole_process_still_syncs_two_accounts_at_once_and_gives_its_place_back,
);

async fn sync_all_then_export_equals_the_simulator_with_accounts_kept_apart(kind: DbKind) {
    let app = TestApp::new(
        kind,
        SimConfig {
            offers_per_account: 230,
            ..SimConfig::default()
        },
    )
    .await;

    let reports = app.sync_all().await;

    for r in &reports {
        assert_eq!(
            r.status,
            RunStatus::Succeeded,
            "{}/{}: {:?}",
            r.account,
            r.kind,
            r.error
        );
    }
    app.assert_offers_match("main").await;
    app.assert_offers_match("fbe").await;
    app.assert_orders_match("main").await;
    app.assert_orders_match("fbe").await;
    // The same id is a different product in each account, and each row kept its own.
    let main = app
        .store
        .export_offers(Some("main"), None, 1)
        .await
        .expect("main");
    let fbe = app
        .store
        .export_offers(Some("fbe"), None, 1)
        .await
        .expect("fbe");
    assert_eq!(main[0].id, fbe[0].id);
    assert_ne!(main[0].name, fbe[0].name);
    // Diacritics survive the round trip.
    let all = app
        .store
        .export_offers(None, None, 10_000)
        .await
        .expect("all");
    assert!(all.iter().any(|o| o
        .name
        .as_deref()
        .is_some_and(|n| n.contains(['ă', 'ș', 'ț', 'î', 'â']))));
    // FBE orders (type 2) are only returned when asked for; they are here.
    let fbe_orders = app
        .store
        .export_orders(Some("fbe"), None, 10_000)
        .await
        .expect("orders");
    assert!(fbe_orders.iter().any(|o| o.order_type == 2));
    assert!(fbe_orders.iter().all(|o| o.account == "fbe"));
    let offers = reports
        .iter()
        .find(|r| r.account == "main" && r.kind == SyncKind::Offers)
        .expect("run");
    assert_eq!(
        (
            offers.counts.items_read,
            offers.counts.created,
            offers.counts.pages
        ),
        (230, 230, 3)
    );
    assert_eq!(offers.total_items, Some(230));
}

async fn price_changes_and_removals_are_reflected_and_an_unchanged_resync_writes_nothing(
    kind: DbKind,
) {
    let app = TestApp::new(
        kind,
        SimConfig {
            offers_per_account: 250,
            ..SimConfig::default()
        },
    )
    .await;
    assert_eq!(
        app.sync("main", SyncKind::Offers).await.status,
        RunStatus::Succeeded
    );

    let sim = &app.sim.sim;
    sim.mutate(
        "main",
        Mutation::SetPrice {
            id: 7,
            sale_price: Decimal::new(1_234_567, 4),
        },
    )
    .expect("price");
    sim.mutate("main", Mutation::SetStock { id: 8, stock: 0 })
        .expect("stock");
    sim.mutate("main", Mutation::RemoveOffer { id: 9 })
        .expect("remove");
    sim.mutate("main", Mutation::AddOffers { count: 3 })
        .expect("add");
    sim.mutate("main", Mutation::RemoveOffer { id: 250 })
        .expect("remove");
    let second = app.sync("main", SyncKind::Offers).await;

    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(
        (
            second.counts.updated,
            second.counts.removed,
            second.counts.created
        ),
        (2, 2, 3),
        "{:?}",
        second.counts
    );
    app.assert_offers_match("main").await;
    let seven = app
        .store
        .export_offers(Some("main"), Some(("main", 6)), 1)
        .await
        .expect("offer 7");
    assert_eq!(seven[0].sale_price.as_deref(), Some("123.4567"));
    let removed: Vec<i64> = app
        .store
        .export_offers(Some("main"), None, 10_000)
        .await
        .expect("all")
        .into_iter()
        .filter(|o| o.removed)
        .map(|o| o.id)
        .collect();
    assert_eq!(removed, vec![9, 250]);
    // FBE was never touched by MAIN's changes.
    assert_eq!(app.store.count_offers("fbe").await.expect("fbe"), (0, 0));

    let third = app.sync("main", SyncKind::Offers).await;
    assert_eq!(third.status, RunStatus::Succeeded);
    assert_eq!(
        (
            third.counts.created,
            third.counts.updated,
            third.counts.removed,
            third.counts.unchanged
        ),
        (0, 0, 0, 251),
        "an unchanged catalog rewrites nothing"
    );
}

async fn an_interrupted_scan_resumes_from_its_checkpoint_without_loss_or_false_removal(
    kind: DbKind,
) {
    let app = TestApp::new(
        kind,
        SimConfig {
            offers_per_account: 1000,
            rate_limits: false,
            ..SimConfig::default()
        },
    )
    .await;
    // A first complete scan, so that a wrong removal pass would have something to remove.
    assert_eq!(
        app.sync("main", SyncKind::Offers).await.status,
        RunStatus::Succeeded
    );
    app.sim
        .sim
        .mutate(
            "main",
            Mutation::SetPrice {
                id: 950,
                sale_price: Decimal::new(99, 0),
            },
        )
        .expect("price");

    // Stop the next scan as soon as its fourth page is stored.
    let stopped = offers_stopped_after(&app, 400).await;
    let run_id = stopped.run_id.expect("run id");

    let resumed = offers_again(&app, false).await;

    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(resumed.run_id, Some(run_id), "the same run continues");
    let from = resumed.resumed_from_page.expect("resumed");
    assert!((4..10).contains(&from), "resumed after page {from}");
    assert_eq!(resumed.counts.removed, 0);
    assert_eq!(
        resumed.counts.updated, 1,
        "the changed price was written once"
    );
    assert_eq!(
        resumed.counts.items_read, 1000,
        "every offer read once across both attempts"
    );
    app.assert_offers_match("main").await;
}

/// The process-wide budget of pages read and not yet stored (`PageBudget`) at its smallest:
/// two accounts scanned at once share one place, so each page waits for the page before it,
/// of either account, to be stored. Both scans end complete, and the place is given back by
/// a finished scan and by an interrupted one.
async fn one_page_in_flight_for_the_whole_process_still_syncs_two_accounts_at_once_and_gives_its_place_back(
    kind: DbKind,
) {
    // Arrange: five pages per account.
    let mut app = TestApp::new(
        kind,
        SimConfig {
            offers_per_account: 450,
            rate_limits: false,
            ..SimConfig::default()
        },
    )
    .await;
    let budget = PageBudget::new(1);
    app.ctx.pages = budget.clone();

    // Act (bounded: a place that is never given back would stall both scans for good)
    let (main, fbe) = bounded(
        "two offer scans sharing one place",
        Box::pin(futures::future::join(
            app.sync("main", SyncKind::Offers),
            app.sync("fbe", SyncKind::Offers),
        )),
    )
    .await;

    // Assert
    for report in [&main, &fbe] {
        assert_eq!(
            report.status,
            RunStatus::Succeeded,
            "{}: {:?}",
            report.account,
            report.error
        );
        assert_eq!(
            (report.counts.items_read, report.counts.pages),
            (450, 5),
            "{}",
            report.account
        );
    }
    app.assert_offers_match("main").await;
    app.assert_offers_match("fbe").await;
    assert_eq!(budget.taken(), 0, "a finished scan keeps no place");

    // An interrupted scan (a re-sync, stopped once two pages are stored) gives its place back
    // too, whatever page its reader held.
    bounded("an interrupted re-sync", offers_stopped_after(&app, 200)).await;
    assert_eq!(budget.taken(), 0, "an interrupted scan keeps no place");
}

/// Cancels the run once it has stored `items` offers (a readiness signal, not a timer).
struct StopAfter {
    items: u64,
    cancel: tokio_util::sync::CancellationToken,
}

impl emag_sync::sync::ProgressSink for StopAfter {
    fn progress(&self, _: &str, _: SyncKind, done: u64, _: Option<u64>) {
        if done >= self.items {
            self.cancel.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_simulators_limits_on_a_sync_gets_no_429() {
    let app = TestApp::new(
        DbKind::Sqlite,
        SimConfig {
            offers_per_account: 1200,
            ..SimConfig::default()
        },
    )
    .await;

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Succeeded);
    let journal = app.sim.sim.journal();
    assert!(journal.len() >= 14, "count + 13 pages + count");
    assert_eq!(
        journal.iter().filter(|e| e.rate_limited).count(),
        0,
        "no request over the limit"
    );
    assert_eq!(report.counts.rate_limit_waits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_closes_an_interrupted_scan_and_starts_from_page_one() {
    let app = TestApp::new(
        DbKind::Sqlite,
        SimConfig {
            offers_per_account: 500,
            rate_limits: false,
            ..SimConfig::default()
        },
    )
    .await;
    let stopped = offers_stopped_after(&app, 200).await;

    let full = offers_again(&app, true).await;

    assert_eq!(full.status, RunStatus::Succeeded, "{:?}", full.error);
    assert_ne!(full.run_id, stopped.run_id, "a new run");
    assert_eq!(full.resumed_from_page, None);
    assert_eq!(full.counts.items_read, 500, "read from page one");
    let old = app
        .store
        .get_run(stopped.run_id.expect("id"))
        .await
        .expect("row")
        .expect("old run");
    assert_eq!(old.state, domain::RunState::Failed);
    assert_eq!(old.note.as_deref(), Some("superseded by a full sync"));
    app.assert_offers_match("main").await;
}

/// An offer sync of main stopped (as by a shutdown) once `items` offers are stored; asserts
/// that it ended interrupted.
pub(crate) async fn offers_stopped_after(app: &TestApp, items: u64) -> emag_sync::sync::RunReport {
    let mut ctx = app.ctx.clone();
    ctx.progress = Some(std::sync::Arc::new(StopAfter {
        items,
        cancel: app.ctx.cancel.clone(),
    }));
    let stopped = emag_sync::sync::run_sync(
        &ctx,
        app.account("main"),
        SyncKind::Offers,
        domain::RunTrigger::Manual,
        false,
    )
    .await;
    assert_eq!(stopped.status, RunStatus::Interrupted);
    stopped
}

/// The next offer sync of main, as a new process would run it (a context not cancelled).
pub(crate) async fn offers_again(app: &TestApp, full: bool) -> emag_sync::sync::RunReport {
    let ctx = emag_sync::sync::SyncContext::new(app.store.clone(), app.config.sync);
    emag_sync::sync::run_sync(
        &ctx,
        app.account("main"),
        SyncKind::Offers,
        domain::RunTrigger::Manual,
        full,
    )
    .await
}
