//! The tests themselves cannot change the machine's clock: every NTP program they start lacks
//! CAP_SYS_TIME.

use std::time::Duration;

use crate::support::netns::Netns;
use crate::support::process::{notime, output_within};
use crate::support::{Daemon, LOCAL_CLOCK_CONFIG};

/// Bit of CAP_SYS_TIME in the capability masks of /proc/PID/status.
const CAP_SYS_TIME: u64 = 1 << 25;

#[test]
fn notime_commands_run_without_cap_sys_time() {
    let ns = Netns::new("cap");
    for mut cmd in [notime("cat"), ns.notime("cat")] {
        cmd.arg("/proc/self/status");
        let out = output_within(&mut cmd, Duration::from_secs(10));
        assert!(out.status.success(), "{cmd:?}: {}", out.status);
        assert_no_sys_time(&String::from_utf8_lossy(&out.stdout), &format!("{cmd:?}"));
    }
}

#[test]
fn daemon_under_test_runs_without_cap_sys_time() {
    let ntpd = Daemon::start(LOCAL_CLOCK_CONFIG);
    let status = std::fs::read_to_string(format!("/proc/{}/status", ntpd.pid())).expect("status");
    assert_no_sys_time(&status, "ntpd");
    // Capabilities are per thread: check every one.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", ntpd.pid())).expect("tasks");
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        if !status.is_empty() {
            assert_no_sys_time(&status, &format!("ntpd thread {:?}", task.file_name()));
        }
    }
}

/// CAP_SYS_TIME is in neither the bounding, effective, permitted, inheritable nor ambient set.
fn assert_no_sys_time(status: &str, who: &str) {
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{set}:")))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or_else(|| panic!("{who}: no {set} in\n{status}"));
        assert_eq!(
            mask & CAP_SYS_TIME,
            0,
            "{who} has CAP_SYS_TIME in {set}: {mask:016x}"
        );
    }
}
