//! What the simulator's request journal says about a sync in progress, one entry at a time:
//! pure steps that tell a harness when a run has reached the moment it waits for (a page of
//! an offer scan, the count before removals, the n-th read by id, the n-th order window read).
//! Entries are journaled when the simulator answers, before the answer is sent, so a harness
//! that acts on an entry acts before the client has the answer.

use emag_sim::JournalEntry;

/// eMAG's names of the resources and actions, as the simulator journals them.
pub const OFFER_RESOURCE: &str = "product_offer";
pub const ORDER_RESOURCE: &str = "order";
pub const RETURN_RESOURCE: &str = "rma";
pub const COUNT_ACTION: &str = "count";
pub const READ_ACTION: &str = "read";
/// Offers per page of a scan (`src/sync/offers.rs`); a read of one item is a read by id (or
/// the encoding probe, which comes before a scan's first count).
pub const SCAN_PAGE_ITEMS: u32 = 100;

/// An answer that moves a sync on: for `account`, of `resource`, not refused (429s are asked
/// again).
fn answered(e: &JournalEntry, account: &str, resource: &str) -> bool {
    e.account.as_deref() == Some(account)
        && e.resource == resource
        && e.status == 200
        && !e.rate_limited
}

/// Where one account's offer scan is: each scan is a count, its pages, and a count again
/// before removals, which may be confirmed by reads of one offer by id (`src/sync/offers.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanPhase {
    /// No scan seen begin (one already under way when the watch began is let go).
    Idle,
    /// The first count was answered: the run is claimed, no page read yet.
    Counted,
    /// Pages are being read (`pass` 1, or a repeat pass when the catalog moved).
    Reading { pass: u32 },
    /// The count after the pages was answered: removals are being settled.
    Confirming { pass: u32 },
}

/// The moment of an offer scan a watch waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMark {
    /// Page 1 answered as the first page of a scan (not a resumed scan's first page).
    FirstPage,
    /// Page `n` of the first pass answered.
    Page(u32),
    /// The count after the last page answered: removals come next.
    Recount,
    /// The `n`-th read of one offer by id after that count answered (confirming removals).
    ReadById(u32),
}

/// What a journal entry means for the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStep {
    /// A scan began: its run is claimed; a harness may find its holder now.
    Began,
    /// The moment has come.
    Strike,
}

/// The offer-scan entries of one account, one at a time.
#[derive(Debug)]
pub struct ScanWatch {
    account: String,
    mark: ScanMark,
    phase: ScanPhase,
    by_id: u32,
}

impl ScanWatch {
    pub fn new(account: &str, mark: ScanMark) -> ScanWatch {
        ScanWatch {
            account: account.to_owned(),
            mark,
            phase: ScanPhase::Idle,
            by_id: 0,
        }
    }

    pub fn observe(&mut self, e: &JournalEntry) -> Option<ScanStep> {
        if !answered(e, &self.account, OFFER_RESOURCE) {
            return None;
        }
        let strike = |hit: bool| hit.then_some(ScanStep::Strike);
        match (e.action.as_str(), self.phase) {
            // The count after the pages: next come removals (or, if the catalog moved, a
            // second pass and another count).
            (COUNT_ACTION, ScanPhase::Reading { pass }) => {
                self.phase = ScanPhase::Confirming { pass };
                self.by_id = 0;
                strike(self.mark == ScanMark::Recount)
            }
            (COUNT_ACTION, _) => {
                self.phase = ScanPhase::Counted;
                Some(ScanStep::Began)
            }
            (READ_ACTION, ScanPhase::Counted) => {
                self.phase = ScanPhase::Reading { pass: 1 };
                // A resumed scan starts past page 1: not its first page.
                strike(match self.mark {
                    ScanMark::FirstPage => e.page == Some(1),
                    ScanMark::Page(n) => e.page == Some(n),
                    _ => false,
                })
            }
            (READ_ACTION, ScanPhase::Reading { pass }) => {
                strike(pass == 1 && matches!(self.mark, ScanMark::Page(n) if e.page == Some(n)))
            }
            (READ_ACTION, ScanPhase::Confirming { pass }) => {
                if e.items == Some(SCAN_PAGE_ITEMS) {
                    // A repeat pass: the catalog moved while the first was read.
                    self.phase = ScanPhase::Reading { pass: pass + 1 };
                    return None;
                }
                self.by_id += 1;
                strike(self.mark == ScanMark::ReadById(self.by_id))
            }
            _ => None,
        }
    }
}

/// The `n`-th answer to `account` of one resource (any action): order windows and their
/// counts, return windows and re-reads by id.
#[derive(Debug)]
pub struct AnswerWatch {
    account: String,
    resource: &'static str,
    n: u32,
    seen: u32,
}

impl AnswerWatch {
    pub fn new(account: &str, resource: &'static str, n: u32) -> AnswerWatch {
        AnswerWatch {
            account: account.to_owned(),
            resource,
            n,
            seen: 0,
        }
    }

    /// True at the `n`-th answer.
    pub fn observe(&mut self, e: &JournalEntry) -> bool {
        if !answered(e, &self.account, self.resource) {
            return false;
        }
        self.seen += 1;
        self.seen == self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        seq: u64,
        account: &str,
        action: &str,
        page: Option<u32>,
        status: u16,
    ) -> JournalEntry {
        JournalEntry {
            seq,
            at_ms: seq,
            account: Some(account.to_owned()),
            method: "POST".to_owned(),
            path: format!("/api-3/{OFFER_RESOURCE}/{action}"),
            resource: OFFER_RESOURCE.to_owned(),
            action: action.to_owned(),
            status,
            rate_limited: status == 429,
            page,
            items: page.map(|_| SCAN_PAGE_ITEMS),
        }
    }

