//! No amplification against the running daemon: a sweep over every mode, version and many
//! lengths, from loopback (which may use ntpq), from a LAN source (which may use ntpq, but whose
//! address may be spoofed) and from an outside source (which may not). No reply is longer than
//! its request, except mode 6 to loopback, whose replies stay within the responder's bound.

use std::net::Ipv4Addr;

use crate::lan::Lan;
use crate::raw::{SweepResult, sweep};
use crate::seed_config;
use crate::support::Daemon;

/// Most datagrams of one mode 6 reply (`sundial_proto::control::MAX_REPLY_FRAGMENTS`).
const MODE6_MAX_DATAGRAMS: usize = 16;

/// Largest mode 6 datagram: a 12-octet header and 468 data octets.
const MODE6_MAX_DATAGRAM: usize = 480;

/// What a sweep's source may get over mode 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode6 {
    /// Loopback: answers up to the responder's bound.
    Amplified,
    /// A LAN source allowed to query: answers no longer than the request.
    NotAmplified,
    /// An outside source: nothing.
    Refused,
}

/// Checks every result; returns how many time requests and mode 6 requests were answered.
fn check(results: &[SweepResult], mode6: Mode6, who: &str) -> (usize, usize) {
    let (mut time, mut control) = (0, 0);
    for r in results {
        if r.mode == 6 && mode6 == Mode6::Amplified {
            assert!(
                r.datagrams <= MODE6_MAX_DATAGRAMS && r.longest <= MODE6_MAX_DATAGRAM,
                "{who}: {r:?}"
            );
            control += usize::from(r.datagrams > 0);
        } else {
            assert!(
                r.octets <= r.length,
                "{who}: reply longer than request: {r:?}"
            );
            if r.mode == 6 {
                if mode6 == Mode6::Refused {
                    assert_eq!(r.datagrams, 0, "{who}: mode 6 answered: {r:?}");
                }
                control += usize::from(r.datagrams > 0);
            } else {
                time += usize::from(r.datagrams > 0);
            }
        }
    }
    (time, control)
}

#[test]
fn no_request_of_any_mode_version_or_length_is_amplified() {
    let lan = Lan::new();
    let ntpd = Daemon::start_in(&lan.server, seed_config());

    let mut sources = vec![Lan::LAN_HOST];
    sources.extend(Lan::lan_extra());
    let from_lan = sweep(&lan.lan, &sources, Lan::SERVER_LAN);
    let from_outside = sweep(&lan.outside, &[Lan::OUTSIDE_HOST], Lan::SERVER_OUTSIDE);
    let loopback: Vec<Ipv4Addr> = (1..=17).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
    let from_loopback = sweep(&lan.server, &loopback, Ipv4Addr::LOCALHOST);
    // 7 modes × 8 versions × 30 lengths, and 4 variants of each for mode 6.
    let expected = 7 * 8 * 30 + 8 * 30 * 4;
    for (results, who) in [
        (&from_lan, "LAN"),
        (&from_outside, "outside"),
        (&from_loopback, "loopback"),
    ] {
        assert_eq!(results.len(), expected, "the {who} sweep did not finish");
    }

    let (_, control) = check(&from_loopback, Mode6::Amplified, "loopback");
    assert!(control > 0, "loopback: no mode 6 answer");
    assert!(
        from_loopback.iter().any(|r| r.mode == 6 && r.datagrams > 1),
        "no multi-fragment mode 6 reply in the loopback sweep"
    );
    // Client requests of versions 1–4, at least 48 octets that parse, are answered; mode 6
    // requests are answered too, but never at more length than they came with.
    let (time, control) = check(&from_lan, Mode6::NotAmplified, "LAN");
    assert!(
        time > 0 && control > 0,
        "LAN: {time} time, {control} mode 6"
    );
    let (time, control) = check(&from_outside, Mode6::Refused, "outside");
    assert!(
        time > 0 && control == 0,
        "outside: {time} time, {control} mode 6"
    );
    let answered = |results: &[SweepResult], version| {
        results
            .iter()
            .find(|r| r.mode == 3 && r.version == version && r.length == 48)
            .is_some_and(|r| r.datagrams == 1 && r.octets == 48)
    };
    for version in 1..=4 {
        assert!(
            answered(&from_lan, version),
            "LAN: NTPv{version} client request"
        );
        assert!(
            answered(&from_outside, version),
            "outside: NTPv{version} client request"
        );
    }
    assert!(ntpd_alive(ntpd), "ntpd died during the sweep");
}

/// Stops the daemon; true if it was still running and exited cleanly.
fn ntpd_alive(mut ntpd: Daemon) -> bool {
    if !ntpd.is_running() {
        return false;
    }
    ntpd.stop().status.success()
}

/// A key of every type the keys file knows, and a request signed under each.
mod keyed {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use sundial::config::KeyId;
    use sundial::keys::{KeyType, SymmetricKey};

    use crate::lan::Lan;
    use crate::raw::exchange;
    use crate::support::{Daemon, TempDir};
    use crate::{LOCAL_CLOCK, SEED_RESTRICT};

    /// `(id, type, secret)` of the keys file.
    const KEYS: [(u16, KeyType, &str); 6] = [
        (1, KeyType::Md5, "amplify-md5"),
        (2, KeyType::Sha1, "amplify-sha1"),
        (3, KeyType::Sha256, "amplify-sha256"),
        (4, KeyType::Sha384, "amplify-sha384"),
        (5, KeyType::Sha512, "amplify-sha512"),
        (6, KeyType::Aes128Cmac, "amplify-aes-key!"),
    ];

