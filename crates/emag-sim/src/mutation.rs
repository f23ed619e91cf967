//! Changes a test or the demo makes to the simulated marketplace "behind the client's back"
//! (a price changed in the seller UI, a new order arrived, time passed), and what they did.
//!
//! These travel as JSON through `POST /__admin/mutate`, so they are tagged by `op`.

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::wire;

/// One change to an account's data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    /// Sets an offer's sale price; the min/max range widens to keep the offer valid.
    SetPrice {
        id: u32,
        #[serde(with = "wire::lenient")]
        sale_price: Decimal,
    },
    /// Sets the stock of the offer's first warehouse (and `general_stock`, `estimated_stock`).
    SetStock { id: u32, stock: u32 },
    /// Sets an offer's status (0 inactive, 1 active, 2 end of life).
    SetStatus { id: u32, status: u8 },
    /// Deletes an offer, as if the seller removed it.
    RemoveOffer { id: u32 },
    /// Adds `count` generated offers with ids above the current maximum.
    AddOffers { count: u32 },
    /// Moves an order to `status`, bumping `modified` to the simulator clock.
    SetOrderStatus { id: u64, status: u8 },
    /// Adds `count` new orders (status 1) of `order_type` (2 or 3), dated at the clock.
    AddOrders { count: u32, order_type: u8 },
    /// Moves a return request to `status` (1..=7), as eMAG does while it is handled.
    SetReturnStatus { emag_id: u64, status: u8 },
    /// Moves the simulator clock forward.
    AdvanceClock { minutes: u32 },
}

/// What a mutation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MutationOutcome {
    OfferUpdated {
        id: u32,
    },
    OfferRemoved {
        id: u32,
    },
    OffersAdded {
        ids: Vec<u32>,
    },
    OrderUpdated {
        id: u64,
        #[serde(with = "wire::datetime")]
        modified: NaiveDateTime,
    },
    OrdersAdded {
        ids: Vec<u64>,
    },
    ReturnUpdated {
        emag_id: u64,
    },
    ClockAdvanced {
        #[serde(with = "wire::datetime")]
        now: NaiveDateTime,
    },
}

/// Why a mutation (or another direct call into the simulator) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    #[error("offer {0} does not exist")]
    UnknownOffer(u32),
    #[error("order {0} does not exist")]
    UnknownOrder(u64),
    #[error("return {0} does not exist")]
    UnknownReturn(u64),
    #[error("invalid mutation: {0}")]
    Invalid(String),
}
