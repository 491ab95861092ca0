//! Telling systemd how ntpd is doing: the `sd_notify` datagram protocol, spoken directly.
//!
//! A `Type=notify` service finds a Unix datagram socket in `$NOTIFY_SOCKET` (a path, or an
//! abstract name written with a leading `@`) and sends it newline-separated `NAME=value`
//! assignments. ntpd sends `READY=1` once its sockets are bound and privileges are dropped — so
//! `systemctl start` returns only when the daemon really serves — `STATUS=` whenever what it
//! follows changes, `RELOADING=1`/`READY=1` around a reload and `STOPPING=1` at shutdown.
//!
//! The protocol is a few lines over `std`'s `UnixDatagram`, so there is no libsystemd
//! dependency, in safe code only. Without `$NOTIFY_SOCKET` (started by hand, or under another
//! init system) every call does nothing.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use sundial_proto::control::ClockSource;
use sundial_proto::control::ControlSnapshot;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// A connection to the service manager's notification socket, or nothing.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    last_status: String,
}

impl Notifier {
    /// The socket named by `$NOTIFY_SOCKET`; a notifier that sends nothing when it is unset,
    /// empty or unusable (an error is logged then: the service manager will time out, and the
    /// log says why).
    pub fn from_env() -> Self {
        match std::env::var_os(NOTIFY_SOCKET) {
            None => Self::default(),
            Some(name) if name.is_empty() => Self::default(),
            Some(name) => Self::to(&name).unwrap_or_else(|e| {
                tracing::error!("cannot use {NOTIFY_SOCKET}={}: {e}", name.to_string_lossy());
                Self::default()
            }),
        }
    }

    /// A notifier sending to `name`: a socket path, or `@name` for an abstract socket.
    pub fn to(name: &OsStr) -> io::Result<Self> {
        let bytes = name.as_bytes();
        let addr = match bytes.split_first() {
            Some((b'@', abstract_name)) => SocketAddr::from_abstract_name(abstract_name)?,
            Some((b'/', _)) => SocketAddr::from_pathname(name)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an abstract socket name",
                ));
            }
        };
        Ok(Self {
            target: Some((UnixDatagram::unbound()?, addr)),
            last_status: String::new(),
        })
    }

    /// Whether a service manager listens.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `assignments` (`NAME=value` lines) as one datagram. Failures are logged once per
    /// call and otherwise ignored: the daemon runs on whether or not systemd hears it.
    pub fn send(&self, assignments: &str) {
        if let Some((socket, addr)) = &self.target
            && let Err(e) = socket.send_to_addr(assignments.as_bytes(), addr)
        {
            tracing::warn!("cannot notify the service manager ({assignments:?}): {e}");
        }
    }

    /// `READY=1` with a first status line.
    pub fn ready(&mut self, status: &str) {
        self.last_status = status.to_owned();
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `STATUS=…`, sent only when it differs from the last one sent.
    pub fn status(&mut self, status: &str) {
        if status != self.last_status {
            self.last_status = status.to_owned();
            self.send(&format!("STATUS={status}"));
        }
    }
}

/// The one-line status `systemctl status` shows, from what ntpq would report:
/// "synchronised to 192.0.2.1, stratum 3, offset +0.000012 s", "local clock fallback, stratum
/// 11" or "unsynchronised".
pub fn status_line(snapshot: &ControlSnapshot) -> String {
    let system = &snapshot.system;
    if system.stratum == 0 || system.stratum >= 16 {
        return "unsynchronised".to_owned();
    }
    let peer = system.peer.and_then(|id| {
        snapshot
            .peers
            .iter()
            .find(|p| p.association_id == id && !p.srcadr.is_unspecified())
    });
    match peer {
        Some(p) if system.clock_source != ClockSource::Local => format!(
            "synchronised to {}, stratum {}, offset {:+.6} s",
            p.srcadr, system.stratum, system.offset
        ),
        _ => format!("local clock fallback, stratum {}", system.stratum),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use sundial_proto::control::{AssociationId, PeerVars};

    use super::*;

    fn listener(name: &str) -> (UnixDatagram, std::path::PathBuf) {
        let path =
            std::env::temp_dir().join(format!("sundial-notify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (socket, path)
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_and_status_arrive_as_datagrams() {
        let (socket, path) = listener("ready");
        let mut n = Notifier::to(path.as_os_str()).expect("notifier");
        n.ready("unsynchronised");
        assert_eq!(receive(&socket), "READY=1\nSTATUS=unsynchronised");
        n.status("unsynchronised");
        n.status("local clock fallback, stratum 11");
        // The repeated status was not sent: the next datagram is the new one.
        assert_eq!(receive(&socket), "STATUS=local clock fallback, stratum 11");
        std::fs::remove_file(path).expect("cleanup");
    }

    #[test]
    fn abstract_socket_names_are_understood() {
        let name = format!("sundial-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind");
        let n = Notifier::to(OsStr::new(&format!("@{name}"))).expect("notifier");
        n.send("STOPPING=1");
        assert_eq!(receive(&socket), "STOPPING=1");
    }

    #[test]
    fn relative_names_are_refused_and_unset_means_silent() {
        assert!(Notifier::to(OsStr::new("notify")).is_err());
        let n = Notifier::default();
        assert!(!n.is_active());
        n.send("READY=1");
    }

    #[test]
    fn status_names_the_system_peer_or_the_fallback() {
        let mut snap = ControlSnapshot::default();
        snap.system.stratum = 16;
        assert_eq!(status_line(&snap), "unsynchronised");

        let id = AssociationId::new(37_001).expect("id");
        let peer = PeerVars::new(id, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 123);
        snap.peers.push(peer);
        snap.system.stratum = 3;
        snap.system.peer = Some(id);
        snap.system.offset = 0.000_012;
        snap.system.clock_source = ClockSource::Ntp;
        assert_eq!(
            status_line(&snap),
            "synchronised to 192.0.2.1, stratum 3, offset +0.000012 s"
        );

        snap.system.clock_source = ClockSource::Local;
        snap.system.stratum = 11;
        assert_eq!(status_line(&snap), "local clock fallback, stratum 11");
    }
}
