//! Serving time: the UDP sockets on port 123 and the loop that answers on them.
//!
//! Each server thread owns its own sockets — one wildcard socket per address family, bound with
//! SO_REUSEPORT so the kernel spreads clients over the threads — and drains them in batches
//! (recvmmsg/sendmmsg): receive, stamp, answer, send. Wildcard sockets learn each request's
//! destination address from IP_PKTINFO and the reply leaves from that same address, so
//! multi-homed hosts and 127.0.0.1/::1 all work. With one thread the main loop drives the same
//! [`ServeSocket::drain`] itself.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Instant;

use sundial_proto::counters::DropReason;
use sundial_proto::packet::Mode;
use sundial_proto::server::{Action, Policy, RequestMeta, Server};
use sundial_proto::time::{MonoTime, UnixTime};
use sundial_sys::socket::{PktInfo, RecvBatch, SendBatch, SendMode, SocketOptions, bind_udp};

use crate::clock::kernel_now;
use crate::interfaces::InterfaceFilter;
use crate::publish::Reader;

/// Datagrams handled per receive call.
const BATCH: usize = 32;

/// Receive buffer per datagram. Requests larger than this are counted as oversized; NTS
/// requests with several cookies stay well below it.
const MAX_REQUEST: usize = 2048;

/// Largest reply datagram: a mode 6 fragment (12-octet header, 468 data octets, padding).
/// Time replies are a header plus at most a crypto-NAK (no extension field is ever echoed),
/// except NTS replies, which are as long as their request.
const MAX_REPLY: usize = MAX_REQUEST;

/// Which address families to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    /// Serve on IPv4.
    pub v4: bool,
    /// Serve on IPv6.
    pub v6: bool,
}

/// Opens the wildcard server sockets for one thread. `shared` sets SO_REUSEPORT so every
/// thread can bind the same port. A family whose wildcard cannot be bound because the host has
/// no such stack (no IPv6) is skipped with `Ok`; a port already in use is an error.
pub fn open_sockets(families: Families, port: u16, shared: bool) -> io::Result<Vec<UdpSocket>> {
    let opts = SocketOptions {
        reuse_port: shared,
        recv_pktinfo: true,
        rx_timestamps: true,
        nonblocking: true,
        ..SocketOptions::default()
    };
    let mut sockets = Vec::new();
    if families.v4 {
        sockets.push(bind_udp(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            &opts,
        )?);
    }
    if families.v6 {
        let v6 = SocketOptions {
            v6_only: true,
            ..opts
        };
        match bind_udp(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            &v6,
        ) {
            Ok(s) => sockets.push(s),
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) && families.v4 => {
                tracing::warn!("IPv6 is not available on this host; serving IPv4 only");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(sockets)
}

/// One server socket with its preallocated batches.
#[derive(Debug)]
pub struct ServeSocket {
    socket: UdpSocket,
    rx: RecvBatch,
    tx: SendBatch,
    reply: [u8; MAX_REPLY],
}

impl ServeSocket {
    /// Wraps a bound socket. `use_sendmmsg` is false under simulators that lack it.
    pub fn new(socket: UdpSocket, use_sendmmsg: bool) -> Self {
        let mode = if use_sendmmsg {
            SendMode::Batched
        } else {
            SendMode::OneByOne
        };
        Self {
            socket,
            rx: RecvBatch::new(BATCH, MAX_REQUEST),
            tx: SendBatch::new(BATCH, MAX_REPLY, mode),
            reply: [0; MAX_REPLY],
        }
    }

    /// The socket, for registering with a poller.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Answers everything queued on the socket, then returns. Never blocks.
    /// `origin` is the daemon's monotonic time origin (rate limits measure intervals with it).
    pub fn drain(
        &mut self,
        server: &Server,
        reader: &mut Reader,
        filter: &InterfaceFilter,
        origin: Instant,
    ) -> io::Result<()> {
        let Self {
            socket,
            rx,
            tx,
            reply,
        } = self;
        loop {
            let received = match rx.recv_batch(&*socket) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let snapshot = reader.get();
            let monotonic = MonoTime::from_duration(origin.elapsed());
            for i in 0..received {
                let meta = rx.meta(i);
                if let Some(dst) = meta.dst
                    && !filter.serves(dst.addr)
                {
                    let _ = server.count_external_drop(DropReason::InterfaceIgnored);
                    continue;
                }
                let kernel_rx = meta
                    .rx_time
                    .map_or_else(kernel_now, |ts| UnixTime::new(ts.sec, ts.nsec));
                let request = RequestMeta {
                    source: meta.source,
                    destination: meta.dst.map(|d| d.addr),
                    receive_time: snapshot.mapping.map(kernel_rx),
                    monotonic,
                    truncated: meta.truncated,
                };
                let data = rx.data(i);
                // Replies leave from the address (and interface) the request was sent to.
                let src = meta.dst;
                if data
                    .first()
                    .is_some_and(|b| Mode::from_bits(*b) == Mode::Control)
                {
                    let _ = server.handle_control(
                        &snapshot.access,
                        &request,
                        data,
                        &snapshot.control,
                        &mut |fragment| {
                            queue(tx, socket, fragment, meta.source, src);
                        },
                    );
                    continue;
                }
                let action = server.handle(
                    &Policy::with_keys(&snapshot.access, &*snapshot.keys)
                        .with_nts(snapshot.nts.as_deref()),
                    &request,
                    data,
                    &snapshot.system,
                    reply,
                    || snapshot.mapping.map(kernel_now()),
                );
                if let Action::Reply(len) = action
                    && let Some(bytes) = reply.get(..len)
                {
                    queue(tx, socket, bytes, meta.source, src);
                }
            }
            flush(tx, socket);
        }
    }
}

/// Queues a datagram, sending the batch first if it is full.
fn queue(
    tx: &mut SendBatch,
    socket: &UdpSocket,
    payload: &[u8],
    dst: SocketAddr,
    src: Option<PktInfo>,
) {
    if tx.is_full() {
        flush(tx, socket);
    }
    if let Err(e) = tx.push(payload, dst, src) {
        tracing::debug!("queueing a reply failed: {e}");
    }
}

/// Sends the queued replies. A full socket buffer or an unreachable client loses replies, not
/// the server.
fn flush(tx: &mut SendBatch, socket: &UdpSocket) {
    if !tx.is_empty()
        && let Err(e) = tx.send(socket)
    {
        tracing::debug!("sending replies failed: {e}");
    }
}
