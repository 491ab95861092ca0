//! Files and configurations an unprivileged user can plant must not turn the daemon, started
//! as root, against the machine: no write follows a planted link, no state file read blocks on
//! a FIFO or reads a device without end, and no configuration asks for unbounded memory.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::process::{notime, output_within};
use crate::support::wait::eventually;
use crate::support::{Daemon, LOCAL_CLOCK_CONFIG, TempDir};

/// `nobody`/`nogroup`: the unprivileged user who owns the planted files.
const NOBODY: u32 = 65534;

/// Most resident memory (KiB) a daemon with the default client table may reach: it needs about
/// 10 MiB; reading /dev/zero or a 2^32-entry table would need gigabytes.
const MAX_RESIDENT_KIB: u64 = 200 * 1024;

/// Address-space limit for `ntpd --check` on a configuration bomb: far above what a real
/// configuration needs, far below what an unbounded one takes.
const CHECK_ADDRESS_SPACE: &str = "--as=1073741824";

/// A directory owned by `nobody`, as a pid or drift directory handed to another user is.
fn nobody_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    chown(dir.path(), Some(NOBODY), Some(NOBODY)).expect("chown");
    dir
}

/// Runs `program args…` as `nobody`, which must succeed.
fn as_nobody(program: &str, args: &[&Path]) {
    let status = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", program])
        .args(args)
        .status()
        .expect("setpriv");
    assert!(status.success(), "{program} {args:?} as nobody: {status}");
}

