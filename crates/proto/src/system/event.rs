//! What the system process tells its driver: typed events to log or act on, what it serves,
//! and the names of the sources both speak of.

use std::string::String;

use crate::time::{NtpDuration, Ppm};

/// The driver's name for a source: the daemon uses its association id (what ntpq shows), the
/// simulator a counter. Unique among the sources a `System` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u32);

/// What the server is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// Following this source, the system peer (served as unsynchronised until the discipline
    /// has the clock in hand).
    Peer(SourceId),
    /// The local clock driver or orphan mode stands in for upstream sources.
    Fallback,
    /// Nothing to serve: unsynchronised.
    Unsynchronized,
}

/// Something the system process did that its driver may log or must act on, in the order it
/// happened (`System::poll_event`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A selection round ran with the start-up gate open: every source's tally and selection
    /// input (`System::sources`) and the system peer are new.
    Selected,
    /// This source accepted a new sample into its clock filter (before the selection round
    /// it starts); the daemon's `peerstats` line comes from it.
    Sampled(SourceId),
    /// This source's newest sample went to the discipline.
    Fed(SourceId),
    /// The discipline corrected the clock: a new frequency and a phase slew.
    Slewed {
        /// The offset being slewed out.
        offset: NtpDuration,
    },
    /// The clock was stepped; every source's filter was reset and the start-up gate applies
    /// again.
    Stepped {
        /// The step (positive: forward).
        offset: NtpDuration,
    },
    /// An offset beyond the step threshold that has not persisted for the stepout yet: the
    /// sample was set aside.
    Spike {
        /// The measured offset.
        offset: NtpDuration,
    },
    /// The offset exceeds the panic threshold and the panic gate is closed: nothing was done,
    /// and the daemon must exit.
    Panic {
        /// The measured offset.
        offset: NtpDuration,
        /// The panic threshold.
        threshold: NtpDuration,
    },
    /// `-q` set the clock (or started the slew that sets it): report it and exit once
    /// `System::one_shot_finished`.
    OneShot {
        /// The correction.
        offset: NtpDuration,
        /// Whether the clock was stepped.
        stepped: bool,
    },
    /// `-q` with no clock to steer: the offset selection found; the driver reports it and
    /// exits.
    OneShotUnsteered {
        /// θ_sys.
        offset: NtpDuration,
    },
    /// The phase was corrected; the frequency is now measured before anything else is done
    /// (ntpd's FREQ state).
    MeasuringFrequency,
    /// The start-up frequency measurement ended and the whole estimate is being applied.
    FrequencyMeasured {
        /// The frequency correction.
        frequency: Ppm,
        /// The offset being slewed out.
        offset: NtpDuration,
    },
    /// The clock refused a command (no CAP_SYS_TIME, say). With `-q` nothing more is tried.
    ClockFailed {
        /// The clock's error, as text.
        error: String,
    },
    /// What the server serves changed.
    ServingChanged {
        /// Before.
        from: Serving,
        /// Now.
        to: Serving,
    },
}
