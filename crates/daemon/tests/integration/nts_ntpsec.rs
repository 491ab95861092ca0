//! NTS (RFC 8915) against NTPsec's ntpd, both directions, in a pair of network namespaces
//! (server 10.200.0.1, client 10.200.0.2), with a test CA and certificates made by openssl.
//! Every NTP program runs without CAP_SYS_TIME.
//!
//! * sundial as an NTS client of NTPsec (`nts enable`, `nts cert`, `nts key`) selects it, and
//!   its ntpq shows the association authenticated.
//! * NTPsec as an NTS client of sundial (`server … nts ca FILE`) selects it, and NTPsec's own
//!   ntpq shows its association authenticated; a sundial restarted with the same `nts cookie`
//!   file but no key-exchange port still answers the cookies NTPsec holds, and `ntpdig` gets
//!   time from it. NTPsec's `ntpq -c ntsinfo` shows the cookies made, and, after a rotation
//!   written to the cookie file, the cookies opened under the previous key.
//! * A relay in front of NTPsec that flips one bit of each reply (in the authenticator or in
//!   the transmit timestamp) or replays an old reply: sundial never selects it, and counts
//!   the replies as `bad-mac` or `bogus-origin`; the same relay passing replies unchanged is
//!   selected.
//! * An expired and a wrongly named certificate each fail the key exchange with a log line
//!   naming the server and the reason, and nothing is sent to that server.

use std::time::Duration;

use crate::nts::{Pki, counter};
use crate::support::daemon::sundial_ntpq_in;
use crate::support::netns::{Netns, NetnsPair};
use crate::support::peers::{Peer, ntpdig_json, ntpsec_ntpq_in};
use crate::support::process::Run;
use crate::support::{Daemon, LOCAL_CLOCK_CONFIG, TempDir, eventually, free_port};

/// How long a client gets to select its NTS server (key exchange, then iburst).
const SUNDIAL_SELECTS_WITHIN: Duration = Duration::from_secs(60);

/// How long NTPsec's ntpd gets to select sundial.
const NTPSEC_SELECTS_WITHIN: Duration = Duration::from_secs(120);

/// How long a failing key exchange gets to be logged.
const FAILS_WITHIN: Duration = Duration::from_secs(20);

/// The `remote` column of the row `ntpq -pn` marks with `*`, if any.
fn system_peer(run: &Run) -> Option<String> {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix('*'))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

/// The first association id `ntpq -c as` lists, and that table.
fn first_association(run: &Run) -> (String, String) {
    let id = run
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .find(|w| w.parse::<u32>().is_ok())
        .unwrap_or_default()
        .to_owned();
    (id, run.stdout.clone())
}

/// NTPsec's NTS server settings, its cookie keys kept in `dir` (never in /var/lib/ntp).
fn ntpsec_nts_server(pki: &Pki, dir: &TempDir) -> String {
    format!(
        "nts enable\nnts cert {}\nnts key {}\nnts cookie {}/nts-keys\n",
        pki.show("server.crt"),
        pki.show("server.key"),
        dir.path().display()
    )
}

