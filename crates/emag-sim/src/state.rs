//! The in-memory marketplace: one `AccountData` per seller login behind its own lock, plus
//! the shared clock, limiter, fault plan and journal. All reads and writes of offers and
//! orders go through the methods here, so the HTTP layer and the admin mutations share one
//! set of rules (sorted ids, `modified` never moving backwards, FBE stock owned by eMAG).

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::NaiveDateTime;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use tokio::sync::watch;

use crate::catalog;
use crate::clock::SimClock;
use crate::config::{AccountKind, AccountSpec, SimConfig};
use crate::data::{self, OfferRecord, OrderContext, Salts, Stream, MAX_OFFER_ID, MAX_ORDER_ID};
use crate::faults::FaultState;
use crate::journal::Journal;
use crate::model::{Category, Offer, Order, Rma, StockEntry};
use crate::mutation::{Mutation, MutationOutcome, SimError};
use crate::query::{OfferFilter, Page};
use crate::ratelimit::RateLimiter;

/// Everything one account holds.
#[derive(Debug)]
pub(crate) struct AccountData {
    pub(crate) salts: Salts,
    /// Sorted by id; a page without filters is a slice.
    pub(crate) offers: Vec<OfferRecord>,
    /// Sorted by id.
    pub(crate) orders: Vec<Order>,
    pub(crate) returns: Vec<Rma>,
    /// Stream for data created after start-up (AddOffers, AddOrders).
    rng: ChaCha8Rng,
    next_line_id: u64,
}

/// One seller login and its data.
#[derive(Debug)]
pub(crate) struct AccountState {
    pub(crate) spec: AccountSpec,
    pub(crate) index: usize,
    data: RwLock<AccountData>,
}

impl AccountState {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, AccountData> {
        self.data
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, AccountData> {
        self.data
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    pub(crate) fn kind(&self) -> AccountKind {
        self.spec.kind
    }
}

/// The whole simulator state behind the `Simulator` handle.
#[derive(Debug)]
pub(crate) struct SimState {
    pub(crate) config: SimConfig,
    pub(crate) accounts: Vec<AccountState>,
    pub(crate) categories: Vec<Category>,
    pub(crate) clock: SimClock,
    pub(crate) limiter: RateLimiter,
    pub(crate) faults: FaultState,
    pub(crate) journal: Journal,
    /// Flipped on graceful shutdown so hanging requests stop hanging.
    pub(crate) shutdown: watch::Sender<bool>,
}

fn generate_account(config: &SimConfig, index: usize, spec: &AccountSpec) -> AccountData {
    let name = spec.name.as_str();
    let salts = Salts::generate(config.seed, name);
    let mut offer_rng = data::account_rng(config.seed, name, Stream::Offers);
    let offers = data::generate_offers(&mut offer_rng, 1, config.offers_per_account);
    let mut order_rng = data::account_rng(config.seed, name, Stream::Orders);
    let ctx = OrderContext {
        kind: spec.kind,
        offers: &offers,
        salts: &salts,
    };
    let orders = data::generate_orders(
        &mut order_rng,
        &ctx,
        index,
        config.orders_per_account,
        config.epoch,
    );
    let mut return_rng = data::account_rng(config.seed, name, Stream::Returns);
    let returns = data::generate_returns(&mut return_rng, &orders, config.epoch);
    let next_line_id = orders
        .iter()
        .flat_map(|o| o.products.iter().map(|l| l.id))
        .max()
        .map_or_else(|| data::first_line_id(index), |m| m + 1);
    AccountData {
        salts,
        offers,
        orders,
        returns,
        rng: data::account_rng(config.seed, name, Stream::Mutations),
        next_line_id,
    }
}

impl SimState {
    pub(crate) fn new(config: SimConfig) -> Self {
        // Accounts are independent, so large ones are generated in parallel.
        let generated: Vec<AccountData> = std::thread::scope(|scope| {
            let handles: Vec<_> = config
                .accounts
                .iter()
                .enumerate()
                .map(|(index, spec)| {
                    let config = &config;
                    scope.spawn(move || generate_account(config, index, spec))
                })
                .collect();
            handles
                .into_iter()
                .zip(config.accounts.iter().enumerate())
                .map(|(handle, (index, spec))| {
                    handle
                        .join()
                        .unwrap_or_else(|_| generate_account(&config, index, spec))
                })
                .collect()
        });
        let accounts = config
            .accounts
            .iter()
            .cloned()
            .zip(generated)
            .enumerate()
            .map(|(index, (spec, data))| AccountState {
                spec,
                index,
                data: RwLock::new(data),
            })
            .collect();
        let (shutdown, _) = watch::channel(false);
        Self {
            categories: catalog::categories(),
            clock: SimClock::new(config.epoch),
            limiter: RateLimiter::default(),
            faults: FaultState::new(config.faults.clone(), config.seed),
            journal: Journal::default(),
            shutdown,
            accounts,
            config,
        }
    }

