//! Clock backends and the mapping from kernel time to the time sundial serves.
//!
//! The kernel stamps every received datagram with its realtime clock. With the `system` and
//! `none` backends that *is* the served time. The `simulated` backend keeps its own offset and
//! frequency relative to the kernel clock, so a real daemon can be tested for accuracy without
//! any privilege: every timestamp it serves is the kernel time mapped through [`TimeMapping`].

use std::fmt;
use std::str::FromStr;

use sundial_proto::clock::Clock;
use sundial_proto::packet::Leap;
use sundial_proto::source::PendingSlew;
use sundial_proto::time::{Log2Seconds, NtpDuration, NtpTimestamp, Ppm, UnixTime};
use sundial_sys::clock::KernelLeap;

/// Which clock ntpd disciplines (`--clock`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockSpec {
    /// The kernel clock (clock_adjtime / clock_settime); needs CAP_SYS_TIME.
    System,
    /// Read the kernel clock, never write it: serve and report only.
    None,
    /// An in-process clock starting `offset_s` seconds and `freq_ppm` off the kernel clock.
    Simulated {
        /// Initial offset of the simulated clock from the kernel clock, seconds.
        offset_s: f64,
        /// Initial frequency error, parts per million (positive: runs fast).
        freq_ppm: f64,
    },
}

impl ClockSpec {
    /// Whether this backend may ever write the kernel clock.
    pub fn writes_kernel_clock(&self) -> bool {
        matches!(self, Self::System)
    }
}

impl fmt::Display for ClockSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("system"),
            Self::None => f.write_str("none"),
            Self::Simulated { offset_s, freq_ppm } => write!(f, "simulated:{offset_s}:{freq_ppm}"),
        }
    }
}

/// Error for a `--clock` value that is not one of the backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSpecError(String);

impl fmt::Display for ClockSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected system, none or simulated[:OFFSET_S:FREQ_PPM]",
            self.0
        )
    }
}

impl std::error::Error for ClockSpecError {}

impl FromStr for ClockSpec {
    type Err = ClockSpecError;

    fn from_str(s: &str) -> Result<Self, ClockSpecError> {
        let bad = || ClockSpecError(format!("invalid clock '{s}'"));
        match s {
            "system" => return Ok(Self::System),
            "none" => return Ok(Self::None),
            "simulated" => {
                return Ok(Self::Simulated {
                    offset_s: 0.0,
                    freq_ppm: 0.0,
                });
            }
            _ => {}
        }
        let rest = s.strip_prefix("simulated:").ok_or_else(bad)?;
        let (offset, freq) = rest.split_once(':').unwrap_or((rest, "0"));
        let offset_s: f64 = offset.parse().map_err(|_| bad())?;
        let freq_ppm: f64 = freq.parse().map_err(|_| bad())?;
        if !offset_s.is_finite() || !freq_ppm.is_finite() || freq_ppm.abs() > 500.0 {
            return Err(ClockSpecError(format!(
                "invalid clock '{s}': the offset must be finite and the frequency within ±500 ppm"
            )));
        }
        Ok(Self::Simulated { offset_s, freq_ppm })
    }
}

/// clock = kernel + offset + freq·(kernel − base): how the disciplined clock follows the kernel
/// clock; and, for a mapping made by [`TimeMapping::serving`], served = clock + the part of the
/// discipline's correction the clock has not reached yet.
///
/// The served correction is the discipline's own slew state (`PendingSlew`): the rest of a
/// slew shrinks to zero at its end (so a snapshot published before the end stays right after
/// it), and the drift measured at start-up grows linearly. Applying it costs a few float
/// operations per request, no system call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeMapping {
    base: UnixTime,
    offset: NtpDuration,
    freq_ppm: f64,
    /// The correction still in progress, in the clock's time.
    pending: Option<PendingSlew>,
    /// Served time never goes below this (zero: no floor), so a correction that moves the
    /// estimate back by a little holds the served time still for as long, instead of
    /// making it jump back for a client.
    floor: NtpTimestamp,
}

