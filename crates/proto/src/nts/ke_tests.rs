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
    write_request(&mut ours, None);
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

#[test]
fn an_ask_adds_server_and_port_negotiation_records_a_server_accepts() {
    let records = |ask: Option<&Ask>| {
        let mut out = Vec::new();
        write_request(&mut out, ask);
        let parsed = whole_message(&out)
            .expect("one message")
            .iter()
            .map(|r| (r.critical, r.kind, r.body.to_vec()))
            .collect::<Vec<_>>();
        assert_eq!(parse_request(&out).map(|r| r.aead), Ok(Aead::AesSivCmac256));
        parsed
    };
    let plain = records(None);
    assert!(plain.iter().all(|r| r.1 != 6 && r.1 != 7), "{plain:?}");

    let ask = Ask::new("NTP2.Example.org", Some(1123)).expect("a host name");
    let asked = records(Some(&ask));
    // Next Protocol, AEAD, Server (6), Port (7), End: the ask is not critical.
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert_eq!(asked[2], (false, 6, b"ntp2.example.org".to_vec()));
    assert_eq!(asked[3], (false, 7, 1123u16.to_be_bytes().to_vec()));
    assert_eq!(asked[4].1, 0);

    let no_port = records(Some(&Ask::new("192.0.2.9", None).expect("an IPv4 address")));
    assert_eq!(no_port[2], (false, 6, b"192.0.2.9".to_vec()));
    assert_eq!(no_port[3].1, 0, "no port record without a port");
}

#[test]
fn an_ask_takes_only_addresses_and_host_names() {
    let v6 = Ask::new("2001:DB8:0:0::1", None).expect("an IPv6 address");
    assert_eq!(v6.server(), "2001:db8::1", "RFC 5952 form");
    for bad in [
        "",
        "[2001:db8::1]",
        "a b",
        "host_name",
        "-lead.example",
        "trail-.example",
        "1.2.3",
        "a..b",
        "é.example",
        "999.1.1.1",
    ] {
        assert_eq!(Ask::new(bad, None), None, "{bad:?}");
    }
    let long = format!("{}.example", "a".repeat(64));
    assert_eq!(Ask::new(&long, None), None);
    assert!(Ask::new("time.example.", Some(123)).is_some());
}
