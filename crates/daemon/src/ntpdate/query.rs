//! Asking the servers: one UDP socket, every server at once, each server's next request sent as
//! soon as its previous one was answered or timed out — so a run takes as long as its slowest
//! server's round trips, not a fixed schedule.
//!
//! The per-reply rules are in [`super::reply`]; this module owns the socket, the clock readings
//! (T1 just before sending, T4 from the kernel's receive timestamp) and the random nonces.

use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sundial_proto::time::{NtpTimestamp, UnixTime};
use sundial_sys::socket::{RecvMeta, SocketOptions, bind_udp, recv_msg, send_msg};

use crate::keys::SymmetricKey;

use super::args::NTP_PORT;
use super::auth::{self, AuthFailure};
use super::reply::{self, Answer, NotAnswer};
use super::resolve::canonical;
use super::select::ServerResult;

/// Receive buffer: a 48-octet reply plus room for extension fields and a MAC; longer datagrams
/// are cut by the kernel and dropped.
const RECV_BUFFER: usize = 2048;

/// Shortest socket read timeout asked for (zero would mean "forever").
const MIN_WAIT: Duration = Duration::from_micros(1);

/// How the servers are asked.
#[derive(Debug, Clone, Copy)]
pub struct QueryParams<'k> {
    /// Requests per server (`-p`).
    pub samples: u8,
    /// How long each request waits for its reply (`-t`).
    pub timeout: Duration,
    /// NTP version of the requests (`-o`).
    pub version: u8,
    /// The key that signs requests and must authenticate replies (`-a`).
    pub key: Option<&'k SymmetricKey>,
}

/// What happened during the query, as it happened (for `-d` and the rate-limit message).
#[derive(Debug)]
pub enum Event<'a> {
    /// A request left for `server`.
    Transmit {
        /// The server.
        server: SocketAddr,
    },
    /// A request could not be sent; it counts as lost.
    SendFailed {
        /// The server.
        server: SocketAddr,
        /// What the kernel said.
        error: &'a io::Error,
    },
    /// A reply answered the outstanding request of `server`.
    Answer {
        /// The server.
        server: SocketAddr,
        /// The checked reply.
        answer: &'a Answer,
        /// With `-a`: whether the reply was authenticated, or why not.
        authentication: Option<Result<(), AuthFailure>>,
    },
    /// A datagram was dropped without answering anything.
    Dropped {
        /// Where it came from.
        from: SocketAddr,
        /// Why it was not an answer.
        reason: NotAnswer,
    },
    /// The outstanding request of `server` got no answer in time.
    Timeout {
        /// The server.
        server: SocketAddr,
    },
}

/// Why no socket could be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Port 123 is taken, normally by a running ntpd.
    InUse,
    /// Any other failure (no permission for port 123, no IPv6, …).
    Bind(io::Error),
}

/// Opens the socket for `servers`: IPv4 if all are IPv4, IPv6-only if all are IPv6, dual-stack
/// IPv6 otherwise. From port 123 when `privileged` (setting the clock without `-u`), else from an
/// ephemeral port. Receive timestamps come from the kernel where it offers them.
pub fn open_socket(servers: &[SocketAddr], privileged: bool) -> Result<UdpSocket, OpenError> {
    let any_v4 = servers.iter().any(SocketAddr::is_ipv4);
    let any_v6 = servers.iter().any(SocketAddr::is_ipv6);
    let port = if privileged { NTP_PORT } else { 0 };
    let ip = if any_v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let options = SocketOptions {
        v6_only: any_v6 && !any_v4,
        rx_timestamps: true,
        ..SocketOptions::default()
    };
    bind_udp(SocketAddr::new(ip, port), &options).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            OpenError::InUse
        } else {
            OpenError::Bind(e)
        }
    })
}

