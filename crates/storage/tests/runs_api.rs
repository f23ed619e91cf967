//! Conformance of the run reads and writes behind the dashboard's API, on SQLite and
//! PostgreSQL: keyset pages of the history with typed filters, and an operator's cancel of a
//! queued, interrupted or running run.

use domain::{RunCounts, RunOutcome, RunState, RunTrigger, SyncKind};
use storage::{ActiveRun, BeginRun, CancelRun, RunQuery, RunRequest, Store};
use test_support::{DbKind, TestDb};

async fn store(kind: DbKind) -> (TestDb, Store) {
    let db = TestDb::new(kind).await;
    let store = Store::open(&db.url).await.expect("open store");
    for name in ["main", "fbe"] {
        store
            .upsert_account(name, name, "emag_ro", "http://x/api-3")
            .await
            .expect("account");
    }
    (db, store)
}

fn alive(_: &str) -> bool {
    true
}

async fn start(store: &Store, account: &str, kind: SyncKind) -> ActiveRun {
    let req = RunRequest {
        account,
        kind,
        trigger: RunTrigger::Manual,
        full_scan: false,
        slot: None,
        holder: "h:1:0",
        stale_after_ms: 60_000,
    };
    match store.begin_run(&req, &alive).await.expect("begin") {
        BeginRun::Started(run) | BeginRun::Resumed { run, .. } => run,
        other => panic!("not started: {other:?}"),
    }
}

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(test_support::DbKind::Sqlite).await } )+ }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(test_support::DbKind::Postgres).await } )+ }
    };
}

on_both_backends!(
    run_pages_follow_ids_downwards_and_every_filter_narrows,
    a_queued_run_is_cancelled_at_once_and_a_running_one_is_asked_to_stop,
    a_run_claimed_before_a_database_restart_neither_checkpoints_moves_a_cursor_nor_succeeds,
);

async fn run_pages_follow_ids_downwards_and_every_filter_narrows(kind: DbKind) {
    // Arrange: 7 ended runs, main/offers failing once.
    let (_db, store) = store(kind).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let (account, k) = if i % 2 == 0 {
            ("main", SyncKind::Offers)
        } else {
            ("fbe", SyncKind::Orders)
        };
        let run = start(&store, account, k).await;
        let outcome = if i == 2 {
            RunOutcome::Failed {
                class: domain::ErrorClass::Server,
                message: "502".into(),
                emag_messages: vec!["down".into()],
            }
        } else {
            RunOutcome::succeeded()
        };
        store
            .finish_run(&run, &outcome, &RunCounts::default(), None)
            .await
            .expect("finish");
        ids.push(run.id);
    }
    ids.reverse();

    // Act: pages of 3.
    let mut q = RunQuery {
        limit: 3,
        ..RunQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list_runs_page(&q).await.expect("page");
        seen.extend(page.items.iter().map(|r| r.id));
        match page.next {
            Some(next) => q.before_id = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let all = |q: RunQuery| {
        let store = store.clone();
        async move {
            store
                .list_runs_page(&RunQuery { limit: 500, ..q })
                .await
                .expect("page")
                .items
        }
    };
    let failed = all(RunQuery {
        state: Some(RunState::Failed),
        ..RunQuery::default()
    })
    .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].emag_messages, ["down"]);
    let fbe = all(RunQuery {
        account: Some("fbe".into()),
        kind: Some(SyncKind::Orders),
        trigger: Some(RunTrigger::Manual),
        ..RunQuery::default()
    })
    .await;
    assert_eq!(fbe.len(), 3);
    assert!(all(RunQuery {
        trigger: Some(RunTrigger::Schedule),
        ..RunQuery::default()
    })
    .await
    .is_empty());
    let now = storage::now_ms();
    assert_eq!(
        all(RunQuery {
            since: Some(now - 3_600_000),
            until: Some(now + 3_600_000),
            ..RunQuery::default()
        })
        .await
        .len(),
        7
    );
    assert!(all(RunQuery {
        until: Some(now - 3_600_000),
        ..RunQuery::default()
    })
    .await
    .is_empty());
    // Out-of-range limits are clamped, not refused.
    let one = store
        .list_runs_page(&RunQuery {
            limit: 0,
            ..RunQuery::default()
        })
        .await
        .expect("page");
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.next, Some(ids[0]));
}

