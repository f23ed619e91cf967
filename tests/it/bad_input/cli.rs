//! Malformed command lines, one per row, against a valid `.env`: unknown subcommands and
//! flags, values of the wrong type or out of range, names that are not configured, bytes that
//! are not UTF-8. Each exits 2 with clap's message or ours, never a panic, never a secret.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Stdio;

use futures::StreamExt;

use super::{canary, credential_secrets, leaked};
use crate::support::bounded;

struct Case {
    args: Vec<OsString>,
    /// What stderr must say.
    says: &'static str,
}

fn case(args: &[&str], says: &'static str) -> Case {
    Case {
        args: args.iter().map(OsString::from).collect(),
        says,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(&[], "Usage"),
        case(&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        case(&["status", "--verbose"], "unexpected argument '--verbose'"),
        case(
            &["status", "--json", "--json"],
            "cannot be used multiple times",
        ),
        case(&["--env-file"], "a value is required for '--env-file"),
        case(
            &["sync", "--kind", "everything"],
            "invalid value 'everything' for '--kind",
        ),
        case(
            &["sync", "main", "--kind"],
            "a value is required for '--kind",
        ),
        case(&["sync", "main", "fbe"], "unexpected argument 'fbe'"),
        case(&["sync", "nope"], "no account named \"nope\" is configured"),
        case(
            &["sync", "nope", "--queue"],
            "no account named \"nope\" is configured",
        ),
        case(
            &["runs", "--limit", "ten"],
            "invalid value 'ten' for '--limit",
        ),
        case(
            &["runs", "--kind", "books"],
            "invalid value 'books' for '--kind",
        ),
        case(&["runs", "--account", "nope"], "no account named \"nope\""),
        case(&["export", "books"], "invalid value 'books'"),
        case(
            &["export", "offers", "--format", "xml"],
            "invalid value 'xml' for '--format",
        ),
        case(
            &["export", "orders", "--account", "nope"],
            "no account named \"nope\"",
        ),
        case(&["pause"], "required arguments were not provided"),
        case(&["pause", "nope"], "no account named \"nope\""),
        case(&["resume", "NOPE"], "no account named \"nope\""),
        case(&["stop", "--timeout", "-1"], "unexpected argument '-1'"),
        case(
            &["stop", "--timeout", "30s"],
            "invalid value '30s' for '--timeout",
        ),
        case(
            &["dashboard", "--bind", "localhost"],
            "invalid value 'localhost' for '--bind",
        ),
        case(
            &["dashboard", "--bind", "127.0.0.1:99999"],
            "invalid value '127.0.0.1:99999'",
        ),
        case(&["report", "--days", "0"], "invalid value '0' for '--days"),
        case(
            &["report", "--days", "31"],
            "invalid value '31' for '--days",
        ),
        case(
            &["report", "--format", "pdf"],
            "invalid value 'pdf' for '--format",
        ),
        case(&["monitor", "bogus"], "unrecognized subcommand 'bogus'"),
        case(
            &["monitor", "health", "-w", "abc"],
            "invalid value 'abc' for '--warning",
        ),
        case(
            &["monitor", "health", "-w", "18446744073709551615"],
            "invalid value '18446744073709551615' for '--warning",
        ),
        case(
            &["monitor", "health", "-c", "307445734561825861"],
            "invalid value '307445734561825861' for '--critical",
        ),
        case(&["alerts", "ack", "abc"], "invalid value 'abc'"),
        case(
            &["alerts", "resolve"],
            "required arguments were not provided",
        ),
        case(
            &["alerts", "list", "--limit", "many"],
            "invalid value 'many' for '--limit",
        ),
        case(&["completions", "tcsh"], "invalid value 'tcsh'"),
        case(
            &["sim", "--faults", "{not json"],
            "invalid value '{not json' for '--faults",
        ),
        case(
            &["sim", "--order-window", "fortnight"],
            "invalid value 'fortnight'",
        ),
        case(
            &["sim", "--port", "70000"],
            "invalid value '70000' for '--port",
        ),
        case(
            &["sim", "--accept", "xml"],
            "invalid value 'xml' for '--accept",
        ),
        case(
            &["demo", "--offers", "lots"],
            "invalid value 'lots' for '--offers",
        ),
        case(
            &["demo", "--dashboard", "8001"],
            "invalid value '8001' for '--dashboard",
        ),
        case(
            &["start", "--detach", "--forever"],
            "unexpected argument '--forever'",
        ),
        Case {
            args: vec!["sync".into(), OsString::from_vec(b"ma\xffin".to_vec())],
            says: "invalid UTF-8",
        },
    ]
}

/// Runs the binary with `c`'s arguments in `dir`.
async fn run<'a>(c: &'a Case, dir: &Path) -> (&'a Case, std::io::Result<std::process::Output>) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_emag-sync"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(&c.args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    (c, bounded("a command line", cmd.output()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_command_line_exits_2_with_a_message_and_no_panic_or_secret() {
    // Arrange: a valid configuration, so only the command line is at fault.
    let dir = tempfile::tempdir().expect("dir");
    let password = canary();
    let secrets = credential_secrets("main-user@shop.ro", &password);
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "EMAG_API_USERNAME=main-user@shop.ro\nEMAG_API_PASSWORD={password}\n\
             DATABASE_URL=sqlite://{}/emag-sync.db\nEMAG_LOG_LEVEL=warn\n",
            dir.path().display()
        ),
    )
    .expect("write .env");
    let cases = cases();
    assert!(cases.len() >= 10);

    // Act: every case, four at a time.
    let results: Vec<_> = futures::stream::iter(cases.iter())
        .map(|c| run(c, dir.path()))
        .buffer_unordered(4)
        .collect()
        .await;

    // Assert
    let mut failures = Vec::new();
    for (c, out) in results {
        let out = out.expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let both = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
        let mut wrong = Vec::new();
        if out.status.code() != Some(2) {
            wrong.push(format!("exit {:?}, not 2", out.status.code()));
        }
        if !stderr.contains(c.says) {
            wrong.push(format!("stderr does not say {:?}", c.says));
        }
        if both.contains("panicked") {
            wrong.push("a panic".to_owned());
        }
        if !leaked(&both, &secrets).is_empty() {
            wrong.push("a secret printed".to_owned());
        }
        if !wrong.is_empty() {
            failures.push(format!("{:?}: {}\n{both}", c.args, wrong.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} command lines failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
