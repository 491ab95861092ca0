//! An NTS source against the core's own NTS server: requests, authenticated replies, the
//! cookie jar, tampering and NAKs.

use super::*;
use crate::access::AccessTable;
use crate::auth::NoKeys;
use crate::nts::cookie::MasterKey;
use crate::nts::{Aead, AeadKey, CookieKeys};
use crate::server::{Action, Policy, RequestMeta, Server};
use crate::system::SystemState;

const T2: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0x8000_0000);

fn session() -> SessionKeys {
    SessionKeys {
        c2s: AeadKey::new(Aead::AesSivCmac256, &[0x11; 32]).unwrap(),
        s2c: AeadKey::new(Aead::AesSivCmac256, &[0x22; 32]).unwrap(),
    }
}

fn master() -> CookieKeys {
    CookieKeys::new(vec![MasterKey {
        id: 3,
        key: [0x44; 32],
    }])
    .unwrap()
}

fn cookies(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut out = [0u8; 256];
            let len = master().seal(&session(), [i as u8; 16], &mut out).unwrap();
            out[..len].to_vec()
        })
        .collect()
}

fn nts_source() -> Source {
    let params = SourceParams {
        nts: true,
        ..SourceParams::default()
    };
    Source::new(params, MonoTime::ZERO)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        self.0
    }
}

/// Polls `s` at `now` s and lets the server answer; returns the request and the reply.
fn exchange(s: &mut Source, now: u64, server_keys: &CookieKeys) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut rng = Rng(now + 1);
    let mut out = [0u8; 2048];
    let mono = MonoTime::from_duration(Duration::from_secs(now));
    let len = s.poll_transmit(mono, &mut || rng.next(), &NoKeys, &mut out)?;
    s.handle_sent(T2);
    let req = out[..len].to_vec();
    let access = AccessTable::new();
    let policy = Policy::new(&access).with_nts(Some(server_keys));
    let meta = RequestMeta {
        source: "192.0.2.9:40000".parse().unwrap(),
        destination: None,
        receive_time: T2,
        monotonic: mono,
        truncated: false,
        client: None,
    };
    let mut state = SystemState::unsynchronized(Log2Seconds::new(-20));
    state.stratum = 2;
    state.leap = Leap::NoWarning;
    state.reference_time = T2;
    let mut reply = [0u8; 2048];
    let Action::Reply(n) = Server::new().handle(&policy, &meta, &req, &state, &mut reply, || T2)
    else {
        panic!("server dropped the request");
    };
    Some((req, reply[..n].to_vec()))
}

#[test]
fn without_cookies_an_nts_source_sends_nothing_and_asks_for_a_key_exchange() {
    let mut s = nts_source();
    assert!(s.needs_key_exchange());
    assert_eq!(exchange(&mut s, 0, &master()), None);
    assert_eq!(s.packet_counts().0, 0, "nothing sent");
    assert!(
        s.poll_timeout().is_some_and(|t| t > MonoTime::ZERO),
        "no busy loop"
    );
}

#[test]
fn authenticated_replies_are_used_and_keep_the_jar_full() {
    let mut s = nts_source();
    s.install_nts(session(), cookies(8));
    assert!(!s.needs_key_exchange());
    let (req, reply) = exchange(&mut s, 0, &master()).unwrap();
    assert_eq!(reply.len(), req.len());
    assert_eq!(s.nts().cookies(), 7, "one cookie spent");
    let outcome = s.handle_response(
        T2 + NtpDuration::from_seconds_f64(0.001),
        &reply,
        1e-7,
        &NoKeys,
    );
    assert!(matches!(outcome, Outcome::Sample(_)), "{outcome:?}");
    assert!(s.authentic());
    assert_eq!(s.packet_counts(), (1, 1));
    assert_eq!(s.nts().cookies(), 8, "the reply refilled the jar");
}

#[test]
fn a_modified_or_replayed_reply_is_never_used() {
    let mut s = nts_source();
    s.install_nts(session(), cookies(8));
    let (_, reply) = exchange(&mut s, 0, &master()).unwrap();
    let t4 = T2 + NtpDuration::from_seconds_f64(0.001);
    // The receive timestamp moved by one bit: the origin check passes, the tag does not.
    let mut tampered = reply.clone();
    tampered[39] ^= 1;
    assert_eq!(
        s.handle_response(t4, &tampered, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::BadMac)
    );
    // The header alone, as a plain server would answer: unauthenticated.
    assert_eq!(
        s.handle_response(t4, &reply[..48], 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::Unauthenticated)
    );
    assert_eq!(s.reach(), 0, "nothing unauthenticated changed the reach");
    assert!(matches!(
        s.handle_response(t4, &reply, 1e-7, &NoKeys),
        Outcome::Sample(_)
    ));
    // The same reply again: the request is no longer outstanding.
    assert_eq!(
        s.handle_response(t4, &reply, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::BogusOrigin)
    );
}

#[test]
fn a_nak_empties_the_jar_and_asks_for_a_new_key_exchange() {
    let mut s = nts_source();
    s.install_nts(session(), cookies(8));
    let rotated = CookieKeys::new(vec![MasterKey {
        id: 4,
        key: [0; 32],
    }])
    .unwrap();
    let (_, nak) = exchange(&mut s, 0, &rotated).unwrap();
    assert_eq!(
        s.handle_response(T2, &nak, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::NtsNak)
    );
    assert!(s.needs_key_exchange());
    assert_eq!(s.denied(), None, "a NAK is not a DENY kiss");
}

#[test]
fn a_nak_for_another_request_changes_nothing() {
    let mut s = nts_source();
    s.install_nts(session(), cookies(8));
    let rotated = CookieKeys::new(vec![MasterKey {
        id: 4,
        key: [0; 32],
    }])
    .unwrap();
    let (_, mut nak) = exchange(&mut s, 0, &rotated).unwrap();
    nak[60] ^= 1; // inside the unique identifier
    assert_eq!(
        s.handle_response(T2, &nak, 1e-7, &NoKeys),
        Outcome::Rejected(Rejection::BadMac)
    );
    assert_eq!(s.nts().cookies(), 7);
}
