//! Turning the server arguments into addresses: numeric addresses as they are, host names through
//! the system resolver (glibc `getaddrinfo`, which honours `/etc/hosts` and `nsswitch.conf`), all
//! addresses of a name, restricted to one family with `-4`/`-6`.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Which address families a host name may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 and IPv6 (no flag).
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl Family {
    fn admits(self, ip: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::V4 => ip.is_ipv4(),
            Self::V6 => ip.is_ipv6(),
        }
    }
}

/// Why a server argument yielded no address; the message names the host, because with several
/// servers "Name or service not known" alone does not say which one failed.
#[derive(Debug)]
pub enum ResolveError {
    /// The resolver failed (unknown name, no name server, …).
    Lookup {
        /// The argument as given.
        host: String,
        /// What the resolver said.
        error: io::Error,
    },
    /// The name exists but has no address of the family `-4`/`-6` asked for.
    NoAddressOfFamily {
        /// The argument as given.
        host: String,
        /// The family asked for.
        family: Family,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lookup { host, error } => {
                // std prefixes getaddrinfo's own text; keep only the resolver's words.
                let text = error.to_string();
                let reason = text
                    .strip_prefix("failed to lookup address information: ")
                    .unwrap_or(&text);
                write!(f, "Can't find host {host}: {reason}")
            }
            Self::NoAddressOfFamily { host, family } => {
                let which = if *family == Family::V6 {
                    "IPv6"
                } else {
                    "IPv4"
                };
                write!(f, "Can't find host {host}: no {which} address")
            }
        }
    }
}

impl std::error::Error for ResolveError {}

/// The addresses of one server argument, in resolver order, without duplicates.
///
/// `ADDR:PORT` and `[ADDR]:PORT` select a port for that server (for tests on loopback); every
/// other form uses `port`. IPv4-mapped IPv6 addresses are reported as IPv4, the form replies
/// come back with.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<Vec<SocketAddr>, ResolveError> {
    let numeric = host
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| parse_ip(host).map(|ip| SocketAddr::new(ip, port)));
    let found: Vec<SocketAddr> = match numeric {
        Some(addr) => vec![addr],
        None => (host, port)
            .to_socket_addrs()
            .map_err(|error| ResolveError::Lookup {
                host: host.to_owned(),
                error,
            })?
            .collect(),
    };
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(found.len());
    for addr in found {
        let addr = canonical(addr);
        if family.admits(addr.ip()) && !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(ResolveError::NoAddressOfFamily {
            host: host.to_owned(),
            family,
        });
    }
    Ok(addrs)
}

/// An address as replies show it: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A numeric address, with or without the brackets of `[::1]`.
fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn numeric_addresses_take_the_default_port_unless_they_carry_one() {
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, 123));
        assert_eq!(resolve("127.0.0.1", 123, Family::Any).unwrap(), [v4]);
        assert_eq!(
            resolve("127.0.0.1:11123", 123, Family::Any).unwrap(),
            [SocketAddr::from((Ipv4Addr::LOCALHOST, 11123))]
        );
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 123));
        assert_eq!(resolve("::1", 123, Family::Any).unwrap(), [v6]);
        assert_eq!(resolve("[::1]", 123, Family::Any).unwrap(), [v6]);
        assert_eq!(
            resolve("[::1]:9", 123, Family::Any).unwrap(),
            [SocketAddr::from((Ipv6Addr::LOCALHOST, 9))]
        );
    }

    #[test]
    fn mapped_ipv4_is_reported_as_ipv4() {
        assert_eq!(
            resolve("::ffff:127.0.0.1", 5, Family::V4).unwrap(),
            [SocketAddr::from((Ipv4Addr::LOCALHOST, 5))]
        );
    }

    #[test]
    fn family_flags_filter_addresses_and_say_which_family_was_missing() {
        let err = resolve("::1", 123, Family::V4).unwrap_err();
        assert_eq!(err.to_string(), "Can't find host ::1: no IPv4 address");
        let err = resolve("127.0.0.1", 123, Family::V6).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Can't find host 127.0.0.1: no IPv6 address"
        );
    }

    #[test]
    fn lookup_failures_name_the_host() {
        // `.invalid` never resolves (RFC 6761); the resolver answers without a network.
        let err = resolve("no-such-host.invalid", 123, Family::Any).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("Can't find host no-such-host.invalid: "),
            "{text}"
        );
        assert!(!text.contains("failed to lookup"), "{text}");
    }
}
