//! `ntpq -c mrulist` through [`Server::handle_control`] from a source that is not loopback:
//! the nonce is the only thing that lets a reply be longer than its request, so a forged,
//! expired or borrowed nonce gets a 12-octet error and nothing more.

use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::tests::synced;
use super::*;
use crate::control::{ControlSnapshot, ErrorCode, NONCE_REPLY_OCTETS, parse_varlist};
use crate::ratelimit::{DEFAULT_ENTRIES, LimitParams, RateLimiter};

const T2: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0x8000_0000);

/// The querying host: a LAN address, not loopback.
const ADMIN: &str = "198.51.100.9:50000";

struct Setup {
    server: Server,
    access: AccessTable,
}

fn setup(flags: RestrictFlags) -> Setup {
    let mut access = AccessTable::new();
    access.add_default(true, true, flags);
    let limiter = Arc::new(RateLimiter::new(
        DEFAULT_ENTRIES,
        LimitParams::default(),
        SipKey::new(21, 22),
    ));
    Setup {
        server: Server::with_limiter(limiter, 23),
        access,
    }
}

fn meta(source: &str, second: u64) -> RequestMeta {
    RequestMeta {
        source: source.parse().unwrap_or_else(|e| panic!("{source}: {e}")),
        destination: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        receive_time: NtpTimestamp::from_parts(T2.seconds() + second as u32, 0),
        monotonic: MonoTime::from_duration(Duration::from_secs(second)),
        truncated: false,
        client: None,
    }
}

/// A time request from `source` at `second`.
fn client_request(s: &Setup, source: &str, second: u64) {
    let mut request = [0u8; 48];
    request[0] = 0x23; // version 4, mode 3
    request[40] = 1;
    let mut out = [0u8; 1024];
    let _ = s.server.handle(
        &Policy::new(&s.access),
        &meta(source, second),
        &request,
        &synced(),
        &mut out,
        || T2,
    );
}

/// A mode 6 request with `data`, padded to four octets.
fn mode6(opcode: u8, data: &str) -> Vec<u8> {
    let mut bytes = vec![0x16, opcode, 0, 7, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    bytes.extend_from_slice(data.as_bytes());
    while bytes.len() % 4 != 0 {
        bytes.push(0);
    }
    bytes
}

/// Sends a mode 6 request; returns the reply datagrams.
fn ask(s: &Setup, source: &str, second: u64, request: &[u8]) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    let _ = s.server.handle_control(
        &s.access,
        &meta(source, second),
        request,
        &ControlSnapshot::default(),
        &mut |d| sent.push(d.to_vec()),
    );
    sent
}

/// The reassembled data of a reply, and its error code if it is an error.
fn data_of(reply: &[Vec<u8>]) -> (Vec<u8>, Option<u8>) {
    let mut data = Vec::new();
    let mut error = None;
    for d in reply {
        if d[1] & 0x40 != 0 {
            error = Some(d[4]);
        }
        let count = usize::from(u16::from_be_bytes([d[10], d[11]]));
        data.extend_from_slice(&d[12..12 + count]);
    }
    (data, error)
}

fn nonce(s: &Setup, source: &str, second: u64) -> String {
    let reply = ask(s, source, second, &mode6(12, ""));
    let (data, error) = data_of(&reply);
    assert_eq!(error, None);
    let vars = parse_varlist(&data);
    assert_eq!(vars.len(), 1, "{vars:?}");
    assert_eq!(vars[0].0, "nonce");
    vars[0].1.clone()
}

fn octets(reply: &[Vec<u8>]) -> usize {
    reply.iter().map(Vec::len).sum()
}

/// The entries of an MRU reply by index, and whether it ended the list (`now=`).
fn entries(data: &[u8]) -> (BTreeMap<usize, BTreeMap<String, String>>, bool) {
    let mut by_index: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let mut complete = false;
    for (name, value) in parse_varlist(data) {
        if name == "now" {
            complete = true;
        }
        if let Some((stem, index)) = name.split_once('.')
            && let Ok(index) = index.parse()
        {
            by_index
                .entry(index)
                .or_default()
                .insert(stem.to_owned(), value);
        }
    }
    (by_index, complete)
}

