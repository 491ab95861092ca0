//! NTS under abuse, on loopback, against sundial's NTS server:
//!
//! * a flood of half-open and bogus TLS connections to the key-exchange port from one address
//!   (127.0.0.2) while chronyd keeps synchronising over NTS, and a second chronyd that needs a
//!   key exchange during the flood still gets one (the per-client limits leave it room);
//!   refusals are counted in the log, in Prometheus metrics and in `ntpq` variables;
//! * oversized and malformed NTS-KE records inside TLS get an NTS-KE Error record (or a
//!   close) and nothing else, and the server goes on serving key exchanges;
//! * NTS requests with bad cookies or bad authenticators at a high rate get NTS NAKs (RFC 8915
//!   §5.7: kiss code NTSN, the request's unique identifier, no authenticator), never a reply
//!   longer than the request; the server counts them apart and its memory stays bounded (RSS
//!   printed).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use sundial::nts::client::{KeRequest, exchange};
use sundial::nts::tls::client_config;
use sundial_proto::nts::ef::{self, UID_LEN};
use sundial_proto::nts::ke;
use sundial_proto::nts::{Aead, AeadKey};

use crate::nts::{Pki, chronyd_nts_client, counter, nts_server};
use crate::support::process;
use crate::support::{Daemon, TempDir, eventually};

/// How long a chronyd gets to select its NTS server.
const SELECTS_WITHIN: Duration = Duration::from_secs(60);

/// How long the flood lasts at most (the test stops it sooner).
const FLOOD_LIFETIME_S: &str = "120";

/// A TCP port free right now on 127.0.0.1.
fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

/// argv: host, port, source address, lifetime in seconds. Keeps 64 connections open to the
/// port from the source address: every other one sends nothing (half-open), the rest send
/// random bytes or a TLS record header announcing 64 KiB; reconnects when the server closes.
/// Prints the connections made when its lifetime ends.
const FLOOD_SCRIPT: &str = r#"
import os, socket, sys, time
host, port, src, life = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
end = time.monotonic() + life
conns, made = [], 0
while time.monotonic() < end:
    while len(conns) < 64 and time.monotonic() < end:
        s = socket.socket()
        s.settimeout(1)
        try:
            s.bind((src, 0))
            s.connect((host, port))
            made += 1
            if made % 4 == 1:
                s.send(os.urandom(300))
            elif made % 4 == 3:
                s.send(bytes([0x16, 3, 1, 0xff, 0xff]) + os.urandom(200))
            s.setblocking(False)
            conns.append(s)
        except OSError:
            s.close()
    alive = []
    for s in conns:
        try:
            if s.recv(4096) == b"":
                s.close()
                continue
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        alive.append(s)
    conns = alive
    time.sleep(0.02)
print(made, flush=True)
"#;

struct Flood {
    child: Child,
}

