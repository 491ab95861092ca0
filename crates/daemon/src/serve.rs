//! Serving time: the UDP sockets on port 123 and the loop that answers on them.
//!
//! One wildcard socket per address family, shared by every server thread ([`threads`]; with
//! one thread the main loop drives [`ServeSocket::drain`] itself). A drain receives requests in
//! batches (recvmmsg) and answers each at once: stamp, answer, read the transmit time, send.
//! Wildcard sockets learn each request's destination address from IP_PKTINFO and the reply
//! leaves from that same address, so multi-homed hosts and 127.0.0.1/::1 all work.

pub mod hold;
pub mod main_loop;
pub mod threads;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Instant;

use sundial_proto::counters::DropReason;
use sundial_proto::packet::Mode;
use sundial_proto::ratelimit::Located;
use sundial_proto::server::{Action, Policy, RequestMeta, Server};
use sundial_proto::time::{MonoTime, UnixTime};
use sundial_sys::socket::{PktInfo, RecvBatch, RecvMeta, SocketOptions, bind_udp, send_msg};

use crate::clock::kernel_now;
use crate::interfaces::InterfaceFilter;
use crate::publish::Reader;

/// Datagrams handled per receive call. 64 rather than 32 measured 1–6 % less CPU per request
/// at 100 000–200 000 requests/s (docs/BENCHMARKS.md), for 64 KiB more per server thread.
const BATCH: usize = 64;

/// Full batches in a row that make a thread call for help (see [`ServeSocket::drain_with`]):
/// 512 requests, about 40 % of what the receive buffer holds ([`RECV_BUFFER`]), so a helper is
/// awake well before requests are lost. A holding leader finds about `threads::LOOK / (1 − u)`
/// requests per look when it is busy a share u of its time, so it stays below this until it
/// is busy three quarters of the time (about 300 000 requests/s on the machine of
/// docs/BENCHMARKS.md). With three batches, as before, a helper was woken for every look at
/// 200 000 requests/s, and waking it cost more than the requests it took over (4 % of the CPU
/// per request there).
const BACKLOG_BATCHES: usize = 8;

/// How many requests ahead of the one being handled its client-table set is loaded.
const PREFETCH_AHEAD: usize = 2;

/// Receive buffer per datagram. Requests larger than this are counted as oversized; NTS
/// requests with several cookies stay well below it.
const MAX_REQUEST: usize = 2048;

/// Largest reply datagram: a mode 6 fragment (12-octet header, 468 data octets, padding).
/// Time replies are a header plus at most a crypto-NAK (no extension field is ever echoed),
/// except NTS replies, which are as long as their request.
const MAX_REPLY: usize = MAX_REQUEST;

/// Receive buffer of a server socket: room for about 1300 queued requests (the kernel charges
/// some 800 bytes per small datagram), 6 ms at 200 000 requests/s — enough to ride out a
/// server thread being descheduled on a busy machine, where the default (about 270 requests)
/// loses requests from about 50 000/s on. Only queued requests occupy it.
const RECV_BUFFER: usize = 1 << 20;

/// Which address families to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    /// Serve on IPv4.
    pub v4: bool,
    /// Serve on IPv6.
    pub v6: bool,
}

