//! `server`, `pool` and `peer`: the time sources (reference clocks are in `refclock`).
//!
//! Options follow ntp.org 4.2.8 `ntp.conf(5)` with NTPsec's additions; see ntp-conf.md §2–§3.
//! Options sundial does not implement are accepted with a finding rather than rejected, so a
//! config written for either implementation keeps its servers.

use std::path::PathBuf;

use sundial_proto::access::NTP_PORT;
use sundial_proto::time::{Log2Seconds, NtpDuration};

use super::Location;
use super::address::{HostSpec, RefclockId, parse_host};
use super::finding::Diag;
use super::keys::KeyId;
use super::lexer::{Args, Token};
use super::types::Family;

/// Default `minpoll`: 6 (64 s), `NTP_MINDPOLL` in ntp.org `include/ntp.h`.
pub const DEFAULT_MINPOLL: Log2Seconds = Log2Seconds::new(6);
/// Default `maxpoll`: 10 (1024 s), `NTP_MAXDPOLL` in ntp.org `include/ntp.h`.
pub const DEFAULT_MAXPOLL: Log2Seconds = Log2Seconds::new(10);
/// Smallest poll exponent accepted: 0, NTPsec's limit (ntp.org stops at 3); smaller values
/// are clamped with a warning.
pub const POLL_LIMIT_MIN: i8 = 0;
/// Largest poll exponent accepted: 17 (36 h), MAXPOLL of RFC 5905 §7.2 and both ntpds.
pub const POLL_LIMIT_MAX: i8 = 17;
/// Default NTP version sent: 4 (`NTP_VERSION`, RFC 5905).
pub const DEFAULT_VERSION: u8 = 4;

/// What kind of association a line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssociationKind {
    /// `server` (and NTPsec `refclock`): a persistent client association.
    Server,
    /// `pool`: a prototype that keeps resolving the name and spawns preemptible servers.
    Pool,
    /// `peer`: symmetric active in ntp.org; sundial treats it as `server`, like NTPsec.
    Peer,
}

/// One `server`/`pool`/`peer`/`refclock` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// Which directive.
    pub kind: AssociationKind,
    /// The address, name or reference clock.
    pub address: HostSpec,
    /// `-4`/`-6`: restrict name resolution to one family.
    pub family: Option<Family>,
    /// UDP port to send to: 123 unless the sundial extension `port N` says otherwise.
    pub port: u16,
    /// `iburst`: 6 packets 2 s apart while unreachable.
    pub iburst: bool,
    /// `burst`: several packets per poll while reachable.
    pub burst: bool,
    /// `prefer`: favoured in clustering and combining.
    pub prefer: bool,
    /// `noselect`: polled and shown, never selected.
    pub noselect: bool,
    /// `true`: always survives selection and clustering.
    pub truechimer: bool,
    /// `preempt`: may be demobilised (pool-spawned associations always are).
    pub preempt: bool,
    /// `minpoll`, clamped to [`POLL_LIMIT_MIN`]..=[`POLL_LIMIT_MAX`] and to `maxpoll`.
    pub minpoll: Log2Seconds,
    /// `maxpoll`, clamped to [`POLL_LIMIT_MIN`]..=[`POLL_LIMIT_MAX`].
    pub maxpoll: Log2Seconds,
    /// `version`: the NTP version to send, 1..=4.
    pub version: u8,
    /// `key`: symmetric key for MACs on this association.
    pub key: Option<KeyId>,
    /// `mode`: driver mode of a reference clock.
    pub mode: Option<u32>,
    /// `xleave`: interleaved mode (RFC 9769) when the server supports it.
    pub xleave: bool,
    /// `nts`: NTS key establishment (NTPsec).
    pub nts: bool,
    /// `ntsport N` (sundial, as chrony's): TCP port of the NTS-KE server, 4460.
    pub nts_port: u16,
    /// `noval`: do not validate the NTS-KE server's certificate (NTPsec).
    pub noval: bool,
    /// `ask HOST[:PORT]` (NTPsec): the NTP server the key exchange asks for; implies `nts`.
    pub nts_ask: Option<sundial_proto::nts::ke::Ask>,
    /// `ca FILE`: CA bundle for the NTS-KE server (NTPsec).
    pub ca: Option<PathBuf>,
    /// `aead NAME`: NTS AEAD algorithm (NTPsec).
    pub aead: Option<String>,
    /// `bias S`: added to this source's offset (NTPsec), e.g. for a known path asymmetry.
    pub bias: NtpDuration,
    /// `path FILE` of an NTPsec `refclock` line: the PPS device, or the SOCK socket.
    pub path: Option<PathBuf>,
    /// Where the line is.
    pub location: Location,
}

