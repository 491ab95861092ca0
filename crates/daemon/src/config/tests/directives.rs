//! Every directive besides the associations, one test per family, with the typed values it
//! must produce.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sundial_proto::access::RestrictFlags;
use sundial_proto::time::{Log2Seconds, NtpDuration};

use super::{parse, parse_clean, positions};
use crate::config::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn secs(s: f64) -> NtpDuration {
    NtpDuration::from_seconds_f64(s)
}

#[test]
fn restrict_lines_keep_every_target_form_in_order() {
    let (config, findings) = parse(
        "restrict -6 default ignore\n\
         restrict source nomodify\n\
         restrict 10.0.0.0 mask 255.0.0.0 ippeerlimit 3 ntpport noserve\n\
         restrict 2001:db8::/32 serverresponse fuzz flake\n\
         restrict 192.0.2.0/24 version\n\
         restrict -4 ntp.example.org mask 255.255.255.0 nomrulist\n\
         restrict [2001:db8::5] notrust\n\
         restrict 198.51.100.1 ippeerlimit -1 mssntp\n\
         unrestrict default limited\n\
         unrestrict 10.0.0.0 mask 255.0.0.0",
    );
    let targets: Vec<_> = config
        .restrictions
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(
        targets,
        [
            RestrictTarget::Default {
                v4: false,
                v6: true
            },
            RestrictTarget::Source,
            RestrictTarget::Net {
                addr: ip("10.0.0.0"),
                mask: ip("255.0.0.0")
            },
            RestrictTarget::Net {
                addr: ip("2001:db8::"),
                mask: ip("ffff:ffff::")
            },
            RestrictTarget::Net {
                addr: ip("192.0.2.0"),
                mask: ip("255.255.255.0")
            },
            RestrictTarget::Name {
                name: "ntp.example.org".into(),
                family: Some(Family::V4),
                mask: Some(ip("255.255.255.0"))
            },
            RestrictTarget::Net {
                addr: ip("2001:db8::5"),
                mask: ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
            },
            RestrictTarget::Net {
                addr: ip("198.51.100.1"),
                mask: ip("255.255.255.255")
            },
            RestrictTarget::Default { v4: true, v6: true },
            RestrictTarget::Net {
                addr: ip("10.0.0.0"),
                mask: ip("255.0.0.0")
            },
        ]
    );
    let r = &config.restrictions;
    assert_eq!(
        (r[2].ntpport, r[2].ippeerlimit, r[2].flags),
        (true, Some(3), RestrictFlags::NOSERVE)
    );
    assert_eq!(
        r[3].flags,
        RestrictFlags::SERVERRESPONSE_FUZZ | RestrictFlags::FLAKE
    );
    assert_eq!(r[7].ippeerlimit, None);
    assert!(r[8].unrestrict && r[9].unrestrict && !r[0].unrestrict);
    assert!(r[9].flags.is_empty());
    assert_eq!(positions(&findings, Severity::Warning), ["8:38 mssntp"]);
    assert_eq!(findings.len(), 1);
}

#[test]
fn driftfile_nonvolatile_and_paths() {
    let (config, findings) = parse(
        "driftfile \"/var/lib/ntp/ntp drift\" 1e-6\nstatsdir /var/log/ntpstats/\nlogfile /var/log/ntp.log\n\
         leapfile /usr/share/zoneinfo/leap-seconds.list\npidfile /run/ntpd.pid\nkeys /etc/ntp.keys\n\
         logconfig =syncall +clockall",
    );
    // Parsed, but not acted on yet: each says so.
    assert_eq!(
        positions(&findings, Severity::Warning),
        ["4:1 leapfile", "7:1 logconfig"]
    );
    assert_eq!(findings.len(), 2);
    let drift = config.driftfile.as_ref().unwrap();
    assert_eq!(drift.path, Path::new("/var/lib/ntp/ntp drift"));
    assert!((drift.wander.unwrap().value() - 1.0).abs() < 1e-12);
    assert!((config.wander_threshold().value() - 1.0).abs() < 1e-12);
    assert_eq!(config.statsdir, Some(PathBuf::from("/var/log/ntpstats/")));
    assert_eq!(config.logfile, Some(PathBuf::from("/var/log/ntp.log")));
    assert_eq!(config.pidfile, Some(PathBuf::from("/run/ntpd.pid")));
    assert_eq!(config.keys, Some(PathBuf::from("/etc/ntp.keys")));
    assert_eq!(config.logconfig, ["=syncall", "+clockall"]);
    let config = parse_clean("driftfile /d 1e-6\nnonvolatile 2e-7");
    assert!((config.wander_threshold().as_ratio() - 2e-7).abs() < 1e-15);
}