/// Request nonces from the kernel's CSPRNG (`/dev/urandom`): the transmit timestamp of a request
/// is our only defence against off-path replies that would set the clock, so it must be
/// unpredictable. Opened once per run; each nonce is one 8-octet read.
#[derive(Debug)]
pub struct Nonces(File);

impl Nonces {
    /// Opens `/dev/urandom`.
    pub fn open() -> io::Result<Self> {
        File::open("/dev/urandom").map(Self)
    }

    /// 64 random bits, never zero (a zero origin timestamp means "no request").
    pub fn draw(&mut self) -> io::Result<NtpTimestamp> {
        loop {
            let mut bytes = [0u8; 8];
            self.0.read_exact(&mut bytes)?;
            let nonce = NtpTimestamp::from_bits(u64::from_ne_bytes(bytes));
            if !nonce.is_zero() {
                return Ok(nonce);
            }
        }
    }
}

/// A request waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Pending {
    nonce: NtpTimestamp,
    t1: NtpTimestamp,
    deadline: Instant,
}

/// One server's progress.
#[derive(Debug)]
struct Slot {
    result: ServerResult,
    /// Where requests go: the server's address, IPv4-mapped on a dual-stack socket.
    target: SocketAddr,
    pending: Option<Pending>,
    sent: u8,
}

/// Queries every server `params.samples` times over `socket` and returns what was learnt, in the
/// order of `servers`. Fails only if no nonce can be drawn; network errors count as lost samples.
pub fn run(
    socket: &UdpSocket,
    servers: &[SocketAddr],
    params: QueryParams<'_>,
    nonces: &mut Nonces,
    events: &mut dyn FnMut(Event<'_>),
) -> io::Result<Vec<ServerResult>> {
    let mapped = socket.local_addr()?.is_ipv6();
    let mut slots: Vec<Slot> = servers
        .iter()
        .map(|&addr| Slot {
            result: ServerResult::new(addr),
            target: if mapped { to_v6(addr) } else { addr },
            pending: None,
            sent: 0,
        })
        .collect();
    let mut engine = Engine {
        socket,
        params,
        nonces,
        events,
    };
    for slot in &mut slots {
        engine.send_next(slot)?;
    }
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let now = Instant::now();
        for slot in &mut slots {
            if slot.pending.is_some_and(|p| p.deadline <= now) {
                slot.pending = None;
                slot.result.samples.push(None);
                (engine.events)(Event::Timeout {
                    server: slot.result.addr,
                });
                engine.send_next(slot)?;
            }
        }
        let Some(deadline) = slots
            .iter()
            .filter_map(|s| s.pending.map(|p| p.deadline))
            .min()
        else {
            break;
        };
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_WAIT);
        socket.set_read_timeout(Some(wait))?;
        // Timeouts (EAGAIN) and stray errors alike: the deadlines above decide what happens next.
        let Ok(meta) = recv_msg(socket, &mut buf) else {
            continue;
        };
        let t4 = meta.rx_time.map_or_else(crate::clock::kernel_now, |ts| {
            UnixTime::new(ts.sec, ts.nsec)
        });
        let datagram = buf.get(..meta.len).unwrap_or_default();
        engine.receive(&mut slots, &meta, datagram, NtpTimestamp::from_unix(t4))?;
    }
    Ok(slots.into_iter().map(|s| s.result).collect())
}

/// What every step of a query needs besides the servers' state.
struct Engine<'a> {
    socket: &'a UdpSocket,
    params: QueryParams<'a>,
    nonces: &'a mut Nonces,
    events: &'a mut dyn FnMut(Event<'_>),
}

