//! The targets, and the pool of inputs they draw from.

pub(crate) mod api;
pub(crate) mod config;
pub(crate) mod envelope;
pub(crate) mod items;
pub(crate) mod money;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::json::Json;
use crate::mutate;

/// One input of a pool: its bytes, a tag (an HTTP status, a type), and its tree when JSON.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub tag: u16,
    pub bytes: Vec<u8>,
    pub tree: Option<Json>,
}

/// The inputs a target mutates: its seeds, then every input that did something new.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    entries: Vec<Entry>,
    seeds: usize,
    added: usize,
}

impl Pool {
    pub fn new(seeds: impl IntoIterator<Item = (u16, Vec<u8>)>) -> Pool {
        let entries: Vec<Entry> = seeds
            .into_iter()
            .map(|(tag, bytes)| Entry::new(tag, bytes))
            .collect();
        Pool {
            seeds: entries.len(),
            entries,
            added: 0,
        }
    }

    pub fn seeds(&self) -> usize {
        self.seeds
    }

    pub fn pick(&self, rng: &mut ChaCha8Rng) -> &Entry {
        &self.entries[rng.gen_range(0..self.entries.len())]
    }

    /// Adds an input; once full, it replaces an earlier addition (never a seed).
    pub fn add(&mut self, tag: u16, bytes: Vec<u8>) {
        let entry = Entry::new(tag, bytes);
        if self.entries.len() < crate::POOL_MAX {
            self.entries.push(entry);
        } else {
            let span = crate::POOL_MAX - self.seeds;
            self.entries[self.seeds + self.added % span] = entry;
        }
        self.added += 1;
    }

    /// A mutant of a random entry (and its tag): structural when it is JSON (mostly), byte
    /// changes otherwise; another entry lends subtrees and splices.
    pub fn mutant(&self, rng: &mut ChaCha8Rng) -> (u16, Vec<u8>) {
        let entry = self.pick(rng);
        let donor = self.pick(rng);
        let donor_bytes: [&[u8]; 1] = [&donor.bytes];
        let bytes = match (&entry.tree, rng.gen_range(0..10)) {
            (Some(tree), 0..=8) => {
                let donors = donor.tree.as_slice();
                mutate::mutate_json(rng, tree, donors, &donor_bytes)
            }
            _ => {
                let mut bytes = entry.bytes.clone();
                for _ in 0..rng.gen_range(1..=4) {
                    mutate::mutate_bytes(rng, &mut bytes, &donor_bytes);
                }
                bytes
            }
        };
        (entry.tag, bytes)
    }
}

impl Entry {
    fn new(tag: u16, bytes: Vec<u8>) -> Entry {
        let tree = std::str::from_utf8(&bytes).ok().and_then(Json::parse);
        Entry { tag, bytes, tree }
    }
}

/// `bytes` for a finding: a JSON string when UTF-8 (to paste into a test), escaped bytes
/// otherwise.
pub(crate) fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}")),
        Err(_) => format!("b\"{}\"", bytes.escape_ascii()),
    }
}
