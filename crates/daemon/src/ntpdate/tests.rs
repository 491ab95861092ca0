//! The whole tool — arguments, query over a real loopback socket, selection, decision — against
//! a fake NTP server thread and the recording [`FakeClock`]. No test can change the machine's
//! clock: the only clock ntpdate is handed here is the fake one.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clap::Parser;
use sundial_proto::packet::{HEADER_LEN, Leap, Mode, NtpHeader, ReferenceId};
use sundial_proto::time::{Log2Seconds, NtpDuration, NtpTimestamp};

use super::args::NtpdateArgs;
use super::output::Reporter;
use super::run;
use super::setclock::FakeClock;
use crate::config::KeyId;
use crate::keys::{KeyType, SymmetricKey, check_mac};

/// How the fake server answers each request.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// A synchronised stratum-2 server whose clock is `offset` seconds ahead of ours.
    Good(f64),
    /// A good reply whose origin timestamp is not the request's transmit timestamp.
    WrongOrigin,
    /// The first 47 octets of a good reply.
    Truncated,
    /// A kiss-o'-death with this code.
    Kiss(ReferenceId),
    /// A good reply with LI=3.
    Unsynchronised,
    /// A good reply of this stratum.
    Stratum(u8),
    /// A good reply whose reference time is two days old.
    StaleReference,
    /// A good reply with a zero receive timestamp.
    ZeroReceive,
    /// A good reply 0.1 s ahead, then a second reply to the same request 5 s ahead.
    Duplicate,
    /// Like an ntpd with one key (id, type, secret): a good reply 0.1 s ahead signed with the
    /// key if the request carried a valid MAC made with it, else a good reply with a crypto-NAK.
    Signed(u16, KeyType, &'static [u8]),
}

