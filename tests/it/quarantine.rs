//! One odd item never blocks an account: it is quarantined raw, counted, shown by `status`,
//! and skipped, and the run succeeds with a warning that quotes nothing of it.

use domain::{QuarantineKind, SyncKind};
use emag_sim::{Oddity, SimConfig};
use emag_sync::status::Snapshot;
use emag_sync::sync::RunStatus;
use test_support::DbKind;

use crate::support::{binary, on_both_backends, sim_vars, TestApp};

on_both_backends!(
    odd_orders_are_quarantined_and_the_rest_is_stored,
    odd_offers_are_quarantined_and_nothing_is_removed_for_them,
);

async fn odd_orders_are_quarantined_and_the_rest_is_stored(kind: DbKind) {
    // Arrange: three orders with more than one line are served odd.
    let app = TestApp::new(kind, SimConfig::default()).await;
    let orders = app.sim.sim.orders("fbe");
    let multi: Vec<_> = orders.iter().filter(|o| o.products.len() >= 2).collect();
    assert!(multi.len() >= 3, "orders with two lines");
    let odd = [multi[0], multi[1], multi[2]];
    let sim = &app.sim.sim;
    sim.add_oddity("fbe", Oddity::OrderLineWithoutId { id: odd[0].id });
    sim.add_oddity("fbe", Oddity::OrderDuplicateLineId { id: odd[1].id });
    sim.add_oddity("fbe", Oddity::OrderPriceOverflow { id: odd[2].id });

    // Act
    let report = app.sync("fbe", SyncKind::Orders).await;

    // Assert: the run succeeds, with a warning; the rest is stored.
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.quarantined, 3);
    let note = report.note.clone().unwrap_or_default();
    assert!(note.contains("quarantined"), "{note}");
    for o in odd {
        assert!(
            !note.contains(&o.customer.name),
            "no customer data in the note: {note}"
        );
    }
    let stored = app
        .store
        .export_orders(Some("fbe"), None, 100_000)
        .await
        .expect("export");
    assert_eq!(stored.len(), orders.len() - 3);
    assert!(stored
        .iter()
        .all(|s| odd.iter().all(|o| o.id as i64 != s.id)));
    let items = app.store.quarantined_items("fbe", 10).await.expect("items");
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| i.kind == QuarantineKind::Order));
    assert!(
        items.iter().any(|i| i.data.contains(&odd[0].customer.name)),
        "kept raw"
    );
    let run = app
        .store
        .get_run(report.run_id.expect("run"))
        .await
        .expect("run")
        .expect("row");
    assert!(odd
        .iter()
        .all(|o| !format!("{run:?}").contains(&o.customer.name)));

    // Shown by status.
    let snap = Snapshot::read(&app.config, &app.store)
        .await
        .expect("status");
    let fbe = snap.account("fbe").expect("fbe");
    assert_eq!(fbe.quarantined.len(), 1);
    assert_eq!(
        (fbe.quarantined[0].kind, fbe.quarantined[0].items),
        (QuarantineKind::Order, 3)
    );

    // The same odd items again are the same three quarantined items.
    let again = app.sync("fbe", SyncKind::Orders).await;
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
    assert_eq!(
        app.store
            .quarantined_items("fbe", 10)
            .await
            .expect("items")
            .len(),
        3
    );
}

async fn odd_offers_are_quarantined_and_nothing_is_removed_for_them(kind: DbKind) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    let first = app.sync("main", SyncKind::Offers).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    app.sim
        .sim
        .add_oddity("main", Oddity::OfferIdOutOfRange { id: 5 });
    app.sim
        .sim
        .add_oddity("main", Oddity::OfferPriceOverflow { id: 6 });

    let report = app.sync("main", SyncKind::Offers).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert!(report.quarantined >= 2, "{report:?}");
    assert_eq!(report.counts.removed, 0, "{report:?}");
    assert_eq!(
        app.store.count_offers("main").await.expect("count"),
        (250, 0)
    );
    let summary = app.store.quarantine_summary().await.expect("summary");
    assert!(
        summary
            .iter()
            .any(|q| q.account == "main" && q.kind == QuarantineKind::Offer && q.items == 2),
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_command_shows_quarantined_items_in_text_and_json_without_their_content() {
    // Arrange: an odd order quarantined by a sync.
    let app = TestApp::new(DbKind::Sqlite, SimConfig::default()).await;
    let odd = app
        .sim
        .sim
        .orders("fbe")
        .into_iter()
        .find(|o| !o.products.is_empty())
        .expect("an order with lines");
    app.sim
        .sim
        .add_oddity("fbe", Oddity::OrderLineWithoutId { id: odd.id });
    let report = app.sync("fbe", SyncKind::Orders).await;
    assert_eq!(report.quarantined, 1, "{report:?}");
    let dir = tempfile::tempdir().expect("dir");
    let vars = sim_vars(&app.sim, &app._db.url);

    // Act
    let text = binary(&vars, dir.path())
        .arg("status")
        .output()
        .await
        .expect("status");
    let json = binary(&vars, dir.path())
        .args(["status", "--json"])
        .output()
        .await
        .expect("status --json");

    // Assert
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("account fbe: 1 order item(s)") && text.contains("quarantined"),
        "{text}"
    );
    assert!(!text.contains(&odd.customer.name), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let fbe = json["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .find(|a| a["name"] == "fbe")
        .expect("fbe")
        .clone();
    assert_eq!(fbe["quarantined"][0]["kind"], "order");
    assert_eq!(fbe["quarantined"][0]["items"], 1);
    assert!(fbe["quarantined"][0]["last_reason"]
        .as_str()
        .is_some_and(|r| r.contains("no readable id")));
}
