//! Holding: looking at busy server sockets on a timer instead of being woken for each request.
//!
//! Whatever loop serves the sockets — the leader of the server threads ([`super::threads`]) or,
//! with `--threads 1`, the daemon's main loop — *holds* while requests arrive faster than
//! [`HOLD`] apart: it looks at its sockets about as long after each look as [`LOOK`] requests
//! take to arrive at the rate it last saw (between [`HOLD`] and [`MAX_HOLD`], see
//! [`hold_time`]) and takes whatever arrived, rather than being woken by each request; and while
//! it holds it does not watch its sockets at all (see [`watch`]). A wakeup — going to sleep and
//! being scheduled again — costs more than answering a request (docs/BENCHMARKS.md, "Where a
//! request's time goes"), and at 25 000 requests/s a look every millisecond finds about 25.
//!
//! Receive timestamps are the kernel's, and each reply is sent on its own right after its
//! transmit timestamp is read (see `serve::send`), so served time is as exact as without
//! holding; only the time a request waits in the socket grows, by up to [`MAX_HOLD`] plus the
//! timer slack, and only from 5000 requests/s on.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::ServeSocket;

/// A loop holds while requests arrive faster than this apart (from 5000 requests/s on), and
/// never for less.
pub const HOLD: Duration = Duration::from_micros(200);

/// The longest a loop holds: requests wait in the socket at most this much longer (the
/// kernel's timer slack, 50 µs by default, comes on top). It sets the cost at moderate rates:
/// at 25 000 requests/s a look every 1 ms finds about 25 requests, where one every 200 µs found
/// 6, and a wakeup on a virtual machine costs more than answering several requests; that
/// halved the CPU time per request there (docs/BENCHMARKS.md).
pub const MAX_HOLD: Duration = Duration::from_micros(1000);

/// Requests a look while holding should find: two receive calls' worth. Above 640 000
/// requests/s looks are [`HOLD`] apart and find more; twice this did not lower the CPU time
/// per request further (docs/BENCHMARKS.md).
pub const LOOK: u32 = 128;

/// How long to hold before the next look, from what the last look found (`received` requests,
/// `interval` after the one before): about [`LOOK`] requests' time at that rate, within
/// [`HOLD`] and [`MAX_HOLD`].
pub fn hold_time(received: usize, interval: Duration) -> Duration {
    let received = u32::try_from(received.max(1)).unwrap_or(u32::MAX);
    (interval.saturating_mul(LOOK) / received).clamp(HOLD, MAX_HOLD)
}

/// Whether a serving loop holds, and until when.
#[derive(Debug, Clone)]
pub struct Hold {
    holding: bool,
    hold_for: Duration,
    last_look: Instant,
}

impl Hold {
    /// Not holding: the sockets are watched. `now` stands for the last look.
    pub fn new(now: Instant) -> Self {
        Self {
            holding: false,
            hold_for: HOLD,
            last_look: now,
        }
    }

    /// Whether the loop looks at its sockets on a timer (and does not watch them).
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// How long after the last look the next one is due, while holding.
    pub fn hold_for(&self) -> Duration {
        self.hold_for
    }

    /// When the next look is due, while holding.
    pub fn next_look(&self) -> Option<Instant> {
        self.holding
            .then(|| self.last_look.checked_add(self.hold_for))
            .flatten()
    }

    /// Records a look at the sockets, at `now`, that found `received` requests: the loop holds
    /// while every look finds requests and they come faster than [`HOLD`] apart. Returns
    /// `Some(true)` when the sockets must be watched again, `Some(false)` when they must no
    /// longer be, `None` when that stays as it was.
    pub fn looked(&mut self, received: usize, now: Instant) -> Option<bool> {
        let was_holding = self.holding;
        let interval = now.saturating_duration_since(self.last_look);
        self.holding = received > 0 && (self.holding || interval < HOLD);
        self.hold_for = if self.holding {
            hold_time(received, interval)
        } else {
            HOLD
        };
        self.last_look = now;
        (self.holding != was_holding).then_some(!self.holding)
    }

    /// Watching the sockets again failed: they are still looked at while holding, so hold on
    /// and try again after the next look.
    pub fn keep_holding(&mut self) {
        self.holding = true;
    }
}

