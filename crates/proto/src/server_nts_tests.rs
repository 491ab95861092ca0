//! The server's NTS path (RFC 8915 §5.7): authenticated replies with fresh cookies, NAKs, and
//! never a reply longer than the request.

use super::*;
use crate::access::RestrictEntry;
use crate::nts::cookie::MasterKey;
use crate::nts::ef::{self, NONCE_LEN, Reply, UID_LEN};
use crate::nts::{Aead, AeadKey, SessionKeys};
use crate::packet::ReferenceId;
use crate::time::MonoTime;

const T2: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0x8000_0000);
const T3: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0x8000_1000);
const XMT: NtpTimestamp = NtpTimestamp::from_bits(0x0123_4567_89ab_cdef);
const UID: [u8; UID_LEN] = [0x42; UID_LEN];

fn meta() -> RequestMeta {
    RequestMeta {
        source: "192.0.2.7:40000".parse().unwrap(),
        destination: None,
        receive_time: T2,
        monotonic: MonoTime::ZERO,
        truncated: false,
        client: None,
    }
}

fn session() -> SessionKeys {
    SessionKeys {
        c2s: AeadKey::new(Aead::AesSivCmac256, &[0x11; 32]).unwrap(),
        s2c: AeadKey::new(Aead::AesSivCmac256, &[0x22; 32]).unwrap(),
    }
}

fn cookies() -> CookieKeys {
    CookieKeys::new(vec![MasterKey {
        id: 1,
        key: [0x33; 32],
    }])
    .unwrap()
}

fn cookie() -> Vec<u8> {
    let mut out = [0u8; 256];
    let n = cookies().seal(&session(), [1; 16], &mut out).unwrap();
    out[..n].to_vec()
}

fn request_with(cookie: &[u8], placeholders: usize, c2s: &AeadKey) -> Vec<u8> {
    let mut out = [0u8; ef::MAX_PACKET_LEN];
    let mut h = NtpHeader::new(4, Mode::Client);
    h.transmit_timestamp = XMT;
    let mut head = [0u8; HEADER_LEN];
    h.emit(&mut head);
    out[..HEADER_LEN].copy_from_slice(&head);
    let n = ef::write_request(&mut out, &UID, cookie, placeholders, c2s, &[9; NONCE_LEN]).unwrap();
    out[..n].to_vec()
}

fn serve(policy: &Policy<'_>, req: &[u8]) -> (Action, Vec<u8>) {
    let server = Server::new();
    let mut out = [0u8; ef::MAX_PACKET_LEN];
    let state = tests::synced();
    let action = server.handle(policy, &meta(), req, &state, &mut out, || T3);
    let len = match action {
        Action::Reply(n) => n,
        Action::Drop(_) => 0,
    };
    (action, out[..len].to_vec())
}

#[test]
fn a_valid_request_gets_an_authenticated_reply_with_fresh_cookies_of_equal_size() {
    let access = AccessTable::new();
    let keys = cookies();
    let policy = Policy::new(&access).with_nts(Some(&keys));
    for placeholders in [0, 1, 7] {
        let req = request_with(&cookie(), placeholders, &session().c2s);
        let (action, reply) = serve(&policy, &req);
        assert_eq!(
            action,
            Action::Reply(req.len()),
            "{placeholders} placeholders"
        );
        let packet = Packet::parse(&reply).unwrap();
        assert_eq!(packet.header.origin_timestamp, XMT);
        assert_eq!(packet.header.transmit_timestamp, T3);
        let mut fresh = Vec::new();
        let verdict = ef::verify_reply(
            &reply,
            &packet.extensions,
            &UID,
            &session().s2c,
            false,
            |c| fresh.push(c.to_vec()),
        );
        assert_eq!(verdict, Ok(Reply::Authentic));
        assert_eq!(fresh.len(), placeholders + 1);
        for c in &fresh {
            assert_ne!(c, &cookie(), "cookies are fresh");
            assert_eq!(keys.open(c), Some(session()));
        }
    }
}

