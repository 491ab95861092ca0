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

use crate::support::netns::Netns;
use crate::support::peers::ntpsec_ntpq;
use crate::support::process::Run;

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
    let mut run = ns.run(ntpsec_ntpq(), &args);
    if let Some(rest) = run.stdout.strip_prefix(TIMEOUT_ECHO) {
        run.stdout = rest.to_owned();
    }
    run
}

/// What NTPsec's ntpq prints for `-c "timeout 300"`.
const TIMEOUT_ECHO: &str = "primary timeout 300 ms\n";
