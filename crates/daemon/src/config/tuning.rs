//! `tos` (selection and orphan mode) and `tinker` (clock discipline thresholds), ntp-conf.md
//! §9–§10. Both take several `NAME VALUE` pairs per line and may be repeated; later values win.

use sundial_proto::time::{Log2Seconds, NtpDuration};

use super::finding::Diag;
use super::lexer::Args;
use super::types::Ppm;

/// `tos minclock` default: 3 (`NTP_MINCLOCK`, ntp.org `include/ntp.h`).
pub const DEFAULT_MINCLOCK: u8 = 3;
/// `tos maxclock` default: 10 (`NTP_MAXCLOCK`; Debian's NTPsec config raises it to 11).
pub const DEFAULT_MAXCLOCK: u8 = 10;
/// `tos minsane` default: 1 (`sys_minsane`, ntp.org `ntpd/ntp_proto.c`).
pub const DEFAULT_MINSANE: u8 = 1;
/// `tos mindist` default: 1 ms (`MINDISTANCE`, ntp.org `include/ntp.h`).
pub const DEFAULT_MINDIST: NtpDuration = NtpDuration::from_bits(4_294_967); // 0.001 s
/// `tos maxdist` default: 1.5 s (`MAXDISTANCE` in both ntpds; RFC 5905 MAXDIST is 1 s).
pub const DEFAULT_MAXDIST: NtpDuration = NtpDuration::from_bits(3 << 31); // 1.5 s
/// `tos floor` default: stratum 1.
pub const DEFAULT_FLOOR: u8 = 1;
/// `tos ceiling` default: stratum 15 (`STRATUM_UNSPEC - 1`).
pub const DEFAULT_CEILING: u8 = 15;
/// `tos orphan` value that means "off": 16 (`STRATUM_UNSPEC`).
pub const ORPHAN_OFF: u8 = 16;
/// `tos orphanwait` default: 300 s (`NTP_ORPHWAIT`, ntp.org `include/ntp.h`).
pub const DEFAULT_ORPHANWAIT: NtpDuration = NtpDuration::from_seconds(300);
/// `tos maxdisp` default: 16 s (`MAXDISPERSE`, RFC 5905 §7.2).
pub const DEFAULT_MAXDISP: NtpDuration = NtpDuration::from_seconds(16);

/// `tinker panic` default: 1000 s (`CLOCK_PANIC`, ntp.org `ntpd/ntp_loopfilter.c`).
pub const DEFAULT_PANIC: NtpDuration = NtpDuration::from_seconds(1000);
/// `tinker step` default: 0.128 s (`CLOCK_MAX`, ntp.org `ntpd/ntp_loopfilter.c`; RFC 5905
/// STEPT is 0.125 s).
pub const DEFAULT_STEP: NtpDuration = NtpDuration::from_bits(549_755_814); // 0.128 s
/// `tinker stepout` default: 300 s (`CLOCK_MINSTEP` in the code of both ntpds; their docs say
/// 900).
pub const DEFAULT_STEPOUT: NtpDuration = NtpDuration::from_seconds(300);
/// `tinker allan` default: 2^11 s (`CLOCK_ALLAN`, ntp.org `ntpd/ntp_loopfilter.c`).
pub const DEFAULT_ALLAN: Log2Seconds = Log2Seconds::new(11);
/// `tinker dispersion` default: 15 PPM (PHI, RFC 5905 §7.2).
pub const DEFAULT_DISPERSION: Ppm = Ppm::from_const(15.0);
/// Largest frequency correction: 500 PPM (`NTP_MAXFREQ`, ntp.org `include/ntp.h`).
pub const MAX_FREQ_PPM: f64 = 500.0;

/// `tos`: how sources are selected, and orphan mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tos {
    /// `minclock`: the cluster algorithm stops discarding at this many survivors.
    pub minclock: u8,
    /// `maxclock`: the most associations; pool spawning stops here.
    pub maxclock: u8,
    /// `minsane`: truechimers needed before the clock is disciplined.
    pub minsane: u8,
    /// `mindist`: floor on the selection interval half-width.
    pub mindist: NtpDuration,
    /// `maxdist`: root-distance threshold for a fit source.
    pub maxdist: NtpDuration,
    /// `floor`: sources below this stratum are unfit.
    pub floor: u8,
    /// `ceiling`: sources at or above this stratum are unfit.
    pub ceiling: u8,
    /// `orphan N`: the orphan stratum; `None` is off (`orphan 16`, the default).
    pub orphan: Option<u8>,
    /// `orphanwait`: how long without a selectable source before entering orphan mode.
    pub orphanwait: NtpDuration,
    /// `maxdisp` (NTPsec): the dispersion ceiling.
    pub maxdisp: NtpDuration,
    /// `cohort 1` (ntp.org): also accept servers of our own stratum.
    pub cohort: bool,
    /// `basedate YYYY-MM-DD` (ntp.org): the earliest date the clock can be.
    pub basedate: Option<BaseDate>,
}