impl TimeMapping {
    /// Served time is kernel time.
    pub const IDENTITY: Self = Self {
        base: UnixTime::EPOCH,
        offset: NtpDuration::ZERO,
        freq_ppm: 0.0,
        pending: None,
        floor: NtpTimestamp::ZERO,
    };

    /// A mapping that is `offset` ahead at `base` and drifts `freq_ppm` from there.
    pub fn new(base: UnixTime, offset: NtpDuration, freq_ppm: f64) -> Self {
        Self {
            base,
            offset,
            freq_ppm,
            pending: None,
            floor: NtpTimestamp::ZERO,
        }
    }

    /// The mapping to serve: this clock mapping plus the correction `pending` still has to
    /// make, never below `floor` (see [`MAX_HOLD`] for how far back a floor may reach).
    pub fn serving(self, pending: Option<PendingSlew>, floor: Option<NtpTimestamp>) -> Self {
        Self {
            pending,
            floor: floor.unwrap_or(NtpTimestamp::ZERO),
            ..self
        }
    }

    /// The floor for a new serving mapping `next` replacing `self` at kernel time `kernel`:
    /// what `self` serves then, if `next` would serve less — by at most [`MAX_HOLD`]; a larger
    /// jump back is a step, which a floor would turn into a long stop of served time.
    pub fn floor_for(&self, next: &Self, kernel: UnixTime) -> Option<NtpTimestamp> {
        let (old, new) = (self.map(kernel), next.map(kernel));
        let back = (old - new).to_seconds_f64();
        (back > 0.0 && back <= MAX_HOLD).then_some(old)
    }

    /// The offset of served time from kernel time at `kernel`.
    pub fn offset_at(&self, kernel: UnixTime) -> NtpDuration {
        if self.freq_ppm == 0.0 {
            return self.offset;
        }
        let elapsed = kernel.duration_since(self.base).to_seconds_f64();
        self.offset + NtpDuration::from_seconds_f64(elapsed * self.freq_ppm * 1e-6)
    }

    /// The served timestamp for a kernel time.
    pub fn map(&self, kernel: UnixTime) -> NtpTimestamp {
        let clock = NtpTimestamp::from_unix(kernel) + self.offset_at(kernel);
        let served = match self.pending {
            Some(p) => clock + NtpDuration::from_seconds_f64(p.remaining_after(clock)),
            None => clock,
        };
        if !self.floor.is_zero() && (served - self.floor).is_negative() {
            self.floor
        } else {
            served
        }
    }

    /// The frequency of served time relative to kernel time, ppm.
    pub fn freq_ppm(&self) -> f64 {
        self.freq_ppm
    }

    /// The served Unix time for a kernel time.
    pub fn map_unix(&self, kernel: UnixTime) -> UnixTime {
        kernel.add_duration(self.offset_at(kernel))
    }
}

/// The longest jump back of the served estimate that a floor holds the served time still
/// for, seconds; anything larger is a step, served as such.
pub const MAX_HOLD: f64 = 0.01;

