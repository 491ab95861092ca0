//! A two-state Kalman filter on the local clock: offset θ (server minus local, seconds) and
//! frequency φ (the correction, s/s, that would keep θ constant).
//!
//! Time is counted in seconds of the *uncorrected* oscillator: over a span of local time ΔL
//! during which the clock ran with correction c, the oscillator advanced O = ΔL/(1 + c) and the
//! correction moved the clock by c·O, so θ changes by (φ − c)·O exactly, however large c is.
//! The steering log (`steer.rs`) supplies O and c·O for any span.
//!
//! Process noise: a random walk of the frequency (`wander`, (s/s)²/s, adapted to the data) and
//! a small white phase noise. Measurement noise comes with each sample (`machine.rs`).

use crate::time::NtpTimestamp;

/// White phase noise of the oscillator and the time stamping, s²/s: 1 ns per √s, well below
/// any network noise; it only keeps the covariance from collapsing.
const WHITE_PHASE_NOISE: f64 = 1e-18;

/// Starting frequency random walk, (s/s)²/s: 1e-9 per √s, an ordinary quartz oscillator in a
/// room (Allan deviation about 2e-8 at 1000 s). Adapted between the bounds below.
pub(super) const DEFAULT_WANDER: f64 = 1e-18;

/// Least wander the adaptation may settle on: a temperature-stable oscillator (1e-11 per √s).
const MIN_WANDER: f64 = 1e-22;

/// Most wander the adaptation may reach: 3e-7 per √s, a clock whose frequency moves by
/// several ppm within minutes (VMs, laptops changing power state).
const MAX_WANDER: f64 = 1e-13;

/// Weight of one update in the running average of normalised innovations (ntpd's
/// `CLOCK_AVG` is 8 as well).
const NIS_AVERAGE: f64 = 8.0;

/// The average normalised innovation squared above which the wander is raised: the filter's
/// predictions are worse than it believes.
const NIS_HIGH: f64 = 2.0;

/// The average normalised innovation squared below which the wander is lowered.
const NIS_LOW: f64 = 0.5;

/// Factor by which the wander changes at each adaptation.
const WANDER_FACTOR: f64 = 2.0;

/// The filter state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Kalman {
    /// Local time the state refers to.
    pub(super) time: NtpTimestamp,
    /// θ, seconds.
    pub(super) offset: f64,
    /// φ, s/s.
    pub(super) freq: f64,
    /// Covariance [P00, P01, P11].
    p: [f64; 3],
    /// Frequency random walk, (s/s)²/s.
    wander: f64,
    /// Running average of ν²/S.
    nis: f64,
}

/// What a measurement did to the filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Innovation {
    /// ν: measured minus predicted offset, seconds.
    pub(super) residual: f64,
    /// S: the variance ν was expected to have, s².
    pub(super) variance: f64,
    /// The predicted offset variance before the measurement, s².
    pub(super) prior: f64,
}

impl Innovation {
    /// ν²/S: about 1 on average when the filter's noise model is right.
    pub(super) fn normalised(&self) -> f64 {
        self.residual * self.residual / self.variance
    }
}

impl Kalman {
    /// A filter that knows the offset at `time` with variance `offset_var` and the frequency
    /// with variance `freq_var`.
    pub(super) fn new(
        time: NtpTimestamp,
        offset: f64,
        offset_var: f64,
        freq: f64,
        freq_var: f64,
    ) -> Self {
        Self {
            time,
            offset,
            freq,
            p: [offset_var, 0.0, freq_var],
            wander: DEFAULT_WANDER,
            nis: 1.0,
        }
    }

    /// The frequency random walk the filter currently assumes, (s/s)²/s.
    pub(super) fn wander(&self) -> f64 {
        self.wander
    }

    /// The offset's standard deviation, seconds.
    pub(super) fn offset_sigma(&self) -> f64 {
        self.p[0].max(0.0).sqrt()
    }

    /// The frequency's standard deviation, s/s.
    pub(super) fn freq_sigma(&self) -> f64 {
        self.p[2].max(0.0).sqrt()
    }

