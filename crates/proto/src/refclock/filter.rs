//! The median filter of a reference clock: the readings of one poll interval become one sample.
//!
//! A GPS read through gpsd gives a reading a second, each off by the serial line's and the
//! scheduler's jitter (hundreds of microseconds for NMEA, some for PPS); a few are far off (a
//! late interrupt, a second numbered wrongly). As in chrony's reference-clock filter, the
//! readings of a poll interval are sorted by offset, the outer fifth on each side is dropped,
//! and the rest are averaged: the mean of the middle 60 % has nearly the mean's accuracy on
//! Gaussian jitter and the median's indifference to outliers. The result is one sample — mean
//! offset at the mean receive time, which is exact for a clock whose offset drifts linearly
//! through the interval, and for a clock slewed at a constant rate through it — with a
//! dispersion from the spread of the readings kept, which is what the clock filter, selection
//! and the discipline then weigh it by.
//!
//! The spread is taken around the interval's trend, not around the mean: while the start-up
//! frequency measurement lets the clock run free, a clock 100 ppm off moves 1.6 ms through a
//! 16 s interval, and a spread that counted that drift as jitter would weigh pulses good to
//! 100 ns as if they were good to 100 µs. The trend is the median of the slopes between every
//! two readings (Theil–Sen), which a reading numbered a second wrong does not tilt, and the
//! readings dropped are those furthest from it.

use std::collections::VecDeque;
use std::vec::Vec;

use super::Reading;
use crate::packet::Leap;
use crate::time::{NtpDuration, NtpTimestamp};

/// Most readings kept between two samples: a poll interval of 2^6 s at one reading a second
/// (longer intervals keep the newest 64).
pub const MAX_READINGS: usize = 64;

/// Share of the readings dropped at each end of the sorted offsets.
const TRIM: f64 = 0.2;

/// One sample made of a poll interval's readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilteredSample {
    /// The mean receive time of the readings kept.
    pub time: NtpTimestamp,
    /// Their mean offset (reference minus local clock), seconds.
    pub offset: f64,
    /// The standard error of that mean, never below the local clock's precision, seconds.
    pub dispersion: f64,
    /// The standard deviation of the readings kept, seconds.
    pub jitter: f64,
    /// How many readings there were, and how many were kept.
    pub readings: usize,
    /// How many readings were kept.
    pub kept: usize,
    /// The newest reading's leap warning.
    pub leap: Leap,
}

/// The readings collected since the last sample.
#[derive(Debug, Clone, Default)]
pub struct MedianFilter {
    readings: VecDeque<Reading>,
}

impl MedianFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reading; the oldest goes once [`MAX_READINGS`] are held. A reading whose receive
    /// time is not after the newest one held is a repeat or out of order and is dropped
    /// (returns `false`).
    pub fn add(&mut self, reading: Reading) -> bool {
        if let Some(last) = self.readings.back()
            && (reading.receive - last.receive).to_bits() <= 0
        {
            return false;
        }
        if self.readings.len() >= MAX_READINGS {
            self.readings.pop_front();
        }
        self.readings.push_back(reading);
        true
    }

    /// How many readings are held.
    pub fn len(&self) -> usize {
        self.readings.len()
    }

    /// Whether no reading is held.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// Forgets every reading (after the clock was stepped: they are on the old time scale).
    pub fn clear(&mut self) {
        self.readings.clear();
    }

    /// The sample of the readings held, which are then forgotten; `None` without readings.
    /// `precision` is the local clock's precision, seconds.
    pub fn take(&mut self, precision: f64) -> Option<FilteredSample> {
        let newest = *self.readings.back()?;
        let mut points: Vec<(f64, f64)> = self
            .readings
            .drain(..)
            .map(|r| ((r.receive - newest.receive).to_seconds_f64(), r.offset()))
            .filter(|(t, o)| t.is_finite() && o.is_finite())
            .collect();
        let n = points.len();
        if n == 0 {
            return None;
        }
        let slope = trend(&points);
        let residual = |p: &(f64, f64)| p.1 - slope * p.0;
        points.sort_by(|a, b| residual(a).total_cmp(&residual(b)));
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "n ≤ MAX_READINGS"
        )]
        let drop = (n as f64 * TRIM).floor() as usize;
        let kept = points.get(drop..n - drop).unwrap_or(&points);
        #[expect(clippy::cast_precision_loss, reason = "kept ≤ MAX_READINGS")]
        let k = kept.len() as f64;
        let mean_t = kept.iter().map(|p| p.0).sum::<f64>() / k;
        let mean_o = kept.iter().map(|p| p.1).sum::<f64>() / k;
        let var = if kept.len() > 1 {
            kept.iter()
                .map(|p| (p.1 - mean_o - slope * (p.0 - mean_t)).powi(2))
                .sum::<f64>()
                / (k - 1.0)
        } else {
            0.0
        };
        let jitter = var.sqrt();
        Some(FilteredSample {
            time: newest.receive + NtpDuration::from_seconds_f64(mean_t),
            offset: mean_o,
            dispersion: (jitter / k.sqrt()).max(precision),
            jitter: jitter.max(precision),
            readings: n,
            kept: kept.len(),
            leap: newest.leap,
        })
    }
}

