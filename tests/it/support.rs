//! The test app: a simulator on a free port, a fresh database, and the configuration that
//! points emag-sync at both — built from explicit variables, never the process environment.

use std::collections::HashMap;

use domain::{RunTrigger, SyncKind};
use emag_sim::{RunningSim, SimConfig, Simulator};
use emag_sync::config::Config;
use emag_sync::sync::{run_sync, Account, RunReport, SyncContext};
use rust_decimal::Decimal;
use serde_json::Value;
use storage::Store;
use test_support::{DbKind, TestDb};

pub struct TestApp {
    pub sim: RunningSim,
    /// Kept so the database lives as long as the app.
    pub _db: TestDb,
    pub config: Config,
    pub store: Store,
    pub ctx: SyncContext,
    pub accounts: Vec<Account>,
}

/// The variables a seller would put in .env to use this simulator.
pub fn sim_vars(sim: &RunningSim, database_url: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for a in sim.sim.accounts() {
        let prefix = if a.name == "main" {
            "EMAG_API".to_owned()
        } else {
            format!("EMAG_{}_API", a.name.to_ascii_uppercase())
        };
        vars.insert(format!("{prefix}_USERNAME"), a.username.clone());
        vars.insert(format!("{prefix}_PASSWORD"), a.password.clone());
        vars.insert(format!("{prefix}_URL"), sim.base_url.clone());
    }
    vars.insert("DATABASE_URL".into(), database_url.to_owned());
    // Fast retries: the behaviour is the same, the test is quicker.
    vars.insert("EMAG_RETRY_DELAY".into(), "10ms".into());
    vars.insert("EMAG_API_TIMEOUT".into(), "5".into());
    // Tests write the store and read the status at once: no shared snapshot between them
    // (the sharing has a test of its own).
    vars.insert("EMAG_DASHBOARD_STATUS_MAX_AGE".into(), "0".into());
    vars
}

impl TestApp {
    pub async fn new(kind: DbKind, sim_config: SimConfig) -> TestApp {
        TestApp::with_vars(kind, sim_config, &[]).await
    }

    pub async fn with_vars(kind: DbKind, sim_config: SimConfig, extra: &[(&str, &str)]) -> TestApp {
        let sim = Simulator::spawn(sim_config)
            .await
            .expect("start the simulator");
        let db = TestDb::new(kind).await;
        let mut vars = sim_vars(&sim, &db.url);
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_vars(&vars).expect("valid test configuration");
        let store = Store::open(&db.url).await.expect("open the store");
        let accounts = emag_sync::accounts::select(&config, &store, "all")
            .await
            .expect("accounts");
        let ctx = SyncContext::new(store.clone(), config.sync);
        TestApp {
            sim,
            _db: db,
            config,
            store,
            ctx,
            accounts,
        }
    }

    pub fn account(&self, name: &str) -> &Account {
        self.accounts
            .iter()
            .find(|a| a.name() == name)
            .expect("configured account")
    }

    pub async fn sync(&self, account: &str, kind: SyncKind) -> RunReport {
        run_sync(
            &self.ctx,
            self.account(account),
            kind,
            RunTrigger::Manual,
            false,
        )
        .await
    }

    pub async fn sync_all(&self) -> Vec<RunReport> {
        let mut out = Vec::new();
        for a in &self.accounts {
            for kind in [
                SyncKind::Reference,
                SyncKind::Offers,
                SyncKind::Orders,
                SyncKind::Returns,
            ] {
                out.push(run_sync(&self.ctx, a, kind, RunTrigger::Manual, false).await);
            }
        }
        out
    }

    /// Asserts that the stored live offers of `account` are exactly the simulator's.
    pub async fn assert_offers_match(&self, account: &str) {
        assert_offers_match(&self.store, &self.sim, account).await;
    }

    /// Asserts that the stored orders of `account` are exactly the simulator's.
    pub async fn assert_orders_match(&self, account: &str) {
        assert_orders_match(&self.store, &self.sim, account).await;
    }
}

