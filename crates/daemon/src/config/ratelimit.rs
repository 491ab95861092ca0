//! Rate-limit parameters: classic `discard`, NTPsec `limit`, and `mru` (ntp-conf.md §6).
//!
//! sundial has one per-source limiter; `discard` gives its classic parameters and `limit` is
//! mapped onto it. Both are recorded as written so the mapping lives in one place, the daemon.

use sundial_proto::time::{Log2Seconds, NtpDuration};

use super::finding::Diag;
use super::lexer::Args;

/// `discard average` default: 2^3 = 8 s mean headway (the ntp.org code's value; its man page
/// says 5).
pub const DEFAULT_DISCARD_AVERAGE: Log2Seconds = Log2Seconds::new(3);
/// `discard minimum` default: 2 s guard time (`NTP_MINPKT`, ntp.org `include/ntp.h`).
pub const DEFAULT_DISCARD_MINIMUM: NtpDuration = NtpDuration::from_seconds(2);
/// `discard monitor` default: 3000, the MRU recycling probability scale (ntp.org
/// `ntpd/ntp_monitor.c`).
pub const DEFAULT_DISCARD_MONITOR: u32 = 3000;
/// `limit average` default: 1 packet per second (NTPsec `ntpd/ntp_monitor.c`).
pub const DEFAULT_LIMIT_AVERAGE: f64 = 1.0;
/// `limit burst` default: a 20 s decay time constant (NTPsec `ntpd/ntp_monitor.c`).
pub const DEFAULT_LIMIT_BURST: NtpDuration = NtpDuration::from_seconds(20);
/// `limit kod` default: 0.5 above `average` before KoDs stop (NTPsec `ntpd/ntp_monitor.c`).
pub const DEFAULT_LIMIT_KOD: f64 = 0.5;
/// Largest `discard average`, the largest poll exponent (RFC 5905 MAXPOLL).
const MAX_DISCARD_AVERAGE: i8 = 17;
/// Largest `discard minimum`, s: the longest poll interval (2^17 s).
const MAX_DISCARD_MINIMUM: f64 = 131_072.0;
/// Largest `discard monitor` (a probability scale; ntpd's default is 3000).
const MAX_DISCARD_MONITOR: u32 = 1_000_000;
/// Largest `limit average`, packets per second per source.
const MAX_LIMIT_AVERAGE: f64 = 10_000.0;
/// Largest `limit burst`, s (the score's decay time; with the largest average the bucket
/// still holds fewer than 2^32 packets).
const MAX_LIMIT_BURST: f64 = 3600.0;
/// Largest `limit kod`, packets per second above `average`.
const MAX_LIMIT_KOD: f64 = 10_000.0;
/// Most entries any `mru …depth`/`…alloc` option may ask for: about 1 M clients, 128 MiB of
/// table. Each entry is allocated up front, so the ceiling is what keeps a typo from asking
/// for hundreds of gigabytes at start-up.
pub const MAX_MRU_ENTRIES: u32 = 1 << 20;
/// Most memory any `mru …mem` option may ask for, KiB (64 MiB).
pub const MAX_MRU_KIB: u32 = 64 << 10;

/// `discard [average A] [minimum M] [monitor P]` (ntp.org).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discard {
    /// `average`: minimum mean headway between a client's packets, log2 s.
    pub average: Log2Seconds,
    /// `minimum`: minimum spacing between two packets (guard time).
    pub minimum: NtpDuration,
    /// `monitor`: MRU recycling probability scale.
    pub monitor: u32,
}

impl Default for Discard {
    fn default() -> Self {
        Self {
            average: DEFAULT_DISCARD_AVERAGE,
            minimum: DEFAULT_DISCARD_MINIMUM,
            monitor: DEFAULT_DISCARD_MONITOR,
        }
    }
}

/// `limit [average R] [burst T] [kod K]` (NTPsec): an exponentially decaying per-source score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// `average`: packets per second a source may sustain.
    pub average: f64,
    /// `burst`: the score's decay time constant.
    pub burst: NtpDuration,
    /// `kod`: how far above `average` the score may go before KoDs are suppressed.
    pub kod: f64,
}

impl Default for Limit {
    fn default() -> Self {
        Self {
            average: DEFAULT_LIMIT_AVERAGE,
            burst: DEFAULT_LIMIT_BURST,
            kod: DEFAULT_LIMIT_KOD,
        }
    }
}

