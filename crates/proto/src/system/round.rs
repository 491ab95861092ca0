//! One round of the system process: selection, then the discipline, then what to serve.

use std::string::ToString;
use std::vec::Vec;

use super::event::{Event, Serving};
use super::process::{Entry, Fresh, LOCAL_CLOCK_GRACE, System};
use super::served::SystemState;
use crate::clock::Clock;
use crate::discipline::{Observation, State, Update, sources_settled};
use crate::fallback::Fallback;
use crate::packet::Leap;
use crate::select::{Candidate, Selection, Standing, Tally, select};
use crate::sync::{SystemPeer, follow, leap_majority};
use crate::time::{MonoTime, NtpDuration, NtpTimestamp, Ppm};

impl System {
    /// Selection, then the discipline, then what to serve.
    pub(super) fn round<C: Clock>(&mut self, clock: &mut C, now: MonoTime, fresh: Fresh) {
        let now_ts = clock.now();
        // At start-up and after a step there is no system peer until every source has had its
        // chance to answer, so that the first to answer cannot set the clock alone.
        let gate_open = !self.discipline.as_ref().is_some_and(|d| {
            d.needs_all_sources() && !sources_settled(self.entries.iter().map(|e| &e.source))
        });
        let mut selection = self.select(now_ts, gate_open);
        let pps = if gate_open {
            self.pps_takes_over(&selection)
        } else {
            None
        };
        if let Some(i) = pps {
            selection.system_peer = Some(i);
        }
        let peer = selection
            .system_peer
            .filter(|_| gate_open)
            .and_then(|i| self.entries.get(i))
            .and_then(|e| {
                Some((
                    e.id,
                    SystemPeer {
                        addr: e.spec.address,
                        info: e.source.peer()?,
                        estimate: e.source.estimate()?,
                    },
                ))
            });
        let (served, serving) = match peer {
            Some((id, sys_peer)) => {
                let leap = leap_majority(
                    self.survivors()
                        .filter_map(|e| e.source.peer())
                        .map(|p| p.leap),
                );
                self.last_synced = Some(now);
                let mut stepped = false;
                if fresh != Fresh::Nothing {
                    if self.discipline.is_some() {
                        stepped = self.feed(clock, selection.jitter, leap, pps);
                    } else if fresh == Fresh::Estimate {
                        let tc = self.poll.update(selection.offset, selection.jitter);
                        for e in &mut self.entries {
                            e.source.set_system_poll(tc);
                        }
                        if self.params.one_shot {
                            self.events.push_back(Event::OneShotUnsteered {
                                offset: seconds(selection.offset),
                            });
                        }
                    }
                }
                let served = if stepped {
                    self.after_step(id, now_ts)
                } else if !self.is_synchronized() {
                    // Until the discipline has the clock in hand, clients are told so — unless
                    // it had it before a step and has not taken the first sample since.
                    match self.held {
                        Some((_, state)) => state,
                        None => SystemState::unsynchronized(self.params.precision),
                    }
                } else {
                    self.held = None;
                    let sys_peer = self.disciplined_peer(id, sys_peer);
                    let mut served = follow(&sys_peer, &selection, leap, self.params.precision);
                    // Every sample the discipline used updated the clock (RFC 5905 §11.2.3):
                    // the dispersion grows from the newest such update — not from the time of
                    // the filter's best sample, which may be several polls old, or a spike the
                    // discipline set aside.
                    if let Some(t) = self.last_update {
                        served.reference_time = t;
                    }
                    served
                };
                (served, Serving::Peer(id))
            }
            // The second or so after a step, while the filters refill: the system peer is
            // still served, with the step in the dispersion, rather than "unsynchronised".
            None if !gate_open && self.held_peer().is_some() => match self.held {
                Some((id, state)) => (state, Serving::Peer(id)),
                None => (
                    SystemState::unsynchronized(self.params.precision),
                    Serving::Unsynchronized,
                ),
            },
            None => match self.fallback_state(now_ts, now) {
                Some(state) => (state, Serving::Fallback),
                None => (
                    SystemState::unsynchronized(self.params.precision),
                    Serving::Unsynchronized,
                ),
            },
        };
        if serving != Serving::Fallback {
            self.offset = selection.offset;
            self.jitter = selection.jitter;
        }
        self.served = served;
        if serving != self.serving {
            self.events.push_back(Event::ServingChanged {
                from: self.serving,
                to: serving,
            });
            self.serving = serving;
        }
    }

