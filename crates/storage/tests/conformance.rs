//! The storage conformance suite: every behaviour runs against SQLite and PostgreSQL.

use domain::{
    AttentionCause, QuarantineKind, RunCounts, RunOutcome, RunState, RunTrigger, SyncKind,
};
use sqlx::Connection;
use storage::{
    BeginRun, OfferRow, OrderLineRow, OrderRow, QuarantineRow, ReturnRow, RunFilter, RunRequest,
    StorageError, Store,
};
use test_support::{DbKind, TestDb};

async fn store(kind: DbKind) -> (TestDb, Store) {
    let db = TestDb::new(kind).await;
    let store = Store::open(&db.url).await.expect("open store");
    store
        .upsert_account("main", "main", "emag_ro", "http://x/api-3")
        .await
        .expect("account");
    store
        .upsert_account("fbe", "fbe", "emag_ro", "http://x/api-3")
        .await
        .expect("account");
    (db, store)
}

fn alive(_: &str) -> bool {
    true
}
fn dead(_: &str) -> bool {
    false
}

fn offer(id: i64, name: &str, price: &str) -> OfferRow {
    OfferRow {
        id,
        part_number: Some(format!("PN-{id}")),
        part_number_key: None,
        name: Some(name.to_owned()),
        brand: Some("Brand".to_owned()),
        status: Some(1),
        sale_price: Some(price.to_owned()),
        recommended_price: None,
        currency: Some("RON".to_owned()),
        vat_id: Some(9),
        general_stock: Some(3),
        estimated_stock: Some(3),
        ean: "[\"5941234567890\"]".to_owned(),
        data: format!("{{\"id\":{id}}}"),
        content_hash: id * 7 + price.len() as i64,
    }
}

fn request<'a>(
    account: &'a str,
    kind: SyncKind,
    holder: &'a str,
    slot: Option<i64>,
) -> RunRequest<'a> {
    RunRequest {
        account,
        kind,
        trigger: RunTrigger::Manual,
        full_scan: false,
        slot,
        holder,
        stale_after_ms: 60_000,
    }
}

async fn begin(store: &Store, account: &str, holder: &str, alive_fn: fn(&str) -> bool) -> BeginRun {
    store
        .begin_run(&request(account, SyncKind::Offers, holder, None), &alive_fn)
        .await
        .expect("begin run")
}

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(test_support::DbKind::Sqlite).await } )+ }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(test_support::DbKind::Postgres).await } )+ }
    };
}

on_both_backends!(
    new_offers_keep_every_column_and_a_repeated_one_its_last_copy,
    an_offer_given_as_new_that_is_stored_is_merged_and_nothing_is_lost,
    a_changed_offer_listed_on_two_pages_of_a_batch_keeps_its_last_copy,
    a_batch_commits_after_the_one_before_it_which_it_does_not_hold_up,
    a_batch_whose_earlier_batch_failed_writes_nothing,
    same_offer_id_in_two_accounts_is_two_rows,
    a_second_process_is_busy_while_the_holder_lives,
    a_dead_holders_run_is_resumed_from_its_checkpoint,
    a_stale_holder_loses_its_run_and_writes_nothing,
    removed_offers_are_marked_and_come_back_when_seen_again,
    a_hash_look_up_of_any_length_finds_exactly_the_accounts_stored_offers,
    orders_keep_their_lines_and_big_ids,
    run_outcomes_and_counts_are_recorded,
    a_scheduled_slot_gets_one_run_even_after_it_finished,
    histories_count_the_failures_since_the_last_success,
    a_schema_newer_than_this_build_is_refused_naming_both_versions,
    run_totals_count_every_ended_run_and_outlive_pruning,
    status_reads_equal_the_whole_history_queries_through_failures_retries_and_pruning,
    latest_runs_is_backfilled_from_the_runs_written_before_it_existed,
    undecodable_items_are_quarantined_once_per_text_and_summarised,
    a_removal_mark_neither_hides_nor_is_cleared_by_refused_access,
    open_returns_are_listed_by_type_in_id_order,
);

async fn undecodable_items_are_quarantined_once_per_text_and_summarised(kind: DbKind) {
    // Arrange
    let (_db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h:1:a", alive).await else {
        panic!("started");
    };
    let odd = |kind, hash, reason: &str| QuarantineRow {
        kind,
        item_id: Some("99999999999".into()),
        reason: reason.into(),
        data: format!("{{\"id\": 99999999999, \"customer\": {{\"name\": \"Ana {hash}\"}}}}"),
        content_hash: hash,
    };

    // Act: one offer twice (two runs see it), two orders.
    store
        .quarantine_items(&run, &[odd(QuarantineKind::Offer, 1, "id out of range")])
        .await
        .expect("quarantine");
    store
        .quarantine_items(
            &run,
            &[
                odd(QuarantineKind::Offer, 1, "id out of range"),
                odd(QuarantineKind::Order, 2, "order line without id"),
                odd(QuarantineKind::Order, 3, "duplicate order line id 7"),
            ],
        )
        .await
        .expect("quarantine again");

    // Assert
    let summary = store.quarantine_summary().await.expect("summary");
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert_eq!(
        (
            summary[0].account.as_str(),
            summary[0].kind,
            summary[0].items
        ),
        ("main", QuarantineKind::Offer, 1)
    );
    assert_eq!(summary[0].last_reason, "id out of range");
    assert_eq!(
        (summary[1].kind, summary[1].items),
        (QuarantineKind::Order, 2)
    );
    let items = store.quarantined_items("main", 10).await.expect("items");
    assert_eq!(items.len(), 3);
    let offer = items
        .iter()
        .find(|i| i.kind == QuarantineKind::Offer)
        .expect("the offer");
    assert_eq!(offer.times_seen, 2);
    assert!(offer.data.contains("Ana 1"), "kept raw: {}", offer.data);
    assert!(store
        .quarantined_items("fbe", 10)
        .await
        .expect("none")
        .is_empty());
}

async fn a_removal_mark_neither_hides_nor_is_cleared_by_refused_access(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let marks = |store: Store| async move {
        store
            .accounts_needing_attention()
            .await
            .expect("marks")
            .into_iter()
            .map(|(a, r, _)| (a, r))
            .collect::<Vec<_>>()
    };
    store
        .raise_attention("main", AttentionCause::Removals, "too many removed")
        .await
        .expect("raise");
    // A run that read with the account's credentials clears refused access only.
    store
        .set_attention("main", None)
        .await
        .expect("clear access");
    assert_eq!(
        marks(store.clone()).await,
        vec![("main".to_owned(), "too many removed".to_owned())]
    );
    // Refused access outranks it; a removal mark does not hide refused access.
    store
        .set_attention("main", Some("credentials refused"))
        .await
        .expect("access");
    store
        .raise_attention("main", AttentionCause::Removals, "again")
        .await
        .expect("raise");
    store
        .clear_attention("main", AttentionCause::Removals)
        .await
        .expect("clear removals");
    assert_eq!(
        marks(store.clone()).await,
        vec![("main".to_owned(), "credentials refused".to_owned())]
    );
    store.set_attention("main", None).await.expect("clear");
    assert!(marks(store.clone()).await.is_empty());
}

async fn open_returns_are_listed_by_type_in_id_order(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "fbe", "h:1:a", alive).await else {
        panic!("started");
    };
    let rma = |emag_id, rma_type, status| ReturnRow {
        emag_id,
        order_id: Some(1),
        rma_type,
        status,
        date: None,
        data: "{}".into(),
        content_hash: emag_id,
    };
    store
        .write_returns(
            &run,
            &[
                rma(5, Some(3), Some(2)),
                rma(6, Some(3), Some(7)),
                rma(7, Some(2), Some(3)),
                rma(8, None, Some(6)),
                rma(9, Some(3), None),
                rma(10, Some(3), Some(5)),
            ],
            &RunCounts::default(),
        )
        .await
        .expect("write");
    let open = |t, after, limit| {
        let store = store.clone();
        async move {
            store
                .open_return_ids("fbe", t, after, limit)
                .await
                .expect("open")
        }
    };
    assert_eq!(open(3, 0, 10).await, vec![5, 8, 9]);
    assert_eq!(open(2, 0, 10).await, vec![7, 8]);
    assert_eq!(open(3, 5, 1).await, vec![8]);
    assert!(open(3, 0, 10).await.iter().all(|id| *id != 6 && *id != 10));
}

