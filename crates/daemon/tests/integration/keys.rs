//! Symmetric keys against real peers, both directions.
//!
//! The keys: NTPsec's own `ntpkeygen` writes twenty AES keys (ids 1–10 as 16 printable
//! characters, 11–20 as 32 hex digits); MD5, SHA1, SHA256, SHA384 and SHA512 keys are added by
//! hand (ids 31–35, ASCII and hex). Every NTP program runs without CAP_SYS_TIME.
//!
//! * sundial as a client of NTPsec's ntpd (`server … key N`): with each digest it selects the
//!   server (`*`) and ntpq shows the association authenticated; with another secret, or through
//!   a relay that flips one bit of each reply, it never selects it, and the tampered replies are
//!   counted as `bad-mac`.
//! * NTPsec's ntpd and chronyd as clients of sundial with a key: they select it; with another
//!   secret they never do.
//! * NTPsec's `ntpdig -a` and sundial's `ntpdate -a` authenticate against sundial; under
//!   `restrict default notrust` only they get time.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::daemon::sundial_ntpq_in;
use crate::support::netns::{Netns, NetnsPair};
use crate::support::peers::{Peer, ntpsec_ntpq_in, ntpsec_program};
use crate::support::process::{self, Run};
use crate::support::{Daemon, LOCAL_CLOCK_CONFIG, TempDir, eventually};

/// Keys added to ntpkeygen's file by hand: one per digest sundial and NTPsec share.
const HAND_KEYS: &str = "31 MD5 hand-md5-secret\n\
                         32 SHA1 a1b2c3d4e5f60718293a4b5c6d7e8f9012345678\n\
                         33 SHA256 00112233445566778899aabbccddeeff00112233445566778899aabbccdd\n\
                         34 SHA384 ffeeddccbbaa99887766554433221100ffeeddccbbaa9988\n\
                         35 SHA512 sha512-by-hand\n";

/// Every id in the keys file, as NTPsec's `trustedkey` wants a range: in parentheses.
const TRUSTED: &str = "trustedkey (1 ... 20) 31 32 33 34 35\n";

/// The keys each digest is tested with: an ntpkeygen AES key in each encoding, then the hand
/// keys.
const DIGESTS: [(&str, u16); 7] = [
    ("AES (ntpkeygen, ASCII)", 1),
    ("AES (ntpkeygen, hex)", 11),
    ("MD5", 31),
    ("SHA1", 32),
    ("SHA256", 33),
    ("SHA384", 34),
    ("SHA512", 35),
];

/// How long sundial gets to select an upstream server (iburst: a sample every 2 s).
const SUNDIAL_SELECTS_WITHIN: Duration = Duration::from_secs(30);

/// How long NTPsec's ntpd or chronyd get to select sundial.
const PEER_SELECTS_WITHIN: Duration = Duration::from_secs(90);

/// How long a client is watched to show it never selects a server.
const NEVER_WITHIN: Duration = Duration::from_secs(20);

/// A keys file made by ntpkeygen plus [`HAND_KEYS`], and a copy with every secret changed.
struct Keys {
    good: PathBuf,
    wrong: PathBuf,
    dir: TempDir,
}

impl Keys {
    fn generate() -> Self {
        let dir = TempDir::new("keys");
        let mut cmd = process::notime("python3");
        cmd.arg(ntpsec_program("usr/sbin/ntpkeygen"))
            .current_dir(dir.path());
        let run = process::run(&mut cmd);
        assert!(run.success, "ntpkeygen: {run:?}");
        let generated = fs::read_to_string(dir.path().join("ntp.keys"))
            .unwrap_or_else(|e| panic!("ntpkeygen wrote no ntp.keys: {e}"));
        assert_eq!(
            generated.lines().filter(|l| l.contains(" AES ")).count(),
            20,
            "{generated}"
        );
        let all = format!("{generated}{HAND_KEYS}");
        let good = private(dir.write("all.keys", &all));
        let wrong = private(dir.write("wrong.keys", other_secrets(&all)));
        Self { good, wrong, dir }
    }

    fn good(&self) -> &str {
        self.good.to_str().unwrap_or_default()
    }

    fn wrong(&self) -> &str {
        self.wrong.to_str().unwrap_or_default()
    }

