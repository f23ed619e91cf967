//! `emag-sync demo`: the whole product on one machine with no configuration — a simulator
//! with a MAIN and an FBE account, a sync of everything into SQLite, and what was stored.

use std::collections::HashMap;
use std::path::PathBuf;

use domain::{RunTrigger, SyncKind};
use emag_sim::{SimConfig, Simulator};
use emag_sync::accounts;
use emag_sync::config::Config;
use emag_sync::sync::{run_sync, RunStatus, SyncContext};

use super::sim::env_lines;
use crate::output::{init_logging, summary_table};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// SQLite file the demo writes (recreated on every run; an existing file is deleted only
    /// if an earlier demo made it).
    #[arg(long, default_value = emag_sync::demo::DEFAULT_DEMO_DATABASE)]
    database: PathBuf,
    /// Offers per simulated account.
    #[arg(long, default_value_t = 1000)]
    offers: u32,
    /// Orders per simulated account.
    #[arg(long, default_value_t = 150)]
    orders: u32,
    /// Seed of the simulated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after the first sync instead of running the scheduler until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Minutes between scheduled syncs while the demo runs.
    #[arg(long, default_value_t = 1)]
    interval: u32,
    /// Where the dashboard listens while the demo runs (a free port if this one is taken).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8001")]
    dashboard: std::net::SocketAddr,
    /// Run without the dashboard.
    #[arg(long)]
    no_dashboard: bool,
}

pub async fn run(args: Args) -> u8 {
    init_logging("warn");
    match demo(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: demo failed: {e:#}");
            1
        }
    }
}

