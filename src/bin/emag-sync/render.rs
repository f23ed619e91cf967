//! Text renderings of the library's status model ([`Snapshot`]) for `status` and `monitor`:
//! the model decides, this only words and lays it out (tables fit the terminal's width).

use std::fmt::Write as _;

use comfy_table::{presets::UTF8_BORDERS_ONLY, ColumnConstraint, ContentArrangement, Table, Width};
use emag_sync::status::{AccountState, Freshness, KindStatus, Level, Next, ScheduleSpec, Snapshot};

use crate::commands::daemon::local_time;

/// Columns whose text is prose and may wrap; every other column keeps its content's width.
const WRAPPING: &[&str] = &["details", "next", "fresh"];

/// A table that fits the terminal's width (120 columns when not a terminal): short columns
/// keep their width, prose columns (details, next) wrap instead of growing past the edge.
pub fn table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    let constraints: Vec<ColumnConstraint> = header
        .iter()
        .map(|h| {
            if WRAPPING.contains(h) {
                ColumnConstraint::LowerBoundary(Width::Fixed(12))
            } else {
                ColumnConstraint::ContentWidth
            }
        })
        .collect();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header)
        .set_constraints(constraints);
    if table.width().is_none() {
        // Not a terminal (a pipe, a log): a width a reader's window still shows.
        table.set_width(120);
    }
    table
}

/// A duration in the largest sensible unit: `45s`, `12m`, `3h05m`, `2d04h`.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=99 => format!("{s}s"),
        100..=5_999 => format!("{}m", s / 60),
        6_000..=172_799 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

pub fn next_text(next: &Next) -> String {
    match next {
        Next::Due { reason } => format!("due now ({reason})"),
        Next::At { at } => local_time(*at),
        Next::Running => "running".into(),
        Next::Paused => "paused (emag-sync resume)".into(),
        Next::WhenAsked => "when asked (sync --queue)".into(),
        Next::WaitsFor {
            run_id,
            kind,
            holder,
        } => format!(
            "due; waits for {kind} run {run_id} ({}): one run per account at a time",
            holder.as_deref().unwrap_or("unknown holder")
        ),
        Next::AfterStoppedRun { run_id, kind } => {
            format!("due; after {kind} run {run_id}, left by a stopped process, is resumed")
        }
        Next::Never => "never (the cron expression has no future time)".into(),
    }
}

pub fn freshness_text(f: &Freshness) -> String {
    let level = match f.level {
        Level::Ok => "",
        Level::Warning => " STALE",
        Level::Critical => " CRITICAL",
    };
    match f.age_ms {
        Some(a) => format!("{}{level}", age(a)),
        None => format!("never synced{level}"),
    }
}

fn schedule_text(s: &ScheduleSpec) -> String {
    match s {
        ScheduleSpec::Interval { minutes } => format!("{minutes} min"),
        ScheduleSpec::Cron { expr, zone } => format!("cron {expr} {zone}"),
        ScheduleSpec::Manual => "manual".into(),
    }
}

fn details(k: &KindStatus) -> String {
    if let Some(p) = &k.progress {
        let at = match p.total_items {
            Some(total) => format!("page {}, {} of {total} items", p.page, p.items_read),
            None => format!("page {}, {} items", p.page, p.items_read),
        };
        return if p.alive {
            at
        } else {
            format!("{at}; its process stopped — the next scheduler tick resumes it")
        };
    }
    let Some(r) = &k.last_run else {
        return String::new();
    };
    if let Some(e) = &r.error_message {
        return e.clone();
    }
    if let Some(h) = &r.reclaimed_from {
        return format!("attempt {}, reclaimed from {h}", r.attempt);
    }
    r.note.clone().unwrap_or_default()
}