impl Association {
    /// An association with every option at its default.
    pub fn new(kind: AssociationKind, address: HostSpec, location: Location) -> Self {
        Self {
            kind,
            address,
            family: None,
            port: NTP_PORT,
            iburst: false,
            burst: false,
            prefer: false,
            noselect: false,
            truechimer: false,
            preempt: false,
            minpoll: DEFAULT_MINPOLL,
            maxpoll: DEFAULT_MAXPOLL,
            version: DEFAULT_VERSION,
            key: None,
            mode: None,
            xleave: false,
            nts: false,
            nts_port: sundial_proto::nts::ke::DEFAULT_PORT,
            noval: false,
            nts_ask: None,
            ca: None,
            aead: None,
            bias: NtpDuration::ZERO,
            path: None,
            location,
        }
    }

    /// The reference clock this association drives, if it is one.
    pub fn refclock(&self) -> Option<RefclockId> {
        match self.address {
            HostSpec::Refclock(clock) => Some(clock),
            _ => None,
        }
    }
}

/// `server|pool|peer [-4|-6] ADDRESS [option …]`.
pub(super) fn parse_association(
    kind: AssociationKind,
    args: &mut Args<'_, '_>,
    location: Location,
    notes: &mut Vec<Diag>,
) -> Result<Association, Diag> {
    let family = parse_family(args);
    let addr_tok = args.required("an address")?;
    if !addr_tok.quoted && OPTION_KEYWORDS.contains(&addr_tok.text) {
        return Err(addr_tok.error(format!(
            "{} needs an address before its options",
            args.keyword().text
        )));
    }
    let address = match parse_host(&addr_tok)? {
        HostSpec::Ip(ip) => match RefclockId::from_addr(ip) {
            Some(clock) => {
                if kind != AssociationKind::Server {
                    return Err(
                        addr_tok.error("a reference clock must be configured with 'server'")
                    );
                }
                if !clock.is_supported() || clock.kind == RefclockId::SOCK {
                    notes.push(
                        addr_tok.warning(format!("refclock type {} not supported", clock.kind)),
                    );
                }
                HostSpec::Refclock(clock)
            }
            None => HostSpec::Ip(ip),
        },
        other => other,
    };
    let mismatch = match (&address, family) {
        (HostSpec::Ip(ip), Some(Family::V4)) => ip.is_ipv6(),
        (HostSpec::Ip(ip), Some(Family::V6)) => ip.is_ipv4(),
        (HostSpec::ScopedV6 { .. }, Some(Family::V4)) => true,
        _ => false,
    };
    if mismatch {
        return Err(addr_tok.error("address does not belong to the family given by -4/-6"));
    }
    let mut assoc = Association::new(kind, address, location);
    assoc.family = family;
    let mut poll = PollBounds::default();
    while let Some(opt) = args.next() {
        if !association_option(opt, args, &mut assoc, &mut poll, notes)? {
            return Err(opt.error(format!("unknown {} option", args.keyword().text)));
        }
    }
    poll.apply(&mut assoc, args.keyword(), notes);
    let keyword = args.keyword();
    if kind == AssociationKind::Peer {
        notes.push(keyword.notice("peer is treated as server (symmetric mode is not supported)"));
    }
    if kind == AssociationKind::Pool && assoc.burst {
        notes.push(keyword.notice("burst against a public pool is abusive; consider iburst"));
    }
    Ok(assoc)
}

fn parse_family(args: &mut Args<'_, '_>) -> Option<Family> {
    let family = match args.peek()? {
        tok if tok.is("-4") => Family::V4,
        tok if tok.is("-6") => Family::V6,
        _ => return None,
    };
    args.next();
    Some(family)
}

/// `minpoll`/`maxpoll` as written, reconciled once the whole line is read (their order on the
/// line must not matter).
#[derive(Default)]
pub(super) struct PollBounds {
    min: Option<i64>,
    max: Option<i64>,
}

impl PollBounds {
    pub(super) fn apply(&self, assoc: &mut Association, keyword: Token<'_>, notes: &mut Vec<Diag>) {
        let min = self.min.map_or(DEFAULT_MINPOLL.exponent(), clamp_poll);
        let max = self.max.map_or(DEFAULT_MAXPOLL.exponent(), clamp_poll);
        // ntp.org newpeer(): a minpoll above maxpoll is lowered to it.
        if min > max {
            notes
                .push(keyword.warning(format!("minpoll {min} exceeds maxpoll {max}; using {max}")));
        }
        assoc.minpoll = Log2Seconds::new(min.min(max));
        assoc.maxpoll = Log2Seconds::new(max);
    }
}

