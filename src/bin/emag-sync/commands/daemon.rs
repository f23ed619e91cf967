//! `emag-sync start | stop | status`: the scheduler as a foreground daemon with a pid file,
//! stopping it cleanly, and what it is doing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use emag_sync::accounts;
use emag_sync::scheduler::{schedules, Maintenance, Policy, Scheduler};
use emag_sync::status::Snapshot;
use emag_sync::sync::SyncContext;

use super::{load_config, load_config_and_store, open_store, EXIT_CONFIG};

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Start the scheduler in the background and return once it is ready (or with its error).
    /// Its output goes to `<EMAG_LOG_FILE without extension>.out`
    /// (logs/emag_sync_scheduler.out by default); `emag-sync stop` ends it.
    #[arg(long)]
    detach: bool,
    /// Set by `start --detach` for the scheduler it starts: the socket to report readiness to.
    #[arg(long, hide = true, value_name = "SOCKET")]
    ready_socket: Option<PathBuf>,
    /// Do not serve the dashboard (EMAG_DASHBOARD_BIND, default 127.0.0.1:8001) beside the
    /// scheduler.
    #[arg(long)]
    no_dashboard: bool,
}

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

/// The pid of the scheduler running from a pid file, if one runs and is emag-sync.
fn live_pid(pid_file: &Path) -> Option<u32> {
    match emag_sync::pidfile::running(pid_file) {
        emag_sync::pidfile::Running::Yes(pid) => Some(pid),
        _ => None,
    }
}

pub async fn start(env_file: Option<&Path>, args: StartArgs) -> u8 {
    if args.detach {
        return detach(env_file).await;
    }
    let detached = args.ready_socket.is_some();
    // The daemon logs to its file as well as stderr, so it sets logging up itself.
    let config = match emag_sync::config::Config::load(env_file) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("error: {errors}");
            return EXIT_CONFIG;
        }
    };
    // A detached scheduler logs only to the rotated file: its stderr is a file nobody rotates.
    let _log_guard = match crate::output::init_logging_with_file(
        &config.log_level,
        &config.log_file,
        !detached,
    ) {
        Ok(guard) => {
            // Old log files go by age (EMAG_LOG_RETENTION_DAYS): now, then once a day.
            crate::output::prune_old_logs_now(&config.log_file, config.log_retention_days);
            crate::output::spawn_daily_log_pruning(
                config.log_file.clone(),
                config.log_retention_days,
            );
            Some(guard)
        }
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
    // Locked (and unlocked by the OS when the process ends, however it ends) until `start`
    // returns: a pid file left by a killed scheduler is taken over, whatever pid it names.
    let pid_file = match emag_sync::pidfile::PidFile::acquire(&config.pid_file) {
        Ok(pid_file) => pid_file,
        Err(e @ emag_sync::pidfile::PidFileError::Running { .. }) => {
            eprintln!("error: {e}; stop it with `emag-sync stop`");
            return 1;
        }
        Err(e) => {
            eprintln!("error: {e} (set EMAG_PID_FILE)");
            return 1;
        }
    };
    // Held (unlocked by the OS when the process ends, however it ends) until `start` returns.
    let _sqlite_lock = match lock_sqlite_database(&config.database_url) {
        Ok(lock) => lock,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
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
    let mut ctx = SyncContext::new(store.clone(), config.sync);
    ctx.reference_failover = accounts::failover_peers(&config);
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        super::sync::shutdown_signal().await;
        tracing::info!("stop requested: finishing the pages in flight, then exiting");
        cancel.cancel();
    });
    let dashboard = if args.no_dashboard {
        None
    } else {
        let accounts = accounts.iter().chain(ctx.reference_failover.iter());
        super::dashboard::serve_beside(&config, &store, accounts, ctx.cancel.child_token()).await
    };
    // The alert rules are evaluated beside the scheduler (a slow or failing channel never
    // holds up a sync), from its first tick on: this instance is registered by then, so its
    // own start is not seen as "no scheduler running".
    let alerts = (config.clone(), store.clone(), ctx.cancel.child_token());
    let plan = schedules(&config);
    let policy = Policy::from(&config);
    let maintenance = Maintenance {
        backups: (store.backend() == storage::Backend::Sqlite && config.backups.keep > 0)
            .then(|| config.backups.clone()),
        run_retention: Some(Duration::from_secs(
            86_400 * u64::from(config.run_retention_days.max(1)),
        )),
        systemd: std::env::var_os("NOTIFY_SOCKET").is_some(),
    };
    let systemd = maintenance.systemd;
    // The readiness line, printed once the first tick is done: migrations are applied, the
    // schedules loaded and what was due has started.
    let ready = format!(
        "emag-sync scheduler ready: {} schedule(s) over {} account(s), pid {}, database {}{}",
        emag_sync::scheduler::timed(&plan),
        accounts.len(),
        std::process::id(),
        store.url_redacted(),
        dashboard
            .as_ref()
            .map(|d| format!(", dashboard {}", d.url))
            .unwrap_or_default()
    );
    let ready_socket = args.ready_socket;
    let scheduler = Scheduler::new(ctx, accounts, plan, policy)
        .with_maintenance(maintenance)
        .on_ready(move || {
            let (config, store, cancel) = alerts;
            tokio::spawn(emag_sync::alerts::run(config, store, cancel));
            say(&ready);
            if systemd {
                let _ = sd_notify::notify(&[
                    sd_notify::NotifyState::Ready,
                    sd_notify::NotifyState::Status(&ready),
                ]);
            }
            if let Some(socket) = &ready_socket {
                report_ready(socket);
            }
        });
    let result = scheduler.run().await;
    if let Some(dashboard) = dashboard {
        dashboard.stop().await;
    }
    store.close().await;
    drop(pid_file);
    match result {
        Ok(()) => {
            say("emag-sync scheduler stopped");
            0
        }
        Err(e) => {
            eprintln!("error: the scheduler stopped: {e:#}");
            1
        }
    }
}

