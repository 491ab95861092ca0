//! The start-up frequency measurement (ntpd's FREQ state, `DisciplineParams::frequency_hold`).

use super::tests::{TestClock, measure, update};
use super::*;
use crate::clock::Clock;

fn holding() -> DisciplineParams {
    DisciplineParams {
        frequency_hold: true,
        ..DisciplineParams::default()
    }
}

/// A measurement of the clock's exact offset that claims `delay` seconds of round trip over
/// a 200 µs floor: the larger the delay, the less the filter trusts it.
fn slow_sample(c: &TestClock, delay: f64) -> Observation {
    Observation {
        delay,
        ..c.observe(0.0)
    }
}

#[test]
fn without_a_drift_file_the_phase_is_corrected_and_the_frequency_measured_first() {
    let mut c = TestClock::new(0.1, 100.0);
    let mut d = Discipline::new(holding());
    assert!(
        d.measuring_frequency(),
        "sources burst from their first poll"
    );
    let Update::Slewed { offset, .. } = measure(&mut d, &mut c, 0.0) else {
        panic!("the phase is corrected at once");
    };
    assert!((offset - 0.1).abs() < 1e-4, "{offset}");
    assert_eq!(d.readout().state, State::Frequency);
    assert!(d.measuring_frequency() && !d.is_synchronized());
    // Samples 2 s apart, as a burst brings them: the clock keeps its frequency meanwhile.
    let mut t = 0.0;
    let ended = loop {
        t += 2.0;
        c.run_until(&mut d, t);
        match measure(&mut d, &mut c, 0.0) {
            Update::Measuring { .. } => {
                assert!(c.correction.abs() < 1e-15, "at {t} s");
                // Not applied yet, so not for the drift file either.
                assert_eq!(d.drift_ppm(), None, "at {t} s");
            }
            Update::Slewed { .. } => break t,
            other => panic!("{other:?} at {t} s"),
        }
        assert!(t < 60.0, "still measuring at {t} s");
    };
    // Exact samples predict the clock a poll ahead within a few samples; the correction then
    // takes out the phase gained and the whole 100 ppm.
    assert!(ended >= 4.0, "{ended}");
    assert_eq!(d.readout().state, State::Sync);
    assert!(d.is_synchronized() && !d.measuring_frequency());
    assert!(
        (d.readout().frequency_ppm + 100.0).abs() < 0.5,
        "{:?}",
        d.readout()
    );
    c.run_until(&mut d, ended + 64.0);
    assert!(c.offset().abs() < 50e-6, "{}", c.offset());
    assert!(c.steps.is_empty());
}

#[test]
fn the_measurement_ends_at_its_deadline_with_whatever_is_known() {
    let mut c = TestClock::new(0.01, 100.0);
    let mut d = Discipline::new(holding());
    let obs = slow_sample(&c, 2e-3);
    let Update::Slewed { .. } = update(&mut d, &mut c, &obs) else {
        panic!("the phase is corrected at once");
    };
    // Samples this slow never predict the clock to 80 µs a poll ahead.
    for t in [2.0, 4.0, 6.0, 64.0, 66.0, 68.0] {
        c.run_until(&mut d, t);
        let obs = slow_sample(&c, 2e-3);
        let u = update(&mut d, &mut c, &obs);
        assert!(matches!(u, Update::Measuring { .. }), "{u:?} at {t} s");
    }
    let deadline = d.next_timeout().expect("the deadline is a timer");
    let wait = (deadline - c.now()).to_seconds_f64();
    assert!(wait > 25.0 && wait < 40.0, "{wait}");
    c.run_until(&mut d, 110.0);
    assert_eq!(d.readout().state, State::Sync);
    assert!(!d.measuring_frequency());
    assert!(
        (d.readout().frequency_ppm + 100.0).abs() < 10.0,
        "{:?}",
        d.readout()
    );
}

#[test]
fn stored_samples_follow_the_drift_measured_so_far() {
    let mut c = TestClock::new(0.0, 100.0);
    let mut d = Discipline::new(holding());
    let _ = measure(&mut d, &mut c, 0.0);
    c.run_until(&mut d, 2.0);
    let _ = measure(&mut d, &mut c, 0.0);
    c.run_until(&mut d, 4.0);
    let Update::Measuring { phase } = measure(&mut d, &mut c, 0.0) else {
        panic!("still measuring");
    };
    // The clock gained 200 µs since the last update; sources move their samples by as much.
    assert!((phase - 200e-6).abs() < 20e-6, "{phase}");
    let p = d
        .pending_slew()
        .expect("samples are referred to the last update");
    assert!((p.drift - 100e-6).abs() < 10e-6, "{p:?}");
    // A sample measured 10 s later is stored as of now: 1 ms less than it was measured.
    let later = c.now() + NtpDuration::from_seconds_f64(10.0);
    assert!((p.remaining_after(later) + 1e-3).abs() < 1e-4);
}

