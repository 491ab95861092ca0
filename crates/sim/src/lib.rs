//! A deterministic simulator for sundial's core: virtual clocks and a virtual network drive
//! the real `sundial-proto` code — associations, selection, the clock discipline and the
//! server — in simulated time, so accuracy can be measured against a truth only the simulator
//! knows, hours of it in milliseconds of real time.
//!
//! Everything is seeded: the same scenario and seed give the same run, bit for bit.
//!
//! ```
//! use sundial_sim::scenario;
//!
//! let report = sundial_sim::run(&scenario::iburst(1));
//! assert!(report.sync_s.is_some_and(|t| t <= 6.0));
//! ```
//!
//! The model, in brief (docs/algorithm.md §9 has the numbers and their reasons):
//! * [`clock::VirtualClock`]: a quartz oscillator — an initial frequency error, a random walk
//!   of the frequency (1e-9 per √s) and white frequency noise (Allan deviation 3e-9 at 1 s),
//!   read to the nanosecond — steered through the core's `Clock` trait;
//! * [`network::Link`]: per direction a base delay plus exponential queueing, loss, outages;
//! * servers: the real `sundial_proto::server::Server`, with a perfect clock or one a fixed
//!   offset away (a falseticker), optionally with a noisy clock, switched off at some time,
//!   rate-limited with RATE kisses (the real limiter), or impersonated by a spoofer;
//! * the client: the real `Source`, `select` and `Discipline`, driven as the daemon drives them
//!   ([`world`]), with `prefer`/`noselect`/`true`, `tos` settings and an optional `pool` whose
//!   membership follows the core's `pool` rules;
//! * optionally a client of the client ([`downstream`]): a second sundial on its own clock,
//!   served by the real `Server` with what the client under test serves, scored by its true
//!   offset;
//! * [`run_with_timeline`] also returns every selection round's tallies and every request and
//!   reply per server ([`trace::Timeline`]), for tests of selection.

pub mod clock;
pub mod downstream;
pub mod network;
pub mod rng;
pub mod scenario;
pub mod trace;
pub mod world;

pub use rng::SimRng;
pub use world::{run, run_with_timeline};
