//! Malformed datagrams and config files: no reply, no crash, every dropped datagram counted.

use std::collections::BTreeMap;
use std::time::Duration;

use sundial_proto::packet::{HEADER_LEN, Mode, NtpHeader};
use sundial_proto::time::NtpTimestamp;

use crate::support::{
    Daemon, LOCAL_CLOCK_CONFIG, LOCAL_CLOCK_STRATUM, ORPHAN_CONFIG, SntpClient, TempDir,
};

/// How long a malformed datagram is given to (wrongly) produce a reply. On loopback a reply takes
/// well under a millisecond.
const NO_REPLY_WAIT: Duration = Duration::from_millis(200);

/// Random datagrams sent by [`random_datagrams_never_stop_the_daemon`].
const RANDOM_DATAGRAMS: usize = 2000;

/// Random datagrams sent between two good requests. On loopback each small datagram takes a few
/// KiB of the default 208 KiB socket buffer, so a burst fits even while the daemon is not
/// scheduled (the machine is shared with builds).
const RANDOM_BURST: usize = 10;

/// Share of the random datagrams that must reach the daemon. The kernel still drops some when
/// the daemon's thread for the sending socket falls behind over several bursts; the daemon's own
/// accounting of what it did receive is checked exactly.
const MIN_RECEIVED_SHARE: f64 = 0.9;

/// A datagram the server must drop, and the reason it must count it under.
struct BadDatagram {
    what: &'static str,
    bytes: Vec<u8>,
    reason: &'static str,
}

#[test]
fn malformed_datagrams_get_no_reply_and_are_all_counted() {
    let cases = malformed_datagrams();
    assert!(cases.len() >= 20);
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let mut ntpd = ntpd;
    let server = ntpd.addr_v4();
    let client = SntpClient::new(server);
    for case in &cases {
        client.send_raw(server, &case.bytes);
        if let Some((reply, _)) = client.recv_within(NO_REPLY_WAIT) {
            panic!(
                "{} ({} octets) got a reply: {reply:02x?}",
                case.what,
                case.bytes.len()
            );
        }
        assert!(
            ntpd.is_running(),
            "ntpd died after {}:\n{}",
            case.what,
            ntpd.log()
        );
        let reply = client
            .query(server, 4)
            .unwrap_or_else(|e| panic!("good request after {}: {e}\n{}", case.what, ntpd.log()));
        assert_eq!(reply.header.stratum, LOCAL_CLOCK_STRATUM);
        assert_eq!(
            client.unmatched(),
            0,
            "a stray reply arrived after {}",
            case.what
        );
    }

    let stopped = ntpd.stop();
    stopped.assert_success();
    let counters = stopped.counters();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for case in &cases {
        *expected.entry(case.reason.to_owned()).or_default() += 1;
    }
    assert_eq!(
        counters.dropped_by_reason, expected,
        "drop counters by reason\n{}",
        stopped.log
    );
    assert_eq!(counters.dropped, cases.len() as u64, "{counters:?}");
    assert_eq!(
        counters.received,
        counters.replied + counters.dropped,
        "{counters:?}"
    );
    // One good request after each bad one, plus at least one readiness probe.
    assert!(counters.replied > cases.len() as u64, "{counters:?}");
}

#[test]
fn random_datagrams_never_stop_the_daemon() {
    let mut ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let server = ntpd.addr_v4();
    // Replies to random datagrams that happen to be valid requests go to this socket, unread.
    let fuzz = SntpClient::new(server);
    let client = SntpClient::new(server);
    let mut rng = XorShift(0x05ee_d0f5_d1a1);
    for burst in 0..RANDOM_DATAGRAMS / RANDOM_BURST {
        for _ in 0..RANDOM_BURST {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            fuzz.send_raw(server, &bytes);
        }
        assert!(
            ntpd.is_running(),
            "ntpd died during burst {burst}:\n{}",
            ntpd.log()
        );
        client
            .query(server, 4)
            .unwrap_or_else(|e| panic!("good request after burst {burst}: {e}\n{}", ntpd.log()));
    }
    let stopped = ntpd.stop();
    stopped.assert_success();
    let counters = stopped.counters();
    assert_eq!(
        counters.received,
        counters.replied + counters.dropped,
        "{counters:?}"
    );
    assert_eq!(
        counters.dropped_by_reason.values().sum::<u64>(),
        counters.dropped,
        "{counters:?}"
    );
    // One good request followed each burst.
    let good_requests = (RANDOM_DATAGRAMS / RANDOM_BURST) as u64;
    #[expect(clippy::cast_precision_loss, reason = "a few thousand datagrams")]
    let received_share =
        counters.received.saturating_sub(good_requests) as f64 / RANDOM_DATAGRAMS as f64;
    assert!(received_share >= MIN_RECEIVED_SHARE, "{counters:?}");
}

