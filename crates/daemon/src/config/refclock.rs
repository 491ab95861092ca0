//! Reference clocks: NTPsec `refclock NAME …` and `fudge 127.127.T.U …` (ntp-conf.md §3).
//!
//! sundial drives type 1 (the undisciplined local clock), 28 (SHM, the shared-memory segment
//! gpsd writes), 22 (PPS, a pulse-per-second device) and, as an extension, the SOCK protocol
//! (`refclock sock path FILE`); other types are recognised and reported so that a config with
//! another clock still loads its network servers. Which `fudge` options each driver uses is
//! [`unused_fudge_options`]' table.

use sundial_proto::packet::ReferenceId;
use sundial_proto::time::NtpDuration;

use super::Location;
use super::address::{HostSpec, RefclockId, parse_host};
use super::association::{Association, AssociationKind, PollBounds, association_option};
use super::finding::Diag;
use super::lexer::{Args, Token};

/// `fudge 127.127.T.U …` (or the calibration options of an NTPsec `refclock` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fudge {
    /// The clock being calibrated.
    pub clock: RefclockId,
    /// `stratum N`: the stratum the clock claims (0..=15); the local clock's is usually 10.
    pub stratum: Option<u8>,
    /// `refid STR`: up to four ASCII characters.
    pub refid: Option<ReferenceId>,
    /// `time1 S`: offset added to the clock's readings.
    pub time1: Option<NtpDuration>,
    /// `time2 S`: driver-specific second offset.
    pub time2: Option<NtpDuration>,
    /// `flag1`..`flag4`: driver-specific switches; `None` where not given.
    pub flags: [Option<bool>; 4],
    /// `minjitter S` (ntp.org 4.2.8): a floor on the jitter the driver reports.
    pub minjitter: Option<NtpDuration>,
    /// Where the line is.
    pub location: Location,
}

impl Fudge {
    fn new(clock: RefclockId, location: Location) -> Self {
        Self {
            clock,
            stratum: None,
            refid: None,
            time1: None,
            time2: None,
            flags: [None; 4],
            minjitter: None,
            location,
        }
    }

    /// Whether the line set anything at all.
    fn is_empty(&self) -> bool {
        *self == Self::new(self.clock, self.location.clone())
    }
}

/// NTPsec `refclock NAME [unit U] [option …]`. Only `local` is supported: it becomes the same
/// association and fudge as `server 127.127.1.U` + `fudge 127.127.1.U …` (no fudge when the
/// line sets no calibration). `Ok(None)` for a driver sundial does not have.
pub(super) fn parse_refclock(
    args: &mut Args<'_, '_>,
    location: &Location,
    notes: &mut Vec<Diag>,
) -> Result<Option<(Association, Option<Fudge>)>, Diag> {
    let name = args.required("a driver name")?;
    let kind = match name.text.to_ascii_lowercase().as_str() {
        "local" => RefclockId::LOCAL,
        "shm" => RefclockId::SHM,
        "pps" => RefclockId::PPS,
        "sock" => RefclockId::SOCK,
        _ => {
            notes.push(name.warning(format!(
                "refclock {} not supported; line ignored",
                name.text
            )));
            return Ok(None);
        }
    };
    let mut clock = RefclockId { kind, unit: 0 };
    let mut assoc = Association::new(
        AssociationKind::Server,
        HostSpec::Refclock(clock),
        location.clone(),
    );
    let mut fudge = Fudge::new(clock, location.clone());
    let mut poll = PollBounds::default();
    while let Some(opt) = args.next() {
        if opt.is("unit") {
            clock.unit = args.value_of(opt)?.int("unit", 0..=255)?;
        } else if opt.is("path") && matches!(kind, RefclockId::PPS | RefclockId::SOCK) {
            assoc.path = Some(std::path::PathBuf::from(args.value_of(opt)?.text));
        } else if !fudge_option(opt, args, &mut fudge, notes)?
            && !association_option(opt, args, &mut assoc, &mut poll, notes)?
        {
            return Err(opt.error("unknown refclock option"));
        }
    }
    if kind == RefclockId::SOCK && assoc.path.is_none() {
        return Err(name.error("refclock sock needs 'path FILE', the socket gpsd writes to"));
    }
    poll.apply(&mut assoc, args.keyword(), notes);
    assoc.address = HostSpec::Refclock(clock);
    fudge.clock = clock;
    let fudge = (!fudge.is_empty()).then_some(fudge);
    Ok(Some((assoc, fudge)))
}

