//! The tail every harness report ends with (`kill`, `chaos`, `soak`): its one-line summary
//! and verdict, the first differences found, and what failed.

use std::fmt::Write as _;

/// How many differences a report lists.
const EXAMPLES: usize = 20;

/// Writes `"\n{summary}: PASS"` (`FAIL` when anything failed), the first differences (their
/// heading says how many, then `note`), and the failures, one per line.
pub(crate) fn write_tail<'a>(
    o: &mut String,
    summary: &str,
    note: &str,
    examples: impl Iterator<Item = &'a String>,
    failures: &[String],
) {
    let verdict = if failures.is_empty() { "PASS" } else { "FAIL" };
    let _ = writeln!(o, "\n{summary}: {verdict}");
    let examples: Vec<&String> = examples.take(EXAMPLES).collect();
    if !examples.is_empty() {
        let _ = writeln!(o, "\ndifferences (first {}{note}):", examples.len());
        for e in examples {
            let _ = writeln!(o, "- {e}");
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(o, "\nFAILED:");
        for f in failures {
            let _ = writeln!(o, "- {f}");
        }
    }
}
