//! The harnesses of emag-bench that the integration tests run too (reduced kill, chaos and
//! fleet runs are part of the suite), and the rules the benchmarks share: one place each for
//! the seeded choices, the benchmarks' own PostgreSQL databases, reading run rows and child
//! output, what the simulator's journal says about a sync, and the store against the
//! simulator's truth.

pub mod chaos;
pub mod fleet;
pub mod journal;
pub mod kill;
pub mod pg;
pub mod proc;
pub mod rng;
pub mod runs;
pub mod truth;
mod verdict;
