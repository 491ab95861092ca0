//! Reference clocks without I/O: what a GPS receiver (through gpsd's shared-memory segment or
//! its SOCK datagrams) or a pulse-per-second signal tells the system process.
//!
//! A reference clock gives *readings*: at local time `receive` the clock said `reference`.
//! Readings come about once a second; they are collected by a [`MedianFilter`] and once per
//! poll interval the filter's result enters the reference clock's
//! [`Source`](crate::source::Source) (`System::handle_refclock`), from where it goes through the
//! same clock filter, selection and discipline as a network server's samples. A reference clock
//! is never trusted blindly: one that stops, jumps or disagrees with the network sources is
//! outvoted by selection like any falseticker.
//!
//! * [`filter`]: the median filter suited to 1 Hz readings;
//! * [`shm`]: checking a record read from the NTP shared-memory segment (ntpd driver 28);
//! * [`sock`]: the datagrams of the SOCK protocol (chrony's, which gpsd speaks);
//! * [`pps`]: pairing pulse-per-second edges with the second another source numbers.

pub mod filter;
pub mod pps;
pub mod shm;
pub mod sock;

pub use filter::{FilteredSample, MedianFilter};

use crate::packet::Leap;
use crate::time::{NtpDuration, NtpTimestamp};

/// One reading of a reference clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// What the reference clock said the time was.
    pub reference: NtpTimestamp,
    /// The local (disciplined) clock's time when it said so.
    pub receive: NtpTimestamp,
    /// The leap warning the clock announces (`Unsynchronized` if it has no fix).
    pub leap: Leap,
}

impl Reading {
    /// Reference minus local clock, seconds: how far the local clock is behind.
    pub fn offset(&self) -> f64 {
        (self.reference - self.receive).to_seconds_f64()
    }

    /// The reading with `correction` added to the reference time (`fudge time1`).
    #[must_use]
    pub fn corrected(self, correction: NtpDuration) -> Self {
        Self {
            reference: self.reference + correction,
            ..self
        }
    }
}
