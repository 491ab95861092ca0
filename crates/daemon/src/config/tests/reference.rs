//! The reference configurations of ntp-conf.md §14 and sundial's shipped example.

use std::net::{IpAddr, SocketAddr};

use sundial_proto::access::{AccessTable, RestrictEntry, RestrictFlags};
use sundial_proto::packet::ReferenceId;
use sundial_proto::time::NtpDuration;

use super::{has_errors, parse, parse_clean, positions};
use crate::config::*;

fn flags(names: &[&str]) -> RestrictFlags {
    names.iter().fold(RestrictFlags::NONE, |acc, name| {
        acc | RestrictFlags::from_keyword(name).unwrap()
    })
}

fn net(addr: &str, mask: &str) -> RestrictTarget {
    RestrictTarget::Net {
        addr: addr.parse().unwrap(),
        mask: mask.parse().unwrap(),
    }
}

fn names(config: &Config) -> Vec<(AssociationKind, String, bool)> {
    config
        .associations
        .iter()
        .map(|a| (a.kind, a.address.to_string(), a.iburst))
        .collect()
}

fn restricts(config: &Config) -> Vec<(RestrictTarget, RestrictFlags)> {
    config
        .restrictions
        .iter()
        .map(|r| (r.target.clone(), r.flags))
        .collect()
}

/// Builds the proto access table from literal-address lines, the way the daemon does before
/// adding its implicit entries.
fn access_table(config: &Config) -> AccessTable {
    let mut table = AccessTable::new();
    for line in &config.restrictions {
        match &line.target {
            RestrictTarget::Default { v4, v6 } => table.add_default(*v4, *v6, line.flags),
            RestrictTarget::Net { addr, mask } => {
                let mut entry = RestrictEntry::host(*addr, line.flags);
                entry.mask = *mask;
                entry.ntpport = line.ntpport;
                table.add(entry);
            }
            RestrictTarget::Source | RestrictTarget::Name { .. } => {}
        }
    }
    table
}

const CLASSIC_ADMIN: &str = "\
driftfile /var/lib/ntp/ntp.drift
server 0.ubuntu.pool.ntp.org iburst
server 1.ubuntu.pool.ntp.org iburst
restrict default kod nomodify notrap nopeer noquery
restrict 127.0.0.1
restrict 192.168.1.0 mask 255.255.255.0 nomodify notrap
";

#[test]
fn classic_admin_config_parses_to_the_expected_values() {
    let config = parse_clean(CLASSIC_ADMIN);
    assert_eq!(
        config.driftfile,
        Some(DriftFile {
            path: "/var/lib/ntp/ntp.drift".into(),
            wander: None
        })
    );
    assert_eq!(
        names(&config),
        [
            (
                AssociationKind::Server,
                "0.ubuntu.pool.ntp.org".to_owned(),
                true
            ),
            (
                AssociationKind::Server,
                "1.ubuntu.pool.ntp.org".to_owned(),
                true
            ),
        ]
    );
    let server = &config.associations[0];
    assert_eq!(
        (server.minpoll, server.maxpoll, server.port),
        (DEFAULT_MINPOLL, DEFAULT_MAXPOLL, 123)
    );
    assert_eq!((server.location.line, server.location.column), (2, 1));
    assert_eq!(
        restricts(&config),
        [
            (
                RestrictTarget::Default { v4: true, v6: true },
                flags(&["kod", "nomodify", "notrap", "nopeer", "noquery"])
            ),
            (net("127.0.0.1", "255.255.255.255"), RestrictFlags::NONE),
            (
                net("192.168.1.0", "255.255.255.0"),
                flags(&["nomodify", "notrap"])
            ),
        ]
    );
}

#[test]
fn classic_admin_config_gives_the_lan_read_only_ntpq_and_outsiders_none() {
    let table = access_table(&parse_clean(CLASSIC_ADMIN));
    let lookup = |s: &str| table.lookup(&s.parse::<SocketAddr>().unwrap()).flags;
    assert_eq!(lookup("127.0.0.1:50000"), RestrictFlags::NONE);
    let lan = lookup("192.168.1.20:50000");
    assert!(lan.contains(RestrictFlags::NOMODIFY) && !lan.contains(RestrictFlags::NOQUERY));
    assert!(lookup("203.0.113.9:123").contains(RestrictFlags::NOQUERY));
    assert!(lookup("[2001:db8::9]:123").contains(RestrictFlags::NOQUERY));
}

