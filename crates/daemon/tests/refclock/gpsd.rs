//! A real gpsd (Debian's, unpacked by tools/install-test-peers) as the GPS: NMEA sentences
//! without PPS ($GPRMC, $GPGGA, $GPZDA) go to it over loopback UDP once a second, 50 ms after the
//! second they name, and it writes the NTP shared-memory segment sundial reads. gpsd runs
//! without CAP_SYS_TIME in the test's private IPC namespace; sundial runs in a network
//! namespace of its own (Debian's ntpq only talks to port 123), sharing that IPC namespace.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use sundial_sys::shm::enter_private_ipc_namespace;

use crate::support::daemon::NTPQ;
use crate::support::netns::Netns;
use crate::support::peers::ntpsec_ntpq_in;
use crate::support::process::{notime, output_within, spawn_logged, stop};
use crate::support::sntp::now;
use crate::support::{Daemon, TempDir, eventually, free_port};

/// Where tools/install-test-peers unpacks gpsd.
const DEFAULT_GPSD_DIR: &str = "/opt/sundial-peers/gpsd";

fn gpsd_program(program: &str) -> PathBuf {
    let path = std::env::var_os("SUNDIAL_GPSD_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_GPSD_DIR), PathBuf::from)
        .join(program);
    assert!(
        path.is_file(),
        "{} not found: run tools/install-test-peers",
        path.display()
    );
    path
}

/// gpsd reading NMEA from a loopback UDP port, stopped on drop.
struct Gpsd {
    child: Child,
    feeder: Option<thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    dir: TempDir,
}

impl Gpsd {
    fn start() -> Self {
        let dir = TempDir::new("gpsd");
        let nmea_port = free_port();
        let mut cmd = notime(gpsd_program("usr/sbin/gpsd"));
        cmd.args(["-N", "-n", "-S", &free_port().to_string(), "-F"])
            .arg(dir.path().join("gpsd.sock"))
            .arg(format!("udp://127.0.0.1:{nmea_port}"));
        let child = spawn_logged(&mut cmd, &dir.path().join("gpsd.log"));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let feeder = thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            while !flag.load(Ordering::Relaxed) {
                let t = now();
                let next = t.secs() + 1;
                let wait = 1.05 - f64::from(t.subsec_nanos()) * 1e-9;
                thread::sleep(Duration::from_secs_f64(wait));
                let _ = socket.send_to(nmea(next).as_bytes(), ("127.0.0.1", nmea_port));
            }
        });
        Self {
            child,
            feeder: Some(feeder),
            stop,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gpsd.log")).unwrap_or_default()
    }
}

impl Drop for Gpsd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        let _ = stop(&mut self.child, Duration::from_secs(5));
    }
}

/// One second's sentences for Unix time `secs`: a fix ($GPRMC status A, $GPGGA quality 1) and
/// the date ($GPZDA).
fn nmea(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let hms = format!("{:02}{:02}{:02}.00", sod / 3600, sod / 60 % 60, sod % 60);
    let ddmmyy = format!("{d:02}{m:02}{:02}", y % 100);
    [
        format!("GPRMC,{hms},A,4807.038,N,01131.000,E,0.0,0.0,{ddmmyy},,,A"),
        format!("GPGGA,{hms},4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        format!("GPZDA,{hms},{d:02},{m:02},{y:04},00,00"),
    ]
    .iter()
    .map(|body| {
        let sum = body.bytes().fold(0u8, |acc, b| acc ^ b);
        format!("${body}*{sum:02X}\r\n")
    })
    .collect()
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The offsets (real − clock, seconds) of the NTP0 samples `ntpshmmon` sees.
fn ntpshmmon_offsets(samples: usize) -> Vec<f64> {
    let mut cmd = notime(gpsd_program("usr/bin/ntpshmmon"));
    cmd.args(["-n", &samples.to_string(), "-t", "30"]);
    let out = output_within(&mut cmd, Duration::from_secs(40));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.first() != Some(&"sample") || cols.get(1) != Some(&"NTP0") {
                return None;
            }
            let clock: f64 = cols.get(3)?.parse().ok()?;
            let real: f64 = cols.get(4)?.parse().ok()?;
            Some(real - clock)
        })
        .collect()
}

