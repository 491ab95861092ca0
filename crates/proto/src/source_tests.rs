use super::*;
use crate::auth::{self, Authentication, NoKeys};
use crate::time::NtpDuration;

const BASE: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0);

fn secs(s: u64) -> MonoTime {
    MonoTime::from_duration(Duration::from_secs(s))
}

fn ts(offset_s: f64) -> NtpTimestamp {
    BASE + NtpDuration::from_seconds_f64(offset_s)
}

struct Counter(u64);

impl Counter {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
}

/// A server reply to the request in `req`, with the server `offset` ahead and `delay` round
/// trip, sent at local time `t1`.
fn reply_to(req: &[u8; 48], t1: f64, offset: f64, delay: f64) -> ([u8; 48], NtpTimestamp) {
    let r = NtpHeader::decode(req);
    let mut h = NtpHeader::new(4, Mode::Server);
    h.stratum = 2;
    h.leap = Leap::NoWarning;
    h.precision = Log2Seconds::new(-20);
    h.reference_id = ReferenceId::from_bytes([192, 0, 2, 1]);
    h.reference_timestamp = ts(t1 - 10.0);
    h.origin_timestamp = r.transmit_timestamp;
    h.receive_timestamp = ts(t1 + delay / 2.0 + offset);
    h.transmit_timestamp = ts(t1 + delay / 2.0 + offset + 1e-6);
    h.poll = r.poll;
    let mut out = [0u8; 48];
    h.emit(&mut out);
    (out, ts(t1 + delay + 1e-6))
}

/// A kiss-o'-death with `code` asking for poll exponent `poll`, answering the request in `req`
/// (sent at local time 0); and when it arrives.
fn kiss_to(req: &[u8; 48], code: ReferenceId, poll: i8) -> ([u8; 48], NtpTimestamp) {
    let (rep, t4) = reply_to(req, 0.0, 0.0, 0.001);
    let mut h = NtpHeader::decode(&rep);
    h.stratum = 0;
    h.leap = Leap::Unsynchronized;
    h.reference_id = code;
    h.poll = Log2Seconds::new(poll);
    let mut kiss = [0u8; 48];
    h.emit(&mut kiss);
    (kiss, t4)
}

fn poll(s: &mut Source, now: u64, rng: &mut Counter) -> Option<[u8; 48]> {
    let mut out = [0u8; 48];
    s.poll_transmit(secs(now), &mut || rng.next(), &NoKeys, &mut out)?;
    Some(out)
}

/// If a poll is due at monotonic second `now`: sends it at local time `t1`, answers it from a
/// server `offset` ahead over `delay`, checks that the reply became a sample, and returns when
/// it arrived.
fn exchange(
    s: &mut Source,
    rng: &mut Counter,
    now: u64,
    t1: f64,
    offset: f64,
    delay: f64,
) -> Option<NtpTimestamp> {
    let req = poll(s, now, rng)?;
    s.handle_sent(ts(t1));
    let (rep, t4) = reply_to(&req, t1, offset, delay);
    assert!(matches!(
        s.handle_response(t4, &rep, 1e-7, &NoKeys),
        Outcome::Sample(_)
    ));
    Some(t4)
}

#[test]
fn requests_carry_a_random_nonce_and_nothing_else() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(1);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    let h = NtpHeader::decode(&req);
    assert_eq!((h.mode, h.version, h.stratum), (Mode::Client, 4, 0));
    assert!(h.reference_timestamp.is_zero() && h.origin_timestamp.is_zero());
    assert!(!h.transmit_timestamp.is_zero());
    let req2 = poll(&mut s, 1000, &mut rng).unwrap();
    assert_ne!(
        NtpHeader::decode(&req2).transmit_timestamp,
        h.transmit_timestamp
    );
}

#[test]
fn good_reply_gives_offset_and_delay_and_sets_reach() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(2);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (rep, t4) = reply_to(&req, 0.0, 0.003, 0.0004);
    let Outcome::Sample(Some(e)) = s.handle_response(t4, &rep, 1e-7, &NoKeys) else {
        panic!("no sample")
    };
    assert!((e.offset - 0.003).abs() < 1e-6, "{}", e.offset);
    assert!((e.delay - 0.0004).abs() < 1e-5, "{}", e.delay);
    assert_eq!(s.reach(), 1);
    assert_eq!(s.peer().unwrap().stratum, 2);
    // Empty filter stages no longer count at MAXDISP (docs/algorithm.md §2): one sample makes
    // a source selectable, where RFC 5905's filter needed four.
    let c = s
        .candidate(t4, &Fitness::default())
        .expect("one sample makes a source selectable");
    assert!((c.offset - 0.003).abs() < 1e-6);
    assert!(c.root_distance < 0.01, "{}", c.root_distance);
    let mut t4 = t4;
    for i in 1..4u32 {
        let t = f64::from(i) * 64.0;
        let req = poll(&mut s, u64::from(i) * 70, &mut rng).unwrap();
        s.handle_sent(ts(t));
        let (rep, at) = reply_to(&req, t, 0.003, 0.0004);
        assert!(matches!(
            s.handle_response(at, &rep, 1e-7, &NoKeys),
            Outcome::Sample(_)
        ));
        t4 = at;
    }
    let c = s
        .candidate(t4, &Fitness::default())
        .expect("more samples keep it selectable");
    assert!((c.offset - 0.003).abs() < 1e-6);
}

