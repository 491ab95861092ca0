//! The clock filter of RFC 5905 §10: the last eight samples of one source, and the estimate
//! (offset, delay, dispersion, jitter) derived from the best of them.
//!
//! Queueing only ever adds delay, and the offset error of a sample is at most half of its extra
//! delay, so the sample with the lowest delay is the most trustworthy. The filter keeps eight
//! stages, picks the lowest-delay one, and only reports it if it is newer than the one reported
//! before (a sample is used at most once).
//!
//! sundial departs from RFC 5905 in three places (docs/algorithm.md §2): stages that hold no
//! sample — never written, or an unanswered poll — do not count at MAXDISP in the peer
//! dispersion, so a source is selectable after its first sample instead of its fourth and stays
//! selectable through heavy loss; samples older than the Allan intercept sort last, as in ntpd;
//! and stored offsets follow the clock corrections the discipline makes
//! ([`ClockFilter::apply_clock_correction`]), so they describe the clock as it is now rather than
//! as it was when they were measured.

use crate::time::NtpTimestamp;

/// Number of stages (RFC 5905 NSTAGE).
pub const STAGES: usize = 8;

/// Dispersion of an empty stage and the ceiling of any dispersion (RFC 5905 MAXDISP), seconds.
pub const MAX_DISPERSION: f64 = 16.0;

/// Dispersion growth rate (RFC 5905 PHI), seconds per second.
pub const PHI: f64 = 15e-6;

/// Age beyond which a stage sorts after every younger one whatever its delay (ntpd's Allan
/// intercept, `CLOCK_ALLAN` 2^11 s): an old sample's offset has gone stale with the clock's
/// wander, so a younger one with a longer delay is the better estimate. This is ntpd's rule,
/// not RFC 5905's, and it keeps the peer dispersion from growing with old stages at long polls.
pub const ALLAN_INTERCEPT_S: f64 = 2048.0;

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

/// What a stage of the shift register holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Never written since the filter was created or reset: carries no information at all.
    Empty,
    /// A poll that went unanswered (three in a row): weighs in at MAXDISP.
    Gap,
    /// A measurement.
    Sample,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Stage {
    sample: Sample,
    kind: Kind,
}

impl Stage {
    fn is_sample(&self) -> bool {
        self.kind == Kind::Sample
    }
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
            kind: Kind::Empty,
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
                && stage.is_sample()
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
            kind: Kind::Sample,
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
            kind: Kind::Gap,
        });
    }

    /// Moves every stored offset to account for a correction of the local clock by `phase`
    /// seconds (positive: the clock was moved forward, so the servers now look less far ahead).
    ///
    /// The discipline reports each phase correction it commits; shifting the stored samples
    /// keeps selection from comparing offsets measured before a large slew with offsets
    /// measured after it (chrony slews its sample registers the same way).
    pub fn apply_clock_correction(&mut self, phase: f64) {
        if !phase.is_finite() {
            return;
        }
        for stage in self.stages.iter_mut().filter(|s| s.is_sample()) {
            stage.sample.offset -= phase;
        }
        if let Some(e) = self.latest.as_mut() {
            e.offset -= phase;
        }
    }

    /// The delays of the stored samples, in no particular order.
    pub fn sample_delays(&self) -> impl Iterator<Item = f64> + '_ {
        self.stages
            .iter()
            .filter(|s| s.is_sample())
            .map(|s| s.sample.delay)
    }

    /// The lowest delay among the stored samples: the best available estimate of the path's
    /// delay without queueing, against which the discipline judges each new sample.
    pub fn min_delay(&self) -> Option<f64> {
        self.sample_delays().min_by(f64::total_cmp)
    }

    fn push(&mut self, stage: Stage) {
        self.newest = (self.newest + 1) % STAGES;
        if let Some(slot) = self.stages.get_mut(self.newest) {
            *slot = stage;
        }
    }

    fn evaluate(&mut self, now: NtpTimestamp, precision: f64) -> Option<Estimate> {
        // Valid stages sorted by delay, those older than the Allan intercept last; ties keep the
        // newer sample first.
        let mut order: [(f64, usize); STAGES] = [(f64::INFINITY, 0); STAGES];
        let mut n = 0;
        for age in 0..STAGES {
            let idx = (self.newest + STAGES - age) % STAGES;
            if let (Some(stage), Some(slot)) = (self.stages.get(idx), order.get_mut(n))
                && stage.is_sample()
            {
                let age = (now - stage.sample.time).to_seconds_f64();
                let stale = if age > ALLAN_INTERCEPT_S {
                    MAX_DISPERSION
                } else {
                    0.0
                };
                *slot = (stale + stage.sample.delay, idx);
                n += 1;
            }
        }
        let sorted = order.get_mut(..n)?;
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let &(_, best_idx) = sorted.first()?;
        let best = self.stages.get(best_idx)?.sample;

        // ε = Σ εᵢ / 2^(i+1) in delay order, renormalised over the stages that hold samples.
        // RFC 5905 also counts empty stages and unanswered polls at MAXDISP: that keeps a
        // source unselectable until its fourth sample, and at 30 % loss the gaps pile up until
        // a perfectly usable source drops out of selection for most of an hour. The age of the
        // samples (PHI per second) already makes a silent source lose out.
        let (mut dispersion, mut total_weight) = (0.0, 0.0);
        let mut weight = 0.5;
        for &(_, idx) in sorted.iter() {
            if let Some(s) = self.stages.get(idx) {
                dispersion += aged(&s.sample, now).min(MAX_DISPERSION) * weight;
                total_weight += weight;
            }
            weight /= 2.0;
        }
        let dispersion = dispersion / total_weight;
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

/// Samples over which the delay floor forgets a low delay (it rises by the mean queueing over
/// this many samples), so a floor set by one freak sample fades out within days at any poll.
const FLOOR_MEMORY: f64 = 1024.0;

/// Most samples the floor counts as evidence; also the averaging length of the queueing mean.
const FLOOR_MAX_COUNT: u32 = 64;

/// A path whose recent minimum delay is this many mean queueing delays above the floor has
/// changed route: the floor jumps to the recent minimum.
const ROUTE_CHANGE: f64 = 3.0;

/// The queueing left in the minimum of n delays, as a fraction of the mean queueing divided by
/// √n. With exponential queueing both ways the sum's density rises linearly from zero, so the
/// minimum of n is Rayleigh-distributed with mean √(π/2)/2 ≈ 0.63 of this scale; 0.95 is about
/// its 80th percentile, which keeps the discipline from trusting near-floor samples too much
/// (docs/algorithm.md §3).
const MIN_OF_N_FACTOR: f64 = 0.95;

/// Long memory of a path's lowest round-trip delay, which the eight stages of the filter are
/// too short to find: a sample's offset error is at most half its delay above the path's true
/// minimum, so the discipline weighs each sample by its delay above this floor.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DelayFloor {
    floor: f64,
    queueing: f64,
    count: u32,
}

