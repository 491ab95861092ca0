//! Turning the typed configuration into the pieces the daemon runs with: the restrict table,
//! the fallback (local clock or orphan mode) and the interface filter.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use sundial_proto::access::{AccessTable, RestrictEntry, RestrictFlags};
use sundial_proto::fallback::{Fallback, LOCAL_CLOCK_DEFAULT_STRATUM};
use sundial_proto::packet::ReferenceId;
use sundial_proto::ratelimit::{DEFAULT_ENTRIES, LimitParams, RateLimiter};
use sundial_proto::server::Server;
use sundial_proto::siphash::SipKey;

use crate::cli::NtpdArgs;
use crate::config::{
    Config, Family, HostSpec, InterfaceAction, InterfaceTarget, MAX_MRU_ENTRIES, RefclockId,
    RestrictLine, RestrictTarget,
};
use crate::interfaces::{InterfaceFilter, RuleAction, RuleTarget};
use crate::random::Random;

/// The local clock driver's refclock type (127.127.1.u).
const LOCAL_CLOCK_TYPE: u8 = 1;

/// What the daemon runs with, derived once from the configuration and the command line.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The restrict table from the configuration, with the implicit loop-protection entries.
    pub access: AccessTable,
    /// Flags of `restrict source` lines: applied to every address an association uses.
    pub source_flags: Option<RestrictFlags>,
    /// What to serve without an upstream source.
    pub fallback: Fallback,
    /// Which local addresses are served.
    pub filter: InterfaceFilter,
    /// Whether any network server or pool is configured.
    pub upstream_configured: bool,
    /// The client table shared by every server thread (rate limits and the mode 6 budget).
    pub limiter: Arc<RateLimiter>,
    /// Seeds for the server threads' random leak.
    pub seed: u64,
}

impl Runtime {
    /// Builds the runtime pieces. Host names in `restrict` lines are resolved here, once, as
    /// classic ntpd does; a name that does not resolve is logged and skipped.
    pub fn from_config(config: &Config, args: &NtpdArgs, random: &mut Random) -> Self {
        let interface_addrs = sundial_sys::process::interface_addresses().unwrap_or_default();
        let key = SipKey::new(random.next_u64(), random.next_u64());
        let mut access = access_table(&config.restrictions, args_family(args));
        add_own_addresses(&mut access, &interface_addrs);
        Self {
            limiter: Arc::new(RateLimiter::new_placed(
                table_entries(config),
                limit_params(config),
                key,
                |addr, len| {
                    if let Err(e) = sundial_sys::memory::advise_huge_pages(addr, len) {
                        tracing::debug!("client table: no huge pages ({e})");
                    }
                },
            )),
            seed: random.next_u64(),
            access,
            source_flags: source_flags(&config.restrictions),
            fallback: fallback(config),
            filter: interface_filter(config, args, &interface_addrs),
            upstream_configured: !args.servers.is_empty()
                || config
                    .associations
                    .iter()
                    .any(|a| !matches!(a.address, HostSpec::Refclock(_))),
        }
    }
}

impl Runtime {
    /// Takes up a reloaded configuration: a new restrict table (host names resolved again), new
    /// interface rules and new rate limits. The client table keeps its entries and the
    /// fallback stays as started.
    pub fn reconfigure(&mut self, config: &Config, args: &NtpdArgs) {
        let interface_addrs = sundial_sys::process::interface_addresses().unwrap_or_default();
        let mut access = access_table(&config.restrictions, args_family(args));
        add_own_addresses(&mut access, &interface_addrs);
        self.access = access;
        self.source_flags = source_flags(&config.restrictions);
        self.filter = interface_filter(config, args, &interface_addrs);
        self.limiter.set_params(limit_params(config));
    }

    /// The request handler for server thread `n`.
    pub fn server(&self, n: usize) -> Server {
        let seed = self.seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Server::with_limiter(Arc::clone(&self.limiter), seed)
    }
}