    /// Extension-field octets put between the header and the MAC.
    const FIELDS: [usize; 4] = [0, 16, 28, 64];

    /// How long replies are awaited.
    const WAIT: Duration = Duration::from_secs(2);

    fn keys_file(dir: &TempDir) -> String {
        let text: String = KEYS
            .iter()
            .map(|(id, kind, secret)| format!("{id} {kind} {secret}\n"))
            .collect();
        let path = dir.write("ntp.keys", text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        path.display().to_string()
    }

    fn key(id: u16, kind: KeyType, secret: &str) -> SymmetricKey {
        let id = KeyId::new(id).unwrap_or_else(|| unreachable!());
        SymmetricKey::new(id, kind, secret.as_bytes()).unwrap_or_else(|| unreachable!())
    }

    /// An NTPv4 client request with `fields` octets of extension fields (one field of that
    /// length, type 0x0104) and then `trailer`.
    fn request(fields: usize, n: u8) -> Vec<u8> {
        let mut b = vec![0u8; 48];
        b[0] = 0x23;
        b[40..48].copy_from_slice(&[0x5a, n, 3, 4, 5, 6, 7, 8]);
        if fields > 0 {
            b.extend_from_slice(&[0x01, 0x04]);
            b.extend_from_slice(&u16::try_from(fields).unwrap_or(16).to_be_bytes());
            b.resize(48 + fields, 0);
        }
        b
    }

    /// What the sweep sends: (what, datagram, expected reply length if the MAC verifies).
    fn datagrams() -> Vec<(String, Vec<u8>, Option<usize>)> {
        let mut out = Vec::new();
        let mut n = 0u8;
        for (id, kind, secret) in KEYS {
            let k = key(id, kind, secret);
            for fields in FIELDS {
                n = n.wrapping_add(1);
                let body = request(fields, n);
                // Signed as sundial and NTPsec send it (SHA-2 cut to 20 octets) and whole.
                let cut = k.digest(&body);
                let whole = k.full_digest(&body);
                for digest in [cut.as_bytes(), whole.as_bytes()] {
                    let mut d = body.clone();
                    d.extend_from_slice(&u32::from(id).to_be_bytes());
                    d.extend_from_slice(digest);
                    let replies = 48 + 4 + digest.len();
                    out.push((
                        format!("{kind} +{fields} {}", digest.len()),
                        d.clone(),
                        Some(replies),
                    ));
                    // The same with one bit of the digest flipped: never time.
                    let last = d.len() - 1;
                    d[last] ^= 1;
                    out.push((
                        format!("{kind} +{fields} {} tampered", digest.len()),
                        d,
                        None,
                    ));
                }
            }
        }
        // Trailers of every length after a bare header: nothing in them verifies.
        for len in 0..=72 {
            n = n.wrapping_add(1);
            let mut d = request(0, n);
            d.extend((0..len).map(|i| (i as u8).wrapping_mul(37) ^ n));
            out.push((format!("trailer {len}"), d, None));
        }
        out
    }

    fn sweep(notrust: bool) {
        let dir = TempDir::new("amplify-keys");
        let restrict = if notrust {
            "restrict default notrust\nrestrict 127.0.0.1\n"
        } else {
            SEED_RESTRICT
        };
        let ids: Vec<String> = KEYS.iter().map(|k| k.0.to_string()).collect();
        let config = format!(
            "{LOCAL_CLOCK}{restrict}keys {}\ntrustedkey {}\n",
            keys_file(&dir),
            ids.join(" ")
        );
        let lan = Lan::new();
        let ntpd = Daemon::start_in(&lan.server, config);
        let sent = datagrams();
        let bytes: Vec<Vec<u8>> = sent.iter().map(|(_, d, _)| d.clone()).collect();
        let replies = exchange(&lan.lan, Lan::LAN_HOST, Lan::SERVER_LAN, &bytes, WAIT);
        let mut authenticated = 0;
        for ((what, request, valid), got) in sent.iter().zip(&replies) {
            assert!(got.len() <= 1, "{what}: {} replies", got.len());
            for reply in got {
                assert!(
                    reply.len() <= request.len(),
                    "{what}: a {}-octet reply to {} octets",
                    reply.len(),
                    request.len()
                );
            }
            match (valid, got.first()) {
                (Some(len), Some(reply)) => {
                    assert_eq!(reply.len(), *len, "{what}");
                    authenticated += 1;
                }
                (Some(_), None) => panic!("{what}: a verifying request got nothing"),
                // A MAC that does not verify: a 52-octet crypto-NAK without time, or, under
                // notrust, nothing at all; a bare header (trailer 0) gets time unless notrust.
                (None, Some(reply)) => {
                    let bare = request.len() == 48;
                    assert!(!notrust, "{what}: answered under notrust");
                    assert!(
                        reply.len() == 52 || (bare && reply.len() == 48),
                        "{what}: {} octets",
                        reply.len()
                    );
                    if reply.len() == 52 {
                        assert_eq!(&reply[12..16], b"CRYP", "{what}");
                    }
                }
                (None, None) => {}
            }
        }
        assert_eq!(
            authenticated,
            KEYS.len() * FIELDS.len() * 2,
            "every verifying request is answered"
        );
        assert!(ntpd.stop().status.success());
    }

    #[test]
    fn no_mac_d_request_of_any_length_gets_a_longer_reply() {
        sweep(false);
    }

    #[test]
    fn under_notrust_only_requests_whose_mac_verifies_are_answered() {
        sweep(true);
    }
}
