//! sundial's NTP core. It performs no I/O: it never reads a clock, opens a socket or draws
//! ambient randomness. Time, received bytes and random numbers come in as arguments; replies,
//! clock commands and timer requests go out as return values. That keeps every protocol
//! decision deterministic and testable in virtual time (see `sundial-sim`).
//!
//! ```text
//!   serving:
//!   socket ──bytes + kernel RX timestamp──▶ server::Server::handle ──reply bytes──▶ socket
//!                                              ▲
//!                          system::SystemState │ (published by the main loop)
//!
//!   upstream, one way:
//!   socket ──reply + T4──▶ system::System::handle_response ─▶ source::Source (checks, filter)
//!        ─▶ select ─▶ discipline ─▶ clock::Clock (the driver's) ─▶ served_state, poll_event
//! ```
//!
//! A daemon's serving loop, in outline:
//!
//! ```no_run
//! use sundial_proto::server::{Action, Policy, RequestMeta, Server};
//! use sundial_proto::system::SystemState;
//! # fn recv() -> (Vec<u8>, RequestMeta) { unimplemented!() }
//! # fn send(_: &[u8]) {}
//! # fn clock_now() -> sundial_proto::time::NtpTimestamp { unimplemented!() }
//! let server = Server::new();
//! let access = Default::default(); // the restrict table
//! let policy = Policy::new(&access); // and no symmetric keys

//! let state = SystemState::unsynchronized(sundial_proto::time::Log2Seconds::new(-20));
//! let mut out = [0u8; 1024];
//! loop {
//!     let (request, meta) = recv();
//!     match server.handle(&policy, &meta, &request, &state, &mut out, clock_now) {
//!         Action::Reply(len) => send(&out[..len]),
//!         Action::Drop(_reason) => {} // counted in server.counters()
//!     }
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::indexing_slicing)]

pub mod access;
pub mod auth;
pub mod clock;
pub mod control;
pub mod counters;
pub mod discipline;
pub mod fallback;
pub mod filter;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod nts;
pub mod onwire;
pub mod packet;
pub mod pool;
#[cfg(test)]
mod property;
pub mod ratelimit;
pub mod refclock;
pub mod select;
pub mod server;
pub mod siphash;
pub mod source;
pub mod sync;
pub mod system;
pub mod time;
