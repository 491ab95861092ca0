//! The Debian package under a real systemd: `tools/build-deb` builds it, lintian checks it, and a
//! minimal Debian 12 booted with `systemd-nspawn` ([`container`]) installs, runs, reloads,
//! upgrades and purges it. The checks, in order:
//!
//! 1. lintian reports no error, and no warning that docs/PACKAGING.md does not list;
//! 2. `apt install ./sundial_*.deb` works offline; the unit is enabled under its aliases, and —
//!    the container lacking CAP_SYS_TIME — skipped by `ConditionCapability`;
//! 3. `systemd-analyze verify` finds nothing; `systemd-analyze security` of the shipped unit is
//!    at most 2.0;
//! 4. with the documented `--clock none` drop-in the unit is active, `READY=1` arrived (systemd
//!    shows the status line ntpd sent with it), and `ntpq -p` and `ntpdate -q 127.0.0.1` answer;
//! 5. `systemctl reload ntp` after adding a server shows it in `ntpq -p` without a new process;
//!    a broken edit keeps the old configuration and `journalctl -u sundial` says where;
//! 6. `systemctl restart` keeps the drift file; an upgrade under a `policy-rc.d` that says 101
//!    does not restart the daemon, without it it does, and the drift file and the edited
//!    conffile survive;
//! 7. `apt-get purge` leaves no file of the package, no state and no unit symlink behind.
//!
//! Run as root (tools/test-all); tools/install-test-peers installs mmdebstrap,
//! systemd-container and lintian. The first run builds the Debian root (about 15 s plus the
//! download) into /var/cache/sundial-test.

mod container;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use container::{Container, bounded, debian_root};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the package; returns the .deb's path.
fn build_deb(out: &Path) -> PathBuf {
    let (ok, text) = bounded(
        Command::new(repo().join("tools/build-deb"))
            .env("SUNDIAL_DEB_OUT", out)
            // The binaries cargo test has built already: a release build would add minutes.
            .env("SUNDIAL_DEB_PROFILE", "dev"),
        Duration::from_secs(900),
    );
    assert!(ok, "tools/build-deb failed:\n{text}");
    // stdout and stderr come merged here; the path is the last line that is one.
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with('/') && l.ends_with(".deb"))
        .unwrap_or_default();
    let deb = PathBuf::from(last.trim());
    assert!(deb.is_file(), "build-deb printed no .deb path:\n{text}");
    deb
}

/// lintian: no errors, and only the warnings docs/PACKAGING.md lists and explains.
fn check_lintian(deb: &Path) {
    let (_, report) = bounded(
        Command::new("lintian")
            .args(["--no-tag-display-limit"])
            .arg(deb),
        Duration::from_secs(300),
    );
    let doc = std::fs::read_to_string(repo().join("docs/PACKAGING.md")).unwrap_or_default();
    for line in report.lines() {
        assert!(!line.starts_with("E: "), "lintian error: {line}\n{report}");
        if let Some(rest) = line.strip_prefix("W: ") {
            let tag = rest.split_whitespace().nth(1).unwrap_or_default();
            assert!(
                doc.contains(&format!("lintian-warning: {tag}")),
                "lintian warning not explained in docs/PACKAGING.md: {line}"
            );
        }
    }
}

/// The exposure level in `systemd-analyze security` output.
fn exposure(report: &str) -> f64 {
    report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for sundial.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"))
}

/// ntp.conf for the container: the local clock (so ntpdate gets a synchronised answer at once),
/// the Debian paths, and every server line in `servers`.
fn test_config(extra: &str) -> String {
    format!(
        "driftfile /var/lib/ntp/ntp.drift\nstatsdir /var/log/ntpstats/\n\
         server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n{extra}"
    )
}

const SETTLE: Duration = Duration::from_secs(20);

