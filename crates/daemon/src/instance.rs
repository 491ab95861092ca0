//! One NTP daemon per host (per network namespace, to be exact).
//!
//! A second sundial must not serve next to the first, and with a real clock two daemons would
//! steer it. The server sockets no longer set `SO_REUSEPORT` (all server threads read the same
//! socket, `serve::threads`), so the kernel refuses a second bind by itself — but only with
//! "address in use", which says nothing about who holds the port (and builds from before that
//! change did set it). Before binding, ntpd therefore takes an [`InstanceLock`]: an abstract
//! Unix socket named after the port. Abstract names belong to the network namespace, exactly
//! like UDP ports, vanish when the process dies (no stale lock files after a crash), and can
//! be bound only once. Sockets without `SO_REUSEPORT` on port 123 exclude each other already;
//! [`describe_bind_error`] says so in words.
//!
//! Abstract names have no permissions, so any local user could take the name first and keep
//! ntpd from starting. The lock is therefore a listening stream socket: a second ntpd connects
//! to it and reads who holds it (`SO_PEERCRED`). Only a holder running as root or as this
//! process's own user counts (a sundial ntpd starts as one of them, before any `-u`); a name
//! held by anyone else is logged and ignored, and ntpd starts without the lock.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

/// Held for the daemon's lifetime; dropping it lets another daemon start.
#[derive(Debug)]
pub struct InstanceLock {
    _socket: Option<UnixListener>,
}

/// The abstract socket name that stands for "sundial serves UDP `port` here".
fn lock_name(port: u16) -> String {
    format!("sundial/ntpd/udp/{port}")
}

impl InstanceLock {
    /// Takes the lock for `port`; fails with a message fit for the user if another sundial
    /// `ntpd` holds it.
    pub fn acquire(port: u16) -> Result<Self, String> {
        let addr = SocketAddr::from_abstract_name(lock_name(port).as_bytes())
            .map_err(|e| format!("cannot name the instance lock: {e}"))?;
        match UnixListener::bind_addr(&addr) {
            Ok(socket) => Ok(Self {
                _socket: Some(socket),
            }),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let holder = UnixStream::connect_addr(&addr)
                    .and_then(|s| sundial_sys::process::peer_credentials(&s));
                match holder {
                    Ok((pid, uid)) if uid == 0 || uid == own_uid() => Err(format!(
                        "another sundial ntpd (pid {pid}) is already serving UDP port {port} \
                         on this host; stop it first (systemctl stop ntp)"
                    )),
                    Ok((pid, uid)) => {
                        tracing::warn!(
                            "the instance lock for port {port} is held by pid {pid} of uid {uid}, \
                             which cannot be an NTP daemon; ignoring it"
                        );
                        Ok(Self { _socket: None })
                    }
                    Err(e) => Err(format!(
                        "the instance lock for port {port} is taken, and its holder cannot be \
                         asked who it is: {e}"
                    )),
                }
            }
            Err(e) => Err(format!(
                "cannot take the instance lock for port {port}: {e}"
            )),
        }
    }
}

/// This process's real user id, from /proc/self/status.
fn own_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next())
                .and_then(|uid| uid.parse().ok())
        })
        .unwrap_or(0)
}

/// The message for a failed bind of the server port: "in use" means another NTP daemon.
pub fn describe_bind_error(port: u16, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::AddrInUse {
        format!(
            "UDP port {port} is already in use by another program (another NTP daemon such as \
             ntpd, ntpsec or chronyd?); stop it first"
        )
    } else {
        format!("cannot serve on UDP port {port}: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_port_is_refused_until_the_first_is_dropped() {
        // A port number no other test uses for a daemon, so the lock is ours alone.
        let port = 65_123;
        let first = InstanceLock::acquire(port).expect("first lock");
        let second = InstanceLock::acquire(port).expect_err("second lock must fail");
        assert!(
            second.contains("already serving UDP port 65123")
                && second.contains(&format!("(pid {})", std::process::id())),
            "{second}"
        );
        assert!(
            InstanceLock::acquire(port - 1).is_ok(),
            "other ports stay free"
        );
        drop(first);
        assert!(InstanceLock::acquire(port).is_ok());
    }

    #[test]
    fn address_in_use_is_explained() {
        let e = io::Error::from(io::ErrorKind::AddrInUse);
        assert!(describe_bind_error(123, &e).contains("another NTP daemon"));
    }
}
