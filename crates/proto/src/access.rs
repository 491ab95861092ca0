//! The restrict table: which sources may use which services (ntp.conf `restrict`).
//!
//! Entries are (address, mask, `ntpport`) with a set of [`RestrictFlags`]. A source gets the
//! flags of the most specific matching entry — the one with the most mask bits, and among
//! equal masks the one with `ntpport` — or the default entry of its family. This is the
//! classic rule ("entries sorted by address then mask, the last match wins").

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// NTP's well-known port, which `ntpport` entries match.
pub const NTP_PORT: u16 = 123;

/// A set of restrict flags (ntp.conf `restrict … FLAG …`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RestrictFlags(u32);

impl RestrictFlags {
    /// No restriction at all.
    pub const NONE: Self = Self(0);
    /// Drop every packet from the source.
    pub const IGNORE: Self = Self(1 << 0);
    /// Drop time service (modes 1–5); mode 6 is still answered.
    pub const NOSERVE: Self = Self(1 << 1);
    /// Drop mode 6 (ntpq) queries silently.
    pub const NOQUERY: Self = Self(1 << 2);
    /// Refuse mode 6 requests that would change state.
    pub const NOMODIFY: Self = Self(1 << 3);
    /// Require authentication for time service.
    pub const NOTRUST: Self = Self(1 << 4);
    /// Rate-limit time service (parameters from `discard` / `limit`).
    pub const LIMITED: Self = Self(1 << 5);
    /// Send a RATE kiss-o'-death to rate-limited clients.
    pub const KOD: Self = Self(1 << 6);
    /// Never mobilise an association for an unauthenticated packet.
    pub const NOPEER: Self = Self(1 << 7);
    /// Refuse trap requests (sundial has no traps; accepted for compatibility).
    pub const NOTRAP: Self = Self(1 << 8);
    /// Low-priority traps (accepted, no effect).
    pub const LOWPRIOTRAP: Self = Self(1 << 9);
    /// Drop time packets whose version is not 4.
    pub const VERSION: Self = Self(1 << 10);
    /// Refuse the mode 6 MRU list.
    pub const NOMRULIST: Self = Self(1 << 11);
    /// Drop 10 % of packets at random (testing).
    pub const FLAKE: Self = Self(1 << 12);
    /// Refuse ephemeral symmetric peers (accepted, always in effect).
    pub const NOEPEER: Self = Self(1 << 13);
    /// MS-SNTP signing (parsed, not supported).
    pub const MSSNTP: Self = Self(1 << 14);
    /// Fuzz the low bits of the reference time in replies.
    pub const SERVERRESPONSE_FUZZ: Self = Self(1 << 15);

    const NAMES: [(&'static str, Self); 15] = [
        ("ignore", Self::IGNORE),
        ("noserve", Self::NOSERVE),
        ("noquery", Self::NOQUERY),
        ("nomodify", Self::NOMODIFY),
        ("notrust", Self::NOTRUST),
        ("limited", Self::LIMITED),
        ("kod", Self::KOD),
        ("nopeer", Self::NOPEER),
        ("notrap", Self::NOTRAP),
        ("lowpriotrap", Self::LOWPRIOTRAP),
        ("version", Self::VERSION),
        ("nomrulist", Self::NOMRULIST),
        ("flake", Self::FLAKE),
        ("noepeer", Self::NOEPEER),
        ("mssntp", Self::MSSNTP),
    ];

    /// The flag of an ntp.conf keyword, if it names one. (`ntpport` is a match modifier and
    /// `serverresponse fuzz` takes two words; the config parser handles both.)
    pub fn from_keyword(word: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == word)
            .map(|(_, f)| *f)
    }

    /// Whether every flag in `other` is set here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets of flags.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// These flags without those in `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl core::ops::BitOr for RestrictFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for RestrictFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        for (name, flag) in Self::NAMES {
            if self.contains(flag) {
                set.entry(&format_args!("{name}"));
            }
        }
        if self.contains(Self::SERVERRESPONSE_FUZZ) {
            set.entry(&format_args!("serverresponse fuzz"));
        }
        set.finish()
    }
}

/// One address entry of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestrictEntry {
    /// The address (already masked or not; matching masks both sides).
    pub addr: IpAddr,
    /// The mask; all ones for a host entry. Must be of the same family as `addr`.
    pub mask: IpAddr,
    /// Match only packets from source port 123.
    pub ntpport: bool,
    /// The flags.
    pub flags: RestrictFlags,
}

