//! The soak harness: the chaos harness's `emag-sync start` (one per backend, through the same
//! pass-through proxies) kept at ordinary work for many rounds, without a fault, while the
//! seller's data churns. What a process that runs for weeks must show: memory that levels
//! off, and a store that stays equal to eMAG's.
//!
//! A round changes the simulator's data — a share of every account's offers repriced, drawn
//! anew each round from none to all of them (so that the pages of the next scan carry any
//! number of changed offers, as a repricing tool's updates do), offers removed and added,
//! stock moved, orders added and moved on, a return moving on — queues a run of every account
//! and data kind, as the dashboard's "sync now" does, and waits until they all ended (at each
//! line the scheduler prints, nothing slept for). Then it reads the scheduler's resident
//! memory (`VmRSS`) and compares the store with the simulator: every round must end equal
//! to it, every run succeeded. The figures are printed; memory is not asserted.

use std::fmt::Write as _;

use anyhow::{bail, Context as _};
use emag_sim::{AccountKind, Mutation};
use rust_decimal::Decimal;
use serde::Serialize;
use storage::RunRow;
use tokio::time::Instant;

use super::{last_run_id, secs, Bench, FinalCheck, Options, RunTally, DATA_KINDS};
use crate::kill::BackendKind;
use crate::proc::status_kib;
use crate::rng::Rng;
use crate::truth::{self, Tally};

/// One round of ordinary work.
#[derive(Debug, Clone, Serialize)]
pub struct SoakRound {
    pub index: usize,
    /// Offers repriced, of every account.
    pub repriced_offers: usize,
    /// Orders added, of every account.
    pub added_orders: u32,
    /// The runs the round queued, and any the schedule started meanwhile.
    pub runs: RunTally,
    /// The store against the simulator once they ended.
    pub data: Tally,
    /// The scheduler's resident memory then, and its peak so far (KiB).
    pub rss_kib: u64,
    pub peak_kib: u64,
    /// From the queueing to the end of the last run, and the whole round (with the changes
    /// and the comparison).
    pub sync_seconds: f64,
    pub seconds: f64,
    pub examples: Vec<String>,
}

impl SoakRound {
    fn failures(&self, backend: BackendKind) -> Vec<String> {
        let what = format!("{} round {}", backend.as_str(), self.index + 1);
        let mut out = Vec::new();
        let d = &self.data;
        if d.mismatches() > 0 {
            out.push(format!(
                "{what}: {} lost, {} duplicated, {} falsely removed, {} phantom, {} stale row(s)",
                d.lost, d.duplicated, d.falsely_removed, d.phantom, d.stale
            ));
        }
        let failed: usize = self.runs.failed.values().sum();
        if failed + self.runs.unclassified + self.runs.unfinished > 0 {
            out.push(format!(
                "{what}: {failed} run(s) failed ({}), {} without a class, {} unfinished — with no fault thrown",
                self.runs.failed_text(),
                self.runs.unclassified,
                self.runs.unfinished
            ));
        }
        out
    }
}

/// The rounds of one backend and its end.
#[derive(Debug, Clone, Serialize)]
pub struct SoakBackend {
    pub backend: BackendKind,
    pub rounds: Vec<SoakRound>,
    pub final_check: FinalCheck,
}

impl SoakBackend {
    /// What failed: its rounds, then its end.
    fn failures(&self) -> Vec<String> {
        let rounds = self.rounds.iter().flat_map(|r| r.failures(self.backend));
        rounds.chain(self.final_check.failures()).collect()
    }

    /// Resident memory after the given rounds (1-based), in MiB.
    fn rss_after(&self, round: usize) -> Option<f64> {
        let r = self.rounds.get(round.checked_sub(1)?)?;
        Some(mib(r.rss_kib))
    }
}

/// Everything the soak measured.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub seed: u64,
    pub rounds_per_backend: usize,
    pub offers_per_account: u32,
    pub orders_per_account: u32,
    pub backends: Vec<SoakBackend>,
    pub seconds: f64,
    pub failures: Vec<String>,
}