#[test]
fn sundial_selects_ntpsec_over_nts_and_shows_it_authenticated() {
    let server = NetnsPair::SERVER_V4.to_string();
    let pki = Pki::generate_for(&server);
    let pair = NetnsPair::new();
    let dir = TempDir::new("ntpsec-nts");
    let ntpsec = Peer::ntpsec_orphan_in(&pair.server, &ntpsec_nts_server(&pki, &dir));
    let ntpd = Daemon::start_in(
        &pair.client,
        format!(
            "nts ca {}\nserver {server} nts iburst minpoll 3 maxpoll 3\n",
            pki.show("ca.crt")
        ),
    );
    let mut last = String::new();
    let selected = eventually(SUNDIAL_SELECTS_WITHIN, || {
        let run = sundial_ntpq_in(&pair.client, &["-pn", "127.0.0.1"]);
        last = run.stdout.clone();
        system_peer(&run).is_some_and(|p| p == server)
    });
    let (id, table) = first_association(&sundial_ntpq_in(&pair.client, &["-c", "as", "127.0.0.1"]));
    let rv = sundial_ntpq_in(&pair.client, &["-c", &format!("rv {id}"), "127.0.0.1"]).stdout;
    // NTPsec's ntpq reads sundial's association the same way.
    let their_rv = ntpsec_ntpq_in(&pair.client, &["-c", &format!("rv {id}"), "127.0.0.1"]).stdout;
    let log = ntpd.stop().log;
    assert!(
        selected,
        "sundial never selected NTPsec:\n{last}\n{log}\n{}",
        ntpsec.log()
    );
    assert!(log.contains(&format!("NTS-KE with {server} gave")), "{log}");
    assert!(table.lines().any(|l| l.contains(" ok ")), "{table}");
    // The status word says `authenb, auth` (authentic), and the jar is shown as NTPsec
    // shows its own.
    for view in [&rv, &their_rv] {
        assert!(view.contains("authenb, auth,"), "{view}");
        assert!(view.contains("ntscookies="), "{view}");
    }
}

/// sundial serving its local clock with NTS in the server namespace of `pair`, its cookie keys
/// in `cookie`, key exchange on `ke_port`.
fn sundial_nts_server(pair: &NetnsPair, pki: &Pki, cookie: &str, ke_port: u16) -> Daemon {
    Daemon::start_in(
        &pair.server,
        format!(
            "{LOCAL_CLOCK_CONFIG}nts enable\nnts cert {}\nnts key {}\nnts cookie {cookie}\n\
             nts port {ke_port}\n",
            pki.show("server.crt"),
            pki.show("server.key"),
        ),
    )
}

/// NTPsec's ntpd as an NTS client of `server` in `ns`, trusting `ca`.
fn ntpsec_nts_client(ns: &Netns, server: &str, ca: &str) -> Peer {
    Peer::ntpsec_client_in(
        ns,
        &format!("server {server} nts ca {ca} iburst minpoll 3 maxpoll 3\n"),
    )
}

