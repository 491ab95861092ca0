//! `ntpq -c mrulist`: the nonce exchange and the MRU list (RFC 9327 §3; NTPsec's
//! `docs/mode6.adoc`, `CTL_OP_REQ_NONCE` and `CTL_OP_READ_MRU`).
//!
//! A client first asks for a nonce (opcode 12). The nonce is a keyed hash of the client's
//! address and the issue time under a secret of the server, so only someone who receives
//! datagrams at that address can know it; it expires after [`NONCE_LIFETIME_S`]. Only a
//! READ_MRU request (opcode 10) that plays back a valid nonce gets the list, which is much
//! longer than the request: the nonce is what makes that safe (no reflection through a
//! spoofed source address). Every MRU reply carries a fresh nonce for the next page.
//!
//! The list is sundial's client table ([`crate::ratelimit`]), oldest first. A client pages
//! through it by sending back the newest entries it has (`addr.N`, `last.N`); the server
//! continues after the newest of them in (last seen, address) order, so an entry seen again
//! meanwhile is simply sent again with its new time (ntpq keeps the newest copy). The last
//! page ends with `now=` and `last.newest=`.

use core::cmp::Reverse;
use core::fmt::{self, Write as _};
use core::net::{IpAddr, SocketAddr};
use core::str::FromStr;

use super::header::{ErrorCode, MAX_DATA_LEN};
use super::request::{MAX_NAME_LEN, MAX_NAMES};
use super::values::Hex;
use super::varlist::VarWriter;
use crate::access::RestrictFlags;
use crate::ratelimit::{ClientEntry, RateLimiter};
use crate::siphash::SipKey;
use crate::time::{MonoTime, NtpTimestamp};

/// A nonce is accepted for this many seconds after it was issued (NTPsec: 16 s; whole
/// seconds, so it actually lives 16–17 s).
pub const NONCE_LIFETIME_S: u32 = 16;

/// Octets of a REQ_NONCE reply: the 12-octet header and `nonce=` plus 24 characters and
/// `\r\n`, padded to four. The one reply longer than its request that an unproven source
/// gets: 44 octets for 12, a fixed bound (docs/SECURITY.md).
pub const NONCE_REPLY_OCTETS: usize = 44;

/// Most `addr.N`/`last.N` pairs read (ntpq sends at most 16).
const MAX_RESUME: usize = 16;

/// Most entries one reply may carry when the client asks with `limit=` (NTPsec's row limit).
const MAX_LIMIT: usize = 256;

/// Octets kept free at the end of a reply for `now=` and `last.newest=`.
const TAIL_RESERVE: usize = 72;

/// The time bits a nonce carries (28: it wraps after 8.5 years of uptime, harmlessly).
const TIME_MASK: u32 = 0x0fff_ffff;

/// What the responder needs to serve the nonce exchange and the list, besides the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct MruContext<'a> {
    /// The client table.
    pub table: &'a RateLimiter,
    /// The secret nonces are made with.
    pub nonce_key: SipKey,
    /// The requester's address (the nonce is bound to it; the port is not, as in NTPsec).
    pub source: IpAddr,
    /// Monotonic time of the request (nonce issue and expiry).
    pub monotonic: MonoTime,
}

/// A nonce as sent: `a`, 7 hex digits of issue time (monotonic seconds), 16 hex digits of a
/// keyed hash. The leading `a` keeps NTPsec's ntpq from reading it as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nonce {
    issued: u32,
    tag: u64,
}

impl Nonce {
    /// The nonce for `source` at `now`.
    pub fn issue(key: &SipKey, source: IpAddr, now: MonoTime) -> Self {
        let issued = seconds(now);
        Self {
            issued,
            tag: tag(key, source, issued),
        }
    }

