//! The discrete-event loop: the real core (`sundial_proto::system::System`, which holds one
//! `Source` per server, selection and the discipline) as a client, real `Server`s on the far
//! side of virtual links, and a virtual clock in between. Time jumps from event to event — a poll falling due, a datagram arriving, the
//! discipline's timer, a once-a-second measurement of the true offset — so hours of simulated
//! time take milliseconds.
//!
//! The client is a driver of the same `System` the daemon's main loop drives: it sends the
//! requests the system writes, hands it every reply, wakes it for the discipline's timer, and
//! reads its events (selection rounds, samples fed, corrections) for the report and the
//! timeline. Selection, the start-up gate, feeding the discipline and handing corrections to
//! the sources all happen inside `System`, exactly as in the daemon. With a `pool` line the
//! simulator also does what the daemon's association manager does: it mobilises the addresses a (virtual, round-robin) resolver returns up to
//! `tos maxclock` (`sundial_proto::pool::to_mobilize`), retires members that stop answering
//! (`pool::Member::should_retire`) and resolves the name again to replace them.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sundial_proto::access::{AccessTable, RestrictFlags};
use sundial_proto::auth::NoKeys;
use sundial_proto::clock::Clock;
use sundial_proto::discipline::DisciplineParams;
use sundial_proto::fallback::Fallback;
use sundial_proto::packet::{HEADER_LEN, Leap, Mode, NtpHeader, ReferenceId};
use sundial_proto::pool::{Member, to_mobilize};
use sundial_proto::ratelimit::RateLimiter;
use sundial_proto::select::Tally;
use sundial_proto::server::{Action, Policy, RequestMeta, Server};
use sundial_proto::siphash::SipKey;
use sundial_proto::source::{Fitness, Source};
use sundial_proto::system::{Event, SourceId, SourceSpec, System, SystemParams, SystemState};
use sundial_proto::time::{Log2Seconds, MonoTime, NtpDuration, NtpTimestamp, UnixTime};

use crate::clock::{VirtualClock, reading};
use crate::downstream::{DOWNSTREAM_ADDRESS, Downstream};
use crate::network::Direction;
use crate::rng::SimRng;
use crate::scenario::{
    ClientSpec, RefclockKind, RefclockSpec, Report, SYNC_LIMIT_S, Scenario, ServerSpec, SpoofOrigin,
};
use crate::trace::{Reply, Request, Round, Timeline, Trace};
use sundial_proto::refclock::{Reading, pps};
use sundial_proto::source::PeerInfo;

/// True time zero as a Unix time (2027-01-15), an arbitrary date in the current NTP era.
pub const EPOCH: UnixTime = UnixTime::new(1_800_000_000, 0);

/// The client's clock precision (about 120 ns, a typical `clock_gettime` read cost).
const CLIENT_PRECISION: Log2Seconds = Log2Seconds::new(-23);

/// The servers' precision, as a GPS-disciplined stratum-1 server reports it.
const SERVER_PRECISION: Log2Seconds = Log2Seconds::new(-24);

/// Time a server takes between receive and transmit time stamps, seconds.
const SERVER_PROCESSING_S: f64 = 5e-6;

/// Age of the servers' last reference update at each reply, seconds (a busy stratum 1
/// updates every 16 s; it keeps root dispersion realistic).
const SERVER_REFERENCE_AGE_S: f64 = 16.0;

/// When the first association polls, true seconds after the start.
const FIRST_POLL_S: f64 = 1.0;

/// How far apart the first polls of the associations are (ntpd spreads them so that start-up
/// is not one burst).
const POLL_SPREAD_S: f64 = 1.0;

/// Interval of the true-offset measurements, seconds.
const TICK_S: f64 = 1.0;

/// How often a pool with fewer than `maxclock` associations resolves its name again, seconds
/// (the daemon's `POOL_REFRESH`).
const POOL_REFRESH_S: f64 = 64.0;

/// The port every virtual server listens on.
const NTP_PORT: u16 = 123;