#[test]
fn tos_floor_and_ceiling_make_sources_outside_the_stratum_range_unfit() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(14);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (rep, t4) = reply_to(&req, 0.0, 0.003, 0.0004);
    assert!(matches!(
        s.handle_response(t4, &rep, 1e-7, &NoKeys),
        Outcome::Sample(_)
    ));
    assert_eq!(s.peer().unwrap().stratum, 2);
    let with = |floor, ceiling| Fitness {
        floor,
        ceiling,
        ..Fitness::default()
    };
    assert!(s.candidate(t4, &with(1, 15)).is_some());
    assert!(
        s.candidate(t4, &with(2, 3)).is_some(),
        "the floor is allowed"
    );
    assert!(s.candidate(t4, &with(3, 15)).is_none(), "below the floor");
    assert!(s.candidate(t4, &with(1, 2)).is_none(), "at the ceiling");
    assert!(
        s.candidate(t4, &with(0, 16)).is_some(),
        "the widest range still has an upper end"
    );
}

#[test]
fn wrong_origin_is_ignored_and_leaves_the_request_outstanding() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(3);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (mut spoof, t4) = reply_to(&req, 0.0, 5.0, 0.0004);
    spoof[24] ^= 0xff;
    assert_eq!(
        s.handle_response(t4, &spoof, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::BogusOrigin)
    );
    assert_eq!(s.reach(), 0);
    let (good, t4) = reply_to(&req, 0.0, 0.001, 0.0004);
    assert!(matches!(
        s.handle_response(t4, &good, 1e-7, &NoKeys),
        Outcome::Sample(Some(_))
    ));
    // A replay of the same good reply fails: the nonce was used up.
    assert_eq!(
        s.handle_response(t4, &good, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::BogusOrigin)
    );
    assert_eq!(s.rejected(Rejection::BogusOrigin), 2);
}

#[test]
fn hostile_replies_are_rejected_with_their_reason() {
    type Case = (&'static str, fn(&mut NtpHeader), Outcome);
    let cases: [Case; 6] = [
        (
            "stratum 0 without the alarm",
            |h| h.stratum = 0,
            Outcome::Rejected(Rejection::InvalidStratum),
        ),
        (
            "a 2 s round trip",
            |h| h.transmit_timestamp = h.receive_timestamp + NtpDuration::from_seconds(-2),
            Outcome::Rejected(Rejection::Inconsistent),
        ),
        (
            "zero timestamps",
            |h| h.receive_timestamp = NtpTimestamp::ZERO,
            Outcome::Rejected(Rejection::ZeroTimestamp),
        ),
        (
            "LI=3",
            |h| h.leap = Leap::Unsynchronized,
            Outcome::Rejected(Rejection::Unsynchronized),
        ),
        (
            "stratum 16",
            |h| h.stratum = 16,
            Outcome::Rejected(Rejection::Unsynchronized),
        ),
        (
            "huge root dispersion",
            |h| h.root_dispersion = NtpShort::from_bits(20 << 16),
            Outcome::Rejected(Rejection::RootDistance),
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
        let mut rng = Counter(4);
        let req = poll(&mut s, 0, &mut rng).unwrap();
        s.handle_sent(ts(0.0));
        let (rep, t4) = reply_to(&req, 0.0, 0.0, 0.001);
        let mut h = NtpHeader::decode(&rep);
        mutate(&mut h);
        let mut bytes = [0u8; 48];
        h.emit(&mut bytes);
        assert_eq!(
            s.handle_response(t4, &bytes, 1e-7, &NoKeys),
            expected,
            "{name}"
        );
        assert!(s.estimate().is_none(), "{name}");
    }
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    assert_eq!(
        s.handle_response(BASE, &[0x24; 20], 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::Malformed)
    );
}

#[test]
fn timestamps_out_of_order_within_the_server_precision_are_accepted() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(11);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (rep, t4) = reply_to(&req, 0.0, 0.0, 0.001);
    let mut h = NtpHeader::decode(&rep);
    // Precision 2^-20 s ≈ 954 ns; T3 read 100 ns before T2.
    h.transmit_timestamp = h.receive_timestamp - NtpDuration::from_nanos(100);
    let mut bytes = [0u8; 48];
    h.emit(&mut bytes);
    assert!(matches!(
        s.handle_response(t4, &bytes, 1e-7, &NoKeys),
        Outcome::Sample(_)
    ));
}

#[test]
fn iburst_sends_six_packets_two_seconds_apart_while_unreachable() {
    let params = SourceParams {
        iburst: true,
        ..SourceParams::default()
    };
    let mut s = Source::new(params, MonoTime::ZERO);
    let mut rng = Counter(5);
    let mut times = Vec::new();
    let mut t = 0;
    while t < 200 && times.len() < 7 {
        if poll(&mut s, t, &mut rng).is_some() {
            times.push(t);
        }
        t += 1;
    }
    assert_eq!(&times[..6], &[0, 2, 4, 6, 8, 10]);
    assert!(times[6] >= 10 + 64, "{times:?}");
}

#[test]
fn while_the_frequency_is_measured_every_poll_is_a_burst_of_six() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    s.set_frequency_burst(true);
    let mut rng = Counter(14);
    let mut times = Vec::new();
    let mut t = 0;
    while t < 400 && times.len() < 14 {
        if exchange(&mut s, &mut rng, t, t as f64, 0.0, 0.001).is_some() {
            times.push(t);
            if times.len() == 12 {
                s.set_frequency_burst(false);
            }
        }
        t += 1;
    }
    // The first poll (unreachable) and the second (reachable) are bursts; once the frequency
    // is known, single polls a poll interval apart.
    assert_eq!(&times[..6], &[0, 2, 4, 6, 8, 10], "{times:?}");
    assert!(times[6] >= 10 + 64, "{times:?}");
    assert!(
        times[6..12].windows(2).all(|w| w[1] - w[0] == 2),
        "{times:?}"
    );
    assert!(times[12] >= times[11] + 64, "{times:?}");
    assert!(times[13] >= times[12] + 64, "{times:?}");
}