impl DelayFloor {
    /// Takes a new sample's delay; `recent_min` is the lowest delay in the filter.
    pub fn add(&mut self, delay: f64, recent_min: f64) {
        if !delay.is_finite() || delay < 0.0 {
            return;
        }
        if self.count == 0 {
            *self = Self {
                floor: delay,
                queueing: 0.0,
                count: 1,
            };
            return;
        }
        #[expect(clippy::cast_precision_loss, reason = "STAGES is 8")]
        let stages = STAGES as f64;
        if self.count >= FLOOR_MAX_COUNT.min(8)
            && recent_min - self.floor > ROUTE_CHANGE * self.queueing.max(f64::EPSILON)
            && recent_min.is_finite()
        {
            self.floor = recent_min;
            self.count = FLOOR_MAX_COUNT.min(8);
        }
        self.floor = (self.floor + self.queueing / FLOOR_MEMORY).min(delay);
        self.count = (self.count + 1).min(FLOOR_MAX_COUNT);
        let weight = 1.0 / f64::from(self.count).min(stages * 2.0);
        self.queueing += (delay - self.floor - self.queueing) * weight;
    }

    /// The lowest delay seen lately, seconds; `None` before the first sample.
    pub fn floor(&self) -> Option<f64> {
        (self.count > 0).then_some(self.floor)
    }