    /// The offset's standard deviation `dt` oscillator seconds after the state's time if
    /// nothing is measured meanwhile (the wander left out), seconds.
    pub(super) fn offset_sigma_after(&self, dt: f64) -> f64 {
        let [p00, p01, p11] = self.p;
        (p00 + 2.0 * dt * p01 + dt * dt * p11).max(0.0).sqrt()
    }

    /// Moves the state to `time`, `elapsed` oscillator seconds later, during which the clock
    /// was corrected by `phase` seconds in total.
    pub(super) fn predict(&mut self, time: NtpTimestamp, elapsed: f64, phase: f64) {
        let dt = elapsed.max(0.0);
        self.offset += self.freq * dt - phase;
        let [p00, p01, p11] = self.p;
        let q = self.wander;
        self.p = [
            p00 + 2.0 * dt * p01 + dt * dt * p11 + q * dt.powi(3) / 3.0 + WHITE_PHASE_NOISE * dt,
            p01 + dt * p11 + q * dt * dt / 2.0,
            p11 + q * dt,
        ];
        self.time = time;
    }

    /// What measuring `offset` with variance `noise` would show, without using it.
    pub(super) fn innovation(&self, offset: f64, noise: f64) -> Innovation {
        Innovation {
            residual: offset - self.offset,
            variance: self.p[0] + noise,
            prior: self.p[0],
        }
    }

    /// Uses a measurement of the offset at the state's time and, if `adapt`, adjusts the wander
    /// to how surprising it was (not while the filter is still settling: early surprises say
    /// more about the initial uncertainty than about the oscillator).
    pub(super) fn update(&mut self, offset: f64, noise: f64, adapt: bool) -> Innovation {
        let inn = self.innovation(offset, noise);
        let [p00, p01, p11] = self.p;
        let (k0, k1) = (p00 / inn.variance, p01 / inn.variance);
        self.offset += k0 * inn.residual;
        self.freq += k1 * inn.residual;
        self.p = [(1.0 - k0) * p00, (1.0 - k0) * p01, p11 - k1 * p01];
        if adapt {
            self.adapt(inn.normalised());
        }
        inn
    }

    /// Widens the uncertainty so that a jump the filter refused to believe can be followed:
    /// the offset by `offset_var`, the frequency by `freq_var`.
    pub(super) fn inflate(&mut self, offset_var: f64, freq_var: f64) {
        self.p[0] += offset_var;
        self.p[2] += freq_var;
    }

    /// Starts over at `time` after the clock was stepped by the measured offset: the offset is
    /// now zero with variance `offset_var`; the frequency knowledge is kept.
    pub(super) fn restart(&mut self, time: NtpTimestamp, offset_var: f64) {
        self.offset = 0.0;
        self.p = [offset_var, 0.0, self.p[2]];
        self.time = time;
    }

