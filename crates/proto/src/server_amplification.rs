//! No amplification (security.md §2.2 rule 6, ntpq-mode6.md §10): a sweep over every mode,
//! version and a range of lengths through [`Server::handle`] and [`Server::handle_control`].
//! A reply to an unauthenticated request is never longer than the request — except mode 6
//! from a loopback source allowed to query, whose reply is bounded by [`MAX_REPLY_FRAGMENTS`]
//! datagrams, and the sum over all sources by the server-wide mode 6 budget.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::sync::Arc;

use super::tests::synced;
use super::*;
use crate::control::{
    AssociationId, ControlSnapshot, MAX_DATAGRAM_LEN, MAX_REPLY_FRAGMENTS, NONCE_REPLY_OCTETS,
    PeerVars,
};
use crate::ratelimit::{
    CONTROL_GLOBAL_BURST_OCTETS, CONTROL_GLOBAL_OCTETS_PER_S, DEFAULT_ENTRIES, LimitParams,
    RateLimiter,
};
use crate::siphash::SipKey;

/// Request lengths tried for every mode and version: empty, shorter than each header, the
/// header sizes, MAC and extension field sizes, a full mode 6 fragment, and beyond.
const LENGTHS: [usize; 30] = [
    0, 1, 2, 3, 4, 8, 11, 12, 13, 16, 20, 24, 44, 47, 48, 49, 52, 56, 60, 64, 68, 72, 96, 100, 128,
    256, 480, 481, 1000, 2048,
];

/// Variants of each (mode, version, length): different opcodes and payloads for mode 6,
/// different random contents for the others.
const VARIANTS: u64 = 4;

/// Receive and transmit times of every request.
const T2: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0x8000_0000);
const T3: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0x8000_1000);

/// Most octets one mode 6 request can make the server send.
const MODE6_BOUND: usize = MAX_REPLY_FRAGMENTS * MAX_DATAGRAM_LEN;

/// A snapshot with enough associations that READSTAT and READVAR answers are long.
fn busy_snapshot() -> ControlSnapshot {
    let peers = (1..=40u16)
        .map(|n| {
            let id = AssociationId::new(1000 + n).unwrap_or_else(|| unreachable!());
            let mut p = PeerVars::new(id, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 123);
            p.srchost = Some(format!("server-{n}.example.net"));
            p.reach = 0xff;
            p
        })
        .collect();
    ControlSnapshot {
        peers,
        ..ControlSnapshot::default()
    }
}

/// A deterministic request: the first octet carries `mode` and `version`, the rest is pseudo
/// random, except that mode 6 requests get a plausible header (an opcode, offset 0, a count
/// that fits) so that many of them are answered.
fn request(mode: u8, version: u8, len: usize, variant: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15
        ^ (u64::from(mode) << 40)
        ^ (u64::from(version) << 32)
        ^ ((len as u64) << 8)
        ^ variant;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0xc0) | (version << 3) | mode;
    }
    if mode == 6 && len >= 12 {
        let data = len - 12;
        let (opcode, count) = match variant {
            // READSTAT of the system and READVAR of a peer without names: the longest answers.
            0 => (1, 0),
            1 => (2, 0),
            // READVAR naming variables that exist.
            2 => (2, data.min(19)),
            // Anything: other opcodes, random names.
            _ => (usize::from(bytes[1] & 0x1f), data.min(468)),
        };
        bytes[1] = opcode as u8;
        let association: u16 = if variant == 1 { 1001 } else { 0 };
        bytes[6..8].copy_from_slice(&association.to_be_bytes());
        bytes[8..10].copy_from_slice(&[0, 0]);
        bytes[10..12].copy_from_slice(&(count as u16).to_be_bytes());
        if variant == 2 {
            let names = b"stratum,ss_received";
            let n = names.len().min(data);
            bytes[12..12 + n].copy_from_slice(&names[..n]);
        }
    }
    bytes
}

/// Sends `bytes` from `source` the way the daemon does (mode 6 to the control path) and
/// returns the octets of every reply datagram.
fn replies(
    server: &Server,
    access: &AccessTable,
    source: &str,
    bytes: &[u8],
    snapshot: &ControlSnapshot,
) -> Vec<usize> {
    let meta = RequestMeta {
        source: source.parse().unwrap_or_else(|e| panic!("{source}: {e}")),
        destination: None,
        receive_time: T2,
        monotonic: MonoTime::from_duration(Duration::from_secs(100)),
        truncated: false,
        client: None,
    };
    if bytes.first().is_some_and(|b| b & 0x07 == 6) {
        let mut sent = Vec::new();
        let _ = server.handle_control(access, &meta, bytes, snapshot, &mut |d| sent.push(d.len()));
        return sent;
    }
    let mut out = [0u8; 4096];
    match server.handle(
        &Policy::new(access),
        &meta,
        bytes,
        &synced(),
        &mut out,
        || T3,
    ) {
        Action::Reply(len) => vec![len],
        Action::Drop(_) => Vec::new(),
    }
}

