use std::net::{Ipv4Addr, SocketAddr};

use sundial_proto::packet::{Leap, Mode, NtpHeader, ReferenceId};
use sundial_proto::time::{Log2Seconds, NtpDuration, NtpTimestamp};

use super::*;

const XMT: NtpTimestamp = NtpTimestamp::from_parts(3_900_000_000, 0);

fn d(seconds: f64) -> NtpDuration {
    NtpDuration::from_seconds_f64(seconds)
}

fn header(stratum: u8) -> NtpHeader {
    let mut h = NtpHeader::new(4, Mode::Server);
    h.stratum = stratum;
    h.precision = Log2Seconds::new(-20);
    h.reference_timestamp = XMT - d(64.0);
    h.receive_timestamp = XMT;
    h.transmit_timestamp = XMT;
    h
}

/// A server at 192.0.2.`n` of `stratum` whose samples have these (offset, delay) pairs.
fn server(n: u8, stratum: u8, samples: &[Option<(f64, f64)>]) -> ServerResult {
    let mut s = ServerResult::new(SocketAddr::from((Ipv4Addr::new(192, 0, 2, n), 123)));
    s.last_header = Some(header(stratum));
    s.samples = samples
        .iter()
        .map(|x| {
            x.map(|(offset, delay)| Measurement {
                offset: d(offset),
                delay: d(delay),
            })
        })
        .collect();
    s
}

fn good(n: u8, stratum: u8, offset: f64) -> ServerResult {
    server(n, stratum, &[Some((offset, 0.02)); 4])
}

fn run(servers: &[ServerResult]) -> (Option<usize>, Vec<(usize, Drop)>) {
    let mut drops = Vec::new();
    let chosen = select(servers, |i, why| drops.push((i, why)));
    (chosen, drops)
}

#[test]
fn best_sample_is_the_one_with_the_shortest_round_trip() {
    let s = server(
        1,
        2,
        &[
            Some((0.3, 0.05)),
            None,
            Some((0.1, 0.01)),
            Some((0.2, 0.01)),
        ],
    );
    let best = s.best().unwrap();
    assert_eq!((best.offset, best.delay), (d(0.1), d(0.01)));
    assert_eq!(server(1, 2, &[None, None]).best(), None);
}

#[test]
fn lost_samples_raise_the_dispersion() {
    let steady = good(1, 2, 0.1);
    assert!(steady.dispersion() < 1e-9, "{}", steady.dispersion());
    let lossy = server(2, 2, &[Some((0.1, 0.02)), None, None, Some((0.1, 0.02))]);
    // Lost samples sort last: 16/4 + 16/8.
    assert!(
        (lossy.dispersion() - 6.0).abs() < 1e-9,
        "{}",
        lossy.dispersion()
    );
    assert!((server(3, 2, &[None]).dispersion() - MAX_DISPERSION).abs() < 1e-9);
}

#[test]
fn each_classic_rejection_has_its_message() {
    let with_header = |n: u8, change: &dyn Fn(&mut NtpHeader)| {
        let mut s = good(n, 2, 0.0);
        if let Some(h) = s.last_header.as_mut() {
            change(h);
        }
        s
    };
    let mut kissed = good(9, 2, 0.0);
    kissed.kiss = Some(ReferenceId::RATE);
    let cases = [
        (server(1, 2, &[None; 4]), Drop::NoData),
        (good(2, 0, 0.0), Drop::NoData),
        (good(3, 16, 0.0), Drop::StrataTooHigh),
        (server(4, 2, &[Some((0.0, 8.5))]), Drop::TooFarAway),
        (
            with_header(5, &|h| h.leap = Leap::Unsynchronized),
            Drop::LeapNotInSync,
        ),
        (
            with_header(6, &|h| h.reference_timestamp = XMT + d(1.0)),
            Drop::VeryBroken,
        ),
        (
            with_header(7, &|h| h.reference_timestamp = XMT - d(MAX_REFERENCE_AGE)),
            Drop::TooLongWithoutSync,
        ),
        (
            with_header(8, &|h| h.reference_timestamp = NtpTimestamp::ZERO),
            Drop::TooLongWithoutSync,
        ),
        (kissed, Drop::NoData),
    ];
    for (s, why) in &cases {
        assert_eq!(s.fitness(), Err(*why), "{s:?}");
    }
    let servers: Vec<ServerResult> = cases.iter().map(|c| c.0.clone()).collect();
    let (chosen, drops) = run(&servers);
    assert_eq!(chosen, None);
    let expected: Vec<(usize, Drop)> = cases.iter().map(|c| c.1).enumerate().collect();
    assert_eq!(drops, expected);
    assert_eq!(Drop::NoData.to_string(), "Server dropped: no data");
    assert_eq!(
        Drop::TooLongWithoutSync.to_string(),
        "Server dropped: server has gone too long without sync"
    );
}

#[test]
fn a_reference_time_just_under_a_day_old_is_still_fresh() {
    let mut s = good(1, 2, 0.0);
    s.last_header.as_mut().unwrap().reference_timestamp = XMT - d(MAX_REFERENCE_AGE - 1.0);
    assert_eq!(s.fitness(), Ok(()));
}

