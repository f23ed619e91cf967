//! `emag-sync start | stop | status`: the scheduler as a foreground daemon with a pid file,
//! stopping it cleanly, and what it is doing.

use std::path::Path;
use std::time::Duration;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use emag_sync::accounts;
use emag_sync::scheduler::{evaluate, schedules, Decision, Maintenance, Policy, Scheduler};
use emag_sync::sync::SyncContext;

use super::{load_config, load_config_and_store, open_store, EXIT_CONFIG};

#[derive(Debug, clap::Args)]
pub struct StartArgs {}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait for the scheduler to finish its pages and exit.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

/// The pid in a pid file, if the process still runs.
fn live_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    emag_sync::process_alive(pid).then_some(pid)
}

pub async fn start(env_file: Option<&Path>, _args: StartArgs) -> u8 {
    // The daemon logs to its file as well as stderr, so it sets logging up itself.
    let config = match emag_sync::config::Config::load(env_file) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("error: {errors}");
            return EXIT_CONFIG;
        }
    };
    let _log_guard = match crate::output::init_logging_with_file(
        &config.log_level,
        &config.log_file,
        config.log_retention_days,
    ) {
        Ok(guard) => Some(guard),
        Err(e) => {
            crate::output::init_logging(&config.log_level);
            tracing::warn!(error = %e, log.file = %config.log_file.display(), "cannot log to the file; logging to stderr only (set EMAG_LOG_FILE)");
            None
        }
    };
    if let Err(errors) = config.require_accounts() {
        eprintln!("error: {errors}");
        return EXIT_CONFIG;
    }
    if let Some(pid) = live_pid(&config.pid_file) {
        eprintln!(
            "error: emag-sync is already running (pid {pid}, pid file {}); stop it with `emag-sync stop`",
            config.pid_file.display()
        );
        return 1;
    }
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let accounts = match accounts::select(&config, &store, "all").await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_CONFIG;
        }
    };
    if let Some(dir) = config
        .pid_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&config.pid_file, format!("{}\n", std::process::id())) {
        eprintln!(
            "error: cannot write the pid file {}: {e} (set EMAG_PID_FILE)",
            config.pid_file.display()
        );
        return 1;
    }
    let mut ctx = SyncContext::new(store.clone(), config.sync);
    ctx.reference_failover = accounts::failover_peers(&config);
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        super::sync::shutdown_signal().await;
        tracing::info!("stop requested: finishing the pages in flight, then exiting");
        cancel.cancel();
    });
    let plan = schedules(&config);
    let policy = Policy {
        retry_delay: config.api.retry_delay,
        max_retries: config.api.max_retries,
        catch_up: config.catch_up,
    };
    let maintenance = Maintenance {
        backups: (store.backend() == storage::Backend::Sqlite && config.backups.keep > 0)
            .then(|| config.backups.clone()),
        run_retention: Some(Duration::from_secs(
            86_400 * u64::from(config.run_retention_days.max(1)),
        )),
        systemd: std::env::var_os("NOTIFY_SOCKET").is_some(),
    };
    let systemd = maintenance.systemd;
    // The readiness line: migrations are applied and the schedules loaded.
    let ready = format!(
        "emag-sync scheduler ready: {} schedule(s) over {} account(s), pid {}, database {}",
        plan.len(),
        accounts.len(),
        std::process::id(),
        store.url_redacted()
    );
    println!("{ready}");
    if systemd {
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&ready),
        ]);
    }
    let result = Scheduler::new(ctx, accounts, plan, policy)
        .with_maintenance(maintenance)
        .run()
        .await;
    store.close().await;
    let _ = std::fs::remove_file(&config.pid_file);
    match result {
        Ok(()) => {
            println!("emag-sync scheduler stopped");
            0
        }
        Err(e) => {
            eprintln!("error: the scheduler stopped: {e:#}");
            1
        }
    }
}

