//! The true offset over a run, and the statistics the acceptance targets are stated in; and
//! the [`Timeline`] of what the client did with each server, for tests of selection.
//!
//! The offset is recorded once a second (for RMS values, each second weighing the same) and at
//! every event (for maxima: between events the offset moves linearly, so its extremes are at
//! events or at the once-a-second marks where the oscillator's noise changes its rate).

use sundial_proto::select::{Candidate, Tally};
use sundial_proto::source::{Kiss, Outcome, Rejection};

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
    /// Whether a slew was under way that corrects more than [`SYNC_LIMIT_S`]: one that brings
    /// the clock into sync rather than keeping it there.
    converging: bool,
}

/// All readings of one run, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    points: Vec<Point>,
}

impl Trace {
    /// Records |`offset`| at true time `t`; `tick` for the regular once-a-second readings,
    /// `converging` while a slew of more than [`SYNC_LIMIT_S`] is under way.
    pub fn record(&mut self, t: f64, offset: f64, tick: bool, converging: bool) {
        self.points.push(Point {
            t,
            offset: offset.abs(),
            tick,
            converging,
        });
    }

    /// Fills in the sync time, the RMS and maximum after it, and the steady-state values over
    /// the [`SETTLED_SPAN_S`] before `settled_end`.
    pub fn summarise(&self, report: &mut Report, settled_end: f64) {
        // A slew that brings the clock within the limit passes every offset on the way; it is
        // part of getting there, so sync is the first reading after the last one beyond the
        // limit that is not inside such a slew.
        let last_bad = self.points.iter().rposition(|p| p.offset >= SYNC_LIMIT_S);
        report.sync_s = match last_bad {
            None => Some(0.0),
            Some(i) => self
                .points
                .get(i + 1..)
                .and_then(|after| after.iter().find(|p| !p.converging))
                .map(|p| p.t),
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

/// One selection round (the client runs one after every good reply, once past the start-up
/// gate).
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// True time, seconds.
    pub t: f64,
    /// Per server, in scenario order: its association's tally, exactly as `ntpq -p` would show
    /// it; `None` while the server has no association (a pool member not or no longer in use).
    pub tallies: Vec<Option<Tally>>,
    /// The server whose association is the system peer.
    pub system_peer: Option<usize>,
    /// Per server: what its association offered to selection (`None`: unfit, `noselect`, or
    /// no association).
    pub inputs: Vec<Option<Candidate>>,
    /// The combined offset θ_sys, seconds (0 without a system peer).
    pub offset: f64,
}

/// One request the client sent, with its association's state right after sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// True time, seconds.
    pub t: f64,
    /// The poll exponent in the request (ntpq `hpoll`).
    pub hpoll: i8,
    /// The reach register, shifted for this poll.
    pub reach: u8,
    /// Polls since the server was last heard from.
    pub unreach: u32,
}

/// What the association made of one datagram in the server's name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    /// True time of arrival, seconds.
    pub t: f64,
    /// What `Source::handle_response` returned.
    pub outcome: Outcome,
    /// Whether a spoofer sent it.
    pub forged: bool,
}

/// Everything that happened to one server's associations over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceLog {
    /// Requests sent, in time order.
    pub requests: Vec<Request>,
    /// Datagrams received in its name, in time order.
    pub replies: Vec<Reply>,
    /// Samples of it given to the discipline.
    pub fed: u64,
    /// When an association with it was mobilised, true seconds.
    pub mobilized: Vec<f64>,
    /// When an association with it was demobilised (a pool member retired), true seconds.
    pub retired: Vec<f64>,
}

impl SourceLog {
    /// RATE kisses that passed the origin check.
    pub fn rate_kisses(&self) -> usize {
        self.replies
            .iter()
            .filter(|r| r.outcome == Outcome::Kiss(Kiss::Rate))
            .count()
    }

    /// Datagrams rejected for `reason`; `forged` picks the spoofer's or the server's.
    pub fn rejected(&self, reason: Rejection, forged: bool) -> usize {
        self.replies
            .iter()
            .filter(|r| r.forged == forged && r.outcome == Outcome::Rejected(reason))
            .count()
    }

    /// Replies accepted as samples; `forged` picks the spoofer's or the server's.
    pub fn samples(&self, forged: bool) -> usize {
        self.replies
            .iter()
            .filter(|r| r.forged == forged && matches!(r.outcome, Outcome::Sample(_)))
            .count()
    }

    /// Intervals between successive requests as (true time of the later one, interval), in
    /// seconds.
    pub fn intervals(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.requests.windows(2).map(|w| (w[1].t, w[1].t - w[0].t))
    }
}

/// What the client did with each server over a run: every selection round's tallies, and per
/// server its requests, replies, pool membership and samples used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Selection rounds, in time order.
    pub rounds: Vec<Round>,
    /// Per server, in scenario order.
    pub sources: Vec<SourceLog>,
}