#[test]
fn a_drift_file_or_one_shot_mode_corrects_everything_at_once() {
    for params in [
        DisciplineParams {
            initial_frequency: Ppm::new(-100.0),
            ..holding()
        },
        DisciplineParams {
            one_shot: true,
            ..holding()
        },
    ] {
        let mut c = TestClock::new(0.01, 100.0);
        let mut d = Discipline::new(params);
        assert!(!d.measuring_frequency(), "{params:?}");
        let _ = measure(&mut d, &mut c, 0.0);
        assert_ne!(d.readout().state, State::Frequency, "{params:?}");
        assert!(!d.measuring_frequency(), "{params:?}");
    }
}

#[test]
fn a_step_at_start_up_is_followed_by_the_measurement() {
    let mut c = TestClock::new(100.0, 100.0);
    let mut d = Discipline::new(DisciplineParams {
        panic_gate: true,
        ..holding()
    });
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Stepped { .. }
    ));
    assert_eq!(d.readout().state, State::Frequency);
    assert!(d.measuring_frequency() && !d.is_synchronized());
    c.run_until(&mut d, 2.0);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Measuring { .. }
    ));
    assert!(c.correction.abs() < 1e-15);
}

#[test]
fn a_frequency_measured_but_not_applied_is_not_for_the_drift_file() {
    // At minpoll 10 the measurement must predict 1024 s ahead: half a minute of exact samples
    // knows the frequency to a fraction of a ppm, not yet to that.
    let mut c = TestClock::new(0.001, 100.0);
    let mut d = Discipline::new(DisciplineParams {
        minpoll: 10,
        maxpoll: 10,
        ..holding()
    });
    let _ = measure(&mut d, &mut c, 0.0);
    for t in (1..=15).map(|k| f64::from(k) * 2.0) {
        c.run_until(&mut d, t);
        let u = measure(&mut d, &mut c, 0.0);
        assert!(matches!(u, Update::Measuring { .. }), "{u:?} at {t} s");
    }
    assert_eq!(d.drift_ppm(), None);
}

#[test]
fn after_an_immediate_correction_polls_come_early_until_the_frequency_is_learned() {
    // No measurement (as with iburst): corrected at once, and while a rough frequency could
    // take the clock far by the next poll, sources are asked to poll early.
    let mut c = TestClock::new(0.01, 100.0);
    let mut d = Discipline::new(DisciplineParams::default());
    assert!(!d.learning_frequency() && !d.measuring_frequency());
    let Update::Slewed { .. } = measure(&mut d, &mut c, 0.0) else {
        panic!("corrected at once");
    };
    assert!(d.learning_frequency() && !d.measuring_frequency());
    let mut t = 0.0;
    while d.learning_frequency() {
        t += 2.0;
        assert!(t < 60.0, "still learning at {t} s");
        c.run_until(&mut d, t);
        let _ = measure(&mut d, &mut c, 0.0);
    }
    // Learned means predicted a poll ahead: the clock stays close without another sample.
    c.run_until(&mut d, t + 64.0);
    assert!(c.offset().abs() < 100e-6, "{}", c.offset());
}

#[test]
fn one_shot_mode_and_the_measurement_do_not_poll_early() {
    for params in [
        DisciplineParams {
            one_shot: true,
            ..DisciplineParams::default()
        },
        holding(),
    ] {
        let mut c = TestClock::new(0.01, 100.0);
        let mut d = Discipline::new(params);
        let _ = measure(&mut d, &mut c, 0.0);
        assert!(!d.learning_frequency(), "{params:?}");
    }
}

#[test]
fn a_spike_during_the_frequency_measurement_neither_ends_it_nor_claims_sync() {
    let mut c = TestClock::new(0.01, 50.0);
    let mut d = Discipline::new(holding());
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Slewed { .. }
    ));
    c.run_until(&mut d, 2.0);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Measuring { .. }
    ));
    c.run_until(&mut d, 4.0);
    // A sample 0.5 s off: beyond the step threshold, so set aside as a spike.
    assert!(matches!(measure(&mut d, &mut c, 0.5), Update::Spike { .. }));
    assert_eq!(d.readout().state, State::Frequency);
    assert!(d.measuring_frequency(), "the bursts go on");
    assert!(!d.is_synchronized(), "the frequency is still unknown");
    c.run_until(&mut d, 6.0);
    assert!(matches!(
        measure(&mut d, &mut c, 0.0),
        Update::Measuring { .. } | Update::Slewed { .. }
    ));
}
