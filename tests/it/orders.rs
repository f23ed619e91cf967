//! Order sync: incremental windows, FBE type 2, modifications after the fact.

use domain::SyncKind;
use emag_sim::{Mutation, Oddity, OrderWindowLimit, SimConfig};
use emag_sync::sync::RunStatus;
use test_support::DbKind;

use crate::support::{on_both_backends, TestApp};

on_both_backends!(
    modified_and_new_orders_are_picked_up_and_unchanged_ones_are_not_rewritten,
    an_unchanged_resync_of_an_account_without_fbe_orders_costs_two_order_requests,
    orders_are_read_in_windows_every_reading_of_one_month_accepts,
    a_page_that_comes_short_mid_window_is_noticed_and_the_window_read_again,
    the_cursor_never_moves_to_an_order_stamped_after_emags_clock,
);

/// Order requests (read and count) the simulator answered for `account`.
fn order_requests(app: &TestApp, account: &str) -> usize {
    app.sim
        .sim
        .journal()
        .iter()
        .filter(|e| e.account.as_deref() == Some(account) && e.resource == "order")
        .count()
}

/// eMAG's clock as the client reads it: Bucharest wall time.
fn emag_now() -> chrono::NaiveDateTime {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Bucharest)
        .naive_local()
}

async fn an_unchanged_resync_of_an_account_without_fbe_orders_costs_two_order_requests(
    kind: DbKind,
) {
    // Arrange: MAIN holds seller-fulfilled orders only; there is no FBE order to carry the
    // type-2 cursor.
    let app = TestApp::new(kind, SimConfig::default()).await;
    let first = app.sync("main", SyncKind::Orders).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    let before = order_requests(&app, "main");

    // Act
    let again = app.sync("main", SyncKind::Orders).await;

    // Assert: one read of the overlap window per type, no backfill of type 2 again.
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
    assert_eq!((again.counts.created, again.counts.updated), (0, 0));
    assert_eq!(order_requests(&app, "main") - before, 2);
    app.assert_orders_match("main").await;
}

async fn orders_are_read_in_windows_every_reading_of_one_month_accepts(kind: DbKind) {
    for limit in [
        OrderWindowLimit::Days(7),
        OrderWindowLimit::Days(28),
        OrderWindowLimit::CalendarMonth,
    ] {
        let app = TestApp::with_vars(
            kind,
            SimConfig {
                order_window: limit,
                orders_per_account: 300,
                rate_limits: false,
                ..SimConfig::default()
            },
            &[("EMAG_RATE_LIMIT", "off")],
        )
        .await;
        for account in ["main", "fbe"] {
            let report = app.sync(account, SyncKind::Orders).await;
            assert_eq!(
                report.status,
                RunStatus::Succeeded,
                "{limit:?} {account}: {:?}",
                report.error
            );
            app.assert_orders_match(account).await;
        }
    }
    // A window longer than the simulator's reading is refused, with eMAG's message.
    let app = TestApp::with_vars(
        kind,
        SimConfig {
            order_window: OrderWindowLimit::Days(7),
            rate_limits: false,
            ..SimConfig::default()
        },
        &[
            ("EMAG_RATE_LIMIT", "off"),
            ("EMAG_ORDERS_WINDOW_DAYS", "10"),
        ],
    )
    .await;
    let refused = app.sync("main", SyncKind::Orders).await;
    assert_eq!(refused.status, RunStatus::Failed);
    assert!(
        refused
            .emag_messages
            .iter()
            .any(|m| m.contains("maximum interval")),
        "{:?}",
        refused.emag_messages
    );
}

async fn a_page_that_comes_short_mid_window_is_noticed_and_the_window_read_again(kind: DbKind) {
    // Arrange: about 230 orders a week, so windows span three pages; the first second page
    // served comes cut to half.
    let app = TestApp::with_vars(
        kind,
        SimConfig {
            orders_per_account: 2000,
            rate_limits: false,
            ..SimConfig::default()
        },
        &[("EMAG_RATE_LIMIT", "off")],
    )
    .await;
    app.sim
        .sim
        .add_oddity("main", Oddity::OrderPageCut { page: 2 });

    // Act
    let report = app.sync("main", SyncKind::Orders).await;

    // Assert: nothing of the cut page is lost.
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    app.assert_orders_match("main").await;
    let counts = app
        .sim
        .sim
        .journal()
        .iter()
        .filter(|e| e.resource == "order" && e.action == "count")
        .count();
    assert!(counts > 0, "multi-page windows are sized by order/count");
}

