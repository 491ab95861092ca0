//! The system process's rules, each against its API: virtual time, a virtual clock, replies
//! built by hand, no sockets.

use core::convert::Infallible;
use core::time::Duration;

use super::*;
use crate::auth::NoKeys;
use crate::clock::Clock;
use crate::discipline::DisciplineParams;
use crate::fallback::Fallback;
use crate::packet::{HEADER_LEN, Leap, Mode, NtpHeader, ReferenceId};
use crate::select::{SelectParams, Tally};
use crate::source::{Fitness, Outcome, SourceParams};
use crate::time::{Log2Seconds, MonoTime, NtpDuration, NtpTimestamp};

/// One-way delay of every virtual path, seconds.
const ONE_WAY_S: f64 = 100e-6;

/// A clock that reads true time plus an error; the error grows at the correction the
/// discipline sets (the oscillator itself is perfect) and jumps with every step.
struct TestClock {
    base: NtpTimestamp,
    true_s: f64,
    error: f64,
    correction: f64,
    steps: Vec<f64>,
}

impl TestClock {
    fn new(offset: f64) -> Self {
        Self {
            base: NtpTimestamp::from_parts(0xec00_0000, 0),
            true_s: 0.0,
            error: -offset,
            correction: 0.0,
            steps: Vec::new(),
        }
    }

    fn at(&self, secs: f64) -> NtpTimestamp {
        self.base + NtpDuration::from_seconds_f64(secs)
    }
}

impl Clock for TestClock {
    type Error = Infallible;

    fn now(&self) -> NtpTimestamp {
        self.at(self.true_s + self.error)
    }

    fn step(&mut self, by: NtpDuration) -> Result<NtpTimestamp, Infallible> {
        self.error += by.to_seconds_f64();
        self.steps.push(by.to_seconds_f64());
        Ok(self.now())
    }

    fn set_frequency(&mut self, ppm: f64) -> Result<NtpTimestamp, Infallible> {
        self.correction = ppm * 1e-6;
        Ok(self.now())
    }

