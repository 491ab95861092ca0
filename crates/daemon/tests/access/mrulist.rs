//! `ntpq -c mrulist` over the LAN: Debian's (NTPsec's) ntpq and sundial's list the server's
//! clients after the nonce exchange; the nonce is what lets the list (longer than the
//! request) go to an address that is not loopback, so a forged nonce, or one borrowed from
//! another address, gets a 12-octet error and nothing more.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::lan::{Lan, debian_ntpq_in};
use crate::raw::exchange;
use crate::seed_config;
use crate::support::Daemon;
use crate::support::daemon::sundial_ntpq_in;
use crate::support::peers::ntpdig_json;

/// A mode 6 request with `opcode` and `data`, padded to four octets.
fn control_request(opcode: u8, sequence: u16, data: &[u8]) -> Vec<u8> {
    let mut d = vec![0x16, opcode];
    d.extend_from_slice(&sequence.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    d.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
    d.extend_from_slice(data);
    while d.len() % 4 != 0 {
        d.push(0);
    }
    d
}

/// The data of a single-datagram reply.
fn reply_data(datagram: &[u8]) -> String {
    let count = usize::from(u16::from_be_bytes([datagram[10], datagram[11]]));
    String::from_utf8_lossy(&datagram[12..12 + count]).into_owned()
}

/// The rows of an mrulist table whose remote address is `addr`.
fn rows_for<'a>(out: &'a str, addr: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.split_whitespace().last() == Some(addr))
        .collect()
}

#[test]
fn debian_and_sundial_ntpq_list_the_clients_from_the_lan_and_on_loopback() {
    let lan = Lan::new();
    let ntpd = Daemon::start_in(&lan.server, seed_config());
    let server_lan = IpAddr::V4(Lan::SERVER_LAN);
    for _ in 0..2 {
        ntpdig_json(&lan.outside, "ntpdig", IpAddr::V4(Lan::SERVER_OUTSIDE))
            .unwrap_or_else(|e| panic!("outside host gets no time: {e}\n{}", ntpd.log()));
    }

    // Debian's ntpq from the LAN host (not loopback): the whole list.
    let run = debian_ntpq_in(&lan.lan, &["mrulist"], server_lan);
    let out = &run.stdout;
    assert!(!run.all().contains("***"), "{run:?}\n{}", ntpd.log());
    assert!(
        out.contains(" lstint avgint rstr r m v  count    score   drop rport remote address"),
        "{run:?}"
    );
    let outside = Lan::OUTSIDE_HOST.to_string();
    let rows = rows_for(out, &outside);
    assert_eq!(rows.len(), 1, "{out}");
    // ntpdig: mode 3, version 4, two requests; `restrict default kod nomodify notrap nopeer
    // noquery`: NTPsec bits 0x400|0x80|0x100|0x10|0x40.
    let fields: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(&fields[2..7], ["5d0", "K", "3", "4", "2"], "{out}");
    // The LAN host itself, asking in mode 6 (version 2).
    let lan_rows = rows_for(out, &Lan::LAN_HOST.to_string());
    assert_eq!(lan_rows.len(), 1, "{out}");
    assert!(lan_rows[0].contains(" 6 2 "), "{out}");

    // The same list through loopback in the server's namespace.
    let local = debian_ntpq_in(&lan.server, &["mrulist"], IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(rows_for(&local.stdout, &outside).len(), 1, "{local:?}");

    // sundial's ntpq from the LAN host, numeric: the same row.
    let server_arg = Lan::SERVER_LAN.to_string();
    let ours = sundial_ntpq_in(&lan.lan, &["-n", "-c", "mrulist", &server_arg]);
    assert!(ours.success, "{ours:?}");
    let rows = rows_for(&ours.stdout, &outside);
    assert_eq!(rows.len(), 1, "{ours:?}");
    let fields: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(&fields[2..7], ["5d0", "K", "3", "4", "2"], "{ours:?}");
    // Filtered on the server (the outside host was seen twice), sorted here.
    let ours = sundial_ntpq_in(
        &lan.lan,
        &["-n", "-c", "mrulist mincount=3 sort=-count", &server_arg],
    );
    assert!(ours.success, "{ours:?}");
    assert!(rows_for(&ours.stdout, &outside).is_empty(), "{ours:?}");
    let counts: Vec<u64> = ours
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().nth(6)?.parse().ok())
        .collect();
    assert!(
        !counts.is_empty() && counts.iter().all(|c| *c >= 3),
        "{ours:?}"
    );
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{ours:?}");
    let json = sundial_ntpq_in(
        &lan.lan,
        &["--json", "-c", "mrulist", &Lan::SERVER_LAN.to_string()],
    );
    assert!(
        json.stdout.contains(&format!("\"addr\":\"{outside}\"")),
        "{json:?}"
    );

    // The outside host may not query (noquery): no nonce, no list.
    let refused = debian_ntpq_in(&lan.outside, &["mrulist"], IpAddr::V4(Lan::SERVER_OUTSIDE));
    assert!(!refused.stdout.contains("lstint"), "{refused:?}");
    assert!(
        refused.all().contains("***Request timed out"),
        "{refused:?}"
    );
}

