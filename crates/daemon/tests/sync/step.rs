//! What a monitoring client sees across a clock step: NTPsec's `ntpwait`, asking sundial's
//! mode 6 system variables every few hundred milliseconds, must find it synchronised before,
//! during and after the step — the step is in the root dispersion, not a moment of
//! "unsynchronised" that monitoring would page on.

use std::time::{Duration, Instant};

use crate::support::netns::Netns;
use crate::support::peers::ntpsec_program;
use crate::support::{Daemon, TempDir, eventually};

/// A stratum-1 server on 127.0.0.1:12300 whose time is the kernel clock plus the number of
/// seconds in the file given as its argument (read at every request), so a test can make it
/// jump. Python, because the test process cannot enter the namespace itself.
const JUMPING_SERVER: &str = r#"
import socket, struct, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 12300))
def stamp(t):
    t += 2208988800
    return struct.pack("!II", int(t), int((t % 1) * 2**32))
while True:
    data, peer = s.recvfrom(512)
    if len(data) < 48:
        continue
    try:
        offset = float(open(path).read())
    except Exception:
        offset = 0.0
    now = time.time() + offset
    reply = bytes([0x24, 1, data[2], 0xec]) + struct.pack("!II", 0, 0) + b"GPS\0"
    reply += stamp(now - 1) + data[40:48] + stamp(now) + stamp(time.time() + offset)
    s.sendto(reply, peer)
"#;

/// `ntpwait -n 2 -s 0`: one look at the daemon on localhost:123; true if it reports a leap
/// indicator other than "unsynchronised".
fn ntpwait_says_synchronised(ns: &Netns) -> bool {
    ns.run(ntpsec_program("usr/sbin/ntpwait"), &["-n", "2", "-s", "0"])
        .success
}

#[test]
fn ntpwait_sees_a_synchronised_server_across_a_step() {
    let ns = Netns::new("w");
    let dir = TempDir::new("jump");
    let offset_file = dir.write("offset", "0");
    let script = dir.write("jump.py", JUMPING_SERVER);
    let mut upstream = ns
        .notime("python3")
        .arg(&script)
        .arg(&offset_file)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("the jumping server starts");
    let config = "server 127.0.0.1 port 12300 iburst minpoll 1 maxpoll 1\ntinker stepout 4\n";
    let ntpd = Daemon::start_in_clock(&ns, config, "simulated:0:0");
    let synced = eventually(Duration::from_secs(30), || ntpwait_says_synchronised(&ns));
    assert!(synced, "never synchronised:\n{}", ntpd.log());

    // The upstream jumps half a second ahead: beyond the step threshold, so after the stepout
    // sundial steps its clock, and its filters start again.
    std::fs::write(&offset_file, "0.5").expect("write the offset");
    let start = Instant::now();
    let mut looks = Vec::new();
    let mut stepped_at = None;
    while start.elapsed() < Duration::from_secs(40) {
        looks.push((start.elapsed(), ntpwait_says_synchronised(&ns)));
        if stepped_at.is_none() && ntpd.log().contains("clock stepped by +0.") {
            stepped_at = Some(start.elapsed());
        }
        // Keep looking for 6 s after the step: the filters refill within one 2 s poll.
        if stepped_at.is_some_and(|t| start.elapsed() > t + Duration::from_secs(6)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = upstream.kill();
    let _ = upstream.wait();
    let log = ntpd.log();
    let stepped_at = stepped_at.unwrap_or_else(|| panic!("no step:\n{log}"));
    let after = looks.iter().filter(|(t, _)| *t >= stepped_at).count();
    assert!(after >= 10, "only {after} looks after the step: {looks:?}");
    let unsynced: Vec<_> = looks.iter().filter(|(_, ok)| !ok).collect();
    assert!(
        unsynced.is_empty(),
        "ntpwait saw an unsynchronised server at {unsynced:?} (step at {stepped_at:?}):\n{log}"
    );
    assert!(!log.contains("serving unsynchronised"), "{log}");
}