impl RestrictEntry {
    /// A host entry (all-ones mask).
    pub fn host(addr: IpAddr, flags: RestrictFlags) -> Self {
        let mask = match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::BROADCAST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::MAX)),
        };
        Self {
            addr,
            mask,
            ntpport: false,
            flags,
        }
    }

    /// An entry for `addr/prefix_len` (CIDR); the prefix is clamped to the family's width.
    pub fn prefix(addr: IpAddr, prefix_len: u8) -> Self {
        let mask = match addr {
            IpAddr::V4(_) => {
                let bits = u32::from(prefix_len.min(32));
                IpAddr::V4(Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0)))
            }
            IpAddr::V6(_) => {
                let bits = u32::from(prefix_len.min(128));
                IpAddr::V6(Ipv6Addr::from(
                    u128::MAX.checked_shl(128 - bits).unwrap_or(0),
                ))
            }
        };
        Self {
            addr,
            mask,
            ntpport: false,
            flags: RestrictFlags::NONE,
        }
    }

    fn key(&self) -> Option<(u128, u128)> {
        match (self.addr, self.mask) {
            (IpAddr::V4(a), IpAddr::V4(m)) => {
                Some((u128::from(u32::from(a)), u128::from(u32::from(m))))
            }
            (IpAddr::V6(a), IpAddr::V6(m)) => Some((u128::from(a), u128::from(m))),
            _ => None,
        }
    }

    fn matches(&self, src: &SocketAddr) -> bool {
        let Some((addr, mask)) = self.key() else {
            return false;
        };
        let src_bits = match (src.ip(), self.addr) {
            (IpAddr::V4(s), IpAddr::V4(_)) => u128::from(u32::from(s)),
            (IpAddr::V6(s), IpAddr::V6(_)) => u128::from(s),
            _ => return false,
        };
        src_bits & mask == addr & mask && (!self.ntpport || src.port() == NTP_PORT)
    }

    /// Specificity: mask bits, then `ntpport`.
    fn specificity(&self) -> (u32, bool) {
        (self.key().map_or(0, |(_, m)| m.count_ones()), self.ntpport)
    }
}

/// The restrict table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessTable {
    /// Sorted most specific first, so the first match is the answer.
    entries: Vec<RestrictEntry>,
    default_v4: RestrictFlags,
    default_v6: RestrictFlags,
    /// Whether the configuration has a `restrict default` line for each family.
    default_set_v4: bool,
    default_set_v6: bool,
}

impl AccessTable {
    /// A table that restricts nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds flags to the default entries (`restrict default`, `-4 default`, `-6 default`).
    pub fn add_default(&mut self, v4: bool, v6: bool, flags: RestrictFlags) {
        if v4 {
            self.default_v4 = self.default_v4.union(flags);
            self.default_set_v4 = true;
        }
        if v6 {
            self.default_v6 = self.default_v6.union(flags);
            self.default_set_v6 = true;
        }
    }

    /// Clears flags from the default entries (`unrestrict default FLAGS`).
    pub fn remove_default(&mut self, v4: bool, v6: bool, flags: RestrictFlags) {
        if v4 {
            self.default_v4 = self.default_v4.difference(flags);
        }
        if v6 {
            self.default_v6 = self.default_v6.difference(flags);
        }
    }

    /// Adds an entry; an existing entry for the same address, mask and `ntpport` gets the new
    /// flags merged in, as classic ntpd does.
    pub fn add(&mut self, entry: RestrictEntry) {
        if let Some(existing) = self.find_mut(&entry) {
            existing.flags = existing.flags.union(entry.flags);
            return;
        }
        self.entries.push(entry);
        // Stable sort keeps configuration order among equally specific entries.
        self.entries
            .sort_by_key(|e| core::cmp::Reverse(e.specificity()));
    }

    /// `unrestrict`: clears `flags` from the matching entry, or deletes it when `flags` is
    /// empty. Returns whether such an entry existed.
    pub fn remove(&mut self, entry: &RestrictEntry) -> bool {
        let Some(pos) = self.entries.iter().position(|e| same_key(e, entry)) else {
            return false;
        };
        if entry.flags.is_empty() {
            self.entries.remove(pos);
        } else if let Some(e) = self.entries.get_mut(pos) {
            e.flags = e.flags.difference(entry.flags);
        }
        true
    }