async fn demo(args: Args) -> anyhow::Result<u8> {
    // Before anything starts: a database that is not the demo's is refused, not deleted.
    emag_sync::demo::remove_for_new_demo(&args.database)?;
    let sim = Simulator::spawn(SimConfig {
        seed: args.seed,
        offers_per_account: args.offers,
        orders_per_account: args.orders,
        ..SimConfig::default()
    })
    .await?;
    println!("simulator: {} (eMAG rate limits enforced)", sim.base_url);
    emag_sync::demo::create_demo_database(&args.database).await?;
    let mut vars: HashMap<String, String> = env_lines(&sim.base_url, &sim.sim.accounts())
        .into_iter()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    vars.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}", args.database.display()),
    );
    vars.insert("EMAG_RETRY_DELAY".into(), "0.5".into());
    for name in ["MAIN", "FBE"] {
        vars.insert(
            format!("EMAG_{name}_SYNC_INTERVAL"),
            args.interval.max(1).to_string(),
        );
        vars.insert(format!("EMAG_{name}_SYNC_TYPES"), "full".into());
    }
    vars.insert("EMAG_BACKUP_DIR".into(), "data/demo-backups".into());
    // The demo's own token for the dashboard's controls, printed once with its URL.
    let token = random_token()?;
    vars.insert("EMAG_DASHBOARD_TOKEN".into(), token.clone());
    let config = Config::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = storage::Store::open(&config.database_url).await?;
    println!("database:  {}", store.url_redacted());
    let accounts = accounts::select(&config, &store, "all").await?;
    let ctx = SyncContext::new(store.clone(), config.sync);
    println!(
        "syncing {} accounts (reference data, offers, orders, returns)…",
        accounts.len()
    );
    let tasks: Vec<_> = accounts
        .clone()
        .into_iter()
        .map(|account| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for kind in [
                    SyncKind::Reference,
                    SyncKind::Offers,
                    SyncKind::Orders,
                    SyncKind::Returns,
                ] {
                    out.push(run_sync(&ctx, &account, kind, RunTrigger::Manual, false).await);
                }
                out
            })
        })
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.extend(t.await?);
    }
    println!("{}", summary_table(&reports));

    println!("\nstored:");
    for account in ["main", "fbe"] {
        let (live, removed) = store.count_offers(account).await?;
        let orders = store.export_orders(Some(account), None, 100_000).await?;
        let fbe_orders = orders.iter().filter(|o| o.order_type == 2).count();
        println!(
            "  {account:<5} {live} offers ({removed} removed), {} orders ({} seller-fulfilled, {fbe_orders} FBE)",
            orders.len(),
            orders.len() - fbe_orders
        );
    }
    println!("\nthe same offer ids in both accounts are different products:");
    for account in ["main", "fbe"] {
        for o in store.export_offers(Some(account), None, 2).await? {
            println!(
                "  {:<5} id {:>3}  {:<45} {} {}",
                o.account,
                o.id,
                o.name.unwrap_or_default(),
                o.sale_price.unwrap_or_default(),
                o.currency.unwrap_or_default()
            );
        }
    }
    println!(
        "\nexplore: DATABASE_URL=sqlite://{} emag-sync export offers --account fbe | head",
        args.database.display()
    );
    let failed = reports.iter().any(|r| r.status != RunStatus::Succeeded);
    if !args.once {
        let dashboard = if args.no_dashboard {
            None
        } else {
            serve_dashboard(&config, &store, args.dashboard, &token, &accounts, &ctx).await
        };
        run_scheduler(&config, &store, &sim.sim, ctx, accounts).await?;
        if let Some(task) = dashboard {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
    store.close().await;
    sim.shutdown().await;
    Ok(u8::from(failed))
}

/// 16 random bytes from the OS, as hex.
fn random_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| anyhow::anyhow!("cannot read random bytes for the dashboard token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Serves the dashboard beside the demo's scheduler until the demo stops; prints its URL and
/// token. A taken address falls back to a free port; a dashboard that cannot start costs the
/// demo nothing else.
async fn serve_dashboard(
    config: &Config,
    store: &storage::Store,
    addr: std::net::SocketAddr,
    token: &str,
    accounts: &[emag_sync::sync::Account],
    ctx: &SyncContext,
) -> Option<tokio::task::JoinHandle<Result<(), emag_sync::web::WebError>>> {
    use emag_sync::web::{self, AppState};
    let secret = config.dashboard.token.as_ref();
    let listener = match web::bind(addr, secret).await {
        Ok(l) => l,
        Err(_) => match web::bind(std::net::SocketAddr::new(addr.ip(), 0), secret).await {
            Ok(l) => l,
            Err(e) => {
                println!("dashboard: not served ({e})");
                return None;
            }
        },
    };
    let url = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    println!("dashboard: http://{url}/  (token for its controls: {token})");
    let state = AppState::new(config.clone(), store.clone()).with_api_clients(accounts);
    Some(tokio::spawn(web::serve(
        listener,
        state,
        ctx.cancel.child_token(),
    )))
}

/// The scheduler on the demo's accounts, with the simulated marketplace changing under it
/// (prices, stock, new and updated orders), printing each finished run, until Ctrl-C.
async fn run_scheduler(
    config: &Config,
    store: &storage::Store,
    sim: &Simulator,
    ctx: SyncContext,
    accounts: Vec<emag_sync::sync::Account>,
) -> anyhow::Result<()> {
    use emag_sync::scheduler::{schedules, Maintenance, Policy, Scheduler};
    let plan = schedules(config);
    println!(
        "\nscheduler: {} schedules, every {} min at stable offsets; the simulated shops change meanwhile. Ctrl-C to stop.",
        emag_sync::scheduler::timed(&plan),
        config.accounts.first().map(|a| a.sync_interval.as_secs() / 60).unwrap_or(1)
    );
    let cancel = ctx.cancel.clone();
    let market = sim.clone();
    let activity = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut round: u32 = 0;
        loop {
            tick.tick().await;
            round += 1;
            for account in ["main", "fbe"] {
                let id = 1 + (round * 7) % 50;
                let price = rust_decimal::Decimal::new(10_000 + i64::from(round) * 137, 2);
                let _ = market.mutate(
                    account,
                    emag_sim::Mutation::SetPrice {
                        id,
                        sale_price: price,
                    },
                );
                let _ = market.mutate(
                    account,
                    emag_sim::Mutation::SetStock {
                        id: id + 1,
                        stock: round % 9,
                    },
                );
                let kind = if account == "fbe" { 2 } else { 3 };
                let _ = market.mutate(
                    account,
                    emag_sim::Mutation::AddOrders {
                        count: 1,
                        order_type: kind,
                    },
                );
            }
        }
    });
    let reporter_store = store.clone();
    let reporter = tokio::spawn(async move {
        // Runs of the first sync were shown in the table already.
        let mut printed: std::collections::HashSet<i64> = reporter_store
            .list_runs(&storage::RunFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .map(|runs| runs.iter().map(|r| r.id).collect())
            .unwrap_or_default();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            let Ok(runs) = reporter_store
                .list_runs(&storage::RunFilter {
                    limit: 50,
                    ..Default::default()
                })
                .await
            else {
                continue;
            };
            for r in runs
                .iter()
                .rev()
                .filter(|r| r.state.is_terminal())
                .collect::<Vec<_>>()
            {
                if !printed.insert(r.id) {
                    continue;
                }
                let c = &r.counts;
                println!(
                    "  run {:>3} {:<5} {:<9} {:<9} read {:>5}  created {:>4}  updated {:>4}  unchanged {:>5}  removed {:>3}{}",
                    r.id, r.account, r.kind, r.state, c.items_read, c.created, c.updated, c.unchanged, c.removed,
                    r.error_message.as_deref().map(|e| format!("  — {e}")).unwrap_or_default()
                );
            }
        }
    });
    tokio::spawn(async move {
        super::sync::shutdown_signal().await;
        cancel.cancel();
    });
    let policy = Policy::from(config);
    let maintenance = Maintenance {
        backups: Some(config.backups.clone()),
        run_retention: None,
        systemd: false,
    };
    let result = Scheduler::new(ctx, accounts, plan, policy)
        .with_maintenance(maintenance)
        .run()
        .await;
    activity.abort();
    reporter.abort();
    println!("demo stopped");
    result
}