#[test]
fn a_foreign_cookie_or_a_bad_authenticator_gets_an_nts_nak_without_time() {
    let access = AccessTable::new();
    let other = CookieKeys::new(vec![MasterKey {
        id: 1,
        key: [0; 32],
    }])
    .unwrap();
    let policy = Policy::new(&access).with_nts(Some(&other));
    let req = request_with(&cookie(), 0, &session().c2s);
    let (action, nak) = serve(&policy, &req);
    assert_eq!(action, Action::Reply(HEADER_LEN + 36));
    let packet = Packet::parse(&nak).unwrap();
    assert_eq!(packet.header.reference_id, ReferenceId::NTSN);
    assert_eq!(packet.header.stratum, 0);
    assert_eq!(packet.header.receive_timestamp, XMT, "no time in a NAK");
    assert_eq!(packet.header.transmit_timestamp, XMT);
    let verdict = ef::verify_reply(&nak, &packet.extensions, &UID, &session().s2c, true, |_| {});
    assert_eq!(verdict, Ok(Reply::Nak));

    let keys = cookies();
    let policy = Policy::new(&access).with_nts(Some(&keys));
    let wrong_key = AeadKey::new(Aead::AesSivCmac256, &[0x12; 32]).unwrap();
    let (_, nak) = serve(&policy, &request_with(&cookie(), 0, &wrong_key));
    assert_eq!(
        Packet::parse(&nak).unwrap().header.reference_id,
        ReferenceId::NTSN
    );
}

#[test]
fn incomplete_nts_fields_are_dropped_and_a_server_without_nts_answers_plainly() {
    let access = AccessTable::new();
    let keys = cookies();
    let req = request_with(&cookie(), 0, &session().c2s);
    let cut = &req[..req.len() - 40];
    let (action, _) = serve(&Policy::new(&access).with_nts(Some(&keys)), cut);
    assert_eq!(action, Action::Drop(DropReason::NtsMalformed));
    let (action, reply) = serve(&Policy::new(&access), &req);
    assert_eq!(action, Action::Reply(HEADER_LEN), "no NTS: a plain reply");
    assert_eq!(Packet::parse(&reply).unwrap().header.transmit_timestamp, T3);
}

#[test]
fn notrust_admits_nts_requests_but_not_plain_ones() {
    let mut access = AccessTable::new();
    access.add(RestrictEntry::host(
        "192.0.2.7".parse().unwrap(),
        RestrictFlags::NOTRUST,
    ));
    let keys = cookies();
    let policy = Policy::new(&access).with_nts(Some(&keys));
    let req = request_with(&cookie(), 0, &session().c2s);
    assert_eq!(serve(&policy, &req).0, Action::Reply(req.len()));
    assert_eq!(
        serve(&policy, &req[..HEADER_LEN]).0,
        Action::Drop(DropReason::RestrictedNotrust)
    );
}

#[test]
fn no_nts_reply_is_ever_longer_than_its_request() {
    // Requests that ask for more cookies than their size pays for: a nonce shorter than ours
    // would make an equal-size reply impossible, so the server returns fewer cookies.
    let access = AccessTable::new();
    let keys = cookies();
    let policy = Policy::new(&access).with_nts(Some(&keys));
    for placeholders in 0..12 {
        let mut req = request_with(&cookie(), placeholders, &session().c2s);
        let (action, reply) = serve(&policy, &req);
        let Action::Reply(n) = action else {
            panic!("{placeholders}: {action:?}")
        };
        assert!(n <= req.len() && reply.len() == n);
        // Shrink each placeholder by 4 octets (placeholders shorter than the cookie): the
        // request pays for less than a full cookie each.
        let mut shrunk = req[..HEADER_LEN + 36 + 108].to_vec();
        for _ in 0..placeholders {
            let mut p = vec![0u8; 104];
            p[..4].copy_from_slice(&[0x03, 0x04, 0, 104]);
            shrunk.extend_from_slice(&p);
        }
        let at = shrunk.len();
        shrunk.resize(at + 40, 0);
        req = shrunk;
        let mut buf = [0u8; ef::MAX_PACKET_LEN];
        buf[..req.len()].copy_from_slice(&req);
        // Re-seal the authenticator over the new layout.
        let fields_end = at;
        let mut again = buf[..fields_end].to_vec();
        again.resize(ef::MAX_PACKET_LEN, 0);
        let sealed = reseal(&mut again, fields_end);
        let (action, _) = serve(&policy, &again[..sealed]);
        match action {
            Action::Reply(n) => assert!(n <= sealed, "{placeholders}: {n} > {sealed}"),
            Action::Drop(r) => panic!("{placeholders}: dropped {r:?}"),
        }
    }
}

