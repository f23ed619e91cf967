//! Run states in SQL text. Every run state a query names comes from [`RunState`], the one
//! mapping of states to the database (STYLE rule 2): bound as a parameter where the state is
//! a value, or written into the text by these helpers where the state selects rows through a
//! partial index. SQLite uses a partial index only when the query's `WHERE` contains the
//! index's condition as written in the migration (`state = 'running'`, not `state = ?`), so
//! those queries carry the literal — generated here, once per query (`LazyLock`), never
//! typed. A test reads this crate's sources and fails on a run state spelled out in SQL.

use std::sync::LazyLock;

use domain::RunState;

/// `'running'`: a run state as an SQL string literal.
pub(crate) fn lit(state: RunState) -> String {
    format!("'{}'", state.as_str())
}

/// `('queued', 'running', 'interrupted')`: an `IN` list of run states, in the order given.
/// SQLite matches a partial index's `IN` list element by element, so a query relying on one
/// must list the states in the migration's order.
pub(crate) fn list(states: &[RunState]) -> String {
    let items: Vec<String> = states.iter().map(|s| lit(*s)).collect();
    format!("({})", items.join(", "))
}

/// The states of an active run, in the order of the unique partial index `runs_one_active`
/// (at most one per (account, kind)).
pub(crate) const ACTIVE: [RunState; 3] =
    [RunState::Queued, RunState::Running, RunState::Interrupted];

/// The states of a finished run that counts for the KPIs and the totals (a cancelled run is
/// neither a success nor a failure).
pub(crate) const DECIDED: [RunState; 2] = [RunState::Succeeded, RunState::Failed];

/// Succeeded only after retries or a takeover: the condition of the partial index
/// `runs_warned`, which a query must write exactly so for SQLite to use the index.
pub(crate) static WARNED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "state = {} AND (retries > 0 OR reclaimed_from IS NOT NULL)",
        lit(RunState::Succeeded)
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The partial indexes on `runs.state`, as the migrations write them: a query relying on
    /// one must carry the same text, which the helpers give only if the states match.
    #[test]
    fn the_helpers_write_the_partial_index_conditions_of_the_migrations() {
        let sqlite = [
            include_str!("../migrations/sqlite/0001_core.sql"),
            include_str!("../migrations/sqlite/0003_run_slots.sql"),
            include_str!("../migrations/sqlite/0004_instances_queue.sql"),
            include_str!("../migrations/sqlite/0005_status_indexes.sql"),
            include_str!("../migrations/sqlite/0007_latest_runs.sql"),
        ]
        .concat();
        let postgres = [
            include_str!("../migrations/postgres/0001_core.sql"),
            include_str!("../migrations/postgres/0003_run_slots.sql"),
            include_str!("../migrations/postgres/0004_instances_queue.sql"),
            include_str!("../migrations/postgres/0005_status_indexes.sql"),
            include_str!("../migrations/postgres/0007_latest_runs.sql"),
        ]
        .concat();
        let conditions = [
            format!("WHERE state IN {}", list(&ACTIVE)),
            format!("WHERE state = {}", lit(RunState::Running)),
            format!("WHERE state = {}", lit(RunState::Queued)),
            format!("WHERE state = {}", lit(RunState::Succeeded)),
            format!("WHERE state = {}", lit(RunState::Failed)),
            format!("WHERE {}", *WARNED),
        ];
        for condition in &conditions {
            assert!(sqlite.contains(condition.as_str()), "sqlite: {condition}");
            assert!(
                postgres.contains(condition.as_str()),
                "postgres: {condition}"
            );
        }
    }

    /// The sources of this crate, file name and text, read at test time so a new file is
    /// covered too.
    fn sources() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut out = Vec::new();
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read the storage sources") {
                let path = entry.expect("a source entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read a storage source");
                    out.push((path.display().to_string(), text));
                }
            }
        }
        assert!(out.len() > 5, "the storage sources were not found: {out:?}");
        out
    }

    #[test]
    fn no_run_state_is_spelled_out_in_the_storage_sql() {
        let mut found = Vec::new();
        for (file, text) in sources() {
            for (n, line) in text.lines().enumerate() {
                // Comments may name states; only code (the SQL in it) may not.
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if RunState::ALL.iter().any(|s| code.contains(&lit(*s))) {
                    found.push(format!("{file}:{}: {code}", n + 1));
                }
            }
        }
        assert!(
            found.is_empty(),
            "run states written as SQL literals (bind `RunState::as_str()` or use \
             `states::lit`):\n{}",
            found.join("\n")
        );
    }
}
