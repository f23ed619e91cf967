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
    /// SQLite file the demo writes (recreated on every run).
    #[arg(long, default_value = "data/demo.db")]
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
    let sim = Simulator::spawn(SimConfig {
        seed: args.seed,
        offers_per_account: args.offers,
        orders_per_account: args.orders,
        ..SimConfig::default()
    })
    .await?;
    println!("simulator: {} (eMAG rate limits enforced)", sim.base_url);
    for ext in ["", "-wal", "-shm"] {
        let mut p = args.database.clone().into_os_string();
        p.push(ext);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let mut vars: HashMap<String, String> = env_lines(&sim.base_url, &sim.sim.accounts())
        .into_iter()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    vars.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}", args.database.display()),
    );
    vars.insert("EMAG_RETRY_DELAY".into(), "0.5".into());
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
    store.close().await;
    sim.shutdown().await;
    Ok(u8::from(
        reports.iter().any(|r| r.status != RunStatus::Succeeded),
    ))
}
