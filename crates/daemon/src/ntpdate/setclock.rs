//! Turning the chosen offset into a clock correction (ntpdate.md §2.4) and applying it.
//!
//! Every write to the clock goes through [`ClockSetter`], so that the whole tool — query,
//! selection, decision — runs in tests against a recording fake: the test suite runs without
//! CAP_SYS_TIME, where a real write would fail with EPERM (and must never succeed on a shared
//! machine anyway).

use core::fmt;
use std::io;

use sundial_proto::time::NtpDuration;

use super::output::error_text;

/// Offsets of this size or more are stepped unless `-B` says otherwise: 0.5 s, classic
/// `NTPDATE_THRESHOLD`. A slew of more would take `adjtime` minutes at 500 ppm.
pub const STEP_THRESHOLD: NtpDuration = NtpDuration::from_bits(1 << 31);

/// Largest extra amount a slew overshoots by: 50 ms (classic `ADJ_OVERSHOOT`).
pub const MAX_OVERSHOOT: NtpDuration = NtpDuration::from_bits(50 * (1 << 32) / 1000);

/// How the offset becomes a correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Step at [`STEP_THRESHOLD`] or more, slew below it (no flag).
    Threshold,
    /// Always step (`-b`).
    AlwaysStep,
    /// Always slew (`-B`).
    AlwaysSlew,
}

/// A decided correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    /// Jump the clock by the offset at once.
    Step(NtpDuration),
    /// Let `adjtime` run the clock slightly fast or slow until it has moved by `amount`: the
    /// offset plus half of it again, at most [`MAX_OVERSHOOT`] extra — classic ntpdate
    /// overshoots so that the clock, typically set again by the next cron run, ends up on time
    /// despite its drift in between.
    Slew {
        /// The measured offset (what the result line reports).
        offset: NtpDuration,
        /// What is handed to `adjtime`.
        amount: NtpDuration,
    },
}

impl Correction {
    /// The correction for `offset` under `policy`.
    pub fn decide(offset: NtpDuration, policy: Policy) -> Self {
        let step = match policy {
            Policy::AlwaysStep => true,
            Policy::AlwaysSlew => false,
            Policy::Threshold => offset.abs() >= STEP_THRESHOLD,
        };
        if step {
            return Self::Step(offset);
        }
        let half = NtpDuration::from_bits(offset.abs().to_bits() / 2);
        let extra = half.min(MAX_OVERSHOOT);
        let amount = if offset.is_negative() {
            offset - extra
        } else {
            offset + extra
        };
        Self::Slew { offset, amount }
    }

    /// The word of the result line: `step` or `adjust`.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Step(_) => "step",
            Self::Slew { .. } => "adjust",
        }
    }

    /// Applies the correction to `clock`.
    pub fn apply(&self, clock: &mut impl ClockSetter) -> Result<(), SetClockError> {
        match *self {
            Self::Step(by) => clock.step(by).map_err(SetClockError::Step),
            Self::Slew { amount, .. } => clock.slew(amount).map_err(SetClockError::Slew),
        }
    }
}

/// The two ways ntpdate changes the clock.
pub trait ClockSetter {
    /// Moves the clock by `by` at once (`clock_settime`).
    fn step(&mut self, by: NtpDuration) -> io::Result<()>;

    /// Starts a gradual correction by `by` (`adjtime`).
    fn slew(&mut self, by: NtpDuration) -> io::Result<()>;
}

/// The kernel clock. Needs CAP_SYS_TIME; without it both calls fail with EPERM.
#[derive(Debug, Default)]
pub struct SystemClock;

impl ClockSetter for SystemClock {
    fn step(&mut self, by: NtpDuration) -> io::Result<()> {
        sundial_sys::clock::step(nanos(by))
    }

    fn slew(&mut self, by: NtpDuration) -> io::Result<()> {
        sundial_sys::clock::adjtime_slew(nanos(by))
    }
}

/// A duration in nanoseconds. Every `NtpDuration` (±68 years) fits in `i64` nanoseconds (±292
/// years); the saturation only keeps the conversion total.
fn nanos(d: NtpDuration) -> i64 {
    i64::try_from(d.as_nanos())
        .unwrap_or_else(|_| if d.is_negative() { i64::MIN } else { i64::MAX })
}

/// A failed clock write; the messages are classic ntpdate's.
#[derive(Debug)]
pub enum SetClockError {
    /// The step failed (no CAP_SYS_TIME, or a target time the kernel refuses).
    Step(io::Error),
    /// `adjtime` failed (no CAP_SYS_TIME, or beyond glibc's ±2145 s).
    Slew(io::Error),
}

impl fmt::Display for SetClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Step(e) => write!(f, "Can't set time of day: {}", error_text(e)),
            Self::Slew(e) => write!(f, "Can't adjust the time of day: {}", error_text(e)),
        }
    }
}

impl std::error::Error for SetClockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Step(e) | Self::Slew(e) => Some(e),
        }
    }
}

