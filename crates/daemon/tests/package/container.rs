//! A minimal Debian 12 booted with `systemd-nspawn -b`, for testing the package under a real
//! systemd.
//!
//! * The root is made once with `mmdebstrap` and cached in [`CACHE_DIR`]; it is rebuilt only
//!   when missing. The container runs on a volatile overlay (`--volatile=overlay`), so whatever
//!   a test does inside never reaches the cache.
//! * `--private-network`: the container has only its own loopback; nothing leaves the host.
//! * nspawn runs without CAP_SYS_TIME in its bounding set, and [`Container::boot`] checks the
//!   container's PID 1 lacks it before anything else happens, so nothing inside can set the
//!   host's clock.
//! * Where systemd is not PID 1 on the host, nspawn needs `--register=no --keep-unit
//!   --console=passive` and a tmpfs at /run/systemd/nspawn; that tmpfs is mounted in a private
//!   mount namespace (`unshare -m`), so the host's mounts never change. Commands go in with
//!   `nsenter -t PID -a`.
//! * Dropping a [`Container`] powers it off (SIGTERM to nspawn), killing it if it does not stop
//!   in time — on every path, panics included.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Where the Debian root is cached, outside the repository.
pub(crate) const CACHE_DIR: &str = "/var/cache/sundial-test";

/// The cached root; the name changes whenever the package list does, so a stale root is never
/// used.
const ROOT_NAME: &str = "bookworm-systemd-v1";

/// Packages in the root besides the `apt` variant's: an init, and what sundial's package
/// depends on or the checks run (`man` for `systemd-analyze verify`), so that installing the
/// .deb needs no network.
const INCLUDE: &str = "systemd,systemd-sysv,dbus,adduser,procps,man-db";

/// `CAP_SYS_TIME`'s bit in /proc/PID/status capability masks.
const CAP_SYS_TIME_BIT: u32 = 25;

/// Bound for one command inside the container (apt included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// Bound for the boot to reach `running`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// Bound for the container to power off after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The root directory, built with mmdebstrap if it is not there yet.
pub(crate) fn debian_root() -> PathBuf {
    let root = Path::new(CACHE_DIR).join(ROOT_NAME);
    if root.join("usr/lib/systemd/systemd").exists() {
        return root;
    }
    let partial = Path::new(CACHE_DIR).join(format!("{ROOT_NAME}.partial"));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(CACHE_DIR).unwrap_or_else(|e| panic!("{CACHE_DIR}: {e}"));
    let out = bounded(
        Command::new("mmdebstrap")
            .args(["--variant=apt", "--include", INCLUDE, "bookworm"])
            .arg(&partial),
        Duration::from_secs(600),
    );
    assert!(out.0, "mmdebstrap failed:\n{}", out.1);
    fs::rename(&partial, &root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    root
}

/// A booted container.
pub(crate) struct Container {
    nspawn: Child,
    init_pid: u32,
}

impl Container {
    /// Boots `root` with `bind` (a host directory) visible read-only at /mnt/pkg, and waits
    /// until systemd reports the boot finished.
    ///
    /// # Panics
    /// If the container does not boot, or its PID 1 could set the clock.
    pub(crate) fn boot(root: &Path, bind: &Path) -> Self {
        let script = format!(
            "mkdir -p /run/systemd/nspawn && mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn \
             && exec systemd-nspawn -q -D '{}' --volatile=overlay --private-network \
             --register=no --keep-unit --console=passive --machine=sundial-test-{} \
             --bind-ro='{}:/mnt/pkg' -b",
            root.display(),
            std::process::id(),
            bind.display()
        );
        let nspawn = Command::new("setpriv")
            .args([
                "--bounding-set",
                "-sys_time",
                "--inh-caps",
                "-sys_time",
                "--",
            ])
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting systemd-nspawn: {e}"));
        let mut container = Self {
            nspawn,
            init_pid: 0,
        };
        container.init_pid = container.find_init();
        let capbnd = capability_mask(container.init_pid, "CapBnd:");
        assert_eq!(
            capbnd >> CAP_SYS_TIME_BIT & 1,
            0,
            "the container's PID 1 has CAP_SYS_TIME (CapBnd {capbnd:016x}); refusing to go on"
        );
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let (_, state) = container.sh("systemctl is-system-running");
            if matches!(state.trim(), "running" | "degraded") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the container did not boot within {BOOT_TIMEOUT:?} (state {state})"
            );
            thread::sleep(Duration::from_millis(200));
        }
        container
    }

    /// The container's init: nspawn's child process.
    fn find_init(&mut self) -> u32 {
        let nspawn = self.nspawn.id();
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                panic!("systemd-nspawn exited at start: {status}");
            }
            let children = fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children"))
                .unwrap_or_default();
            for child in children.split_whitespace() {
                let comm = fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    return child.parse().unwrap_or(0);
                }
            }
            assert!(Instant::now() < deadline, "no container init appeared");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `script` with `sh -c` inside the container; returns success and stdout+stderr.
    pub(crate) fn sh(&self, script: &str) -> (bool, String) {
        bounded(
            Command::new("nsenter")
                .args(["-t", &self.init_pid.to_string(), "-a", "--"])
                .args(["env", "DEBIAN_FRONTEND=noninteractive", "sh", "-c", script]),
            COMMAND_TIMEOUT,
        )
    }

    /// As [`Self::sh`], panicking with the output unless it succeeds.
    pub(crate) fn ok(&self, script: &str) -> String {
        let (ok, out) = self.sh(script);
        assert!(ok, "`{script}` failed in the container:\n{out}");
        out
    }

    /// Polls `script` until `done` accepts its output or `limit` passes; returns the last
    /// output and whether it was accepted.
    pub(crate) fn until(
        &self,
        script: &str,
        limit: Duration,
        done: impl Fn(&str) -> bool,
    ) -> (bool, String) {
        let deadline = Instant::now() + limit;
        loop {
            let (_, out) = self.sh(script);
            if done(&out) {
                return (true, out);
            }
            if Instant::now() >= deadline {
                return (false, out);
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM makes nspawn power the container off cleanly.
        let _ = Command::new("kill")
            .args(["-TERM", &self.nspawn.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// A capability mask line (`CapBnd:` …) of /proc/PID/status.
fn capability_mask(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Runs `cmd` to completion within `limit` (killed after it); returns success and the output.
pub(crate) fn bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read = |pipe: Option<std::process::ChildStdout>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = std::io::Read::read_to_string(&mut p, &mut text);
            }
            text
        })
    };
    let out = read(stdout);
    let err = thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = stderr {
            let _ = std::io::Read::read_to_string(&mut p, &mut text);
        }
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    match status {
        Some(s) => (s.success(), text),
        None => panic!("{cmd:?} did not finish within {limit:?}:\n{text}"),
    }
}
