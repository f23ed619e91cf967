//! The fuzz targets, reduced: every target for a few thousand cases (the full run is a
//! million per target, `emag-fuzz --cases 1000000`, see docs/RELIABILITY.md). Same seed
//! every time, so a failure here is a failure of the full run's first cases, and the report
//! printed holds the input.

use std::sync::OnceLock;

use emag_fuzz::{Corpus, Target};

/// The seed of the reduced runs.
const SEED: u64 = 20_261_130;

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| emag_fuzz::corpus::build().expect("the seed corpus from the simulator"))
}

/// Runs `target` for `cases` on a thread with room for deeply nested inputs, and checks that
/// nothing broke a rule and that the mutants reached more than a handful of outcomes.
fn reduced(target: Target, cases: u64) {
    let report = std::thread::Builder::new()
        .name(target.name().into())
        .stack_size(emag_fuzz::STACK_SIZE)
        .spawn(move || emag_fuzz::run(target, cases, SEED, corpus()))
        .expect("a thread")
        .join()
        .expect("the run ends")
        .expect("the target starts");
    eprintln!(
        "{}: {} cases in {:.1} s, {} outcomes, findings {:?}",
        target.name(),
        report.cases,
        report.seconds,
        report.outcomes,
        report.findings
    );
    assert!(
        !report.failed(),
        "{}: {:#?}",
        target.name(),
        report.examples
    );
    assert!(
        report.outcomes >= 10,
        "{}: only {} outcomes",
        target.name(),
        report.outcomes
    );
}

#[test]
fn envelopes_decode_to_classified_errors_that_quote_no_customer() {
    reduced(Target::Envelope, 8_000);
}

#[test]
fn counts_read_as_sent_and_bound_the_page_loop() {
    reduced(Target::Count, 8_000);
}

#[test]
fn offers_decode_exactly_or_are_quarantined_without_their_data() {
    reduced(Target::Offers, 10_000);
}

#[test]
fn orders_decode_exactly_or_are_quarantined_without_their_data() {
    reduced(Target::Orders, 10_000);
}

#[test]
fn returns_decode_or_are_quarantined_without_their_data() {
    reduced(Target::Returns, 15_000);
}

#[test]
fn money_agrees_with_rust_decimal() {
    reduced(Target::Money, 20_000);
}

#[test]
fn configuration_problems_name_the_variable_and_never_a_secret() {
    reduced(Target::ConfigVars, 5_000);
}

#[test]
fn dotenv_files_keep_their_meaning_and_their_secrets() {
    reduced(Target::Dotenv, 6_000);
}

#[test]
fn api_queries_get_an_answer_or_a_json_problem_never_a_5xx() {
    reduced(Target::ApiQuery, 8_000);
}

#[test]
fn api_bodies_get_an_answer_or_a_json_problem_never_a_5xx() {
    reduced(Target::ApiBody, 8_000);
}
