//! emag-fuzz: structured-mutation fuzzing of everything emag-sync reads from outside (issue 11,
//! point 3): eMAG's answers (envelope, counts, offers, orders, returns), money, the
//! configuration (variables and `.env` files) and the dashboard's requests (query strings and
//! bodies of the JSON API, through the real router).
//!
//! The toolchain is stable (rust-toolchain.toml), so there is no libFuzzer (`cargo fuzz` needs
//! nightly). Each target is a loop instead: a seeded generator picks a seed input (the
//! simulator's real answers, `.env.example`, valid requests), the mutator bends it
//! structurally and byte by byte, the code under test runs on it, and an oracle judges the
//! result — never only "it did not panic". An input whose outcome (the result's shape with
//! numbers blanked) was never seen before joins the pool, so later cases build on inputs that
//! reached new behaviour: outcome-guided rather than coverage-guided.
//!
//! A run is a function of (target, cases, seed): the same command finds the same things.

pub mod canary;
pub mod corpus;
pub mod json;
pub mod mutate;
mod targets;

use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use corpus::Corpus;

/// What can be fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Whole answers through `emag_client::decode_answer`, then their results as items and
    /// as a count.
    Envelope,
    /// `…/count` answers through `results_as_count`, and a page loop bounded by the count.
    Count,
    /// Offer items through the engine's decoder (`emag_sync::sync::items::offer_row`).
    Offers,
    /// Order items through `order_row`.
    Orders,
    /// Return items through `return_row`.
    Returns,
    /// Amounts: `Money` from text and from JSON numbers and strings.
    Money,
    /// Configuration variables through `Config::from_vars`.
    ConfigVars,
    /// `.env` files through `config::parse_dotenv`, then `Config::from_vars`.
    Dotenv,
    /// Query strings and path parameters of the JSON API's GET routes (the real router).
    ApiQuery,
    /// Bodies, content types and credentials of the JSON API's POST routes.
    ApiBody,
}

impl Target {
    pub const ALL: [Target; 10] = [
        Target::Envelope,
        Target::Count,
        Target::Offers,
        Target::Orders,
        Target::Returns,
        Target::Money,
        Target::ConfigVars,
        Target::Dotenv,
        Target::ApiQuery,
        Target::ApiBody,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Envelope => "envelope",
            Target::Count => "count",
            Target::Offers => "offers",
            Target::Orders => "orders",
            Target::Returns => "returns",
            Target::Money => "money",
            Target::ConfigVars => "config-vars",
            Target::Dotenv => "dotenv",
            Target::ApiQuery => "api-query",
            Target::ApiBody => "api-body",
        }
    }
}

/// One broken rule seen on one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Short and stable: the rule that broke (`panic`, `customer data in an error`, …).
    pub kind: String,
    pub detail: String,
}

impl Problem {
    pub fn new(kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: kind.to_owned(),
            detail: detail.into(),
        }
    }
}

/// What running one input showed.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The result's shape (variant, classified error, message with numbers blanked): a new
    /// one puts the input into the pool.
    pub signature: String,
    pub problems: Vec<Problem>,
}

impl Outcome {
    pub fn new(signature: impl Into<String>) -> Outcome {
        Outcome {
            signature: signature.into(),
            problems: Vec::new(),
        }
    }

    /// Adds a problem unless `ok`.
    pub fn check(&mut self, ok: bool, kind: &str, detail: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(Problem::new(kind, detail()));
        }
    }
}

/// A target's loop: generate an input, run it, keep it if it did something new.
pub(crate) trait Harness {
    type Input;
    fn generate(&mut self, rng: &mut ChaCha8Rng) -> Self::Input;
    fn execute(&mut self, input: &Self::Input) -> Outcome;
    /// The input, printable (for a finding).
    fn show(&self, input: &Self::Input) -> String;
    /// Adds `input` to the pool that [`Harness::generate`] draws seeds from.
    fn keep(&mut self, input: Self::Input);
}

/// An example of one kind of finding.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub case: u64,
    pub detail: String,
    pub input: String,
}

/// What one target's run did and found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: Target,
    pub seed: u64,
    pub cases: u64,
    pub seconds: f64,
    pub executions_per_second: f64,
    /// Distinct outcomes seen (signatures).
    pub outcomes: usize,
    /// Seeds at the start and inputs in the pool at the end.
    pub seeds: usize,
    pub pool: usize,
    /// Cases that broke a rule, per rule.
    pub findings: BTreeMap<String, u64>,
    /// The first few inputs of each kind.
    pub examples: BTreeMap<String, Vec<Example>>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.findings.is_empty()
    }
}