    /// Runs selection over every source at local time `now`, recording each tally. With the
    /// start-up gate closed the tallies are only for show: the system peer stays as it was and
    /// no round is announced.
    fn select(&mut self, now: NtpTimestamp, gate_open: bool) -> Selection {
        let fitness = self.params.fitness;
        let system_peer = self.system_peer;
        let inputs: Vec<Option<Candidate>> = self
            .entries
            .iter()
            .map(|e| {
                let standing = Standing {
                    noselect: e.spec.noselect,
                    prefer: e.spec.prefer,
                    truechimer: e.spec.truechimer,
                    was_system_peer: system_peer == Some(e.id),
                };
                e.source.selection_input(now, &fitness, standing)
            })
            .collect();
        // A PPS clock only times seconds another source numbers, so it takes no part in the
        // intersection (as in ntpd): a pulse sample kept from before its numbering source was
        // lost would otherwise outvote that source and leave no system peer to number it again.
        // It takes over afterwards, in [`Self::pps_takes_over`].
        let voters: Vec<Option<Candidate>> = inputs
            .iter()
            .zip(&self.entries)
            .map(|(input, e)| input.filter(|_| !e.pps))
            .collect();
        let selection = select(&voters, &self.params.select);
        // In the gap after a step of a synchronised clock the system peer of before is still
        // what is served (`held`), so it is still shown as the system peer: monitoring that
        // looks for the `sys.peer` association (Nagios' check_ntp_peer) would otherwise report
        // "not synchronized". (After the first correction of a clock brought in from far off,
        // unsynchronised is served, and nothing is shown as followed.)
        let held = match self.held {
            Some((_, state)) if !gate_open && state.is_synchronized() => self.held_peer(),
            _ => None,
        };
        for ((e, tally), input) in self.entries.iter_mut().zip(&selection.tallies).zip(inputs) {
            // With the gate closed nothing is followed, so nothing is shown as followed: a
            // source marked `*` before every source has answered might be the one falseticker
            // of the set, which the majority has not had the chance to outvote yet.
            e.tally = match *tally {
                _ if held == Some(e.id) => Tally::SystemPeer,
                Tally::SystemPeer if !gate_open => Tally::Candidate,
                t => t,
            };
            if gate_open {
                e.input = input;
            }
        }
        if gate_open {
            self.system_peer = selection
                .system_peer
                .and_then(|i| self.entries.get(i))
                .map(|e| e.id);
            self.events.push_back(Event::Selected);
        }
        selection
    }

    /// The PPS clock that takes over as system peer while the preferred source it is numbered
    /// by is the system peer: the PPS clock's index, which then is the only source fed to the
    /// discipline — the preferred source numbers the seconds, the pulses time them, and its
    /// own jitter stays out of the clock. The PPS clock must itself be fit to be selected (a
    /// recent sample, within the distance limits), and they are tallied as ntpd tallies them:
    /// the PPS clock `o`, the preferred source `*`.
    fn pps_takes_over(&mut self, selection: &Selection) -> Option<usize> {
        let chosen = selection.system_peer?;
        let numbering = self.entries.get(chosen)?;
        if !numbering.spec.prefer || numbering.pps {
            return None;
        }
        let i = self
            .entries
            .iter()
            .position(|e| e.pps && !e.spec.noselect && e.input.is_some())?;
        if let Some(e) = self.entries.get_mut(i) {
            e.tally = Tally::PpsPeer;
        }
        self.system_peer = self.entries.get(i).map(|e| e.id);
        Some(i)
    }

