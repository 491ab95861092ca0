//! Network namespaces for tools that only talk to port 123: each namespace has its own loopback
//! and its own port space, so a sundial `ntpd` can own port 123 in there without touching the
//! host's.
//!
//! Names are unique per test process (`sdt-PID-N…`); everything is deleted on drop, also when a
//! test panics. Namespaces left behind by a test process that was killed are removed by the next
//! run.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::process::{self, NOTIME_ARGS, Run, output_within};

/// Prefix of every namespace the tests create.
const PREFIX: &str = "sdt-";

/// Upper bound for one `ip` invocation.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// One network namespace with its loopback interface up.
#[derive(Debug)]
pub(crate) struct Netns {
    name: String,
}

/// Two namespaces joined by a veth pair (`eth0` in each): a server at [`Self::SERVER_V4`] /
/// [`Self::SERVER_V6`] and a client at [`Self::CLIENT_V4`] / [`Self::CLIENT_V6`]. The addresses
/// exist only inside the namespaces.
#[derive(Debug)]
pub(crate) struct NetnsPair {
    pub(crate) server: Netns,
    pub(crate) client: Netns,
}

impl Netns {
    /// Creates a namespace named after this process, a counter and `role`.
    pub(crate) fn new(role: &str) -> Self {
        static CLEANUP: Once = Once::new();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        CLEANUP.call_once(remove_stale);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}{role}", std::process::id());
        ip(["netns", "add", &name]);
        // From here on, Drop deletes it.
        let ns = Self { name };
        ns.ip(["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub(crate) fn exec(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A command that runs `program` inside the namespace without CAP_SYS_TIME.
    pub(crate) fn notime(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.exec("setpriv");
        cmd.args(NOTIME_ARGS).arg(program);
        cmd
    }

    /// Runs `program ARGS…` inside the namespace without CAP_SYS_TIME, to completion within
    /// [`process::TOOL_TIMEOUT`].
    pub(crate) fn run(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Run {
        let mut cmd = self.notime(program);
        cmd.args(args);
        process::run(&mut cmd)
    }

    /// Runs `ip -n NAME ARGS…`.
    pub(crate) fn ip<'a>(&self, args: impl IntoIterator<Item = &'a str>) {
        let mut all = vec!["-n".to_owned(), self.name.clone()];
        all.extend(args.into_iter().map(str::to_owned));
        ip(all.iter().map(String::as_str));
    }

    /// Adds `addr/prefix` to `dev` (IPv6 without duplicate address detection, so it is usable at
    /// once).
    pub(crate) fn add_address(&self, dev: &str, addr: IpAddr, prefix: u8) {
        let cidr = format!("{addr}/{prefix}");
        match addr {
            IpAddr::V4(_) => self.ip(["addr", "add", &cidr, "dev", dev]),
            IpAddr::V6(_) => self.ip(["addr", "add", &cidr, "dev", dev, "nodad"]),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also deletes its end of any veth pair, and with it the peer.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl NetnsPair {
    pub(crate) const SERVER_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
    pub(crate) const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
    pub(crate) const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5d, 0, 0, 0, 0, 0, 1);
    pub(crate) const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5d, 0, 0, 0, 0, 0, 2);

    /// Creates both namespaces and the link between them. The veth pair is created directly
    /// inside the namespaces, so no interface ever appears in the host's namespace.
    pub(crate) fn new() -> Self {
        let server = Netns::new("s");
        let client = Netns::new("c");
        ip([
            "link",
            "add",
            "eth0",
            "netns",
            &server.name,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &client.name,
        ]);
        for (ns, v4, v6) in [
            (&server, Self::SERVER_V4, Self::SERVER_V6),
            (&client, Self::CLIENT_V4, Self::CLIENT_V6),
        ] {
            ns.add_address("eth0", v4.into(), 24);
            ns.add_address("eth0", v6.into(), 64);
            ns.ip(["link", "set", "eth0", "up"]);
        }
        Self { server, client }
    }
}

/// Runs `ip ARGS…` and panics with its output if it fails.
fn ip<'a>(args: impl IntoIterator<Item = &'a str>) {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = output_within(&mut cmd, IP_TIMEOUT);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}\n(the tests need root: run tools/test-all)",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// Deletes namespaces of earlier test processes that no longer exist (killed before their Drop
/// could run). Namespaces of live processes, including concurrent test runs, are left alone.
fn remove_stale() {
    let Ok(out) = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
