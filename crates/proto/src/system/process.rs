//! [`System`]: the sources, selection, the start-up gate, the discipline and the fallback, as one
//! sans-IO state machine. See the module documentation of [`super`] for the call order.

use core::net::IpAddr;
use core::time::Duration;
use std::collections::VecDeque;
use std::string::ToString;
use std::vec::Vec;

use super::event::{Event, Serving, SourceId};
use super::served::SystemState;
use crate::auth::KeyRing;
use crate::clock::Clock;
use crate::discipline::{Discipline, DisciplineParams, State};
use crate::fallback::Fallback;
use crate::refclock::Reading;
use crate::select::{Candidate, SelectParams, Tally};
use crate::source::{Fitness, Outcome, PeerInfo, PendingSlew, Source, SourceParams};
use crate::sync::PollAdapter;
use crate::time::{Log2Seconds, MonoTime, NtpDuration, NtpTimestamp, Ppm};

/// With upstream servers configured, how long the local clock driver waits before standing in
/// for them at start-up, so that clients are not served an undisciplined clock during the first
/// polls.
pub const LOCAL_CLOCK_GRACE: Duration = Duration::from_secs(60);

/// One association as configured (a `server` line, a pool member, a command-line server).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceSpec {
    /// Polling and protocol settings.
    pub params: SourceParams,
    /// The server's address, which becomes the reference id while it is the system peer
    /// (`None`: the server's own reference id is passed on).
    pub address: Option<IpAddr>,
    /// `prefer`.
    pub prefer: bool,
    /// `noselect`: polled and shown, never selected.
    pub noselect: bool,
    /// `true`: always survives selection and clustering.
    pub truechimer: bool,
}

/// How the system process is configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemParams {
    /// `tos minclock`, `maxclock`, `minsane`.
    pub select: SelectParams,
    /// `tos mindist`, `maxdist`, `floor`, `ceiling`.
    pub fitness: Fitness,
    /// The discipline's settings; `None` when no clock is steered (`--clock none`): then the
    /// poll follows RFC 5905's poll adaptation and nothing is fed anywhere.
    pub discipline: Option<DisciplineParams>,
    /// The smallest and largest poll exponent of the associations (`ntpq`'s `mintc`, and the
    /// range of the poll adaptation without a discipline).
    pub poll_range: (i8, i8),
    /// What to serve without a system peer.
    pub fallback: Fallback,
    /// Whether upstream associations are configured at all (the local clock driver then waits
    /// [`LOCAL_CLOCK_GRACE`] for them at start-up).
    pub upstream_configured: bool,
    /// The local clock's precision.
    pub precision: Log2Seconds,
    /// `-q`: stop after the first correction (without a discipline: after the first offset).
    pub one_shot: bool,
}

/// What ntpq's system variables show (`rv 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemReadout {
    /// `offset`: the discipline's offset at its last update (without one: θ_sys).
    pub offset: NtpDuration,
    /// `sys_jitter`: Ψ of the last selection.
    pub jitter: NtpDuration,
    /// `frequency`: the frequency correction.
    pub frequency: Ppm,
    /// `clk_jitter`.
    pub clk_jitter: NtpDuration,
    /// `clk_wander`.
    pub clk_wander: Ppm,
    /// `tc`: the system poll exponent.
    pub poll: i8,
    /// `mintc`: the smallest poll exponent.
    pub min_poll: i8,
    /// The discipline's state, if a clock is steered.
    pub state: Option<State>,
}

/// One source as the driver sees it (`System::sources`).
#[derive(Debug, Clone, Copy)]
pub struct SourceView<'a> {
    /// Its id.
    pub id: SourceId,
    /// The core's per-association state.
    pub source: &'a Source,
    /// How it was configured.
    pub spec: &'a SourceSpec,
    /// Its tally in the last selection round.
    pub tally: Tally,
    /// What it offered to the last selection round with the start-up gate open.
    pub input: Option<Candidate>,
}

