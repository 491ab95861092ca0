//! The server counters as mode 6 system variables: the `ss_*` names NTPsec's `ntpq -c sysstats`
//! asks for, and sundial's own `ss_replied`, `ss_dropped` and one `ss_dropped_<reason>` per
//! [`DropReason`].
//!
//! None of these is in the defaults of an empty READVAR (`ntpq -c rv`); they are sent only when
//! named. NTPsec's ntpq asks for each counter twice, `ss_received` and `ss_received_r` (ntpd
//! keeps one set since the last statistics reset and one since start); sundial never resets its
//! counters, so both carry the same value, counted since start-up.
//!
//! How sundial's counters fill NTPsec's categories ([`Sysstats::from_counters`]):
//!
//! | variable | meaning in sundial |
//! |---|---|
//! | `ss_uptime`, `ss_reset` | seconds since the daemon started |
//! | `ss_numctlreq` | mode 6 datagrams received |
//! | `ss_received` | every datagram received, mode 6 included |
//! | `ss_thisver` / `ss_oldver` | datagrams of every mode but 6 with version 4 / version 1–3 |
//! | `ss_ver1`, `ss_ver1client`, `ss_ver1zero`, `ss_ver1symm` | NTPv1 datagrams: all, mode 3, mode 0, mode 1 |
//! | `ss_badformat` | drops `too-short`, `bad-version`, `malformed`, `oversized`, `control-mode` |
//! | `ss_badauth` | requests with a MAC the server cannot verify (answered with a crypto-NAK) |
//! | `ss_declined` | drops `unexpected-mode`, `private-mode`, `source-port-zero`, `interface-ignored` |
//! | `ss_restricted` | drops `restricted-ignore`, `restricted-noserve`, `restricted-version`, `control-refused` |
//! | `ss_limited` | requests over a rate limit: drops `rate-limited` plus RATE kisses |
//! | `ss_kodsent` | RATE kisses sent |
//! | `ss_processed` | time replies that are not kisses (crypto-NAKs included) |
//!
//! Every datagram is counted exactly once among `ss_processed`, mode 6 replies, `ss_badformat`,
//! `ss_declined`, `ss_restricted` and `ss_limited`, so those add up to `ss_received`.

use super::snapshot::SystemVars;
use super::vars::Var;
use crate::counters::{CounterSnapshot, DropReason};
use crate::packet::Mode;

/// The `sysstats` category NTPsec's ntpq shows a dropped datagram under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsCategory {
    /// `ss_badformat`: "bad length or format".
    BadFormat,
    /// `ss_declined`: a mode or source sundial does not serve.
    Declined,
    /// `ss_restricted`: refused by a `restrict` entry.
    Restricted,
    /// `ss_limited`: over a rate limit.
    Limited,
}

impl StatsCategory {
    /// The category of a drop reason.
    pub const fn of(reason: DropReason) -> Self {
        match reason {
            DropReason::TooShort
            | DropReason::BadVersion
            | DropReason::Malformed
            | DropReason::NtsMalformed
            | DropReason::Oversized
            | DropReason::ControlMode => Self::BadFormat,
            DropReason::UnexpectedMode
            | DropReason::PrivateMode
            | DropReason::SourcePortZero
            | DropReason::InterfaceIgnored => Self::Declined,
            DropReason::RestrictedIgnore
            | DropReason::RestrictedNoserve
            | DropReason::RestrictedVersion
            | DropReason::RestrictedNotrust
            | DropReason::ControlRefused => Self::Restricted,
            DropReason::RateLimited => Self::Limited,
        }
    }
}

/// NTPsec's `sysstats` numbers computed from sundial's counters (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sysstats {
    /// `ss_uptime` and `ss_reset`: seconds since start-up.
    pub uptime: u64,
    /// `ss_numctlreq`: mode 6 datagrams received.
    pub control_requests: u64,
    /// `ss_received`: datagrams received.
    pub received: u64,
    /// `ss_thisver`: datagrams (not mode 6) of version 4.
    pub this_version: u64,
    /// `ss_oldver`: datagrams (not mode 6) of versions 1–3.
    pub old_version: u64,
    /// `ss_ver1`: NTPv1 datagrams.
    pub ver1: u64,
    /// `ss_ver1client`: NTPv1 client (mode 3) datagrams.
    pub ver1_client: u64,
    /// `ss_ver1zero`: NTPv1 mode 0 datagrams (NTPv1's client requests).
    pub ver1_zero: u64,
    /// `ss_ver1symm`: NTPv1 symmetric active (mode 1) datagrams.
    pub ver1_symmetric: u64,
    /// `ss_badformat`.
    pub bad_format: u64,
    /// `ss_badauth`.
    pub bad_auth: u64,
    /// `ss_declined`.
    pub declined: u64,
    /// `ss_restricted`.
    pub restricted: u64,
    /// `ss_limited`.
    pub limited: u64,
    /// `ss_kodsent`.
    pub kod_sent: u64,
    /// `ss_processed`.
    pub processed: u64,
}