    /// Whether `text` is a nonce this server issued to `source` no more than
    /// [`NONCE_LIFETIME_S`] before `now`.
    pub fn verify(key: &SipKey, source: IpAddr, now: MonoTime, text: &[u8]) -> bool {
        let Some(nonce) = Self::parse(text) else {
            return false;
        };
        let age = seconds(now).wrapping_sub(nonce.issued) & TIME_MASK;
        age <= NONCE_LIFETIME_S && nonce.tag == tag(key, source, nonce.issued)
    }

    fn parse(text: &[u8]) -> Option<Self> {
        let text = core::str::from_utf8(text).ok()?;
        let rest = text.strip_prefix('a')?;
        if rest.len() != 23 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (time, tag) = rest.split_at(7);
        Some(Self {
            issued: u32::from_str_radix(time, 16).ok()?,
            tag: u64::from_str_radix(tag, 16).ok()?,
        })
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{:07x}{:016x}", self.issued & TIME_MASK, self.tag)
    }
}

fn seconds(now: MonoTime) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the nonce keeps the low 28 bits"
    )]
    let s = now.as_duration().as_secs() as u32;
    s & TIME_MASK
}

fn tag(key: &SipKey, source: IpAddr, issued: u32) -> u64 {
    let mut input = [0u8; 20];
    let addr = match source.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    input[..16].copy_from_slice(&addr);
    input[16..].copy_from_slice(&(issued & TIME_MASK).to_be_bytes());
    key.hash(&input)
}

/// NTPsec's `RES_*` bits of a restrict entry (what `rs.N`, `resall=` and `resany=` use).
pub fn ntpsec_restrict_bits(flags: RestrictFlags) -> u16 {
    const MAP: [(RestrictFlags, u16); 13] = [
        (RestrictFlags::IGNORE, 0x0001),
        (RestrictFlags::NOSERVE, 0x0002),
        (RestrictFlags::NOTRUST, 0x0004),
        (RestrictFlags::VERSION, 0x0008),
        (RestrictFlags::NOPEER, 0x0010),
        (RestrictFlags::LIMITED, 0x0020),
        (RestrictFlags::NOQUERY, 0x0040),
        (RestrictFlags::NOMODIFY, 0x0080),
        (RestrictFlags::NOTRAP, 0x0100),
        (RestrictFlags::LOWPRIOTRAP, 0x0200),
        (RestrictFlags::KOD, 0x0400),
        (RestrictFlags::MSSNTP, 0x0800),
        (RestrictFlags::NOMRULIST, 0x2000),
    ];
    MAP.iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .fold(0, |bits, (_, bit)| bits | bit)
}

/// A READ_MRU request's parameters, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MruQuery<'a> {
    /// The nonce played back (required).
    pub nonce: Option<&'a [u8]>,
    /// `frags=`: most datagrams in the reply.
    pub frags: Option<usize>,
    /// `limit=`: most entries in the reply.
    pub limit: Option<usize>,
    /// `mincount=`, `mindrop=`.
    pub min_count: u32,
    /// See `min_count`.
    pub min_drop: u32,
    /// `maxlstint=`, `minlstint=`: seconds since the entry's last datagram.
    pub max_lstint: Option<u32>,
    /// See `max_lstint`.
    pub min_lstint: Option<u32>,
    /// `laddr=`: only entries whose last datagram was sent to this local address.
    pub laddr: Option<IpAddr>,
    /// `resall=`, `resany=`: NTPsec restrict bits.
    pub resall: u16,
    /// See `resall`.
    pub resany: u16,
    /// `recent=`: start with roughly this many most recent entries.
    pub recent: Option<usize>,
    /// `addr.N`/`last.N`: the entries the client already has, index N.
    pub resume: [(Option<SocketAddr>, Option<NtpTimestamp>); MAX_RESUME],
}