    fn set_status(&mut self, _: Leap, _: NtpDuration, _: NtpDuration) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A system process, its clock, and one virtual server per source (each some offset away
/// from true time).
struct World {
    system: System,
    clock: TestClock,
    servers: Vec<(SourceId, f64)>,
    events: Vec<Event>,
    random: u64,
    /// The leap indicator every server sends.
    leap: Leap,
}

impl World {
    fn new(params: SystemParams, client_offset: f64) -> Self {
        Self {
            system: System::new(params, MonoTime::ZERO),
            clock: TestClock::new(client_offset),
            servers: Vec::new(),
            events: Vec::new(),
            random: 1,
            leap: Leap::NoWarning,
        }
    }

    fn add(&mut self, id: u32, server_offset: f64, spec: SourceSpec) -> SourceId {
        let id = SourceId(id);
        assert!(self.system.add_source(id, spec, self.mono()));
        self.servers.push((id, server_offset));
        id
    }

    fn mono(&self) -> MonoTime {
        MonoTime::from_duration(Duration::from_secs_f64(self.clock.true_s))
    }

    /// Moves true time on to `t`, running the discipline's timer when it is due.
    fn run_until(&mut self, t: f64) {
        while self.clock.true_s < t {
            let due = self.system.clock_timeout().map(|deadline| {
                let ahead = (deadline - self.clock.now()).to_seconds_f64().max(0.0);
                self.clock.true_s + ahead / (1.0 + self.clock.correction) + 1e-9
            });
            let until = due.map_or(t, |d| d.min(t));
            self.clock.error += self.clock.correction * (until - self.clock.true_s);
            self.clock.true_s = until;
            if due.is_some_and(|d| d <= t) {
                self.system.handle_timeout(&mut self.clock);
            }
        }
        self.drain();
    }

    /// One exchange of source `id` with its server, sent now (whether or not its poll is
    /// due). Returns the outcome.
    fn exchange(&mut self, id: SourceId) -> Outcome {
        let server_offset = self.servers.iter().find(|s| s.0 == id).unwrap().1;
        let due = self.system.source(id).unwrap().poll_timeout().unwrap();
        let mut request = [0u8; HEADER_LEN];
        let now = self.mono().max(due);
        let random = &mut self.random;
        let mut rng = || {
            *random = random
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            *random
        };
        self.system
            .poll_transmit(id, now, &mut rng, &NoKeys, &mut request)
            .expect("a request");
        self.system.handle_sent(id, self.clock.now());
        let nonce = NtpHeader::decode(&request).transmit_timestamp;
        self.run_until(self.clock.true_s + ONE_WAY_S);
        let stamp = self.clock.at(self.clock.true_s + server_offset);
        let mut reply = NtpHeader::new(4, Mode::Server);
        reply.stratum = 1;
        reply.leap = self.leap;
        reply.poll = Log2Seconds::new(6);
        reply.precision = Log2Seconds::new(-24);
        reply.reference_id = ReferenceId::from_bytes(*b"GPS\0");
        reply.reference_timestamp = stamp - NtpDuration::from_seconds(16);
        reply.origin_timestamp = nonce;
        reply.receive_timestamp = stamp;
        reply.transmit_timestamp = stamp;
        let mut bytes = [0u8; HEADER_LEN];
        reply.emit(&mut bytes);
        self.run_until(self.clock.true_s + ONE_WAY_S);
        let t4 = self.clock.now();
        let now = self.mono();
        let outcome = self
            .system
            .handle_response(id, t4, &bytes, &NoKeys, &mut self.clock, now)
            .expect("a known source");
        self.drain();
        outcome
    }

    fn refresh(&mut self) {
        let now = self.mono();
        self.system.refresh(&mut self.clock, now);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(e) = self.system.poll_event() {
            self.events.push(e);
        }
    }

    fn fed(&self, id: SourceId) -> usize {
        self.events.iter().filter(|e| **e == Event::Fed(id)).count()
    }

    fn tally(&self, id: SourceId) -> Tally {
        self.system.sources().find(|v| v.id == id).unwrap().tally
    }
}

fn params(discipline: DisciplineParams) -> SystemParams {
    SystemParams {
        select: SelectParams::default(),
        fitness: Fitness::default(),
        discipline: Some(discipline),
        poll_range: (6, 10),
        fallback: Fallback::None,
        upstream_configured: true,
        precision: Log2Seconds::new(-20),
        one_shot: false,
    }
}

fn spec() -> SourceSpec {
    SourceSpec {
        params: SourceParams::default(),
        address: Some("192.0.2.1".parse().unwrap()),
        prefer: false,
        noselect: false,
        truechimer: false,
    }
}

#[test]
fn first_source_to_answer_does_not_set_the_clock_alone() {
    let mut w = World::new(params(DisciplineParams::default()), 0.05);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    assert!(matches!(w.exchange(a), Outcome::Sample(_)));
    assert_eq!(w.system.system_peer(), None);
    assert_eq!(w.fed(a), 0);
    assert_eq!(
        w.events,
        [Event::Sampled(a)],
        "a sample is reported even before selection runs (peerstats)"
    );
    assert!(!w.events.contains(&Event::Selected));
    assert_eq!(w.system.serving(), Serving::Unsynchronized);
    assert!(w.clock.correction.abs() < 1e-12, "the clock was touched");

    w.exchange(b);
    assert!(w.events.contains(&Event::Selected));
    assert!(w.system.system_peer().is_some());
    assert_eq!(w.fed(a) + w.fed(b), 2, "both samples go to the discipline");
    assert!(w.events.iter().any(|e| matches!(e, Event::Slewed { .. })));
    assert!(matches!(w.system.serving(), Serving::Peer(_)));
}

#[test]
fn a_source_that_missed_two_polls_no_longer_holds_up_the_start() {
    let mut w = World::new(params(DisciplineParams::default()), 0.05);
    let a = w.add(1, 0.0, spec());
    let silent = w.add(2, 0.0, spec());
    let mut buf = [0u8; HEADER_LEN];
    for _ in 0..2 {
        let due = w.system.source(silent).unwrap().poll_timeout().unwrap();
        w.system
            .poll_transmit(silent, due, &mut || 7, &NoKeys, &mut buf)
            .unwrap();
    }
    w.exchange(a);
    assert_eq!(w.system.system_peer(), Some(a));
    assert_eq!(w.fed(a), 1);
}

#[test]
fn a_falseticker_is_never_fed_to_the_discipline() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let good: Vec<SourceId> = (1..=3).map(|i| w.add(i, 0.0, spec())).collect();
    let liar = w.add(4, 0.05, spec());
    for round in 0..6 {
        for &id in good.iter().chain([&liar]) {
            w.exchange(id);
            w.run_until(w.clock.true_s + 1.0);
        }
        if round > 0 {
            assert_eq!(w.tally(liar), Tally::Falseticker, "round {round}");
        }
    }
    assert_eq!(w.fed(liar), 0);
    assert!(good.iter().all(|&id| w.fed(id) >= 5));
    assert!(w.clock.error.abs() < 1e-3, "clock off by {}", w.clock.error);
}

#[test]
fn a_step_resets_every_filter_and_closes_the_start_up_gate() {
    let mut w = World::new(params(DisciplineParams::default()), 1.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    w.exchange(a);
    w.exchange(b);
    assert!(w.events.iter().any(
        |e| matches!(e, Event::Stepped { offset } if (offset.to_seconds_f64() - 1.0).abs() < 1e-3)
    ));
    assert_eq!(w.clock.steps.len(), 1);
    assert!(w.system.sources().all(|v| v.source.estimate().is_none()));
    assert_eq!(w.system.served_state().stratum, MAX_STRATUM);
    // After the step, one source answering is not enough again.
    w.events.clear();
    w.exchange(a);
    assert_eq!(w.fed(a), 0);
    w.exchange(b);
    assert!(w.fed(a) + w.fed(b) > 0);
}

#[test]
fn the_gap_after_a_start_up_step_keeps_the_system_peer_and_serves_unsynchronised() {
    let mut w = World::new(params(DisciplineParams::default()), 1.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    w.exchange(a);
    w.exchange(b);
    assert_eq!(w.clock.steps.len(), 1, "{:?}", w.events);
    w.events.clear();
    // Filters emptied by the step: until both sources answer again, nothing is selectable,
    // yet nothing was lost that a log or a monitor should report as "unsynchronised".
    for _ in 0..3 {
        w.refresh();
        assert!(!w.system.served_state().is_synchronized());
        assert!(
            matches!(w.system.serving(), Serving::Peer(_)),
            "{:?}",
            w.events
        );
        // Unsynchronised is served: no source is shown as followed (`*`).
        assert!(w.system.sources().all(|v| v.tally != Tally::SystemPeer));
        w.run_until(w.clock.true_s + 0.3);
    }
    assert!(
        !w.events
            .iter()
            .any(|e| matches!(e, Event::ServingChanged { .. })),
        "{:?}",
        w.events
    );
}

#[test]
fn beyond_the_panic_threshold_nothing_is_touched_and_the_driver_is_told() {
    let mut w = World::new(params(DisciplineParams::default()), 2000.0);
    let a = w.add(1, 0.0, spec());
    w.exchange(a);
    assert!(w.events.iter().any(
        |e| matches!(e, Event::Panic { offset, threshold } if *offset > NtpDuration::from_seconds(1999) && *threshold == NtpDuration::from_seconds(1000))
    ));
    assert!(w.clock.steps.is_empty());
    assert!(w.clock.correction.abs() < 1e-12);
}

#[test]
fn every_source_gets_the_phase_of_a_correction_even_one_not_selected() {
    let mut w = World::new(params(DisciplineParams::default()), 0.02);
    let a = w.add(1, 0.0, spec());
    let quiet = w.add(
        2,
        0.0,
        SourceSpec {
            noselect: true,
            ..spec()
        },
    );
    w.exchange(quiet);
    let before = w.system.source(quiet).unwrap().estimate().unwrap().offset;
    assert!((before - 0.02).abs() < 1e-3);
    w.exchange(a);
    assert_eq!(w.fed(quiet), 0);
    assert_eq!(w.tally(quiet), Tally::Reject);
    // The first correction slews all of the 20 ms out: the noselect source's stored offset
    // now says what its server will say once the slew is done.
    let after = w.system.source(quiet).unwrap().estimate().unwrap().offset;
    assert!(after.abs() < 1e-3, "noselect source still at {after}");
}

#[test]
fn without_a_system_peer_the_local_clock_stands_in_after_its_grace() {
    let fallback = Fallback::LocalClock {
        stratum: 10,
        refid: ReferenceId::from_bytes(*b"LOCL"),
    };
    let mut w = World::new(
        SystemParams {
            fallback,
            ..params(DisciplineParams::default())
        },
        0.0,
    );
    let a = w.add(1, 0.0, spec());
    w.run_until(30.0);
    w.refresh();
    assert_eq!(
        w.system.serving(),
        Serving::Unsynchronized,
        "within the grace"
    );
    w.run_until(61.0);
    w.refresh();
    w.drain();
    assert_eq!(w.system.serving(), Serving::Fallback);
    assert_eq!(w.system.served_state().stratum, 11);
    assert!(w.events.contains(&Event::ServingChanged {
        from: Serving::Unsynchronized,
        to: Serving::Fallback
    }));
    w.exchange(a);
    assert_eq!(w.system.serving(), Serving::Peer(a));
}

#[test]
fn after_an_immediate_correction_sources_poll_at_half_the_interval() {
    let iburst = SourceSpec {
        params: SourceParams {
            iburst: true,
            ..SourceParams::default()
        },
        ..spec()
    };
    let mut w = World::new(params(DisciplineParams::default()), 0.01);
    let a = w.add(1, 0.0, iburst);
    w.exchange(a);
    assert!(w.events.iter().any(|e| matches!(e, Event::Slewed { .. })));
    // The rest of the iburst, then the first regular poll.
    let mut last = w.clock.true_s;
    loop {
        let due = w
            .system
            .source(a)
            .unwrap()
            .poll_timeout()
            .unwrap()
            .as_seconds_f64();
        if due - last > 10.0 {
            assert!(due - last < 40.0, "next poll {} s later", due - last);
            break;
        }
        w.run_until(due);
        w.exchange(a);
        last = w.clock.true_s;
    }
}

#[test]
fn while_the_frequency_is_measured_every_poll_is_a_burst() {
    let hold = DisciplineParams {
        frequency_hold: true,
        ..DisciplineParams::default()
    };
    let mut w = World::new(params(hold), 0.01);
    let a = w.add(1, 0.0, spec());
    w.exchange(a);
    assert!(w.events.contains(&Event::MeasuringFrequency));
    // The source is the system peer, but until the frequency is known the discipline does not
    // have the clock in hand: clients are told the time is unsynchronised.
    assert_eq!(w.system.serving(), Serving::Peer(a));
    assert!(!w.system.is_synchronized());
    assert!(!w.system.served_state().is_synchronized());
    let after_first = w
        .system
        .source(a)
        .unwrap()
        .poll_timeout()
        .unwrap()
        .as_seconds_f64();
    assert!(after_first - w.clock.true_s < 3.0, "no burst");
}

#[test]
fn removing_a_source_keeps_the_others_and_forgets_the_system_peer() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    w.exchange(a);
    w.exchange(b);
    let peer = w.system.system_peer().unwrap();
    let other = if peer == a { b } else { a };
    let kept = w.system.source(other).unwrap().estimate();
    assert!(w.system.remove_source(peer).is_some());
    assert_eq!(w.system.system_peer(), None);
    assert_eq!(w.system.source(other).unwrap().estimate(), kept);
    assert!(
        !w.system.add_source(other, spec(), MonoTime::ZERO),
        "ids are unique"
    );
    assert!(w.system.add_source(peer, spec(), MonoTime::ZERO));
    assert!(w.system.source(peer).unwrap().estimate().is_none());
}

#[test]
fn with_no_clock_to_steer_the_offset_is_reported_and_nothing_is_fed() {
    let mut w = World::new(
        SystemParams {
            discipline: None,
            one_shot: true,
            ..params(DisciplineParams::default())
        },
        0.02,
    );
    let a = w.add(1, 0.0, spec());
    w.exchange(a);
    assert_eq!(w.fed(a), 0);
    assert!(
        w.events.iter().any(
            |e| matches!(e, Event::OneShotUnsteered { offset } if (offset.to_seconds_f64() - 0.02).abs() < 1e-3)
        )
    );
    assert!(w.clock.correction.abs() < 1e-12);
    assert!(w.system.served_state().is_synchronized());
    // θ_sys of the round is what ntpq shows as the offset.
    assert!((w.system.combined_offset().to_seconds_f64() - 0.02).abs() < 1e-3);
    assert!((w.system.readout().offset.to_seconds_f64() - 0.02).abs() < 1e-3);
}

#[test]
fn new_selection_limits_apply_from_the_next_round_and_keep_the_sources() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let a = w.add(1, 0.0, spec());
    w.exchange(a);
    assert_eq!(w.system.system_peer(), Some(a));
    w.system.set_selection(
        SelectParams {
            minsane: 2,
            ..SelectParams::default()
        },
        Fitness::default(),
    );
    w.refresh();
    assert_eq!(
        w.system.system_peer(),
        None,
        "one source is not enough for minsane 2"
    );
    assert!(w.system.source(a).unwrap().estimate().is_some());
    w.system
        .set_selection(SelectParams::default(), Fitness::default());
    w.refresh();
    assert_eq!(w.system.system_peer(), Some(a));
}

#[test]
fn a_new_fallback_stands_in_at_the_next_round() {
    let mut w = World::new(
        SystemParams {
            upstream_configured: false,
            ..params(DisciplineParams::default())
        },
        0.0,
    );
    w.refresh();
    assert_eq!(w.system.serving(), Serving::Unsynchronized);
    w.system.set_fallback(
        Fallback::Orphan {
            stratum: 8,
            wait: Duration::ZERO,
        },
        false,
    );
    w.refresh();
    assert_eq!(w.system.serving(), Serving::Fallback);
    assert_eq!(w.system.served_state().stratum, 8);
}

#[test]
fn the_system_peer_is_kept_while_it_survives() {
    // Two equally good sources: the one chosen first stays the system peer round after round
    // (no flapping between equals).
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    let mut peers = Vec::new();
    for _ in 0..6 {
        w.exchange(a);
        w.exchange(b);
        w.refresh();
        if let Serving::Peer(id) = w.system.serving() {
            peers.push(id);
        }
    }
    assert!(peers.len() >= 4, "{peers:?}");
    assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");
}

#[test]
fn the_frequency_measurement_is_announced_once_when_it_starts_and_once_when_it_ends() {
    let hold = DisciplineParams {
        frequency_hold: true,
        ..DisciplineParams::default()
    };
    let mut w = World::new(params(hold), 0.01);
    let a = w.add(1, 0.0, spec());
    let count = |w: &World, which: fn(&Event) -> bool| w.events.iter().filter(|e| which(e)).count();
    let measured = |e: &Event| matches!(e, Event::FrequencyMeasured { .. });
    let mut t = 0.0;
    while count(&w, measured) == 0 && t < 3600.0 {
        w.exchange(a);
        t += 2.0;
        w.run_until(t);
    }
    assert_eq!(count(&w, measured), 1, "never measured: {:?}", w.events);
    // Later updates announce nothing more.
    for _ in 0..10 {
        w.exchange(a);
        t += 16.0;
        w.run_until(t);
    }
    assert_eq!(
        count(&w, |e| *e == Event::MeasuringFrequency),
        1,
        "{:?}",
        w.events
    );
    assert_eq!(count(&w, measured), 1, "{:?}", w.events);
}

#[test]
fn a_leap_second_the_survivors_announce_is_served() {
    let mut w = World::new(
        SystemParams {
            discipline: None,
            ..params(DisciplineParams::default())
        },
        0.0,
    );
    w.leap = Leap::AddSecond;
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    for _ in 0..3 {
        w.exchange(a);
        w.exchange(b);
    }
    assert!(matches!(w.system.serving(), Serving::Peer(_)));
    assert_eq!(w.system.served_state().leap, Leap::AddSecond);
}

#[test]
fn the_local_clock_stands_in_exactly_when_its_grace_is_over() {
    let fallback = Fallback::LocalClock {
        stratum: 10,
        refid: ReferenceId::from_bytes(*b"LOCL"),
    };
    let mut w = World::new(
        SystemParams {
            fallback,
            ..params(DisciplineParams::default())
        },
        0.0,
    );
    w.add(1, 0.0, spec());
    w.run_until(LOCAL_CLOCK_GRACE.as_secs_f64() - 1e-3);
    w.refresh();
    assert_eq!(w.system.serving(), Serving::Unsynchronized);
    w.run_until(LOCAL_CLOCK_GRACE.as_secs_f64());
    w.refresh();
    assert_eq!(w.system.serving(), Serving::Fallback);
}

#[test]
fn a_state_is_synchronised_only_with_a_leap_indicator_and_a_stratum_below_16() {
    let synced = SystemState {
        leap: Leap::NoWarning,
        stratum: 3,
        ..SystemState::unsynchronized(Log2Seconds::new(-20))
    };
    assert!(synced.is_synchronized());
    assert!(
        !SystemState {
            stratum: MAX_STRATUM,
            ..synced
        }
        .is_synchronized()
    );
    assert!(
        !SystemState {
            leap: Leap::Unsynchronized,
            ..synced
        }
        .is_synchronized()
    );
}

#[test]
fn root_dispersion_grows_only_for_a_synchronised_state_with_a_reference_time() {
    let at = |secs: u64| NtpTimestamp::from_bits((3_900_000_000 + secs) << 32);
    let synced = SystemState {
        leap: Leap::NoWarning,
        stratum: 3,
        root_dispersion: NtpDuration::from_seconds_f64(0.01),
        reference_time: at(0),
        ..SystemState::unsynchronized(Log2Seconds::new(-20))
    };
    let grown = synced.root_dispersion_at(at(100)).to_seconds_f64();
    assert!(
        (grown - (0.01 + 100.0 * PHI_PPM * 1e-6)).abs() < 1e-9,
        "{grown}"
    );
    for frozen in [
        SystemState {
            leap: Leap::Unsynchronized,
            ..synced
        },
        SystemState {
            reference_time: NtpTimestamp::ZERO,
            ..synced
        },
    ] {
        let d = frozen.root_dispersion_at(at(100)).to_seconds_f64();
        assert!((d - 0.01).abs() < 1e-9, "{frozen:?}: {d}");
    }
}

#[test]
fn no_source_is_shown_as_system_peer_before_the_gate_opens() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let liar = w.add(1, 0.05, spec());
    let good: Vec<SourceId> = (2..=4).map(|i| w.add(i, 0.0, spec())).collect();
    w.exchange(liar);
    w.refresh();
    // Only the falseticker has answered: selection alone would make it the system peer.
    assert!(
        w.system.sources().all(|v| v.tally != Tally::SystemPeer),
        "a source is marked `*` before the majority exists"
    );
    assert_eq!(w.system.system_peer(), None);
    for &id in &good {
        w.exchange(id);
    }
    assert!(good.contains(&w.system.system_peer().unwrap()));
    assert_eq!(w.tally(liar), Tally::Falseticker);
}

