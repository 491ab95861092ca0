//! The server threads (more than one: with `--threads 1` the main loop serves by itself).
//!
//! All threads read the same sockets, one per address family. Only the first thread, the
//! leader, waits for them to become readable; the others are helpers that sleep until a thread
//! in front of them finds a backlog (more requests queued than two receive calls take), serve
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
//! For the same reason the leader *holds* while requests arrive faster than [`HOLD`] apart: it
//! sleeps for [`HOLD`] and then takes whatever arrived, rather than waiting to be woken by each
//! request. Receive timestamps are the kernel's, and each reply is sent on its own right after
//! its transmit timestamp is read (see `serve::send`), so served time is as exact as without
//! holding; only the time a request waits in the socket grows, by up to [`HOLD`] plus the
//! timer slack.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use sundial_proto::server::Server;

use super::ServeSocket;
use crate::interfaces::{FilterReader, LiveFilter};
use crate::publish::{Publisher, Reader};

/// How long the leader collects requests between two looks while they arrive faster than this
/// apart: from 5000 requests/s on. At 25 000 requests/s that is about 6 requests per wakeup
/// instead of about one (the kernel's timer slack, 50 µs by default, comes on top). Measured
/// on a 2-vCPU machine, 100 µs cut CPU time per request less, 300 µs no further
/// (docs/BENCHMARKS.md); requests wait at most this much longer.
pub const HOLD: Duration = Duration::from_micros(200);

/// A thread's poller token for its waker.
const WAKE: Token = Token(0);

/// The token of a thread's first socket; the others follow.
const FIRST_SOCKET: usize = 1;

/// Whether mio polls with poll(2), which disarms a descriptor after each event until it is
/// registered again (see `ntpd`'s `SIMULATOR_BUILD`).
const POLL_BUILD: bool = cfg!(mio_unsupported_force_poll_poll);

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
    for (i, s) in sockets.iter().enumerate() {
        poll.registry().register(
            &mut SourceFd(&s.as_raw_fd()),
            Token(FIRST_SOCKET + i),
            Interest::READABLE,
        )?;
    }
    let mut worker = Worker::new(0, sockets, server, shared, helper);
    let stop = Arc::clone(&shared.stop);
    let handle = std::thread::Builder::new()
        .name("ntp-server-0".to_owned())
        .spawn(move || {
            let mut events = Events::with_capacity(16);
            let mut hold = false;
            let mut last_wakeup = Instant::now();
            while !stop.load(Ordering::Acquire) {
                if hold {
                    std::thread::sleep(HOLD);
                }
                let timeout = hold.then_some(Duration::ZERO);
                if let Err(e) = poll.poll(&mut events, timeout) {
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    tracing::error!("server thread 0: poll failed: {e}");
                    break;
                }
                let mut received = 0;
                for event in &events {
                    let index = event.token().0.wrapping_sub(FIRST_SOCKET);
                    received += worker.drain(index);
                    if let Some(sock) = worker.sockets.get(index) {
                        rearm(poll.registry(), sock, event.token());
                    }
                }
                // Hold while every look finds requests and they come faster than HOLD apart.
                let now = Instant::now();
                hold = received > 0 && (hold || now.duration_since(last_wakeup) < HOLD);
                last_wakeup = now;
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

/// Registers a drained socket again where the poller has disarmed it (poll(2) builds only).
fn rearm(registry: &Registry, sock: &ServeSocket, token: Token) {
    if POLL_BUILD
        && let Err(e) = registry.reregister(
            &mut SourceFd(&sock.socket().as_raw_fd()),
            token,
            Interest::READABLE,
        )
    {
        tracing::warn!("cannot poll a server socket again: {e}");
    }
}
