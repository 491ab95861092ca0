//! Driving the clock discipline from the daemon: which samples it sees, when its timer fires,
//! what a step or a panic means for the rest of ntpd, and the drift file.
//!
//! The discipline itself (`sundial_proto::discipline`) is pure; this module gives it the
//! survivors' fresh samples in order, hands its phase corrections back to every association
//! (their filters must know the clock moved), resets them after a step, and owns the clock it
//! steers and the drift file.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sundial_proto::clock::Clock;
use sundial_proto::discipline::{
    Discipline, DisciplineParams, Observation, Readout, State, Update, sources_settled,
};
use sundial_proto::packet::Leap;
use sundial_proto::select::{Selection, Tally};
use sundial_proto::time::{NtpDuration, NtpTimestamp};

use crate::associations::Associations;
use crate::cli::NtpdArgs;
use crate::clock::{SteeredClock, TimeMapping};
use crate::config::{Config, Threshold};
use crate::driftfile::{self, DriftWriter};

/// What the rest of the daemon must do after the discipline ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// Nothing special.
    None,
    /// The clock was stepped by this many seconds.
    Stepped(f64),
    /// The offset exceeds the panic threshold: log and exit.
    Panic {
        /// The offset, seconds.
        offset: f64,
        /// The threshold, seconds.
        threshold: f64,
    },
    /// The clock refused a change (no CAP_SYS_TIME, say) while `ntpd -q` needed it: exit.
    ClockFailed,
    /// `ntpd -q` set the clock (or started the final slew): report and exit once the slew ends.
    OneShot {
        /// The correction, seconds.
        offset: f64,
        /// Whether it was a step.
        stepped: bool,
    },
}

/// The discipline, the clock it steers and the drift file.
#[derive(Debug)]
pub struct Steering {
    discipline: Discipline,
    clock: SteeredClock,
    /// Sample time of the last sample of each association given to the discipline.
    fed: HashMap<u16, NtpTimestamp>,
    drift: Option<DriftWriter>,
    panic: f64,
    one_shot: bool,
    one_shot_done: bool,
    /// Whether a failed clock adjustment was already logged (it is logged once, not per poll).
    clock_error_logged: bool,
}

impl Steering {
    /// The discipline for this configuration and command line, steering `clock`.
    pub fn new(config: &Config, args: &NtpdArgs, clock: SteeredClock) -> Self {
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
        let initial = config.tinker.freq.map(|f| f.value()).or(initial);
        let threshold = |t: Threshold| match t {
            Threshold::Disabled => None,
            Threshold::At(d) => Some(d),
        };
        let slew_only = args.slew.then(|| NtpDuration::from_seconds(600));
        let (minpoll, maxpoll) = config.poll_range();
        let panic = threshold(config.tinker.panic);
        let params = DisciplineParams {
            step_forward: slew_only.or_else(|| threshold(config.tinker.step_forward())),
            step_back: slew_only.or_else(|| threshold(config.tinker.step_back())),
            stepout: config.tinker.stepout,
            panic,
            panic_gate: args.panicgate,
            force_step_once: args.force_step_once,
            one_shot: args.quit,
            initial_frequency_ppm: initial,
            clock_frequency_ppm: clock.initial_frequency_ppm(),
            minpoll,
            maxpoll,
            // iburst (command-line servers have it too) asks for the fastest start; otherwise
            // the frequency is measured before the clock is corrected beyond its phase.
            frequency_hold: args.servers.is_empty()
                && !config.associations.iter().any(|a| a.iburst),
            ..DisciplineParams::default()
        };
        Self {
            discipline: Discipline::new(params),
            clock,
            fed: HashMap::new(),
            drift,
            panic: panic.map_or(f64::INFINITY, NtpDuration::to_seconds_f64),
            one_shot: args.quit,
            one_shot_done: false,
            clock_error_logged: false,
        }
    }

    /// How served time follows kernel time (changes as the simulated clock is steered).
    pub fn mapping(&self) -> TimeMapping {
        self.clock.mapping()
    }

    /// Whether the discipline still waits for every source to answer before it may act.
    pub fn waiting_for_sources(&self, associations: &Associations) -> bool {
        self.discipline.needs_all_sources() && !sources_settled(associations.sources())
    }

    /// Whether the clock is disciplined (and may be served as synchronised).
    pub fn is_synchronized(&self) -> bool {
        self.discipline.is_synchronized()
    }

    /// The values ntpq shows.
    pub fn readout(&self) -> Readout {
        self.discipline.readout()
    }

    /// The poll exponent every association should use.
    pub fn poll(&self) -> i8 {
        self.discipline.poll()
    }

    /// Gives every association the discipline's start-up polling: bursts while it measures
    /// the frequency, early polls while it learns it after an immediate correction.
    pub fn set_start_up_polling(&self, associations: &mut Associations) {
        associations.set_start_up_polling(
            self.discipline.measuring_frequency(),
            self.discipline.learning_frequency(),
        );
    }

