//! Virtual clocks: a quartz oscillator with a frequency error that wanders, steered through
//! the core's [`Clock`] trait exactly as the kernel clock would be.
//!
//! The oscillator's fractional frequency error y(t) starts at `freq_ppm` and takes a random
//! walk (random-walk frequency noise, the long-term behaviour of a quartz crystal in a room
//! whose temperature drifts); white frequency noise is added on top (the short-term
//! behaviour). The clock reads `true time + error`, where the error grows at the rate
//! (1 + y)(1 + c) − 1 and c is the frequency correction set through [`Clock::set_frequency`]:
//! the correction scales the oscillator's rate, as the kernel's does.

use core::convert::Infallible;

use sundial_proto::clock::Clock;
use sundial_proto::packet::Leap;
use sundial_proto::time::{NtpDuration, NtpTimestamp, UnixTime};

use crate::rng::SimRng;

/// Interval at which the oscillator's noise is drawn, seconds. The frequency is constant in
/// between, so the phase is piecewise linear and exact between grid points.
pub const NOISE_STEP_S: f64 = 1.0;

/// Resolution of clock readings: 1 ns, as `clock_gettime` on Linux.
pub const RESOLUTION_S: f64 = 1e-9;

/// Largest frequency correction the virtual clock accepts, ppm: ±10 %, the range of the Linux
/// tick length adjustment that large slews use. Larger requests are clamped.
pub const MAX_CORRECTION_PPM: f64 = 100_000.0;

/// Random-walk frequency noise of a typical quartz oscillator: the frequency changes by this
/// much (fractional) per √s — 1e-9 per √s, which is 0.06 ppm per hour and an Allan deviation
/// of 1.8e-8 at 1000 s (chrony's simulations use the same order of wander).
pub const QUARTZ_WANDER: f64 = 1e-9;

/// White frequency noise of a typical quartz oscillator: Allan deviation 3e-9 at 1 s.
pub const QUARTZ_WHITE_FM: f64 = 3e-9;

/// How an oscillator misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Oscillator {
    /// Frequency error at the start, ppm (positive: the clock runs fast).
    pub freq_ppm: f64,
    /// Random-walk frequency noise: standard deviation of the frequency change per √s.
    pub wander: f64,
    /// White frequency noise: Allan deviation at 1 s.
    pub white_fm: f64,
}

impl Oscillator {
    /// A noiseless oscillator with a constant frequency error.
    pub const fn constant(freq_ppm: f64) -> Self {
        Self {
            freq_ppm,
            wander: 0.0,
            white_fm: 0.0,
        }
    }

    /// A typical quartz oscillator with the given initial frequency error.
    pub const fn quartz(freq_ppm: f64) -> Self {
        Self {
            freq_ppm,
            wander: QUARTZ_WANDER,
            white_fm: QUARTZ_WHITE_FM,
        }
    }
}

/// A clock in virtual time. The simulation moves it along with [`Self::advance_to`]; in
/// between, [`Clock::now`] reads the current instant.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    epoch: UnixTime,
    now: f64,
    error: f64,
    natural: f64,
    correction: f64,
    osc: Oscillator,
    next_noise: f64,
    rng: SimRng,
    leap: Leap,
    steps: u32,
}

impl VirtualClock {
    /// A clock `offset_s` ahead of true time at true time zero, which is `epoch`.
    pub fn new(epoch: UnixTime, offset_s: f64, osc: Oscillator, rng: SimRng) -> Self {
        Self {
            epoch,
            now: 0.0,
            error: offset_s,
            natural: osc.freq_ppm * 1e-6,
            correction: 0.0,
            osc,
            next_noise: NOISE_STEP_S,
            rng,
            leap: Leap::Unsynchronized,
            steps: 0,
        }
    }

    /// Moves true time forward to `t` seconds (never back).
    pub fn advance_to(&mut self, t: f64) {
        while self.now < t {
            let until = t.min(self.next_noise);
            self.error += self.rate_error() * (until - self.now);
            self.now = until;
            if self.now >= self.next_noise {
                self.natural += self.osc.wander * NOISE_STEP_S.sqrt() * self.rng.normal();
                self.error += self.osc.white_fm * NOISE_STEP_S.sqrt() * self.rng.normal();
                self.next_noise += NOISE_STEP_S;
            }
        }
    }

    /// True time, seconds since the start.
    pub fn true_time(&self) -> f64 {
        self.now
    }

