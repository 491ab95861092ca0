//! `ntpq` end to end on host loopback: the real client against sundial's own responder
//! (`sundial_proto::control::respond`) on a free port, with a fixed clock, no DNS.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use sundial_proto::control::{
    AssociationId, ControlAccess, ControlSnapshot, PeerVars, SystemVars, respond,
};
use sundial_proto::counters::DropReason;
use sundial_proto::packet::{Leap, ReferenceId};
use sundial_proto::select::Tally;
use sundial_proto::time::{NtpTimestamp, UnixTime};

use super::dns::ReverseDns;
use super::{Context, NtpqArgs, run};

/// The clock ntpq sees in these tests: 2026-11-27T06:22:30Z.
const NOW: UnixTime = UnixTime::new(1_795_760_550, 0);

/// How the fake server treats requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Answer,
    Silent,
}

/// A mode 6 server on 127.0.0.1 at a free port, stopped on drop.
struct FakeServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    sequences: Arc<Mutex<Vec<u16>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    fn start(snapshot: ControlSnapshot, behaviour: Behaviour) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let sequences = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2, sequences2) = (stop.clone(), requests.clone(), sequences.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                requests2.fetch_add(1, Ordering::Relaxed);
                sequences2
                    .lock()
                    .unwrap()
                    .push(u16::from_be_bytes([buf[2], buf[3]]));
                if behaviour == Behaviour::Silent {
                    continue;
                }
                let now = NtpTimestamp::from_unix(NOW);
                let _ = respond(&buf[..len], ControlAccess::READ, &snapshot, now, &mut |d| {
                    let _ = socket.send_to(d, from);
                });
            }
        });
        Self {
            addr,
            stop,
            requests,
            sequences,
            thread: Some(thread),
        }
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

/// A `Write` whose contents the test reads afterwards.
#[derive(Clone, Default)]
struct Captured(Rc<RefCell<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
}

/// Runs ntpq with `args` (after the program name); returns (success, stdout, stderr).
fn ntpq(args: &[&str]) -> (bool, String, String) {
    let (out, err) = (Captured::default(), Captured::default());
    let mut ctx = Context {
        out: Box::new(out.clone()),
        err: Box::new(err.clone()),
        now: Box::new(|| NOW),
        dns: ReverseDns::default(),
    };
    let args = NtpqArgs::parse_args(std::iter::once("ntpq").chain(args.iter().copied()));
    let ok = run(&args, &mut ctx);
    (ok, out.text(), err.text())
}

fn at(seconds_before_now: u32) -> NtpTimestamp {
    NtpTimestamp::from_parts(
        NtpTimestamp::from_unix(NOW).seconds() - seconds_before_now,
        0,
    )
}

fn id(n: u16) -> AssociationId {
    AssociationId::new(n).unwrap()
}

/// The associations of the classic 4.2.8p15 example in ntpq-mode6.md §2.5.
fn classic_example() -> ControlSnapshot {
    let mut pool = PeerVars::new(id(61234), Ipv4Addr::UNSPECIFIED.into(), 0);
    pool.is_pool_prototype = true;
    pool.refid = ReferenceId::POOL;
    pool.srchost = Some("0.ubuntu.pool.ntp.org".to_owned());
    pool.event_count = 1;
    pool.event_code = 1;
    let mut sys_peer = PeerVars::new(id(61235), Ipv4Addr::new(192, 0, 2, 10).into(), 123);
    sys_peer.tally = Tally::SystemPeer;
    sys_peer.leap = Leap::NoWarning;
    sys_peer.stratum = 2;
    sys_peer.refid = ReferenceId::from_bytes([203, 0, 113, 5]);
    sys_peer.rec = at(35);
    (sys_peer.hpoll, sys_peer.ppoll) = (10, 10);
    sys_peer.reach = 0o377;
    (sys_peer.delay, sys_peer.offset, sys_peer.jitter) = (1.235e-3, -0.123e-3, 0.046e-3);
    let mut candidate = PeerVars::new(id(61236), Ipv4Addr::new(198, 51, 100, 20).into(), 123);
    candidate.tally = Tally::Candidate;
    candidate.stratum = 1;
    candidate.refid = ReferenceId::from_bytes(*b"GPS\0");
    candidate.rec = at(3000);
    (candidate.hpoll, candidate.ppoll) = (10, 10);
    candidate.reach = 0o177;
    (candidate.delay, candidate.offset, candidate.jitter) = (25.123e-3, 1.988e-3, 0.877e-3);
    let mut local = PeerVars::new(id(61237), Ipv4Addr::new(127, 127, 1, 0).into(), 123);
    local.is_refclock = true;
    local.srchost = Some("LOCAL(0)".to_owned());
    local.stratum = 10;
    local.refid = ReferenceId::LOCL;
    local.rec = at(10);
    let mut ephemeral = PeerVars::new(id(61238), Ipv4Addr::new(192, 0, 2, 99).into(), 123);
    ephemeral.configured = false; // neither configured nor reachable: -p hides it
    ControlSnapshot {
        system: SystemVars {
            stratum: 3,
            leap: Leap::NoWarning,
            ..SystemVars::default()
        },
        peers: vec![pool, sys_peer, candidate, local, ephemeral],
    }
}

