//! The system process (RFC 5905 §11, ntpd's `clock_select` and `clock_update`): what happens
//! between a reply that a [`Source`](crate::source::Source) accepted and a command to the clock
//! or an answer to a client.
//!
//! [`System`] owns every association's [`Source`](crate::source::Source) together with its
//! system-level state (its `prefer`/`noselect`/`true` options, its tally, the last sample the
//! discipline took from it), selection, the start-up gate, the
//! [`Discipline`](crate::discipline::Discipline) (or, when no clock is steered, RFC 5905's poll
//! adaptation) and the fallback. A reply goes one way through it:
//!
//! ```text
//!  handle_response ─▶ Source (on-wire checks, filter) ─▶ start-up gate ─▶ select
//!        ─▶ each survivor's new samples, oldest first ─▶ Discipline ─▶ Clock (driver's)
//!              └─ phase / filter reset / poll, bursts, early polls ─▶ every Source
//!        ─▶ served_state(): system peer one stratum down, fallback, or unsynchronised
//!        ─▶ poll_event(): what happened, as typed values for the driver to log or act on
//! ```
//!
//! It performs no I/O. The driver — the daemon's main loop, or the simulator's event loop —
//! sends the requests `poll_transmit` writes, passes every datagram to `handle_response`,
//! wakes it at `poll_timeout` (a monotonic time) and `clock_timeout` (a time of the
//! disciplined clock), and publishes `served_state`. The clock comes in as an argument: the
//! discipline needs the instant each command took effect (the [`Clock`](crate::clock::Clock)
//! trait returns it), which a command queued for later could not give.
//!
//! Call order, in every turn of the driver's loop:
//! 1. `poll_transmit` for each source (with `poll_timeout` due), `handle_sent` after the send;
//! 2. `handle_response` for each datagram that arrived;
//! 3. `handle_timeout` once the clock has reached `clock_timeout`;
//! 4. `refresh` now and then (the daemon: once a second), so that sources that fell silent
//!    leave selection and the served root dispersion and the fallback follow time;
//! 5. drain `poll_event`, then publish `served_state`.

mod event;
mod process;
mod round;
mod served;
#[cfg(test)]
mod tests;

pub use event::{Event, Serving, SourceId};
pub use process::{LOCAL_CLOCK_GRACE, SourceSpec, SourceView, System, SystemParams, SystemReadout};
pub use served::{MAX_STRATUM, PHI_PPM, SystemState};