impl Flood {
    fn start(ke_port: u16, log: &std::path::Path) -> Self {
        let mut cmd = process::notime("python3");
        cmd.args(["-c", FLOOD_SCRIPT, "127.0.0.1", &ke_port.to_string()])
            .args(["127.0.0.2", FLOOD_LIFETIME_S]);
        Self {
            child: process::spawn_logged(&mut cmd, log),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = process::stop(&mut self.child, Duration::from_secs(5));
    }
}

/// `GET /metrics` from the metrics listener.
fn metrics(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// The value of the sample line starting with `series ` in a metrics body.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1.0)
}

fn selected(client: &crate::support::peers::Peer) -> bool {
    client
        .chronyc_sources()
        .lines()
        .any(|l| l.starts_with("^*"))
}

#[test]
fn a_connection_flood_from_one_address_leaves_key_exchange_and_time_service_working() {
    let pki = Pki::generate();
    let ke_port = free_tcp_port();
    let metrics_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let ntpd = Daemon::start_with(
        format!(
            "{}nts enable\nnts cert {}\nnts key {}\nnts port {ke_port}\n",
            crate::support::LOCAL_CLOCK_CONFIG,
            pki.show("server.crt"),
            pki.show("server.key"),
        ),
        &["--metrics", &metrics_addr.to_string()],
    );
    let ca = pki.show("ca.crt");
    let first = chronyd_nts_client(&ca, ntpd.port(), ke_port);
    assert!(
        eventually(SELECTS_WITHIN, || selected(&first)),
        "{}\n{}",
        first.log(),
        ntpd.log()
    );
    let dir = TempDir::new("nts-flood");
    let flood = Flood::start(ke_port, &dir.path().join("flood.log"));
    std::thread::sleep(Duration::from_secs(3));
    // A client that needs a key exchange now, while the flood holds what it may.
    let started = Instant::now();
    let second = chronyd_nts_client(&ca, ntpd.port(), ke_port);
    let second_selected = eventually(SELECTS_WITHIN, || selected(&second));
    let took = started.elapsed();
    let first_still = selected(&first);
    let authdata = second.chronyc(&["-n", "authdata"]);
    let body = metrics(metrics_addr);
    drop(flood);
    let log = ntpd.stop().log;
    assert!(
        second_selected,
        "no key exchange for a new client during the flood:\n{}\n{log}",
        second.log()
    );
    eprintln!("a new NTS client selected sundial {took:?} into the flood");
    assert!(
        first_still,
        "the first client lost sundial:\n{}",
        first.log()
    );
    assert!(authdata.contains("NTS"), "{authdata}");
    let refused = sample(&body, r#"ntp_nts_ke_total{role="server",result="refused"}"#);
    let good = sample(&body, r#"ntp_nts_ke_total{role="server",result="good"}"#);
    let failed = sample(&body, r#"ntp_nts_ke_total{role="server",result="failed"}"#);
    eprintln!("key exchanges during the flood: {good} good, {failed} failed, {refused} refused");
    assert!(refused > 0.0, "no refusal counted:\n{body}");
    assert!(good >= 2.0, "{body}");
    assert!(
        failed > 0.0,
        "bogus connections not counted as failed:\n{body}"
    );
    assert!(log.contains("NTS-KE: served"), "{log}");
    assert!(counter(&log, "NTS repl") > 0, "{log}");
}

/// A TLS connection to the key-exchange server, verified against the test CA.
fn tls_to(pki: &Pki, ke_port: u16) -> StreamOwned<ClientConnection, TcpStream> {
    let config: Arc<rustls::ClientConfig> =
        client_config(&pki.path("ca.crt"), false).expect("client config");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = ClientConnection::new(config, name).expect("connection");
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, ke_port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    StreamOwned::new(conn, tcp)
}

/// Sends `bytes` in TLS and returns what the server sent before it closed.
fn ke_exchange_raw(pki: &Pki, ke_port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut tls = tls_to(pki, ke_port);
    let _ = tls.write_all(bytes);
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    out
}

/// One NTS-KE record.
fn record(critical: bool, kind: u16, body: &[u8]) -> Vec<u8> {
    let mut r = (kind | if critical { 0x8000 } else { 0 })
        .to_be_bytes()
        .to_vec();
    r.extend_from_slice(&u16::try_from(body.len()).expect("body").to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// The NTS-KE Error record with `code`, then End of Message.
fn error_response(code: u16) -> Vec<u8> {
    [record(true, 2, &code.to_be_bytes()), record(true, 0, &[])].concat()
}

#[test]
fn oversized_and_malformed_key_exchange_records_get_an_error_and_the_server_goes_on() {
    let pki = Pki::generate();
    let ke_port = free_tcp_port();
    let ntpd = nts_server(&pki, ke_port, "");
    let end = record(true, 0, &[]);
    let next_protocol = record(true, 1, &[0, 0]);
    let aead = record(false, 4, &15u16.to_be_bytes());
    let filler = record(false, 0x4321, &[0x55; 4000]);
    let oversized: Vec<u8> = std::iter::repeat_n(filler.as_slice(), 5)
        .collect::<Vec<_>>()
        .concat();
    let cases: [(&str, Vec<u8>, Option<u16>); 5] = [
        (
            "a message longer than the limit",
            [oversized, end.clone()].concat(),
            Some(1),
        ),
        (
            "an unknown critical record",
            [
                next_protocol.clone(),
                record(true, 0x4321, &[1, 2]),
                aead.clone(),
                end.clone(),
            ]
            .concat(),
            Some(0),
        ),
        ("no next protocol", [aead.clone(), end].concat(), Some(1)),
        (
            "an End of Message with a body",
            [next_protocol, aead, record(true, 0, &[0, 0])].concat(),
            Some(1),
        ),
        // A record header cut short, then the client closes: nothing to answer.
        ("a truncated record", vec![0x80, 0x01, 0x00], None),
    ];
    for (what, bytes, code) in &cases {
        let answer = ke_exchange_raw(&pki, ke_port, bytes);
        match code {
            Some(code) => assert_eq!(answer, error_response(*code), "{what}"),
            None => assert!(answer.is_empty(), "{what}: {answer:?}"),
        }
    }
    // The server still serves key exchanges.
    let request = KeRequest {
        id: 1,
        host: "127.0.0.1".into(),
        addr: Ipv4Addr::LOCALHOST.into(),
        port: ke_port,
        ca: pki.path("ca.crt"),
        noval: false,
        ask: None,
    };
    let done = exchange(&request).expect("a good key exchange after the bad ones");
    assert_eq!(done.cookies.len(), ke::COOKIES_PER_EXCHANGE);
    let log = ntpd.stop().log;
    assert!(log.contains("bad request: message longer than"), "{log}");
    assert!(log.contains("NTS-KE: served 1, failed 5"), "{log}");
}

/// The resident set of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// An NTS client request: `cookie`, seven placeholders, sealed under `c2s`.
fn nts_request(uid: &[u8; UID_LEN], cookie: &[u8], c2s: &AeadKey, n: u64) -> Vec<u8> {
    let mut out = vec![0u8; ef::MAX_PACKET_LEN];
    out[0] = 0x23; // NTPv4, client
    out[40..48].copy_from_slice(&n.to_be_bytes());
    let mut nonce = [0u8; ef::NONCE_LEN];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    let len = ef::write_request(&mut out, uid, cookie, 7, c2s, &nonce).expect("request");
    out.truncate(len);
    out
}

#[test]
fn bad_cookies_at_a_high_rate_get_naks_never_larger_than_the_request_and_memory_stays_bounded() {
    const ROUNDS: u64 = 20_000;
    let pki = Pki::generate();
    let ke_port = free_tcp_port();
    let ntpd = nts_server(&pki, ke_port, "");
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, ntpd.port()));
    // Real keys and cookies, to send good requests and good cookies with bad authenticators.
    let done = exchange(&KeRequest {
        id: 1,
        host: "127.0.0.1".into(),
        addr: Ipv4Addr::LOCALHOST.into(),
        port: ke_port,
        ca: pki.path("ca.crt"),
        noval: false,
        ask: None,
    })
    .expect("key exchange");
    let good_cookie = done.cookies[0].clone();
    let wrong_key = AeadKey::new(Aead::AesSivCmac256, &[7u8; 32]).expect("key");
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let rss_before = rss_kib(ntpd.pid());
    let (mut sent, mut naks, mut good, mut longer, mut bad_naks) = (0u64, 0u64, 0u64, 0u64, 0);
    let mut max_request = 0;
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    for n in 0..ROUNDS {
        let mut uid = [0u8; UID_LEN];
        uid[..8].copy_from_slice(&n.to_be_bytes());
        uid[8] = 0xa5;
        // Three in four: a cookie of random-looking bytes; one in eight: a real cookie under a
        // wrong key (the authenticator fails); one in eight: a good request.
        let request = match n % 8 {
            0 => nts_request(&uid, &good_cookie, &done.keys.c2s, n),
            1 => nts_request(&uid, &good_cookie, &wrong_key, n),
            _ => {
                let cookie: Vec<u8> = (0..good_cookie.len())
                    .map(|i| (n as usize * 31 + i * 7) as u8)
                    .collect();
                nts_request(&uid, &cookie, &done.keys.c2s, n)
            }
        };
        max_request = max_request.max(request.len());
        socket.send_to(&request, server).expect("send");
        sent += 1;
        // Replies are read after every hundred requests (a read waits for its timeout once
        // the socket is empty).
        if n % 100 != 99 {
            continue;
        }
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            let reply = &buf[..len];
            if len > max_request {
                longer += 1;
            }
            if reply[1] == 0 && &reply[12..16] == b"NTSN" {
                naks += 1;
                // RFC 8915 §5.7: the NAK echoes the unique identifier and carries nothing
                // else (no authenticator, no cookie): the header and that one field.
                let uid_field = &reply[48..50];
                if len != 48 + 4 + UID_LEN
                    || uid_field != ef::UNIQUE_IDENTIFIER.to_be_bytes()
                    || reply[52 + 8] != 0xa5
                {
                    bad_naks += 1;
                }
            } else {
                good += 1;
            }
        }
    }
    // The last replies.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < drain_until {
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            if len > max_request {
                longer += 1;
            }
            if buf[1] == 0 && &buf[12..16] == b"NTSN" {
                naks += 1;
            } else {
                good += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let rss_after = rss_kib(ntpd.pid());
    eprintln!(
        "{sent} NTS requests in {elapsed:?}: {naks} NAKs, {good} good replies; \
         RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    let log = ntpd.stop().log;
    assert_eq!(longer, 0, "replies longer than their requests");
    assert_eq!(bad_naks, 0, "NAKs not as RFC 8915 §5.7 says");
    assert!(naks > ROUNDS / 2, "{naks} NAKs of {ROUNDS}\n{log}");
    assert!(good > 0, "no good reply among the bad ones\n{log}");
    // The server keeps nothing per request: its memory does not grow with them.
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // Counted apart: cookies that did not open (3 in 4) and failed authenticators (1 in 8).
    let nak_count = counter(&log, "NTS NAK");
    let cookie_failures = counter(&log, "cookie(s) that did not open");
    assert!(nak_count >= naks, "{log}");
    assert!(
        cookie_failures > nak_count / 2 && cookie_failures < nak_count,
        "{cookie_failures} cookie failures of {nak_count} NAKs\n{log}"
    );
}
