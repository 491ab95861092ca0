//! `server`, `pool`, `peer`, reference clocks and `fudge`: options and address forms.

use std::net::IpAddr;
use std::path::Path;

use sundial_proto::packet::ReferenceId;
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
fn server_options_are_all_typed() {
    let config = parse_clean(
        "server -6 ntp.example.org iburst burst prefer minpoll 4 maxpoll 12 noselect true \
         version 3 key 42 preempt xmtnonce bias -0.25 port 10123",
    );
    let a = &config.associations[0];
    assert_eq!(a.kind, AssociationKind::Server);
    assert_eq!(a.address, HostSpec::Name("ntp.example.org".into()));
    assert_eq!(a.family, Some(Family::V6));
    assert!(a.iburst && a.burst && a.prefer && a.noselect && a.truechimer && a.preempt);
    assert_eq!(
        (a.minpoll, a.maxpoll),
        (Log2Seconds::new(4), Log2Seconds::new(12))
    );
    assert_eq!(
        (a.version, a.key.map(KeyId::get), a.port),
        (3, Some(42), 10123)
    );
    assert_eq!(a.bias, secs(-0.25));
    assert!(!a.xleave && !a.nts && a.mode.is_none());
}

#[test]
fn address_forms_are_recognised() {
    let config = parse_clean(
        "server 192.0.2.1\nserver 2001:db8::2\nserver [2001:db8::1]\nserver [fe80::1]%eth0\n\
         server fe80::2%3\nserver -4 time.example.",
    );
    let addresses: Vec<_> = config
        .associations
        .iter()
        .map(|a| a.address.clone())
        .collect();
    assert_eq!(
        addresses,
        [
            HostSpec::Ip(ip("192.0.2.1")),
            HostSpec::Ip(ip("2001:db8::2")),
            HostSpec::Ip(ip("2001:db8::1")),
            HostSpec::ScopedV6 {
                addr: "fe80::1".parse().unwrap(),
                zone: "eth0".into()
            },
            HostSpec::ScopedV6 {
                addr: "fe80::2".parse().unwrap(),
                zone: "3".into()
            },
            HostSpec::Name("time.example.".into()),
        ]
    );
    assert_eq!(config.associations[5].family, Some(Family::V4));
}

#[test]
fn poll_exponents_outside_0_to_17_are_clamped_with_a_warning() {
    let (config, findings) =
        parse("server a.example minpoll -3 maxpoll 20\nserver b.example minpoll 12");
    let a = &config.associations[0];
    assert_eq!(
        (a.minpoll, a.maxpoll),
        (Log2Seconds::new(0), Log2Seconds::new(17))
    );
    // minpoll above the default maxpoll is lowered to it, as ntp.org's newpeer() does.
    let b = &config.associations[1];
    assert_eq!(
        (b.minpoll, b.maxpoll),
        (Log2Seconds::new(10), Log2Seconds::new(10))
    );
    assert_eq!(
        positions(&findings, Severity::Warning),
        ["1:26 -3", "1:37 20", "2:1 server"]
    );
    assert_eq!(findings.len(), 3);
}

#[test]
fn peer_is_recorded_as_peer_with_a_notice_and_pool_burst_is_noted() {
    let (config, findings) = parse("peer 192.0.2.7 key 5\npool pool.example burst");
    assert_eq!(config.associations[0].kind, AssociationKind::Peer);
    assert_eq!(config.associations[1].kind, AssociationKind::Pool);
    assert_eq!(
        positions(&findings, Severity::Notice),
        ["1:1 peer", "2:1 pool"]
    );
    assert!(findings[0].message.contains("treated as server"));
}

#[test]
fn unsupported_association_options_warn_and_ntpsec_options_are_accepted() {
    let (config, findings) = parse(
        "server a.example autokey ttl 4 xleave\n\
         server b.example nts noval ca /etc/ssl/ca.pem aead AES_SIV_CMAC_256",
    );
    assert_eq!(config.associations.len(), 2);
    assert!(config.associations[0].xleave);
    let b = &config.associations[1];
    assert!(b.nts && b.noval);
    assert_eq!(b.ca.as_deref(), Some(Path::new("/etc/ssl/ca.pem")));
    assert_eq!(b.aead.as_deref(), Some("AES_SIV_CMAC_256"));
    assert_eq!(
        positions(&findings, Severity::Warning),
        [
            "1:18 autokey",
            "1:26 ttl",
            "1:32 xleave",
            "2:22 noval",
            "2:47 aead"
        ]
    );
    assert!(positions(&findings, Severity::Notice).is_empty());
}

