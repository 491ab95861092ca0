//! The NTP shared-memory segment (ntpd's driver 28, written by gpsd and others): checking one
//! record read from it without trusting the writer.
//!
//! The writer and the reader share the segment with no lock. The writer announces a record with
//! `valid`; the reader takes it and clears `valid`. In mode 1 the writer also bumps `count`
//! before and after writing, and the reader compares `count` before and after reading the
//! fields: a difference means the record was read half-written. The reading itself (the
//! volatile loads and the store clearing `valid`) is `sundial_sys::shm`'s; this module decides
//! what a snapshot of the fields is worth. Whatever the bytes, the answer is a reading or a
//! reason, counted — never a panic.

use super::Reading;
use crate::packet::Leap;
use crate::time::{NtpTimestamp, UnixTime};

/// The key of unit 0's segment ("NTP0"); unit U uses this plus U.
pub const SHM_KEY_BASE: i32 = 0x4e54_5030;

/// Default of the largest offset accepted (ntpd's `time2` default for the driver: four hours).
pub const DEFAULT_MAX_OFFSET: f64 = 4.0 * 3600.0;

/// The fields of one record as read from the segment, in the segment's own integer types
/// widened; `count_before`/`count_after` are `count` before and after the fields were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShmRecord {
    /// 0: take the record when `valid`; 1: also check `count`.
    pub mode: i32,
    /// `count` before the fields were read.
    pub count_before: i32,
    /// `count` after the fields were read.
    pub count_after: i32,
    /// The reference clock's time, seconds since 1970.
    pub clock_sec: i64,
    /// Its microseconds.
    pub clock_usec: i32,
    /// Its nanoseconds (newer writers; 0 or inconsistent with `clock_usec` from older ones).
    pub clock_nsec: u32,
    /// The local clock's time at the reading, seconds since 1970.
    pub receive_sec: i64,
    /// Its microseconds.
    pub receive_usec: i32,
    /// Its nanoseconds.
    pub receive_nsec: u32,
    /// Leap indicator: 0 none, 1 insert, 2 delete, 3 not synchronised.
    pub leap: i32,
    /// The writer's precision, log2 s.
    pub precision: i32,
    /// `valid`: a new record is there.
    pub valid: i32,
}

/// Why a record was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmReject {
    /// `valid` is clear: nothing new (a stopped writer shows up as a run of these).
    NotReady,
    /// `mode` is neither 0 nor 1.
    BadMode,
    /// Mode 1 and `count` changed while the record was read: it was half-written.
    Torn,
    /// `count` is the one of the record taken last: the same record again.
    Stale,
    /// A field is out of range (negative or ≥ 1 s of microseconds or nanoseconds, a time
    /// outside what an NTP timestamp can hold).
    BadTime,
    /// The reference and local clock differ by more than the largest offset allowed (`fudge
    /// time2`, unless `flag1`).
    TooFar,
}

impl ShmReject {
    /// Every reason, for counters.
    pub const ALL: [Self; 6] = [
        Self::NotReady,
        Self::BadMode,
        Self::Torn,
        Self::Stale,
        Self::BadTime,
        Self::TooFar,
    ];

    /// A short name for logs and statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NotReady => "not_ready",
            Self::BadMode => "bad_mode",
            Self::Torn => "torn",
            Self::Stale => "stale",
            Self::BadTime => "bad_time",
            Self::TooFar => "too_far",
        }
    }
}

/// The reader's memory between records: the `count` of the last record taken, and counters.
#[derive(Debug, Clone, Default)]
pub struct ShmReader {
    last_count: Option<i32>,
    taken: u64,
    rejected: [u64; ShmReject::ALL.len()],
}

impl ShmReader {
    /// A reader that has taken nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What `record` is worth. `max_offset` is the largest |reference − local| accepted in
    /// seconds (`None`: any). The caller clears `valid` in the segment whenever it was set,
    /// whatever the answer, as ntpd does, so a bad record is not read twice.
    pub fn check(
        &mut self,
        record: &ShmRecord,
        max_offset: Option<f64>,
    ) -> Result<Reading, ShmReject> {
        let result = self.judge(record, max_offset);
        match result {
            Ok(_) => {
                self.taken += 1;
                self.last_count = Some(record.count_after);
            }
            Err(reason) => {
                if let Some(slot) = ShmReject::ALL
                    .iter()
                    .position(|r| *r == reason)
                    .and_then(|i| self.rejected.get_mut(i))
                {
                    *slot += 1;
                }
            }
        }
        result
    }

