//! The NTS server's keys and settings at run time, on loopback:
//!
//! * cookie keys rotate (`nts rotate`): the cookie file is rewritten with a fresh key first
//!   and stays private (0600); a cookie sealed before a rotation still opens while its key is
//!   among the four kept, and gets an NTS NAK once its key is gone;
//! * SIGHUP reads the certificate again (a renewed certificate is served without a restart),
//!   and the key exchanges of a removed `nts` source are forgotten;
//! * the key-exchange listener obeys the `interface` rules.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use sundial::nts::client::{Exchanged, KeRequest, exchange};
use sundial_proto::nts::ef::{self, UID_LEN};

use crate::nts::{Pki, nts_server};
use crate::support::netns::{Netns, NetnsPair};
use crate::support::{Daemon, LOCAL_CLOCK_CONFIG, eventually, free_port};

/// A TCP port free right now on 127.0.0.1.
fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

/// A key exchange with the server on 127.0.0.1:`ke_port` through `addr`, verified for the name
/// 127.0.0.1 against the test CA.
fn key_exchange(pki: &Pki, addr: Ipv4Addr, ke_port: u16) -> Result<Exchanged, String> {
    exchange(&KeRequest {
        id: 1,
        host: "127.0.0.1".into(),
        addr: addr.into(),
        port: ke_port,
        ca: pki.path("ca.crt"),
        noval: false,
        ask: None,
    })
}

/// Sends one NTS request with `cookie` and the exchange's keys; `Some(true)` for an
/// authenticated reply, `Some(false)` for an NTS NAK, `None` without an answer.
fn nts_query(server: SocketAddr, done: &Exchanged, cookie: &[u8]) -> Option<bool> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut out = vec![0u8; ef::MAX_PACKET_LEN];
    out[0] = 0x23;
    out[40] = 0x5a;
    let uid = [0x11u8; UID_LEN];
    let nonce = [0x22u8; ef::NONCE_LEN];
    let len = ef::write_request(&mut out, &uid, cookie, 0, &done.keys.c2s, &nonce)?;
    socket.send_to(&out[..len], server).ok()?;
    let mut buf = [0u8; 2048];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    assert!(n <= len, "reply of {n} octets to a request of {len}");
    Some(!(buf[1] == 0 && &buf[12..16] == b"NTSN"))
}

/// The key ids in the cookie file, newest first.
fn key_ids(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn cookie_keys_rotate_and_old_cookies_open_for_a_window_then_get_naks() {
    let pki = Pki::generate();
    let ke_port = free_tcp_port();
    let file = pki.path("cookie.keys");
    let ntpd = nts_server(
        &pki,
        ke_port,
        &format!("nts cookie {}\nnts rotate 2\n", file.display()),
    );
    let server = ntpd.addr_v4();
    let done = key_exchange(&pki, Ipv4Addr::LOCALHOST, ke_port).expect("key exchange");
    let first = key_ids(&file).first().cloned().expect("a key in the file");

    // One rotation: the file leads with a fresh key; the old cookie still opens.
    assert!(
        eventually(Duration::from_secs(20), || key_ids(&file)
            .first()
            .is_some_and(|id| *id != first)),
        "no rotation:\n{}",
        ntpd.log()
    );
    let mode = fs::metadata(&file).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the rotated key file is private");
    assert_eq!(
        nts_query(server, &done, &done.cookies[0]),
        Some(true),
        "a cookie from before the rotation:\n{}",
        ntpd.log()
    );

    // Once its key has left the four kept, the same exchange's other cookies get NAKs; the
    // NTP threads take the keys up at the main loop's next publication.
    assert!(
        eventually(Duration::from_secs(40), || !key_ids(&file).contains(&first)),
        "the first key never retired: {:?}",
        key_ids(&file)
    );
    assert!(key_ids(&file).len() <= 4, "{:?}", key_ids(&file));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        nts_query(server, &done, &done.cookies[1]),
        Some(false),
        "a cookie under a retired key:\n{}",
        ntpd.log()
    );
    // A new exchange gives cookies that open.
    let again = key_exchange(&pki, Ipv4Addr::LOCALHOST, ke_port).expect("key exchange");
    assert_eq!(nts_query(server, &again, &again.cookies[0]), Some(true));
    let log = ntpd.stop().log;
    assert!(log.contains("NTS cookie key rotated: new key"), "{log}");
    assert!(log.contains("nts rotate 2: cookies stay valid"), "{log}");
}