#[test]
fn peers_billboard_is_the_classic_example_byte_for_byte() {
    let server = FakeServer::start(classic_example(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, out, err) = ntpq(&["-pn", "--port", &port, "127.0.0.1"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "     remote           refid      st t when poll reach   delay   offset  jitter
==============================================================================
 0.ubuntu.pool.n .POOL.          16 p    -   64    0    0.000   +0.000   0.000
*192.0.2.10      203.0.113.5      2 u   35 1024  377    1.235   -0.123   0.046
+198.51.100.20   .GPS.            1 u  50m 1024  177   25.123   +1.988   0.877
 127.127.1.0     .LOCL.          10 l   10   64    0    0.000   +0.000   0.000
"
    );
    let (_, all, _) = ntpq(&["-c", "lpeers", "-n", "--port", &port, "127.0.0.1"]);
    assert!(
        all.contains("\n 192.0.2.99      .INIT.          16 u"),
        "{all}"
    );
}

#[test]
fn associations_and_readvar_print_like_classic_ntpq() {
    let server = FakeServer::start(classic_example(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, out, err) = ntpq(&[
        "-c",
        "as",
        "-c",
        "rv 0 leap,stratum",
        "--port",
        &port,
        "127.0.0.1",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "
ind assid status  conf reach auth condition  last_event cnt
===========================================================
  1 61234  8811   yes  none  none    reject    mobilize  1
  2 61235  9600   yes   yes  none  sys.peer              0
  3 61236  9400   yes   yes  none candidate              0
  4 61237  8000   yes    no  none    reject              0
  5 61238  0000    no    no  none    reject              0
leap=00, stratum=3
"
    );
    let (_, peer, _) = ntpq(&[
        "-c",
        "rv 61235 srcadr,reach,rec",
        "--port",
        &port,
        "127.0.0.1",
    ]);
    assert_eq!(
        peer,
        "srcadr=192.0.2.10, rec=eeb3a003.00000000  Fri, Nov 27 2026  6:21:55.000,\nreach=377\n"
    );
}

#[test]
fn server_errors_print_their_code_and_fail() {
    let server = FakeServer::start(classic_example(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, out, err) = ntpq(&[
        "-c",
        "rv 999",
        "-c",
        "rv 0 nosuchvar",
        "--port",
        &port,
        "127.0.0.1",
    ]);
    assert!(!ok);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "***Server error code BADASSOC\n***Server error code UNKNOWNVAR\n"
    );
}

#[test]
fn a_silent_server_times_out_after_one_retry() {
    let server = FakeServer::start(classic_example(), Behaviour::Silent);
    let port = server.addr.port().to_string();
    let (ok, _, err) = ntpq(&["-t", "0.2", "-c", "rv", "--port", &port, "127.0.0.1"]);
    assert!(!ok);
    assert_eq!(err, "***Request timed out\n");
    assert_eq!(server.requests.load(Ordering::Relaxed), 2);
    let sequences = server.sequences.lock().unwrap().clone();
    assert_ne!(sequences[0], sequences[1], "each try has its own sequence");
}

#[test]
fn a_closed_port_is_a_socket_error() {
    let port = {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.local_addr().unwrap().port()
    };
    let (ok, _, err) = ntpq(&[
        "-t",
        "1",
        "-c",
        "rv",
        "--port",
        &port.to_string(),
        "127.0.0.1",
    ]);
    assert!(!ok);
    assert_eq!(err, "***Socket error; probably ntpd is not running\n");
}

#[test]
fn an_empty_association_list_is_reported_not_failed() {
    let server = FakeServer::start(ControlSnapshot::default(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, out, err) = ntpq(&["-p", "--port", &port, "127.0.0.1"]);
    assert!(ok);
    assert_eq!(out, "");
    assert_eq!(err, "No association ID's returned\n");
}

#[test]
fn several_hosts_are_labelled() {
    let server = FakeServer::start(classic_example(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, out, _) = ntpq(&[
        "-c",
        "rv 0 stratum",
        "--port",
        &port,
        "127.0.0.1",
        "127.0.0.1",
    ]);
    assert!(ok);
    assert_eq!(
        out,
        "server=127.0.0.1 stratum=3\nserver=127.0.0.1 stratum=3\n"
    );
}

#[test]
fn json_output_has_one_document_per_command() {
    let server = FakeServer::start(classic_example(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, out, _) = ntpq(&[
        "--json",
        "-pn",
        "-c",
        "rv 0 stratum",
        "--port",
        &port,
        "127.0.0.1",
    ]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with(r#"{"host":"127.0.0.1","command":"peers","peers":[{"associd":61234,"tally":" ","remote":"0.ubuntu.pool.ntp.org","refid":".POOL.","st":16,"t":"p","when":null,"poll":64,"reach":0,"#), "{}", lines[0]);
    assert!(lines[0].contains(r#""tally":"*","remote":"192.0.2.10","refid":"203.0.113.5","st":2,"t":"u","when":35,"poll":1024,"reach":255,"delay":1.235,"offset":-0.123,"jitter":0.046"#), "{}", lines[0]);
    assert_eq!(
        lines[1],
        r#"{"host":"127.0.0.1","command":"readvar","associd":0,"status":0,"variables":{"stratum":3}}"#
    );
}

#[test]
fn address_family_flags_restrict_resolution() {
    let server = FakeServer::start(classic_example(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, _, err) = ntpq(&["-6", "-c", "rv", "--port", &port, "127.0.0.1"]);
    assert!(!ok);
    assert_eq!(err, "***Can't find host 127.0.0.1\n");
    let (ok, out, _) = ntpq(&["-4", "-c", "rv 0 stratum", "--port", &port, "127.0.0.1"]);
    assert!(ok);
    assert_eq!(out, "stratum=3\n");
}

/// A snapshot whose counters come from a real `Server` that saw a few good and bad datagrams.
fn with_counters() -> ControlSnapshot {
    use sundial_proto::packet::{Mode, NtpHeader};
    use sundial_proto::server::{Policy, RequestMeta, Server};
    use sundial_proto::system::SystemState;
    use sundial_proto::time::{Log2Seconds, MonoTime};

    let server = Server::default();
    let meta = RequestMeta {
        source: "192.0.2.7:40000".parse().unwrap(),
        destination: None,
        receive_time: NtpTimestamp::from_unix(NOW),
        monotonic: MonoTime::ZERO,
        truncated: false,
        client: None,
    };
    let state = SystemState::unsynchronized(Log2Seconds::new(-20));
    let mut request = [0u8; 48];
    NtpHeader::new(4, Mode::Client).emit(&mut request);
    let mut out = [0u8; 64];
    for bytes in [&request[..], &request[..20], &[0x3b; 48][..]] {
        let _ = server.handle(
            &Policy::new(&Default::default()),
            &meta,
            bytes,
            &state,
            &mut out,
            || NtpTimestamp::from_unix(NOW),
        );
    }
    let mut snapshot = classic_example();
    snapshot.system.uptime = 3725;
    snapshot.system.counters = server.counters().snapshot();
    snapshot
}

#[test]
fn sysstats_prints_ntpsecs_table_then_every_drop_reason() {
    let server = FakeServer::start(with_counters(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, out, err) = ntpq(&["-c", "sysstats", "--port", &port, "127.0.0.1"]);
    assert!(ok, "{err}");
    assert_eq!(err, "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 17 + 2 + DropReason::ALL.len(), "{out}");
    assert_eq!(lines[0], "uptime:                     01:02:05");
    assert_eq!(
        lines[2],
        "sysstats reset:             01:02:05      01:02:05"
    );
    assert_eq!(
        lines[3],
        "packets received:                  3             3     1242.0s/p     1242.0s/p"
    );
    assert!(out.contains("\ncurrent version:                   2             2"));
    // The 20-octet request is too short; the `0x3b` one has version 7.
    assert!(out.contains("\nbad length or format:              2             2"));
    assert!(out.contains("\nprocessed for time:                1             1"));
    assert!(out.contains("\nreplies sent:                      1\n"));
    assert!(out.contains("\ndropped:                           2\n"));
    assert!(out.contains("\n  too-short:                       1\n"));
    assert!(out.contains("\n  bad-version:                     1\n"));
    assert!(out.contains("\n  rate-limited:                    0\n"));
}

#[test]
fn sysstats_as_json_carries_every_counter() {
    let server = FakeServer::start(with_counters(), Behaviour::Answer);
    let port = server.addr.port().to_string();
    let (ok, out, _) = ntpq(&["--json", "-c", "sysstats", "--port", &port, "127.0.0.1"]);
    assert!(ok);
    let line = out.trim();
    assert!(
        line.starts_with(
            r#"{"host":"127.0.0.1","command":"sysstats","variables":{"ss_uptime":3725,"#
        ),
        "{line}"
    );
    for item in [
        r#""ss_received":3"#,
        r#""ss_received_r":3"#,
        r#""ss_dropped_too_short":1"#,
        r#""ss_dropped_bad_version":1"#,
    ] {
        assert!(line.contains(item), "{item} in {line}");
    }
}

/// A mode 6 server that answers like a malicious one: terminal escape sequences, CR/LF and BEL
/// in its system variables, a peer's host name and its refid. One association, 0x1234.
struct HostileServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The hostile system variables: retitle the terminal, clear the screen, forge a line.
const HOSTILE_SYSTEM: &[u8] = b"version=\"ntpd \x1b]0;pwned\x07\x1b[2J\", \
    processor=\"x86\r\nfake: line\", system=\"Linux\x1b[31m\", stratum=2";

/// The hostile peer variables.
const HOSTILE_PEER: &[u8] = b"srcadr=192.0.2.1, srcport=123, srchost=\"\x1b[2Jevil\", \
    refid=\x1b[5mX, stratum=2, hpoll=6, ppoll=6, reach=377, delay=1.0, offset=0.5, jitter=0.1, \
    rec=00000000.00000000, hmode=3";

impl HostileServer {
    fn start() -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if len < 12 {
                    continue;
                }
                let association = u16::from_be_bytes([buf[6], buf[7]]);
                let data: &[u8] = match (buf[1] & 0x1f, association) {
                    (1, 0) => &[0x12, 0x34, 0x96, 0x14],
                    (2, 0) => HOSTILE_SYSTEM,
                    (1 | 2, 0x1234) => HOSTILE_PEER,
                    _ => continue,
                };
                let mut reply = buf[..12].to_vec();
                reply[1] |= 0x80;
                reply[4..6].copy_from_slice(&[0x06, 0x18]);
                reply[8..10].copy_from_slice(&[0, 0]);
                reply[10..12].copy_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
                reply.extend_from_slice(data);
                reply.resize(reply.len().next_multiple_of(4), 0);
                let _ = socket.send_to(&reply, from);
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// No byte of `out` is a control character other than the newlines ntpq writes itself.
fn assert_inert(out: &str, what: &str) {
    let bad: Vec<char> = out
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(bad.is_empty(), "{what} printed {bad:?}:\n{out:?}");
}

#[test]
fn control_characters_from_a_hostile_server_are_printed_escaped() {
    let server = HostileServer::start();
    let port = server.addr.port().to_string();

    let (ok, out, err) = ntpq(&["-c", "rv", "--port", &port, "127.0.0.1"]);
    assert!(ok, "{err}");
    assert_inert(&out, "rv");
    assert!(
        out.contains(r#"version="ntpd \x1b]0;pwned\x07\x1b[2J""#),
        "{out}"
    );
    assert!(
        out.contains(r#"processor="x86\x0d\x0afake: line""#),
        "{out}"
    );
    assert!(out.contains(r#"system="Linux\x1b[31m""#), "{out}");

    let (ok, out, err) = ntpq(&["-c", "rv 4660", "--port", &port, "127.0.0.1"]);
    assert!(ok, "{err}");
    assert_inert(&out, "rv of the peer");
    assert!(out.contains(r#"srchost="\x1b[2Jevil""#), "{out}");

    for args in [["-p", "-n"], ["-p", "-w"]] {
        let (ok, out, err) = ntpq(&[args[0], args[1], "--port", &port, "127.0.0.1"]);
        assert!(ok, "{err}");
        assert_inert(&out, "the billboard");
        assert!(out.contains(r"\x1b"), "{out}");
    }

    let (ok, out, err) = ntpq(&["--json", "-p", "-c", "rv", "--port", &port, "127.0.0.1"]);
    assert!(ok, "{err}");
    assert_inert(&out, "--json");
    assert!(out.contains(r#"\\x1b]0;pwned\\x07"#), "{out}");
}
