//! Integration tests of emag-sync: the real simulator over real HTTP, real SQLite files and
//! real PostgreSQL databases (one per test), and the real binary where a process matters.

mod alert_daemon;
mod alert_scenarios;
mod alerts;
mod api;
mod bad_input;
mod canary;
mod chaos;
mod cli;
mod daemon;
mod faults;
mod fleet;
mod kill;
mod monitor;
mod nul_text;
mod offers;
mod open;
mod orders;
mod page;
mod protocol;
mod quarantine;
mod removals;
mod returns;
mod scheduler;
mod support;
mod takeover;
mod web;
mod webhook;
