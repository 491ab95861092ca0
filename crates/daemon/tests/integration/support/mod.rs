//! Helpers shared by the integration tests: a running sundial `ntpd` ([`daemon`]), a small SNTP
//! client ([`sntp`]), network namespaces ([`netns`]), the real NTP tools the interop tests run
//! ([`peers`]), bounded process handling ([`process`]) and bounded polling ([`wait`]).
//!
//! Safety rules every helper follows: every process a test starts is stopped by the test (also when
//! it panics), every wait is bounded, network traffic goes only to loopback or to namespaces the
//! test created, and every NTP program runs without CAP_SYS_TIME ([`process::notime`]).

pub(crate) mod daemon;
pub(crate) mod netns;
pub(crate) mod peers;
pub(crate) mod process;
pub(crate) mod sntp;
pub(crate) mod tempdir;
pub(crate) mod wait;

use std::net::{Ipv6Addr, UdpSocket};

pub(crate) use daemon::{Daemon, ServerCounters};
pub(crate) use netns::NetnsPair;
pub(crate) use sntp::SntpClient;
pub(crate) use tempdir::TempDir;
pub(crate) use wait::eventually;

/// A UDP port that is free on both IPv4 and IPv6 right now (binding `[::]:0` reserves it for both
/// families on Linux, where IPv6 sockets are dual-stack by default).
pub(crate) fn free_port() -> u16 {
    let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap_or_else(|e| panic!("{e}"));
    socket.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}

/// Configuration of a server synchronised to its own clock through the local clock driver: it
/// serves stratum 11 with refid `LOCL`.
pub(crate) const LOCAL_CLOCK_CONFIG: &str = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n";

/// Stratum a server with [`LOCAL_CLOCK_CONFIG`] serves.
pub(crate) const LOCAL_CLOCK_STRATUM: u8 = 11;

/// Configuration of an orphan-mode server without sources: it serves stratum 10 with refid
/// 127.0.0.1 at once.
pub(crate) const ORPHAN_CONFIG: &str = "tos orphan 10 orphanwait 0\n";

/// Stratum a server with [`ORPHAN_CONFIG`] serves.
pub(crate) const ORPHAN_STRATUM: u8 = 10;
