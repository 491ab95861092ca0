//! The state a server publishes about its own clock: what goes into every reply.
//!
//! [`super::System`] computes it after every selection round; the daemon's main loop
//! republishes it, and server workers read the latest published value without locks.

use crate::packet::{Leap, ReferenceId};
use crate::time::{Log2Seconds, NtpDuration, NtpTimestamp};

/// Frequency tolerance PHI of RFC 5905 §7.2: dispersion grows 15 µs per second.
pub const PHI_PPM: f64 = 15.0;

/// Stratum that means "unsynchronised" internally (MAXSTRAT); sent as 0 on the wire.
pub const MAX_STRATUM: u8 = 16;

/// The system variables of RFC 5905 §11.2.3 that a server copies into its replies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemState {
    /// Leap indicator; [`Leap::Unsynchronized`] until the first synchronisation.
    pub leap: Leap,
    /// Stratum, 1..=16; 16 is unsynchronised.
    pub stratum: u8,
    /// Precision of the local clock, log2 seconds (measured at start-up).
    pub precision: Log2Seconds,
    /// Total round-trip delay to the primary reference.
    pub root_delay: NtpDuration,
    /// Total dispersion to the primary reference at `reference_time`.
    pub root_dispersion: NtpDuration,
    /// Reference identifier.
    pub reference_id: ReferenceId,
    /// When the system clock was last set or corrected.
    pub reference_time: NtpTimestamp,
}

impl SystemState {
    /// The state of a server that has never synchronised: LI=3, stratum 16 (0 on the wire),
    /// refid `INIT`.
    pub const fn unsynchronized(precision: Log2Seconds) -> Self {
        Self {
            leap: Leap::Unsynchronized,
            stratum: MAX_STRATUM,
            precision,
            root_delay: NtpDuration::ZERO,
            root_dispersion: NtpDuration::ZERO,
            reference_id: ReferenceId::INIT,
            reference_time: NtpTimestamp::ZERO,
        }
    }

    /// Whether the server claims synchronisation.
    pub fn is_synchronized(&self) -> bool {
        self.leap != Leap::Unsynchronized && self.stratum < MAX_STRATUM
    }

    /// The stratum as it goes on the wire: 16 (unsynchronised) is sent as 0 (RFC 5905 §7.3).
    pub fn wire_stratum(&self) -> u8 {
        if self.stratum >= MAX_STRATUM {
            0
        } else {
            self.stratum
        }
    }

    /// Root dispersion as of `now`: the value at the last update grown by PHI per second since
    /// (RFC 5905 §14), so a client never trusts a stale server more than it should.
    pub fn root_dispersion_at(&self, now: NtpTimestamp) -> NtpDuration {
        if !self.is_synchronized() || self.reference_time.is_zero() {
            return self.root_dispersion;
        }
        let age = (now - self.reference_time).to_seconds_f64().max(0.0);
        self.root_dispersion + NtpDuration::from_seconds_f64(age * PHI_PPM * 1e-6)
    }
}
