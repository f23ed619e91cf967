//! `emag-sync sim`: the eMAG Marketplace API simulator as a server of its own.

use std::io::Write;

use emag_sim::{
    AccountKind, AccountSpec, FaultPlan, OrderWindowLimit, SimConfig, Simulator, WireEncoding,
};

use crate::output::init_logging;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Port to listen on (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// Seed of the generated data: the same seed always gives the same catalog and orders.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Accounts to serve, comma-separated; `fbe` (or `NAME:fbe`) is an FBE account.
    #[arg(long, default_value = "main,fbe", value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// Offers per account.
    #[arg(long, default_value_t = 250)]
    pub offers: u32,
    /// Orders per account (spread over the last 60 days).
    #[arg(long, default_value_t = 120)]
    pub orders: u32,
    /// Do not enforce eMAG's rate limits (for benchmarks).
    #[arg(long)]
    pub no_rate_limits: bool,
    /// Added latency of every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered 502, per mille (0..=1000).
    #[arg(long, default_value_t = 0)]
    pub server_errors_per_mille: u32,
    /// Answer every request as if the credentials were wrong.
    #[arg(long)]
    pub bad_credentials: bool,
    /// Answer every request with "Invalid vendor ip".
    #[arg(long)]
    pub ip_blocked: bool,
    /// Understand only this request encoding (form, json-data or json): the filters of reads
    /// sent any other way are silently ignored, as a server that does not parse them would.
    /// Default: every encoding is understood.
    #[arg(long, value_name = "ENCODING")]
    pub accept: Option<WireEncoding>,
    /// A whole fault plan as JSON (overrides the fault flags above), e.g.
    /// '{"server_error_next": 3, "hang_next": 1, "hang_ms": 40000, "malformed_next": 1,
    /// "is_error_next": 1, "accounts": ["fbe"]}'. Protocol breaches: "ignore_current_page":
    /// true, "extra_items": 5, "redirect_next": 1, "oversize_next": 1 (with "oversize_bytes"),
    /// "is_error_message": "Temporary problem, please retry". It can also be changed while
    /// running: PUT /__admin/faults.
    #[arg(long, value_name = "JSON", value_parser = parse_fault_plan)]
    pub faults: Option<FaultPlan>,
    /// The longest order filter window accepted: `month` (a calendar month) or a number of
    /// days such as `28d` (eMAG documents "one month" without saying which; 28 days, the
    /// shortest month, is the strictest reading).
    #[arg(long, value_name = "month|Nd", default_value = "28d", value_parser = parse_order_window)]
    pub order_window: OrderWindowLimit,
}

fn parse_order_window(text: &str) -> Result<OrderWindowLimit, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "month" {
        return Ok(OrderWindowLimit::CalendarMonth);
    }
    t.strip_suffix('d')
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| *d >= 1)
        .map(OrderWindowLimit::Days)
        .ok_or_else(|| format!("{text:?} is neither `month` nor a number of days such as `28d`"))
}

fn parse_fault_plan(text: &str) -> Result<FaultPlan, String> {
    serde_json::from_str(text).map_err(|e| format!("not a fault plan: {e}"))
}

pub fn account_specs(names: &[String]) -> Vec<AccountSpec> {
    names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .map(|n| match n.split_once(':') {
            Some((name, "fbe")) => AccountSpec::named(name, AccountKind::Fbe),
            Some((name, _)) => AccountSpec::named(name, AccountKind::Main),
            None if n == "fbe" => AccountSpec::named(&n, AccountKind::Fbe),
            None => AccountSpec::named(&n, AccountKind::Main),
        })
        .collect()
}

impl Args {
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            accounts: account_specs(&self.accounts),
            offers_per_account: self.offers,
            orders_per_account: self.orders,
            rate_limits: !self.no_rate_limits,
            accept: self.accept,
            faults: self.faults.clone().unwrap_or_else(|| FaultPlan {
                latency_ms: self.latency_ms,
                server_error_per_mille: self.server_errors_per_mille.min(1000),
                bad_credentials: self.bad_credentials,
                ip_blocked: self.ip_blocked,
                ..FaultPlan::default()
            }),
            order_window: self.order_window,
            ..SimConfig::default()
        }
    }
}

/// The `.env` lines that point emag-sync at a simulator.
pub fn env_lines(base_url: &str, accounts: &[AccountSpec]) -> Vec<String> {
    let mut lines = Vec::new();
    for a in accounts {
        let prefix = if a.name == "main" {
            "EMAG_API".to_owned()
        } else {
            format!("EMAG_{}_API", a.name.to_ascii_uppercase())
        };
        lines.push(format!("{prefix}_USERNAME={}", a.username));
        lines.push(format!("{prefix}_PASSWORD={}", a.password));
        lines.push(format!("{prefix}_URL={base_url}"));
    }
    lines
}

pub async fn run(args: Args) -> u8 {
    init_logging("info");
    let config = args.sim_config();
    let accounts = config.accounts.clone();
    let started = std::time::Instant::now();
    let sim = Simulator::new(config);
    let listener = match tokio::net::TcpListener::bind((args.bind, args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}:{}: {e} (choose another --port)",
                args.bind, args.port
            );
            return 1;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let base_url = format!("http://{addr}/api-3");
    // The first line is a readiness signal other processes (bench, tests) wait for.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "emag-sim listening on {base_url} (data generated in {} ms)",
        started.elapsed().as_millis()
    );
    let _ = writeln!(
        out,
        "# .env for emag-sync against this simulator (simulated credentials, not secrets):"
    );
    for line in env_lines(&base_url, &accounts) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "# admin: {}/__admin/journal, /__admin/faults, /__admin/mutate?account=NAME",
        format_args!("http://{addr}")
    );
    let _ = out.flush();
    drop(out);
    let server = tokio::spawn(sim.serve(listener));
    tokio::select! {
        () = super::sync::shutdown_signal() => 0,
        res = server => match res {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => {
                eprintln!("error: simulator stopped: {e}");
                1
            }
            Err(e) => {
                eprintln!("error: simulator crashed: {e}");
                1
            }
        },
    }
}
