//! The clock filter of RFC 5905 §10: the last eight samples of one source, and the estimate
//! (offset, delay, dispersion, jitter) derived from the best of them.
//!
//! Queueing only ever adds delay, and the offset error of a sample is at most half of its extra
//! delay, so the sample with the lowest delay is the most trustworthy. The filter keeps eight
//! stages, picks the lowest-delay one, and only reports it if it is newer than the one reported
//! before (a sample is used at most once).

use crate::time::NtpTimestamp;

/// Number of stages (RFC 5905 NSTAGE).
pub const STAGES: usize = 8;

/// Dispersion of an empty stage and the ceiling of any dispersion (RFC 5905 MAXDISP), seconds.
pub const MAX_DISPERSION: f64 = 16.0;

/// Dispersion growth rate (RFC 5905 PHI), seconds per second.
pub const PHI: f64 = 15e-6;

/// One measurement from an on-wire exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// θ: server minus local clock, seconds.
    pub offset: f64,
    /// δ: round-trip delay, seconds (never below the system precision).
    pub delay: f64,
    /// ε: dispersion when measured, seconds.
    pub dispersion: f64,
    /// Local time (T4) of the measurement.
    pub time: NtpTimestamp,
}

/// The filter's estimate of a source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Offset of the chosen sample, seconds.
    pub offset: f64,
    /// Delay of the chosen sample, seconds.
    pub delay: f64,
    /// Peer dispersion ε: weighted sum over the stages, seconds.
    pub dispersion: f64,
    /// Peer jitter ψ: RMS difference of the stage offsets from the chosen one, seconds.
    pub jitter: f64,
    /// When the chosen sample was taken.
    pub time: NtpTimestamp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Stage {
    sample: Sample,
    valid: bool,
}

/// The eight-stage shift register of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockFilter {
    stages: [Stage; STAGES],
    /// Index of the newest stage.
    newest: usize,
    /// Time of the sample last reported, to use each at most once.
    last_used: Option<NtpTimestamp>,
    /// The estimate from the latest evaluation, fresh or not.
    latest: Option<Estimate>,
}

impl Default for ClockFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockFilter {
    /// An empty filter.
    pub fn new() -> Self {
        let empty = Stage {
            sample: Sample {
                offset: 0.0,
                delay: MAX_DISPERSION,
                dispersion: MAX_DISPERSION,
                time: NtpTimestamp::ZERO,
            },
            valid: false,
        };
        Self {
            stages: [empty; STAGES],
            newest: 0,
            last_used: None,
            latest: None,
        }
    }

    /// Forgets everything (after a clock step, the old offsets mean nothing).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The samples held, newest first (ntpq's `filtdelay`/`filtoffset`/`filtdisp` order), with
    /// dispersions aged to `now`. Empty stages are reported with MAXDISP.
    pub fn stages(&self, now: NtpTimestamp) -> [(f64, f64, f64); STAGES] {
        let mut out = [(0.0, 0.0, MAX_DISPERSION); STAGES];
        for (i, o) in out.iter_mut().enumerate() {
            let idx = (self.newest + STAGES - i) % STAGES;
            if let Some(stage) = self.stages.get(idx)
                && stage.valid
            {
                *o = (
                    stage.sample.delay,
                    stage.sample.offset,
                    aged(&stage.sample, now),
                );
            }
        }
        out
    }

    /// The estimate after the latest sample, whether or not its best stage was new. Dispersion
    /// and jitter change with every sample (RFC 5905 A.5.2 updates them before the "use each
    /// sample once" test), so selection must see them even when the offset is not new.
    pub fn latest(&self) -> Option<Estimate> {
        self.latest
    }

    /// Shifts in a sample and, if the best stage is newer than the last one reported, returns
    /// the new estimate. `precision` is the local clock's precision in seconds (the jitter floor).
    pub fn add(&mut self, sample: Sample, precision: f64) -> Option<Estimate> {
        self.push(Stage {
            sample,
            valid: true,
        });
        self.evaluate(sample.time, precision)
    }

    /// Shifts in an empty stage: called when three polls in a row went unanswered, so old
    /// samples lose weight (RFC 5905 §13, "clock_filter(0, 0, MAXDISP)").
    pub fn add_gap(&mut self, now: NtpTimestamp) {
        self.push(Stage {
            sample: Sample {
                offset: 0.0,
                delay: 0.0,
                dispersion: MAX_DISPERSION,
                time: now,
            },
            valid: false,
        });
    }

    fn push(&mut self, stage: Stage) {
        self.newest = (self.newest + 1) % STAGES;
        if let Some(slot) = self.stages.get_mut(self.newest) {
            *slot = stage;
        }
    }