#[test]
fn while_the_frequency_is_learned_polls_come_at_half_the_interval() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(16);
    let mut times = Vec::new();
    let mut t = 0;
    while t < 400 && times.len() < 4 {
        // The setting applies from the next poll scheduled.
        s.set_early_polls(times.len() < 2);
        if exchange(&mut s, &mut rng, t, t as f64, 0.0, 0.001).is_some() {
            times.push(t);
        }
        t += 1;
    }
    // 32 s (plus up to 1/16 of jitter) while learning, then 64 s again.
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[..2].iter().all(|g| (32..=34).contains(g)), "{times:?}");
    assert!((64..=68).contains(&gaps[2]), "{times:?}");
}

#[test]
fn while_the_frequency_is_measured_samples_are_stored_as_of_the_last_update() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(15);
    // The clock gains 100 µs per second on its own; stored samples refer to 10 s, so a sample
    // measured at 30 s (when the server looked 2 ms further behind) is stored 2 ms ahead.
    let drift = PendingSlew {
        end: ts(10.0),
        rate: 0.0,
        drift: 1e-4,
    };
    s.apply_clock_correction(0.0, Some(drift));
    let t4 = exchange(&mut s, &mut rng, 0, 30.0, -0.005, 0.0004).expect("a poll is due");
    let stored = s.filter().stages(t4)[0].1;
    assert!(
        (stored - (-0.005 + 1e-4 * 20.0002)).abs() < 1e-8,
        "{stored}"
    );
    // Moving the reference to 40 s (the next update) moves the stored sample by 3 ms.
    s.apply_clock_correction(
        1e-4 * 30.0,
        Some(PendingSlew {
            end: ts(40.0),
            ..drift
        }),
    );
    let moved = s.filter().stages(t4)[0].1;
    assert!((moved - (stored - 0.003)).abs() < 1e-9, "{moved}");
    assert!((s.latest_sample().unwrap().offset + 0.005).abs() < 1e-6);
}

#[test]
fn rate_kiss_slows_polling_and_deny_stops_it() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(6);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (kiss, t4) = kiss_to(&req, ReferenceId::RATE, 8);
    assert_eq!(
        s.handle_response(t4, &kiss, 1e-7, &NoKeys),
        Outcome::Kiss(Kiss::Rate)
    );
    assert_eq!(s.hpoll(), 8);
    s.set_system_poll(6);
    assert_eq!(s.hpoll(), 8, "a RATE limit outlives poll adaptation");

    let req = poll(&mut s, 10_000, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (kiss, t4) = kiss_to(&req, ReferenceId::DENY, 6);
    assert!(matches!(
        s.handle_response(t4, &kiss, 1e-7, &NoKeys),
        Outcome::Kiss(Kiss::Deny(_))
    ));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.denied(), Some(ReferenceId::DENY));
    assert!(poll(&mut s, 100_000, &mut rng).is_none());
}

#[test]
fn a_spoofed_kiss_is_ignored() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(7);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    let (rep, t4) = reply_to(&req, 0.0, 0.0, 0.001);
    let mut h = NtpHeader::decode(&rep);
    h.stratum = 0;
    h.reference_id = ReferenceId::DENY;
    h.origin_timestamp = NtpTimestamp::from_bits(12345);
    let mut kiss = [0u8; 48];
    h.emit(&mut kiss);
    assert_eq!(
        s.handle_response(t4, &kiss, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::BogusOrigin)
    );
    assert!(s.poll_timeout().is_some());
}

#[test]
fn silence_clears_reach_and_backs_off() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(8);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (rep, t4) = reply_to(&req, 0.0, 0.0, 0.001);
    let _ = s.handle_response(t4, &rep, 1e-7, &NoKeys);
    assert_eq!(s.reach(), 1);
    let mut t = 0;
    for _ in 0..20 {
        t = s.poll_timeout().unwrap().as_duration().as_secs() + 1;
        let _ = poll(&mut s, t, &mut rng).unwrap();
    }
    assert_eq!(s.reach(), 0);
    assert!(s.unreach() >= UNREACH_BACKOFF);
    assert!(s.hpoll() > 6, "backed off to {}", s.hpoll());
    let backed_off = s.hpoll();
    s.set_system_poll(6);
    assert_eq!(
        s.hpoll(),
        backed_off,
        "the system poll does not undo the back-off"
    );
    assert!(s.candidate(ts(t as f64), &Fitness::default()).is_none());
}

#[test]
fn clock_corrections_move_the_estimate_but_not_the_raw_sample() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(11);
    assert_eq!(s.polls_since_reset(), 0);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (rep, t4) = reply_to(&req, 0.0, -0.1, 0.0004);
    assert!(matches!(
        s.handle_response(t4, &rep, 1e-7, &NoKeys),
        Outcome::Sample(Some(_))
    ));
    assert_eq!(s.polls_since_reset(), 1);
    s.apply_clock_correction(-0.1, None);
    assert!(s.estimate().unwrap().offset.abs() < 1e-6);
    assert!(s.filter().stages(t4)[0].1.abs() < 1e-6);
    assert!((s.latest_sample().unwrap().offset + 0.1).abs() < 1e-6);
    let floor = s.delay_floor().floor().unwrap();
    assert!((floor - 0.0004).abs() < 1e-5, "{floor}");
    s.reset_filter();
    assert_eq!((s.latest_sample(), s.polls_since_reset()), (None, 0));
    assert!(
        s.delay_floor().floor().is_some(),
        "the path's delay survives a step"
    );
}

