//! A real `ntpd` disciplining a clock without any privilege: `--clock simulated:0.5:30` starts
//! half a second and 30 ppm off, follows a real chronyd on loopback, and must end up serving
//! time a real client finds within a millisecond, with the frequency error in the drift file.
//! `--clock none` must never try to write a clock at all.

#[path = "../integration/support/mod.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "shared helpers; each test binary uses a subset"
)]
mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::process::Child;
use std::thread;
use std::time::Duration;

use support::peers::Peer;
use support::process::{notime, spawn_logged, stop};
use support::wait::eventually_every;
use support::{SntpClient, TempDir, eventually, free_port};

/// `ntpd -n` with a given clock; stopped on drop.
struct Ntpd {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Ntpd {
    fn start(config: &str, clock: &str) -> Self {
        let dir = TempDir::new("ntpd-discipline");
        let conf = dir.write(
            "ntp.conf",
            config.replace("{DIR}", &dir.path().display().to_string()),
        );
        let port = free_port();
        let mut cmd = notime(support::daemon::NTPD);
        cmd.arg("-n")
            .arg("-c")
            .arg(&conf)
            .args(["--clock", clock, "--port", &port.to_string()]);
        let child = spawn_logged(&mut cmd, &dir.path().join("ntpd.log"));
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ntpd.log")).unwrap_or_default()
    }

    /// SIGTERM, then the log and the drift file (read before the directory goes).
    fn stop(mut self) -> (String, Option<String>) {
        if let Some(mut child) = self.child.take() {
            let (status, graceful) = stop(&mut child, Duration::from_secs(10));
            assert!(
                graceful && status.is_some_and(|s| s.success()),
                "ntpd did not stop cleanly:\n{}",
                self.log()
            );
        }
        (
            self.log(),
            std::fs::read_to_string(self.dir.path().join("ntp.drift")).ok(),
        )
    }
}

impl Drop for Ntpd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = stop(&mut child, Duration::from_secs(10));
        }
    }
}

fn config(server_port: u16) -> String {
    format!(
        "server 127.0.0.1 port {server_port} iburst minpoll 1 maxpoll 1\ndriftfile {{DIR}}/ntp.drift\n"
    )
}

/// The drift file holds `ppm` within 2 ppm.
fn assert_drift_near(drift: Option<&str>, ppm: f64, log: &str) {
    let drift: f64 = drift
        .unwrap_or_else(|| panic!("no drift file:\n{log}"))
        .trim()
        .parse()
        .expect("drift file holds a number");
    assert!((drift - ppm).abs() < 2.0, "drift file says {drift} ppm");
}

/// Waits until `ntpd` serves stratum 3, lets the frequency settle over a few polls (2 s apart),
/// then measures the served time with a real client (chronyd -Q).
fn assert_served_within_a_millisecond(ntpd: &Ntpd) {
    let client = SntpClient::new(ntpd.addr());
    let synced = eventually(Duration::from_secs(30), || {
        client
            .query(ntpd.addr(), 4)
            .is_ok_and(|r| r.header.stratum == 3)
    });
    assert!(synced, "never served stratum 3:\n{}", ntpd.log());
    thread::sleep(Duration::from_secs(20));
    let q = support::peers::chronyd_query(ntpd.addr());
    let last = q
        .measurements
        .last()
        .unwrap_or_else(|| panic!("chronyd measured nothing:\n{}", q.output));
    assert_eq!(last.stratum, 3);
    assert!(
        last.offset.abs() < 1e-3,
        "served time is {} s off:\n{}",
        last.offset,
        ntpd.log()
    );
}