/// Entries of a rate-limited server's client table (the simulation has one client).
const LIMITER_ENTRIES: usize = 64;

/// A datagram in flight.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    at: f64,
    seq: u64,
    server: usize,
    /// The association that sent the request or is to receive the reply.
    assoc: SourceId,
    to_server: bool,
    /// Sent by a spoofer, not by the server.
    forged: bool,
    /// Between the client and its downstream client (`server` and `assoc` unused).
    downstream: bool,
    bytes: [u8; HEADER_LEN],
}

impl PartialEq for Datagram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Datagram {}

impl PartialOrd for Datagram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Datagram {
    /// Earliest first in a max-heap: reversed time, then reversed sending order.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.total_cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

/// Runs a scenario to the end.
pub fn run(scenario: &Scenario) -> Report {
    World::new(scenario).run().0
}

/// Runs a scenario to the end and also returns the [`Timeline`] of every server's tallies,
/// requests and replies.
pub fn run_with_timeline(scenario: &Scenario) -> (Report, Timeline) {
    World::new(scenario).run()
}

/// The virtual address of server `index`: 10.0.0.1 onwards, in scenario order.
pub fn server_address(index: usize) -> IpAddr {
    let host = u32::try_from(index).map_or(u32::MAX, |i| i.saturating_add(1));
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000_u32.saturating_add(host)))
}

/// The server at a virtual address, if any.
fn server_at(addr: IpAddr, servers: usize) -> Option<usize> {
    (0..servers).find(|&i| server_address(i) == addr)
}

/// One mobilised association: a source of the `System` bound to one server.
struct Assoc {
    /// Unique for the run: replies for an association retired meanwhile find no one.
    id: SourceId,
    server: usize,
    /// Mobilised by the pool (only pool members are ever retired).
    from_pool: bool,
    /// The nonce of its request before the latest (what a replaying spoofer sends).
    previous_nonce: NtpTimestamp,
    /// The nonce of its latest request.
    nonce: NtpTimestamp,
}

/// The pool's resolver state.
struct PoolState {
    next_resolve: f64,
    queries: usize,
}

struct World<'a> {
    sc: &'a Scenario,
    clock: VirtualClock,
    /// Each server and its restrict table.
    servers: Vec<(Server, AccessTable)>,
    assocs: Vec<Assoc>,
    next_assoc_id: u32,
    next_first_poll: f64,
    pool: Option<PoolState>,
    /// Requests sent by associations that were retired since.
    retired_sent: u64,
    system: System,
    /// The client's own server, for its downstream client.
    own_server: Server,
    downstream: Option<Downstream>,
    in_flight: BinaryHeap<Datagram>,
    seq: u64,
    nonces: SimRng,
    links: Vec<SimRng>,
    /// Per server: its clock noise (drawn only for noisy servers).
    noise: Vec<SimRng>,
    /// Per server: its spoofer's guesses (drawn only for spoofed servers).
    spoofers: Vec<SimRng>,
    /// Whether the discipline has corrected the clock yet.
    started: bool,
    trace: Trace,
    timeline: Timeline,
    report: Report,
    /// The reference clocks, read once a second.
    refclocks: Vec<RefclockState>,
}

/// First source id of the reference clocks (servers count up from 0).
const REFCLOCK_ID_BASE: u32 = 1_000_000;

/// One reference clock of the client.
struct RefclockState {
    id: SourceId,
    spec: RefclockSpec,
    rng: SimRng,
    /// True time of its next poll, seconds.
    next_poll: f64,
}

