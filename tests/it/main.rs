//! Integration tests of emag-sync: the real simulator over real HTTP, real SQLite files and
//! real PostgreSQL databases (one per test), and the real binary where a process matters.

mod api;
mod cli;
mod daemon;
mod faults;
mod monitor;
mod offers;
mod open;
mod orders;
mod page;
mod protocol;
mod removals;
mod scheduler;
mod support;
mod takeover;
mod web;