    /// Gives the discipline every survivor's newest sample it has not seen yet, oldest first,
    /// and hands what it did to every source. Returns whether the clock was stepped.
    fn feed<C: Clock>(
        &mut self,
        clock: &mut C,
        jitter: f64,
        leap: Leap,
        only: Option<usize>,
    ) -> bool {
        let now = clock.now();
        let mut fresh: Vec<(i64, usize, Observation)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(i, e)| is_survivor(e.tally) && only.is_none_or(|o| o == *i))
            .filter_map(|(i, e)| {
                let obs = Observation::from_source(&e.source, jitter, leap, now)?;
                let seen = e.fed.is_some_and(|t| (obs.time - t).to_bits() <= 0);
                (!seen).then(|| ((obs.time - now).to_bits(), i, obs))
            })
            .collect();
        fresh.sort_by_key(|(t, i, _)| (*t, *i));
        let mut stepped = false;
        for (_, i, obs) in fresh {
            let (Some(e), Some(d)) = (self.entries.get_mut(i), self.discipline.as_mut()) else {
                continue;
            };
            e.fed = Some(obs.time);
            self.events.push_back(Event::Fed(e.id));
            let measuring = d.readout().state == State::Frequency;
            let mut stop = false;
            let update = d.update(clock, &obs);
            // A sample the discipline used is a clock update (a spike set aside is not).
            if matches!(
                update,
                Ok(Update::Slewed { .. }
                    | Update::Measuring { .. }
                    | Update::Stepped { .. }
                    | Update::OneShot { .. })
            ) {
                self.last_update = Some(now);
            }
            match update {
                Ok(Update::Slewed { offset, phase }) => {
                    self.events.push_back(Event::Slewed {
                        offset: seconds(offset),
                    });
                    self.correct_sources(phase);
                }
                Ok(Update::Measuring { phase }) => self.correct_sources(phase),
                Ok(Update::Stepped { offset }) => {
                    self.events.push_back(Event::Stepped {
                        offset: seconds(offset),
                    });
                    self.last_step = offset.abs();
                    // Every sample before the step is on the old time scale.
                    self.pending_slew = None;
                    for e in &mut self.entries {
                        e.source.reset_filter();
                        e.fed = None;
                    }
                    stepped = true;
                    stop = true;
                }
                Ok(Update::Panic { offset }) => {
                    let threshold = self
                        .params
                        .discipline
                        .and_then(|p| p.panic)
                        .unwrap_or(NtpDuration::MAX);
                    self.events.push_back(Event::Panic {
                        offset: seconds(offset),
                        threshold,
                    });
                    stop = true;
                }
                Ok(Update::OneShot {
                    offset,
                    stepped: was_step,
                }) => {
                    self.one_shot_done = true;
                    self.events.push_back(Event::OneShot {
                        offset: seconds(offset),
                        stepped: was_step,
                    });
                }
                Ok(Update::Spike { offset }) => self.events.push_back(Event::Spike {
                    offset: seconds(offset),
                }),
                Ok(Update::Ignored(_)) => {}
                Err(e) => {
                    self.events.push_back(Event::ClockFailed {
                        error: e.to_string(),
                    });
                    // `-q` gives up at the first refusal.
                    stop = self.params.one_shot;
                }
            }
            self.after_discipline(measuring);
            if stop {
                break;
            }
        }
        if let Some(d) = self.discipline.as_ref() {
            let (poll, burst, early) = (d.poll(), d.measuring_frequency(), d.learning_frequency());
            for e in &mut self.entries {
                e.source.set_system_poll(poll);
                e.source.set_frequency_burst(burst);
                e.source.set_early_polls(early);
            }
        }
        stepped
    }

    /// After the discipline ran: the start or end of the start-up frequency measurement
    /// (`was_measuring`: whether it ran before).
    pub(super) fn after_discipline(&mut self, was_measuring: bool) {
        let Some(d) = self.discipline.as_ref() else {
            return;
        };
        let readout = d.readout();
        let measuring = readout.state == State::Frequency;
        if measuring && !was_measuring {
            self.events.push_back(Event::MeasuringFrequency);
        } else if was_measuring && !measuring {
            self.events.push_back(Event::FrequencyMeasured {
                frequency: Ppm::new(readout.frequency_ppm).unwrap_or_default(),
                offset: seconds(readout.offset),
            });
        }
    }

    /// Tells every source that the clock moved by `phase` seconds and which slew runs now.
    pub(super) fn correct_sources(&mut self, phase: f64) {
        let pending = self.pending_slew();
        self.pending_slew = pending;
        for e in &mut self.entries {
            e.source.apply_clock_correction(phase, pending);
        }
    }

    /// The system peer as the served state should see it when a clock is disciplined: the
    /// clock follows every survivor's newest sample through the discipline, not the filter's
    /// best sample, so the peer's contribution to the dispersion is the newest sample's own
    /// dispersion plus three standard deviations of the discipline's offset estimate (RFC 5905
    /// counts the filter dispersion instead, which with eight stages of aging samples is
    /// several times what the served time can actually be off).
    fn disciplined_peer(&self, id: super::SourceId, mut peer: SystemPeer) -> SystemPeer {
        let (Some(d), Some(e)) = (self.discipline.as_ref(), self.entry(id)) else {
            return peer;
        };
        if let Some(sample) = e.source.latest_sample() {
            peer.estimate.dispersion = sample.dispersion + SERVED_SIGMAS * d.readout().offset_sigma;
        }
        peer
    }

    /// What to serve right after a step, held until the start-up gate opens again: if the
    /// system peer was served as synchronised, the same state with the step added to the root
    /// dispersion and the step as the last clock update; otherwise (the first correction of a
    /// clock brought in from far off) unsynchronised. Either way the system peer stays the
    /// system peer through the gap: nothing was lost that a log or monitor should report.
    fn after_step(&mut self, id: super::SourceId, now: NtpTimestamp) -> SystemState {
        if !self.served.is_synchronized() {
            let state = SystemState::unsynchronized(self.params.precision);
            self.held = Some((id, state));
            return state;
        }
        let mut state = self.served;
        state.root_dispersion = state.root_dispersion_at(now) + seconds(self.last_step);
        state.reference_time = now;
        self.held = Some((id, state));
        state
    }

    /// The system peer served through the gap after a step, while it is still configured.
    pub(super) fn held_peer(&self) -> Option<super::SourceId> {
        let (id, _) = self.held?;
        self.entries.iter().any(|e| e.id == id).then_some(id)
    }

    /// The fallback's state, if it stands in now.
    fn fallback_state(&self, now_ts: NtpTimestamp, now: MonoTime) -> Option<SystemState> {
        let since = now.saturating_since(self.last_synced.unwrap_or(self.started));
        if matches!(self.params.fallback, Fallback::LocalClock { .. })
            && self.params.upstream_configured
            && self.last_synced.is_none()
            && since < LOCAL_CLOCK_GRACE
        {
            return None;
        }
        self.params
            .fallback
            .state(now_ts, since, self.params.precision)
    }

    fn survivors(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| is_survivor(e.tally))
    }
}

/// How many standard deviations of the discipline's offset estimate the served dispersion
/// allows for.
const SERVED_SIGMAS: f64 = 3.0;

/// Whether a tally makes the source's samples count: the system peer and the other survivors.
fn is_survivor(tally: Tally) -> bool {
    matches!(tally, Tally::SystemPeer | Tally::PpsPeer | Tally::Candidate)
}

/// Seconds as the system process reports them.
fn seconds(secs: f64) -> NtpDuration {
    NtpDuration::from_seconds_f64(secs)
}
