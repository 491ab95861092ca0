//! `ntpq -c sysstats` against sundial after a few bad datagrams: Debian's ntpq shows NTPsec's
//! categories and sundial's ntpq every drop reason, and both agree with the counters the daemon
//! logs at shutdown.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::thread;
use std::time::Duration;

use sundial_proto::counters::DropReason;

use crate::lan::{Lan, debian_ntpq_in};
use crate::raw::exchange;
use crate::seed_config;
use crate::support::Daemon;
use crate::support::daemon::sundial_ntpq_in;
use crate::support::peers::ntpdig_json;

/// Longer than the main loop takes to publish new counters (it does so every second).
const PUBLISH_WAIT: Duration = Duration::from_millis(2500);

/// How long the bad datagrams are given to (wrongly) get replies.
const SILENCE: Duration = Duration::from_millis(300);

/// Mode 6 datagrams the ntpqs of this test send after the counters were published: two
/// requests from Debian's, three from sundial's (none is retried: the server answers at once).
const NTPQ_REQUESTS: u64 = 5;

/// Which drop reasons NTPsec's categories sum (sundial's mapping, `sundial_proto::control`).
const BAD_FORMAT: [&str; 5] = [
    "too-short",
    "bad-version",
    "malformed",
    "oversized",
    "control-mode",
];
const DECLINED: [&str; 4] = [
    "unexpected-mode",
    "private-mode",
    "source-port-zero",
    "interface-ignored",
];
const RESTRICTED: [&str; 4] = [
    "restricted-ignore",
    "restricted-noserve",
    "restricted-version",
    "control-refused",
];

/// The first number after each legend of ntpq's `sysstats` output (the legend without its
/// colon and trailing spaces; for sundial's indented drop reasons, the reason).
fn first_numbers(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|line| {
            let (legend, rest) = line.split_once(':')?;
            let value = rest.split_whitespace().next()?;
            Some((legend.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

fn number(table: &BTreeMap<String, String>, legend: &str) -> u64 {
    table
        .get(legend)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for {legend:?} in {table:?}"))
}

/// A datagram of `len` octets whose first octet is `first`.
fn datagram(first: u8, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len];
    if let Some(b) = d.first_mut() {
        *b = first;
    }
    d
}

#[test]
fn sysstats_from_both_ntpqs_match_the_shutdown_counters() {
    let lan = Lan::new();
    let ntpd = Daemon::start_in(&lan.server, seed_config());

    // Good requests from both hosts, then bad ones.
    for (ns, server) in [
        (&lan.lan, Lan::SERVER_LAN),
        (&lan.outside, Lan::SERVER_OUTSIDE),
    ] {
        ntpdig_json(ns, "ntpdig", IpAddr::V4(server)).expect("time");
    }
    let bad = [
        // too short, three times
        datagram(0x23, 20),
        datagram(0x23, 1),
        datagram(0x23, 47),
        // version 7
        datagram(0x3b, 48),
        // mode 7 (ntpdc)
        datagram(0x17, 48),
        // mode 5 (broadcast)
        datagram(0x25, 48),
        // mode 6 from a noquery source, twice
        datagram(0x16, 12),
        datagram(0x16, 12),
    ];
    let replies = exchange(
        &lan.outside,
        Lan::OUTSIDE_HOST,
        Lan::SERVER_OUTSIDE,
        &bad,
        SILENCE,
    );
    assert!(replies.iter().all(Vec::is_empty), "{replies:02x?}");
    // A mode 6 "response" (R bit set) from the LAN: ignored by the responder.
    let mut response = datagram(0x16, 12);
    response[1] = 0x81;
    let replies = exchange(
        &lan.lan,
        Lan::LAN_HOST,
        Lan::SERVER_LAN,
        &[response],
        SILENCE,
    );
    assert!(replies.iter().all(Vec::is_empty), "{replies:02x?}");

    thread::sleep(PUBLISH_WAIT);
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let debian = debian_ntpq_in(&lan.server, &["sysstats"], localhost);
    assert!(
        debian.stdout.starts_with("uptime:") && !debian.all().contains("***"),
        "{debian:?}"
    );
    let ours = sundial_ntpq_in(&lan.server, &["-c", "sysstats", "127.0.0.1"]);
    assert!(ours.success, "{ours:?}");
    let stopped = ntpd.stop();
    let log = stopped.counters();
    let logged = |reason: &str| log.dropped_by_reason.get(reason).copied().unwrap_or(0);
    let logged_sum = |reasons: &[&str]| reasons.iter().map(|r| logged(r)).sum::<u64>();

    // What was sent shows up under the reasons it was sent for.
    for (reason, n) in [
        ("too-short", 3),
        ("bad-version", 1),
        ("private-mode", 1),
        ("unexpected-mode", 1),
        ("control-refused", 2),
        ("control-mode", 1),
    ] {
        assert_eq!(logged(reason), n, "{reason}: {log:?}");
    }

    // Debian's ntpq: NTPsec's categories.
    let theirs = first_numbers(&debian.stdout);
    assert_eq!(
        number(&theirs, "bad length or format"),
        logged_sum(&BAD_FORMAT)
    );
    assert_eq!(number(&theirs, "declined"), logged_sum(&DECLINED));
    assert_eq!(number(&theirs, "restricted"), logged_sum(&RESTRICTED));
    assert_eq!(number(&theirs, "rate limited"), logged("rate-limited"));
    assert_eq!(number(&theirs, "KoD responses"), 0);
    assert_eq!(number(&theirs, "authentication failed"), 0);
    // Apart from mode 6, one datagram of version 7 and one of version 2 (mode 7) were sent;
    // the rest (ntpdig's, the readiness probe, five bad ones) are NTPv4.
    assert!(number(&theirs, "current version") >= 7, "{theirs:?}");
    assert_eq!(number(&theirs, "older version"), 1);
    assert_eq!(number(&theirs, "NTPv1 total"), 0);
    let received = number(&theirs, "packets received");
    assert!(
        received <= log.received && log.received - received <= NTPQ_REQUESTS,
        "ntpq: {received}, log: {}",
        log.received
    );

    // sundial's ntpq: every drop reason, exactly as logged.
    let ours_table = first_numbers(&ours.stdout);
    assert_eq!(
        number(&ours_table, "dropped"),
        log.dropped,
        "{}",
        ours.stdout
    );
    for reason in DropReason::ALL {
        assert_eq!(
            number(&ours_table, reason.name()),
            logged(reason.name()),
            "{reason}: {}",
            ours.stdout
        );
    }
    // The NTPsec part of sundial's output matches Debian's, line for line, up to the counters
    // that moved with the ntpqs' own requests.
    let moving = [
        "uptime",
        "control requests",
        "sysstats reset",
        "packets received",
    ];
    for (legend, value) in &theirs {
        if !moving.contains(&legend.as_str()) {
            assert_eq!(ours_table.get(legend), Some(value), "{legend}");
        }
    }
}