/// `fudge 127.127.T.U [stratum N] [refid STR] [time1 S] [time2 S] [flag1..4 0|1] [minjitter S]`.
pub(super) fn parse_fudge(
    args: &mut Args<'_, '_>,
    location: Location,
    notes: &mut Vec<Diag>,
) -> Result<Fudge, Diag> {
    let addr_tok = args.required("a reference clock address")?;
    let clock = match parse_host(&addr_tok)? {
        HostSpec::Ip(ip) => RefclockId::from_addr(ip),
        _ => None,
    };
    let Some(clock) = clock else {
        return Err(addr_tok.error("fudge needs a reference clock address 127.127.T.U"));
    };
    let mut fudge = Fudge::new(clock, location);
    while let Some(opt) = args.next() {
        if !fudge_option(opt, args, &mut fudge, notes)? {
            return Err(opt.error("unknown fudge option"));
        }
    }
    if fudge.is_empty() {
        notes.push(addr_tok.notice("fudge sets nothing"));
    }
    Ok(fudge)
}

/// Applies one fudge option; `Ok(false)` if `opt` is not one.
fn fudge_option(
    opt: Token<'_>,
    args: &mut Args<'_, '_>,
    fudge: &mut Fudge,
    notes: &mut Vec<Diag>,
) -> Result<bool, Diag> {
    if opt.quoted {
        return Ok(false);
    }
    let flag = match opt.text {
        "stratum" => {
            fudge.stratum = Some(args.value_of(opt)?.int("stratum", 0..=15)?);
            return Ok(true);
        }
        "refid" => {
            fudge.refid = Some(parse_refid(args.value_of(opt)?, notes)?);
            return Ok(true);
        }
        "time1" => {
            fudge.time1 = Some(args.value_of(opt)?.signed_seconds("time1")?);
            return Ok(true);
        }
        "time2" => {
            fudge.time2 = Some(args.value_of(opt)?.signed_seconds("time2")?);
            return Ok(true);
        }
        "minjitter" => {
            fudge.minjitter = Some(args.value_of(opt)?.seconds("minjitter")?);
            return Ok(true);
        }
        "flag1" => 0,
        "flag2" => 1,
        "flag3" => 2,
        "flag4" => 3,
        _ => return Ok(false),
    };
    let value = args.value_of(opt)?.zero_or_one(opt.text)?;
    if let Some(slot) = fudge.flags.get_mut(flag) {
        *slot = Some(value);
    }
    Ok(true)
}

/// A refid of one to four printable ASCII characters, NUL-padded; ntpd silently keeps the
/// first four of a longer one, sundial says so.
fn parse_refid(tok: Token<'_>, notes: &mut Vec<Diag>) -> Result<ReferenceId, Diag> {
    let bytes = tok.text.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(tok.error("refid must be 1 to 4 printable ASCII characters"));
    }
    if bytes.len() > 4 {
        notes.push(tok.warning("refid is longer than 4 characters; truncated"));
    }
    let mut refid = [0u8; 4];
    for (slot, byte) in refid.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    Ok(ReferenceId::from_bytes(refid))
}

/// The `fudge` options a line sets that driver `clock` does not use, by name, so that the
/// configuration check can warn about each (ntpd ignores them silently).
///
/// | driver | uses |
/// |---|---|
/// | SHM (28) | `time1` (offset added), `time2` (largest offset accepted, default 4 h; outside 1 s..1 day the default), `flag1` (no such limit), `flag4` (clockstats lines), `stratum`, `refid` |
/// | PPS (22) | `time1`, `flag2` (the clear edge instead of assert), `flag4`, `stratum`, `refid`; `flag3` (the kernel's PPS discipline) is not offered |
/// | SOCK | `time1`, `flag4`, `stratum`, `refid` |
/// | LOCAL (1) | `stratum`, `refid` (and accepts the rest, as ntpd) |
pub(super) fn unused_fudge_options(fudge: &Fudge) -> Vec<&'static str> {
    let used: &[&str] = match fudge.clock.kind {
        RefclockId::SHM => &["time2", "flag1", "flag4"],
        RefclockId::PPS => &["flag2", "flag4"],
        RefclockId::SOCK => &["flag4"],
        _ => return Vec::new(),
    };
    let set = [
        ("time2", fudge.time2.is_some()),
        ("flag1", fudge.flags[0].is_some()),
        ("flag2", fudge.flags[1].is_some()),
        ("flag3", fudge.flags[2].is_some()),
        ("flag4", fudge.flags[3].is_some()),
        ("minjitter", fudge.minjitter.is_some()),
    ];
    set.iter()
        .filter(|(name, given)| *given && !used.contains(name))
        .map(|(name, _)| *name)
        .collect()
}
