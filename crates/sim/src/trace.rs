//! The true offset over a run, and the statistics the acceptance targets are stated in.
//!
//! The offset is recorded once a second (for RMS values, each second weighing the same) and at
//! every event (for maxima: between events the offset moves linearly, so its extremes are at
//! events or at the once-a-second marks where the oscillator's noise changes its rate).

use crate::scenario::{Report, SYNC_LIMIT_S};

/// Span before the end (or before an outage) over which the steady state is measured.
pub const SETTLED_SPAN_S: f64 = 3600.0;

/// One reading of the true offset.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    /// True time, seconds.
    t: f64,
    /// |offset|, seconds.
    offset: f64,
    /// Whether it is a once-a-second reading (counted in RMS values).
    tick: bool,
}

/// All readings of one run, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    points: Vec<Point>,
}

impl Trace {
    /// Records |`offset`| at true time `t`; `tick` for the regular once-a-second readings.
    pub fn record(&mut self, t: f64, offset: f64, tick: bool) {
        self.points.push(Point {
            t,
            offset: offset.abs(),
            tick,
        });
    }

    /// Fills in the sync time, the RMS and maximum after it, and the steady-state values over
    /// the [`SETTLED_SPAN_S`] before `settled_end`.
    pub fn summarise(&self, report: &mut Report, settled_end: f64) {
        let last_bad = self.points.iter().rposition(|p| p.offset >= SYNC_LIMIT_S);
        report.sync_s = match last_bad {
            None => Some(0.0),
            Some(i) => self.points.get(i + 1).map(|p| p.t),
        };
        if let Some(sync) = report.sync_s {
            let (rms, max, at) = self.stats(|p| p.t >= sync);
            (report.rms_s, report.max_s, report.max_at_s) = (rms, max, at);
        }
        let start = settled_end - SETTLED_SPAN_S;
        let (rms, max, _) = self.stats(|p| p.t >= start && p.t < settled_end);
        (report.settled_rms_s, report.settled_max_s) = (rms, max);
    }

    /// (RMS over the ticks, maximum, time of the maximum) of the points `keep` selects.
    fn stats(&self, keep: impl Fn(&Point) -> bool) -> (f64, f64, f64) {
        let (mut sum, mut n, mut max, mut at) = (0.0, 0u32, 0.0, 0.0);
        for p in self.points.iter().filter(|p| keep(p)) {
            if p.offset > max {
                (max, at) = (p.offset, p.t);
            }
            if p.tick {
                sum += p.offset * p.offset;
                n += 1;
            }
        }
        ((sum / f64::from(n.max(1))).sqrt(), max, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_is_the_first_reading_after_the_last_bad_one() {
        let mut trace = Trace::default();
        for (t, off) in [
            (0.0, 0.1),
            (1.0, 0.002),
            (2.0, 0.0005),
            (3.0, 0.0002),
            (4.0, 0.0001),
        ] {
            trace.record(t, off, true);
        }
        trace.record(4.5, -0.0003, false);
        let mut r = crate::scenario::empty_report(1);
        trace.summarise(&mut r, 5.0);
        assert_eq!(r.sync_s, Some(2.0));
        assert!((r.max_s - 0.0005).abs() < 1e-12 && (r.max_at_s - 2.0).abs() < 1e-12);
        let rms = ((0.0005f64.powi(2) + 0.0002f64.powi(2) + 0.0001f64.powi(2)) / 3.0).sqrt();
        assert!((r.rms_s - rms).abs() < 1e-12);
    }

    #[test]
    fn a_run_that_ends_out_of_sync_has_no_sync_time() {
        let mut trace = Trace::default();
        trace.record(0.0, 0.0, true);
        trace.record(1.0, 0.01, true);
        let mut r = crate::scenario::empty_report(1);
        trace.summarise(&mut r, 2.0);
        assert_eq!(r.sync_s, None);
    }
}
