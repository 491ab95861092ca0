//! The system process: after every new sample and once a second, select among the
//! associations and publish what the server claims — the system peer's time one stratum down,
//! or the local-clock/orphan fallback, or "unsynchronised".

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sundial_proto::access::{AccessTable, RestrictFlags};
use sundial_proto::counters::CounterSnapshot;
use sundial_proto::fallback::Fallback;
use sundial_proto::select::{SelectParams, Tally};
use sundial_proto::source::Fitness;
use sundial_proto::sync::{PollAdapter, SystemPeer, follow, leap_majority};
use sundial_proto::system::SystemState;
use sundial_proto::time::Log2Seconds;

use crate::associations::{Arrival, Associations};
use crate::clock::kernel_now;
use crate::config::Config;
use crate::publish::{Publisher, Snapshot};
use crate::setup::{self, Runtime};
use crate::status::{self, Serving, SystemView};
use crate::steering::{Event, Steering};

/// With upstream servers configured, how long the local clock waits before standing in for
/// them at start-up, so clients are not served an undisciplined clock during the first polls.
const LOCAL_CLOCK_GRACE: Duration = Duration::from_secs(60);

/// The system process.
#[derive(Debug)]
pub struct Timekeeper {
    fallback: Fallback,
    params: SelectParams,
    fitness: Fitness,
    precision: Log2Seconds,
    poll: PollAdapter,
    started: Instant,
    last_synced: Option<Instant>,
    upstream_configured: bool,
    serving: Serving,
    tallies: String,
    /// Association id of the local clock driver's row in ntpq, if one is configured.
    local_clock_id: Option<u16>,
    mintc: i8,
    /// Combined offset and jitter of the last selection, seconds.
    last_offset: f64,
    last_jitter: f64,
    /// Server counters summed over all threads, as of the last main-loop turn.
    counters: CounterSnapshot,
    /// The discipline and the clock it steers; `None` with `--clock none`.
    steering: Option<Steering>,
    /// `-q`: exit once the clock is set.
    one_shot: bool,
    /// The configured restrict table and the `restrict source` flags, and the table in force
    /// with an entry for each association's address (rebuilt when the addresses change).
    base_access: AccessTable,
    source_flags: Option<RestrictFlags>,
    access: Arc<AccessTable>,
    access_addrs: Vec<IpAddr>,
}

/// Whether ntpd goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep running.
    Run,
    /// Exit with this status.
    Exit(u8),
}

impl Timekeeper {
    /// A timekeeper for this configuration. `steering` is the discipline and its clock
    /// (`None` with `--clock none`); `one_shot` is `-q`.
    pub fn new(
        config: &Config,
        runtime: &Runtime,
        precision: Log2Seconds,
        associations: &mut Associations,
        steering: Option<Steering>,
        one_shot: bool,
    ) -> Self {
        let fallback = runtime.fallback;
        let upstream_configured = runtime.upstream_configured;
        let local_clock_id =
            matches!(fallback, Fallback::LocalClock { .. }).then(|| associations.reserve_id());
        let (minpoll, maxpoll) = config.poll_range();
        if let Some(steering) = steering.as_ref() {
            steering.set_start_up_polling(associations);
        }
        Self {
            fallback,
            params: SelectParams {
                minclock: usize::from(config.tos.minclock.max(1)),
                maxclock: usize::from(config.tos.maxclock.max(1)),
                minsane: usize::from(config.tos.minsane),
            },
            fitness: Fitness {
                mindist: config.tos.mindist.to_seconds_f64(),
                maxdist: config.tos.maxdist.to_seconds_f64(),
                floor: config.tos.floor,
                ceiling: config.tos.ceiling,
            },
            precision,
            poll: PollAdapter::new(minpoll, maxpoll),
            started: Instant::now(),
            last_synced: None,
            upstream_configured,
            serving: Serving::Unsynchronized,
            tallies: String::new(),
            local_clock_id,
            mintc: minpoll,
            last_offset: 0.0,
            last_jitter: 0.0,
            counters: CounterSnapshot::default(),
            steering,
            one_shot,
            access: Arc::new(runtime.access.clone()),
            base_access: runtime.access.clone(),
            source_flags: runtime.source_flags,
            access_addrs: Vec::new(),
        }
    }

    /// Records the server counters for the next published snapshot.
    pub fn set_counters(&mut self, counters: CounterSnapshot) {
        self.counters = counters;
    }

    /// The local clock's precision in seconds.
    pub fn precision_seconds(&self) -> f64 {
        self.precision.as_seconds_f64()
    }

