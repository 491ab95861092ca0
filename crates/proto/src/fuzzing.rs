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
        client: None,
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

/// The NTS-KE record parsers never panic; a response that parses re-encodes to one that parses
/// to the same cookies, AEAD and port.
pub fn nts_ke(data: &[u8]) {
    use crate::nts::ke;
    let _ = ke::split_message(data);
    let _ = ke::parse_request(data);
    if let Ok(r) = ke::parse_response(data) {
        assert!(!r.cookies.is_empty() && r.cookies.len() <= ke::COOKIES_PER_EXCHANGE);
        let cookies: Vec<&[u8]> = r.cookies.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        ke::write_response(&mut out, r.aead, &cookies, r.port);
        let again = ke::parse_response(&out).expect("a written response parses");
        assert_eq!(
            (again.aead, &again.cookies, again.port),
            (r.aead, &r.cookies, r.port)
        );
    }
}

/// The fixed keys of [`nts_packet`]: the cookie master key and one client's session keys.
fn nts_fixture() -> (crate::nts::CookieKeys, crate::nts::SessionKeys) {
    use crate::nts::cookie::MasterKey;
    use crate::nts::{Aead, AeadKey, CookieKeys, SessionKeys};
    let master = CookieKeys::new(vec![MasterKey {
        id: 7,
        key: [0x5a; 32],
    }])
    .expect("one key");
    let session = SessionKeys {
        c2s: AeadKey::new(Aead::AesSivCmac256, &[1; 32]).expect("length"),
        s2c: AeadKey::new(Aead::AesSivCmac256, &[2; 32]).expect("length"),
    };
    (master, session)
}

/// The NTS path of the server and of the client never panics, the server never answers with
/// more octets than it received, and neither side accepts anything it did not seal itself.
///
/// The first octet picks the shape: even, `data` is a raw request; odd, a valid NTS request
/// with `data[1] % 9` placeholders is built and `data[2..]` is XORed over it (from octet 48),
/// so the fuzzer explores modified, truncated and extended genuine requests.
pub fn nts_packet(data: &[u8]) {
    use crate::nts::ef;
    let (master, session) = nts_fixture();
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let mut built = [0u8; ef::MAX_PACKET_LEN];
    let mut genuine = None;
    let request: &[u8] = if shape & 1 == 0 {
        rest
    } else {
        let placeholders = usize::from(rest.first().copied().unwrap_or(0) % 9);
        let mut cookie = [0u8; 256];
        let Some(n) = master.seal(&session, [3; 16], &mut cookie) else {
            return;
        };
        let mut head = [0u8; HEADER_LEN];
        NtpHeader::new(4, crate::packet::Mode::Client).emit(&mut head);
        if let Some(h) = built.get_mut(..HEADER_LEN) {
            h.copy_from_slice(&head);
        }
        let Some(len) = ef::write_request(
            &mut built,
            &[9; ef::UID_LEN],
            cookie.get(..n).unwrap_or_default(),
            placeholders,
            &session.c2s,
            &[4; ef::NONCE_LEN],
        ) else {
            return;
        };
        let flips = rest.get(1..).unwrap_or_default();
        let original = len;
        let mut len = len;
        for (i, &x) in flips.iter().enumerate() {
            // A flip past the end extends the request with that octet.
            if let Some(b) = built.get_mut(HEADER_LEN + i) {
                *b ^= x;
            }
            len = len.max(HEADER_LEN + i + 1).min(ef::MAX_PACKET_LEN);
        }
        if len == original && flips.iter().all(|&x| x == 0) {
            genuine = Some(len);
        }
        built.get(..len).unwrap_or_default()
    };
    let table = AccessTable::new();
    let policy = Policy::new(&table).with_nts(Some(&master));
    let server = Server::new();
    let state = SystemState::unsynchronized(Log2Seconds::new(-20));
    let meta = RequestMeta {
        source: SocketAddr::from(([192, 0, 2, 1], 40000)),
        destination: None,
        receive_time: NtpTimestamp::from_parts(0xec00_0000, 0),
        monotonic: MonoTime::ZERO,
        truncated: false,
        client: None,
    };
    let mut out = [0u8; ef::MAX_PACKET_LEN];
    let action = server.handle(&policy, &meta, request, &state, &mut out, || {
        NtpTimestamp::from_parts(0xec00_0000, 1)
    });
    if let Action::Reply(len) = action {
        assert!(len <= request.len(), "reply of {len} to {}", request.len());
        let reply = out.get(..len).unwrap_or_default();
        // A genuine request's reply verifies for the client; whatever came back, the client's
        // check never panics.
        if let Ok(p) = Packet::parse(reply) {
            let verdict = ef::verify_reply(
                reply,
                &p.extensions,
                &[9; ef::UID_LEN],
                &session.s2c,
                false,
                |_| {},
            );
            if genuine.is_some() && !p.extensions.is_empty() {
                assert_eq!(
                    verdict,
                    Ok(ef::Reply::Authentic),
                    "genuine request, bad reply"
                );
            }
        }
    }
    if genuine.is_some() {
        assert!(
            server.counters().snapshot().nts_replies == 1,
            "a genuine request was not answered with NTS"
        );
    }
    // The raw bytes as a reply to our request: never authentic (the fuzzer cannot forge a tag).
    if let Ok(p) = Packet::parse(request) {
        let verdict = ef::verify_reply(
            request,
            &p.extensions,
            &[9; ef::UID_LEN],
            &session.s2c,
            false,
            |_| {},
        );
        if shape & 1 == 0 {
            assert_ne!(verdict, Ok(ef::Reply::Authentic), "forged reply accepted");
        }
    }
}

