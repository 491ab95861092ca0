//! chronyd from the unpacked Debian package, as an upstream server on a loopback port or as a
//! client of sundial, always with `-x` and without CAP_SYS_TIME.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::TempDir;
use crate::support::peers::chrony_dir;
use crate::support::process::{notime, output_within, stop};

/// A chronyd process; stopped on drop.
#[derive(Debug)]
struct Chronyd {
    child: Option<Child>,
    dir: TempDir,
}

impl Chronyd {
    fn start(tag: &str, config: &str) -> Self {
        let dir = TempDir::new(tag);
        // chronyd refuses a command socket in a directory others can read.
        set_mode_750(&dir);
        let conf = dir.write(
            "chrony.conf",
            config.replace("{DIR}", &dir.path().display().to_string()),
        );
        let log = std::fs::File::create(dir.path().join("chronyd.log")).expect("log file");
        let child = notime(chrony_dir().join("usr/sbin/chronyd"))
            .args(["-x", "-u", "root", "-d", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start chronyd");
        Self {
            child: Some(child),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chronyd.log")).unwrap_or_default()
    }
}

impl Drop for Chronyd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = stop(&mut child, Duration::from_secs(5));
        }
    }
}

fn set_mode_750(dir: &TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750));
}

fn free_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// chronyd serving its own clock at a fixed stratum on a loopback port.
#[derive(Debug)]
pub(crate) struct ChronyServer {
    port: u16,
    _chronyd: Chronyd,
}

impl ChronyServer {
    /// Starts a server with `local stratum N` and waits until it answers.
    pub(crate) fn start(stratum: u8) -> Self {
        let port = free_port();
        let config = format!(
            "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.0/8\nlocal stratum {stratum}\ncmdport 0\n\
             bindcmdaddress {{DIR}}/chronyd.sock\npidfile {{DIR}}/chronyd.pid\ndriftfile {{DIR}}/chronyd.drift\n"
        );
        let chronyd = Chronyd::start("chronyd-server", &config);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let client = crate::support::SntpClient::new(addr);
        let ready = crate::eventually(Duration::from_secs(10), || client.query(addr, 4).is_ok());
        assert!(
            ready,
            "chronyd did not answer on {addr}:\n{}",
            chronyd.log()
        );
        Self {
            port,
            _chronyd: chronyd,
        }
    }

    /// Its port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

/// chronyd as a client of a server on a loopback port, polling every second, with a command
/// socket so `chronyc sources` can show what it selected.
#[derive(Debug)]
pub(crate) struct ChronyClient {
    chronyd: Chronyd,
    socket: PathBuf,
}

impl ChronyClient {
    /// Starts a client of 127.0.0.1:`server_port`.
    pub(crate) fn start(server_port: u16) -> Self {
        let config = format!(
            "server 127.0.0.1 port {server_port} iburst minpoll 0 maxpoll 0\nport 0\ncmdport 0\n\
             bindcmdaddress {{DIR}}/chronyd.sock\npidfile {{DIR}}/chronyd.pid\ndriftfile {{DIR}}/chronyd.drift\n"
        );
        let chronyd = Chronyd::start("chronyd-client", &config);
        let socket = chronyd.dir.path().join("chronyd.sock");
        Self { chronyd, socket }
    }

    /// `chronyc sources` output (empty while the command socket is not up yet).
    pub(crate) fn sources(&self) -> String {
        let mut cmd = notime(chrony_dir().join("usr/bin/chronyc"));
        cmd.arg("-h").arg(&self.socket).arg("sources");
        let out = output_within(&mut cmd, Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// chronyd's log.
    pub(crate) fn log(&self) -> String {
        self.chronyd.log()
    }
}
