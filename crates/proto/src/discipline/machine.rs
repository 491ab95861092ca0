//! The discipline's state machine: start-up (first correction, panic gate, `-G`, `-q`), the
//! step/stepout rules, outlier handling, and the hand-over from the Kalman filter's estimate to
//! the steering.

use super::kalman::Kalman;
use super::poll::PollControl;
use super::startup::{Hold, START_UP_SPAN, measures_poorly, predicts_poorly};
use super::steer::Steering;
use super::{
    DisciplineParams, Ignored, MAX_FREQUENCY_PPM, Observation, Readout, State, Update, ppm,
    seconds_between,
};
use crate::clock::Clock;
use crate::source::PendingSlew;
use crate::time::{NtpDuration, NtpTimestamp};

/// Frequency uncertainty (one σ) with nothing known: the whole ±500 ppm range, s/s. The second
/// update then attributes the offset change almost entirely to frequency, like ntpd's FREQ
/// state but without its 300 s wait.
const UNKNOWN_FREQUENCY_SIGMA: f64 = MAX_FREQUENCY_PPM * 1e-6;

/// Frequency uncertainty (one σ) of a drift file's value, s/s: a few ppm covers the
/// temperature difference between when it was written and now.
const DRIFT_FILE_FREQUENCY_SIGMA: f64 = 3e-6;

/// Measurement noise floor, s² (100 ns): time stamping and interrupt latency that no delay
/// reveals.
const NOISE_FLOOR: f64 = 1e-14;

/// A measurement whose residual exceeds this many predicted standard deviations is an
/// outlier (a popcorn spike, ntpd's 3σ suppressor is stricter but its σ is cruder).
const OUTLIER_SIGMAS: f64 = 5.0;

/// Updates before outliers are set aside at all: while the filter is still learning the
/// frequency, a surprise is more likely its own fault than the sample's.
const SETTLING_UPDATES: u32 = 8;

/// Updates after the first before the clock counts as synchronised (and is served as such).
/// The first update corrects the clock by one sample, whose error is that of a single path
/// delay draw (±70 µs typical on a LAN, several hundred µs for an unlucky one); the next
/// updates, seconds apart after an iburst, move the clock — and the served time — by most of
/// that again. A client that starts at the same time fits its frequency to its own first few
/// samples, seconds apart, and a 400 µs jump in what it is served over 2 s reads as 200 ppm:
/// in clknetsim's `downstream` scenario, chronyd clients of a sundial that claimed
/// synchronisation from its first sample took up to 211 s to come within 1 ms. With three
/// samples the estimate has a frequency of its own and each update moves it by a fraction of a
/// sample's noise (in the same scenario chronyd, too, served synchronised from its third sample).
const SETTLED_UPDATES: u32 = 2;

/// After this many outliers in a row they are believed: the filter widens its uncertainty and
/// follows (a real phase or frequency jump, not a spike).
const OUTLIER_RUN: u32 = 3;

/// Weight of one update in the running averages behind `clk_jitter` and `clk_wander` (ntpd
/// `CLOCK_AVG`).
const CLOCK_AVG: f64 = 8.0;

/// A frequency known to better than this (one σ, s/s) is worth writing to the drift file.
const DRIFT_WORTH_SAVING: f64 = 1e-6;

/// Where the discipline is, with what each stage needs to know.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Never updated (ntpd NSET, or FSET with the drift file's frequency).
    Unset,
    /// The phase was corrected once and the frequency is being measured before anything else
    /// is done (ntpd FREQ).
    Measuring {
        hold: Hold,
        /// When the offset first exceeded the step threshold, while it still does.
        spike_since: Option<NtpTimestamp>,
    },
    /// Disciplining (ntpd SYNC; SPIK while `spike_since` is set).
    Tracking {
        /// When the offset first exceeded the step threshold, while it still does.
        spike_since: Option<NtpTimestamp>,
        /// After an immediate first correction (iburst, a drift file): when it was made, while
        /// the frequency is still being learned and sources should poll early.
        learning_since: Option<NtpTimestamp>,
    },
    /// One-shot mode has set the clock.
    Done,
}