    /// Whether an entry exists that matches exactly `addr` as a host.
    pub fn has_host_entry(&self, addr: IpAddr) -> bool {
        let probe = RestrictEntry::host(addr, RestrictFlags::NONE);
        self.entries.iter().any(|e| same_key(e, &probe))
    }

    /// Whether the configuration set any default flags or any entry at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.default_v4.is_empty() && self.default_v6.is_empty()
    }

    /// The flags that apply to a packet from `src`, and whether they came from an explicit
    /// address entry (as opposed to the default).
    pub fn lookup(&self, src: &SocketAddr) -> Lookup {
        if let Some(e) = self.entries.iter().find(|e| e.matches(src)) {
            return Lookup {
                flags: e.flags,
                explicit: true,
            };
        }
        let flags = if src.is_ipv4() {
            self.default_v4
        } else {
            self.default_v6
        };
        Lookup {
            flags,
            explicit: false,
        }
    }

    /// Whether `src` may query this server over mode 6 (ntpq).
    ///
    /// `ignore` and `noquery` always refuse. An explicit address entry without them allows.
    /// Otherwise the default entry decides — but when the configuration has no `restrict
    /// default` line for the source's family, sundial treats the implicit default as
    /// `noquery` and lets only loopback sources in (classic ntpd would answer anyone; mode 6
    /// replies are larger than requests and reveal the server's state).
    pub fn control_allowed(&self, src: &SocketAddr) -> bool {
        let found = self.lookup(src);
        if found.flags.contains(RestrictFlags::IGNORE)
            || found.flags.contains(RestrictFlags::NOQUERY)
        {
            return false;
        }
        let default_set = if src.is_ipv4() {
            self.default_set_v4
        } else {
            self.default_set_v6
        };
        found.explicit || default_set || src.ip().is_loopback()
    }

    fn find_mut(&mut self, entry: &RestrictEntry) -> Option<&mut RestrictEntry> {
        self.entries.iter_mut().find(|e| same_key(e, entry))
    }
}

/// Result of [`AccessTable::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// The flags that apply.
    pub flags: RestrictFlags,
    /// Whether an address entry (not the default) matched.
    pub explicit: bool,
}