#[test]
fn simulated_clock_is_disciplined_to_a_real_chronyd_and_served_within_a_millisecond() {
    let upstream = Peer::chronyd_on_loopback(2);
    let ntpd = Ntpd::start(&config(upstream.port()), "simulated:0.5:30");
    assert_served_within_a_millisecond(&ntpd);
    let (log, drift) = ntpd.stop();
    let step: f64 = log
        .lines()
        .find_map(|l| {
            l.split_once("clock stepped by ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("the 0.5 s start error was not stepped:\n{log}"));
    assert!((step + 0.5).abs() < 0.01, "stepped by {step} s");
    // The clock runs 30 ppm fast, so the correction is about -30 ppm.
    assert_drift_near(drift.as_deref(), -30.0, &log);
}

/// θ and δ of one reply as an SNTP client computes them, seconds: the server's time minus the
/// kernel clock — which is the upstream chronyd's time, as that chronyd serves the kernel clock
/// — and the round trip, which bounds how wrong θ can be (by half of it).
fn sntp_offset_delay(r: &support::sntp::Reply) -> (f64, f64) {
    let t1 = sundial_proto::time::NtpTimestamp::from_unix(r.sent);
    let t4 = sundial_proto::time::NtpTimestamp::from_unix(r.received);
    let t2 = r.header.receive_timestamp;
    let t3 = r.header.transmit_timestamp;
    let offset = ((t2 - t1).to_seconds_f64() + (t3 - t4).to_seconds_f64()) / 2.0;
    let delay = (t4 - t1).to_seconds_f64() - (t3 - t2).to_seconds_f64();
    (offset, delay)
}

/// Replies whose round trip took longer than this are not counted: on a loaded machine the
/// test's own measurement would be off by up to half of it.
const MAX_PROBE_DELAY_S: f64 = 400e-6;

/// Issue "served time": the simulated clock starts 0.1 s off — under the step threshold, so it
/// is slewed out over about two seconds — and yet from the first reply that claims
/// synchronisation on, every reply a client gets is within a millisecond of the upstream's
/// time: replies carry the corrected time while the clock still slews. Checked by polling
/// every 20 ms across the slew, and by a real chronyd -Q started at the first synchronised
/// reply.
#[test]
fn served_time_is_within_a_millisecond_from_the_first_synchronised_reply_on() {
    let upstream = Peer::chronyd_on_loopback(2);
    let ntpd = Ntpd::start(&config(upstream.port()), "simulated:0.1:50");
    let client = SntpClient::new(ntpd.addr());
    let synced = eventually_every(Duration::from_secs(30), Duration::from_millis(20), || {
        client
            .query(ntpd.addr(), 4)
            .is_ok_and(|r| r.header.stratum == 3)
    });
    assert!(synced, "never served stratum 3:\n{}", ntpd.log());
    let chronyd = thread::spawn({
        let addr = ntpd.addr();
        move || support::peers::chronyd_query(addr)
    });
    let mut worst: f64 = 0.0;
    let mut seen = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        if let Ok(r) = client.query(ntpd.addr(), 4)
            && r.header.stratum == 3
        {
            let (offset, delay) = sntp_offset_delay(&r);
            if delay < MAX_PROBE_DELAY_S {
                worst = worst.max(offset.abs());
                seen += 1;
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(seen > 30, "only {seen} synchronised replies measured well");
    assert!(
        worst < 1e-3,
        "a synchronised reply was {worst} s off:\n{}",
        ntpd.log()
    );
    let q = chronyd.join().expect("chronyd -Q ran");
    let synchronised: Vec<_> = q.measurements.iter().filter(|m| m.stratum == 3).collect();
    assert!(
        !synchronised.is_empty(),
        "chronyd measured nothing:\n{}",
        q.output
    );
    for m in synchronised {
        assert!(
            m.offset.abs() < 1e-3,
            "chronyd -Q measured {m:?}:\n{}",
            ntpd.log()
        );
    }
}

#[test]
fn clock_none_never_tries_to_write_a_clock() {
    let upstream = Peer::chronyd_on_loopback(2);
    let ntpd = Ntpd::start(&config(upstream.port()), "none");
    let client = SntpClient::new(ntpd.addr());
    let synced = eventually(Duration::from_secs(30), || {
        client
            .query(ntpd.addr(), 4)
            .is_ok_and(|r| r.header.stratum == 3)
    });
    assert!(synced, "{}", ntpd.log());
    let (log, drift) = ntpd.stop();
    assert!(drift.is_none(), "--clock none wrote a drift file");
    for forbidden in [
        "Operation not permitted",
        "adjusting the clock",
        "clock stepped",
        "saved to",
    ] {
        assert!(
            !log.contains(forbidden),
            "{forbidden:?} in the log of --clock none:\n{log}"
        );
    }
}

#[test]
fn the_system_clock_fails_loudly_without_the_capability() {
    // The test suite runs without CAP_SYS_TIME; ntpd -q with the system clock must say it
    // could not set the clock and exit 1 — never pretend.
    let upstream = Peer::chronyd_on_loopback(2);
    let dir = TempDir::new("ntpd-q");
    let conf = dir.write(
        "ntp.conf",
        format!("server 127.0.0.1 port {} iburst\n", upstream.port()),
    );
    let mut cmd = notime(support::daemon::NTPD);
    cmd.arg("-q")
        .arg("-c")
        .arg(&conf)
        .args(["--clock", "system", "--port", "0"]);
    let out = support::process::output_within(&mut cmd, Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot set the clock"), "{text}");
}

#[test]
fn without_iburst_the_frequency_is_measured_before_the_clock_is_corrected() {
    // No drift file and no iburst: ntpd's FREQ state. The 50 ms phase error is slewed out at
    // once, then the clock keeps its 30 ppm error while every poll brings a burst, until the
    // frequency is known; only then is the clock corrected and served as synchronised.
    let upstream = Peer::chronyd_on_loopback(2);
    let config = format!(
        "server 127.0.0.1 port {} minpoll 1 maxpoll 1\ndriftfile {{DIR}}/ntp.drift\n",
        upstream.port()
    );
    // The drift file does not exist yet, so the frequency is unknown.
    let ntpd = Ntpd::start(&config, "simulated:0.05:30");
    assert_served_within_a_millisecond(&ntpd);
    let (log, drift) = ntpd.stop();
    let started = log
        .find("measuring the clock frequency")
        .unwrap_or_else(|| panic!("no frequency measurement:\n{log}"));
    let measured = log
        .find("frequency measured: ")
        .unwrap_or_else(|| panic!("the measurement never ended:\n{log}"));
    assert!(started < measured, "{log}");
    assert!(!log.contains("clock stepped"), "50 ms is slewed:\n{log}");
    assert_drift_near(drift.as_deref(), -30.0, &log);
}

#[test]
fn links_planted_in_the_drift_directory_are_replaced_not_followed() {
    // The drift directory belongs to an unprivileged user, who planted links to a root-only
    // file at the drift file's name and at the temporary name ntpd used to write through.
    let own = TempDir::new("drift-victim");
    let victim = own.write("victim", "root's secret\n");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let drift_dir = TempDir::new("drift-nobody");
    std::os::unix::fs::chown(drift_dir.path(), Some(65534), Some(65534)).expect("chown");
    for name in ["ntp.drift", ".ntp.drift.tmp"] {
        let status = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "ln",
                "-s",
            ])
            .arg(&victim)
            .arg(drift_dir.path().join(name))
            .status()
            .expect("setpriv");
        assert!(status.success());
    }
    let drift = drift_dir.path().join("ntp.drift");
    let upstream = Peer::chronyd_on_loopback(2);
    let config = format!(
        "server 127.0.0.1 port {} iburst minpoll 1 maxpoll 1\ndriftfile {}\n",
        upstream.port(),
        drift.display()
    );
    let ntpd = Ntpd::start(&config, "simulated:0.05:30");
    assert_served_within_a_millisecond(&ntpd);
    let (log, _) = ntpd.stop();
    assert!(
        log.contains("is a symbolic link, which is never opened"),
        "{log}"
    );
    assert!(
        log.contains("saved to"),
        "the drift file was written:\n{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "root's secret\n"
    );
    let meta = std::fs::symlink_metadata(&drift).expect("drift file");
    assert!(meta.is_file(), "the planted link was replaced by a file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let text = std::fs::read_to_string(&drift).expect("drift");
    assert_drift_near(Some(&text), -30.0, &log);
}