impl<'a> MruQuery<'a> {
    /// Reads `name=value, …` (at most [`MAX_NAMES`] items, values of at most
    /// [`MAX_NAME_LEN`] octets). An unknown name is UNKNOWNVAR, a bad value BADVALUE, a
    /// list beyond the bounds BADFMT.
    pub fn parse(data: &'a [u8]) -> Result<Self, ErrorCode> {
        let data = data.split(|&b| b == 0).next().unwrap_or_default();
        let mut query = Self::default();
        let mut items = 0;
        for item in data.split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() {
                continue;
            }
            items += 1;
            if items > MAX_NAMES {
                return Err(ErrorCode::BadFormat);
            }
            let (name, value) = match item.iter().position(|&b| b == b'=') {
                Some(i) => (
                    item.get(..i).unwrap_or_default().trim_ascii(),
                    item.get(i + 1..).unwrap_or_default().trim_ascii(),
                ),
                None => (item, &[][..]),
            };
            if name.len() > MAX_NAME_LEN || value.len() > MAX_NAME_LEN {
                return Err(ErrorCode::BadFormat);
            }
            query.set(name, value)?;
        }
        Ok(query)
    }

    fn set(&mut self, name: &[u8], value: &'a [u8]) -> Result<(), ErrorCode> {
        let text = core::str::from_utf8(value).map_err(|_| ErrorCode::BadValue)?;
        let int = || parse_int(text).ok_or(ErrorCode::BadValue);
        let small = || int().and_then(|v| u32::try_from(v).map_err(|_| ErrorCode::BadValue));
        let count = || small().map(|v| usize::try_from(v).unwrap_or(usize::MAX));
        let bits = || int().map(|v| u16::try_from(v & 0xffff).unwrap_or(0));
        match name {
            b"nonce" => self.nonce = Some(value),
            b"frags" => self.frags = Some(count()?),
            b"limit" => self.limit = Some(count()?),
            b"mincount" => self.min_count = small()?,
            b"mindrop" => self.min_drop = small()?,
            // Scores are not kept; the filter passes everything, as a score of 0 would.
            b"minscore" => {}
            b"maxlstint" => self.max_lstint = Some(small()?),
            b"minlstint" => self.min_lstint = Some(small()?),
            b"laddr" => self.laddr = Some(parse_local(text).ok_or(ErrorCode::BadValue)?),
            b"resall" => self.resall = bits()?,
            b"resany" => self.resany = bits()?,
            b"recent" => self.recent = Some(count()?),
            _ => {
                let (stem, index) = split_index(name).ok_or(ErrorCode::UnknownVariable)?;
                let slot = self
                    .resume
                    .get_mut(index)
                    .ok_or(ErrorCode::UnknownVariable)?;
                match stem {
                    b"addr" => {
                        slot.0 = Some(SocketAddr::from_str(text).map_err(|_| ErrorCode::BadValue)?);
                    }
                    b"last" => slot.1 = Some(parse_timestamp(text).ok_or(ErrorCode::BadValue)?),
                    _ => return Err(ErrorCode::UnknownVariable),
                }
            }
        }
        Ok(())
    }

    /// Whether `entry` passes the filters at served time `now`.
    fn selects(&self, entry: &ClientEntry, now: NtpTimestamp) -> bool {
        let lstint = (now - entry.last).to_seconds_f64();
        entry.count >= self.min_count
            && entry.drops >= self.min_drop
            && self.max_lstint.is_none_or(|m| lstint <= f64::from(m))
            && self.min_lstint.is_none_or(|m| lstint >= f64::from(m))
            && self
                .laddr
                .is_none_or(|l| entry.local.map(|a| a.to_canonical()) == Some(l.to_canonical()))
            && if self.resall != 0 {
                entry.restrict & self.resall == self.resall
            } else {
                self.resany == 0 || entry.restrict & self.resany != 0
            }
    }
}

