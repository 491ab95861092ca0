//! The tests themselves cannot change the machine's clock: every NTP program they start lacks
//! CAP_SYS_TIME. And `ntpd -u` really gives up root.

use std::time::Duration;

use crate::support::daemon::NTPD;
use crate::support::netns::Netns;
use crate::support::process::{notime, output_within, spawn_logged, stop};
use crate::support::{
    Daemon, LOCAL_CLOCK_CONFIG, LOCAL_CLOCK_STRATUM, SntpClient, TempDir, eventually, free_port,
};

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

#[test]
fn dash_u_runs_every_thread_as_that_user_without_any_capability() {
    let (uid, gid) = passwd_ids("nobody");
    let ntpd = Daemon::start_with(LOCAL_CLOCK_CONFIG, &["-u", "nobody"]);
    // Still serving, from the sockets it opened as root.
    let reply = SntpClient::new(ntpd.addr_v4())
        .query(ntpd.addr_v4(), 4)
        .expect("ntpd -u answers");
    assert_eq!(reply.header.stratum, LOCAL_CLOCK_STRATUM);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", ntpd.pid())).expect("tasks");
    let mut seen = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let who = format!("ntpd thread {:?}", task.file_name());
        seen += 1;
        for (field, id) in [("Uid", uid), ("Gid", gid)] {
            let ids: Vec<u32> = field_of(&status, field)
                .split_whitespace()
                .map(|v| v.parse().expect("an id"))
                .collect();
            assert_eq!(ids, [id; 4], "{who}: {field} (real, effective, saved, fs)");
        }
        // --clock none: nothing at all — not CAP_SYS_TIME, and not CAP_NET_BIND_SERVICE,
        // since every socket is bound before the drop and nothing binds again.
        for set in ["CapPrm", "CapEff"] {
            let mask = u64::from_str_radix(field_of(&status, set), 16).expect("a mask");
            assert_eq!(mask, 0, "{who}: {set}");
        }
        assert_eq!(field_of(&status, "NoNewPrivs"), "1", "{who}");
    }
    assert!(seen >= 2, "ntpd runs its server threads too ({seen} seen)");
    let log = ntpd.log();
    assert!(log.contains("running as nobody"), "{log}");
}

#[test]
fn started_as_its_user_with_ambient_capabilities_ntpd_keeps_none_of_them() {
    // As the service starts it: already nobody, with CAP_NET_BIND_SERVICE ambient to bind
    // port 123, and `-u nobody` on the command line. With --clock none it needs nothing after
    // binding.
    let dir = TempDir::new("ambient");
    let conf = dir.write("ntp.conf", LOCAL_CLOCK_CONFIG);
    let port = free_port();
    let mut cmd = notime("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+net_bind_service",
        "--ambient-caps=+net_bind_service",
        NTPD,
        "-n",
        "-c",
    ])
    .arg(&conf)
    .args([
        "--clock",
        "none",
        "--port",
        &port.to_string(),
        "-u",
        "nobody",
    ]);
    let log = dir.path().join("ntpd.log");
    let mut child = spawn_logged(&mut cmd, &log);
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    let client = SntpClient::new(addr);
    let answered = eventually(Duration::from_secs(10), || client.query(addr, 4).is_ok());
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
                .collect()
        })
        .unwrap_or_default();
    let (_, graceful) = stop(&mut child, Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(answered && graceful, "{text}");
    assert!(text.contains("already running as nobody"), "{text}");
    assert!(tasks.len() >= 2, "{text}");
    for status in &tasks {
        for set in ["CapPrm", "CapEff", "CapAmb"] {
            let mask = u64::from_str_radix(field_of(status, set), 16).expect("a mask");
            assert_eq!(mask, 0, "{set} of a thread:\n{status}");
        }
        assert_eq!(field_of(status, "NoNewPrivs"), "1");
    }
}

#[test]
fn dash_u_removes_its_pid_file_where_the_directory_lets_it() {
    // A pid directory the -u user may write: the file goes at exit.
    let writable = TempDir::new("pid-nobody");
    std::os::unix::fs::chown(writable.path(), Some(65534), Some(65534)).expect("chown");
    let pidfile = writable.path().join("ntpd.pid");
    let pid_arg = pidfile.display().to_string();
    let ntpd = Daemon::start_with(LOCAL_CLOCK_CONFIG, &["-u", "nobody", "-p", &pid_arg]);
    assert!(pidfile.is_file());
    let stopped = ntpd.stop();
    assert!(!pidfile.exists(), "{}", stopped.log);

    // Root's own directory (/run): the unprivileged daemon cannot unlink there, and says so.
    let root_only = TempDir::new("pid-root");
    let pidfile = root_only.path().join("ntpd.pid");
    let pid_arg = pidfile.display().to_string();
    let ntpd = Daemon::start_with(LOCAL_CLOCK_CONFIG, &["-u", "nobody", "-p", &pid_arg]);
    let stopped = ntpd.stop();
    assert!(pidfile.is_file());
    assert!(
        stopped.log.contains("left in place: Permission denied"),
        "{}",
        stopped.log
    );
}

/// The uid and primary gid of `user` in /etc/passwd.
fn passwd_ids(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            (fields.first() == Some(&user))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no user {user} in /etc/passwd"))
}

/// The value of `field` in a /proc status file, trimmed.
fn field_of<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in\n{status}"))
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