#[test]
fn garbage_config_files_do_not_stop_the_daemon() {
    for (what, config) in garbage_configs() {
        let ntpd = Daemon::start(&config);
        let reply = SntpClient::new(ntpd.addr_v4())
            .query(ntpd.addr_v4(), 4)
            .unwrap_or_else(|e| panic!("config with {what}: {e}\n{}", ntpd.log()));
        assert_eq!(reply.header.mode, Mode::Server, "config with {what}");
        let stopped = ntpd.stop();
        assert!(
            stopped.status.success(),
            "config with {what}: {}\n{}",
            stopped.status,
            stopped.log
        );
    }
}

#[test]
fn valid_directives_after_garbage_still_take_effect() {
    let mut config = b"\xff\xfe garbage \x00\x01\x02\nserver\n@@@ = ;;\n".to_vec();
    config.extend_from_slice(LOCAL_CLOCK_CONFIG.as_bytes());
    let ntpd = Daemon::start(&config);
    let reply = SntpClient::new(ntpd.addr_v4())
        .query(ntpd.addr_v4(), 4)
        .expect("reply");
    assert_eq!(reply.header.stratum, LOCAL_CLOCK_STRATUM, "{}", ntpd.log());
}

#[test]
fn config_check_names_file_and_line_of_each_error() {
    let dir = TempDir::new("check");
    let config = "\
# a comment
server 127.127.1.0
frobnicate yes
fudge 127.127.1.0 stratum 10
server
tos orphan banana
";
    let (status, output, _) = Daemon::check(&dir, "broken.conf", config.as_bytes());
    assert!(
        !status.success(),
        "--check accepted a broken config:\n{output}"
    );
    for line in [3, 5, 6] {
        assert!(
            mentions_line(&output, "broken.conf", line),
            "broken.conf:{line} not named:\n{output}"
        );
    }
}

#[test]
fn config_check_rejects_garbage_files() {
    let dir = TempDir::new("check");
    for (n, (what, config)) in garbage_configs().into_iter().enumerate() {
        let (status, output, _) = Daemon::check(&dir, &format!("garbage{n}.conf"), &config);
        assert!(
            !status.success(),
            "--check accepted a config with {what}:\n{output}"
        );
        assert!(
            output.contains(&format!("garbage{n}.conf:")),
            "{what}: no file:line in\n{output}"
        );
    }
}

#[test]
fn config_check_accepts_a_valid_config() {
    let dir = TempDir::new("check");
    for config in [LOCAL_CLOCK_CONFIG, ORPHAN_CONFIG, ""] {
        let (status, output, _) = Daemon::check(&dir, "good.conf", config.as_bytes());
        assert!(status.success(), "--check rejected {config:?}:\n{output}");
    }
}

#[test]
fn config_check_accepts_the_shipped_example_config() {
    // Only parsed: the daemon is never started with it (it names pool servers on the internet).
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../etc/ntp.conf");
    let config = std::fs::read(shipped).unwrap_or_else(|e| panic!("{shipped}: {e}"));
    let dir = TempDir::new("check");
    let (status, output, _) = Daemon::check(&dir, "ntp.conf", &config);
    assert!(status.success(), "--check rejected etc/ntp.conf:\n{output}");
}