/// Served time minus true time, seconds.
fn served_error(w: &World) -> f64 {
    let served = w.system.served_time(w.clock.now());
    (served - w.clock.at(w.clock.true_s)).to_seconds_f64()
}

#[test]
fn served_time_includes_the_rest_of_a_slew_and_never_goes_back() {
    let mut w = World::new(params(DisciplineParams::default()), 0.1);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    w.exchange(a);
    w.exchange(b);
    assert!(w.events.iter().any(|e| matches!(e, Event::Slewed { .. })));
    // The clock itself is still almost 0.1 s off; what is served is not.
    assert!(w.clock.error.abs() > 0.09, "clock error {}", w.clock.error);
    assert!(served_error(&w).abs() < 1e-5, "served {}", served_error(&w));
    let mut last = w.system.served_time(w.clock.now());
    for _ in 0..300 {
        w.run_until(w.clock.true_s + 0.01);
        let served = w.system.served_time(w.clock.now());
        assert!((served - last).to_bits() > 0, "served time went back");
        assert!(served_error(&w).abs() < 1e-5, "served {}", served_error(&w));
        last = served;
    }
    // The slew is over: the clock has caught up with the served time.
    assert!(w.clock.error.abs() < 1e-5, "clock error {}", w.clock.error);
    assert_eq!(w.system.served_correction(w.clock.now()), NtpDuration::ZERO);
}