/// What a round has to work with: whether a new sample arrived, and whether it gave a new
/// filter estimate (the undisciplined poll adaptation counts only those).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Fresh {
    Nothing,
    Sample,
    Estimate,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) id: SourceId,
    pub(super) spec: SourceSpec,
    pub(super) source: Source,
    pub(super) tally: Tally,
    pub(super) input: Option<Candidate>,
    /// Sample time (T4) of the last sample of this source given to the discipline.
    pub(super) fed: Option<NtpTimestamp>,
    /// A pulse-per-second clock (`System::add_pps`).
    pub(super) pps: bool,
}

/// The system process. See the [module documentation](super) for the call order.
#[derive(Debug)]
pub struct System {
    pub(super) params: SystemParams,
    pub(super) entries: Vec<Entry>,
    pub(super) discipline: Option<Discipline>,
    /// RFC 5905 poll adaptation, used when no clock is steered.
    pub(super) poll: PollAdapter,
    pub(super) system_peer: Option<SourceId>,
    /// The slew last handed to the sources, for sources added while it runs.
    pub(super) pending_slew: Option<PendingSlew>,
    /// θ_sys and Ψ of the last round that did not serve the fallback.
    pub(super) offset: f64,
    pub(super) jitter: f64,
    pub(super) served: SystemState,
    pub(super) serving: Serving,
    pub(super) started: MonoTime,
    pub(super) last_synced: Option<MonoTime>,
    pub(super) one_shot_done: bool,
    pub(super) events: VecDeque<Event>,
    /// Local time of the last clock update: the last sample the discipline used.
    pub(super) last_update: Option<NtpTimestamp>,
    /// The size of the last step, seconds.
    pub(super) last_step: f64,
    /// The system peer and the state served for it through the gap after a step.
    pub(super) held: Option<(SourceId, SystemState)>,
}

impl System {
    /// A system process with no sources yet, started at `now`.
    pub fn new(params: SystemParams, now: MonoTime) -> Self {
        let (minpoll, maxpoll) = params.poll_range;
        Self {
            params,
            entries: Vec::new(),
            discipline: params.discipline.map(Discipline::new),
            poll: PollAdapter::new(minpoll, maxpoll),
            system_peer: None,
            pending_slew: None,
            offset: 0.0,
            jitter: 0.0,
            served: SystemState::unsynchronized(params.precision),
            serving: Serving::Unsynchronized,
            started: now,
            last_synced: None,
            one_shot_done: false,
            events: VecDeque::new(),
            last_update: None,
            last_step: 0.0,
            held: None,
        }
    }

    // Sources: adding, removing, reading.

    /// Adds a source whose first poll is due at `first_poll`. It starts with the polling the
    /// discipline wants now (bursts, early polls) and knows of the slew under way. Returns
    /// `false`, changing nothing, if `id` is taken.
    pub fn add_source(&mut self, id: SourceId, spec: SourceSpec, first_poll: MonoTime) -> bool {
        self.add_entry(id, spec, Source::new(spec.params, first_poll))
    }

    /// Adds a reference clock (`Source::new_refclock`): it sends nothing; its driver hands it
    /// readings ([`Self::handle_reading`]) and polls it once per poll interval
    /// ([`Self::handle_refclock`]). `spec.address` is `None`, so that while it is the system
    /// peer its reference id is served. Returns `false`, changing nothing, if `id` is taken.
    pub fn add_refclock(&mut self, id: SourceId, spec: SourceSpec, now: MonoTime) -> bool {
        let spec = SourceSpec {
            address: None,
            ..spec
        };
        self.add_entry(id, spec, Source::new_refclock(spec.params, now))
    }

