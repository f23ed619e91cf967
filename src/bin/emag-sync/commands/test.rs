//! `emag-sync test`: configuration, database and one cheap real call per account.

use std::path::Path;

use emag_client::{EmagClient, EmagError};
use serde_json::{Map, Value};

use super::load_config_with_accounts;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize)]
struct AccountCheck {
    account: String,
    kind: String,
    base_url: String,
    status: &'static str,
    detail: String,
}

pub async fn run(env_file: Option<&Path>, args: Args) -> u8 {
    let config = match load_config_with_accounts(env_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut failed = false;
    let database = match storage::Store::open(&config.database_url).await {
        Ok(store) => match store.ping().await {
            Ok(t) => format!("OK ({}, {} ms)", store.url_redacted(), t.as_millis()),
            Err(e) => {
                failed = true;
                format!("FAILED ({}): {e}", store.url_redacted())
            }
        },
        Err(e) => {
            failed = true;
            format!(
                "FAILED ({}): {e} — check DATABASE_URL",
                storage::redact_url(&config.database_url)
            )
        }
    };

    // A warning, not a failure: the database works, but not safely over a network.
    let database_warning = storage::plaintext_network_warning(&config.database_url);

    let mut checks = Vec::new();
    for account in &config.accounts {
        let mut client_config = config.client_config(account);
        client_config.max_retries = 0;
        let (status, detail) = match EmagClient::new(client_config) {
            Err(e) => ("unreachable", e.to_string()),
            Ok(client) => match client.call("vat", "read", &Value::Object(Map::new())).await {
                Ok(_) => ("OK", "credentials accepted".to_owned()),
                Err(e @ EmagError::Unauthorized { .. }) => (
                    "bad credentials",
                    format!(
                        "{e} — check {} and {}",
                        account.username_var, account.password_var
                    ),
                ),
                Err(e @ EmagError::IpNotWhitelisted { .. }) => (
                    "IP not whitelisted",
                    format!("{e} — whitelist this machine's IP in the eMAG seller UI"),
                ),
                Err(
                    e @ (EmagError::Transport(_)
                    | EmagError::Timeout { .. }
                    | EmagError::BadUrl { .. }),
                ) => (
                    "unreachable",
                    format!(
                        "{e} — check EMAG_{}_API_URL / the network",
                        account.name.as_str().to_ascii_uppercase()
                    ),
                ),
                Err(e) => ("error", e.to_string()),
            },
        };
        if status != "OK" {
            failed = true;
        }
        checks.push(AccountCheck {
            account: account.name.to_string(),
            kind: account.kind.to_string(),
            base_url: account.base_url.clone(),
            status,
            detail,
        });
    }

    if args.json {
        let out = serde_json::json!({
            "configuration": "OK",
            "database": database,
            "database_warning": database_warning,
            "accounts": checks,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!("configuration: OK ({} account(s))", config.accounts.len());
        println!("database:      {database}");
        if let Some(warning) = &database_warning {
            println!("               WARNING: {warning}");
        }
        for c in &checks {
            println!(
                "account {:<10} ({}) {}: {} — {}",
                c.account, c.kind, c.base_url, c.status, c.detail
            );
        }
    }
    u8::from(failed)
}