#[test]
fn reference_time_is_the_last_sample_the_discipline_used() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    w.exchange(a);
    w.exchange(b);
    for _ in 0..5 {
        w.run_until(w.clock.true_s + 64.0);
        w.exchange(a);
        w.exchange(b);
    }
    assert!(w.system.served_state().is_synchronized());
    let reference = w.system.served_state().reference_time;
    let age = (w.clock.now() - reference).to_seconds_f64();
    assert!((0.0..1e-3).contains(&age), "reference time {age} s old");
}

#[test]
fn a_step_after_synchronisation_keeps_serving_the_system_peer_with_the_step_in_the_dispersion() {
    let discipline = DisciplineParams {
        stepout: NtpDuration::from_seconds(10),
        ..DisciplineParams::default()
    };
    let mut w = World::new(params(discipline), 0.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    w.exchange(a);
    w.exchange(b);
    w.exchange(a);
    assert!(w.system.served_state().is_synchronized());
    let last_good_update = w.system.served_state().reference_time;
    for s in &mut w.servers {
        s.1 = 0.5;
    }
    for _ in 0..30 {
        // Samples set aside as spikes do not update the clock: the dispersion keeps growing
        // from the last sample that did.
        let served = w.system.served_state();
        if served.is_synchronized() {
            assert_eq!(served.reference_time, last_good_update);
        }
        w.run_until(w.clock.true_s + 1.0);
        w.exchange(a);
        if w.events.iter().any(|e| matches!(e, Event::Stepped { .. })) {
            break;
        }
        w.exchange(b);
        if w.events.iter().any(|e| matches!(e, Event::Stepped { .. })) {
            break;
        }
    }
    assert_eq!(w.clock.steps.len(), 1, "{:?}", w.events);
    w.events.clear();
    for _ in 0..3 {
        w.refresh();
        let served = w.system.served_state();
        assert!(served.is_synchronized(), "{served:?}");
        let Serving::Peer(held) = w.system.serving() else {
            panic!("serving {:?}", w.system.serving());
        };
        // Still shown as the system peer (`*`, the sys.peer status monitoring looks for).
        let tally = w.system.sources().find(|v| v.id == held).map(|v| v.tally);
        assert_eq!(tally, Some(Tally::SystemPeer));
        let bound = served.root_delay.to_seconds_f64() / 2.0
            + served.root_dispersion_at(w.clock.now()).to_seconds_f64();
        assert!(bound >= 0.5, "bound {bound} after a 0.5 s step");
        assert!(served_error(&w).abs() <= bound);
        w.run_until(w.clock.true_s + 0.3);
    }
    assert!(
        !w.events.iter().any(|e| matches!(
            e,
            Event::ServingChanged {
                to: Serving::Unsynchronized,
                ..
            }
        )),
        "{:?}",
        w.events
    );
    w.exchange(a);
    w.exchange(b);
    let served = w.system.served_state();
    assert!(served.is_synchronized());
    assert!(served.root_dispersion.to_seconds_f64() < 0.01, "{served:?}");
}

// Reference clocks.

/// What a GPS claims about itself: stratum 0, refid GPS.
fn gps_info() -> crate::source::PeerInfo {
    crate::source::PeerInfo {
        stratum: 0,
        precision: -20,
        reference_id: ReferenceId::from_bytes(*b"GPS\0"),
        ..crate::source::PeerInfo::default()
    }
}

/// A reference clock's association: polled every 16 s.
fn refclock_spec(prefer: bool) -> SourceSpec {
    SourceSpec {
        params: SourceParams {
            minpoll: 4,
            maxpoll: 4,
            ..SourceParams::default()
        },
        prefer,
        ..spec()
    }
}

impl World {
    fn add_refclock(&mut self, id: u32, prefer: bool) -> SourceId {
        let id = SourceId(id);
        assert!(
            self.system
                .add_refclock(id, refclock_spec(prefer), self.mono())
        );
        id
    }

    /// A GPS (`prefer`, id 9) and the PPS clock it numbers (id 10).
    fn add_gps_and_pps(&mut self) -> (SourceId, SourceId) {
        let gps = self.add_refclock(9, true);
        let pps = SourceId(10);
        assert!(self.system.add_pps(pps, refclock_spec(false), self.mono()));
        (gps, pps)
    }

    /// Sixteen readings a second apart of a reference clock `offset` ahead of true time, then
    /// the poll.
    fn refclock_poll(&mut self, id: SourceId, offset: f64) -> Option<Outcome> {
        for _ in 0..16 {
            self.run_until(self.clock.true_s + 1.0);
            let reading = crate::refclock::Reading {
                reference: self.clock.at(self.clock.true_s + offset),
                receive: self.clock.now(),
                leap: Leap::NoWarning,
            };
            assert!(self.system.handle_reading(id, reading));
        }
        let now = self.mono();
        let outcome = self
            .system
            .handle_refclock(id, gps_info(), &mut self.clock, now);
        self.drain();
        outcome
    }
}

#[test]
fn a_stratum_0_reference_clock_is_served_as_stratum_1_with_its_refid() {
    let mut w = World::new(params(DisciplineParams::default()), 0.01);
    let gps = w.add_refclock(9, false);
    assert_eq!(
        w.system.poll_timeout(),
        None,
        "a reference clock sends nothing"
    );
    for _ in 0..30 {
        assert!(matches!(
            w.refclock_poll(gps, 0.0),
            Some(Outcome::Sample(_))
        ));
        if w.system.served_state().is_synchronized() {
            break;
        }
    }
    assert_eq!(w.system.system_peer(), Some(gps));
    let served = w.system.served_state();
    assert_eq!(served.stratum, 1);
    assert_eq!(served.reference_id, ReferenceId::from_bytes(*b"GPS\0"));
    assert!(w.fed(gps) > 0);
    assert_eq!(w.system.source(gps).unwrap().reach() & 1, 1);
}

#[test]
fn a_reference_clock_that_disagrees_with_the_servers_is_a_falseticker() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let servers: Vec<SourceId> = (1..=3).map(|i| w.add(i, 0.0, spec())).collect();
    let gps = w.add_refclock(9, false);
    for _ in 0..6 {
        for &id in &servers {
            w.exchange(id);
        }
        w.refclock_poll(gps, 0.05);
    }
    assert_eq!(w.tally(gps), Tally::Falseticker);
    assert_eq!(w.fed(gps), 0);
    assert!(servers.contains(&w.system.system_peer().unwrap()));
}

