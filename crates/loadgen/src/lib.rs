//! An open-loop NTP load generator for benchmarking servers on loopback.
//!
//! It sends NTP client requests (mode 3) to one server at a fixed rate for a fixed time, whatever
//! the server does — open loop, so a slow server sees the same offered load as a fast one — and
//! counts the replies. Each request carries a unique transmit timestamp (a run tag, the socket
//! number and a sequence number), which a reply echoes as its origin timestamp; only replies that
//! match a request sent in this run, once, are counted.
//!
//! ```text
//!   sender thread ──paced batches, round robin──▶ socket 0..n ──▶ server
//!   receiver thread per socket ◀──────────────── socket i ◀──── replies
//! ```
//!
//! The run is bounded in time ([`MAX_DURATION`]) and count ([`MAX_REQUESTS`]), and the target must
//! be a loopback address: this tool is for benchmarks on one machine, never for other hosts.

mod config;
mod generator;
mod report;

pub use config::{
    Config, ConfigError, MAX_DURATION, MAX_RATE, MAX_REQUESTS, MAX_SOCKETS, Parsed, USAGE,
};
pub use generator::run;
pub use report::Report;