#[test]
fn ntpsec_selects_sundial_over_nts_and_keeps_its_cookies_across_a_restart() {
    let server = NetnsPair::SERVER_V4.to_string();
    let pki = Pki::generate_for(&server);
    let pair = NetnsPair::new();
    let cookie = pki.show("cookie.keys");
    let ntpd = sundial_nts_server(&pair, &pki, &cookie, 4460);
    let client = ntpsec_nts_client(&pair.client, &server, &pki.show("ca.crt"));
    let mut last = String::new();
    let selected = eventually(NTPSEC_SELECTS_WITHIN, || {
        let run = ntpsec_ntpq_in(&pair.client, &["-pn", "127.0.0.1"]);
        last = run.stdout.clone();
        system_peer(&run).is_some_and(|p| p == server)
    });
    assert!(
        selected,
        "NTPsec never selected sundial:\n{last}\n{}\n{}",
        client.log(),
        ntpd.log()
    );
    // NTPsec's ntpq on NTPsec's own association: authenticated (NTS has no key id).
    let (id, table) = first_association(&ntpsec_ntpq_in(&pair.client, &["-c", "as", "127.0.0.1"]));
    assert!(table.lines().any(|l| l.contains(" ok ")), "{table}");
    let rv = ntpsec_ntpq_in(&pair.client, &["-c", &format!("rv {id}"), "127.0.0.1"]).stdout;
    assert!(rv.contains("authenb, auth,"), "{rv}");
    assert!(rv.contains("ntscookies="), "{rv}");
    // NTPsec's `ntpq -c ntsinfo` reads sundial's NTS counters by NTPsec's names.
    let ntsinfo = ntpsec_ntpq_in(&pair.server, &["-c", "ntsinfo", "127.0.0.1"]).stdout;
    // sundial's ntpq has the same command, with sundial's refusals after NTPsec's lines.
    let ours = sundial_ntpq_in(&pair.server, &["-c", "ntsinfo", "127.0.0.1"]).all();
    let first = ntpd.stop().log;
    assert!(counter(&first, "NTS repl") > 0, "{first}");
    let value = |label: &str| -> u64 { ntsinfo_value(&ntsinfo, label).unwrap_or(0) };
    assert!(value("NTS KE serves good:") >= 1, "{ntsinfo}");
    assert!(value("NTS server recvs good:") >= 1, "{ntsinfo}");
    assert_eq!(value("NTS decode cookies error:"), 0, "{ntsinfo}");
    // Cookies made: 8 per key exchange and at least one per NTS reply; none opened under an
    // old key yet. Each is a number, not NTPsec's `???` for a variable not sent.
    let least = 8 * value("NTS KE serves good:") + value("NTS server recvs good:");
    assert!(value("NTS make cookies:") >= least, "{ntsinfo}");
    for old in ["old:", "old2:", "older:"] {
        let label = format!("NTS decode cookies {old}");
        assert_eq!(ntsinfo_value(&ntsinfo, &label), Some(0), "{ntsinfo}");
    }
    let serves = ours
        .lines()
        .find_map(|l| l.strip_prefix("NTS KE serves good:"))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(serves.is_some_and(|n| n >= 1), "{ours}");
    assert!(ours.contains("NTS KE refused:"), "{ours}");

    // The same cookie file after a rotation (a fresh key in front, as sundial writes it), the
    // key-exchange port moved away: NTPsec can only go on with the cookies it holds, which
    // the restarted server must still open, now under the previous key.
    rotate_cookie_file(&cookie);
    let second = sundial_nts_server(&pair, &pki, &cookie, free_port());
    // NTPsec polls every 8 s; two polls and a margin.
    std::thread::sleep(Duration::from_secs(20));
    let sntp = ntpdig_json(&pair.client, "ntpdig", NetnsPair::SERVER_V4.into());
    let ntsinfo = ntpsec_ntpq_in(&pair.server, &["-c", "ntsinfo", "127.0.0.1"]).stdout;
    let log = second.stop().log;
    let old = ntsinfo_value(&ntsinfo, "NTS decode cookies old:");
    assert!(old.is_some_and(|n| n >= 1), "{ntsinfo}");
    assert_eq!(ntsinfo_value(&ntsinfo, "NTS decode cookies old2:"), Some(0));
    // No key exchange now: the cookies made are those of the NTS replies.
    let made = ntsinfo_value(&ntsinfo, "NTS make cookies:");
    assert!(made.is_some_and(|n| n >= 1), "{ntsinfo}");
    assert!(
        counter(&log, "NTS repl") > 0,
        "NTPsec's old cookies not answered after the restart:\n{log}\n{}",
        client.log()
    );
    assert_eq!(counter(&log, "NTS NAK"), 0, "{log}");
    let report = sntp.unwrap_or_else(|e| panic!("ntpdig after the restart: {e}"));
    assert_eq!(report.stratum, crate::support::LOCAL_CLOCK_STRATUM);
}

/// The number on the line of NTPsec's `ntpq -c ntsinfo` labelled `label`; `None` if the line
/// is missing or not a number (`???` for a variable the server did not send).
fn ntsinfo_value(ntsinfo: &str, label: &str) -> Option<u64> {
    ntsinfo
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|v| v.trim().parse().ok())
}

/// Puts a fresh master key in front of the `nts cookie` file at `path`, as a rotation does,
/// keeping the file's mode (0600).
fn rotate_cookie_file(path: &str) {
    let keys = std::fs::read_to_string(path).expect("cookie file");
    let newest: u32 = keys
        .split_whitespace()
        .next()
        .and_then(|id| id.parse().ok())
        .expect("a key id");
    let fresh = format!("{} {}\n", newest.wrapping_add(1), "5a".repeat(32));
    std::fs::write(path, fresh + &keys).expect("rewrite cookie file");
}

