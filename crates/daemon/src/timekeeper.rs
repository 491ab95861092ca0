//! The daemon's side of the system process: it holds the core's [`System`] (selection, the
//! discipline, the fallback — all in `sundial_proto::system`) with the clock it steers, and
//! does the I/O around it: the drift file, the simulated clock's leap second, logging what the
//! system reports, deciding when ntpd exits, and publishing what the server claims.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sundial_proto::access::{AccessTable, RestrictFlags};
use sundial_proto::clock::Clock;
use sundial_proto::counters::CounterSnapshot;
use sundial_proto::discipline::DisciplineParams;
use sundial_proto::fallback::Fallback;
use sundial_proto::select::SelectParams;
use sundial_proto::source::Fitness;
use sundial_proto::system::{Event, Serving, SourceId, System, SystemParams};
use sundial_proto::time::{Log2Seconds, MonoTime, NtpDuration, NtpTimestamp, Ppm, UnixTime};

use crate::associations::{Associations, source_id};
use crate::cli::NtpdArgs;
use crate::clock::{SteeredClock, TimeMapping};
use crate::config::{Config, Threshold};
use crate::control::{self, SystemView};
use crate::driftfile::{self, DriftWriter};
use crate::publish::{Publisher, Snapshot};
use crate::setup::{self, Runtime};
use crate::stats::Stats;
use crate::stats::line::RawLine;

/// Whether ntpd goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep running.
    Run,
    /// Exit with this status.
    Exit(u8),
}

/// The system process, its clock and its drift file.
#[derive(Debug)]
pub struct Timekeeper {
    system: System,
    /// The clock: steered, or read-only with `--clock none`.
    clock: SteeredClock,
    drift: Option<DriftWriter>,
    fallback: Fallback,
    started: Instant,
    /// Whether the system was ever synchronised (for the fallback's log line).
    ever_synced: bool,
    tallies: String,
    /// Association id of the local clock driver's row in ntpq, if one is configured.
    local_clock_id: Option<u16>,
    /// Server counters summed over all threads, as of the last main-loop turn.
    counters: CounterSnapshot,
    /// Whether a failed clock adjustment was already logged (it is logged once, not per poll).
    clock_error_logged: bool,
    /// `-q`.
    one_shot: bool,
    /// How ntpd must exit, once the system said so.
    exit: Option<u8>,
    /// The configured restrict table and the `restrict source` flags, and the table in force
    /// with an entry for each association's address (rebuilt when the addresses change).
    base_access: AccessTable,
    source_flags: Option<RestrictFlags>,
    access: Arc<AccessTable>,
    access_addrs: Vec<IpAddr>,
    /// The statistics files, if any is enabled, and what to write to them at the next publish
    /// (which has the values ntpq shows).
    stats: Option<Stats>,
    pending: PendingStats,
}

/// Statistics lines due at the next publish.
#[derive(Debug, Default)]
struct PendingStats {
    /// Associations with a new sample (`peerstats`).
    peers: Vec<u16>,
    /// The timestamps of the replies those samples came from (`rawstats`).
    raw: Vec<RawLine>,
    /// Each source's (sent, received) packet counts at its previous `rawstats` line.
    raw_counts: std::collections::HashMap<SourceId, (u64, u64)>,
    /// Events (`protostats`): the peer's address or the system, the event code, its text.
    events: Vec<(Option<IpAddr>, u8, String)>,
    /// The discipline updated the clock (`loopstats`).
    clock_update: bool,
}

impl Timekeeper {
    /// The system process for this configuration and command line, with the clock `--clock`
    /// names (`mapping`: how served time follows kernel time at start).
    pub fn new(
        config: &Config,
        args: &NtpdArgs,
        runtime: &Runtime,
        precision: Log2Seconds,
        mapping: TimeMapping,
        now: MonoTime,
    ) -> Self {
        let steered = SteeredClock::new(args.clock, mapping);
        let (discipline, drift) = match steered.as_ref() {
            Some(clock) => {
                let (params, drift) = discipline_params(config, args, clock);
                (Some(params), drift)
            }
            None => (None, None),
        };
        let params = SystemParams {
            select: select_params(config),
            fitness: fitness(config),
            discipline,
            poll_range: config.poll_range(),
            fallback: runtime.fallback,
            upstream_configured: runtime.upstream_configured,
            precision,
            one_shot: args.quit,
        };
        Self {
            system: System::new(params, now),
            clock: steered.unwrap_or_else(|| SteeredClock::read_only(mapping)),
            drift,
            fallback: runtime.fallback,
            started: Instant::now(),
            ever_synced: false,
            tallies: String::new(),
            local_clock_id: None,
            counters: CounterSnapshot::default(),
            clock_error_logged: false,
            one_shot: args.quit,
            exit: None,
            access: Arc::new(runtime.access.clone()),
            base_access: runtime.access.clone(),
            source_flags: runtime.source_flags,
            access_addrs: Vec::new(),
            stats: Stats::new(config, args.statsdir.as_deref(), unix_now()),
            pending: PendingStats::default(),
        }
    }