    /// Runs selection, disciplines the clock with the survivors' new samples (when a clock is
    /// steered), and publishes the result. `arrival` says whether a reply just arrived: the
    /// discipline takes every new sample, the `--clock none` poll adaptation only new filter
    /// estimates.
    /// Returns [`Verdict::Exit`] when ntpd must stop (panic threshold, or `-q` is done).
    pub fn update(
        &mut self,
        associations: &mut Associations,
        publisher: &Publisher,
        arrival: Arrival,
    ) -> Verdict {
        let current = publisher.current();
        let mapping = self
            .steering
            .as_ref()
            .map_or(current.mapping, Steering::mapping);
        let now_ts = mapping.map(kernel_now());
        let (selection, _) = associations.select(now_ts, &self.params, &self.fitness);
        let waiting = self
            .steering
            .as_ref()
            .is_some_and(|s| s.waiting_for_sources(associations));
        let peer = associations
            .system_peer()
            .filter(|_| !waiting)
            .and_then(|p| {
                Some((
                    p.id,
                    p.host.clone(),
                    p.addr,
                    SystemPeer {
                        addr: Some(p.addr.ip()),
                        info: p.source.peer()?,
                        estimate: p.source.estimate()?,
                    },
                ))
            });
        let mut verdict = Verdict::Run;
        let (system, serving) = match peer {
            Some((id, _, _, sys_peer)) => {
                let leaps = associations
                    .peers()
                    .iter()
                    .filter(|p| matches!(p.tally, Tally::SystemPeer | Tally::Candidate))
                    .filter_map(|p| p.source.peer().map(|i| i.leap));
                let leap = leap_majority(leaps);
                self.last_synced = Some(Instant::now());
                let mut stepped = false;
                if arrival != Arrival::Nothing {
                    match self.steering.as_mut() {
                        Some(steering) => {
                            let event = steering.feed(associations, &selection, leap);
                            associations.set_system_poll(steering.poll());
                            steering.set_start_up_polling(associations);
                            stepped = matches!(event, Event::Stepped(_));
                            verdict = self.act_on(event);
                        }
                        None if arrival == Arrival::Estimate => {
                            let tc = self.poll.update(selection.offset, selection.jitter);
                            associations.set_system_poll(tc);
                            if self.one_shot {
                                println!(
                                    "ntpd: offset {:+.6}s (clock not set: --clock none)",
                                    selection.offset
                                );
                                verdict = Verdict::Exit(0);
                            }
                        }
                        None => {}
                    }
                }
                let disciplined = self.steering.as_ref().is_none_or(Steering::is_synchronized);
                if stepped || !disciplined {
                    // Until the discipline has the clock in hand, clients are told so.
                    (
                        SystemState::unsynchronized(self.precision),
                        Serving::Peer(id),
                    )
                } else {
                    (
                        follow(&sys_peer, &selection, leap, self.precision),
                        Serving::Peer(id),
                    )
                }
            }
            None => match self.fallback_state(now_ts) {
                Some(state) => (state, Serving::Fallback),
                None => (
                    SystemState::unsynchronized(self.precision),
                    Serving::Unsynchronized,
                ),
            },
        };
        self.log_changes(
            serving,
            peer.as_ref()
                .map(|(_, h, a, s)| (h.as_str(), *a, s.info.stratum)),
            associations,
        );
        if serving != Serving::Fallback {
            self.last_offset = selection.offset;
            self.last_jitter = selection.jitter;
        }
        if let Some(steering) = self.steering.as_mut() {
            steering.drift_tick(Instant::now());
            steering.leap_tick();
        }
        let readout = self.steering.as_ref().map(Steering::readout);
        let fallback = serving == Serving::Fallback;
        let view = SystemView {
            state: &system,
            now: now_ts,
            serving,
            fallback: &self.fallback,
            local_clock_id: self.local_clock_id,
            tc: readout.map_or_else(|| self.poll.poll(), |r| r.poll),
            mintc: self.mintc,
            offset: match (fallback, readout) {
                (true, _) => 0.0,
                (false, Some(r)) => r.offset,
                (false, None) => self.last_offset,
            },
            jitter: if fallback { 0.0 } else { self.last_jitter },
            frequency: readout.map_or(0.0, |r| r.frequency_ppm),
            clk_jitter: readout.map_or(0.0, |r| r.clk_jitter),
            clk_wander: readout.map_or(0.0, |r| r.clk_wander_ppm),
            counters: self.counters,
            uptime: self.started.elapsed(),
        };
        let control = Arc::new(status::snapshot(associations, &view));
        let access = self.access_for(associations);
        // The discipline may just have stepped or re-rated the simulated clock: publish the
        // mapping as it is now, not as it was when this update began.
        let mapping = self.steering.as_ref().map_or(mapping, Steering::mapping);
        publisher.publish(Snapshot {
            system,
            mapping,
            control,
            access,
            keys: Arc::clone(&publisher.current().keys),
        });
        verdict
    }