#[test]
fn lowest_stratum_wins_over_lower_dispersion() {
    let servers = [good(1, 3, 0.001), good(2, 2, 0.002)];
    assert_eq!(run(&servers), (Some(1), vec![]));
}

#[test]
fn equal_strata_are_ranked_by_dispersion() {
    let lossy = server(1, 2, &[Some((0.001, 0.02)), None, None, None]);
    let servers = [lossy, good(2, 2, 0.002)];
    assert_eq!(run(&servers).0, Some(1));
}

#[test]
fn a_single_fit_server_is_chosen_among_rejected_ones() {
    let servers = [good(1, 16, 0.0), good(2, 4, 0.25), server(3, 2, &[None])];
    let (chosen, drops) = run(&servers);
    assert_eq!(chosen, Some(1));
    assert_eq!(drops, [(0, Drop::StrataTooHigh), (2, Drop::NoData)]);
}

#[test]
fn a_falseticker_far_from_agreeing_servers_is_dropped() {
    // The best-ranked server is 5 s off; the two others agree with each other.
    let servers = [good(1, 1, 5.0), good(2, 2, 0.001), good(3, 2, 0.002)];
    let (chosen, drops) = run(&servers);
    assert_eq!(chosen, Some(1));
    assert_eq!(drops, [(0, Drop::Outlier)]);
}

#[test]
fn agreeing_servers_are_all_kept_and_the_first_one_wins() {
    let servers = [good(1, 2, 0.001), good(2, 2, 0.003), good(3, 2, 0.002)];
    assert_eq!(run(&servers), (Some(0), vec![]));
}

#[test]
fn only_the_two_lowest_strata_and_five_servers_take_part() {
    // Stratum 4 is beyond the second stratum change: even 9 s off it cannot disturb the rest.
    let servers = [good(1, 2, 0.0), good(2, 3, 0.001), good(3, 4, 9.0)];
    assert_eq!(run(&servers), (Some(0), vec![]));
    let many: Vec<ServerResult> = (1..=7).map(|n| good(n, 2, 0.0)).collect();
    assert_eq!(run(&many).0, Some(0));
}

#[test]
fn a_server_with_any_unauthenticated_reply_is_untrusted() {
    let mut trusted = good(1, 2, 0.0);
    for _ in 0..4 {
        trusted.record_trust(true);
    }
    assert_eq!(trusted.trust, 0);
    let mut once = good(2, 1, 0.0);
    for authentic in [true, false, true, true] {
        once.record_trust(authentic);
    }
    assert_eq!(once.trust, 0b0100, "classic shift register");
    let (chosen, drops) = run(&[once.clone(), trusted]);
    assert_eq!(
        chosen,
        Some(1),
        "the lower stratum does not help an untrusted server"
    );
    assert_eq!(drops, [(0, Drop::Untrusted)]);
    assert_eq!(
        Drop::Untrusted.to_string(),
        "Server dropped: Server is untrusted"
    );
    // No data still comes first: a server that never answered is not "untrusted".
    let mut silent = server(3, 2, &[None]);
    silent.record_trust(false);
    assert_eq!(silent.fitness(), Err(Drop::NoData));
    // Untrusted comes before judging the unverified header.
    let mut stale = good(4, 2, 0.0);
    if let Some(h) = stale.last_header.as_mut() {
        h.reference_timestamp = NtpTimestamp::ZERO;
    }
    assert_eq!(stale.fitness(), Err(Drop::TooLongWithoutSync));
    stale.record_trust(false);
    assert_eq!(stale.fitness(), Err(Drop::Untrusted));
}

#[test]
fn servers_claiming_an_impossible_root_distance_are_too_far_away() {
    use sundial_proto::time::NtpShort;
    let short = |s: u32| NtpShort::from_bits(s << 16);
    let mut precise = good(1, 2, 0.1);
    // A precision of 2^127 s.
    let mut h = header(2);
    h.precision = Log2Seconds::new(127);
    precise.last_header = Some(h);
    // A root delay of 65535 s.
    let mut far = good(2, 2, 0.2);
    let mut h = header(2);
    h.root_delay = short(65535);
    far.last_header = Some(h);
    // Root dispersion just over the limit with a short path.
    let mut dispersed = good(3, 2, 0.3);
    let mut h = header(2);
    h.root_dispersion = NtpShort::from_bits((8 << 16) + 1);
    dispersed.last_header = Some(h);
    // Plausible values just inside it are fine.
    let mut fine = good(4, 3, 0.4);
    let mut h = header(3);
    h.root_delay = short(2);
    h.root_dispersion = short(6);
    fine.last_header = Some(h);
    let (chosen, drops) = run(&[precise, far, dispersed, fine]);
    assert_eq!(chosen, Some(3));
    assert_eq!(
        drops,
        [
            (0, Drop::TooFarAway),
            (1, Drop::TooFarAway),
            (2, Drop::TooFarAway)
        ]
    );
    assert_eq!(
        Drop::TooFarAway.to_string(),
        "Server dropped: server too far away"
    );
}