#[test]
fn statistics_and_filegen_options() {
    let (config, findings) = parse(
        "statistics loopstats sysstats loopstats rawstats usestats\n\
         filegen peerstats file peers type week link disable\nfilegen sysstats type pid nolink",
    );
    assert_eq!(
        config.statistics,
        [
            StatsKind::Loopstats,
            StatsKind::Sysstats,
            StatsKind::Rawstats,
            StatsKind::Usestats
        ]
    );
    // rawstats is written; usestats is not, which is a warning.
    assert_eq!(positions(&findings, Severity::Warning), ["1:50 usestats"]);
    let peers = &config.filegens[0];
    assert_eq!(peers.file, Some(PathBuf::from("peers")));
    assert_eq!(
        (peers.kind, peers.link, peers.enabled),
        (Some(FileGenType::Week), Some(true), Some(false))
    );
    assert_eq!(
        (config.filegens[1].kind, config.filegens[1].link),
        (Some(FileGenType::Pid), Some(false))
    );
}

#[test]
fn tos_options_are_all_typed() {
    let (config, findings) = parse(
        "tos minclock 2 maxclock 7 minsane 2 mindist 0.02 maxdist 3 floor 2 ceiling 10\n\
         tos orphan 8 orphanwait 0 maxdisp 8 cohort 1 basedate 2024-01-15\n\
         tos beacon 3600 bcpollbstep 2",
    );
    let t = &config.tos;
    assert_eq!(
        (t.minclock, t.maxclock, t.minsane, t.floor, t.ceiling),
        (2, 7, 2, 2, 10)
    );
    assert_eq!(
        (t.mindist, t.maxdist, t.maxdisp),
        (secs(0.02), secs(3.0), secs(8.0))
    );
    assert_eq!(
        (t.orphan, t.orphanwait, t.cohort),
        (Some(8), NtpDuration::ZERO, true)
    );
    assert_eq!(
        t.basedate,
        Some(BaseDate {
            year: 2024,
            month: 1,
            day: 15
        })
    );
    assert_eq!(
        positions(&findings, Severity::Warning),
        [
            "2:27 maxdisp",
            "2:37 cohort",
            "2:46 basedate",
            "3:5 beacon",
            "3:17 bcpollbstep"
        ]
    );
    assert_eq!(parse_clean("tos orphan 16").tos.orphan, None);
}

#[test]
fn tinker_options_are_all_typed_and_zero_disables_thresholds() {
    let (config, findings) = parse(
        "tinker panic 0 step 0.5 stepback 0 stepout 900\n\
         tinker allan 12 dispersion 10 freq -12.5 huffpuff 7200\ntinker freq 600",
    );
    let t = &config.tinker;
    assert_eq!(
        (t.panic, t.step),
        (Threshold::Disabled, Threshold::At(secs(0.5)))
    );
    assert_eq!(
        (t.step_back(), t.step_forward()),
        (Threshold::Disabled, Threshold::At(secs(0.5)))
    );
    assert_eq!(
        (t.stepout, t.allan, t.huffpuff),
        (secs(900.0), Log2Seconds::new(12), Some(secs(7200.0)))
    );
    assert!((t.dispersion.value() - 10.0).abs() < 1e-12);
    // The last freq wins, clamped to the kernel's ±500 PPM with a warning.
    assert!((t.freq.unwrap().value() - MAX_FREQ_PPM).abs() < 1e-12);
    assert_eq!(
        positions(&findings, Severity::Warning),
        ["2:8 allan", "2:17 dispersion", "2:42 huffpuff", "3:13 600"]
    );
    assert_eq!(parse_clean("tinker step 0").tinker.step.limit(), None);
}

