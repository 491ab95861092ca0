//! The real NTP programs the tests run against sundial, each without CAP_SYS_TIME: NTPsec's
//! `ntpdig`/`sntp` and `ntpdate` (Debian packages, query-only), `chronyd -Q`, and the servers
//! of [`Peer`] — chronyd and NTPsec's ntpd from the unpacked packages (tools/install-test-peers).

use std::fs::{self, Permissions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use super::free_port;
use super::netns::Netns;
use super::process::{self, Run, notime, output_within};
use super::sntp::SntpClient;
use super::tempdir::TempDir;

/// Where tools/install-test-peers unpacks chrony unless `SUNDIAL_CHRONY_DIR` says otherwise.
const DEFAULT_CHRONY_DIR: &str = "/opt/sundial-peers/chrony";

/// Where tools/install-test-peers unpacks NTPsec unless `SUNDIAL_NTPSEC_DIR` says otherwise
/// (`dpkg -x`, never installed: installing starts a service that disciplines the clock).
const DEFAULT_NTPSEC_DIR: &str = "/opt/sundial-peers/ntpsec";

/// Stratum NTPsec's ntpd serves as [`Peer::ntpsec_orphan_in`] (`tos orphan 8`).
pub(crate) const NTPSEC_ORPHAN_STRATUM: u8 = 8;

/// NTPsec's orphan-mode server without sources (real-peers.md §4): stratum 8 at once, refid
/// 127.0.0.1. `unrestrict … limited kod` lifts NTPsec's built-in rate limit, which would
/// otherwise answer a fast client with RATE kisses.
const NTPSEC_ORPHAN_CONFIG: &str = "tos orphan 8 orphanwait 0
disable ntp
disable kernel
restrict default
restrict 127.0.0.1
restrict ::1
unrestrict default limited kod
";

/// How long a [`Peer`] server may take to serve its stratum after it was started.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Pause between readiness probes.
const PROBE_PAUSE: Duration = Duration::from_millis(100);

/// How long one readiness probe waits for its reply.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// How long a [`Peer`] has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What a missing peer tells the developer.
const INSTALL_HINT: &str = "run tools/test-all to install test peers";

/// Upper bound for one run of a one-shot client (their own timeouts are shorter).
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory chrony is unpacked in: `$SUNDIAL_CHRONY_DIR` or /opt/sundial-peers/chrony.
///
/// # Panics
/// If chronyd is not there: the tests need it (they fail rather than skip).
pub(crate) fn chrony_dir() -> PathBuf {
    let dir = std::env::var_os("SUNDIAL_CHRONY_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_CHRONY_DIR), PathBuf::from);
    let chronyd = dir.join("usr/sbin/chronyd");
    assert!(
        chronyd.is_file(),
        "{} not found: {INSTALL_HINT}",
        chronyd.display()
    );
    dir
}

/// A program of the unpacked NTPsec package: `$SUNDIAL_NTPSEC_DIR/PROGRAM` or
/// /opt/sundial-peers/ntpsec/PROGRAM (`program` is e.g. `usr/sbin/ntpd`).
///
/// # Panics
/// If it is not there: the tests need it (they fail rather than skip).
pub(crate) fn ntpsec_program(program: &str) -> PathBuf {
    let path = std::env::var_os("SUNDIAL_NTPSEC_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_NTPSEC_DIR), PathBuf::from)
        .join(program);
    assert!(
        path.is_file(),
        "{} not found: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// NTPsec's (Debian's) own `ntpq` from the unpacked package.
///
/// # Panics
/// If it is not there.
pub(crate) fn ntpsec_ntpq() -> PathBuf {
    ntpsec_program("usr/bin/ntpq")
}

/// NTPsec's (Debian's) own `ntpq` inside `ns`, without CAP_SYS_TIME.
pub(crate) fn ntpsec_ntpq_in(ns: &Netns, args: &[&str]) -> Run {
    ns.run(ntpsec_ntpq(), args)
}

/// A real NTP daemon started for one test — chronyd or NTPsec's ntpd, from the unpacked
/// packages, without CAP_SYS_TIME — with its config, log and state in a temporary directory.
/// Dropping it stops it (SIGTERM, then SIGKILL), also when a test panics.
#[derive(Debug)]
pub(crate) struct Peer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    /// Config, pid file, drift file, command socket and log; removed after the peer has stopped.
    dir: TempDir,
}

impl Peer {
    /// chronyd serving its own clock with `local stratum {stratum}` on 127.0.0.1 at a free port
    /// of the host; returns once it serves that stratum.
    pub(crate) fn chronyd_on_loopback(stratum: u8) -> Self {
        let port = free_port();
        let peer = Self::chronyd(&Self::chronyd_server_config(port, stratum), port, None);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let client = SntpClient::new(addr);
        peer.wait_ready(port, stratum, || {
            client
                .query(addr, 4)
                .is_ok_and(|r| r.header.stratum == stratum)
        })
    }

    /// chronyd serving its own clock with `local stratum {stratum}` on 127.0.0.1:`port` inside
    /// `ns`; returns once it serves that stratum.
    pub(crate) fn chronyd_in(ns: &Netns, port: u16, stratum: u8) -> Self {
        let peer = Self::chronyd(&Self::chronyd_server_config(port, stratum), port, Some(ns));
        peer.wait_ready(port, stratum, || serves_in(ns, port, stratum))
    }

    /// chronyd as a client of 127.0.0.1:`server_port` on the host, polling every second; see
    /// [`Self::chronyc_sources`]. Returns at once.
    pub(crate) fn chronyd_client(server_port: u16) -> Self {
        let config = format!(
            "server 127.0.0.1 port {server_port} iburst minpoll 0 maxpoll 0\nport 0\n{}",
            Self::CHRONYD_FILES
        );
        Self::chronyd(&config, 0, None)
    }

    /// NTPsec's ntpd in orphan mode (stratum [`NTPSEC_ORPHAN_STRATUM`], refid 127.0.0.1, no rate
    /// limit) on port 123 inside `ns` — it cannot be moved off 123 — with `extra` lines appended
    /// to its ntp.conf (associations, `keys` and `trustedkey`, …). Returns once it serves as an
    /// orphan parent: it starts unsynchronised and takes a moment to become one.
    pub(crate) fn ntpsec_orphan_in(ns: &Netns, extra: &str) -> Self {
        let dir = TempDir::new("ntpsec");
        let config = format!(
            "{NTPSEC_ORPHAN_CONFIG}driftfile {0}/ntp.drift\nstatsdir {0}/\n{extra}",
            dir.path().display()
        );
        let config_path = dir.write("ntp.conf", config);
        let log = dir.path().join("ntpd.log");
        let mut cmd = ns.notime(ntpsec_program("usr/sbin/ntpd"));
        cmd.arg("-n")
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir.path().join("ntpd.pid"))
            .arg("-l")
            .arg(&log);
        let peer = Self::spawn(cmd, 123, log, dir);
        peer.wait_ready(123, NTPSEC_ORPHAN_STRATUM, || {
            serves_in(ns, 123, NTPSEC_ORPHAN_STRATUM)
        })
    }

    /// NTPsec's ntpd as a client (and server) on port 123 inside `ns`, with `extra` lines
    /// (its `server … key N`, `keys` and `trustedkey`) after plain `restrict` lines and its
    /// files in its directory. Returns at once; ask [`ntpsec_ntpq_in`] what it selected.
    pub(crate) fn ntpsec_client_in(ns: &Netns, extra: &str) -> Self {
        let dir = TempDir::new("ntpsec-client");
        let config = format!(
            "restrict default
restrict 127.0.0.1
restrict ::1
             driftfile {0}/ntp.drift
statsdir {0}/
{extra}",
            dir.path().display()
        );
        let config_path = dir.write("ntp.conf", config);
        let log = dir.path().join("ntpd.log");
        let mut cmd = ns.notime(ntpsec_program("usr/sbin/ntpd"));
        cmd.arg("-n")
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir.path().join("ntpd.pid"))
            .arg("-l")
            .arg(&log);
        Self::spawn(cmd, 123, log, dir)
    }

    /// chronyd as a client on the host with `config` lines (its `server` lines and `keyfile`;
    /// `{DIR}` stands for its directory), plus `port 0` and its files. Returns at once; see
    /// [`Self::chronyc_sources`].
    pub(crate) fn chronyd_client_with(config: &str) -> Self {
        let config = format!("{config}port 0\n{}", Self::CHRONYD_FILES);
        Self::chronyd(&config, 0, None)
    }

    /// chronyd as a server on the host with `config` lines (its `port`, `bindaddress`, `allow`,
    /// `local`, NTS files …) plus its files; returns once it serves on 127.0.0.1:`port`.
    pub(crate) fn chronyd_server_with(config: &str, port: u16) -> Self {
        let config = format!("{config}{}", Self::CHRONYD_FILES);
        let peer = Self::chronyd(&config, port, None);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let client = SntpClient::new(addr);
        peer.wait_ready(port, 8, || client.query(addr, 4).is_ok())
    }

    /// chronyd as a server inside `ns` with `config` lines (its `port`, `allow`, `local
    /// stratum {stratum}`, NTS files …) plus its files; returns once it serves `stratum` on
    /// 127.0.0.1:`port` there.
    pub(crate) fn chronyd_server_in(ns: &Netns, config: &str, port: u16, stratum: u8) -> Self {
        let config = format!("{config}{}", Self::CHRONYD_FILES);
        let peer = Self::chronyd(&config, port, Some(ns));
        peer.wait_ready(port, stratum, || serves_in(ns, port, stratum))
    }

    /// `chronyc ARGS` through the command socket of a chronyd.
    pub(crate) fn chronyc(&self, args: &[&str]) -> String {
        let mut cmd = notime(chrony_dir().join("usr/bin/chronyc"));
        cmd.arg("-h")
            .arg(self.dir.path().join("chronyd.sock"))
            .args(args);
        let out = output_within(&mut cmd, Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The UDP port it serves on (0 for a chronyd client).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its log so far, for failure messages.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `chronyc sources` through the command socket of a chronyd (empty while the socket is not
    /// up yet).
    pub(crate) fn chronyc_sources(&self) -> String {
        let mut cmd = notime(chrony_dir().join("usr/bin/chronyc"));
        cmd.arg("-h")
            .arg(self.dir.path().join("chronyd.sock"))
            .arg("sources");
        let out = output_within(&mut cmd, Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The config lines every chronyd gets: a command socket (no UDP command port), pid file and
    /// drift file, all in its directory (`{DIR}`), so nothing is created outside it.
    const CHRONYD_FILES: &str = "cmdport 0\nbindcmdaddress {DIR}/chronyd.sock\n\
                                 pidfile {DIR}/chronyd.pid\ndriftfile {DIR}/chronyd.drift\n";

    fn chronyd_server_config(port: u16, stratum: u8) -> String {
        format!(
            "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.0/8\nlocal stratum {stratum}\n{}",
            Self::CHRONYD_FILES
        )
    }

    /// Starts chronyd with `config` (`{DIR}` stands for its directory), serving on `port`, on the
    /// host or in `ns`.
    fn chronyd(config: &str, port: u16, ns: Option<&Netns>) -> Self {
        let dir = TempDir::new("chronyd");
        // chronyd refuses a command socket in a directory others can read.
        let _ = fs::set_permissions(dir.path(), Permissions::from_mode(0o750));
        let config = config.replace("{DIR}", &dir.path().display().to_string());
        let config_path = dir.write("chrony.conf", config);
        let chronyd = chrony_dir().join("usr/sbin/chronyd");
        let mut cmd = match ns {
            Some(ns) => ns.notime(chronyd),
            None => notime(chronyd),
        };
        // -x: never try to control the clock (it could not anyway, without CAP_SYS_TIME); -d: stay
        // in the foreground and log to stderr; -u root: there is no _chrony user.
        cmd.args(["-x", "-u", "root", "-d", "-f"]).arg(&config_path);
        let log = dir.path().join("chronyd.log");
        Self::spawn(cmd, port, log, dir)
    }

    fn spawn(mut cmd: Command, port: u16, log: PathBuf, dir: TempDir) -> Self {
        let child = process::spawn_logged(&mut cmd, &log);
        Self {
            child: Some(child),
            port,
            log,
            dir,
        }
    }

    /// Probes until `ready` is true; panics with the log if the peer exits or does not get there
    /// within [`READY_WITHIN`].
    fn wait_ready(mut self, port: u16, stratum: u8, mut ready: impl FnMut() -> bool) -> Self {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            if exited {
                panic!("the peer exited during start-up:\n{}", self.log());
            }
            if ready() {
                return self;
            }
            thread::sleep(PROBE_PAUSE);
        }
        panic!(
            "the peer did not serve stratum {stratum} on port {port} within {READY_WITHIN:?}:\n{}",
            self.log()
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The temporary directory goes after this, once the peer no longer writes to it.
        if let Some(mut child) = self.child.take() {
            let _ = process::stop(&mut child, STOP_GRACE);
        }
    }
}

/// Whether a server on 127.0.0.1:`port` in `ns` answers with `stratum`.
fn serves_in(ns: &Netns, port: u16, stratum: u8) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    probe_in(ns, addr, PROBE_TIMEOUT).is_some_and(|r| r.bytes.get(1) == Some(&stratum))
}

/// Path of a program from the Debian packages the tests need.
///
/// # Panics
/// If it is not installed.
fn require(program: &str) -> PathBuf {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} not found: {INSTALL_HINT}"))
}

/// What a one-shot SNTP client reported about a server.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SntpReport {
    /// Server stratum.
    pub(crate) stratum: u8,
    /// Offset of the server's clock from ours, seconds.
    pub(crate) offset: f64,
    /// `no-leap`, `add-leap`, `del-leap`.
    pub(crate) leap: String,
    /// The error bound the tool printed with the offset (`+/- DIST` of ntpdate), seconds.
    pub(crate) error: Option<f64>,
}

/// Runs `program -j -t 2 SERVER` (`program` is `ntpdig` or `sntp`) inside `ns` and parses its JSON
/// line. `Err` carries the tool's exit status and output.
pub(crate) fn ntpdig_json(ns: &Netns, program: &str, server: IpAddr) -> Result<SntpReport, String> {
    let mut cmd = ns.notime(require(program));
    cmd.args(["-j", "-t", "2", &server.to_string()]);
    let (ok, stdout, all) = run(&mut cmd);
    if !ok {
        return Err(all);
    }
    let parse = || -> Option<SntpReport> {
        Some(SntpReport {
            stratum: json_field(&stdout, "stratum")?.parse().ok()?,
            offset: json_field(&stdout, "offset")?.parse().ok()?,
            leap: json_field(&stdout, "leap")?.to_owned(),
            // ntpdig's JSON calls the `+/-` bound of its text output "precision".
            error: json_field(&stdout, "precision")?.parse().ok(),
        })
    };
    parse().ok_or(all)
}

/// Runs `ntpdate -q SERVER` inside `ns` and parses its report line,
/// `DATE TIME (+ZONE) OFFSET +/- DIST HOST sSTRATUM LEAP`.
pub(crate) fn ntpdate_query(ns: &Netns, server: IpAddr) -> Result<SntpReport, String> {
    let mut cmd = ns.notime(require("ntpdate"));
    cmd.args(["-q", &server.to_string()]);
    let (ok, stdout, all) = run(&mut cmd);
    if !ok {
        return Err(all);
    }
    let parse = || -> Option<SntpReport> {
        let line = stdout.lines().find(|l| l.contains("+/-"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let pm = words.iter().position(|w| *w == "+/-")?;
        Some(SntpReport {
            offset: words.get(pm.checked_sub(1)?)?.parse().ok()?,
            stratum: words.get(pm + 3)?.strip_prefix('s')?.parse().ok()?,
            leap: (*words.get(pm + 4)?).to_owned(),
            error: words.get(pm + 1)?.parse().ok(),
        })
    };
    parse().ok_or(all)
}

/// One line of chronyd's `measurements.log`: how chrony judged one reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChronyMeasurement {
    /// Leap status: `N` normal, `+`/`-` leap pending, `?` unsynchronised.
    pub(crate) leap: String,
    /// Server stratum.
    pub(crate) stratum: u8,
    /// chrony's packet tests "123 567 ABCD": all `1` when every test passed.
    pub(crate) tests: String,
    /// Offset of the server, seconds.
    pub(crate) offset: f64,
    /// Round-trip delay of the exchange, seconds.
    pub(crate) delay: f64,
}

/// What `chronyd -Q` measured against a server.
#[derive(Debug)]
pub(crate) struct ChronyQuery {
    /// Every measurement chronyd logged.
    pub(crate) measurements: Vec<ChronyMeasurement>,
    /// The final "System clock wrong by X seconds (ignored)" value.
    pub(crate) clock_error: Option<f64>,
    /// chronyd's output, for failure messages.
    pub(crate) output: String,
}

/// Runs `chronyd -Q 'server ADDR port PORT iburst maxsamples 4'` from the unpacked package: it
/// measures the server and prints the offset without touching the clock (and runs without
/// CAP_SYS_TIME anyway). Its measurements log says how chrony judged every reply.
pub(crate) fn chronyd_query(server: SocketAddr) -> ChronyQuery {
    chronyd_query_with(server, "iburst maxsamples 4")
}

/// [`chronyd_query`] with `samples` measurements, one every half second (`minpoll -1`), so
/// that a test can bound each of them.
pub(crate) fn chronyd_query_samples(server: SocketAddr, samples: usize) -> ChronyQuery {
    chronyd_query_with(
        server,
        &format!("minpoll -1 maxpoll -1 maxsamples {samples}"),
    )
}

fn chronyd_query_with(server: SocketAddr, options: &str) -> ChronyQuery {
    let dir = TempDir::new("chronyq");
    let logdir = dir.path().display().to_string();
    let mut cmd = notime(chrony_dir().join("usr/sbin/chronyd"));
    // Four samples take about 4 s; the timeout leaves room for a busy machine.
    cmd.args(["-Q", "-u", "root", "-t", "20"])
        .arg(format!(
            "server {} port {} {options}",
            server.ip(),
            server.port()
        ))
        .arg(format!("logdir {logdir}"))
        .arg("log measurements")
        .arg(format!("pidfile {logdir}/chronyd.pid"))
        // No command sockets: nothing is created outside the temporary directory.
        .args(["cmdport 0", "bindcmdaddress /"]);
    let (_, _, output) = run(&mut cmd);
    let log = fs::read_to_string(dir.path().join("measurements.log")).unwrap_or_default();
    let measurements = log
        .lines()
        .filter_map(|line| {
            // DATE TIME IP L St 123 567 ABCD LP RP Score Offset Peer_del …
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() < 12 || !w.first()?.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            Some(ChronyMeasurement {
                leap: (*w.get(3)?).to_owned(),
                stratum: w.get(4)?.parse().ok()?,
                tests: w.get(5..8)?.join(" "),
                offset: w.get(11)?.parse().ok()?,
                delay: w.get(12)?.parse().ok()?,
            })
        })
        .collect();
    let clock_error = output.lines().find_map(|l| {
        let rest = l.split_once("System clock wrong by ")?.1;
        rest.split_whitespace().next()?.parse().ok()
    });
    ChronyQuery {
        measurements,
        clock_error,
        output,
    }
}

/// A reply seen by [`probe_in`].
#[derive(Debug, Clone)]
pub(crate) struct ProbeReply {
    /// The address the reply came from.
    pub(crate) from: SocketAddr,
    /// The reply datagram.
    pub(crate) bytes: Vec<u8>,
}

/// Sends one NTPv4 client request to `server` from inside `ns` and returns the reply that answers
/// it, if one arrives within `timeout`.
///
/// The test process cannot enter a namespace itself (raw libc calls such as `setns` live only in
/// `sundial-sys`), so this runs a ten-line Python client — Python is there anyway, ntpdig is
/// written in it.
pub(crate) fn probe_in(ns: &Netns, server: SocketAddr, timeout: Duration) -> Option<ProbeReply> {
    let mut cmd = ns.exec("python3");
    cmd.args(["-c", PROBE_SCRIPT])
        .arg(server.ip().to_string())
        .arg(server.port().to_string())
        .arg(timeout.as_secs_f64().to_string());
    let (ok, stdout, _) = run(&mut cmd);
    if !ok {
        return None;
    }
    let mut words = stdout.split_whitespace();
    let ip: IpAddr = words.next()?.parse().ok()?;
    let port: u16 = words.next()?.parse().ok()?;
    let hex = words.next()?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(ProbeReply {
        from: (ip, port).into(),
        bytes,
    })
}

/// Client used by [`probe_in`]: argv = host, port, timeout in seconds; prints
/// `SOURCE-IP SOURCE-PORT REPLY-HEX` for the reply whose origin timestamp is our random transmit
/// timestamp, exits 1 on timeout.
const PROBE_SCRIPT: &str = r#"
import os, socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
nonce = os.urandom(8)
s.sendto(bytes([0x23]) + bytes(39) + nonce, (host, port))
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    s.settimeout(max(deadline - time.monotonic(), 0.001))
    try:
        data, src = s.recvfrom(4096)
    except OSError:
        break
    if data[24:32] == nonce:
        print(src[0], src[1], data.hex())
        sys.exit(0)
sys.exit(1)
"#;

/// Runs a one-shot tool; returns (success, stdout, "status + stdout + stderr").
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = output_within(cmd, TOOL_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!(
        "{cmd:?}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = out.status.success();
    // chronyd -Q reports on stderr; callers that need it get it in the third value.
    (ok, stdout, all)
}

/// The raw value of `"key":VALUE` in a flat JSON object (quotes removed from strings).
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json.get(start..)?.trim_start();
    if let Some(string) = rest.strip_prefix('"') {
        return string.split('"').next();
    }
    rest.split([',', '}']).next().map(str::trim)
}