impl Sysstats {
    /// The numbers for `counters` after `uptime` seconds.
    pub fn from_counters(counters: &CounterSnapshot, uptime: u64) -> Self {
        let drops = |category| {
            DropReason::ALL
                .iter()
                .filter(|r| StatsCategory::of(**r) == category)
                .map(|r| counters.dropped(*r))
                .sum::<u64>()
        };
        Self {
            uptime,
            control_requests: counters.control_requests,
            received: counters.received,
            this_version: counters.by_version(4),
            old_version: (1..=3).map(|v| counters.by_version(v)).sum(),
            ver1: counters.by_version(1),
            ver1_client: counters.ntpv1_by_mode(Mode::Client),
            ver1_zero: counters.ntpv1_by_mode(Mode::Reserved),
            ver1_symmetric: counters.ntpv1_by_mode(Mode::SymmetricActive),
            bad_format: drops(StatsCategory::BadFormat),
            bad_auth: counters.crypto_naks,
            declined: drops(StatsCategory::Declined),
            restricted: drops(StatsCategory::Restricted),
            limited: drops(StatsCategory::Limited).saturating_add(counters.kisses),
            kod_sent: counters.kisses,
            processed: counters
                .replied
                .saturating_sub(counters.kisses)
                .saturating_sub(counters.control_replies),
        }
    }

    fn of(system: &SystemVars) -> Self {
        Self::from_counters(&system.counters, system.uptime)
    }
}

/// `name=N` from the [`Sysstats`] of the system.
macro_rules! stat {
    ($name:literal, |$s:ident| $value:expr) => {
        Var {
            name: $name,
            render: |system, _now, w| {
                let $s = Sysstats::of(system);
                w.item(format_args!(concat!($name, "={}"), $value));
            },
        }
    };
}

/// `name=N`: the drops for one reason.
macro_rules! dropped {
    ($name:literal, $reason:ident) => {
        Var {
            name: $name,
            render: |system, _now, w| {
                let n = system.counters.dropped(DropReason::$reason);
                w.item(format_args!(concat!($name, "={}"), n));
            },
        }
    };
}