impl Timeline {
    /// An empty timeline for `servers` servers.
    pub fn new(servers: usize) -> Self {
        Self {
            rounds: Vec::new(),
            sources: vec![SourceLog::default(); servers],
        }
    }

    /// `server`'s tally in each round from true time `from` on (`None`: no association).
    pub fn tallies(&self, server: usize, from: f64) -> impl Iterator<Item = Option<Tally>> + '_ {
        self.rounds
            .iter()
            .filter(move |r| r.t >= from)
            .map(move |r| r.tallies.get(server).copied().flatten())
    }

    /// How many rounds from true time `from` on tallied `server` as `tally`.
    pub fn count(&self, server: usize, tally: Tally, from: f64) -> usize {
        self.tallies(server, from)
            .filter(|t| *t == Some(tally))
            .count()
    }

    /// `server`'s tally in the last round.
    pub fn last_tally(&self, server: usize) -> Option<Tally> {
        self.rounds
            .last()
            .and_then(|r| r.tallies.get(server).copied().flatten())
    }

    /// The system peer of the last round.
    pub fn last_system_peer(&self) -> Option<usize> {
        self.rounds.last().and_then(|r| r.system_peer)
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
            trace.record(t, off, true, false);
        }
        trace.record(4.5, -0.0003, false, false);
        let mut r = crate::scenario::empty_report(1);
        trace.summarise(&mut r, 5.0);
        assert_eq!(r.sync_s, Some(2.0));
        assert!((r.max_s - 0.0005).abs() < 1e-12 && (r.max_at_s - 2.0).abs() < 1e-12);
        let rms = ((0.0005f64.powi(2) + 0.0002f64.powi(2) + 0.0001f64.powi(2)) / 3.0).sqrt();
        assert!((r.rms_s - rms).abs() < 1e-12);
    }

    #[test]
    fn the_slew_that_brings_the_clock_within_the_limit_is_not_part_of_sync() {
        let mut trace = Trace::default();
        trace.record(0.0, 0.007, true, false);
        trace.record(0.9, 0.007, false, true);
        // A reading caught inside the converging slew, already under 1 ms.
        trace.record(1.0, 0.0006, true, true);
        trace.record(1.9, 0.00002, false, false);
        trace.record(2.0, 0.00003, true, false);
        let mut r = crate::scenario::empty_report(1);
        trace.summarise(&mut r, 3.0);
        assert_eq!(r.sync_s, Some(1.9));
        assert!((r.max_s - 0.00003).abs() < 1e-12, "{}", r.max_s);
        // Readings during the small slews that keep the clock in sync count like any other.
        trace.record(2.5, 0.0002, false, false);
        trace.summarise(&mut r, 3.0);
        assert!((r.max_s - 0.0002).abs() < 1e-12, "{}", r.max_s);
    }

    #[test]
    fn the_timeline_counts_tallies_per_server_and_sees_absent_associations() {
        let mut tl = Timeline::new(2);
        for (t, a, b) in [
            (1.0, Some(Tally::Falseticker), None),
            (2.0, Some(Tally::SystemPeer), Some(Tally::Candidate)),
            (3.0, Some(Tally::SystemPeer), Some(Tally::Outlier)),
        ] {
            tl.rounds.push(Round {
                t,
                tallies: vec![a, b],
                system_peer: a.filter(|t| *t == Tally::SystemPeer).map(|_| 0),
                inputs: vec![None, None],
                offset: 0.0,
            });
        }
        assert_eq!(tl.count(0, Tally::SystemPeer, 0.0), 2);
        assert_eq!(tl.count(0, Tally::SystemPeer, 2.5), 1);
        assert_eq!(tl.tallies(1, 0.0).filter(Option::is_none).count(), 1);
        assert_eq!(tl.last_tally(1), Some(Tally::Outlier));
        assert_eq!(tl.last_system_peer(), Some(0));
        let log = SourceLog {
            requests: [0.0, 64.0, 192.0]
                .map(|t| Request {
                    t,
                    hpoll: 6,
                    reach: 0,
                    unreach: 0,
                })
                .to_vec(),
            ..SourceLog::default()
        };
        assert_eq!(
            log.intervals().collect::<Vec<_>>(),
            [(64.0, 64.0), (192.0, 128.0)]
        );
    }

    #[test]
    fn a_run_that_ends_out_of_sync_has_no_sync_time() {
        let mut trace = Trace::default();
        trace.record(0.0, 0.0, true, false);
        trace.record(1.0, 0.01, true, false);
        let mut r = crate::scenario::empty_report(1);
        trace.summarise(&mut r, 2.0);
        assert_eq!(r.sync_s, None);
    }
}