    /// Gives the local clock driver its row in ntpq, if one is configured.
    pub fn reserve_local_clock_id(&mut self, associations: &mut Associations) {
        if matches!(self.fallback, Fallback::LocalClock { .. }) {
            self.local_clock_id = Some(associations.reserve_id());
        }
    }

    /// The system process and the clock, for the association sockets to hand replies to.
    pub fn parts(&mut self) -> (&mut System, &mut SteeredClock) {
        (&mut self.system, &mut self.clock)
    }

    /// The system process.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// The system process, to add and remove sources.
    pub fn system_mut(&mut self) -> &mut System {
        &mut self.system
    }

    /// Records the server counters for the next published snapshot.
    pub fn set_counters(&mut self, counters: CounterSnapshot) {
        self.counters = counters;
    }

    /// After replies were handled (`tick`: once a second, also a selection round without new
    /// samples): acts on what the system reports, runs the drift file and the simulated
    /// clock's leap second, and publishes the result.
    /// Returns [`Verdict::Exit`] when ntpd must stop (panic threshold, or `-q` is done).
    pub fn update(
        &mut self,
        associations: &Associations,
        publisher: &Publisher,
        tick: bool,
        now: MonoTime,
    ) -> Verdict {
        if tick {
            self.system.refresh(&mut self.clock, now);
        }
        self.drain_events(associations);
        if let Some(w) = self.drift.as_mut()
            && let Some(ppm) = self.system.drift()
        {
            w.tick(ppm.value(), Instant::now());
        }
        if let Some(step) = self.clock.apply_leap_second() {
            let what = if step < 0 { "inserted" } else { "deleted" };
            tracing::warn!("leap second {what} (simulated clock stepped by {step:+} s)");
        }
        self.publish(associations, publisher);
        self.verdict()
    }

    /// Runs the discipline's timer (the end of a slew or of the start-up frequency
    /// measurement) if it is due, republishing the clock.
    pub fn on_timer(&mut self, associations: &Associations, publisher: &Publisher) -> Verdict {
        self.system.handle_timeout(&mut self.clock);
        self.drain_events(associations);
        let current = publisher.current();
        let mapping = self.served_mapping(&current.mapping);
        if mapping != current.mapping {
            publisher.publish(Snapshot {
                mapping,
                ..(*current).clone()
            });
        }
        self.verdict()
    }

    /// How the disciplined clock follows the kernel clock: what request and reply timestamps
    /// of the associations are read with (the discipline measures its own clock, not the time
    /// it serves).
    pub fn clock_mapping(&self) -> TimeMapping {
        self.clock.mapping()
    }

    /// How served time follows the kernel clock: the clock plus the correction still in
    /// progress, never going back by less than a step from what `published` served.
    fn served_mapping(&self, published: &TimeMapping) -> TimeMapping {
        let next = self
            .clock
            .mapping()
            .serving(self.system.pending_slew(), None);
        let floor = published.floor_for(&next, crate::clock::kernel_now());
        next.serving(self.system.pending_slew(), floor)
    }

    /// How long until the discipline's timer is due.
    pub fn timeout(&self) -> Option<Duration> {
        let due = self.system.clock_timeout()?;
        let wait = (due - self.clock.now()).to_seconds_f64().max(0.0);
        Some(Duration::from_secs_f64(wait.min(3600.0)))
    }

    /// Saves the drift file at clean shutdown.
    pub fn shutdown(&mut self) {
        if let (Some(w), Some(ppm)) = (self.drift.as_mut(), self.system.drift()) {
            let ppm = ppm.value();
            // A failed write was logged as such; only a written file is "saved".
            if w.save(ppm) {
                tracing::info!("frequency {ppm:.3} ppm saved to {}", w.path().display());
            }
        }
    }

    fn verdict(&self) -> Verdict {
        match self.exit {
            Some(code) => Verdict::Exit(code),
            None if self.system.one_shot_finished() => Verdict::Exit(0),
            None => Verdict::Run,
        }
    }