/// The counter variables, sent only when named (after the default system variables).
pub(crate) static SYSTEM_STATS: &[Var<SystemVars>] = &[
    stat!("ss_uptime", |s| s.uptime),
    stat!("ss_numctlreq", |s| s.control_requests),
    stat!("ss_reset", |s| s.uptime),
    stat!("ss_received", |s| s.received),
    stat!("ss_thisver", |s| s.this_version),
    stat!("ss_oldver", |s| s.old_version),
    stat!("ss_ver1", |s| s.ver1),
    stat!("ss_ver1client", |s| s.ver1_client),
    stat!("ss_ver1zero", |s| s.ver1_zero),
    stat!("ss_ver1symm", |s| s.ver1_symmetric),
    stat!("ss_badformat", |s| s.bad_format),
    stat!("ss_badauth", |s| s.bad_auth),
    stat!("ss_declined", |s| s.declined),
    stat!("ss_restricted", |s| s.restricted),
    stat!("ss_limited", |s| s.limited),
    stat!("ss_kodsent", |s| s.kod_sent),
    stat!("ss_processed", |s| s.processed),
    // Since start-up as well: sundial never resets its counters.
    stat!("ss_reset_r", |s| s.uptime),
    stat!("ss_received_r", |s| s.received),
    stat!("ss_thisver_r", |s| s.this_version),
    stat!("ss_oldver_r", |s| s.old_version),
    stat!("ss_ver1_r", |s| s.ver1),
    stat!("ss_ver1client_r", |s| s.ver1_client),
    stat!("ss_ver1zero_r", |s| s.ver1_zero),
    stat!("ss_ver1symm_r", |s| s.ver1_symmetric),
    stat!("ss_badformat_r", |s| s.bad_format),
    stat!("ss_badauth_r", |s| s.bad_auth),
    stat!("ss_declined_r", |s| s.declined),
    stat!("ss_restricted_r", |s| s.restricted),
    stat!("ss_limited_r", |s| s.limited),
    stat!("ss_kodsent_r", |s| s.kod_sent),
    stat!("ss_processed_r", |s| s.processed),
    // sundial's own: the raw counters, every drop reason on its own.
    Var {
        name: "ss_replied",
        render: |system, _now, w| w.item(format_args!("ss_replied={}", system.counters.replied)),
    },
    Var {
        name: "ss_dropped",
        render: |system, _now, w| {
            w.item(format_args!(
                "ss_dropped={}",
                system.counters.dropped_total()
            ));
        },
    },
    dropped!("ss_dropped_too_short", TooShort),
    dropped!("ss_dropped_bad_version", BadVersion),
    dropped!("ss_dropped_unexpected_mode", UnexpectedMode),
    dropped!("ss_dropped_control_mode", ControlMode),
    dropped!("ss_dropped_private_mode", PrivateMode),
    dropped!("ss_dropped_malformed", Malformed),
    dropped!("ss_dropped_oversized", Oversized),
    dropped!("ss_dropped_source_port_zero", SourcePortZero),
    dropped!("ss_dropped_restricted_ignore", RestrictedIgnore),
    dropped!("ss_dropped_restricted_noserve", RestrictedNoserve),
    dropped!("ss_dropped_restricted_version", RestrictedVersion),
    dropped!("ss_dropped_interface_ignored", InterfaceIgnored),
    dropped!("ss_dropped_rate_limited", RateLimited),
    dropped!("ss_dropped_control_refused", ControlRefused),
    dropped!("ss_dropped_restricted_notrust", RestrictedNotrust),
    dropped!("ss_dropped_nts_malformed", NtsMalformed),
    Var {
        name: "ss_nts_replied",
        render: |system, _now, w| {
            w.item(format_args!(
                "ss_nts_replied={}",
                system.counters.nts_replies
            ));
        },
    },
    Var {
        name: "ss_nts_naks",
        render: |system, _now, w| w.item(format_args!("ss_nts_naks={}", system.counters.nts_naks)),
    },
];

