//! The clock discipline: turns the measurements of the sources that selection trusts into
//! commands on a [`Clock`](crate::clock::Clock) — at most a step, a frequency correction, and
//! short phase slews — under ntpd's step, stepout and panic rules.
//!
//! The estimator is a two-state Kalman filter (clock offset and frequency) in place of RFC 5905's
//! PLL/FLL. Every new sample of every survivor of selection is one measurement, weighted by how
//! much queueing its delay shows; the filter knows every correction it made, so a sample taken
//! in the middle of a slew is as good as any other. The frequency estimate becomes the clock's
//! frequency correction (±500 ppm) and the offset estimate is slewed out over about a second at
//! up to 5 % (50 000 ppm), then the clock runs on the frequency alone. docs/algorithm.md gives
//! the equations, the constants and the reasons for them.
//!
//! Call order (what [`crate::system::System`] does; the daemon and the simulator drive that):
//! 1. After every good reply, first check the start-up gate: while
//!    [`Discipline::needs_all_sources`] (at start-up and after a step) and not yet
//!    [`sources_settled`], there is no system peer and nothing to do — the first source to
//!    answer must not set the clock on its own. Otherwise run selection; with no system peer,
//!    stop here.
//! 2. For each survivor (tally `*` or `+`) with a sample not yet given to the discipline, in
//!    order of sample time, call [`Discipline::update`] with [`Observation::from_source`]. Act
//!    on the [`Update`]: give the phase of [`Update::Slewed`] to every association
//!    (`Source::apply_clock_correction`); after [`Update::Stepped`] reset every association's
//!    filter (`Source::reset_filter`) and serve "unsynchronised" until
//!    [`Discipline::is_synchronized`]; on [`Update::Panic`] log and exit; after
//!    [`Update::OneShot`] (`ntpd -q`) report it and exit once [`Discipline::next_timeout`] is
//!    `None`.
//! 3. Wake up at [`Discipline::next_timeout`] (a time of the disciplined clock) and call
//!    [`Discipline::handle_timeout`], which ends a slew; give the phase it returns to every
//!    association as in 2.
//! 4. Give every association the poll exponent [`Discipline::poll`] (`Source::set_system_poll`).
//!
//! The discipline never touches the clock before the first update. Then it calls
//! [`set_frequency`](crate::clock::Clock::set_frequency) at every update and at the end of every
//! slew — with rates up to ±(500 + 50 000) ppm, which a kernel clock reaches through the tick
//! length as chrony does (or set [`DisciplineParams::max_slew`]) —
//! [`step`](crate::clock::Clock::step) only under the step rules, and
//! [`set_status`](crate::clock::Clock::set_status) at every update with the agreed leap warning.

#[cfg(test)]
mod hold_tests;
mod kalman;
mod machine;
#[cfg(test)]
mod machine_tests;
mod poll;
mod startup;
mod steer;
#[cfg(test)]
mod tests;

pub use machine::Discipline;

use crate::packet::Leap;
use crate::source::Source;
use crate::time::{NtpDuration, NtpTimestamp, Ppm};

/// Largest frequency correction (ntpd `NTP_MAXFREQ`, 500 ppm), in ppm: a frequency estimate
/// beyond it is clamped and the rest is left to phase slews.
pub const MAX_FREQUENCY_PPM: f64 = 500.0;

/// Fastest phase slew on top of the frequency correction, in ppm (5 %). Removes the 0.128 s
/// step threshold in 2.6 s; ntpd slews at 500 ppm (256 s), chrony at up to 83 333 ppm, and the
/// Linux tick adjustment allows ±10 %. docs/algorithm.md §5 explains the choice.
pub const MAX_SLEW_PPM: f64 = 50_000.0;

/// Default step threshold (ntpd `CLOCK_MAX`, `tinker step`), seconds.
pub const DEFAULT_STEP_THRESHOLD: f64 = 0.128;

/// Default stepout (ntpd `CLOCK_MINSTEP`, `tinker stepout`), seconds: how long an offset
/// beyond the step threshold must persist before it is stepped.
pub const DEFAULT_STEPOUT: f64 = 300.0;

/// Default panic threshold (ntpd `CLOCK_PANIC`, `tinker panic`), seconds.
pub const DEFAULT_PANIC_THRESHOLD: f64 = 1000.0;