    pub(crate) fn account(&self, name: &str) -> Result<&AccountState, SimError> {
        self.accounts
            .iter()
            .find(|a| a.spec.name == name)
            .ok_or_else(|| SimError::UnknownAccount(name.to_owned()))
    }

    pub(crate) fn account_by_username(&self, username: &str) -> Option<&AccountState> {
        self.accounts.iter().find(|a| a.spec.username == username)
    }

    pub(crate) fn mutate(
        &self,
        account: &str,
        mutation: Mutation,
    ) -> Result<MutationOutcome, SimError> {
        let account = self.account(account)?;
        if let Mutation::AdvanceClock { minutes } = mutation {
            let now = self
                .clock
                .advance(chrono::Duration::minutes(i64::from(minutes)));
            return Ok(MutationOutcome::ClockAdvanced { now });
        }
        let now = self.clock.now();
        let mut data = account.write();
        data.apply(account, mutation, now)
    }
}

/// Keeps an offer's derived fields coherent after its stock changed.
pub(crate) fn set_offer_stock(offer: &mut Offer, stock: u32) {
    let reserved = offer.general_stock.saturating_sub(offer.estimated_stock);
    match offer.stock.first_mut() {
        Some(first) => first.value = stock,
        None => offer.stock.push(StockEntry {
            warehouse_id: 1,
            value: stock,
        }),
    }
    offer.general_stock = offer.stock.iter().map(|s| s.value).sum();
    offer.estimated_stock = offer.general_stock.saturating_sub(reserved);
}

impl AccountData {
    fn position(&self, id: u32) -> Result<usize, usize> {
        self.offers.binary_search_by_key(&id, OfferRecord::id)
    }

    pub(crate) fn offer(&self, id: u32) -> Option<Offer> {
        self.position(id)
            .ok()
            .map(|i| self.offers[i].materialize(&self.salts))
    }

    /// The offer as an editable full record (a generated one is materialized once).
    pub(crate) fn offer_mut(&mut self, id: u32) -> Option<&mut Offer> {
        let index = self.position(id).ok()?;
        if let OfferRecord::Generated { .. } = self.offers[index] {
            let full = self.offers[index].materialize(&self.salts);
            self.offers[index] = OfferRecord::Stored(Box::new(full));
        }
        match &mut self.offers[index] {
            OfferRecord::Stored(offer) => Some(offer),
            OfferRecord::Generated { .. } => None,
        }
    }

    /// Inserts a brand-new offer at its sorted place.
    pub(crate) fn insert_offer(&mut self, offer: Offer) {
        match self.position(offer.id) {
            Ok(i) => self.offers[i] = OfferRecord::Stored(Box::new(offer)),
            Err(i) => self.offers.insert(i, OfferRecord::Stored(Box::new(offer))),
        }
    }

    fn offer_matches(&self, record: &OfferRecord, filter: &OfferFilter) -> bool {
        filter
            .status
            .as_ref()
            .is_none_or(|s| s.contains(&record.status()))
            && filter
                .general_stock
                .is_none_or(|max| record.general_stock() <= max)
            && filter
                .estimated_stock
                .is_none_or(|max| record.estimated_stock() <= max)
            && filter
                .offer_validation_status
                .is_none_or(|v| record.offer_validation() == v)
            && filter
                .part_number
                .as_ref()
                .is_none_or(|p| record.part_number() == *p)
            && filter
                .part_number_key
                .as_ref()
                .is_none_or(|p| record.part_number_key(&self.salts) == *p)
    }

    /// Records matching `filter`, in id order, lazily.
    fn matching_offers<'a>(
        &'a self,
        filter: &'a OfferFilter,
    ) -> Box<dyn Iterator<Item = &'a OfferRecord> + 'a> {
        match &filter.ids {
            Some(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                Box::new(
                    ids.into_iter()
                        .filter_map(move |id| self.position(id).ok().map(|i| &self.offers[i]))
                        .filter(move |r| self.offer_matches(r, filter)),
                )
            }
            None => Box::new(
                self.offers
                    .iter()
                    .filter(move |r| self.offer_matches(r, filter)),
            ),
        }
    }

    /// One page of offers in wire form.
    pub(crate) fn offer_page(&self, filter: &OfferFilter, page: Page) -> Vec<Offer> {
        if filter.is_empty() {
            return page
                .slice(&self.offers)
                .iter()
                .map(|r| r.materialize(&self.salts))
                .collect();
        }
        self.matching_offers(filter)
            .skip(page.offset())
            .take(page.items as usize)
            .map(|r| r.materialize(&self.salts))
            .collect()
    }

    pub(crate) fn offer_count(&self, filter: &OfferFilter) -> usize {
        if filter.is_empty() {
            self.offers.len()
        } else {
            self.matching_offers(filter).count()
        }
    }

    fn order_index(&self, id: u64) -> Option<usize> {
        self.orders.binary_search_by_key(&id, |o| o.id).ok()
    }