/// The `offset` column (ms) of the SHM(0) row of an `ntpq -p` billboard, and the row (NTPsec's
/// ntpq names the clock even with `-n`; classic ntpq, and sundial's, show 127.127.28.0).
fn shm_offset_ms(billboard: &str) -> Option<(f64, String)> {
    let row = billboard
        .lines()
        .find(|l| l.contains("SHM(0)") || l.contains("127.127.28.0"))?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    Some((cols.get(8)?.parse().ok()?, row.to_owned()))
}

#[test]
fn sundial_follows_a_real_gpsd_through_shm_and_debian_tools_agree() {
    enter_private_ipc_namespace().expect("unshare(CLONE_NEWIPC) needs CAP_SYS_ADMIN");
    let gpsd = Gpsd::start();
    let ns = Netns::new("gps");
    let daemon = Daemon::start_in(
        &ns,
        "server 127.127.28.0 minpoll 2 maxpoll 2 prefer\nfudge 127.127.28.0 refid GPS\n",
    );
    let theirs = || ntpsec_ntpq_in(&ns, &["-p", "-n", "127.0.0.1"]).stdout;
    let selected = eventually(Duration::from_secs(60), || {
        theirs().lines().any(|l| l.starts_with("*SHM(0)"))
    });
    assert!(
        selected,
        "Debian's ntpq never showed *SHM(0):\n{}\n{}\ngpsd:\n{}",
        theirs(),
        daemon.log(),
        gpsd.log()
    );
    // The row: refid .GPS., stratum 0, type l.
    let (_, row) = shm_offset_ms(&theirs()).expect("an SHM(0) row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], [".GPS.", "0", "l"], "{row}");
    // Served: stratum 1, refid GPS, as both ntpqs read the system variables.
    let rv = ntpsec_ntpq_in(&ns, &["-c", "rv 0 stratum,refid", "127.0.0.1"]).stdout;
    assert!(rv.contains("stratum=1") && rv.contains("refid=GPS"), "{rv}");
    let ours = ns
        .run(NTPQ, &["-c", "rv 0 stratum,refid", "127.0.0.1"])
        .stdout;
    assert!(
        ours.contains("stratum=1") && ours.contains("refid=GPS"),
        "{ours}"
    );
    // ntpshmmon's samples (gpsd's, real − clock) and the offsets both ntpqs report for SHM(0)
    // agree: every sample says the clock is about 50 ms ahead of the sentences' second.
    let shm = ntpshmmon_offsets(5);
    assert!(shm.len() >= 3, "ntpshmmon saw {shm:?}\n{}", gpsd.log());
    let mean = shm.iter().sum::<f64>() / shm.len() as f64;
    let (their_ms, their_row) = shm_offset_ms(&theirs()).expect("row");
    let ours_p = ns.run(NTPQ, &["-p", "-n", "127.0.0.1"]).stdout;
    let (our_ms, our_row) = shm_offset_ms(&ours_p).expect("our row");
    eprintln!(
        "ntpshmmon mean offset {:.3} ms over {shm:?}; Debian ntpq {their_ms} ms; sundial ntpq {our_ms} ms",
        mean * 1e3
    );
    for (who, ms, row) in [
        ("Debian", their_ms, &their_row),
        ("sundial", our_ms, &our_row),
    ] {
        assert!(
            (ms - mean * 1e3).abs() < 10.0,
            "{who} ntpq offset {ms} ms vs ntpshmmon {:.3} ms: {row}",
            mean * 1e3
        );
    }
    assert!((mean + 0.05).abs() < 0.03, "gpsd's samples: {shm:?}");
}