    fn judge(&self, r: &ShmRecord, max_offset: Option<f64>) -> Result<Reading, ShmReject> {
        if r.valid == 0 {
            return Err(ShmReject::NotReady);
        }
        match r.mode {
            0 => {}
            1 if r.count_before != r.count_after => return Err(ShmReject::Torn),
            1 => {}
            _ => return Err(ShmReject::BadMode),
        }
        if r.mode == 1 && self.last_count == Some(r.count_after) {
            return Err(ShmReject::Stale);
        }
        let reference = unix(r.clock_sec, r.clock_usec, r.clock_nsec)?;
        let receive = unix(r.receive_sec, r.receive_usec, r.receive_nsec)?;
        let offset = reference.duration_since(receive).to_seconds_f64();
        if max_offset.is_some_and(|max| offset.abs() > max) {
            return Err(ShmReject::TooFar);
        }
        Ok(Reading {
            reference: NtpTimestamp::from_unix(reference),
            receive: NtpTimestamp::from_unix(receive),
            leap: Leap::from_bits(u8::try_from(r.leap & 3).unwrap_or(3)),
        })
    }

    /// Records taken.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Records not taken for `reason`.
    pub fn rejected(&self, reason: ShmReject) -> u64 {
        ShmReject::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.rejected.get(i))
            .copied()
            .unwrap_or(0)
    }
}

/// Seconds 1970 .. 2106 + a few eras are all an NTP timestamp needs; anything else is garbage.
const SECS_RANGE: core::ops::RangeInclusive<i64> = 0..=(1 << 40);

