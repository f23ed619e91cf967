//! Rules about run rows that several harnesses apply: who holds a run, whether it has
//! written anything since its claim, and the whole history of a benchmark database.

use anyhow::Context as _;
use storage::{RunFilter, RunRow};

/// The pid in a run holder (`host:pid:nonce`).
pub fn pid_of_holder(holder: &str) -> Option<u32> {
    holder.split(':').nth(1)?.parse().ok()
}

/// Whether process `pid` of this machine holds `run`.
pub fn held_by(run: &RunRow, pid: u32) -> bool {
    run.holder.as_deref().and_then(pid_of_holder) == Some(pid)
}

/// Nothing written since the claim: no page, no checkpoint, no heartbeat (a claim writes
/// `heartbeat_at = started_at`; the first beat comes a quarter TTL later).
pub fn untouched(
    pages: u64,
    checkpoint: i64,
    started_at: Option<i64>,
    heartbeat_at: Option<i64>,
) -> bool {
    pages == 0 && checkpoint == 0 && started_at.is_some() && started_at == heartbeat_at
}

/// [`untouched`] of a run row.
pub fn run_untouched(run: &RunRow) -> bool {
    untouched(
        run.counts.pages,
        run.checkpoint_page,
        run.started_at,
        run.heartbeat_at,
    )
}

/// Every run of the database, oldest first.
pub async fn all_runs(store: &storage::Store) -> anyhow::Result<Vec<RunRow>> {
    let mut runs = store
        .list_runs(&RunFilter {
            limit: i64::MAX,
            ..RunFilter::default()
        })
        .await
        .context("reading the runs table")?;
    runs.reverse();
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_name_their_pid() {
        assert_eq!(pid_of_holder("host:1234:00ab"), Some(1234));
        assert_eq!(pid_of_holder("host"), None);
    }

    #[test]
    fn a_fresh_claim_has_written_nothing() {
        assert!(untouched(0, 0, Some(5), Some(5)));
        assert!(!untouched(0, 0, Some(5), Some(9)), "a heartbeat since");
        assert!(!untouched(1, 1, Some(5), Some(5)), "a page since");
        assert!(!untouched(0, 0, None, None));
    }
}