pub async fn stop(env_file: Option<&Path>, args: StopArgs) -> u8 {
    let config = match load_config(env_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(pid) = live_pid(&config.pid_file) else {
        println!(
            "emag-sync is not running (no live process in {})",
            config.pid_file.display()
        );
        let _ = std::fs::remove_file(&config.pid_file);
        return 0;
    };
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    if !sent.is_ok_and(|s| s.success()) {
        eprintln!("error: cannot signal pid {pid} (are you the same user?)");
        return 1;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    while emag_sync::process_alive(pid) {
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "error: emag-sync (pid {pid}) did not exit within {} s; it may be finishing a slow page — \
                 run `emag-sync stop` again or `kill -9 {pid}` (the next start resumes from the checkpoint)",
                args.timeout
            );
            return 1;
        }
        // Waiting for another process to exit: there is no readiness signal to wait on.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("emag-sync (pid {pid}) stopped");
    0
}

#[derive(Debug, serde::Serialize)]
struct KindStatus {
    account: String,
    kind: String,
    interval_minutes: u64,
    cron: Option<String>,
    last_state: Option<String>,
    last_started: Option<String>,
    last_duration_ms: Option<i64>,
    last_items: Option<u64>,
    last_error: Option<String>,
    next: String,
    progress: Option<String>,
}

fn local_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

pub async fn status(env_file: Option<&Path>, args: StatusArgs) -> u8 {
    let (config, store) = match load_config_and_store(env_file).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let histories = match store.kind_histories().await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: cannot read the run history: {e}");
            return 1;
        }
    };
    let policy = Policy {
        retry_delay: config.api.retry_delay,
        max_retries: config.api.max_retries,
        catch_up: config.catch_up,
    };
    let paused = store.paused_accounts().await.unwrap_or_default();
    let now = storage::now_ms();
    let stale_ms = i64::try_from(config.sync.stale_after.as_millis()).unwrap_or(i64::MAX);
    let mut rows = Vec::new();
    for s in schedules(&config) {
        let h = histories
            .iter()
            .find(|h| h.account == s.account && h.kind == s.kind);
        let next = match evaluate(&s, h, now, &policy) {
            _ if paused.contains(&s.account) => "paused (emag-sync resume)".into(),
            Decision::Due { reason, .. } => format!("due now ({reason})"),
            Decision::Wait { at_ms } => local_time(at_ms),
            Decision::Running => "running".into(),
        };
        let last = h.map(|h| &h.latest);
        rows.push(KindStatus {
            account: s.account.clone(),
            kind: s.kind.to_string(),
            interval_minutes: s.interval.as_secs() / 60,
            cron: s
                .cron
                .as_ref()
                .map(|c| format!("cron {} {}", c.expr, c.zone)),
            last_state: last.map(|r| r.state.to_string()),
            last_started: last.and_then(|r| r.started_at).map(local_time),
            last_duration_ms: last.and_then(|r| Some(r.finished_at? - r.started_at?)),
            last_items: last.map(|r| r.counts.items_read),
            last_error: last.and_then(|r| r.error_message.clone()),
            next,
            progress: last
                .filter(|r| r.state == domain::RunState::Running)
                .map(|r| {
                    let alive = r.holder.as_deref().is_some_and(emag_sync::holder_is_alive)
                        && r.heartbeat_at.is_some_and(|hb| now - hb < stale_ms);
                    let at = format!(
                        "page {} of {} items",
                        r.checkpoint_page,
                        r.total_items.unwrap_or(0)
                    );
                    if alive {
                        at
                    } else {
                        format!("{at}; its process stopped — the next scheduler tick resumes it")
                    }
                }),
        });
    }
    let pid = live_pid(&config.pid_file);
    if args.json {
        let out = serde_json::json!({ "scheduler_running": pid.is_some(), "pid": pid, "schedules": rows });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return 0;
    }
    match pid {
        Some(pid) => println!("scheduler: running (pid {pid})"),
        None => println!("scheduler: not running (start it with `emag-sync start`)"),
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "account", "kind", "every", "last run", "state", "took", "items", "next", "details",
    ]);
    for r in &rows {
        table.add_row(vec![
            r.account.clone(),
            r.kind.clone(),
            r.cron
                .clone()
                .unwrap_or_else(|| format!("{} min", r.interval_minutes)),
            r.last_started.clone().unwrap_or_else(|| "never".into()),
            r.last_state.clone().unwrap_or_default(),
            r.last_duration_ms
                .map(|d| format!("{:.1}s", d as f64 / 1000.0))
                .unwrap_or_default(),
            r.last_items.map(|i| i.to_string()).unwrap_or_default(),
            r.next.clone(),
            r.progress
                .clone()
                .or_else(|| r.last_error.clone())
                .unwrap_or_default(),
        ]);
    }
    println!("{table}");
    0
}

#[derive(Debug, clap::Args)]
pub struct AccountArg {
    /// The account name (main, fbe, …).
    account: String,
}

/// `pause` / `resume`: stored in the database, so every scheduler instance obeys it.
pub async fn set_paused(env_file: Option<&Path>, args: AccountArg, paused: bool) -> u8 {
    let (config, store) = match load_config_and_store(env_file).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let name = args.account.to_ascii_lowercase();
    if let Some(a) = config.account(&name) {
        let _ = store
            .upsert_account(
                a.name.as_str(),
                a.kind.as_str(),
                a.marketplace.as_str(),
                &a.base_url,
            )
            .await;
    }
    match store.set_paused(&name, paused).await {
        Ok(true) => {
            println!(
                "account {name} {}",
                if paused {
                    "paused: scheduled syncs stop after the run in flight"
                } else {
                    "resumed"
                }
            );
            0
        }
        Ok(false) => {
            eprintln!(
                "error: no account named {name:?} (configure EMAG_{}_API_USERNAME)",
                name.to_ascii_uppercase()
            );
            EXIT_CONFIG
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `backup`: a consistent SQLite snapshot now; on PostgreSQL, how to back up instead.
pub async fn backup(env_file: Option<&Path>) -> u8 {
    let (config, store) = match load_config_and_store(env_file).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if store.backend() == storage::Backend::Postgres {
        println!(
            "the database is PostgreSQL ({}): back it up with pg_dump, e.g.\n  pg_dump --format=custom --file=emag-sync-$(date +%F).dump '<DATABASE_URL>'",
            store.url_redacted()
        );
        return 0;
    }
    match emag_sync::backup::backup_now(&store, &config.backups.dir, config.backups.keep).await {
        Ok(path) => {
            println!(
                "snapshot written: {} (keeping the newest {})",
                path.display(),
                config.backups.keep.max(1)
            );
            0
        }
        Err(e) => {
            eprintln!("error: backup failed: {e:#} (check EMAG_BACKUP_DIR and free disk space)");
            1
        }
    }
}