/// `emag-sync status`: instances, accounts needing attention, and one row per schedule.
pub fn status_text(snap: &Snapshot, local_pid: Option<u32>) -> String {
    let mut out = String::new();
    let live = snap
        .scheduler
        .instances
        .iter()
        .filter(|i| i.state == emag_sync::status::InstanceState::Live)
        .count();
    let _ = match (local_pid, live) {
        (Some(pid), _) => writeln!(
            out,
            "scheduler: running (pid {pid} on this machine; {live} live instance(s) in all)"
        ),
        (None, 0) => writeln!(
            out,
            "scheduler: not running (start it with `emag-sync start`)"
        ),
        (None, n) => writeln!(
            out,
            "scheduler: {n} live instance(s) on other machines or pid files"
        ),
    };
    for i in &snap.scheduler.instances {
        let _ = writeln!(
            out,
            "  instance {} (pid {}, v{}): {}, since {}, last beat {}, {} run(s) in flight",
            i.row.id,
            i.row.pid,
            i.row.version,
            i.state.as_str(),
            local_time(i.row.started_at),
            local_time(i.row.heartbeat_at),
            i.row.running
        );
    }
    for a in &snap.accounts {
        if let Some(att) = &a.attention {
            let _ = writeln!(
                out,
                "account {} NEEDS ATTENTION since {}: {}",
                a.name,
                local_time(att.since),
                att.reason
            );
        }
        for q in &a.quarantined {
            let _ = writeln!(
                out,
                "account {}: {} {} item(s) eMAG sent could not be read and are quarantined \
                 (skipped; kept raw in the quarantine table); last at {}: {}",
                a.name,
                q.items,
                q.kind,
                local_time(q.last_seen_at),
                q.last_reason
            );
        }
    }
    if snap.leases_reclaimed_24h > 0 {
        let _ = writeln!(
            out,
            "leases reclaimed in the last 24 h: {} (runs taken over from a process that died or went silent)",
            snap.leases_reclaimed_24h
        );
    }
    let mut t = table(vec![
        "account", "kind", "every", "last run", "state", "took", "items", "fresh", "next",
        "details",
    ]);
    for a in &snap.accounts {
        for k in &a.kinds {
            let last = k.last_run.as_ref();
            let account = match a.state {
                AccountState::Paused => format!("{} (paused)", a.name),
                _ => a.name.clone(),
            };
            t.add_row(vec![
                account,
                k.kind.to_string(),
                schedule_text(&k.schedule),
                last.and_then(|r| r.started_at)
                    .map(local_time)
                    .unwrap_or_else(|| "never".into()),
                last.map(|r| r.state.to_string()).unwrap_or_default(),
                last.and_then(|r| r.duration_ms)
                    .map(|d| format!("{:.1}s", d as f64 / 1000.0))
                    .unwrap_or_default(),
                last.map(|r| r.items_read.to_string()).unwrap_or_default(),
                k.freshness.as_ref().map(freshness_text).unwrap_or_default(),
                next_text(&k.next),
                details(k),
            ]);
        }
    }
    let _ = writeln!(out, "{t}");
    for a in &snap.accounts {
        if let Some(e) = a.api_encoding {
            let _ = writeln!(out, "account {} request encoding: {e} (probed)", a.name);
        }
    }
    out
}

