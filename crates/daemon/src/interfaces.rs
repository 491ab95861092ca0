//! Which local addresses sundial serves on (ntp.conf `interface`, ntpd `-I`).
//!
//! sundial listens on wildcard sockets and learns each request's destination address, so the
//! rules are applied per request instead of per socket: a request to an address whose last
//! matching rule is `ignore` or `drop` gets no reply. With no rules, every address is served.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What a rule does to the addresses it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Serve on these addresses.
    Listen,
    /// Do not serve on these addresses.
    Ignore,
}

/// Which addresses a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTarget {
    /// Every address.
    All,
    /// Every IPv4 address.
    Ipv4,
    /// Every IPv6 address.
    Ipv6,
    /// The addresses of the interface with this name.
    Interface(String),
    /// An address or a prefix of addresses.
    Prefix {
        /// The network address.
        addr: IpAddr,
        /// Prefix length in bits.
        len: u8,
    },
}

/// The filter in force, shared with the server threads so that a reload reaches them: each
/// thread keeps its own copy and takes the new one at its next batch after [`LiveFilter::set`].
#[derive(Debug, Clone)]
pub struct LiveFilter {
    shared: Arc<(Mutex<InterfaceFilter>, AtomicU64)>,
}

impl LiveFilter {
    /// Shares `filter`.
    pub fn new(filter: InterfaceFilter) -> Self {
        Self {
            shared: Arc::new((Mutex::new(filter), AtomicU64::new(0))),
        }
    }

    /// Puts `filter` in force for every reader.
    pub fn set(&self, filter: InterfaceFilter) {
        *self.shared.0.lock().unwrap_or_else(PoisonError::into_inner) = filter;
        self.shared.1.fetch_add(1, Ordering::Release);
    }

    /// One thread's view.
    pub fn reader(&self) -> FilterReader {
        FilterReader {
            generation: self.shared.1.load(Ordering::Acquire),
            cached: self
                .shared
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            live: self.clone(),
        }
    }
}

/// A thread's cached copy of a [`LiveFilter`]; locks only when the filter was replaced.
#[derive(Debug)]
pub struct FilterReader {
    live: LiveFilter,
    cached: InterfaceFilter,
    generation: u64,
}

impl FilterReader {
    /// The filter in force.
    pub fn get(&mut self) -> &InterfaceFilter {
        let generation = self.live.shared.1.load(Ordering::Acquire);
        if generation != self.generation {
            self.cached = self
                .live
                .shared
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            self.generation = generation;
        }
        &self.cached
    }
}

/// The ordered rules; the last rule that matches an address decides.
#[derive(Debug, Clone)]
pub struct InterfaceFilter {
    rules: Vec<(RuleAction, Vec<IpAddr>, RuleTarget)>,
    default_listen: bool,
}

impl Default for InterfaceFilter {
    /// No rules: serve on every address.
    fn default() -> Self {
        Self::new(Vec::new(), &[])
    }
}

impl InterfaceFilter {
    /// A filter with the given rules. `interface_addrs` maps interface names to addresses
    /// (for `interface listen eth0`). If the first rule is a `listen` rule, addresses no rule
    /// matches are not served (the classic "listen only on these" reading).
    pub fn new(rules: Vec<(RuleAction, RuleTarget)>, interface_addrs: &[(String, IpAddr)]) -> Self {
        let default_listen =
            !matches!(rules.first(), Some((RuleAction::Listen, t)) if *t != RuleTarget::All);
        let rules = rules
            .into_iter()
            .map(|(action, target)| {
                let addrs = match &target {
                    RuleTarget::Interface(name) => interface_addrs
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, a)| *a)
                        .collect(),
                    _ => Vec::new(),
                };
                (action, addrs, target)
            })
            .collect();
        Self {
            rules,
            default_listen,
        }
    }

    /// Whether requests sent to `dst` are served.
    pub fn serves(&self, dst: IpAddr) -> bool {
        // Loopback is always served: ntpq and local tools must keep working.
        if dst.is_loopback() {
            return true;
        }
        let dst = canonical(dst);
        self.rules
            .iter()
            .rev()
            .find(|(_, addrs, target)| matches(target, addrs, dst))
            .map_or(self.default_listen, |(action, _, _)| {
                *action == RuleAction::Listen
            })
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn matches(target: &RuleTarget, addrs: &[IpAddr], dst: IpAddr) -> bool {
    match target {
        RuleTarget::All => true,
        RuleTarget::Ipv4 => dst.is_ipv4(),
        RuleTarget::Ipv6 => dst.is_ipv6(),
        RuleTarget::Interface(_) => addrs.contains(&dst),
        RuleTarget::Prefix { addr, len } => in_prefix(dst, *addr, *len),
    }
}

fn in_prefix(dst: IpAddr, net: IpAddr, len: u8) -> bool {
    match (dst, net) {
        (IpAddr::V4(d), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(d) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(d), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(d) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_rules_serve_everything() {
        let f = InterfaceFilter::default();
        assert!(f.serves(ip("192.0.2.1")) && f.serves(ip("2001:db8::1")));
    }

    #[test]
    fn ignore_rules_exclude_addresses_but_never_loopback() {
        let f = InterfaceFilter::new(
            vec![(
                RuleAction::Ignore,
                RuleTarget::Prefix {
                    addr: ip("192.0.2.0"),
                    len: 24,
                },
            )],
            &[],
        );
        assert!(!f.serves(ip("192.0.2.1")));
        assert!(f.serves(ip("198.51.100.1")));
        let all = InterfaceFilter::new(vec![(RuleAction::Ignore, RuleTarget::All)], &[]);
        assert!(all.serves(ip("127.0.0.1")) && all.serves(ip("::1")));
    }

    #[test]
    fn listen_first_means_only_those() {
        let f = InterfaceFilter::new(
            vec![(RuleAction::Listen, RuleTarget::Interface("eth0".into()))],
            &[
                ("eth0".into(), ip("10.0.0.5")),
                ("eth1".into(), ip("10.1.0.5")),
            ],
        );
        assert!(f.serves(ip("10.0.0.5")));
        assert!(!f.serves(ip("10.1.0.5")));
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let f = InterfaceFilter::new(
            vec![
                (RuleAction::Ignore, RuleTarget::Ipv6),
                (
                    RuleAction::Listen,
                    RuleTarget::Prefix {
                        addr: ip("2001:db8::1"),
                        len: 128,
                    },
                ),
            ],
            &[],
        );
        assert!(f.serves(ip("2001:db8::1")));
        assert!(!f.serves(ip("2001:db8::2")));
    }
}
