//! The system process: after every new sample and once a second, select among the
//! associations and publish what the server claims — the system peer's time one stratum down,
//! or the local-clock/orphan fallback, or "unsynchronised".

use std::sync::Arc;
use std::time::{Duration, Instant};

use sundial_proto::fallback::Fallback;
use sundial_proto::select::{SelectParams, Tally};
use sundial_proto::server::CounterSnapshot;
use sundial_proto::sync::{PollAdapter, SystemPeer, follow, leap_majority};
use sundial_proto::system::SystemState;
use sundial_proto::time::Log2Seconds;

use crate::associations::Associations;
use crate::clock::kernel_now;
use crate::config::Config;
use crate::publish::{Publisher, Snapshot};
use crate::status::{self, Serving, SystemView};

/// With upstream servers configured, how long the local clock waits before standing in for
/// them at start-up, so clients are not served an undisciplined clock during the first polls.
const LOCAL_CLOCK_GRACE: Duration = Duration::from_secs(60);

/// The system process.
#[derive(Debug)]
pub struct Timekeeper {
    fallback: Fallback,
    params: SelectParams,
    mindist: f64,
    maxdist: f64,
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
}

impl Timekeeper {
    /// A timekeeper for this configuration.
    pub fn new(
        config: &Config,
        fallback: Fallback,
        upstream_configured: bool,
        precision: Log2Seconds,
        associations: &mut Associations,
    ) -> Self {
        let local_clock_id =
            matches!(fallback, Fallback::LocalClock { .. }).then(|| associations.reserve_id());
        let minpoll = config
            .associations
            .iter()
            .map(|a| a.minpoll.exponent())
            .min()
            .unwrap_or(6);
        let maxpoll = config
            .associations
            .iter()
            .map(|a| a.maxpoll.exponent())
            .max()
            .unwrap_or(10);
        Self {
            fallback,
            params: SelectParams {
                minclock: usize::from(config.tos.minclock.max(1)),
                maxclock: usize::from(config.tos.maxclock.max(1)),
                minsane: usize::from(config.tos.minsane),
            },
            mindist: config.tos.mindist.to_seconds_f64(),
            maxdist: config.tos.maxdist.to_seconds_f64(),
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

    /// Runs selection and publishes the result. `new_sample` says whether the system peer may
    /// have a fresh sample, which drives poll adaptation.
    pub fn update(
        &mut self,
        associations: &mut Associations,
        publisher: &Publisher,
        new_sample: bool,
    ) {
        let current = publisher.current();
        let now_ts = current.mapping.map(kernel_now());
        let (selection, _) = associations.select(now_ts, &self.params, self.mindist, self.maxdist);
        let peer = associations.system_peer().and_then(|p| {
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
        let (system, serving) = match peer {
            Some((id, _, _, sys_peer)) => {
                let leaps = associations
                    .peers()
                    .iter()
                    .filter(|p| matches!(p.tally, Tally::SystemPeer | Tally::Candidate))
                    .filter_map(|p| p.source.peer().map(|i| i.leap));
                let leap = leap_majority(leaps);
                self.last_synced = Some(Instant::now());
                if new_sample {
                    let tc = self.poll.update(selection.offset, selection.jitter);
                    associations.set_system_poll(tc);
                }
                (
                    follow(&sys_peer, &selection, leap, now_ts, self.precision),
                    Serving::Peer(id),
                )
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
        let view = SystemView {
            state: &system,
            now: now_ts,
            serving,
            fallback: &self.fallback,
            local_clock_id: self.local_clock_id,
            tc: self.poll.poll(),
            mintc: self.mintc,
            offset: if serving == Serving::Fallback {
                0.0
            } else {
                self.last_offset
            },
            jitter: if serving == Serving::Fallback {
                0.0
            } else {
                self.last_jitter
            },
            frequency: 0.0,
            counters: self.counters,
            uptime: self.started.elapsed(),
        };
        let control = Arc::new(status::snapshot(associations, &view));
        publisher.publish(Snapshot {
            system,
            mapping: current.mapping,
            control,
        });
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
