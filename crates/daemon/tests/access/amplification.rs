//! No amplification against the running daemon: a sweep over every mode, version and many
//! lengths, from loopback (which may use ntpq), from a LAN source (which may use ntpq, but whose
//! address may be spoofed) and from an outside source (which may not). No reply is longer than
//! its request, except mode 6 to loopback, whose replies stay within the responder's bound.

use std::net::Ipv4Addr;

use crate::lan::Lan;
use crate::raw::{SweepResult, sweep};
use crate::seed_config;
use crate::support::Daemon;

/// Most datagrams of one mode 6 reply (`sundial_proto::control::MAX_REPLY_FRAGMENTS`).
const MODE6_MAX_DATAGRAMS: usize = 16;

/// Largest mode 6 datagram: a 12-octet header and 468 data octets.
const MODE6_MAX_DATAGRAM: usize = 480;

/// What a sweep's source may get over mode 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode6 {
    /// Loopback: answers up to the responder's bound.
    Amplified,
    /// A LAN source allowed to query: answers no longer than the request.
    NotAmplified,
    /// An outside source: nothing.
    Refused,
}

/// Checks every result; returns how many time requests and mode 6 requests were answered.
fn check(results: &[SweepResult], mode6: Mode6, who: &str) -> (usize, usize) {
    let (mut time, mut control) = (0, 0);
    for r in results {
        if r.mode == 6 && mode6 == Mode6::Amplified {
            assert!(
                r.datagrams <= MODE6_MAX_DATAGRAMS && r.longest <= MODE6_MAX_DATAGRAM,
                "{who}: {r:?}"
            );
            control += usize::from(r.datagrams > 0);
        } else {
            assert!(
                r.octets <= r.length,
                "{who}: reply longer than request: {r:?}"
            );
            if r.mode == 6 {
                if mode6 == Mode6::Refused {
                    assert_eq!(r.datagrams, 0, "{who}: mode 6 answered: {r:?}");
                }
                control += usize::from(r.datagrams > 0);
            } else {
                time += usize::from(r.datagrams > 0);
            }
        }
    }
    (time, control)
}

#[test]
fn no_request_of_any_mode_version_or_length_is_amplified() {
    let lan = Lan::new();
    let ntpd = Daemon::start_in(&lan.server, seed_config());

    let mut sources = vec![Lan::LAN_HOST];
    sources.extend(Lan::lan_extra());
    let from_lan = sweep(&lan.lan, &sources, Lan::SERVER_LAN);
    let from_outside = sweep(&lan.outside, &[Lan::OUTSIDE_HOST], Lan::SERVER_OUTSIDE);
    let loopback: Vec<Ipv4Addr> = (1..=17).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
    let from_loopback = sweep(&lan.server, &loopback, Ipv4Addr::LOCALHOST);
    // 7 modes × 8 versions × 30 lengths, and 4 variants of each for mode 6.
    let expected = 7 * 8 * 30 + 8 * 30 * 4;
    for (results, who) in [
        (&from_lan, "LAN"),
        (&from_outside, "outside"),
        (&from_loopback, "loopback"),
    ] {
        assert_eq!(results.len(), expected, "the {who} sweep did not finish");
    }

    let (_, control) = check(&from_loopback, Mode6::Amplified, "loopback");
    assert!(control > 0, "loopback: no mode 6 answer");
    assert!(
        from_loopback.iter().any(|r| r.mode == 6 && r.datagrams > 1),
        "no multi-fragment mode 6 reply in the loopback sweep"
    );
    // Client requests of versions 1–4, at least 48 octets that parse, are answered; mode 6
    // requests are answered too, but never at more length than they came with.
    let (time, control) = check(&from_lan, Mode6::NotAmplified, "LAN");
    assert!(
        time > 0 && control > 0,
        "LAN: {time} time, {control} mode 6"
    );
    let (time, control) = check(&from_outside, Mode6::Refused, "outside");
    assert!(
        time > 0 && control == 0,
        "outside: {time} time, {control} mode 6"
    );
    let answered = |results: &[SweepResult], version| {
        results
            .iter()
            .find(|r| r.mode == 3 && r.version == version && r.length == 48)
            .is_some_and(|r| r.datagrams == 1 && r.octets == 48)
    };
    for version in 1..=4 {
        assert!(
            answered(&from_lan, version),
            "LAN: NTPv{version} client request"
        );
        assert!(
            answered(&from_outside, version),
            "outside: NTPv{version} client request"
        );
    }
    assert!(ntpd_alive(ntpd), "ntpd died during the sweep");
}

/// Stops the daemon; true if it was still running and exited cleanly.
fn ntpd_alive(mut ntpd: Daemon) -> bool {
    if !ntpd.is_running() {
        return false;
    }
    ntpd.stop().status.success()
}