    /// Takes up a reloaded configuration's `tos` and restrict table; the discipline, the
    /// frequency and the drift file are left alone.
    pub fn reconfigure(&mut self, config: &Config, runtime: &Runtime) {
        self.params = SelectParams {
            minclock: usize::from(config.tos.minclock.max(1)),
            maxclock: usize::from(config.tos.maxclock.max(1)),
            minsane: usize::from(config.tos.minsane),
        };
        self.fitness = Fitness {
            mindist: config.tos.mindist.to_seconds_f64(),
            maxdist: config.tos.maxdist.to_seconds_f64(),
            floor: config.tos.floor,
            ceiling: config.tos.ceiling,
        };
        // `tos orphan` can change at once; the local clock driver comes from reference clock
        // lines, which only a restart changes (it owns an association id).
        let new_fallback = setup::fallback(config);
        if !matches!(self.fallback, Fallback::LocalClock { .. })
            && !matches!(new_fallback, Fallback::LocalClock { .. })
        {
            self.fallback = new_fallback;
        }
        self.base_access = runtime.access.clone();
        self.source_flags = runtime.source_flags;
        self.access = Arc::new(runtime.access.clone());
        // Forces `access_for` to add the `restrict source` entries again.
        self.access_addrs.clear();
        self.access_addrs.push(IpAddr::from([0, 0, 0, 0]));
    }

    /// The restrict table in force: the configured one plus `restrict source` entries for the
    /// addresses associations use now.
    fn access_for(&mut self, associations: &Associations) -> Arc<AccessTable> {
        let mut addrs: Vec<IpAddr> = associations.peers().iter().map(|p| p.addr.ip()).collect();
        addrs.sort();
        addrs.dedup();
        if self.source_flags.is_some() && addrs != self.access_addrs {
            self.access = Arc::new(setup::with_sources(
                &self.base_access,
                self.source_flags,
                addrs.iter().copied(),
            ));
            self.access_addrs = addrs;
        }
        Arc::clone(&self.access)
    }

    /// Runs the discipline's timer (the end of a slew or of the start-up frequency
    /// measurement) if it is due, republishing the clock.
    pub fn on_timer(&mut self, associations: &mut Associations, publisher: &Publisher) -> Verdict {
        let Some(steering) = self.steering.as_mut() else {
            return Verdict::Run;
        };
        steering.on_timer(associations);
        steering.set_start_up_polling(associations);
        let current = publisher.current();
        let mapping = steering.mapping();
        if mapping != current.mapping {
            publisher.publish(Snapshot {
                mapping,
                ..(*current).clone()
            });
        }
        if self.one_shot && steering.one_shot_finished() {
            return Verdict::Exit(0);
        }
        Verdict::Run
    }

    /// How long until the discipline's timer is due.
    pub fn timeout(&self) -> Option<Duration> {
        self.steering.as_ref().and_then(Steering::timeout)
    }

    /// Saves the drift file at clean shutdown.
    pub fn shutdown(&mut self) {
        if let Some(steering) = self.steering.as_mut() {
            steering.shutdown();
        }
    }

    fn act_on(&mut self, event: Event) -> Verdict {
        match event {
            Event::Panic { offset, threshold } => {
                tracing::error!(
                    "time correction of {offset:+.0} s exceeds the panic threshold of {threshold:.0} s; \
                     set the clock manually (or start ntpd with -g) — exiting"
                );
                Verdict::Exit(1)
            }
            Event::OneShot { offset, stepped } => {
                let what = if stepped { "set" } else { "slew" };
                println!("ntpd: time {what} {offset:+.6}s");
                tracing::info!("time {what} {offset:+.6} s");
                if self
                    .steering
                    .as_ref()
                    .is_some_and(Steering::one_shot_finished)
                {
                    Verdict::Exit(0)
                } else {
                    Verdict::Run
                }
            }
            Event::ClockFailed => {
                eprintln!("ntpd: cannot set the clock; see the log");
                Verdict::Exit(1)
            }
            Event::Stepped(_) | Event::None => Verdict::Run,
        }
    }

    fn fallback_state(&self, now: sundial_proto::time::NtpTimestamp) -> Option<SystemState> {
        let since = self.last_synced.unwrap_or(self.started).elapsed();
        if matches!(self.fallback, Fallback::LocalClock { .. })
            && self.upstream_configured
            && self.last_synced.is_none()
            && since < LOCAL_CLOCK_GRACE
        {
            return None;
        }
        self.fallback.state(now, since, self.precision)
    }

    fn log_changes(
        &mut self,
        serving: Serving,
        peer: Option<(&str, std::net::SocketAddr, u8)>,
        associations: &Associations,
    ) {
        let tallies = associations.tally_line();
        let changed = serving != self.serving;
        if changed || tallies != self.tallies {
            match (serving, peer) {
                (Serving::Peer(_), Some((host, addr, stratum))) if changed => {
                    tracing::info!(
                        "system peer {host} ({addr}), stratum {stratum}; sources: {tallies}"
                    );
                }
                (Serving::Fallback, _) if changed => {
                    let why =
                        if self.serving == Serving::Unsynchronized && self.last_synced.is_none() {
                            "no selectable upstream source"
                        } else {
                            "lost all upstream sources"
                        };
                    tracing::warn!(
                        "{why}: serving {}; sources: {tallies}",
                        self.fallback.describe()
                    );
                }
                (Serving::Unsynchronized, _) if changed => {
                    tracing::warn!(
                        "no selectable source and no fallback: serving unsynchronised; sources: {tallies}"
                    );
                }
                _ if !tallies.is_empty() => tracing::info!("selection: {tallies}"),
                _ => {}
            }
        }
        self.serving = serving;
        self.tallies = tallies;
    }
}
