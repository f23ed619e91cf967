//! `emag-sync runs`: the run history, newest first — what ran, when, how it ended, what it
//! changed, and runs taken over from a process that died.

use std::path::Path;

use domain::SyncKind;

use super::daemon::local_time;
use super::{check_account_filter, load_config_and_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this account.
    #[arg(long)]
    account: Option<String>,
    /// Only this kind (offers, orders, reference, returns).
    #[arg(long)]
    kind: Option<SyncKind>,
    /// How many runs, newest first.
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// Print JSON (every field of every run) instead of the table.
    #[arg(long)]
    json: bool,
}

pub async fn run(env_file: Option<&Path>, args: Args) -> u8 {
    let (config, store) = match load_config_and_store(env_file).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let account = args.account.map(|a| a.to_ascii_lowercase());
    if let Some(name) = &account {
        if let Err(code) = check_account_filter(&config, &store, name).await {
            return code;
        }
    }
    let filter = storage::RunFilter {
        account,
        kind: args.kind,
        limit: args.limit.max(1),
    };
    let runs = match store.list_runs(&filter).await {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("error: cannot read the run history: {e}");
            return 1;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&runs).unwrap_or_default()
        );
        return 0;
    }
    if runs.is_empty() {
        println!("no runs yet (start with `emag-sync sync` or `emag-sync start`)");
        return 0;
    }
    let mut table = crate::render::table(vec![
        "run", "account", "kind", "trigger", "state", "attempt", "started", "took", "read",
        "created", "updated", "removed", "requests", "details",
    ]);
    for r in &runs {
        let took = r
            .started_at
            .zip(r.finished_at)
            .map(|(s, f)| format!("{:.1}s", (f - s) as f64 / 1000.0))
            .unwrap_or_default();
        let details = r
            .error_message
            .clone()
            .or_else(|| {
                r.reclaimed_from
                    .as_ref()
                    .map(|h| format!("taken over from {h} (its lease expired)"))
            })
            .or_else(|| r.note.clone());
        // A failure's message already quotes eMAG; a success may carry what eMAG answered
        // to reads that were retried (issue 9, point 5).
        let said = (r.error_message.is_none() && !r.emag_messages.is_empty())
            .then(|| format!("eMAG said: {}", r.emag_messages.join(" · ")));
        let details = [details, said]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
        table.add_row(vec![
            r.id.to_string(),
            r.account.clone(),
            r.kind.to_string(),
            r.trigger.to_string(),
            r.state.to_string(),
            r.attempt.to_string(),
            r.started_at.map(local_time).unwrap_or_default(),
            took,
            r.counts.items_read.to_string(),
            r.counts.created.to_string(),
            r.counts.updated.to_string(),
            r.counts.removed.to_string(),
            r.counts.requests.to_string(),
            details,
        ]);
    }
    println!("{table}");
    0
}
