//! The sender and the receivers.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sundial::nts::client::{KeRequest, exchange};
use sundial_proto::nts::ef::{self, NONCE_LEN, UID_LEN};
use sundial_proto::nts::{AeadKey, SessionKeys};
use sundial_proto::packet::{HEADER_LEN, Leap, Mode, NtpHeader, Packet};

use crate::config::Config;
use crate::report::Report;

/// How often a receiver checks whether the run is over.
const RECV_POLL: Duration = Duration::from_millis(20);

/// Receive buffer per receiver; larger replies are malformed for this purpose anyway.
const RECV_BUFFER: usize = 2048;

/// Layout of the transmit timestamp of every request: run tag | socket | sequence number.
const TAG_SHIFT: u32 = 48;
const SOCKET_SHIFT: u32 = 40;
const SEQUENCE_MASK: u64 = (1 << SOCKET_SHIFT) - 1;
const SOCKET_MASK: u64 = (1 << (TAG_SHIFT - SOCKET_SHIFT)) - 1;

/// Octet offset of the transmit timestamp in the NTP header (RFC 5905 §7.3).
const TRANSMIT_OFFSET: usize = 40;

/// Sends `config.rate` requests per second for `config.duration`, waits `config.drain` for late
/// replies and reports what came back.
///
/// # Errors
/// When the client sockets cannot be opened or connected, or a receiver thread cannot start.
pub fn run(config: &Config) -> io::Result<Report> {
    let total = config.total_requests();
    let socket_count = u64::try_from(config.sockets).unwrap_or(1);
    let per_socket = total.div_ceil(socket_count);
    let tag = run_tag();
    let nts = match &config.nts {
        Some((port, ca)) => Some(key_exchange(config.target, *port, ca)?),
        None => None,
    };
    let sockets = (0..config.sockets)
        .map(|_| open_socket(config.target).map(Arc::new))
        .collect::<io::Result<Vec<_>>>()?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::with_capacity(sockets.len());
    for (index, socket) in sockets.iter().enumerate() {
        let expect = Expected {
            tag,
            socket: u64::try_from(index).unwrap_or(0),
            per_socket,
        };
        let (socket, done) = (Arc::clone(socket), Arc::clone(&stop));
        let handle = thread::Builder::new()
            .name(format!("receiver-{index}"))
            .spawn(move || receive(&socket, &done, expect));
        match handle {
            Ok(handle) => receivers.push(handle),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }

    let sent = send_paced(config, &sockets, tag, total, nts.as_ref());
    thread::sleep(config.drain);
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for receiver in receivers {
        // A receiver only panics on a bug; its replies then count as lost.
        if let Ok(part) = receiver.join() {
            tally.add(&part);
        }
    }
    Ok(Report::new(
        config,
        sent.sent,
        sent.errors,
        sent.elapsed,
        &tally,
    ))
}

/// What NTS requests are made with: the session keys and cookies of one key exchange.
struct Nts {
    keys: SessionKeys,
    cookies: Vec<Vec<u8>>,
}

/// One key exchange with the target's address at TCP `port`, the certificate checked for that
/// address against `ca`.
fn key_exchange(target: SocketAddr, port: u16, ca: &std::path::Path) -> io::Result<Nts> {
    let done = exchange(&KeRequest {
        id: 0,
        host: target.ip().to_string(),
        addr: target.ip(),
        port,
        ca: ca.to_path_buf(),
        noval: false,
        ask: None,
    })
    .map_err(|e| io::Error::other(format!("NTS-KE: {e}")))?;
    if done.cookies.is_empty() {
        return Err(io::Error::other("NTS-KE: no cookies"));
    }
    Ok(Nts {
        keys: done.keys,
        cookies: done.cookies,
    })
}

/// Writes the NTS request number `k` into `out` after its header: a fixed unique identifier,
/// the exchange's cookies in turn (the server keeps no state per cookie, so reuse costs it
/// the same as a fresh one), no placeholders (the reply carries one fresh cookie, as for a
/// client whose jar is full), and an authenticator with a nonce of its own.
fn write_nts(out: &mut [u8], nts: &Nts, c2s: &AeadKey, k: u64) -> Option<usize> {
    let uid = [0x5au8; UID_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&k.to_be_bytes());
    let count = u64::try_from(nts.cookies.len()).unwrap_or(1).max(1);
    let cookie = nts.cookies.get(usize::try_from(k % count).unwrap_or(0))?;
    ef::write_request(out, &uid, cookie, 0, c2s, &nonce)
}

/// What the sender did.
struct Sent {
    sent: u64,
    errors: u64,
    elapsed: Duration,
}

/// Sends `total` requests round robin over `sockets`, `config.batch` at a time, each batch at its
/// scheduled time `start + first request / rate`. A sender that falls behind catches up without
/// sleeping rather than lowering the offered load.
fn send_paced(
    config: &Config,
    sockets: &[Arc<UdpSocket>],
    tag: u64,
    total: u64,
    nts: Option<&Nts>,
) -> Sent {
    let mut request = [0u8; ef::MAX_PACKET_LEN];
    let mut header = [0u8; HEADER_LEN];
    NtpHeader::new(config.version, Mode::Client).emit(&mut header);
    request[..HEADER_LEN].copy_from_slice(&header);
    let socket_count = u64::try_from(sockets.len()).unwrap_or(1);
    let (mut sent, mut errors) = (0, 0);
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        let due = start + schedule_offset(next, config.rate);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let end = total.min(next + config.batch);
        for k in next..end {
            let (index, sequence) = (k % socket_count, k / socket_count);
            let xmt = (tag << TAG_SHIFT) | (index << SOCKET_SHIFT) | sequence;
            request[TRANSMIT_OFFSET..HEADER_LEN].copy_from_slice(&xmt.to_be_bytes());
            let len = match nts {
                Some(nts) => write_nts(&mut request, nts, &nts.keys.c2s, k),
                None => Some(HEADER_LEN),
            };
            let datagram = len.and_then(|n| request.get(..n));
            let socket = usize::try_from(index).ok().and_then(|i| sockets.get(i));
            match socket.zip(datagram).map(|(s, d)| s.send(d)) {
                Some(Ok(_)) => sent += 1,
                _ => errors += 1,
            }
        }
        next = end;
    }
    // The last batch leaves at `duration - batch / rate`; the sending interval is the whole
    // planned duration unless the sender fell behind.
    let elapsed = start.elapsed().max(config.duration);
    Sent {
        sent,
        errors,
        elapsed,
    }
}