impl SoakReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn judge(&mut self) {
        self.failures = self
            .backends
            .iter()
            .flat_map(SoakBackend::failures)
            .collect();
    }

    /// The scheduler's memory after chosen rounds, what the rounds did, the ends, and what
    /// failed (Markdown).
    pub fn markdown(&self) -> String {
        let n = self.rounds_per_backend;
        let mut marks: Vec<usize> = [1, n / 10, n / 4, n / 2, n * 3 / 4, n]
            .into_iter()
            .filter(|&m| m >= 1)
            .collect();
        marks.dedup();
        let mut o = String::new();
        let header: Vec<String> = marks.iter().map(|m| format!("after {m}")).collect();
        let _ = writeln!(
            o,
            "| backend | RSS (MiB) {} | peak (MiB) | second half | rounds | runs | failed | offers repriced | orders added | runs of a round (s): median | slowest | time (s) |",
            header.join(" | ")
        );
        let _ = writeln!(
            o,
            "|---|{}---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            "---:|".repeat(marks.len())
        );
        for b in &self.backends {
            let rss: Vec<String> = marks
                .iter()
                .map(|&m| b.rss_after(m).map_or("—".to_owned(), |v| format!("{v:.1}")))
                .collect();
            let peak = b.rounds.last().map_or(0.0, |r| mib(r.peak_kib));
            let half = b.rounds.len() / 2;
            let growth = match (b.rss_after(half.max(1)), b.rss_after(b.rounds.len())) {
                (Some(a), Some(z)) => format!("{:+.1}", z - a),
                _ => "—".to_owned(),
            };
            let mut runs = RunTally::default();
            for r in &b.rounds {
                runs.add(&r.runs);
            }
            let mut times: Vec<f64> = b.rounds.iter().map(|r| r.sync_seconds).collect();
            times.sort_by(f64::total_cmp);
            let _ = writeln!(
                o,
                "| {} | {} | {peak:.1} | {growth} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                b.backend.as_str(),
                rss.join(" | "),
                b.rounds.len(),
                runs.runs,
                runs.failed_text(),
                b.rounds.iter().map(|r| r.repriced_offers).sum::<usize>(),
                b.rounds.iter().map(|r| r.added_orders).sum::<u32>(),
                times.get(times.len() / 2).copied().unwrap_or(0.0),
                times.last().copied().unwrap_or(0.0),
                b.rounds.iter().map(|r| r.seconds).sum::<f64>(),
            );
        }
        let _ = writeln!(o);
        for b in &self.backends {
            let _ = writeln!(o, "{}", b.final_check.summary());
        }
        let summary = format!(
            "seed {}, {} round(s) per backend, {} offers and {} orders per account at the start, {:.1} s in all",
            self.seed,
            self.rounds_per_backend,
            self.offers_per_account,
            self.orders_per_account,
            self.seconds,
        );
        let examples = self
            .backends
            .iter()
            .flat_map(|b| b.rounds.iter().flat_map(|r| r.examples.iter()))
            .chain(
                self.backends
                    .iter()
                    .flat_map(|b| b.final_check.examples.iter()),
            );
        crate::verdict::write_tail(&mut o, &summary, "", examples, &self.failures);
        o
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `opts.rounds` rounds on every backend, one backend after the other (`opts.only` is not
/// used: nothing is thrown).
pub async fn run(opts: &Options) -> anyhow::Result<SoakReport> {
    let started = Instant::now();
    let mut report = SoakReport {
        seed: opts.seed,
        rounds_per_backend: opts.rounds,
        offers_per_account: opts.offers,
        orders_per_account: opts.orders,
        backends: Vec::new(),
        seconds: 0.0,
        failures: Vec::new(),
    };
    for (b, backend) in opts.backends.iter().enumerate() {
        let mut bench = Bench::new(opts, *backend).await?;
        let rounds = match soak(&mut bench, b).await {
            Ok(rounds) => rounds,
            Err(e) => {
                bench.close(false).await;
                return Err(e);
            }
        };
        let final_check = match bench.finish().await {
            Ok(check) => check,
            Err(e) => {
                bench.close(false).await;
                return Err(e);
            }
        };
        let result = SoakBackend {
            backend: *backend,
            rounds,
            final_check,
        };
        let passed = result.failures().is_empty();
        report.backends.push(result);
        bench.close(passed).await;
    }
    report.seconds = secs(started.elapsed());
    report.judge();
    Ok(report)
}

/// The first runs, then every round.
async fn soak(bench: &mut Bench<'_>, b: usize) -> anyhow::Result<Vec<SoakRound>> {
    bench.baseline().await?;
    let mut rounds = Vec::with_capacity(bench.opts.rounds);
    for index in 0..bench.opts.rounds {
        let part = u64::try_from(b * 100_000 + index).unwrap_or(u64::MAX);
        let mut rng = Rng::fork(bench.opts.seed, part);
        let round = round(bench, index, &mut rng).await?;
        if bench.opts.verbose {
            eprintln!(
                "{} soak round {}: {} repriced, {} orders added, {} run(s) in {:.1} s, RSS {:.1} MiB, {} difference(s), {:.1} s in all",
                bench.kind.as_str(),
                index + 1,
                round.repriced_offers,
                round.added_orders,
                round.runs.runs,
                round.sync_seconds,
                mib(round.rss_kib),
                round.data.mismatches(),
                round.seconds
            );
        }
        rounds.push(round);
    }
    Ok(rounds)
}

/// One round: the data churns, every account and kind is synced, memory read, store compared.
async fn round(bench: &mut Bench<'_>, index: usize, rng: &mut Rng) -> anyhow::Result<SoakRound> {
    let started = Instant::now();
    let runs_before = last_run_id(&bench.store).await?;
    let (repriced_offers, added_orders) = churn(bench, rng);
    let queued = Instant::now();
    bench.queue_all().await?;
    let Some(runs) = bench.wait_until_settled(bench.opts.step_timeout).await? else {
        bail!(
            "{} soak round {}: the runs did not all succeed within {} s: {}",
            bench.kind.as_str(),
            index + 1,
            bench.opts.step_timeout.as_secs(),
            bench.describe_latest().await
        );
    };
    let sync_seconds = secs(queued.elapsed());
    let pid = bench.scheduler_pid.to_string();
    let rss_kib = status_kib(&pid, "VmRSS").context("cannot read the scheduler's VmRSS")?;
    let peak_kib = status_kib(&pid, "VmHWM").context("cannot read the scheduler's VmHWM")?;
    let round_runs: Vec<RunRow> = runs.into_iter().filter(|r| r.id > runs_before).collect();
    let check = truth::compare(&bench.store, bench.sim(), &bench.accounts, &DATA_KINDS).await?;
    Ok(SoakRound {
        index,
        repriced_offers,
        added_orders,
        runs: RunTally::of(&round_runs),
        data: check.total(),
        rss_kib,
        peak_kib,
        sync_seconds,
        seconds: secs(started.elapsed()),
        examples: check.examples,
    })
}

/// Changes every account's data; returns the offers repriced and the orders added.
fn churn(bench: &Bench<'_>, rng: &mut Rng) -> (usize, u32) {
    let (mut repriced, mut added) = (0, 0);
    for account in &bench.accounts {
        let main = bench.account_kind(account) == AccountKind::Main;
        let mut ids: Vec<u32> = bench.sim().offers(account).iter().map(|o| o.id).collect();
        rng.shuffle(&mut ids);
        // As many removed as added on average: the catalog keeps its size.
        let removed = rng.between(0, 20) as usize;
        for id in ids.iter().take(removed) {
            bench.change(account, Mutation::RemoveOffer { id: *id });
        }
        let kept = &ids[removed.min(ids.len())..];
        let share = rng.between(0, 100) as usize;
        for id in kept.iter().take(kept.len() * share / 100) {
            let cents = 1_000 + i64::from(rng.between(0, 900_000));
            let m = Mutation::SetPrice {
                id: *id,
                sale_price: Decimal::new(cents, 2),
            };
            repriced += usize::from(bench.change(account, m));
        }
        if main {
            for id in kept.iter().take(rng.between(0, 20) as usize) {
                let stock = rng.between(0, 40);
                bench.change(account, Mutation::SetStock { id: *id, stock });
            }
        }
        let count = rng.between(0, 20);
        if count > 0 {
            bench.change(account, Mutation::AddOffers { count });
        }
        // A large seller's day of orders over the run: the next runs read the orders of the
        // overlap (EMAG_ORDERS_OVERLAP_HOURS, 24) again, as they do at a seller's.
        let count = rng.between(1, 20);
        let order_type = if main { 3 } else { 2 };
        if bench.change(account, Mutation::AddOrders { count, order_type }) {
            added += count;
        }
        let orders = bench.sim().orders(account);
        for _ in 0..rng.between(0, 20) {
            if let Some(o) = rng.pick(&orders) {
                let status = (o.status + 1) % 6;
                bench.change(account, Mutation::SetOrderStatus { id: o.id, status });
            }
        }
        bench.advance_a_return(account, rng);
    }
    (repriced, added)
}