/// One finished run of (account, kind) with the given outcome.
async fn finished(store: &Store, account: &str, kind: SyncKind, ok: bool) {
    let BeginRun::Started(run) = store
        .begin_run(&request(account, kind, "h", None), &alive)
        .await
        .expect("begin")
    else {
        panic!("expected a new run")
    };
    let outcome = if ok {
        RunOutcome::succeeded()
    } else {
        RunOutcome::Failed {
            class: domain::ErrorClass::Server,
            message: "502".into(),
            emag_messages: Vec::new(),
        }
    };
    store
        .finish_run(&run, &outcome, &RunCounts::default(), None)
        .await
        .expect("finish");
}

async fn histories_count_the_failures_since_the_last_success(kind: DbKind) {
    let (_db, store) = store(kind).await;
    for ok in [false, true, false, false] {
        finished(&store, "main", SyncKind::Offers, ok).await;
    }
    finished(&store, "main", SyncKind::Orders, false).await;
    finished(&store, "fbe", SyncKind::Offers, false).await;
    finished(&store, "fbe", SyncKind::Offers, true).await;

    let all = store.kind_histories().await.expect("histories");
    let of = |account: &str, kind: SyncKind| {
        all.iter()
            .find(|h| h.account == account && h.kind == kind)
            .map(|h| (h.latest.state, h.failures_in_row))
    };
    assert_eq!(of("main", SyncKind::Offers), Some((RunState::Failed, 2)));
    assert_eq!(of("main", SyncKind::Orders), Some((RunState::Failed, 1)));
    assert_eq!(of("fbe", SyncKind::Offers), Some((RunState::Succeeded, 0)));
    assert_eq!(all.len(), 3);
    // One (account, kind) read alone agrees.
    let one = store
        .kind_history("main", SyncKind::Offers)
        .await
        .expect("history")
        .expect("has runs");
    assert_eq!(one.failures_in_row, 2);
    assert!(store
        .kind_history("fbe", SyncKind::Returns)
        .await
        .expect("history")
        .is_none());
}

async fn a_scheduled_slot_gets_one_run_even_after_it_finished(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let slot = Some(1_700_000_000_000);
    let BeginRun::Started(run) = store
        .begin_run(&request("main", SyncKind::Offers, "h1", slot), &alive)
        .await
        .expect("begin")
    else {
        panic!("expected a new run")
    };
    // A second instance that found the same slot due while the run is active…
    assert!(matches!(
        store.begin_run(&request("main", SyncKind::Offers, "h2", slot), &alive).await.expect("begin"),
        BeginRun::SlotTaken { run_id } if run_id == run.id
    ));
    store
        .finish_run(&run, &RunOutcome::succeeded(), &RunCounts::default(), None)
        .await
        .expect("finish");
    // …or after it finished, creates nothing.
    assert!(matches!(
        store
            .begin_run(&request("main", SyncKind::Offers, "h3", slot), &alive)
            .await
            .expect("begin"),
        BeginRun::SlotTaken { .. }
    ));
    // The next slot, and manual runs, are new runs.
    assert!(matches!(
        store
            .begin_run(
                &request("main", SyncKind::Offers, "h3", Some(1_700_000_001_000)),
                &alive
            )
            .await
            .expect("begin"),
        BeginRun::Started(_)
    ));
}

async fn same_offer_id_in_two_accounts_is_two_rows(kind: DbKind) {
    let (_db, store) = store(kind).await;
    for (account, name) in [("main", "Căști"), ("fbe", "Ștecher")] {
        let BeginRun::Started(run) = begin(&store, account, "h1", alive).await else {
            panic!("expected a new run")
        };
        store
            .write_offer_page(
                &run,
                1,
                Some(1),
                &[1],
                &[offer(1, name, "10.5000")],
                &RunCounts::default(),
            )
            .await
            .expect("write");
    }
    let all = store.export_offers(None, None, 100).await.expect("export");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].account, "fbe");
    assert_eq!(all[0].name.as_deref(), Some("Ștecher"));
    assert_eq!(all[1].account, "main");
    assert_eq!(all[1].name.as_deref(), Some("Căști"));
    assert_eq!(all[1].sale_price.as_deref(), Some("10.5000"));
}

async fn a_second_process_is_busy_while_the_holder_lives(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    match begin(&store, "main", "h2", alive).await {
        BeginRun::Busy { run_id, holder } => {
            assert_eq!(run_id, run.id);
            assert_eq!(holder.as_deref(), Some("h1"));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // Another account is independent.
    assert!(matches!(
        begin(&store, "fbe", "h2", alive).await,
        BeginRun::Started(_)
    ));
}

/// Every stored column of the account's offers, by id: (offer as written, content hash,
/// removed, data).
async fn stored_offers(url: &str) -> Vec<(OfferRow, bool)> {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let rows: Vec<sqlx::any::AnyRow> = sqlx::query(
        "SELECT id, part_number, part_number_key, name, brand, status, sale_price, \
         recommended_price, currency, vat_id, general_stock, estimated_stock, ean, data, \
         content_hash, removed FROM offers WHERE account = 'main' ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("offers");
    rows.iter()
        .map(|r| {
            use sqlx::Row;
            let row = OfferRow {
                id: r.get(0),
                part_number: r.get(1),
                part_number_key: r.get(2),
                name: r.get(3),
                brand: r.get(4),
                status: r.get(5),
                sale_price: r.get(6),
                recommended_price: r.get(7),
                currency: r.get(8),
                vat_id: r.get(9),
                general_stock: r.get(10),
                estimated_stock: r.get(11),
                ean: r.get(12),
                data: r.get(13),
                content_hash: r.get(14),
            };
            (row, r.get::<i64, _>(15) != 0)
        })
        .collect()
}

/// Page `key` of a first pass: it lists `seen_ids`, and `created` are new offers; it moves
/// the checkpoint to itself.
fn new_offers_page<'a>(
    key: i64,
    seen_ids: &'a [u32],
    created: &'a [OfferRow],
) -> storage::OfferPage<'a> {
    storage::OfferPage {
        key,
        checkpoint: Some(key),
        seen_ids,
        created,
        updated: &[],
        counts: counts(created.len() as u64, 0),
        reset_missed: false,
    }
}

fn counts(created: u64, updated: u64) -> RunCounts {
    RunCounts {
        pages: 1,
        items_read: created + updated,
        created,
        updated,
        ..RunCounts::default()
    }
}

async fn new_offers_keep_every_column_and_a_repeated_one_its_last_copy(kind: DbKind) {
    // Arrange: two pages of one batch, every offer new; offer 2 has no optional field, offer 1
    // is listed on both pages (the catalog moved), fresher on the second.
    let (db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    let bare = OfferRow {
        part_number: None,
        part_number_key: None,
        name: None,
        brand: None,
        status: None,
        sale_price: None,
        recommended_price: None,
        currency: None,
        vat_id: None,
        general_stock: None,
        estimated_stock: None,
        ean: "[]".to_owned(),
        data: "{\"id\":2,\"name\":\"ă\\\"\\u0000\\t\"}".to_owned(),
        ..offer(2, "", "")
    };
    let first = [offer(1, "old", "1"), bare.clone()];
    let second = [offer(1, "new", "22"), offer(3, "line\none\ttab", "3")];
    let pages = [
        new_offers_page(1, &[1, 2], &first),
        new_offers_page(2, &[1, 3], &second),
    ];

    // Act
    store.write_offer_pages(&run, &pages).await.expect("pages");

    // Assert
    let stored = stored_offers(&db.url).await;
    let want = vec![
        (offer(1, "new", "22"), false),
        (bare, false),
        (offer(3, "line\none\ttab", "3"), false),
    ];
    assert_eq!(stored, want);
    let mut seen = store.scanned_ids(run.id).await.expect("ids");
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 1, 2, 3]);
    let row = store.get_run(run.id).await.expect("run").expect("row");
    assert_eq!((row.counts.pages, row.counts.created), (2, 4));
    assert_eq!(row.checkpoint_page, 2);
}