async fn the_cursor_never_moves_to_an_order_stamped_after_emags_clock(kind: DbKind) {
    // Arrange: an order modified two days ahead of eMAG's clock.
    let app = TestApp::new(kind, SimConfig::default()).await;
    let first = app.sync("main", SyncKind::Orders).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    let sim = &app.sim.sim;
    let order = sim.orders("main")[0].id;
    sim.mutate(
        "main",
        Mutation::AdvanceClock {
            minutes: 2 * 24 * 60,
        },
    )
    .expect("clock");
    sim.mutate(
        "main",
        Mutation::SetOrderStatus {
            id: order,
            status: 4,
        },
    )
    .expect("finalize");

    // Act
    let second = app.sync("main", SyncKind::Orders).await;

    // Assert: the order is stored, the cursor stays at or before eMAG's clock.
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(second.counts.updated, 1, "{:?}", second.counts);
    assert!(
        second
            .note
            .as_deref()
            .is_some_and(|n| n.contains("later than eMAG's clock")),
        "{:?}",
        second.note
    );
    let cursor = app
        .store
        .get_state("main", "orders.cursor.type3")
        .await
        .expect("state")
        .expect("a cursor");
    let cursor = chrono::NaiveDateTime::parse_from_str(&cursor, "%Y-%m-%d %H:%M:%S").expect("time");
    assert!(cursor <= emag_now(), "cursor {cursor} is in the future");

    // A full sync resets the cursor to what was read.
    let full = emag_sync::sync::run_sync(
        &app.ctx,
        app.account("main"),
        SyncKind::Orders,
        domain::RunTrigger::Manual,
        true,
    )
    .await;
    assert_eq!(full.status, RunStatus::Succeeded, "{:?}", full.error);
}

async fn modified_and_new_orders_are_picked_up_and_unchanged_ones_are_not_rewritten(kind: DbKind) {
    let app = TestApp::new(
        kind,
        SimConfig {
            orders_per_account: 140,
            ..SimConfig::default()
        },
    )
    .await;
    let first = app.sync("fbe", SyncKind::Orders).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.counts.created, 140);
    app.assert_orders_match("fbe").await;

    let sim = &app.sim.sim;
    let some = sim.orders("fbe");
    let fbe_order = some
        .iter()
        .find(|o| o.order_type == 2)
        .expect("an FBE order");
    let seller_order = some
        .iter()
        .find(|o| o.order_type == 3)
        .expect("a seller order");
    sim.mutate("fbe", Mutation::AdvanceClock { minutes: 30 })
        .expect("clock");
    sim.mutate(
        "fbe",
        Mutation::SetOrderStatus {
            id: fbe_order.id,
            status: 0,
        },
    )
    .expect("cancel");
    sim.mutate(
        "fbe",
        Mutation::SetOrderStatus {
            id: seller_order.id,
            status: 4,
        },
    )
    .expect("finalize");
    sim.mutate(
        "fbe",
        Mutation::AddOrders {
            count: 3,
            order_type: 2,
        },
    )
    .expect("new orders");

    let second = app.sync("fbe", SyncKind::Orders).await;

    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(
        (second.counts.created, second.counts.updated),
        (3, 2),
        "{:?}",
        second.counts
    );
    app.assert_orders_match("fbe").await;

    let third = app.sync("fbe", SyncKind::Orders).await;
    assert_eq!((third.counts.created, third.counts.updated), (0, 0));
    assert!(
        third.counts.items_read < 140,
        "incremental: reads only the overlap window, not everything"
    );
    // MAIN holds only its own orders.
    assert_eq!(app.store.count_orders("main").await.expect("count"), 0);
}