#[test]
fn a_reference_clock_without_readings_misses_its_poll() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let gps = w.add_refclock(9, false);
    w.refclock_poll(gps, 0.0);
    let now = w.mono();
    assert_eq!(
        w.system.handle_refclock(gps, gps_info(), &mut w.clock, now),
        None
    );
    assert_eq!(w.system.source(gps).unwrap().reach(), 0b10);
    // A reading for a source that is not a reference clock is refused.
    let net = w.add(1, 0.0, spec());
    let reading = crate::refclock::Reading {
        reference: w.clock.now(),
        receive: w.clock.now(),
        leap: Leap::NoWarning,
    };
    assert!(!w.system.handle_reading(net, reading));
}

#[test]
fn only_a_preferred_system_peer_numbers_the_pulses() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let gps = w.add_refclock(9, false);
    w.refclock_poll(gps, 0.002);
    w.refclock_poll(gps, 0.002);
    assert_eq!(w.system.system_peer(), Some(gps));
    assert_eq!(w.system.pps_numbering(), None, "not prefer");
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let gps = w.add_refclock(9, true);
    w.refclock_poll(gps, 0.002);
    assert_eq!(w.system.system_peer(), Some(gps));
    // The offset as it stands after the corrections the discipline made for it.
    let numbering = w.system.pps_numbering().unwrap();
    assert!(numbering.abs() < 0.002, "{numbering}");
}