    fn by_id(seq: u64) -> JournalEntry {
        let mut e = entry(seq, "acc001", READ_ACTION, Some(1), 200);
        e.items = Some(1);
        e
    }

    /// A scan of `pages` pages of acc001 from `seq` on: count, pages (page 1 refused once
    /// with a 429 first), count.
    fn scan(seq: u64, pages: u32) -> Vec<JournalEntry> {
        let mut entries = vec![
            entry(seq, "acc001", COUNT_ACTION, None, 200),
            entry(seq + 1, "acc001", READ_ACTION, Some(1), 429),
        ];
        for p in 1..=pages {
            entries.push(entry(
                seq + 1 + u64::from(p),
                "acc001",
                READ_ACTION,
                Some(p),
                200,
            ));
        }
        entries.push(entry(
            seq + 2 + u64::from(pages),
            "acc001",
            COUNT_ACTION,
            None,
            200,
        ));
        entries
    }

    fn steps(mark: ScanMark, entries: &[JournalEntry]) -> Vec<(u64, ScanStep)> {
        let mut watch = ScanWatch::new("acc001", mark);
        entries
            .iter()
            .filter_map(|e| watch.observe(e).map(|s| (e.seq, s)))
            .collect()
    }

    #[test]
    fn first_page_strikes_when_page_one_is_answered_not_when_it_is_refused() {
        let entries = scan(1, 3);
        assert_eq!(
            steps(ScanMark::FirstPage, &entries),
            vec![(1, ScanStep::Began), (3, ScanStep::Strike)]
        );
    }

    #[test]
    fn a_page_of_the_first_pass_strikes_when_it_is_answered() {
        let entries = scan(1, 3);
        assert_eq!(
            steps(ScanMark::Page(2), &entries),
            vec![(1, ScanStep::Began), (4, ScanStep::Strike)]
        );
        assert_eq!(
            steps(ScanMark::Page(1), &entries),
            vec![(1, ScanStep::Began), (3, ScanStep::Strike)]
        );
    }

    #[test]
    fn removals_strike_at_the_count_after_the_last_page() {
        let entries = scan(1, 3);
        assert_eq!(
            steps(ScanMark::Recount, &entries),
            vec![(1, ScanStep::Began), (6, ScanStep::Strike)]
        );
    }

    #[test]
    fn reads_by_id_after_the_recount_are_counted_and_a_repeat_pass_is_not_one() {
        let mut entries = scan(1, 2);
        // The catalog moved: a repeat pass (pages of 100) and its count, then reads by id.
        entries.push(entry(10, "acc001", READ_ACTION, Some(1), 200));
        entries.push(entry(11, "acc001", READ_ACTION, Some(2), 200));
        entries.push(entry(12, "acc001", COUNT_ACTION, None, 200));
        entries.extend([by_id(13), by_id(14), by_id(15)]);
        assert_eq!(
            steps(ScanMark::ReadById(2), &entries),
            vec![(1, ScanStep::Began), (14, ScanStep::Strike)]
        );
        // The repeat pass's page 2 is not the first pass's.
        assert_eq!(
            steps(ScanMark::Page(2), &entries),
            vec![(1, ScanStep::Began), (4, ScanStep::Strike)]
        );
    }

    #[test]
    fn a_scan_under_way_when_the_watch_begins_is_let_go() {
        // Pages 2 and 3 and the closing count of a scan begun earlier, then a whole scan.
        let mut entries = vec![
            entry(1, "acc001", READ_ACTION, Some(2), 200),
            entry(2, "acc001", READ_ACTION, Some(3), 200),
            entry(3, "acc001", COUNT_ACTION, None, 200),
        ];
        entries.extend(scan(10, 2));
        assert_eq!(
            steps(ScanMark::Recount, &entries),
            vec![
                (3, ScanStep::Began),
                (10, ScanStep::Began),
                (14, ScanStep::Strike)
            ]
        );
        assert_eq!(
            steps(ScanMark::FirstPage, &entries),
            vec![
                (3, ScanStep::Began),
                (10, ScanStep::Began),
                (12, ScanStep::Strike)
            ]
        );
    }

    #[test]
    fn other_accounts_and_resources_do_not_move_the_watch() {
        let mut entries = scan(1, 2);
        for e in &mut entries {
            e.account = Some("acc0010".to_owned());
        }
        let mut order = entry(20, "acc001", READ_ACTION, Some(1), 200);
        order.resource = ORDER_RESOURCE.to_owned();
        entries.push(order);
        assert!(steps(ScanMark::FirstPage, &entries).is_empty());
    }

    #[test]
    fn a_resumed_scan_is_not_a_first_page() {
        let entries = vec![
            entry(1, "acc001", COUNT_ACTION, None, 200),
            entry(2, "acc001", READ_ACTION, Some(4), 200),
            entry(3, "acc001", READ_ACTION, Some(5), 200),
        ];
        assert_eq!(
            steps(ScanMark::FirstPage, &entries),
            vec![(1, ScanStep::Began)]
        );
    }

    #[test]
    fn the_nth_answer_of_a_resource_strikes_once() {
        let mut watch = AnswerWatch::new("acc001", ORDER_RESOURCE, 2);
        let mut order = |seq, status| {
            let mut e = entry(seq, "acc001", READ_ACTION, Some(1), status);
            e.resource = ORDER_RESOURCE.to_owned();
            watch.observe(&e)
        };
        assert!(!order(1, 200));
        assert!(!order(2, 429));
        assert!(order(3, 200));
        assert!(!order(4, 200));
    }
}