    /// The same keys in chronyd's keyfile format (`ID TYPE KEY`, hex as `HEX:…`, AES as
    /// AES128).
    fn chrony_file(&self, wrong: bool) -> PathBuf {
        let text =
            fs::read_to_string(if wrong { &self.wrong } else { &self.good }).unwrap_or_default();
        let lines: String = text
            .lines()
            .filter_map(|line| {
                let mut w = line.split_whitespace();
                let (id, kind, key) = (w.next()?, w.next()?, w.next()?);
                if id.starts_with('#') {
                    return None;
                }
                let kind = if kind == "AES" { "AES128" } else { kind };
                let key = if key.len() > 20 {
                    format!("HEX:{key}")
                } else {
                    key.to_owned()
                };
                Some(format!("{id} {kind} {key}\n"))
            })
            .collect();
        private(
            self.dir
                .write(if wrong { "wrong.chrony" } else { "good.chrony" }, lines),
        )
    }
}

/// The keys file with the last character of every secret changed (same ids, types, lengths
/// and encodings).
fn other_secrets(text: &str) -> String {
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [id, kind, key] if !id.starts_with('#') => {
                    let mut key = key.to_string();
                    let last = key.pop().unwrap_or('0');
                    key.push(if last == '1' { '2' } else { '1' });
                    format!("{id} {kind} {key}\n")
                }
                _ => format!("{line}\n"),
            }
        })
        .collect()
}