impl<'a> World<'a> {
    fn new(sc: &'a Scenario) -> Self {
        let n = sc.servers.len();
        let pooled = |i: &usize| sc.pool.as_ref().is_some_and(|p| p.members.contains(i));
        let mut world = Self {
            sc,
            clock: VirtualClock::new(
                EPOCH,
                sc.client.offset_s,
                sc.client.oscillator,
                SimRng::fork(sc.seed, 1),
            ),
            servers: sc
                .servers
                .iter()
                .enumerate()
                .map(|(i, spec)| make_server(spec, sc.seed, i))
                .collect(),
            assocs: Vec::new(),
            next_assoc_id: 0,
            next_first_poll: FIRST_POLL_S,
            pool: sc.pool.as_ref().map(|_| PoolState {
                next_resolve: 0.0,
                queries: 0,
            }),
            retired_sent: 0,
            system: System::new(system_params(&sc.client), mono(0.0)),
            own_server: Server::default(),
            downstream: sc.downstream.as_ref().map(|spec| {
                let system = System::new(system_params(&spec.client), mono(0.0));
                Downstream::new(spec, sc.seed, EPOCH, system)
            }),
            in_flight: BinaryHeap::new(),
            seq: 0,
            nonces: SimRng::fork(sc.seed, 2),
            links: (0..n)
                .map(|i| SimRng::fork(sc.seed, 100 + i as u64))
                .collect(),
            noise: (0..n)
                .map(|i| SimRng::fork(sc.seed, 10_000 + i as u64))
                .collect(),
            spoofers: (0..n)
                .map(|i| SimRng::fork(sc.seed, 20_000 + i as u64))
                .collect(),
            started: false,
            trace: Trace::default(),
            timeline: Timeline::new(n),
            report: crate::scenario::empty_report(n),
            refclocks: Vec::new(),
        };
        for (k, spec) in sc.refclocks.iter().enumerate() {
            let id = SourceId(REFCLOCK_ID_BASE + u32::try_from(k).unwrap_or(0));
            let source = SourceSpec {
                params: sundial_proto::source::SourceParams {
                    minpoll: spec.poll,
                    maxpoll: spec.poll,
                    ..sc.client.source
                },
                address: None,
                prefer: spec.prefer,
                noselect: false,
                truechimer: false,
            };
            if matches!(spec.kind, RefclockKind::Pps { .. }) {
                world.system.add_pps(id, source, mono(0.0));
            } else {
                world.system.add_refclock(id, source, mono(0.0));
            }
            world.refclocks.push(RefclockState {
                id,
                spec: *spec,
                rng: SimRng::fork(sc.seed, 30_000 + k as u64),
                next_poll: f64::from(1u32 << spec.poll.clamp(0, 17)),
            });
        }
        for i in (0..n).filter(|i| !pooled(i)) {
            world.mobilize(i, false, 0.0);
        }
        world
    }

    /// A new association with server `server` at true time `t`; first polls are spread
    /// [`POLL_SPREAD_S`] apart, from [`FIRST_POLL_S`] on.
    fn mobilize(&mut self, server: usize, from_pool: bool, t: f64) {
        let first = self.next_first_poll.max(t);
        self.next_first_poll = first + POLL_SPREAD_S;
        let id = SourceId(self.next_assoc_id);
        let options = self.sc.servers[server].options;
        let spec = SourceSpec {
            params: self.sc.client.source,
            address: Some(server_address(server)),
            prefer: options.prefer,
            noselect: options.noselect,
            truechimer: options.truechimer,
        };
        self.system.add_source(id, spec, mono(first));
        self.assocs.push(Assoc {
            id,
            server,
            from_pool,
            previous_nonce: NtpTimestamp::ZERO,
            nonce: NtpTimestamp::ZERO,
        });
        self.next_assoc_id += 1;
        if let Some(log) = self.timeline.sources.get_mut(server) {
            log.mobilized.push(t);
        }
    }

    /// Whether the pool wants more associations (the daemon's rule: fewer than `maxclock`
    /// associations in all, and fewer than `maxclock` from the pool).
    fn pool_needs_members(&self) -> bool {
        let maxclock = self.sc.client.select.maxclock;
        self.assocs.len() < maxclock
            && self.assocs.iter().filter(|a| a.from_pool).count() < maxclock
    }

