use core::convert::Infallible;
use core::time::Duration;

use super::*;
use crate::clock::Clock;
use crate::source::SourceParams;
use crate::time::MonoTime;

/// A clock that drifts: it reads true time plus an error that grows at (1 + y)(1 + c) − 1,
/// where y is the oscillator's error and c the correction the discipline sets.
pub(super) struct TestClock {
    base: NtpTimestamp,
    pub(super) true_s: f64,
    pub(super) error: f64,
    natural: f64,
    pub(super) correction: f64,
    pub(super) steps: Vec<f64>,
    commands: usize,
    leap: Leap,
}

impl TestClock {
    pub(super) fn new(offset: f64, natural_ppm: f64) -> Self {
        Self {
            base: NtpTimestamp::from_parts(0xec00_0000, 0),
            true_s: 0.0,
            error: -offset,
            natural: natural_ppm * 1e-6,
            correction: 0.0,
            steps: Vec::new(),
            commands: 0,
            leap: Leap::Unsynchronized,
        }
    }

    /// θ as a perfect measurement gives it.
    pub(super) fn offset(&self) -> f64 {
        -self.error
    }

    fn rate(&self) -> f64 {
        (1.0 + self.natural) * (1.0 + self.correction)
    }

    /// Moves true time to `t`, ending slews when they are due.
    pub(super) fn run_until(&mut self, d: &mut Discipline, t: f64) {
        while self.true_s < t {
            let due = d.next_timeout().map(|deadline| {
                let ahead = (deadline - self.now()).to_seconds_f64().max(0.0);
                self.true_s + ahead / self.rate() + 1e-9
            });
            let until = due.map_or(t, |due| due.min(t));
            self.error += (self.rate() - 1.0) * (until - self.true_s);
            self.true_s = until;
            if due.is_some_and(|due| due <= t) {
                let Ok(_) = d.handle_timeout(self);
            }
        }
    }

    /// A measurement of the current offset with `noise` added, as a source would report it.
    pub(super) fn observe(&self, noise: f64) -> Observation {
        Observation {
            time: self.now(),
            offset: self.offset() + noise,
            delay: 2e-4,
            min_delay: 2e-4,
            min_delay_error: 2e-5,
            dispersion: 1e-6,
            root_distance: 1e-3,
            jitter: 1e-5,
            leap: Leap::NoWarning,
        }
    }
}

impl Clock for TestClock {
    type Error = Infallible;

    fn now(&self) -> NtpTimestamp {
        self.base + NtpDuration::from_seconds_f64(self.true_s + self.error)
    }

    fn step(&mut self, by: NtpDuration) -> Result<NtpTimestamp, Infallible> {
        self.error += by.to_seconds_f64();
        self.steps.push(by.to_seconds_f64());
        self.commands += 1;
        Ok(self.now())
    }

    fn set_frequency(&mut self, ppm: f64) -> Result<NtpTimestamp, Infallible> {
        self.correction = ppm * 1e-6;
        self.commands += 1;
        Ok(self.now())
    }

    fn set_status(
        &mut self,
        leap: Leap,
        _est: NtpDuration,
        _max: NtpDuration,
    ) -> Result<(), Infallible> {
        self.leap = leap;
        Ok(())
    }
}

pub(super) fn update(d: &mut Discipline, c: &mut TestClock, obs: &Observation) -> Update {
    let Ok(u) = d.update(c, obs);
    u
}

pub(super) fn measure(d: &mut Discipline, c: &mut TestClock, noise: f64) -> Update {
    let obs = c.observe(noise);
    update(d, c, &obs)
}

fn secs(s: f64) -> Option<NtpDuration> {
    Some(NtpDuration::from_seconds_f64(s))
}

#[test]
fn nothing_touches_the_clock_before_the_first_update() {
    let d = Discipline::new(DisciplineParams::default());
    assert_eq!(d.next_timeout(), None);
    assert!(d.needs_all_sources());
    assert!(!d.is_synchronized());
    assert_eq!(d.readout().state, State::Unset);
}

#[test]
fn a_small_first_offset_is_slewed_out_within_seconds() {
    let mut c = TestClock::new(0.1, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let Update::Slewed { offset, phase } = measure(&mut d, &mut c, 0.0) else {
        panic!("not slewed");
    };
    assert!((offset - 0.1).abs() < 1e-6 && (phase - 0.1).abs() < 1e-6);
    assert!((c.correction - MAX_SLEW_PPM * 1e-6).abs() < 1e-9);
    c.run_until(&mut d, 3.0);
    assert!(c.steps.is_empty());
    assert!(c.offset().abs() < 1e-6, "{}", c.offset());
    assert_eq!(d.next_timeout(), None);
    assert!(c.correction.abs() < 1e-12);
    assert!(!d.needs_all_sources());
}

#[test]
fn the_clock_counts_as_synchronised_from_the_third_sample_on() {
    let mut c = TestClock::new(0.1, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Slewed { .. }
    ));
    for (sample, t) in [(1, 2.0), (2, 4.0)] {
        // One sample's error is all the first corrections know: not yet served as synchronised.
        assert!(
            !d.is_synchronized(),
            "synchronised after {sample} sample(s)"
        );
        c.run_until(&mut d, t);
        assert!(matches!(
            measure(&mut d, &mut c, 0.0),
            Update::Slewed { .. }
        ));
    }
    assert!(d.is_synchronized() && !d.needs_all_sources());
}

