//! A sundial `ntpd` started for one test: `ntpd -n -c CONFIG --clock none`, on host loopback at a
//! free port or inside a network namespace at port 123.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::Duration;

use super::free_port;
use super::netns::Netns;
use super::peers;
use super::process::{self, Run, notime};
use super::sntp::SntpClient;
use super::tempdir::TempDir;

/// The daemon under test.
pub(crate) const NTPD: &str = env!("CARGO_BIN_EXE_ntpd");

/// sundial's `ntpq`.
pub(crate) const NTPQ: &str = env!("CARGO_BIN_EXE_ntpq");

/// Readiness probes before giving up on a daemon that does not answer.
const READY_ATTEMPTS: u32 = 50;

/// Pause between readiness probes.
const READY_PAUSE: Duration = Duration::from_millis(100);

/// How long a probe waits for the reply.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// Fresh ports tried when the daemon cannot start on the first one (another process took it
/// between our check and the daemon's bind).
const PORT_ATTEMPTS: u32 = 3;

/// How long the daemon has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running `ntpd`. Dropping it stops it (SIGTERM, then SIGKILL) — also when the test panics.
#[derive(Debug)]
pub(crate) struct Daemon {
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
    /// Holds the config and the log; removed after the daemon has stopped.
    _dir: TempDir,
}

/// What a stopped daemon left behind.
#[derive(Debug)]
pub(crate) struct Stopped {
    /// Exit status after SIGTERM.
    pub(crate) status: ExitStatus,
    /// Everything it wrote to stdout and stderr.
    pub(crate) log: String,
}

/// The counters the daemon logs at shutdown:
/// `server counters: received R, replied P, dropped D` and `dropped (REASON): N` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerCounters {
    pub(crate) received: u64,
    pub(crate) replied: u64,
    pub(crate) dropped: u64,
    /// Non-zero drop counters by reason.
    pub(crate) dropped_by_reason: BTreeMap<String, u64>,
}

impl Daemon {
    /// Starts `ntpd` with `config` on host loopback at a free port and waits until it answers a
    /// request on 127.0.0.1.
    pub(crate) fn start(config: impl AsRef<[u8]>) -> Self {
        Self::start_with(config, &[])
    }

    /// As [`Self::start`], with `args` added to ntpd's command line.
    pub(crate) fn start_with(config: impl AsRef<[u8]>, args: &[&str]) -> Self {
        Self::start_clock(config, "none", args)
    }