fn same_key(a: &RestrictEntry, b: &RestrictEntry) -> bool {
    match (a.key(), b.key()) {
        (Some((aa, am)), Some((ba, bm))) => {
            a.addr.is_ipv4() == b.addr.is_ipv4()
                && aa & am == ba & bm
                && am == bm
                && a.ntpport == b.ntpport
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::property;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn seed_table() -> AccessTable {
        let mut t = AccessTable::new();
        let f = |names: &[&str]| {
            names.iter().fold(RestrictFlags::NONE, |acc, n| {
                acc | RestrictFlags::from_keyword(n).unwrap()
            })
        };
        t.add_default(
            true,
            true,
            f(&["kod", "nomodify", "notrap", "nopeer", "noquery"]),
        );
        t.add(RestrictEntry::host(
            "127.0.0.1".parse().unwrap(),
            RestrictFlags::NONE,
        ));
        let mut lan = RestrictEntry::prefix("192.168.1.0".parse().unwrap(), 24);
        lan.flags = f(&["nomodify", "notrap"]);
        t.add(lan);
        t
    }

    #[test]
    fn most_specific_entry_wins_over_default() {
        let t = seed_table();
        assert_eq!(t.lookup(&sa("127.0.0.1:4000")).flags, RestrictFlags::NONE);
        let lan = t.lookup(&sa("192.168.1.10:4000"));
        assert!(lan.explicit && lan.flags.contains(RestrictFlags::NOMODIFY));
        assert!(!lan.flags.contains(RestrictFlags::NOQUERY));
        let outside = t.lookup(&sa("10.9.0.10:4000"));
        assert!(!outside.explicit && outside.flags.contains(RestrictFlags::NOQUERY));
        assert!(
            t.lookup(&sa("[2001:db8::1]:123"))
                .flags
                .contains(RestrictFlags::NOQUERY)
        );
    }

    #[test]
    fn duplicate_entries_merge_and_unrestrict_clears() {
        let mut t = AccessTable::new();
        let addr = "10.0.0.0".parse().unwrap();
        let mut e = RestrictEntry::prefix(addr, 8);
        e.flags = RestrictFlags::NOQUERY;
        t.add(e);
        e.flags = RestrictFlags::IGNORE;
        t.add(e);
        assert_eq!(
            t.lookup(&sa("10.1.2.3:5")).flags,
            RestrictFlags::NOQUERY | RestrictFlags::IGNORE
        );
        e.flags = RestrictFlags::IGNORE;
        assert!(t.remove(&e));
        assert_eq!(t.lookup(&sa("10.1.2.3:5")).flags, RestrictFlags::NOQUERY);
        e.flags = RestrictFlags::NONE;
        assert!(t.remove(&e));
        assert!(!t.lookup(&sa("10.1.2.3:5")).explicit);
    }

    #[test]
    fn ntpport_entries_match_only_port_123_and_beat_plain_ones() {
        let mut t = AccessTable::new();
        let addr: IpAddr = "10.0.0.1".parse().unwrap();
        t.add(RestrictEntry::host(addr, RestrictFlags::NOQUERY));
        let mut p = RestrictEntry::host(addr, RestrictFlags::IGNORE);
        p.ntpport = true;
        t.add(p);
        assert_eq!(t.lookup(&sa("10.0.0.1:123")).flags, RestrictFlags::IGNORE);
        assert_eq!(t.lookup(&sa("10.0.0.1:124")).flags, RestrictFlags::NOQUERY);
    }

    #[test]
    fn mode_6_without_restrict_lines_is_for_loopback_only() {
        let t = AccessTable::new();
        assert!(t.control_allowed(&sa("127.0.0.1:5000")));
        assert!(t.control_allowed(&sa("[::1]:5000")));
        assert!(!t.control_allowed(&sa("192.168.1.10:5000")));
    }

    #[test]
    fn mode_6_follows_the_seed_restrict_lines() {
        let t = seed_table();
        assert!(t.control_allowed(&sa("127.0.0.1:5000")));
        assert!(t.control_allowed(&sa("192.168.1.10:5000")));
        assert!(!t.control_allowed(&sa("10.9.0.10:5000")));
        // A default without noquery lets everyone query, as classic ntpd does.
        let mut open = AccessTable::new();
        open.add_default(true, true, RestrictFlags::KOD);
        assert!(open.control_allowed(&sa("10.9.0.10:5000")));
        // An explicit noquery entry blocks even loopback.
        let mut closed = AccessTable::new();
        closed.add(RestrictEntry::host(
            "127.0.0.1".parse().unwrap(),
            RestrictFlags::NOQUERY,
        ));
        assert!(!closed.control_allowed(&sa("127.0.0.1:5000")));
    }

    #[test]
    fn lookup_agrees_with_a_brute_force_longest_match() {
        let strategy = (
            proptest::collection::vec((any::<u32>(), 0u8..=32, any::<u16>()), 0..12),
            any::<u32>(),
        );
        let (matched, unmatched) = (property::Checked::default(), property::Checked::default());
        let checked = property::run(strategy, |(prefixes, src)| {
            let mut t = AccessTable::new();
            for (addr, len, flags) in &prefixes {
                let mut e = RestrictEntry::prefix(IpAddr::V4(Ipv4Addr::from(*addr)), *len);
                e.flags = RestrictFlags(u32::from(*flags));
                t.add(e);
            }
            let src_sa = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(src)), 999);
            let got = t.lookup(&src_sa);
            // Brute force: union of flags of all matching entries with the longest prefix.
            let matching: Vec<_> = prefixes
                .iter()
                .filter(|(a, l, _)| {
                    let m = u32::MAX.checked_shl(32 - u32::from(*l)).unwrap_or(0);
                    a & m == src & m
                })
                .collect();
            match matching.iter().map(|(_, l, _)| *l).max() {
                None => {
                    unmatched.hit();
                    prop_assert!(!got.explicit);
                }
                Some(best) => {
                    matched.hit();
                    let m = u32::MAX.checked_shl(32 - u32::from(best)).unwrap_or(0);
                    let expected = matching
                        .iter()
                        .filter(|(a, l, _)| *l == best && a & m == src & m)
                        .fold(0u32, |acc, (_, _, f)| acc | u32::from(*f));
                    prop_assert!(got.explicit);
                    prop_assert_eq!(got.flags, RestrictFlags(expected));
                }
            }
            Ok(())
        });
        assert_eq!(checked, property::CASES);
        // A random entry matches a random address with probability about 2/33, so roughly a
        // third of the tables match (about 80 of 256); both sides of the rule must be checked.
        assert!(
            matched.count() >= 20,
            "only {} inputs matched an entry",
            matched.count()
        );
        assert!(
            unmatched.count() >= 20,
            "only {} inputs matched none",
            unmatched.count()
        );
    }
}

