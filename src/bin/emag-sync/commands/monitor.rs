//! `emag-sync monitor report|json|health` and `emag-sync completions`: views of the library's
//! status model ([`Snapshot`]) for a person, for a program, and for Nagios-style checkers.

use std::path::Path;
use std::time::{Duration, Instant};

use emag_sync::analytics::Kpis;
use emag_sync::status::{ApiStatus, HealthReport, HealthStatus, Level, Snapshot};
use storage::Store;

use super::{load_config, EXIT_CONFIG};
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// For people: instances, every account and kind (last and next sync, outcome, freshness
    /// against its target), what needs attention with the fix, recent errors.
    Report,
    /// For programs: exactly the body of the dashboard's `GET /api/status`.
    Json,
    /// For Nagios, Icinga, Zabbix, … : one line with perfdata; exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN (configuration or database unreadable).
    Health(HealthArgs),
}

#[derive(Debug, clap::Args)]
struct HealthArgs {
    /// Data older than this many minutes is a WARNING (EMAG_FRESHNESS_TARGET; kinds synced
    /// less often are held to their interval + 5 min).
    #[arg(long, short = 'w', value_name = "MINUTES", value_parser = minutes())]
    warning: Option<u64>,
    /// Data older than this many minutes is CRITICAL (EMAG_FRESHNESS_CRITICAL; default twice
    /// the warning threshold).
    #[arg(long, short = 'c', value_name = "MINUTES", value_parser = minutes())]
    critical: Option<u64>,
}

/// Minutes up to a year, as EMAG_FRESHNESS_TARGET takes them: larger numbers overflow the
/// thresholds' arithmetic.
fn minutes() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=emag_sync::config::MAX_INTERVAL_MINUTES)
}

/// Nagios plugin exit codes.
const NAGIOS_UNKNOWN: u8 = 3;

pub async fn run(env_file: Option<&Path>, args: Args) -> u8 {
    match args.what {
        What::Health(h) => health(env_file, &h).await,
        What::Report => {
            let Some((snapshot, kpis)) = read_with_kpis(env_file).await else {
                return 1;
            };
            print!("{}", render::report_text(&snapshot));
            print!("\n{}", render::kpi_markdown(&kpis));
            0
        }
        What::Json => {
            let Some(snapshot) = read(env_file).await else {
                return 1;
            };
            let body = ApiStatus::from(&snapshot);
            match serde_json::to_string_pretty(&body) {
                Ok(text) => {
                    println!("{text}");
                    0
                }
                Err(e) => {
                    eprintln!("error: cannot write the status as JSON: {e}");
                    1
                }
            }
        }
    }
}

async fn read(env_file: Option<&Path>) -> Option<Snapshot> {
    let (config, store) = match super::load_config_and_store(env_file).await {
        Ok(loaded) => loaded,
        Err(_) => return None,
    };
    match Snapshot::read(&config, &store).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("error: cannot read the scheduler's state from the database: {e}");
            None
        }
    }
}

async fn read_with_kpis(env_file: Option<&Path>) -> Option<(Snapshot, Kpis)> {
    let (config, store) = super::load_config_and_store(env_file).await.ok()?;
    let read = async {
        let snapshot = Snapshot::read(&config, &store).await?;
        let kpis = Kpis::read(&config, &store, 7, snapshot.taken_at).await?;
        Ok::<_, storage::StorageError>((snapshot, kpis))
    };
    match read.await {
        Ok(both) => Some(both),
        Err(e) => {
            eprintln!("error: cannot read the scheduler's state from the database: {e}");
            None
        }
    }
}

/// One line, then the conditions, as Nagios plugins write them; the exit code is the level.
async fn health(env_file: Option<&Path>, args: &HealthArgs) -> u8 {
    let mut config = match load_config(env_file) {
        Ok(c) => c,
        Err(code) => {
            debug_assert_eq!(code, EXIT_CONFIG);
            println!("EMAG-SYNC UNKNOWN - the configuration is invalid (see above)");
            return NAGIOS_UNKNOWN;
        }
    };
    if let Some(w) = args.warning {
        config.freshness_target = Duration::from_secs(60 * w.max(1));
    }
    if let Some(c) = args.critical {
        config.freshness_critical = Some(Duration::from_secs(60 * c.max(1)));
    }
    let started = Instant::now();
    let snapshot = match Store::open(&config.database_url).await {
        Ok(store) => Snapshot::read(&config, &store).await,
        Err(e) => Err(e),
    };
    let db_time = started.elapsed();
    let report = HealthReport::of(snapshot.as_ref(), db_time, storage::now_ms());
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => {
            println!(
                "EMAG-SYNC UNKNOWN - cannot read the database {}: {e}",
                storage::redact_url(&config.database_url)
            );
            return NAGIOS_UNKNOWN;
        }
    };
    let (line, code) = render::nagios_line(&snapshot, &report, db_time);
    println!("{line}");
    for note in &report.notes {
        println!("{note}");
    }
    for alert in &report.alerts {
        println!("{}", alert.line());
    }
    code
}

/// The Nagios exit code of a level.
pub fn nagios_code(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Pass => 0,
        HealthStatus::Warn => 1,
        HealthStatus::Fail => 2,
    }
}

/// The word Nagios shows for a level.
pub fn nagios_word(level: Level) -> &'static str {
    match level {
        Level::Ok => "OK",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The window: the last N days.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=30))]
    days: u32,
    /// Markdown (for people and tickets), JSON or CSV (one row per account and kind).
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    format: ReportFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Md,
    Json,
    Csv,
}

/// `emag-sync report`: the KPIs of the last days.
pub async fn report(env_file: Option<&Path>, args: &ReportArgs) -> u8 {
    let (config, store) = match super::load_config_and_store(env_file).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let kpis = match Kpis::read(&config, &store, args.days, storage::now_ms()).await {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: cannot read the run history from the database: {e}");
            return 1;
        }
    };
    match args.format {
        ReportFormat::Md => print!("{}", render::kpi_markdown(&kpis)),
        ReportFormat::Json => match serde_json::to_string_pretty(&kpis) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot write the KPIs as JSON: {e}");
                return 1;
            }
        },
        ReportFormat::Csv => {
            if let Err(e) = render::kpi_csv(&kpis, std::io::stdout().lock()) {
                eprintln!("error: cannot write the KPIs as CSV: {e}");
                return 1;
            }
        }
    }
    0
}

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Shell completions of the whole command line.
pub fn completions<C: clap::CommandFactory>(args: &CompletionArgs) -> u8 {
    let mut command = C::command();
    let name = command.get_name().to_owned();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    0
}