#[test]
fn a_forged_or_borrowed_nonce_gets_only_a_short_error() {
    let lan = Lan::new();
    let ntpd = Daemon::start_in(&lan.server, seed_config());
    let server = Lan::SERVER_LAN;
    let wait = Duration::from_millis(500);
    for _ in 0..3 {
        ntpdig_json(&lan.outside, "ntpdig", IpAddr::V4(Lan::SERVER_OUTSIDE))
            .unwrap_or_else(|e| panic!("outside host gets no time: {e}\n{}", ntpd.log()));
    }
    let nonce_request = [control_request(12, 1, b"")];
    let replies = exchange(&lan.lan, Lan::LAN_HOST, server, &nonce_request, wait);
    let nonce_reply = &replies[0];
    assert_eq!(nonce_reply.len(), 1, "{replies:?}\n{}", ntpd.log());
    // The nonce reply: 44 octets for 12, the one fixed exception for unproven sources.
    assert_eq!(nonce_reply[0].len(), 44);
    let data = reply_data(&nonce_reply[0]);
    let nonce = data
        .trim()
        .strip_prefix("nonce=")
        .unwrap_or_else(|| panic!("{data:?}"))
        .to_owned();

    let list = |nonce: &str| control_request(10, 2, format!("nonce={nonce}, frags=32").as_bytes());
    let mut forged = nonce.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    let request_len = list(&nonce).len();

    // Borrowed: the LAN host's nonce sent from another LAN address.
    let other = Lan::lan_extra()[0];
    let borrowed = exchange(&lan.lan, other, server, &[list(&nonce)], wait);
    // Forged, from the right address.
    let faked = exchange(&lan.lan, Lan::LAN_HOST, server, &[list(&forged)], wait);
    for (what, replies) in [("borrowed", &borrowed), ("forged", &faked)] {
        let octets: usize = replies[0].iter().map(Vec::len).sum();
        assert_eq!(octets, 12, "{what}: {replies:?}");
        // E bit, PERMISSION.
        assert_eq!(
            (replies[0][0][1] & 0x40, replies[0][0][4]),
            (0x40, 1),
            "{what}"
        );
    }
    // The real nonce from its own address: the list, longer than the request.
    let proven = exchange(&lan.lan, Lan::LAN_HOST, server, &[list(&nonce)], wait);
    let octets: usize = proven[0].iter().map(Vec::len).sum();
    assert!(octets > request_len, "{proven:?}");
    let text: String = proven[0].iter().map(|d| reply_data(d)).collect();
    assert!(
        text.contains(&format!("{}:", Lan::OUTSIDE_HOST)) && text.contains("now=0x"),
        "{text}"
    );
}
