//! Real NTP servers for the ntpdate interop tests: chronyd from the unpacked package (host loopback
//! at a free port, or port 123 in a namespace) and NTPsec ntpd in orphan mode (port 123 in a
//! namespace; it cannot be moved off 123). Each runs without CAP_SYS_TIME and is stopped when
//! dropped, also when a test panics.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::netns::Netns;
use crate::support::peers::{chrony_dir, probe_in};
use crate::support::process::{self, notime};
use crate::support::{SntpClient, TempDir};

/// Where NTPsec is unpacked unless `SUNDIAL_NTPSEC_DIR` says otherwise (`apt-get download ntpsec`
/// and `dpkg -x`, never installed: installing starts a service that disciplines the clock).
const DEFAULT_NTPSEC_DIR: &str = "/opt/sundial-peers/ntpsec";

/// Stratum chronyd serves with `local stratum 8`, and NTPsec with `tos orphan 8`.
pub(crate) const PEER_STRATUM: u8 = 8;

/// How long a peer may take to answer with [`PEER_STRATUM`] after it was started.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// Pause between readiness probes.
const PROBE_PAUSE: Duration = Duration::from_millis(100);

/// How long one probe waits for its reply.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// How long a peer has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// NTPsec's orphan-mode server (real-peers.md §4). `unrestrict … limited kod` lifts NTPsec's
/// built-in rate limit, which would otherwise answer a fast client with RATE kisses.
const NTPSEC_ORPHAN_CONFIG: &str = "tos orphan 8 orphanwait 0\n\
disable ntp\n\
disable kernel\n\
restrict default\n\
restrict 127.0.0.1\n\
restrict ::1\n\
unrestrict default limited kod\n";

/// A running peer server.
#[derive(Debug)]
pub(crate) struct Peer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    /// Holds config, pid file, drift file and log; removed after the peer has stopped.
    _dir: TempDir,
}

impl Peer {
    /// chronyd with `local stratum 8` on host loopback at a free port.
    pub(crate) fn chronyd_on_loopback() -> Self {
        let port = free_port();
        let peer = Self::chronyd(port, None);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let client = SntpClient::new(addr);
        peer.wait_ready(|| {
            client
                .query(addr, 4)
                .is_ok_and(|r| r.header.stratum == PEER_STRATUM)
        })
    }

    /// chronyd with `local stratum 8` on port 123 inside `ns`.
    pub(crate) fn chronyd_in(ns: &Netns) -> Self {
        Self::chronyd(123, Some(ns)).wait_ready(|| serves_in(ns))
    }

    /// NTPsec ntpd in orphan mode at stratum 8 on port 123 inside `ns`.
    pub(crate) fn ntpsec_orphan_in(ns: &Netns) -> Self {
        Self::ntpsec_orphan_with_in(ns, "")
    }

    /// [`Self::ntpsec_orphan_in`] with `extra` lines appended to its ntp.conf (e.g. `keys` and
    /// `trustedkey`).
    pub(crate) fn ntpsec_orphan_with_in(ns: &Netns, extra: &str) -> Self {
        let dir = TempDir::new("ntpsec");
        let config = format!(
            "{NTPSEC_ORPHAN_CONFIG}driftfile {0}/ntp.drift\nstatsdir {0}/\n{extra}",
            dir.path().display()
        );
        let config_path = dir.write("ntp.conf", config);
        let log = dir.path().join("ntpd.log");
        let mut cmd = ns.notime(ntpsec_dir().join("usr/sbin/ntpd"));
        cmd.arg("-n")
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir.path().join("ntpd.pid"))
            .arg("-l")
            .arg(&log);
        Self::spawn(cmd, 123, log, dir).wait_ready(|| serves_in(ns))
    }

    /// The UDP port it serves on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its log so far, for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn chronyd(port: u16, ns: Option<&Netns>) -> Self {
        let dir = TempDir::new("chronyd");
        let d = dir.path().display().to_string();
        // No command sockets (`cmdport 0`, `bindcmdaddress /`): nothing is created outside `dir`.
        let config = format!(
            "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.0/8\nlocal stratum {PEER_STRATUM}\n\
             cmdport 0\nbindcmdaddress /\npidfile {d}/chronyd.pid\ndriftfile {d}/drift\n"
        );
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
        let out = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        Self {
            child: Some(child),
            port,
            log,
            _dir: dir,
        }
    }

    /// Probes until `ready` is true; panics with the log if the peer exits or never gets there.
    fn wait_ready(mut self, mut ready: impl FnMut() -> bool) -> Self {
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
            "the peer did not serve stratum {PEER_STRATUM} within {READY_WITHIN:?}:\n{}",
            self.log()
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::stop(&mut child, STOP_GRACE);
        }
    }
}

/// Whether a server on 127.0.0.1:123 in `ns` answers with [`PEER_STRATUM`].
fn serves_in(ns: &Netns) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 123));
    probe_in(ns, addr, PROBE_TIMEOUT).is_some_and(|r| r.bytes.get(1) == Some(&PEER_STRATUM))
}

/// The directory NTPsec is unpacked in: `$SUNDIAL_NTPSEC_DIR` or /opt/sundial-peers/ntpsec.
///
/// # Panics
/// If its ntpd is not there: the tests need it (they fail rather than skip).
fn ntpsec_dir() -> PathBuf {
    let dir = std::env::var_os("SUNDIAL_NTPSEC_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_NTPSEC_DIR), PathBuf::from);
    let ntpd = dir.join("usr/sbin/ntpd");
    assert!(
        ntpd.is_file(),
        "{} not found: unpack NTPsec there (`apt-get download ntpsec`, `dpkg -x`), never install it",
        ntpd.display()
    );
    dir
}

/// A UDP port free on both IPv4 and IPv6 right now.
pub(crate) fn free_port() -> u16 {
    let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap_or_else(|e| panic!("{e}"));
    socket.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}
