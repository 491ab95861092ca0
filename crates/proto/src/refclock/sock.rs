//! The SOCK protocol: one datagram per reading on a Unix datagram socket the time daemon binds
//! and a writer such as gpsd sends to (chrony's `refclock SOCK`; a sundial extension to
//! ntp.conf).
//!
//! A datagram is one native-endian C structure, 40 octets on 64-bit Linux: `struct timeval`
//! (`tv_sec`, `tv_usec`, 8 octets each) — the local clock's time of the reading —, a `double`
//! offset (reference minus local clock, seconds), `int pulse` (1: the reading comes from a
//! pulse-per-second edge and only its fraction of a second means anything), `int leap` (0 none,
//! 1 insert, 2 delete, 3 not synchronised), an `int` of padding and `int magic` = 0x534f434b
//! ("SOCK"). Anything else is rejected.

use super::Reading;
use crate::packet::Leap;
use crate::time::{NtpDuration, NtpTimestamp, UnixTime};

/// Length of a datagram.
pub const SOCK_LEN: usize = 40;

/// The magic number in the last field.
pub const SOCK_MAGIC: i32 = 0x534f_434b;

/// One parsed datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SockSample {
    /// The reading.
    pub reading: Reading,
    /// Whether it came from a pulse-per-second edge (only the fraction of the second counts).
    pub pulse: bool,
}

/// Why a datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockError {
    /// Not [`SOCK_LEN`] octets.
    Length,
    /// The magic number is wrong (another protocol, the other byte order, garbage).
    Magic,
    /// A time or offset out of range (microseconds not below a second, a non-finite offset,
    /// one beyond a day).
    Range,
}

/// The largest offset a datagram may carry, seconds.
const MAX_OFFSET: f64 = 86_400.0;

/// Parses one datagram.
pub fn parse(datagram: &[u8]) -> Result<SockSample, SockError> {
    let bytes: &[u8; SOCK_LEN] = datagram.try_into().map_err(|_| SockError::Length)?;
    let (sec, rest) = bytes.split_at(8);
    let (usec, rest) = rest.split_at(8);
    let (offset, rest) = rest.split_at(8);
    let (pulse, rest) = rest.split_at(4);
    let (leap, rest) = rest.split_at(4);
    let (_pad, magic) = rest.split_at(4);
    let i64_of = |b: &[u8]| b.try_into().map(i64::from_ne_bytes).unwrap_or(-1);
    let i32_of = |b: &[u8]| b.try_into().map(i32::from_ne_bytes).unwrap_or(-1);
    if i32_of(magic) != SOCK_MAGIC {
        return Err(SockError::Magic);
    }
    let (sec, usec) = (i64_of(sec), i64_of(usec));
    let offset = offset
        .try_into()
        .map(f64::from_ne_bytes)
        .unwrap_or(f64::NAN);
    if !(0..=(1i64 << 40)).contains(&sec)
        || !(0..1_000_000).contains(&usec)
        || !offset.is_finite()
        || offset.abs() > MAX_OFFSET
    {
        return Err(SockError::Range);
    }
    let nanos = u32::try_from(usec * 1000).map_err(|_| SockError::Range)?;
    let receive = NtpTimestamp::from_unix(UnixTime::new(sec, nanos));
    let leap = Leap::from_bits(u8::try_from(i32_of(leap) & 3).unwrap_or(3));
    Ok(SockSample {
        reading: Reading {
            reference: receive + NtpDuration::from_seconds_f64(offset),
            receive,
            leap,
        },
        pulse: i32_of(pulse) != 0,
    })
}

/// Writes a datagram (for tests and tools that play the writer).
pub fn emit(sec: i64, usec: i64, offset: f64, pulse: bool, leap: i32) -> [u8; SOCK_LEN] {
    let mut out = [0u8; SOCK_LEN];
    let fields: [&[u8]; 6] = [
        &sec.to_ne_bytes(),
        &usec.to_ne_bytes(),
        &offset.to_ne_bytes(),
        &i32::from(pulse).to_ne_bytes(),
        &leap.to_ne_bytes(),
        &0i32.to_ne_bytes(),
    ];
    let mut at = 0;
    for f in fields
        .iter()
        .copied()
        .chain([SOCK_MAGIC.to_ne_bytes().as_slice()])
    {
        if let Some(slot) = out.get_mut(at..at + f.len()) {
            slot.copy_from_slice(f);
        }
        at += f.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_datagram_round_trips() {
        let d = emit(1_800_000_000, 500_000, -0.000_25, false, 1);
        let s = parse(&d).unwrap();
        assert!((s.reading.offset() + 0.000_25).abs() < 1e-9);
        assert_eq!(s.reading.leap, Leap::AddSecond);
        assert!(!s.pulse);
        assert!(parse(&emit(1_800_000_000, 0, 0.1, true, 0)).unwrap().pulse);
    }

    #[test]
    fn wrong_length_magic_and_ranges_are_rejected() {
        let d = emit(1_800_000_000, 500_000, 0.0, false, 0);
        assert_eq!(parse(&d[..39]), Err(SockError::Length));
        let mut wrong = d;
        wrong.reverse();
        assert_eq!(parse(&wrong), Err(SockError::Magic));
        for bad in [
            emit(1_800_000_000, 1_000_000, 0.0, false, 0),
            emit(-1, 0, 0.0, false, 0),
            emit(1_800_000_000, 0, f64::NAN, false, 0),
            emit(1_800_000_000, 0, 1e6, false, 0),
        ] {
            assert_eq!(parse(&bad), Err(SockError::Range));
        }
    }

    proptest! {
        #[test]
        fn any_datagram_parses_or_is_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn any_fields_with_the_magic_parse_or_are_rejected(sec: i64, usec: i64, offset: f64, leap: i32) {
            if let Ok(s) = parse(&emit(sec, usec, offset, false, leap)) {
                prop_assert!((s.reading.offset() - offset).abs() < 1e-9);
            }
        }
    }
}