    /// As [`Self::start_with`], with `--clock CLOCK` instead of `--clock none` (`simulated:…`:
    /// the clocks that read and write a drift file without any privilege).
    pub(crate) fn start_clock(config: impl AsRef<[u8]>, clock: &str, args: &[&str]) -> Self {
        let config = config.as_ref();
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut daemon = Self::spawn(config, Some(port), None, clock, args);
            let server = daemon.addr_v4();
            let client = SntpClient::new(server);
            let answered = daemon.wait_ready(|| client.query(server, 4).is_ok());
            if answered {
                return daemon;
            }
            if daemon.is_running() {
                panic!(
                    "ntpd is running but does not answer on {server}:\n{}",
                    daemon.stop_quietly()
                );
            }
            last_log = daemon.stop_quietly();
        }
        panic!("ntpd did not start on {PORT_ATTEMPTS} different ports; last log:\n{last_log}");
    }

    /// Starts `ntpd` with `config` on host loopback at `port` (no retry on another port) and
    /// waits until it answers on 127.0.0.1.
    pub(crate) fn start_on_port(config: impl AsRef<[u8]>, port: u16) -> Self {
        let mut daemon = Self::spawn(config.as_ref(), Some(port), None, "none", &[]);
        let server = daemon.addr_v4();
        let client = SntpClient::new(server);
        if !daemon.wait_ready(|| client.query(server, 4).is_ok()) {
            panic!(
                "ntpd does not answer on {server}:\n{}",
                daemon.stop_quietly()
            );
        }
        daemon
    }

    /// Starts `ntpd` with `config` inside `ns` on port 123 and waits until it answers a request on
    /// 127.0.0.1 in there.
    pub(crate) fn start_in(ns: &Netns, config: impl AsRef<[u8]>) -> Self {
        Self::start_in_with(ns, config, "none", &[])
    }

    /// As [`Self::start_in`], with `--clock CLOCK` instead of `--clock none`.
    pub(crate) fn start_in_clock(ns: &Netns, config: impl AsRef<[u8]>, clock: &str) -> Self {
        Self::start_in_with(ns, config, clock, &[])
    }

    /// As [`Self::start_in`], with the clock backend `clock` and `args` added to ntpd's command
    /// line.
    pub(crate) fn start_in_with(
        ns: &Netns,
        config: impl AsRef<[u8]>,
        clock: &str,
        args: &[&str],
    ) -> Self {
        let mut daemon = Self::spawn(config.as_ref(), None, Some(ns), clock, args);
        let probe_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 123));
        if !daemon.wait_ready(|| peers::probe_in(ns, probe_addr, PROBE_TIMEOUT).is_some()) {
            panic!(
                "ntpd does not answer on port 123 in {}:\n{}",
                ns.name(),
                daemon.stop_quietly()
            );
        }
        daemon
    }

    /// Runs `ntpd --check -c CONFIG` on `config` (written to a file named `file_name`) and returns
    /// its exit status, output and the config's path.
    pub(crate) fn check(
        dir: &TempDir,
        file_name: &str,
        config: &[u8],
    ) -> (ExitStatus, String, PathBuf) {
        let path = dir.write(file_name, config);
        let mut cmd = notime(NTPD);
        cmd.arg("--check").arg("-c").arg(&path);
        let out = process::output_within(&mut cmd, Duration::from_secs(30));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text, path)
    }

    fn spawn(
        config: &[u8],
        port: Option<u16>,
        ns: Option<&Netns>,
        clock: &str,
        args: &[&str],
    ) -> Self {
        let dir = TempDir::new("ntpd");
        let config_path = dir.write("ntp.conf", config);
        let log_path = dir.path().join("ntpd.log");
        let mut cmd = match ns {
            Some(ns) => ns.notime(NTPD),
            None => notime(NTPD),
        };
        cmd.arg("-n")
            .arg("-c")
            .arg(&config_path)
            .args(["--clock", clock])
            .args(args);
        if let Some(port) = port {
            cmd.args(["--port", &port.to_string()]);
        }
        let child = process::spawn_logged(&mut cmd, &log_path);
        Self {
            child: Some(child),
            port: port.unwrap_or(123),
            log_path,
            _dir: dir,
        }
    }

    /// Probes until `answered` returns true, the daemon exits, or the attempts run out.
    fn wait_ready(&mut self, mut answered: impl FnMut() -> bool) -> bool {
        for _ in 0..READY_ATTEMPTS {
            if !self.is_running() {
                return false;
            }
            if answered() {
                return true;
            }
            thread::sleep(READY_PAUSE);
        }
        false
    }

    /// Its process id (of `ntpd` itself: `setpriv` and `ip netns exec` exec into it).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The port it serves on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// 127.0.0.1 at its port.
    pub(crate) fn addr_v4(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    /// ::1 at its port.
    pub(crate) fn addr_v6(&self) -> SocketAddr {
        (Ipv6Addr::LOCALHOST, self.port).into()
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The configuration file it was started with (tests edit it before a reload).
    pub(crate) fn config_path(&self) -> PathBuf {
        self._dir.path().join("ntp.conf")
    }

    /// Sends `signal` (a kill(1) name such as `HUP`).
    pub(crate) fn signal(&self, signal: &str) {
        process::signal(self.pid(), signal);
    }

    /// Its output so far.
    pub(crate) fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Stops it with SIGTERM and returns its exit status and output.
    ///
    /// # Panics
    /// If it does not exit within [`STOP_GRACE`] of SIGTERM (it is then killed).
    pub(crate) fn stop(mut self) -> Stopped {
        let Some(mut child) = self.child.take() else {
            unreachable!("stopped twice")
        };
        let (status, graceful) = process::stop(&mut child, STOP_GRACE);
        let log = self.log();
        match status {
            Some(status) if graceful => Stopped { status, log },
            _ => panic!("ntpd did not exit within {STOP_GRACE:?} of SIGTERM; log:\n{log}"),
        }
    }

    /// Stops it however it takes and returns its output (for failure messages).
    fn stop_quietly(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = process::stop(&mut child, STOP_GRACE);
        }
        self.log()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The temporary directory goes after this, once the daemon no longer writes to it.
        self.stop_quietly();
    }
}

impl Stopped {
    /// Panics with the log unless the daemon exited with status 0.
    pub(crate) fn assert_success(&self) {
        assert!(
            self.status.success(),
            "ntpd exited with {} after SIGTERM:\n{}",
            self.status,
            self.log
        );
    }

    /// The counters it logged at shutdown.
    ///
    /// # Panics
    /// If it logged none.
    pub(crate) fn counters(&self) -> ServerCounters {
        ServerCounters::from_log(&self.log)
            .unwrap_or_else(|| panic!("no server counters logged at shutdown:\n{}", self.log))
    }
}

impl ServerCounters {
    /// The counters in a shutdown log, or `None` without a `server counters:` line.
    pub(crate) fn from_log(log: &str) -> Option<Self> {
        let summary = log
            .lines()
            .find_map(|l| l.split_once("server counters: ").map(|(_, s)| s))?;
        let field = |name: &str| -> Option<u64> {
            let rest = summary.split_once(name)?.1.trim_start();
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let mut dropped_by_reason = BTreeMap::new();
        for line in log.lines() {
            let Some((_, rest)) = line.split_once("dropped (") else {
                continue;
            };
            let Some((reason, count)) = rest.split_once("):") else {
                continue;
            };
            let Ok(count) = count.trim().parse::<u64>() else {
                continue;
            };
            *dropped_by_reason.entry(reason.to_owned()).or_default() += count;
        }
        Some(Self {
            received: field("received")?,
            replied: field("replied")?,
            dropped: field("dropped")?,
            dropped_by_reason,
        })
    }
}

/// sundial's `ntpq` inside `ns`, without CAP_SYS_TIME.
pub(crate) fn sundial_ntpq_in(ns: &Netns, args: &[&str]) -> Run {
    ns.run(NTPQ, args)
}
