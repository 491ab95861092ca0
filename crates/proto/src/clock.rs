//! The clock a daemon disciplines, as the core sees it.
//!
//! Steering calls return the time at which the change took effect, so the caller can account
//! for the time that passed while the change was being made. Implementations: the kernel clock
//! and a read-only one in the daemon, a virtual clock in the simulator, fakes in tests.

use crate::packet::Leap;
use crate::time::{NtpDuration, NtpTimestamp};

/// A clock that can be read and steered.
pub trait Clock {
    /// Why a steering call failed (for the kernel clock: an OS error such as EPERM).
    type Error: core::fmt::Debug + core::fmt::Display;

    /// The current time.
    fn now(&self) -> NtpTimestamp;

    /// Moves the clock by `by` at once; returns the time after the step.
    fn step(&mut self, by: NtpDuration) -> Result<NtpTimestamp, Self::Error>;

    /// Sets the frequency correction in parts per million (positive: the clock runs faster);
    /// returns when it took effect.
    fn set_frequency(&mut self, ppm: f64) -> Result<NtpTimestamp, Self::Error>;

    /// Publishes the leap warning and error estimates (the kernel passes them to other
    /// programs through adjtimex).
    fn set_status(
        &mut self,
        leap: Leap,
        est_error: NtpDuration,
        max_error: NtpDuration,
    ) -> Result<(), Self::Error>;
}