/// A time from the segment: nanoseconds when the writer filled them in consistently with the
/// microseconds (ntpd's rule), else microseconds.
fn unix(sec: i64, usec: i32, nsec: u32) -> Result<UnixTime, ShmReject> {
    if !SECS_RANGE.contains(&sec) || !(0..1_000_000).contains(&usec) || nsec >= 1_000_000_000 {
        return Err(ShmReject::BadTime);
    }
    let usec = u32::try_from(usec).map_err(|_| ShmReject::BadTime)?;
    let nanos = if nsec / 1000 == usec {
        nsec
    } else {
        usec * 1000
    };
    Ok(UnixTime::new(sec, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(count: i32) -> ShmRecord {
        ShmRecord {
            mode: 1,
            count_before: count,
            count_after: count,
            clock_sec: 1_800_000_000,
            clock_usec: 250_000,
            clock_nsec: 250_000_123,
            receive_sec: 1_800_000_000,
            receive_usec: 250_400,
            receive_nsec: 250_400_000,
            leap: 0,
            precision: -20,
            valid: 1,
        }
    }

    #[test]
    fn a_good_record_gives_the_nanosecond_offset() {
        let mut reader = ShmReader::new();
        let reading = reader.check(&record(5), None).unwrap();
        assert!(
            (reading.offset() + 399_877e-9).abs() < 1e-9,
            "{}",
            reading.offset()
        );
        assert_eq!(reading.leap, Leap::NoWarning);
        assert_eq!(reader.taken(), 1);
    }

    #[test]
    fn microseconds_are_used_when_the_nanoseconds_disagree() {
        let mut r = record(1);
        r.clock_nsec = 0;
        r.receive_nsec = 999;
        let reading = ShmReader::new().check(&r, None).unwrap();
        assert!((reading.offset() + 400e-6).abs() < 1e-9);
    }

    #[test]
    fn each_bad_record_is_counted_under_its_reason() {
        let mut reader = ShmReader::new();
        let cases = [
            (
                ShmRecord {
                    valid: 0,
                    ..record(1)
                },
                ShmReject::NotReady,
            ),
            (
                ShmRecord {
                    mode: 2,
                    ..record(1)
                },
                ShmReject::BadMode,
            ),
            (
                ShmRecord {
                    mode: -1,
                    ..record(1)
                },
                ShmReject::BadMode,
            ),
            (
                ShmRecord {
                    count_after: 2,
                    ..record(1)
                },
                ShmReject::Torn,
            ),
            (
                ShmRecord {
                    clock_usec: 1_000_000,
                    ..record(1)
                },
                ShmReject::BadTime,
            ),
            (
                ShmRecord {
                    receive_usec: -1,
                    ..record(1)
                },
                ShmReject::BadTime,
            ),
            (
                ShmRecord {
                    clock_sec: -5,
                    ..record(1)
                },
                ShmReject::BadTime,
            ),
            (
                ShmRecord {
                    clock_nsec: 1_000_000_000,
                    ..record(1)
                },
                ShmReject::BadTime,
            ),
            (
                ShmRecord {
                    clock_sec: 1_800_020_000,
                    ..record(1)
                },
                ShmReject::TooFar,
            ),
        ];
        for (r, reason) in cases {
            assert_eq!(
                reader.check(&r, Some(DEFAULT_MAX_OFFSET)),
                Err(reason),
                "{r:?}"
            );
        }
        assert_eq!(reader.rejected(ShmReject::BadMode), 2);
        assert_eq!(reader.rejected(ShmReject::BadTime), 4);
        assert_eq!(reader.taken(), 0);
        // Without a limit (flag1) the far record is taken.
        assert!(
            reader
                .check(
                    &ShmRecord {
                        clock_sec: 1_800_020_000,
                        ..record(1)
                    },
                    None
                )
                .is_ok()
        );
    }

    #[test]
    fn the_same_count_twice_is_stale_in_mode_1_only() {
        let mut reader = ShmReader::new();
        assert!(reader.check(&record(7), None).is_ok());
        assert_eq!(reader.check(&record(7), None), Err(ShmReject::Stale));
        assert!(reader.check(&record(8), None).is_ok());
        let mode0 = ShmRecord {
            mode: 0,
            ..record(8)
        };
        assert!(reader.check(&mode0, None).is_ok());
        assert_eq!(reader.rejected(ShmReject::Stale), 1);
    }

    #[test]
    fn a_torn_record_in_mode_0_cannot_be_told_and_is_taken() {
        let r = ShmRecord {
            mode: 0,
            count_after: 9,
            ..record(1)
        };
        assert!(ShmReader::new().check(&r, None).is_ok());
    }

    proptest::proptest! {
        /// Whatever a writer leaves in the segment, the check answers without panicking, and
        /// what it takes has sane times: within the offset limit, never from a record that was
        /// not valid, of an unknown mode, or torn.
        #[test]
        fn any_record_is_taken_or_rejected_never_a_panic(
            mode in proptest::prelude::any::<i32>(),
            counts in proptest::prelude::any::<(i32, i32)>(),
            clock in proptest::prelude::any::<(i64, i32, u32)>(),
            receive in proptest::prelude::any::<(i64, i32, u32)>(),
            leap in proptest::prelude::any::<i32>(),
            valid in proptest::prelude::any::<i32>(),
            limit in proptest::option::of(0.0f64..1e6),
        ) {
            let r = ShmRecord {
                mode,
                count_before: counts.0,
                count_after: counts.1,
                clock_sec: clock.0,
                clock_usec: clock.1,
                clock_nsec: clock.2,
                receive_sec: receive.0,
                receive_usec: receive.1,
                receive_nsec: receive.2,
                leap,
                precision: 0,
                valid,
            };
            let mut reader = ShmReader::new();
            if let Ok(reading) = reader.check(&r, limit) {
                proptest::prop_assert!(valid != 0 && (mode == 0 || mode == 1));
                proptest::prop_assert!(mode == 0 || counts.0 == counts.1);
                if let Some(max) = limit {
                    proptest::prop_assert!(reading.offset().abs() <= max + 1e-9);
                }
            }
            let taken = reader.taken();
            let rejected: u64 = ShmReject::ALL.iter().map(|r| reader.rejected(*r)).sum();
            proptest::prop_assert_eq!(taken + rejected, 1);
        }
    }
}
