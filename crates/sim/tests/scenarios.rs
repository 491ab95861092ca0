//! The acceptance scenarios of the "Discipline the clock" issue, each over several seeds.
//!
//! Targets that hold for every seed are asserted per run; RMS offsets on the median over the
//! seeds. The maximum offset is asserted in the steady state (the last hour): right after sync
//! the frequency is known only from two single samples a poll apart (or from samples seconds
//! apart, with iburst or several servers), and an unlucky draw of network delays can leave a
//! few hundred microseconds for a poll or two, which no algorithm can avoid without more
//! samples. docs/BENCHMARKS.md records both maxima over 30 seeds.

use sundial_sim::clock::Oscillator;
use sundial_sim::network::{Link, PathDelay};
use sundial_sim::scenario::{self, Report, Scenario};

/// Seeds every scenario runs with (an odd number, so the median is a run).
const SEEDS: std::ops::RangeInclusive<u64> = 1..=9;

fn runs(make: fn(u64) -> Scenario) -> Vec<Report> {
    SEEDS.map(|seed| sundial_sim::run(&make(seed))).collect()
}

fn median(reports: &[Report], f: fn(&Report) -> f64) -> f64 {
    let mut v: Vec<f64> = reports.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sync_times(reports: &[Report]) -> Vec<f64> {
    reports
        .iter()
        .map(|r| r.sync_s.expect("in sync at the end"))
        .collect()
}

#[test]
fn a_one_server_syncs_within_two_minutes_to_tens_of_microseconds() {
    let reports = runs(scenario::baseline);
    for t in sync_times(&reports) {
        assert!(t <= 120.0, "sync at {t} s");
    }
    let rms = median(&reports, |r| r.rms_s);
    assert!(rms <= 30e-6, "median RMS {rms}");
    for r in &reports {
        assert_eq!(r.steps, 0);
        assert!(r.max_s < 1e-3, "{r:?}");
        assert!(
            r.settled_max_s <= 150e-6 && r.settled_rms_s <= 30e-6,
            "{r:?}"
        );
    }
}

#[test]
fn b_iburst_syncs_within_six_seconds() {
    for t in sync_times(&runs(scenario::iburst)) {
        assert!(t <= 6.0, "sync at {t} s");
    }
}

#[test]
fn c_a_falseticker_is_never_selected_and_always_tallied_x() {
    let reports = runs(scenario::falseticker);
    for r in &reports {
        assert_eq!(r.system_peer_rounds[2], 0, "{r:?}");
        assert_eq!(r.trusted_rounds[2], 0, "falseticker not tallied x: {r:?}");
        assert!(r.trusted_rounds[0] > 0 && r.system_peer_rounds.iter().sum::<u64>() > 0);
        assert!(r.sync_s.is_some_and(|t| t <= 120.0), "{r:?}");
    }
    assert!(median(&reports, |r| r.rms_s) <= 30e-6);
    for r in &reports {
        assert!(
            r.settled_max_s <= 150e-6 && r.settled_rms_s <= 30e-6,
            "{r:?}"
        );
    }
}

#[test]
fn c_a_falseticker_answering_first_cannot_take_over() {
    for seed in SEEDS {
        let mut sc = scenario::falseticker(seed);
        sc.servers.swap(0, 2);
        let r = sundial_sim::run(&sc);
        assert_eq!(r.system_peer_rounds[0], 0, "{r:?}");
        assert!(r.sync_s.is_some_and(|t| t <= 120.0), "{r:?}");
    }
}

#[test]
fn d_thirty_percent_loss_stays_in_sync() {
    let reports = runs(scenario::lossy);
    sync_times(&reports);
    let rms = median(&reports, |r| r.rms_s);
    assert!(rms <= 60e-6, "median RMS {rms}");
    for r in &reports {
        assert!(r.final_offset_s.abs() < 1e-3 && r.max_s < 1e-3, "{r:?}");
    }
}

#[test]
fn e_a_100_s_start_with_the_panic_gate_is_stepped_exactly_once() {
    let reports = runs(scenario::large_offset);
    for r in &reports {
        assert_eq!(r.steps, 1, "{r:?}");
        assert!(!r.panicked);
        assert!(r.sync_s.is_some_and(|t| t <= 200.0), "{r:?}");
    }
    assert!(median(&reports, |r| r.rms_s) <= 30e-6);
}

#[test]
fn e_without_the_panic_gate_a_100_s_start_is_not_a_panic_but_2000_s_is() {
    let mut sc = scenario::large_offset(1);
    sc.client.discipline.panic_gate = false;
    let r = sundial_sim::run(&sc);
    assert!(!r.panicked && r.steps == 1, "{r:?}");
    sc.client.offset_s = 2000.0;
    let r = sundial_sim::run(&sc);
    assert!(r.panicked && r.steps == 0, "{r:?}");
}

#[test]
fn f_a_500_ppm_frequency_error_syncs_within_1000_s() {
    let reports = runs(scenario::large_frequency);
    for t in sync_times(&reports) {
        assert!(t <= 1000.0, "sync at {t} s");
    }
    for r in &reports {
        assert!(r.final_freq_error_ppm.abs() < 0.2, "{r:?}");
    }
}

#[test]
fn g_an_hour_without_servers_stays_within_a_millisecond() {
    for r in runs(scenario::outage) {
        assert!(r.final_offset_s.abs() <= 1e-3, "{r:?}");
    }
}

#[test]
fn without_network_jitter_the_books_are_exact_to_the_nanosecond() {
    let mut sc = scenario::baseline(1);
    sc.client.oscillator = Oscillator::constant(100.0);
    sc.servers[0].link = Link::symmetric(100e-6, 0.0);
    let r = sundial_sim::run(&sc);
    assert!(r.settled_rms_s < 20e-9, "{r:?}");
    assert!(r.final_freq_error_ppm.abs() < 1e-4, "{r:?}");
}

#[test]
fn a_path_asymmetry_shows_up_as_half_the_difference() {
    let mut sc = scenario::baseline(1);
    sc.client.oscillator = Oscillator::constant(100.0);
    let link = &mut sc.servers[0].link;
    link.up = PathDelay {
        base_s: 150e-6,
        jitter_mean_s: 0.0,
    };
    link.down = PathDelay {
        base_s: 50e-6,
        jitter_mean_s: 0.0,
    };
    let r = sundial_sim::run(&sc);
    // The client believes the path symmetric, so it settles 50 µs ahead of true time.
    assert!((r.final_offset_s + 50e-6).abs() < 1e-6, "{r:?}");
}

#[test]
fn runs_are_deterministic_by_seed() {
    let a = sundial_sim::run(&scenario::falseticker(7));
    assert_eq!(a, sundial_sim::run(&scenario::falseticker(7)));
    assert_ne!(a, sundial_sim::run(&scenario::falseticker(8)));
}