/// The stack a run needs: inputs nest thousands of levels deep (the decoders stop at 128, the
/// mutator's own trees do not), so runs go on a thread with this much room.
pub const STACK_SIZE: usize = 256 << 20;

/// Examples kept per kind of finding.
const EXAMPLES: usize = 3;
/// Inputs the pool holds at most (beyond, a new one replaces an old one).
pub(crate) const POOL_MAX: usize = 4096;

/// `text` with every run of digits blanked and cut to `max` characters: two outcomes that
/// differ only in positions, lengths or ids are the same outcome.
pub fn shape(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut digits = false;
    for c in text.chars().take(max * 2) {
        if c.is_ascii_digit() {
            if !digits {
                out.push('#');
            }
            digits = true;
        } else {
            digits = false;
            out.push(c);
        }
    }
    out.chars().take(max).collect()
}

fn run_harness<H: Harness>(
    target: Target,
    mut h: H,
    seeds: usize,
    cases: u64,
    seed: u64,
) -> Report {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (target as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut seen: HashSet<String> = HashSet::new();
    let mut findings: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    let mut pool = seeds;
    let started = Instant::now();
    // `EMAG_FUZZ_TRACE=1`: every new outcome on stderr (what the pool learns from).
    let trace = std::env::var_os("EMAG_FUZZ_TRACE").is_some();
    for case in 0..cases {
        let input = h.generate(&mut rng);
        let outcome = match catch_unwind(AssertUnwindSafe(|| h.execute(&input))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                Outcome {
                    signature: format!("panic: {}", shape(&message, 80)),
                    problems: vec![Problem::new("panic", message)],
                }
            }
        };
        for p in &outcome.problems {
            *findings.entry(p.kind.clone()).or_default() += 1;
            let list = examples.entry(p.kind.clone()).or_default();
            if list.len() < EXAMPLES {
                list.push(Example {
                    case,
                    detail: p.detail.chars().take(2000).collect(),
                    input: h.show(&input).chars().take(20_000).collect(),
                });
            }
        }
        if trace && !seen.contains(&outcome.signature) {
            eprintln!("new outcome at case {case}: {}", outcome.signature);
        }
        if seen.insert(outcome.signature) {
            pool = (pool + 1).min(POOL_MAX);
            h.keep(input);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Report {
        target,
        seed,
        cases,
        seconds,
        executions_per_second: if seconds > 0.0 {
            cases as f64 / seconds
        } else {
            0.0
        },
        outcomes: seen.len(),
        seeds,
        pool,
        findings,
        examples,
    }
}

/// Runs `cases` inputs of `target` from `seed`, its seeds taken from `corpus`.
pub fn run(target: Target, cases: u64, seed: u64, corpus: &Corpus) -> anyhow::Result<Report> {
    use targets::*;
    Ok(match target {
        Target::Envelope => {
            let h = envelope::Envelope::new(corpus);
            let n = h.seeds();
            run_harness(target, h, n, cases, seed)
        }
        Target::Count => {
            let h = envelope::CountTarget::new(corpus);
            let n = h.seeds();
            run_harness(target, h, n, cases, seed)
        }
        Target::Offers | Target::Orders | Target::Returns => {
            let h = items::Items::new(target, corpus);
            let n = h.seeds();
            run_harness(target, h, n, cases, seed)
        }
        Target::Money => {
            let h = money::MoneyTarget::new(corpus);
            let n = h.seeds();
            run_harness(target, h, n, cases, seed)
        }
        Target::ConfigVars => {
            let h = config::Vars::new(seed);
            let n = h.seeds();
            run_harness(target, h, n, cases, seed)
        }
        Target::Dotenv => {
            let h = config::Dotenv::new(seed);
            let n = h.seeds();
            run_harness(target, h, n, cases, seed)
        }
        Target::ApiQuery | Target::ApiBody => {
            let h = api::Api::new(target == Target::ApiBody)?;
            let n = h.seeds();
            run_harness(target, h, n, cases, seed)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_blank_numbers_and_cut() {
        assert_eq!(shape("line 12 column 345: x", 100), "line # column #: x");
        assert_eq!(shape("abcdef", 3), "abc");
    }
}