#[test]
fn ubuntu_default_config_parses_with_per_family_defaults_and_statistics() {
    let (config, findings) = parse(
        "\
driftfile /var/lib/ntp/ntp.drift
leapfile /usr/share/zoneinfo/leap-seconds.list
statistics loopstats peerstats clockstats
filegen loopstats file loopstats type day enable
filegen peerstats file peerstats type day enable
filegen clockstats file clockstats type day enable
pool 0.ubuntu.pool.ntp.org iburst
pool 1.ubuntu.pool.ntp.org iburst
pool 2.ubuntu.pool.ntp.org iburst
pool 3.ubuntu.pool.ntp.org iburst
pool ntp.ubuntu.com
restrict -4 default kod notrap nomodify nopeer noquery limited
restrict -6 default kod notrap nomodify nopeer noquery limited
restrict 127.0.0.1
restrict ::1
restrict source notrap nomodify noquery
",
    );
    assert!(!has_errors(&findings), "{findings:#?}");
    // The leap file is not read: the only finding is a warning saying so (clockstats is
    // written, for reference clocks).
    let tokens: Vec<_> = findings
        .iter()
        .map(|f| (f.severity, f.token.as_str()))
        .collect();
    assert_eq!(tokens, [(Severity::Warning, "leapfile")]);
    assert_eq!(
        config.leapfile,
        Some("/usr/share/zoneinfo/leap-seconds.list".into())
    );
    assert_eq!(
        config.statistics,
        [
            StatsKind::Loopstats,
            StatsKind::Peerstats,
            StatsKind::Clockstats
        ]
    );
    assert_eq!(config.filegens.len(), 3);
    let loopstats = &config.filegens[0];
    assert_eq!(loopstats.stats, StatsKind::Loopstats);
    assert_eq!(loopstats.file, Some("loopstats".into()));
    assert_eq!(
        (loopstats.kind, loopstats.link, loopstats.enabled),
        (Some(FileGenType::Day), None, Some(true))
    );
    assert_eq!(config.associations.len(), 5);
    assert!(
        config
            .associations
            .iter()
            .all(|a| a.kind == AssociationKind::Pool)
    );
    assert!(!config.associations[4].iburst);
    let limited = flags(&["kod", "notrap", "nomodify", "nopeer", "noquery", "limited"]);
    assert_eq!(
        restricts(&config),
        [
            (
                RestrictTarget::Default {
                    v4: true,
                    v6: false
                },
                limited
            ),
            (
                RestrictTarget::Default {
                    v4: false,
                    v6: true
                },
                limited
            ),
            (net("127.0.0.1", "255.255.255.255"), RestrictFlags::NONE),
            (
                net("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                RestrictFlags::NONE
            ),
            (
                RestrictTarget::Source,
                flags(&["notrap", "nomodify", "noquery"])
            ),
        ]
    );
}

#[test]
fn debian_ntpsec_default_config_parses_with_its_tos_settings() {
    let (config, findings) = parse(
        "\
driftfile /var/lib/ntpsec/ntp.drift
leapfile /usr/share/zoneinfo/leap-seconds.list
tos maxclock 11
tos minclock 4 minsane 3
pool 0.debian.pool.ntp.org iburst
pool 1.debian.pool.ntp.org iburst
pool 2.debian.pool.ntp.org iburst
pool 3.debian.pool.ntp.org iburst
restrict default kod nomodify nopeer noquery limited
restrict 127.0.0.1
restrict ::1
",
    );
    // The leap file is not read yet, and the only finding says so.
    assert_eq!(positions(&findings, Severity::Warning), ["2:1 leapfile"]);
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (config.tos.minclock, config.tos.maxclock, config.tos.minsane),
        (4, 11, 3)
    );
    assert_eq!(config.tos.maxdist, DEFAULT_MAXDIST);
    assert_eq!(config.associations.len(), 4);
    assert_eq!(
        config.associations[3].address,
        HostSpec::Name("3.debian.pool.ntp.org".into())
    );
    assert_eq!(
        config.restrictions[0].flags,
        flags(&["kod", "nomodify", "nopeer", "noquery", "limited"])
    );
    assert_eq!(
        config.driftfile.unwrap().path,
        Path::new("/var/lib/ntpsec/ntp.drift")
    );
}

