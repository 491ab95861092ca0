//! sundial's ntpdate with symmetric keys (`-a KEYID -k KEYFILE`) against NTPsec's ntpd holding an
//! MD5, a SHA1 and an AES128CMAC key (`keys FILE`, `trustedkey 1 2 3`).
//!
//! NTPsec's orphan server sends a zero reference time, which classic selection rejects whatever
//! the keys say (see `agrees_with_real_ntpdate_on_ntpsec_orphan_server_and_explains_the_drop`).
//! So the authentication outcome is read from the `-d` dump: with the right key every reply
//! passes, the trust register stays `000` and the server is dropped only for its reference time.
//! NTPsec does not answer a request with a wrong MAC at all; the untrusted path is exercised
//! against servers that answer with a crypto-NAK (sundial's ntpd and chronyd).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::PEER_STRATUM;
use crate::support::netns::Netns;
use crate::support::peers::Peer;
use crate::support::{Daemon, LOCAL_CLOCK_CONFIG, TempDir};
use crate::{Run, ntpdate, ntpdate_in};

/// The keys NTPsec serves with, and sundial's copy of them.
const KEYS: &str = "# sundial interop keys\n\
                    1 MD5 sundial-interop\n\
                    2 SHA1 a1b2c3d4e5f60718293a4b5c6d7e8f9012345678\n\
                    3 AES128CMAC 000102030405060708090a0b0c0d0e0f\n";

/// The same ids with other secrets.
const WRONG_KEYS: &str = "1 MD5 not-the-secret\n\
                          2 SHA1 0000000000000000000000000000000000000001\n\
                          3 AES128CMAC ffffffffffffffffffffffffffffffff\n";

/// What classic selection says about NTPsec's zero reference time.
const STALE: &str = "127.0.0.1: Server dropped: server has gone too long without sync\n";

/// What it says about a server that never answered.
const NO_DATA: &str = "127.0.0.1: Server dropped: no data\n";

/// What it says about a server whose replies failed authentication.
const UNTRUSTED: &str = "127.0.0.1: Server dropped: Server is untrusted\n";

/// NTPsec with [`KEYS`] in a namespace of its own, and both keys files for sundial.
struct Keyed {
    /// Declared before `ns`: stopped before the namespace is deleted.
    ntpsec: Peer,
    ns: Netns,
    keys: PathBuf,
    wrong: PathBuf,
    _dir: TempDir,
}

impl Keyed {
    fn start(role: &str) -> Self {
        let dir = TempDir::new("ntpdate-keys");
        let keys = private(dir.write("ntp.keys", KEYS));
        let wrong = private(dir.write("wrong.keys", WRONG_KEYS));
        let ns = Netns::new(role);
        let extra = format!("keys {}\ntrustedkey 1 2 3\n", keys.display());
        let ntpsec = Peer::ntpsec_orphan_in(&ns, &extra);
        Self {
            ntpsec,
            ns,
            keys,
            wrong,
            _dir: dir,
        }
    }

    /// sundial's ntpdate in the namespace, against 127.0.0.1.
    fn ntpdate(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.push("127.0.0.1");
        ntpdate_in(&self.ns, &all)
    }

    /// `-d -p 2 -a ID -k FILE`.
    fn debug_with(&self, id: &str, file: &Path) -> Run {
        let file = file
            .to_str()
            .unwrap_or_else(|| panic!("{}", file.display()));
        self.ntpdate(&["-d", "-p", "2", "-a", id, "-k", file])
    }
}