/// The file of a file-backed SQLite `DATABASE_URL`, read as the store reads it; `None` for
/// PostgreSQL and in-memory SQLite.
fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The lock file that keeps a second scheduler off an SQLite file: `<db file>.scheduler.lock`.
fn sqlite_lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or(db.as_os_str()).to_os_string();
    name.push(".scheduler.lock");
    db.with_file_name(name)
}

/// One scheduler per SQLite file: an exclusive OS lock on `<db file>.scheduler.lock`, held as
/// long as the returned file is open and released by the OS however the process ends. The
/// lock file holds the pid of the holder, for the message of the one refused. PostgreSQL
/// needs no lock (instances share the schedule through the store): `Ok(None)`.
fn lock_sqlite_database(database_url: &str) -> Result<Option<std::fs::File>, String> {
    use std::io::Write;
    let Some(db) = sqlite_file(database_url) else {
        return Ok(None);
    };
    let lock_path = sqlite_lock_path(&db);
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            format!(
                "cannot open the scheduler lock file {}: {e} (check the permissions of the database directory, DATABASE_URL)",
                lock_path.display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0);
            let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
            Ok(Some(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            let (by, fix) = match holder {
                Some(pid) => (
                    format!(" (pid {pid})"),
                    format!("stop it with `emag-sync stop` and the EMAG_PID_FILE it was started with, or `kill {pid}`"),
                ),
                None => (String::new(), "stop it with `emag-sync stop` and the EMAG_PID_FILE it was started with".to_owned()),
            };
            Err(format!(
                "another emag-sync scheduler{by} already runs on the SQLite database {} (lock file {}): \
                 one scheduler per SQLite file. {fix}; to run several instances, use PostgreSQL (DATABASE_URL=postgres://…)",
                db.display(),
                lock_path.display()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!(
            "cannot lock the scheduler lock file {}: {e}",
            lock_path.display()
        )),
    }
}

/// Tells the `start --detach` that started this scheduler that it is ready.
fn report_ready(socket: &Path) {
    let message = format!("READY pid={}", std::process::id());
    let sent = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.send_to(message.as_bytes(), socket));
    if let Err(e) = sent {
        tracing::warn!(socket = %socket.display(), error = %e, "cannot tell `start --detach` that the scheduler is ready");
    }
}

/// How long `start --detach` waits for the scheduler to be ready (migrations of a large
/// database included).
const DETACH_READY_TIMEOUT: Duration = Duration::from_secs(300);

/// How the scheduler started by `start --detach` came out of its start.
#[derive(Debug)]
enum Startup {
    Ready,
    Exited(std::process::ExitStatus),
    TimedOut,
    Failed(std::io::Error),
}

/// `start --detach`: runs this executable again with the same arguments minus `--detach`, in
/// its own process group, stdin from /dev/null and its output appended to a file next to the
/// log, then waits until it reports ready on a private socket — or exits, with its error.
async fn detach(env_file: Option<&Path>) -> u8 {
    let config = match emag_sync::config::Config::load(env_file) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("error: {errors}");
            return EXIT_CONFIG;
        }
    };
    let out_path = config.log_file.with_extension("out");
    if let Some(dir) = out_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!(
                "error: cannot create the log directory {}: {e} (set EMAG_LOG_FILE)",
                dir.display()
            );
            return 1;
        }
    }
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .and_then(|out| Ok((out.try_clone()?, out)));
    let (stdout, stderr) = match opened {
        Ok(files) => files,
        Err(e) => {
            eprintln!(
                "error: cannot open {} for the scheduler's output: {e} (set EMAG_LOG_FILE)",
                out_path.display()
            );
            return 1;
        }
    };
    let out_start = stdout.metadata().map(|m| m.len()).unwrap_or(0);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let socket_path = std::env::temp_dir().join(format!(
        "emag-sync-ready-{}-{nonce:08x}.sock",
        std::process::id()
    ));
    let socket = match tokio::net::UnixDatagram::bind(&socket_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: cannot create the readiness socket {}: {e} (check TMPDIR)",
                socket_path.display()
            );
            return 1;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find this executable to start it in the background: {e}");
            let _ = std::fs::remove_file(&socket_path);
            return 1;
        }
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    let spawned = tokio::process::Command::new(exe)
        .args(args)
        .arg("--ready-socket")
        .arg(&socket_path)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: cannot start the scheduler in the background: {e}");
            let _ = std::fs::remove_file(&socket_path);
            return 1;
        }
    };
    let pid = child.id().unwrap_or(0);
    let expected = format!("READY pid={pid}");
    let deadline = tokio::time::sleep(DETACH_READY_TIMEOUT);
    tokio::pin!(deadline);
    let mut buf = [0u8; 64];
    let startup = loop {
        tokio::select! {
            // A readiness message already queued wins over an exit seen at the same time.
            biased;
            got = socket.recv(&mut buf) => match got {
                Ok(n) if buf[..n] == *expected.as_bytes() => break Startup::Ready,
                Ok(_) => continue,
                Err(e) => break Startup::Failed(e),
            },
            status = child.wait() => break match status {
                Ok(status) => Startup::Exited(status),
                Err(e) => Startup::Failed(e),
            },
            () = &mut deadline => break Startup::TimedOut,
        }
    };
    drop(socket);
    let _ = std::fs::remove_file(&socket_path);
    let log = config.log_file.display();
    let out = out_path.display();
    match startup {
        Startup::Ready => {
            println!(
                "emag-sync scheduler started in the background (pid {pid}); stop it with emag-sync stop"
            );
            println!("  logs: {log}.YYYY-MM-DD, output: {out}");
            0
        }
        Startup::Exited(status) => {
            eprintln!("error: the scheduler did not start ({status}); its output ({out}):");
            print_output_tail(&out_path, out_start);
            status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .filter(|c| *c != 0)
                .unwrap_or(1)
        }
        Startup::TimedOut => {
            eprintln!(
                "error: the scheduler (pid {pid}) did not report ready within {} s; it may still be \
                 starting (migrations?) — see {out} and {log}.*, `emag-sync status`, or end it with \
                 `emag-sync stop`. Its output so far:",
                DETACH_READY_TIMEOUT.as_secs()
            );
            print_output_tail(&out_path, out_start);
            1
        }
        Startup::Failed(e) => {
            eprintln!(
                "error: cannot follow the scheduler started in the background (pid {pid}): {e}; \
                 see {out} and `emag-sync status`"
            );
            1
        }
    }
}

