//! A real NTPsec `ntpd` for one test, from the unpacked package (tools/install-test-peers),
//! inside a network namespace on port 123, without CAP_SYS_TIME; and NTPsec's own Python
//! `ntpq` to compare with.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::netns::Netns;
use crate::support::peers;
use crate::support::process::{self, output_within};
use crate::support::tempdir::TempDir;

/// Where tools/install-test-peers unpacks NTPsec unless `SUNDIAL_NTPSEC_DIR` says otherwise.
const DEFAULT_NTPSEC_DIR: &str = "/opt/sundial-peers/ntpsec";

/// An orphan-mode server without sources (real-peers.md §4): stratum 8 at once, refid
/// 127.0.0.1, no rate limiting for the queries of the test.
pub(crate) const ORPHAN_CONFIG: &str = "tos orphan 8 orphanwait 0
disable ntp
disable kernel
restrict default
restrict 127.0.0.1
restrict ::1
unrestrict default limited kod
";

/// Lines to add to [`ORPHAN_CONFIG`] for two associations that need no network: the local
/// clock driver and a pool prototype (its name cannot resolve in the namespace).
pub(crate) const WITH_ASSOCIATIONS_CONFIG: &str = "server 127.127.1.0
fudge 127.127.1.0 stratum 10
pool 0.debian.pool.ntp.org iburst
";

/// Stratum every server of these tests serves once ready (`tos orphan 8`).
const ORPHAN_STRATUM: u8 = 8;

/// Readiness probes before giving up (each waits up to 200 ms for a reply).
const READY_ATTEMPTS: u32 = 100;

/// Pause between readiness probes.
const READY_PAUSE: Duration = Duration::from_millis(100);

/// How long NTPsec has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Upper bound for one run of an ntpq.
const NTPQ_TIMEOUT: Duration = Duration::from_secs(60);

/// The NTPsec directory: `$SUNDIAL_NTPSEC_DIR` or /opt/sundial-peers/ntpsec.
///
/// # Panics
/// If ntpd or ntpq is not there: the tests need them (they fail rather than skip).
pub(crate) fn ntpsec_dir() -> PathBuf {
    let dir = std::env::var_os("SUNDIAL_NTPSEC_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_NTPSEC_DIR), PathBuf::from);
    for program in ["usr/sbin/ntpd", "usr/bin/ntpq"] {
        let path = dir.join(program);
        assert!(
            path.is_file(),
            "{} not found: run tools/test-all to install test peers",
            path.display()
        );
    }
    dir
}

/// A running NTPsec ntpd; stopped (SIGTERM, then SIGKILL) on drop, also when a test panics.
#[derive(Debug)]
pub(crate) struct NtpsecServer {
    child: Option<Child>,
    log: PathBuf,
    /// Config, drift file, pid file and log; removed after the daemon has stopped.
    _dir: TempDir,
}

impl NtpsecServer {
    /// Starts `ntpd -n` with `config` (plus a drift file in a temporary directory) inside `ns`
    /// and waits until it serves as an orphan parent (stratum 8) on 127.0.0.1:123: it starts
    /// unsynchronised and takes a moment to become one.
    pub(crate) fn start_in(ns: &Netns, config: &str) -> Self {
        let dir = TempDir::new("ntpsec");
        let drift = dir.path().join("ntp.drift");
        let config = format!("{config}driftfile {}\n", drift.display());
        let config_path = dir.write("ntp.conf", config);
        let log = dir.path().join("ntpd.log");
        let mut cmd = ns.notime(ntpsec_dir().join("usr/sbin/ntpd"));
        cmd.arg("-n")
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir.path().join("ntpd.pid"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let mut server = Self {
            child: Some(child),
            log,
            _dir: dir,
        };
        let probe = SocketAddr::from((Ipv4Addr::LOCALHOST, 123));
        for _ in 0..READY_ATTEMPTS {
            if !server.is_running() {
                panic!("NTPsec ntpd exited:\n{}", server.log());
            }
            let reply = peers::probe_in(ns, probe, Duration::from_millis(200));
            if reply.is_some_and(|r| r.bytes.get(1) == Some(&ORPHAN_STRATUM)) {
                return server;
            }
            thread::sleep(READY_PAUSE);
        }
        panic!(
            "NTPsec ntpd does not answer in {}:\n{}",
            ns.name(),
            server.log()
        );
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Its log so far, for failure messages.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NtpsecServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::stop(&mut child, STOP_GRACE);
        }
    }
}

/// What one ntpq run printed.
#[derive(Debug, Clone)]
pub(crate) struct NtpqRun {
    /// Exited with status 0.
    pub(crate) success: bool,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// Runs `program ARGS…` inside `ns` without CAP_SYS_TIME.
fn run_in(ns: &Netns, program: PathBuf, args: &[&str]) -> NtpqRun {
    let mut cmd = ns.notime(program);
    cmd.args(args);
    let out = output_within(&mut cmd, NTPQ_TIMEOUT);
    NtpqRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// sundial's ntpq inside `ns`.
pub(crate) fn sundial_ntpq(ns: &Netns, args: &[&str]) -> NtpqRun {
    run_in(ns, PathBuf::from(env!("CARGO_BIN_EXE_ntpq")), args)
}

/// NTPsec's ntpq inside `ns`.
pub(crate) fn ntpsec_ntpq(ns: &Netns, args: &[&str]) -> NtpqRun {
    run_in(ns, ntpsec_dir().join("usr/bin/ntpq"), args)
}