#[test]
fn enable_and_disable_switch_system_flags() {
    let (config, findings) = parse(
        "disable auth kernel monitor ntp stats\nenable calibrate\nenable mode7 bclient\n\
         disable mode7 bclient\nenable peer_clear_digest_early",
    );
    let f = config.system_flags;
    assert!(!f.auth && !f.kernel && !f.monitor && !f.ntp && !f.stats && f.calibrate && !f.bclient);
    // What sundial does not act on is a warning: monitor either way, disable ntp, calibrate,
    // mode7, bclient and the unpeer/peer_clear switches. disable kernel is what sundial always
    // does, and disabling mode7 or bclient is its only behaviour.
    assert_eq!(
        positions(&findings, Severity::Warning),
        [
            "1:21 monitor",
            "1:29 ntp",
            "2:8 calibrate",
            "3:8 mode7",
            "3:14 bclient",
            "5:8 peer_clear_digest_early"
        ]
    );
    assert!(positions(&findings, Severity::Notice).is_empty());
}

#[test]
fn trustedkey_ranges_and_control_keys() {
    let (config, findings) = parse(
        "trustedkey 1 2 (10 ... 20)\ntrustedkey (30...31) 40 (50 ... 52)\ncontrolkey 7\nrequestkey 8\nauthenticate yes",
    );
    let key = |n| KeyId::new(n).unwrap();
    let ranges: Vec<_> = config
        .trusted_keys
        .iter()
        .map(|r| (r.first().get(), r.last().get()))
        .collect();
    assert_eq!(
        ranges,
        [(1, 1), (2, 2), (10, 20), (30, 31), (40, 40), (50, 52)]
    );
    assert!(
        config.is_trusted(key(15)) && config.is_trusted(key(31)) && !config.is_trusted(key(21))
    );
    assert_eq!(config.control_key, Some(key(7)));
    assert_eq!(
        positions(&findings, Severity::Warning),
        ["3:1 controlkey", "4:1 requestkey"]
    );
    assert_eq!(positions(&findings, Severity::Notice), ["5:1 authenticate"]);
}

#[test]
fn interface_rules_keep_order_and_nic_is_a_synonym() {
    let config = parse_clean(
        "interface ignore wildcard\ninterface listen eth0\nnic drop ipv6\ninterface listen 192.0.2.0/24\n\
         interface ignore ::1\ninterface listen all\ninterface ignore ipv4",
    );
    let rules: Vec<_> = config
        .interfaces
        .iter()
        .map(|r| (r.action, r.target.clone()))
        .collect();
    assert_eq!(
        rules,
        [
            (InterfaceAction::Ignore, InterfaceTarget::Wildcard),
            (
                InterfaceAction::Listen,
                InterfaceTarget::Name("eth0".into())
            ),
            (InterfaceAction::Drop, InterfaceTarget::Ipv6),
            (
                InterfaceAction::Listen,
                InterfaceTarget::Net {
                    addr: ip("192.0.2.0"),
                    prefix_len: 24
                }
            ),
            (
                InterfaceAction::Ignore,
                InterfaceTarget::Net {
                    addr: ip("::1"),
                    prefix_len: 128
                }
            ),
            (InterfaceAction::Listen, InterfaceTarget::All),
            (InterfaceAction::Ignore, InterfaceTarget::Ipv4),
        ]
    );
}

#[test]
fn discard_limit_and_mru_parameters() {
    let config = parse_clean(
        "discard average 5 minimum 1 monitor 4000\nlimit average 2.5 burst 10\n\
         mru maxdepth 1024 maxmem 2048 mindepth 600 maxage 64 minage 32 initalloc 100 initmem 50 \
         incalloc 10 incmem 5",
    );
    let d = config.discard;
    assert_eq!(
        (d.average, d.minimum, d.monitor),
        (Log2Seconds::new(5), secs(1.0), 4000)
    );
    let limit = config.limit.unwrap();
    assert!((limit.average - 2.5).abs() < 1e-12 && (limit.kod - DEFAULT_LIMIT_KOD).abs() < 1e-12);
    assert_eq!(limit.burst, secs(10.0));
    let m = config.mru;
    assert_eq!(
        (m.maxdepth, m.maxmem_kib, m.mindepth),
        (Some(1024), Some(2048), Some(600))
    );
    assert_eq!((m.maxage, m.minage), (Some(secs(64.0)), Some(secs(32.0))));
    assert_eq!(
        (m.initalloc, m.initmem_kib, m.incalloc, m.incmem_kib),
        (Some(100), Some(50), Some(10), Some(5))
    );
    assert_eq!(parse_clean("").limit, None);
    assert_eq!(parse_clean("").discard.average, DEFAULT_DISCARD_AVERAGE);
}