#[cfg(test)]
mod flag_tests {
    use super::*;

    const KEYWORDS: [&str; 15] = [
        "ignore",
        "noserve",
        "noquery",
        "nomodify",
        "notrust",
        "limited",
        "kod",
        "nopeer",
        "notrap",
        "lowpriotrap",
        "version",
        "nomrulist",
        "flake",
        "noepeer",
        "mssntp",
    ];

    #[test]
    fn every_restrict_keyword_is_its_own_flag() {
        let flags: Vec<_> = KEYWORDS
            .iter()
            .map(|k| RestrictFlags::from_keyword(k).unwrap())
            .chain([RestrictFlags::SERVERRESPONSE_FUZZ])
            .collect();
        for (i, a) in flags.iter().enumerate() {
            assert!(!a.is_empty(), "{a:?}");
            for b in &flags[i + 1..] {
                assert!(
                    !a.contains(*b) && !b.contains(*a),
                    "{a:?} and {b:?} overlap"
                );
            }
        }
        assert_eq!(RestrictFlags::from_keyword("ntpport"), None);
    }

    #[test]
    fn flags_print_as_their_keywords() {
        let f = RestrictFlags::NOQUERY | RestrictFlags::KOD | RestrictFlags::SERVERRESPONSE_FUZZ;
        assert_eq!(format!("{f:?}"), r#"{noquery, kod, serverresponse fuzz}"#);
        assert_eq!(format!("{:?}", RestrictFlags::NONE), "{}");
    }

    fn v6(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 123)
    }

    #[test]
    fn ipv6_prefixes_match_their_own_addresses_only() {
        let mut t = AccessTable::new();
        let mut e = RestrictEntry::prefix("2001:db8::".parse().unwrap(), 32);
        e.flags = RestrictFlags::NOQUERY;
        t.add(e);
        assert!(t.lookup(&v6("2001:db8:1::5")).explicit);
        assert_eq!(
            t.lookup(&v6("2001:db8:ffff::1")).flags,
            RestrictFlags::NOQUERY
        );
        // /32: the third group is outside, so 2001:db9:: is not covered, nor is an IPv4 source.
        assert!(!t.lookup(&v6("2001:db9::1")).explicit);
        assert!(!t.lookup(&"192.0.2.1:123".parse().unwrap()).explicit);
    }

    #[test]
    fn unrestrict_default_clears_only_the_named_flags_of_the_named_family() {
        let mut t = AccessTable::new();
        t.add_default(true, true, RestrictFlags::KOD | RestrictFlags::LIMITED);
        t.remove_default(true, false, RestrictFlags::KOD);
        let v4 = t.lookup(&"192.0.2.1:123".parse().unwrap()).flags;
        let v6 = t.lookup(&v6("2001:db8::1")).flags;
        assert_eq!(v4, RestrictFlags::LIMITED);
        assert_eq!(v6, RestrictFlags::KOD | RestrictFlags::LIMITED);
    }

    #[test]
    fn a_host_entry_is_found_only_for_its_exact_address() {
        let mut t = AccessTable::new();
        let host: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(!t.has_host_entry(host));
        t.add(RestrictEntry::host(host, RestrictFlags::NOQUERY));
        t.add(RestrictEntry::prefix("198.51.100.0".parse().unwrap(), 24));
        assert!(t.has_host_entry(host));
        assert!(!t.has_host_entry("192.0.2.8".parse().unwrap()));
        assert!(!t.has_host_entry("198.51.100.0".parse().unwrap()));
    }

    #[test]
    fn a_table_is_empty_only_without_entries_and_default_flags() {
        assert!(AccessTable::new().is_empty());
        let mut v4 = AccessTable::new();
        v4.add_default(true, false, RestrictFlags::KOD);
        assert!(!v4.is_empty());
        let mut v6 = AccessTable::new();
        v6.add_default(false, true, RestrictFlags::KOD);
        assert!(!v6.is_empty());
        let mut entry = AccessTable::new();
        entry.add(RestrictEntry::host(
            "192.0.2.7".parse().unwrap(),
            RestrictFlags::NONE,
        ));
        assert!(!entry.is_empty());
    }
}
