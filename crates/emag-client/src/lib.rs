//! Typed client of the eMAG Marketplace API (`POST {base}/{resource}/{action}`, Basic auth,
//! bodies form-encoded or JSON with or without `data`, as [`domain::ApiEncoding`] says).
//!
//! One client per credential pair: the rate budget, the counters and the credentials belong
//! to it, and nothing about an account travels through globals or the process environment.
//! Errors are classified where they are born ([`EmagError::class`]); retryable ones are
//! retried here with capped exponential backoff and jitter, and a 429 is waited out, never
//! turned into a failure by itself.

mod client;
mod decode;
mod envelope;
mod error;
mod money;
mod ratelimit;

pub use client::{
    ClientConfig, ClientStats, Credentials, EmagClient, Page, PageLoop, RequestCount, ResponseCode,
    RouteClass, DEFAULT_MAX_BODY, PAGES_WITHOUT_COUNT,
};
pub use decode::{decode_json, json_error_without_values, DecodeError, Object};
// Answer decoding without a server, for harnesses that feed it bytes (emag-fuzz).
pub use envelope::{
    decode as decode_answer, decode_items, results_as_count, results_as_items, Count, Envelope,
};
pub use error::EmagError;
pub use money::{Money, MoneyParseError};
pub use ratelimit::RateBudget;

/// The raw JSON of one result item, kept exactly as eMAG sent it.
pub type RawItem = Box<serde_json::value::RawValue>;
