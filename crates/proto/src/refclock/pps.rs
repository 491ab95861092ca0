//! Pulse per second: a pulse marks the start of every second with microsecond (or better)
//! accuracy but says nothing about *which* second it is. The classic pairing rule: another
//! source — the GPS whose serial time codes come with the pulse, marked `prefer` — numbers the
//! second, and the pulse gives its fraction. The pulse is used only while that source is the
//! system peer and its offset is within [`MAX_NUMBERING_OFFSET`]: further off, the second the
//! pulse belongs to could be numbered wrongly, which would put the clock off by whole seconds.

use super::Reading;
use crate::packet::Leap;
use crate::time::{NtpDuration, NtpTimestamp};

/// The largest offset of the numbering source at which a pulse is used, seconds.
pub const MAX_NUMBERING_OFFSET: f64 = 0.4;

/// Why a pulse was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PpsReject {
    /// No source numbers the seconds: no `prefer` source is the system peer.
    NoNumbering,
    /// The numbering source is more than [`MAX_NUMBERING_OFFSET`] off.
    NumberingTooFar,
}

/// The reading a pulse gives. `edge` is the local clock's time of the pulse (already moved by
/// `fudge time1`, the cable and receiver delay); `numbering` is the offset of the source that
/// numbers the seconds (reference minus local clock, seconds) if one is the system peer.
pub fn pair(edge: NtpTimestamp, numbering: Option<f64>) -> Result<Reading, PpsReject> {
    let numbering = numbering.ok_or(PpsReject::NoNumbering)?;
    if !numbering.is_finite() || numbering.abs() > MAX_NUMBERING_OFFSET {
        return Err(PpsReject::NumberingTooFar);
    }
    // The true time of the edge as the numbering source sees it, rounded to its second.
    let seen = edge + NtpDuration::from_seconds_f64(numbering);
    let second = if seen.fraction() >= 1 << 31 {
        seen.seconds().wrapping_add(1)
    } else {
        seen.seconds()
    };
    Ok(Reading {
        reference: NtpTimestamp::from_parts(second, 0),
        receive: edge,
        leap: Leap::NoWarning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u32, frac: f64) -> NtpTimestamp {
        NtpTimestamp::from_parts(secs, 0) + NtpDuration::from_seconds_f64(frac)
    }

    #[test]
    fn the_pulse_gives_the_fraction_and_the_numbering_source_the_second() {
        // The local clock is 3 ms fast: the pulse at true second 100 arrives at local 100.003.
        // The serial GPS is 0.35 s late, so it says the clock is 0.347 s behind.
        let r = pair(at(100, 0.003), Some(-0.347)).unwrap();
        assert_eq!(r.reference, at(100, 0.0));
        assert!((r.offset() + 0.003).abs() < 1e-9);
        // A clock 3 ms slow: the pulse comes at local 99.997, still second 100.
        let r = pair(at(99, 0.997), Some(0.2)).unwrap();
        assert_eq!(r.reference, at(100, 0.0));
        assert!((r.offset() - 0.003).abs() < 1e-9);
    }

    #[test]
    fn no_pulse_without_a_close_enough_numbering_source() {
        assert_eq!(pair(at(100, 0.0), None), Err(PpsReject::NoNumbering));
        assert_eq!(
            pair(at(100, 0.0), Some(0.41)),
            Err(PpsReject::NumberingTooFar)
        );
        assert_eq!(
            pair(at(100, 0.0), Some(-0.5)),
            Err(PpsReject::NumberingTooFar)
        );
        assert_eq!(
            pair(at(100, 0.0), Some(f64::NAN)),
            Err(PpsReject::NumberingTooFar)
        );
        assert!(pair(at(100, 0.0), Some(0.39)).is_ok());
    }
}