    /// Logs what the system did and notes whether ntpd must exit.
    fn drain_events(&mut self, associations: &Associations) {
        let secs = NtpDuration::to_seconds_f64;
        while let Some(event) = self.system.poll_event() {
            match event {
                Event::Stepped { offset } => {
                    tracing::warn!("clock stepped by {:+.6} s", secs(offset));
                    self.pending.clock_update = true;
                    self.system_event(
                        EVNT_CLOCK_STEP,
                        format!("clock_step {:+.6} s", secs(offset)),
                    );
                }
                Event::Spike { offset } => {
                    tracing::info!(
                        "offset {:+.6} s exceeds the step threshold; waiting for it to persist",
                        secs(offset)
                    );
                    self.system_event(EVNT_SPIKE, format!("spike_detect {:+.6} s", secs(offset)));
                }
                Event::Panic { offset, threshold } => {
                    let (offset, threshold) = (secs(offset), secs(threshold));
                    tracing::error!(
                        "time correction of {offset:+.0} s exceeds the panic threshold of {threshold:.0} s; \
                         set the clock manually (or start ntpd with -g) — exiting"
                    );
                    self.system_event(EVNT_PANIC, format!("panic_stop {offset:+.0} s"));
                    self.exit = Some(1);
                }
                Event::OneShot { offset, stepped } => {
                    self.pending.clock_update = true;
                    let offset = secs(offset);
                    let what = if stepped { "set" } else { "slew" };
                    println!("ntpd: time {what} {offset:+.6}s");
                    tracing::info!("time {what} {offset:+.6} s");
                }
                Event::OneShotUnsteered { offset } => {
                    let offset = secs(offset);
                    println!("ntpd: offset {offset:+.6}s (clock not set: --clock none)");
                    self.exit.get_or_insert(0);
                }
                Event::MeasuringFrequency => {
                    tracing::info!(
                        "phase corrected; measuring the clock frequency before correcting it"
                    );
                    self.pending.clock_update = true;
                    self.system_event(EVNT_FREQ_MODE, "freq_mode".to_owned());
                }
                Event::FrequencyMeasured { frequency, offset } => {
                    tracing::info!(
                        "frequency measured: {:+.3} ppm; offset {:+.6} s being slewed out",
                        frequency.value(),
                        secs(offset)
                    );
                    self.pending.clock_update = true;
                    self.system_event(
                        EVNT_FREQ_SET,
                        format!("freq_set ntpd {:.6} PPM", frequency.value()),
                    );
                }
                Event::ClockFailed { error } => {
                    if self.clock_error_logged {
                        tracing::debug!("adjusting the clock failed: {error}");
                    } else {
                        tracing::error!(
                            "adjusting the clock failed: {error} (further failures are logged at debug level)"
                        );
                        self.clock_error_logged = true;
                    }
                    if self.one_shot && self.exit.is_none() {
                        eprintln!("ntpd: cannot set the clock; see the log");
                        self.exit = Some(1);
                    }
                }
                Event::ServingChanged { from, to } => {
                    self.log_serving(from, to, associations);
                    self.serving_event(to, associations);
                }
                Event::Slewed { .. } => self.pending.clock_update = true,
                Event::Sampled(id) => {
                    if self.stats.is_some()
                        && let Ok(assoc) = u16::try_from(id.0)
                    {
                        self.pending.peers.push(assoc);
                        if let Some(line) = self.raw_line(id, associations) {
                            self.pending.raw.push(line);
                        }
                    }
                }
                Event::Selected | Event::Fed(_) => {}
            }
        }
        let tallies = associations.tally_line(&self.system);
        if tallies != self.tallies && !tallies.is_empty() {
            tracing::info!("selection: {tallies}");
        }
        self.tallies = tallies;
    }

    /// Writes `clockstats` lines: reference clock readings (time, clock address, timecode).
    pub fn record_clockstats(&mut self, lines: Vec<(UnixTime, IpAddr, String)>) {
        if let Some(stats) = self.stats.as_mut() {
            for (at, addr, timecode) in lines {
                stats.record_clock(at, addr, &timecode);
            }
        }
    }