/// `emag-sync monitor report`: the whole picture for a person, most pressing first.
pub fn report_text(snap: &Snapshot) -> String {
    let mut out = String::new();
    let conditions = snap.conditions();
    let level = snap.level();
    let _ = writeln!(
        out,
        "emag-sync {} at {}",
        crate::commands::monitor::nagios_word(level),
        local_time(snap.taken_at)
    );
    let live: Vec<_> = snap
        .scheduler
        .instances
        .iter()
        .filter(|i| i.state == emag_sync::status::InstanceState::Live)
        .collect();
    if live.is_empty() {
        let _ = writeln!(out, "scheduler: NOT RUNNING");
    } else {
        for i in &live {
            let _ = writeln!(
                out,
                "scheduler: {} (pid {}, v{}) live since {}, {} run(s) in flight",
                i.row.id,
                i.row.pid,
                i.row.version,
                local_time(i.row.started_at),
                i.row.running
            );
        }
    }
    if !conditions.is_empty() {
        let _ = writeln!(out, "\nneeds attention:");
        for c in &conditions {
            let _ = writeln!(
                out,
                "  [{}] {}\n      fix: {}",
                crate::commands::monitor::nagios_word(c.severity),
                c.message,
                c.action
            );
        }
    }
    for a in &snap.accounts {
        let _ = writeln!(
            out,
            "\naccount {} ({}, {}): {}",
            a.name,
            a.account_type,
            a.marketplace,
            a.state.as_str().replace('_', " ")
        );
        if let Some(e) = a.api_encoding {
            let _ = writeln!(out, "  request encoding: {e} (probed)");
        }
        let mut t = table(vec![
            "kind",
            "last sync",
            "outcome",
            "fresh",
            "stale after",
            "next",
            "details",
        ]);
        for k in &a.kinds {
            let last = k.last_run.as_ref();
            t.add_row(vec![
                k.kind.to_string(),
                k.last_success_at
                    .map(local_time)
                    .unwrap_or_else(|| "never".into()),
                last.map(|r| r.state.to_string()).unwrap_or_default(),
                k.freshness.as_ref().map(freshness_text).unwrap_or_default(),
                k.freshness
                    .map(|f| age(f.warn_after_ms))
                    .unwrap_or_else(|| "-".into()),
                next_text(&k.next),
                details(k),
            ]);
        }
        let _ = writeln!(out, "{t}");
    }
    if !snap.recent_errors.is_empty() {
        let _ = writeln!(out, "\nrecent errors (24 h):");
        for e in &snap.recent_errors {
            let _ = writeln!(
                out,
                "  {} {} {} run {}: {}",
                local_time(e.at),
                e.account,
                e.kind,
                e.run_id,
                e.message.as_deref().unwrap_or("(no message)")
            );
        }
    }
    if snap.leases_reclaimed_24h > 0 {
        let _ = writeln!(
            out,
            "\nruns taken over from a stopped process in 24 h: {}",
            snap.leases_reclaimed_24h
        );
    }
    out
}

/// `emag-sync monitor health`: the Nagios plugin line (`EMAG-SYNC WARNING - … | perfdata`)
/// and its exit code.
pub fn nagios_line(
    snap: &Snapshot,
    report: &emag_sync::status::HealthReport,
    db_time: std::time::Duration,
) -> (String, u8) {
    use crate::commands::monitor::{nagios_code, nagios_word};
    let conditions = snap.conditions();
    let level = conditions
        .iter()
        .map(|c| c.severity)
        .max()
        .unwrap_or(Level::Ok);
    let live = snap
        .scheduler
        .instances
        .iter()
        .filter(|i| i.state == emag_sync::status::InstanceState::Live)
        .count();
    let kinds: usize = snap
        .accounts
        .iter()
        .map(|a| a.kinds.iter().filter(|k| k.freshness.is_some()).count())
        .sum();
    let summary = if conditions.is_empty() {
        format!(
            "{} account(s), {kinds} schedule(s) fresh; {live} scheduler instance(s) live",
            snap.accounts.len()
        )
    } else {
        let mut words: Vec<String> = conditions
            .iter()
            .take(3)
            .map(|c| c.message.clone())
            .collect();
        if conditions.len() > 3 {
            words.push(format!("and {} more", conditions.len() - 3));
        }
        words.join("; ")
    };
    let mut perf = Vec::new();
    for a in &snap.accounts {
        for k in &a.kinds {
            let Some(f) = k.freshness else { continue };
            let value = f
                .age_ms
                .map_or_else(|| "U".to_owned(), |age| format!("{}s", age / 1000));
            perf.push(format!(
                "{}_{}_age={value};{};{};0",
                a.name,
                k.kind,
                f.warn_after_ms / 1000,
                f.critical_after_ms / 1000
            ));
        }
    }
    perf.push(format!("instances={live};;;0"));
    perf.push(format!("db_time={}ms;;;0", db_time.as_millis()));
    let line = format!(
        "EMAG-SYNC {} - {summary} | {}",
        nagios_word(level),
        perf.join(" ")
    );
    (line, nagios_code(report.status))
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_owned(), |s| format!("{:.2} %", s * 100.0))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    }
}

