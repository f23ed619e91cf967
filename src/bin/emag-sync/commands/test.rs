//! `emag-sync test`: configuration, database, one cheap real call per account, and the
//! request encoding each account uses (probed and kept when `EMAG_API_ENCODING=auto`).

use std::path::Path;

use emag_client::{EmagClient, EmagError};
use emag_sync::sync::encoding::{probe_encoding, settle_encoding, EncodingError};
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
    /// The request encoding in use and how it was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<String>,
}

pub async fn run(env_file: Option<&Path>, args: Args) -> u8 {
    let config = match load_config_with_accounts(env_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut failed = false;
    let mut store = None;
    let database = match storage::Store::open(&config.database_url).await {
        Ok(opened) => match opened.ping().await {
            Ok(t) => {
                let line = format!("OK ({}, {} ms)", opened.url_redacted(), t.as_millis());
                store = Some(opened);
                line
            }
            Err(e) => {
                failed = true;
                format!("FAILED ({}): {e}", opened.url_redacted())
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
        let mut encoding = None;
        let (status, detail) = match EmagClient::new(client_config) {
            Err(e) => ("unreachable", e.to_string()),
            Ok(client) => match client.call("vat", "read", &Value::Object(Map::new())).await {
                Ok(_) => match check_encoding(&config, store.as_ref(), account, &client).await {
                    Ok(used) => {
                        encoding = Some(used);
                        ("OK", "credentials accepted".to_owned())
                    }
                    Err(e) => ("encoding", e.to_string()),
                },
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
            encoding,
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
            if let Some(e) = &c.encoding {
                println!("  request encoding: {e}");
            }
        }
    }
    u8::from(failed)
}

/// The encoding `account` uses: configured, kept in the store, or probed now (and kept when
/// the database is reachable).
async fn check_encoding(
    config: &emag_sync::config::Config,
    store: Option<&storage::Store>,
    account: &emag_sync::config::AccountConfig,
    client: &EmagClient,
) -> Result<String, EncodingError> {
    match store {
        Some(store) => {
            store
                .upsert_account(
                    account.name.as_str(),
                    account.kind.as_str(),
                    account.marketplace.as_str(),
                    &account.base_url,
                )
                .await?;
            let settled =
                settle_encoding(store, account.name.as_str(), client, config.api.encoding).await?;
            Ok(settled.to_string())
        }
        None => match config.api.encoding {
            emag_sync::config::EncodingChoice::Fixed(e) => Ok(format!("{e} (EMAG_API_ENCODING)")),
            emag_sync::config::EncodingChoice::Auto => match probe_encoding(client).await? {
                Ok(settled) => Ok(format!("{settled}; not kept: the database is unreachable")),
                Err(tried) => Err(EncodingError::NoneHonoured(tried)),
            },
        },
    }
}
