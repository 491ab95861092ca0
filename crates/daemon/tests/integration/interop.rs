//! Real NTP clients accept sundial's replies, and sundial answers every request version the way
//! they expect.
//!
//! `ntpdig`, `sntp` and `ntpdate` only talk to port 123, so for them sundial runs inside a network
//! namespace; `chronyd -Q` and the in-process client use host loopback at a free port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sundial_proto::packet::{HEADER_LEN, Leap, Mode, NtpHeader, ReferenceId};

use crate::support::netns::Netns;
use crate::support::peers::{self, SntpReport};
use crate::support::sntp::Reply;
use crate::support::{
    Daemon, LOCAL_CLOCK_CONFIG, LOCAL_CLOCK_STRATUM, NetnsPair, ORPHAN_CONFIG, ORPHAN_STRATUM,
    SntpClient,
};

/// How far ahead the simulated clock of the sundial server runs in the offset checks, seconds:
/// known and far from zero, so that a sign or scale error in the served timestamps (or in a
/// client) shows; on loopback with the host's clock every offset would be about zero.
const SERVER_AHEAD: f64 = 0.25;

/// How far a client's offset may be from [`SERVER_AHEAD`] beyond the error bound the client
/// prints itself: server and client read the same clock, only timestamp rounding separates them.
const MAX_OFFSET_ERROR: f64 = 0.001;

/// Largest error bound a client may print and still count: a bound wide enough to excuse a
/// sign error would excuse anything.
const MAX_CLIENT_BOUND: f64 = 0.1;

/// Runs of a one-shot client; every run is checked. A client that is descheduled between its
/// own two timestamps (the machine is shared with builds) is off by milliseconds, but its delay
/// — and so the bound it prints — grows with it.
const OFFSET_ATTEMPTS: usize = 10;

/// The `--clock` argument of a sundial server [`SERVER_AHEAD`] ahead.
fn clock_ahead() -> String {
    format!("simulated:{SERVER_AHEAD}:0")
}

/// Largest age of the reference time a freshly started server may send. Classic ntpdate rejects
/// servers whose reference time is a day old.
const MAX_REFERENCE_AGE: f64 = 10.0;

/// Slack for comparing server timestamps with ours: both come from the same system clock, so only
/// timestamp rounding separates them.
const SAME_CLOCK_SLACK: f64 = 100e-6;

#[test]
fn ntpdig_accepts_local_clock_server() {
    let net = NetnsPair::new();
    let _ntpd = Daemon::start_in_clock(&net.server, LOCAL_CLOCK_CONFIG, &clock_ahead());
    let report =
        every_offset(|| peers::ntpdig_json(&net.client, "ntpdig", NetnsPair::SERVER_V4.into()));
    assert_accepted(&report, LOCAL_CLOCK_STRATUM);
}

#[test]
fn ntpdig_accepts_local_clock_server_over_ipv6() {
    let net = NetnsPair::new();
    let _ntpd = Daemon::start_in_clock(&net.server, LOCAL_CLOCK_CONFIG, &clock_ahead());
    let report =
        every_offset(|| peers::ntpdig_json(&net.client, "ntpdig", NetnsPair::SERVER_V6.into()));
    assert_accepted(&report, LOCAL_CLOCK_STRATUM);
}

#[test]
fn sntp_accepts_orphan_server_on_loopback() {
    let ns = Netns::new("o");
    let _ntpd = Daemon::start_in_clock(&ns, ORPHAN_CONFIG, &clock_ahead());
    let report = every_offset(|| peers::ntpdig_json(&ns, "sntp", Ipv4Addr::LOCALHOST.into()));
    assert_accepted(&report, ORPHAN_STRATUM);
}

#[test]
fn ntpdate_query_accepts_local_clock_server() {
    let net = NetnsPair::new();
    let _ntpd = Daemon::start_in_clock(&net.server, LOCAL_CLOCK_CONFIG, &clock_ahead());
    let report = every_offset(|| peers::ntpdate_query(&net.client, NetnsPair::SERVER_V4.into()));
    assert_accepted(&report, LOCAL_CLOCK_STRATUM);
}

