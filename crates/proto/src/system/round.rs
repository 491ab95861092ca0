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
        let selection = self.select(now_ts, gate_open);
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
                        stepped = self.feed(clock, selection.jitter, leap);
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
                let served = if stepped || !self.is_synchronized() {
                    // Until the discipline has the clock in hand, clients are told so.
                    SystemState::unsynchronized(self.params.precision)
                } else {
                    follow(&sys_peer, &selection, leap, self.params.precision)
                };
                (served, Serving::Peer(id))
            }
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
        let selection = select(&inputs, &self.params.select);
        for ((e, tally), input) in self.entries.iter_mut().zip(&selection.tallies).zip(inputs) {
            e.tally = *tally;
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

    /// Gives the discipline every survivor's newest sample it has not seen yet, oldest first,
    /// and hands what it did to every source. Returns whether the clock was stepped.
    fn feed<C: Clock>(&mut self, clock: &mut C, jitter: f64, leap: Leap) -> bool {
        let now = clock.now();
        let mut fresh: Vec<(i64, usize, Observation)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| is_survivor(e.tally))
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
            match d.update(clock, &obs) {
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

/// Whether a tally makes the source's samples count: the system peer and the other survivors.
fn is_survivor(tally: Tally) -> bool {
    matches!(tally, Tally::SystemPeer | Tally::Candidate)
}

/// Seconds as the system process reports them.
fn seconds(secs: f64) -> NtpDuration {
    NtpDuration::from_seconds_f64(secs)
}