    /// The `rawstats` line of the sample source `id` just made.
    fn raw_line(&mut self, id: SourceId, associations: &Associations) -> Option<RawLine> {
        let view = self.system.sources().find(|v| v.id == id)?;
        let (sent, received) = view.source.packet_counts();
        let (sent_before, received_before) = self
            .pending
            .raw_counts
            .insert(id, (sent, received))
            .unwrap_or_default();
        let raw = view.source.raw_exchange()?;
        let info = view.source.peer()?;
        let peer = associations
            .peers()
            .iter()
            .find(|p| source_id(p.id) == id)?;
        Some(RawLine {
            source: peer.addr.ip(),
            destination: peer.local_ip(),
            timestamps: [raw.t1, raw.t2, raw.t3, raw.t4],
            leap: info.leap.bits(),
            version: raw.version,
            mode: raw.mode.bits(),
            stratum: info.stratum,
            poll: info.poll,
            precision: info.precision,
            root_delay: info.root_delay.to_seconds_f64(),
            root_dispersion: info.root_dispersion.to_seconds_f64(),
            refid: info.reference_id,
            // This request and this reply are the ones that count; the others were lost on
            // the way or dropped here.
            lost: (sent - sent_before.min(sent)).saturating_sub(1),
            dropped: (received - received_before.min(received)).saturating_sub(1),
        })
    }

    /// Notes a system event for `protostats`.
    fn system_event(&mut self, code: u8, text: String) {
        if self.stats.is_some() {
            self.pending.events.push((None, code, text));
        }
    }

    /// The `protostats` events of a change of what is served: the new system peer's
    /// `sys_peer` and the system's `clock_sync`, or `no_sys_peer`.
    fn serving_event(&mut self, to: Serving, associations: &Associations) {
        if self.stats.is_none() {
            return;
        }
        match to {
            Serving::Peer(id) => {
                if let Some(p) = associations.peer(id) {
                    let addr = Some(p.addr.ip());
                    self.pending
                        .events
                        .push((addr, EVNT_PEER_SYS_PEER, "sys_peer".to_owned()));
                }
                self.system_event(EVNT_CLOCK_SYNC, "clock_sync".to_owned());
            }
            Serving::Fallback | Serving::Unsynchronized => {
                self.system_event(EVNT_NO_SYS_PEER, "no_sys_peer".to_owned());
            }
        }
    }

    /// Writes the statistics lines that became due, with the values of `control` (what ntpq
    /// shows now).
    fn write_stats(&mut self, control: &sundial_proto::control::ControlSnapshot) {
        let Some(stats) = self.stats.as_mut() else {
            return;
        };
        let at = served_unix(self.clock.now());
        for id in self.pending.peers.drain(..) {
            stats.record_peer(at, control, id);
        }
        for line in self.pending.raw.drain(..) {
            stats.record_raw(at, &line);
        }
        for (addr, code, text) in self.pending.events.drain(..) {
            stats.record_event(at, control, addr, code, text);
        }
        if std::mem::take(&mut self.pending.clock_update) {
            stats.record_loop(at, &self.system.readout());
        }
        stats.maybe_record_sys(at, control, self.started.elapsed().as_secs());
    }

    fn log_serving(&mut self, from: Serving, to: Serving, associations: &Associations) {
        let tallies = associations.tally_line(&self.system);
        match to {
            Serving::Peer(id) => {
                self.ever_synced = true;
                let Some(p) = associations.peer(id) else {
                    return;
                };
                let stratum = self
                    .system
                    .source(id)
                    .and_then(|s| s.peer())
                    .map_or(16, |i| i.stratum);
                tracing::info!(
                    "system peer {} ({}), stratum {stratum}; sources: {tallies}",
                    p.host,
                    p.addr
                );
            }
            Serving::Fallback => {
                let why = if from == Serving::Unsynchronized && !self.ever_synced {
                    "no selectable upstream source"
                } else {
                    "lost all upstream sources"
                };
                tracing::warn!(
                    "{why}: serving {}; sources: {tallies}",
                    self.fallback.describe()
                );
            }
            Serving::Unsynchronized => tracing::warn!(
                "no selectable source and no fallback: serving unsynchronised; sources: {tallies}"
            ),
        }
        // The serving line carries the tallies.
        self.tallies = tallies;
    }

    fn publish(&mut self, associations: &Associations, publisher: &Publisher) {
        let system = self.system.served_state();
        let view = SystemView {
            state: &system,
            now: self.clock.now(),
            serving: self.system.serving(),
            fallback: &self.fallback,
            local_clock_id: self.local_clock_id,
            readout: self.system.readout(),
            counters: self.counters,
            uptime: self.started.elapsed(),
            kernel: control::read_kernel(),
            auth: publisher.current().keys.usage(),
        };
        let control = Arc::new(control::snapshot(associations, &self.system, &view));
        self.write_stats(&control);
        let access = self.access_for(associations);
        let mapping = self.served_mapping(&publisher.current().mapping);
        publisher.publish(Snapshot {
            system,
            mapping,
            control,
            access,
            keys: Arc::clone(&publisher.current().keys),
            nts: crate::nts::cookie_keys(),
        });
    }