    /// Sets an order's status and bumps `modified` to `now`, never backwards.
    pub(crate) fn set_order_status(
        &mut self,
        id: u64,
        status: u8,
        now: NaiveDateTime,
    ) -> Result<NaiveDateTime, SimError> {
        let index = self.order_index(id).ok_or(SimError::UnknownOrder(id))?;
        let order = &mut self.orders[index];
        let modified = now.max(order.modified);
        order.status = status;
        order.modified = modified;
        if status == 0 {
            for line in &mut order.products {
                line.status = 0;
                line.modified = modified;
            }
        }
        Ok(modified)
    }

    pub(crate) fn order(&self, id: u64) -> Option<&Order> {
        self.order_index(id).map(|i| &self.orders[i])
    }

    fn apply(
        &mut self,
        account: &AccountState,
        mutation: Mutation,
        now: NaiveDateTime,
    ) -> Result<MutationOutcome, SimError> {
        match mutation {
            Mutation::SetPrice { id, sale_price } => {
                if sale_price <= Decimal::ZERO {
                    return Err(SimError::Invalid("sale_price must be positive".into()));
                }
                let offer = self.offer_mut(id).ok_or(SimError::UnknownOffer(id))?;
                offer.sale_price = sale_price.round_dp(4);
                offer.min_sale_price = offer.min_sale_price.min(offer.sale_price);
                offer.max_sale_price = offer.max_sale_price.max(offer.sale_price);
                if offer
                    .recommended_price
                    .is_some_and(|r| r <= offer.sale_price)
                {
                    offer.recommended_price = None;
                }
                if offer.buy_button_rank <= 1 {
                    offer.best_offer_sale_price = offer.sale_price;
                }
                Ok(MutationOutcome::OfferUpdated { id })
            }
            Mutation::SetStock { id, stock } => {
                let offer = self.offer_mut(id).ok_or(SimError::UnknownOffer(id))?;
                set_offer_stock(offer, stock);
                Ok(MutationOutcome::OfferUpdated { id })
            }
            Mutation::SetStatus { id, status } => {
                if status > 2 {
                    return Err(SimError::Invalid(format!(
                        "offer status {status} is not 0, 1 or 2"
                    )));
                }
                let offer = self.offer_mut(id).ok_or(SimError::UnknownOffer(id))?;
                offer.status = status;
                Ok(MutationOutcome::OfferUpdated { id })
            }
            Mutation::RemoveOffer { id } => {
                let index = self.position(id).map_err(|_| SimError::UnknownOffer(id))?;
                self.offers.remove(index);
                Ok(MutationOutcome::OfferRemoved { id })
            }
            Mutation::AddOffers { count } => {
                let first = self.offers.last().map_or(1, |r| r.id() + 1);
                if u64::from(first) + u64::from(count) > u64::from(MAX_OFFER_ID) + 1 {
                    return Err(SimError::Invalid(format!(
                        "offer ids would exceed {MAX_OFFER_ID}"
                    )));
                }
                let added = data::generate_offers(&mut self.rng, first, count);
                let ids = added.iter().map(OfferRecord::id).collect();
                self.offers.extend(added);
                Ok(MutationOutcome::OffersAdded { ids })
            }
            Mutation::SetOrderStatus { id, status } => {
                if status > 5 {
                    return Err(SimError::Invalid(format!(
                        "order status {status} is not in 0..=5"
                    )));
                }
                let modified = self.set_order_status(id, status, now)?;
                Ok(MutationOutcome::OrderUpdated { id, modified })
            }
            Mutation::AddOrders { count, order_type } => {
                if !matches!(order_type, 2 | 3) {
                    return Err(SimError::Invalid(format!(
                        "order type {order_type} is not 2 or 3"
                    )));
                }
                let first_id = self.orders.last().map_or(
                    3_000_000_000 + (account.index as u64 % 30) * 40_000_000,
                    |o| o.id + 1,
                );
                if first_id + u64::from(count) > MAX_ORDER_ID {
                    return Err(SimError::Invalid(format!(
                        "order ids would exceed {MAX_ORDER_ID}"
                    )));
                }
                let mut ids = Vec::with_capacity(count as usize);
                for next_id in first_id..first_id + u64::from(count) {
                    let ctx = OrderContext {
                        kind: account.kind(),
                        offers: &self.offers,
                        salts: &self.salts,
                    };
                    let order = data::build_order(
                        &mut self.rng,
                        &ctx,
                        next_id,
                        self.next_line_id,
                        order_type,
                        1,
                        now,
                        now,
                    );
                    self.next_line_id += order.products.len() as u64 + 1;
                    ids.push(order.id);
                    self.orders.push(order);
                }
                Ok(MutationOutcome::OrdersAdded { ids })
            }
            Mutation::AdvanceClock { .. } => Err(SimError::Invalid(
                "the clock is shared, not per account".into(),
            )),
        }
    }
}
