//! Reading what an `emag-sync` child process printed: its log lines without terminal colours,
//! and the end of a log file for an error message.

use std::path::Path;

/// The text of a line without its ANSI escape sequences (`ESC [ … final byte`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a log line carries `name=value` as one of its fields (tracing's text format,
/// which quotes a field recorded as a string: `name="value"`).
pub fn has_field(line: &str, name: &str, value: &str) -> bool {
    let plain = format!("{name}={value}");
    let quoted = format!("{name}=\"{value}\"");
    line.split_whitespace().any(|w| w == plain || w == quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stripped_and_fields_found_whole() {
        let line = "\u{1b}[2m2026-12-01T10:00:00Z\u{1b}[0m DEBUG run claimed \u{1b}[3maccount.name\u{1b}[0m\u{1b}[2m=\u{1b}[0mmain sync.kind=offers";
        let plain = strip_ansi(line);
        assert_eq!(
            plain,
            "2026-12-01T10:00:00Z DEBUG run claimed account.name=main sync.kind=offers"
        );
        assert!(has_field(&plain, "account.name", "main"));
        assert!(!has_field(&plain, "account.name", "mai"));
        assert!(has_field(&plain, "sync.kind", "offers"));
        assert!(has_field(
            r#"run ended account.name="fbe" run.id=3"#,
            "account.name",
            "fbe"
        ));
    }
}
