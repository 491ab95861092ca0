//! The state machine's arithmetic: what the clock is told, how much a sample is trusted, the
//! running averages ntpq shows, the outlier and threshold edges.

use super::tests::{TestClock, measure, update};
use super::*;
use crate::clock::Clock;
use crate::time::Ppm;

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[test]
fn the_clock_is_told_the_estimated_and_maximum_error_of_each_update() {
    let mut c = TestClock::new(0.05, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let obs = c.observe(0.0);
    let Update::Slewed { offset, .. } = update(&mut d, &mut c, &obs) else {
        panic!("not slewed");
    };
    let r = d.readout();
    let (est, max) = c.status_errors;
    // ntpd's esterror: the offset's own uncertainty plus the sources' jitter.
    assert!(r.offset_sigma > 0.0);
    assert!(close(est, r.offset_sigma + obs.jitter, 1e-9), "{est} {r:?}");
    // maxerror: the root distance plus the offset still to be corrected.
    assert!(close(max, obs.root_distance + offset.abs(), 1e-9), "{max}");
}

#[test]
fn the_first_sample_is_trusted_as_far_as_its_delay_and_dispersion_allow() {
    let mut c = TestClock::new(0.01, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    // 300 µs above the path's minimum, itself known to 100 µs: the offset error is uniform
    // within ±200 µs, plus 50 µs of dispersion and a 100 ns floor.
    let obs = Observation {
        delay: 5e-4,
        min_delay: 2e-4,
        min_delay_error: 1e-4,
        dispersion: 5e-5,
        ..c.observe(0.0)
    };
    let _ = update(&mut d, &mut c, &obs);
    let variance: f64 = 4e-4 * 4e-4 / 12.0 + 5e-5 * 5e-5 + 1e-14;
    let sigma = d.readout().offset_sigma;
    assert!(close(sigma, variance.sqrt(), 1e-9), "{sigma}");
}

#[test]
fn the_noise_floor_bounds_the_trust_in_a_perfect_sample() {
    let mut c = TestClock::new(0.01, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let obs = Observation {
        delay: 2e-4,
        min_delay: 2e-4,
        min_delay_error: 0.0,
        dispersion: 0.0,
        ..c.observe(0.0)
    };
    let _ = update(&mut d, &mut c, &obs);
    let sigma = d.readout().offset_sigma;
    assert!(close(sigma, 1e-7, 1e-12), "{sigma}");
}

#[test]
fn the_first_sample_counts_as_measured_halfway_through_its_round_trip() {
    let mut c = TestClock::new(0.01, 0.0);
    let mut d = Discipline::new(DisciplineParams {
        initial_frequency: Ppm::new(100.0),
        ..DisciplineParams::default()
    });
    // A one-second round trip: by its end (now) the drift file's 100 ppm has moved the offset
    // by half a second's worth since the sample was taken.
    let obs = Observation {
        delay: 1.0,
        min_delay: 1.0,
        ..c.observe(0.0)
    };
    let Update::Slewed { offset, .. } = update(&mut d, &mut c, &obs) else {
        panic!("not slewed");
    };
    assert!(close(offset, 0.01 + 50e-6, 1e-7), "{offset}");
}

/// Noise in seconds for the `i`th sample: a fixed, irregular pattern within ±`scale`.
fn wobble(i: usize, scale: f64) -> f64 {
    const PATTERN: [f64; 7] = [0.3, -0.8, 0.5, 1.0, -0.2, -0.9, 0.6];
    PATTERN[i % PATTERN.len()] * scale
}

#[test]
fn clock_jitter_averages_the_squared_surprise_over_eight_updates() {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let _ = measure(&mut d, &mut c, 0.0);
    assert!(d.readout().clk_jitter.abs() < 1e-15);
    // The clock is exact and not slewing: the second sample's surprise is exactly its error,
    // and it enters the average with weight 1/8.
    c.run_until(&mut d, 2.0);
    let _ = measure(&mut d, &mut c, 4e-6);
    let jitter = d.readout().clk_jitter;
    assert!(close(jitter, 4e-6 / 8f64.sqrt(), 1e-10), "{jitter}");
    // Once the frequency is learned it stays of the order of the samples' error, neither
    // growing nor vanishing.
    let mut t = 2.0;
    for i in 0..80 {
        t += 16.0;
        c.run_until(&mut d, t);
        let _ = measure(&mut d, &mut c, wobble(i, 5e-6));
        let jitter = d.readout().clk_jitter;
        if i >= 40 {
            assert!(jitter > 1e-6 && jitter < 10e-6, "{jitter} after {i}");
        }
    }
}

#[test]
fn clock_wander_averages_the_squared_frequency_changes_over_eight_updates() {
    let mut c = TestClock::new(0.0, 20.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let _ = measure(&mut d, &mut c, 0.0);
    assert!(d.readout().clk_wander_ppm.abs() < 1e-15);
    let mut expected_var = 0.0;
    let mut t = 0.0;
    for i in 0..40 {
        t += 16.0;
        c.run_until(&mut d, t);
        let before = d.readout().frequency_ppm;
        let u = measure(&mut d, &mut c, wobble(i, 20e-6));
        assert!(matches!(u, Update::Slewed { .. }), "{u:?}");
        let change = d.readout().frequency_ppm - before;
        expected_var += (change * change - expected_var) / 8.0;
        let wander = d.readout().clk_wander_ppm;
        assert!(
            close(
                wander,
                expected_var.sqrt(),
                1e-9 + 1e-6 * expected_var.sqrt()
            ),
            "{wander} {} after {i}",
            expected_var.sqrt()
        );
    }
    assert!(expected_var.sqrt() > 1e-3, "the frequency did change");
}

#[test]
fn the_frequency_correction_is_limited_to_500_ppm() {
    let mut c = TestClock::new(0.0, -800.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let mut t = 0.0;
    for i in 0..20 {
        let _ = measure(&mut d, &mut c, 0.0);
        let f = d.readout().frequency_ppm;
        assert!(f.abs() <= 500.0 + 1e-9, "{f} after {i}");
        t += 2.0;
        c.run_until(&mut d, t);
    }
    assert!(close(d.readout().frequency_ppm.abs(), 500.0, 1e-9));
}

#[test]
fn an_offset_of_exactly_the_panic_threshold_is_not_beyond_it() {
    let mut c = TestClock::new(0.0, 0.0);
    let params = DisciplineParams {
        panic: Some(NtpDuration::from_seconds_f64(1000.0)),
        ..DisciplineParams::default()
    };
    let mut d = Discipline::new(params);
    let obs = Observation {
        offset: 1000.0,
        ..c.observe(0.0)
    };
    assert_eq!(
        update(&mut d, &mut c, &obs),
        Update::Stepped { offset: 1000.0 }
    );
    let mut d = Discipline::new(params);
    let mut c = TestClock::new(0.0, 0.0);
    let obs = Observation {
        offset: -1000.5,
        ..c.observe(0.0)
    };
    assert_eq!(
        update(&mut d, &mut c, &obs),
        Update::Panic { offset: -1000.5 }
    );
}

#[test]
fn an_offset_of_exactly_the_step_threshold_is_slewed() {
    for offset in [0.125, -0.125] {
        let mut c = TestClock::new(offset, 0.0);
        let mut d = Discipline::new(DisciplineParams {
            step_forward: Some(NtpDuration::from_seconds_f64(0.125)),
            step_back: Some(NtpDuration::from_seconds_f64(0.125)),
            ..DisciplineParams::default()
        });
        let u = measure(&mut d, &mut c, 0.0);
        assert!(matches!(u, Update::Slewed { .. }), "{offset}: {u:?}");
        assert!(c.steps.is_empty());
    }
}

#[test]
fn a_spike_lasting_exactly_the_stepout_is_stepped() {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams {
        stepout: NtpDuration::from_seconds_f64(256.0),
        ..DisciplineParams::default()
    });
    let _ = measure(&mut d, &mut c, 0.0);
    c.run_until(&mut d, 16.0);
    let first = Observation {
        offset: 0.5,
        ..c.observe(0.0)
    };
    assert_eq!(
        update(&mut d, &mut c, &first),
        Update::Spike { offset: 0.5 }
    );
    let almost = Observation {
        time: first.time + NtpDuration::from_seconds_f64(255.5),
        ..first
    };
    assert_eq!(
        update(&mut d, &mut c, &almost),
        Update::Spike { offset: 0.5 }
    );
    let at_stepout = Observation {
        time: first.time + NtpDuration::from_seconds_f64(256.0),
        ..first
    };
    assert_eq!(
        update(&mut d, &mut c, &at_stepout),
        Update::Stepped { offset: 0.5 }
    );
}

/// A discipline that has used `n` exact samples 16 s apart, past the settling updates.
fn settled(n: usize) -> (TestClock, Discipline, f64) {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let mut t = 0.0;
    for _ in 0..n {
        let _ = measure(&mut d, &mut c, 0.0);
        t += 16.0;
        c.run_until(&mut d, t);
    }
    (c, d, t)
}

#[test]
fn after_settling_samples_within_five_sigmas_are_used_and_beyond_set_aside() {
    // σ of a prediction here: about 6 µs (the samples' own noise) and 2.6 µs (the estimate's).
    let (mut c, mut d, mut t) = settled(20);
    let u = measure(&mut d, &mut c, 25e-6);
    assert!(matches!(u, Update::Slewed { .. }), "{u:?}");
    t += 16.0;
    c.run_until(&mut d, t);
    assert_eq!(
        measure(&mut d, &mut c, 60e-6),
        Update::Ignored(Ignored::Outlier)
    );
}

#[test]
fn the_third_outlier_in_a_row_is_believed() {
    let (mut c, mut d, mut t) = settled(20);
    c.error -= 0.01;
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(measure(&mut d, &mut c, 0.0));
        t += 16.0;
        c.run_until(&mut d, t);
    }
    assert_eq!(results[0], Update::Ignored(Ignored::Outlier), "{results:?}");
    assert_eq!(results[1], Update::Ignored(Ignored::Outlier), "{results:?}");
    let Update::Slewed { offset, .. } = results[2] else {
        panic!("{results:?}");
    };
    assert!(close(offset, 0.01, 1e-6), "{offset}");
}

/// Updates, at the poll interval the discipline asks for, until it asks for `maxpoll`: every
/// sample exact, the first claiming `first` seconds of round trip and the others `delay`.
fn updates_until_maxpoll(first: f64, delay: f64) -> usize {
    let mut c = TestClock::new(0.0, 0.0);
    let mut d = Discipline::new(DisciplineParams::default());
    let mut t = 0.0;
    for i in 0..200 {
        let obs = Observation {
            delay: if i == 0 { first } else { delay },
            ..c.observe(0.0)
        };
        let _ = update(&mut d, &mut c, &obs);
        if d.poll() == DisciplineParams::default().maxpoll {
            return i;
        }
        t += 2f64.powi(i32::from(d.poll()));
        c.run_until(&mut d, t);
    }
    panic!("delay {delay}: poll {} after 200 updates", d.poll());
}

#[test]
fn noisier_samples_are_polled_less_often_once_they_dominate_the_average() {
    // The wander shows through measurement noise only over a longer interval, so the poll
    // rises sooner; the first, clean sample weighs less with every update.
    let clean = updates_until_maxpoll(2e-4, 2e-4);
    let noisy = updates_until_maxpoll(2e-4, 2e-4 + 1e-2);
    assert!(noisy + 20 < clean, "{noisy} {clean}");
    // The first sample starts the average: noisy from the start, the poll rises sooner still.
    let noisy_from_start = updates_until_maxpoll(2e-4 + 1e-2, 2e-4 + 1e-2);
    assert!(noisy_from_start + 5 < noisy, "{noisy_from_start} {noisy}");
}

/// Exact samples, claiming `delay` seconds of round trip, of a clock `offset` seconds and
/// 100 ppm off, taken every `every` seconds until `until`, stored the way a source stores them (less the part of the
/// pending correction still to come at the sample's midpoint) and moved by every phase the
/// discipline reports, from its updates and its timeouts. Returns the largest difference
/// between a stored sample and what an exact sample taken at the end would be stored as,
/// leaving out the first sample: it is stored before any drift is known.
fn bookkeeping_error(
    params: DisciplineParams,
    offset: f64,
    every: f64,
    delay: f64,
    until: f64,
) -> f64 {
    let mut c = TestClock::new(offset, 100.0);
    let mut d = Discipline::new(params);
    let to_come = |d: &Discipline, at| d.pending_slew().map_or(0.0, |p| p.remaining_after(at));
    let mut stored: Vec<f64> = Vec::new();
    let mut t = 0.0;
    while t <= until {
        let moved = c.run_until(&mut d, t);
        stored.iter_mut().for_each(|s| *s -= moved);
        let obs = Observation {
            delay,
            ..c.observe(0.0)
        };
        let midpoint = obs.time - NtpDuration::from_seconds_f64(delay / 2.0);
        stored.push(obs.offset - to_come(&d, midpoint));
        let phase = match update(&mut d, &mut c, &obs) {
            Update::Slewed { phase, .. } | Update::Measuring { phase } => phase,
            other => panic!("{other:?} at {t} s"),
        };
        stored.iter_mut().for_each(|s| *s -= phase);
        t += every;
    }
    // Past the last sample's poll: every slew and the measurement are over.
    let moved = c.run_until(&mut d, until + 200.0);
    stored.iter_mut().for_each(|s| *s -= moved);
    let exact = c.offset() - to_come(&d, c.now());
    stored[1..]
        .iter()
        .map(|s| (s - exact).abs())
        .fold(0.0, f64::max)
}

#[test]
fn stored_samples_stay_true_through_the_frequency_measurement_and_its_end() {
    let holding = DisciplineParams {
        frequency_hold: true,
        ..DisciplineParams::default()
    };
    // Exact samples end the measurement at an update, and the drift they measure is exact.
    let worst = bookkeeping_error(holding, 0.01, 2.0, 2e-4, 20.0);
    assert!(worst < 1e-6, "{worst}");
    // Slow ones end it at its deadline, in a timeout, with the 10 ms gained meanwhile
    // corrected then; their drift is known only to a ppm or two, which over the 100 s of the
    // measurement is the 120 µs this leaves.
    let worst = bookkeeping_error(holding, 0.01, 2.0, 2e-3, 90.0);
    assert!(worst < 250e-6, "{worst}");
}