    /// Gives the discipline every survivor's samples it has not seen yet, oldest first.
    pub fn feed(
        &mut self,
        associations: &mut Associations,
        selection: &Selection,
        leap: Leap,
    ) -> Event {
        let now = self.clock.now();
        let mut fresh: Vec<(NtpTimestamp, Observation, u16)> = associations
            .peers()
            .iter()
            .filter(|p| matches!(p.tally, Tally::SystemPeer | Tally::Candidate))
            .filter_map(|p| {
                let obs = Observation::from_source(&p.source, selection.jitter, leap, now)?;
                let seen = self
                    .fed
                    .get(&p.id)
                    .is_some_and(|t| (obs.time - *t).to_bits() <= 0);
                (!seen).then_some((obs.time, obs, p.id))
            })
            .collect();
        fresh.sort_by_key(|(t, _, _)| t.to_bits());
        let mut event = Event::None;
        for (time, obs, id) in fresh {
            self.fed.insert(id, time);
            let measuring = self.measuring();
            match self.discipline.update(&mut self.clock, &obs) {
                Ok(Update::Slewed { phase, .. }) => {
                    associations.apply_clock_correction(phase, self.discipline.pending_slew());
                    self.log_measurement(measuring);
                }
                Ok(Update::Measuring { phase }) => {
                    associations.apply_clock_correction(phase, self.discipline.pending_slew());
                }
                Ok(Update::Stepped { offset }) => {
                    associations.reset_filters();
                    self.fed.clear();
                    tracing::warn!("clock stepped by {offset:+.6} s");
                    return Event::Stepped(offset);
                }
                Ok(Update::Panic { offset }) => {
                    return Event::Panic {
                        offset,
                        threshold: self.panic,
                    };
                }
                Ok(Update::OneShot { offset, stepped }) => {
                    self.one_shot_done = true;
                    event = Event::OneShot { offset, stepped };
                }
                Ok(Update::Spike { offset }) => {
                    tracing::info!(
                        "offset {offset:+.6} s exceeds the step threshold; waiting for it to persist"
                    );
                }
                Ok(Update::Ignored(_)) => {}
                Err(e) => {
                    self.clock_failed(&e);
                    if self.one_shot {
                        return Event::ClockFailed;
                    }
                }
            }
        }
        event
    }

    /// How long until the discipline's timer is due (the end of a slew or of the start-up
    /// frequency measurement), if it runs.
    pub fn timeout(&self) -> Option<Duration> {
        let due = self.discipline.next_timeout()?;
        let wait = (due - self.clock.now()).to_seconds_f64().max(0.0);
        Some(Duration::from_secs_f64(wait.min(3600.0)))
    }

    /// Runs the timer if it is due.
    pub fn on_timer(&mut self, associations: &mut Associations) {
        if self.timeout().is_none_or(|t| !t.is_zero()) {
            return;
        }
        let measuring = self.measuring();
        match self.discipline.handle_timeout(&mut self.clock) {
            Ok(phase) => {
                associations.apply_clock_correction(phase, self.discipline.pending_slew());
                self.log_measurement(measuring);
            }
            Err(e) => self.clock_failed(&e),
        }
    }

    /// Whether the start-up frequency measurement is under way (ntpd state FREQ).
    fn measuring(&self) -> bool {
        self.discipline.readout().state == State::Frequency
    }

    /// Logs the start and the end of the start-up frequency measurement; `was` is whether it
    /// ran before the update.
    fn log_measurement(&self, was: bool) {
        let now = self.measuring();
        if now && !was {
            tracing::info!("phase corrected; measuring the clock frequency before correcting it");
        } else if was && !now {
            let readout = self.discipline.readout();
            tracing::info!(
                "frequency measured: {:+.3} ppm; offset {:+.6} s being slewed out",
                readout.frequency_ppm,
                readout.offset
            );
        }
    }

    fn clock_failed(&mut self, e: &std::io::Error) {
        if self.clock_error_logged {
            tracing::debug!("adjusting the clock failed: {e}");
        } else {
            tracing::error!(
                "adjusting the clock failed: {e} (further failures are logged at debug level)"
            );
            self.clock_error_logged = true;
        }
    }

    /// Applies an announced leap second to the simulated clock at midnight UTC.
    pub fn leap_tick(&mut self) {
        if let Some(step) = self.clock.apply_leap_second() {
            let what = if step < 0 { "inserted" } else { "deleted" };
            tracing::warn!("leap second {what} (simulated clock stepped by {step:+} s)");
        }
    }

    /// Whether `ntpd -q` is finished: the clock was set and no slew is running.
    pub fn one_shot_finished(&self) -> bool {
        self.one_shot_done && self.discipline.next_timeout().is_none()
    }

    /// The hourly drift-file check.
    pub fn drift_tick(&mut self, now: Instant) {
        if let (Some(w), Some(ppm)) = (self.drift.as_mut(), self.discipline.drift_ppm()) {
            w.tick(ppm, now);
        }
    }

    /// At clean shutdown: saves the frequency if it was measured.
    pub fn shutdown(&mut self) {
        if let (Some(w), Some(ppm)) = (self.drift.as_mut(), self.discipline.drift_ppm()) {
            // A failed write was logged as such; only a written file is "saved".
            if w.save(ppm) {
                tracing::info!("frequency {ppm:.3} ppm saved to {}", w.path().display());
            }
        }
    }
}
