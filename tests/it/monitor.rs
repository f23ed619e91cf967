//! `emag-sync monitor` through the real binary: the Nagios plugin's exit codes for OK,
//! WARNING (stale beyond target), CRITICAL (an account needing attention) and UNKNOWN
//! (database unreachable), the report, the JSON body, and shell completions.

use emag_sim::SimConfig;
use test_support::DbKind;

use crate::support::{binary, on_both_backends, sim_vars, TestApp};

/// A live scheduler instance "on another machine", beating into the future so the check
/// cannot see it go silent however slow the machine is.
async fn a_live_instance(app: &TestApp) {
    let now = storage::now_ms();
    app.store
        .register_instance(&storage::InstanceRow {
            id: "monitor-test-host:1:0".into(),
            host: "monitor-test-host".into(),
            pid: 1,
            version: "0.1.0".into(),
            // Live for the whole of the last week (the uptime KPI).
            started_at: now - 8 * 86_400_000,
            heartbeat_at: now + 600_000,
            schedules: 8,
            running: 0,
            stopped_at: None,
        })
        .await
        .expect("register an instance");
}

async fn health(app: &TestApp, dir: &std::path::Path, url: &str) -> (i32, String) {
    let out = binary(&sim_vars(&app.sim, url), dir)
        .args(["monitor", "health"])
        .output()
        .await
        .expect("monitor health");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn monitor_health_follows_the_nagios_plugin_convention(kind: DbKind) {
    let app = TestApp::new(kind, SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let url = app._db.url.clone();
    for r in app.sync_all().await {
        assert_eq!(r.status, emag_sync::sync::RunStatus::Succeeded, "{r:?}");
    }
    a_live_instance(&app).await;

    let (code, out) = health(&app, dir.path(), &url).await;
    assert_eq!(code, 0, "{out}");
    let line = out.lines().next().expect("a line");
    assert!(line.starts_with("EMAG-SYNC OK - "), "{line}");
    assert!(line.contains(" main_offers_age="), "{line}");
    assert!(
        line.contains(";2100;4200;0"),
        "main's 30-min kinds: 35 / 70 min: {line}"
    );
    assert!(line.contains("fbe_offers_age="), "{line}");
    assert!(line.contains("db_time="), "{line}");

    // The KPIs of the week: every run succeeded.
    let report = |format: &str| {
        binary(&sim_vars(&app.sim, &url), dir.path())
            .args(["report", "--days", "7", "--format", format])
            .output()
    };
    let csv = report("csv").await.expect("report csv");
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let mut rows = csv::Reader::from_reader(&csv.stdout[..]);
    let rows: Vec<csv::StringRecord> = rows.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 5, "one row per timed (account, kind)");
    let offers = rows
        .iter()
        .find(|r| &r[0] == "main" && &r[1] == "offers")
        .expect("main offers");
    assert_eq!((&offers[3], &offers[4], &offers[6]), ("1", "1", "1.000000"));
    assert_eq!(&offers[13], "1.000000", "a scheduler was live all week");
    let json = report("json").await.expect("report json");
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(json["days"], 7);
    let md = report("md").await.expect("report md");
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.contains("## KPIs, last 7 day(s)") && md.contains("| main | offers | 1 | 100.00 % met"),
        "{md}"
    );

    // 40 minutes later by the data's clock: main's half-hourly kinds are stale (35 min),
    // fbe's hourly ones are not (65 min).
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query(
        "UPDATE runs SET started_at = started_at - 2400000, finished_at = finished_at - 2400000",
    )
    .execute(&pool)
    .await
    .expect("age the runs");
    let (code, out) = health(&app, dir.path(), &url).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("EMAG-SYNC WARNING - main offers data is 40 min old"),
        "{out}"
    );
    assert!(!out.contains("fbe offers"), "{out}");

    app.store
        .set_attention(
            "fbe",
            Some("account fbe: invalid credentials — check EMAG_FBE_API_USERNAME and EMAG_FBE_API_PASSWORD"),
        )
        .await
        .expect("attention");
    let (code, out) = health(&app, dir.path(), &url).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("EMAG-SYNC CRITICAL - account fbe: eMAG refuses its access"),
        "{out}"
    );
    assert!(
        out.contains("check EMAG_FBE_API_USERNAME"),
        "the fix is printed: {out}"
    );

    // The report shows the same, for a person.
    let report = binary(&sim_vars(&app.sim, &url), dir.path())
        .args(["monitor", "report"])
        .output()
        .await
        .expect("report");
    assert!(report.status.success());
    let report = String::from_utf8_lossy(&report.stdout);
    assert!(report.starts_with("emag-sync CRITICAL"), "{report}");
    assert!(
        report.contains("account fbe (fbe, emag_ro): needs attention"),
        "{report}"
    );
    assert!(
        report.contains("fix: account fbe: invalid credentials"),
        "{report}"
    );

    // The JSON body is the seed's shape.
    let json = binary(&sim_vars(&app.sim, &url), dir.path())
        .args(["monitor", "json"])
        .output()
        .await
        .expect("json");
    assert!(json.status.success());
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(json["scheduler"]["scheduler_running"], true);
    assert_eq!(
        json["scheduler"]["accounts"]["fbe"]["status"],
        "needs_attention"
    );
    assert_eq!(json["alerts"][0]["type"], "needs_attention");
}

on_both_backends!(monitor_health_follows_the_nagios_plugin_convention);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_health_is_unknown_when_the_database_cannot_be_read() {
    let dir = tempfile::tempdir().expect("dir");
    let vars = [
        ("EMAG_API_USERNAME", "u"),
        ("EMAG_API_PASSWORD", "canary-password-not-shown"),
        (
            "DATABASE_URL",
            "postgres://postgres:secret-db-pass@127.0.0.1:1/none",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let out = binary(&vars, dir.path())
        .args(["monitor", "health"])
        .output()
        .await
        .expect("monitor health");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.starts_with("EMAG-SYNC UNKNOWN - cannot read the database"),
        "{stdout}"
    );
    assert!(!stdout.contains("secret-db-pass"), "{stdout}");

    let bad_config = binary(&Default::default(), dir.path())
        .args(["monitor", "health"])
        .env("EMAG_API_TIMEOUT", "soon")
        .output()
        .await
        .expect("monitor health");
    assert_eq!(bad_config.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_printed_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().expect("dir");
    for shell in ["bash", "zsh", "fish"] {
        let out = binary(&Default::default(), dir.path())
            .args(["completions", shell])
            .output()
            .await
            .expect("completions");
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("emag-sync"), "{shell}: {text}");
        assert!(
            text.contains("monitor"),
            "{shell}: subcommands are completed"
        );
    }
}