/// Rate-limit parameters: NTPsec's `limit` when given (mapped onto the same bucket: an average
/// of R packets/s is an interval of 1/R s, and a burst time of T s allows R·T packets at once,
/// with no guard time), else classic `discard`.
pub fn limit_params(config: &Config) -> LimitParams {
    let defaults = LimitParams::default();
    if let Some(limit) = config.limit {
        let rate = limit.average.max(1e-6);
        return LimitParams {
            average: Duration::from_secs_f64((1.0 / rate).min(1e6)),
            minimum: Duration::ZERO,
            burst: u32::try_from((rate * limit.burst.to_seconds_f64()).ceil() as i64)
                .unwrap_or(1)
                .max(1),
            leak: defaults.leak,
        };
    }
    let d = config.discard;
    LimitParams {
        average: Duration::from_secs_f64(d.average.as_seconds_f64()),
        minimum: Duration::from_secs_f64(d.minimum.to_seconds_f64().max(0.0)),
        ..defaults
    }
}

/// Client-table size: `mru maxdepth` entries, or what `mru maxmem` KiB hold, else the default;
/// never more than the parser's ceiling ([`MAX_MRU_ENTRIES`]), whatever the `Config`
/// was built from.
fn table_entries(config: &Config) -> usize {
    let ceiling = usize::try_from(MAX_MRU_ENTRIES).unwrap_or(DEFAULT_ENTRIES);
    let wanted = if let Some(depth) = config.mru.maxdepth {
        usize::try_from(depth).unwrap_or(DEFAULT_ENTRIES)
    } else if let Some(kib) = config.mru.maxmem_kib {
        usize::try_from(kib).unwrap_or(0).saturating_mul(1024) / RateLimiter::ENTRY_BYTES
    } else {
        DEFAULT_ENTRIES
    };
    wanted.clamp(1, ceiling)
}

fn args_family(args: &NtpdArgs) -> Option<Family> {
    match (args.ipv4, args.ipv6) {
        (true, false) => Some(Family::V4),
        (false, true) => Some(Family::V6),
        _ => None,
    }
}

/// The restrict table from the `restrict`/`unrestrict` lines, in file order.
pub fn access_table(lines: &[RestrictLine], family: Option<Family>) -> AccessTable {
    let mut table = AccessTable::new();
    for line in lines {
        let entries: Vec<RestrictEntry> = match &line.target {
            RestrictTarget::Default { v4, v6 } => {
                if line.unrestrict {
                    table.remove_default(*v4, *v6, line.flags);
                } else {
                    table.add_default(*v4, *v6, line.flags);
                }
                continue;
            }
            // `restrict source` applies to the addresses associations resolve to; it is
            // handled where associations are mobilised.
            RestrictTarget::Source => continue,
            RestrictTarget::Net { addr, mask } => vec![entry(*addr, *mask, line)],
            RestrictTarget::Name {
                name,
                family: name_family,
                mask,
            } => {
                let wanted = name_family.or(family);
                resolve(name, wanted)
                    .into_iter()
                    .map(|addr| {
                        entry(
                            addr,
                            mask.filter(|m| m.is_ipv4() == addr.is_ipv4())
                                .unwrap_or_else(|| host_mask(addr)),
                            line,
                        )
                    })
                    .collect()
            }
        };
        for e in entries {
            if line.unrestrict {
                let _ = table.remove(&e);
            } else {
                table.add(e);
            }
        }
    }
    loopback_equivalence(&mut table);
    table
}

/// Packets from one of this host's own addresses with source port 123 are another NTP daemon
/// on this host talking to itself through us, or our own replies looping back: drop them, as
/// classic ntpd's implicit `restrict ADDR interface ntpport ignore` entries do.
fn add_own_addresses(table: &mut AccessTable, addrs: &[(String, IpAddr)]) {
    for (_, addr) in addrs {
        let mut entry = RestrictEntry::host(*addr, RestrictFlags::IGNORE);
        entry.ntpport = true;
        table.add(entry);
    }
}

/// The flags of `restrict source` lines (merged; `unrestrict source` clears them).
pub fn source_flags(lines: &[RestrictLine]) -> Option<RestrictFlags> {
    let mut flags: Option<RestrictFlags> = None;
    for line in lines.iter().filter(|l| l.target == RestrictTarget::Source) {
        flags = if line.unrestrict {
            flags
                .map(|f| f.difference(line.flags))
                .filter(|_| !line.flags.is_empty())
        } else {
            Some(flags.unwrap_or_default() | line.flags)
        };
    }
    flags
}