#[test]
fn every_size_a_config_can_set_has_a_ceiling_named_at_its_line() {
    let cases = [
        (
            "mru maxdepth 4294967295",
            "maxdepth must be between 0 and 1048576",
        ),
        (
            "mru maxdepth 30000000",
            "maxdepth must be between 0 and 1048576",
        ),
        (
            "mru mindepth 2000000",
            "mindepth must be between 0 and 1048576",
        ),
        (
            "mru initalloc 2000000",
            "initalloc must be between 0 and 1048576",
        ),
        (
            "mru incalloc 2000000",
            "incalloc must be between 0 and 1048576",
        ),
        ("mru maxmem 4000000", "maxmem must be between 0 and 65536"),
        ("mru initmem 70000", "initmem must be between 0 and 65536"),
        ("mru incmem 70000", "incmem must be between 0 and 65536"),
        ("discard minimum 1e9", "minimum must be at most 131072 s"),
        (
            "discard monitor 4000000000",
            "monitor must be between 0 and 1000000",
        ),
        ("limit average 1e12", "average must be at most 10000"),
        ("limit burst 1e9", "burst must be at most 3600"),
        ("limit kod 1e9", "kod must be at most 10000"),
    ];
    for (line, message) in cases {
        let (config, findings) = parse(&format!("server a.example\n{line}\n"));
        let errors: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{line}: {findings:#?}");
        assert_eq!(errors[0].location.line, 2, "{line}");
        assert!(errors[0].message.contains(message), "{line}: {}", errors[0]);
        // The line has no effect: the defaults stay.
        assert_eq!(config.mru, Mru::default(), "{line}");
        assert_eq!(config.limit, None, "{line}");
    }
    // The ceilings themselves are accepted.
    let config = parse_clean("mru maxdepth 1048576 maxmem 65536\nlimit average 10000 burst 3600");
    assert_eq!(config.mru.maxdepth, Some(MAX_MRU_ENTRIES));
    assert_eq!(config.mru.maxmem_kib, Some(MAX_MRU_KIB));
}

#[test]
fn setvar_accepts_every_spacing_of_the_equals_sign() {
    let (config, findings) = parse(
        "setvar site = \"Building 4, rack 2\" default\nsetvar a=b\nsetvar c= \"d\"\nsetvar e =f default",
    );
    let vars: Vec<_> = config
        .setvars
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str(), v.default))
        .collect();
    assert_eq!(
        vars,
        [
            ("site", "Building 4, rack 2", true),
            ("a", "b", false),
            ("c", "d", false),
            ("e", "f", true)
        ]
    );
    // ntpq does not show them yet: each line says so.
    assert_eq!(findings.len(), 4);
    assert!(findings.iter().all(|f| f.severity == Severity::Warning));
}

#[test]
fn broadcast_family_and_legacy_keywords_are_warnings_not_errors() {
    let text = "broadcast 192.0.2.255\nbroadcastclient\nmanycastserver 239.1.1.1\nmanycastclient 239.1.1.1\n\
                multicastclient\nbroadcastdelay 0.004\ncrypto pw x\nrevoke 16\nident x\ntrap 192.0.2.1\n\
                phone 555\nrlimit memlock 32\nttl 127\nsaveconfigdir /tmp\nmdnstries 5\ndscp 46\n\
                reset allpeers\nqos cs6\ndevice 127.127.20.0 timedata /dev/gps0\nautokey";
    let (config, findings) = parse(text);
    assert_eq!(config, Config::default());
    assert_eq!(findings.len(), text.lines().count());
    assert!(
        findings
            .iter()
            .all(|f| f.severity == Severity::Warning && f.location.column == 1)
    );
    assert!(findings[0].message.contains("not supported"));
}