/// A root-owned file only root may read, which a planted link points at.
fn victim(dir: &TempDir) -> PathBuf {
    let path = dir.write("victim", "root's secret\n");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn assert_victim_unchanged(path: &Path) {
    assert_eq!(
        fs::read_to_string(path).expect("victim"),
        "root's secret\n",
        "the victim file was changed"
    );
    assert_eq!(fs::metadata(path).expect("victim").len(), 14);
}

/// Peak resident set size of `pid`, KiB.
fn peak_resident_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn links_planted_in_the_pid_directory_are_not_followed() {
    let own = TempDir::new("pid-victim");
    let victim = victim(&own);
    let run = nobody_dir("pid-dir");
    let pidfile = run.path().join("ntpd.pid");
    // The final name and every temporary name ntpd ever used.
    for name in ["ntpd.pid", "ntpd.tmp", ".ntpd.pid.tmp"] {
        as_nobody("ln", &[Path::new("-s"), &victim, &run.path().join(name)]);
    }
    let pid_arg = pidfile.display().to_string();
    let ntpd = Daemon::start_with(LOCAL_CLOCK_CONFIG, &["-p", &pid_arg]);
    assert_victim_unchanged(&victim);
    let meta = fs::symlink_metadata(&pidfile).expect("pid file");
    assert!(meta.is_file(), "the planted link was replaced by a file");
    assert_eq!(
        fs::read_to_string(&pidfile).expect("pid").trim(),
        ntpd.pid().to_string()
    );
    let stopped = ntpd.stop();
    assert!(stopped.status.success(), "{}", stopped.log);
    assert_victim_unchanged(&victim);
    assert!(!pidfile.exists(), "removed at exit:\n{}", stopped.log);
}

#[test]
fn links_planted_in_the_statistics_directory_are_not_followed() {
    let own = TempDir::new("stats-victim");
    let victim = victim(&own);
    let stats = nobody_dir("stats-dir");
    let today = Command::new("date")
        .args(["-u", "+%Y%m%d"])
        .output()
        .expect("date");
    let today = String::from_utf8_lossy(&today.stdout).trim().to_owned();
    // peerstats: today's generation itself is a link, so nothing may be written there.
    // loopstats: the plain name and the temporary name of the link step are links.
    let peer_generation = format!("peerstats.{today}");
    for name in [peer_generation.as_str(), "loopstats", ".loopstats.link"] {
        as_nobody("ln", &[Path::new("-s"), &victim, &stats.path().join(name)]);
    }
    let upstream = Daemon::start(LOCAL_CLOCK_CONFIG);
    let config = format!(
        "server 127.0.0.1 port {} iburst minpoll 1 maxpoll 1
         statsdir {}/
         statistics loopstats peerstats
         filegen loopstats file loopstats type day link enable
         filegen peerstats file peerstats type day link enable
",
        upstream.port(),
        stats.path().display()
    );
    // Root without -u, writing into a directory nobody owns: the worst case.
    let ntpd = Daemon::start_clock(config, "simulated:0:5", &[]);
    let loopstats = stats.path().join("loopstats");
    let written = || {
        fs::symlink_metadata(&loopstats).is_ok_and(|m| m.is_file())
            && fs::read_to_string(&loopstats).is_ok_and(|t| t.lines().count() >= 2)
    };
    assert!(
        eventually(Duration::from_secs(30), written),
        "no loopstats lines:\n{}",
        ntpd.log()
    );
    assert_victim_unchanged(&victim);
    let base = fs::symlink_metadata(&loopstats).expect("loopstats");
    assert_eq!(
        base.nlink(),
        2,
        "loopstats is a hard link to its generation"
    );
    assert!(
        fs::symlink_metadata(stats.path().join(".loopstats.link")).is_err(),
        "the planted temporary link is gone"
    );
    assert!(
        fs::symlink_metadata(stats.path().join(&peer_generation))
            .expect("planted link")
            .file_type()
            .is_symlink(),
        "the planted generation link is left alone"
    );
    let stopped = ntpd.stop();
    assert!(stopped.status.success(), "{}", stopped.log);
    assert_victim_unchanged(&victim);
}

#[test]
fn a_fifo_as_drift_file_does_not_hang_start_up() {
    let drift = nobody_dir("drift-fifo");
    let fifo = drift.path().join("ntp.drift");
    as_nobody("mkfifo", &[&fifo]);
    let config = format!("{LOCAL_CLOCK_CONFIG}driftfile {}\n", fifo.display());
    let started = Instant::now();
    // Start-up completes: the daemon answers (Daemon::start_clock waits for that).
    let ntpd = Daemon::start_clock(config, "simulated:0:0", &[]);
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = ntpd.log();
    assert!(
        log.contains("is not a regular file; starting from 0 ppm"),
        "{log}"
    );
    let stopped = ntpd.stop();
    assert!(stopped.status.success(), "SIGTERM works:\n{}", stopped.log);
}

#[test]
fn a_link_to_dev_zero_as_drift_file_is_not_read() {
    let drift = nobody_dir("drift-zero");
    let link = drift.path().join("ntp.drift");
    as_nobody("ln", &[Path::new("-s"), Path::new("/dev/zero"), &link]);
    let config = format!("{LOCAL_CLOCK_CONFIG}driftfile {}\n", link.display());
    let ntpd = Daemon::start_clock(config, "simulated:0:0", &[]);
    let peak = peak_resident_kib(ntpd.pid());
    println!("ntpd with /dev/zero as drift file: peak resident {peak} KiB");
    assert!(peak < MAX_RESIDENT_KIB, "{peak} KiB");
    let log = ntpd.log();
    assert!(
        log.contains("is a symbolic link, which is never opened"),
        "{log}"
    );
}

#[test]
fn an_mru_depth_bomb_fails_the_check_and_starts_with_the_default_table() {
    let bomb = "mru maxdepth 4294967295\n";
    let dir = TempDir::new("mru-bomb");
    let (status, out, path) = Daemon::check(&dir, "ntp.conf", bomb.as_bytes());
    assert!(!status.success(), "{out}");
    let finding = format!("{}:1:", path.display());
    assert!(
        out.contains(&finding) && out.contains("maxdepth must be between 0 and 1048576"),
        "{out}"
    );
    // The daemon starts with the same error logged, and the line has no effect.
    let ntpd = Daemon::start(format!("{LOCAL_CLOCK_CONFIG}{bomb}"));
    let peak = peak_resident_kib(ntpd.pid());
    println!("ntpd with mru maxdepth 4294967295: peak resident {peak} KiB");
    assert!(peak < MAX_RESIDENT_KIB, "{peak} KiB");
    assert!(
        ntpd.log()
            .contains("maxdepth must be between 0 and 1048576"),
        "{}",
        ntpd.log()
    );
}

#[test]
fn an_includefile_bomb_fails_the_check_fast_within_bounded_memory() {
    let dir = TempDir::new("include-bomb");
    for level in 0..6 {
        let body = if level < 5 {
            format!("includefile level{}.conf\n", level + 1).repeat(40)
        } else {
            "server 192.0.2.1\n".repeat(40)
        };
        dir.write(&format!("level{level}.conf"), body);
    }
    let mut cmd = notime("prlimit");
    cmd.arg(CHECK_ADDRESS_SPACE)
        .arg(crate::support::daemon::NTPD)
        .arg("--check")
        .arg("-c")
        .arg(dir.path().join("level0.conf"));
    let started = Instant::now();
    let out = output_within(&mut cmd, Duration::from_secs(30));
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("ntpd --check on the include bomb: {elapsed:?} within a 1 GiB address space");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("longer than 100000 lines in all"), "{text}");
    assert!(text.contains("1 error(s)"), "{text}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}