#[test]
fn lan_server_config_with_orphan_fallback_parses() {
    let config = parse_clean(
        "\
driftfile /var/lib/ntp/ntp.drift
pool 0.pool.ntp.org iburst
tos orphan 10 orphanwait 300             # preferred fallback
# legacy alternative, still supported:
# server 127.127.1.0
# fudge  127.127.1.0 stratum 10
restrict default kod limited nomodify notrap nopeer noquery
restrict source nomodify notrap noquery
restrict 127.0.0.1
restrict ::1
restrict 192.168.1.0 mask 255.255.255.0 nomodify notrap
",
    );
    assert_eq!(config.tos.orphan, Some(10));
    assert_eq!(config.tos.orphanwait, NtpDuration::from_seconds(300));
    assert!(config.fudges.is_empty());
    assert_eq!(config.associations.len(), 1);
    assert_eq!(config.restrictions.len(), 5);
    assert_eq!(config.restrictions[1].target, RestrictTarget::Source);
    assert_eq!(
        config.restrictions[4].target,
        net("192.168.1.0", "255.255.255.0")
    );
}

#[test]
fn shipped_example_config_has_no_errors_and_the_seed_values() {
    let (config, findings) = parse_str(
        include_str!("../../../../../etc/ntp.conf"),
        Path::new("etc/ntp.conf"),
    );
    assert!(!has_errors(&findings), "{findings:#?}");
    assert_eq!(
        config.driftfile.as_ref().unwrap().path,
        Path::new("/var/lib/ntp/ntp.drift")
    );
    let pools: Vec<_> = config
        .associations
        .iter()
        .filter(|a| a.kind == AssociationKind::Pool)
        .collect();
    assert_eq!(pools.len(), 4);
    assert!(pools.iter().all(|p| p.iburst));
    let local = RefclockId { kind: 1, unit: 0 };
    assert!(
        config
            .associations
            .iter()
            .any(|a| a.refclock() == Some(local))
    );
    assert_eq!(config.fudges.len(), 1);
    assert_eq!(
        (config.fudges[0].clock, config.fudges[0].stratum),
        (local, Some(10))
    );
    assert_eq!(config.fudges[0].refid, None::<ReferenceId>);
    let targets: Vec<_> = config
        .restrictions
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(targets.len(), 4);
    assert_eq!(targets[0], RestrictTarget::Default { v4: true, v6: true });
    assert_eq!(
        targets[2],
        net("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    );
    assert_eq!(targets[3], net("192.168.1.0", "255.255.255.0"));
}

#[test]
fn an_empty_file_means_the_default_config() {
    let (config, findings) = parse("# nothing but a comment\n\n   \n");
    assert!(findings.is_empty());
    assert_eq!(config, Config::default());
    assert_eq!(config.tinker.step, Threshold::At(DEFAULT_STEP));
    assert_eq!(
        config.tinker.panic,
        Threshold::At(NtpDuration::from_seconds(1000))
    );
    assert_eq!(config.tinker.stepout, NtpDuration::from_seconds(300));
    assert_eq!(config.tos.orphan, None);
    assert!(config.system_flags.auth && config.system_flags.monitor && config.system_flags.kernel);
    assert_eq!(config.wander_threshold(), DEFAULT_WANDER_THRESHOLD);
}

#[test]
fn fixed_point_default_constants_match_their_decimal_values() {
    assert_eq!(DEFAULT_STEP, NtpDuration::from_seconds_f64(0.128));
    assert_eq!(DEFAULT_MINDIST, NtpDuration::from_seconds_f64(0.001));
    assert_eq!(DEFAULT_MAXDIST, NtpDuration::from_seconds_f64(1.5));
    assert_eq!(DEFAULT_DISPERSION.value().to_bits(), 15.0_f64.to_bits());
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(RefclockId::from_addr(loopback).is_none());
}