async fn an_offer_given_as_new_that_is_stored_is_merged_and_nothing_is_lost(kind: DbKind) {
    // Arrange: offer 1 is stored and marked removed; a batch then gives it as new (a wrong
    // guess) beside a really new one.
    let (db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    store
        .write_offer_page(&run, 1, Some(1), &[1], &[offer(1, "a", "1")], &counts(1, 0))
        .await
        .expect("page 1");
    store
        .mark_offers_removed(&run, &[1])
        .await
        .expect("removed");
    let created = [offer(1, "a again", "11"), offer(4, "d", "4")];
    let page = storage::OfferPage {
        key: 2,
        checkpoint: Some(2),
        seen_ids: &[1, 4],
        created: &created,
        updated: &[],
        counts: counts(2, 0),
        reset_missed: true,
    };

    // Act
    store
        .write_offer_pages(&run, &[page])
        .await
        .expect("page 2");

    // Assert: both stored, offer 1 live again with its new content; counted once.
    let stored = stored_offers(&db.url).await;
    assert_eq!(
        stored,
        vec![
            (offer(1, "a again", "11"), false),
            (offer(4, "d", "4"), false)
        ]
    );
    let row = store.get_run(run.id).await.expect("run").expect("row");
    assert_eq!((row.counts.pages, row.counts.created), (2, 3));
    assert_eq!(row.checkpoint_page, 2);
}

async fn a_changed_offer_listed_on_two_pages_of_a_batch_keeps_its_last_copy(kind: DbKind) {
    // Arrange
    let (db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    store
        .write_offer_page(
            &run,
            1,
            Some(1),
            &[1, 2],
            &[offer(1, "a", "1"), offer(2, "b", "2")],
            &counts(2, 0),
        )
        .await
        .expect("page 1");
    let first = [offer(1, "a2", "12")];
    let second = [offer(1, "a3", "123"), offer(2, "b2", "22")];
    let pages = [
        storage::OfferPage {
            key: 2,
            checkpoint: Some(2),
            seen_ids: &[1],
            created: &[],
            updated: &first,
            counts: counts(0, 1),
            reset_missed: true,
        },
        storage::OfferPage {
            key: 3,
            checkpoint: Some(3),
            seen_ids: &[1, 2],
            created: &[],
            updated: &second,
            counts: counts(0, 2),
            reset_missed: true,
        },
    ];

    // Act
    store.write_offer_pages(&run, &pages).await.expect("pages");
    store
        .write_offer_pages(&run, &pages[1..])
        .await
        .expect("the same page again");

    // Assert
    let stored = stored_offers(&db.url).await;
    assert_eq!(
        stored,
        vec![
            (offer(1, "a3", "123"), false),
            (offer(2, "b2", "22"), false)
        ]
    );
}

/// The ids of main's stored offers, ascending.
async fn stored_ids(url: &str) -> Vec<i64> {
    stored_offers(url)
        .await
        .into_iter()
        .map(|(o, _)| o.id)
        .collect()
}

async fn a_batch_commits_after_the_one_before_it_which_it_does_not_hold_up(kind: DbKind) {
    // Arrange: the second batch of a scan (page 2) is under way first; it tells when it
    // waits for the batch before it (PostgreSQL: its offers copied by then).
    let (db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    let (waiting, is_waiting) = tokio::sync::oneshot::channel::<()>();
    let (go, gate) = tokio::sync::oneshot::channel::<()>();
    let writer = store.page_writer().await.expect("connection");
    let second = {
        let (store, run) = (store.clone(), run.clone());
        tokio::spawn(async move {
            let created = [offer(3, "c", "3"), offer(4, "d", "4")];
            let page = new_offers_page(2, &[3, 4], &created);
            let earlier = async move {
                let _ = waiting.send(());
                gate.await.is_ok()
            };
            store
                .write_offer_pages_after(writer, &run, &[page], earlier)
                .await
        })
    };
    is_waiting
        .await
        .expect("the second batch waits for the first");

    // Act: the first batch is written meanwhile. Were the run's row locked by the second
    // batch before its turn, this would wait for it for ever.
    let first = [offer(1, "a", "1"), offer(2, "b", "2")];
    let page = new_offers_page(1, &[1, 2], &first);
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        store.write_offer_pages(&run, &[page]),
    )
    .await
    .expect("the first batch is not held up by the second")
    .expect("first batch");

    // Assert: the first is stored and checkpointed, the second not yet; then it commits.
    assert_eq!(stored_ids(&db.url).await, vec![1, 2]);
    let row = store.get_run(run.id).await.expect("run").expect("row");
    assert_eq!((row.checkpoint_page, row.counts.created), (1, 2));
    go.send(()).expect("the second batch waits");
    second.await.expect("task").expect("second batch");
    assert_eq!(stored_ids(&db.url).await, vec![1, 2, 3, 4]);
    let row = store.get_run(run.id).await.expect("run").expect("row");
    assert_eq!((row.checkpoint_page, row.counts.created), (2, 4));
    let mut seen = store.scanned_ids(run.id).await.expect("ids");
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2, 3, 4]);
}