/// The clock the discipline steers, behind the core's [`Clock`] trait.
///
/// * `system`: the kernel clock — steps with clock_settime/ADJ_SETOFFSET, rate corrections
///   with the tick length and ADJ_FREQUENCY, status and error estimates for other programs.
/// * `simulated`: the in-process mapping from kernel time (see [`TimeMapping`]); steering it
///   changes only the mapping, which the main loop republishes for the server threads.
///
/// * `none`: [`SteeredClock::read_only`] reads the kernel clock and refuses every command; the
///   daemon runs no discipline with it, so none is ever given.
#[derive(Debug)]
pub struct SteeredClock {
    kind: SteeredKind,
    mapping: TimeMapping,
    /// The leap second the sources announce, for the simulated clock to apply at midnight UTC
    /// (the kernel applies its own).
    leap: Leap,
    /// The UTC day number of the served time when last checked.
    day: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SteeredKind {
    System,
    /// `--clock none`: read, never written.
    ReadOnly,
    /// The simulated clock's own frequency error, ppm, on top of which corrections apply.
    Simulated {
        natural_ppm: f64,
    },
}

impl SteeredClock {
    /// The steerable clock for `spec`, or `None` for `--clock none`.
    pub fn new(spec: ClockSpec, mapping: TimeMapping) -> Option<Self> {
        let kind = match spec {
            ClockSpec::None => return None,
            ClockSpec::System => SteeredKind::System,
            ClockSpec::Simulated { freq_ppm, .. } => SteeredKind::Simulated {
                natural_ppm: freq_ppm,
            },
        };
        Some(Self {
            kind,
            mapping,
            leap: Leap::NoWarning,
            day: None,
        })
    }

    /// The kernel clock through `mapping`, never written (`--clock none`).
    pub fn read_only(mapping: TimeMapping) -> Self {
        Self {
            kind: SteeredKind::ReadOnly,
            mapping,
            leap: Leap::NoWarning,
            day: None,
        }
    }

    /// Applies an announced leap second to the simulated clock when the served time has just
    /// crossed midnight UTC: an inserted second repeats the last second of the day (a step of
    /// −1 s), a deleted one skips it (+1 s). Returns the step taken. The kernel clock inserts
    /// its own leap seconds (`STA_INS`/`STA_DEL`), so this does nothing for it.
    pub fn apply_leap_second(&mut self) -> Option<i32> {
        let SteeredKind::Simulated { .. } = self.kind else {
            return None;
        };
        let served = self.mapping.map_unix(kernel_now());
        let step = self.leap_step_at(served.secs())?;
        let kernel = kernel_now();
        let by = NtpDuration::from_seconds(step);
        self.mapping = TimeMapping::new(
            kernel,
            self.mapping.offset_at(kernel) + by,
            self.mapping.freq_ppm(),
        );
        Some(step)
    }

    /// The leap step due at served Unix time `secs`, updating the day bookkeeping.
    fn leap_step_at(&mut self, secs: i64) -> Option<i32> {
        let day = secs.div_euclid(86_400);
        let crossed = self.day.is_some_and(|d| day > d);
        self.day = Some(day);
        if !crossed {
            return None;
        }
        let step = match self.leap {
            Leap::AddSecond => -1,
            Leap::DeleteSecond => 1,
            Leap::NoWarning | Leap::Unsynchronized => return None,
        };
        self.leap = Leap::NoWarning;
        Some(step)
    }

    /// How served time follows kernel time now.
    pub fn mapping(&self) -> TimeMapping {
        self.mapping
    }

    /// The rate correction the clock has before the discipline touches it (the kernel keeps
    /// its frequency across daemon restarts).
    pub fn initial_frequency(&self) -> Ppm {
        match self.kind {
            SteeredKind::System => sundial_sys::clock::read_timex()
                .ok()
                .and_then(|k| Ppm::new(k.frequency_ppm))
                .unwrap_or(Ppm::ZERO),
            SteeredKind::Simulated { .. } | SteeredKind::ReadOnly => Ppm::ZERO,
        }
    }
}

impl Clock for SteeredClock {
    type Error = std::io::Error;

    fn now(&self) -> NtpTimestamp {
        self.mapping.map(kernel_now())
    }

    fn step(&mut self, by: NtpDuration) -> Result<NtpTimestamp, Self::Error> {
        match self.kind {
            SteeredKind::System => {
                let nanos = i64::try_from(by.as_nanos())
                    .unwrap_or_else(|_| if by.is_negative() { i64::MIN } else { i64::MAX });
                sundial_sys::clock::step(nanos)?;
            }
            SteeredKind::ReadOnly => return Err(read_only()),
            SteeredKind::Simulated { .. } => {
                let kernel = kernel_now();
                self.mapping = TimeMapping::new(
                    kernel,
                    self.mapping.offset_at(kernel) + by,
                    self.mapping.freq_ppm(),
                );
            }
        }
        Ok(self.now())
    }