#[test]
fn a_sample_measured_during_a_slew_is_stored_as_of_the_slews_end() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(13);
    // The clock is being slewed back at 5 % until 10 s: from 9 s on it still moves 0.05 s back,
    // after which every server looks 0.05 s further ahead than a sample taken at 9 s says.
    let slew = PendingSlew {
        end: ts(10.0),
        rate: -0.05,
        drift: 0.0,
    };
    s.apply_clock_correction(0.0, Some(slew));
    let t4 = exchange(&mut s, &mut rng, 0, 9.0, -0.03, 0.0004).expect("a poll is due");
    // Measured at the exchange's midpoint, 9.0002 s: 0.9998 s of the slew were still to come.
    let stored = s.filter().stages(t4)[0].1;
    assert!((stored - (-0.03 + 0.05 * 0.9998)).abs() < 1e-6, "{stored}");
    assert!((s.estimate().unwrap().offset - stored).abs() < 1e-9);
    // The discipline gets the measurement itself.
    assert!((s.latest_sample().unwrap().offset + 0.03).abs() < 1e-6);
    // Once the slew is over (or after a step), samples are stored as measured.
    s.reset_filter();
    let t4 = exchange(&mut s, &mut rng, 100, 9.5, -0.03, 0.0004).expect("a poll is due");
    assert!((s.filter().stages(t4)[0].1 + 0.03).abs() < 1e-6);
}

#[test]
fn repeated_rate_kisses_never_push_the_poll_past_maxpoll() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(12);
    let mut t = 0;
    for _ in 0..10 {
        let req = poll(&mut s, t, &mut rng).unwrap();
        s.handle_sent(ts(0.0));
        let (kiss, t4) = kiss_to(&req, ReferenceId::RATE, 8);
        assert_eq!(
            s.handle_response(t4, &kiss, 1e-7, &NoKeys),
            Outcome::Kiss(Kiss::Rate)
        );
        t = s.poll_timeout().unwrap().as_duration().as_secs() + 1;
    }
    assert_eq!(s.hpoll(), 10, "maxpoll caps the kisses' effect");
}

#[test]
fn impossible_round_trips_are_rejected_as_delay() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(13);
    // Two seconds there and back: beyond MAX_DELAY.
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (slow, t4) = reply_to(&req, 0.0, 0.0, 2.0);
    assert_eq!(
        s.handle_response(t4, &slow, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::Delay)
    );
    // T1 recorded 0.5 ms late: the round trip comes out negative.
    let req = poll(&mut s, 10_000, &mut rng).unwrap();
    s.handle_sent(ts(0.0005));
    let (late, t4) = reply_to(&req, 0.0, 0.0, 0.0002);
    assert_eq!(
        s.handle_response(t4, &late, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::Delay)
    );
    assert_eq!(s.rejected(Rejection::Delay), 2);
    assert!(s.estimate().is_none());
}

mod keyed {
    use super::*;
    use crate::auth::{MAX_AUTHENTICATED_LEN, TestKeys, append_mac};

    const KEYS: TestKeys = TestKeys {
        id: 9,
        secret: 0x42,
        len: 16,
    };

    fn keyed_source() -> Source {
        let params = SourceParams {
            key: Some(9),
            ..SourceParams::default()
        };
        Source::new(params, MonoTime::ZERO)
    }

    /// Polls, checks the request is signed under key 9, and returns its header.
    fn signed_poll(s: &mut Source, now: u64, rng: &mut Counter) -> [u8; 48] {
        let mut out = [0u8; MAX_AUTHENTICATED_LEN];
        let len = s
            .poll_transmit(secs(now), &mut || rng.next(), &KEYS, &mut out)
            .expect("a poll is due");
        assert_eq!(len, 48 + 4 + 16);
        let packet = Packet::parse(&out[..len]).unwrap();
        assert_eq!(
            auth::authenticate(&KEYS, &out[..len], &packet),
            Authentication::Valid { key_id: 9 }
        );
        s.handle_sent(ts(0.0));
        out[..48].try_into().unwrap()
    }

    fn sign(reply: &[u8; 48], key_id: u32) -> Vec<u8> {
        let mut buf = [0u8; MAX_AUTHENTICATED_LEN];
        buf[..48].copy_from_slice(reply);
        let len = append_mac(&KEYS, KEYS.id, 20, &mut buf, 48).unwrap();
        buf[48..52].copy_from_slice(&key_id.to_be_bytes());
        buf[..len].to_vec()
    }

    #[test]
    fn a_reply_signed_under_the_sources_key_is_a_sample_and_marks_it_authentic() {
        let mut s = keyed_source();
        let mut rng = Counter(3);
        let req = signed_poll(&mut s, 0, &mut rng);
        let (rep, t4) = reply_to(&req, 0.0, 0.01, 0.002);
        assert!(!s.authentic());
        assert!(matches!(
            s.handle_response(t4, &sign(&rep, 9), 1e-7, &KEYS),
            Outcome::Sample(_)
        ));
        assert!(s.authentic());
        assert_eq!(s.reach(), 1);
    }

