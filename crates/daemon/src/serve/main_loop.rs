//! Serving from the daemon's main loop (`--threads 1`, and the default on a one-CPU machine).
//!
//! The main loop's poller watches the server sockets next to everything else, and the loop
//! holds as the leader of the server threads does ([`super::hold`]): while requests come faster
//! than `HOLD` apart it stops watching the sockets and looks at them when the hold is over,
//! bounding its poll timeout by that moment. Other events — replies from upstream servers,
//! signals, timers — still wake it at once, and a hold is at most `MAX_HOLD`, so the
//! discipline and the control port wait no longer than a busy loop made them wait before.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use sundial_proto::server::Server;

use super::ServeSocket;
use super::hold::{Hold, watch};
use crate::interfaces::InterfaceFilter;
use crate::publish::Reader;

/// The server the main loop drives, its sockets and whether it holds.
#[derive(Debug)]
pub struct MainLoopServer {
    server: Server,
    sockets: Vec<ServeSocket>,
    /// The poller token of the first socket; the others follow.
    first: usize,
    hold: Hold,
}

impl MainLoopServer {
    /// Watches `sockets` with the main loop's poller, with tokens from `first` on.
    pub fn new(
        server: Server,
        sockets: Vec<ServeSocket>,
        registry: &Registry,
        first: usize,
    ) -> io::Result<Self> {
        watch(
            registry,
            sockets.iter().map(ServeSocket::socket),
            first,
            true,
        )?;
        Ok(Self {
            server,
            sockets,
            first,
            hold: Hold::new(Instant::now()),
        })
    }

    /// When the main loop must look at the sockets, if it holds: its poll waits no longer.
    pub fn next_look(&self) -> Option<Instant> {
        self.hold.next_look()
    }

    /// Answers the requests queued on the socket `token` stands for, if it is one of these;
    /// returns how many there were, `None` for another token.
    pub fn on_readable(
        &mut self,
        token: Token,
        registry: &Registry,
        reader: &mut Reader,
        filter: &InterfaceFilter,
        origin: Instant,
    ) -> Option<usize> {
        let sock = self.sockets.get_mut(token.0.checked_sub(self.first)?)?;
        let received = drain(sock, &self.server, reader, filter, origin);
        rearm(registry, sock, token);
        Some(received)
    }

    /// After a poll: looks at every socket if a hold is over, and starts or ends holding after
    /// any look — `received` is what this poll's readable sockets held, `polled` whether there
    /// were any ([`on_readable`](Self::on_readable)).
    pub fn after_poll(
        &mut self,
        registry: &Registry,
        reader: &mut Reader,
        filter: &InterfaceFilter,
        origin: Instant,
        (mut received, polled): (usize, bool),
    ) {
        let due = self.hold.next_look().is_some_and(|t| Instant::now() >= t);
        if due {
            for sock in &mut self.sockets {
                received += drain(sock, &self.server, reader, filter, origin);
            }
        }
        if !(due || polled) {
            return;
        }
        if let Some(on) = self.hold.looked(received, Instant::now()) {
            let sockets = self.sockets.iter().map(ServeSocket::socket);
            if let Err(e) = watch(registry, sockets, self.first, on) {
                tracing::warn!("cannot watch the server sockets again: {e}");
                self.hold.keep_holding();
            }
        }
    }
}

fn drain(
    sock: &mut ServeSocket,
    server: &Server,
    reader: &mut Reader,
    filter: &InterfaceFilter,
    origin: Instant,
) -> usize {
    sock.drain(server, reader, filter, origin)
        .unwrap_or_else(|e| {
            tracing::warn!("receiving requests failed: {e}");
            0
        })
}

/// Registers a drained socket again where the poller has disarmed it (poll(2) builds only).
fn rearm(registry: &Registry, sock: &ServeSocket, token: Token) {
    if sundial_sys::SIMULATOR_BUILD
        && let Err(e) = registry.reregister(
            &mut SourceFd(&sock.socket().as_raw_fd()),
            token,
            Interest::READABLE,
        )
    {
        tracing::warn!("cannot poll a server socket again: {e}");
    }
}
