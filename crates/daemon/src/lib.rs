//! sundial's daemon shell and command-line tools: configuration, the event loop, sockets and
//! clock backends around the sans-IO core in `sundial-proto`.
//!
//! Data flows one way: socket → core → socket/clock. The main loop (`ntpd`) owns timers,
//! signals and the published [`publish::Snapshot`]; server threads (`serve`) read that snapshot
//! without locks and answer requests through `sundial_proto::server::Server`.

pub mod associations;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemonize;
pub mod driftfile;
pub mod instance;
pub mod interfaces;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod ntpd;
pub mod ntpdate;
pub mod ntpq;
pub mod nts;
/// The property-test rules of `sundial_proto` (a fixed number of inputs, a count of the inputs
/// really checked), shared as source because they are test-only in both crates.
#[cfg(test)]
#[path = "../../proto/src/property.rs"]
mod property;
pub mod publish;
pub mod random;
pub mod refclock;
pub mod reload;
pub mod resolver;
pub mod safefile;
pub mod serve;
pub mod setup;
pub mod stats;
pub mod timekeeper;