/// The configured table plus a host entry with the `restrict source` flags for every address
/// an association uses that has no entry of its own.
pub fn with_sources(
    base: &AccessTable,
    flags: Option<RestrictFlags>,
    addrs: impl IntoIterator<Item = IpAddr>,
) -> AccessTable {
    let mut table = base.clone();
    if let Some(flags) = flags {
        for addr in addrs {
            if !table.has_host_entry(addr) {
                table.add(RestrictEntry::host(addr, flags));
            }
        }
    }
    table
}

/// `ntpq` asks `localhost`, which is ::1 first on Debian; a config written for classic ntpd
/// only says `restrict 127.0.0.1`. Give each loopback address the other's entry when it has
/// none of its own.
fn loopback_equivalence(table: &mut AccessTable) {
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    for (have, missing) in [(v4, v6), (v6, v4)] {
        if table.has_host_entry(have) && !table.has_host_entry(missing) {
            let flags = table.lookup(&SocketAddr::new(have, 1)).flags;
            table.add(RestrictEntry::host(missing, flags));
        }
    }
}

fn entry(addr: IpAddr, mask: IpAddr, line: &RestrictLine) -> RestrictEntry {
    RestrictEntry {
        addr,
        mask,
        ntpport: line.ntpport,
        flags: line.flags,
    }
}

fn host_mask(addr: IpAddr) -> IpAddr {
    RestrictEntry::host(addr, RestrictFlags::NONE).mask
}

