//! Builds the syncable accounts from the configuration: one client per credential pair, and
//! the account rows in the store.

use emag_client::EmagClient;
use storage::Store;

use crate::config::{AccountConfig, Config};
use crate::sync::Account;

/// A client for one account's credentials.
pub fn account(config: &Config, account: &AccountConfig) -> anyhow::Result<Account> {
    let client = EmagClient::new(config.client_config(account)).map_err(|e| {
        anyhow::anyhow!(
            "cannot build the HTTP client of account {}: {e}",
            account.name
        )
    })?;
    Ok(Account {
        config: account.clone(),
        client,
    })
}

/// The accounts named by `selector` (`all` or a name), registered in the store.
pub async fn select(
    config: &Config,
    store: &Store,
    selector: &str,
) -> anyhow::Result<Vec<Account>> {
    let chosen: Vec<&AccountConfig> = if selector.eq_ignore_ascii_case("all") {
        config.accounts.iter().collect()
    } else {
        let found = config
            .account(&selector.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
                anyhow::anyhow!(
                    "no account named {selector:?} is configured (configured: {}); add \
                 EMAG_{}_API_USERNAME and EMAG_{}_API_PASSWORD to .env",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    },
                    selector.to_ascii_uppercase(),
                    selector.to_ascii_uppercase()
                )
            })?;
        vec![found]
    };
    let mut out = Vec::with_capacity(chosen.len());
    for a in chosen {
        store
            .upsert_account(
                a.name.as_str(),
                a.kind.as_str(),
                a.marketplace.as_str(),
                &a.base_url,
            )
            .await?;
        out.push(account(config, a)?);
    }
    Ok(out)
}

/// Every configured account with a client, for reference-data failover; empty when
/// `EMAG_AUTO_FAILOVER` is off.
pub fn failover_peers(config: &Config) -> std::sync::Arc<Vec<Account>> {
    if !config.auto_failover {
        return std::sync::Arc::default();
    }
    std::sync::Arc::new(
        config
            .accounts
            .iter()
            .filter_map(|a| account(config, a).ok())
            .collect(),
    )
}
