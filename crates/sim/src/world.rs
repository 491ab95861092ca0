//! The discrete-event loop: the real core (one `Source` per server, `select`, the discipline)
//! as a client, real `Server`s on the far side of virtual links, and a virtual clock in
//! between. Time jumps from event to event — a poll falling due, a datagram arriving, the
//! discipline's timer, a once-a-second measurement of the true offset — so hours of simulated
//! time take milliseconds.
//!
//! The client does what the daemon's main loop does (see `sundial_proto::discipline`): after
//! every good reply it runs selection, waits for every association at start-up, feeds each new
//! sample of a survivor to the discipline in time order, and passes the phase of every slew to
//! every association.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use sundial_proto::clock::Clock;
use sundial_proto::discipline::{Discipline, Observation, Update, sources_settled};
use sundial_proto::packet::{HEADER_LEN, Leap, ReferenceId};
use sundial_proto::select::{Candidate, SelectParams, Tally, select};
use sundial_proto::server::{Action, RequestMeta, Server};
use sundial_proto::source::{Outcome, Source};
use sundial_proto::sync::leap_majority;
use sundial_proto::system::SystemState;
use sundial_proto::time::{Log2Seconds, MonoTime, NtpDuration, UnixTime};

use crate::clock::{VirtualClock, reading};
use crate::network::Direction;
use crate::rng::SimRng;
use crate::scenario::{Report, Scenario};
use crate::trace::Trace;

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

/// `tos mindist` (ntpd default): the floor of every root distance.
const MINDIST_S: f64 = 0.001;

/// `tos maxdist` (ntpd default): sources farther away are unfit.
const MAXDIST_S: f64 = 1.5;

/// When the first association polls, true seconds after the start.
const FIRST_POLL_S: f64 = 1.0;

/// How far apart the first polls of the associations are (ntpd spreads them so that start-up
/// is not one burst).
const POLL_SPREAD_S: f64 = 1.0;

/// Interval of the true-offset measurements, seconds.
const TICK_S: f64 = 1.0;

/// A datagram in flight.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    at: f64,
    seq: u64,
    server: usize,
    to_server: bool,
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
    World::new(scenario).run()
}

struct World<'a> {
    sc: &'a Scenario,
    clock: VirtualClock,
    servers: Vec<Server>,
    sources: Vec<Source>,
    /// Whether each source has a sample the discipline has not seen.
    pending: Vec<bool>,
    discipline: Discipline,
    in_flight: BinaryHeap<Datagram>,
    seq: u64,
    nonces: SimRng,
    links: Vec<SimRng>,
    system_peer: Option<usize>,
    started: bool,
    trace: Trace,
    report: Report,
}

impl<'a> World<'a> {
    fn new(sc: &'a Scenario) -> Self {
        let n = sc.servers.len();
        let sources = (0..n)
            .map(|i| {
                #[expect(clippy::cast_precision_loss, reason = "a handful of servers")]
                let first = FIRST_POLL_S + POLL_SPREAD_S * i as f64;
                Source::new(sc.client.source, mono(first))
            })
            .collect();
        Self {
            sc,
            clock: VirtualClock::new(
                EPOCH,
                sc.client.offset_s,
                sc.client.oscillator,
                SimRng::fork(sc.seed, 1),
            ),
            servers: (0..n).map(|_| Server::default()).collect(),
            sources,
            pending: vec![false; n],
            discipline: Discipline::new(sc.client.discipline),
            in_flight: BinaryHeap::new(),
            seq: 0,
            nonces: SimRng::fork(sc.seed, 2),
            links: (0..n)
                .map(|i| SimRng::fork(sc.seed, 100 + i as u64))
                .collect(),
            system_peer: None,
            started: false,
            trace: Trace::default(),
            report: crate::scenario::empty_report(n),
        }
    }

    fn run(mut self) -> Report {
        let mut next_tick = 0.0;
        while !self.report.panicked {
            let poll = self
                .sources
                .iter()
                .filter_map(Source::poll_timeout)
                .map(|m| m.as_seconds_f64())
                .min_by(f64::total_cmp);
            let datagram = self.in_flight.peek().map(|d| d.at);
            // A nanosecond late, so that the clock has surely reached the deadline.
            let timer = self.discipline.next_timeout().map(|deadline| {
                (self.clock.true_time_of(deadline) + 1e-9).max(self.clock.true_time())
            });
            let t = [Some(next_tick), poll, datagram, timer]
                .into_iter()
                .flatten()
                .fold(f64::INFINITY, f64::min);
            if t > self.sc.duration_s {
                break;
            }
            self.clock.advance_to(t);
            if timer == Some(t) {
                let Ok(phase) = self.discipline.handle_timeout(&mut self.clock);
                self.correct_sources(phase);
            } else if datagram == Some(t) {
                if let Some(d) = self.in_flight.pop() {
                    self.deliver(d);
                }
            } else if poll == Some(t) {
                self.poll(t);
            } else {
                next_tick += TICK_S;
                self.trace.record(t, self.clock.offset(), true);
                continue;
            }
            self.trace.record(t, self.clock.offset(), false);
        }
        self.finish()
    }

