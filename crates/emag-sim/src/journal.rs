//! The request journal: one entry per API request (admin routes excluded), kept in a ring of
//! the most recent 200,000 so a long benchmark cannot exhaust memory. Tests read it to assert
//! what a client actually sent: pages, page sizes, 429s, which account.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Entries kept before the oldest are dropped.
pub(crate) const JOURNAL_CAPACITY: usize = 200_000;

/// One API request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Increasing from 1, never reused.
    pub seq: u64,
    /// Milliseconds of (tokio) time since the simulator started.
    pub at_ms: u64,
    /// Account whose username was sent, if that username exists.
    pub account: Option<String>,
    pub method: String,
    pub path: String,
    /// e.g. `product_offer`, `order`, `offer_stock`.
    pub resource: String,
    /// e.g. `read`, `count`, `acknowledge`; `update` for `PATCH offer_stock/{id}`.
    pub action: String,
    pub status: u16,
    pub rate_limited: bool,
    /// Effective `currentPage` of read/count requests.
    pub page: Option<u32>,
    /// Effective `itemsPerPage` of read/count requests.
    pub items: Option<u32>,
}

/// What the HTTP layer records; the journal assigns `seq`.
#[derive(Debug, Clone)]
pub(crate) struct JournalRecord {
    pub(crate) at_ms: u64,
    pub(crate) account: Option<String>,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) resource: String,
    pub(crate) action: String,
    pub(crate) status: u16,
    pub(crate) rate_limited: bool,
    pub(crate) page: Option<u32>,
    pub(crate) items: Option<u32>,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    entries: VecDeque<JournalEntry>,
}

/// Bounded, append-only log of requests.
#[derive(Debug)]
pub(crate) struct Journal {
    ring: Mutex<Ring>,
    /// The last recorded `seq`, so waiters wake on new entries instead of polling.
    recorded: watch::Sender<u64>,
}

impl Default for Journal {
    fn default() -> Self {
        Self {
            ring: Mutex::default(),
            recorded: watch::channel(0).0,
        }
    }
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver that changes whenever an entry is recorded.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    pub(crate) fn record(&self, r: JournalRecord) {
        let seq = self.append(r);
        self.recorded.send_replace(seq);
    }

    fn append(&self, r: JournalRecord) -> u64 {
        let mut ring = self.lock();
        ring.next_seq += 1;
        let entry = JournalEntry {
            seq: ring.next_seq,
            at_ms: r.at_ms,
            account: r.account,
            method: r.method,
            path: r.path,
            resource: r.resource,
            action: r.action,
            status: r.status,
            rate_limited: r.rate_limited,
            page: r.page,
            items: r.items,
        };
        if ring.entries.len() == JOURNAL_CAPACITY {
            ring.entries.pop_front();
        }
        ring.entries.push_back(entry);
        ring.next_seq
    }

    /// Entries with `seq > since` (all when `since` is 0), oldest first.
    pub(crate) fn since(&self, since: u64) -> Vec<JournalEntry> {
        let ring = self.lock();
        // Sequence numbers are contiguous inside the ring, so the start is computable.
        let first = ring.entries.front().map_or(0, |e| e.seq);
        let skip =
            usize::try_from(since.saturating_sub(first.saturating_sub(1))).unwrap_or(usize::MAX);
        ring.entries.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: u16) -> JournalRecord {
        JournalRecord {
            at_ms: 0,
            account: None,
            method: "POST".into(),
            path: "/api-3/vat/read".into(),
            resource: "vat".into(),
            action: "read".into(),
            status,
            rate_limited: false,
            page: None,
            items: None,
        }
    }

    #[test]
    fn since_returns_only_newer_entries() {
        let journal = Journal::default();
        for status in [200, 401, 429] {
            journal.record(record(status));
        }
        let newer = journal.since(1);
        assert_eq!(newer.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(journal.since(0).len(), 3);
        assert!(journal.since(3).is_empty());
    }
}