#[test]
fn expired_and_misnamed_certificates_fail_the_key_exchange_with_the_reason() {
    let pki = Pki::generate();
    let mut servers = Vec::new();
    let mut lines = String::new();
    for name in ["expired", "misnamed"] {
        let ke_port = free_port();
        let daemon = Daemon::start(format!(
            "{LOCAL_CLOCK_CONFIG}nts enable\nnts cert {}\nnts key {}\nnts port {ke_port}\n",
            pki.show(&format!("{name}.crt")),
            pki.show(&format!("{name}.key")),
        ));
        lines.push_str(&format!(
            "server 127.0.0.1 port {} nts ntsport {ke_port} iburst minpoll 3 maxpoll 3\n",
            daemon.port()
        ));
        servers.push((name, ke_port, daemon));
    }
    let client = Daemon::start(format!("nts ca {}\n{lines}", pki.show("ca.crt")));
    let logged = eventually(FAILS_WITHIN, || {
        let log = client.log();
        servers
            .iter()
            .all(|(_, port, _)| log.contains(&format!("NTS-KE with 127.0.0.1:{port} failed")))
    });
    let log = client.stop().log;
    assert!(logged, "{log}");
    for (name, port, daemon) in servers {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("NTS-KE with 127.0.0.1:{port} failed")))
            .unwrap_or_default()
            .to_lowercase();
        let reason = if name == "expired" {
            "expired"
        } else {
            "not valid for name"
        };
        assert!(line.contains(reason), "{name}: {line}");
        assert!(line.contains("certificate"), "{name}: {line}");
        let served = daemon.stop().log;
        assert_eq!(counter(&served, "NTS repl"), 0, "{name}: {served}");
    }
    // No plain NTP instead: neither association sent anything.
    assert_eq!(
        log.lines().filter(|l| l.contains(": sent 0,")).count(),
        2,
        "{log}"
    );
}

/// argv: listen address, listen port, upstream address, upstream port, mode, lifetime in
/// seconds. Relays NTP datagrams between one client and the upstream server. Modes: `pass`
/// relays faithfully; `flip-auth` flips one bit of the last octet of each reply (inside the
/// NTS authenticator); `flip-time` flips one bit of the transmit timestamp; `replay` keeps
/// the first reply and sends it again in answer to every later request, dropping the real
/// replies.
const NTS_RELAY_SCRIPT: &str = r#"
import select, socket, sys, time
addr, port, up, up_port, mode, life = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind((addr, port))
back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client, first = None, None
end = time.monotonic() + life
while time.monotonic() < end:
    ready, _, _ = select.select([front, back], [], [], 1.0)
    for s in ready:
        data, src = s.recvfrom(4096)
        if s is front:
            client = src
            back.sendto(data, (up, up_port))
            if mode == "replay" and first is not None:
                front.sendto(first, client)
            continue
        if client is None:
            continue
        data = bytearray(data)
        if mode == "flip-auth":
            data[-1] ^= 1
        elif mode == "flip-time" and len(data) > 47:
            data[47] ^= 1
        elif mode == "replay":
            if first is None:
                first = bytes(data)
            continue
        front.sendto(bytes(data), client)
"#;

/// A relay started by [`NTS_RELAY_SCRIPT`], stopped when dropped.
struct NtsRelay {
    child: std::process::Child,
}

impl NtsRelay {
    fn start(
        ns: &Netns,
        listen: (&str, u16),
        upstream: (&str, u16),
        mode: &str,
        dir: &TempDir,
    ) -> Self {
        let mut cmd = ns.notime("python3");
        cmd.args(["-c", NTS_RELAY_SCRIPT, listen.0, &listen.1.to_string()])
            .args([upstream.0, &upstream.1.to_string(), mode, "600"]);
        let log = dir.path().join(format!("relay-{mode}.log"));
        Self {
            child: crate::support::process::spawn_logged(&mut cmd, &log),
        }
    }
}

impl Drop for NtsRelay {
    fn drop(&mut self) {
        let _ = crate::support::process::stop(&mut self.child, Duration::from_secs(5));
    }
}