#[test]
fn a_pps_clock_numbered_by_the_preferred_gps_is_the_only_source_followed() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let (gps, pps) = w.add_gps_and_pps();
    // The GPS is 0.5 ms off, the pulses 1 µs: both agree within their distances.
    for _ in 0..4 {
        w.refclock_poll(pps, 0.000_001);
        w.refclock_poll(gps, 0.000_5);
    }
    assert_eq!(w.system.system_peer(), Some(pps));
    // As ntpd shows them: `o` for the pulses that discipline, `*` for the GPS numbering them.
    assert_eq!(w.tally(pps), Tally::PpsPeer);
    assert_eq!(w.tally(gps), Tally::SystemPeer);
    assert!(w.system.pps_numbering().is_some(), "the GPS still numbers");
    let fed_gps = w.fed(gps);
    w.refclock_poll(gps, 0.000_5);
    w.refclock_poll(pps, 0.000_001);
    assert_eq!(w.fed(gps), fed_gps, "the GPS is no longer fed");
}

#[test]
fn only_the_preferred_source_tallied_system_peer_numbers_the_pulses_it_handed_over_to() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    // Preferred and listed first, but 50 ms off where two other servers and the GPS agree: a
    // falseticker, whose offset must not number the pulses.
    let wrong = w.add(
        1,
        0.05,
        SourceSpec {
            prefer: true,
            ..spec()
        },
    );
    let servers = [w.add(2, 0.0, spec()), w.add(3, 0.0, spec())];
    let (gps, pps) = w.add_gps_and_pps();
    for _ in 0..6 {
        for id in [wrong, servers[0], servers[1]] {
            w.exchange(id);
        }
        w.refclock_poll(pps, 0.000_001);
        w.refclock_poll(gps, 0.000_5);
    }
    assert_eq!(w.system.system_peer(), Some(pps));
    assert_eq!(w.tally(gps), Tally::SystemPeer);
    assert_eq!(w.tally(wrong), Tally::Falseticker);
    let gps_offset = w.system.source(gps).unwrap().estimate().unwrap().offset;
    assert_eq!(w.system.pps_numbering(), Some(gps_offset));
}