#[test]
fn package_installs_runs_reloads_upgrades_and_purges_under_systemd() {
    let out = OutDir::new();
    let deb = build_deb(&out.0);
    check_lintian(&deb);
    let root = debian_root();
    let name = deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let c = Container::boot(&root, &out.0);
    let pkg = format!("/mnt/pkg/{name}");

    // 2. Install, offline.
    c.ok(&format!("apt-get install -y --no-install-recommends {pkg}"));
    assert_eq!(
        c.ok("systemctl is-enabled sundial.service").trim(),
        "enabled"
    );
    assert_eq!(
        c.ok("systemctl show -p Id --value ntp.service").trim(),
        "sundial.service"
    );
    assert_eq!(
        c.ok("systemctl show -p Id --value ntpd.service").trim(),
        "sundial.service"
    );
    assert_eq!(
        c.ok("systemctl show -p ConditionResult --value sundial")
            .trim(),
        "no",
        "without CAP_SYS_TIME the shipped unit must not start"
    );
    c.ok("getent passwd ntp && test \"$(stat -c %U:%G /var/lib/ntp /var/log/ntpstats)\" = \"ntp:ntp\nntp:ntp\"");

    // 3. The unit as shipped.
    let verify = c.ok("systemd-analyze verify sundial.service 2>&1");
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );
    let shipped = exposure(
        &c.ok("systemd-analyze security --offline=true /lib/systemd/system/sundial.service 2>&1"),
    );
    assert!(shipped <= 2.0, "exposure of the shipped unit: {shipped}");

    // 4. The documented container override, and a config with the local clock.
    c.ok("mkdir -p /etc/systemd/system/sundial.service.d && \
          cp /usr/share/doc/sundial/examples/container.conf /etc/systemd/system/sundial.service.d/ && \
          sed -i \"s/^NTPD_OPTS=.*/NTPD_OPTS='-g --clock none'/\" /etc/default/ntp");
    c.ok(&format!("printf '{}' > /etc/ntp.conf", test_config("")));
    c.ok("printf '12.345\\n' > /var/lib/ntp/ntp.drift && chown ntp:ntp /var/lib/ntp/ntp.drift");
    c.ok("systemctl daemon-reload && systemctl restart ntp");
    assert_eq!(c.ok("systemctl is-active sundial").trim(), "active");
    // systemd shows a status text only if ntpd sent one, and ntpd sends the first with READY=1.
    let (seen, status) = c.until(
        "systemctl show -p StatusText --value sundial",
        SETTLE,
        |s| s.contains("local clock fallback, stratum 11"),
    );
    assert!(seen, "status line: {status}");
    let live = exposure(&c.ok("systemd-analyze security sundial.service 2>&1"));
    assert!(live <= 2.0, "exposure with the container drop-in: {live}");
    // Started as ntp with CAP_NET_BIND_SERVICE to bind port 123, and with --clock none, the
    // running daemon keeps no capability at all.
    let caps = c.ok("grep -h '^Cap\\(Prm\\|Eff\\|Amb\\)' /proc/$(systemctl show -p MainPID --value sundial)/task/*/status | sort -u");
    assert_eq!(
        caps.lines()
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?"))
            .collect::<std::collections::BTreeSet<_>>(),
        ["0000000000000000"].into_iter().collect(),
        "{caps}"
    );
    let (answered, peers) = c.until("ntpq -p -n 127.0.0.1", SETTLE, |s| {
        s.contains("127.127.1.0") && s.contains(".LOCL.")
    });
    assert!(answered, "ntpq -p:\n{peers}");
    let (answered, date) = c.until("ntpdate -q 127.0.0.1", SETTLE, |s| {
        s.contains("server 127.0.0.1, stratum 11")
    });
    assert!(answered, "ntpdate -q:\n{date}");

    // 5. Reload: a new server appears without a new process; a broken file is refused.
    let pid = c.ok("systemctl show -p MainPID --value sundial");
    c.ok(&format!(
        "printf '{}' > /etc/ntp.conf && systemctl reload ntp",
        test_config("server 127.0.0.2 iburst\\n")
    ));
    let (added, peers) = c.until("ntpq -p -n 127.0.0.1", SETTLE, |s| s.contains("127.0.0.2"));
    assert!(added, "after reload:\n{peers}");
    assert_eq!(c.ok("systemctl show -p MainPID --value sundial"), pid);
    c.ok(&format!(
        "printf '{}' > /etc/ntp.conf && systemctl reload ntp",
        test_config("server 127.0.0.3 iburst\\nrestrict default nomodfy\\n")
    ));
    let (said, log) = c.until("journalctl -u sundial --no-pager", SETTLE, |s| {
        s.contains("configuration rejected") && s.contains("/etc/ntp.conf:6:")
    });
    assert!(said, "journal after a broken reload:\n{log}");
    let peers = c.ok("ntpq -p -n 127.0.0.1");
    assert!(
        peers.contains("127.0.0.2") && !peers.contains("127.0.0.3"),
        "the old configuration must stay:\n{peers}"
    );
    assert_eq!(c.ok("systemctl is-active sundial").trim(), "active");
    c.ok(&format!(
        "printf '{}' > /etc/ntp.conf && systemctl reload ntp",
        test_config("server 127.0.0.2 iburst\\n")
    ));

    // 6. Restart and upgrade keep the drift file; policy-rc.d is honoured.
    c.ok("systemctl restart ntp");
    assert_eq!(c.ok("systemctl is-active sundial").trim(), "active");
    assert_eq!(c.ok("cat /var/lib/ntp/ntp.drift").trim(), "12.345");
    let pid = c.ok("systemctl show -p MainPID --value sundial");
    c.ok("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d");
    c.ok(&format!("apt-get install -y --reinstall {pkg}"));
    assert_eq!(
        c.ok("systemctl show -p MainPID --value sundial"),
        pid,
        "policy-rc.d said 101, yet the daemon was restarted"
    );
    c.ok("rm /usr/sbin/policy-rc.d");
    c.ok(&format!("apt-get install -y --reinstall {pkg}"));
    assert_eq!(c.ok("systemctl is-active sundial").trim(), "active");
    assert_ne!(
        c.ok("systemctl show -p MainPID --value sundial"),
        pid,
        "an upgrade restarts the daemon"
    );
    assert_eq!(c.ok("cat /var/lib/ntp/ntp.drift").trim(), "12.345");
    assert!(
        c.ok("cat /etc/ntp.conf").contains("127.0.0.2"),
        "the edited conffile was replaced"
    );

    // 7. Purge leaves nothing of the package.
    // Files and symlinks only: directories such as /lib (itself a symlink) are shared.
    let files = c.ok("dpkg -L sundial | while read -r p; do [ -d \"$p\" ] || echo \"$p\"; done");
    c.ok("rm -r /etc/systemd/system/sundial.service.d");
    c.ok("apt-get purge -y sundial");
    let (installed, _) = c.sh("dpkg -s sundial");
    assert!(!installed, "still installed after purge");
    let mut left = Vec::new();
    for path in files.lines().filter(|p| p.len() > 1) {
        let (is_file, _) = c.sh(&format!("test -f '{path}' || test -L '{path}'"));
        if is_file {
            left.push(path.to_owned());
        }
    }
    for path in [
        "/var/lib/ntp",
        "/var/log/ntpstats",
        "/usr/share/doc/sundial",
        "/etc/systemd/system/ntp.service",
        "/etc/systemd/system/ntpd.service",
        "/etc/systemd/system/multi-user.target.wants/sundial.service",
    ] {
        let (exists, _) = c.sh(&format!("test -e '{path}' || test -L '{path}'"));
        if exists {
            left.push(path.to_owned());
        }
    }
    assert!(left.is_empty(), "left behind by purge: {left:?}");
    let (running, _) = c.sh("pgrep -x ntpd");
    assert!(!running, "ntpd still runs after purge");
}

/// The directory the package is built into, removed when the test ends however it ends (after
/// the container, which binds it, is gone: locals drop in reverse order).
struct OutDir(PathBuf);

impl OutDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("sundial-package-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