    #[test]
    fn unauthenticated_or_tampered_replies_are_counted_and_change_nothing() {
        let mut s = keyed_source();
        let mut rng = Counter(4);
        let req = signed_poll(&mut s, 0, &mut rng);
        let (rep, t4) = reply_to(&req, 0.0, 0.01, 0.002);
        let mut tampered = sign(&rep, 9);
        tampered[44] ^= 0x01; // the server's transmit time, one bit
        let mut nak = rep.to_vec();
        nak.extend_from_slice(&[0, 0, 0, 0]);
        let cases: [(&str, Vec<u8>, Rejection); 5] = [
            ("no MAC", rep.to_vec(), Rejection::Unauthenticated),
            ("crypto-NAK", nak, Rejection::Unauthenticated),
            ("tampered", tampered, Rejection::BadMac),
            ("another trusted key", sign(&rep, 8), Rejection::BadMac),
            ("unknown key", sign(&rep, 77), Rejection::BadMac),
        ];
        for (what, bytes, reason) in &cases {
            assert_eq!(
                s.handle_response(t4, bytes, 1e-7, &KEYS),
                Outcome::Rejected(*reason),
                "{what}"
            );
        }
        assert_eq!(s.rejected(Rejection::Unauthenticated), 2);
        assert_eq!(s.rejected(Rejection::BadMac), 3);
        assert_eq!((s.reach(), s.estimate(), s.authentic()), (0, None, false));
        // The request is still outstanding: the genuine reply is accepted afterwards.
        assert!(matches!(
            s.handle_response(t4, &sign(&rep, 9), 1e-7, &KEYS),
            Outcome::Sample(_)
        ));
    }

    #[test]
    fn an_unauthenticated_kiss_never_denies_a_keyed_source() {
        let mut s = keyed_source();
        let mut rng = Counter(5);
        let req = signed_poll(&mut s, 0, &mut rng);
        let (kiss, t4) = kiss_to(&req, ReferenceId::DENY, 6);
        assert_eq!(
            s.handle_response(t4, &kiss, 1e-7, &KEYS),
            Outcome::Rejected(Rejection::Unauthenticated)
        );
        assert!(s.denied().is_none() && s.poll_timeout().is_some());
        // Signed, the same kiss is honoured.
        assert_eq!(
            s.handle_response(t4, &sign(&kiss, 9), 1e-7, &KEYS),
            Outcome::Kiss(Kiss::Deny(ReferenceId::DENY))
        );
    }

    /// Two trusted keys: the source's (9) and another one (8).
    struct TwoKeys;

    const OTHER: TestKeys = TestKeys {
        id: 8,
        secret: 0x17,
        len: 16,
    };

    impl KeyRing for TwoKeys {
        fn sign(
            &self,
            key_id: u32,
            data: &[u8],
            out: &mut [u8; auth::MAX_DIGEST_LEN],
        ) -> Option<usize> {
            [KEYS, OTHER]
                .iter()
                .find(|k| k.id == key_id)?
                .sign(key_id, data, out)
        }

        fn verify(&self, key_id: u32, data: &[u8], tag: &[u8]) -> auth::Verification {
            [KEYS, OTHER]
                .iter()
                .find(|k| k.id == key_id)
                .map_or(auth::Verification::UnknownKey, |k| {
                    k.verify(key_id, data, tag)
                })
        }
    }

    #[test]
    fn a_reply_signed_under_another_trusted_key_is_a_bad_mac() {
        let mut s = keyed_source();
        let mut rng = Counter(7);
        let req = signed_poll(&mut s, 0, &mut rng);
        let (rep, t4) = reply_to(&req, 0.0, 0.01, 0.002);
        let mut buf = [0u8; MAX_AUTHENTICATED_LEN];
        buf[..48].copy_from_slice(&rep);
        let len = append_mac(&TwoKeys, OTHER.id, auth::V4_DIGEST_LEN, &mut buf, 48).unwrap();
        let packet = Packet::parse(&buf[..len]).unwrap();
        assert_eq!(
            auth::authenticate(&TwoKeys, &buf[..len], &packet),
            Authentication::Valid { key_id: 8 },
            "the MAC itself verifies"
        );
        assert_eq!(
            s.handle_response(t4, &buf[..len], 1e-7, &TwoKeys),
            Outcome::Rejected(Rejection::BadMac)
        );
        assert_eq!((s.reach(), s.authentic()), (0, false));
    }

    #[test]
    fn a_key_that_cannot_sign_sends_a_plain_request() {
        let mut s = keyed_source();
        let mut rng = Counter(6);
        let mut out = [0u8; MAX_AUTHENTICATED_LEN];
        let len = s.poll_transmit(secs(0), &mut || rng.next(), &NoKeys, &mut out);
        assert_eq!(len, Some(48));
    }
}

/// An upstream that answers the first `kisses` requests with RATE kisses asking for poll 2^17 s
/// (36 hours), then serves normally. Drives `s` through `rounds` polls and returns the interval
/// before each poll, in seconds, and whether that poll was kissed.
fn against_a_hostile_upstream(s: &mut Source, kisses: usize, rounds: usize) -> Vec<(u64, bool)> {
    let mut rng = Counter(21);
    let mut now = 0;
    let mut seen = Vec::new();
    for round in 0..rounds {
        let due = s
            .poll_timeout()
            .expect("still polling")
            .as_duration()
            .as_secs();
        seen.push((due.saturating_sub(now), round < kisses));
        now = due.max(now) + 1;
        let req = poll(s, now, &mut rng).expect("a poll is due");
        s.handle_sent(ts(now as f64));
        if round < kisses {
            let (kiss, t4) = kiss_to(&req, ReferenceId::RATE, 17);
            assert_eq!(
                s.handle_response(t4, &kiss, 1e-7, &NoKeys),
                Outcome::Kiss(Kiss::Rate)
            );
        } else {
            let (rep, t4) = reply_to(&req, now as f64, 0.0, 0.001);
            assert!(matches!(
                s.handle_response(t4, &rep, 1e-7, &NoKeys),
                Outcome::Sample(_)
            ));
        }
        s.set_system_poll(4);
    }
    seen
}

