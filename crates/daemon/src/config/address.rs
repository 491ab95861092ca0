//! Address arguments: IP literals, DNS names and the `127.127.T.U` reference-clock pseudo
//! addresses.
//!
//! Names are only checked for shape here and kept as text. Resolving them is the daemon's job:
//! a pool name must be resolved again and again, and a parser that did DNS would make loading
//! a config slow, non-deterministic and impossible to test offline.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::finding::Diag;
use super::lexer::Token;

/// What an association or `restrict` line names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostSpec {
    /// A literal address (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`).
    Ip(IpAddr),
    /// An IPv6 address with a zone (`[fe80::1]%eth0` or `fe80::1%eth0`), for link-local
    /// servers; the daemon maps the zone to an interface index.
    ScopedV6 {
        /// The address.
        addr: Ipv6Addr,
        /// The zone (interface name or number) after `%`.
        zone: String,
    },
    /// A DNS name, resolved by the daemon.
    Name(String),
    /// A reference clock, written `127.127.T.U` (or `refclock NAME unit U` in NTPsec syntax).
    Refclock(RefclockId),
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => write!(f, "{addr}"),
            Self::ScopedV6 { addr, zone } => write!(f, "{addr}%{zone}"),
            Self::Name(name) => f.write_str(name),
            Self::Refclock(clock) => write!(f, "{clock}"),
        }
    }
}

/// A reference clock: driver type and unit number, the last two octets of `127.127.T.U`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefclockId {
    /// The driver type (1 is the undisciplined local clock, 20 NMEA, 28 SHM, …).
    pub kind: u8,
    /// The unit number, for several clocks of one type.
    pub unit: u8,
}

impl RefclockId {
    /// Driver type 1, the undisciplined local clock (NTPsec name `local`).
    pub const LOCAL: u8 = 1;
    /// Driver type 22, a pulse-per-second signal through the RFC 2783 API (NTPsec `pps`).
    pub const PPS: u8 = 22;
    /// Driver type 28, the NTP shared-memory segment gpsd writes (NTPsec `shm`).
    pub const SHM: u8 = 28;
    /// The SOCK protocol (a sundial extension, `refclock sock path FILE`): no ntpd driver has
    /// it, so it takes the last type number.
    pub const SOCK: u8 = 255;

    /// The driver's name as ntpq shows it (`SHM(0)`), for the drivers sundial has.
    pub fn driver_name(self) -> Option<&'static str> {
        match self.kind {
            Self::LOCAL => Some("LOCAL"),
            Self::PPS => Some("PPS"),
            Self::SHM => Some("SHM"),
            Self::SOCK => Some("SOCK"),
            _ => None,
        }
    }

    /// The clock a `127.127.T.U` address names, if it is one.
    pub fn from_addr(addr: IpAddr) -> Option<Self> {
        match addr {
            IpAddr::V4(v4) => match v4.octets() {
                [127, 127, kind, unit] => Some(Self { kind, unit }),
                _ => None,
            },
            IpAddr::V6(_) => None,
        }
    }

    /// Whether sundial has this driver.
    pub fn is_supported(self) -> bool {
        self.driver_name().is_some()
    }

    /// Whether this is the local clock driver.
    pub fn is_local(self) -> bool {
        self.kind == Self::LOCAL
    }

    /// The pseudo address, as ntp.org's ntpq shows it.
    pub fn addr(self) -> Ipv4Addr {
        Ipv4Addr::new(127, 127, self.kind, self.unit)
    }
}

impl fmt::Display for RefclockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr())
    }
}

/// Reads an address argument: an IP literal (bracketed or bare, optionally with a zone) or a
/// host name. `127.127.T.U` comes back as [`HostSpec::Ip`]; only associations treat it as a
/// reference clock.
pub(super) fn parse_host(tok: &Token<'_>) -> Result<HostSpec, Diag> {
    let text = tok.text;
    if let Some(inner) = text.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(tok.error("missing ']' after IPv6 address"));
        };
        let addr = addr
            .parse::<IpAddr>()
            .map_err(|_| tok.error("not an IP address"))?;
        return match (addr, after.strip_prefix('%')) {
            (_, None) if after.is_empty() => Ok(HostSpec::Ip(addr)),
            (IpAddr::V6(addr), Some(zone)) if is_zone(zone) => Ok(HostSpec::ScopedV6 {
                addr,
                zone: zone.to_owned(),
            }),
            _ => Err(tok.error("unexpected text after ']'")),
        };
    }
    if let Some((addr, zone)) = text.split_once('%') {
        return match addr.parse::<Ipv6Addr>() {
            Ok(addr) if is_zone(zone) => Ok(HostSpec::ScopedV6 {
                addr,
                zone: zone.to_owned(),
            }),
            _ => Err(tok.error("not an IPv6 address with a zone")),
        };
    }
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(HostSpec::Ip(addr));
    }
    if is_host_name(text) {
        Ok(HostSpec::Name(text.to_owned()))
    } else {
        Err(tok.error("not an IP address or host name"))
    }
}

/// Reads `ADDR/LEN`; `None` when there is no slash. The prefix length is checked against the
/// address family.
pub(super) fn parse_cidr(tok: &Token<'_>) -> Option<Result<(IpAddr, u8), Diag>> {
    let (addr, len) = tok.text.split_once('/')?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Some(Err(tok.error("not an IP address before '/'")));
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    Some(match len.parse::<u8>() {
        Ok(len) if len <= max => Ok((addr, len)),
        _ => Err(tok.error(format!("prefix length must be between 0 and {max}"))),
    })
}

/// The mask of a prefix length in the family of `addr`.
pub(super) fn prefix_mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(_) => {
            let shift = 32 - u32::from(len.min(32));
            IpAddr::V4(Ipv4Addr::from(u32::MAX.checked_shl(shift).unwrap_or(0)))
        }
        IpAddr::V6(_) => {
            let shift = 128 - u32::from(len.min(128));
            IpAddr::V6(Ipv6Addr::from(u128::MAX.checked_shl(shift).unwrap_or(0)))
        }
    }
}

/// The all-ones mask of `addr`'s family: a host entry.
pub(super) fn host_mask(addr: IpAddr) -> IpAddr {
    prefix_mask(addr, 128)
}

/// RFC 1123 shape: dot-separated labels of letters, digits, `-` (and `_`, which real zones
/// contain), at most 253 characters, an optional final dot. A numeric last label is rejected
/// so that a mistyped address such as `192.168.1.300` is reported rather than looked up.
fn is_host_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
    };
    let numeric_tld = name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    name.len() <= 253 && name.split('.').all(label_ok) && !numeric_tld
}

fn is_zone(zone: &str) -> bool {
    !zone.is_empty()
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}