#[test]
fn the_pending_slew_says_how_much_of_the_correction_is_still_to_come() {
    let mut c = TestClock::new(0.1, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    assert_eq!(d.pending_slew(), None);
    let Update::Slewed { .. } = measure(&mut d, &mut c, 0.0) else {
        panic!("not slewed");
    };
    let slew = d.pending_slew().expect("a slew is under way");
    assert!((slew.remaining_after(c.now()) - 0.1).abs() < 1e-6);
    // Half way through, half of it is left — and that is what the clock still lacks.
    c.run_until(&mut d, 1.0);
    let left = slew.remaining_after(c.now());
    assert!((left - 0.05).abs() < 1e-4, "{left}");
    assert!((left - c.offset()).abs() < 1e-6, "{left} vs {}", c.offset());
    c.run_until(&mut d, 3.0);
    assert_eq!(d.pending_slew(), None);
    assert!(slew.remaining_after(c.now()).abs() < 1e-12);
}

#[test]
fn small_corrections_are_spread_over_a_second() {
    let mut c = TestClock::new(0.0005, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let Update::Slewed { .. } = measure(&mut d, &mut c, 0.0) else {
        panic!("not slewed");
    };
    assert!((c.correction - 500e-6).abs() < 1e-9, "{}", c.correction);
    c.run_until(&mut d, 0.9);
    assert!(d.pending_slew().is_some());
    c.run_until(&mut d, 1.1);
    assert_eq!(d.pending_slew(), None);
    assert!(c.offset().abs() < 1e-9, "{}", c.offset());
}

#[test]
fn a_correction_above_a_millisecond_goes_fast_and_so_does_its_rest() {
    let mut c = TestClock::new(0.005, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let Update::Slewed { .. } = measure(&mut d, &mut c, 0.0) else {
        panic!("not slewed");
    };
    // 5 ms in a tenth of a second (the shortest fast slew), not in one.
    assert!((c.correction - 0.05).abs() < 1e-9, "{}", c.correction);
    // Half way, a new update: the 2.5 ms left are not spread over a second either.
    c.run_until(&mut d, 0.05);
    let Update::Slewed { .. } = measure(&mut d, &mut c, 0.0) else {
        panic!("not slewed");
    };
    let rest = d.pending_slew().expect("still slewing");
    assert!(rest.rate.abs() > 0.02, "{rest:?}");
    c.run_until(&mut d, 0.2);
    // Done within 0.2 s (what is left is the frequency two samples 50 ms apart gave).
    assert!(c.offset().abs() < 50e-6, "{}", c.offset());
}

#[test]
fn a_large_first_offset_is_stepped_at_once() {
    let mut c = TestClock::new(-0.5, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let u = measure(&mut d, &mut c, 0.0);
    assert_eq!(u, Update::Stepped { offset: -0.5 });
    assert_eq!(c.steps, [-0.5]);
    assert!(c.offset().abs() < 1e-9);
    // Every filter is reset: the next update waits for all sources again.
    assert!(d.needs_all_sources() && !d.is_synchronized());
}

#[test]
fn later_large_offsets_are_stepped_only_after_the_stepout() {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let _ = measure(&mut d, &mut c, 0.0);
    c.run_until(&mut d, 64.0);
    c.error -= 0.3;
    let mut t = 64.0;
    while t < 64.0 + 300.0 {
        assert_eq!(measure(&mut d, &mut c, 0.0), Update::Spike { offset: 0.3 });
        assert_eq!(d.readout().state, State::Spike);
        t += 64.0;
        c.run_until(&mut d, t);
    }
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Stepped { .. }
    ));
    assert_eq!(c.steps.len(), 1);
    assert!(c.offset().abs() < 1e-9);
}

#[test]
fn a_spike_that_goes_away_is_ignored() {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let _ = measure(&mut d, &mut c, 0.0);
    c.run_until(&mut d, 64.0);
    assert!(matches!(measure(&mut d, &mut c, 0.5), Update::Spike { .. }));
    c.run_until(&mut d, 128.0);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Slewed { .. }
    ));
    c.run_until(&mut d, 500.0);
    assert!(matches!(measure(&mut d, &mut c, 0.5), Update::Spike { .. }));
    assert!(c.steps.is_empty());
}