#[test]
fn a_hostile_rate_kiss_raises_the_poll_at_most_to_maxpoll_and_answers_bring_it_back() {
    let params = SourceParams {
        minpoll: 4,
        maxpoll: 6,
        ..SourceParams::default()
    };
    let mut s = Source::new(params, MonoTime::ZERO);
    let seen = against_a_hostile_upstream(&mut s, 3, 12);
    // Every interval stays within 2^maxpoll plus the 1/16 jitter and the 1 s step of the test,
    // although every kiss asked for 2^17 s.
    let ceiling = (1u64 << 6) + (1 << 6) / 16 + 1;
    assert!(seen.iter().all(|(gap, _)| *gap <= ceiling), "{seen:?}");
    // The kisses did slow it down to maxpoll…
    assert!(seen.iter().any(|(gap, _)| *gap >= 1 << 6), "{seen:?}");
    // …and once answers come back without kisses, the poll returns to what the system wants.
    assert_eq!(s.hpoll(), 4, "{seen:?}");
    let (last_gap, _) = seen[seen.len() - 1];
    assert!(last_gap <= (1 << 4) + 2, "{seen:?}");
}

#[test]
fn the_rate_floor_steps_down_one_answer_at_a_time() {
    let params = SourceParams {
        minpoll: 4,
        maxpoll: 10,
        ..SourceParams::default()
    };
    let mut s = Source::new(params, MonoTime::ZERO);
    let mut rng = Counter(22);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (kiss, t4) = kiss_to(&req, ReferenceId::RATE, 9);
    assert_eq!(
        s.handle_response(t4, &kiss, 1e-7, &NoKeys),
        Outcome::Kiss(Kiss::Rate)
    );
    assert_eq!(s.hpoll(), 9);
    s.set_system_poll(4);
    assert_eq!(s.hpoll(), 9, "the floor outlives poll adaptation");
    for expected in [8, 7, 6, 5, 4, 4] {
        let now = s.poll_timeout().unwrap().as_duration().as_secs() + 1;
        let req = poll(&mut s, now, &mut rng).unwrap();
        s.handle_sent(ts(now as f64));
        let (rep, t4) = reply_to(&req, now as f64, 0.0, 0.001);
        assert!(matches!(
            s.handle_response(t4, &rep, 1e-7, &NoKeys),
            Outcome::Sample(_)
        ));
        s.set_system_poll(4);
        assert_eq!(s.hpoll(), expected, "at {now} s");
    }
}

/// Answers `req` (sent at local time `t1`, server `offset` ahead, `delay` round trip) after
/// `mutate` changed the reply's header; returns the reply and when it arrived.
fn reply_with(
    req: &[u8; 48],
    t1: f64,
    offset: f64,
    delay: f64,
    mutate: impl FnOnce(&mut NtpHeader),
) -> ([u8; 48], NtpTimestamp) {
    let (rep, t4) = reply_to(req, t1, offset, delay);
    let mut h = NtpHeader::decode(&rep);
    mutate(&mut h);
    let mut out = [0u8; 48];
    h.emit(&mut out);
    (out, t4)
}

#[test]
fn rejection_names_are_the_fixed_words_of_the_statistics() {
    let names: Vec<&str> = Rejection::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "malformed",
            "bogus-origin",
            "duplicate",
            "zero-timestamp",
            "unsynchronized",
            "root-distance",
            "inconsistent",
            "invalid-stratum",
            "delay",
            "unauthenticated",
            "bad-mac",
            "nts-nak",
        ]
    );
}

#[test]
fn the_reach_register_shifts_in_one_bit_per_poll_and_requests_and_replies_are_counted() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(31);
    let mut now = 0;
    let mut last = NtpTimestamp::ZERO;
    for i in 0..8 {
        let t1 = now as f64;
        last = exchange(&mut s, &mut rng, now, t1, 0.0, 0.001).expect("a poll is due");
        assert_eq!(
            u32::from(s.reach()),
            (1u32 << (i + 1)) - 1,
            "after {i} polls"
        );
        now = s.poll_timeout().unwrap().as_duration().as_secs() + 1;
    }
    assert_eq!(s.reach(), 0xff, "ntpq's 377");
    assert_eq!(s.last_receive(), last);
    // One poll nobody answers: the newest bit is 0, the older ones are still there.
    poll(&mut s, now, &mut rng).expect("a poll is due");
    assert_eq!(s.reach(), 0xfe);
    assert_eq!(s.packet_counts(), (9, 8));
    assert_eq!(s.last_receive(), last, "only a reply moves it");
}

#[test]
fn three_polls_without_an_answer_put_a_gap_into_the_filter() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(32);
    let mut now = 0;
    let mut t4 = NtpTimestamp::ZERO;
    for _ in 0..3 {
        t4 = exchange(&mut s, &mut rng, now, now as f64, 0.0, 0.001).expect("a poll is due");
        now = s.poll_timeout().unwrap().as_duration().as_secs() + 1;
        let (delay, _, _) = s.filter().stages(t4)[0];
        assert!(delay > 0.0, "answered polls leave no gap");
    }
    for silent in 1..=3 {
        poll(&mut s, now, &mut rng).expect("a poll is due");
        now = s.poll_timeout().unwrap().as_duration().as_secs() + 1;
        let (delay, _, dispersion) = s.filter().stages(t4)[0];
        if silent < 3 {
            assert!(delay > 0.0, "no gap after {silent} silent polls");
        } else {
            assert_eq!(
                (delay, dispersion),
                (0.0, MAX_DISPERSION),
                "a gap after three silent polls"
            );
            let (older, _, _) = s.filter().stages(t4)[1];
            assert!(older > 0.0, "the samples move one stage down");
        }
    }
}