    /// Resolves the pool name and mobilises what `pool::to_mobilize` picks.
    fn resolve_pool(&mut self, t: f64) {
        let (Some(spec), Some(state)) = (self.sc.pool.as_ref(), self.pool.as_mut()) else {
            return;
        };
        state.next_resolve = t + POOL_REFRESH_S;
        let members = spec.members.len().max(1);
        let start = state.queries.saturating_mul(spec.answer_len);
        state.queries += 1;
        let answer: Vec<IpAddr> = (0..spec.answer_len.min(spec.members.len()))
            .filter_map(|k| spec.members.get((start + k) % members))
            .map(|&i| server_address(i))
            .collect();
        let in_use: Vec<SocketAddr> = self
            .assocs
            .iter()
            .map(|a| SocketAddr::new(server_address(a.server), NTP_PORT))
            .collect();
        let n = self.sc.servers.len();
        for addr in to_mobilize(&answer, NTP_PORT, &in_use, self.sc.client.select.maxclock) {
            if let Some(server) = server_at(addr.ip(), n) {
                self.mobilize(server, true, t);
            }
        }
    }

    /// Demobilises pool members that `pool::Member::should_retire` (silent for
    /// `UNREACH_BACKOFF` polls, or denied), and has the name resolved again at once.
    fn retire_pool_members(&mut self, t: f64) {
        let before = self.assocs.len();
        let (timeline, retired_sent) = (&mut self.timeline, &mut self.retired_sent);
        let system = &mut self.system;
        self.assocs.retain(|a| {
            let Some(source) = system.source(a.id) else {
                return false;
            };
            let member = Member {
                addr: SocketAddr::new(server_address(a.server), NTP_PORT),
                reach: source.reach(),
                unreach: source.unreach(),
                denied: source.denied().is_some(),
            };
            let retire = a.from_pool && member.should_retire();
            if retire {
                *retired_sent += source.packet_counts().0;
                system.remove_source(a.id);
                if let Some(log) = timeline.sources.get_mut(a.server) {
                    log.retired.push(t);
                }
            }
            !retire
        });
        if self.assocs.len() < before
            && let Some(state) = self.pool.as_mut()
        {
            state.next_resolve = t;
        }
    }

    fn run(mut self) -> (Report, Timeline) {
        let mut next_tick = 0.0;
        while !self.report.panicked {
            let poll = self.system.poll_timeout().map(MonoTime::as_seconds_f64);
            let datagram = self.in_flight.peek().map(|d| d.at);
            // A nanosecond late, so that the clock has surely reached the deadline.
            let timer = self.system.clock_timeout().map(|deadline| {
                (self.clock.true_time_of(deadline) + 1e-9).max(self.clock.true_time())
            });
            let pool = self
                .pool
                .as_ref()
                .filter(|_| self.pool_needs_members())
                .map(|p| p.next_resolve.max(self.clock.true_time()));
            let down_poll = self.downstream.as_ref().and_then(Downstream::poll_due);
            let down_timer = self.downstream.as_ref().and_then(Downstream::timer_due);
            let t = [
                Some(next_tick),
                poll,
                datagram,
                timer,
                pool,
                down_poll,
                down_timer,
            ]
            .into_iter()
            .flatten()
            .fold(f64::INFINITY, f64::min);
            if t > self.sc.duration_s {
                break;
            }
            self.clock.advance_to(t);
            if let Some(d) = self.downstream.as_mut() {
                d.clock.advance_to(t);
                if down_timer == Some(t) {
                    d.handle_timeout();
                    continue;
                }
                if down_poll == Some(t) {
                    if let Some((at, bytes)) = d.poll(t) {
                        self.seq += 1;
                        self.in_flight.push(Datagram {
                            at,
                            seq: self.seq,
                            server: 0,
                            assoc: SourceId(0),
                            to_server: true,
                            forged: false,
                            downstream: true,
                            bytes,
                        });
                    }
                    continue;
                }
            }
            if timer == Some(t) {
                self.system.handle_timeout(&mut self.clock);
                self.drain_events();
            } else if datagram == Some(t) {
                if let Some(d) = self.in_flight.pop() {
                    self.deliver(d);
                }
            } else if pool == Some(t) {
                self.resolve_pool(t);
            } else if poll == Some(t) {
                self.poll(t);
            } else {
                next_tick += TICK_S;
                self.read_refclocks(t);
                let converging = self.converging();
                self.trace.record(t, self.clock.offset(), true, converging);
                self.check_served();
                if let Some(d) = self.downstream.as_mut() {
                    d.record(t);
                }
                continue;
            }
            let converging = self.converging();
            self.trace.record(t, self.clock.offset(), false, converging);
        }
        self.finish()
    }