/// Most exchanges one [`source_response`] input drives.
const SOURCE_ROUNDS: usize = 16;

/// A source's handling of replies to its own requests (`Source::handle_response`, the path
/// every upstream datagram takes): the input is a sequence of rounds, each a control octet, a
/// length octet and that many octets of reply. Every round sends a request first; control bit 0
/// writes the request's nonce into the reply's origin field (so the fuzzer gets past the origin
/// check), bit 1 sets the system poll to the control octet's top bits. Checks: no panic; a
/// reply that fails the origin check changes nothing; the poll stays within minpoll..maxpoll
/// and the next request is never later than 2^maxpoll s (plus its jitter) away.
///
/// # Panics
/// If a property is violated (a bug, which is what fuzzing looks for).
pub fn source_response(data: &[u8]) {
    use crate::source::{Outcome, Rejection, Source, SourceParams};

    let params = SourceParams {
        minpoll: 4,
        maxpoll: 8,
        ..SourceParams::default()
    };
    let mut source = Source::new(params, MonoTime::ZERO);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let base = NtpTimestamp::from_parts(0xec00_0000, 0);
    let mut now = MonoTime::ZERO;
    let mut rest = data;
    for round in 0..SOURCE_ROUNDS {
        let [control, len, tail @ ..] = rest else {
            break;
        };
        let (reply, next) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = next;
        now = source.poll_timeout().unwrap_or(now).max(now);
        let mut request = [0u8; HEADER_LEN];
        if source
            .poll_transmit(now, &mut random, &crate::auth::NoKeys, &mut request)
            .is_none()
        {
            // Denied for good: nothing more happens.
            assert!(
                source.poll_timeout().is_none(),
                "no poll although one is due"
            );
            break;
        }
        let t1 = base + crate::time::NtpDuration::from_seconds(i32::try_from(round).unwrap_or(0));
        source.handle_sent(t1);
        let mut reply = reply.to_vec();
        if control & 1 != 0
            && let Some(origin) = reply.get_mut(24..32)
        {
            origin.copy_from_slice(&request[40..48]);
        }
        let before = (
            source.reach(),
            source.hpoll(),
            source.poll_timeout(),
            source.packet_counts(),
            source.peer(),
        );
        let t4 = t1 + crate::time::NtpDuration::from_seconds(1);
        let outcome = source.handle_response(t4, &reply, 1e-7, &crate::auth::NoKeys);
        if outcome == Outcome::Rejected(Rejection::BogusOrigin) {
            let after = (
                source.reach(),
                source.hpoll(),
                source.poll_timeout(),
                source.packet_counts(),
                source.peer(),
            );
            assert_eq!(
                before, after,
                "a reply failing the origin check changed state"
            );
        }
        if control & 2 != 0 {
            source.set_system_poll(i8::try_from(control >> 3).unwrap_or(0));
        }
        let hpoll = source.hpoll();
        assert!(
            (4..=8).contains(&hpoll),
            "poll exponent {hpoll} outside 4..=8"
        );
        if let Some(next) = source.poll_timeout() {
            let wait = next.saturating_since(now).as_secs_f64();
            assert!(
                wait <= 256.0 * (1.0 + 1.0 / 16.0) + 1.0,
                "next poll {wait} s away"
            );
        }
    }
}

