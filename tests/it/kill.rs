//! The kill harness, reduced for the suite (issue 11, point 1): eight SIGKILLs of real
//! `emag-sync sync` and `emag-sync start` processes — four on SQLite, four on PostgreSQL,
//! eight different (command, phase) pairs among a claim, offer-scan pages, removal
//! confirmation, order windows and returns — each restarted and the store compared with the
//! simulator. The full run (`emag-bench kill --points 50`) is in docs/RELIABILITY.md.

use std::collections::HashSet;
use std::time::Duration;

use emag_bench::kill::{self, Backend, BackendKind, Options, Phase};
use test_support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_syncs_and_schedulers_resume_without_losing_duplicating_or_falsely_removing_a_row(
) {
    // Arrange: a fresh database per backend, a fixed seed.
    let sqlite = TestDb::sqlite();
    let postgres = TestDb::postgres().await;
    let dir = tempfile::tempdir().expect("work dir");
    let mut opts = Options::new(
        env!("CARGO_BIN_EXE_emag-sync").into(),
        vec![
            Backend {
                kind: BackendKind::Sqlite,
                url: sqlite.url.clone(),
            },
            Backend {
                kind: BackendKind::Postgres,
                url: postgres.url.clone(),
            },
        ],
        dir.path().to_owned(),
    );
    opts.points = 4;
    opts.seed = 11;
    opts.step_timeout = Duration::from_secs(60);

    // Act
    let report = kill::run(&opts).await.expect("the harness runs");

    // Assert
    let table = report.markdown();
    println!("{table}");
    assert!(report.passed(), "{table}");
    assert_eq!(
        report.landed(),
        8,
        "every kill landed in its phase\n{table}"
    );
    let pairs: HashSet<_> = report.points.iter().map(|p| (p.target, p.phase)).collect();
    assert_eq!(
        pairs.len(),
        8,
        "eight different (command, phase) pairs\n{table}"
    );
    let phases: HashSet<Phase> = pairs.iter().map(|(_, phase)| *phase).collect();
    assert_eq!(phases.len(), Phase::ALL.len(), "every phase\n{table}");
    assert!(
        report.points.iter().all(|p| p.resumed),
        "every killed run was resumed and succeeded\n{table}"
    );
}