/// The command line and `tinker` settings the discipline obeys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisciplineParams {
    /// Offsets beyond this, with the clock behind, are stepped forward (`tinker step` or
    /// `stepfwd`); `None` never steps forward (`tinker step 0`).
    pub step_forward: Option<NtpDuration>,
    /// Offsets beyond this, with the clock ahead, are stepped back (`tinker step` or
    /// `stepback`); `None` never steps back.
    pub step_back: Option<NtpDuration>,
    /// `tinker stepout`: how long a large offset must persist before it is stepped.
    pub stepout: NtpDuration,
    /// `tinker panic`: beyond this the daemon exits instead of correcting; `None` disables the
    /// check (`tinker panic 0`).
    pub panic: Option<NtpDuration>,
    /// `-g`: the first correction may exceed the panic threshold. Closed after the first
    /// correction of any size (CVE-2015-5300).
    pub panic_gate: bool,
    /// `-G`: step the first correction whatever its size.
    pub force_step_once: bool,
    /// `-q`: set the clock once from the first update, then do nothing more.
    pub one_shot: bool,
    /// The drift file's (or `tinker freq`'s) frequency correction, applied at the first
    /// update; `None` when there is none and the frequency must be measured.
    pub initial_frequency: Option<Ppm>,
    /// The frequency correction the clock already has when the daemon starts (the kernel keeps
    /// it across restarts): the discipline's books start from it.
    pub clock_frequency: Ppm,
    /// Fastest phase slew the clock can carry on top of the frequency correction
    /// ([`MAX_SLEW_PPM`] by default). A clock that cannot go beyond some rate must say so here
    /// (500 slews like ntpd's `adjtime` path): the discipline's books assume that every rate it
    /// sets is applied exactly.
    pub max_slew: Ppm,
    /// Smallest poll exponent to recommend (the smallest `minpoll`).
    pub minpoll: i8,
    /// Largest poll exponent to recommend (the largest `maxpoll`).
    pub maxpoll: i8,
    /// ntpd's FREQ state: with no drift file, correct only the phase at the first update and
    /// then leave the clock alone until the filter predicts it one `minpoll` ahead within
    /// 80 µs (at most 100 s; docs/algorithm.md §8), asking sources for bursts meanwhile. Off for
    /// `iburst` and `-q`, which ask for the fastest possible correction instead.
    pub frequency_hold: bool,
}

impl Default for DisciplineParams {
    /// ntpd's defaults: step 0.128 s after 300 s, panic at 1000 s, poll 6…10, no drift file.
    fn default() -> Self {
        let step = Some(NtpDuration::from_seconds_f64(DEFAULT_STEP_THRESHOLD));
        Self {
            step_forward: step,
            step_back: step,
            stepout: NtpDuration::from_seconds_f64(DEFAULT_STEPOUT),
            panic: Some(NtpDuration::from_seconds_f64(DEFAULT_PANIC_THRESHOLD)),
            panic_gate: false,
            force_step_once: false,
            one_shot: false,
            initial_frequency: None,
            clock_frequency: Ppm::ZERO,
            max_slew: Ppm::from_const(MAX_SLEW_PPM),
            minpoll: 6,
            maxpoll: 10,
            frequency_hold: false,
        }
    }
}

/// One new sample of a source that survived selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Local time the reply arrived (T4); samples must come in order of it.
    pub time: NtpTimestamp,
    /// θ: server minus local clock, seconds, as measured (not moved by later corrections).
    pub offset: f64,
    /// δ: round-trip delay, seconds.
    pub delay: f64,
    /// The path's lowest delay lately (`Source::delay_floor`), seconds: the sample's offset
    /// error is at most half of its extra delay above the true minimum, which sets its weight.
    pub min_delay: f64,
    /// How far `min_delay` itself is probably above the path's true minimum, seconds: the
    /// minimum of a few samples still contains some queueing.
    pub min_delay_error: f64,
    /// ε: the sample's dispersion (both precisions and PHI over the round trip), seconds.
    pub dispersion: f64,
    /// The source's root distance, seconds (for the kernel's maximum error).
    pub root_distance: f64,
    /// Ψ: system jitter from selection, seconds (reported as `sys_jitter`).
    pub jitter: f64,
    /// The leap warning the survivors agree on (`sync::leap_majority`).
    pub leap: Leap,
}

impl Observation {
    /// The observation of `source`'s newest sample, with the system jitter and agreed leap
    /// warning of the selection round; `None` if the source has no sample or no estimate
    /// (a survivor of selection has both).
    pub fn from_source(
        source: &Source,
        jitter: f64,
        leap: Leap,
        now: NtpTimestamp,
    ) -> Option<Self> {
        let sample = source.latest_sample()?;
        let floor = source.delay_floor();
        Some(Self {
            time: sample.time,
            offset: sample.offset,
            delay: sample.delay,
            min_delay: floor.floor().unwrap_or(sample.delay),
            min_delay_error: floor.uncertainty(),
            dispersion: sample.dispersion,
            root_distance: source.root_distance(now)?,
            jitter,
            leap,
        })
    }
}

