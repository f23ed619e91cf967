//! The store against the simulator's truth: every live offer, order and return of the
//! simulator must be stored exactly once with the simulator's content, and nothing may be
//! stored live that the simulator does not have.
//!
//! Differences are sorted by what they mean for a seller: *lost* (the simulator has it, the
//! store does not), *duplicated* (stored twice, or an order line twice), *falsely removed*
//! (a live offer marked removed), *phantom* (stored live, gone from the simulator) and
//! *stale* (stored with other content). The first three are never acceptable; the last two
//! are what a run leaves when the catalog changed behind pages it had already read, and the
//! next complete run must clear them.

use std::collections::BTreeMap;

use anyhow::Context as _;
use domain::SyncKind;
use emag_sim::{Mutation, Simulator};
use rust_decimal::Decimal;
use serde::Serialize;

/// Examples kept per comparison, so a report names rows without listing thousands.
const EXAMPLES: usize = 10;

/// The differences of one kind of data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Items the simulator has (live offers, orders, returns).
    pub expected: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub falsely_removed: usize,
    pub phantom: usize,
    pub stale: usize,
}

impl Tally {
    /// Every difference.
    pub fn mismatches(&self) -> usize {
        self.lost + self.duplicated + self.falsely_removed + self.phantom + self.stale
    }

    /// Differences no run may ever leave: lost, duplicated and falsely removed rows.
    pub fn harmful(&self) -> usize {
        self.lost + self.duplicated + self.falsely_removed
    }

    /// Differences the next complete run must clear: phantom and stale rows.
    pub fn unsettled(&self) -> usize {
        self.phantom + self.stale
    }

    fn add(&mut self, other: &Tally) {
        self.expected += other.expected;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.falsely_removed += other.falsely_removed;
        self.phantom += other.phantom;
        self.stale += other.stale;
    }
}

/// The store against the simulator, for some accounts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataCheck {
    pub offers: Tally,
    pub orders: Tally,
    pub returns: Tally,
    pub examples: Vec<String>,
}

impl DataCheck {
    /// The three kinds together.
    pub fn total(&self) -> Tally {
        let mut t = Tally::default();
        for k in [&self.offers, &self.orders, &self.returns] {
            t.add(k);
        }
        t
    }

    fn example(&mut self, text: impl FnOnce() -> String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(text());
        }
    }
}

fn dec(text: Option<&str>) -> Option<Decimal> {
    text.and_then(|t| t.parse::<Decimal>().ok())
        .map(|d| d.normalize())
}

/// What a stored row is, for the comparison: its state and the content that must match.
#[derive(Debug)]
struct Stored<V> {
    copies: usize,
    removed: bool,
    value: V,
}

/// Sorts `stored` against `want` (simulator: id → content) into `tally`.
fn sort_out<V: PartialEq + std::fmt::Debug>(
    check: &mut DataCheck,
    pick: fn(&mut DataCheck) -> &mut Tally,
    account: &str,
    what: &str,
    stored: &BTreeMap<i64, Stored<V>>,
    want: &BTreeMap<i64, V>,
) {
    pick(check).expected += want.len();
    for (id, w) in want {
        match stored.get(id) {
            None => {
                pick(check).lost += 1;
                check.example(|| format!("{account} {what} {id}: lost (not stored)"));
            }
            Some(s) if s.removed => {
                pick(check).falsely_removed += 1;
                check.example(|| format!("{account} {what} {id}: live, but stored as removed"));
            }
            Some(s) if s.value != *w => {
                pick(check).stale += 1;
                check.example(|| {
                    format!(
                        "{account} {what} {id}: stored {:?}, simulator {w:?}",
                        s.value
                    )
                });
            }
            Some(_) => {}
        }
    }
    for (id, s) in stored {
        if s.copies > 1 {
            pick(check).duplicated += s.copies - 1;
            check.example(|| format!("{account} {what} {id}: stored {} times", s.copies));
        }
        if !s.removed && !want.contains_key(id) {
            pick(check).phantom += 1;
            check.example(|| {
                format!("{account} {what} {id}: stored live, the simulator does not have it")
            });
        }
    }
}

fn insert<V>(map: &mut BTreeMap<i64, Stored<V>>, id: i64, removed: bool, value: V) {
    map.entry(id)
        .and_modify(|s| s.copies += 1)
        .or_insert(Stored {
            copies: 1,
            removed,
            value,
        });
}

type OfferKey = (Option<Decimal>, Option<i64>, Option<i64>, Option<i64>);
type LineKey = (i64, Option<i64>, Option<Decimal>, Option<i64>);
type OrderKey = (i64, Option<i64>, Option<String>, Vec<LineKey>);
type ReturnKey = (Option<i64>, Option<i64>);

/// The stored data of `kinds` (offers, orders, returns; reference data is not compared) of
/// `accounts` against the simulator's.
pub async fn compare(
    store: &storage::Store,
    sim: &Simulator,
    accounts: &[String],
    kinds: &[SyncKind],
) -> anyhow::Result<DataCheck> {
    let mut check = DataCheck::default();
    for name in accounts {
        for kind in kinds {
            match kind {
                SyncKind::Offers => compare_offers(&mut check, store, sim, name).await?,
                SyncKind::Orders => compare_orders(&mut check, store, sim, name).await?,
                SyncKind::Returns => compare_returns(&mut check, store, sim, name).await?,
                SyncKind::Reference => {}
            }
        }
    }
    Ok(check)
}

