//! End-to-end tests of the responder against the byte fixtures of ntpq-mode6.md §8 and real
//! NTPsec 1.2.2 replies, round trips through the client side, and property tests.

use core::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::access::RestrictFlags;
use crate::packet::{Leap, Mode, ReferenceId};
use crate::property;
use crate::select::Tally;
use crate::time::NtpTimestamp;

const NOW: NtpTimestamp = NtpTimestamp::from_parts(0xeeb3_a019, 0x6e7b_6029);

fn id(n: u16) -> AssociationId {
    AssociationId::new(n).unwrap()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// The system of real NTPsec 1.2.2 in orphan mode at stratum 8, as observed on the wire.
fn ntpsec_orphan_system() -> SystemVars {
    SystemVars {
        clock_source: ClockSource::Unspecified,
        event_count: 1,
        event_code: 6,
        version: "ntpd ntpsec-1.2.2".to_owned(),
        processor: "x86_64".to_owned(),
        system: "Linux/6.18.44-fc-v669".to_owned(),
        leap: Leap::NoWarning,
        stratum: 8,
        precision: -24,
        refid: ReferenceId::LOOPBACK,
        clk_jitter: 6e-8,
        ..SystemVars::default()
    }
}

/// The two associations of ntpq-mode6.md §8: 61234 configured but never reached (0x8011) and
/// 61235 the reachable system peer (0x1614).
fn reference_snapshot() -> ControlSnapshot {
    let mut mobilized = PeerVars::new(id(0xef32), v4(198, 51, 100, 20), 123);
    mobilized.event_count = 1;
    mobilized.event_code = 1;
    let mut sys_peer = PeerVars::new(id(0xef33), v4(192, 0, 2, 10), 123);
    sys_peer.configured = false;
    sys_peer.reach = 0o377;
    sys_peer.tally = Tally::SystemPeer;
    sys_peer.event_count = 1;
    sys_peer.event_code = 4;
    ControlSnapshot {
        system: SystemVars {
            clock_source: ClockSource::Ntp,
            event_count: 1,
            event_code: 5,
            leap: Leap::NoWarning,
            stratum: 3,
            peer: Some(id(0xef33)),
            ..SystemVars::default()
        },
        peers: vec![mobilized, sys_peer],
    }
}

fn replies(request: &[u8], snapshot: &ControlSnapshot) -> (ControlOutcome, Vec<Vec<u8>>) {
    replies_with(request, ControlAccess::READ, snapshot)
}

fn replies_with(
    request: &[u8],
    access: ControlAccess,
    snapshot: &ControlSnapshot,
) -> (ControlOutcome, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let outcome = respond(request, access, snapshot, NOW, &mut |d| {
        out.push(d.to_vec())
    });
    (outcome, out)
}

fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// Sends `request` and reassembles the reply with the client side.
fn ask(
    request: ClientRequest<'_>,
    snapshot: &ControlSnapshot,
) -> Result<ControlResponse, ResponseError> {
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let len = request.encode(&mut buf).unwrap();
    let (_, fragments) = replies(&buf[..len], snapshot);
    let mut r = Reassembler::new(request.opcode, request.sequence);
    for f in &fragments {
        if let Progress::Complete(done) = r.handle(f)? {
            return Ok(done);
        }
    }
    panic!("incomplete response: {fragments:?}")
}

#[test]
fn readstat_reply_matches_the_reference_fixture() {
    let (_, out) = replies(
        &hex("d6 01 0001 0000 0000 0000 0000"),
        &reference_snapshot(),
    );
    assert_eq!(
        out,
        [hex("16 81 0001 0615 0000 0000 0008 ef32 8011 ef33 1614")]
    );
}

#[test]
fn readvar_reply_carries_the_peer_status_word() {
    let (_, out) = replies(
        &hex("d6 02 0003 0000 ef33 0000 0000"),
        &reference_snapshot(),
    );
    assert_eq!(out.len(), 2, "the default peer list takes two fragments");
    // VN 2, mode 6, R|M|READVAR, sequence 3, peer status 0x1614, association 61235.
    assert_eq!(out[0][..8], hex("16 a2 0003 1614 ef33")[..]);
    assert_eq!(out[1][..8], hex("16 82 0003 1614 ef33")[..]);
    let text = String::from_utf8_lossy(&out[0][12..]);
    assert!(
        text.starts_with("srcadr=192.0.2.10, srcport=123, dstadr=0.0.0.0"),
        "{text}"
    );
}

#[test]
fn unknown_association_is_the_reference_badassoc_reply() {
    let (outcome, out) = replies(
        &hex("16 02 0007 0000 03e7 0000 0000"),
        &reference_snapshot(),
    );
    assert_eq!(out, [hex("16 c2 0007 0400 03e7 0000 0000")]);
    assert!(matches!(
        outcome,
        ControlOutcome::Answered(Answer {
            error: Some(ErrorCode::BadAssociation),
            ..
        })
    ));
}

#[test]
fn system_variables_match_real_ntpsec_byte_for_byte() {
    let snapshot = ControlSnapshot {
        system: ntpsec_orphan_system(),
        peers: Vec::new(),
    };
    let (_, out) = replies(&hex("16 02 0007 0000 0000 0000 0000"), &snapshot);
    // Observed from NTPsec 1.2.2 `tos orphan 8` (length 364: 349 octets of data + 3 of padding).
    let expected = "leap=0, stratum=8, precision=-24, rootdelay=0.000, rootdisp=0.000,\r\n\
        refid=127.0.0.1, reftime=0x00000000.00000000, tc=0, peer=0,\r\n\
        offset=0.000000, frequency=0.000000, sys_jitter=0.000000,\r\n\
        clk_jitter=0.000060, clock=0xeeb3a019.6e7b6029, processor=\"x86_64\",\r\n\
        system=\"Linux/6.18.44-fc-v669\", version=\"ntpd ntpsec-1.2.2\",\r\n\
        clk_wander=0.000000, mintc=0\r\n";
    let mut datagram = hex("16 82 0007 0016 0000 0000 015d");
    datagram.extend_from_slice(expected.as_bytes());
    datagram.extend_from_slice(&[0; 3]);
    assert_eq!(out, [datagram]);
}

#[test]
fn named_variables_come_in_table_order_like_ntpsec() {
    let snapshot = ControlSnapshot {
        system: ntpsec_orphan_system(),
        peers: Vec::new(),
    };
    let request = ClientRequest::read_variables(9, 0, b"stratum,leap");
    let response = ask(request, &snapshot).unwrap();
    assert_eq!(response.data, b"leap=0, stratum=8\r\n");
    assert_eq!(response.header.status, 0x0016);
    let unknown = ClientRequest::read_variables(10, 0, b"stratum,foo");
    assert_eq!(
        ask(unknown, &snapshot),
        Err(ResponseError::Server(ErrorCode::UnknownVariable))
    );
}

#[test]
fn a_server_standing_in_on_the_local_clock_names_it_at_any_stratum() {
    let local = |refid_is_text| ControlSnapshot {
        system: SystemVars {
            clock_source: ClockSource::Local,
            leap: Leap::NoWarning,
            stratum: 11,
            refid: ReferenceId::LOCL,
            refid_is_text,
            ..SystemVars::default()
        },
        peers: Vec::new(),
    };
    let request = |seq| ClientRequest::read_variables(seq, 0, b"stratum,refid");
    let text = ask(request(11), &local(true)).unwrap();
    assert_eq!(text.data, b"stratum=11, refid=LOCL\r\n");
    // An address-derived refid at the same stratum stays a dotted quad.
    let address = ask(request(12), &local(false)).unwrap();
    assert_eq!(address.data, b"stratum=11, refid=76.79.67.76\r\n");
}

#[test]
fn peer_defaults_are_the_ntpsec_order_with_three_decimals() {
    let mut peer = PeerVars::new(id(17767), v4(10, 201, 0, 1), 123);
    peer.dstadr = v4(10, 201, 0, 2);
    peer.dstport = 123;
    peer.leap = Leap::NoWarning;
    peer.stratum = 8;
    peer.hpoll = 3;
    peer.ppoll = 3;
    peer.precision = -23;
    peer.refid = ReferenceId::LOOPBACK;
    peer.rec = NtpTimestamp::from_parts(0xeeb3_a04b, 0x4a28_1b94);
    peer.reach = 3;
    peer.delay = 52.522e-6;
    peer.offset = -9.794e-6;
    peer.jitter = 25.27e-6;
    peer.dispersion = 0.062_543;
    peer.pmode = Mode::Server;
    peer.headway = 23;
    let snapshot = ControlSnapshot {
        system: SystemVars::default(),
        peers: vec![peer],
    };
    let response = ask(ClientRequest::read_variables(1, 17767, b""), &snapshot).unwrap();
    let expected = "srcadr=10.201.0.1, srcport=123, dstadr=10.201.0.2, dstport=123, leap=0,\r\n\
        hmode=3, stratum=8, ppoll=3, hpoll=3, precision=-23, rootdelay=0.000,\r\n\
        rootdisp=0.000, refid=127.0.0.1, reftime=0x00000000.00000000,\r\n\
        rec=0xeeb3a04b.4a281b94, reach=0x3, unreach=0, delay=0.053,\r\n\
        offset=-0.010, jitter=0.025, dispersion=62.543, keyid=0,\r\n\
        filtdelay= 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00,\r\n\
        filtoffset= 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00, pmode=4,\r\n\
        filtdisp= 16000.00 16000.00 16000.00 16000.00 16000.00 16000.00 16000.00 16000.00,\r\n\
        flash=0x0, headway=23\r\n";
    assert_eq!(String::from_utf8_lossy(&response.data), expected);
}

#[test]
fn pool_and_refclock_rows_carry_srchost_and_text_refids() {
    let mut pool = PeerVars::new(id(3), v4(0, 0, 0, 0), 0);
    pool.is_pool_prototype = true;
    pool.refid = ReferenceId::POOL;
    pool.srchost = Some("0.debian.pool.ntp.org".to_owned());
    let mut local = PeerVars::new(id(4), v4(127, 127, 1, 0), 123);
    local.is_refclock = true;
    local.stratum = 10;
    local.refid = ReferenceId::LOCL;
    local.srchost = Some("LOCAL(0)".to_owned());
    let snapshot = ControlSnapshot {
        system: SystemVars::default(),
        peers: vec![pool, local],
    };
    let list = ask(ClientRequest::read_status(1), &snapshot).unwrap();
    // The pool prototype has the broadcast bit, as in ntpd (ntpq shows reach `none`).
    assert_eq!(
        parse_association_list(&list.data),
        [(3, 0x8800), (4, 0x8000)]
    );
    let vars = |assoc| {
        let r = ask(ClientRequest::read_variables(2, assoc, b""), &snapshot).unwrap();
        parse_varlist(&r.data)
    };
    let get = |vars: &[(String, String)], name: &str| {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let pool_vars = vars(3);
    assert_eq!(get(&pool_vars, "refid"), "POOL");
    assert_eq!(get(&pool_vars, "srchost"), "\"0.debian.pool.ntp.org\"");
    let local_vars = vars(4);
    assert_eq!(get(&local_vars, "refid"), "LOCL");
    assert_eq!(get(&local_vars, "srchost"), "\"LOCAL(0)\"");
    assert_eq!(local_vars.last().unwrap().0, "srchost");
}

#[test]
fn readclock_answers_only_for_reference_clocks() {
    let mut snapshot = reference_snapshot();
    let clock = |assoc| {
        ask(
            ClientRequest {
                opcode: Opcode::ReadClock,
                ..ClientRequest::read_variables(5, assoc, b"")
            },
            &snapshot,
        )
    };
    assert_eq!(
        clock(0),
        Err(ResponseError::Server(ErrorCode::BadAssociation))
    );
    assert_eq!(
        clock(0xef33),
        Err(ResponseError::Server(ErrorCode::BadAssociation))
    );
    let mut local = PeerVars::new(id(7), v4(127, 127, 1, 0), 123);
    local.is_refclock = true;
    local.clock.name = "LOCAL".to_owned();
    local.clock.device = "Undisciplined local clock".to_owned();
    local.clock.stratum = 10;
    local.clock.refid = ReferenceId::LOCL;
    local.clock.polls = 1;
    snapshot.peers.push(local);
    let clock = |assoc| {
        ask(
            ClientRequest {
                opcode: Opcode::ReadClock,
                ..ClientRequest::read_variables(5, assoc, b"")
            },
            &snapshot,
        )
    };
    let expected = "name=\"LOCAL\", timecode=\"\", poll=1, noreply=0, badformat=0, baddata=0,\r\n\
        stratum=10, refid=LOCL, flags=0, device=\"Undisciplined local clock\"\r\n";
    for assoc in [0, 7] {
        let r = clock(assoc).unwrap();
        assert_eq!(String::from_utf8_lossy(&r.data), expected);
        assert_eq!(r.header.status, 0);
    }
}

#[test]
fn writes_configuration_and_traps_are_refused() {
    let snapshot = reference_snapshot();
    let code = |opcode: u8| {
        let mut req = hex("16 00 0001 0000 0000 0000 0004");
        req[1] = opcode;
        req.extend_from_slice(b"x=1\0");
        match replies(&req, &snapshot).0 {
            ControlOutcome::Answered(a) => a.error,
            ControlOutcome::Ignored(why) => panic!("{why}"),
        }
    };
    // Writes, configuration, traps (6, 31) and the MRU list (10, 12): all refused.
    for op in [3, 5, 6, 8, 9, 10, 11, 12, 31] {
        assert_eq!(code(op), Some(ErrorCode::Permission), "opcode {op}");
    }
    for op in [7, 13, 20] {
        assert_eq!(code(op), Some(ErrorCode::BadOpcode), "opcode {op}");
    }
    assert_eq!(code(0), None);
}

#[test]
fn restrict_flags_decide_whether_and_what_to_answer() {
    let snapshot = reference_snapshot();
    let noquery = ControlAccess::from_restrict(RestrictFlags::NOQUERY);
    let (outcome, out) = replies_with(&hex("16 02 0001 0000 0000 0000 0000"), noquery, &snapshot);
    assert_eq!(outcome, ControlOutcome::Ignored(IgnoreReason::Restricted));
    assert!(out.is_empty());
    let nomrulist =
        ControlAccess::from_restrict(RestrictFlags::NOMRULIST | RestrictFlags::NOMODIFY);
    let (_, out) = replies_with(&hex("16 0a 0001 0000 0000 0000 0000"), nomrulist, &snapshot);
    assert_eq!(out, [hex("16 ca 0001 0100 0000 0000 0000")]);
}

#[test]
fn malformed_requests_get_badfmt_or_nothing() {
    let snapshot = reference_snapshot();
    let (_, out) = replies(&hex("16 02 0005 0000 0000 0000 0010 6c656170"), &snapshot);
    assert_eq!(out, [hex("16 c2 0005 0200 0000 0000 0000")]);
    let (outcome, out) = replies(&hex("16 82 0005 0000 0000 0000 0000"), &snapshot);
    assert_eq!(outcome, ControlOutcome::Ignored(IgnoreReason::NotARequest));
    assert!(out.is_empty());
}

/// A snapshot with `n` associations.
fn many_peers(n: u16) -> ControlSnapshot {
    ControlSnapshot {
        system: SystemVars::default(),
        peers: (1..=n)
            .map(|i| PeerVars::new(id(i), v4(192, 0, 2, 1), 123))
            .collect(),
    }
}

#[test]
fn long_replies_are_fragmented_at_468_octets() {
    let (outcome, out) = replies(&hex("16 01 0001 0000 0000 0000 0000"), &many_peers(200));
    assert_eq!(out.len(), 2);
    let first = ControlHeader::decode(out[0][..12].try_into().unwrap());
    let second = ControlHeader::decode(out[1][..12].try_into().unwrap());
    assert_eq!((first.more, first.offset, first.count), (true, 0, 468));
    assert_eq!(
        (second.more, second.offset, second.count),
        (false, 468, 332)
    );
    assert_eq!(first.status, second.status);
    assert_eq!((out[0].len(), out[1].len()), (480, 344));
    assert!(matches!(
        outcome,
        ControlOutcome::Answered(Answer {
            fragments: 2,
            octets: 824,
            ..
        })
    ));
}

#[test]
fn replies_stop_at_sixteen_fragments() {
    let (outcome, out) = replies(&hex("16 01 0001 0000 0000 0000 0000"), &many_peers(3000));
    assert_eq!(out.len(), MAX_REPLY_FRAGMENTS);
    assert!(matches!(
        outcome,
        ControlOutcome::Answered(Answer {
            truncated: true,
            ..
        })
    ));
    let list = ask(ClientRequest::read_status(1), &many_peers(3000)).unwrap();
    assert_eq!(list.data.len(), MAX_REPLY_DATA);
}

#[test]
fn reassembly_survives_reordering_duplicates_and_strangers() {
    let snapshot = many_peers(300);
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let len = ClientRequest::read_status(77).encode(&mut buf).unwrap();
    let (_, fragments) = replies(&buf[..len], &snapshot);
    assert_eq!(fragments.len(), 3);
    let mut r = Reassembler::new(Opcode::ReadStatus, 77);
    let stranger = {
        let mut f = fragments[0].clone();
        f[3] = 78; // another sequence number
        f
    };
    assert_eq!(
        r.handle(&stranger),
        Ok(Progress::Dropped(FragmentDrop::OtherRequest))
    );
    assert_eq!(r.handle(&fragments[2]), Ok(Progress::NeedMore));
    assert_eq!(
        r.handle(&fragments[2]),
        Ok(Progress::Dropped(FragmentDrop::Overlap))
    );
    assert_eq!(
        r.handle(&fragments[0][..fragments[0].len() - 2]),
        Ok(Progress::Dropped(FragmentDrop::BadLength))
    );
    assert_eq!(r.handle(&fragments[0]), Ok(Progress::NeedMore));
    let Ok(Progress::Complete(done)) = r.handle(&fragments[1]) else {
        panic!("not complete")
    };
    assert_eq!(parse_association_list(&done.data).len(), 300);
}

#[test]
fn any_bytes_never_panic_and_every_datagram_is_well_framed() {
    let checked = property::run(proptest::collection::vec(any::<u8>(), 0..600), |bytes| {
        fuzz_respond(&bytes);
        Ok(())
    });
    assert_eq!(checked, property::CASES);
}

#[test]
fn plausible_requests_are_answered_within_bounds() {
    let strategy = (
        prop_oneof![
            Just(0x16u8),
            Just(0xd6),
            Just(0x0e),
            Just(0x26),
            any::<u8>()
        ],
        0u8..32,
        prop_oneof![Just(0u16), 1u16..3, any::<u16>()],
        proptest::collection::vec(
            prop_oneof![Just(b','), Just(b'='), Just(b' '), Just(0), b'a'..=b'z'],
            0..100,
        ),
        -4i32..4,
    );
    let checked = property::run(
        strategy,
        |(first, opcode, association, payload, count_skew)| {
            let count = u16::try_from((payload.len() as i32 + count_skew).max(0)).unwrap();
            let mut req = vec![first, opcode, 0, 1, 0, 0];
            req.extend_from_slice(&association.to_be_bytes());
            req.extend_from_slice(&[0, 0]);
            req.extend_from_slice(&count.to_be_bytes());
            req.extend_from_slice(&payload);
            req.resize(req.len().next_multiple_of(4), 0);
            fuzz_respond(&req);
            Ok(())
        },
    );
    assert_eq!(checked, property::CASES);
}

#[test]
fn encoded_requests_parse_back() {
    let strategy = (
        1u8..=4,
        0u8..32,
        any::<u16>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..=MAX_DATA_LEN),
    );
    let checked = property::run(
        strategy,
        |(version, opcode, sequence, association, data)| {
            let request = ClientRequest {
                version,
                opcode: Opcode::from_code(opcode),
                sequence,
                association,
                data: &data,
            };
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let len = request.encode(&mut buf).unwrap();
            prop_assert_eq!(len % 4, 0);
            let frame = RequestFrame::parse(&buf[..len]).unwrap();
            prop_assert_eq!(frame.header.version, version);
            prop_assert_eq!(frame.header.opcode.code(), opcode);
            prop_assert_eq!(frame.header.sequence, sequence);
            prop_assert_eq!(frame.header.association, association);
            prop_assert_eq!(frame.data, &data[..]);
            Ok(())
        },
    );
    assert_eq!(checked, property::CASES);
}

#[test]
fn shuffled_fragments_reassemble_to_the_original() {
    let checked = property::run((0u16..500, any::<u64>()), |(n, seed)| {
        let snapshot = many_peers(n);
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let len = ClientRequest::read_status(5).encode(&mut buf).unwrap();
        let (_, mut fragments) = replies(&buf[..len], &snapshot);
        // A seeded Fisher–Yates shuffle, plus a duplicate of the first fragment.
        let mut state = seed | 1;
        for i in (1..fragments.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            fragments.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap());
        }
        fragments.push(fragments[0].clone());
        let mut r = Reassembler::new(Opcode::ReadStatus, 5);
        let mut done = None;
        for f in &fragments {
            if let Progress::Complete(c) = r.handle(f).unwrap() {
                done = Some(c);
            }
        }
        let done = done.expect("complete");
        let ids: Vec<u16> = parse_association_list(&done.data)
            .iter()
            .map(|p| p.0)
            .collect();
        prop_assert_eq!(ids, (1..=n).collect::<Vec<_>>());
        Ok(())
    });
    assert_eq!(checked, property::CASES);
}