/// Asserts that the live offers of `account` in `store` are exactly the simulator's.
pub async fn assert_offers_match(store: &Store, sim: &RunningSim, account: &str) {
    let stored = store
        .export_offers(Some(account), None, 10_000_000)
        .await
        .expect("export");
    let live: Vec<_> = stored.iter().filter(|o| !o.removed).collect();
    let expected = sim.sim.offers(account);
    assert_eq!(
        live.len(),
        expected.len(),
        "{account}: number of live offers"
    );
    for (got, want) in live.iter().zip(expected.iter()) {
        let want = serde_json::to_value(want).expect("offer json");
        assert_eq!(got.account, account);
        assert_eq!(Value::from(got.id), want["id"], "id");
        assert_eq!(
            got.name.as_deref(),
            want["name"].as_str(),
            "name of {}",
            got.id
        );
        assert_eq!(got.part_number.as_deref(), want["part_number"].as_str());
        assert_eq!(
            got.part_number_key.as_deref(),
            want["part_number_key"].as_str()
        );
        assert_eq!(got.brand.as_deref(), want["brand"].as_str());
        assert_eq!(got.status.map(Value::from), Some(want["status"].clone()));
        assert_eq!(got.currency.as_deref(), want["currency"].as_str());
        assert_eq!(got.vat_id.map(Value::from), Some(want["vat_id"].clone()));
        assert_eq!(
            got.general_stock.map(Value::from),
            Some(want["general_stock"].clone())
        );
        assert_eq!(
            got.estimated_stock.map(Value::from),
            Some(want["estimated_stock"].clone())
        );
        assert_eq!(
            decimal(got.sale_price.as_deref()),
            json_decimal(&want["sale_price"]),
            "price of {}",
            got.id
        );
        assert_eq!(
            decimal(got.recommended_price.as_deref()),
            json_decimal(&want["recommended_price"])
        );
        let eans: Vec<String> = serde_json::from_value(want["ean"].clone()).unwrap_or_default();
        assert_eq!(got.ean, eans);
    }
}

/// Asserts that the orders of `account` in `store` are exactly the simulator's.
pub async fn assert_orders_match(store: &Store, sim: &RunningSim, account: &str) {
    let stored = store
        .export_orders(Some(account), None, 1_000_000)
        .await
        .expect("export");
    let expected = sim.sim.orders(account);
    assert_eq!(stored.len(), expected.len(), "{account}: number of orders");
    for (got, want) in stored.iter().zip(expected.iter()) {
        let want = serde_json::to_value(want).expect("order json");
        assert_eq!(Value::from(got.id), want["id"]);
        assert_eq!(Value::from(got.order_type), want["type"]);
        assert_eq!(
            got.status.map(Value::from),
            Some(want["status"].clone()),
            "status of {}",
            got.id
        );
        assert_eq!(got.date.as_deref(), want["date"].as_str());
        assert_eq!(got.modified.as_deref(), want["modified"].as_str());
        assert_eq!(
            got.payment_mode_id.map(Value::from),
            Some(want["payment_mode_id"].clone())
        );
        assert_eq!(
            got.customer_name.as_deref(),
            want["customer"]["name"].as_str()
        );
        let lines = want["products"].as_array().expect("products");
        assert_eq!(got.products.len(), lines.len(), "lines of {}", got.id);
        for (gl, wl) in got.products.iter().zip(lines) {
            assert_eq!(Value::from(gl.id), wl["id"]);
            assert_eq!(
                gl.product_id.map(Value::from),
                Some(wl["product_id"].clone())
            );
            assert_eq!(gl.part_number.as_deref(), wl["part_number"].as_str());
            assert_eq!(gl.quantity.map(Value::from), Some(wl["quantity"].clone()));
            // Order money is a string: kept to the letter.
            assert_eq!(gl.sale_price.as_deref(), wl["sale_price"].as_str());
            assert_eq!(gl.status.map(Value::from), Some(wl["status"].clone()));
        }
    }
}

pub fn decimal(text: Option<&str>) -> Option<Decimal> {
    text.map(|t| t.parse::<Decimal>().expect("stored decimal").normalize())
}

pub fn json_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.parse::<Decimal>().expect("decimal").normalize()),
        Value::Number(n) => Some(
            n.to_string()
                .parse::<Decimal>()
                .expect("decimal")
                .normalize(),
        ),
        other => panic!("not a decimal: {other}"),
    }
}

/// How long any one step of a test may take: a hung process or server fails the test instead
/// of hanging the run.
pub const STEP: std::time::Duration = std::time::Duration::from_secs(120);

/// Bounds one step of a test by [`STEP`].
pub async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {} s", STEP.as_secs()))
}

/// Runs the test body on both backends.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(test_support::DbKind::Sqlite).await } )+ }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(test_support::DbKind::Postgres).await } )+ }
    };
}
pub(crate) use on_both_backends;

/// The binary with exactly `vars` as its environment, in `dir`. tokio's Command: a test
/// blocked on a child process would starve the in-process simulator the child talks to.
pub fn binary(vars: &HashMap<String, String>, dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_emag-sync"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EMAG_LOG_LEVEL", "warn")
        .envs(vars)
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    cmd
}