#[test]
fn ntpdig_rejects_unsynchronised_server() {
    let net = NetnsPair::new();
    let _ntpd = Daemon::start_in(&net.server, "");
    let err = peers::ntpdig_json(&net.client, "ntpdig", NetnsPair::SERVER_V4.into())
        .expect_err("ntpdig must not accept a server that is not synchronised");
    assert!(
        err.contains("Response dropped"),
        "ntpdig got no reply at all:\n{err}"
    );
}

#[test]
fn chronyd_accepts_local_clock_server() {
    let ntpd = Daemon::start_clock(LOCAL_CLOCK_CONFIG, &clock_ahead(), &[]);
    let server = ntpd.addr_v4();
    assert_chrony_accepts(ntpd, server, LOCAL_CLOCK_STRATUM);
}

#[test]
fn chronyd_accepts_orphan_server_over_ipv6() {
    let ntpd = Daemon::start_clock(ORPHAN_CONFIG, &clock_ahead(), &[]);
    let server = ntpd.addr_v6();
    assert_chrony_accepts(ntpd, server, ORPHAN_STRATUM);
}

#[test]
fn requests_of_versions_1_to_4_get_replies_of_the_same_version() {
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let client = SntpClient::new(ntpd.addr_v4());
    for version in 1..=4 {
        let reply = client
            .query(ntpd.addr_v4(), version)
            .unwrap_or_else(|e| panic!("NTPv{version} request: {e}\n{}", ntpd.log()));
        assert_well_formed(&reply, version, LOCAL_CLOCK_STRATUM);
    }
}

#[test]
fn ntpv1_request_in_mode_0_is_answered_like_a_client_request() {
    // Old NTPv1 clients send mode 0; classic ntpd and NTPsec treat that as a client request.
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let client = SntpClient::new(ntpd.addr_v4());
    let reply = client
        .query_with(ntpd.addr_v4(), NtpHeader::new(1, Mode::Reserved))
        .unwrap_or_else(|e| panic!("NTPv1 mode 0 request: {e}\n{}", ntpd.log()));
    assert_well_formed(&reply, 1, LOCAL_CLOCK_STRATUM);
}

#[test]
fn symmetric_active_request_gets_a_stateless_symmetric_passive_reply() {
    // Windows w32time sends mode 1; ntpd answers with mode 2 without mobilising an association.
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let client = SntpClient::new(ntpd.addr_v4());
    let reply = client
        .query_with(ntpd.addr_v4(), NtpHeader::new(4, Mode::SymmetricActive))
        .unwrap_or_else(|e| panic!("mode 1 request: {e}\n{}", ntpd.log()));
    assert_eq!(reply.header.mode, Mode::SymmetricPassive);
    assert_eq!(
        (reply.header.version, reply.header.stratum),
        (4, LOCAL_CLOCK_STRATUM)
    );
    assert_server_timestamps_plausible(&reply);
}

#[test]
fn unknown_extension_fields_are_not_echoed() {
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let client = SntpClient::new(ntpd.addr_v4());
    // One 28-octet field of an unassigned type (RFC 7822: the least a lone field may take).
    let mut field = vec![0u8; 28];
    field[..4].copy_from_slice(&[0x20, 0x05, 0, 28]);
    let reply = client
        .query_with_trailer(ntpd.addr_v4(), NtpHeader::new(4, Mode::Client), &field)
        .unwrap_or_else(|e| panic!("request with an extension field: {e}\n{}", ntpd.log()));
    assert_well_formed(&reply, 4, LOCAL_CLOCK_STRATUM);
}

#[test]
fn request_with_an_unknown_key_gets_a_crypto_nak() {
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let client = SntpClient::new(ntpd.addr_v4());
    // Key id 7 (no keys are configured) and a 16-octet digest.
    let mut mac = vec![0u8; 20];
    mac[..4].copy_from_slice(&7u32.to_be_bytes());
    let reply = client
        .query_with_trailer(ntpd.addr_v4(), NtpHeader::new(4, Mode::Client), &mac)
        .unwrap_or_else(|e| panic!("request with a MAC: {e}\n{}", ntpd.log()));
    assert_eq!(
        reply.bytes.len(),
        HEADER_LEN + 4,
        "a crypto-NAK is the header and a zero key id"
    );
    assert_eq!(reply.bytes.get(HEADER_LEN..), Some(&[0u8; 4][..]));
    assert_eq!((reply.header.mode, reply.header.version), (Mode::Server, 4));
}