/// Opens the wildcard server sockets, one per family, that every server thread reads. A family
/// whose wildcard cannot be bound because the host has no such stack (no IPv6) is skipped with
/// `Ok`; a port already in use is an error (no SO_REUSEPORT: a second daemon on the port must
/// fail, not split the traffic).
pub fn open_sockets(families: Families, port: u16) -> io::Result<Vec<UdpSocket>> {
    let opts = SocketOptions {
        recv_pktinfo: true,
        rx_timestamps: true,
        nonblocking: true,
        dont_fragment: true,
        recv_buffer: RECV_BUFFER,
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

/// One server socket with its preallocated receive batch and reply buffer.
#[derive(Debug)]
pub struct ServeSocket {
    socket: UdpSocket,
    rx: RecvBatch,
    /// The batch's metadata, each request's decoded once, with the request's place in the
    /// client table, found once (for the look-ahead and again for the server).
    metas: Vec<(RecvMeta, Option<Located>)>,
    reply: [u8; MAX_REPLY],
}

impl ServeSocket {
    /// Wraps a bound socket.
    pub fn new(socket: UdpSocket) -> Self {
        Self {
            socket,
            rx: RecvBatch::new(BATCH, MAX_REQUEST),
            metas: Vec::with_capacity(BATCH),
            reply: [0; MAX_REPLY],
        }
    }

    /// The socket, for registering with a poller.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Answers everything queued on the socket, then returns how many datagrams it received.
    /// Never blocks. `origin` is the daemon's monotonic time origin (rate limits measure
    /// intervals with it).
    pub fn drain(
        &mut self,
        server: &Server,
        reader: &mut Reader,
        filter: &InterfaceFilter,
        origin: Instant,
    ) -> io::Result<usize> {
        self.drain_with(server, reader, filter, origin, &mut || {})
    }

    /// [`drain`](Self::drain), calling `on_backlog` from the `BACKLOG_BATCHES`-th receive
    /// call in a row that comes back full on: more requests were waiting than that many
    /// batches hold, so this thread is falling behind and another one may help ([`threads`]).
    /// A few full batches are no sign of that: the leader lets about `threads::LOOK` requests
    /// gather on purpose while it holds.
    ///
    /// A batch that comes back short ends the call: the kernel hands over everything queued up
    /// to the batch size, so the queue was empty a moment ago, and a further receive call would
    /// almost always just say so (`EAGAIN`) — one system call per wakeup saved. A request that
    /// arrives after that moment is found by the leader's next look while it holds, and
    /// otherwise makes the socket readable again for the poller (epoll reports every arrival
    /// after its last report; the poll(2) build re-arms after each drain).
    ///
    /// Returns how many datagrams it received. Each call counts as a wakeup (`iostats`), a
    /// useful one if it received any.
    pub fn drain_with(
        &mut self,
        server: &Server,
        reader: &mut Reader,
        filter: &InterfaceFilter,
        origin: Instant,
        on_backlog: &mut dyn FnMut(),
    ) -> io::Result<usize> {
        let result = self.drain_batches(server, reader, filter, origin, on_backlog);
        if let Ok(received) = result {
            server.counters().count_wakeup(received > 0);
        }
        result
    }

    fn drain_batches(
        &mut self,
        server: &Server,
        reader: &mut Reader,
        filter: &InterfaceFilter,
        origin: Instant,
        on_backlog: &mut dyn FnMut(),
    ) -> io::Result<usize> {
        let Self {
            socket,
            rx,
            metas,
            reply,
        } = self;
        let table = server.client_table();
        let mut total = 0;
        let mut full_in_a_row = 0;
        loop {
            let received = match rx.recv_batch(&*socket) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += received;
            let full = received == rx.capacity();
            full_in_a_row = if full { full_in_a_row + 1 } else { 0 };
            if full_in_a_row >= BACKLOG_BATCHES {
                on_backlog();
            }
            metas.clear();
            metas.extend((0..received).map(|i| {
                let meta = rx.meta(i);
                (meta, table.map(|t| t.locate(meta.source.ip())))
            }));
            // The client-table set of request i + PREFETCH_AHEAD is asked for while request i is
            // handled: a send lies between the request and its set, and the CPU is never asked
            // for more than a few sets at once (a whole batch at once stalls on its own misses).
            let prefetch = |i: usize| {
                if let (Some(table), Some(&(_, Some(client)))) = (table, metas.get(i))
                    && let Some(set) = table.set_of(client)
                {
                    sundial_sys::memory::prefetch(set);
                }
            };
            (0..PREFETCH_AHEAD).for_each(prefetch);
            let snapshot = reader.get();
            let monotonic = MonoTime::from_duration(origin.elapsed());
            for (i, &(meta, client)) in metas.iter().enumerate() {
                prefetch(i + PREFETCH_AHEAD);
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
                    client,
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
                        &mut |fragment| send(server, socket, fragment, meta.source, src),
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
                    send(server, socket, bytes, meta.source, src);
                }
            }
            if !full {
                return Ok(total);
            }
        }
    }
}

/// Sends one reply at once, right after its transmit timestamp was read.
///
/// Not batched (sendmmsg) on purpose: the kernel sends a batch's datagrams one after the
/// other, about a microsecond each on the way out, so the k-th reply of a batch would leave
/// k microseconds (and the handling of the rest of the batch) after its transmit timestamp —
/// measured 4 µs on average at 25 000 requests/s and 10 µs at 100 000/s, against 1 µs for a
/// reply sent on its own (docs/BENCHMARKS.md). A full socket buffer or an unreachable client
/// loses the reply, not the server; it is counted (`iostats` send failures).
fn send(
    server: &Server,
    socket: &UdpSocket,
    payload: &[u8],
    dst: SocketAddr,
    src: Option<PktInfo>,
) {
    let result = send_msg(socket, payload, dst, src);
    server.counters().count_send(result.is_ok());
    if let Err(e) = result {
        tracing::debug!("sending a reply failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::publish::{Publisher, Snapshot};

    /// A client request: LI 0, version 4, mode 3, and a transmit timestamp to echo.
    fn request() -> [u8; 48] {
        let mut packet = [0; 48];
        packet[0] = 0x23;
        packet[40..48].copy_from_slice(&0x1234_5678_9abc_def0_u64.to_be_bytes());
        packet
    }

    fn drain_counting(serve: &mut ServeSocket, calls: &mut usize) -> usize {
        let server = Server::new();
        let publisher = Publisher::new(Snapshot::unsynchronised());
        let mut reader = publisher.reader();
        serve
            .drain_with(
                &server,
                &mut reader,
                &InterfaceFilter::default(),
                Instant::now(),
                &mut || *calls += 1,
            )
            .expect("drain")
    }

    #[test]
    fn a_backlog_of_full_batches_calls_for_help_and_every_request_is_answered() {
        let families = Families {
            v4: true,
            v6: false,
        };
        let socket = open_sockets(families, 0)
            .expect("bind")
            .pop()
            .expect("an IPv4 socket");
        let port = socket.local_addr().expect("address").port();
        let mut serve = ServeSocket::new(socket);
        // Every reply is queued before the first is read: more than a default buffer holds.
        let client = bind_udp(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            &SocketOptions {
                recv_buffer: RECV_BUFFER,
                ..SocketOptions::default()
            },
        )
        .expect("client");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let sent = BACKLOG_BATCHES * BATCH + 5;
        for _ in 0..sent {
            client
                .send_to(&request(), (Ipv4Addr::LOCALHOST, port))
                .expect("send");
        }
        std::thread::sleep(Duration::from_millis(50));

        let mut calls = 0;
        assert_eq!(drain_counting(&mut serve, &mut calls), sent);
        assert_eq!(
            calls, 1,
            "BACKLOG_BATCHES full batches, then a short one that ends the drain"
        );
        let mut buf = [0; 128];
        for _ in 0..sent {
            let (len, _) = client.recv_from(&mut buf).expect("a reply per request");
            assert_eq!(len, 48);
            assert_eq!(buf[0] & 0x07, 4, "server mode");
            assert_eq!(buf[24..32], request()[40..48], "origin timestamp echoed");
        }

        let fewer = (BACKLOG_BATCHES - 1) * BATCH;
        for _ in 0..fewer {
            client
                .send_to(&request(), (Ipv4Addr::LOCALHOST, port))
                .expect("send");
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut calls = 0;
        assert_eq!(drain_counting(&mut serve, &mut calls), fewer);
        assert_eq!(calls, 0, "fewer full batches do not call for help");
    }
}