impl Default for Tos {
    fn default() -> Self {
        Self {
            minclock: DEFAULT_MINCLOCK,
            maxclock: DEFAULT_MAXCLOCK,
            minsane: DEFAULT_MINSANE,
            mindist: DEFAULT_MINDIST,
            maxdist: DEFAULT_MAXDIST,
            floor: DEFAULT_FLOOR,
            ceiling: DEFAULT_CEILING,
            orphan: None,
            orphanwait: DEFAULT_ORPHANWAIT,
            maxdisp: DEFAULT_MAXDISP,
            cohort: false,
            basedate: None,
        }
    }
}

/// A calendar date, as `tos basedate` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseDate {
    /// Year, e.g. 2024.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub day: u8,
}

/// A threshold that ntpd switches off with the value 0 (`tinker panic 0`, `tinker step 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// The check is off: never exit (panic) or never step (step).
    Disabled,
    /// Act on offsets larger than this.
    At(NtpDuration),
}

impl Threshold {
    fn from_duration(d: NtpDuration) -> Self {
        if d == NtpDuration::ZERO {
            Self::Disabled
        } else {
            Self::At(d)
        }
    }

    /// The threshold, or `None` when disabled.
    pub fn limit(self) -> Option<NtpDuration> {
        match self {
            Self::Disabled => None,
            Self::At(d) => Some(d),
        }
    }
}

/// `tinker`: the clock discipline's thresholds ("twisters are on their own").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tinker {
    /// `panic`: offsets beyond this make ntpd exit (unless `-g` allows one correction).
    pub panic: Threshold,
    /// `step`: offsets beyond this are stepped (after `stepout`), smaller ones slewed.
    pub step: Threshold,
    /// `stepback`: step threshold for negative corrections; `None` means `step`.
    pub stepback: Option<Threshold>,
    /// `stepfwd`: step threshold for positive corrections; `None` means `step`.
    pub stepfwd: Option<Threshold>,
    /// `stepout`: how long a large offset must persist before a step.
    pub stepout: NtpDuration,
    /// `allan`: the Allan intercept, the PLL/FLL crossover.
    pub allan: Log2Seconds,
    /// `dispersion`: PHI, the rate dispersion grows at.
    pub dispersion: Ppm,
    /// `freq`: initial frequency, overriding the drift file; within ±500 PPM.
    pub freq: Option<Ppm>,
    /// `huffpuff`: window of the huff-n'-puff filter; `None` is off (the default, or `0`).
    pub huffpuff: Option<NtpDuration>,
}

impl Default for Tinker {
    fn default() -> Self {
        Self {
            panic: Threshold::At(DEFAULT_PANIC),
            step: Threshold::At(DEFAULT_STEP),
            stepback: None,
            stepfwd: None,
            stepout: DEFAULT_STEPOUT,
            allan: DEFAULT_ALLAN,
            dispersion: DEFAULT_DISPERSION,
            freq: None,
            huffpuff: None,
        }
    }
}

impl Tinker {
    /// The threshold for stepping the clock back.
    pub fn step_back(&self) -> Threshold {
        self.stepback.unwrap_or(self.step)
    }

    /// The threshold for stepping the clock forward.
    pub fn step_forward(&self) -> Threshold {
        self.stepfwd.unwrap_or(self.step)
    }
}

/// `tos NAME VALUE …`, applied to a copy so that a bad pair leaves the line without effect.
pub(super) fn parse_tos(
    args: &mut Args<'_, '_>,
    tos: &Tos,
    notes: &mut Vec<Diag>,
) -> Result<Tos, Diag> {
    let mut tos = tos.clone();
    args.peek()
        .ok_or_else(|| args.keyword().error("tos needs at least one option"))?;
    while let Some(opt) = args.next() {
        if opt.quoted || !TOS_OPTIONS.contains(&opt.text) {
            return Err(opt.error("unknown tos option"));
        }
        let value = args.value_of(opt)?;
        if let Some(why) = TOS_NOT_ACTED_ON
            .iter()
            .find(|(name, _)| *name == opt.text)
            .map(|(_, why)| why)
        {
            notes.push(opt.warning(format!("tos {} has no effect: {why}", opt.text)));
        }
        match opt.text {
            "minclock" => tos.minclock = value.int("minclock", 1..=u8::MAX)?,
            "maxclock" => tos.maxclock = value.int("maxclock", 1..=u8::MAX)?,
            "minsane" => tos.minsane = value.int("minsane", 0..=u8::MAX)?,
            "mindist" => tos.mindist = value.seconds("mindist")?,
            "maxdist" => tos.maxdist = value.seconds("maxdist")?,
            "maxdisp" => tos.maxdisp = value.seconds("maxdisp")?,
            "floor" => tos.floor = value.int("floor", 0..=ORPHAN_OFF)?,
            "ceiling" => tos.ceiling = value.int("ceiling", 0..=ORPHAN_OFF)?,
            "orphan" => {
                let stratum = value.int("orphan", 1..=ORPHAN_OFF)?;
                tos.orphan = (stratum < ORPHAN_OFF).then_some(stratum);
            }
            "orphanwait" => tos.orphanwait = value.seconds("orphanwait")?,
            "cohort" => tos.cohort = value.zero_or_one("cohort")?,
            "basedate" => {
                tos.basedate = Some(
                    parse_date(value.text)
                        .ok_or_else(|| value.error("basedate must be YYYY-MM-DD"))?,
                )
            }
            "beacon" | "bcpollbstep" => {
                value.number(opt.text)?;
                notes.push(opt.warning(format!(
                    "{} applies to broadcast mode, which is not supported; ignored",
                    opt.text
                )));
            }
            _ => return Err(opt.error("unknown tos option")),
        }
    }
    Ok(tos)
}