/// Makes a keys file readable by its owner only (sundial warns about anything else).
fn private(path: PathBuf) -> PathBuf {
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

#[test]
fn ntpsec_replies_pass_authentication_with_md5_sha1_and_cmac_keys() {
    let s = Keyed::start("k");
    for id in ["1", "2", "3"] {
        let run = s.debug_with(id, &s.keys);
        let context = || format!("key {id}: {run:?}\n{}", s.ntpsec.log());
        assert!(
            !run.ok,
            "the zero reference time still rules: {}",
            context()
        );
        assert_eq!(
            run.stdout
                .matches("receive(127.0.0.1): authentication passed\n")
                .count(),
            2,
            "{}",
            context()
        );
        assert!(
            run.stdout
                .contains(&format!("stratum {PEER_STRATUM}, precision ")),
            "{}",
            context()
        );
        assert!(run.stdout.contains(", trust 000\n"), "{}", context());
        assert!(run.stdout.contains(STALE), "{}", context());
        assert!(
            !run.stdout.contains(UNTRUSTED) && !run.stdout.contains("authentication failed"),
            "{}",
            context()
        );
        assert!(!run.stderr.contains("readable by all"), "{}", context());
    }
    // -q: the server line shows the authenticated server was heard; only selection refuses it.
    let keys = s.keys.to_str().unwrap_or_default();
    let run = s.ntpdate(&["-q", "-p", "1", "-a", "1", "-k", keys]);
    assert_eq!(
        run.servers.first().map(|l| l.stratum),
        Some(PEER_STRATUM),
        "{run:?}"
    );
    assert!(
        run.stderr
            .ends_with(": no server suitable for synchronization found\n"),
        "{run:?}"
    );
    // Without -a the keyed server is queried as before, and no reply is checked.
    let run = s.ntpdate(&["-d", "-p", "1"]);
    assert!(
        run.stdout.contains(", trust 000\n") && run.stdout.contains(STALE),
        "{run:?}"
    );
    assert!(!run.stdout.contains("authentication"), "{run:?}");
}

/// NTPsec drops a request whose MAC does not verify without answering (ntpd/ntp_proto.c counts
/// it in `sys_badauth` and sends nothing, not even a crypto-NAK), so with a wrong secret sundial
/// hears nothing and drops the server for want of data, as classic ntpdate does.
#[test]
fn a_wrong_secret_gets_no_answer_from_ntpsec_and_sundial_exits_1() {
    let s = Keyed::start("w");
    for id in ["1", "2", "3"] {
        let run = s.debug_with(id, &s.wrong);
        let context = || format!("key {id}: {run:?}\n{}", s.ntpsec.log());
        assert!(!run.ok, "{}", context());
        assert_eq!(
            run.stdout.matches("127.0.0.1: no reply within ").count(),
            2,
            "{}",
            context()
        );
        assert!(run.stdout.contains(NO_DATA), "{}", context());
        assert!(
            !run.stdout.contains("authentication passed"),
            "{}",
            context()
        );
        assert!(
            run.stderr
                .ends_with(": no server suitable for synchronization found\n"),
            "{}",
            context()
        );
    }
    // The right key still gets answers from the same server.
    let run = s.debug_with("1", &s.keys);
    assert!(
        run.stdout.contains("authentication passed") && run.stdout.contains(STALE),
        "{run:?}"
    );
}

/// sundial's ntpd (here without keys) answers a MAC it cannot verify with a crypto-NAK, as
/// RFC 5905 suggests; NTPsec and chronyd stay silent instead. The NAK carries no time (a CRYP
/// kiss): every such reply fails authentication, and the server gives no data.
#[test]
fn crypto_nak_replies_make_the_server_untrusted() {
    let dir = TempDir::new("ntpdate-nak-keys");
    let keys = private(dir.write("ntp.keys", KEYS));
    let keys = keys.to_str().unwrap_or_default();
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let port = ntpd.port().to_string();
    let run = ntpdate(&[
        "-d",
        "-p",
        "2",
        "-a",
        "1",
        "-k",
        keys,
        "--port",
        &port,
        "127.0.0.1",
    ]);
    let log = ntpd.log();
    assert!(!run.ok, "{run:?}\n{log}");
    assert_eq!(
        run.stdout
            .matches("receive(127.0.0.1): authentication failed: crypto-NAK\n")
            .count(),
        2,
        "{run:?}\n{log}"
    );
    assert!(run.stdout.contains(", trust 003\n"), "{run:?}\n{log}");
    assert!(run.stdout.contains("kiss code CRYP"), "{run:?}\n{log}");
    assert!(run.stdout.contains(NO_DATA), "{run:?}\n{log}");
    // Without -a the same server is used.
    let run = ntpdate(&["-q", "-p", "1", "--port", &port, "127.0.0.1"]);
    assert!(run.ok, "{run:?}\n{log}");
}