    fn poll(&mut self, t: f64) {
        for (i, source) in self.sources.iter_mut().enumerate() {
            let Some(due) = source.poll_timeout().filter(|d| d.as_seconds_f64() <= t) else {
                continue;
            };
            let mut bytes = [0u8; HEADER_LEN];
            let nonces = &mut self.nonces;
            if source
                .poll_transmit(due.max(mono(t)), &mut || nonces.next_u64(), &mut bytes)
                .is_none()
            {
                continue;
            }
            source.handle_sent(self.clock.now());
            let (link, rng) = (&self.sc.servers[i].link, &mut self.links[i]);
            if let Some(at) = link.transit(Direction::Up, t, rng) {
                self.seq += 1;
                self.in_flight.push(Datagram {
                    at,
                    seq: self.seq,
                    server: i,
                    to_server: true,
                    bytes,
                });
            }
        }
    }

    fn deliver(&mut self, d: Datagram) {
        if d.to_server {
            self.serve(d);
            return;
        }
        let t4 = self.clock.now();
        let Some(source) = self.sources.get_mut(d.server) else {
            return;
        };
        let outcome = source.handle_response(t4, &d.bytes, CLIENT_PRECISION.as_seconds_f64());
        if matches!(outcome, Outcome::Sample(_)) {
            self.pending[d.server] = true;
            self.select_and_discipline();
        }
    }

    fn serve(&mut self, d: Datagram) {
        let spec = &self.sc.servers[d.server];
        let receive_time = reading(EPOCH, d.at + spec.offset_s);
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
        };
        let sent = d.at + SERVER_PROCESSING_S;
        let mut out = [0u8; HEADER_LEN + 4];
        let action = self.servers[d.server].handle(&meta, &d.bytes, &state, &mut out, || {
            reading(EPOCH, sent + spec.offset_s)
        });
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
                to_server: false,
                bytes,
            });
        }
    }

    /// Selection, then the discipline: what the daemon does after every good reply.
    fn select_and_discipline(&mut self) {
        // At start-up and after a step there is no system peer until every association has
        // answered or missed a poll, so that the first to answer cannot take over alone.
        if self.discipline.needs_all_sources() && !sources_settled(&self.sources) {
            return;
        }
        let now = self.clock.now();
        let inputs: Vec<Option<Candidate>> = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.candidate(now, MINDIST_S, MAXDIST_S).map(|c| Candidate {
                    was_system_peer: self.system_peer == Some(i),
                    ..c
                })
            })
            .collect();
        let selection = select(&inputs, &SelectParams::default());
        self.system_peer = selection.system_peer;
        for (i, tally) in selection.tallies.iter().enumerate() {
            if *tally == Tally::SystemPeer {
                self.report.system_peer_rounds[i] += 1;
            }
            if self.started && inputs[i].is_some() && *tally != Tally::Falseticker {
                self.report.trusted_rounds[i] += 1;
            }
        }
        if selection.system_peer.is_none() {
            return;
        }
        let survivors: Vec<usize> = (0..self.sources.len())
            .filter(|&i| matches!(selection.tallies[i], Tally::SystemPeer | Tally::Candidate))
            .collect();
        let leap = leap_majority(
            survivors
                .iter()
                .filter_map(|&i| self.sources[i].peer().map(|p| p.leap)),
        );
        let mut feed: Vec<(i64, usize)> = survivors
            .iter()
            .filter(|&&i| self.pending[i])
            .filter_map(|&i| {
                let t = self.sources[i].latest_sample()?.time;
                Some(((t - now).to_bits(), i))
            })
            .collect();
        feed.sort_unstable();
        self.pending.fill(false);
        for (_, i) in feed {
            let Some(obs) = Observation::from_source(&self.sources[i], selection.jitter, leap, now)
            else {
                continue;
            };
            let Ok(update) = self.discipline.update(&mut self.clock, &obs);
            match update {
                Update::Slewed { phase, .. } => {
                    self.started = true;
                    self.report.updates += 1;
                    self.correct_sources(phase);
                }
                Update::Stepped { .. } => {
                    self.started = true;
                    self.report.updates += 1;
                    self.sources.iter_mut().for_each(Source::reset_filter);
                    break;
                }
                Update::OneShot { .. } => self.report.updates += 1,
                Update::Panic { .. } => {
                    self.report.panicked = true;
                    break;
                }
                Update::Spike { .. } | Update::Ignored(_) => {}
            }
        }
        let poll = self.discipline.poll();
        self.sources
            .iter_mut()
            .for_each(|s| s.set_system_poll(poll));
    }

    fn correct_sources(&mut self, phase: f64) {
        if phase != 0.0 {
            for s in &mut self.sources {
                s.apply_clock_correction(phase);
            }
        }
    }

    fn finish(mut self) -> Report {
        let outage = self
            .sc
            .servers
            .iter()
            .flat_map(|s| s.link.outages.iter().map(|o| o.start_s))
            .fold(self.sc.duration_s, f64::min);
        let r = &mut self.report;
        self.trace.summarise(r, outage);
        r.final_offset_s = self.clock.offset();
        let readout = self.discipline.readout();
        r.final_freq_error_ppm = self.clock.rate_error_with(readout.frequency_ppm) * 1e6;
        r.packets_sent = self.sources.iter().map(|s| s.packet_counts().0).sum();
        r.steps = self.clock.steps();
        r.final_poll = readout.poll;
        self.report
    }
}

/// A monotonic time `secs` after the start.
fn mono(secs: f64) -> MonoTime {
    MonoTime::from_duration(Duration::from_secs_f64(secs.max(0.0)))
}
