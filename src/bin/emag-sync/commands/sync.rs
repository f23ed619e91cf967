//! `emag-sync sync`: run syncs now, with progress on a terminal and a summary at the end.

use std::path::Path;
use std::sync::Arc;

use domain::{RunTrigger, SyncKind};
use emag_sync::accounts;
use emag_sync::sync::{run_sync, RunReport, RunStatus, SyncContext};

use super::{load_config_with_accounts, open_store, EXIT_CONFIG};
use crate::output::{peak_rss_kib, summary_table, Bars};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Account name (main, fbe, …) or `all`.
    #[arg(default_value = "all")]
    account: String,
    /// What to sync.
    #[arg(long, value_enum, default_value = "all")]
    kind: KindArg,
    /// Ignore cursors and checkpoints: rescan offers from page 1, re-read orders over the
    /// whole backfill period.
    #[arg(long)]
    full: bool,
    /// Print a machine-readable summary on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Do not sync here: queue the runs for the running scheduler (any instance sharing the
    /// database claims them within a second) and return at once.
    #[arg(long)]
    queue: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Offers,
    Orders,
    Reference,
    Returns,
    All,
}

impl KindArg {
    fn kinds(self) -> Vec<SyncKind> {
        match self {
            KindArg::Offers => vec![SyncKind::Offers],
            KindArg::Orders => vec![SyncKind::Orders],
            KindArg::Reference => vec![SyncKind::Reference],
            KindArg::Returns => vec![SyncKind::Returns],
            KindArg::All => vec![
                SyncKind::Reference,
                SyncKind::Offers,
                SyncKind::Orders,
                SyncKind::Returns,
            ],
        }
    }
}

pub async fn run(env_file: Option<&Path>, args: Args) -> u8 {
    let config = match load_config_with_accounts(env_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let accounts = match accounts::select(&config, &store, &args.account).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_CONFIG;
        }
    };
    if args.queue {
        return queue(&store, &accounts, &args).await;
    }
    let mut ctx = SyncContext::new(store.clone(), config.sync);
    ctx.reference_failover = accounts::failover_peers(&config);
    let bars = if args.json {
        None
    } else {
        Bars::for_terminal().map(Arc::new)
    };
    if let Some(b) = &bars {
        ctx.progress = Some(b.clone());
    }
    // Ctrl-C / SIGTERM: finish the page in flight, keep the checkpoint, exit.
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!("stop requested; finishing the page in flight");
        cancel.cancel();
    });

    // Accounts run side by side (each has its own rate budget); kinds of one account in
    // sequence, since they share that account's budget.
    let tasks: Vec<_> = accounts
        .into_iter()
        .map(|account| {
            let ctx = ctx.clone();
            let kinds = args.kind.kinds();
            let full = args.full;
            tokio::spawn(async move {
                let mut reports = Vec::new();
                for kind in kinds {
                    if ctx.cancel.is_cancelled() {
                        break;
                    }
                    reports.push(run_sync(&ctx, &account, kind, RunTrigger::Manual, full).await);
                }
                reports
            })
        })
        .collect();
    let mut reports: Vec<RunReport> = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => reports.extend(r),
            Err(e) => eprintln!("error: a sync task crashed: {e}"),
        }
    }
    if let Some(b) = &bars {
        b.finish();
    }
    store.close().await;

    let failed: Vec<&RunReport> = reports
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                RunStatus::Failed | RunStatus::Busy | RunStatus::Interrupted | RunStatus::Cancelled
            )
        })
        .collect();
    if args.json {
        let out = serde_json::json!({
            "runs": reports,
            "ok": failed.is_empty(),
            "peak_rss_kib": peak_rss_kib(),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!("{}", summary_table(&reports));
        for r in &failed {
            if let Some(e) = r.error.as_ref().or(r.note.as_ref()) {
                eprintln!("error: {}/{}: {e}", r.account, r.kind);
            }
        }
    }
    if failed.is_empty() {
        0
    } else {
        1
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `sync --queue`: one queued manual run per (account, kind), for a scheduler to claim.
async fn queue(store: &storage::Store, accounts: &[emag_sync::sync::Account], args: &Args) -> u8 {
    let mut out = Vec::new();
    for account in accounts {
        for kind in args.kind.kinds() {
            match store.enqueue_run(account.name(), kind, args.full).await {
                Ok(done) => {
                    if !args.json {
                        match &done {
                            storage::Enqueued::Queued { run_id } => println!(
                                "{}/{kind}: queued as run {run_id}; a running scheduler claims it within a second",
                                account.name()
                            ),
                            storage::Enqueued::AlreadyActive { run_id, state } => println!(
                                "{}/{kind}: run {run_id} is already {state}; it covers this request",
                                account.name()
                            ),
                        }
                    }
                    out.push(serde_json::json!({
                        "account": account.name(), "kind": kind, "result": done
                    }));
                }
                Err(e) => {
                    eprintln!("error: cannot queue {}/{kind}: {e}", account.name());
                    return 1;
                }
            }
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Array(out));
    }
    0
}
