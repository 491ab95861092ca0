//! A minimal SNTP client on a std `UdpSocket`: builds requests with `NtpHeader::emit`, checks
//! replies with `Packet::parse`, never waits without a bound.

use std::cell::Cell;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sundial_proto::packet::{HEADER_LEN, Mode, NtpHeader, Packet};
use sundial_proto::time::{NtpTimestamp, UnixTime};

/// How long [`SntpClient::query`] waits for the reply to its request.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest datagram the client accepts.
const MAX_DATAGRAM: usize = 4096;

/// The current system time.
pub(crate) fn now() -> UnixTime {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UnixTime::new(
        i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        since_epoch.subsec_nanos(),
    )
}

/// One client socket, bound to an ephemeral port of the server address's family.
#[derive(Debug)]
pub(crate) struct SntpClient {
    socket: UdpSocket,
    /// Datagrams received that did not answer the request being waited for.
    unmatched: Cell<usize>,
}

/// A reply that answered our request: its origin timestamp is our transmit timestamp.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The datagram as received.
    pub(crate) bytes: Vec<u8>,
    /// The decoded header.
    pub(crate) header: NtpHeader,
    /// Where the reply came from.
    pub(crate) from: SocketAddr,
    /// T1: when the request was sent (also its transmit timestamp).
    pub(crate) sent: UnixTime,
    /// T4: when the reply arrived.
    pub(crate) received: UnixTime,
}

/// Why a query got no usable reply.
#[derive(Debug)]
pub(crate) enum QueryError {
    /// Nothing answered the request in time.
    Timeout,
    /// The reply is not a well-formed NTP packet.
    Malformed(Vec<u8>),
}

impl SntpClient {
    /// A client for servers of `server`'s address family.
    pub(crate) fn new(server: SocketAddr) -> Self {
        let bind: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        Self::bound(bind)
    }

    /// A client whose requests come from `local` (port 0: any free port).
    pub(crate) fn bound(local: SocketAddr) -> Self {
        let socket = UdpSocket::bind(local).unwrap_or_else(|e| panic!("binding {local}: {e}"));
        Self {
            socket,
            unmatched: Cell::new(0),
        }
    }

    /// Sends an SNTP request of `version` (mode 3) and waits for its reply.
    pub(crate) fn query(&self, server: SocketAddr, version: u8) -> Result<Reply, QueryError> {
        self.query_with(server, NtpHeader::new(version, Mode::Client))
    }

    /// Sends `request` with its transmit timestamp set to the current time and waits up to
    /// [`REPLY_TIMEOUT`] for the reply whose origin timestamp matches it. Other datagrams are
    /// skipped and counted in [`Self::unmatched`].
    pub(crate) fn query_with(
        &self,
        server: SocketAddr,
        request: NtpHeader,
    ) -> Result<Reply, QueryError> {
        self.query_with_trailer(server, request, &[])
    }

    /// Like [`Self::query_with`], with `trailer` (extension fields, a MAC) after the header.
    pub(crate) fn query_with_trailer(
        &self,
        server: SocketAddr,
        mut request: NtpHeader,
        trailer: &[u8],
    ) -> Result<Reply, QueryError> {
        let sent = now();
        request.transmit_timestamp = NtpTimestamp::from_unix(sent);
        let mut header = [0u8; HEADER_LEN];
        request.emit(&mut header);
        self.send_raw(server, &[&header[..], trailer].concat());
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while let Some((reply, from)) = self.recv_until(deadline) {
            let received = now();
            let Ok(packet) = Packet::parse(&reply) else {
                return Err(QueryError::Malformed(reply));
            };
            if packet.header.origin_timestamp != request.transmit_timestamp {
                self.unmatched.set(self.unmatched.get() + 1);
                continue;
            }
            return Ok(Reply {
                header: packet.header,
                bytes: reply,
                from,
                sent,
                received,
            });
        }
        Err(QueryError::Timeout)
    }

    /// Sends arbitrary bytes to `server`.
    pub(crate) fn send_raw(&self, server: SocketAddr, bytes: &[u8]) {
        self.socket
            .send_to(bytes, server)
            .unwrap_or_else(|e| panic!("sending to {server}: {e}"));
    }

    /// The first datagram that arrives within `wait`, if any.
    pub(crate) fn recv_within(&self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        self.recv_until(Instant::now() + wait)
    }

    /// How many received datagrams did not answer the request being waited for.
    pub(crate) fn unmatched(&self) -> usize {
        self.unmatched.get()
    }

    fn recv_until(&self, deadline: Instant) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            // A zero read timeout means "block forever"; never ask for that.
            let left = left.max(Duration::from_millis(1));
            self.socket
                .set_read_timeout(Some(left))
                .unwrap_or_else(|e| panic!("{e}"));
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    buf.truncate(len);
                    return Some((buf, from));
                }
                // Timeouts, and ICMP errors from a port nobody listens on yet.
                Err(_) => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

impl Reply {
    /// A server timestamp of this reply as Unix time (era resolved around our clock).
    pub(crate) fn server_time(&self, ts: NtpTimestamp) -> UnixTime {
        ts.to_unix(self.sent)
    }

    /// Seconds from `earlier` to `later`, both timestamps of this exchange.
    pub(crate) fn seconds_between(earlier: UnixTime, later: UnixTime) -> f64 {
        later.duration_since(earlier).to_seconds_f64()
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => write!(f, "no reply within {REPLY_TIMEOUT:?}"),
            Self::Malformed(bytes) => {
                write!(f, "malformed reply of {} bytes: {bytes:02x?}", bytes.len())
            }
        }
    }
}
