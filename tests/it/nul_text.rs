//! Text eMAG sends with a NUL character (`\u0000` in its JSON) is stored with U+FFFD in its
//! place, on both backends alike: PostgreSQL's text columns refuse U+0000, so such an offer
//! name, customer name or eMAG message failed the run (or its record) on PostgreSQL only,
//! while SQLite stored it. Found by the fuzzer (issue 11, point 3).

use domain::{ErrorClass, SyncKind};
use emag_sim::{FaultPlan, Oddity, SimConfig};
use emag_sync::sync::RunStatus;
use test_support::DbKind;

use crate::support::{on_both_backends, TestApp};

on_both_backends!(
    names_holding_nul_are_stored_with_a_replacement_character,
    an_emag_message_holding_nul_is_recorded_on_the_failed_run,
    a_category_name_holding_nul_is_stored_with_a_replacement_character,
);

async fn names_holding_nul_are_stored_with_a_replacement_character(kind: DbKind) {
    // Arrange: offer 3 is served with a NUL in its name, an order with one in its
    // customer's name and in its first line's name.
    let app = TestApp::new(kind, SimConfig::default()).await;
    let order = app.sim.sim.orders("main")[0].id;
    app.sim
        .sim
        .add_oddity("main", Oddity::OfferNameWithNul { id: 3 });
    app.sim
        .sim
        .add_oddity("main", Oddity::OrderNamesWithNul { id: order });

    // Act
    let offers = app.sync("main", SyncKind::Offers).await;
    let orders = app.sync("main", SyncKind::Orders).await;

    // Assert: both runs succeed and store the text with U+FFFD for the NUL.
    assert_eq!(offers.status, RunStatus::Succeeded, "{:?}", offers.error);
    assert_eq!(orders.status, RunStatus::Succeeded, "{:?}", orders.error);
    assert_eq!(offers.quarantined + orders.quarantined, 0);
    let stored = app
        .store
        .export_offers(Some("main"), None, 100_000)
        .await
        .expect("export offers");
    let offer = stored.iter().find(|o| o.id == 3).expect("offer 3 stored");
    let name = offer.name.clone().unwrap_or_default();
    assert!(
        name.contains('\u{fffd}') && !name.contains('\0'),
        "{name:?}"
    );
    let stored = app
        .store
        .export_orders(Some("main"), None, 100_000)
        .await
        .expect("export orders");
    let stored = stored
        .iter()
        .find(|o| o.id == order as i64)
        .expect("the order stored");
    let customer = stored.customer_name.clone().unwrap_or_default();
    assert!(
        customer.contains('\u{fffd}') && !customer.contains('\0'),
        "{customer:?}"
    );
    let line = stored.products[0].name.clone().unwrap_or_default();
    assert!(
        line.contains('\u{fffd}') && !line.contains('\0'),
        "{line:?}"
    );
}

async fn an_emag_message_holding_nul_is_recorded_on_the_failed_run(kind: DbKind) {
    // Arrange: eMAG refuses the read with a validation message holding a NUL.
    let app = TestApp::with_vars(
        kind,
        SimConfig::default(),
        &[
            ("EMAG_API_ENCODING", "json-data"),
            ("EMAG_MAX_RETRIES", "0"),
        ],
    )
    .await;
    app.sim.sim.set_faults(FaultPlan {
        is_error_next: 1,
        is_error_message: Some("Invalid field\u{0}value".into()),
        ..FaultPlan::default()
    });

    // Act
    let report = app.sync("main", SyncKind::Offers).await;

    // Assert: the run failed with the classified error, and its record holds the message.
    assert_eq!(report.status, RunStatus::Failed, "{:?}", report.error);
    assert_eq!(report.error_class, Some(ErrorClass::Rejected));
    let run = app
        .store
        .get_run(report.run_id.expect("a run"))
        .await
        .expect("read the run")
        .expect("the run row");
    assert_eq!(run.error_class, Some(ErrorClass::Rejected));
    assert_eq!(run.emag_messages, ["Invalid field\u{fffd}value".to_owned()]);
    let message = run.error_message.unwrap_or_default();
    assert!(
        message.contains("Invalid field\u{fffd}value"),
        "{message:?}"
    );
}

async fn a_category_name_holding_nul_is_stored_with_a_replacement_character(kind: DbKind) {
    // Arrange: the first category is served with a NUL in its name.
    let app = TestApp::new(kind, SimConfig::default()).await;
    let category = app
        .sim
        .sim
        .categories()
        .into_iter()
        .find(|c| c.is_allowed == 1)
        .expect("an allowed category")
        .id;
    app.sim
        .sim
        .add_oddity("main", Oddity::CategoryNameWithNul { id: category });

    // Act
    let report = app.sync("main", SyncKind::Reference).await;

    // Assert: the run succeeds and the name is kept with U+FFFD for the NUL.
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let marketplace = app.config.accounts[0].marketplace.as_str().to_owned();
    let stored = app
        .store
        .read_reference(&marketplace, "category")
        .await
        .expect("read categories");
    let row = stored
        .iter()
        .find(|r| r.id == i64::from(category))
        .expect("the category stored");
    let name = row.name.clone().unwrap_or_default();
    assert!(
        name.contains('\u{fffd}') && !name.contains('\0'),
        "{name:?}"
    );
}
