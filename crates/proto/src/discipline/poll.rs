//! The poll recommendation: as long as the clock's own model stays valid, no shorter.
//!
//! The Kalman filter knows two things that decide it: how noisy a measurement is (R, the
//! effective measurement variance) and how fast the clock wanders (q, the frequency random
//! walk). Wander alone moves the phase by √(q·T³/3) over T seconds, so the span over which
//! the clock can be predicted to within one measurement's noise is T_c = (3R/q)^(1/3). The
//! recommended interval fits [`POLL_TARGET`] measurements into T_c, like chrony's `polltarget`
//! (the poll at which its regression holds that many samples), and never exceeds the span over
//! which the frequency's own uncertainty σ_f stays below the noise (√R/σ_f), which keeps the
//! poll short while the frequency is being learned. A hysteresis counter like ntpd's
//! (RFC 5905 §11.3) turns targets into steps of the exponent.

/// Measurements per coherence span, as chrony's default `polltarget`: more average the noise
/// better, fewer save packets. A typical quartz (1e-9 per √s wander) measured with 20 µs of
/// effective noise gets T_c ≈ 1000 s and so a poll of 128 s.
pub(super) const POLL_TARGET: f64 = 8.0;

/// Counter value at which the exponent changes. Going up takes this many updates asking for
/// it in a row; going down takes half as many (ntpd also backs off twice as fast).
const HYSTERESIS: i32 = 4;

/// The recommended poll exponent and its hysteresis counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PollControl {
    poll: i8,
    min: i8,
    max: i8,
    counter: i32,
}

impl PollControl {
    /// Starts at `min`.
    pub(super) fn new(min: i8, max: i8) -> Self {
        let min = min.clamp(0, 17);
        Self {
            poll: min,
            min,
            max: max.clamp(min, 17),
            counter: 0,
        }
    }

    /// The recommended exponent.
    pub(super) fn poll(&self) -> i8 {
        self.poll
    }

    /// Back to the shortest interval (after a step: the frequency must be re-learned fast).
    pub(super) fn reset(&mut self) {
        self.poll = self.min;
        self.counter = 0;
    }

