//! Steering: the frequency commands given to the clock and a log of them, from which the
//! Kalman filter learns exactly how far the discipline moved the clock over any span.
//!
//! A phase correction is a temporary extra frequency: the clock runs at base + rate until a
//! timer ends the slew ([`Steering::next_timeout`]). The log records the time each command took
//! effect (what [`Clock::set_frequency`] returns), so a late timer costs no accuracy: the
//! overshoot is in the books and the next update takes it out.

use std::collections::VecDeque;

use super::seconds_between;
use crate::clock::Clock;
use crate::source::PendingSlew;
use crate::time::{NtpDuration, NtpTimestamp};

/// Shortest slew of a small correction, seconds. Corrections up to [`SPREAD_LIMIT`] are spread
/// over a second rather than applied at full rate: a second is long against a daemon's timer
/// latency (a millisecond late costs 0.1 % of the correction), short against any poll
/// interval, and keeps the rate excursion within 1000 ppm.
const MIN_SLEW_SECONDS: f64 = 1.0;

/// Corrections above this, seconds, go at the full slew rate: they happen only while the clock
/// is brought into sync (start-up, the end of the frequency measurement, a spike), and
/// spreading them would leave the clock a millisecond off for longer than it must be. So does
/// the rest of such a slew when a new update replaces it.
const SPREAD_LIMIT: f64 = 1e-3;

/// Shortest slew of a large correction, seconds: a daemon's timer fires up to a millisecond
/// late (`poll(2)` counts milliseconds), which costs 1 % of the correction at this length —
/// booked, and taken out by the next update — rather than 5 % at 20 ms.
const MIN_FAST_SLEW_SECONDS: f64 = 0.1;

/// Commands kept in the log. Older ones are only needed back to the Kalman filter's time,
/// which is at most one sample old; between two samples there are two commands per update.
const LOG_CAPACITY: usize = 64;

/// One frequency command: from `start` the clock ran with correction `rate` (s/s).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    start: NtpTimestamp,
    rate: f64,
}

/// A phase slew in progress: `rate` on top of the base frequency until `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slew {
    rate: f64,
    end: NtpTimestamp,
}

/// The commands given to the clock.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Steering {
    /// The frequency correction, s/s.
    base: f64,
    /// Fastest slew, s/s.
    max_slew: f64,
    slew: Option<Slew>,
    /// Non-empty; the first segment also covers all earlier time.
    log: VecDeque<Segment>,
}

impl Steering {
    /// Books that start with the clock running at `rate` (s/s), set by someone else; slews
    /// go no faster than `max_slew` (s/s).
    pub(super) fn new(rate: f64, max_slew: f64) -> Self {
        let mut log = VecDeque::with_capacity(LOG_CAPACITY);
        log.push_back(Segment {
            start: NtpTimestamp::ZERO,
            rate,
        });
        Self {
            base: rate,
            max_slew: max_slew.abs(),
            slew: None,
            log,
        }
    }

    /// The frequency correction, s/s.
    pub(super) fn base(&self) -> f64 {
        self.base
    }

    /// When the running slew should end.
    pub(super) fn next_timeout(&self) -> Option<NtpTimestamp> {
        self.slew.map(|s| s.end)
    }

    /// Over the local-time span `from`..`to`: (oscillator seconds elapsed, phase the
    /// discipline moved the clock by). Zero for an empty or reversed span.
    pub(super) fn integrate(&self, from: NtpTimestamp, to: NtpTimestamp) -> (f64, f64) {
        let (mut elapsed, mut phase) = (0.0, 0.0);
        let mut segments = self.log.iter().enumerate().peekable();
        while let Some((i, seg)) = segments.next() {
            let start = if i > 0 && seconds_between(seg.start, from) > 0.0 {
                seg.start
            } else {
                from
            };
            let end = match segments.peek() {
                Some((_, next)) if seconds_between(to, next.start) > 0.0 => next.start,
                _ => to,
            };
            let span = seconds_between(end, start);
            if span > 0.0 {
                let osc = span / (1.0 + seg.rate);
                elapsed += osc;
                phase += seg.rate * osc;
            }
        }
        (elapsed, phase)
    }