/// What an update did; the daemon must act on some of these.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update {
    /// Nothing was done.
    Ignored(Ignored),
    /// The offset exceeds the step threshold but has not persisted for the stepout yet; the
    /// sample was set aside (ntpd state SPIK).
    Spike {
        /// The measured offset, seconds.
        offset: f64,
    },
    /// The frequency was updated and a phase slew started.
    Slewed {
        /// The estimated clock offset being slewed out, seconds.
        offset: f64,
        /// The phase correction this update committed, seconds (positive: the clock is moved
        /// forward): pass it to `Source::apply_clock_correction` on every association.
        phase: f64,
    },
    /// The sample went into the start-up frequency measurement (state FREQ) and the clock was
    /// left alone.
    Measuring {
        /// The phase the clock gained on its own since the last update, as far as the
        /// measurement knows (positive: forward): pass it to `Source::apply_clock_correction`
        /// like a slew's, with [`Discipline::pending_slew`].
        phase: f64,
    },
    /// The clock was stepped: reset every association's filter.
    Stepped {
        /// The step, seconds (positive: forward).
        offset: f64,
    },
    /// The offset exceeds the panic threshold and the panic gate is closed: nothing was done;
    /// log "`offset` s; set clock manually within `panic` s" and exit.
    Panic {
        /// The measured offset, seconds.
        offset: f64,
    },
    /// One-shot mode (`-q`) is done: "time set" if `stepped`, else "time slew" (in that case
    /// the slew still runs: keep calling [`Discipline::handle_timeout`] until
    /// [`Discipline::next_timeout`] is `None`).
    OneShot {
        /// The correction, seconds.
        offset: f64,
        /// Whether the clock was stepped.
        stepped: bool,
    },
}

/// Why an update did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not newer than the last sample used, or older than the last step.
    Stale,
    /// Offset, delay or dispersion not finite.
    Invalid,
    /// Far outside what the filter predicts; set aside unless such samples keep coming.
    Outlier,

    /// One-shot mode already set the clock.
    Finished,
}

/// The discipline's state, in ntpd's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Never updated, no initial frequency (ntpd NSET).
    Unset,
    /// Never updated, initial frequency known (ntpd FSET).
    FrequencySet,
    /// Disciplining (ntpd SYNC).
    Sync,
    /// Holding a large offset during the stepout (ntpd SPIK).
    Spike,
    /// Phase corrected once, frequency being measured before anything else is done (ntpd
    /// FREQ).
    Frequency,
    /// One-shot mode has set the clock.
    Done,
}

impl State {
    /// ntpd's name for the state (ntpq shows it in the system event log).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unset => "NSET",
            Self::FrequencySet => "FSET",
            Self::Sync => "SYNC",
            Self::Spike => "SPIK",
            Self::Frequency => "FREQ",
            Self::Done => "DONE",
        }
    }
}

/// The values ntpq's system variables show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readout {
    /// `offset`: the clock offset estimated at the last update, seconds.
    pub offset: f64,
    /// `frequency`: the frequency correction, ppm (the drift file's value).
    pub frequency_ppm: f64,
    /// `sys_jitter`: Ψ from selection at the last update, seconds.
    pub sys_jitter: f64,
    /// `clk_jitter`: RMS of the differences between measured and predicted offsets, seconds.
    pub clk_jitter: f64,
    /// `clk_wander`: RMS of the frequency changes between updates, ppm.
    pub clk_wander_ppm: f64,
    /// `tc`: the recommended poll exponent.
    pub poll: i8,
    /// The state.
    pub state: State,
    /// The standard deviation of the offset estimate after the last update, seconds: how far
    /// the corrected clock may be off, beyond what the sources' own errors add.
    pub offset_sigma: f64,
}

/// Whether every association has had its chance to answer since it started or was last
/// reset: it has an estimate, was denied service, or has been polled twice without one.
///
/// With one sample enough to make a source selectable, this gate is what keeps the first
/// source to answer — perhaps a falseticker — from setting the clock before the others are
/// heard (RFC 5905's filter got the same effect by waiting for four samples of each).
pub fn sources_settled<'a>(sources: impl IntoIterator<Item = &'a Source>) -> bool {
    sources
        .into_iter()
        .all(|s| s.denied().is_some() || s.estimate().is_some() || s.polls_since_reset() >= 2)
}

/// Seconds from `earlier` to `later` (negative if `later` is before).
fn seconds_between(later: NtpTimestamp, earlier: NtpTimestamp) -> f64 {
    (later - earlier).to_seconds_f64()
}

/// A dimensionless frequency as parts per million.
fn ppm(ratio: f64) -> f64 {
    ratio * 1e6
}
