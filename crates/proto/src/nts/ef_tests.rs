use super::*;
use crate::nts::{Aead, CookieKeys, SessionKeys, cookie::MasterKey};
use crate::packet::{Mode, NtpHeader, Packet};

fn session() -> SessionKeys {
    SessionKeys {
        c2s: AeadKey::new(Aead::AesSivCmac256, &[1; 32]).expect("len"),
        s2c: AeadKey::new(Aead::AesSivCmac256, &[2; 32]).expect("len"),
    }
}

fn master() -> CookieKeys {
    CookieKeys::new(vec![MasterKey {
        id: 5,
        key: [9; 32],
    }])
    .expect("key")
}

fn cookie() -> Vec<u8> {
    let mut out = [0u8; 256];
    let n = master().seal(&session(), [4; 16], &mut out).expect("fits");
    out[..n].to_vec()
}

fn request(placeholders: usize) -> Vec<u8> {
    let mut out = [0u8; MAX_PACKET_LEN];
    let mut head = [0u8; HEADER_LEN];
    NtpHeader::new(4, Mode::Client).emit(&mut head);
    out[..HEADER_LEN].copy_from_slice(&head);
    let n = write_request(
        &mut out,
        &[7; UID_LEN],
        &cookie(),
        placeholders,
        &session().c2s,
        &[3; 16],
    )
    .expect("fits");
    out[..n].to_vec()
}

#[test]
fn a_request_is_found_opened_and_verified_by_the_server() {
    let req = request(2);
    assert_eq!(req.len(), HEADER_LEN + 36 + 3 * 108 + 40);
    let packet = Packet::parse(&req).expect("parses");
    let found = Request::find(&packet.extensions)
        .expect("well-formed")
        .expect("NTS");
    assert_eq!(found.uid, &[7; UID_LEN]);
    assert_eq!(found.placeholders, 2);
    let keys = master().open(found.cookie).expect("our cookie");
    assert_eq!(keys, session());
    assert_eq!(found.verify(&req, &keys.c2s), Ok(0));
    assert_eq!(
        found.verify(&req, &keys.s2c),
        Err(NtsError::BadTag),
        "wrong direction"
    );
}

#[test]
fn any_modified_octet_of_a_request_fails_authentication() {
    let req = request(0);
    for i in 0..req.len() {
        let mut t = req.clone();
        t[i] ^= 0x01;
        let Ok(packet) = Packet::parse(&t) else {
            continue;
        };
        let Ok(Some(found)) = Request::find(&packet.extensions) else {
            continue;
        };
        let ok = master()
            .open(found.cookie)
            .is_some_and(|k| found.verify(&t, &k.c2s).is_ok());
        assert!(!ok, "octet {i} modified and still verified");
    }
}

#[test]
fn plain_packets_are_not_nts_and_incomplete_ones_are_errors() {
    let mut head = [0u8; HEADER_LEN];
    NtpHeader::new(4, Mode::Client).emit(&mut head);
    let packet = Packet::parse(&head).expect("parses");
    assert_eq!(Request::find(&packet.extensions), Ok(None));
    // Cut just before the authenticator.
    let req = request(0);
    let cut = &req[..req.len() - 40];
    let packet = Packet::parse(cut).expect("parses");
    assert_eq!(
        Request::find(&packet.extensions),
        Err(NtsError::MissingAuthenticator)
    );
}

fn reply_for(req: &[u8], cookies: usize) -> Vec<u8> {
    let packet = Packet::parse(req).expect("parses");
    let found = Request::find(&packet.extensions).expect("ok").expect("NTS");
    let keys = master().open(found.cookie).expect("ours");
    let mut out = [0u8; MAX_PACKET_LEN];
    let mut head = [0u8; HEADER_LEN];
    NtpHeader::new(4, Mode::Server).emit(&mut head);
    out[..HEADER_LEN].copy_from_slice(&head);
    let len = CookieKeys::cookie_len(keys.aead());
    let n = write_reply(
        &mut out,
        found.uid,
        cookies,
        len,
        &keys.s2c,
        &[8; 16],
        |i, buf| master().seal(&keys, [i as u8; 16], buf),
    )
    .expect("fits");
    assert_eq!(n, reply_len(found.uid.len(), cookies, len));
    out[..n].to_vec()
}

#[test]
fn a_reply_with_as_many_cookies_as_requested_is_exactly_the_request_size() {
    for placeholders in 0..8 {
        let req = request(placeholders);
        let reply = reply_for(&req, placeholders + 1);
        assert_eq!(reply.len(), req.len(), "{placeholders} placeholders");
    }
}

#[test]
fn the_client_accepts_an_authentic_reply_and_takes_its_cookies() {
    let req = request(1);
    let reply = reply_for(&req, 2);
    let packet = Packet::parse(&reply).expect("parses");
    let mut got = Vec::new();
    let r = verify_reply(
        &reply,
        &packet.extensions,
        &[7; UID_LEN],
        &session().s2c,
        false,
        |c| {
            got.push(c.to_vec());
        },
    );
    assert_eq!(r, Ok(Reply::Authentic));
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|c| master().open(c) == Some(session())));
    let wrong_uid = verify_reply(
        &reply,
        &packet.extensions,
        &[6; UID_LEN],
        &session().s2c,
        false,
        |_| {},
    );
    assert_eq!(wrong_uid, Err(NtsError::WrongUid));
}

#[test]
fn the_client_rejects_every_modified_reply() {
    let reply = reply_for(&request(0), 1);
    for i in 0..reply.len() {
        let mut t = reply.clone();
        t[i] ^= 0x80;
        let Ok(packet) = Packet::parse(&t) else {
            continue;
        };
        let r = verify_reply(
            &t,
            &packet.extensions,
            &[7; UID_LEN],
            &session().s2c,
            false,
            |_| {},
        );
        assert!(r.is_err(), "octet {i} modified and still accepted");
    }
}

#[test]
fn a_nak_counts_only_with_our_unique_identifier() {
    let mut out = [0u8; 128];
    let mut head = [0u8; HEADER_LEN];
    NtpHeader::new(4, Mode::Server).emit(&mut head);
    out[..HEADER_LEN].copy_from_slice(&head);
    let n = put_field(
        &mut out,
        HEADER_LEN,
        UNIQUE_IDENTIFIER,
        Some(&[7; UID_LEN]),
        0,
    )
    .expect("fits");
    let nak = &out[..n];
    let packet = Packet::parse(nak).expect("parses");
    let s2c = session().s2c;
    assert_eq!(
        verify_reply(nak, &packet.extensions, &[7; UID_LEN], &s2c, true, |_| {}),
        Ok(Reply::Nak)
    );
    assert_eq!(
        verify_reply(nak, &packet.extensions, &[1; UID_LEN], &s2c, true, |_| {}),
        Err(NtsError::WrongUid)
    );
    assert_eq!(
        verify_reply(nak, &packet.extensions, &[7; UID_LEN], &s2c, false, |_| {}),
        Err(NtsError::MissingAuthenticator),
        "without the kiss code it is just an unauthenticated reply"
    );
}