    fn set_frequency(&mut self, ppm: f64) -> Result<NtpTimestamp, Self::Error> {
        match self.kind {
            SteeredKind::System => sundial_sys::clock::set_frequency_wide(ppm)?,
            SteeredKind::ReadOnly => return Err(read_only()),
            SteeredKind::Simulated { natural_ppm } => {
                let kernel = kernel_now();
                self.mapping =
                    TimeMapping::new(kernel, self.mapping.offset_at(kernel), natural_ppm + ppm);
            }
        }
        Ok(self.now())
    }

    fn set_status(
        &mut self,
        leap: Leap,
        est_error: NtpDuration,
        max_error: NtpDuration,
    ) -> Result<(), Self::Error> {
        match self.kind {
            SteeredKind::System => {
                let us = |d: NtpDuration| i64::try_from(d.as_nanos() / 1000).unwrap_or(i64::MAX);
                let kernel_leap = match leap {
                    Leap::AddSecond => KernelLeap::Insert,
                    Leap::DeleteSecond => KernelLeap::Delete,
                    _ => KernelLeap::None,
                };
                sundial_sys::clock::set_status(
                    kernel_leap,
                    leap == Leap::Unsynchronized,
                    us(est_error),
                    us(max_error),
                )
            }
            SteeredKind::ReadOnly => Err(read_only()),
            // The simulated clock applies the leap itself at midnight (`apply_leap_second`).
            SteeredKind::Simulated { .. } => {
                self.leap = leap;
                Ok(())
            }
        }
    }
}

fn read_only() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "--clock none: the clock is never set",
    )
}

/// The kernel's realtime clock, now.
pub fn kernel_now() -> UnixTime {
    let ts = sundial_sys::clock::realtime();
    UnixTime::new(ts.sec, ts.nsec)
}