/// The name of the `ss_dropped_*` variable of `reason`: its [`DropReason::name`] with `_` for
/// `-`.
pub fn dropped_variable(reason: DropReason) -> String {
    format!("ss_dropped_{}", reason.name().replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use core::net::SocketAddr;

    use super::*;
    use crate::access::{AccessTable, RestrictEntry, RestrictFlags};
    use crate::control::{
        ClientRequest, ControlAccess, ControlOutcome, ControlSnapshot, Opcode, Progress,
        Reassembler, parse_varlist, respond,
    };
    use crate::packet::{HEADER_LEN, NtpHeader};
    use crate::server::{Policy, RequestMeta, Server};
    use crate::system::SystemState;
    use crate::time::{Log2Seconds, MonoTime, NtpTimestamp};

    const NOW: NtpTimestamp = NtpTimestamp::from_parts(0xeeb3_a019, 0);

    /// The variables of a READVAR of association 0 with `names` (empty: the defaults).
    fn readvar(snapshot: &ControlSnapshot, names: &str) -> Vec<(String, String)> {
        let request = ClientRequest {
            opcode: Opcode::ReadVariables,
            data: names.as_bytes(),
            ..ClientRequest::read_status(7)
        };
        let mut buf = [0u8; 600];
        let len = request.encode(&mut buf).unwrap();
        let mut reassembler = Reassembler::new(Opcode::ReadVariables, 7);
        let mut response = None;
        let outcome = respond(
            &buf[..len],
            ControlAccess::READ,
            snapshot,
            NOW,
            &mut |fragment| {
                if let Ok(Progress::Complete(r)) = reassembler.handle(fragment) {
                    response = Some(r);
                }
            },
        );
        assert!(
            matches!(outcome, ControlOutcome::Answered(_)),
            "{outcome:?}"
        );
        let response = response.expect("a complete response");
        assert!(!response.header.error, "{:?}", response.header);
        parse_varlist(&response.data)
    }

    fn value(vars: &[(String, String)], name: &str) -> u64 {
        vars.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing from {vars:?}"))
            .1
            .parse()
            .unwrap()
    }

    /// Every name NTPsec's `ntpq -c sysstats` asks for, in its two requests.
    const NTPSEC_SYSSTATS: [&str; 15] = [
        "ss_reset",
        "ss_received",
        "ss_thisver",
        "ss_oldver",
        "ss_ver1",
        "ss_ver1client",
        "ss_ver1zero",
        "ss_ver1symm",
        "ss_badformat",
        "ss_badauth",
        "ss_declined",
        "ss_restricted",
        "ss_limited",
        "ss_kodsent",
        "ss_processed",
    ];

    /// A server that has seen one datagram of every kind it counts: returns its counters.
    fn busy_server_counters() -> CounterSnapshot {
        let mut table = AccessTable::new();
        table.add_default(true, true, RestrictFlags::NOQUERY);
        table.add(RestrictEntry::host(
            "192.0.2.66".parse().unwrap(),
            RestrictFlags::IGNORE,
        ));
        table.add(RestrictEntry::host(
            "127.0.0.1".parse().unwrap(),
            RestrictFlags::NONE,
        ));
        let server = Server::new();
        let system = SystemState::unsynchronized(Log2Seconds::new(-20));
        let meta = |source: &str| RequestMeta {
            source: source.parse::<SocketAddr>().unwrap(),
            destination: None,
            receive_time: NOW,
            monotonic: MonoTime::ZERO,
            truncated: false,
            client: None,
        };
        let request = |version: u8, mode: Mode| {
            let mut b = [0u8; HEADER_LEN];
            NtpHeader::new(version, mode).emit(&mut b);
            b.to_vec()
        };
        let mut out = [0u8; 64];
        let client = meta("192.0.2.7:40000");
        let mut with_mac = request(4, Mode::Client);
        with_mac.extend_from_slice(&[0, 0, 0, 5]);
        with_mac.extend_from_slice(&[0x55; 16]);
        let sent: [(&RequestMeta, Vec<u8>); 8] = [
            (&client, request(4, Mode::Client)),
            (&client, request(3, Mode::Client)),
            (&client, request(1, Mode::Reserved)),
            (&client, request(1, Mode::SymmetricActive)),
            (&client, with_mac),
            (&client, vec![0x23; 20]),
            (&client, request(4, Mode::Broadcast)),
            (&meta("192.0.2.66:123"), request(4, Mode::Client)),
        ];
        for (m, bytes) in &sent {
            let _ = server.handle(&Policy::new(&table), m, bytes, &system, &mut out, || NOW);
        }
        let snapshot = ControlSnapshot::default();
        let readstat = [0x16, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let local = meta("127.0.0.1:40000");
        let _ = server.handle_control(&table, &local, &readstat, &snapshot, &mut |_| {});
        let _ = server.handle_control(&table, &client, &readstat, &snapshot, &mut |_| {});
        server.counters().snapshot()
    }

    #[test]
    fn every_drop_reason_has_a_category_and_a_variable() {
        for reason in DropReason::ALL {
            let name = dropped_variable(reason);
            assert!(
                SYSTEM_STATS.iter().any(|v| v.name == name),
                "{name} missing"
            );
            let _ = StatsCategory::of(reason);
        }
    }

    #[test]
    fn sysstats_variables_are_not_in_an_empty_readvar() {
        let snapshot = ControlSnapshot::default();
        let defaults = readvar(&snapshot, "");
        assert!(defaults.iter().any(|(n, _)| n == "stratum"));
        assert!(
            defaults.iter().all(|(n, _)| !n.starts_with("ss_")),
            "{defaults:?}"
        );
    }

    #[test]
    fn ntpsecs_sysstats_requests_are_answered_in_full() {
        let mut snapshot = ControlSnapshot::default();
        snapshot.system.uptime = 3725;
        snapshot.system.counters = busy_server_counters();
        let first = readvar(&snapshot, "ss_uptime,ss_numctlreq");
        assert_eq!(value(&first, "ss_uptime"), 3725);
        assert_eq!(value(&first, "ss_numctlreq"), 2);
        // NTPsec asks for every counter and its `_r` twin in one request.
        let names: Vec<String> = NTPSEC_SYSSTATS
            .iter()
            .map(|n| (*n).to_owned())
            .chain(NTPSEC_SYSSTATS.iter().map(|n| format!("{n}_r")))
            .collect();
        let vars = readvar(&snapshot, &names.join(","));
        assert_eq!(vars.len(), 30, "{vars:?}");
        for name in NTPSEC_SYSSTATS {
            assert_eq!(
                value(&vars, name),
                value(&vars, &format!("{name}_r")),
                "{name}"
            );
        }
        let expect = [
            ("ss_reset", 3725),
            ("ss_received", 10),
            ("ss_thisver", 5),
            ("ss_oldver", 3),
            ("ss_ver1", 2),
            ("ss_ver1client", 0),
            ("ss_ver1zero", 1),
            ("ss_ver1symm", 1),
            // the 20-octet datagram
            ("ss_badformat", 1),
            // the request with a MAC
            ("ss_badauth", 1),
            // the broadcast packet
            ("ss_declined", 1),
            // the ignored source and the refused mode 6
            ("ss_restricted", 2),
            ("ss_limited", 0),
            ("ss_kodsent", 0),
            // v4, v3, v1 mode 0, v1 symmetric active, the crypto-NAK
            ("ss_processed", 5),
        ];
        for (name, n) in expect {
            assert_eq!(value(&vars, name), n, "{name}: {vars:?}");
        }
    }

    #[test]
    fn every_datagram_lands_in_exactly_one_sysstats_category() {
        let c = busy_server_counters();
        let s = Sysstats::from_counters(&c, 0);
        assert_eq!(
            s.received,
            s.processed + c.control_replies + s.bad_format + s.declined + s.restricted + s.limited
        );
    }

    #[test]
    fn counters_of_several_threads_add_up() {
        let one = busy_server_counters();
        let mut sum = one;
        sum.accumulate(&one);
        let (single, double) = (
            Sysstats::from_counters(&one, 0),
            Sysstats::from_counters(&sum, 0),
        );
        assert_eq!(
            double,
            Sysstats {
                uptime: 0,
                control_requests: 2 * single.control_requests,
                received: 2 * single.received,
                this_version: 2 * single.this_version,
                old_version: 2 * single.old_version,
                ver1: 2 * single.ver1,
                ver1_client: 2 * single.ver1_client,
                ver1_zero: 2 * single.ver1_zero,
                ver1_symmetric: 2 * single.ver1_symmetric,
                bad_format: 2 * single.bad_format,
                bad_auth: 2 * single.bad_auth,
                declined: 2 * single.declined,
                restricted: 2 * single.restricted,
                limited: 2 * single.limited,
                kod_sent: 2 * single.kod_sent,
                processed: 2 * single.processed,
            }
        );
    }

    #[test]
    fn sundials_own_variables_give_every_drop_reason() {
        let mut snapshot = ControlSnapshot::default();
        snapshot.system.counters = busy_server_counters();
        let names: Vec<String> = ["ss_replied".to_owned(), "ss_dropped".to_owned()]
            .into_iter()
            .chain(DropReason::ALL.into_iter().map(dropped_variable))
            .collect();
        let vars = readvar(&snapshot, &names.join(","));
        assert_eq!(vars.len(), names.len());
        let c = snapshot.system.counters;
        assert_eq!(value(&vars, "ss_replied"), c.replied);
        assert_eq!(value(&vars, "ss_dropped"), c.dropped_total());
        for reason in DropReason::ALL {
            assert_eq!(
                value(&vars, &dropped_variable(reason)),
                c.dropped(reason),
                "{reason}"
            );
        }
        assert_eq!(value(&vars, "ss_dropped_restricted_ignore"), 1);
        assert_eq!(value(&vars, "ss_dropped_control_refused"), 1);
    }

    #[test]
    fn kisses_count_as_limited_and_not_as_processed() {
        use std::sync::Arc;

        use crate::ratelimit::{LimitParams, RateLimiter};
        use crate::siphash::SipKey;
        let mut table = AccessTable::new();
        table.add_default(true, true, RestrictFlags::LIMITED | RestrictFlags::KOD);
        let params = LimitParams {
            leak: 0,
            ..LimitParams::default()
        };
        let limiter = Arc::new(RateLimiter::new(64, params, SipKey::new(1, 2)));
        let server = Server::with_limiter(limiter, 3);
        let system = SystemState::unsynchronized(Log2Seconds::new(-20));
        let mut request = [0u8; HEADER_LEN];
        NtpHeader::new(4, Mode::Client).emit(&mut request);
        let mut out = [0u8; 64];
        // Ten requests 100 ms apart: one answer, one kiss, eight drops.
        for i in 0..10u64 {
            let meta = RequestMeta {
                source: "192.0.2.7:40000".parse().unwrap(),
                destination: None,
                receive_time: NOW,
                monotonic: MonoTime::from_duration(core::time::Duration::from_millis(i * 100)),
                truncated: false,
                client: None,
            };
            let _ = server.handle(
                &Policy::new(&table),
                &meta,
                &request,
                &system,
                &mut out,
                || NOW,
            );
        }
        let s = Sysstats::from_counters(&server.counters().snapshot(), 0);
        assert_eq!((s.processed, s.kod_sent, s.limited), (1, 1, 9));
    }
}