/// The count of rejections `reason` in sundial's shutdown line for its association
/// (`… rejected REASON=N, …`).
fn rejected(log: &str, reason: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(": sent ") && l.contains("answered"))
        .filter_map(|l| l.split(&format!("{reason}=")).nth(1))
        .filter_map(|n| n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_relay_that_alters_or_replays_ntpsec_replies_is_rejected_and_counted() {
    let server = NetnsPair::SERVER_V4.to_string();
    let pki = Pki::generate_for(&server);
    let pair = NetnsPair::new();
    let dir = TempDir::new("nts-relay");
    let _ntpsec = Peer::ntpsec_orphan_in(&pair.server, &ntpsec_nts_server(&pki, &dir));
    relays_are_rejected_and_counted(&pair, &pki, &dir);
}

#[test]
fn a_relay_that_alters_or_replays_chronyd_replies_is_rejected_and_counted() {
    let server = NetnsPair::SERVER_V4.to_string();
    let pki = Pki::generate_for(&server);
    let pair = NetnsPair::new();
    let dir = TempDir::new("nts-relay-chronyd");
    // On port 123, so that chronyd's key exchange names no other NTP port and the NTP
    // datagrams go where sundial is told to send them: through the relay.
    let _chronyd = Peer::chronyd_server_in(
        &pair.server,
        &format!(
            "port 123\nallow\nlocal stratum 8\nntsservercert {}\nntsserverkey {}\n",
            pki.show("server.crt"),
            pki.show("server.key"),
        ),
        123,
        8,
    );
    relays_are_rejected_and_counted(&pair, &pki, &dir);
}

/// With an NTS server on port 123 of the server namespace (key exchange on 4460), sundial in
/// the client namespace is pointed at a relay in front of it: faithful, it is selected; flipping
/// a bit of the authenticator or of the transmit timestamp, or replaying the first reply, it
/// never is, no reply counts as good, and each rejection is counted by its reason.
fn relays_are_rejected_and_counted(pair: &NetnsPair, pki: &Pki, dir: &TempDir) {
    let server = NetnsPair::SERVER_V4.to_string();
    // The key exchange goes to the server itself (its certificate is for the address); the NTP
    // datagrams go through the relay in front of it, on another port of the same address.
    let relay_port = 10123;
    for (mode, counted) in [
        ("pass", ""),
        ("flip-auth", "bad-mac"),
        ("flip-time", "bad-mac"),
        ("replay", "bogus-origin"),
    ] {
        let _relay = NtsRelay::start(
            &pair.server,
            (&server, relay_port),
            ("127.0.0.1", 123),
            mode,
            dir,
        );
        let ntpd = Daemon::start_in(
            &pair.client,
            format!(
                "nts ca {}\nserver {server} port {relay_port} nts iburst minpoll 3 maxpoll 3\n",
                pki.show("ca.crt")
            ),
        );
        let limit = if mode == "pass" {
            SUNDIAL_SELECTS_WITHIN
        } else {
            Duration::from_secs(20)
        };
        let selected = eventually(limit, || {
            system_peer(&sundial_ntpq_in(&pair.client, &["-pn", "127.0.0.1"])).is_some()
        });
        // ntpq -c ntsinfo counts the NTS association's replies, good and rejected.
        let ntsinfo = sundial_ntpq_in(&pair.client, &["-c", "ntsinfo", "127.0.0.1"]).stdout;
        let info = |label: &str| -> u64 {
            ntsinfo
                .lines()
                .find_map(|l| l.strip_prefix(label))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let log = ntpd.stop().log;
        if mode == "pass" {
            assert!(selected, "faithful relay not selected:\n{log}");
            assert!(info("NTS client recvs good:") >= 1, "{ntsinfo}");
            continue;
        }
        if counted == "bad-mac" {
            assert!(info("NTS client recvs w error:") >= 3, "{mode}: {ntsinfo}");
        }
        assert_eq!(info("NTS client recvs good:"), 0, "{mode}: {ntsinfo}");
        assert!(!selected, "{mode}: selected through the relay:\n{log}");
        let n = rejected(&log, counted);
        assert!(n >= 3, "{mode}: {counted} counted {n} times:\n{log}");
        assert!(log.contains("answered 0"), "{mode}: {log}");
    }
}
