//! Builds the syncable accounts from the configuration: one client per credential pair, and
//! the account rows in the store.

use emag_client::EmagClient;
use storage::Store;

use crate::config::{AccountConfig, Config};
use crate::sync::Account;

/// A client for one account's credentials.
pub fn account(config: &Config, account: &AccountConfig) -> anyhow::Result<Account> {
    Ok(with_http(config, account, &http(config)?))
}

/// The HTTP client every account built by one call shares (one connection pool and TLS
/// set-up for all, not one per account).
fn http(config: &Config) -> anyhow::Result<reqwest::Client> {
    EmagClient::http(config.api.timeout)
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))
}

fn with_http(config: &Config, account: &AccountConfig, http: &reqwest::Client) -> Account {
    Account {
        config: account.clone(),
        client: EmagClient::with_http(config.client_config(account), http.clone()),
    }
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
    let http = http(config)?;
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
        out.push(with_http(config, a, &http));
    }
    Ok(out)
}

/// Every configured account with a client, for reference-data failover; empty when
/// `EMAG_AUTO_FAILOVER` is off.
pub fn failover_peers(config: &Config) -> std::sync::Arc<Vec<Account>> {
    if !config.auto_failover {
        return std::sync::Arc::default();
    }
    let Ok(http) = http(config) else {
        return std::sync::Arc::default();
    };
    std::sync::Arc::new(
        config
            .accounts
            .iter()
            .map(|a| with_http(config, a, &http))
            .collect(),
    )
}