#[test]
fn a_lan_source_with_a_valid_nonce_gets_the_client_list() {
    let s = setup(RestrictFlags::NONE);
    for second in 0..3 {
        client_request(&s, "203.0.113.5:123", second * 64);
    }
    client_request(&s, "[2001:db8::7]:40123", 100);
    let nonce_reply = ask(&s, ADMIN, 200, &mode6(12, ""));
    // The nonce itself: longer than the 12-octet request, but fixed at 44 octets.
    assert_eq!(octets(&nonce_reply), NONCE_REPLY_OCTETS);
    let nonce = nonce(&s, ADMIN, 200);
    let request = mode6(10, &format!("nonce={nonce}, frags=32"));
    let reply = ask(&s, ADMIN, 201, &request);
    assert!(
        octets(&reply) > request.len(),
        "a proven source gets the whole list"
    );
    let (data, error) = data_of(&reply);
    assert_eq!(error, None);
    let (list, complete) = entries(&data);
    assert!(complete, "{}", String::from_utf8_lossy(&data));
    let by_addr: BTreeMap<_, _> = list
        .values()
        .map(|e| (e["addr"].clone(), e.clone()))
        .collect();
    let client = &by_addr["203.0.113.5:123"];
    assert_eq!(client["ct"], "3");
    assert_eq!(client["mv"], "35", "mode 3, version 4");
    assert_eq!(client["first"], "0xec000000.00000000");
    assert_eq!(client["last"], "0xec000080.00000000");
    assert_eq!(client["rs"], "0x0");
    assert!(by_addr.contains_key("[2001:db8::7]:40123"));
    // The querying host itself, seen in mode 6 (version 2).
    assert_eq!(by_addr["198.51.100.9:50000"]["mv"], "22");
    // Oldest first; the reply ends with the newest entry's time.
    assert_eq!(list[&0]["addr"], "[2001:db8::7]:40123");
    let vars = parse_varlist(&data);
    assert_eq!(vars.first().map(|v| v.0.as_str()), Some("nonce"));
    assert_eq!(vars.last().map(|v| v.0.as_str()), Some("last.newest"));
}

#[test]
fn a_forged_borrowed_or_expired_nonce_gets_no_long_reply() {
    let s = setup(RestrictFlags::NONE);
    for n in 0..50 {
        client_request(&s, &format!("203.0.113.{n}:123"), 0);
    }
    let nonce = nonce(&s, ADMIN, 10);
    let refused = |source: &str, second: u64, nonce: &str| {
        let request = mode6(10, &format!("nonce={nonce}, frags=32"));
        let reply = ask(&s, source, second, &request);
        assert_eq!(octets(&reply), 12, "{source} at {second}: {nonce}");
        assert_eq!(data_of(&reply).1, Some(ErrorCode::Permission.code()));
    };
    // Forged: a changed tag, a changed time, garbage, none at all.
    let mut forged = nonce.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    refused(ADMIN, 10, core::str::from_utf8(&forged).unwrap());
    let mut retimed = nonce.clone().into_bytes();
    retimed[7] = if retimed[7] == b'0' { b'1' } else { b'0' };
    refused(ADMIN, 10, core::str::from_utf8(&retimed).unwrap());
    refused(ADMIN, 10, "a00000000000000000000000");
    let reply = ask(&s, ADMIN, 10, &mode6(10, "frags=32"));
    assert_eq!(octets(&reply), 12);
    // Borrowed: the victim's nonce replayed from (or spoofed as) another address.
    refused("198.51.100.10:50000", 10, &nonce);
    // Expired: 17 s after it was issued.
    refused(ADMIN, 27, &nonce);
    // Valid up to 16 s.
    let reply = ask(
        &s,
        ADMIN,
        26,
        &mode6(10, &format!("nonce={nonce}, frags=32")),
    );
    assert!(octets(&reply) > 1000);
}

#[test]
fn nomrulist_refuses_the_list_and_noquery_answers_nothing() {
    let s = setup(RestrictFlags::NOMRULIST);
    client_request(&s, "203.0.113.5:123", 0);
    let reply = ask(&s, ADMIN, 1, &mode6(12, ""));
    assert_eq!(data_of(&reply).1, Some(ErrorCode::Permission.code()));
    let s = setup(RestrictFlags::NOQUERY);
    assert!(ask(&s, ADMIN, 1, &mode6(12, "")).is_empty());
}

