//! Who gets what under the seed's restrict lines, and under `restrict default ignore`.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::lan::{Lan, debian_ntpq_in};
use crate::raw::exchange;
use crate::support::netns::Netns;
use crate::support::peers::{ntpdig_json, ntpsec_ntpq};
use crate::support::process::Run;
use crate::support::{Daemon, TempDir};
use crate::{LOCAL_CLOCK, STRATUM, seed_config};

/// How long a request that should get no reply is given to get one.
const SILENCE: Duration = Duration::from_millis(500);

/// What NTPsec's ntpq prints when its request goes unanswered.
const TIMED_OUT: &str = "***Request timed out";

/// What NTPsec's ntpq prints when sundial refuses an answer longer than the request, which only
/// loopback may get (the LAN host's address could be spoofed).
const REFUSED: &str = "***Server error code PERMISSION";

/// What NTPsec's ntpq prints for a PERMISSION error.
const PERMISSION: &str = "***Server error code PERMISSION";

/// A key file for NTPsec's ntpq, which signs `:config` requests (sundial refuses them however
/// they are signed).
fn key_file(dir: &TempDir) -> String {
    let path = dir.write("ntp.keys", "1 MD5 sundialtest\n");
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    path.display().to_string()
}

/// `ntpq -a 1 -k KEYS -c ":config restrict 10.0.0.0" HOST`: a remote configuration attempt.
fn config_attempt(ns: &Netns, keys: &str, host: IpAddr) -> Run {
    let host = host.to_string();
    ns.run(
        ntpsec_ntpq(),
        &[
            "-c",
            "timeout 300",
            "-a",
            "1",
            "-k",
            keys,
            "-c",
            ":config restrict 10.0.0.0",
            &host,
        ],
    )
}