/// Polls and answers `s` from its next poll on until a poll is not followed by another
/// [`BURST_SPACING`] later; returns how many requests that poll sent and when the last one
/// went out.
fn one_burst(s: &mut Source, rng: &mut Counter, from: u64) -> (usize, u64) {
    let mut now = from.max(s.poll_timeout().unwrap().as_duration().as_secs() + 1);
    let mut sent = 0;
    loop {
        exchange(s, rng, now, now as f64, 0.0, 0.001).expect("a poll is due");
        sent += 1;
        let next = s.poll_timeout().unwrap().as_duration();
        if next != Duration::from_secs(now) + BURST_SPACING || sent > 20 {
            return (sent, now);
        }
        now = next.as_secs();
    }
}

#[test]
fn burst_sends_twice_the_requests_for_every_step_above_minpoll_up_to_eight() {
    let params = SourceParams {
        burst: true,
        ..SourceParams::default()
    };
    let mut s = Source::new(params, MonoTime::ZERO);
    let mut rng = Counter(33);
    // Unreachable: `burst` (unlike `iburst`) sends one request.
    let (n, now) = one_burst(&mut s, &mut rng, 0);
    assert_eq!(n, 1);
    let mut sizes = Vec::new();
    let mut now = now;
    for system_poll in [6, 8, 10] {
        s.set_system_poll(system_poll);
        let (n, last) = one_burst(&mut s, &mut rng, now);
        sizes.push(n);
        now = last;
    }
    // At minpoll a single request; at minpoll + 2 four; at minpoll + 4 the cap of eight.
    assert_eq!(sizes, [1, 4, usize::from(BURST_MAX)]);
}

#[test]
fn the_system_poll_sets_the_interval_within_minpoll_and_maxpoll() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    s.set_system_poll(8);
    assert_eq!(
        (s.hpoll(), s.poll_interval()),
        (8, Duration::from_secs(256))
    );
    s.set_system_poll(20);
    assert_eq!(s.hpoll(), 10, "maxpoll");
    s.set_system_poll(2);
    assert_eq!(s.hpoll(), 6, "minpoll");
}

#[test]
fn the_poll_jitter_is_up_to_a_sixteenth_of_the_interval_taken_from_the_random_bits() {
    for (bits, jitter) in [(0u64, 0.0), (u64::MAX, 64.0 * 255.0 / 4096.0), (0x80, 2.0)] {
        let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
        let mut out = [0u8; 48];
        s.poll_transmit(MonoTime::ZERO, &mut || bits, &NoKeys, &mut out)
            .expect("a poll is due");
        let next = s.poll_timeout().unwrap().as_duration().as_secs_f64();
        assert!((next - (64.0 + jitter)).abs() < 1e-6, "{bits:#x}: {next}");
    }
}

#[test]
fn a_root_distance_of_maxdisp_counts_half_the_root_delay() {
    // Root delay 31 s: 15.5 s of distance, under MAXDISP (16 s); 33 s: 16.5 s, beyond it.
    for (root_delay, expected_rejected) in [(31u32, false), (33, true)] {
        let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
        let mut rng = Counter(34);
        let req = poll(&mut s, 0, &mut rng).unwrap();
        s.handle_sent(ts(0.0));
        let (rep, t4) = reply_with(&req, 0.0, 0.0, 0.001, |h| {
            h.root_delay = NtpShort::from_bits(root_delay << 16);
        });
        let outcome = s.handle_response(t4, &rep, 1e-7, &NoKeys);
        assert_eq!(
            outcome == Outcome::Rejected(Rejection::RootDistance),
            expected_rejected,
            "root delay {root_delay} s: {outcome:?}"
        );
        assert_eq!(matches!(outcome, Outcome::Sample(_)), !expected_rejected);
    }
}

/// Sends a request at local time 0 (exactly [`BASE`]) and answers it with receive time
/// `t2`, transmit time `t3`, arriving at `t4` (seconds after [`BASE`], exact 2⁻³² s), from a
/// server of precision 2⁻²⁰ s; `precision` is the local clock's.
fn exact_exchange(t2: i64, t3: i64, t4: i64, precision: f64) -> Outcome {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(35);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(BASE);
    let at = |bits: i64| BASE + NtpDuration::from_bits(bits);
    let (rep, _) = reply_with(&req, 0.0, 0.0, 0.001, |h| {
        h.precision = Log2Seconds::new(-20);
        h.receive_timestamp = at(t2);
        h.transmit_timestamp = at(t3);
    });
    s.handle_response(at(t4), &rep, precision, &NoKeys)
}

#[test]
fn a_round_trip_of_exactly_max_delay_is_still_used() {
    let second = 1i64 << 32;
    // T4 − T1 = 1.5 s, T3 − T2 = 0: a round trip of exactly MAX_DELAY.
    let outcome = exact_exchange(second, second, second * 3 / 2, 1e-7);
    assert!(matches!(outcome, Outcome::Sample(_)), "{outcome:?}");
    // One tick more is beyond it.
    assert_eq!(
        exact_exchange(second, second, second * 3 / 2 + 1, 1e-7),
        Outcome::Rejected(Rejection::Delay)
    );
}

#[test]
fn a_negative_round_trip_is_allowed_down_to_both_precisions() {
    let second = 1i64 << 32;
    let precision = 2f64.powi(-20);
    // Both clocks read to 2⁻²⁰ s: a round trip down to −2⁻¹⁹ s is a reading error, not a
    // wrong timestamp.
    for allowed in [-(1i64 << 11), -(1 << 12), -(1 << 13)] {
        let outcome = exact_exchange(second, second - allowed, 0, precision);
        assert!(
            matches!(outcome, Outcome::Sample(_)),
            "{allowed}: {outcome:?}"
        );
    }
    assert_eq!(
        exact_exchange(second, second + (1 << 13) + 1, 0, precision),
        Outcome::Rejected(Rejection::Delay)
    );
}

