//! The binary as a seller runs it: `test`, `sync`, `export`, and a sync killed with SIGKILL.

use std::process::Stdio;

use emag_sim::{SimConfig, Simulator};
use test_support::TestDb;

use crate::support::{binary, sim_vars};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_command_reports_every_config_problem_with_exit_2() {
    let dir = tempfile::tempdir().expect("dir");
    let vars = [
        ("EMAG_API_USERNAME", "x"),
        ("EMAG_FBE_API_PASSWORD", "y"),
        ("EMAG_API_TIMEOUT", "never"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();

    let out = binary(&vars, dir.path())
        .arg("test")
        .output()
        .await
        .expect("run");

    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in [
        "EMAG_API_PASSWORD",
        "EMAG_FBE_API_USERNAME",
        "EMAG_API_TIMEOUT",
    ] {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
    assert!(!err.contains("\"y\""), "no secret printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_command_tells_bad_credentials_per_account_and_never_prints_passwords() {
    let sim = Simulator::spawn(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDb::sqlite();
    let mut vars = sim_vars(&sim, &db.url);
    let ok = binary(&vars, dir.path())
        .arg("test")
        .output()
        .await
        .expect("run");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    vars.insert("EMAG_FBE_API_PASSWORD".into(), "wrong-secret-123".into());
    let out = binary(&vars, dir.path())
        .arg("test")
        .output()
        .await
        .expect("run");

    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("account main") && stdout.contains("OK"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad credentials") && stdout.contains("EMAG_FBE_API_PASSWORD"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("wrong-secret-123")
            && !String::from_utf8_lossy(&out.stderr).contains("wrong-secret-123")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_export_through_the_binary_give_jsonl_and_csv_with_exact_money() {
    let sim = Simulator::spawn(SimConfig {
        offers_per_account: 120,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDb::sqlite();
    let vars = sim_vars(&sim, &db.url);

    let out = binary(&vars, dir.path())
        .args(["sync", "all", "--json"])
        .output()
        .await
        .expect("sync");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["runs"].as_array().map(Vec::len), Some(8));

    // The history shows those runs; filters narrow it.
    let runs = binary(&vars, dir.path())
        .args(["runs", "--json"])
        .output()
        .await
        .expect("runs");
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).expect("runs json");
    let runs = runs.as_array().expect("a list");
    assert_eq!(runs.len(), 8);
    assert!(runs.iter().all(|r| r["state"] == "succeeded"), "{runs:?}");
    let one = binary(&vars, dir.path())
        .args(["runs", "--account", "fbe", "--kind", "offers", "--json"])
        .output()
        .await
        .expect("runs");
    let one: serde_json::Value = serde_json::from_slice(&one.stdout).expect("runs json");
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert_eq!(one[0]["counts"]["created"], 120);
    let table = binary(&vars, dir.path())
        .args(["runs", "--limit", "3"])
        .output()
        .await
        .expect("runs");
    let table = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.matches("succeeded").count(), 3, "{table}");

    let out = binary(&vars, dir.path())
        .args(["export", "offers", "--account", "fbe"])
        .output()
        .await
        .expect("export");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let expected = sim.sim.offers("fbe");
    assert_eq!(lines.len(), expected.len());
    for (got, want) in lines.iter().zip(&expected) {
        let want = serde_json::to_value(want).expect("json");
        assert_eq!(got["account"], "fbe");
        assert_eq!(got["id"], want["id"]);
        assert_eq!(got["name"], want["name"]);
        assert_eq!(got["removed"], false);
        // Money is a decimal string with eMAG's exact value.
        let price = got["sale_price"].as_str().expect("decimal string");
        assert_eq!(
            crate::support::json_decimal(&want["sale_price"]),
            crate::support::decimal(Some(price))
        );
    }

    let out = binary(&vars, dir.path())
        .args(["export", "orders", "--format", "csv"])
        .output()
        .await
        .expect("csv");
    assert!(out.status.success());
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("csv row")).collect();
    let lines: usize = ["main", "fbe"]
        .iter()
        .flat_map(|a| sim.sim.orders(a))
        .map(|o| o.products.len())
        .sum();
    assert_eq!(rows.len(), lines, "one CSV row per order line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_scan_resumes_from_its_checkpoint_on_the_next_run() {
    let sim = Simulator::spawn(SimConfig {
        offers_per_account: 3000,
        accounts: vec![emag_sim::AccountSpec::main()],
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDb::sqlite();
    let vars = sim_vars(&sim, &db.url);
    let mut child = binary(&vars, dir.path())
        .args(["sync", "main", "--kind", "offers"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");

    // Readiness signal: the simulator has answered page 8 of the scan.
    sim.sim
        .wait_for_request(|e| {
            e.resource == "product_offer"
                && e.action == "read"
                && e.page >= Some(8)
                && e.status == 200
        })
        .await;
    child.kill().await.expect("SIGKILL");

    let out = binary(&vars, dir.path())
        .args(["sync", "main", "--kind", "offers", "--json"])
        .output()
        .await
        .expect("resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let run = &summary["runs"][0];
    let from = run["resumed_from_page"]
        .as_i64()
        .expect("the run was resumed");
    assert!(from >= 6, "resumed after page {from}");
    assert_eq!(run["counts"]["removed"], 0);
    assert_eq!(run["counts"]["items_read"], 3000, "no page read twice");

    let store = storage::Store::open(&db.url).await.expect("store");
    let stored = store
        .export_offers(Some("main"), None, 10_000)
        .await
        .expect("export");
    assert_eq!(stored.len(), 3000);
    assert!(stored.iter().all(|o| !o.removed));
    let ids: Vec<i64> = stored.iter().map(|o| o.id).collect();
    let want: Vec<i64> = sim
        .sim
        .offers("main")
        .iter()
        .map(|o| i64::from(o.id))
        .collect();
    assert_eq!(ids, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_needs_no_configuration_and_shows_what_it_stored() {
    let dir = tempfile::tempdir().expect("dir");
    let vars = std::collections::HashMap::new();

    let out = binary(&vars, dir.path())
        .args(["demo", "--once", "--offers", "120", "--orders", "40"])
        .output()
        .await
        .expect("demo");

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("main  120 offers"), "{stdout}");
    assert!(stdout.contains("fbe   120 offers"), "{stdout}");
    assert!(stdout.contains("FBE)"), "{stdout}");
    assert!(dir.path().join("data/demo.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_refuses_to_delete_a_database_it_did_not_make_and_replaces_its_own() {
    let dir = tempfile::tempdir().expect("dir");
    let vars = std::collections::HashMap::new();
    // A seller's database, given to the demo by mistake.
    let shop = dir.path().join("shop.db");
    let store = storage::Store::open(&format!("sqlite://{}", shop.display()))
        .await
        .expect("a real database");
    store.close().await;
    // Everything into the file itself before its bytes are taken: sqlx closes its SQLite
    // connections on their own threads, and the checkpoint of the last one to close could
    // otherwise rewrite the file later, under the test, not by the demo.
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", shop.display()))
        .await
        .expect("open");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .expect("checkpoint");
    pool.close().await;
    let before = std::fs::read(&shop).expect("read");
    let demo = |db: &str| {
        let mut c = binary(&vars, dir.path());
        c.args([
            "demo",
            "--once",
            "--offers",
            "20",
            "--orders",
            "5",
            "--database",
            db,
        ]);
        c
    };

    let out = demo("shop.db").output().await.expect("demo");

    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shop.db exists and was not made by `emag-sync demo`"),
        "{stderr}"
    );
    let after = std::fs::read(&shop).expect("read");
    if after != before {
        let first = after.iter().zip(&before).position(|(a, b)| a != b);
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        panic!(
            "changed: {} → {} bytes, first difference at {first:?}; files: {files:?}",
            before.len(),
            after.len()
        );
    }

    // A database the demo made is its own to replace, run after run.
    for run in 1..=2 {
        let out = demo("mine.db").output().await.expect("demo");
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_dashboard_and_prints_its_url_and_token() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().expect("dir");
    let vars = std::collections::HashMap::new();
    let mut demo = binary(&vars, dir.path())
        .args([
            "demo",
            "--offers",
            "40",
            "--orders",
            "10",
            "--dashboard",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("demo");
    let mut lines = BufReader::new(demo.stdout.take().expect("stdout")).lines();
    // Readiness: the line that names the dashboard (after the first sync's table).
    let line = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.starts_with("dashboard: ") {
                return line;
            }
        }
        panic!("the demo ended without naming its dashboard");
    })
    .await
    .expect("the dashboard line within 120 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL")
        .trim_end_matches('/')
        .to_owned();
    let token = line
        .rsplit("token for its controls: ")
        .next()
        .and_then(|t| t.strip_suffix(')'))
        .expect("a token");
    assert_eq!(token.len(), 32, "{line}");

    let status: serde_json::Value = reqwest::get(format!("{url}/api/status"))
        .await
        .expect("GET /api/status")
        .json()
        .await
        .expect("json");
    let accounts = &status["scheduler"]["accounts"];
    assert_eq!(accounts["main"]["account_type"], "main", "{status}");
    assert_eq!(accounts["fbe"]["account_type"], "fbe", "{status}");

    let pid = demo.id().expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = tokio::time::timeout(std::time::Duration::from_secs(60), demo.wait())
        .await
        .expect("the demo stops within 60 s of SIGTERM")
        .expect("wait");
    assert!(exit.success(), "{exit}");
}

/// Whether the test PostgreSQL server offers TLS (`show ssl`).
async fn postgres_has_tls() -> bool {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&test_support::pg_admin_url())
        .await
        .expect("PostgreSQL");
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut conn)
        .await
        .expect("show ssl");
    ssl == "on"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_command_connects_with_sslmode_require_and_warns_about_clear_text_over_a_network() {
    // Arrange: the test server, reached over TLS (sslmode=require), and as a host that is not
    // loopback (0.0.0.0 reaches this machine) without TLS being required.
    let sim = Simulator::spawn(SimConfig::default()).await.expect("sim");
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().expect("dir");
    let tls = postgres_has_tls().await;
    let dir = dir.path();
    let run = |url: String| {
        let vars = sim_vars(&sim, &url);
        async move { binary(&vars, dir).arg("test").output().await.expect("run") }
    };

    // Act
    let required = run(format!("{}?sslmode=require", db.url)).await;
    let network = run(db.url.replace("127.0.0.1", "0.0.0.0")).await;

    // Assert
    let out = String::from_utf8_lossy(&required.stdout);
    if tls {
        assert_eq!(required.status.code(), Some(0), "{out}");
        assert!(out.contains("database:      OK"), "{out}");
    } else {
        // A server without TLS: the database check fails and says so.
        assert_eq!(required.status.code(), Some(1), "{out}");
        assert!(
            out.contains("database:      FAILED") && out.contains("TLS"),
            "{out}"
        );
    }
    assert!(!out.contains("WARNING"), "TLS required: no warning: {out}");
    let out = String::from_utf8_lossy(&network.stdout);
    assert_eq!(network.status.code(), Some(0), "{out}");
    assert!(
        out.contains("WARNING: the database connection to 0.0.0.0 is not required to be encrypted")
            && out.contains("sslmode=verify-full"),
        "{out}"
    );
}