    /// Sets the frequency correction to `base` and starts slewing `offset` seconds out, at
    /// `now`. Returns the phase this commits beyond what the cancelled slew still had to do.
    pub(super) fn steer<C: Clock>(
        &mut self,
        clock: &mut C,
        now: NtpTimestamp,
        base: f64,
        offset: f64,
    ) -> Result<f64, C::Error> {
        let cancelled = self.remaining_phase(now);
        let fast_under_way = self.slew.is_some_and(|s| {
            s.rate.abs() > SPREAD_LIMIT / MIN_SLEW_SECONDS && seconds_between(s.end, now) > 0.0
        });
        let least = if offset.abs() > SPREAD_LIMIT || fast_under_way {
            MIN_FAST_SLEW_SECONDS
        } else {
            MIN_SLEW_SECONDS
        };
        let seconds = (offset.abs() / self.max_slew.max(f64::MIN_POSITIVE)).max(least);
        let rate = offset / seconds;
        let total = base + rate;
        let at = self.command(clock, total)?;
        self.base = base;
        self.slew = Some(Slew {
            rate,
            end: at + NtpDuration::from_seconds_f64(seconds * (1.0 + total)),
        });
        Ok(rate * seconds - cancelled)
    }

    /// Sets the frequency correction to `base` with no slew.
    pub(super) fn set_base<C: Clock>(&mut self, clock: &mut C, base: f64) -> Result<(), C::Error> {
        self.command(clock, base)?;
        self.base = base;
        self.slew = None;
        Ok(())
    }

    /// Ends the slew if it is due. Returns the phase it applied beyond what was committed
    /// (non-zero only when the call came late or early).
    pub(super) fn handle_timeout<C: Clock>(&mut self, clock: &mut C) -> Result<f64, C::Error> {
        let Some(slew) = self.slew else {
            return Ok(0.0);
        };
        let now = clock.now();
        let late = seconds_between(now, slew.end);
        if late < 0.0 {
            return Ok(0.0);
        }
        self.command(clock, self.base)?;
        self.slew = None;
        Ok(slew.rate * late / (1.0 + self.base + slew.rate))
    }

    /// Stops any slew (before a step); returns the phase that will not be applied after all.
    pub(super) fn cancel<C: Clock>(&mut self, clock: &mut C) -> Result<f64, C::Error> {
        let now = clock.now();
        let cancelled = self.remaining_phase(now);
        if self.slew.take().is_some() {
            self.command(clock, self.base)?;
        }
        Ok(cancelled)
    }

    /// Forgets the log before a step at `at`: earlier local times are on another time scale.
    pub(super) fn restart(&mut self, at: NtpTimestamp) {
        let rate = self.log.back().map_or(self.base, |s| s.rate);
        self.log.clear();
        self.log.push_back(Segment { start: at, rate });
    }

    /// Drops log entries that ended before `time` (the Kalman filter never looks back further).
    pub(super) fn prune(&mut self, time: NtpTimestamp) {
        while self.log.len() > 1
            && self
                .log
                .get(1)
                .is_some_and(|next| seconds_between(time, next.start) >= 0.0)
        {
            self.log.pop_front();
        }
    }

    /// The slew under way, as sources need it to store samples measured during it.
    pub(super) fn pending(&self) -> Option<PendingSlew> {
        self.slew.map(|s| PendingSlew {
            end: s.end,
            rate: s.rate / (1.0 + self.base + s.rate),
            drift: 0.0,
        })
    }

    /// The phase the running slew has still to apply after `now`.
    fn remaining_phase(&self, now: NtpTimestamp) -> f64 {
        self.pending().map_or(0.0, |p| p.remaining_after(now))
    }

