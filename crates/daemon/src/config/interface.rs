//! `interface` (and its synonym `nic`): which local addresses the daemon binds (ntp-conf.md
//! §11). Whatever the rules say, the daemon always keeps 127.0.0.1 and ::1 for ntpq.

use std::net::IpAddr;

use super::Location;
use super::address::parse_cidr;
use super::finding::Diag;
use super::lexer::Args;

/// One `interface ACTION TARGET` line. ntpd applies the rules in order, later ones winning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceRule {
    /// What to do with the matching addresses.
    pub action: InterfaceAction,
    /// Which addresses.
    pub target: InterfaceTarget,
    /// Where the line is.
    pub location: Location,
}

/// What an interface rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterfaceAction {
    /// `listen`: bind and serve.
    Listen,
    /// `ignore`: do not bind.
    Ignore,
    /// `drop`: bind, but drop every packet received there.
    Drop,
}

/// Which local addresses an interface rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InterfaceTarget {
    /// `all`: every address.
    All,
    /// `ipv4`: every IPv4 address.
    Ipv4,
    /// `ipv6`: every IPv6 address.
    Ipv6,
    /// `wildcard`: the wildcard sockets (0.0.0.0 and ::).
    Wildcard,
    /// An interface name such as `eth0`.
    Name(String),
    /// The addresses in `addr/prefix_len` (a bare address is a full-length prefix).
    Net {
        /// The address.
        addr: IpAddr,
        /// The prefix length, within the family's width.
        prefix_len: u8,
    },
}

/// `interface|nic listen|ignore|drop all|ipv4|ipv6|wildcard|NAME|ADDR[/LEN]`.
pub(super) fn parse_interface(
    args: &mut Args<'_, '_>,
    location: Location,
) -> Result<InterfaceRule, Diag> {
    let action_tok = args.required("listen, ignore or drop")?;
    let action = match action_tok.text {
        _ if action_tok.quoted => None,
        "listen" => Some(InterfaceAction::Listen),
        "ignore" => Some(InterfaceAction::Ignore),
        "drop" => Some(InterfaceAction::Drop),
        _ => None,
    }
    .ok_or_else(|| action_tok.error("interface action must be listen, ignore or drop"))?;
    let tok = args.required("a target after the action")?;
    let target = match tok.text {
        "all" if !tok.quoted => InterfaceTarget::All,
        "ipv4" if !tok.quoted => InterfaceTarget::Ipv4,
        "ipv6" if !tok.quoted => InterfaceTarget::Ipv6,
        "wildcard" if !tok.quoted => InterfaceTarget::Wildcard,
        text => match parse_cidr(&tok) {
            Some(cidr) => {
                let (addr, prefix_len) = cidr?;
                InterfaceTarget::Net { addr, prefix_len }
            }
            None => match text
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(addr) => InterfaceTarget::Net {
                    addr,
                    prefix_len: if addr.is_ipv4() { 32 } else { 128 },
                },
                Err(_) if is_interface_name(text) => InterfaceTarget::Name(text.to_owned()),
                Err(_) => return Err(tok.error("not an interface name or address")),
            },
        },
    };
    args.finish()?;
    Ok(InterfaceRule {
        action,
        target,
        location,
    })
}

/// Linux allows nearly anything in an interface name except `/` and whitespace; aliases such
/// as `eth0:1` contain a colon. Anything else that parses as nothing is more likely a typo.
fn is_interface_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:@".contains(c))
}