#[test]
fn pulses_take_no_part_in_the_intersection_so_a_gps_they_disagree_with_still_numbers_them() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let (gps, pps) = w.add_gps_and_pps();
    // The GPS's time codes are 30 ms off (a `time1` set wrong), far outside both intervals;
    // the pulses are right. As two voters they would have no majority and no system peer;
    // the GPS alone is the system peer, numbers the pulses (within 0.4 s), and they steer.
    for _ in 0..6 {
        w.refclock_poll(pps, 0.000_001);
        w.refclock_poll(gps, 0.03);
    }
    assert_eq!(w.system.system_peer(), Some(pps));
    assert_eq!(w.tally(pps), Tally::PpsPeer);
    assert_eq!(w.tally(gps), Tally::SystemPeer);
    let fed = w.fed(pps);
    w.refclock_poll(pps, 0.000_001);
    assert!(w.fed(pps) > fed, "the pulses are fed");
}

#[test]
fn clients_are_told_unsynchronised_until_the_third_sample_the_discipline_used() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    w.exchange(a);
    w.exchange(b);
    // Two samples were used (a system peer exists), and the served time is already corrected,
    // but it still moves by a sample's error at each update.
    assert!(matches!(w.system.serving(), Serving::Peer(_)));
    assert_eq!(w.system.served_state().leap, Leap::Unsynchronized);
    w.exchange(a);
    let served = w.system.served_state();
    assert!(served.is_synchronized());
    assert_eq!(served.leap, Leap::NoWarning);
}

