//! Returns: both types read, and open returns read again so their status changes are kept.

use domain::SyncKind;
use emag_sim::{Mutation, SimConfig};
use emag_sync::sync::RunStatus;
use test_support::DbKind;

use crate::support::{on_both_backends, TestApp};

on_both_backends!(returns_of_both_types_are_read_and_an_open_ones_later_status_is_kept,);

/// (emag_id, type, status) of the simulator's returns of `account`.
fn sim_returns(app: &TestApp, account: &str) -> Vec<(i64, Option<i64>, Option<i64>)> {
    let mut out: Vec<_> = app
        .sim
        .sim
        .returns(account)
        .iter()
        .map(|r| {
            (
                i64::try_from(r.emag_id).expect("id"),
                Some(i64::from(r.rma_type)),
                Some(i64::from(r.request_status)),
            )
        })
        .collect();
    out.sort_unstable();
    out
}

async fn returns_of_both_types_are_read_and_an_open_ones_later_status_is_kept(kind: DbKind) {
    // Arrange: an FBE account has returns of both types.
    let app = TestApp::new(
        kind,
        SimConfig {
            orders_per_account: 300,
            ..SimConfig::default()
        },
    )
    .await;
    let first = app.sync("fbe", SyncKind::Returns).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    let stored = app.store.return_statuses("fbe").await.expect("returns");
    assert_eq!(stored, sim_returns(&app, "fbe"));
    assert!(
        stored.iter().any(|r| r.1 == Some(2)) && stored.iter().any(|r| r.1 == Some(3)),
        "both types: {stored:?}"
    );

    // Act: an open return created long before the next read's window is finalized.
    let now = app.sim.sim.now();
    let open = app
        .sim
        .sim
        .returns("fbe")
        .into_iter()
        .filter(|r| matches!(r.request_status, 2 | 3 | 6))
        .find(|r| r.date < now - chrono::Duration::days(3))
        .expect("an old open return");
    app.sim
        .sim
        .mutate(
            "fbe",
            Mutation::SetReturnStatus {
                emag_id: open.emag_id,
                status: 7,
            },
        )
        .expect("finalize");
    let second = app.sync("fbe", SyncKind::Returns).await;

    // Assert
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(second.counts.updated, 1, "{:?}", second.counts);
    assert_eq!(
        app.store.return_statuses("fbe").await.expect("returns"),
        sim_returns(&app, "fbe")
    );
    // Closed returns are not read again.
    let third = app.sync("fbe", SyncKind::Returns).await;
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.error);
    assert_eq!((third.counts.created, third.counts.updated), (0, 0));
}
