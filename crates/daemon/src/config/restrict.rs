//! `restrict` and `unrestrict` lines (ntp-conf.md §4–§5).
//!
//! The parser records each line as written, in order, and leaves building the access table to
//! the daemon: host names in `restrict` must be resolved first, and the daemon also adds its
//! implicit entries (loopback equivalence, the `noquery` default for mode 6). What the parser
//! does guarantee is that every flag is one sundial knows; a misspelt flag is an error, because
//! silently dropping `ignore` or `noquery` would open the server wider than intended.

use std::net::IpAddr;

use sundial_proto::access::RestrictFlags;

use super::Location;
use super::address::{HostSpec, host_mask, parse_cidr, parse_host, prefix_mask};
use super::finding::Diag;
use super::lexer::{Args, Token};
use super::types::Family;

/// One `restrict` or `unrestrict` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictLine {
    /// `unrestrict`: clear `flags` from the entry, or delete it when `flags` is empty.
    pub unrestrict: bool,
    /// Which sources the line is about.
    pub target: RestrictTarget,
    /// `ntpport`: match only packets from source port 123.
    pub ntpport: bool,
    /// `ippeerlimit N` (ntp.org 4.2.8p11+); `None` when absent or `-1` (unlimited). Has no
    /// effect while sundial has no symmetric mode.
    pub ippeerlimit: Option<u32>,
    /// The flags, including `serverresponse fuzz`.
    pub flags: RestrictFlags,
    /// Where the line is.
    pub location: Location,
}

/// What a restrict line applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestrictTarget {
    /// `default` (both families), `-4 default` or `-6 default`.
    Default {
        /// Applies to the IPv4 default entry.
        v4: bool,
        /// Applies to the IPv6 default entry.
        v6: bool,
    },
    /// `source`: a template applied to the address of every association.
    Source,
    /// An address with a mask (`ADDR [mask M]` or `ADDR/LEN`); the mask has the address's
    /// family and is all ones for a host.
    Net {
        /// The address as written.
        addr: IpAddr,
        /// The mask.
        mask: IpAddr,
    },
    /// A host name, resolved once by the daemon at start-up.
    Name {
        /// The name.
        name: String,
        /// `-4`/`-6`: which addresses of the name to use.
        family: Option<Family>,
        /// `mask M`, if given; otherwise the host mask of each resolved address.
        mask: Option<IpAddr>,
    },
}

/// `restrict|unrestrict [-4|-6] default|source|ADDR[/LEN] [mask M] [ippeerlimit N] [ntpport]
/// [flag …]`.
pub(super) fn parse_restrict(
    unrestrict: bool,
    args: &mut Args<'_, '_>,
    location: Location,
    notes: &mut Vec<Diag>,
) -> Result<RestrictLine, Diag> {
    let family = match args.peek() {
        Some(tok) if tok.is("-4") => Some(Family::V4),
        Some(tok) if tok.is("-6") => Some(Family::V6),
        _ => None,
    };
    if family.is_some() {
        args.next();
    }
    let addr_tok = args.required("an address, 'default' or 'source'")?;
    let (mut target, has_prefix) = parse_target(&addr_tok, family)?;
    let (mut ntpport, mut ippeerlimit, mut flags) = (false, None, RestrictFlags::NONE);
    while let Some(opt) = args.next() {
        match opt.text {
            _ if opt.quoted => return Err(opt.error("unknown restrict flag")),
            "mask" => apply_mask(&mut target, args.value_of(opt)?, has_prefix, notes)?,
            "ntpport" => ntpport = true,
            "ippeerlimit" => {
                let value = args.value_of(opt)?;
                ippeerlimit = match value.wide_int("ippeerlimit")? {
                    -1 => None,
                    n => Some(u32::try_from(n).map_err(|_| {
                        value.error("ippeerlimit must be -1 (unlimited) or a count")
                    })?),
                };
            }
            "serverresponse" => {
                let what = args.value_of(opt)?;
                if !what.is("fuzz") {
                    return Err(what.error("expected 'fuzz' after serverresponse"));
                }
                flags = flags | RestrictFlags::SERVERRESPONSE_FUZZ;
            }
            word => {
                let Some(flag) = RestrictFlags::from_keyword(word) else {
                    return Err(opt.error("unknown restrict flag"));
                };
                if flag == RestrictFlags::MSSNTP {
                    notes.push(opt.warning("mssntp (MS-SNTP signing) is not supported"));
                }
                flags = flags | flag;
            }
        }
    }
    Ok(RestrictLine {
        unrestrict,
        target,
        ntpport,
        ippeerlimit,
        flags,
        location,
    })
}

/// The target and whether it was written with a CIDR prefix (which then excludes `mask`).
fn parse_target(tok: &Token<'_>, family: Option<Family>) -> Result<(RestrictTarget, bool), Diag> {
    if tok.is("default") {
        let target = RestrictTarget::Default {
            v4: family != Some(Family::V6),
            v6: family != Some(Family::V4),
        };
        return Ok((target, false));
    }
    if tok.is("source") {
        if family.is_some() {
            return Err(tok.error("-4/-6 cannot be combined with 'source'"));
        }
        return Ok((RestrictTarget::Source, false));
    }
    let check_family = |addr: IpAddr| match family {
        Some(Family::V4) if addr.is_ipv6() => Err(tok.error("address is not IPv4 as -4 requires")),
        Some(Family::V6) if addr.is_ipv4() => Err(tok.error("address is not IPv6 as -6 requires")),
        _ => Ok(addr),
    };
    if let Some(cidr) = parse_cidr(tok) {
        let (addr, len) = cidr?;
        let addr = check_family(addr)?;
        return Ok((
            RestrictTarget::Net {
                addr,
                mask: prefix_mask(addr, len),
            },
            true,
        ));
    }
    let target = match parse_host(tok)? {
        HostSpec::Ip(addr) => {
            let addr = check_family(addr)?;
            RestrictTarget::Net {
                addr,
                mask: host_mask(addr),
            }
        }
        HostSpec::Name(name) => RestrictTarget::Name {
            name,
            family,
            mask: None,
        },
        HostSpec::ScopedV6 { .. } | HostSpec::Refclock(_) => {
            return Err(tok.error("restrict needs an address without a zone"));
        }
    };
    Ok((target, false))
}

fn apply_mask(
    target: &mut RestrictTarget,
    tok: Token<'_>,
    has_prefix: bool,
    notes: &mut Vec<Diag>,
) -> Result<(), Diag> {
    let HostSpec::Ip(mask) = parse_host(&tok)? else {
        return Err(tok.error("mask must be an IP address such as 255.255.255.0"));
    };
    if has_prefix {
        return Err(tok.error("mask cannot be combined with an ADDR/LEN prefix"));
    }
    match target {
        RestrictTarget::Net { addr, mask: slot } => {
            if addr.is_ipv4() != mask.is_ipv4() {
                return Err(tok.error("mask is not of the address's family"));
            }
            *slot = mask;
        }
        RestrictTarget::Name {
            family, mask: slot, ..
        } => {
            let wrong = match family {
                Some(Family::V4) => mask.is_ipv6(),
                Some(Family::V6) => mask.is_ipv4(),
                None => false,
            };
            if wrong {
                return Err(tok.error("mask is not of the family given by -4/-6"));
            }
            *slot = Some(mask);
        }
        RestrictTarget::Default { .. } | RestrictTarget::Source => {
            notes.push(tok.warning("mask has no meaning for default or source; ignored"));
        }
    }
    Ok(())
}