/// `mru …`: bounds of the per-source (most recently used) table. `None` leaves the daemon's
/// own bound, which is sized for memory safety (security.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mru {
    /// `maxdepth N`: most entries.
    pub maxdepth: Option<u32>,
    /// `mindepth N`: entries kept regardless of age.
    pub mindepth: Option<u32>,
    /// `maxmem KB`: most memory, in KiB.
    pub maxmem_kib: Option<u32>,
    /// `maxage S`: entries older than this are recycled first.
    pub maxage: Option<NtpDuration>,
    /// `minage S`: entries younger than this are never recycled.
    pub minage: Option<NtpDuration>,
    /// `initalloc N`: entries allocated up front.
    pub initalloc: Option<u32>,
    /// `initmem KB`: memory allocated up front, in KiB.
    pub initmem_kib: Option<u32>,
    /// `incalloc N`: entries added per growth step.
    pub incalloc: Option<u32>,
    /// `incmem KB`: memory added per growth step, in KiB.
    pub incmem_kib: Option<u32>,
}

/// `discard …`, applied to a copy so a bad pair leaves the line without effect.
pub(super) fn parse_discard(args: &mut Args<'_, '_>, discard: &Discard) -> Result<Discard, Diag> {
    let mut discard = *discard;
    args.peek()
        .ok_or_else(|| args.keyword().error("discard needs at least one option"))?;
    while let Some(opt) = args.next() {
        if opt.quoted || !["average", "minimum", "monitor"].contains(&opt.text) {
            return Err(opt.error("unknown discard option"));
        }
        let value = args.value_of(opt)?;
        match opt.text {
            "average" => {
                discard.average = Log2Seconds::new(value.int("average", 0..=MAX_DISCARD_AVERAGE)?);
            }
            "minimum" => {
                discard.minimum = value.seconds("minimum")?;
                if discard.minimum.to_seconds_f64() > MAX_DISCARD_MINIMUM {
                    return Err(
                        value.error(format!("minimum must be at most {MAX_DISCARD_MINIMUM} s"))
                    );
                }
            }
            _ => discard.monitor = value.int("monitor", 0..=MAX_DISCARD_MONITOR)?,
        }
    }
    Ok(discard)
}

/// `limit …`.
pub(super) fn parse_limit(args: &mut Args<'_, '_>, limit: Option<Limit>) -> Result<Limit, Diag> {
    let mut limit = limit.unwrap_or_default();
    while let Some(opt) = args.next() {
        if opt.quoted || !["average", "burst", "kod"].contains(&opt.text) {
            return Err(opt.error("unknown limit option"));
        }
        let value = args.value_of(opt)?;
        let number = value.number(opt.text)?;
        if number <= 0.0 {
            return Err(value.error(format!("{} must be positive", opt.text)));
        }
        let ceiling = match opt.text {
            "average" => MAX_LIMIT_AVERAGE,
            "burst" => MAX_LIMIT_BURST,
            _ => MAX_LIMIT_KOD,
        };
        if number > ceiling {
            return Err(value.error(format!("{} must be at most {ceiling}", opt.text)));
        }
        match opt.text {
            "average" => limit.average = number,
            "burst" => limit.burst = NtpDuration::from_seconds_f64(number),
            _ => limit.kod = number,
        }
    }
    Ok(limit)
}

/// `mru NAME VALUE …`.
pub(super) fn parse_mru(args: &mut Args<'_, '_>, mru: &Mru) -> Result<Mru, Diag> {
    let mut mru = *mru;
    args.peek()
        .ok_or_else(|| args.keyword().error("mru needs at least one option"))?;
    while let Some(opt) = args.next() {
        let slot = match opt.text {
            _ if opt.quoted => None,
            "maxage" => {
                mru.maxage = Some(args.value_of(opt)?.seconds("maxage")?);
                continue;
            }
            "minage" => {
                mru.minage = Some(args.value_of(opt)?.seconds("minage")?);
                continue;
            }
            "maxdepth" => Some((&mut mru.maxdepth, MAX_MRU_ENTRIES)),
            "mindepth" => Some((&mut mru.mindepth, MAX_MRU_ENTRIES)),
            "maxmem" => Some((&mut mru.maxmem_kib, MAX_MRU_KIB)),
            "initalloc" => Some((&mut mru.initalloc, MAX_MRU_ENTRIES)),
            "initmem" => Some((&mut mru.initmem_kib, MAX_MRU_KIB)),
            "incalloc" => Some((&mut mru.incalloc, MAX_MRU_ENTRIES)),
            "incmem" => Some((&mut mru.incmem_kib, MAX_MRU_KIB)),
            _ => None,
        };
        let Some((slot, ceiling)) = slot else {
            return Err(opt.error("unknown mru option"));
        };
        *slot = Some(args.value_of(opt)?.int(opt.text, 0..=ceiling)?);
    }
    Ok(mru)
}