/// Two sources agree, the clock is synchronised, then both move 0.5 s and the clock is stepped
/// after the stepout; returns the world right after the step and the two sources.
fn stepped_after_sync() -> (World, SourceId, SourceId) {
    let discipline = DisciplineParams {
        stepout: NtpDuration::from_seconds(10),
        ..DisciplineParams::default()
    };
    let mut w = World::new(params(discipline), 0.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    // Three samples used: synchronised (LI 0 is served only from the third).
    w.exchange(a);
    w.exchange(b);
    w.exchange(a);
    assert!(w.system.served_state().is_synchronized());
    for s in &mut w.servers {
        s.1 = 0.5;
    }
    let stepped = |w: &World| w.events.iter().any(|e| matches!(e, Event::Stepped { .. }));
    for _ in 0..30 {
        w.run_until(w.clock.true_s + 1.0);
        w.exchange(a);
        if stepped(&w) {
            break;
        }
        w.exchange(b);
        if stepped(&w) {
            break;
        }
    }
    assert_eq!(w.clock.steps.len(), 1, "{:?}", w.events);
    (w, a, b)
}

#[test]
fn removing_another_source_after_a_step_keeps_serving_the_held_system_peer() {
    let (mut w, a, b) = stepped_after_sync();
    w.refresh();
    let Serving::Peer(held) = w.system.serving() else {
        panic!("the system peer is served through the step: {:?}", w.events);
    };
    let other = if held == a { b } else { a };
    assert!(w.system.remove_source(other).is_some());
    w.refresh();
    assert_eq!(w.system.serving(), Serving::Peer(held));
    assert!(w.system.served_state().is_synchronized());
    // Removing the held peer itself ends it: nothing is left to serve.
    assert!(w.system.remove_source(held).is_some());
    w.refresh();
    assert_eq!(w.system.serving(), Serving::Unsynchronized);
    assert!(!w.system.served_state().is_synchronized());
}

#[test]
fn the_system_wakes_for_the_earliest_source_poll() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    assert_eq!(w.system.poll_timeout(), None, "no sources, nothing to send");
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    w.exchange(a);
    // `a` has just been answered and waits a poll interval; `b` is due at once.
    let due = |w: &World, id| w.system.source(id).unwrap().poll_timeout().unwrap();
    assert!(due(&w, b) < due(&w, a));
    assert_eq!(w.system.poll_timeout(), Some(due(&w, b)));
    w.exchange(b);
    let earliest = due(&w, a).min(due(&w, b));
    assert_eq!(w.system.poll_timeout(), Some(earliest));
    assert!(earliest > w.mono());
}

#[test]
fn nts_keys_go_to_the_named_source_and_only_a_known_one() {
    use crate::nts::{Aead, AeadKey, SessionKeys};
    let session = || SessionKeys {
        c2s: AeadKey::new(Aead::AesSivCmac256, &[0x11; 32]).unwrap(),
        s2c: AeadKey::new(Aead::AesSivCmac256, &[0x22; 32]).unwrap(),
    };
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    assert!(w.system.install_nts(b, session(), vec![vec![7; 64]; 3]));
    assert_eq!(w.system.source(b).unwrap().nts().cookies(), 3);
    assert_eq!(w.system.source(a).unwrap().nts().cookies(), 0);
    assert!(
        !w.system
            .install_nts(SourceId(9), session(), vec![vec![7; 64]])
    );
}

#[test]
fn one_shot_finishes_when_the_clock_is_set_and_its_slew_has_ended() {
    let mut w = World::new(
        SystemParams {
            one_shot: true,
            ..params(DisciplineParams {
                one_shot: true,
                ..DisciplineParams::default()
            })
        },
        0.02,
    );
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    assert!(!w.system.one_shot_finished(), "nothing set yet");
    w.exchange(a);
    w.exchange(b);
    assert!(w.system.clock_timeout().is_some(), "a 20 ms slew runs");
    assert!(!w.system.one_shot_finished(), "the slew still runs");
    w.run_until(w.clock.true_s + 600.0);
    assert!(w.system.one_shot_finished());
    assert!(w.clock.steps.is_empty());
    assert!((w.clock.error).abs() < 1e-3, "{}", w.clock.error);
}

#[test]
fn the_drift_file_value_is_offered_once_the_frequency_is_measured() {
    let mut w = World::new(params(DisciplineParams::default()), 0.0);
    let a = w.add(1, 0.0, spec());
    let b = w.add(2, 0.0, spec());
    assert_eq!(w.system.drift(), None);
    // The servers run 20 ppm ahead of the local oscillator: the correction to learn is +20.
    for i in 0..60u32 {
        w.run_until(f64::from(i) * 64.0);
        let offset = 20e-6 * w.clock.true_s;
        for s in &mut w.servers {
            s.1 = offset;
        }
        w.exchange(a);
        w.exchange(b);
    }
    let drift = w.system.drift().expect("measured by now").value();
    assert!((drift - 20.0).abs() < 1.0, "{drift}");
}