fn parse_int(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn parse_local(text: &str) -> Option<IpAddr> {
    IpAddr::from_str(text)
        .ok()
        .or_else(|| SocketAddr::from_str(text).ok().map(|s| s.ip()))
}

fn parse_timestamp(text: &str) -> Option<NtpTimestamp> {
    let hex = text.strip_prefix("0x")?;
    let (seconds, fraction) = hex.split_once('.')?;
    if seconds.len() > 8 || fraction.len() > 8 {
        return None;
    }
    Some(NtpTimestamp::from_parts(
        u32::from_str_radix(seconds, 16).ok()?,
        u32::from_str_radix(fraction, 16).ok()?,
    ))
}

/// `addr.12` → (`addr`, 12).
fn split_index(name: &[u8]) -> Option<(&[u8], usize)> {
    let dot = name.iter().position(|&b| b == b'.')?;
    let (stem, index) = (name.get(..dot)?, name.get(dot + 1..)?);
    if index.is_empty() || index.len() > 2 || !index.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let index = core::str::from_utf8(index).ok()?.parse().ok()?;
    Some((stem, index))
}

/// Writes the nonce reply's data into `buf`; returns its length.
pub(crate) fn write_nonce(context: &MruContext<'_>, buf: &mut [u8]) -> usize {
    let nonce = Nonce::issue(&context.nonce_key, context.source, context.monotonic);
    let mut writer = VarWriter::new(buf);
    writer.item(format_args!("nonce={nonce}"));
    writer.finish().0
}

/// Writes the MRU reply's data for `query` into `buf` (at most `frags` fragments of it) and
/// returns its length. The caller has verified the nonce.
pub(crate) fn write_list(
    context: &MruContext<'_>,
    query: &MruQuery<'_>,
    now: NtpTimestamp,
    buf: &mut [u8],
) -> Result<usize, ErrorCode> {
    // At least one fragment, so that the clamps below have min ≤ max whatever the buffer.
    let max_fragments = (buf.len() / MAX_DATA_LEN).max(1);
    let (frags, limit) = match (query.frags, query.limit) {
        (_, Some(1)) => (max_fragments, 1),
        (Some(frags), _) => (frags.clamp(1, max_fragments), MAX_LIMIT),
        (None, Some(limit)) => (max_fragments, limit.clamp(1, MAX_LIMIT)),
        (None, None) => return Err(ErrorCode::BadValue),
    };
    let budget = frags * MAX_DATA_LEN;
    let buf = buf.get_mut(..budget).unwrap_or_default();

    // The resume point: the newest entry the client already has. `limit=1` fetches that very
    // entry instead (its `last` may be zero).
    let newest_known = query
        .resume
        .iter()
        .filter_map(|(addr, last)| Some(((*addr)?, *last)))
        .max_by_key(|(addr, last)| (last.map(|l| Reverse(now - l)), *addr));
    let mut entries = Vec::new();
    context.table.clients(&mut |entry| {
        if query.selects(&entry, now) {
            entries.push(entry);
        }
    });
    // Oldest first; ties in address order.
    entries.sort_unstable_by_key(|e| (Reverse(now - e.last), e.addr));
    let start = match (newest_known, query.limit) {
        (Some((addr, _)), Some(1)) => entries.iter().position(|e| e.addr.ip() == addr.ip()),
        (Some((addr, Some(last))), _) => Some(
            entries
                .iter()
                .position(|e| (Reverse(now - e.last), e.addr) > (Reverse(now - last), addr))
                .unwrap_or(entries.len()),
        ),
        (Some((_, None)), _) => return Err(ErrorCode::BadValue),
        (None, _) => Some(
            query
                .recent
                .map_or(0, |recent| entries.len().saturating_sub(recent)),
        ),
    };
    let start = start.ok_or(ErrorCode::UnknownVariable)?;

    let mut writer = VarWriter::new(buf);
    let nonce = Nonce::issue(&context.nonce_key, context.source, context.monotonic);
    writer.item(format_args!("nonce={nonce}"));
    let mut newest = None;
    let mut complete = true;
    for (sent, entry) in entries.iter().skip(start).enumerate() {
        if sent == limit {
            complete = false;
            break;
        }
        let lines = EntryText::new(sent, entry);
        if writer.len() + lines.len() + TAIL_RESERVE > budget {
            complete = false;
            break;
        }
        for item in lines.items() {
            writer.item(format_args!("{item}"));
        }
        newest = Some(entry.last);
    }
    if complete {
        writer.item(format_args!("now={}", Hex(now)));
        if let Some(last) = newest {
            writer.item(format_args!("last.newest={}", Hex(last)));
        }
    }
    Ok(writer.finish().0)
}

/// The items of one entry, formatted up front so that the writer takes all or none of them.
struct EntryText {
    items: [Item; 7],
}

struct Item {
    buf: [u8; 64],
    len: usize,
}

impl Default for Item {
    fn default() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl fmt::Write for Item {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dest = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.buf.get(..self.len).unwrap_or_default();
        f.write_str(core::str::from_utf8(text).unwrap_or_default())
    }
}

impl EntryText {
    fn new(index: usize, e: &ClientEntry) -> Self {
        let mut items: [Item; 7] = Default::default();
        let [addr, last, first, ct, mv, rs, dr] = &mut items;
        // An item that does not fit 64 octets cannot happen (the longest, an IPv6 address
        // with port, is 54); it would be sent empty rather than cut.
        let _ = write!(addr, "addr.{index}={}", e.addr);
        let _ = write!(last, "last.{index}={}", Hex(e.last));
        let _ = write!(first, "first.{index}={}", Hex(e.first));
        let _ = write!(ct, "ct.{index}={}", e.count);
        let _ = write!(mv, "mv.{index}={}", e.mode_version);
        let _ = write!(rs, "rs.{index}=0x{:x}", e.restrict);
        let _ = write!(dr, "dr.{index}={}", e.drops);
        Self { items }
    }

    /// An upper bound of the octets the items take with their separators.
    fn len(&self) -> usize {
        self.items.iter().map(|i| i.len + 3).sum()
    }

    fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.len > 0)
    }
}