/// The median of the slopes between every two readings (offset per second of receive time);
/// 0 with fewer than three readings, where a slope would explain away all of their spread.
fn trend(points: &[(f64, f64)]) -> f64 {
    if points.len() < 3 {
        return 0.0;
    }
    let mut slopes: Vec<f64> = points
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            points.iter().skip(i + 1).filter_map(move |b| {
                let dt = b.0 - a.0;
                let slope = (b.1 - a.1) / dt;
                (dt != 0.0 && slope.is_finite()).then_some(slope)
            })
        })
        .collect();
    if slopes.is_empty() {
        return 0.0;
    }
    slopes.sort_by(f64::total_cmp);
    let mid = slopes.len() / 2;
    let upper = slopes.get(mid).copied().unwrap_or(0.0);
    if slopes.len() % 2 == 1 {
        upper
    } else {
        (slopes.get(mid - 1).copied().unwrap_or(upper) + upper) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(t: f64, offset: f64) -> Reading {
        let receive = NtpTimestamp::from_parts(3_900_000_000, 0) + NtpDuration::from_seconds_f64(t);
        Reading {
            reference: receive + NtpDuration::from_seconds_f64(offset),
            receive,
            leap: Leap::NoWarning,
        }
    }

    #[test]
    fn outliers_at_either_end_do_not_move_the_sample() {
        let mut f = MedianFilter::new();
        for i in 0..16 {
            let offset = match i {
                3 => 0.5,
                9 => -0.4,
                _ => 1e-4,
            };
            f.add(reading(f64::from(i), offset));
        }
        let s = f.take(1e-9).unwrap();
        assert!((s.offset - 1e-4).abs() < 1e-9, "{s:?}");
        assert_eq!((s.readings, s.kept), (16, 10));
        assert!(f.is_empty());
    }

    #[test]
    fn a_linear_drift_is_exact_at_the_mean_time() {
        let mut f = MedianFilter::new();
        // 50 ppm: the offset grows by 50 µs a second.
        for i in 0..16 {
            f.add(reading(f64::from(i), 1e-3 + 50e-6 * f64::from(i)));
        }
        let s = f.take(1e-9).unwrap();
        let t = (s.time - reading(0.0, 0.0).receive).to_seconds_f64();
        assert!((s.offset - (1e-3 + 50e-6 * t)).abs() < 1e-8, "{s:?} at {t}");
    }

    #[test]
    fn a_drifting_clock_does_not_count_its_drift_as_jitter() {
        // A clock 100 ppm off, free-running through a 16 s interval of pulses good to 100 ns,
        // one of them numbered a second wrong.
        let mut f = MedianFilter::new();
        for i in 0..16 {
            let jitter = if i % 2 == 0 { 1e-7 } else { -1e-7 };
            let wrong = if i == 5 { 1.0 } else { 0.0 };
            f.add(reading(
                f64::from(i),
                100e-6 * f64::from(i) + jitter + wrong,
            ));
        }
        let s = f.take(1e-9).unwrap();
        let t = (s.time - reading(0.0, 0.0).receive).to_seconds_f64();
        assert!((s.offset - 100e-6 * t).abs() < 1e-7, "{s:?} at {t}");
        assert!(s.jitter < 2e-7, "{s:?}");
        assert!(s.dispersion < 1e-7, "{s:?}");
    }

    #[test]
    fn the_dispersion_is_the_standard_error_of_the_kept_readings() {
        let mut f = MedianFilter::new();
        for i in 0..10 {
            f.add(reading(f64::from(i), if i % 2 == 0 { 1e-4 } else { -1e-4 }));
        }
        let s = f.take(1e-9).unwrap();
        assert!(s.offset.abs() < 1e-9);
        assert!(
            (s.jitter - 1e-4 * (6.0f64 / 5.0).sqrt()).abs() < 1e-9,
            "{s:?}"
        );
        assert!((s.dispersion - s.jitter / 6f64.sqrt()).abs() < 1e-12);
        // Never below the precision.
        f.add(reading(20.0, 0.0));
        assert!((f.take(2e-6).unwrap().dispersion - 2e-6).abs() < 1e-15);
    }

    #[test]
    fn repeated_and_out_of_order_readings_are_dropped() {
        let mut f = MedianFilter::new();
        assert!(f.add(reading(1.0, 0.0)));
        assert!(!f.add(reading(1.0, 0.1)));
        assert!(!f.add(reading(0.5, 0.1)));
        assert_eq!(f.len(), 1);
        assert!(f.take(1e-9).is_some());
        assert!(f.take(1e-9).is_none());
    }

    #[test]
    fn at_most_max_readings_are_held() {
        let mut f = MedianFilter::new();
        for i in 0..200 {
            f.add(reading(f64::from(i), f64::from(i)));
        }
        assert_eq!(f.len(), MAX_READINGS);
        let s = f.take(1e-9).unwrap();
        assert!((s.offset - (200.0 - 32.5)).abs() < 1e-6, "{s:?}");
    }
}