/// Runs the sweep through `server` from `source`; `mode6_allowed` says whether that source may
/// query over mode 6 (only loopback may then get more than it sent). Returns how many requests
/// got any reply, and the longest mode 6 reply.
fn sweep(
    server: &Server,
    access: &AccessTable,
    source: &str,
    mode6_allowed: bool,
) -> (usize, usize) {
    let loopback = source
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().to_canonical().is_loopback());
    let snapshot = busy_snapshot();
    let mut answered = 0;
    let mut longest_mode6 = 0;
    for mode in 0..8u8 {
        for version in 0..8u8 {
            for len in LENGTHS {
                for variant in 0..VARIANTS {
                    let bytes = request(mode, version, len, variant);
                    let sent = replies(server, access, source, &bytes, &snapshot);
                    let total: usize = sent.iter().sum();
                    let what = format!("mode {mode} version {version} length {len} #{variant}");
                    if mode == 6 && mode6_allowed && loopback {
                        assert!(total <= MODE6_BOUND, "{what}: {total} octets");
                        assert!(sent.iter().all(|d| *d <= MAX_DATAGRAM_LEN), "{what}");
                    } else if mode == 6 && len >= 12 && bytes[1] & 0x1f == 12 && mode6_allowed {
                        // REQ_NONCE: the one fixed-size exception (docs/SECURITY.md).
                        assert!(total <= len.max(NONCE_REPLY_OCTETS), "{what}: {total}");
                    } else {
                        assert!(total <= len, "{what}: {total} octets in {sent:?}");
                    }
                    answered += usize::from(!sent.is_empty());
                    if mode == 6 {
                        longest_mode6 = longest_mode6.max(total);
                    }
                }
            }
        }
    }
    (answered, longest_mode6)
}

#[test]
fn no_request_from_an_allowed_source_is_amplified() {
    let server = Server::default();
    let (answered, longest_mode6) = sweep(&server, &AccessTable::new(), "127.0.0.1:40000", true);
    let c = server.counters().snapshot();
    assert!(c.control_replies > 0 && answered > 0);
    // The sweep reaches replies of several fragments, which are allowed here.
    assert!(longest_mode6 > MAX_DATAGRAM_LEN, "{longest_mode6}");
}

#[test]
fn no_request_from_a_source_without_mode_6_is_amplified() {
    let server = Server::default();
    let (_, longest_mode6) = sweep(&server, &AccessTable::new(), "192.0.2.7:40000", false);
    let c = server.counters().snapshot();
    assert_eq!((c.control_replies, longest_mode6), (0, 0));
    assert!(c.dropped(DropReason::ControlRefused) > 0);
}

#[test]
fn no_request_is_amplified_under_rate_limits_and_kisses() {
    let mut table = AccessTable::new();
    table.add_default(true, true, RestrictFlags::LIMITED | RestrictFlags::KOD);
    let limiter = Arc::new(RateLimiter::new(
        64,
        LimitParams::default(),
        SipKey::new(9, 10),
    ));
    let server = Server::with_limiter(limiter, 11);
    // A default without noquery: everyone may query, within the mode 6 budget — and gets no
    // reply longer than the request, since 192.0.2.7 is not loopback.
    let _ = sweep(&server, &table, "192.0.2.7:40000", true);
    let c = server.counters().snapshot();
    assert!(c.kisses > 0, "{c:?}");
}

/// A server with the daemon's default table, and a restrict default that lets everyone query.
fn open_server() -> (Server, AccessTable) {
    let mut table = AccessTable::new();
    table.add_default(true, true, RestrictFlags::NONE);
    let limiter = Arc::new(RateLimiter::new(
        DEFAULT_ENTRIES,
        LimitParams::default(),
        SipKey::new(12, 13),
    ));
    (Server::with_limiter(limiter, 14), table)
}

/// A READVAR of association 1001 (about 600 octets of answer) from `source`, at `second`.
fn flood_request(
    (server, access): &(Server, AccessTable),
    source: SocketAddr,
    second: u64,
) -> (usize, usize) {
    let snapshot = busy_snapshot();
    let bytes = request(6, 2, 12, 1);
    let meta = RequestMeta {
        source,
        destination: None,
        receive_time: T2,
        monotonic: MonoTime::from_duration(Duration::from_secs(second)),
        truncated: false,
        client: None,
    };
    let mut sent = 0;
    let _ = server.handle_control(access, &meta, &bytes, &snapshot, &mut |d| sent += d.len());
    (bytes.len(), sent)
}

#[test]
fn a_mode_6_flood_from_many_loopback_sources_stays_within_the_global_budget() {
    let server = open_server();
    // 20 000 distinct loopback addresses (each within its own budget), 2000 a second for 10 s.
    let seconds = 10;
    let mut total = 0;
    let mut answered = 0;
    for n in 0..20_000u32 {
        let [_, b, c, d] = n.to_be_bytes();
        let ip = Ipv4Addr::new(127, b, c, d.max(1));
        let source = SocketAddr::from((ip, 40000));
        let (_, sent) = flood_request(&server, source, u64::from(n) / 2000);
        total += sent;
        answered += usize::from(sent > 0);
    }
    let budget = CONTROL_GLOBAL_BURST_OCTETS + seconds * CONTROL_GLOBAL_OCTETS_PER_S;
    let bound = usize::try_from(budget).unwrap_or(usize::MAX) + MODE6_BOUND;
    assert!(total <= bound, "{total} octets sent, bound {bound}");
    // The budget is used, not just refused: a few hundred full answers went out.
    assert!(
        answered > 200 && total > bound / 2,
        "{answered} answered, {total} octets"
    );
    assert!(
        server
            .0
            .counters()
            .snapshot()
            .dropped(DropReason::RateLimited)
            > 15_000
    );
}

#[test]
fn a_mode_6_flood_from_many_lan_sources_gets_nothing_longer_than_it_sent() {
    let server = open_server();
    let mut answered = 0;
    for n in 0..5_000u32 {
        let [_, _, c, d] = n.to_be_bytes();
        let ip = Ipv4Addr::new(198, 51, c, d);
        let source = SocketAddr::from((ip, 40000));
        let (len, sent) = flood_request(&server, source, 0);
        assert!(sent <= len, "{ip}: {sent} octets for {len}");
        answered += usize::from(sent > 0);
    }
    // They are told no (a 12-octet PERMISSION error) rather than left to time out.
    assert!(answered > 0);
}