    fn evaluate(&mut self, now: NtpTimestamp, precision: f64) -> Option<Estimate> {
        // Valid stages sorted by delay; ties keep the newer sample first.
        let mut order: [(f64, usize); STAGES] = [(f64::INFINITY, 0); STAGES];
        let mut n = 0;
        for age in 0..STAGES {
            let idx = (self.newest + STAGES - age) % STAGES;
            if let (Some(stage), Some(slot)) = (self.stages.get(idx), order.get_mut(n))
                && stage.valid
            {
                *slot = (stage.sample.delay, idx);
                n += 1;
            }
        }
        let sorted = order.get_mut(..n)?;
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let &(_, best_idx) = sorted.first()?;
        let best = self.stages.get(best_idx)?.sample;

        // ε = Σ εᵢ / 2^(i+1) over all eight stages in delay order, empty stages last.
        let mut dispersion = 0.0;
        let mut weight = 0.5;
        for &(_, idx) in sorted.iter() {
            if let Some(s) = self.stages.get(idx) {
                dispersion += aged(&s.sample, now).min(MAX_DISPERSION) * weight;
            }
            weight /= 2.0;
        }
        for _ in n..STAGES {
            dispersion += MAX_DISPERSION * weight;
            weight /= 2.0;
        }
        let mut sum_sq = 0.0;
        for &(_, idx) in sorted.iter() {
            if let Some(s) = self.stages.get(idx) {
                sum_sq += (s.sample.offset - best.offset).powi(2);
            }
        }
        #[expect(clippy::cast_precision_loss, reason = "n ≤ 8")]
        let jitter = if n > 1 {
            (sum_sq / (n - 1) as f64).sqrt()
        } else {
            0.0
        }
        .max(precision);

        let estimate = Estimate {
            offset: best.offset,
            delay: best.delay,
            dispersion,
            jitter,
            time: best.time,
        };
        self.latest = Some(estimate);
        if self
            .last_used
            .is_some_and(|t| (best.time - t).to_bits() <= 0)
        {
            return None;
        }
        self.last_used = Some(best.time);
        Some(estimate)
    }
}

/// A sample's dispersion grown by PHI per second since it was taken.
fn aged(sample: &Sample, now: NtpTimestamp) -> f64 {
    let age = (now - sample.time).to_seconds_f64().max(0.0);
    (sample.dispersion + PHI * age).min(MAX_DISPERSION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NtpDuration;

    fn at(secs: f64) -> NtpTimestamp {
        NtpTimestamp::from_parts(0xec00_0000, 0) + NtpDuration::from_seconds_f64(secs)
    }

    fn sample(t: f64, offset: f64, delay: f64) -> Sample {
        Sample {
            offset,
            delay,
            dispersion: 1e-5,
            time: at(t),
        }
    }

    #[test]
    fn first_sample_is_reported_with_high_dispersion() {
        let mut f = ClockFilter::new();
        let e = f.add(sample(0.0, 0.001, 0.0002), 1e-7).unwrap();
        assert!((e.offset - 0.001).abs() < 1e-12);
        // Seven empty stages weigh in at MAXDISP.
        assert!(
            e.dispersion > 0.1 && e.dispersion < 16.0,
            "{}",
            e.dispersion
        );
    }

    #[test]
    fn lowest_delay_sample_wins() {
        let mut f = ClockFilter::new();
        f.add(sample(0.0, 0.004, 0.0050), 1e-7);
        let e = f.add(sample(64.0, 0.0001, 0.0002), 1e-7).unwrap();
        assert!((e.offset - 0.0001).abs() < 1e-12);
        // A later, noisier sample does not displace it, and the old one is not reused …
        assert!(f.add(sample(128.0, 0.003, 0.0040), 1e-7).is_none());
        // … but the dispersion of the estimate shrinks as the filter fills.
        let latest = f.latest().unwrap();
        assert!((latest.offset - 0.0001).abs() < 1e-12);
        assert!(latest.dispersion < e.dispersion);
    }

    #[test]
    fn jitter_is_rms_of_offset_differences() {
        let mut f = ClockFilter::new();
        let mut last = None;
        for (i, off) in [0.002, -0.002, 0.002, 0.0].iter().enumerate() {
            #[expect(clippy::cast_precision_loss, reason = "tiny")]
            let t = i as f64 * 64.0;
            // Each sample has a lower delay than the one before, so each becomes the best.
            last = f.add(sample(t, *off, 0.001 - t * 1e-6), 1e-7).or(last);
        }
        let e = last.unwrap();
        assert!(e.offset.abs() < 1e-12);
        // Differences 0.002, -0.002, 0.002 → RMS over n−1 = 3 → 0.002.
        assert!((e.jitter - 0.002).abs() < 1e-9, "{}", e.jitter);
    }

    #[test]
    fn stages_are_listed_newest_first_and_gaps_count_as_empty() {
        let mut f = ClockFilter::new();
        f.add(sample(0.0, 0.1, 0.01), 1e-7);
        f.add(sample(1.0, 0.2, 0.02), 1e-7);
        f.add_gap(at(2.0));
        let s = f.stages(at(2.0));
        assert!((s[0].2 - MAX_DISPERSION).abs() < 1e-9);
        assert_eq!((s[1].0, s[1].1), (0.02, 0.2));
        assert_eq!((s[2].0, s[2].1), (0.01, 0.1));
    }
}