/// ntpq's reassembly of a mode 6 response (`control::Reassembler`): the input is a sequence
/// of datagrams, each preceded by its length octet, answering a READVAR with sequence 1 (bit 0
/// of the first octet: fix each datagram's opcode and sequence to match). Checks: no panic; a
/// complete response holds exactly the octets its fragments announced, contiguous from 0, and
/// never more than `MAX_RESPONSE_DATA`.
///
/// # Panics
/// If a property is violated.
pub fn control_reassembly(data: &[u8]) {
    use crate::control::{MAX_RESPONSE_DATA, Opcode, Progress, Reassembler};

    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut reassembler = Reassembler::new(Opcode::ReadVariables, 1);
    let mut accepted = 0usize;
    while let [len, tail @ ..] = rest {
        let (datagram, next) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = next;
        let mut datagram = datagram.to_vec();
        if flags & 1 != 0
            && let Some([_, op, s0, s1]) = datagram.get_mut(..4)
        {
            *op = (*op & 0xe0) | Opcode::ReadVariables.code();
            [*s0, *s1] = 1u16.to_be_bytes();
        }
        match reassembler.handle(&datagram) {
            Ok(Progress::NeedMore) => accepted += datagram.len().saturating_sub(12),
            Ok(Progress::Complete(response)) => {
                accepted += datagram.len().saturating_sub(12);
                assert!(response.data.len() <= MAX_RESPONSE_DATA);
                assert!(
                    response.data.len() <= accepted,
                    "{} octets from {accepted} received",
                    response.data.len()
                );
                return;
            }
            Ok(Progress::Dropped(_)) => {}
            Err(_) => return,
        }
    }
}

/// A reference clock's untrusted inputs: the first 64 octets, read as the fields of an NTP
/// shared-memory record (native-endian integers), go through the SHM check twice (the second
/// time as a repeat of the first); the whole input is parsed as a SOCK datagram. What is taken
/// must be a valid, untorn record within the offset limit, and a datagram that parses must say
/// what it was built from.
pub fn refclock(data: &[u8]) {
    use crate::refclock::shm::{ShmReader, ShmRecord};
    let mut words = data
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            for (d, s) in b.iter_mut().zip(c) {
                *d = *s;
            }
            i32::from_ne_bytes(b)
        })
        .chain(core::iter::repeat(0));
    let mut next = || words.next().unwrap_or(0);
    let wide = |hi: i32, lo: i32| (i64::from(hi) << 32) | i64::from(lo as u32);
    let record = ShmRecord {
        mode: next(),
        count_before: next(),
        count_after: next(),
        clock_sec: wide(next(), next()),
        clock_usec: next(),
        clock_nsec: next() as u32,
        receive_sec: wide(next(), next()),
        receive_usec: next(),
        receive_nsec: next() as u32,
        leap: next(),
        precision: next(),
        valid: next(),
    };
    let limit = (record.precision & 1 == 0).then_some(14_400.0);
    let mut reader = ShmReader::new();
    for _ in 0..2 {
        if let Ok(reading) = reader.check(&record, limit) {
            assert!(record.valid != 0, "took a record that was not valid");
            assert!(record.mode == 0 || record.mode == 1, "took an unknown mode");
            assert!(
                record.mode == 0 || record.count_before == record.count_after,
                "took a torn record"
            );
            assert!(
                limit.is_none_or(|l| reading.offset().abs() <= l + 1e-9),
                "beyond the limit"
            );
        }
    }
    if record.mode == 1 && record.valid != 0 {
        assert!(reader.taken() <= 1, "took the same mode-1 record twice");
    }
    if let Ok(sample) = crate::refclock::sock::parse(data) {
        assert!(sample.reading.offset().abs() <= 86_400.0 + 1e-6);
    }
}