    /// Raises the wander when innovations are persistently larger than predicted, lowers it
    /// when they are persistently smaller (a multiplicative search between the bounds).
    fn adapt(&mut self, nis: f64) {
        if !nis.is_finite() {
            return;
        }
        self.nis += (nis.min(100.0) - self.nis) / NIS_AVERAGE;
        if self.nis > NIS_HIGH {
            self.wander = (self.wander * WANDER_FACTOR).min(MAX_WANDER);
            self.nis = 1.0;
        } else if self.nis < NIS_LOW {
            self.wander = (self.wander / WANDER_FACTOR).max(MIN_WANDER);
            self.nis = 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NtpDuration;

    fn at(secs: f64) -> NtpTimestamp {
        NtpTimestamp::from_parts(0xec00_0000, 0) + NtpDuration::from_seconds_f64(secs)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
    }

    #[test]
    fn prediction_carries_the_frequency_and_grows_the_covariance_by_the_model() {
        let mut k = Kalman::new(at(0.0), 1e-3, 1e-8, 2e-6, 1e-12);
        k.wander = 1e-14;
        k.predict(at(100.0), 100.0, 1e-4);
        // θ moves by φ·dt less the correction applied meanwhile.
        assert!(close(k.offset, 1e-3 + 2e-6 * 100.0 - 1e-4), "{}", k.offset);
        let (q, w) = (1e-14, WHITE_PHASE_NOISE);
        let p00 = 1e-8 + 100.0 * 100.0 * 1e-12 + q * 1e6 / 3.0 + w * 100.0;
        let p01 = 100.0 * 1e-12 + q * 100.0 * 100.0 / 2.0;
        let p11 = 1e-12 + q * 100.0;
        assert!(
            close(k.p[0], p00) && close(k.p[1], p01) && close(k.p[2], p11),
            "{:?}",
            k.p
        );
        assert!(close(k.offset_sigma(), p00.sqrt()));
        assert!(close(k.freq_sigma(), p11.sqrt()));
        // From a state with a cross term, both it and the frequency term carry over.
        k.predict(at(150.0), 50.0, 0.0);
        let p00 = p00 + 2.0 * 50.0 * p01 + 2500.0 * p11 + q * 125_000.0 / 3.0 + w * 50.0;
        let p01 = p01 + 50.0 * p11 + q * 2500.0 / 2.0;
        assert!(close(k.p[0], p00) && close(k.p[1], p01), "{:?}", k.p);
    }

    #[test]
    fn the_offset_sigma_ahead_counts_the_frequency_uncertainty_but_not_the_wander() {
        let mut k = Kalman::new(at(0.0), 0.0, 1e-8, 0.0, 1e-12);
        k.predict(at(10.0), 10.0, 0.0);
        let [p00, p01, p11] = k.p;
        assert!(p01 > 0.0);
        let expected = (p00 + 2.0 * 64.0 * p01 + 64.0 * 64.0 * p11).sqrt();
        assert!(close(k.offset_sigma_after(64.0), expected));
    }

    #[test]
    fn a_normalised_innovation_is_the_squared_residual_over_its_variance() {
        let inn = Innovation {
            residual: 3e-3,
            variance: 4e-6,
            prior: 1e-6,
        };
        assert!(close(inn.normalised(), 2.25));
    }

    #[test]
    fn persistent_surprises_raise_the_wander_and_persistent_calm_lowers_it() {
        let mut k = Kalman::new(at(0.0), 0.0, 1e-10, 0.0, 1e-16);
        assert!(close(k.wander(), DEFAULT_WANDER));
        // A residual of ten sigmas (ν²/S = 100) moves the average from 1 to 13.4 > 2: the
        // wander doubles and the average starts again from 1.
        let off = k.offset + 10.0 * (k.p[0] + 1e-10).sqrt();
        k.update(off, 1e-10, true);
        assert!(close(k.wander(), 2.0 * DEFAULT_WANDER), "{}", k.wander());
        // Residuals of zero: the average falls by 1/8 each time, below 0.5 at the sixth
        // (0.875⁶ = 0.45), and the wander halves back.
        let mut n = 0;
        while close(k.wander(), 2.0 * DEFAULT_WANDER) && n < 20 {
            let off = k.offset;
            k.update(off, 1e-10, true);
            n += 1;
        }
        assert!(
            close(k.wander(), DEFAULT_WANDER),
            "{} after {n}",
            k.wander()
        );
        assert_eq!(n, 6, "calm updates");
    }

    #[test]
    fn inflating_widens_offset_and_frequency_and_a_restart_keeps_only_the_frequency() {
        let mut k = Kalman::new(at(0.0), 1e-3, 1e-8, 2e-6, 1e-12);
        k.predict(at(10.0), 10.0, 0.0);
        let before = k.p;
        k.inflate(4e-8, 3e-12);
        assert!(close(k.p[0], before[0] + 4e-8) && close(k.p[2], before[2] + 3e-12));
        assert!(close(k.p[1], before[1]));
        k.restart(at(20.0), 1e-10);
        assert_eq!((k.time, k.offset), (at(20.0), 0.0));
        assert!(close(k.p[0], 1e-10) && k.p[1].abs() < 1e-300 && close(k.p[2], before[2] + 3e-12));
        assert!(close(k.freq, 2e-6));
    }
}