/// Makes a keys file readable by its owner only.
fn private(path: PathBuf) -> PathBuf {
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// The `remote` column of the row `ntpq -pn` marks with `*`, if any.
fn system_peer(run: &Run) -> Option<String> {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix('*'))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

/// sundial's view of its one association: `ntpq -c as` and `-c "rv ID"`.
fn sundial_association(ns: &Netns) -> (String, String) {
    let assoc = sundial_ntpq_in(ns, &["-c", "as", "127.0.0.1"]);
    let id = assoc
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .find(|w| w.parse::<u32>().is_ok())
        .unwrap_or_default()
        .to_owned();
    let rv = sundial_ntpq_in(ns, &["-c", &format!("rv {id}"), "127.0.0.1"]);
    (assoc.stdout, rv.stdout)
}

/// sundial's shutdown line for its association: `sent N, answered M, rejected …`.
fn association_counts(log: &str) -> String {
    log.lines()
        .find(|l| l.contains(": sent ") && l.contains("answered"))
        .unwrap_or_default()
        .to_owned()
}

/// The crypto-NAKs sundial's shutdown log counts (`… and N crypto-NAK(s)`).
fn crypto_naks(log: &str) -> u64 {
    log.split(" crypto-NAK(s)")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// NTPsec's orphan server with every key trusted, in the server namespace of `pair`.
fn keyed_ntpsec(pair: &NetnsPair, keys: &Keys) -> Peer {
    Peer::ntpsec_orphan_in(&pair.server, &format!("keys {}\n{TRUSTED}", keys.good()))
}

/// sundial's config as a client of `server` (`ADDR [port P]`) with key `id` from `keys_file`.
fn sundial_client(server: &str, id: u16, keys_file: &str) -> String {
    format!("keys {keys_file}\n{TRUSTED}server {server} key {id} iburst minpoll 3 maxpoll 3\n")
}

#[test]
fn sundial_selects_ntpsec_with_every_digest_and_shows_it_authenticated() {
    let keys = Keys::generate();
    let pair = NetnsPair::new();
    let ntpsec = keyed_ntpsec(&pair, &keys);
    let server = NetnsPair::SERVER_V4.to_string();
    for (digest, id) in DIGESTS {
        let ntpd = Daemon::start_in(&pair.client, sundial_client(&server, id, keys.good()));
        let selected = eventually(SUNDIAL_SELECTS_WITHIN, || {
            system_peer(&sundial_ntpq_in(&pair.client, &["-pn", "127.0.0.1"]))
                .is_some_and(|p| p == server)
        });
        let (assoc, rv) = sundial_association(&pair.client);
        let log = ntpd.stop().log;
        assert!(
            selected,
            "{digest} (key {id}): NTPsec never selected\n{assoc}\n{rv}\n{log}\n{}",
            ntpsec.log()
        );
        // ntpq's auth column and the status word NTPsec's ntpq decodes: authenb, authentic.
        assert!(
            assoc.lines().any(|l| l.contains(" ok ")),
            "{digest}: {assoc}"
        );
        assert!(
            rv.contains("authenb") && rv.contains(&format!("keyid={id}")),
            "{digest}: {rv}"
        );
        assert!(
            association_counts(&log).contains("rejected none"),
            "{digest}: {log}"
        );
    }
}

#[test]
fn sundial_never_selects_ntpsec_with_another_secret() {
    let keys = Keys::generate();
    let pair = NetnsPair::new();
    let _ntpsec = keyed_ntpsec(&pair, &keys);
    let server = NetnsPair::SERVER_V4.to_string();
    let ntpd = Daemon::start_in(&pair.client, sundial_client(&server, 31, keys.wrong()));
    let selected = eventually(NEVER_WITHIN, || {
        system_peer(&sundial_ntpq_in(&pair.client, &["-pn", "127.0.0.1"])).is_some()
    });
    let (assoc, _) = sundial_association(&pair.client);
    let log = ntpd.stop().log;
    assert!(!selected, "selected with a wrong secret:\n{assoc}\n{log}");
    // NTPsec drops a request whose MAC does not verify, so nothing is ever answered.
    let counts = association_counts(&log);
    assert!(counts.contains("answered 0"), "{counts}\n{log}");
}

/// A UDP relay in a namespace: listens on 127.0.0.1:`port`, forwards datagrams to
/// `upstream`:123 and the replies back, flipping bit 0 of octet `flip` of each reply (a
/// negative `flip` relays faithfully). Stops itself after ten minutes; the test stops it first.
struct Relay {
    child: Child,
}

/// argv: listen port, upstream address, octet to flip (-1: none), lifetime in seconds.
const RELAY_SCRIPT: &str = r#"
import select, socket, sys, time
port, upstream, flip, life = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind(("127.0.0.1", port))
back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client = None
end = time.monotonic() + life
while time.monotonic() < end:
    ready, _, _ = select.select([front, back], [], [], 1.0)
    for s in ready:
        data, src = s.recvfrom(4096)
        if s is front:
            client = src
            back.sendto(data, (upstream, 123))
        elif client is not None:
            data = bytearray(data)
            if 0 <= flip < len(data):
                data[flip] ^= 1
            front.sendto(bytes(data), client)
"#;

impl Relay {
    fn start(ns: &Netns, port: u16, upstream: &str, flip: i32, log: &Path) -> Self {
        let mut cmd = ns.notime("python3");
        cmd.args(["-c", RELAY_SCRIPT])
            .arg(port.to_string())
            .arg(upstream)
            .arg(flip.to_string())
            .arg("600");
        Self {
            child: process::spawn_logged(&mut cmd, log),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = process::stop(&mut self.child, Duration::from_secs(5));
    }
}

#[test]
fn a_relay_flipping_one_bit_of_each_reply_is_never_selected_and_counted() {
    let keys = Keys::generate();
    let pair = NetnsPair::new();
    let _ntpsec = keyed_ntpsec(&pair, &keys);
    let upstream = NetnsPair::SERVER_V4.to_string();
    let dir = TempDir::new("relay");
    // The same relay without the flip is selected: the path itself works.
    for (flip, port) in [(-1, 10123), (33, 10124)] {
        let _relay = Relay::start(
            &pair.client,
            port,
            &upstream,
            flip,
            &dir.path().join(format!("relay{port}.log")),
        );
        let config = sundial_client(&format!("127.0.0.1 port {port}"), 33, keys.good());
        let ntpd = Daemon::start_in(&pair.client, config);
        let limit = if flip < 0 {
            SUNDIAL_SELECTS_WITHIN
        } else {
            NEVER_WITHIN
        };
        let selected = eventually(limit, || {
            system_peer(&sundial_ntpq_in(&pair.client, &["-pn", "127.0.0.1"])).is_some()
        });
        let log = ntpd.stop().log;
        let counts = association_counts(&log);
        if flip < 0 {
            assert!(selected, "faithful relay not selected:\n{log}");
            assert!(counts.contains("rejected none"), "{counts}");
        } else {
            assert!(!selected, "tampered replies selected:\n{log}");
            let bad: u64 = counts
                .split("bad-mac=")
                .nth(1)
                .and_then(|n| n.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(bad >= 3, "tampered replies not counted: {counts}\n{log}");
            assert!(counts.contains("answered 0"), "{counts}");
        }
    }
}

/// sundial serving its local clock in the server namespace with the keys.
fn keyed_sundial_server(pair: &NetnsPair, keys: &Keys, extra: &str) -> Daemon {
    Daemon::start_in(
        &pair.server,
        format!("{LOCAL_CLOCK_CONFIG}keys {}\n{TRUSTED}{extra}", keys.good()),
    )
}

#[test]
fn ntpsec_selects_sundial_with_its_key_and_refuses_it_with_another() {
    let keys = Keys::generate();
    let pair = NetnsPair::new();
    let ntpd = keyed_sundial_server(&pair, &keys, "");
    let server = NetnsPair::SERVER_V4.to_string();
    // The refusal is watched for at least as long as the selection took, and longer.
    let mut watch = NEVER_WITHIN;
    for (keys_file, id, expect) in [(keys.good(), 33, true), (keys.wrong(), 31, false)] {
        let client = Peer::ntpsec_client_in(
            &pair.client,
            &format!(
                "keys {keys_file}\n{TRUSTED}server {server} key {id} iburst minpoll 3 maxpoll 3\n"
            ),
        );
        let limit = if expect { PEER_SELECTS_WITHIN } else { watch };
        let started = Instant::now();
        let mut last = String::new();
        let selected = eventually(limit, || {
            let run = ntpsec_ntpq_in(&pair.client, &["-pn", "127.0.0.1"]);
            last = run.stdout.clone();
            system_peer(&run).is_some_and(|p| p == server)
        });
        assert_eq!(
            selected,
            expect,
            "key {id}:\n{last}\n{}\n{}",
            client.log(),
            ntpd.log()
        );
        watch = watch.max(started.elapsed() * 2);
    }
    let log = ntpd.stop().log;
    // The wrong secret's requests were answered with crypto-NAKs, and counted.
    assert!(crypto_naks(&log) > 0, "no crypto-NAK counted:\n{log}");
}

#[test]
fn chronyd_selects_sundial_with_its_key_and_refuses_it_with_another() {
    let keys = Keys::generate();
    let config = format!("{LOCAL_CLOCK_CONFIG}keys {}\n{TRUSTED}", keys.good());
    let ntpd = Daemon::start(config);
    let port = ntpd.port();
    let mut watch = NEVER_WITHIN;
    for (wrong, id, expect) in [(false, 31, true), (false, 33, true), (true, 11, false)] {
        let keyfile = keys.chrony_file(wrong);
        let client = Peer::chronyd_client_with(&format!(
            "keyfile {}\nserver 127.0.0.1 port {port} key {id} iburst minpoll 0 maxpoll 0\n",
            keyfile.display()
        ));
        let limit = if expect { PEER_SELECTS_WITHIN } else { watch };
        let started = Instant::now();
        let mut last = String::new();
        let selected = eventually(limit, || {
            last = client.chronyc_sources();
            last.lines().any(|l| l.starts_with("^*"))
        });
        assert_eq!(
            selected,
            expect,
            "chronyd key {id} (wrong: {wrong}):\n{last}\n{}",
            client.log()
        );
        watch = watch.max(started.elapsed() * 2);
    }
    let log = ntpd.stop().log;
    assert!(crypto_naks(&log) > 0, "no crypto-NAK counted:\n{log}");
}

#[test]
fn only_authenticated_clients_get_time_under_notrust() {
    let keys = Keys::generate();
    let pair = NetnsPair::new();
    // The local probe that tells the test the daemon is up comes from 127.0.0.1.
    let ntpd = keyed_sundial_server(
        &pair,
        &keys,
        "restrict default notrust\nrestrict 127.0.0.1\n",
    );
    let server = NetnsPair::SERVER_V4.to_string();
    let ntpdig = |args: &[&str]| {
        let mut all = vec!["-j", "-t", "2"];
        all.extend_from_slice(args);
        all.push(&server);
        pair.client.run("ntpdig", &all)
    };
    let plain = ntpdig(&[]);
    assert!(
        !plain.success || !plain.stdout.contains("\"offset\""),
        "unauthenticated ntpdig got time: {plain:?}"
    );
    for (_, id) in DIGESTS {
        let id = id.to_string();
        let signed = ntpdig(&["-a", &id, "-k", keys.good()]);
        assert!(
            signed.success && signed.stdout.contains("\"stratum\":11"),
            "ntpdig -a {id}: {signed:?}\n{}",
            ntpd.log()
        );
    }
    let wrong = ntpdig(&["-a", "31", "-k", keys.wrong()]);
    assert!(
        !wrong.success || !wrong.stdout.contains("\"offset\""),
        "ntpdig with another secret got time: {wrong:?}"
    );
    // sundial's own ntpdate, one-shot query mode.
    let ntpdate = |keys_file: &str| {
        pair.client.run(
            env!("CARGO_BIN_EXE_ntpdate"),
            &["-q", "-p", "1", "-a", "33", "-k", keys_file, &server],
        )
    };
    let ok = ntpdate(keys.good());
    assert!(
        ok.stdout.contains("stratum 11"),
        "ntpdate -a: {ok:?}\n{}",
        ntpd.log()
    );
    let refused = ntpdate(keys.wrong());
    assert!(
        !refused.stdout.contains("stratum 11"),
        "ntpdate with another secret: {refused:?}"
    );
}

#[test]
fn ntpdig_and_ntpdate_authenticate_without_notrust_and_a_wrong_key_gets_no_time() {
    let keys = Keys::generate();
    let pair = NetnsPair::new();
    let ntpd = keyed_sundial_server(&pair, &keys, "");
    let server = NetnsPair::SERVER_V4.to_string();
    let signed = pair.client.run(
        "ntpdig",
        &["-j", "-t", "2", "-a", "35", "-k", keys.good(), &server],
    );
    assert!(signed.success, "{signed:?}\n{}", ntpd.log());
    // A wrong secret gets a crypto-NAK, which carries no time: ntpdig reports nothing usable.
    let wrong = pair.client.run(
        "ntpdig",
        &["-j", "-t", "2", "-a", "35", "-k", keys.wrong(), &server],
    );
    assert!(
        !wrong.success || !wrong.stdout.contains("\"offset\""),
        "{wrong:?}"
    );
    let run = pair.client.run(
        env!("CARGO_BIN_EXE_ntpdate"),
        &["-q", "-d", "-p", "1", "-a", "1", "-k", keys.good(), &server],
    );
    assert!(run.stdout.contains("authentication passed"), "{run:?}");
    let run = pair.client.run(
        env!("CARGO_BIN_EXE_ntpdate"),
        &[
            "-q",
            "-d",
            "-p",
            "1",
            "-a",
            "1",
            "-k",
            keys.wrong(),
            &server,
        ],
    );
    assert!(
        run.stdout.contains("authentication failed") || run.stdout.contains("untrusted"),
        "{run:?}"
    );

    // What those exchanges did to the keys, as NTPsec's `ntpq -c authinfo` reads it (asked on
    // the server's loopback: only loopback gets answers longer than the request). The mode 6
    // snapshot is republished once a second, so the last exchanges may take that long to show.
    // Each line is the label, the count, then (for packet counts) a rate.
    let number = |run: &Run, label: &str| {
        run.stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut authinfo = ntpsec_ntpq_in(&pair.server, &["-c", "authinfo", "127.0.0.1"]);
    eventually(Duration::from_secs(5), || {
        authinfo = ntpsec_ntpq_in(&pair.server, &["-c", "authinfo", "127.0.0.1"]);
        number(&authinfo, "decryptions:").is_some_and(|n| n >= 4)
    });
    assert!(
        authinfo.success && authinfo.stdout.contains("stored keys:"),
        "{authinfo:?}"
    );
    let line = |label: &str| {
        number(&authinfo, label)
            .unwrap_or_else(|| panic!("no number for {label:?} in {authinfo:?}"))
    };
    // Every signed request was checked (ntpdig's and ntpdate's, right key and wrong), the two
    // wrong-secret requests failed, and each good one was answered with a MAC.
    assert!(line("stored keys:") >= 1, "{authinfo:?}");
    assert!(line("decryptions:") >= 4, "{authinfo:?}");
    assert!(
        line("digest failures:") + line("CMAC failures:") >= 2,
        "{authinfo:?}"
    );
    assert!(line("encryptions:") >= 2, "{authinfo:?}");
    assert!(
        line("key lookups:") >= line("decryptions:") + line("encryptions:"),
        "{authinfo:?}"
    );
    let sysinfo = ntpsec_ntpq_in(&pair.server, &["-c", "rv 0 authdelay", "127.0.0.1"]);
    let authdelay = sysinfo
        .stdout
        .trim()
        .strip_prefix("authdelay=")
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(authdelay, Some(0.0), "{sysinfo:?}");
}

#[test]
fn ntpd_check_reports_keys_file_problems_at_their_line_and_column() {
    let dir = TempDir::new("check-keys");
    let keys = dir.write(
        "bad.keys",
        "1 MD5 fine\n2 SHA256 zz-not-hex-but-longer-than-20\n",
    );
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o640)).unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        "keys {}\ntrustedkey 1 2\nserver 192.0.2.1 key 2\nserver 192.0.2.2 key 7\n",
        keys.display()
    );
    let (status, out, conf) = Daemon::check(&dir, "ntp.conf", config.as_bytes());
    assert!(!status.success(), "{out}");
    let shown_keys = keys.display().to_string();
    let shown_conf = conf.display().to_string();
    for expected in [
        format!("{shown_keys}:2:10: error: "),
        format!("{shown_conf}:4:1: warning: key 7 is not listed by trustedkey"),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert!(!out.contains("fine"), "key material in the output:\n{out}");
    // Fixed, the file parses; that its group may read it is a warning at the `keys` line.
    fs::write(&keys, "1 MD5 fine\n2 SHA256 sha256-secret\n").unwrap_or_else(|e| panic!("{e}"));
    let (status, out, _) = Daemon::check(&dir, "ntp.conf", config.as_bytes());
    assert!(status.success(), "{out}");
    let expected =
        format!("{shown_conf}:1:1: warning: key file {shown_keys} is readable by its group");
    assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    assert!(
        !out.contains("fine") && !out.contains("sha256-secret"),
        "{out}"
    );
}

#[test]
fn sighup_rereads_the_keys_file_and_keeps_the_running_keys_when_it_is_broken() {
    let dir = TempDir::new("reload-keys");
    let keys = private(dir.write("ntp.keys", "31 MD5 first-secret\n"));
    let old = private(dir.write("old.keys", "31 MD5 first-secret\n"));
    let new = private(dir.write("new.keys", "31 MD5 second-secret\n"));
    let config = format!(
        "{LOCAL_CLOCK_CONFIG}keys {}\ntrustedkey 31\n",
        keys.display()
    );
    let ntpd = Daemon::start(config);
    let port = ntpd.port().to_string();
    let passes = |keys_file: &Path| {
        let file = keys_file.to_str().unwrap_or_default();
        let run = process::run(process::notime(env!("CARGO_BIN_EXE_ntpdate")).args([
            "-q",
            "-d",
            "-p",
            "1",
            "-a",
            "31",
            "-k",
            file,
            "--port",
            &port,
            "127.0.0.1",
        ]));
        run.stdout.contains("authentication passed")
    };
    assert!(passes(&old) && !passes(&new), "{}", ntpd.log());
    // The keys file changes, ntp.conf does not: a reload still reads it again.
    fs::write(&keys, "31 MD5 second-secret\n").unwrap_or_else(|e| panic!("{e}"));
    ntpd.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || ntpd
            .log()
            .contains("SIGHUP: 1 trusted key(s) in force")),
        "{}",
        ntpd.log()
    );
    assert!(passes(&new) && !passes(&old), "{}", ntpd.log());
    // A broken keys file keeps the keys in force.
    fs::write(&keys, "31 MD5\n").unwrap_or_else(|e| panic!("{e}"));
    ntpd.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || ntpd
            .log()
            .contains("keeping the running keys")),
        "{}",
        ntpd.log()
    );
    assert!(passes(&new), "{}", ntpd.log());
    ntpd.stop().assert_success();
}