#[test]
fn paging_with_the_newest_entries_fetches_every_client_once() {
    let s = setup(RestrictFlags::NONE);
    for n in 0..300u32 {
        let [_, _, c, d] = n.to_be_bytes();
        client_request(&s, &format!("10.0.{c}.{d}:123"), u64::from(n));
    }
    let mut seen = BTreeMap::new();
    let mut newest: Option<(String, String)> = None;
    for second in 400.. {
        assert!(second < 500, "paging does not end");
        let nonce = nonce(&s, ADMIN, second);
        let mut data = format!("nonce={nonce}, frags=2");
        if let Some((addr, last)) = &newest {
            data.push_str(&format!(", addr.0={addr}, last.0={last}"));
        }
        let reply = ask(&s, ADMIN, second, &mode6(10, &data));
        assert!(reply.len() <= 2, "frags=2 honoured");
        let (data, error) = data_of(&reply);
        assert_eq!(error, None);
        let (list, complete) = entries(&data);
        for entry in list.values() {
            *seen.entry(entry["addr"].clone()).or_insert(0) += 1;
            newest = Some((entry["addr"].clone(), entry["last"].clone()));
        }
        if complete {
            break;
        }
    }
    let clients = seen.keys().filter(|a| a.starts_with("10.0.")).count();
    assert_eq!(clients, 300);
    assert!(
        seen.iter()
            .filter(|(a, _)| a.starts_with("10."))
            .all(|(_, n)| *n == 1)
    );
}

#[test]
fn filters_select_entries() {
    let s = setup(RestrictFlags::NONE);
    for second in 0..5 {
        client_request(&s, "203.0.113.5:123", second * 10);
    }
    client_request(&s, "203.0.113.6:123", 100);
    let list = |params: &str| {
        let nonce = nonce(&s, ADMIN, 200);
        let reply = ask(
            &s,
            ADMIN,
            200,
            &mode6(10, &format!("nonce={nonce}, limit=50{params}")),
        );
        let (data, error) = data_of(&reply);
        assert_eq!(error, None, "{params}");
        let (list, complete) = entries(&data);
        assert!(complete);
        let mut addrs: Vec<String> = list.values().map(|e| e["addr"].clone()).collect();
        addrs.sort();
        addrs
    };
    assert_eq!(list(", mincount=3"), ["203.0.113.5:123"]);
    assert_eq!(
        list(", maxlstint=150, mincount=1"),
        ["198.51.100.9:50000", "203.0.113.6:123"]
    );
    assert_eq!(list(", laddr=192.0.2.2"), Vec::<String>::new());
    assert_eq!(list(", laddr=192.0.2.1").len(), 3);
    assert_eq!(list(", resany=0x20"), Vec::<String>::new());
    let reply = ask(&s, ADMIN, 200, &mode6(10, "nonce=x, limit=50, bogus=1"));
    assert_eq!(data_of(&reply).1, Some(ErrorCode::UnknownVariable.code()));
}

#[test]
fn a_client_located_by_the_caller_shares_its_entry_and_a_mislocated_one_is_found_again() {
    let s = setup(RestrictFlags::LIMITED | RestrictFlags::KOD);
    let table = s.server.client_table().expect("a client table");
    let source = "198.51.100.20:40000";
    let other: IpAddr = "198.51.100.21".parse().expect("address");
    let mut request = [0u8; 48];
    request[0] = 0x23;
    request[40] = 1;
    let mut out = [0u8; 1024];
    let located = [
        Some(table.locate(meta(source, 0).source.ip())),
        None,
        Some(table.locate(other)),
    ];
    for (n, client) in located.into_iter().enumerate() {
        let second = 100 * n as u64;
        let action = s.server.handle(
            &Policy::new(&s.access),
            &RequestMeta {
                client,
                ..meta(source, second)
            },
            &request,
            &synced(),
            &mut out,
            || T2,
        );
        assert!(matches!(action, Action::Reply(48)), "{n}: {action:?}");
    }
    let mut seen = BTreeMap::new();
    table.clients(&mut |c| {
        seen.insert(c.addr.ip(), c.count);
    });
    assert_eq!(
        seen,
        BTreeMap::from([(meta(source, 0).source.ip(), 3)]),
        "one entry, counted three times, and none for the address a request was mislocated to"
    );
}

#[test]
fn datagrams_from_port_zero_or_cut_short_are_not_recorded() {
    let s = setup(RestrictFlags::NONE);
    let mut request = [0u8; 48];
    request[0] = 0x23;
    request[40] = 1;
    let mut out = [0u8; 1024];
    let zero_port = meta("198.51.100.30:0", 1);
    let cut_short = RequestMeta {
        truncated: true,
        ..meta("198.51.100.31:40000", 2)
    };
    let answered = meta("198.51.100.32:40000", 3);
    for m in [zero_port, cut_short, answered] {
        let _ = s.server.handle(
            &Policy::new(&s.access),
            &m,
            &request,
            &synced(),
            &mut out,
            || T2,
        );
    }
    let mut seen = Vec::new();
    s.server
        .client_table()
        .expect("a client table")
        .clients(&mut |c| seen.push(c.addr));
    assert_eq!(
        seen,
        [answered.source],
        "only the ordinary request is listed"
    );
}
