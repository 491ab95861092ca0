//! Keeping a `pool` populated: which resolved addresses to add, and which members to let go.
//!
//! A pool name resolves to a few servers out of many. sundial uses each address the name
//! yields until `tos maxclock` associations exist, lets go of members that stop answering (or
//! deny service), and resolves the name again to find replacements — so a pool heals itself
//! when one of its servers disappears.

use core::net::{IpAddr, SocketAddr};

use crate::source::UNREACH_BACKOFF;

/// What the pool logic needs to know about one current member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The member's address.
    pub addr: SocketAddr,
    /// Its reach register.
    pub reach: u8,
    /// Polls since it last answered.
    pub unreach: u32,
    /// It sent DENY or RSTR.
    pub denied: bool,
}

impl Member {
    /// Whether the member should make room for another server: it has not answered for
    /// [`UNREACH_BACKOFF`] polls in a row, or it refused service.
    pub fn should_retire(&self) -> bool {
        self.denied || (self.reach == 0 && self.unreach >= UNREACH_BACKOFF)
    }
}

/// The addresses among `resolved` to mobilise now: not already used by any association
/// (`in_use`), in resolver order, while the total stays within `maxclock`.
pub fn to_mobilize(
    resolved: &[IpAddr],
    port: u16,
    in_use: &[SocketAddr],
    maxclock: usize,
) -> Vec<SocketAddr> {
    let mut room = maxclock.saturating_sub(in_use.len());
    let mut out = Vec::new();
    for ip in resolved {
        if room == 0 {
            break;
        }
        let addr = SocketAddr::new(*ip, port);
        if in_use.contains(&addr) || out.contains(&addr) {
            continue;
        }
        out.push(addr);
        room -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn new_addresses_fill_up_to_maxclock_without_duplicates() {
        let resolved = [
            ip("192.0.2.1"),
            ip("192.0.2.2"),
            ip("192.0.2.1"),
            ip("192.0.2.3"),
        ];
        let add = to_mobilize(&resolved, 123, &[sa("192.0.2.2:123")], 3);
        assert_eq!(add, [sa("192.0.2.1:123"), sa("192.0.2.3:123")]);
        assert!(to_mobilize(&resolved, 123, &[sa("10.0.0.1:123"); 3], 3).is_empty());
    }

    #[test]
    fn a_silent_member_is_retired_and_replaced_by_a_fresh_address() {
        let members = [
            Member {
                addr: sa("192.0.2.1:123"),
                reach: 0o377,
                unreach: 0,
                denied: false,
            },
            Member {
                addr: sa("192.0.2.2:123"),
                reach: 0,
                unreach: UNREACH_BACKOFF,
                denied: false,
            },
        ];
        let keep: Vec<SocketAddr> = members
            .iter()
            .filter(|m| !m.should_retire())
            .map(|m| m.addr)
            .collect();
        assert_eq!(keep, [sa("192.0.2.1:123")]);
        // The name now resolves to a different set; the silent server is not chosen again
        // only if the resolver stops returning it — here it returns a new one first.
        let add = to_mobilize(&[ip("192.0.2.9"), ip("192.0.2.1")], 123, &keep, 2);
        assert_eq!(add, [sa("192.0.2.9:123")]);
    }

    #[test]
    fn a_member_that_still_answers_sometimes_stays() {
        let m = Member {
            addr: sa("192.0.2.1:123"),
            reach: 0b0000_0100,
            unreach: 2,
            denied: false,
        };
        assert!(!m.should_retire());
        assert!(Member { denied: true, ..m }.should_retire());
    }
}