    fn command<C: Clock>(&mut self, clock: &mut C, rate: f64) -> Result<NtpTimestamp, C::Error> {
        let at = clock.set_frequency(super::ppm(rate))?;
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(Segment { start: at, rate });
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use core::convert::Infallible;

    use super::*;
    use crate::packet::Leap;

    /// A clock that stands where it is put and takes every command at once.
    struct Still(NtpTimestamp);

    impl Clock for Still {
        type Error = Infallible;

        fn now(&self) -> NtpTimestamp {
            self.0
        }

        fn step(&mut self, _: NtpDuration) -> Result<NtpTimestamp, Infallible> {
            unreachable!("steering never steps")
        }

        fn set_frequency(&mut self, _: f64) -> Result<NtpTimestamp, Infallible> {
            Ok(self.0)
        }

        fn set_status(
            &mut self,
            _: Leap,
            _: NtpDuration,
            _: NtpDuration,
        ) -> Result<(), Infallible> {
            Ok(())
        }
    }

    fn at(secs: f64) -> NtpTimestamp {
        NtpTimestamp::from_parts(0xec00_0000, 0) + NtpDuration::from_seconds_f64(secs)
    }

    fn steer(s: &mut Steering, clock: &mut Still, offset: f64) {
        let now = clock.0;
        s.steer(clock, now, 0.0, offset).unwrap();
    }

    /// How long the slew just started lasts, in oscillator seconds (its local length is
    /// longer by the rate it runs at: `offset` over that time).
    fn slew_seconds(s: &Steering, clock: &Still, offset: f64) -> f64 {
        seconds_between(s.next_timeout().unwrap(), clock.0) - offset
    }

    #[test]
    fn the_log_integrates_each_command_over_its_own_span() {
        let mut clock = Still(at(10.0));
        let mut s = Steering::new(0.0, 500e-6);
        s.set_base(&mut clock, 100e-6).unwrap();
        clock.0 = at(20.0);
        s.set_base(&mut clock, -50e-6).unwrap();
        let (elapsed, phase) = s.integrate(at(5.0), at(25.0));
        let (a, b) = (10.0 / (1.0 + 100e-6), 5.0 / (1.0 - 50e-6));
        assert!((elapsed - (5.0 + a + b)).abs() < 1e-9, "{elapsed}");
        assert!((phase - (100e-6 * a - 50e-6 * b)).abs() < 1e-12, "{phase}");
        // A span inside the first command ends where it is asked to, not at the next command.
        let (elapsed, phase) = s.integrate(at(5.0), at(8.0));
        assert!(
            (elapsed - 3.0).abs() < 1e-9 && phase == 0.0,
            "{elapsed} {phase}"
        );
        assert_eq!(s.integrate(at(25.0), at(5.0)), (0.0, 0.0));
    }

    #[test]
    fn a_small_correction_is_spread_over_a_second_a_large_one_goes_at_full_rate() {
        let mut clock = Still(at(0.0));
        // A fast slew rate (5 %), so that the shortest durations decide.
        let mut s = Steering::new(0.0, 0.05);
        steer(&mut s, &mut clock, 0.5e-3);
        assert!((slew_seconds(&s, &clock, 0.5e-3) - 1.0).abs() < 1e-6);
        s.handle_timeout(&mut Still(s.next_timeout().unwrap()))
            .unwrap();
        // Exactly 1 ms still counts as small.
        clock.0 = at(10.0);
        steer(&mut s, &mut clock, 1e-3);
        assert!((slew_seconds(&s, &clock, 1e-3) - 1.0).abs() < 1e-6);
        s.handle_timeout(&mut Still(s.next_timeout().unwrap()))
            .unwrap();
        clock.0 = at(20.0);
        steer(&mut s, &mut clock, 2e-3);
        assert!((slew_seconds(&s, &clock, 2e-3) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn a_small_correction_replacing_a_running_fast_slew_goes_fast_too() {
        let mut clock = Still(at(0.0));
        let mut s = Steering::new(0.0, 0.05);
        steer(&mut s, &mut clock, 2e-3);
        let fast_end = s.next_timeout().unwrap();
        clock.0 = at(0.05);
        steer(&mut s, &mut clock, 0.5e-3);
        assert!((slew_seconds(&s, &clock, 0.5e-3) - 0.1).abs() < 1e-6);
        // A slow slew under way does not make the next one fast.
        let mut s = Steering::new(0.0, 0.05);
        clock.0 = at(0.0);
        steer(&mut s, &mut clock, 0.5e-3);
        clock.0 = at(0.5);
        steer(&mut s, &mut clock, 0.5e-3);
        assert!((slew_seconds(&s, &clock, 0.5e-3) - 1.0).abs() < 1e-6);
        // Nor does a fast one whose end has come, even if its timer has not run yet.
        let mut s = Steering::new(0.0, 0.05);
        clock.0 = at(0.0);
        steer(&mut s, &mut clock, 2e-3);
        assert_eq!(s.next_timeout(), Some(fast_end));
        clock.0 = fast_end;
        steer(&mut s, &mut clock, 0.5e-3);
        assert!((slew_seconds(&s, &clock, 0.5e-3) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_slew_at_exactly_a_millisecond_per_second_is_not_fast() {
        let mut clock = Still(at(0.0));
        let mut s = Steering::new(0.0, 0.05);
        // 1 ms over a second: 1e-3 s/s, the limit itself.
        steer(&mut s, &mut clock, 1e-3);
        clock.0 = at(0.5);
        steer(&mut s, &mut clock, 0.5e-3);
        assert!((slew_seconds(&s, &clock, 0.5e-3) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_new_slew_commits_only_what_the_cancelled_one_had_not_yet_done() {
        let mut clock = Still(at(0.0));
        let mut s = Steering::new(0.0, 0.05);
        steer(&mut s, &mut clock, 0.5e-3);
        // Half-way through, a new correction of 0.5 ms: a quarter was still to come.
        let half = seconds_between(s.next_timeout().unwrap(), clock.0) / 2.0;
        clock.0 = at(half);
        let now = clock.0;
        let committed = s.steer(&mut clock, now, 0.0, 0.5e-3).unwrap();
        assert!((committed - 0.25e-3).abs() < 1e-9, "{committed}");
    }

    /// Base 100 ppm, then 0.5 ms slewed over a second from 0: rate 0.5e-3 on top.
    fn slewing() -> (Steering, Still) {
        let mut clock = Still(at(0.0));
        let mut s = Steering::new(0.0, 0.05);
        let now = clock.0;
        s.steer(&mut clock, now, 100e-6, 0.5e-3).unwrap();
        (s, clock)
    }

    #[test]
    fn the_slew_ends_at_its_timer_and_a_late_timer_books_the_overshoot() {
        let (mut s, _) = slewing();
        let end = s.next_timeout().unwrap();
        let pending = s.pending().unwrap();
        assert!((pending.rate - 0.5e-3 / (1.0 + 100e-6 + 0.5e-3)).abs() < 1e-15);
        // Early: nothing happens.
        let early = end - NtpDuration::from_seconds_f64(0.01);
        assert!(s.handle_timeout(&mut Still(early)).unwrap().abs() < 1e-300);
        assert_eq!(s.next_timeout(), Some(end));
        // On time: the slew ends, nothing beyond what was committed.
        let mut on_time = s.clone();
        assert!(on_time.handle_timeout(&mut Still(end)).unwrap().abs() < 1e-300);
        assert_eq!(on_time.next_timeout(), None);
        // 0.2 s late: the extra rate ran 0.2 local seconds longer.
        let late = end + NtpDuration::from_seconds_f64(0.2);
        let extra = s.handle_timeout(&mut Still(late)).unwrap();
        let expected = 0.5e-3 * 0.2 / (1.0 + 100e-6 + 0.5e-3);
        assert!((extra - expected).abs() < 1e-12, "{extra} vs {expected}");
        assert_eq!(s.next_timeout(), None);
    }

    #[test]
    fn cancelling_returns_what_the_slew_had_still_to_do() {
        let (mut s, _) = slewing();
        let end = s.next_timeout().unwrap();
        let half = at(seconds_between(end, at(0.0)) / 2.0);
        let rest = s.cancel(&mut Still(half)).unwrap();
        assert!((rest - 0.25e-3).abs() < 1e-9, "{rest}");
        assert_eq!(s.next_timeout(), None);
        let nothing = s.cancel(&mut Still(half)).unwrap();
        assert!(nothing.abs() < 1e-300, "nothing left to cancel: {nothing}");
    }

    /// Commands at 10 s (+100 ppm) and 20 s (−50 ppm) after starting at 0.
    fn two_commands() -> Steering {
        let mut clock = Still(at(10.0));
        let mut s = Steering::new(0.0, 500e-6);
        s.set_base(&mut clock, 100e-6).unwrap();
        clock.0 = at(20.0);
        s.set_base(&mut clock, -50e-6).unwrap();
        s
    }

    fn phase(s: &Steering, from: f64, to: f64) -> f64 {
        s.integrate(at(from), at(to)).1
    }

    #[test]
    fn after_a_step_back_the_current_rate_applies_on_the_new_time_scale() {
        let mut s = two_commands();
        // Stepped back 20 s: local time 0 is now after the commands.
        s.restart(at(0.0));
        let expected = -50e-6 * 5.0 / (1.0 - 50e-6);
        assert!((phase(&s, 0.0, 5.0) - expected).abs() < 1e-15);
    }

    #[test]
    fn pruning_drops_only_commands_that_ended_before_the_time_and_keeps_the_last() {
        let full = two_commands();
        let (a, b) = (100e-6 * 8.0 / (1.0 + 100e-6), -50e-6 * 5.0 / (1.0 - 50e-6));
        assert!((phase(&full, 12.0, 25.0) - (a + b)).abs() < 1e-15);
        // At 15 s the command from 10 s is still in force: nothing changes from 12 s on.
        let mut s = full.clone();
        s.prune(at(15.0));
        assert!((phase(&s, 12.0, 25.0) - (a + b)).abs() < 1e-15);
        // At 20 s the command from 10 s has ended: the one from 20 s now reaches back.
        let mut s = full.clone();
        s.prune(at(20.0));
        let all_b = -50e-6 * 13.0 / (1.0 - 50e-6);
        assert!((phase(&s, 12.0, 25.0) - all_b).abs() < 1e-15);
        // Far later, the last command is kept.
        let mut s = full;
        s.prune(at(1000.0));
        assert!((phase(&s, 30.0, 35.0) - b).abs() < 1e-15);
    }
}