fn resolve(name: &str, family: Option<Family>) -> Vec<IpAddr> {
    match (name, 0).to_socket_addrs() {
        Ok(addrs) => addrs
            .map(|a| a.ip())
            .filter(|ip| match family {
                Some(Family::V4) => ip.is_ipv4(),
                Some(Family::V6) => ip.is_ipv6(),
                None => true,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("restrict {name}: cannot resolve: {e}; line ignored");
            Vec::new()
        }
    }
}

/// The local clock driver if one is configured, else orphan mode if `tos orphan` is set.
pub fn fallback(config: &Config) -> Fallback {
    let local = config.associations.iter().find_map(|a| match a.address {
        HostSpec::Refclock(id) if id.kind == LOCAL_CLOCK_TYPE => Some(id),
        _ => None,
    });
    if let Some(id) = local {
        let fudges = || {
            config
                .fudges
                .iter()
                .filter(move |f| same_clock(f.clock, id))
        };
        let stratum = fudges()
            .filter_map(|f| f.stratum)
            .next_back()
            .unwrap_or(LOCAL_CLOCK_DEFAULT_STRATUM);
        let refid = fudges()
            .filter_map(|f| f.refid)
            .next_back()
            .unwrap_or(ReferenceId::LOCL);
        return Fallback::LocalClock { stratum, refid };
    }
    match config.tos.orphan {
        Some(stratum) => Fallback::Orphan {
            stratum,
            wait: Duration::from_secs_f64(config.tos.orphanwait.to_seconds_f64().max(0.0)),
        },
        None => Fallback::None,
    }
}

fn same_clock(a: RefclockId, b: RefclockId) -> bool {
    a.kind == b.kind && a.unit == b.unit
}

/// The interface filter from `interface` lines and `-I` flags.
fn interface_filter(
    config: &Config,
    args: &NtpdArgs,
    interface_addrs: &[(String, IpAddr)],
) -> InterfaceFilter {
    let mut rules = Vec::new();
    for rule in &config.interfaces {
        let action = match rule.action {
            InterfaceAction::Listen => RuleAction::Listen,
            InterfaceAction::Ignore | InterfaceAction::Drop => RuleAction::Ignore,
        };
        let target = match &rule.target {
            // Wildcard sockets are how sundial serves every address; "ignore wildcard" has
            // nothing to switch off.
            InterfaceTarget::Wildcard => continue,
            InterfaceTarget::All => RuleTarget::All,
            InterfaceTarget::Ipv4 => RuleTarget::Ipv4,
            InterfaceTarget::Ipv6 => RuleTarget::Ipv6,
            InterfaceTarget::Name(n) => RuleTarget::Interface(n.clone()),
            InterfaceTarget::Net { addr, prefix_len } => RuleTarget::Prefix {
                addr: *addr,
                len: *prefix_len,
            },
        };
        rules.push((action, target));
    }
    for iface in &args.interface {
        let target = match iface.parse::<IpAddr>() {
            Ok(addr) => RuleTarget::Prefix {
                addr,
                len: if addr.is_ipv4() { 32 } else { 128 },
            },
            Err(_) => RuleTarget::Interface(iface.clone()),
        };
        rules.push((RuleAction::Listen, target));
    }
    InterfaceFilter::new(rules, interface_addrs)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sundial_proto::access::RestrictFlags;

    use super::*;
    use crate::config::parse_str;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn seed_restrict_lines_build_the_expected_table() {
        let (config, findings) = parse_str(
            "restrict default kod nomodify notrap nopeer noquery\n\
             restrict 127.0.0.1\n\
             restrict 192.168.1.0 mask 255.255.255.0 nomodify notrap\n",
            Path::new("/etc/ntp.conf"),
        );
        assert!(findings.is_empty(), "{findings:?}");
        let t = access_table(&config.restrictions, None);
        assert!(
            t.lookup(&sa("10.9.0.10:5000"))
                .flags
                .contains(RestrictFlags::NOQUERY)
        );
        assert!(
            !t.lookup(&sa("192.168.1.10:5000"))
                .flags
                .contains(RestrictFlags::NOQUERY)
        );
        assert_eq!(t.lookup(&sa("127.0.0.1:5000")).flags, RestrictFlags::NONE);
        // Loopback equivalence: ::1 gets 127.0.0.1's (empty) entry, not the default.
        let v6 = t.lookup(&sa("[::1]:5000"));
        assert!(v6.explicit);
        assert_eq!(v6.flags, RestrictFlags::NONE);
    }

    #[test]
    fn restrict_source_applies_to_association_addresses_without_their_own_entry() {
        let (config, _) = parse_str(
            "restrict default noquery\nrestrict source nomodify noquery\nrestrict 192.0.2.2 nomodify\n",
            Path::new("/etc/ntp.conf"),
        );
        let flags = source_flags(&config.restrictions);
        assert_eq!(
            flags,
            Some(RestrictFlags::NOMODIFY | RestrictFlags::NOQUERY)
        );
        let base = access_table(&config.restrictions, None);
        let t = with_sources(
            &base,
            flags,
            ["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
        );
        let pool_member = t.lookup(&sa("192.0.2.1:123"));
        assert!(pool_member.explicit && pool_member.flags.contains(RestrictFlags::NOMODIFY));
        // An address with an entry of its own keeps it.
        assert_eq!(
            t.lookup(&sa("192.0.2.2:123")).flags,
            RestrictFlags::NOMODIFY
        );
        let (cleared, _) = parse_str(
            "restrict source noquery\nunrestrict source\n",
            Path::new("/x"),
        );
        assert_eq!(source_flags(&cleared.restrictions), None);
    }

    #[test]
    fn own_addresses_on_port_123_are_ignored() {
        let mut t = AccessTable::new();
        add_own_addresses(&mut t, &[("eth0".to_owned(), "192.0.2.9".parse().unwrap())]);
        assert!(
            t.lookup(&sa("192.0.2.9:123"))
                .flags
                .contains(RestrictFlags::IGNORE)
        );
        assert!(
            !t.lookup(&sa("192.0.2.9:40000"))
                .flags
                .contains(RestrictFlags::IGNORE)
        );
    }

    #[test]
    fn unrestrict_removes_flags() {
        let (config, _) = parse_str(
            "restrict default limited kod noquery\nunrestrict default limited kod\n",
            Path::new("/etc/ntp.conf"),
        );
        let t = access_table(&config.restrictions, None);
        assert_eq!(t.lookup(&sa("192.0.2.1:1")).flags, RestrictFlags::NOQUERY);
    }

    #[test]
    fn local_clock_and_orphan_fallbacks() {
        let (c, _) = parse_str(
            "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n",
            Path::new("/x"),
        );
        assert_eq!(
            fallback(&c),
            Fallback::LocalClock {
                stratum: 10,
                refid: ReferenceId::LOCL
            }
        );
        let (c, _) = parse_str("tos orphan 8 orphanwait 0\n", Path::new("/x"));
        assert_eq!(
            fallback(&c),
            Fallback::Orphan {
                stratum: 8,
                wait: Duration::ZERO
            }
        );
        let (c, _) = parse_str("server 127.127.1.0\n", Path::new("/x"));
        assert_eq!(
            fallback(&c),
            Fallback::LocalClock {
                stratum: 5,
                refid: ReferenceId::LOCL
            }
        );
        assert_eq!(fallback(&Config::default()), Fallback::None);
    }
}