impl Engine<'_> {
    /// Matches one datagram to its server and request, records what it says, and sends that
    /// server's next request if it answered.
    fn receive(
        &mut self,
        slots: &mut [Slot],
        meta: &RecvMeta,
        datagram: &[u8],
        t4: NtpTimestamp,
    ) -> io::Result<()> {
        let from = canonical(meta.source);
        let slot = slots.iter_mut().find(|s| s.result.addr == from);
        let Some((slot, pending)) = slot.and_then(|s| s.pending.map(|p| (s, p))) else {
            (self.events)(Event::Dropped {
                from,
                reason: NotAnswer::Unsolicited,
            });
            return Ok(());
        };
        let checked = if meta.truncated {
            Err(NotAnswer::Oversized)
        } else {
            reply::check(datagram, pending.nonce, pending.t1, t4)
        };
        let answer = match checked {
            Ok(answer) => answer,
            Err(reason) => {
                (self.events)(Event::Dropped { from, reason });
                return Ok(());
            }
        };
        // One reply per request: a replay or duplicate now fails the origin check.
        slot.pending = None;
        let authentication = self
            .params
            .key
            .map(|key| auth::authenticate(key, from.ip(), datagram));
        slot.result
            .record_trust(authentication.is_none_or(|checked| checked.is_ok()));
        slot.result.last_header = Some(*answer.header());
        match answer {
            Answer::Sample { sample, .. } => slot.result.samples.push(Some(sample)),
            Answer::Unusable { .. } => slot.result.samples.push(None),
            Answer::Kiss { header } => {
                slot.result.samples.push(None);
                if reply::ceases(header.reference_id) {
                    slot.result.kiss = Some(header.reference_id);
                }
            }
        }
        (self.events)(Event::Answer {
            server: from,
            answer: &answer,
            authentication,
        });
        self.send_next(slot)
    }

    /// Sends the server's next request unless it has had all of them or asked us to stop. A
    /// request that cannot be sent is lost at once, and the next one is tried.
    fn send_next(&mut self, slot: &mut Slot) -> io::Result<()> {
        while slot.sent < self.params.samples && slot.result.kiss.is_none() {
            let nonce = self.nonces.draw()?;
            // The MAC is computed before T1 is read, so its cost is not part of the measured
            // round trip (what classic ntpdate's -e AUTHDELAY approximated).
            let request = match self.params.key {
                Some(key) => reply::signed_request(self.params.version, nonce, key),
                None => reply::request(self.params.version, nonce).to_vec(),
            };
            slot.sent += 1;
            let t1 = NtpTimestamp::from_unix(crate::clock::kernel_now());
            match send_msg(self.socket, &request, slot.target, None) {
                Ok(_) => {
                    slot.pending = Some(Pending {
                        nonce,
                        t1,
                        deadline: Instant::now() + self.params.timeout,
                    });
                    (self.events)(Event::Transmit {
                        server: slot.result.addr,
                    });
                    return Ok(());
                }
                Err(error) => {
                    slot.result.samples.push(None);
                    (self.events)(Event::SendFailed {
                        server: slot.result.addr,
                        error: &error,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The address on a dual-stack IPv6 socket: IPv4 becomes IPv4-mapped.
fn to_v6(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), addr.port()),
        IpAddr::V6(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_never_zero_and_differ() {
        let mut n = Nonces::open().unwrap();
        let a = n.draw().unwrap();
        let b = n.draw().unwrap();
        assert!(!a.is_zero() && !b.is_zero());
        assert_ne!(a, b);
    }

    #[test]
    fn socket_family_follows_the_servers() {
        let v4: SocketAddr = "127.0.0.1:123".parse().unwrap();
        let v6: SocketAddr = "[::1]:123".parse().unwrap();
        let only4 = open_socket(&[v4], false).unwrap();
        assert!(only4.local_addr().unwrap().is_ipv4());
        assert_ne!(only4.local_addr().unwrap().port(), NTP_PORT);
        let mixed = open_socket(&[v4, v6], false).unwrap();
        assert!(mixed.local_addr().unwrap().is_ipv6());
        assert_eq!(to_v6(v4), "[::ffff:127.0.0.1]:123".parse().unwrap());
        assert_eq!(to_v6(v6), v6);
    }
}
