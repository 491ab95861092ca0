//! A broken or hostile upstream server: it answers every request, but each reply is wrong in
//! one way sundial must reject.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sundial_proto::packet::{HEADER_LEN, Leap, Mode, NtpHeader, ReferenceId};
use sundial_proto::time::{Log2Seconds, NtpShort, NtpTimestamp};

use crate::support::sntp::now;

/// How a reply is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// The origin timestamp is not the request's transmit timestamp (a spoofed reply).
    WrongOrigin,
    /// Receive and transmit timestamps are zero.
    ZeroTimestamps,
    /// Stratum 0 without being a kiss code.
    StratumZero,
    /// Leap indicator 3: unsynchronised.
    Unsynchronized,
    /// Root dispersion of 30 s.
    HugeRootDispersion,
    /// Only the first 30 octets.
    Truncated,
}

impl Behaviour {
    /// All the broken behaviours (not the merely wrong clock).
    pub(crate) const ALL: [Self; 6] = [
        Self::WrongOrigin,
        Self::ZeroTimestamps,
        Self::StratumZero,
        Self::Unsynchronized,
        Self::HugeRootDispersion,
        Self::Truncated,
    ];

    /// The name under which sundial counts the rejected replies.
    pub(crate) fn rejection(self) -> &'static str {
        match self {
            Self::WrongOrigin => "bogus-origin",
            Self::ZeroTimestamps => "zero-timestamp",
            Self::StratumZero => "invalid-stratum",
            Self::Unsynchronized => "unsynchronized",
            Self::HugeRootDispersion => "root-distance",
            Self::Truncated => "malformed",
        }
    }
}

/// A UDP server on loopback with one [`Behaviour`]; stopped on drop.
#[derive(Debug)]
pub(crate) struct HostileServer {
    port: u16,
    behaviour: Behaviour,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostileServer {
    /// Starts answering on a free loopback port.
    pub(crate) fn start(behaviour: Behaviour) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || serve(&socket, behaviour, &r, &s));
        Self {
            port,
            behaviour,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Its port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its behaviour.
    pub(crate) fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    /// Requests it has answered.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
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

fn serve(socket: &UdpSocket, behaviour: Behaviour, requests: &AtomicU64, stop: &AtomicBool) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(req) = buf.get(..HEADER_LEN).filter(|_| len >= HEADER_LEN) else {
            continue;
        };
        let request = NtpHeader::decode(req.try_into().expect("48 octets"));
        requests.fetch_add(1, Ordering::Relaxed);
        let reply = reply_to(&request, behaviour);
        let _ = socket.send_to(&reply, from);
    }
}

fn reply_to(request: &NtpHeader, behaviour: Behaviour) -> Vec<u8> {
    let t = NtpTimestamp::from_unix(now());
    let mut h = NtpHeader::new(request.version, Mode::Server);
    h.leap = Leap::NoWarning;
    h.stratum = 1;
    h.precision = Log2Seconds::new(-20);
    h.reference_id = ReferenceId::from_bytes(*b"GPS\0");
    h.reference_timestamp = t;
    h.origin_timestamp = request.transmit_timestamp;
    h.receive_timestamp = t;
    h.transmit_timestamp = t;
    h.poll = request.poll;
    match behaviour {
        Behaviour::WrongOrigin => {
            h.origin_timestamp = NtpTimestamp::from_bits(request.transmit_timestamp.to_bits() ^ 1)
        }
        Behaviour::ZeroTimestamps => {
            h.receive_timestamp = NtpTimestamp::ZERO;
            h.transmit_timestamp = NtpTimestamp::ZERO;
        }
        Behaviour::StratumZero => h.stratum = 0,
        Behaviour::Unsynchronized => h.leap = Leap::Unsynchronized,
        Behaviour::HugeRootDispersion => h.root_dispersion = NtpShort::from_bits(30 << 16),
        Behaviour::Truncated => {}
    }
    let mut out = [0u8; HEADER_LEN];
    h.emit(&mut out);
    if behaviour == Behaviour::Truncated {
        return out.get(..30).unwrap_or_default().to_vec();
    }
    out.to_vec()
}