#[test]
fn a_clock_limited_to_500_ppm_is_slewed_no_faster() {
    let params = DisciplineParams {
        max_slew: Ppm::from_const(500.0),
        ..DisciplineParams::default()
    };
    let mut c = TestClock::new(0.1, 0.0);
    let mut d = Discipline::new(params);
    let _ = measure(&mut d, &mut c, 0.0);
    assert!((c.correction - 500e-6).abs() < 1e-12);
    c.run_until(&mut d, 150.0);
    assert!(c.offset() > 0.02, "{}", c.offset());
    c.run_until(&mut d, 210.0);
    assert!(c.offset().abs() < 1e-6, "{}", c.offset());
}

#[test]
fn step_threshold_none_never_steps() {
    let mut c = TestClock::new(2.0, 0.0);
    let params = DisciplineParams {
        step_forward: None,
        step_back: None,
        ..DisciplineParams::default()
    };
    let mut d = Discipline::new(params);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Slewed { .. }
    ));
    c.run_until(&mut d, 2.0 / (MAX_SLEW_PPM * 1e-6) + 1.0);
    assert!(c.steps.is_empty());
    assert!(c.offset().abs() < 1e-6, "{}", c.offset());
}

#[test]
fn direction_specific_thresholds_apply() {
    let params = DisciplineParams {
        step_back: secs(1.0),
        ..DisciplineParams::default()
    };
    let mut c = TestClock::new(-0.5, 0.0);
    let mut d = Discipline::new(params);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Slewed { .. }
    ));
    let mut c = TestClock::new(0.5, 0.0);
    let mut d = Discipline::new(params);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Stepped { .. }
    ));
}

#[test]
fn beyond_the_panic_threshold_nothing_is_done_without_the_gate() {
    let mut c = TestClock::new(2000.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    assert_eq!(
        measure(&mut d, &mut c, 0.0),
        Update::Panic { offset: 2000.0 }
    );
    assert_eq!(c.commands, 0);
}

#[test]
fn the_panic_gate_allows_exactly_one_correction() {
    let params = DisciplineParams {
        panic_gate: true,
        ..DisciplineParams::default()
    };
    let mut c = TestClock::new(2000.0, 0.0);
    let mut d = Discipline::new(params);
    assert_eq!(
        measure(&mut d, &mut c, 0.0),
        Update::Stepped { offset: 2000.0 }
    );
    c.run_until(&mut d, 64.0);
    // The servers now say the clock is 2000 s behind.
    assert!(matches!(
        measure(&mut d, &mut c, 2000.0),
        Update::Panic { .. }
    ));
}

#[test]
fn the_panic_gate_closes_after_a_small_first_correction() {
    // CVE-2015-5300: a tiny first correction must not leave the gate open for a later one.
    let params = DisciplineParams {
        panic_gate: true,
        ..DisciplineParams::default()
    };
    let mut c = TestClock::new(0.01, 0.0);
    let mut d = Discipline::new(params);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Slewed { .. }
    ));
    c.run_until(&mut d, 64.0);
    assert!(matches!(
        measure(&mut d, &mut c, 1500.0),
        Update::Panic { .. }
    ));
    assert!(c.steps.is_empty());
}

#[test]
fn force_step_once_steps_even_a_tiny_first_offset() {
    let params = DisciplineParams {
        force_step_once: true,
        ..DisciplineParams::default()
    };
    let mut c = TestClock::new(0.001, 0.0);
    let mut d = Discipline::new(params);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Stepped { .. }
    ));
    c.run_until(&mut d, 64.0);
    c.error -= 0.001;
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Slewed { .. }
    ));
    assert_eq!(c.steps.len(), 1);
}

#[test]
fn one_shot_sets_the_clock_once_and_finishes_its_slew() {
    let params = DisciplineParams {
        one_shot: true,
        ..DisciplineParams::default()
    };
    let mut c = TestClock::new(0.5, 0.0);
    let mut d = Discipline::new(params);
    let u = measure(&mut d, &mut c, 0.0);
    assert_eq!(
        u,
        Update::OneShot {
            offset: 0.5,
            stepped: true
        }
    );
    assert_eq!(
        measure(&mut d, &mut c, 0.0),
        Update::Ignored(Ignored::Finished)
    );

    let mut c = TestClock::new(-0.05, 0.0);
    let mut d = Discipline::new(params);
    let u = measure(&mut d, &mut c, 0.0);
    assert!(matches!(u, Update::OneShot { stepped: false, .. }), "{u:?}");
    assert!(d.next_timeout().is_some());
    c.run_until(&mut d, 5.0);
    assert_eq!(d.next_timeout(), None);
    assert!(c.offset().abs() < 1e-6 && c.steps.is_empty());
}

