//! Serving from the daemon's main loop (`--threads 1`, and the default on a one-CPU machine).
//!
//! The main loop's poller watches the server sockets next to everything else, and the loop
//! holds as the leader of the server threads does ([`super::hold`]): while requests come faster
//! than `HOLD` apart it stops watching the sockets, sleeps until the next look is due and then
//! looks ([`MainLoopServer::wait_for_look`]). Other events — replies from upstream servers,
//! signals, timers — are collected right after each sleep, so they wait at most `MAX_HOLD`
//! (1 ms) longer, and replies keep their kernel receive timestamps.

use std::io;
use std::time::{Duration, Instant};

use mio::{Registry, Token};
use sundial_proto::server::Server;

use super::ServeSocket;
use super::hold::{Hold, rearm, watch};
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

    /// Called before the main loop polls with `timeout`: if the loop holds and the next look
    /// is due sooner, sleeps until then and returns a zero timeout (the poll then only collects
    /// what else came meanwhile); otherwise returns the timeout, cut to the next look.
    ///
    /// Why sleep rather than poll until the look: mio's poll counts its timeout in whole
    /// milliseconds, rounded up, so a 200–640 µs hold became a millisecond and more, looks
    /// found two or three times `LOOK` requests and the bursts of replies that followed lost
    /// 0.9 % of them at 250 000 requests/s (docs/BENCHMARKS.md). Everything else the main loop
    /// waits for keeps its kernel receive timestamp, and the sleep is at most `MAX_HOLD`.
    /// Simulator builds poll instead: a simulator advances its clock in the poll, not in a
    /// sleep it does not intercept.
    pub fn wait_for_look(&self, timeout: Duration) -> Duration {
        let Some(look) = self.hold.next_look() else {
            return timeout;
        };
        let wait = look.saturating_duration_since(Instant::now());
        if wait > timeout || sundial_sys::SIMULATOR_BUILD {
            return timeout.min(wait);
        }
        std::thread::sleep(wait);
        Duration::ZERO
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