    /// Takes up a reloaded configuration's `tos` and restrict table; the discipline, the
    /// frequency and the drift file are left alone.
    pub fn reconfigure(&mut self, config: &Config, runtime: &Runtime) {
        self.system
            .set_selection(select_params(config), fitness(config));
        // `tos orphan` can change at once; the local clock driver comes from reference clock
        // lines, which only a restart changes (it owns an association id).
        let new_fallback = setup::fallback(config);
        if !matches!(self.fallback, Fallback::LocalClock { .. })
            && !matches!(new_fallback, Fallback::LocalClock { .. })
        {
            self.fallback = new_fallback;
            self.system
                .set_fallback(new_fallback, runtime.upstream_configured);
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
}

// Event codes of `protostats` lines (RFC 9327 system events; peer events carry 0x80, as in
// ntpd's reports).
const EVNT_FREQ_SET: u8 = 2;
const EVNT_SPIKE: u8 = 3;
const EVNT_FREQ_MODE: u8 = 4;
const EVNT_CLOCK_SYNC: u8 = 5;
const EVNT_PANIC: u8 = 7;
const EVNT_NO_SYS_PEER: u8 = 8;
const EVNT_CLOCK_STEP: u8 = 12;
const EVNT_PEER_SYS_PEER: u8 = 0x80 | 10;

/// The system clock now, as Unix time.
fn unix_now() -> UnixTime {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    UnixTime::new(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}

/// A served-clock timestamp as Unix time (the era nearest the system clock).
fn served_unix(t: NtpTimestamp) -> UnixTime {
    t.to_unix(unix_now())
}

/// `tos minclock`, `maxclock`, `minsane`.
fn select_params(config: &Config) -> SelectParams {
    SelectParams {
        minclock: usize::from(config.tos.minclock.max(1)),
        maxclock: usize::from(config.tos.maxclock.max(1)),
        minsane: usize::from(config.tos.minsane),
    }
}

/// `tos mindist`, `maxdist`, `floor`, `ceiling`.
fn fitness(config: &Config) -> Fitness {
    Fitness {
        mindist: config.tos.mindist.to_seconds_f64(),
        maxdist: config.tos.maxdist.to_seconds_f64(),
        floor: config.tos.floor,
        ceiling: config.tos.ceiling,
    }
}

/// The discipline's settings from the configuration and the command line, and the drift file
/// (read now, written later).
fn discipline_params(
    config: &Config,
    args: &NtpdArgs,
    clock: &SteeredClock,
) -> (DisciplineParams, Option<DriftWriter>) {
    let (initial, drift) = match args
        .driftfile
        .clone()
        .or_else(|| config.driftfile.as_ref().map(|d| d.path.clone()))
    {
        Some(path) => {
            let current = match driftfile::read(&path) {
                Ok(Some(ppm)) => {
                    tracing::info!("drift file {}: {ppm:.3} ppm", path.display());
                    Some(ppm)
                }
                Ok(None) => {
                    tracing::info!(
                        "drift file {} does not exist yet; measuring the frequency",
                        path.display()
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!("{e}; starting from 0 ppm");
                    None
                }
            };
            let wander = config.wander_threshold().value();
            (
                current,
                Some(DriftWriter::new(path, wander, current, Instant::now())),
            )
        }
        None => (None, None),
    };
    let initial = config.tinker.freq.or_else(|| initial.and_then(Ppm::new));
    let threshold = |t: Threshold| match t {
        Threshold::Disabled => None,
        Threshold::At(d) => Some(d),
    };
    let slew_only = args.slew.then(|| NtpDuration::from_seconds(600));
    let (minpoll, maxpoll) = config.poll_range();
    let params = DisciplineParams {
        step_forward: slew_only.or_else(|| threshold(config.tinker.step_forward())),
        step_back: slew_only.or_else(|| threshold(config.tinker.step_back())),
        stepout: config.tinker.stepout,
        panic: threshold(config.tinker.panic),
        panic_gate: args.panicgate,
        force_step_once: args.force_step_once,
        one_shot: args.quit,
        initial_frequency: initial,
        clock_frequency: clock.initial_frequency(),
        minpoll,
        maxpoll,
        // iburst (command-line servers have it too) asks for the fastest start; otherwise the
        // frequency is measured before the clock is corrected beyond its phase.
        frequency_hold: args.servers.is_empty() && !config.associations.iter().any(|a| a.iburst),
        ..DisciplineParams::default()
    };
    (params, drift)
}