#[test]
fn ask_names_the_ntp_server_the_key_exchange_asks_for() {
    let (config, findings) = parse(
        "server a.example nts ask ntp.example:1123\n\
         server b.example ask 192.0.2.5\n\
         server c.example nts ask [2001:db8::5]:123\n\
         server d.example nts ask [2001:db8::6]",
    );
    assert!(findings.is_empty(), "{findings:?}");
    let asks: Vec<_> = config
        .associations
        .iter()
        .map(|a| {
            assert!(a.nts, "ask implies nts");
            let ask = a.nts_ask.as_ref().expect("an ask");
            (ask.server().to_owned(), ask.port())
        })
        .collect();
    assert_eq!(
        asks,
        [
            ("ntp.example".to_owned(), Some(1123)),
            ("192.0.2.5".to_owned(), None),
            ("2001:db8::5".to_owned(), Some(123)),
            ("2001:db8::6".to_owned(), None),
        ]
    );
    let (config, findings) = parse(
        "server a.example nts ask\n\
         server b.example nts ask ntp.example:0\n\
         server c.example nts ask ntp.example:70000\n\
         server d.example nts ask 2001:db8::5\n\
         server e.example nts ask [ntp.example]:123\n\
         server f.example nts ask bad_name\n\
         server g.example nts ask [2001:db8::5]x",
    );
    assert_eq!(
        positions(&findings, Severity::Error),
        [
            "1:22 ask",
            "2:26 ntp.example:0",
            "3:26 ntp.example:70000",
            "4:26 2001:db8::5",
            "5:26 [ntp.example]:123",
            "6:26 bad_name",
            "7:26 [2001:db8::5]x",
        ]
    );
    assert!(config.associations.iter().all(|a| a.nts_ask.is_none()));
}

#[test]
fn nts_sources_and_the_nts_server_are_configured_and_unsupported_tls_knobs_warn() {
    let (config, findings) = parse(
        "server a.example nts ntsport 4461 ca /etc/a.pem\n\
         nts enable cert /etc/s.crt key /etc/s.key\n\
         nts ca /etc/ca.pem cookie /var/lib/ntp/nts-keys port 4470\n\
         nts mintls TLS1.2\n\
         nts frobnicate\n\
         nts rotate 7200",
    );
    let a = &config.associations[0];
    assert!(a.nts && !a.noval);
    assert_eq!(a.nts_port, 4461);
    assert_eq!(a.ca.as_deref(), Some(Path::new("/etc/a.pem")));
    let nts = &config.nts;
    assert!(nts.enable);
    assert_eq!(nts.cert.as_deref(), Some(Path::new("/etc/s.crt")));
    assert_eq!(nts.key.as_deref(), Some(Path::new("/etc/s.key")));
    assert_eq!(nts.ca.as_deref(), Some(Path::new("/etc/ca.pem")));
    assert_eq!(
        nts.cookie.as_deref(),
        Some(Path::new("/var/lib/ntp/nts-keys"))
    );
    assert_eq!(nts.port, 4470);
    assert_eq!(nts.rotate, 7200);
    assert_eq!(positions(&findings, Severity::Warning), ["4:5 mintls"]);
    assert_eq!(positions(&findings, Severity::Error), ["5:5 frobnicate"]);
    let (config, findings) = parse("nts rotate 60\nnts rotate 0");
    assert_eq!(config.nts.rotate, 60);
    assert_eq!(positions(&findings, Severity::Warning), ["1:12 60"]);
    assert_eq!(positions(&findings, Severity::Error), ["2:12 0"]);
}

#[test]
fn local_clock_and_fudge_in_legacy_syntax() {
    let config = parse_clean(
        "server 127.127.1.0 prefer mode 3 minpoll 4\n\
         fudge 127.127.1.0 stratum 10 refid LOCL time1 0.5 time2 -1e-3 flag1 1 flag4 0 minjitter 0.001",
    );
    let local = RefclockId { kind: 1, unit: 0 };
    let a = &config.associations[0];
    assert_eq!(
        (a.refclock(), a.prefer, a.mode),
        (Some(local), true, Some(3))
    );
    let f = &config.fudges[0];
    assert_eq!(
        (f.clock, f.stratum, f.refid),
        (local, Some(10), Some(ReferenceId::LOCL))
    );
    assert_eq!(
        (f.time1, f.time2, f.minjitter),
        (Some(secs(0.5)), Some(secs(-0.001)), Some(secs(0.001)))
    );
    assert_eq!(f.flags, [Some(true), None, None, Some(false)]);
    assert_eq!(f.location.line, 2);
}