/// When request number `n` is due, counted from the start of the run.
fn schedule_offset(n: u64, rate: u64) -> Duration {
    let nanos = u128::from(n) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Which transmit timestamps a receiver accepts.
#[derive(Clone, Copy)]
struct Expected {
    tag: u64,
    socket: u64,
    per_socket: u64,
}

/// Reply counts of one receiver, or of all of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Replies to a request of this run, counted once per request.
    pub(crate) matched: u64,
    /// Further replies to a request that was already answered.
    pub(crate) duplicates: u64,
    /// Well-formed NTP packets that answer nothing we sent.
    pub(crate) unmatched: u64,
    /// Datagrams that are not NTP packets.
    pub(crate) malformed: u64,
    /// Matched replies with leap indicator 3 (unsynchronised server or kiss-o'-death).
    pub(crate) unsynchronised: u64,
}

impl Tally {
    fn add(&mut self, other: &Self) {
        self.matched += other.matched;
        self.duplicates += other.duplicates;
        self.unmatched += other.unmatched;
        self.malformed += other.malformed;
        self.unsynchronised += other.unsynchronised;
    }
}

/// Receives on `socket` until `stop`, matching replies by origin timestamp.
fn receive(socket: &UdpSocket, stop: &AtomicBool, expect: Expected) -> Tally {
    let mut seen = vec![0u64; usize::try_from(expect.per_socket.div_ceil(64)).unwrap_or(0)];
    let mut tally = Tally::default();
    let mut buf = [0u8; RECV_BUFFER];
    while !stop.load(Ordering::Relaxed) {
        // Timeouts and errors queued by ICMP (nobody listening yet) are all the same here.
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        let Ok(packet) = Packet::parse(buf.get(..len).unwrap_or_default()) else {
            tally.malformed += 1;
            continue;
        };
        let origin = packet.header.origin_timestamp.to_bits();
        let sequence = origin & SEQUENCE_MASK;
        let ours = packet.header.mode == Mode::Server
            && origin >> TAG_SHIFT == expect.tag
            && (origin >> SOCKET_SHIFT) & SOCKET_MASK == expect.socket
            && sequence < expect.per_socket;
        let slot = usize::try_from(sequence / 64)
            .ok()
            .and_then(|i| seen.get_mut(i));
        let Some(word) = slot.filter(|_| ours) else {
            tally.unmatched += 1;
            continue;
        };
        let bit = 1 << (sequence % 64);
        if *word & bit != 0 {
            tally.duplicates += 1;
            continue;
        }
        *word |= bit;
        tally.matched += 1;
        if packet.header.leap == Leap::Unsynchronized {
            tally.unsynchronised += 1;
        }
    }
    tally
}