    fn poll(&mut self, t: f64) {
        let mut forgeries = Vec::new();
        for a in &mut self.assocs {
            let system = &mut self.system;
            let Some(due) = system
                .source(a.id)
                .and_then(Source::poll_timeout)
                .filter(|d| d.as_seconds_f64() <= t)
            else {
                continue;
            };
            let mut bytes = [0u8; HEADER_LEN];
            let nonces = &mut self.nonces;
            if system
                .poll_transmit(
                    a.id,
                    due.max(mono(t)),
                    &mut || nonces.next_u64(),
                    &NoKeys,
                    &mut bytes,
                )
                .is_none()
            {
                continue;
            }
            system.handle_sent(a.id, self.clock.now());
            let Some(source) = system.source(a.id) else {
                continue;
            };
            let i = a.server;
            a.previous_nonce = a.nonce;
            a.nonce = NtpHeader::decode(&bytes).transmit_timestamp;
            if let Some(log) = self.timeline.sources.get_mut(i) {
                log.requests.push(Request {
                    t,
                    hpoll: source.hpoll(),
                    reach: source.reach(),
                    unreach: source.unreach(),
                });
            }
            let (link, rng) = (&self.sc.servers[i].link, &mut self.links[i]);
            if let Some(at) = link.transit(Direction::Up, t, rng) {
                self.seq += 1;
                self.in_flight.push(Datagram {
                    at,
                    seq: self.seq,
                    server: i,
                    assoc: a.id,
                    to_server: true,
                    forged: false,
                    downstream: false,
                    bytes,
                });
            }
            if self.sc.servers[i].spoofer.is_some() {
                forgeries.push((i, a.id, a.nonce, a.previous_nonce));
            }
        }
        for (server, assoc, nonce, previous) in forgeries {
            self.forge(t, server, assoc, nonce, previous);
        }
        if self.pool.is_some() {
            self.retire_pool_members(t);
        }
    }

    /// Sends the spoofer's forgery for the request association `assoc` just sent at `t`: it
    /// arrives `lead_s` later, before the genuine reply.
    fn forge(
        &mut self,
        t: f64,
        server: usize,
        assoc: SourceId,
        nonce: NtpTimestamp,
        previous: NtpTimestamp,
    ) {
        let Some(spoofer) = self.sc.servers.get(server).and_then(|s| s.spoofer) else {
            return;
        };
        let origin = match spoofer.origin {
            SpoofOrigin::Guess => match self.spoofers.get_mut(server) {
                Some(rng) => NtpTimestamp::from_bits(rng.next_u64()),
                None => return,
            },
            SpoofOrigin::Stale => previous,
            SpoofOrigin::Correct => nonce,
        };
        let at = t + spoofer.lead_s;
        let stamp = reading(EPOCH, at + spoofer.offset_s);
        let mut header = NtpHeader::new(4, Mode::Server);
        header.stratum = 1;
        header.poll = Log2Seconds::new(self.sc.client.source.minpoll);
        header.precision = SERVER_PRECISION;
        header.reference_id = ReferenceId::from_bytes(*b"GPS\0");
        header.reference_timestamp = stamp - NtpDuration::from_seconds_f64(SERVER_REFERENCE_AGE_S);
        header.origin_timestamp = origin;
        header.receive_timestamp = stamp;
        header.transmit_timestamp = stamp;
        let mut bytes = [0u8; HEADER_LEN];
        header.emit(&mut bytes);
        self.seq += 1;
        self.in_flight.push(Datagram {
            at,
            seq: self.seq,
            server,
            assoc,
            to_server: false,
            forged: true,
            downstream: false,
            bytes,
        });
    }