/// The KPIs as a Markdown report.
pub fn kpi_markdown(k: &emag_sync::analytics::Kpis) -> String {
    let t = &k.targets;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## KPIs, last {} day(s) ({} – {})\n",
        k.days,
        local_time(k.from),
        local_time(k.to)
    );
    let _ = writeln!(
        out,
        "Scheduler uptime: {} (target {:.1} %): {}\n",
        percent(k.uptime),
        t.uptime * 100.0,
        verdict(k.uptime.map(|u| u >= t.uptime))
    );
    let _ = writeln!(
        out,
        "| account | kind | runs | success rate (> {:.0} %) | fresh within threshold (> {:.0} %) | threshold | recoveries | recovery p50 / max (< {}) |",
        t.success_rate * 100.0,
        t.freshness_share * 100.0,
        age(t.recovery_ms)
    );
    let _ = writeln!(out, "|---|---|---:|---|---|---:|---:|---|");
    for r in &k.kinds {
        let [rate, fresh, recovery] = r.meets(t);
        let recovery_text = match (r.recovery_p50_ms, r.recovery_max_ms) {
            (Some(p50), Some(max)) => format!("{} / {} {}", age(p50), age(max), verdict(recovery)),
            _ => "-".to_owned(),
        };
        let failing = r
            .failing_since
            .map(|s| format!(" (failing since {})", local_time(s)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} {} | {} {} | {} | {}{failing} | {recovery_text} |",
            r.account,
            r.kind,
            r.runs,
            percent(r.success_rate),
            verdict(rate),
            percent(Some(r.freshness_share)),
            verdict(fresh),
            age(r.freshness_threshold_ms),
            r.recoveries,
        );
    }
    out
}

/// The KPIs as CSV, one row per account and kind (uptime repeated on each row).
pub fn kpi_csv(k: &emag_sync::analytics::Kpis, out: impl std::io::Write) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "account",
        "kind",
        "days",
        "runs",
        "succeeded",
        "failed",
        "success_rate",
        "freshness_share",
        "freshness_threshold_s",
        "recoveries",
        "recovery_p50_s",
        "recovery_max_s",
        "failing_since",
        "uptime",
    ])?;
    let opt = |v: Option<i64>| v.map(|v| (v / 1000).to_string()).unwrap_or_default();
    for r in &k.kinds {
        w.write_record([
            r.account.clone(),
            r.kind.to_string(),
            k.days.to_string(),
            r.runs.to_string(),
            r.succeeded.to_string(),
            r.failed.to_string(),
            r.success_rate
                .map(|s| format!("{s:.6}"))
                .unwrap_or_default(),
            format!("{:.6}", r.freshness_share),
            (r.freshness_threshold_ms / 1000).to_string(),
            r.recoveries.to_string(),
            opt(r.recovery_p50_ms),
            opt(r.recovery_max_ms),
            r.failing_since
                .and_then(emag_sync::status::rfc3339)
                .unwrap_or_default(),
            k.uptime.map(|u| format!("{u:.6}")).unwrap_or_default(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_largest_sensible_unit() {
        assert_eq!(age(45_000), "45s");
        assert_eq!(age(12 * 60_000), "12m");
        assert_eq!(age(185 * 60_000), "3h05m");
        assert_eq!(age(52 * 3_600_000), "2d04h");
    }

    #[test]
    fn a_wide_table_wraps_its_prose_column_to_its_width() {
        let mut t = table(vec!["account", "started", "details"]);
        t.set_width(60);
        t.add_row(vec![
            "main".to_owned(),
            "2026-11-29 23:02:14".to_owned(),
            "word ".repeat(60),
        ]);
        assert!(t.lines().all(|l| l.chars().count() <= 60), "{t}");
        assert!(
            t.to_string().contains("2026-11-29 23:02:14"),
            "short columns keep their width: {t}"
        );
    }
}