/// A fake server on 127.0.0.1 at a free port; stops when dropped.
struct FakeServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    fn start(behaviour: Behaviour) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !done.load(Ordering::Relaxed) {
                let Ok((len, client)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let datagram = buf.get(..len).unwrap_or_default();
                let Some(request) = datagram.first_chunk::<HEADER_LEN>() else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                for reply in replies(behaviour, &NtpHeader::decode(request), datagram) {
                    socket.send_to(&reply, client).unwrap();
                }
            }
        });
        Self {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn arg(&self) -> String {
        self.addr.to_string()
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now() -> NtpTimestamp {
    NtpTimestamp::from_unix(crate::clock::kernel_now())
}

fn d(seconds: f64) -> NtpDuration {
    NtpDuration::from_seconds_f64(seconds)
}

/// The datagrams the fake server sends for `request` (the header of `datagram`).
fn replies(behaviour: Behaviour, request: &NtpHeader, datagram: &[u8]) -> Vec<Vec<u8>> {
    let good = |offset: f64| {
        let t = now() + d(offset);
        let mut h = NtpHeader::new(4, Mode::Server);
        h.stratum = 2;
        h.precision = Log2Seconds::new(-20);
        h.reference_id = ReferenceId::from_bytes([192, 0, 2, 1]);
        h.reference_timestamp = t - d(60.0);
        h.origin_timestamp = request.transmit_timestamp;
        h.receive_timestamp = t;
        h.transmit_timestamp = t;
        h
    };
    let emit = |h: NtpHeader| {
        let mut b = [0u8; HEADER_LEN];
        h.emit(&mut b);
        b.to_vec()
    };
    let mut h = good(0.1);
    match behaviour {
        Behaviour::Good(offset) => h = good(offset),
        Behaviour::WrongOrigin => h.origin_timestamp = h.origin_timestamp + d(1e-6),
        Behaviour::Truncated => return vec![emit(h)[..HEADER_LEN - 1].to_vec()],
        Behaviour::Kiss(code) => {
            h.leap = Leap::Unsynchronized;
            h.stratum = 0;
            h.reference_id = code;
        }
        Behaviour::Unsynchronised => h.leap = Leap::Unsynchronized,
        Behaviour::Stratum(s) => h.stratum = s,
        Behaviour::StaleReference => h.reference_timestamp = h.transmit_timestamp - d(172_800.0),
        Behaviour::ZeroReceive => h.receive_timestamp = NtpTimestamp::ZERO,
        Behaviour::Duplicate => return vec![emit(h), emit(good(5.0))],
        Behaviour::Signed(id, key_type, secret) => {
            let id = KeyId::new(id).unwrap();
            let key = SymmetricKey::new(id, key_type, secret).unwrap();
            let mut reply = emit(h);
            if check_mac(&key, datagram).is_ok() {
                key.append_mac(&mut reply);
            } else {
                reply.extend_from_slice(&[0; 4]);
            }
            return vec![reply];
        }
    }
    vec![emit(h)]
}

fn fixed_prefix() -> String {
    "27 Nov 05:06:58 ntpdate[1234]: ".to_owned()
}

/// What one run of ntpdate did.
struct Outcome {
    code: ExitCode,
    stdout: String,
    stderr: String,
    clock: FakeClock,
}

fn ntpdate(args: &[&str]) -> Outcome {
    ntpdate_with_clock(args, FakeClock::default())
}

fn ntpdate_with_clock(args: &[&str], mut clock: FakeClock) -> Outcome {
    let args = NtpdateArgs::try_parse_from(std::iter::once("ntpdate").chain(args.iter().copied()))
        .unwrap();
    let mut reporter = Reporter::new(Vec::new(), Vec::new(), false, fixed_prefix);
    let code = run(&args, &mut reporter, &mut clock);
    let (out, err) = reporter.into_parts();
    Outcome {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
        clock,
    }
}

fn near(d: NtpDuration, seconds: f64) -> bool {
    (d.to_seconds_f64() - seconds).abs() < 0.01
}

/// Asserts that `label` occurs in `text` and that the numbers right after it on its line (at
/// least one) are all within 10 ms of `seconds`. Output is compared by value, not by its first
/// digits: the fake server's reply takes a little time, so an offset of 2 s is measured as
/// 1.99996 s when the machine is busy.
#[track_caller]
fn assert_printed_near(text: &str, label: &str, seconds: f64) {
    let numbers: Vec<f64> = text
        .find(label)
        .map(|at| &text[at + label.len()..])
        .and_then(|rest| rest.lines().next())
        .map(|line| {
            line.split_whitespace()
                .map_while(|word| word.trim_end_matches(',').parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !numbers.is_empty() && numbers.iter().all(|n| (n - seconds).abs() < 0.01),
        "expected {label:?} followed by {seconds} in:\n{text}"
    );
}

#[test]
fn an_offset_of_half_a_second_or_more_is_stepped() {
    let server = FakeServer::start(Behaviour::Good(2.0));
    let o = ntpdate(&["-u", "-p", "2", &server.arg()]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    assert!(o.clock.slews.is_empty());
    assert!(
        matches!(o.clock.steps[..], [by] if near(by, 2.0)),
        "{:?}",
        o.clock.steps
    );
    assert!(
        o.stdout
            .starts_with("27 Nov 05:06:58 ntpdate[1234]: step time server 127.0.0.1 offset +"),
        "{}",
        o.stdout
    );
    assert_printed_near(&o.stdout, "step time server 127.0.0.1 offset", 2.0);
    assert!(
        o.stdout.ends_with(" sec\n") && o.stdout.lines().count() == 1,
        "{}",
        o.stdout
    );
}

#[test]
fn a_small_offset_is_slewed_with_overshoot() {
    let server = FakeServer::start(Behaviour::Good(0.1));
    let o = ntpdate(&["-u", &server.arg()]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    assert!(o.clock.steps.is_empty());
    assert!(
        matches!(o.clock.slews[..], [by] if near(by, 0.15)),
        "{:?}",
        o.clock.slews
    );
    assert_printed_near(&o.stdout, ": adjust time server 127.0.0.1 offset", 0.1);
    assert_eq!(server.requests(), 4, "the default is 4 samples");
}

/// The offset the result line printed after `label`, seconds.
#[track_caller]
fn printed_offset(text: &str, label: &str) -> f64 {
    text.find(label)
        .map(|at| &text[at + label.len()..])
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} followed by a number in:\n{text}"))
}

#[test]
fn step_and_slew_flags_override_the_threshold() {
    // What ntpdate measures of the fake server moves with how the threads are scheduled, so
    // the correction is checked against the offset it printed: `-b` steps by exactly that
    // (0.1 s, far below the 0.5 s threshold), `-B` slews it plus the 50 ms overshoot (3 s, far
    // above).
    let exact = |d: NtpDuration, seconds: f64| (d.to_seconds_f64() - seconds).abs() < 2e-6;
    let small = FakeServer::start(Behaviour::Good(0.1));
    let o = ntpdate(&["-u", "-b", "-p", "1", &small.arg()]);
    let printed = printed_offset(&o.stdout, "step time server 127.0.0.1 offset ");
    assert!((printed - 0.1).abs() < 0.1, "{}", o.stdout);
    assert!(
        matches!(o.clock.steps[..], [by] if exact(by, printed)),
        "{:?}\n{}",
        o.clock.steps,
        o.stdout
    );
    let large = FakeServer::start(Behaviour::Good(3.0));
    let o = ntpdate(&["-u", "-B", "-p", "1", &large.arg()]);
    let printed = printed_offset(&o.stdout, ": adjust time server 127.0.0.1 offset ");
    assert!((printed - 3.0).abs() < 0.1, "{}", o.stdout);
    assert!(
        matches!(o.clock.slews[..], [by] if exact(by, printed + 0.05)),
        "{:?}\n{}",
        o.clock.slews,
        o.stdout
    );
}

#[test]
fn query_prints_each_server_and_the_result_but_never_touches_the_clock() {
    let a = FakeServer::start(Behaviour::Good(2.0));
    let b = FakeServer::start(Behaviour::Stratum(16));
    let o = ntpdate(&["-q", "-p", "2", &a.arg(), &b.arg()]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    assert!(o.clock.untouched());
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", o.stdout);
    assert_printed_near(lines[0], "server 127.0.0.1, stratum 2, offset", 2.0);
    // A loopback round trip, padded as classic ntpdate pads it (2^-6 s + 0.01 s).
    assert_printed_near(lines[0], ", delay", 0.0256);
    assert_printed_near(lines[1], "server 127.0.0.1, stratum 16, offset", 0.1);
    assert!(lines[2].starts_with(&fixed_prefix()), "{}", lines[2]);
    assert_printed_near(lines[2], "step time server 127.0.0.1 offset", 2.0);
}

#[test]
fn debug_dumps_the_exchange_and_never_touches_the_clock() {
    let server = FakeServer::start(Behaviour::Good(2.0));
    let o = ntpdate(&["-d", "-p", "2", &server.arg()]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    assert!(o.clock.untouched());
    for expected in [
        "transmit(127.0.0.1)\nreceive(127.0.0.1)\ntransmit(127.0.0.1)\nreceive(127.0.0.1)\n",
        &format!("server 127.0.0.1, port {}\n", server.addr.port()),
        "stratum 2, precision -20, leap 00, trust 000\n",
        "refid [192.0.2.1], root delay +0.000000, root dispersion +0.000000\n",
    ] {
        assert!(
            o.stdout.contains(expected),
            "missing {expected:?} in:\n{}",
            o.stdout
        );
    }
    assert_printed_near(&o.stdout, "filter offset:", 2.0);
    assert_printed_near(&o.stdout, "step time server 127.0.0.1 offset", 2.0);
}

/// A server that only sends bad replies never gets the clock changed; `-v` says why.
fn assert_rejected(behaviour: Behaviour, reason: &str) -> Outcome {
    assert_rejected_with(behaviour, &[], reason)
}

/// [`assert_rejected`] with `extra` arguments.
fn assert_rejected_with(behaviour: Behaviour, extra: &[&str], reason: &str) -> Outcome {
    let server = FakeServer::start(behaviour);
    let addr = server.arg();
    let mut args = vec!["-u", "-v", "-p", "2", "-t", "0.2"];
    args.extend_from_slice(extra);
    args.push(&addr);
    let o = ntpdate(&args);
    assert_eq!(
        o.code,
        ExitCode::FAILURE,
        "{behaviour:?}: {}{}",
        o.stdout,
        o.stderr
    );
    assert!(
        o.clock.untouched(),
        "{behaviour:?} changed the clock: {:?}",
        o.clock
    );
    assert!(
        o.stderr.ends_with(
            "27 Nov 05:06:58 ntpdate[1234]: no server suitable for synchronization found\n"
        ),
        "{behaviour:?}: {}",
        o.stderr
    );
    assert!(
        o.stdout.contains(reason),
        "{behaviour:?}: no {reason:?} in:\n{}",
        o.stdout
    );
    o
}

#[test]
fn replies_with_the_wrong_origin_are_ignored() {
    assert_rejected(
        Behaviour::WrongOrigin,
        "dropped: origin timestamp is not our request's",
    );
}

#[test]
fn truncated_replies_are_ignored() {
    assert_rejected(Behaviour::Truncated, "dropped: malformed packet: 47 octets");
}

#[test]
fn a_rate_kiss_is_logged_stops_the_queries_and_rejects_the_server() {
    let o = assert_rejected(
        Behaviour::Kiss(ReferenceId::RATE),
        "127.0.0.1: Server dropped: no data",
    );
    assert!(
        o.stderr.starts_with(
            "27 Nov 05:06:58 ntpdate[1234]: 127.0.0.1 rate limit response from server.\n"
        ),
        "{}",
        o.stderr
    );
    let server = FakeServer::start(Behaviour::Kiss(ReferenceId::DENY));
    let o = ntpdate(&["-u", "-p", "4", "-t", "0.2", &server.arg()]);
    assert!(o.clock.untouched() && o.code == ExitCode::FAILURE);
    assert_eq!(
        server.requests(),
        1,
        "a server that said DENY is not asked again"
    );
}

#[test]
fn unsynchronised_servers_are_rejected() {
    assert_rejected(
        Behaviour::Unsynchronised,
        "127.0.0.1: Server dropped: leap not in sync",
    );
    assert_rejected(
        Behaviour::Kiss(ReferenceId::INIT),
        "127.0.0.1: Server dropped: no data",
    );
    assert_rejected(
        Behaviour::Stratum(16),
        "127.0.0.1: Server dropped: strata too high",
    );
}

#[test]
fn a_day_old_reference_time_is_rejected() {
    assert_rejected(
        Behaviour::StaleReference,
        "127.0.0.1: Server dropped: server has gone too long without sync",
    );
}

#[test]
fn zero_server_timestamps_are_not_used() {
    assert_rejected(
        Behaviour::ZeroReceive,
        "reply not used: zero receive or transmit timestamp",
    );
}

#[test]
fn a_second_reply_to_the_same_request_is_ignored() {
    let server = FakeServer::start(Behaviour::Duplicate);
    let o = ntpdate(&["-u", "-v", "-p", "1", "-t", "0.4", &server.arg()]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    assert!(
        matches!(o.clock.slews[..], [by] if near(by, 0.15)),
        "{:?}",
        o.clock
    );
    assert!(
        o.clock.steps.is_empty(),
        "the 5 s duplicate must not count: {:?}",
        o.clock
    );
}

#[test]
fn the_best_server_wins_and_bad_ones_do_not_matter() {
    let good = FakeServer::start(Behaviour::Good(0.2));
    let kiss = FakeServer::start(Behaviour::Kiss(ReferenceId::RATE));
    let stale = FakeServer::start(Behaviour::StaleReference);
    let o = ntpdate(&["-u", "-p", "2", &kiss.arg(), &stale.arg(), &good.arg()]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    assert!(
        matches!(o.clock.slews[..], [by] if near(by, 0.25)),
        "{:?}",
        o.clock
    );
}

#[test]
fn answers_end_the_run_without_waiting_for_timeouts() {
    let servers: Vec<FakeServer> = (0..3)
        .map(|_| FakeServer::start(Behaviour::Good(0.0)))
        .collect();
    let mut args = vec!["-q".to_owned(), "-p".to_owned(), "8".to_owned()];
    args.extend(servers.iter().map(FakeServer::arg));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let o = ntpdate(&args);
    let took = started.elapsed();
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    // The timeout is 2 s: any wait for it would show.
    assert!(
        took < Duration::from_millis(1500),
        "24 exchanges took {took:?}"
    );
    assert!(servers.iter().all(|s| s.requests() == 8));
}

#[test]
fn a_failed_clock_write_exits_1_with_the_classic_message() {
    let server = FakeServer::start(Behaviour::Good(2.0));
    let failing = FakeClock {
        fail_with: Some(libc::EPERM),
        ..FakeClock::default()
    };
    let o = ntpdate_with_clock(&["-u", "-p", "1", &server.arg()], failing);
    assert_eq!(o.code, ExitCode::FAILURE);
    assert_eq!(
        o.stderr,
        "27 Nov 05:06:58 ntpdate[1234]: Can't set time of day: Operation not permitted\n"
    );
    assert!(
        o.stdout.is_empty(),
        "no result line after a failure: {}",
        o.stdout
    );
}

#[test]
fn unresolvable_hosts_are_named_and_the_rest_are_used() {
    let server = FakeServer::start(Behaviour::Good(0.0));
    let o = ntpdate(&["-q", "-p", "1", "no-such-host.invalid", &server.arg()]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    assert!(o.stderr.starts_with(&format!(
        "{}Can't find host no-such-host.invalid: ",
        fixed_prefix()
    )));
    let o = ntpdate(&["-q", "no-such-host.invalid"]);
    assert_eq!(o.code, ExitCode::FAILURE);
    assert!(
        o.stderr.ends_with(": no servers can be used, exiting\n"),
        "{}",
        o.stderr
    );
}

/// A keys file in a fresh directory, removed on drop.
struct KeysFile {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl KeysFile {
    fn new(contents: &str, mode: u32) -> Self {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::AtomicU32;

        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("sundial-ntpdate-keys-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ntp.keys");
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        Self { dir, path }
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for KeysFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const MD5_SECRET: &[u8] = b"md5-secret";
/// The SHA1 key's 40 hex digits, decoded.
const SHA1_SECRET: &[u8] = &[
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
    0x01, 0x23, 0x45, 0x67,
];
const CMAC_SECRET: &[u8] = b"cmac-secret-key!";

/// Keys 1 (MD5), 2 (SHA1, hex), 3 (AES128CMAC), 4 (MD5, a secret the servers do not know),
/// 5 (RMD160, unsupported).
const CLIENT_KEYS: &str = "# test keys\n\
                           1 MD5 md5-secret\n\
                           2 SHA1 0123456789abcdef0123456789abcdef01234567\n\
                           3 AES128CMAC cmac-secret-key!\n\
                           4 MD5 not-the-secret\n\
                           5 RMD160 whatever\n";

#[test]
fn authenticated_replies_are_used_with_md5_sha1_and_cmac_keys() {
    let keys = KeysFile::new(CLIENT_KEYS, 0o600);
    for (id, key_type, secret) in [
        (1, KeyType::Md5, MD5_SECRET),
        (2, KeyType::Sha1, SHA1_SECRET),
        (3, KeyType::Aes128Cmac, CMAC_SECRET),
    ] {
        let server = FakeServer::start(Behaviour::Signed(id, key_type, secret));
        let id = id.to_string();
        let o = ntpdate(&["-d", "-p", "2", "-a", &id, "-k", keys.arg(), &server.arg()]);
        assert_eq!(
            o.code,
            ExitCode::SUCCESS,
            "{key_type}: {}{}",
            o.stdout,
            o.stderr
        );
        assert!(o.stderr.is_empty(), "{key_type}: {}", o.stderr);
        let passed = "receive(127.0.0.1): authentication passed\n";
        assert_eq!(
            o.stdout.matches(passed).count(),
            2,
            "{key_type}: {}",
            o.stdout
        );
        assert!(
            o.stdout.contains(", trust 000\n"),
            "{key_type}: {}",
            o.stdout
        );
        assert!(
            o.stdout.contains("adjust time server 127.0.0.1 offset +0."),
            "{key_type}: {}",
            o.stdout
        );
    }
}

#[test]
fn a_wrong_secret_makes_the_server_untrusted_and_the_clock_untouched() {
    let keys = KeysFile::new(CLIENT_KEYS, 0o600);
    // The server has key 4 with the secret of the client's key 1.
    let server = FakeServer::start(Behaviour::Signed(4, KeyType::Md5, MD5_SECRET));
    let o = ntpdate(&[
        "-u",
        "-d",
        "-p",
        "2",
        "-a",
        "4",
        "-k",
        keys.arg(),
        &server.arg(),
    ]);
    assert_eq!(o.code, ExitCode::FAILURE, "{}{}", o.stdout, o.stderr);
    assert!(o.clock.untouched());
    for expected in [
        "receive(127.0.0.1): authentication failed: crypto-NAK\n",
        ", trust 003\n",
        "127.0.0.1: Server dropped: Server is untrusted\n",
    ] {
        assert!(
            o.stdout.contains(expected),
            "no {expected:?} in:\n{}",
            o.stdout
        );
    }
    assert!(
        o.stderr
            .ends_with(": no server suitable for synchronization found\n"),
        "{}",
        o.stderr
    );
    // Without -d the clock-setting run fails the same way, quietly.
    let o = ntpdate(&["-u", "-p", "1", "-a", "4", "-k", keys.arg(), &server.arg()]);
    assert_eq!(o.code, ExitCode::FAILURE);
    assert!(o.clock.untouched() && o.stdout.is_empty(), "{}", o.stdout);
}

#[test]
fn replies_without_a_mac_are_untrusted_when_authenticating() {
    let keys = KeysFile::new(CLIENT_KEYS, 0o600);
    let o = assert_rejected_with(
        Behaviour::Good(0.0),
        &["-a", "1", "-k", keys.arg()],
        "127.0.0.1: Server dropped: Server is untrusted",
    );
    assert!(
        o.stdout
            .contains("receive(127.0.0.1): authentication failed: no MAC\n"),
        "{}",
        o.stdout
    );
    // The same server is fine without -a.
    let server = FakeServer::start(Behaviour::Good(0.0));
    let o = ntpdate(&["-q", "-p", "1", &server.arg()]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
}

#[test]
fn key_problems_exit_1_with_classic_messages_before_any_request() {
    let server = FakeServer::start(Behaviour::Good(0.0));
    let keys = KeysFile::new(CLIENT_KEYS, 0o600);
    let cases = [
        (
            vec!["-a", "7", "-k", keys.arg()],
            vec!["authentication key 7 unknown".to_owned()],
        ),
        (
            vec!["-a", "1", "-k", "/dev/null"],
            vec!["authentication key 1 unknown".to_owned()],
        ),
        (
            vec!["-a", "1", "-k", "/nonexistent/ntp.keys"],
            vec![
                "/nonexistent/ntp.keys: No such file or directory".to_owned(),
                "no key file </nonexistent/ntp.keys>, exiting".to_owned(),
            ],
        ),
        (
            vec!["-a", "5", "-k", keys.arg()],
            vec![format!(
                "{}:6:3: authentication key 5 has type RMD160, which is not supported \
                 (supported: MD5, SHA1, SHA256, SHA384, SHA512, AES128CMAC)",
                keys.arg()
            )],
        ),
    ];
    for (args, lines) in cases {
        let mut all = vec!["-u"];
        all.extend(args.iter().copied());
        let addr = server.arg();
        all.push(&addr);
        let o = ntpdate(&all);
        assert_eq!(o.code, ExitCode::FAILURE, "{args:?}");
        let expected: String = lines
            .iter()
            .map(|l| format!("{}{l}\n", fixed_prefix()))
            .collect();
        assert_eq!(o.stderr, expected, "{args:?}");
        assert!(
            o.clock.untouched() && o.stdout.is_empty(),
            "{args:?}: {}",
            o.stdout
        );
    }
    let bad = KeysFile::new("1 MD5 ok\n2 MD5 0123456789abcdef0123456789\n1x\n", 0o600);
    let o = ntpdate(&["-u", "-a", "1", "-k", bad.arg(), &server.arg()]);
    assert_eq!(o.code, ExitCode::FAILURE);
    assert!(
        o.stderr.contains(&format!(
            "{}:3:1: key id \"1x\" is not a number\n",
            bad.arg()
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .ends_with(&format!("no key file <{}>, exiting\n", bad.arg())),
        "{}",
        o.stderr
    );
    assert_eq!(server.requests(), 0, "no request without a usable key");
}

#[test]
fn a_world_readable_keys_file_is_used_with_a_warning() {
    let keys = KeysFile::new(CLIENT_KEYS, 0o644);
    let server = FakeServer::start(Behaviour::Signed(1, KeyType::Md5, MD5_SECRET));
    // -e is accepted and changes nothing.
    let o = ntpdate(&[
        "-q",
        "-p",
        "1",
        "-e",
        "0.0001",
        "-a",
        "1",
        "-k",
        keys.arg(),
        &server.arg(),
    ]);
    assert_eq!(o.code, ExitCode::SUCCESS, "{}{}", o.stdout, o.stderr);
    assert_eq!(
        o.stderr,
        format!(
            "{}key file {} is readable by all users (mode 0644); it holds secrets and should \
             be readable only by its owner (chmod go-rwx)\n",
            fixed_prefix(),
            keys.arg()
        )
    );
    assert!(
        o.stdout.contains("adjust time server 127.0.0.1"),
        "{}",
        o.stdout
    );
}

#[test]
fn verbose_logs_the_version_first() {
    let server = FakeServer::start(Behaviour::Good(0.0));
    let o = ntpdate(&["-q", "-v", "-p", "1", &server.arg()]);
    let first = o.stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "{}ntpdate (sundial) {}",
            fixed_prefix(),
            env!("CARGO_PKG_VERSION")
        )
    );
}
