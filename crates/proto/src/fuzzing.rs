//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that replay their
//! corpus. Each one feeds arbitrary bytes to a parser or handler that sees untrusted input and
//! checks the properties that must hold for every input, panicking (which the fuzzer reports)
//! only when one is violated.

use core::net::SocketAddr;

use crate::access::{AccessTable, RestrictFlags};
use crate::packet::{HEADER_LEN, NtpHeader, Packet};
use crate::server::{Action, Policy, RequestMeta, Server};
use crate::system::SystemState;
use crate::time::{Log2Seconds, MonoTime, NtpTimestamp};

/// `Packet::parse` never panics, and a parsed header re-emits to the same 48 octets.
pub fn packet(data: &[u8]) {
    if let Ok(p) = Packet::parse(data) {
        let mut out = [0u8; HEADER_LEN];
        p.header.emit(&mut out);
        let head = data.get(..HEADER_LEN).unwrap_or_default();
        assert_eq!(&out[..], head, "header did not round-trip");
        let total: usize = p
            .extensions
            .iter()
            .map(|f| f.value.len() + 4)
            .sum::<usize>()
            + p.mac.map_or(0, |m| m.len_bytes());
        assert_eq!(
            HEADER_LEN + total,
            data.len(),
            "trailer not fully accounted for"
        );
        let _ = NtpHeader::decode(&out);
    }
}

/// The server never panics and never answers with more octets than it received, whatever the
/// request and whichever restrict flags apply.
pub fn server(data: &[u8]) {
    let (flags, request) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    // The first octet picks which restrict flags apply to the client.
    const FLAGS: [&str; 8] = [
        "ignore", "noserve", "noquery", "nomodify", "notrust", "limited", "kod", "version",
    ];
    let chosen = FLAGS
        .iter()
        .enumerate()
        .filter(|(i, _)| flags & (1 << i) != 0)
        .filter_map(|(_, name)| RestrictFlags::from_keyword(name))
        .fold(RestrictFlags::NONE, |acc, f| acc | f);
    let mut table = AccessTable::new();
    table.add_default(true, true, chosen);
    let server = Server::new();
    let state = SystemState::unsynchronized(Log2Seconds::new(-20));
    let meta = RequestMeta {
        source: SocketAddr::from(([192, 0, 2, 1], 40000)),
        destination: None,
        receive_time: NtpTimestamp::from_parts(0xec00_0000, 0),
        monotonic: MonoTime::ZERO,
        truncated: false,
    };
    let mut out = [0u8; 1024];
    if let Action::Reply(len) = server.handle(
        &Policy::new(&table),
        &meta,
        request,
        &state,
        &mut out,
        || NtpTimestamp::from_parts(0xec00_0000, 1),
    ) {
        assert!(
            len <= request.len(),
            "reply of {len} octets to a request of {}",
            request.len()
        );
    }
}
