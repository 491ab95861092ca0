//! The server threads (more than one: with `--threads 1` the main loop serves by itself).
//!
//! All threads read the same sockets, one per address family. Only the first thread, the
//! leader, waits for them to become readable; the others are helpers that sleep until a thread
//! in front of them finds a backlog (more requests queued than eight receive calls take), serve
//! until the sockets are empty, and sleep again — calling the next helper if they
//! fall behind themselves. So one thread serves while one is enough, and every thread serves
//! under load.
//!
//! Why not a socket per thread (`SO_REUSEPORT`, as before): the kernel then spreads clients over
//! the threads at every rate, and each thread sleeps and wakes for its share. At low and medium
//! rates that is one or two requests per wakeup, and a wakeup — going to sleep and being
//! scheduled again — costs more than answering a request (docs/BENCHMARKS.md, "Where a
//! request's time goes").
//!
//! For the same reason the leader *holds* while requests arrive faster than
//! [`super::hold::HOLD`] apart: it sleeps between looks at its sockets instead of being woken
//! for each request ([`super::hold`]).

use std::io;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use mio::{Events, Poll, Token, Waker};
use sundial_proto::server::Server;

use super::ServeSocket;
use super::hold::{Hold, rearm, watch};
use crate::interfaces::{FilterReader, LiveFilter};
use crate::publish::{Publisher, Reader};

/// A thread's poller token for its waker.
const WAKE: Token = Token(0);

/// The token of a thread's first socket; the others follow.
const FIRST_SOCKET: usize = 1;

/// What the main loop needs of the running threads.
pub type Handles = Vec<(JoinHandle<()>, Arc<Waker>)>;

/// Everything a server thread shares with the daemon.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The interface rules in force.
    pub filter: LiveFilter,
    /// The published snapshot.
    pub publisher: Arc<Publisher>,
    /// Set at shutdown; the threads' wakers are woken after.
    pub stop: Arc<AtomicBool>,
    /// The daemon's monotonic time origin.
    pub origin: Instant,
}

/// Starts one server thread per element of `servers` on `sockets`: the leader on the sockets
/// themselves, each helper on duplicated descriptors of them.
pub fn start(
    sockets: Vec<UdpSocket>,
    servers: Vec<Server>,
    shared: &Shared,
) -> io::Result<Handles> {
    let mut servers = servers.into_iter().enumerate().collect::<Vec<_>>();
    let Some((_, first)) = (!servers.is_empty()).then(|| servers.remove(0)) else {
        return Ok(Vec::new());
    };
    let mut handles = Vec::new();
    // Helpers first, the last one first, so that each can be handed the one after it.
    let mut next = None;
    for (n, server) in servers.into_iter().rev() {
        let dup = sockets
            .iter()
            .map(UdpSocket::try_clone)
            .collect::<io::Result<Vec<_>>>()?;
        let (handle, helper) = spawn_helper(n, dup, server, shared, next.take())?;
        handles.push((handle, Arc::clone(&helper.waker)));
        next = Some(helper);
    }
    handles.push(spawn_leader(sockets, first, shared, next)?);
    Ok(handles)
}

/// A sleeping server thread that another one can call in when it falls behind.
struct Helper {
    /// Wakes the helper's poller; also how shutdown wakes it.
    waker: Arc<Waker>,
    /// Set by whoever calls the helper, cleared by the helper when it goes back to sleep, so
    /// that a thread that stays behind wakes it once, not once per batch.
    busy: Arc<AtomicBool>,
}

impl Helper {
    /// Asks the helper to serve until the sockets are empty, unless it already does.
    fn call(&self) {
        if !self.busy.swap(true, Ordering::AcqRel)
            && let Err(e) = self.waker.wake()
        {
            tracing::warn!("cannot wake a server thread: {e}");
        }
    }
}

/// One thread's sockets and its views of the shared state.
struct Worker {
    n: usize,
    sockets: Vec<ServeSocket>,
    server: Server,
    filter: FilterReader,
    reader: Reader,
    origin: Instant,
    next: Option<Helper>,
}

impl Worker {
    fn new(
        n: usize,
        sockets: Vec<UdpSocket>,
        server: Server,
        shared: &Shared,
        next: Option<Helper>,
    ) -> Self {
        Self {
            n,
            sockets: sockets.into_iter().map(ServeSocket::new).collect(),
            server,
            filter: shared.filter.reader(),
            reader: shared.publisher.reader(),
            origin: shared.origin,
            next,
        }
    }

    /// Serves socket `index` until it comes back short; returns the requests received.
    fn drain(&mut self, index: usize) -> usize {
        let Self {
            n,
            sockets,
            server,
            filter,
            reader,
            origin,
            next,
        } = self;
        let Some(sock) = sockets.get_mut(index) else {
            return 0;
        };
        let mut behind = || {
            if let Some(h) = next {
                h.call();
            }
        };
        match sock.drain_with(server, reader, filter.get(), *origin, &mut behind) {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!("server thread {n}: receiving requests failed: {e}");
                0
            }
        }
    }
}