#[test]
fn the_drift_file_frequency_is_applied_at_the_first_update() {
    let params = DisciplineParams {
        initial_frequency: Ppm::new(12.5),
        ..DisciplineParams::default()
    };
    let mut c = TestClock::new(0.0, -12.5);
    let mut d = Discipline::new(params);
    assert_eq!(d.readout().state, State::FrequencySet);
    assert_eq!(c.commands, 0);
    let _ = measure(&mut d, &mut c, 0.0);
    c.run_until(&mut d, 2.0);
    assert!((c.correction * 1e6 - 12.5).abs() < 1e-9);
    assert!((d.readout().frequency_ppm - 12.5).abs() < 1e-9);
}

#[test]
fn the_frequency_error_is_learned_and_offered_for_the_drift_file() {
    let mut c = TestClock::new(0.1, 100.0);
    let mut d = Discipline::new(DisciplineParams::default());
    assert_eq!(d.drift_ppm(), None);
    for i in 0..40u32 {
        let _ = measure(&mut d, &mut c, 0.0);
        c.run_until(&mut d, f64::from(i + 1) * 64.0);
    }
    // A clock 100 ppm fast needs a correction of −100 ppm (to within the 1.0001 scaling).
    let drift = d.drift_ppm().unwrap();
    assert!((drift + 99.99).abs() < 0.01, "{drift}");
    assert!(c.offset().abs() < 1e-6, "{}", c.offset());
    assert!(d.poll() > 6, "poll {}", d.poll());
}

#[test]
fn the_leap_warning_reaches_the_clock() {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let mut obs = c.observe(0.0);
    obs.leap = Leap::AddSecond;
    let _ = update(&mut d, &mut c, &obs);
    assert_eq!(c.leap, Leap::AddSecond);
}

#[test]
fn stale_and_invalid_samples_are_ignored() {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let obs = c.observe(0.0);
    let _ = update(&mut d, &mut c, &obs);
    assert_eq!(
        update(&mut d, &mut c, &obs),
        Update::Ignored(Ignored::Stale)
    );
    c.run_until(&mut d, 10.0);
    let mut bad = c.observe(0.0);
    bad.offset = f64::NAN;
    assert_eq!(
        update(&mut d, &mut c, &bad),
        Update::Ignored(Ignored::Invalid)
    );
}

#[test]
fn a_lone_outlier_is_set_aside_but_a_persistent_jump_is_followed() {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let mut t = 0.0;
    for _ in 0..12 {
        let _ = measure(&mut d, &mut c, 0.0);
        t += 64.0;
        c.run_until(&mut d, t);
    }
    assert_eq!(
        measure(&mut d, &mut c, 0.01),
        Update::Ignored(Ignored::Outlier)
    );
    t += 64.0;
    c.run_until(&mut d, t);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Slewed { .. }
    ));
    c.error -= 0.01;
    let mut results = Vec::new();
    for _ in 0..4 {
        t += 64.0;
        c.run_until(&mut d, t);
        results.push(measure(&mut d, &mut c, 0.0));
    }
    assert!(
        matches!(results[0], Update::Ignored(Ignored::Outlier)),
        "{results:?}"
    );
    assert!(
        results.iter().any(|u| matches!(u, Update::Slewed { .. })),
        "{results:?}"
    );
    c.run_until(&mut d, t + 64.0);
    assert!(c.offset().abs() < 1e-3, "{}", c.offset());
}

#[test]
fn sources_settle_when_each_has_answered_or_missed_a_poll() {
    let mut a = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = 1u64;
    let mut random = || {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        rng
    };
    assert!(!sources_settled([&a]));
    let mut out = [0u8; crate::packet::HEADER_LEN];
    let _ = a.poll_transmit(MonoTime::ZERO, &mut random, &crate::auth::NoKeys, &mut out);
    assert!(
        !sources_settled([&a]),
        "one unanswered poll is not yet a miss"
    );
    let later = MonoTime::from_duration(Duration::from_secs(100));
    let _ = a.poll_transmit(later, &mut random, &crate::auth::NoKeys, &mut out);
    assert!(sources_settled([&a]));
    a.reset_filter();
    assert!(!sources_settled([&a]));
}

#[test]
fn states_carry_ntpd_s_names_for_the_event_log() {
    let names: Vec<_> = [
        State::Unset,
        State::FrequencySet,
        State::Sync,
        State::Spike,
        State::Frequency,
        State::Done,
    ]
    .into_iter()
    .map(State::name)
    .collect();
    assert_eq!(names, ["NSET", "FSET", "SYNC", "SPIK", "FREQ", "DONE"]);
}