/// The last lines the detached scheduler wrote to its output file (from `from` on).
fn print_output_tail(out_path: &Path, from: u64) {
    use std::io::{Read, Seek};
    const LINES: usize = 20;
    let mut text = String::new();
    let read = std::fs::File::open(out_path).and_then(|mut f| {
        f.seek(std::io::SeekFrom::Start(from))?;
        f.take(1 << 20).read_to_string(&mut text)
    });
    if read.is_err() || text.trim().is_empty() {
        eprintln!("  (nothing)");
        return;
    }
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(LINES)..] {
        eprintln!("  {line}");
    }
}

/// A line on stdout that never kills the daemon: whoever read its readiness line may have
/// closed the pipe since (`println!` would panic on EPIPE).
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

pub async fn stop(env_file: Option<&Path>, args: StopArgs) -> u8 {
    let config = match load_config(env_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Only a process that holds the pid file's lock and is emag-sync is ever signalled: a
    // pid left by a killed scheduler may name any process by now.
    let pid = match emag_sync::pidfile::running(&config.pid_file) {
        emag_sync::pidfile::Running::Yes(pid) => pid,
        emag_sync::pidfile::Running::No => {
            println!(
                "emag-sync is not running (no scheduler holds {})",
                config.pid_file.display()
            );
            return 0;
        }
        emag_sync::pidfile::Running::Unverified(pid) => {
            let named = pid
                .map(|p| format!(" names pid {p}, which"))
                .unwrap_or_default();
            eprintln!(
                "error: a scheduler holds {} but the pid file{named} is not an emag-sync process \
                 this command can see (starting this instant, or in another PID namespace); \
                 nothing was signalled — stop it where it runs",
                config.pid_file.display()
            );
            return 1;
        }
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

pub fn local_time(ms: i64) -> String {
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
    let snapshot = match Snapshot::read(&config, &store).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            eprintln!("error: cannot read the scheduler's state from the database: {e}");
            return 1;
        }
    };
    let pid = live_pid(&config.pid_file);
    if args.json {
        /// The snapshot, with this machine's pid file beside it.
        #[derive(serde::Serialize)]
        struct StatusJson<'a> {
            scheduler_running: bool,
            pid: Option<u32>,
            #[serde(flatten)]
            snapshot: &'a Snapshot,
        }
        let out = StatusJson {
            scheduler_running: pid.is_some() || snapshot.scheduler.running,
            pid,
            snapshot: &snapshot,
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return 0;
    }
    print!("{}", crate::render::status_text(&snapshot, pid));
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