/// A client socket bound to the loopback address of the target's family and connected to it.
fn open_socket(target: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (Ipv6Addr::LOCALHOST, 0).into()
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(RECV_POLL))?;
    Ok(socket)
}

/// A 16-bit tag that differs between runs, so replies to an earlier run are never counted. The
/// top bit is set: no request has an all-zero transmit timestamp.
fn run_tag() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = u64::from(nanos ^ std::process::id().rotate_left(16));
    (mixed & 0x7fff) | 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Parsed;

    /// A server thread that answers every request with a mode 4 packet echoing its transmit
    /// timestamp, sends every tenth reply twice, and sends one packet that answers nothing. It
    /// stops after `idle` without requests.
    fn echo_server(idle: Duration) -> (SocketAddr, thread::JoinHandle<u64>) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        socket.set_read_timeout(Some(idle)).expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let handle = thread::spawn(move || {
            let mut answered = 0u64;
            let mut buf = [0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                let Ok(request) = Packet::parse(&buf[..len]) else {
                    continue;
                };
                let mut reply = NtpHeader::new(request.header.version, Mode::Server);
                reply.stratum = 2;
                reply.origin_timestamp = request.header.transmit_timestamp;
                let mut out = [0u8; HEADER_LEN];
                reply.emit(&mut out);
                let copies = if answered % 10 == 0 { 2 } else { 1 };
                for _ in 0..copies {
                    socket.send_to(&out, from).expect("send");
                }
                if answered == 0 {
                    let mut stray = reply;
                    stray.origin_timestamp = sundial_proto::time::NtpTimestamp::from_bits(42);
                    stray.emit(&mut out);
                    socket.send_to(&out, from).expect("send");
                    socket.send_to(&[1, 2, 3], from).expect("send");
                }
                answered += 1;
            }
            answered
        });
        (addr, handle)
    }

    fn config(line: &str) -> Config {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        match Config::from_args(&args) {
            Ok(Parsed::Run(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_are_matched_once_and_strays_counted_apart() {
        let (addr, server) = echo_server(Duration::from_millis(500));
        let c = config(&format!(
            "--target {addr} --rate 2000 --duration 0.2 --sockets 3 --drain-ms 300"
        ));
        let report = run(&c).expect("run");
        let answered = server.join().expect("server");
        assert_eq!(report.sent, 400);
        assert_eq!(answered, 400);
        assert_eq!(report.tally.matched, 400);
        assert_eq!(report.tally.duplicates, 40);
        assert_eq!(report.tally.unmatched, 1);
        assert_eq!(report.tally.malformed, 1);
        assert_eq!(report.tally.unsynchronised, 0);
        assert!(report.loss_percent().abs() < 1e-9);
    }

    #[test]
    fn a_silent_target_means_total_loss_not_a_hang() {
        // Bind and drop: nothing listens on this port any more.
        let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let c = config(&format!(
            "--target 127.0.0.1:{port} --rate 1000 --duration 0.1 --drain-ms 50"
        ));
        let started = Instant::now();
        let report = run(&c).expect("run");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(report.tally.matched, 0);
        assert_eq!(report.sent + report.send_errors, 100);
        assert!((report.loss_percent() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn pacing_spreads_requests_over_the_duration() {
        assert_eq!(schedule_offset(0, 1000), Duration::ZERO);
        assert_eq!(schedule_offset(500, 1000), Duration::from_millis(500));
        assert_eq!(schedule_offset(3, 40_000), Duration::from_nanos(75_000));
    }

    #[test]
    fn run_tags_never_make_a_zero_timestamp() {
        let tag = run_tag();
        assert!((0x8000..=0xffff).contains(&tag));
    }
}