fn clamp_poll(exponent: i64) -> i8 {
    let clamped = exponent.clamp(i64::from(POLL_LIMIT_MIN), i64::from(POLL_LIMIT_MAX));
    i8::try_from(clamped).unwrap_or(POLL_LIMIT_MAX)
}

/// Applies one association option; `Ok(false)` if `opt` is not one.
pub(super) fn association_option(
    opt: Token<'_>,
    args: &mut Args<'_, '_>,
    assoc: &mut Association,
    poll: &mut PollBounds,
    notes: &mut Vec<Diag>,
) -> Result<bool, Diag> {
    if opt.quoted {
        return Ok(false);
    }
    match opt.text {
        "iburst" => assoc.iburst = true,
        "burst" => assoc.burst = true,
        "prefer" => assoc.prefer = true,
        "noselect" => assoc.noselect = true,
        "true" => assoc.truechimer = true,
        "preempt" => assoc.preempt = true,
        "xmtnonce" => {} // sundial always sends a random transmit timestamp.
        "xleave" => {
            assoc.xleave = true;
            notes.push(opt.warning("interleaved mode is not implemented yet; basic mode is used"));
        }
        "nts" => assoc.nts = true,
        "noval" => {
            assoc.noval = true;
            notes.push(
                opt.warning(
                    "noval: the NTS-KE server's certificate is NOT verified; for tests only",
                ),
            );
        }
        "ask" => {
            assoc.nts_ask = Some(parse_ask(args.value_of(opt)?)?);
            assoc.nts = true;
        }
        "ntsport" => assoc.nts_port = args.value_of(opt)?.int("ntsport", 1..=u16::MAX)?,
        "minpoll" | "maxpoll" => {
            let value = args.value_of(opt)?;
            let exponent = value.wide_int(opt.text)?;
            if !(i64::from(POLL_LIMIT_MIN)..=i64::from(POLL_LIMIT_MAX)).contains(&exponent) {
                notes.push(value.warning(format!(
                    "{} must be between {POLL_LIMIT_MIN} and {POLL_LIMIT_MAX}; using {}",
                    opt.text,
                    clamp_poll(exponent)
                )));
            }
            if opt.text == "minpoll" {
                poll.min = Some(exponent);
            } else {
                poll.max = Some(exponent);
            }
        }
        "version" => assoc.version = args.value_of(opt)?.int("version", 1..=4)?,
        "key" => assoc.key = KeyId::new(args.value_of(opt)?.int("key", 1..=KeyId::MAX)?),
        "mode" => assoc.mode = Some(args.value_of(opt)?.int("mode", 0..=u32::MAX)?),
        "port" => assoc.port = args.value_of(opt)?.int("port", 1..=u16::MAX)?,
        "bias" => assoc.bias = args.value_of(opt)?.signed_seconds("bias")?,
        "ca" => assoc.ca = Some(PathBuf::from(args.value_of(opt)?.text)),
        "aead" => {
            assoc.aead = Some(args.value_of(opt)?.text.to_owned());
            notes.push(opt.warning("aead is not supported (AES-SIV-CMAC is offered); ignored"));
        }
        "autokey" => notes.push(opt.warning("autokey is not supported; ignored")),
        "ttl" => {
            args.value_of(opt)?.int("ttl", 0..=255_u16)?;
            notes.push(
                opt.warning("ttl applies to broadcast/manycast, which are not supported; ignored"),
            );
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `ask`'s value: `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`, HOST an IPv4 address or a
/// host name (NTPsec's syntax, the host part of an RFC 3986 URI).
fn parse_ask(value: Token<'_>) -> Result<sundial_proto::nts::ke::Ask, Diag> {
    let text = value.text;
    let bad = || {
        value.error(format!(
            "ask: {text:?} is not HOST, HOST:PORT, [IPV6] or [IPV6]:PORT"
        ))
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if text.matches(':').count() > 1 {
        return Err(value.error(format!(
            "ask: {text:?}: an IPv6 address goes in brackets, [IPV6] or [IPV6]:PORT"
        )));
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(value.error(format!("ask: port {p:?} must be 1..=65535"))),
        },
    };
    sundial_proto::nts::ke::Ask::new(host, port).ok_or_else(bad)
}

/// Keywords that are association options, so that `server iburst` is reported as a missing
/// address instead of a lookup of the host "iburst".
const OPTION_KEYWORDS: &[&str] = &[
    "iburst", "burst", "prefer", "minpoll", "maxpoll", "noselect", "true", "version", "key",
    "preempt", "mode", "autokey", "ttl", "xleave", "xmtnonce", "nts", "ntsport", "noval", "ca",
    "aead", "bias", "port", "ask",
];