/// The READ_MRU part of the `control_respond` fuzz target: parses the request data as MRU
/// parameters and, whatever the nonce says, writes the list from a small table, checking that
/// the reply stays within the fragments asked for.
///
/// # Panics
/// If the list outgrows its buffer (a bug, which is what fuzzing looks for).
pub(crate) fn fuzz_list(data: &[u8]) {
    use std::sync::OnceLock;

    use crate::ratelimit::{LimitParams, RateLimiter};

    static TABLE: OnceLock<RateLimiter> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let table = RateLimiter::new(64, LimitParams::default(), SipKey::new(1, 2));
        for n in 0..40u8 {
            let addr = if n % 3 == 0 {
                SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n)], 40000))
            } else {
                SocketAddr::from(([192, 0, 2, n], 123))
            };
            let second = u64::from(n) * 7;
            table.record(
                addr.ip(),
                addr.port(),
                None,
                NtpTimestamp::from_parts(0xec00_0000 + u32::from(n), 0),
                MonoTime::from_duration(core::time::Duration::from_secs(second)),
                0x23,
                u16::from(n),
            );
        }
        table
    });
    let Ok(query) = MruQuery::parse(data) else {
        return;
    };
    let context = MruContext {
        table,
        nonce_key: SipKey::new(3, 4),
        source: IpAddr::from([192, 0, 2, 1]),
        monotonic: MonoTime::from_duration(core::time::Duration::from_secs(400)),
    };
    let mut buf = vec![0u8; super::respond::MAX_REPLY_DATA];
    if let Ok(len) = write_list(
        &context,
        &query,
        NtpTimestamp::from_parts(0xec00_1000, 0),
        &mut buf,
    ) {
        let frags = query.frags.unwrap_or(usize::MAX).max(1);
        assert!(len <= buf.len() && len <= frags.saturating_mul(MAX_DATA_LEN));
    }
}