/// A mode 6 request with opcode `opcode` and `data` (padded to four octets), as ntpq sends it.
fn control_request(opcode: u8, sequence: u16, data: &[u8]) -> Vec<u8> {
    let mut d = vec![0x16, opcode];
    d.extend_from_slice(&sequence.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    d.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
    d.extend_from_slice(data);
    while d.len() % 4 != 0 {
        d.push(0);
    }
    d
}

/// WRITEVAR, WRITECLOCK and CONFIGURE requests.
fn write_requests() -> Vec<Vec<u8>> {
    vec![
        control_request(3, 11, b"leap=3"),
        control_request(5, 12, b"fudgetime1=100"),
        control_request(8, 13, b"restrict 10.0.0.0"),
    ]
}

/// The LAN host may query, so it gets an answer — a PERMISSION error rather than a timeout —
/// but none longer than its request.
fn assert_refused_without_amplification(run: &Run, who: &str) {
    assert!(
        run.all().contains(REFUSED) && !run.all().contains("associd="),
        "{who}: {run:?}"
    );
}

fn assert_answered_by_sundial(run: &Run, who: &str) {
    assert!(
        run.stdout.starts_with("associd=0 status=") && run.stdout.contains("ntpd sundial-"),
        "{who}: {run:?}"
    );
}

#[test]
fn lan_host_gets_time_and_short_ntpq_answers_outside_host_gets_only_time() {
    let lan = Lan::new();
    let ntpd = Daemon::start_in(&lan.server, seed_config());
    let server_lan = IpAddr::V4(Lan::SERVER_LAN);
    let server_outside = IpAddr::V4(Lan::SERVER_OUTSIDE);

    for (ns, server, who) in [
        (&lan.lan, server_lan, "LAN host"),
        (&lan.outside, server_outside, "outside host"),
    ] {
        let report = ntpdig_json(ns, "ntpdig", server)
            .unwrap_or_else(|e| panic!("{who} gets no time: {e}\n{}", ntpd.log()));
        assert_eq!(report.stratum, STRATUM, "{who}");
        assert_eq!(report.leap, "no-leap", "{who}");
    }

    let rv = debian_ntpq_in(&lan.lan, &["rv"], server_lan);
    assert_refused_without_amplification(&rv, "LAN host");
    let peers = debian_ntpq_in(&lan.lan, &["peers"], server_lan);
    assert_refused_without_amplification(&peers, "LAN host");
    // localhost in the server's namespace: ::1 first, which the seed allows with `restrict ::1`.
    let local = lan.server.run(ntpsec_ntpq(), &["-c", "rv"]);
    assert_answered_by_sundial(&local, "localhost");
    let peers = debian_ntpq_in(&lan.server, &["peers"], IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!(
        peers
            .stdout
            .contains("\n*LOCAL(0)        .LOCL.          10 l "),
        "localhost: {peers:?}"
    );

    let refused = debian_ntpq_in(&lan.outside, &["rv", "peers"], server_outside);
    assert!(
        !refused.all().contains("associd="),
        "outside host: {refused:?}"
    );
    assert_eq!(
        refused.all().matches(TIMED_OUT).count(),
        2,
        "outside host: {refused:?}"
    );

    let stopped = ntpd.stop();
    let counters = stopped.counters();
    // ntpq's two requests, each tried twice.
    assert_eq!(
        counters.dropped_by_reason.get("control-refused"),
        Some(&4),
        "{counters:?}"
    );
}

#[test]
fn mode_6_writes_are_refused_from_everywhere() {
    let lan = Lan::new();
    let _ntpd = Daemon::start_in(&lan.server, seed_config());
    let dir = TempDir::new("keys");
    let keys = key_file(&dir);
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);

    // Sources that may query get PERMISSION, from NTPsec's ntpq and for hand-built requests.
    for (ns, source, server, who) in [
        (&lan.lan, Lan::LAN_HOST, Lan::SERVER_LAN, "LAN host"),
        (
            &lan.server,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            "localhost",
        ),
    ] {
        let run = config_attempt(ns, &keys, IpAddr::V4(server));
        assert!(run.all().contains(PERMISSION), "{who}: {run:?}");
        let replies = exchange(ns, source, server, &write_requests(), SILENCE);
        for (request, replies) in write_requests().iter().zip(&replies) {
            let [reply] = replies.as_slice() else {
                panic!("{who}: opcode {}: {replies:02x?}", request[1]);
            };
            assert_eq!(reply.len(), 12, "{who}: an error is a bare header");
            assert_eq!(reply[1], 0xc0 | request[1], "{who}: R, E and the opcode");
            assert_eq!(reply[2..4], request[2..4], "{who}: the sequence");
            assert_eq!(reply[4], 1, "{who}: PERMISSION");
        }
    }
    // A noquery source hears nothing at all.
    let run = config_attempt(&lan.outside, &keys, IpAddr::V4(Lan::SERVER_OUTSIDE));
    assert!(
        run.all().contains(TIMED_OUT) && !run.all().contains(PERMISSION),
        "outside host: {run:?}"
    );
    let replies = exchange(
        &lan.outside,
        Lan::OUTSIDE_HOST,
        Lan::SERVER_OUTSIDE,
        &write_requests(),
        SILENCE,
    );
    assert!(replies.iter().all(Vec::is_empty), "{replies:02x?}");

    // Nothing changed.
    let leap = debian_ntpq_in(&lan.server, &["rv 0 leap"], localhost);
    assert!(leap.stdout.contains("leap=00"), "{leap:?}");
}

#[test]
fn restrict_default_ignore_leaves_the_outside_host_nothing() {
    let config = format!(
        "{LOCAL_CLOCK}restrict default ignore\nrestrict 127.0.0.1\n\
         restrict 192.168.1.0 mask 255.255.255.0 nomodify notrap\n"
    );
    let lan = Lan::new();
    let ntpd = Daemon::start_in(&lan.server, config);
    let server_outside = IpAddr::V4(Lan::SERVER_OUTSIDE);

    let denied = ntpdig_json(&lan.outside, "ntpdig", server_outside);
    assert!(denied.is_err(), "outside host got time: {denied:?}");
    let ntpq = debian_ntpq_in(&lan.outside, &["rv"], server_outside);
    assert!(ntpq.all().contains(TIMED_OUT), "{ntpq:?}");
    // Nor does any other kind of datagram get an answer: client, symmetric, mode 6, mode 7.
    let mut client = vec![0u8; 48];
    client[0] = 0x23;
    let mut symmetric = client.clone();
    symmetric[0] = 0x21;
    let mut mode7 = vec![0x17, 0x00, 0x03, 0x2a, 0, 0, 0, 0];
    mode7.resize(48, 0);
    let datagrams = [client, symmetric, control_request(1, 1, b""), mode7];
    let replies = exchange(
        &lan.outside,
        Lan::OUTSIDE_HOST,
        Lan::SERVER_OUTSIDE,
        &datagrams,
        SILENCE,
    );
    assert!(replies.iter().all(Vec::is_empty), "{replies:02x?}");

    // The LAN host is unaffected.
    let report = ntpdig_json(&lan.lan, "ntpdig", IpAddr::V4(Lan::SERVER_LAN))
        .unwrap_or_else(|e| panic!("LAN host gets no time: {e}"));
    assert_eq!(report.stratum, STRATUM);
    let rv = debian_ntpq_in(&lan.lan, &["rv"], IpAddr::V4(Lan::SERVER_LAN));
    assert_refused_without_amplification(&rv, "LAN host");

    let stopped = ntpd.stop();
    let counters = stopped.counters();
    // ntpdig's request, ntpq's two tries and the four hand-built datagrams, at the least.
    let ignored = counters
        .dropped_by_reason
        .get("restricted-ignore")
        .copied()
        .unwrap_or(0);
    assert!(ignored >= 7, "{counters:?}");
}