    fn deliver(&mut self, d: Datagram) {
        if d.downstream {
            if d.to_server {
                self.serve_downstream(&d);
            } else if let Some(down) = self.downstream.as_mut() {
                down.receive(d.at, &d.bytes);
            }
            return;
        }
        if d.to_server {
            self.serve(d);
            return;
        }
        let t4 = self.clock.now();
        // An association retired meanwhile has closed its socket.
        let Some(outcome) = self.system.handle_response(
            d.assoc,
            t4,
            &d.bytes,
            &NoKeys,
            &mut self.clock,
            mono(d.at),
        ) else {
            return;
        };
        if let Some(log) = self.timeline.sources.get_mut(d.server) {
            log.replies.push(Reply {
                t: d.at,
                outcome,
                forged: d.forged,
            });
        }
        self.drain_events();
    }

    fn serve(&mut self, d: Datagram) {
        let spec = &self.sc.servers[d.server];
        if spec.stops_at_s.is_some_and(|stop| d.at >= stop) {
            return;
        }
        // One draw per reply, only for a noisy server: T2 and T3 are off by the same amount.
        let noise = match self.noise.get_mut(d.server) {
            Some(rng) if spec.clock_noise_s > 0.0 => spec.clock_noise_s * rng.normal(),
            _ => 0.0,
        };
        let receive_time = reading(EPOCH, d.at + spec.offset_s + noise);
        let state = SystemState {
            leap: Leap::NoWarning,
            stratum: 1,
            precision: SERVER_PRECISION,
            root_delay: NtpDuration::ZERO,
            root_dispersion: NtpDuration::ZERO,
            reference_id: ReferenceId::from_bytes(*b"GPS\0"),
            reference_time: receive_time - NtpDuration::from_seconds_f64(SERVER_REFERENCE_AGE_S),
        };
        let meta = RequestMeta {
            source: ([192, 0, 2, 100], 40123).into(),
            destination: None,
            receive_time,
            monotonic: mono(d.at),
            truncated: false,
            client: None,
        };
        let sent = d.at + SERVER_PROCESSING_S;
        let mut out = [0u8; HEADER_LEN + 4];
        let (server, access) = &self.servers[d.server];
        let action = server.handle(
            &Policy::new(access),
            &meta,
            &d.bytes,
            &state,
            &mut out,
            || reading(EPOCH, sent + spec.offset_s + noise),
        );
        let Action::Reply(HEADER_LEN) = action else {
            return;
        };
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(&out[..HEADER_LEN]);
        if let Some(at) = spec
            .link
            .transit(Direction::Down, sent, &mut self.links[d.server])
        {
            self.seq += 1;
            self.in_flight.push(Datagram {
                at,
                seq: self.seq,
                server: d.server,
                assoc: d.assoc,
                to_server: false,
                forged: false,
                downstream: false,
                bytes,
            });
        }
    }

    /// The client under test answers its downstream client with what it serves: the real
    /// `Server`, its served state, and its served time (clock plus the correction in progress)
    /// as receive and transmit time stamps.
    fn serve_downstream(&mut self, d: &Datagram) {
        let receive_time = self.system.served_time(self.clock.now());
        let meta = RequestMeta {
            source: DOWNSTREAM_ADDRESS.into(),
            destination: None,
            receive_time,
            monotonic: mono(d.at),
            truncated: false,
            client: None,
        };
        let state = self.system.served_state();
        let mut out = [0u8; HEADER_LEN + 4];
        let access = AccessTable::new();
        let action = self.own_server.handle(
            &Policy::new(&access),
            &meta,
            &d.bytes,
            &state,
            &mut out,
            || receive_time + NtpDuration::from_seconds_f64(SERVER_PROCESSING_S),
        );
        let Action::Reply(HEADER_LEN) = action else {
            return;
        };
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(&out[..HEADER_LEN]);
        let Some(down) = self.downstream.as_mut() else {
            return;
        };
        if let Some(at) = down.reply_arrival(d.at + SERVER_PROCESSING_S) {
            self.seq += 1;
            self.in_flight.push(Datagram {
                at,
                seq: self.seq,
                server: 0,
                assoc: SourceId(0),
                to_server: false,
                forged: false,
                downstream: true,
                bytes,
            });
        }
    }

