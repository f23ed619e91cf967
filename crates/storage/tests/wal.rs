//! SQLite's WAL while a scan writes: checkpoints run beside the writes (not in their commits),
//! and the WAL still stays bounded.

use domain::{RunCounts, RunTrigger, SyncKind};
use storage::{BeginRun, OfferPage, OfferRow, RunRequest, Store};
use test_support::TestDb;

fn offer(id: i64) -> OfferRow {
    OfferRow {
        id,
        part_number: Some(format!("PN-{id}")),
        part_number_key: None,
        name: Some(format!("Offer {id}")),
        brand: None,
        status: Some(1),
        sale_price: Some("10.5000".to_owned()),
        recommended_price: None,
        currency: Some("RON".to_owned()),
        vat_id: None,
        general_stock: Some(1),
        estimated_stock: None,
        ean: "[]".to_owned(),
        data: format!("{{\"id\":{id},\"description\":\"{}\"}}", "x".repeat(2_000)),
        content_hash: id,
    }
}

#[tokio::test]
async fn the_wal_stays_bounded_while_a_scan_writes_three_times_its_bound() {
    // Arrange
    let db = TestDb::sqlite();
    let store = Store::open(&db.url).await.expect("open store");
    store
        .upsert_account("main", "main", "emag_ro", "http://x/api-3")
        .await
        .expect("account");
    let request = RunRequest {
        account: "main",
        kind: SyncKind::Offers,
        trigger: RunTrigger::Manual,
        full_scan: false,
        slot: None,
        holder: "h1",
        stale_after_ms: 60_000,
    };
    let BeginRun::Started(run) = store
        .begin_run(&request, &|_: &str| true)
        .await
        .expect("begin run")
    else {
        panic!("expected a new run")
    };
    let wal = std::path::PathBuf::from(format!(
        "{}-wal",
        db.url.strip_prefix("sqlite://").expect("a file URL")
    ));
    let batches = 240; // 100 offers of 2 KB each: 48 MB of rows, three times the bound

    // Act
    let mut largest = 0;
    for batch in 0..batches {
        let rows: Vec<OfferRow> = (0..100).map(|i| offer(batch * 100 + i)).collect();
        let ids: Vec<u32> = rows.iter().map(|r| r.id as u32).collect();
        let page = OfferPage {
            key: batch + 1,
            checkpoint: Some(batch + 1),
            seen_ids: &ids,
            created: &rows,
            updated: &[],
            counts: RunCounts::default(),
            reset_missed: false,
        };
        store.write_offer_pages(&run, &[page]).await.expect("batch");
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }

    // Assert: the bound (16 MiB of pages) and what the writer adds while a checkpoint runs
    // (17.9–19.3 MB measured); without the bound only SQLite's own checkpoints (32 MiB)
    // would hold it (33.5 MB measured).
    let (live, _) = store.count_offers("main").await.expect("count");
    assert_eq!(live, batches * 100);
    assert!(
        largest <= 28 << 20,
        "the WAL grew to {largest} bytes while 48 MB of offers were written"
    );
}
