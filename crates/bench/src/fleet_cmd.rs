//! `emag-bench fleet`: the multi-instance acceptance harness (`emag_bench::fleet`), its
//! report on stdout (a table, or JSON), exit 1 when a check fails.

use emag_bench::fleet;

use crate::{emag_sync_exe, init_logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    fleet: fleet::Args,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> u8 {
    init_logging("warn");
    let exe = match emag_sync_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 1;
        }
    };
    // Interrupted (Ctrl-C, SIGTERM): dropping the benchmark SIGKILLs its instances
    // (`kill_on_drop`), so none is left running against the database.
    let outcome = tokio::select! {
        outcome = Box::pin(fleet::fleet(&args.fleet, &exe)) => outcome,
        () = crate::shutdown_signal() => {
            eprintln!("bench fleet interrupted: instances killed; the database and logs are left as they were");
            return 130;
        }
    };
    match outcome {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: cannot write the JSON report: {e}");
                        return 1;
                    }
                }
            } else {
                print!("{}", report.markdown());
            }
            if report.passed() {
                0
            } else {
                eprintln!("bench fleet FAILED: {}", report.failures().join("; "));
                1
            }
        }
        Err(e) => {
            eprintln!("error: bench fleet could not complete: {e:#}");
            1
        }
    }
}
