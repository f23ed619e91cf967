//! Order sync: incremental windows, FBE type 2, modifications after the fact.

use domain::SyncKind;
use emag_sim::{Mutation, SimConfig};
use emag_sync::sync::RunStatus;
use test_support::DbKind;

use crate::support::{on_both_backends, TestApp};

on_both_backends!(modified_and_new_orders_are_picked_up_and_unchanged_ones_are_not_rewritten);

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