async fn a_batch_whose_earlier_batch_failed_writes_nothing(kind: DbKind) {
    // Arrange
    let (db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    let created = [offer(3, "c", "3")];
    let page = new_offers_page(2, &[3], &created);

    // Act
    let writer = store.page_writer().await.expect("connection");
    let refused = store
        .write_offer_pages_after(writer, &run, &[page], std::future::ready(false))
        .await;

    // Assert: no offer, no ids, no checkpoint, no counts.
    assert!(
        matches!(refused, Err(StorageError::EarlierWriteFailed(id)) if id == run.id),
        "{refused:?}"
    );
    assert_eq!(stored_ids(&db.url).await, Vec::<i64>::new());
    assert_eq!(
        store.scanned_ids(run.id).await.expect("ids"),
        Vec::<u32>::new()
    );
    let row = store.get_run(run.id).await.expect("run").expect("row");
    assert_eq!((row.checkpoint_page, row.counts.created), (0, 0));
}

async fn a_dead_holders_run_is_resumed_from_its_checkpoint(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    store
        .write_offer_page(
            &run,
            1,
            Some(1),
            &[1, 2],
            &[offer(1, "a", "1"), offer(2, "b", "2")],
            &RunCounts::default(),
        )
        .await
        .expect("page 1");
    store
        .write_offer_page(
            &run,
            2,
            Some(2),
            &[3],
            &[offer(3, "c", "3")],
            &RunCounts::default(),
        )
        .await
        .expect("page 2");
    match begin(&store, "main", "h2", dead).await {
        BeginRun::Resumed {
            run: resumed,
            previous_holder,
        } => {
            assert_eq!(resumed.id, run.id);
            assert_eq!(resumed.attempt, 2);
            assert_eq!(resumed.checkpoint_page, 2);
            assert_eq!(previous_holder.as_deref(), Some("h1"));
            let mut seen = store.scanned_ids(resumed.id).await.expect("ids");
            seen.sort_unstable();
            assert_eq!(seen, vec![1, 2, 3]);
        }
        other => panic!("expected Resumed, got {other:?}"),
    }
}

async fn a_stale_holder_loses_its_run_and_writes_nothing(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let BeginRun::Started(old) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    let BeginRun::Resumed { .. } = begin(&store, "main", "h2", dead).await else {
        panic!("expected a take-over")
    };
    let err = store
        .write_offer_page(
            &old,
            1,
            Some(1),
            &[9],
            &[offer(9, "late", "1")],
            &RunCounts::default(),
        )
        .await
        .expect_err("stale holder must be fenced");
    assert!(matches!(err, StorageError::LeaseLost(id) if id == old.id));
    assert_eq!(store.count_offers("main").await.expect("count"), (0, 0));
    assert!(matches!(
        store.heartbeat_run(&old).await,
        Err(StorageError::LeaseLost(_))
    ));
}

async fn removed_offers_are_marked_and_come_back_when_seen_again(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    let rows: Vec<_> = (1..=5).map(|i| offer(i, "x", "1")).collect();
    store
        .write_offer_page(
            &run,
            1,
            Some(1),
            &[1, 2, 3, 4, 5],
            &rows,
            &RunCounts::default(),
        )
        .await
        .expect("write");
    assert_eq!(
        store.live_offer_ids("main", 0, 2).await.expect("ids"),
        vec![1, 2]
    );
    assert_eq!(
        store.live_offer_ids("main", 2, 10).await.expect("ids"),
        vec![3, 4, 5]
    );
    assert_eq!(
        store
            .mark_offers_removed(&run, &[2, 4])
            .await
            .expect("remove"),
        2
    );
    assert_eq!(store.count_offers("main").await.expect("count"), (3, 2));
    let hashes = store.offer_hashes("main", &[2, 3]).await.expect("hashes");
    assert!(hashes[&2].removed);
    assert!(!hashes[&3].removed);
    store
        .write_offer_page(
            &run,
            2,
            Some(2),
            &[2],
            &[offer(2, "x", "1")],
            &RunCounts::default(),
        )
        .await
        .expect("again");
    assert_eq!(store.count_offers("main").await.expect("count"), (4, 1));
}

async fn a_hash_look_up_of_any_length_finds_exactly_the_accounts_stored_offers(kind: DbKind) {
    // Arrange: 250 offers of "main" (one marked removed), and offer 300 of "fbe" only
    let (_db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    let rows: Vec<OfferRow> = (1..=250).map(|i| offer(i, "x", "1")).collect();
    for (page, chunk) in (1_i64..).zip(rows.chunks(100)) {
        let ids: Vec<u32> = chunk.iter().map(|r| r.id as u32).collect();
        store
            .write_offer_page(&run, page, Some(page), &ids, chunk, &RunCounts::default())
            .await
            .expect("write");
    }
    store.mark_offers_removed(&run, &[7]).await.expect("remove");
    let BeginRun::Started(fbe) = begin(&store, "fbe", "h1", alive).await else {
        panic!("expected a new run")
    };
    store
        .write_offer_page(
            &fbe,
            1,
            Some(1),
            &[300],
            &[offer(300, "y", "2")],
            &RunCounts::default(),
        )
        .await
        .expect("fbe write");

    // Act: lists of 1, 3, 101 and 12,000 ids (past any statement's share), with ids stored
    // nowhere and the other account's offer 300 among them
    let short = store.offer_hashes("main", &[250]).await.expect("one");
    let few = store.offer_hashes("main", &[5, 7, 999]).await.expect("few");
    let page_and_one: Vec<i64> = (200..=300).collect();
    let past_page = store
        .offer_hashes("main", &page_and_one)
        .await
        .expect("101");
    let all: Vec<i64> = (1..=12_000).rev().collect();
    let long = store.offer_hashes("main", &all).await.expect("12,000");

    // Assert
    assert_eq!(short.len(), 1);
    assert_eq!(short[&250].content_hash, offer(250, "x", "1").content_hash);
    assert_eq!(few.len(), 2);
    assert!(few[&7].removed && !few[&5].removed);
    let mut ids: Vec<i64> = past_page.keys().copied().collect();
    ids.sort_unstable();
    assert_eq!(ids, (200..=250).collect::<Vec<_>>());
    assert_eq!(long.len(), 250);
    for row in &rows {
        let stored = long[&row.id];
        assert_eq!(stored.content_hash, row.content_hash, "offer {}", row.id);
        assert_eq!(stored.removed, row.id == 7, "offer {}", row.id);
    }
}

async fn orders_keep_their_lines_and_big_ids(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let run = match store
        .begin_run(&request("fbe", SyncKind::Orders, "h1", None), &alive)
        .await
        .expect("begin")
    {
        BeginRun::Started(run) => run,
        other => panic!("{other:?}"),
    };
    let big = 4_294_967_295_i64;
    let line = |id, price: &str| OrderLineRow {
        line_id: id,
        product_id: Some(1),
        part_number: Some("P".into()),
        name: Some("Încărcător".into()),
        quantity: Some(2),
        sale_price: Some(price.into()),
        currency: Some("RON".into()),
        vat: Some("0.2100".into()),
        status: Some(1),
    };
    let order = OrderRow {
        id: big,
        order_type: 2,
        status: Some(4),
        date: Some("2025-10-12 09:01:13".into()),
        modified: Some("2025-10-12 18:44:05".into()),
        payment_mode_id: Some(3),
        customer_id: Some(778),
        customer_name: Some("Ana Pop".into()),
        data: "{}".into(),
        content_hash: 1,
        lines: vec![line(1, "26.4463"), line(2, "1.0000")],
    };
    store
        .write_orders(
            &run,
            std::slice::from_ref(&order),
            &[],
            &RunCounts::default(),
        )
        .await
        .expect("write");
    let mut changed = order.clone();
    changed.lines.truncate(1);
    changed.content_hash = 2;
    store
        .write_orders(&run, &[], &[changed], &RunCounts::default())
        .await
        .expect("rewrite");
    let out = store
        .export_orders(Some("fbe"), None, 10)
        .await
        .expect("export");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, big);
    assert_eq!(out[0].products.len(), 1);
    assert_eq!(out[0].products[0].sale_price.as_deref(), Some("26.4463"));
    // Given as created though it is stored (the caller's word was wrong): the page is written
    // again with the order merged and its lines replaced — none of the old ones kept, even
    // when no line id repeats.
    let mut again = order.clone();
    again.lines = vec![line(3, "2.0000"), line(4, "3.0000")];
    again.content_hash = 3;
    store
        .write_orders(&run, &[again], &[], &RunCounts::default())
        .await
        .expect("written again, lines replaced");
    let out = store
        .export_orders(Some("fbe"), None, 10)
        .await
        .expect("export");
    let prices: Vec<_> = out[0]
        .products
        .iter()
        .map(|l| l.sale_price.as_deref())
        .collect();
    assert_eq!(prices, [Some("2.0000"), Some("3.0000")]);
    assert_eq!(
        store
            .latest_order_modified("fbe", 2, "2099-01-01 00:00:00")
            .await
            .expect("cursor")
            .as_deref(),
        Some("2025-10-12 18:44:05")
    );
    assert_eq!(
        store
            .latest_order_modified("fbe", 3, "2099-01-01 00:00:00")
            .await
            .expect("cursor"),
        None
    );
    // An order stamped later than eMAG's "now" does not carry the cursor.
    assert_eq!(
        store
            .latest_order_modified("fbe", 2, "2025-10-12 18:44:04")
            .await
            .expect("cursor"),
        None
    );
}

async fn run_outcomes_and_counts_are_recorded(kind: DbKind) {
    let (_db, store) = store(kind).await;
    let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
        panic!("expected a new run")
    };
    let page = RunCounts {
        pages: 1,
        items_read: 2,
        created: 2,
        ..Default::default()
    };
    store
        .write_offer_page(
            &run,
            1,
            Some(1),
            &[1, 2],
            &[offer(1, "a", "1"), offer(2, "b", "1")],
            &page,
        )
        .await
        .expect("page");
    let extra = RunCounts {
        requests: 3,
        rate_limit_waits: 1,
        ..Default::default()
    };
    let outcome = RunOutcome::Failed {
        class: domain::ErrorClass::Auth,
        message: "bad password".into(),
        emag_messages: vec!["You are not allowed to use this API.".into()],
    };
    store
        .finish_run(&run, &outcome, &extra, None)
        .await
        .expect("finish");
    let rows = store
        .list_runs(&RunFilter {
            account: Some("main".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.state, RunState::Failed);
    assert_eq!(row.error_class, Some(domain::ErrorClass::Auth));
    assert_eq!(
        row.emag_messages,
        vec!["You are not allowed to use this API.".to_owned()]
    );
    assert_eq!(
        (row.counts.pages, row.counts.created, row.counts.requests),
        (1, 2, 3)
    );
    // The finished run no longer blocks a new one.
    assert!(matches!(
        begin(&store, "main", "h2", alive).await,
        BeginRun::Started(_)
    ));
}

mod success_messages {
    use super::*;

    /// Issue 9, point 5: a run that succeeded after reads answered `isError` and retried
    /// keeps eMAG's messages; a success without any stores none.
    async fn a_success_keeps_emags_messages_and_a_quiet_one_has_none(kind: DbKind) {
        let (_db, store) = store(kind).await;
        let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
            panic!("expected a new run")
        };
        let outcome = RunOutcome::Succeeded {
            emag_messages: vec!["Temporary problem, please retry".into()],
        };
        let retried = RunCounts {
            retries: 1,
            ..Default::default()
        };
        store
            .finish_run(&run, &outcome, &retried, None)
            .await
            .expect("finish");
        let BeginRun::Started(quiet) = begin(&store, "main", "h1", alive).await else {
            panic!("expected a new run")
        };
        store
            .finish_run(
                &quiet,
                &RunOutcome::succeeded(),
                &RunCounts::default(),
                None,
            )
            .await
            .expect("finish");

        let row = store.get_run(run.id).await.expect("get").expect("row");
        assert_eq!(row.state, RunState::Succeeded);
        assert_eq!(row.error_class, None);
        assert_eq!(row.counts.retries, 1);
        assert_eq!(row.emag_messages, ["Temporary problem, please retry"]);
        let row = store.get_run(quiet.id).await.expect("get").expect("row");
        assert_eq!(row.state, RunState::Succeeded);
        assert!(row.emag_messages.is_empty());
    }

    on_both_backends!(a_success_keeps_emags_messages_and_a_quiet_one_has_none);
}

mod pause_and_prune {
    use super::*;

    async fn paused_accounts_are_remembered_and_old_runs_pruned(kind: DbKind) {
        let (_db, store) = store(kind).await;
        assert!(store.set_paused("fbe", true).await.expect("pause"));
        assert!(!store.set_paused("nobody", true).await.expect("unknown"));
        assert_eq!(
            store.paused_accounts().await.expect("paused"),
            vec!["fbe".to_owned()]
        );
        // Registering the account again (every start does) keeps it paused.
        store
            .upsert_account("fbe", "fbe", "emag_ro", "http://x/api-3")
            .await
            .expect("account");
        assert_eq!(
            store.paused_accounts().await.expect("paused"),
            vec!["fbe".to_owned()]
        );
        assert!(store.set_paused("fbe", false).await.expect("resume"));
        assert!(store.paused_accounts().await.expect("paused").is_empty());

        let BeginRun::Started(run) = begin(&store, "main", "h1", alive).await else {
            panic!("run")
        };
        store
            .finish_run(&run, &RunOutcome::succeeded(), &RunCounts::default(), None)
            .await
            .expect("finish");
        assert_eq!(store.prune_runs(0).await.expect("prune nothing"), 0);
        assert_eq!(
            store
                .prune_runs(storage::now_ms() + 1)
                .await
                .expect("prune"),
            1
        );
    }

    #[tokio::test]
    async fn on_sqlite() {
        paused_accounts_are_remembered_and_old_runs_pruned(DbKind::Sqlite).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        paused_accounts_are_remembered_and_old_runs_pruned(DbKind::Postgres).await;
    }

    #[tokio::test]
    async fn sqlite_backups_are_consistent_copies() {
        let (db, store) = store(DbKind::Sqlite).await;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("backups/copy.db");
        store.backup_sqlite_into(&path).await.expect("backup");
        let copy = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .expect("open copy");
        assert_eq!(
            copy.paused_accounts().await.expect("readable"),
            Vec::<String>::new()
        );
        drop(db);
        let (_pg, pg) = store_on_postgres().await;
        assert!(matches!(
            pg.backup_sqlite_into(&path).await,
            Err(StorageError::Unsupported(_))
        ));
    }

    async fn store_on_postgres() -> (TestDb, Store) {
        store(DbKind::Postgres).await
    }
}

async fn a_schema_newer_than_this_build_is_refused_naming_both_versions(kind: DbKind) {
    // Arrange: a database migrated by this build, then by a "newer" one (a row the migrator
    // of this build does not have).
    let (db, store) = store(kind).await;
    let known = store.newest_schema_version();
    assert_eq!(store.schema_version().await.expect("version"), Some(known));
    let newer = known + 3;
    let mut conn = sqlx::AnyConnection::connect(&db.url)
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from a newer emag-sync', TRUE, $2, 0)",
    )
    .bind(newer)
    .bind(vec![0_u8; 48])
    .execute(&mut conn)
    .await
    .expect("insert a newer migration");
    conn.close().await.expect("close");
    store.close().await;

    // Act
    let opened = Store::open(&db.url).await;
    let migrated = Store::connect(&db.url)
        .await
        .expect("connect")
        .migrate()
        .await;

    // Assert
    for result in [opened.map(|_| ()), migrated] {
        match result {
            Err(e @ StorageError::SchemaTooNew { found, known: k }) => {
                assert_eq!((found, k), (newer, known));
                let message = e.to_string();
                assert!(
                    message.contains(&format!("version {newer}"))
                        && message.contains(&format!("up to {known}"))
                        && message.contains("upgrade emag-sync"),
                    "{message}"
                );
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
}

async fn run_totals_count_every_ended_run_and_outlive_pruning(kind: DbKind) {
    let (_db, store) = store(kind).await;
    finished(&store, "main", SyncKind::Offers, true).await;
    finished(&store, "main", SyncKind::Offers, true).await;
    finished(&store, "main", SyncKind::Offers, false).await;
    // A run taken over from a dead holder counts as reclaimed, while active and once ended.
    assert_eq!(store.run_totals_version().await.expect("version"), 3);
    let BeginRun::Started(_) = begin(&store, "fbe", "h1", alive).await else {
        panic!("expected a new run")
    };
    let BeginRun::Resumed { run, .. } = begin(&store, "fbe", "h2", dead).await else {
        panic!("expected a takeover")
    };
    let active = store.active_run_counts().await.expect("active");
    assert_eq!((active.running, active.reclaimed), (1, 1));
    let extra = RunCounts {
        created: 5,
        requests: 7,
        rate_limit_waits: 2,
        ..Default::default()
    };
    store
        .finish_run(&run, &RunOutcome::succeeded(), &extra, None)
        .await
        .expect("finish");
    assert_eq!(
        store.active_run_counts().await.expect("active"),
        storage::ActiveRunCounts::default()
    );

    let totals = store.run_totals().await.expect("totals");
    let find = |account: &str, outcome: RunState| {
        totals
            .iter()
            .find(|t| t.account == account && t.outcome == outcome)
            .cloned()
            .expect("a totals row")
    };
    assert_eq!(totals.len(), 3, "{totals:?}");
    let ok = find("main", RunState::Succeeded);
    assert_eq!(
        (ok.kind, ok.trigger, ok.runs),
        (SyncKind::Offers, RunTrigger::Manual, 2)
    );
    assert!(ok.last_started_at.is_some() && ok.last_finished_at >= ok.last_started_at);
    assert_eq!(find("main", RunState::Failed).runs, 1);
    let fbe = find("fbe", RunState::Succeeded);
    assert_eq!(
        (
            fbe.runs,
            fbe.created,
            fbe.requests,
            fbe.rate_limit_waits,
            fbe.reclaimed
        ),
        (1, 5, 7, 2, 1)
    );

    // Pruning the history keeps the counters: they only ever grow.
    assert_eq!(
        store
            .prune_runs(storage::now_ms() + 1)
            .await
            .expect("prune"),
        4
    );
    assert_eq!(store.run_totals().await.expect("totals"), totals);
    assert_eq!(store.run_totals_version().await.expect("version"), 4);
}

// ---- The status reads over `latest_runs` (migration 0007) answer what the whole-history
// queries they replaced answered. The reference queries below are those queries, verbatim.

mod old_queries {
    pub const LATEST: &str =
        "SELECT id FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY account, kind) \
         ORDER BY account, kind";
    pub const FAILURES: &str = "SELECT r.account, r.kind, COUNT(*) FROM runs r \
        WHERE r.state = 'failed' AND r.id > COALESCE((SELECT MAX(s.id) FROM runs s \
        WHERE s.account = r.account AND s.kind = r.kind AND s.state = 'succeeded'), 0) \
        GROUP BY r.account, r.kind";
    pub const SUCCESSES: &str = "SELECT id FROM runs WHERE id IN (SELECT MAX(id) FROM runs \
        WHERE state = 'succeeded' GROUP BY account, kind) ORDER BY account, kind";
    pub const LOG_SUMMARY: &str =
        "SELECT COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0), \
        COALESCE(SUM(CASE WHEN state = 'succeeded' AND (retries > 0 OR reclaimed_from IS NOT NULL) \
        THEN 1 ELSE 0 END), 0), MAX(finished_at) FROM runs WHERE finished_at >= $1";
    pub const RECLAIMED: &str = "SELECT COUNT(*) FROM runs WHERE reclaimed_at >= $1";
    pub const RECENT_FAILURES: &str = "SELECT id FROM runs WHERE finished_at >= $1 \
        AND state = 'failed' ORDER BY finished_at DESC, id DESC LIMIT $2";
    pub const OUTCOMES: &str = "SELECT account, kind, state, started_at, finished_at FROM runs \
        WHERE id IN (SELECT MAX(id) FROM runs WHERE state = 'succeeded' AND finished_at < $1 \
        GROUP BY account, kind) \
        UNION ALL SELECT account, kind, state, started_at, finished_at FROM runs \
        WHERE finished_at >= $1 AND state IN ('succeeded', 'failed') \
        ORDER BY 1, 2, 5";
}

/// (account, kind, latest run id, its state, failures in a row), as the store reads them.
type HistoryView = Vec<(String, SyncKind, i64, RunState, u32)>;

/// Asserts that every status read of `store` equals the old whole-history query's answer, and
/// returns the histories for the caller's own assertions.
async fn assert_status_reads_match_old_queries(store: &Store, url: &str) -> HistoryView {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let latest: Vec<(i64,)> = sqlx::query_as(old_queries::LATEST)
        .fetch_all(&mut conn)
        .await
        .expect("old latest");
    let failures: Vec<(String, String, i64)> = sqlx::query_as(old_queries::FAILURES)
        .fetch_all(&mut conn)
        .await
        .expect("old failures");
    let histories = store.kind_histories().await.expect("histories");
    let view: HistoryView = histories
        .iter()
        .map(|h| {
            (
                h.account.clone(),
                h.kind,
                h.latest.id,
                h.latest.state,
                h.failures_in_row,
            )
        })
        .collect();
    assert_eq!(
        histories.iter().map(|h| h.latest.id).collect::<Vec<_>>(),
        latest.iter().map(|(id,)| *id).collect::<Vec<_>>(),
        "latest run of every (account, kind)"
    );
    for h in &histories {
        assert_eq!(
            Some(&h.latest),
            store.get_run(h.latest.id).await.expect("run").as_ref()
        );
        let expected = if h.latest.state == RunState::Failed {
            failures
                .iter()
                .find(|(a, k, _)| *a == h.account && k == h.kind.as_str())
                .map_or(0, |(_, _, n)| u32::try_from(*n).expect("small"))
        } else {
            0
        };
        assert_eq!(
            h.failures_in_row, expected,
            "failures in a row of {}/{}",
            h.account, h.kind
        );
        let one = store
            .kind_history(&h.account, h.kind)
            .await
            .expect("history")
            .expect("has runs");
        assert_eq!(&one, h, "one (account, kind) read alone agrees");
    }

    let successes: Vec<(i64,)> = sqlx::query_as(old_queries::SUCCESSES)
        .fetch_all(&mut conn)
        .await
        .expect("old successes");
    assert_eq!(
        store
            .last_successes()
            .await
            .expect("successes")
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        successes.iter().map(|(id,)| *id).collect::<Vec<_>>(),
        "latest success of every (account, kind)"
    );

    for since in [0, storage::now_ms() - 3_600_000, storage::now_ms() + 60_000] {
        let (errors, warnings, last): (i64, i64, Option<i64>) =
            sqlx::query_as(old_queries::LOG_SUMMARY)
                .bind(since)
                .fetch_one(&mut conn)
                .await
                .expect("old summary");
        let summary = store.run_log_summary(since).await.expect("summary");
        assert_eq!(
            (summary.errors, summary.warnings, summary.last_finished_at),
            (errors, warnings, last),
            "run log summary since {since}"
        );
        let (reclaimed,): (i64,) = sqlx::query_as(old_queries::RECLAIMED)
            .bind(since)
            .fetch_one(&mut conn)
            .await
            .expect("old reclaimed");
        assert_eq!(
            store.reclaimed_runs(since).await.expect("reclaimed"),
            reclaimed
        );
        let recent: Vec<(i64,)> = sqlx::query_as(old_queries::RECENT_FAILURES)
            .bind(since)
            .bind(3_i64)
            .fetch_all(&mut conn)
            .await
            .expect("old recent failures");
        assert_eq!(
            store
                .recent_failures(since, 3)
                .await
                .expect("recent failures")
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>(),
            recent.iter().map(|(id,)| *id).collect::<Vec<_>>()
        );
        type Outcome = (String, String, String, Option<i64>, Option<i64>);
        let mut outcomes: Vec<Outcome> = sqlx::query_as(old_queries::OUTCOMES)
            .bind(since)
            .fetch_all(&mut conn)
            .await
            .expect("old outcomes");
        // Runs of one (account, kind) may end in the same millisecond: compare as sets.
        outcomes.sort();
        let mut read: Vec<Outcome> = store
            .outcomes_since(since)
            .await
            .expect("outcomes")
            .into_iter()
            .map(|p| {
                (
                    p.account,
                    p.kind.as_str().to_owned(),
                    p.state.as_str().to_owned(),
                    Some(p.started_at),
                    Some(p.finished_at),
                )
            })
            .collect();
        read.sort();
        assert_eq!(read, outcomes, "outcomes since {since}");
    }
    conn.close().await.expect("close");
    view
}

/// Starts a run of (account, kind) as `holder`; panics unless it is a new one.
async fn started(store: &Store, account: &str, kind: SyncKind, holder: &str) -> storage::ActiveRun {
    match store
        .begin_run(&request(account, kind, holder, None), &alive)
        .await
        .expect("begin")
    {
        BeginRun::Started(run) => run,
        other => panic!("expected a new run, got {other:?}"),
    }
}

/// Moves the end of runs into the past (what pruning looks at), as if they ran long ago.
async fn age_runs(url: &str, ids: &[i64], days: i64) {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    for id in ids {
        sqlx::query("UPDATE runs SET finished_at = finished_at - $1 WHERE id = $2")
            .bind(days * 86_400_000)
            .bind(*id)
            .execute(&mut conn)
            .await
            .expect("age run");
    }
    conn.close().await.expect("close");
}

async fn status_reads_equal_the_whole_history_queries_through_failures_retries_and_pruning(
    kind: DbKind,
) {
    // Arrange: kinds of two accounts interleaved; failures, successes, a success after
    // retries, a takeover from a dead holder, a run in progress and one queued.
    let (db, store) = store(kind).await;
    let failed = || RunOutcome::Failed {
        class: domain::ErrorClass::Server,
        message: "502".into(),
        emag_messages: Vec::new(),
    };
    let mut ids = std::collections::HashMap::new();
    let mut running = None;
    let script: [(&str, &str, SyncKind, Option<bool>); 14] = [
        ("mo1", "main", SyncKind::Offers, Some(true)),
        ("fo1", "fbe", SyncKind::Offers, Some(false)),
        ("mo2", "main", SyncKind::Offers, Some(false)),
        ("mr1", "main", SyncKind::Returns, Some(false)),
        ("mo3", "main", SyncKind::Offers, Some(true)),
        ("fo2", "fbe", SyncKind::Offers, Some(true)),
        ("mr2", "main", SyncKind::Returns, Some(false)),
        ("mo4", "main", SyncKind::Offers, Some(false)),
        ("mn1", "main", SyncKind::Orders, Some(true)),
        ("fr1", "fbe", SyncKind::Returns, Some(true)),
        ("mo5", "main", SyncKind::Offers, Some(false)),
        ("mn2", "main", SyncKind::Orders, Some(true)),
        ("mr3", "main", SyncKind::Returns, Some(false)),
        ("fr2", "fbe", SyncKind::Returns, None),
    ];
    for (name, account, k, ok) in script {
        let run = started(&store, account, k, "h1").await;
        ids.insert(name, run.id);
        let retries = RunCounts {
            retries: u64::from(name == "mn2"),
            ..Default::default()
        };
        match ok {
            Some(true) => store
                .finish_run(&run, &RunOutcome::succeeded(), &retries, None)
                .await
                .expect("finish"),
            Some(false) => store
                .finish_run(&run, &failed(), &retries, None)
                .await
                .expect("finish"),
            // fr2 stays running: the account's one running place.
            None => running = Some(run),
        }
    }
    // The orders of a third account: taken over from a dead holder, then succeeded.
    store
        .upsert_account("third", "third", "emag_ro", "http://x/api-3")
        .await
        .expect("account");
    let first = started(&store, "third", SyncKind::Orders, "h1").await;
    let BeginRun::Resumed { run: taken, .. } = store
        .begin_run(&request("third", SyncKind::Orders, "h2", None), &dead)
        .await
        .expect("take over")
    else {
        panic!("expected a takeover")
    };
    assert_eq!(taken.id, first.id);
    store
        .finish_run(
            &taken,
            &RunOutcome::succeeded(),
            &RunCounts::default(),
            None,
        )
        .await
        .expect("finish");
    ids.insert("tn1", taken.id);
    let storage::Enqueued::Queued { run_id } = store
        .enqueue_run("third", SyncKind::Offers, false)
        .await
        .expect("enqueue")
    else {
        panic!("expected a queued run")
    };
    ids.insert("to1", run_id);

    // Act + Assert: every read equals the old query's, and the figures are the expected ones.
    let view = assert_status_reads_match_old_queries(&store, &db.url).await;
    let of = |view: &HistoryView, account: &str, k: SyncKind| {
        view.iter()
            .find(|(a, kk, ..)| a == account && *kk == k)
            .map(|(_, _, id, state, n)| (*id, *state, *n))
    };
    assert_eq!(
        of(&view, "main", SyncKind::Offers),
        Some((ids["mo5"], RunState::Failed, 2))
    );
    assert_eq!(
        of(&view, "main", SyncKind::Returns),
        Some((ids["mr3"], RunState::Failed, 3))
    );
    assert_eq!(
        of(&view, "fbe", SyncKind::Returns),
        Some((ids["fr2"], RunState::Running, 0))
    );
    assert_eq!(
        of(&view, "third", SyncKind::Offers),
        Some((ids["to1"], RunState::Queued, 0))
    );
    assert_eq!(view.len(), 7);
    let summary = store.run_log_summary(0).await.expect("summary");
    // The success after retries and the one after a takeover are warnings.
    assert_eq!((summary.errors, summary.warnings), (7, 2));
    assert_eq!(store.reclaimed_runs(0).await.expect("reclaimed"), 1);

    // Arrange: history ages. main/offers loses its latest success (mo3) and everything
    // before it; main/orders ends long ago entirely; the latest run of fbe/offers (fo2) ended
    // before an earlier one (fo1: clocks of two hosts disagree), so pruning takes the latest
    // and leaves the earlier; fbe/returns keeps its running run but loses its only success.
    age_runs(
        &db.url,
        &[
            ids["mo1"], ids["mo2"], ids["mo3"], ids["mn1"], ids["mn2"], ids["fo2"], ids["fr1"],
        ],
        40,
    )
    .await;
    let pruned = store
        .prune_runs(storage::now_ms() - 30 * 86_400_000)
        .await
        .expect("prune");
    assert_eq!(pruned, 7);

    // Assert
    let view = assert_status_reads_match_old_queries(&store, &db.url).await;
    assert_eq!(
        of(&view, "main", SyncKind::Offers),
        Some((ids["mo5"], RunState::Failed, 2)),
        "failures after a pruned success still count from it"
    );
    assert_eq!(of(&view, "main", SyncKind::Orders), None);
    assert_eq!(
        of(&view, "fbe", SyncKind::Offers),
        Some((ids["fo1"], RunState::Failed, 1)),
        "a pruned latest run falls back to the latest remaining one"
    );
    let successes = store.last_successes().await.expect("successes");
    assert_eq!(
        successes.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids["tn1"]],
        "a success older than the retention is gone, as it was with the old queries"
    );

    // Act: schedules go on after the pruning, including one that had no run left.
    let fr2 = running.expect("fr2 runs");
    store
        .finish_run(&fr2, &failed(), &RunCounts::default(), None)
        .await
        .expect("finish");
    let next = started(&store, "main", SyncKind::Orders, "h3").await;
    store
        .finish_run(&next, &failed(), &RunCounts::default(), None)
        .await
        .expect("finish");
    let offers = started(&store, "fbe", SyncKind::Offers, "h3").await;
    let view = assert_status_reads_match_old_queries(&store, &db.url).await;
    assert_eq!(
        of(&view, "main", SyncKind::Orders),
        Some((next.id, RunState::Failed, 1))
    );
    assert_eq!(
        of(&view, "fbe", SyncKind::Offers),
        Some((offers.id, RunState::Running, 0))
    );
    store
        .finish_run(
            &offers,
            &RunOutcome::succeeded(),
            &RunCounts::default(),
            None,
        )
        .await
        .expect("finish");
    let view = assert_status_reads_match_old_queries(&store, &db.url).await;
    assert_eq!(
        of(&view, "fbe", SyncKind::Offers),
        Some((offers.id, RunState::Succeeded, 0))
    );
}

async fn latest_runs_is_backfilled_from_the_runs_written_before_it_existed(kind: DbKind) {
    // Arrange: a database at schema 6 with runs in it.
    let db = TestDb::new(kind).await;
    let dir = match kind {
        DbKind::Sqlite => "sqlite",
        DbKind::Postgres => "postgres",
    };
    let mut migrator = sqlx::migrate::Migrator::new(std::path::Path::new(&format!(
        "{}/migrations/{dir}",
        env!("CARGO_MANIFEST_DIR")
    )))
    .await
    .expect("migrations");
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 6)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let store = Store::connect(&db.url).await.expect("connect");
    {
        let url = match kind {
            DbKind::Sqlite => format!("{}?mode=rwc", db.url),
            DbKind::Postgres => db.url.clone(),
        };
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
        migrator.run(&mut conn).await.expect("migrate to 6");
        conn.close().await.expect("close");
    }
    for account in ["main", "fbe"] {
        store
            .upsert_account(account, account, "emag_ro", "http://x/api-3")
            .await
            .expect("account");
    }
    for ok in [true, false, false] {
        finished(&store, "main", SyncKind::Offers, ok).await;
    }
    finished(&store, "fbe", SyncKind::Offers, false).await;
    finished(&store, "main", SyncKind::Orders, true).await;

    // Act
    store.migrate().await.expect("migrate to the newest");

    // Assert
    let view = assert_status_reads_match_old_queries(&store, &db.url).await;
    assert_eq!(
        view.iter()
            .map(|(a, k, _, s, n)| (a.as_str(), *k, *s, *n))
            .collect::<Vec<_>>(),
        vec![
            ("fbe", SyncKind::Offers, RunState::Failed, 1),
            ("main", SyncKind::Offers, RunState::Failed, 2),
            ("main", SyncKind::Orders, RunState::Succeeded, 0),
        ]
    );
    // The triggers take over from the backfill.
    finished(&store, "main", SyncKind::Offers, true).await;
    assert_status_reads_match_old_queries(&store, &db.url).await;
}

// ---- Offers missed by complete scans (issue 9, point 7; migration 0009).
mod offer_misses {
    use super::*;

    on_both_backends!(
        a_miss_counts_once_per_run_resets_when_listed_and_only_twice_missed_offers_go,
        a_taken_over_run_records_no_miss,
    );

    async fn a_miss_counts_once_per_run_resets_when_listed_and_only_twice_missed_offers_go(
        kind: DbKind,
    ) {
        let (_db, store) = store(kind).await;
        let BeginRun::Started(first) = begin(&store, "main", "h1", alive).await else {
            panic!("expected a new run")
        };
        let rows: Vec<_> = (1..=5).map(|i| offer(i, "x", "1")).collect();
        store
            .write_offer_page(
                &first,
                1,
                Some(1),
                &[1, 2, 3, 4, 5],
                &rows,
                &RunCounts::default(),
            )
            .await
            .expect("write");

        // A resumed run concludes its scan again: the same run counts one miss, not two.
        for _ in 0..2 {
            store
                .record_offer_misses(&first, &[2, 3])
                .await
                .expect("misses");
        }

        assert_eq!(
            store.count_missed_offers(&first, 1).await.expect("count"),
            2
        );
        assert_eq!(
            store.count_missed_offers(&first, 2).await.expect("count"),
            0
        );
        assert_eq!(
            store
                .mark_missed_offers_removed(&first, 2)
                .await
                .expect("mark"),
            0
        );
        store
            .finish_run(
                &first,
                &RunOutcome::succeeded(),
                &RunCounts::default(),
                None,
            )
            .await
            .expect("finish");

        let BeginRun::Started(second) = begin(&store, "main", "h1", alive).await else {
            panic!("expected a new run")
        };
        // Offer 3 is listed again (unchanged, so not rewritten): its miss is forgotten.
        store
            .write_offer_page(
                &second,
                1,
                Some(1),
                &[1, 3, 4, 5],
                &[],
                &RunCounts::default(),
            )
            .await
            .expect("write");
        store
            .record_offer_misses(&second, &[2])
            .await
            .expect("misses");

        assert_eq!(
            store.count_missed_offers(&second, 2).await.expect("count"),
            1
        );
        assert_eq!(
            store
                .mark_missed_offers_removed(&second, 2)
                .await
                .expect("mark"),
            1
        );
        assert_eq!(store.count_offers("main").await.expect("count"), (4, 1));
        assert_eq!(
            store.count_missed_offers(&second, 1).await.expect("count"),
            0
        );
        // Offer 2 comes back: live again, with no misses to carry.
        store
            .write_offer_page(
                &second,
                2,
                Some(2),
                &[2],
                &[offer(2, "x", "1")],
                &RunCounts::default(),
            )
            .await
            .expect("again");
        store
            .record_offer_misses(&second, &[2])
            .await
            .expect("misses");
        assert_eq!(
            store.count_missed_offers(&second, 2).await.expect("count"),
            0
        );
        assert_eq!(store.count_offers("main").await.expect("count"), (5, 0));
    }

    async fn a_taken_over_run_records_no_miss(kind: DbKind) {
        let (_db, store) = store(kind).await;
        let BeginRun::Started(old) = begin(&store, "main", "h1", alive).await else {
            panic!("expected a new run")
        };
        store
            .write_offer_page(
                &old,
                1,
                Some(1),
                &[1],
                &[offer(1, "x", "1")],
                &RunCounts::default(),
            )
            .await
            .expect("write");
        let BeginRun::Resumed { run: new, .. } = begin(&store, "main", "h2", dead).await else {
            panic!("expected a take-over")
        };

        let err = store
            .record_offer_misses(&old, &[1])
            .await
            .expect_err("a stale holder is fenced");
        let removed = store.mark_missed_offers_removed(&old, 1).await;

        assert!(matches!(err, StorageError::LeaseLost(id) if id == old.id));
        assert!(matches!(removed, Err(StorageError::LeaseLost(_))));
        assert_eq!(store.count_missed_offers(&new, 1).await.expect("count"), 0);
    }
}

// ---- The request encoding kept per account (issue 9, point 1; migration 0010).
mod api_encoding {
    use super::*;
    use domain::ApiEncoding;

    on_both_backends!(an_encoding_is_kept_per_account_and_forgotten_with_a_new_api_url);

    async fn an_encoding_is_kept_per_account_and_forgotten_with_a_new_api_url(kind: DbKind) {
        let (_db, store) = store(kind).await;
        assert_eq!(store.api_encoding("main").await.expect("read"), None);

        store
            .set_api_encoding("main", Some(ApiEncoding::Form))
            .await
            .expect("keep");
        store
            .set_api_encoding("fbe", Some(ApiEncoding::Json))
            .await
            .expect("keep");

        let kept = store
            .api_encoding("main")
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(kept.encoding, ApiEncoding::Form);
        assert!(kept.probed_at > 0);
        let all: Vec<(String, ApiEncoding)> = store
            .api_encodings()
            .await
            .expect("all")
            .into_iter()
            .map(|(a, k)| (a, k.encoding))
            .collect();
        assert_eq!(
            all,
            [
                ("fbe".to_owned(), ApiEncoding::Json),
                ("main".to_owned(), ApiEncoding::Form)
            ]
        );

        // Registering again with the same URL keeps it; a new URL forgets it.
        store
            .upsert_account("main", "main", "emag_ro", "http://x/api-3")
            .await
            .expect("same url");
        assert!(store.api_encoding("main").await.expect("read").is_some());
        store
            .upsert_account("main", "main", "emag_ro", "http://y/api-3")
            .await
            .expect("new url");
        assert_eq!(store.api_encoding("main").await.expect("read"), None);

        // Forgotten on request (an encoding-shaped failure).
        store.set_api_encoding("fbe", None).await.expect("forget");
        assert_eq!(store.api_encoding("fbe").await.expect("read"), None);
    }
}

/// Leases are judged by the database's clock, not by each host's: with PostgreSQL's clock an
/// hour behind this host's (a `clock_timestamp()` of the test database's own, found first on
/// its search path), a heartbeat that is fresh by the database's clock keeps its run, and
/// heartbeats are written by that clock too. (An SQLite file is on this machine: its clock is
/// this machine's, and there is nothing to disagree.)
#[tokio::test]
async fn leases_are_judged_by_the_database_clock_not_the_hosts() {
    // Arrange: a database whose clock is one hour behind this host.
    let db = TestDb::postgres().await;
    let db_name = db.url.rsplit('/').next().expect("name").to_owned();
    {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        for sql in [
            "CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE sql \
             AS $$ SELECT pg_catalog.clock_timestamp() - interval '1 hour' $$"
                .to_owned(),
            format!("ALTER DATABASE {db_name} SET search_path = public, pg_catalog"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.expect(&sql);
        }
        conn.close().await.expect("close");
    }
    let store = Store::open(&db.url).await.expect("open");
    store
        .upsert_account("main", "main", "emag_ro", "http://x/api-3")
        .await
        .expect("account");
    let host_now = storage::now_ms();
    let db_now = store.clock_ms().await.expect("clock");
    assert!(
        (host_now - db_now - 3_600_000).abs() < 60_000,
        "the database's clock is an hour behind: host {host_now}, db {db_now}"
    );

    // Act: another host holds a run and beats for it; the lease TTL is one minute.
    let BeginRun::Started(run) = begin(&store, "main", "otherhost:1:a", alive).await else {
        panic!("expected a new run")
    };
    store.heartbeat_run(&run).await.expect("heartbeat");

    // Assert: the heartbeat carries the database's time, and by that time the lease is
    // fresh — by this host's clock it would be an hour old, and taken over.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let beat: i64 = sqlx::query_scalar("SELECT heartbeat_at FROM runs WHERE id = $1")
        .bind(run.id)
        .fetch_one(&mut conn)
        .await
        .expect("heartbeat_at");
    assert!(
        (beat - db_now).abs() < 60_000,
        "heartbeat {beat} by the database's clock {db_now}, not the host's {host_now}"
    );
    match begin(&store, "main", "thishost:2:b", alive).await {
        BeginRun::Busy { run_id, .. } => assert_eq!(run_id, run.id),
        other => panic!("a live lease was taken over by a host with another clock: {other:?}"),
    }
    conn.close().await.expect("close");
}