/// Appends an authenticator at `at` over `buf[..at]` with the session's c2s key.
fn reseal(buf: &mut [u8], at: usize) -> usize {
    let key = session().c2s;
    let nonce = [5u8; NONCE_LEN];
    let (ad, rest) = buf.split_at_mut(at);
    let mut tag_input: [u8; 0] = [];
    let tag = key.seal(&nonce, ad, &mut tag_input);
    let mut field = vec![0x04, 0x04, 0, 40, 0, 16, 0, 16];
    field.extend_from_slice(&nonce);
    field.extend_from_slice(&tag);
    rest[..40].copy_from_slice(&field);
    at + 40
}

#[test]
fn each_reply_is_sealed_under_a_fresh_nonce() {
    let access = AccessTable::new();
    let keys = cookies();
    let policy = Policy::new(&access).with_nts(Some(&keys));
    let req = request_with(&cookie(), 0, &session().c2s);
    let server = Server::new();
    let state = tests::synced();
    let mut replies = Vec::new();
    for _ in 0..2 {
        let mut out = [0u8; ef::MAX_PACKET_LEN];
        let Action::Reply(n) = server.handle(&policy, &meta(), &req, &state, &mut out, || T3)
        else {
            panic!("no reply");
        };
        replies.push(out[..n].to_vec());
    }
    // The same request, the same time: only the nonces (and so the sealed cookie) differ.
    assert_eq!(replies[0][..HEADER_LEN], replies[1][..HEADER_LEN]);
    assert_ne!(replies[0], replies[1]);
}

#[test]
fn cookies_made_and_cookies_opened_under_previous_keys_are_counted() {
    let access = AccessTable::new();
    let server = Server::new();
    let state = tests::synced();
    let mut out = [0u8; ef::MAX_PACKET_LEN];
    // The cookie was sealed under key 1; two rotations put it one, then two keys back.
    let once = cookies().rotated(MasterKey {
        id: 2,
        key: [0x44; 32],
    });
    let twice = once.rotated(MasterKey {
        id: 3,
        key: [0x55; 32],
    });
    for (keys, placeholders) in [(cookies(), 2), (once, 0), (twice, 1), (cookies(), 0)] {
        let policy = Policy::new(&access).with_nts(Some(&keys));
        let req = request_with(&cookie(), placeholders, &session().c2s);
        let action = server.handle(&policy, &meta(), &req, &state, &mut out, || T3);
        assert_eq!(action, Action::Reply(req.len()));
    }
    let c = server.counters().snapshot();
    assert_eq!(c.nts_replies, 4);
    assert_eq!(
        c.nts_cookies_made,
        3 + 1 + 2 + 1,
        "one per cookie and placeholder"
    );
    assert_eq!(c.nts_cookies_old, [1, 1, 0]);
    // A cookie no key opens makes nothing and counts as no age.
    let foreign = CookieKeys::new(vec![MasterKey {
        id: 9,
        key: [0x66; 32],
    }])
    .unwrap();
    let policy = Policy::new(&access).with_nts(Some(&foreign));
    let req = request_with(&cookie(), 0, &session().c2s);
    let nak = server.handle(&policy, &meta(), &req, &state, &mut out, || T3);
    assert!(matches!(nak, Action::Reply(_)), "an NTS NAK");
    let after = server.counters().snapshot();
    assert_eq!(after.nts_cookies_made, c.nts_cookies_made);
    assert_eq!(after.nts_cookies_old, c.nts_cookies_old);
    assert_eq!(after.nts_cookie_failures, 1);
}