#[test]
fn local_clock_server_sends_locl_refid_and_fresh_reference_time() {
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let reply = SntpClient::new(ntpd.addr_v4())
        .query(ntpd.addr_v4(), 4)
        .expect("reply");
    assert_well_formed(&reply, 4, LOCAL_CLOCK_STRATUM);
    assert_eq!(reply.header.reference_id, ReferenceId::LOCL);
}

#[test]
fn orphan_server_sends_loopback_refid_and_fresh_reference_time() {
    let ntpd = Daemon::start(ORPHAN_CONFIG);
    let reply = SntpClient::new(ntpd.addr_v4())
        .query(ntpd.addr_v4(), 4)
        .expect("reply");
    assert_well_formed(&reply, 4, ORPHAN_STRATUM);
    assert_eq!(reply.header.reference_id, ReferenceId::LOOPBACK);
}

#[test]
fn unsynchronised_server_answers_with_alarm_stratum_0_and_init() {
    let ntpd = Daemon::start("");
    let reply = SntpClient::new(ntpd.addr_v4())
        .query(ntpd.addr_v4(), 4)
        .expect("reply");
    let h = reply.header;
    assert_eq!(
        (h.leap, h.version, h.mode),
        (Leap::Unsynchronized, 4, Mode::Server)
    );
    assert_eq!(h.stratum, 0);
    assert_eq!(h.reference_id, ReferenceId::INIT);
    assert_eq!(reply.bytes.len(), HEADER_LEN);
    assert_server_timestamps_plausible(&reply);
}

#[test]
fn requests_to_ipv4_and_ipv6_loopback_are_answered_from_that_address() {
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    // 127.0.0.2 is loopback too, but not the address the kernel would pick as a reply's source.
    let targets = [
        ntpd.addr_v4(),
        SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), ntpd.port())),
        ntpd.addr_v6(),
    ];
    for target in targets {
        let reply = SntpClient::new(target)
            .query(target, 4)
            .unwrap_or_else(|e| panic!("request to {target}: {e}\n{}", ntpd.log()));
        assert_eq!(
            reply.from, target,
            "request to {target} answered from {}",
            reply.from
        );
        assert_well_formed(&reply, 4, LOCAL_CLOCK_STRATUM);
    }
}

#[test]
fn requests_to_a_secondary_address_are_answered_from_it() {
    let net = NetnsPair::new();
    let secondary_v4 = IpAddr::V4(Ipv4Addr::new(10, 200, 0, 11));
    let secondary_v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x5d, 0, 0, 0, 0, 0, 0x11));
    net.server.add_address("eth0", secondary_v4, 24);
    net.server.add_address("eth0", secondary_v6, 64);
    let ntpd = Daemon::start_in(&net.server, LOCAL_CLOCK_CONFIG);
    let targets = [
        NetnsPair::SERVER_V4.into(),
        secondary_v4,
        NetnsPair::SERVER_V6.into(),
        secondary_v6,
    ];
    for ip in targets {
        let target = SocketAddr::from((ip, 123));
        let reply = peers::probe_in(&net.client, target, std::time::Duration::from_secs(2))
            .unwrap_or_else(|| {
                panic!(
                    "no reply from {target} to a client in another namespace\n{}",
                    ntpd.log()
                )
            });
        assert_eq!(
            reply.from, target,
            "request to {target} answered from {}",
            reply.from
        );
        assert_eq!(
            reply.bytes.first().map(|b| b & 7),
            Some(Mode::Server.bits())
        );
    }
}

/// Calls `query` [`OFFSET_ATTEMPTS`] times; every report must put the server
/// [`SERVER_AHEAD`] ahead, within the error bound the client printed (at most
/// [`MAX_CLIENT_BOUND`]) plus [`MAX_OFFSET_ERROR`]. Returns the last report.
fn every_offset(mut query: impl FnMut() -> Result<SntpReport, String>) -> SntpReport {
    let reports: Vec<SntpReport> = (0..OFFSET_ATTEMPTS)
        .map(|_| query().unwrap_or_else(|e| panic!("the client rejected sundial:\n{e}")))
        .collect();
    assert_eq!(reports.len(), OFFSET_ATTEMPTS);
    for report in &reports {
        let bound = report.error.expect("the client printed an error bound");
        assert!(bound <= MAX_CLIENT_BOUND, "{report:?}");
        assert!(
            (report.offset - SERVER_AHEAD).abs() <= bound + MAX_OFFSET_ERROR,
            "the server is {SERVER_AHEAD} s ahead; the client measured {report:?} (all: {reports:?})"
        );
    }
    reports.into_iter().last().expect("OFFSET_ATTEMPTS > 0")
}