    /// Feeds one update: `noise` is the effective measurement variance (s²), `wander` the
    /// frequency random walk ((s/s)²/s) and `freq_sigma` the frequency's uncertainty (s/s).
    pub(super) fn update(&mut self, noise: f64, wander: f64, freq_sigma: f64) {
        let coherence = (3.0 * noise / wander.max(f64::MIN_POSITIVE)).cbrt();
        let learned = noise.sqrt() / freq_sigma.max(f64::MIN_POSITIVE);
        let target = (coherence / POLL_TARGET).min(learned);
        if !target.is_finite() || target <= 0.0 {
            return;
        }
        let current = 2f64.powi(i32::from(self.poll));
        if target >= 2.0 * current {
            self.counter += 1;
        } else if target < current {
            self.counter -= 2;
        } else {
            self.counter -= self.counter.signum();
        }
        if self.counter >= HYSTERESIS {
            self.poll = (self.poll + 1).min(self.max);
            self.counter = 0;
        } else if self.counter <= -HYSTERESIS {
            self.poll = (self.poll - 1).max(self.min);
            self.counter = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 µs of measurement noise and a typical quartz's 1e-9/√s wander: T_c = (3R/q)^⅓ ≈
    /// 1063 s, and 8 measurements in it ask for 133 s.
    const NOISE: f64 = 20e-6 * 20e-6;
    const WANDER: f64 = 1e-18;

    fn settle(p: &mut PollControl, noise: f64, freq_sigma: f64) -> i8 {
        for _ in 0..100 {
            p.update(noise, WANDER, freq_sigma);
        }
        p.poll()
    }

    #[test]
    fn the_poll_fits_eight_measurements_into_the_coherence_span() {
        // 133 s lies between 2^7 and 2^8.
        assert_eq!(settle(&mut PollControl::new(4, 17), NOISE, 1e-15), 7);
    }

    #[test]
    fn while_the_frequency_is_uncertain_the_poll_stays_within_noise_over_sigma() {
        // √R/σ_f = 20 µs / 1 ppm = 20 s, between 2^4 and 2^5.
        assert_eq!(settle(&mut PollControl::new(2, 17), NOISE, 1e-6), 4);
    }

    #[test]
    fn the_poll_comes_down_to_a_shorter_target_and_climbs_back() {
        let mut p = PollControl::new(2, 17);
        assert_eq!(settle(&mut p, NOISE, 1e-15), 7);
        assert_eq!(settle(&mut p, NOISE, 1e-6), 4);
        assert_eq!(settle(&mut p, NOISE, 1e-15), 7);
    }

    #[test]
    fn the_poll_rises_only_when_the_target_is_twice_the_interval() {
        // With 200 µs of noise the coherence span allows 388 s; the frequency's uncertainty
        // sets the target: 1.9 times the interval at exponent 7 (243 s) is not enough to
        // double it, 257 s is.
        let noise = 200e-6 * 200e-6;
        let mut p = PollControl::new(7, 17);
        assert_eq!(settle(&mut p, noise, 200e-6 / 243.0), 7);
        assert_eq!(settle(&mut p, noise, 200e-6 / 257.0), 8);
    }

    /// Noise and frequency uncertainty whose target is exactly 2^`exp` s: √R = 2^-12 s,
    /// σ_f = 2^-(12+exp) (the coherence span, 700 s, does not limit it).
    fn exact_target(p: &mut PollControl, exp: i32) {
        p.update(2f64.powi(-24), WANDER, 2f64.powi(-12 - exp));
    }

    #[test]
    fn a_target_equal_to_the_interval_keeps_it() {
        let mut p = PollControl::new(7, 17);
        for _ in 0..100 {
            exact_target(&mut p, 7);
        }
        assert_eq!(p.poll(), 7);
    }

    #[test]
    fn a_target_within_the_band_wears_the_count_down() {
        let mut p = PollControl::new(7, 17);
        // Three updates asking for 2^8, one short of the hysteresis…
        for _ in 0..3 {
            exact_target(&mut p, 8);
        }
        // …three within [2^7, 2^8) bring the count back to zero…
        for _ in 0..3 {
            exact_target(&mut p, 7);
            assert_eq!(p.poll(), 7);
        }
        // …so three more asking for 2^8 are again not enough, and a fourth is.
        for _ in 0..3 {
            exact_target(&mut p, 8);
        }
        assert_eq!(p.poll(), 7);
        exact_target(&mut p, 8);
        assert_eq!(p.poll(), 8);
    }

    #[test]
    fn going_down_takes_two_updates_going_up_four() {
        let mut p = PollControl::new(6, 17);
        for n in 1..=4 {
            exact_target(&mut p, 7);
            assert_eq!(p.poll(), if n < 4 { 6 } else { 7 }, "update {n}");
        }
        for n in 1..=2 {
            exact_target(&mut p, 6);
            assert_eq!(p.poll(), if n < 2 { 7 } else { 6 }, "update {n}");
        }
    }

    #[test]
    fn a_target_that_is_zero_or_not_finite_changes_nothing() {
        let mut p = PollControl::new(4, 17);
        assert_eq!(settle(&mut p, NOISE, 1e-15), 7);
        assert_eq!(settle(&mut p, 0.0, 1e-15), 7);
        assert_eq!(settle(&mut p, f64::INFINITY, 1e-15), 7);
        assert_eq!(settle(&mut p, f64::NAN, 1e-15), 7);
    }

    #[test]
    fn reset_returns_to_the_shortest_poll_and_forgets_the_count() {
        let mut p = PollControl::new(4, 17);
        assert_eq!(settle(&mut p, NOISE, 1e-15), 7);
        // Three updates asking for more: one short of the hysteresis.
        for _ in 0..3 {
            p.update(NOISE, WANDER * 1e-6, 1e-15);
        }
        p.reset();
        assert_eq!(p.poll(), 4);
        // The count starts again from zero: three more do not raise it, the fourth does.
        for _ in 0..3 {
            p.update(NOISE, WANDER * 1e-6, 1e-15);
        }
        assert_eq!(p.poll(), 4);
        p.update(NOISE, WANDER * 1e-6, 1e-15);
        assert_eq!(p.poll(), 5);
    }
}