#[test]
fn other_refclock_types_warn_but_are_recorded() {
    let (config, findings) =
        parse("server 127.127.20.0 mode 17\nfudge 127.127.20.0 refid GPS time2 0.4");
    assert_eq!(
        config.associations[0].refclock(),
        Some(RefclockId { kind: 20, unit: 0 })
    );
    assert_eq!(
        config.fudges[0].refid,
        Some(ReferenceId::from_bytes(*b"GPS\0"))
    );
    assert_eq!(
        positions(&findings, Severity::Warning),
        ["1:8 127.127.20.0"]
    );
    assert_eq!(findings[0].message, "refclock type 20 not supported");
}

#[test]
fn ntpsec_refclock_local_is_the_local_clock_and_others_are_ignored() {
    let (config, findings) =
        parse("refclock local unit 1 stratum 10 prefer\nrefclock oncore unit 0 refid GPS");
    let local = RefclockId { kind: 1, unit: 1 };
    assert_eq!(config.associations.len(), 1);
    assert_eq!(
        (
            config.associations[0].refclock(),
            config.associations[0].prefer
        ),
        (Some(local), true)
    );
    assert_eq!(
        (config.fudges[0].clock, config.fudges[0].stratum),
        (local, Some(10))
    );
    assert_eq!(positions(&findings, Severity::Warning), ["2:10 oncore"]);
    assert!(parse_clean("refclock local").fudges.is_empty());
}

#[test]
fn shm_and_pps_in_both_dialects_are_the_same_clocks() {
    let classic = parse_clean(
        "server 127.127.28.0 minpoll 4 maxpoll 4 prefer\n\
         fudge 127.127.28.0 time1 0.420 refid GPS\n\
         server 127.127.22.0 minpoll 4 maxpoll 4\n\
         fudge 127.127.22.0 refid PPS flag2 1",
    );
    let ntpsec = parse_clean(
        "refclock shm unit 0 minpoll 4 maxpoll 4 prefer time1 0.420 refid GPS\n\
         refclock pps unit 0 path /dev/pps0 minpoll 4 maxpoll 4 refid PPS flag2 1",
    );
    let shm = RefclockId { kind: 28, unit: 0 };
    let pps = RefclockId { kind: 22, unit: 0 };
    for config in [&classic, &ntpsec] {
        let clocks: Vec<_> = config.associations.iter().map(|a| a.refclock()).collect();
        assert_eq!(clocks, [Some(shm), Some(pps)]);
        assert!(config.associations[0].prefer);
        assert_eq!(config.associations[0].minpoll, Log2Seconds::new(4));
        assert_eq!(config.fudges[0].clock, shm);
        assert_eq!(
            config.fudges[0].refid,
            Some(ReferenceId::from_bytes(*b"GPS\0"))
        );
        assert_eq!(
            config.fudges[0].time1,
            Some(NtpDuration::from_seconds_f64(0.42))
        );
        assert_eq!(config.fudges[1].flags[1], Some(true));
    }
    assert_eq!(
        ntpsec.associations[1].path.as_deref(),
        Some(Path::new("/dev/pps0"))
    );
}

#[test]
fn sock_needs_a_path_and_is_a_sundial_driver() {
    let config = parse_clean("refclock sock path /run/sundial.sock refid GPS prefer");
    assert_eq!(
        config.associations[0].refclock(),
        Some(RefclockId {
            kind: RefclockId::SOCK,
            unit: 0
        })
    );
    assert_eq!(
        config.associations[0].path.as_deref(),
        Some(Path::new("/run/sundial.sock"))
    );
    let (config, findings) = parse("refclock sock refid GPS");
    assert!(config.associations.is_empty());
    assert_eq!(positions(&findings, Severity::Error), ["1:10 sock"]);
}

#[test]
fn fudge_options_a_driver_does_not_use_are_warned_about_by_name() {
    let (config, findings) = parse(
        "server 127.127.28.0\n\
         fudge 127.127.28.0 time2 10 flag1 1 flag2 1 flag4 1\n\
         server 127.127.22.1\n\
         fudge 127.127.22.1 flag2 1 flag3 1 time2 0.1 flag1 0",
    );
    assert_eq!(config.associations.len(), 2);
    let warned: Vec<(u32, &str)> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| (f.location.line, f.token.as_str()))
        .collect();
    assert_eq!(
        warned,
        [(2, "flag2"), (4, "time2"), (4, "flag1"), (4, "flag3")]
    );
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("kernel's PPS discipline"))
    );
}