/// Measures the precision of reading the clock: the smallest non-zero step between successive
/// reads, as a power of two (RFC 5905 §7.3 "precision"). Bounded to a few thousand reads.
pub fn measure_precision() -> Log2Seconds {
    const READS: usize = 2000;
    let mut smallest = f64::INFINITY;
    let mut previous = kernel_now();
    for _ in 0..READS {
        let now = kernel_now();
        let step = now.duration_since(previous).to_seconds_f64();
        if step > 0.0 && step < smallest {
            smallest = step;
        }
        previous = now;
    }
    if smallest.is_finite() {
        Log2Seconds::ceil_from_seconds(smallest)
    } else {
        // A clock that never moved in 2000 reads is coarse; claim a conservative 1 ms.
        Log2Seconds::new(-10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_specs_parse() {
        assert_eq!("system".parse::<ClockSpec>().unwrap(), ClockSpec::System);
        assert_eq!("none".parse::<ClockSpec>().unwrap(), ClockSpec::None);
        assert_eq!(
            "simulated:-0.25:12.5".parse::<ClockSpec>().unwrap(),
            ClockSpec::Simulated {
                offset_s: -0.25,
                freq_ppm: 12.5
            }
        );
        assert!("simulated:1:900".parse::<ClockSpec>().is_err());
        assert!("simulated:x".parse::<ClockSpec>().is_err());
        assert!(!ClockSpec::None.writes_kernel_clock());
    }

    #[test]
    fn mapping_adds_offset_and_drift() {
        let base = UnixTime::new(1_800_000_000, 0);
        let m = TimeMapping::new(base, NtpDuration::from_seconds_f64(0.5), 100.0);
        let later = UnixTime::new(1_800_001_000, 0);
        // 0.5 s + 1000 s × 100 ppm = 0.6 s.
        let off = m.offset_at(later).to_seconds_f64();
        assert!((off - 0.6).abs() < 1e-9, "{off}");
        assert_eq!(
            TimeMapping::IDENTITY.map(later),
            NtpTimestamp::from_unix(later)
        );
    }

    #[test]
    fn served_mapping_adds_the_rest_of_a_slew_until_its_end() {
        let base = UnixTime::new(1_800_000_000, 0);
        let at = |secs: f64| base.add_duration(NtpDuration::from_seconds_f64(secs));
        let clock = TimeMapping::new(base, NtpDuration::ZERO, 0.0);
        // A 0.1 s forward slew at 5 % that has 2 s left.
        let pending = PendingSlew {
            end: clock.map(at(2.0)),
            rate: 0.05,
            drift: 0.0,
        };
        let served = clock.serving(Some(pending), None);
        let off =
            |m: &TimeMapping, secs: f64| (m.map(at(secs)) - clock.map(at(secs))).to_seconds_f64();
        assert!((off(&served, 0.0) - 0.1).abs() < 1e-9);
        assert!((off(&served, 1.0) - 0.05).abs() < 1e-9);
        assert!(off(&served, 2.0).abs() < 1e-9);
        assert!(
            off(&served, 30.0).abs() < 1e-9,
            "the tail ends with the slew"
        );
        let mut last = served.map(at(0.0));
        for i in 1..=300 {
            let t = served.map(at(f64::from(i) * 0.01));
            assert!((t - last).to_bits() > 0, "served time went back at {i}");
            last = t;
        }
    }

    #[test]
    fn a_small_correction_back_holds_served_time_instead_of_reversing_it() {
        let base = UnixTime::new(1_800_000_000, 0);
        let at = |secs: f64| base.add_duration(NtpDuration::from_seconds_f64(secs));
        let old = TimeMapping::new(base, NtpDuration::ZERO, 0.0).serving(None, None);
        // The new estimate is 50 µs behind what was served.
        let next = TimeMapping::new(base, NtpDuration::from_seconds_f64(-50e-6), 0.0);
        let floor = old.floor_for(&next, at(10.0));
        assert_eq!(floor, Some(old.map(at(10.0))));
        let new = next.serving(None, floor);
        assert_eq!(new.map(at(10.0)), old.map(at(10.0)));
        assert_eq!(new.map(at(10.000_04)), old.map(at(10.0)), "held still");
        assert!((new.map(at(10.001)) - old.map(at(10.0))).to_bits() > 0);
        // A step back is served as the step it is.
        let stepped = TimeMapping::new(base, NtpDuration::from_seconds_f64(-0.5), 0.0);
        assert_eq!(old.floor_for(&stepped, at(10.0)), None);
    }

    #[test]
    fn simulated_clock_inserts_an_announced_leap_second_at_midnight() {
        let mut clock = SteeredClock::new(
            ClockSpec::Simulated {
                offset_s: 0.0,
                freq_ppm: 0.0,
            },
            TimeMapping::IDENTITY,
        )
        .expect("simulated clocks are steerable");
        let midnight = 1_798_761_600; // 2027-01-01 00:00:00 UTC
        assert_eq!(clock.leap_step_at(midnight - 10), None);
        clock
            .set_status(Leap::AddSecond, NtpDuration::ZERO, NtpDuration::ZERO)
            .unwrap();
        assert_eq!(clock.leap_step_at(midnight - 1), None);
        assert_eq!(clock.leap_step_at(midnight), Some(-1));
        // Once only.
        assert_eq!(clock.leap_step_at(midnight + 86_400), None);
        assert!(SteeredClock::new(ClockSpec::None, TimeMapping::IDENTITY).is_none());
    }

    #[test]
    fn precision_is_plausible() {
        let p = measure_precision().exponent();
        assert!((-30..=-6).contains(&p), "{p}");
    }
}
