//! What a monitoring client sees across a clock step: NTPsec's `ntpwait` and Nagios'
//! `check_ntp_peer`, asking sundial's mode 6 variables every few hundred milliseconds, must find
//! it synchronised before, during and after the step — the step is in the root dispersion, not
//! a moment of "unsynchronised" that monitoring would page on.

use std::time::{Duration, Instant};

use crate::support::netns::Netns;
use crate::support::peers::ntpsec_program;
use crate::support::wait::eventually_every;
use crate::support::{Daemon, TempDir};

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

/// `check_ntp_peer -H 127.0.0.1` from monitoring-plugins-basic (tools/install-test-peers): the
/// system peer's offset against its default thresholds (60 s warning, 120 s critical), so
/// anything but OK means it found no synchronised system peer.
const CHECK_NTP_PEER: &str = "/usr/lib/nagios/plugins/check_ntp_peer";

/// What `check_ntp_peer` says: OK or not, and its status line.
fn check_ntp_peer(ns: &Netns) -> (bool, String) {
    let run = ns.run(CHECK_NTP_PEER, &["-H", "127.0.0.1", "-t", "5"]);
    (run.success, run.all().trim().to_owned())
}

/// How often to look: `slow` apart, except in the 3 s after the step (when the daemon logs it),
/// `fast` apart.
///
/// sundial answers each client's mode 6 requests at 2 a second after a burst of 64 (the
/// `ratelimit` budget): a tool that sends several requests a look must look slowly except
/// around the step, or its own looks time out.
struct Pace {
    slow: Duration,
    fast: Duration,
}

/// Follows an upstream that jumps half a second ahead once `look` has found sundial
/// synchronised, and returns every look (time since the jump, OK, what it said) from the jump
/// until 6 s after sundial stepped its clock (at least `at_least_after` of them after the
/// step), and the time of the step.
fn looks_across_a_step(
    ns: &Netns,
    pace: &Pace,
    at_least_after: usize,
    mut look: impl FnMut(&Netns) -> (bool, String),
) -> (Vec<(Duration, bool, String)>, Duration, String) {
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
    let ntpd = Daemon::start_in_clock(ns, config, "simulated:0:0");
    let synced = eventually_every(Duration::from_secs(30), Duration::from_secs(1), || {
        look(ns).0
    });
    if !synced {
        let _ = upstream.kill();
        let _ = upstream.wait();
        panic!("never synchronised ({}):\n{}", look(ns).1, ntpd.log());
    }

    // The upstream jumps half a second ahead: beyond the step threshold, so after the stepout
    // sundial steps its clock, and its filters start again.
    std::fs::write(&offset_file, "0.5").expect("write the offset");
    let start = Instant::now();
    let mut looks = Vec::new();
    let mut stepped_at = None;
    let mut next_look = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(40) {
        if stepped_at.is_none() && ntpd.log().contains("clock stepped by +0.") {
            stepped_at = Some(start.elapsed());
            next_look = Duration::ZERO;
        }
        if start.elapsed() >= next_look {
            let (ok, said) = look(ns);
            looks.push((start.elapsed(), ok, said));
            let near_step =
                stepped_at.is_some_and(|t| start.elapsed() < t + Duration::from_secs(3));
            next_look = start.elapsed() + if near_step { pace.fast } else { pace.slow };
        }
        // Keep looking for 6 s after the step: the filters refill within one 2 s poll.
        if stepped_at.is_some_and(|t| start.elapsed() > t + Duration::from_secs(6)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = upstream.kill();
    let _ = upstream.wait();
    let log = ntpd.log();
    let stepped_at = stepped_at.unwrap_or_else(|| panic!("no step:\n{log}"));
    let after = looks.iter().filter(|(t, ..)| *t >= stepped_at).count();
    assert!(
        after >= at_least_after,
        "only {after} looks after the step: {looks:?}"
    );
    (looks, stepped_at, log)
}

#[test]
fn ntpwait_sees_a_synchronised_server_across_a_step() {
    let ns = Netns::new("w");
    let (looks, stepped_at, log) = looks_across_a_step(
        &ns,
        &Pace {
            slow: Duration::from_millis(100),
            fast: Duration::from_millis(100),
        },
        10,
        |ns| (ntpwait_says_synchronised(ns), String::new()),
    );
    let unsynced: Vec<_> = looks.iter().filter(|(_, ok, _)| !ok).collect();
    assert!(
        unsynced.is_empty(),
        "ntpwait saw an unsynchronised server at {unsynced:?} (step at {stepped_at:?}):\n{log}"
    );
    assert!(!log.contains("serving unsynchronised"), "{log}");
}

#[test]
fn check_ntp_peer_finds_the_system_peer_in_sync_across_a_step() {
    let ns = Netns::new("n");
    // Two requests a look (the association list, the system peer's variables): every second,
    // and every 150 ms for the 3 s after the step.
    let pace = Pace {
        slow: Duration::from_secs(1),
        fast: Duration::from_millis(150),
    };
    let (looks, stepped_at, log) = looks_across_a_step(&ns, &pace, 15, check_ntp_peer);
    let alarms: Vec<_> = looks.iter().filter(|(_, ok, _)| !ok).collect();
    assert!(
        alarms.is_empty(),
        "check_ntp_peer alarmed at {alarms:?} (step at {stepped_at:?}):\n{log}"
    );
    // Every look found the system peer and read its offset (before the step the last sample
    // that passed the filter, or the upstream's jump: within the default thresholds either
    // way), and after the step the offset is small again.
    let offset = |said: &str| -> Option<f64> {
        let rest = said.split("Offset ").nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    let offsets: Vec<(Duration, f64)> = looks
        .iter()
        .map(|(t, _, said)| {
            let o = offset(said).unwrap_or_else(|| panic!("no offset at {t:?}: {said}"));
            (*t, o)
        })
        .collect();
    assert!(offsets.iter().all(|(_, o)| o.abs() < 0.6), "{looks:?}");
    let last = offsets.last().map(|(_, o)| *o);
    assert!(
        last.is_some_and(|o| o.abs() < 0.005),
        "offset after the step: {last:?} in {looks:?}"
    );
}