/// Starts the leader: the only thread that polls the sockets.
fn spawn_leader(
    sockets: Vec<UdpSocket>,
    server: Server,
    shared: &Shared,
    helper: Option<Helper>,
) -> io::Result<(JoinHandle<()>, Arc<Waker>)> {
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    watch(poll.registry(), &sockets, FIRST_SOCKET, true)?;
    let mut worker = Worker::new(0, sockets, server, shared, helper);
    let stop = Arc::clone(&shared.stop);
    let handle = std::thread::Builder::new()
        .name("ntp-server-0".to_owned())
        .spawn(move || {
            let mut events = Events::with_capacity(16);
            let mut hold = Hold::new(Instant::now());
            while !stop.load(Ordering::Acquire) {
                let mut received = 0;
                if hold.holding() {
                    // Holding, the leader looks at every socket after each sleep anyway, so
                    // they are not watched (see `watch`).
                    std::thread::sleep(hold.hold_for());
                    for index in 0..worker.sockets.len() {
                        received += worker.drain(index);
                    }
                } else {
                    if let Err(e) = poll.poll(&mut events, None) {
                        if e.kind() == io::ErrorKind::Interrupted {
                            continue;
                        }
                        tracing::error!("server thread 0: poll failed: {e}");
                        break;
                    }
                    for event in &events {
                        let index = event.token().0.wrapping_sub(FIRST_SOCKET);
                        received += worker.drain(index);
                        if let Some(sock) = worker.sockets.get(index) {
                            rearm(poll.registry(), sock, event.token());
                        }
                    }
                }
                if let Some(on) = hold.looked(received, Instant::now()) {
                    let sockets = worker.sockets.iter().map(ServeSocket::socket);
                    if let Err(e) = watch(poll.registry(), sockets, FIRST_SOCKET, on) {
                        tracing::warn!("server thread 0: cannot watch its sockets again: {e}");
                        hold.keep_holding();
                    }
                }
            }
        })?;
    Ok((handle, waker))
}

/// Starts a helper on its own descriptors of the shared sockets (see the module comment).
fn spawn_helper(
    n: usize,
    sockets: Vec<UdpSocket>,
    server: Server,
    shared: &Shared,
    next: Option<Helper>,
) -> io::Result<(JoinHandle<()>, Helper)> {
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let busy = Arc::new(AtomicBool::new(false));
    let me = Helper {
        waker: Arc::clone(&waker),
        busy: Arc::clone(&busy),
    };
    let mut worker = Worker::new(n, sockets, server, shared, next);
    let stop = Arc::clone(&shared.stop);
    let handle = std::thread::Builder::new()
        .name(format!("ntp-server-{n}"))
        .spawn(move || {
            let mut events = Events::with_capacity(4);
            while !stop.load(Ordering::Acquire) {
                if let Err(e) = poll.poll(&mut events, None) {
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    tracing::error!("server thread {n}: poll failed: {e}");
                    break;
                }
                if stop.load(Ordering::Acquire) {
                    break;
                }
                for index in 0..worker.sockets.len() {
                    worker.drain(index);
                }
                busy.store(false, Ordering::Release);
            }
        })?;
    Ok((handle, me))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::Duration;

    use super::*;
    use crate::interfaces::InterfaceFilter;
    use crate::publish::Snapshot;
    use crate::serve::hold::MAX_HOLD;
    use crate::serve::{Families, open_sockets};

    /// A client request: version 4, mode 3, and a transmit timestamp that names it.
    fn request(n: u64) -> [u8; 48] {
        let mut packet = [0; 48];
        packet[0] = 0x23;
        packet[40..48].copy_from_slice(&n.to_be_bytes());
        packet
    }

    #[test]
    fn after_a_burst_the_leader_waits_for_requests_again_and_answers_a_lone_one() {
        let families = Families {
            v4: true,
            v6: false,
        };
        let sockets = open_sockets(families, 0).expect("bind");
        let port = sockets[0].local_addr().expect("address").port();
        let publisher = Publisher::new(Snapshot::unsynchronised());
        let shared = Shared {
            filter: LiveFilter::new(InterfaceFilter::default()),
            publisher,
            stop: Arc::new(AtomicBool::new(false)),
            origin: Instant::now(),
        };
        let servers = vec![Server::new(), Server::new()];
        let counters: Vec<_> = servers.iter().map(Server::counters_handle).collect();
        let handles = start(sockets, servers, &shared).expect("threads");

        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("client");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0; 128];
        // The origin timestamp each reply echoes: which request it answers.
        let mut answer = || {
            let (len, _) = client.recv_from(&mut buf).expect("a reply");
            assert_eq!(len, 48);
            u64::from_be_bytes(buf[24..32].try_into().expect("eight octets"))
        };
        // Bursts of 100 requests back to back, so that looks find requests one after the
        // other and the leader holds.
        let mut n = 0;
        for _ in 0..20 {
            for i in 0..100 {
                client
                    .send_to(&request(n + i), (Ipv4Addr::LOCALHOST, port))
                    .expect("send");
            }
            let mut answered: Vec<u64> = (0..100).map(|_| answer()).collect();
            answered.sort_unstable();
            assert!(answered.iter().copied().eq(n..n + 100), "{answered:?}");
            n += 100;
        }
        // Quiet for longer than any hold: the leader must be waiting on its sockets again.
        std::thread::sleep(MAX_HOLD * 20);
        client
            .send_to(&request(n), (Ipv4Addr::LOCALHOST, port))
            .expect("send");
        assert_eq!(answer(), n);

        let received: u64 = counters.iter().map(|c| c.snapshot().received).sum();
        assert_eq!(received, n + 1);
        shared.stop.store(true, Ordering::Release);
        for (handle, waker) in handles {
            waker.wake().expect("wake");
            handle.join().expect("server thread");
        }
    }
}