/// A clock for tests: records every call, never touches the kernel, optionally fails.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct FakeClock {
    /// Every step asked for.
    pub(crate) steps: Vec<NtpDuration>,
    /// Every slew asked for.
    pub(crate) slews: Vec<NtpDuration>,
    /// The OS error every call fails with, if set.
    pub(crate) fail_with: Option<i32>,
}

#[cfg(test)]
impl FakeClock {
    /// Whether nothing ever asked to change the clock.
    pub(crate) fn untouched(&self) -> bool {
        self.steps.is_empty() && self.slews.is_empty()
    }
}

#[cfg(test)]
impl ClockSetter for FakeClock {
    fn step(&mut self, by: NtpDuration) -> io::Result<()> {
        self.steps.push(by);
        self.fail_with
            .map_or(Ok(()), |e| Err(io::Error::from_raw_os_error(e)))
    }

    fn slew(&mut self, by: NtpDuration) -> io::Result<()> {
        self.slews.push(by);
        self.fail_with
            .map_or(Ok(()), |e| Err(io::Error::from_raw_os_error(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seconds: f64) -> NtpDuration {
        NtpDuration::from_seconds_f64(seconds)
    }

    #[test]
    fn half_a_second_or_more_is_stepped_and_less_is_slewed() {
        assert_eq!(
            Correction::decide(d(0.5), Policy::Threshold),
            Correction::Step(d(0.5))
        );
        assert_eq!(
            Correction::decide(d(-0.5), Policy::Threshold),
            Correction::Step(d(-0.5))
        );
        let just_under = STEP_THRESHOLD - NtpDuration::from_bits(1);
        assert!(matches!(
            Correction::decide(just_under, Policy::Threshold),
            Correction::Slew { .. }
        ));
    }

    #[test]
    fn slew_overshoots_by_half_up_to_fifty_milliseconds() {
        let slew = |s: f64| match Correction::decide(d(s), Policy::Threshold) {
            Correction::Slew { offset, amount } => {
                assert_eq!(offset, d(s));
                amount.to_seconds_f64()
            }
            Correction::Step(_) => panic!("{s} s must be slewed"),
        };
        assert!((slew(0.02) - 0.03).abs() < 1e-9);
        assert!((slew(-0.02) + 0.03).abs() < 1e-9);
        assert!((slew(0.3) - 0.35).abs() < 1e-9);
        assert!((slew(-0.3) + 0.35).abs() < 1e-9);
        assert!(slew(0.0).abs() < 1e-12);
    }

    #[test]
    fn flags_override_the_threshold() {
        assert_eq!(
            Correction::decide(d(0.001), Policy::AlwaysStep),
            Correction::Step(d(0.001))
        );
        let big = Correction::decide(d(5.0), Policy::AlwaysSlew);
        assert_eq!(
            big,
            Correction::Slew {
                offset: d(5.0),
                amount: d(5.0) + MAX_OVERSHOOT
            }
        );
        assert_eq!(big.verb(), "adjust");
        assert_eq!(Correction::Step(d(1.0)).verb(), "step");
    }

    #[test]
    fn corrections_reach_the_fake_clock_and_failures_carry_classic_messages() {
        let mut clock = FakeClock::default();
        Correction::Step(d(2.0)).apply(&mut clock).unwrap();
        Correction::decide(d(0.1), Policy::Threshold)
            .apply(&mut clock)
            .unwrap();
        assert_eq!(clock.steps, [d(2.0)]);
        assert_eq!(clock.slews.len(), 1);
        assert!(
            (clock.slews[0].to_seconds_f64() - 0.15).abs() < 1e-9,
            "{:?}",
            clock.slews
        );
        clock.fail_with = Some(libc::EPERM);
        let err = Correction::Step(d(2.0)).apply(&mut clock).unwrap_err();
        assert!(
            err.to_string().starts_with("Can't set time of day: "),
            "{err}"
        );
        let err = Correction::decide(d(0.1), Policy::Threshold)
            .apply(&mut clock)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Can't adjust the time of day: "),
            "{err}"
        );
    }

    #[test]
    fn nanoseconds_cover_the_whole_duration_range() {
        assert_eq!(nanos(d(-1.5)), -1_500_000_000);
        assert_eq!(nanos(NtpDuration::MAX), 2_147_483_648_000_000_000);
        assert_eq!(nanos(NtpDuration::MIN), -2_147_483_648_000_000_000);
    }

    /// The real clock refuses without CAP_SYS_TIME (the suite's required condition). Fails at
    /// once, before any write, when the capability is present: a test must never be able to
    /// change the machine's clock, and a test that cannot run must not pass.
    #[test]
    fn system_clock_writes_fail_without_cap_sys_time() {
        assert!(
            !sundial_sys::privileges::has_cap_sys_time(),
            "CAP_SYS_TIME is effective; run the tests under \
             `setpriv --bounding-set -sys_time --inh-caps -sys_time` (tools/test-all)"
        );
        let mut clock = SystemClock;
        for result in [clock.step(NtpDuration::ZERO), clock.slew(NtpDuration::ZERO)] {
            let err = result.expect_err("a clock write without CAP_SYS_TIME must fail");
            assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        }
    }
}
