//! `emag-sync`: the command line of emag-sync. Each subcommand lives in `commands/`.

mod commands;
mod output;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps your database in step with your eMAG Marketplace accounts (MAIN, FBE and more).
///
/// Configuration comes from `.env` and the environment (the environment wins), with the
/// variable names of the original tool: EMAG_API_USERNAME / EMAG_API_PASSWORD for MAIN,
/// EMAG_FBE_API_USERNAME / EMAG_FBE_API_PASSWORD for FBE, EMAG_<NAME>_API_USERNAME … for more
/// accounts, DATABASE_URL for the store (SQLite file by default). See .env.example.
#[derive(Debug, Parser)]
#[command(name = "emag-sync", version, about, long_about = None, after_help = "Start with `emag-sync demo` (no configuration needed), then `emag-sync test` with your .env.")]
struct Cli {
    /// Path of the .env file to read (default: ./.env if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the configuration, the database and every account's credentials.
    ///
    /// Lists every configuration problem with the variable and how to fix it, then makes one
    /// cheap call (vat/read) per account. Exit 0: all good; 1: an account or the database
    /// failed; 2: the configuration is invalid.
    Test(commands::test::Args),
    /// Sync now: offers, orders, reference data and returns of one account or all.
    Sync(commands::sync::Args),
    /// Run the scheduler: every account and kind at its interval, with retries and catch-up,
    /// until SIGTERM/Ctrl-C (then pages in flight finish and checkpoint). In the foreground,
    /// or in the background with `--detach`.
    Start(commands::daemon::StartArgs),
    /// Stop the scheduler started on this machine (via its pid file) and wait for it.
    Stop(commands::daemon::StopArgs),
    /// Show every schedule: last run, its outcome, the next run, runs in progress.
    Status(commands::daemon::StatusArgs),
    /// The run history, newest first: outcome, counts, errors, runs taken over.
    Runs(commands::runs::Args),
    /// Stop scheduling an account (stored in the database; every instance obeys).
    Pause(commands::daemon::AccountArg),
    /// Schedule a paused account again.
    Resume(commands::daemon::AccountArg),
    /// Write a consistent snapshot of the SQLite database to data/backups (EMAG_BACKUP_DIR),
    /// keeping the newest EMAG_BACKUP_KEEP; on PostgreSQL, says how to use pg_dump.
    Backup,
    /// Write synced offers or orders to stdout as JSON lines or CSV.
    Export(commands::export::Args),
    /// Run the eMAG Marketplace API simulator (for trying emag-sync without eMAG).
    Sim(commands::sim::Args),
    /// Apply the database migrations, print the schema version and exit.
    Migrate,
    /// Start the simulator, sync a MAIN and an FBE account into SQLite, show what was stored.
    Demo(commands::demo::Args),
    /// Watch everything: `report` for people, `json` (the body of /api/status), `health`
    /// (Nagios plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, with perfdata).
    Monitor(commands::monitor::Args),
    /// KPIs per account and kind over the last days against the targets (success > 98 %,
    /// freshness, recovery < 5 min, uptime 99.9 %), as Markdown, JSON or CSV.
    Report(commands::monitor::ReportArgs),
    /// Print shell completions: `emag-sync completions bash > /etc/bash_completion.d/emag-sync`.
    Completions(commands::monitor::CompletionArgs),
    /// Serve the dashboard's HTTP endpoints: /api/status, /health, /livez, /readyz, /metrics
    /// (default 127.0.0.1:8001; another address needs EMAG_DASHBOARD_TOKEN).
    Dashboard(commands::dashboard::Args),
    /// Alerts: `list` the incidents, `ack ID`, `resolve ID`, `check` the rules now, `test`
    /// the channels (EMAG_ALERT_WEBHOOK_URL).
    Alerts(commands::alerts::Args),
}

fn main() -> ExitCode {
    emag_sync::make_new_files_private();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let env_file = cli.env_file.as_deref();
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Test(args) => commands::test::run(env_file, args).await,
            Command::Sync(args) => commands::sync::run(env_file, args).await,
            Command::Start(args) => commands::daemon::start(env_file, args).await,
            Command::Stop(args) => commands::daemon::stop(env_file, args).await,
            Command::Status(args) => commands::daemon::status(env_file, args).await,
            Command::Runs(args) => commands::runs::run(env_file, args).await,
            Command::Pause(args) => commands::daemon::set_paused(env_file, args, true).await,
            Command::Resume(args) => commands::daemon::set_paused(env_file, args, false).await,
            Command::Backup => commands::daemon::backup(env_file).await,
            Command::Export(args) => commands::export::run(env_file, args).await,
            Command::Sim(args) => commands::sim::run(args).await,
            Command::Migrate => commands::migrate(env_file).await,
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Monitor(args) => commands::monitor::run(env_file, args).await,
            Command::Report(args) => commands::monitor::report(env_file, &args).await,
            Command::Completions(args) => commands::monitor::completions::<Cli>(&args),
            Command::Dashboard(args) => commands::dashboard::run(env_file, args).await,
            Command::Alerts(args) => commands::alerts::run(env_file, args).await,
        }
    });
    ExitCode::from(code)
}
