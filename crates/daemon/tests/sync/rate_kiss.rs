//! An upstream that answers its first requests with RATE kisses asking for a poll of 2^17 s
//! (36 hours), then serves normally: sundial slows down no further than `maxpoll`, and polls
//! faster again once answers come without kisses.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sundial_proto::packet::{HEADER_LEN, Leap, Mode, NtpHeader, ReferenceId};
use sundial_proto::time::{Log2Seconds, NtpTimestamp};

use crate::support::sntp::now;

/// Requests answered with a kiss before the server serves normally.
pub(crate) const KISSES: usize = 2;

/// The poll exponent every kiss asks for (RFC 5905's largest).
const ASKED_POLL: i8 = 17;

/// A kissing upstream on a free loopback port; stopped on drop.
#[derive(Debug)]
pub(crate) struct KissingServer {
    port: u16,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KissingServer {
    pub(crate) fn start() -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&arrivals), Arc::clone(&stop));
        let thread = std::thread::spawn(move || serve(&socket, &a, &s));
        Self {
            port,
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// When each request arrived.
    pub(crate) fn arrivals(&self) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for KissingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(socket: &UdpSocket, arrivals: &Mutex<Vec<Instant>>, stop: &AtomicBool) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(req) = buf.get(..HEADER_LEN).filter(|_| len >= HEADER_LEN) else {
            continue;
        };
        let request = NtpHeader::decode(req.try_into().expect("48 octets"));
        let n = {
            let mut a = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            a.push(Instant::now());
            a.len()
        };
        let t = NtpTimestamp::from_unix(now());
        let mut h = NtpHeader::new(request.version, Mode::Server);
        h.origin_timestamp = request.transmit_timestamp;
        h.receive_timestamp = t;
        h.transmit_timestamp = t;
        h.precision = Log2Seconds::new(-20);
        if n <= KISSES {
            h.leap = Leap::Unsynchronized;
            h.stratum = 0;
            h.reference_id = ReferenceId::RATE;
            h.poll = Log2Seconds::new(ASKED_POLL);
        } else {
            h.leap = Leap::NoWarning;
            h.stratum = 1;
            h.reference_id = ReferenceId::from_bytes(*b"GPS\0");
            h.reference_timestamp = t;
            h.poll = request.poll;
        }
        let mut out = [0u8; HEADER_LEN];
        h.emit(&mut out);
        let _ = socket.send_to(&out, from);
    }
}