async fn a_queued_run_is_cancelled_at_once_and_a_running_one_is_asked_to_stop(kind: DbKind) {
    let (_db, store) = store(kind).await;
    // A queued run: cancelled now, terminal, counted in the totals, never active again.
    let storage::Enqueued::Queued { run_id } = store
        .enqueue_run("fbe", SyncKind::Returns, false)
        .await
        .expect("enqueue")
    else {
        panic!("queued")
    };
    assert_eq!(
        store
            .request_run_cancel(run_id, "operator")
            .await
            .expect("cancel"),
        CancelRun::Cancelled
    );
    let row = store.get_run(run_id).await.expect("read").expect("row");
    assert_eq!(row.state, RunState::Cancelled);
    assert_eq!(row.note.as_deref(), Some("cancelled by operator"));
    assert!(row.finished_at.is_some());
    assert_eq!(
        store
            .request_run_cancel(run_id, "operator")
            .await
            .expect("again"),
        CancelRun::AlreadyEnded(RunState::Cancelled)
    );
    assert_eq!(
        store
            .request_run_cancel(424_242, "operator")
            .await
            .expect("none"),
        CancelRun::NotFound
    );
    assert!(matches!(
        store
            .enqueue_run("fbe", SyncKind::Returns, false)
            .await
            .expect("enqueue"),
        storage::Enqueued::Queued { .. }
    ));

    // An interrupted run (a stopped process left it to be resumed): cancelled at once too.
    let stopped = start(&store, "fbe", SyncKind::Offers).await;
    store
        .interrupt_run(&stopped, &RunCounts::default(), "stopped on request")
        .await
        .expect("interrupt");
    assert_eq!(
        store
            .request_run_cancel(stopped.id, "operator")
            .await
            .expect("cancel"),
        CancelRun::Cancelled
    );
    assert_eq!(
        store
            .get_run(stopped.id)
            .await
            .expect("read")
            .expect("row")
            .state,
        RunState::Cancelled
    );

    // A running run: a request its holder sees, then the holder ends it cancelled.
    let run = start(&store, "main", SyncKind::Offers).await;
    assert_eq!(
        store.run_cancel_requested(run.id).await.expect("read"),
        None
    );
    assert_eq!(
        store
            .request_run_cancel(run.id, "operator (bearer token)")
            .await
            .expect("cancel"),
        CancelRun::Requested
    );
    let (_, by) = store
        .run_cancel_requested(run.id)
        .await
        .expect("read")
        .expect("requested");
    assert_eq!(by, "operator (bearer token)");
    assert_eq!(
        store
            .get_run(run.id)
            .await
            .expect("read")
            .expect("row")
            .state,
        RunState::Running,
        "the holder ends it, not the request"
    );
    store
        .cancel_run(
            &run,
            &RunCounts::default(),
            "cancelled by operator at page 0",
        )
        .await
        .expect("cancel run");
    let row = store.get_run(run.id).await.expect("read").expect("row");
    assert_eq!(row.state, RunState::Cancelled);
    assert_eq!(row.holder, None);
    let totals = store.run_totals().await.expect("totals");
    assert_eq!(
        totals
            .iter()
            .filter(|t| t.outcome == RunState::Cancelled)
            .map(|t| t.runs)
            .sum::<u64>(),
        3
    );
}

async fn a_run_claimed_before_a_database_restart_neither_checkpoints_moves_a_cursor_nor_succeeds(
    kind: DbKind,
) {
    // Arrange: a run claimed now, and the same run as if the server had started after its
    // claim (PostgreSQL commits asynchronously: a crash may have taken back its last writes).
    let (_db, store) = store(kind).await;
    let run = start(&store, "main", SyncKind::Orders).await;
    assert_eq!(run.db_epoch.is_some(), kind == DbKind::Postgres);
    let success = RunOutcome::Succeeded {
        emag_messages: Vec::new(),
    };
    store
        .set_run_cursor(&run, "orders.cursor.type3", "2026-11-30 10:00:00")
        .await
        .expect("a cursor moves on the server the run was claimed on");

    // Act
    let restarted = ActiveRun {
        db_epoch: run.db_epoch.map(|e| e - 1),
        ..run.clone()
    };
    let cursor = store
        .set_run_cursor(&restarted, "orders.cursor.type3", "2026-11-30 11:00:00")
        .await;
    let pages = store.write_offer_pages(&restarted, &[]).await;
    let succeeded = store
        .finish_run(&restarted, &success, &RunCounts::default(), None)
        .await;

    // Assert
    let value = store
        .get_state("main", "orders.cursor.type3")
        .await
        .expect("read");
    if kind == DbKind::Postgres {
        for refused in [&cursor, &pages, &succeeded] {
            assert!(
                matches!(refused, Err(storage::StorageError::DatabaseRestarted(id)) if *id == run.id),
                "{refused:?}"
            );
        }
        assert_eq!(value.as_deref(), Some("2026-11-30 10:00:00"));
        let failed = RunOutcome::Failed {
            class: domain::ErrorClass::Storage,
            message: "restarted".into(),
            emag_messages: Vec::new(),
        };
        store
            .finish_run(&restarted, &failed, &RunCounts::default(), None)
            .await
            .expect("a failure is recorded whatever the server");
        let row = store.get_run(run.id).await.expect("read").expect("row");
        assert_eq!(row.state, RunState::Failed);
    } else {
        // SQLite's commits survive the crash of any process (WAL): nothing to refuse.
        assert!(cursor.is_ok() && pages.is_ok() && succeeded.is_ok());
        assert_eq!(value.as_deref(), Some("2026-11-30 11:00:00"));
    }
    // Ended: its cursor writes are fenced like every other write of a run.
    let after = store
        .set_run_cursor(&run, "orders.cursor.type3", "2026-11-30 12:00:00")
        .await;
    assert!(
        matches!(after, Err(storage::StorageError::LeaseLost(id)) if id == run.id),
        "{after:?}"
    );
}
