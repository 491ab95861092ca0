//! Start-up: how long the frequency is learned before the clock is trusted to it.
//!
//! Without a drift file or iburst the discipline corrects the phase at once and then holds the
//! clock's frequency while it measures the true one ([`Hold`], ntpd's FREQ state); with iburst
//! or a drift file it corrects everything at once and asks for early polls instead. Both end
//! when the filter predicts the clock a poll ahead ([`predicts_poorly`]), or after
//! [`START_UP_SPAN`]. docs/algorithm.md §8 has the reasons and the numbers.

use super::kalman::Kalman;
use super::seconds_between;
use crate::time::{NtpDuration, NtpTimestamp};

/// The frequency counts as learned once the filter predicts the offset one minpoll interval
/// ahead to within this (one σ), seconds: then a correction keeps the clock well inside the
/// 150 µs that a quartz and a LAN path allow until the next poll. Until then the start-up
/// measurement holds the clock, or (after an immediate correction) sources poll early.
pub(super) const PREDICTION_LIMIT: f64 = 80e-6;

/// Longest span after the first correction in which the frequency is measured or polls come
/// early, seconds: two polls at minpoll 6 and their bursts fit, and the clock is corrected
/// within two minutes of start-up. A path too noisy for [`PREDICTION_LIMIT`] gets no more.
pub(super) const START_UP_SPAN: f64 = 100.0;

/// Whether `k` cannot yet predict the offset one `minpoll` interval ahead to
/// [`PREDICTION_LIMIT`] (the wander left out: it is the frequency that is being learned).
pub(super) fn predicts_poorly(k: &Kalman, minpoll: i8) -> bool {
    predicts_poorly_over(k, 2f64.powi(i32::from(minpoll)))
}

/// Whether `k` cannot yet predict the offset `horizon` seconds ahead to [`PREDICTION_LIMIT`].
fn predicts_poorly_over(k: &Kalman, horizon: f64) -> bool {
    k.offset_sigma_after(horizon) > PREDICTION_LIMIT
}

/// The shortest span the start-up measurement must predict, seconds. Its frequency is the one
/// the clock keeps (and the drift file records) once it ends; over one minpoll of 2 s, 80 µs
/// lets a frequency 40 ppm off pass (measured: up to 16 ppm off at `minpoll 1`).
pub(super) const MIN_MEASUREMENT_HORIZON: f64 = 16.0;

/// Whether the start-up measurement ([`Hold`]) must go on: [`predicts_poorly`] over at least
/// [`MIN_MEASUREMENT_HORIZON`].
pub(super) fn measures_poorly(k: &Kalman, minpoll: i8) -> bool {
    predicts_poorly_over(
        k,
        2f64.powi(i32::from(minpoll)).max(MIN_MEASUREMENT_HORIZON),
    )
}

/// The start-up frequency measurement (ntpd's FREQ state): the clock keeps the frequency it
/// had while the filter learns the true one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Hold {
    /// When it began (the first correction), local time.
    pub(super) since: NtpTimestamp,
    /// The local time stored samples are referred to (`PendingSlew::end`).
    pub(super) reference: NtpTimestamp,
    /// The phase the clock gains per second on its own, as estimated, s/s.
    pub(super) drift: f64,
}

impl Hold {
    pub(super) fn new(at: NtpTimestamp) -> Self {
        Self {
            since: at,
            reference: at,
            drift: 0.0,
        }
    }

    /// Refers stored samples to `now` instead of the old reference and returns the phase that
    /// moves them — unless a slew still runs (`free` false): they stay referred to its end.
    pub(super) fn move_reference(&mut self, now: NtpTimestamp, free: bool) -> f64 {
        if !free {
            return 0.0;
        }
        let phase = self.drift * seconds_between(now, self.reference);
        self.reference = now;
        phase
    }

    /// When the clock is corrected with whatever is known by then.
    pub(super) fn deadline(&self) -> NtpTimestamp {
        self.since + NtpDuration::from_seconds_f64(START_UP_SPAN)
    }
}

#[cfg(test)]
mod horizon_tests {
    use super::*;

    #[test]
    fn a_short_minpoll_does_not_end_the_measurement_on_a_frequency_known_to_20_ppm() {
        // Offset known to 10 µs, frequency to 20 ppm (1 σ).
        let k = Kalman::new(NtpTimestamp::ZERO, 0.0, 1e-10, 0.0, (20e-6_f64).powi(2));
        // One minpoll of 2 s ahead that is 41 µs: good enough to poll again...
        assert!(!predicts_poorly(&k, 1));
        // ...but not to hand the frequency over: 16 s ahead it is 320 µs.
        assert!(measures_poorly(&k, 1));
        // A frequency known to 2 ppm passes either way, and a long minpoll sets its own span.
        let good = Kalman::new(NtpTimestamp::ZERO, 0.0, 1e-10, 0.0, (2e-6_f64).powi(2));
        assert!(!measures_poorly(&good, 1));
        assert!(measures_poorly(&good, 6), "64 s ahead it is 128 µs");
    }
}
