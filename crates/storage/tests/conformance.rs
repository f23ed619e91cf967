//! The storage conformance suite: every behaviour runs against SQLite and PostgreSQL.

use domain::{RunCounts, RunOutcome, RunState, RunTrigger, SyncKind};
use sqlx::Connection;
use storage::{
    BeginRun, OfferRow, OrderLineRow, OrderRow, RunFilter, RunRequest, StorageError, Store,
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
    same_offer_id_in_two_accounts_is_two_rows,
    a_second_process_is_busy_while_the_holder_lives,
    a_dead_holders_run_is_resumed_from_its_checkpoint,
    a_stale_holder_loses_its_run_and_writes_nothing,
    removed_offers_are_marked_and_come_back_when_seen_again,
    orders_keep_their_lines_and_big_ids,
    run_outcomes_and_counts_are_recorded,
    a_scheduled_slot_gets_one_run_even_after_it_finished,
    histories_count_the_failures_since_the_last_success,
    a_schema_newer_than_this_build_is_refused_naming_both_versions,
    run_totals_count_every_ended_run_and_outlive_pruning,
);

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
        RunOutcome::Succeeded
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
        .finish_run(&run, &RunOutcome::Succeeded, &RunCounts::default(), None)
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
        .write_orders(&run, std::slice::from_ref(&order), &RunCounts::default())
        .await
        .expect("write");
    let mut changed = order.clone();
    changed.lines.truncate(1);
    changed.content_hash = 2;
    store
        .write_orders(&run, &[changed], &RunCounts::default())
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
    assert_eq!(
        store
            .latest_order_modified("fbe", 2)
            .await
            .expect("cursor")
            .as_deref(),
        Some("2025-10-12 18:44:05")
    );
    assert_eq!(
        store.latest_order_modified("fbe", 3).await.expect("cursor"),
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
            .finish_run(&run, &RunOutcome::Succeeded, &RunCounts::default(), None)
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
        .finish_run(&run, &RunOutcome::Succeeded, &extra, None)
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
