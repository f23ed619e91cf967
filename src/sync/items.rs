//! One item of an eMAG answer decoded exactly as the engine decodes it, for harnesses that feed
//! the decoders without a server or a store (emag-fuzz): the row an offer, order or return
//! becomes, or why it is odd (what the engine quarantines). Nothing here is used by a run.

use domain::OrderType;
use storage::{OfferRow, OrderRow, ReturnRow};

pub use super::quarantine::Odd;

/// The row of offer `raw`, or why it cannot be read.
pub fn offer_row(raw: &str) -> Result<OfferRow, Odd> {
    super::offers::to_row(raw, content_hash(raw)).map(|(_, row)| row)
}

/// The row of order `raw` read by a request for orders of type `asked`.
pub fn order_row(raw: &str, asked: OrderType) -> Result<OrderRow, Odd> {
    super::orders::to_row(raw, asked)
}

/// The row of return `raw` read by a request for returns of type `asked`.
pub fn return_row(raw: &str, asked: OrderType) -> Result<ReturnRow, Odd> {
    super::returns::to_row(raw, asked)
}

/// The content hash the engine keeps beside each row (an unchanged item costs no write).
pub fn content_hash(raw: &str) -> i64 {
    super::content_hash(raw)
}