#[test]
fn a_samples_dispersion_is_both_precisions_plus_phi_over_the_round_trip() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(36);
    let req = poll(&mut s, 0, &mut rng).unwrap();
    s.handle_sent(ts(0.0));
    let (rep, t4) = reply_with(&req, 0.0, 0.0, 1.0, |h| {
        h.precision = Log2Seconds::new(-10);
    });
    assert!(matches!(
        s.handle_response(t4, &rep, 1e-3, &NoKeys),
        Outcome::Sample(_)
    ));
    let round_trip = (t4 - ts(0.0)).to_seconds_f64();
    let expected = 2f64.powi(-10) + 1e-3 + PHI * round_trip;
    let got = s.latest_sample().unwrap().dispersion;
    assert!((got - expected).abs() < 1e-12, "{got} != {expected}");
}

/// A source with one good sample at 64 s polls; returns it and when the reply arrived.
fn one_sample_source() -> (Source, NtpTimestamp) {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(37);
    let t4 = exchange(&mut s, &mut rng, 0, 0.0, 0.002, 0.0004).expect("a poll is due");
    (s, t4)
}

#[test]
fn a_source_is_unfit_only_farther_than_maxdist_plus_phi_over_the_poll_interval() {
    let (mut s, t4) = one_sample_source();
    let maxdist = 0.5;
    // `mindist` sets the distance exactly, far above the source's own.
    let at = |distance: f64| Fitness {
        mindist: distance,
        maxdist,
        ..Fitness::default()
    };
    let slack = PHI * 64.0;
    for (distance, fit) in [
        (maxdist, true),
        (maxdist + slack / 2.0, true),
        (maxdist + slack, true),
        (maxdist + 2.0 * slack, false),
        (maxdist + 100.0, false),
    ] {
        let c = s.candidate(t4, &at(distance));
        assert_eq!(c.is_some(), fit, "distance {distance}");
        if let Some(c) = c {
            assert!((c.root_distance - distance).abs() < 1e-12);
        }
    }
    // A longer poll interval allows more.
    s.set_system_poll(10);
    assert!(s.candidate(t4, &at(maxdist + 2.0 * slack)).is_some());
    assert!(s.candidate(t4, &at(maxdist + 17.0 * slack)).is_none());
}

#[test]
fn selection_input_carries_the_sources_standing() {
    let (s, t4) = one_sample_source();
    let fitness = Fitness::default();
    let plain = s.candidate(t4, &fitness).expect("fit");
    assert_eq!(
        s.selection_input(t4, &fitness, Standing::default()),
        Some(plain)
    );
    for standing in [
        Standing {
            prefer: true,
            ..Standing::default()
        },
        Standing {
            truechimer: true,
            ..Standing::default()
        },
        Standing {
            was_system_peer: true,
            ..Standing::default()
        },
    ] {
        let c = s.selection_input(t4, &fitness, standing).expect("fit");
        assert_eq!(
            (c.prefer, c.truechimer, c.was_system_peer),
            (
                standing.prefer,
                standing.truechimer,
                standing.was_system_peer
            )
        );
        assert_eq!(
            (c.offset, c.root_distance),
            (plain.offset, plain.root_distance)
        );
    }
    let noselect = Standing {
        noselect: true,
        prefer: true,
        ..Standing::default()
    };
    assert_eq!(s.selection_input(t4, &fitness, noselect), None);
}

#[test]
fn root_distance_is_half_the_delays_plus_the_dispersions_the_aging_and_the_jitter() {
    let mut s = Source::new(SourceParams::default(), MonoTime::ZERO);
    let mut rng = Counter(38);
    let mut now = 0;
    let mut t4 = NtpTimestamp::ZERO;
    for (offset, delay) in [(0.001, 0.004), (0.004, 0.002), (0.002, 0.003)] {
        let req = poll(&mut s, now, &mut rng).unwrap();
        s.handle_sent(ts(now as f64));
        let (rep, at) = reply_with(&req, now as f64, offset, delay, |h| {
            h.root_delay = NtpShort::from_bits(0x4000); // 0.25 s
            h.root_dispersion = NtpShort::from_bits(0x2000); // 0.125 s
        });
        assert!(matches!(
            s.handle_response(at, &rep, 1e-7, &NoKeys),
            Outcome::Sample(_)
        ));
        t4 = at;
        now = s.poll_timeout().unwrap().as_duration().as_secs() + 1;
    }
    let e = s.estimate().unwrap();
    assert!(e.dispersion > 1e-6 && e.jitter > 1e-4, "{e:?}");
    // 100 s after the last update.
    let later = t4 + NtpDuration::from_seconds(100);
    let expected = (0.25 + e.delay) / 2.0 + 0.125 + e.dispersion + PHI * 100.0 + e.jitter;
    let got = s.root_distance(later).unwrap();
    assert!((got - expected).abs() < 1e-9, "{got} != {expected}");
    // Before the last update the age counts as zero.
    let at_update = (0.25 + e.delay) / 2.0 + 0.125 + e.dispersion + e.jitter;
    let got = s.root_distance(t4 - NtpDuration::from_seconds(5)).unwrap();
    assert!((got - at_update).abs() < 1e-9, "{got} != {at_update}");
}

#[test]
fn the_configured_parameters_are_kept_within_the_supported_poll_range() {
    let params = SourceParams {
        minpoll: 4,
        maxpoll: 20,
        iburst: true,
        version: 3,
        key: Some(5),
        ..SourceParams::default()
    };
    let s = Source::new(params, MonoTime::ZERO);
    assert_eq!(
        *s.params(),
        SourceParams {
            maxpoll: 17,
            ..params
        }
    );
}