    /// How far the floor may be above the path's true minimum, seconds: the queueing left in
    /// the minimum of the samples counted. With few samples the spread says little, so it never
    /// drops below floor/(2√n): a lone sample may be half queueing.
    pub fn uncertainty(&self) -> f64 {
        let n = f64::from(self.count.max(1));
        (MIN_OF_N_FACTOR * self.queueing / n.sqrt()).max(self.floor / (2.0 * n.sqrt()))
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

    // Replaces RFC 5905's "first sample is reported with high dispersion": stages that never
    // held a sample no longer count at MAXDISP (docs/algorithm.md §2), so one sample is enough
    // to make a source selectable.
    #[test]
    fn first_sample_is_reported_with_its_own_dispersion() {
        let mut f = ClockFilter::new();
        let e = f.add(sample(0.0, 0.001, 0.0002), 1e-7).unwrap();
        assert!((e.offset - 0.001).abs() < 1e-12);
        assert!((e.dispersion - 1e-5).abs() < 1e-9, "{}", e.dispersion);
    }

    #[test]
    fn unanswered_polls_push_samples_out_without_adding_dispersion() {
        let mut f = ClockFilter::new();
        f.add(sample(0.0, 0.001, 0.0002), 1e-7);
        for i in 1..8 {
            f.add_gap(at(f64::from(i) * 64.0));
        }
        let e = f.add(sample(600.0, 0.002, 0.0003), 1e-7).unwrap();
        // The first sample was pushed out by seven gaps and the new one: only it remains.
        assert!((e.offset - 0.002).abs() < 1e-12);
        assert!((e.dispersion - 1e-5).abs() < 1e-9, "{}", e.dispersion);
    }

    #[test]
    fn delay_floor_remembers_the_path_minimum_and_follows_a_route_change() {
        let mut floor = DelayFloor::default();
        assert_eq!(floor.floor(), None);
        for d in [
            300e-6, 250e-6, 400e-6, 350e-6, 500e-6, 300e-6, 450e-6, 320e-6, 380e-6,
        ] {
            floor.add(d, 250e-6);
        }
        let low = floor.floor().unwrap();
        assert!((low - 250e-6).abs() < 1e-6, "{low}");
        assert!(floor.uncertainty() > 0.0 && floor.uncertainty() < 100e-6);
        // A new route 10 ms longer: once the filter's minimum is far above, the floor jumps.
        floor.add(10.3e-3, 10.2e-3);
        assert!(floor.floor().unwrap() > 10e-3, "{:?}", floor.floor());
    }

    #[test]
    fn the_delay_floor_ignores_negative_and_non_finite_delays_but_keeps_zero() {
        let mut floor = DelayFloor::default();
        for bad in [-1e-3, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            floor.add(bad, bad);
            assert_eq!(floor.floor(), None, "{bad}");
        }
        floor.add(0.0, 0.0);
        assert_eq!(floor.floor(), Some(0.0));
    }

    #[test]
    fn the_floor_creeps_up_by_a_1024th_of_the_queueing_which_is_a_running_mean() {
        let mut f = DelayFloor::default();
        f.add(1e-3, 1e-3);
        f.add(2e-3, 1e-3);
        // The second sample is 1 ms above the floor: the mean of (0, 1 ms) is 0.5 ms.
        assert_eq!(f.floor(), Some(1e-3));
        assert!((f.queueing - 0.5e-3).abs() < 1e-15, "{}", f.queueing);
        f.add(3e-3, 1e-3);
        let floor = 1e-3 + 0.5e-3 / 1024.0;
        let queueing = 0.5e-3 + (3e-3 - floor - 0.5e-3) / 3.0;
        assert!(
            (f.floor().unwrap() - floor).abs() < 1e-15,
            "{:?}",
            f.floor()
        );
        assert!((f.queueing - queueing).abs() < 1e-15, "{}", f.queueing);
        // Past 16 samples a new one weighs 1/16 in the mean.
        for i in 0..30 {
            f.add(if i % 2 == 0 { 1.2e-3 } else { 1.6e-3 }, 1.2e-3);
        }
        let before = f;
        f.add(2e-3, 1.2e-3);
        let floor = before.floor + before.queueing / 1024.0;
        let queueing = before.queueing + (2e-3 - floor - before.queueing) / 16.0;
        assert!((f.floor - floor).abs() < 1e-15, "{}", f.floor);
        assert!((f.queueing - queueing).abs() < 1e-15, "{}", f.queueing);
    }

    #[test]
    fn with_few_samples_the_floor_may_be_half_queueing() {
        let mut f = DelayFloor::default();
        f.add(1e-3, 1e-3);
        // A lone sample: up to half its delay.
        assert!(
            (f.uncertainty() - 0.5e-3).abs() < 1e-15,
            "{}",
            f.uncertainty()
        );
        // Nine equal ones (no queueing seen): floor / (2·√9).
        for _ in 0..8 {
            f.add(1e-3, 1e-3);
        }
        let floor = f.floor().unwrap();
        assert!(
            (f.uncertainty() - floor / 6.0).abs() < 1e-15,
            "{}",
            f.uncertainty()
        );
    }

    #[test]
    fn a_route_change_needs_eight_samples_and_three_mean_queueings() {
        let mut few = DelayFloor::default();
        for d in [1.0e-3, 1.2e-3, 1.0e-3] {
            few.add(d, 1.0e-3);
        }
        few.add(10e-3, 9e-3);
        assert!(few.floor().unwrap() < 1.1e-3, "{:?}", few.floor());

        let mut settled = DelayFloor::default();
        for i in 0..20 {
            settled.add(if i % 2 == 0 { 1.0e-3 } else { 1.2e-3 }, 1.0e-3);
        }
        let (floor, q) = (settled.floor, settled.queueing);
        assert!(q > 50e-6, "{q}");
        // 2.5 mean queueings above the floor: the same route, the floor only creeps.
        let mut same = settled;
        same.add(floor + 10e-3, floor + 2.5 * q);
        assert!(
            (same.floor - (floor + q / 1024.0)).abs() < 1e-12,
            "{}",
            same.floor
        );
        // 3.5 above: a new route, the floor jumps to the recent minimum.
        let mut moved = settled;
        moved.add(floor + 10e-3, floor + 3.5 * q);
        assert!(
            (moved.floor - (floor + 3.5 * q + q / 1024.0)).abs() < 1e-12,
            "{}",
            moved.floor
        );
    }

    #[test]
    fn clock_corrections_move_stored_offsets_and_min_delay_tracks_the_best() {
        let mut f = ClockFilter::new();
        assert_eq!(f.min_delay(), None);
        f.add(sample(0.0, -0.1, 0.0003), 1e-7);
        f.add(sample(2.0, -0.1, 0.0002), 1e-7);
        f.apply_clock_correction(-0.1);
        let s = f.stages(at(2.0));
        assert!(s[0].1.abs() < 1e-12 && s[1].1.abs() < 1e-12, "{s:?}");
        assert_eq!(f.min_delay(), Some(0.0002));
        // The estimate already reported moves with them.
        let latest = f.latest().unwrap().offset;
        assert!(latest.abs() < 1e-12, "{latest}");
    }

    #[test]
    fn on_equal_delays_the_newer_sample_wins() {
        let mut f = ClockFilter::new();
        f.add(sample(0.0, 0.001, 0.0002), 1e-7);
        f.add(sample(64.0, 0.002, 0.0002), 1e-7);
        f.add(sample(128.0, 0.003, 0.0009), 1e-7);
        let offset = f.latest().unwrap().offset;
        assert!((offset - 0.002).abs() < 1e-12, "{offset}");
    }

    #[test]
    fn a_sample_exactly_at_the_allan_intercept_is_not_yet_stale() {
        let mut f = ClockFilter::new();
        f.add(sample(0.0, 0.004, 0.0002), 1e-7);
        f.add(sample(ALLAN_INTERCEPT_S, 0.001, 0.0009), 1e-7);
        let offset = f.latest().unwrap().offset;
        assert!((offset - 0.004).abs() < 1e-12, "{offset}");
    }

    #[test]
    fn dispersion_weighs_the_samples_by_halves_in_delay_order() {
        let mut f = ClockFilter::new();
        let low = Sample {
            dispersion: 1e-5,
            ..sample(0.0, 0.001, 0.0002)
        };
        let high = Sample {
            dispersion: 4e-5,
            ..sample(1.0, 0.002, 0.0009)
        };
        f.add(low, 1e-7);
        f.add(high, 1e-7);
        // At the second sample the first has aged 1 s; weights ½ and ¼, renormalised.
        let expected = (0.5 * (1e-5 + PHI) + 0.25 * 4e-5) / 0.75;
        let got = f.latest().unwrap().dispersion;
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn lowest_delay_sample_wins() {
        let mut f = ClockFilter::new();
        f.add(sample(0.0, 0.004, 0.0050), 1e-7);
        let e = f.add(sample(64.0, 0.0001, 0.0002), 1e-7).unwrap();
        assert!((e.offset - 0.0001).abs() < 1e-12);
        // A later, noisier sample does not displace it, and the old one is not reused …
        assert!(f.add(sample(128.0, 0.003, 0.0040), 1e-7).is_none());
        // … but the estimate is still re-evaluated: its dispersion now counts the best sample's
        // age. (Under RFC 5905 it shrank as empty stages at MAXDISP were filled; empty stages
        // no longer count, see the module documentation.)
        let latest = f.latest().unwrap();
        assert!((latest.offset - 0.0001).abs() < 1e-12);
        assert_eq!(latest.time, e.time);
        assert!(latest.dispersion > e.dispersion);
    }

    #[test]
    fn samples_older_than_the_allan_intercept_lose_to_younger_ones() {
        let mut f = ClockFilter::new();
        f.add(sample(0.0, 0.004, 0.0002), 1e-7);
        let e = f.add(sample(3000.0, 0.001, 0.0009), 1e-7).unwrap();
        assert!((e.offset - 0.001).abs() < 1e-12, "{}", e.offset);
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