    /// Adds a pulse-per-second clock: a reference clock ([`Self::add_refclock`]) whose readings
    /// the driver pairs with [`Self::pps_numbering`]. While the preferred source is the system
    /// peer and the PPS clock survives selection with it, the PPS clock becomes the system peer
    /// and the only source the discipline follows (ntpd's rule: the preferred source numbers
    /// the seconds, the pulse times them).
    pub fn add_pps(&mut self, id: SourceId, spec: SourceSpec, now: MonoTime) -> bool {
        if !self.add_refclock(id, spec, now) {
            return false;
        }
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.pps = true;
        }
        true
    }

    fn add_entry(&mut self, id: SourceId, spec: SourceSpec, mut source: Source) -> bool {
        if self.entries.iter().any(|e| e.id == id) {
            return false;
        }
        source.apply_clock_correction(0.0, self.pending_slew);
        if let Some(d) = self.discipline.as_ref() {
            source.set_frequency_burst(d.measuring_frequency());
            source.set_early_polls(d.learning_frequency());
        }
        self.entries.push(Entry {
            id,
            spec,
            source,
            tally: Tally::Reject,
            input: None,
            fed: None,
            pps: false,
        });
        true
    }

    /// Removes a source (a configuration reload, a retired pool member) and returns it; every
    /// other source keeps its state. A removed system peer is forgotten: the next round picks
    /// another.
    pub fn remove_source(&mut self, id: SourceId) -> Option<Source> {
        let pos = self.entries.iter().position(|e| e.id == id)?;
        if self.system_peer == Some(id) {
            self.system_peer = None;
        }
        if self.held.is_some_and(|(held, _)| held == id) {
            self.held = None;
        }
        Some(self.entries.remove(pos).source)
    }

    /// New `tos` selection limits (a configuration reload), from the next round on; the
    /// sources, the discipline and the system peer are kept.
    pub fn set_selection(&mut self, select: SelectParams, fitness: Fitness) {
        self.params.select = select;
        self.params.fitness = fitness;
    }

    /// A new fallback (a configuration reload), from the next round on.
    pub fn set_fallback(&mut self, fallback: Fallback, upstream_configured: bool) {
        self.params.fallback = fallback;
        self.params.upstream_configured = upstream_configured;
    }

    /// One source's core state.
    pub fn source(&self, id: SourceId) -> Option<&Source> {
        self.entry(id).map(|e| &e.source)
    }

    /// Every source, in the order they were added.
    pub fn sources(&self) -> impl Iterator<Item = SourceView<'_>> {
        self.entries.iter().map(|e| SourceView {
            id: e.id,
            source: &e.source,
            spec: &e.spec,
            tally: e.tally,
            input: e.input,
        })
    }

    /// The system peer chosen by the last round with the start-up gate open, if any. While the
    /// gate is closed again after a step it is kept (selection prefers it once the gate opens)
    /// but not followed: [`Self::serving`] says what is served.
    pub fn system_peer(&self) -> Option<SourceId> {
        self.system_peer
    }

    // Inputs.

    /// The earliest time a source wants to send.
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        self.entries
            .iter()
            .filter_map(|e| e.source.poll_timeout())
            .min()
    }

    /// If source `id`'s poll is due at `now`, writes its request into `out` and returns its
    /// length (`Source::poll_transmit`; a source with a key signs it from `keys`, which needs
    /// `out` to hold [`crate::auth::MAX_AUTHENTICATED_LEN`] octets).
    pub fn poll_transmit(
        &mut self,
        id: SourceId,
        now: MonoTime,
        random: &mut impl FnMut() -> u64,
        keys: &dyn KeyRing,
        out: &mut [u8],
    ) -> Option<usize> {
        self.entry_mut(id)?
            .source
            .poll_transmit(now, random, keys, out)
    }

    /// Hands the result of an NTS key exchange to source `id`; false if there is no such
    /// source.
    pub fn install_nts(
        &mut self,
        id: SourceId,
        keys: crate::nts::SessionKeys,
        cookies: Vec<Vec<u8>>,
    ) -> bool {
        let Some(entry) = self.entry_mut(id) else {
            return false;
        };
        entry.source.install_nts(keys, cookies);
        true
    }

    /// Records when source `id`'s request left, local time (T1).
    pub fn handle_sent(&mut self, id: SourceId, t1: NtpTimestamp) {
        if let Some(e) = self.entry_mut(id) {
            e.source.handle_sent(t1);
        }
    }

    /// A datagram for source `id` that arrived at local time `t4`; `keys` verifies the MAC of a
    /// source with a key. A good reply runs a selection round that feeds the discipline, which
    /// may steer `clock`. Returns what the source made of it (`None`: no such source).
    pub fn handle_response<C: Clock>(
        &mut self,
        id: SourceId,
        t4: NtpTimestamp,
        datagram: &[u8],
        keys: &dyn KeyRing,
        clock: &mut C,
        now: MonoTime,
    ) -> Option<Outcome> {
        let precision = self.params.precision.as_seconds_f64();
        let outcome = self
            .entry_mut(id)?
            .source
            .handle_response(t4, datagram, precision, keys);
        self.after_outcome(id, outcome, clock, now);
        Some(outcome)
    }

    /// A reading of reference clock `id`, held for its next poll; `false` if it was dropped
    /// (no such reference clock, a repeat or out of order).
    pub fn handle_reading(&mut self, id: SourceId, reading: Reading) -> bool {
        self.entry_mut(id)
            .is_some_and(|e| e.source.add_reading(reading))
    }

    /// A poll of reference clock `id`: its readings become one sample, which runs a selection
    /// round like a server's reply. `info` is what the clock claims (stratum, reference id,
    /// precision). `None` without such a reference clock or without readings since the last
    /// poll (the reach register records the miss).
    pub fn handle_refclock<C: Clock>(
        &mut self,
        id: SourceId,
        info: PeerInfo,
        clock: &mut C,
        now: MonoTime,
    ) -> Option<Outcome> {
        let precision = self.params.precision.as_seconds_f64();
        let outcome = self
            .entry_mut(id)?
            .source
            .handle_refclock(info, precision)?;
        self.after_outcome(id, outcome, clock, now);
        Some(outcome)
    }

    /// What follows a server's reply or a reference clock's poll: a new sample is announced
    /// and runs a selection round, fresh as an estimate if it changed the filter's.
    fn after_outcome<C: Clock>(
        &mut self,
        id: SourceId,
        outcome: Outcome,
        clock: &mut C,
        now: MonoTime,
    ) {
        if let Outcome::Sample(estimate) = outcome {
            self.events.push_back(Event::Sampled(id));
            let fresh = if estimate.is_some() {
                Fresh::Estimate
            } else {
                Fresh::Sample
            };
            self.round(clock, now, fresh);
        }
    }

    /// The offset of the source that numbers the seconds of a pulse-per-second signal (see
    /// [`crate::refclock::pps`]): the system peer, if it is marked `prefer`, its newest sample
    /// as measured.
    pub fn pps_numbering(&self) -> Option<f64> {
        let peer = self.entry(self.system_peer?)?;
        let e = if peer.pps {
            // The PPS clock took over from the preferred source, which still numbers (and is
            // tallied `*` while the PPS clock is `o`).
            self.entries
                .iter()
                .find(|e| e.spec.prefer && !e.pps && e.tally == Tally::SystemPeer)?
        } else {
            peer
        };
        if !e.spec.prefer {
            return None;
        }
        e.source.estimate().map(|est| est.offset)
    }

    /// When [`Self::handle_timeout`] is due, as a time of the disciplined clock (the end of a
    /// slew or of the start-up frequency measurement).
    pub fn clock_timeout(&self) -> Option<NtpTimestamp> {
        self.discipline.as_ref().and_then(Discipline::next_timeout)
    }

    /// Runs the discipline's timer if the clock has reached [`Self::clock_timeout`], and hands
    /// the phase it commits to every source.
    ///
    /// The sources' start-up polling (bursts, early polls) is not changed here but at the next
    /// selection round: when the frequency measurement ends at its deadline, a poll that falls
    /// before the next good reply is still a burst, which is what a measurement cut short
    /// needs (with 30 % loss, scenario (d) of the accuracy benchmark is on target in 4 more
    /// runs of 200 than when the bursts stop at once).
    pub fn handle_timeout<C: Clock>(&mut self, clock: &mut C) {
        let Some(d) = self.discipline.as_mut() else {
            return;
        };
        let measuring = d.readout().state == State::Frequency;
        match d.handle_timeout(clock) {
            Ok(phase) => self.correct_sources(phase),
            Err(e) => self.events.push_back(Event::ClockFailed {
                error: e.to_string(),
            }),
        }
        self.after_discipline(measuring);
    }

    /// A selection round without a new sample: sources that fell silent or grew too far leave
    /// selection, and the served state (root dispersion, the fallback) follows time.
    pub fn refresh<C: Clock>(&mut self, clock: &mut C, now: MonoTime) {
        self.round(clock, now, Fresh::Nothing);
    }

    // Outputs.

    /// The next thing that happened, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What the server claims now: stratum, reference, root delay and dispersion, leap.
    pub fn served_state(&self) -> SystemState {
        self.served
    }

    /// The time to serve for local time `at`: the clock's reading plus the part of the
    /// discipline's correction that the clock has not reached yet (the rest of a slew, or the
    /// drift accumulated while the frequency is measured at start-up). Every timestamp sent
    /// to a client is this best estimate of true time, whether or not the clock has caught up
    /// with it; it moves at the disciplined clock's rate between corrections.
    pub fn served_time(&self, at: NtpTimestamp) -> NtpTimestamp {
        at + self.served_correction(at)
    }

    /// [`Self::served_time`] minus `at`.
    pub fn served_correction(&self, at: NtpTimestamp) -> NtpDuration {
        self.pending_slew().map_or(NtpDuration::ZERO, |p| {
            NtpDuration::from_seconds_f64(p.remaining_after(at))
        })
    }

    /// Whether it serves a system peer, the fallback, or nothing.
    pub fn serving(&self) -> Serving {
        self.serving
    }

    /// The values of ntpq's system variables.
    pub fn readout(&self) -> SystemReadout {
        let fallback = self.serving == Serving::Fallback;
        let d = self.discipline.as_ref().map(Discipline::readout);
        let ppm = |v: f64| Ppm::new(v).unwrap_or_default();
        SystemReadout {
            offset: NtpDuration::from_seconds_f64(match (fallback, d) {
                (true, _) => 0.0,
                (false, Some(r)) => r.offset,
                (false, None) => self.offset,
            }),
            jitter: NtpDuration::from_seconds_f64(if fallback { 0.0 } else { self.jitter }),
            frequency: d.map_or(Ppm::ZERO, |r| ppm(r.frequency_ppm)),
            clk_jitter: NtpDuration::from_seconds_f64(d.map_or(0.0, |r| r.clk_jitter)),
            clk_wander: d.map_or(Ppm::ZERO, |r| ppm(r.clk_wander_ppm)),
            poll: d.map_or_else(|| self.poll.poll(), |r| r.poll),
            min_poll: self.params.poll_range.0,
            state: d.map(|r| r.state),
        }
    }

    /// The frequency to write to the drift file, once it is known well (see
    /// `Discipline::drift_ppm`).
    pub fn drift(&self) -> Option<Ppm> {
        self.discipline
            .as_ref()
            .and_then(Discipline::drift_ppm)
            .and_then(Ppm::new)
    }

    /// Whether `-q` is done: the clock was set and no slew runs any more.
    pub fn one_shot_finished(&self) -> bool {
        self.one_shot_done && self.clock_timeout().is_none()
    }

    /// The slew under way, if any.
    pub fn pending_slew(&self) -> Option<PendingSlew> {
        self.discipline.as_ref().and_then(Discipline::pending_slew)
    }

    /// θ_sys of the last selection round that did not serve the fallback.
    pub fn combined_offset(&self) -> NtpDuration {
        NtpDuration::from_seconds_f64(self.offset)
    }

    /// Whether the discipline has the clock in hand (always true when no clock is steered).
    pub fn is_synchronized(&self) -> bool {
        self.discipline
            .as_ref()
            .is_none_or(Discipline::is_synchronized)
    }

    pub(super) fn entry(&self, id: SourceId) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    fn entry_mut(&mut self, id: SourceId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }
}
