//! The network the access tests build: a switch namespace with a bridge, and three hosts on
//! it — sundial's server with an address on each of two subnets, a LAN host and an outside
//! host. Everything lives in namespaces the test creates and is deleted with them.
//!
//! ```text
//!   server  192.168.1.1/24 + 10.9.0.1/24 ──┐
//!   lan     192.168.1.10/24 (+ .20–.35) ───┼── br0 (switch)
//!   outside 10.9.0.10/24 (+ .11, .12) ─────┘
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::support::netns::Netns;
use crate::support::process::output_within;

/// Where tools/install-test-peers unpacks NTPsec unless `SUNDIAL_NTPSEC_DIR` says otherwise.
const DEFAULT_NTPSEC_DIR: &str = "/opt/sundial-peers/ntpsec";

/// Upper bound for one run of a client tool.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The bridge and the three hosts. Dropping it deletes every namespace (hosts first, so no
/// process of theirs outlives its network; the switch last).
#[derive(Debug)]
pub(crate) struct Lan {
    pub(crate) server: Netns,
    pub(crate) lan: Netns,
    pub(crate) outside: Netns,
    _switch: Netns,
}

impl Lan {
    /// sundial's address on the LAN.
    pub(crate) const SERVER_LAN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    /// sundial's address on the outside subnet.
    pub(crate) const SERVER_OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
    /// The LAN host.
    pub(crate) const LAN_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    /// The outside host.
    pub(crate) const OUTSIDE_HOST: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 10);
    /// Two more outside addresses, so a test can be a fresh client of the rate limiter.
    pub(crate) const OUTSIDE_EXTRA: [Ipv4Addr; 2] =
        [Ipv4Addr::new(10, 9, 0, 11), Ipv4Addr::new(10, 9, 0, 12)];

    /// More LAN addresses: each has its own mode 6 budget, so a sweep can send many mode 6
    /// requests without running into it.
    pub(crate) fn lan_extra() -> Vec<Ipv4Addr> {
        (20..36).map(|n| Ipv4Addr::new(192, 168, 1, n)).collect()
    }

    /// Builds the network.
    pub(crate) fn new() -> Self {
        let switch = Netns::new("sw");
        switch.ip(["link", "add", "br0", "type", "bridge"]);
        switch.ip(["link", "set", "br0", "up"]);
        let host = |role: &str| {
            let ns = Netns::new(role);
            let port = format!("p-{role}");
            // Both ends are created in their namespaces: nothing appears in the host's.
            switch.ip([
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ]);
            switch.ip(["link", "set", &port, "master", "br0"]);
            switch.ip(["link", "set", &port, "up"]);
            ns.ip(["link", "set", "eth0", "up"]);
            ns
        };
        let server = host("srv");
        let lan = host("lan");
        let outside = host("out");
        server.add_address("eth0", Self::SERVER_LAN.into(), 24);
        server.add_address("eth0", Self::SERVER_OUTSIDE.into(), 24);
        lan.add_address("eth0", Self::LAN_HOST.into(), 24);
        for addr in Self::lan_extra() {
            lan.add_address("eth0", addr.into(), 24);
        }
        outside.add_address("eth0", Self::OUTSIDE_HOST.into(), 24);
        for addr in Self::OUTSIDE_EXTRA {
            outside.add_address("eth0", addr.into(), 24);
        }
        Self {
            server,
            lan,
            outside,
            _switch: switch,
        }
    }
}

/// What one run of a tool printed.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Exit status 0.
    pub(crate) success: bool,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

impl Run {
    /// Both outputs, for matching messages wherever the tool printed them.
    pub(crate) fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `program ARGS…` inside `ns` without CAP_SYS_TIME.
pub(crate) fn run_in(ns: &Netns, program: impl Into<PathBuf>, args: &[&str]) -> Run {
    let mut cmd = ns.notime(program.into());
    cmd.args(args);
    let out = output_within(&mut cmd, TOOL_TIMEOUT);
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Debian's (NTPsec's) ntpq: `$SUNDIAL_NTPSEC_DIR/usr/bin/ntpq` or the unpacked package's.
///
/// # Panics
/// If it is not there: the tests need it (they fail rather than skip).
pub(crate) fn debian_ntpq() -> PathBuf {
    let dir = std::env::var_os("SUNDIAL_NTPSEC_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_NTPSEC_DIR), PathBuf::from);
    let ntpq = dir.join("usr/bin/ntpq");
    assert!(
        ntpq.is_file(),
        "{} not found: run tools/test-all to install test peers",
        ntpq.display()
    );
    ntpq
}

/// Runs Debian's ntpq inside `ns` with a short first-fragment timeout (300 ms instead of 5 s),
/// so a server that stays silent costs well under a second per request. NTPsec's ntpq exits
/// 0 even on errors; its messages are in the output. The line the `timeout` command prints is
/// left out of `stdout`.
pub(crate) fn debian_ntpq_in(ns: &Netns, commands: &[&str], host: IpAddr) -> Run {
    let host = host.to_string();
    let mut args = vec!["-c", "timeout 300"];
    for c in commands {
        args.extend(["-c", c]);
    }
    args.push(&host);
    let mut run = run_in(ns, debian_ntpq(), &args);
    if let Some(rest) = run.stdout.strip_prefix(TIMEOUT_ECHO) {
        run.stdout = rest.to_owned();
    }
    run
}

/// What NTPsec's ntpq prints for `-c "timeout 300"`.
const TIMEOUT_ECHO: &str = "primary timeout 300 ms\n";

/// sundial's ntpq inside `ns`.
pub(crate) fn sundial_ntpq_in(ns: &Netns, args: &[&str]) -> Run {
    run_in(ns, env!("CARGO_BIN_EXE_ntpq"), args)
}