    /// Reads what the system did: selection rounds for the timeline and the report, samples
    /// fed, corrections, a panic.
    fn drain_events(&mut self) {
        while let Some(event) = self.system.poll_event() {
            match event {
                Event::Selected => self.record_round(),
                Event::Fed(id) => {
                    let server = self.assocs.iter().find(|a| a.id == id).map(|a| a.server);
                    if let Some(log) = server.and_then(|i| self.timeline.sources.get_mut(i)) {
                        log.fed += 1;
                    }
                }
                Event::Slewed { .. } | Event::Stepped { .. } => {
                    self.started = true;
                    self.report.updates += 1;
                }
                Event::OneShot { .. } => self.report.updates += 1,
                Event::Panic { .. } => self.report.panicked = true,
                _ => {}
            }
        }
    }

    /// Records a selection round: each server's tally and selection input.
    fn record_round(&mut self) {
        let n = self.sc.servers.len();
        let mut round = Round {
            t: self.clock.true_time(),
            tallies: vec![None; n],
            system_peer: None,
            inputs: vec![None; n],
            offset: self.system.combined_offset().to_seconds_f64(),
        };
        for view in self.system.sources() {
            let Some(i) = self
                .assocs
                .iter()
                .find(|a| a.id == view.id)
                .map(|a| a.server)
            else {
                continue;
            };
            if view.tally == Tally::SystemPeer {
                self.report.system_peer_rounds[i] += 1;
                round.system_peer = Some(i);
            }
            if self.started && view.input.is_some() && view.tally != Tally::Falseticker {
                self.report.trusted_rounds[i] += 1;
            }
            round.tallies[i] = Some(view.tally);
            round.inputs[i] = view.input;
        }
        self.timeline.rounds.push(round);
    }

    /// Compares the time the client serves now with true time and with the error bound it
    /// advertises (RFC 5905: root delay / 2 + root dispersion), while it claims
    /// synchronisation.
    fn check_served(&mut self) {
        let state = self.system.served_state();
        if !state.is_synchronized() {
            return;
        }
        let now = self.clock.now();
        let error = self.system.served_correction(now).to_seconds_f64() - self.clock.offset();
        let bound = state.root_delay.to_seconds_f64() / 2.0
            + state.root_dispersion_at(now).to_seconds_f64();
        let r = &mut self.report;
        r.served_readings += 1;
        r.served_max_s = r.served_max_s.max(error.abs());
        r.bound_mean_s += (bound - r.bound_mean_s) / r.served_readings as f64;
        if error.abs() > bound {
            r.bound_misses += 1;
        }
        if bound > 0.0 {
            r.bound_max_ratio = r.bound_max_ratio.max(error.abs() / bound);
        }
    }

    /// Whether the slew under way corrects more than the sync limit: every slew of a
    /// smaller correction is spread over a second, so a faster rate means a larger one.
    fn converging(&self) -> bool {
        self.system
            .pending_slew()
            .is_some_and(|p| p.rate.abs() >= SYNC_LIMIT_S)
    }

