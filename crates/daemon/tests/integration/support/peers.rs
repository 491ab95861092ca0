//! The real NTP programs the interop tests run against sundial, each without CAP_SYS_TIME:
//! NTPsec's `ntpdig`/`sntp` and `ntpdate` (Debian packages, query-only), and `chronyd -Q` from the
//! unpacked chrony package (tools/install-test-peers).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::netns::Netns;
use super::process::{notime, output_within};
use super::tempdir::TempDir;

/// Where tools/install-test-peers unpacks chrony unless `SUNDIAL_CHRONY_DIR` says otherwise.
const DEFAULT_CHRONY_DIR: &str = "/opt/sundial-peers/chrony";

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
    let dir = TempDir::new("chronyq");
    let logdir = dir.path().display().to_string();
    let mut cmd = notime(chrony_dir().join("usr/sbin/chronyd"));
    // Four samples take about 4 s; the timeout leaves room for a busy machine.
    cmd.args(["-Q", "-u", "root", "-t", "20"])
        .arg(format!(
            "server {} port {} iburst maxsamples 4",
            server.ip(),
            server.port()
        ))
        .arg(format!("logdir {logdir}"))
        .arg("log measurements")
        .arg(format!("pidfile {logdir}/chronyd.pid"))
        // No command sockets: nothing is created outside the temporary directory.
        .args(["cmdport 0", "bindcmdaddress /"]);
    let (_, _, output) = run(&mut cmd);
    let log = std::fs::read_to_string(dir.path().join("measurements.log")).unwrap_or_default();
    let measurements = log
        .lines()
        .filter_map(|line| {
            // DATE TIME IP L St 123 567 ABCD LP RP Score Offset …
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() < 12 || !w.first()?.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            Some(ChronyMeasurement {
                leap: (*w.get(3)?).to_owned(),
                stratum: w.get(4)?.parse().ok()?,
                tests: w.get(5..8)?.join(" "),
                offset: w.get(11)?.parse().ok()?,
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
/// The test process cannot enter a namespace itself (the workspace forbids `unsafe`, so no
/// `setns`), so this runs a ten-line Python client — Python is there anyway, ntpdig is written in
/// it.
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
