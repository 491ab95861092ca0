//! One server's mode 6 session: a connected UDP socket, a request sequence counter, and the
//! send / wait / reassemble / retry loop of classic ntpq (ntpq-mode6.md §7.2–7.3).
//!
//! Every try uses a new sequence number, so a late reply to the first try is dropped by the
//! reassembler. The socket is connected, so the kernel passes on only the server's datagrams
//! and reports "connection refused" when nothing listens.

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use sundial_proto::control::{
    ClientRequest, ControlResponse, MAX_DATAGRAM_LEN, Opcode, Progress, Reassembler, ResponseError,
};

/// Tries per request: the first and one retry, as in both ntpqs.
const TRIES: usize = 2;

/// Largest datagram read (anything longer than a mode 6 fragment is dropped as malformed).
const RECEIVE_BUFFER: usize = 2048;

/// Which address family to use for a host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// The first address getaddrinfo returns.
    Any,
    /// `-4`.
    V4,
    /// `-6`.
    V6,
}

/// Why a query failed; `Display` prints ntpq's message.
#[derive(Debug)]
pub(crate) enum QueryError {
    /// The host name did not resolve (to an address of the requested family).
    UnknownHost(String),
    /// The server's port is closed, or the socket failed.
    Socket(io::Error),
    /// No response within the timeouts, after the retry.
    Timeout,
    /// Some fragments came, but not all of them.
    Incomplete,
    /// The server answered with an error, or too much data.
    Response(ResponseError),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownHost(host) => write!(f, "***Can't find host {host}"),
            Self::Socket(_) => f.write_str("***Socket error; probably ntpd is not running"),
            Self::Timeout => f.write_str("***Request timed out"),
            Self::Incomplete => f.write_str("***Response from server was incomplete"),
            Self::Response(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Socket(e) => Some(e),
            _ => None,
        }
    }
}

/// A session with one server.
#[derive(Debug)]
pub(crate) struct Session {
    socket: UdpSocket,
    sequence: u16,
    first_timeout: Duration,
    fragment_timeout: Duration,
    debug: u8,
}

impl Session {
    /// Resolves `host` (the first address of `family`), and connects a socket to it at `port`.
    pub(crate) fn open(
        host: &str,
        port: u16,
        family: Family,
        (first_timeout, fragment_timeout): (Duration, Duration),
        debug: u8,
        first_sequence: u16,
    ) -> Result<Self, QueryError> {
        let server = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| {
                addrs.find(|a| match family {
                    Family::Any => true,
                    Family::V4 => a.is_ipv4(),
                    Family::V6 => a.is_ipv6(),
                })
            })
            .ok_or_else(|| QueryError::UnknownHost(host.to_owned()))?;
        let local: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).map_err(QueryError::Socket)?;
        socket.connect(server).map_err(QueryError::Socket)?;
        Ok(Self {
            socket,
            sequence: first_sequence,
            first_timeout,
            fragment_timeout,
            debug,
        })
    }

    /// Sends a request and returns the reassembled response, retrying once.
    pub(crate) fn query(
        &mut self,
        opcode: Opcode,
        association: u16,
        data: &[u8],
    ) -> Result<ControlResponse, QueryError> {
        let mut heard_something = false;
        for _ in 0..TRIES {
            self.sequence = self.sequence.wrapping_add(1);
            let request = ClientRequest {
                opcode,
                association,
                data,
                ..ClientRequest::read_status(self.sequence)
            };
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let len = request
                .encode(&mut buf)
                .map_err(|e| QueryError::Socket(io::Error::new(ErrorKind::InvalidInput, e)))?;
            let datagram = buf.get(..len).unwrap_or_default();
            self.trace("sent", datagram);
            self.socket.send(datagram).map_err(QueryError::Socket)?;
            match self.collect(
                Reassembler::new(opcode, self.sequence),
                &mut heard_something,
            )? {
                Some(response) => return Ok(response),
                None => continue,
            }
        }
        Err(if heard_something {
            QueryError::Incomplete
        } else {
            QueryError::Timeout
        })
    }

    /// Receives fragments until the response is complete (`Some`) or a wait runs out (`None`).
    fn collect(
        &self,
        mut reassembler: Reassembler,
        heard_something: &mut bool,
    ) -> Result<Option<ControlResponse>, QueryError> {
        let mut deadline = Instant::now() + self.first_timeout;
        let mut buf = [0u8; RECEIVE_BUFFER];
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Ok(None);
            };
            // A zero timeout would mean "block forever".
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(QueryError::Socket)?;
            let len = match self.socket.recv(&mut buf) {
                Ok(len) => len,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(QueryError::Socket(e)),
            };
            let datagram = buf.get(..len).unwrap_or_default();
            self.trace("received", datagram);
            match reassembler.handle(datagram).map_err(QueryError::Response)? {
                Progress::Complete(response) => return Ok(Some(response)),
                Progress::NeedMore => {
                    *heard_something = true;
                    deadline = Instant::now() + self.fragment_timeout;
                }
                Progress::Dropped(why) => {
                    if self.debug > 0 {
                        eprintln!("ntpq: dropped a datagram: {why:?}");
                    }
                }
            }
        }
    }

    fn trace(&self, what: &str, datagram: &[u8]) {
        if self.debug > 0 {
            let hex: Vec<String> = datagram.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("ntpq: {what} {} octets: {}", datagram.len(), hex.join(" "));
        }
    }
}