/// The clock discipline of one daemon. See the module documentation for the call order.
#[derive(Debug, Clone)]
pub struct Discipline {
    params: DisciplineParams,
    phase: Phase,
    kalman: Option<Kalman>,
    steering: Steering,
    panic_gate: bool,
    force_step: bool,
    needs_all_sources: bool,
    /// T4 of the last observation taken, to use each sample once and in order.
    last_time: Option<NtpTimestamp>,
    /// Local time of the last step: older samples are on the old time scale.
    epoch: Option<NtpTimestamp>,
    /// Local time of the last measurement the filter used.
    last_used: Option<NtpTimestamp>,
    outliers: u32,
    /// Measurements the filter has used since start-up.
    accepted: u32,
    poll: PollControl,
    /// Running average of 1/R, s⁻².
    information: f64,
    offset: f64,
    sys_jitter: f64,
    jitter_var: f64,
    wander_var: f64,
}

impl Discipline {
    /// A discipline that has not touched the clock yet.
    pub fn new(params: DisciplineParams) -> Self {
        Self {
            params,
            phase: Phase::Unset,
            kalman: None,
            steering: Steering::new(
                params.clock_frequency.as_ratio(),
                params.max_slew.as_ratio(),
            ),
            panic_gate: params.panic_gate,
            force_step: params.force_step_once,
            needs_all_sources: true,
            last_time: None,
            epoch: None,
            last_used: None,
            outliers: 0,
            accepted: 0,
            poll: PollControl::new(params.minpoll, params.maxpoll),
            information: 0.0,
            offset: 0.0,
            sys_jitter: 0.0,
            jitter_var: 0.0,
            wander_var: 0.0,
        }
    }

    /// Uses one new sample of a survivor of selection (see the module documentation).
    pub fn update<C: Clock>(
        &mut self,
        clock: &mut C,
        obs: &Observation,
    ) -> Result<Update, C::Error> {
        if self.phase == Phase::Done {
            return Ok(Update::Ignored(Ignored::Finished));
        }
        let finite = [
            obs.offset,
            obs.delay,
            obs.min_delay,
            obs.min_delay_error,
            obs.dispersion,
            obs.jitter,
        ];
        if !finite.iter().all(|v| v.is_finite()) {
            return Ok(Update::Ignored(Ignored::Invalid));
        }
        let after = |t: Option<NtpTimestamp>| t.is_none_or(|t| seconds_between(obs.time, t) > 0.0);
        if !after(self.last_time) || !after(self.epoch) {
            return Ok(Update::Ignored(Ignored::Stale));
        }
        self.last_time = Some(obs.time);
        self.sys_jitter = obs.jitter;
        if let Some(panic) = self.params.panic
            && obs.offset.abs() > panic.to_seconds_f64()
            && !self.panic_gate
        {
            return Ok(Update::Panic { offset: obs.offset });
        }
        let update = if self.kalman.is_none() {
            self.first(clock, obs)?
        } else {
            self.next(clock, obs)?
        };
        if matches!(
            update,
            Update::Slewed { .. } | Update::Stepped { .. } | Update::OneShot { .. }
        ) {
            let est = self.kalman.map_or(0.0, |k| k.offset_sigma()) + self.sys_jitter;
            clock.set_status(
                obs.leap,
                NtpDuration::from_seconds_f64(est),
                NtpDuration::from_seconds_f64(obs.root_distance + self.offset.abs()),
            )?;
        }
        Ok(update)
    }