/// The malformed datagrams, each with the drop reason the daemon must log for it.
fn malformed_datagrams() -> Vec<BadDatagram> {
    let good = request(4, Mode::Client);
    let mut cases = vec![
        bad("an empty datagram", Vec::new(), "too-short"),
        bad("1 octet", good[..1].to_vec(), "too-short"),
        bad("4 octets", good[..4].to_vec(), "too-short"),
        bad("12 octets", good[..12].to_vec(), "too-short"),
        bad("47 octets", good[..HEADER_LEN - 1].to_vec(), "too-short"),
    ];
    for version in [0, 5, 6, 7] {
        cases.push(bad(
            "a client request of a bad version",
            request(version, Mode::Client),
            "bad-version",
        ));
    }
    for (version, mode) in [
        (4, Mode::Reserved),
        (2, Mode::Reserved),
        (4, Mode::SymmetricPassive),
        (4, Mode::Server),
        (4, Mode::Broadcast),
    ] {
        cases.push(bad(
            "an unexpected mode",
            request(version, mode),
            "unexpected-mode",
        ));
    }
    // Mode 6 with the response bit set and a data count far beyond the datagram.
    let mut control = vec![0u8; HEADER_LEN];
    control[..12].copy_from_slice(&[0x16, 0x82, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    control[12..]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 37) as u8);
    cases.push(bad("mode 6 garbage", control, "control-mode"));
    cases.push(bad(
        "a mode 7 request",
        request(2, Mode::Private),
        "private-mode",
    ));
    cases.extend([
        bad(
            "an extension field below 16 octets",
            with_extension(&good, 12, 28),
            "malformed",
        ),
        bad(
            "an extension field length not a multiple of 4",
            with_extension(&good, 30, 32),
            "malformed",
        ),
        bad(
            "an extension field running past the end",
            with_extension(&good, 64, 32),
            "malformed",
        ),
        bad(
            "an extension field of length 0",
            with_extension(&good, 0, 28),
            "malformed",
        ),
        bad(
            "stray octets after an extension field",
            [with_extension(&good, 28, 28), vec![0xaa; 3]].concat(),
            "malformed",
        ),
        bad(
            "1 stray octet after the header",
            [good.clone(), vec![0]].concat(),
            "malformed",
        ),
        bad(
            "8 stray octets after the header",
            [good.clone(), vec![0; 8]].concat(),
            "malformed",
        ),
        bad(
            "16 stray octets after an NTPv3 header",
            [request(3, Mode::Client), vec![0; 16]].concat(),
            "malformed",
        ),
        // Well-formed apart from its size: one 2952-octet extension field.
        bad(
            "a 3000-octet request",
            with_extension(&good, 3000 - HEADER_LEN, 3000 - HEADER_LEN),
            "oversized",
        ),
    ]);
    cases
}

fn bad(what: &'static str, bytes: Vec<u8>, reason: &'static str) -> BadDatagram {
    BadDatagram {
        what,
        bytes,
        reason,
    }
}

/// A 48-octet request of any version and mode, with a non-zero transmit timestamp.
fn request(version: u8, mode: Mode) -> Vec<u8> {
    let mut header = NtpHeader::new(version, mode);
    header.transmit_timestamp = NtpTimestamp::from_parts(0xec00_0000, 0x1234_5678);
    let mut bytes = [0u8; HEADER_LEN];
    header.emit(&mut bytes);
    bytes.to_vec()
}

/// `packet` followed by `total` octets that start with an extension field header claiming
/// `length` octets (type 0x2005, unassigned).
fn with_extension(packet: &[u8], length: usize, total: usize) -> Vec<u8> {
    let mut field = vec![0u8; total];
    let length = u16::try_from(length).expect("extension length fits 16 bits");
    field[..4].copy_from_slice(&[0x20, 0x05, length.to_be_bytes()[0], length.to_be_bytes()[1]]);
    [packet, &field].concat()
}

/// Config files no parser should choke on, by what is wrong with them.
fn garbage_configs() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = XorShift(0xc0f_f1e5);
    let random: Vec<u8> = (0..4096).map(|_| rng.byte()).collect();
    let bad_arguments = b"\
frobnicate 1 2 3
server
server 127.127.1.0 minpoll banana maxpoll -99999999999999999999
fudge 127.127.1.0 stratum 99 refid TOOLONGREFID
restrict 10.0.0.0 mask 255.0 nomodify nosuchflag
restrict
tos orphan
tos orphan -1 orphanwait
includefile /nonexistent/sundial/ntp.conf
driftfile
keys /nonexistent/sundial/ntp.keys
trustedkey x 1-
\"unterminated quote
server 999.999.999.999 iburst iburst iburst
"
    .to_vec();
    let mut long_line = b"server ".to_vec();
    long_line.extend(std::iter::repeat_n(b'a', 100_000));
    long_line.push(b'\n');
    vec![
        ("random bytes", random),
        ("unknown keywords and bad arguments", bad_arguments),
        ("a 100000-character line", long_line),
        (
            "NUL octets and invalid UTF-8",
            b"server\x00 127.127.1.0\n\xc3\x28 \xff\xfe\nfudge \x80\x81\n".to_vec(),
        ),
    ]
}

/// Whether `output` names `file:line` (and not some longer line number).
fn mentions_line(output: &str, file: &str, line: u32) -> bool {
    let needle = format!("{file}:{line}");
    output
        .match_indices(&needle)
        .any(|(at, _)| !output[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// A tiny seeded PRNG (xorshift64), so the random inputs are the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn byte(&mut self) -> u8 {
        self.next().to_be_bytes()[0]
    }

    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n).unwrap_or(0)
    }
}