async fn compare_offers(
    check: &mut DataCheck,
    store: &storage::Store,
    sim: &Simulator,
    name: &str,
) -> anyhow::Result<()> {
    let mut stored: BTreeMap<i64, Stored<OfferKey>> = BTreeMap::new();
    for o in store
        .export_offers(Some(name), None, 100_000_000)
        .await
        .with_context(|| format!("reading the offers of {name}"))?
    {
        let key = (
            dec(o.sale_price.as_deref()),
            o.general_stock,
            o.estimated_stock,
            o.status,
        );
        insert(&mut stored, o.id, o.removed, key);
    }
    let want: BTreeMap<i64, OfferKey> = sim
        .offers(name)
        .into_iter()
        .map(|o| {
            let key = (
                Some(o.sale_price.normalize()),
                Some(i64::from(o.general_stock)),
                Some(i64::from(o.estimated_stock)),
                Some(i64::from(o.status)),
            );
            (i64::from(o.id), key)
        })
        .collect();
    sort_out(check, |c| &mut c.offers, name, "offer", &stored, &want);
    Ok(())
}

async fn compare_orders(
    check: &mut DataCheck,
    store: &storage::Store,
    sim: &Simulator,
    name: &str,
) -> anyhow::Result<()> {
    let mut stored: BTreeMap<i64, Stored<OrderKey>> = BTreeMap::new();
    for o in store
        .export_orders(Some(name), None, 100_000_000)
        .await
        .with_context(|| format!("reading the orders of {name}"))?
    {
        let mut line_ids: Vec<i64> = o.products.iter().map(|l| l.id).collect();
        line_ids.sort_unstable();
        let before = line_ids.len();
        line_ids.dedup();
        if line_ids.len() < before {
            check.orders.duplicated += before - line_ids.len();
            check.example(|| format!("{name} order {}: an order line stored twice", o.id));
        }
        let lines = o
            .products
            .iter()
            .map(|l| (l.id, l.quantity, dec(l.sale_price.as_deref()), l.status))
            .collect();
        insert(
            &mut stored,
            o.id,
            false,
            (o.order_type, o.status, o.modified, lines),
        );
    }
    let want: BTreeMap<i64, OrderKey> = sim
        .orders(name)
        .into_iter()
        .map(|o| {
            let lines = o
                .products
                .iter()
                .map(|l| {
                    (
                        i64::try_from(l.id).unwrap_or(-1),
                        Some(i64::from(l.quantity)),
                        Some(l.sale_price.normalize()),
                        Some(i64::from(l.status)),
                    )
                })
                .collect();
            let key = (
                i64::from(o.order_type),
                Some(i64::from(o.status)),
                Some(o.modified.format("%Y-%m-%d %H:%M:%S").to_string()),
                lines,
            );
            (i64::try_from(o.id).unwrap_or(-1), key)
        })
        .collect();
    sort_out(check, |c| &mut c.orders, name, "order", &stored, &want);
    Ok(())
}

async fn compare_returns(
    check: &mut DataCheck,
    store: &storage::Store,
    sim: &Simulator,
    name: &str,
) -> anyhow::Result<()> {
    let mut stored: BTreeMap<i64, Stored<ReturnKey>> = BTreeMap::new();
    for (id, rma_type, status) in store
        .return_statuses(name)
        .await
        .with_context(|| format!("reading the returns of {name}"))?
    {
        insert(&mut stored, id, false, (rma_type, status));
    }
    let want: BTreeMap<i64, ReturnKey> = sim
        .returns(name)
        .into_iter()
        .map(|r| {
            (
                i64::try_from(r.emag_id).unwrap_or(-1),
                (
                    Some(i64::from(r.rma_type)),
                    Some(i64::from(r.request_status)),
                ),
            )
        })
        .collect();
    sort_out(check, |c| &mut c.returns, name, "return", &stored, &want);
    Ok(())
}

/// A return of `account` moving on, as eMAG's staff move them (new → acknowledged → received
/// → finalized), picked by `rng` among those not finalized; `None` when none is open.
pub fn return_moving_on(
    sim: &Simulator,
    account: &str,
    rng: &mut crate::rng::Rng,
) -> Option<Mutation> {
    let open: Vec<(u64, u8)> = sim
        .returns(account)
        .iter()
        .filter_map(|r| match r.request_status {
            2 => Some((r.emag_id, 3)),
            3 => Some((r.emag_id, 6)),
            6 => Some((r.emag_id, 7)),
            _ => None,
        })
        .collect();
    let &(emag_id, status) = rng.pick(&open)?;
    Some(Mutation::SetReturnStatus { emag_id, status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_sorted_by_what_they_mean() {
        let mut check = DataCheck::default();
        let want: BTreeMap<i64, u8> = [(1, 10), (2, 20), (3, 30), (4, 40)].into();
        let mut stored = BTreeMap::new();
        insert(&mut stored, 1, false, 10); // equal
        insert(&mut stored, 2, true, 20); // live, stored removed
        insert(&mut stored, 3, false, 31); // other content
        insert(&mut stored, 5, false, 50); // gone from the simulator, stored live
        insert(&mut stored, 6, true, 60); // gone and stored removed: right
        insert(&mut stored, 1, false, 10); // a second copy
        sort_out(
            &mut check,
            |c| &mut c.offers,
            "main",
            "offer",
            &stored,
            &want,
        );
        assert_eq!(
            check.offers,
            Tally {
                expected: 4,
                lost: 1,
                duplicated: 1,
                falsely_removed: 1,
                phantom: 1,
                stale: 1,
            }
        );
        assert_eq!(check.offers.harmful(), 3);
        assert_eq!(check.offers.unsettled(), 2);
        assert_eq!(check.total().mismatches(), 5);
        assert!(check.examples.iter().any(|e| e.contains("offer 4: lost")));
    }
}