    /// When [`Self::handle_timeout`] is next due, as a time of the disciplined clock.
    pub fn next_timeout(&self) -> Option<NtpTimestamp> {
        let slew = self.steering.next_timeout();
        let hold = self.hold().map(|h| h.deadline());
        match (slew, hold) {
            (Some(a), Some(b)) => Some(if seconds_between(a, b) < 0.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Ends a slew, or the start-up frequency measurement, that is due. Returns a phase to
    /// pass to `Source::apply_clock_correction` like that of [`Update::Slewed`] (the part of
    /// the slew a late call added, or the correction that ends the measurement).
    pub fn handle_timeout<C: Clock>(&mut self, clock: &mut C) -> Result<f64, C::Error> {
        let mut phase = self.steering.handle_timeout(clock)?;
        if let Some(mut hold) = self.hold() {
            let now = clock.now();
            if seconds_between(now, hold.deadline()) >= 0.0 {
                let shift = hold.move_reference(now, self.steering.next_timeout().is_none());
                self.phase = Phase::Tracking {
                    spike_since: None,
                    learning_since: None,
                };
                let (_, committed) = self.steer(clock)?;
                phase += shift + committed;
            }
        }
        Ok(phase)
    }

    /// The phase slew under way, if any: pass it with every phase to
    /// `Source::apply_clock_correction`, so samples measured during it are stored as of its end.
    pub fn pending_slew(&self) -> Option<PendingSlew> {
        let slew = self.steering.pending();
        let Some(hold) = self.hold() else {
            return slew;
        };
        Some(match slew {
            Some(slew) => PendingSlew {
                drift: hold.drift,
                ..slew
            },
            None => PendingSlew {
                end: hold.reference,
                rate: 0.0,
                drift: hold.drift,
            },
        })
    }

    /// Whether the next update must wait for `sources_settled` (at start-up and after a step).
    pub fn needs_all_sources(&self) -> bool {
        self.needs_all_sources
    }

    /// Whether the clock is disciplined: updated since start-up and since the last step, and
    /// from at least three samples in all (`SETTLED_UPDATES`).
    pub fn is_synchronized(&self) -> bool {
        matches!(self.phase, Phase::Tracking { .. })
            && !self.needs_all_sources
            && self.accepted >= SETTLED_UPDATES
    }

    /// Whether sources should send a short burst at each poll: the frequency is still being
    /// measured (start-up hold), or will be once the first sample arrives.
    pub fn measuring_frequency(&self) -> bool {
        self.hold().is_some() || (self.kalman.is_none() && self.hold_applies())
    }

    /// Whether sources should poll at half their interval: the clock was corrected at once
    /// (iburst, a drift file) on a frequency that cannot yet predict it to the next poll.
    pub fn learning_frequency(&self) -> bool {
        matches!(
            self.phase,
            Phase::Tracking {
                learning_since: Some(_),
                ..
            }
        )
    }

    /// The start-up frequency measurement, while it lasts.
    fn hold(&self) -> Option<Hold> {
        match self.phase {
            Phase::Measuring { hold, .. } => Some(hold),
            _ => None,
        }
    }

    /// The start of a run of offsets beyond the step threshold, once updates have begun.
    fn spike_since(&mut self) -> Option<&mut Option<NtpTimestamp>> {
        match &mut self.phase {
            Phase::Measuring { spike_since, .. } | Phase::Tracking { spike_since, .. } => {
                Some(spike_since)
            }
            Phase::Unset | Phase::Done => None,
        }
    }

    fn hold_applies(&self) -> bool {
        self.params.frequency_hold
            && !self.params.one_shot
            && self.params.initial_frequency.is_none()
    }

    /// The poll exponent to give every association.
    pub fn poll(&self) -> i8 {
        self.poll.poll()
    }

    /// The frequency correction to write to the drift file, ppm, once it has been measured
    /// to better than 1 ppm and applied (not while the start-up measurement still holds it).
    pub fn drift_ppm(&self) -> Option<f64> {
        let applied = !matches!(self.phase, Phase::Done | Phase::Measuring { .. });
        self.kalman
            .filter(|k| k.freq_sigma() < DRIFT_WORTH_SAVING && applied)
            .map(|_| ppm(self.steering.base()))
    }

    /// The values ntpq shows.
    pub fn readout(&self) -> Readout {
        Readout {
            offset: self.offset,
            frequency_ppm: ppm(self.steering.base()),
            sys_jitter: self.sys_jitter,
            clk_jitter: self.jitter_var.sqrt(),
            clk_wander_ppm: ppm(self.wander_var.sqrt()),
            poll: self.poll.poll(),
            state: self.state(),
            offset_sigma: self.kalman.map_or(0.0, |k| k.offset_sigma()),
        }
    }

    /// The state in ntpd's terms.
    fn state(&self) -> State {
        match self.phase {
            Phase::Unset if self.params.initial_frequency.is_some() => State::FrequencySet,
            Phase::Unset => State::Unset,
            Phase::Measuring { .. } => State::Frequency,
            Phase::Tracking {
                spike_since: Some(_),
                ..
            } => State::Spike,
            Phase::Tracking { .. } => State::Sync,
            Phase::Done => State::Done,
        }
    }

    fn first<C: Clock>(&mut self, clock: &mut C, obs: &Observation) -> Result<Update, C::Error> {
        let base = self.params.initial_frequency.map_or(0.0, |f| {
            f.value().clamp(-MAX_FREQUENCY_PPM, MAX_FREQUENCY_PPM) * 1e-6
        });
        let freq_sigma = if self.params.initial_frequency.is_some() {
            DRIFT_FILE_FREQUENCY_SIGMA
        } else {
            UNKNOWN_FREQUENCY_SIGMA
        };
        let noise = noise(obs);
        // The gate allows exactly one correction, whatever its size (CVE-2015-5300).
        self.panic_gate = false;
        let step = core::mem::take(&mut self.force_step) || self.exceeds_step(obs.offset);
        if step {
            self.steering.set_base(clock, base)?;
            let at = clock.step(NtpDuration::from_seconds_f64(obs.offset))?;
            self.steering.restart(at);
            self.kalman = Some(Kalman::new(at, 0.0, noise, base, freq_sigma.powi(2)));
            self.after_step(at);
            self.offset = obs.offset;
            return Ok(if self.params.one_shot {
                self.phase = Phase::Done;
                Update::OneShot {
                    offset: obs.offset,
                    stepped: true,
                }
            } else {
                self.phase = if self.hold_applies() {
                    Phase::Measuring {
                        hold: Hold::new(at),
                        spike_since: None,
                    }
                } else {
                    Phase::Tracking {
                        spike_since: None,
                        learning_since: Some(at),
                    }
                };
                Update::Stepped { offset: obs.offset }
            });
        }
        let time = midpoint(obs);
        self.kalman = Some(Kalman::new(
            time,
            obs.offset,
            noise,
            base,
            freq_sigma.powi(2),
        ));
        self.last_used = Some(time);
        self.information = 1.0 / noise;
        self.needs_all_sources = false;
        let (offset, phase) = self.steer(clock)?;
        Ok(if self.params.one_shot {
            self.phase = Phase::Done;
            Update::OneShot {
                offset,
                stepped: false,
            }
        } else {
            self.phase = if self.hold_applies() {
                // Samples are stored as of the end of this first slew (`pending_slew`).
                Phase::Measuring {
                    hold: Hold::new(self.steering.next_timeout().unwrap_or(time)),
                    spike_since: None,
                }
            } else {
                Phase::Tracking {
                    spike_since: None,
                    learning_since: Some(time),
                }
            };
            Update::Slewed { offset, phase }
        })
    }

    fn next<C: Clock>(&mut self, clock: &mut C, obs: &Observation) -> Result<Update, C::Error> {
        if self.exceeds_step(obs.offset) {
            let since = self
                .spike_since()
                .map_or(obs.time, |s| *s.get_or_insert(obs.time));
            if seconds_between(obs.time, since) < self.params.stepout.to_seconds_f64() {
                return Ok(Update::Spike { offset: obs.offset });
            }
            self.steering.cancel(clock)?;
            let at = clock.step(NtpDuration::from_seconds_f64(obs.offset))?;
            self.steering.restart(at);
            if let Some(k) = self.kalman.as_mut() {
                k.restart(at, noise(obs));
            }
            self.after_step(at);
            self.offset = obs.offset;
            return Ok(Update::Stepped { offset: obs.offset });
        }
        if let Some(spike_since) = self.spike_since() {
            *spike_since = None;
        }
        let Some(mut k) = self.kalman else {
            return Ok(Update::Ignored(Ignored::Stale));
        };
        let time = midpoint(obs);
        let (elapsed, phase) = self.steering.integrate(k.time, time);
        if elapsed > 0.0 {
            k.predict(time, elapsed, phase);
        }
        let noise = noise(obs);
        let surprise = k.innovation(obs.offset, noise);
        if self.accepted >= SETTLING_UPDATES
            && surprise.normalised() > OUTLIER_SIGMAS * OUTLIER_SIGMAS
        {
            self.outliers += 1;
            if self.outliers < OUTLIER_RUN {
                self.kalman = Some(k);
                return Ok(Update::Ignored(Ignored::Outlier));
            }
            // Believe it: as much phase uncertainty as the jump, and enough frequency
            // uncertainty to explain it over the time since the last good update (at least a
            // poll interval: samples of several sources come seconds apart).
            let poll = 2f64.powi(i32::from(self.poll.poll()));
            let span = self
                .last_used
                .map_or(poll, |t| seconds_between(time, t).max(poll));
            let jump = surprise.residual;
            k.inflate(jump * jump, (jump / span).powi(2));
        }
        self.outliers = 0;
        self.accepted = self.accepted.saturating_add(1);
        let inn = k.update(obs.offset, noise, self.accepted >= SETTLING_UPDATES);
        self.kalman = Some(k);
        self.last_used = Some(time);
        self.needs_all_sources = false;
        // The information a typical measurement brings: an average of 1/R, not of R.
        self.information += (1.0 / noise - self.information) / CLOCK_AVG;
        self.poll
            .update(1.0 / self.information, k.wander(), k.freq_sigma());
        self.jitter_var += (inn.residual.powi(2) - self.jitter_var) / CLOCK_AVG;
        let mut drift_phase = 0.0;
        if let Some(mut hold) = self.hold() {
            let now = clock.now();
            drift_phase = hold.move_reference(now, self.steering.next_timeout().is_none());
            hold.drift = self.steering.base() - k.freq;
            if measures_poorly(&k, self.params.minpoll)
                && seconds_between(now, hold.deadline()) < 0.0
            {
                self.phase = Phase::Measuring {
                    hold,
                    spike_since: None,
                };
                return Ok(Update::Measuring { phase: drift_phase });
            }
            self.phase = Phase::Tracking {
                spike_since: None,
                learning_since: None,
            };
        }
        let learned = !self.predicts_poorly(&k);
        if let Phase::Tracking { learning_since, .. } = &mut self.phase
            && let Some(since) = *learning_since
            && (learned || seconds_between(time, since) >= START_UP_SPAN)
        {
            *learning_since = None;
        }
        let old_base = self.steering.base();
        let (offset, phase) = self.steer(clock)?;
        self.wander_var +=
            ((self.steering.base() - old_base).powi(2) - self.wander_var) / CLOCK_AVG;
        Ok(Update::Slewed {
            offset,
            phase: phase + drift_phase,
        })
    }

    /// Sets the frequency to the estimate and starts slewing out the estimated offset as of
    /// now. Returns (that offset, the phase committed).
    fn steer<C: Clock>(&mut self, clock: &mut C) -> Result<(f64, f64), C::Error> {
        let Some(k) = self.kalman else {
            return Ok((0.0, 0.0));
        };
        let now = clock.now();
        let mut at_now = k;
        let (elapsed, phase) = self.steering.integrate(k.time, now);
        at_now.predict(now, elapsed, phase);
        let limit = MAX_FREQUENCY_PPM * 1e-6;
        let base = at_now.freq.clamp(-limit, limit);
        let committed = self.steering.steer(clock, now, base, at_now.offset)?;
        self.steering.prune(k.time);
        self.offset = at_now.offset;
        Ok((at_now.offset, committed))
    }

    fn predicts_poorly(&self, k: &Kalman) -> bool {
        predicts_poorly(k, self.params.minpoll)
    }

    fn after_step(&mut self, at: NtpTimestamp) {
        self.epoch = Some(at);
        // Sample times before the step are on the old time scale: only the epoch orders now.
        self.last_time = None;
        self.last_used = Some(at);
        self.needs_all_sources = true;
        if let Some(spike_since) = self.spike_since() {
            *spike_since = None;
        }
        self.outliers = 0;
        self.poll.reset();
    }

    /// Whether `offset` is beyond the step threshold in its direction (positive offsets are
    /// corrected by stepping forward).
    fn exceeds_step(&self, offset: f64) -> bool {
        let threshold = if offset > 0.0 {
            self.params.step_forward
        } else {
            self.params.step_back
        };
        threshold.is_some_and(|t| offset.abs() > t.to_seconds_f64())
    }
}

/// The measurement's variance: its offset error is uniform within ± half its delay above the
/// path's minimum (exact for exponential queueing), plus its dispersion and a floor.
fn noise(obs: &Observation) -> f64 {
    let excess = (obs.delay - obs.min_delay).max(0.0) + obs.min_delay_error.max(0.0);
    excess * excess / 12.0 + obs.dispersion * obs.dispersion + NOISE_FLOOR
}

/// The local time the offset was measured at: the middle of the exchange, not T4.
fn midpoint(obs: &Observation) -> NtpTimestamp {
    obs.time - NtpDuration::from_seconds_f64(obs.delay.max(0.0) / 2.0)
}