/// The client saw the configured stratum and no leap warning.
fn assert_accepted(report: &SntpReport, stratum: u8) {
    assert_eq!(report.stratum, stratum, "{report:?}");
    assert_eq!(report.leap, "no-leap", "{report:?}");
}

/// chronyd -Q measured the server at least once, every packet test passed, and it saw the
/// configured stratum, normal leap status and the server [`SERVER_AHEAD`] ahead in every
/// measurement (chrony reports both the measured offsets and "System clock wrong by" as +0.25 s).
fn assert_chrony_accepts(ntpd: Daemon, server: SocketAddr, stratum: u8) {
    let query = peers::chronyd_query(server);
    let failed = |what: String| -> ! {
        let stopped = ntpd.stop();
        panic!("{what}\nchronyd:\n{}\nntpd:\n{}", query.output, stopped.log);
    };
    if query.measurements.is_empty() {
        failed("chronyd measured nothing".into());
    }
    for m in &query.measurements {
        if m.tests != "111 111 1111" || m.leap != "N" || m.stratum != stratum {
            failed(format!(
                "chrony rejected a reply or saw the wrong stratum or leap: {m:?}"
            ));
        }
        if (m.offset - SERVER_AHEAD).abs() >= MAX_OFFSET_ERROR {
            failed(format!(
                "the server is {SERVER_AHEAD} s ahead; chrony measured {m:?}"
            ));
        }
    }
    match query.clock_error {
        Some(error) if (error - SERVER_AHEAD).abs() < MAX_OFFSET_ERROR => {}
        Some(error) => failed(format!("chronyd: clock wrong by {error} s")),
        None => failed("chronyd printed no offset".into()),
    }
}

/// A synchronised server's reply to a 48-octet request of `version`.
fn assert_well_formed(reply: &Reply, version: u8, stratum: u8) {
    let h = reply.header;
    assert_eq!(
        reply.bytes.len(),
        HEADER_LEN,
        "a reply is never longer than the request"
    );
    assert_eq!(h.version, version, "{h:?}");
    assert_eq!(h.mode, Mode::Server, "{h:?}");
    assert_eq!(h.leap, Leap::NoWarning, "{h:?}");
    assert_eq!(h.stratum, stratum, "{h:?}");
    assert!(
        (-30..=0).contains(&h.precision.exponent()),
        "implausible precision: {h:?}"
    );
    let distance = h.root_delay.to_seconds_f64() / 2.0 + h.root_dispersion.to_seconds_f64();
    assert!(distance < 1.0, "root distance {distance} s: {h:?}");
    assert_server_timestamps_plausible(reply);
    let xmt = reply.server_time(h.transmit_timestamp);
    let reference = reply.server_time(h.reference_timestamp);
    let age = Reply::seconds_between(reference, xmt);
    assert!(
        (0.0..MAX_REFERENCE_AGE).contains(&age),
        "reference time {age} s before the transmit time: {h:?}"
    );
}

/// The server's receive and transmit timestamps lie between our send and receive times, in order:
/// its clock agrees with ours to within the round trip. (Unlike an offset bound, this holds however
/// long this test process is descheduled between its own timestamps on a busy machine.)
fn assert_server_timestamps_plausible(reply: &Reply) {
    let h = reply.header;
    assert!(
        !h.receive_timestamp.is_zero() && !h.transmit_timestamp.is_zero(),
        "{h:?}"
    );
    let t2 = reply.server_time(h.receive_timestamp);
    let t3 = reply.server_time(h.transmit_timestamp);
    let order = [
        ("T1 ≤ T2", Reply::seconds_between(reply.sent, t2)),
        ("T2 ≤ T3", Reply::seconds_between(t2, t3)),
        ("T3 ≤ T4", Reply::seconds_between(t3, reply.received)),
    ];
    for (what, gap) in order {
        assert!(
            gap >= -SAME_CLOCK_SLACK,
            "{what} violated by {gap} s: {h:?}"
        );
    }
}