/// Starts watching the `sockets` for requests (`on`), with tokens from `first` on, or stops.
///
/// A watched socket carries the poller on its wait queue, and the kernel then wakes that
/// queue — two locks and a callback — for every reply it frees after sending as well as for
/// every request, about 5 % of a reply's cost at 200 000 requests/s (docs/BENCHMARKS.md). While
/// it holds, a loop needs no wakeup, so it unwatches its sockets until a look finds nothing;
/// watching again reports a socket that already has requests at once.
pub fn watch<'a>(
    registry: &Registry,
    sockets: impl IntoIterator<Item = &'a UdpSocket>,
    first: usize,
    on: bool,
) -> io::Result<()> {
    for (i, s) in sockets.into_iter().enumerate() {
        let fd = s.as_raw_fd();
        let result = if on {
            registry.register(&mut SourceFd(&fd), Token(first + i), Interest::READABLE)
        } else {
            registry.deregister(&mut SourceFd(&fd))
        };
        // A socket left as it should be by an earlier, partly failed call is no failure.
        match result {
            Err(e) if on && e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if !on && e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// Registers a drained socket again where the poller has disarmed it: poll(2) builds only
/// ([`sundial_sys::SIMULATOR_BUILD`]); epoll keeps it armed, so production builds skip the
/// system call.
pub fn rearm(registry: &Registry, sock: &ServeSocket, token: Token) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_hold_lasts_about_one_look_of_requests_within_its_bounds() {
        // 200 000 requests/s: 64 in 320 µs, so 128 come in 640 µs.
        assert_eq!(hold_time(64, micros(320)), micros(640));
        // 25 000/s would need 5 ms for a full look: requests wait at most MAX_HOLD longer.
        assert_eq!(hold_time(6, micros(240)), MAX_HOLD);
        // Faster than a look per HOLD: the loop still sleeps HOLD, and a helper is called
        // if the backlog grows.
        assert_eq!(hold_time(400, micros(250)), HOLD);
        assert_eq!(hold_time(0, micros(250)), MAX_HOLD);
        assert_eq!(hold_time(usize::MAX, Duration::MAX), MAX_HOLD);
    }

    #[test]
    fn requests_closer_than_hold_apart_start_a_hold_that_lasts_while_looks_find_requests() {
        let start = Instant::now();
        let mut hold = Hold::new(start);
        assert!(!hold.holding());
        assert_eq!(hold.next_look(), None);
        // A wakeup long after the last: one request is no reason to hold.
        assert_eq!(hold.looked(1, start + micros(5000)), None);
        assert!(!hold.holding());
        // The next wakeup 100 µs later with requests: hold, stop watching.
        let t = start + micros(5100);
        assert_eq!(hold.looked(10, t), Some(false));
        assert!(hold.holding());
        // 10 requests in 100 µs: 128 take 1280 µs, more than MAX_HOLD.
        assert_eq!(hold.hold_for(), MAX_HOLD);
        assert_eq!(hold.next_look(), Some(t + MAX_HOLD));
        // A look a whole hold later that still finds requests keeps holding, paced by them.
        let t = t + MAX_HOLD;
        assert_eq!(hold.looked(250, t), None);
        assert!(hold.holding());
        assert_eq!(hold.hold_for(), micros(512));
        assert_eq!(hold.next_look(), Some(t + micros(512)));
        // A look that finds nothing ends the hold: watch again.
        assert_eq!(hold.looked(0, t + micros(600)), Some(true));
        assert!(!hold.holding());
        assert_eq!(hold.next_look(), None);
    }

    #[test]
    fn a_failed_watch_keeps_the_loop_holding_until_a_later_look_ends_it_again() {
        let start = Instant::now();
        let mut hold = Hold::new(start);
        assert_eq!(hold.looked(5, start + micros(50)), Some(false));
        assert_eq!(hold.looked(0, start + micros(300)), Some(true));
        hold.keep_holding();
        assert!(hold.holding());
        assert_eq!(hold.next_look(), Some(start + micros(300) + HOLD));
        assert_eq!(hold.looked(0, start + micros(600)), Some(true));
    }

    #[test]
    fn requests_exactly_hold_apart_do_not_start_a_hold() {
        let start = Instant::now();
        let mut hold = Hold::new(start);
        assert_eq!(hold.looked(10, start + HOLD), None);
        assert!(!hold.holding());
        assert_eq!(
            hold.looked(10, start + HOLD + HOLD - micros(1)),
            Some(false)
        );
    }

    fn loopback() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").expect("bind a loopback socket")
    }

    /// The tokens the poller reports for datagrams sent to each of `sockets`, in that order.
    fn tokens_reported(poll: &mut mio::Poll, sockets: &[UdpSocket]) -> Vec<Token> {
        let sender = loopback();
        let mut tokens = Vec::new();
        for s in sockets {
            sender
                .send_to(b"x", s.local_addr().expect("local address"))
                .expect("send to a loopback socket");
            let mut events = mio::Events::with_capacity(4);
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .expect("poll");
            tokens.extend(events.iter().map(mio::event::Event::token));
            let mut buf = [0; 8];
            s.recv(&mut buf).expect("take the datagram");
        }
        tokens
    }

    #[test]
    fn watched_sockets_report_consecutive_tokens_from_the_first() {
        let mut poll = mio::Poll::new().expect("poller");
        let sockets = [loopback(), loopback()];
        watch(poll.registry(), &sockets, 5, true).expect("watch");
        assert_eq!(tokens_reported(&mut poll, &sockets), [Token(5), Token(6)]);
    }

    #[test]
    fn watching_a_watched_socket_or_unwatching_an_unwatched_one_is_no_failure() {
        let mut poll = mio::Poll::new().expect("poller");
        let sockets = [loopback()];
        watch(poll.registry(), &sockets, 1, false).expect("unwatch what was never watched");
        watch(poll.registry(), &sockets, 1, true).expect("watch");
        watch(poll.registry(), &sockets, 1, true).expect("watch again");
        assert_eq!(tokens_reported(&mut poll, &sockets), [Token(1)]);
        watch(poll.registry(), &sockets, 1, false).expect("unwatch");
        watch(poll.registry(), &sockets, 1, false).expect("unwatch again");
    }

    #[test]
    fn a_descriptor_the_poller_refuses_is_a_failure_both_ways() {
        // /dev/null cannot be polled: epoll refuses it (EPERM) whether it is added or removed.
        let null = std::fs::File::open("/dev/null").expect("open /dev/null");
        let not_a_socket = [UdpSocket::from(std::os::fd::OwnedFd::from(null))];
        let poll = mio::Poll::new().expect("poller");
        let on = watch(poll.registry(), &not_a_socket, 1, true).expect_err("watch");
        assert_eq!(on.kind(), io::ErrorKind::PermissionDenied);
        let off = watch(poll.registry(), &not_a_socket, 1, false).expect_err("unwatch");
        assert_eq!(off.kind(), io::ErrorKind::PermissionDenied);
    }
}
