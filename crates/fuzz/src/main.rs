//! `emag-fuzz`: runs the fuzz targets (see the library) one after another and reports cases,
//! executions per second, outcomes and findings. Exit 0 when nothing was found, 1 when a rule
//! broke, 2 on a usage error.
//!
//! ```text
//! emag-fuzz --target all --cases 1000000 --seed 20261130 [--json]
//! ```

use std::process::ExitCode;

use clap::Parser;
use emag_fuzz::{Report, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Choice {
    All,
    Envelope,
    Count,
    Offers,
    Orders,
    Returns,
    Money,
    ConfigVars,
    Dotenv,
    ApiQuery,
    ApiBody,
}

/// Structured-mutation fuzzing of emag-sync's input parsers (issue 11).
#[derive(Debug, Parser)]
#[command(name = "emag-fuzz", version)]
struct Args {
    /// The target, or all of them one after another.
    #[arg(long, value_enum, default_value = "all")]
    target: Choice,
    /// Inputs per target.
    #[arg(long, default_value_t = 1_000_000)]
    cases: u64,
    /// Seed of every choice: the same seed and cases give the same inputs.
    #[arg(long, default_value_t = 20_261_130)]
    seed: u64,
    /// One JSON report per target on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

fn targets(choice: Choice) -> Vec<Target> {
    match choice {
        Choice::All => Target::ALL.to_vec(),
        Choice::Envelope => vec![Target::Envelope],
        Choice::Count => vec![Target::Count],
        Choice::Offers => vec![Target::Offers],
        Choice::Orders => vec![Target::Orders],
        Choice::Returns => vec![Target::Returns],
        Choice::Money => vec![Target::Money],
        Choice::ConfigVars => vec![Target::ConfigVars],
        Choice::Dotenv => vec![Target::Dotenv],
        Choice::ApiQuery => vec![Target::ApiQuery],
        Choice::ApiBody => vec![Target::ApiBody],
    }
}

fn print_report(r: &Report) {
    println!(
        "{:<12} {:>10} cases {:>8.1} s {:>10.0} exec/s {:>6} outcomes  pool {:>4} (from {} seeds)  {}",
        r.target.name(),
        r.cases,
        r.seconds,
        r.executions_per_second,
        r.outcomes,
        r.pool,
        r.seeds,
        if r.failed() { "FINDINGS" } else { "clean" }
    );
    for (kind, count) in &r.findings {
        println!("    {count:>8} × {kind}");
        for e in r.examples.get(kind).into_iter().flatten() {
            let cut = |t: &str| t.chars().take(300).collect::<String>();
            println!("        case {}: {}", e.case, cut(&e.detail));
            println!("            input: {}", cut(&e.input));
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let corpus = match emag_fuzz::corpus::build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("emag-fuzz: cannot build the seed corpus from the simulator: {e:#}");
            return ExitCode::from(2);
        }
    };
    if !args.json {
        println!(
            "seed corpus from the simulator: {} answers, {} counts, {} offers, {} orders, {} returns, {} amounts",
            corpus.answers.len(),
            corpus.counts.len(),
            corpus.offers.len(),
            corpus.orders.len(),
            corpus.returns.len(),
            corpus.number_prices.len() + corpus.string_prices.len()
        );
    }
    let mut failed = false;
    for target in targets(args.target) {
        let corpus = corpus.clone();
        let run = std::thread::Builder::new()
            .name(target.name().into())
            .stack_size(emag_fuzz::STACK_SIZE)
            .spawn(move || emag_fuzz::run(target, args.cases, args.seed, &corpus))
            .map_err(anyhow::Error::from)
            .and_then(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("the run's thread panicked"))
            })
            .and_then(|r| r);
        match run {
            Ok(report) => {
                failed |= report.failed();
                if args.json {
                    match serde_json::to_string(&report) {
                        Ok(line) => println!("{line}"),
                        Err(e) => eprintln!("emag-fuzz: {e}"),
                    }
                } else {
                    print_report(&report);
                }
            }
            Err(e) => {
                eprintln!("emag-fuzz: {}: cannot start: {e:#}", target.name());
                return ExitCode::from(2);
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