    /// θ as a perfect measurement would give it: true time minus the clock, seconds.
    pub fn offset(&self) -> f64 {
        -self.error
    }

    /// The rate error now, including any slew: (1 + y)(1 + c) − 1.
    pub fn rate_error(&self) -> f64 {
        (1.0 + self.natural) * (1.0 + self.correction) - 1.0
    }

    /// The rate error the clock would have with frequency correction `ppm` and no slew.
    pub fn rate_error_with(&self, ppm: f64) -> f64 {
        (1.0 + self.natural) * (1.0 + ppm * 1e-6) - 1.0
    }

    /// The true time, seconds, at which the clock will read `reading` if nothing changes.
    pub fn true_time_of(&self, reading: NtpTimestamp) -> f64 {
        let ahead = (reading - self.read()).to_seconds_f64();
        self.now + ahead / (1.0 + self.rate_error())
    }

    /// How many times the clock was stepped.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// The leap warning last published through [`Clock::set_status`].
    pub fn leap(&self) -> Leap {
        self.leap
    }

    fn read(&self) -> NtpTimestamp {
        reading(self.epoch, self.now + self.error)
    }
}

impl Clock for VirtualClock {
    type Error = Infallible;

    fn now(&self) -> NtpTimestamp {
        self.read()
    }

    fn step(&mut self, by: NtpDuration) -> Result<NtpTimestamp, Infallible> {
        self.error += by.to_seconds_f64();
        self.steps += 1;
        Ok(self.read())
    }

    fn set_frequency(&mut self, ppm: f64) -> Result<NtpTimestamp, Infallible> {
        if ppm.is_finite() {
            self.correction = ppm.clamp(-MAX_CORRECTION_PPM, MAX_CORRECTION_PPM) * 1e-6;
        }
        Ok(self.read())
    }

    fn set_status(
        &mut self,
        leap: Leap,
        _est_error: NtpDuration,
        _max_error: NtpDuration,
    ) -> Result<(), Infallible> {
        self.leap = leap;
        Ok(())
    }
}

/// The timestamp `seconds` after `epoch`, truncated to the clock resolution.
pub fn reading(epoch: UnixTime, seconds: f64) -> NtpTimestamp {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "simulated spans are far below 292 years of nanoseconds"
    )]
    let nanos = (seconds / RESOLUTION_S).floor() as i64;
    NtpTimestamp::from_unix(epoch) + NtpDuration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: UnixTime = UnixTime::new(1_800_000_000, 0);

    #[test]
    fn frequency_error_and_correction_compose() {
        let mut c = VirtualClock::new(EPOCH, 0.1, Oscillator::constant(100.0), SimRng::new(1));
        c.advance_to(1000.0);
        assert!((c.offset() + 0.2).abs() < 1e-9, "{}", c.offset());
        c.set_frequency(-100.0).unwrap();
        c.advance_to(2000.0);
        // (1 + 1e-4)(1 − 1e-4) − 1 = −1e-8: 10 µs more over 1000 s.
        assert!((c.offset() + 0.2 - 1e-5).abs() < 1e-9, "{}", c.offset());
        c.step(NtpDuration::from_seconds_f64(-0.2)).unwrap();
        assert!((c.offset() - 1e-5).abs() < 1e-9);
        assert_eq!(c.steps(), 1);
    }

    #[test]
    fn readings_follow_the_error_to_the_nanosecond() {
        let mut c = VirtualClock::new(EPOCH, -0.25, Oscillator::constant(0.0), SimRng::new(1));
        c.advance_to(10.0);
        let expected = NtpTimestamp::from_unix(UnixTime::new(1_800_000_009, 750_000_000));
        assert!((c.now() - expected).to_seconds_f64().abs() < 2e-9);
        let later = expected + NtpDuration::from_seconds(5);
        assert!((c.true_time_of(later) - 15.0).abs() < 1e-9);
    }

    #[test]
    fn quartz_wanders_about_as_specified() {
        // Over 3600 s the random walk moves the frequency by 1e-9·√3600 = 6e-8 (one σ).
        let mut moves = Vec::new();
        for seed in 0..40 {
            let mut c = VirtualClock::new(EPOCH, 0.0, Oscillator::quartz(0.0), SimRng::new(seed));
            c.advance_to(3600.0);
            moves.push(c.rate_error());
        }
        let rms = (moves.iter().map(|m| m * m).sum::<f64>() / 40.0).sqrt();
        assert!(rms > 3e-8 && rms < 1.2e-7, "{rms}");
    }
}
