use super::*;

/// chrony 4.3's request as captured: Next Protocol {0} (critical), AEAD {30, 15}, End.
const CHRONY_REQUEST: [u8; 18] = [
    0x80, 0x01, 0x00, 0x02, 0x00, 0x00, //
    0x80, 0x04, 0x00, 0x04, 0x00, 0x1e, 0x00, 0x0f, //
    0x80, 0x00, 0x00, 0x00,
];

#[test]
fn a_request_picks_the_first_implemented_aead() {
    assert_eq!(
        parse_request(&CHRONY_REQUEST),
        Ok(Request {
            aead: Aead::AesSivCmac256
        })
    );
    let mut ours = Vec::new();
    write_request(&mut ours);
    assert_eq!(
        parse_request(&ours).map(|r| r.aead),
        Ok(Aead::AesSivCmac256)
    );
}

#[test]
fn requests_without_ntpv4_or_a_common_aead_are_refused() {
    let mut no_proto = CHRONY_REQUEST;
    no_proto[5] = 1;
    assert_eq!(parse_request(&no_proto), Err(KeError::NoNtpv4));
    let mut gcm_only = CHRONY_REQUEST;
    gcm_only[13] = 0x1e;
    assert_eq!(parse_request(&gcm_only), Err(KeError::NoCommonAead));
    let unknown_critical = [0x80, 0x55, 0, 0, 0x80, 0, 0, 0];
    assert_eq!(
        parse_request(&unknown_critical),
        Err(KeError::UnrecognizedCritical { kind: 0x55 })
    );
    assert_eq!(
        error_for(&KeError::UnrecognizedCritical { kind: 1 }),
        ErrorCode::UnrecognizedCritical
    );
}

#[test]
fn messages_must_end_exactly_with_end_of_message() {
    assert_eq!(
        parse_request(&CHRONY_REQUEST[..17]),
        Err(KeError::Truncated)
    );
    let mut trailing = CHRONY_REQUEST.to_vec();
    trailing.push(0);
    assert_eq!(parse_request(&trailing), Err(KeError::TrailingData));
    assert_eq!(split_message(&CHRONY_REQUEST[..10]), Ok(None));
    let end_with_body = [0x80, 0, 0, 1, 0];
    assert!(matches!(
        split_message(&end_with_body),
        Err(KeError::BadRecordLength { kind: 0, .. })
    ));
}

#[test]
fn a_message_can_never_grow_past_the_limit() {
    // Non-critical filler records with no End of Message: refused once past the limit.
    let mut data = Vec::new();
    while data.len() <= MAX_MESSAGE_LEN {
        data.extend_from_slice(&[0x40, 0x00, 0x00, 0xfc]);
        data.extend_from_slice(&[0; 0xfc]);
    }
    assert_eq!(split_message(&data), Err(KeError::TooLong));
    // A single record claiming more than the limit is refused before its body arrives.
    assert_eq!(split_message(&[0, 1, 0xff, 0xff]), Err(KeError::TooLong));
}

#[test]
fn a_response_round_trips_with_cookies_and_port() {
    let mut out = Vec::new();
    let c1 = [1u8; 102];
    let c2 = [2u8; 102];
    write_response(&mut out, Aead::AesSivCmac256, &[&c1, &c2], Some(11123));
    let r = parse_response(&out).expect("valid");
    assert_eq!(r.aead, Aead::AesSivCmac256);
    assert_eq!(r.cookies, vec![c1.to_vec(), c2.to_vec()]);
    assert_eq!(r.port, Some(11123));
    assert_eq!(r.server, None);
}

#[test]
fn bad_responses_are_refused() {
    let mut out = Vec::new();
    write_response(&mut out, Aead::AesSivCmac256, &[], None);
    assert_eq!(parse_response(&out), Err(KeError::NoCookies));
    let mut err = Vec::new();
    write_error(&mut err, ErrorCode::BadRequest);
    assert_eq!(
        parse_response(&err),
        Err(KeError::Peer(ErrorCode::BadRequest))
    );
    // Oversized cookies are dropped, so a response of only those has none.
    let mut big = Vec::new();
    write_response(
        &mut big,
        Aead::AesSivCmac256,
        &[&[0; MAX_CLIENT_COOKIE_LEN + 1]],
        None,
    );
    assert_eq!(parse_response(&big), Err(KeError::NoCookies));
    // More than eight cookies: the first eight are kept.
    let many: Vec<&[u8]> = (0..12).map(|_| &[5u8; 40][..]).collect();
    let mut m = Vec::new();
    write_response(&mut m, Aead::AesSivCmac256, &many, None);
    assert_eq!(
        parse_response(&m).map(|r| r.cookies.len()),
        Ok(COOKIES_PER_EXCHANGE)
    );
}

#[test]
fn exporter_contexts_follow_rfc8915() {
    assert_eq!(
        exporter_context(Aead::AesSivCmac256, false),
        [0, 0, 0, 15, 0]
    );
    assert_eq!(
        exporter_context(Aead::AesSivCmac512, true),
        [0, 0, 0, 17, 1]
    );
}