/// `tinker NAME VALUE …`, applied to a copy.
pub(super) fn parse_tinker(
    args: &mut Args<'_, '_>,
    tinker: &Tinker,
    notes: &mut Vec<Diag>,
) -> Result<Tinker, Diag> {
    let mut tinker = *tinker;
    args.peek()
        .ok_or_else(|| args.keyword().error("tinker needs at least one option"))?;
    while let Some(opt) = args.next() {
        if opt.quoted || !TINKER_OPTIONS.contains(&opt.text) {
            return Err(opt.error("unknown tinker option"));
        }
        let value = args.value_of(opt)?;
        if let Some(why) = TINKER_NOT_ACTED_ON
            .iter()
            .find(|(name, _)| *name == opt.text)
            .map(|(_, why)| why)
        {
            notes.push(opt.warning(format!("tinker {} has no effect: {why}", opt.text)));
        }
        match opt.text {
            "panic" => tinker.panic = Threshold::from_duration(value.seconds("panic")?),
            "step" => tinker.step = Threshold::from_duration(value.seconds("step")?),
            "stepback" => {
                tinker.stepback = Some(Threshold::from_duration(value.seconds("stepback")?))
            }
            "stepfwd" => tinker.stepfwd = Some(Threshold::from_duration(value.seconds("stepfwd")?)),
            "stepout" => tinker.stepout = value.seconds("stepout")?,
            "allan" => tinker.allan = Log2Seconds::new(value.int("allan", 0..=30)?),
            "dispersion" => {
                let ppm = value.number("dispersion")?;
                if ppm < 0.0 {
                    return Err(value.error("dispersion must not be negative"));
                }
                tinker.dispersion = Ppm::new(ppm).unwrap_or(DEFAULT_DISPERSION);
            }
            "freq" => {
                let ppm = value.number("freq")?;
                if ppm.abs() > MAX_FREQ_PPM {
                    notes.push(
                        value.warning(format!("freq is limited to ±{MAX_FREQ_PPM} PPM; clamped")),
                    );
                }
                tinker.freq = Ppm::new(ppm.clamp(-MAX_FREQ_PPM, MAX_FREQ_PPM));
            }
            "huffpuff" => {
                let window = value.seconds("huffpuff")?;
                tinker.huffpuff = (window != NtpDuration::ZERO).then_some(window);
            }
            _ => return Err(opt.error("unknown tinker option")),
        }
    }
    Ok(tinker)
}

/// `YYYY-MM-DD` with a plausible month and day; the day is not checked against the month's
/// length, which only shifts the base date by a day or two.
fn parse_date(text: &str) -> Option<BaseDate> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let month = parts
        .next()?
        .parse()
        .ok()
        .filter(|m| (1..=12).contains(m))?;
    let day = parts
        .next()?
        .parse()
        .ok()
        .filter(|d| (1..=31).contains(d))?;
    Some(BaseDate { year, month, day })
}

/// Option names of `tos`, checked before a value is read so a typo is named as such.
const TOS_OPTIONS: &[&str] = &[
    "minclock",
    "maxclock",
    "minsane",
    "mindist",
    "maxdist",
    "maxdisp",
    "floor",
    "ceiling",
    "orphan",
    "orphanwait",
    "cohort",
    "basedate",
    "beacon",
    "bcpollbstep",
];

/// Option names of `tinker`.
const TINKER_OPTIONS: &[&str] = &[
    "panic",
    "step",
    "stepback",
    "stepfwd",
    "stepout",
    "allan",
    "dispersion",
    "freq",
    "huffpuff",
];

/// `tos` options sundial parses but does not act on, and why (a warning in `ntpd --check`
/// and the log).
const TOS_NOT_ACTED_ON: [(&str, &str); 3] = [
    (
        "maxdisp",
        "sundial's selection uses its own dispersion bound",
    ),
    ("cohort", "sundial answers every stratum alike"),
    (
        "basedate",
        "sundial resolves the NTP era from the system clock",
    ),
];

/// `tinker` options sundial parses but does not act on, and why.
const TINKER_NOT_ACTED_ON: [(&str, &str); 3] = [
    ("allan", "sundial's discipline sets its own time constants"),
    (
        "dispersion",
        "sundial's clock filter uses RFC 5905's fixed rate",
    ),
    (
        "huffpuff",
        "sundial's clock filter takes the lowest-delay samples instead",
    ),
];