#[test]
fn sighup_serves_a_renewed_certificate_and_forgets_a_removed_nts_source() {
    let pki = Pki::generate();
    let ke_port = free_tcp_port();
    let (cert, key) = (pki.path("served.crt"), pki.path("served.key"));
    fs::copy(pki.path("expired.crt"), &cert).expect("copy");
    fs::copy(pki.path("expired.key"), &key).expect("copy");
    let base = format!(
        "{LOCAL_CLOCK_CONFIG}nts enable\nnts cert {}\nnts key {}\nnts port {ke_port}\nnts ca {}\n",
        cert.display(),
        key.display(),
        pki.show("ca.crt"),
    );
    // An NTS source whose key exchange can only fail (nothing listens there).
    let source = format!(
        "server 127.0.0.1 port {} nts ntsport {}\n",
        free_port(),
        free_tcp_port()
    );
    let ntpd = Daemon::start(format!("{base}{source}"));
    let refused = key_exchange(&pki, Ipv4Addr::LOCALHOST, ke_port)
        .expect_err("an expired certificate is refused");
    assert!(refused.to_lowercase().contains("expired"), "{refused}");

    fs::copy(pki.path("server.crt"), &cert).expect("copy");
    fs::copy(pki.path("server.key"), &key).expect("copy");
    fs::write(ntpd.config_path(), &base).expect("config");
    ntpd.signal("HUP");
    let renewed = eventually(Duration::from_secs(15), || {
        key_exchange(&pki, Ipv4Addr::LOCALHOST, ke_port).is_ok()
    });
    let forgot = eventually(Duration::from_secs(15), || {
        ntpd.log()
            .contains("NTS: forgot the key exchanges of 1 removed association(s)")
    });
    let log = ntpd.stop().log;
    assert!(renewed, "the renewed certificate is not served:\n{log}");
    assert!(
        log.contains("SIGHUP: NTS-KE certificate read again"),
        "{log}"
    );
    assert!(forgot, "{log}");
}

/// `openssl s_client` from `ns` to `addr`:4460 with ALPN ntske/1: whether the TLS handshake
/// completed with that protocol.
fn tls_handshake_in(ns: &Netns, pki: &Pki, addr: &str) -> (bool, String) {
    let run = ns.run(
        "openssl",
        &[
            "s_client",
            "-connect",
            addr,
            "-alpn",
            "ntske/1",
            "-CAfile",
            &pki.show("ca.crt"),
        ],
    );
    (run.stdout.contains("ALPN protocol: ntske/1"), run.all())
}

#[test]
fn the_key_exchange_listener_obeys_the_interface_rules() {
    let server = NetnsPair::SERVER_V4.to_string();
    let pki = Pki::generate_for(&server);
    let pair = NetnsPair::new();
    let ntpd = Daemon::start_in(
        &pair.server,
        format!(
            "{LOCAL_CLOCK_CONFIG}nts enable\nnts cert {}\nnts key {}\ninterface ignore {server}\n",
            pki.show("server.crt"),
            pki.show("server.key"),
        ),
    );
    let (ignored, ignored_out) = tls_handshake_in(&pair.client, &pki, &format!("{server}:4460"));
    let (served, served_out) = tls_handshake_in(
        &pair.client,
        &pki,
        &format!("[{}]:4460", NetnsPair::SERVER_V6),
    );
    let log = ntpd.stop().log;
    assert!(
        !ignored,
        "served on an ignored address:\n{ignored_out}\n{log}"
    );
    assert!(served, "{served_out}\n{log}");
    assert!(log.contains("refused 1"), "{log}");
}
