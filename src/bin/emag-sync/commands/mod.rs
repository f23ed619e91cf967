//! The subcommands. Each parses its flags, loads what it needs and returns an exit code.

pub mod alerts;
pub mod daemon;
pub mod dashboard;
pub mod demo;
pub mod export;
pub mod monitor;
pub mod runs;
pub mod sim;
pub mod sync;
pub mod test;

use std::path::Path;

use emag_sync::config::Config;
use storage::{StorageError, Store};

use crate::output::init_logging;

/// Exit code of an invalid configuration.
pub const EXIT_CONFIG: u8 = 2;

/// Loads the configuration or prints every problem; logging follows EMAG_LOG_LEVEL.
pub fn load_config(env_file: Option<&Path>) -> Result<Config, u8> {
    match Config::load(env_file) {
        Ok(config) => {
            init_logging(&config.log_level);
            Ok(config)
        }
        Err(errors) => {
            init_logging("info");
            eprintln!("error: {errors}");
            Err(EXIT_CONFIG)
        }
    }
}

/// Loads a configuration that must name at least one account (commands that talk to eMAG).
pub fn load_config_with_accounts(env_file: Option<&Path>) -> Result<Config, u8> {
    let config = load_config(env_file)?;
    config.require_accounts().map_err(|errors| {
        eprintln!("error: {errors}");
        EXIT_CONFIG
    })?;
    Ok(config)
}

/// Opens and migrates the store, with a message that says what to do on failure.
pub async fn open_store(config: &Config) -> Result<Store, u8> {
    Store::open(&config.database_url).await.map_err(|e| {
        let database = storage::redact_url(&config.database_url);
        match e {
            // These say what to do themselves.
            StorageError::SchemaTooNew { .. } | StorageError::Lock { .. } => {
                eprintln!("error: cannot open the database {database}: {e}");
            }
            _ => eprintln!(
                "error: cannot open the database {database}: {e}\n  fix: check DATABASE_URL; for PostgreSQL make sure the server runs and the database exists"
            ),
        }
        1
    })
}

/// Checks the `--account` filter of a command that reads history: an account configured now,
/// or one the store knows from earlier (its history outlives its variables). Any other name
/// is a typo that would print an empty list as if nothing had happened: exit 2.
pub async fn check_account_filter(config: &Config, store: &Store, name: &str) -> Result<(), u8> {
    if config.account(name).is_some() {
        return Ok(());
    }
    let known = match store.account_names().await {
        Ok(names) => names,
        Err(e) => {
            eprintln!("error: cannot read the accounts from the database: {e}");
            return Err(1);
        }
    };
    if known.iter().any(|k| k == name) {
        return Ok(());
    }
    let mut names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
    names.extend(known.iter().map(String::as_str));
    names.sort_unstable();
    names.dedup();
    eprintln!(
        "error: no account named {name:?} (known: {})",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    Err(EXIT_CONFIG)
}

/// The configuration and the migrated store: what most commands start with.
pub async fn load_config_and_store(env_file: Option<&Path>) -> Result<(Config, Store), u8> {
    let config = load_config(env_file)?;
    let store = open_store(&config).await?;
    Ok((config, store))
}

/// `emag-sync migrate`: applies the migrations and says which schema version the database is
/// at.
pub async fn migrate(env_file: Option<&Path>) -> u8 {
    let config = match load_config(env_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match open_store(&config).await {
        Ok(store) => store,
        Err(code) => return code,
    };
    let version = store.schema_version().await;
    store.close().await;
    match version {
        Ok(version) => {
            // 0: no migration applied (none exist).
            println!(
                "database {} is migrated: schema version {}",
                store.url_redacted(),
                version.unwrap_or(0)
            );
            0
        }
        Err(e) => {
            eprintln!(
                "error: cannot read the schema version of the database {}: {e}",
                store.url_redacted()
            );
            1
        }
    }
}