    /// Once a second (true time `t`, a whole second): every reference clock's reading, and
    /// the polls that are due.
    fn read_refclocks(&mut self, t: f64) {
        let info = PeerInfo {
            stratum: 0,
            precision: -20,
            reference_id: ReferenceId::from_bytes(*b"GPS\0"),
            ..PeerInfo::default()
        };
        for k in 0..self.refclocks.len() {
            let numbering = self.system.pps_numbering();
            let Some(rc) = self.refclocks.get_mut(k) else {
                continue;
            };
            let now = self.clock.now();
            let reading = match rc.spec.kind {
                RefclockKind::Gps {
                    late_s,
                    jitter_s,
                    time1_s,
                } => {
                    // The time code of second t - late arrives now (true time t).
                    let named = reading(EPOCH, t - late_s - jitter_s * rc.rng.normal());
                    Some(Reading {
                        reference: named + NtpDuration::from_seconds_f64(time1_s),
                        receive: now,
                        leap: Leap::NoWarning,
                    })
                }
                RefclockKind::Pps { jitter_s } => {
                    let edge = now + NtpDuration::from_seconds_f64(jitter_s * rc.rng.normal());
                    pps::pair(edge, numbering).ok()
                }
            };
            if let Some(r) = reading {
                self.system.handle_reading(rc.id, r);
            }
            if t >= rc.next_poll {
                rc.next_poll += f64::from(1u32 << rc.spec.poll.clamp(0, 17));
                let id = rc.id;
                self.system
                    .handle_refclock(id, info, &mut self.clock, mono(t));
                self.drain_events();
            }
        }
    }

    fn finish(mut self) -> (Report, Timeline) {
        self.report.final_stratum = self.system.served_state().stratum;
        let outage = self
            .sc
            .servers
            .iter()
            .flat_map(|s| s.link.outages.iter().map(|o| o.start_s))
            .fold(self.sc.duration_s, f64::min);
        let r = &mut self.report;
        self.trace.summarise(r, outage);
        r.final_offset_s = self.clock.offset();
        let readout = self.system.readout();
        r.final_freq_error_ppm = self.clock.rate_error_with(readout.frequency.value()) * 1e6;
        r.packets_sent = self.retired_sent
            + self
                .system
                .sources()
                .map(|v| v.source.packet_counts().0)
                .sum::<u64>();
        r.steps = self.clock.steps();
        r.final_poll = readout.poll;
        r.downstream = self.downstream.as_ref().map(Downstream::report);
        (self.report, self.timeline)
    }
}

/// A client's system process: its selection and discipline settings, ntpd's default fitness,
/// no fallback.
fn system_params(client: &ClientSpec) -> SystemParams {
    let discipline = DisciplineParams {
        // As in the daemon: iburst asks for the fastest start, not a measured one.
        frequency_hold: client.discipline.frequency_hold && !client.source.iburst,
        ..client.discipline
    };
    SystemParams {
        select: client.select,
        fitness: Fitness::default(),
        discipline: Some(discipline),
        poll_range: (discipline.minpoll, discipline.maxpoll),
        fallback: Fallback::None,
        upstream_configured: true,
        precision: CLIENT_PRECISION,
        one_shot: discipline.one_shot,
    }
}

/// The server for `spec`: the plain one, or one behind `restrict default limited kod` with the
/// real rate limiter, keyed and seeded from the scenario seed.
fn make_server(spec: &ServerSpec, seed: u64, index: usize) -> (Server, AccessTable) {
    let Some(params) = spec.rate_limit else {
        return (Server::default(), AccessTable::new());
    };
    let mut rng = SimRng::fork(seed, 30_000 + index as u64);
    let key = SipKey::new(rng.next_u64(), rng.next_u64());
    let mut access = AccessTable::new();
    access.add_default(true, true, RestrictFlags::LIMITED | RestrictFlags::KOD);
    let limiter = Arc::new(RateLimiter::new(LIMITER_ENTRIES, params, key));
    (Server::with_limiter(limiter, rng.next_u64()), access)
}

/// A monotonic time `secs` after the start.
fn mono(secs: f64) -> MonoTime {
    MonoTime::from_duration(Duration::from_secs_f64(secs.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_has_its_own_address_and_is_found_by_it() {
        let addrs: Vec<IpAddr> = (0..300).map(server_address).collect();
        assert_eq!(addrs[0], IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(addrs[299], IpAddr::V4(Ipv4Addr::new(10, 0, 1, 44)));
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(server_at(*a, 300), Some(i));
        }
        assert_eq!(server_at(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 3), None);
    }
}
