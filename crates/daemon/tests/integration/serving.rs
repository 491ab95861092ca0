//! Holding: under a steady stream of requests, whatever loop serves — the main loop with
//! `--threads 1` (the default on a one-CPU machine), else the leader of the server threads —
//! stops watching its sockets and looks at them on a timer, and when the stream stops it
//! watches them again.
//!
//! Whether the loop watches a socket is read from the kernel: `/proc/PID/fdinfo` of an epoll
//! descriptor lists every descriptor it watches (`tfd:` lines). Whether it sleeps while idle,
//! from the CPU time the kernel counts for the daemon's threads.

use std::collections::BTreeSet;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sundial_sys::socket::{SocketOptions, bind_udp};

use crate::support::LOCAL_CLOCK_CONFIG;
use crate::support::daemon::Daemon;

/// Requests in the stream, one every [`SPACING`]: about a third of a second of 15 000
/// requests/s, so that each look of the loop finds requests and the next comes sooner than
/// a hold (200 µs).
const STREAM: u64 = 5000;

/// Time between two requests of the stream.
const SPACING: Duration = Duration::from_micros(65);

/// The client's receive buffer: the whole stream's replies (the kernel charges several hundred
/// octets per queued datagram).
const CLIENT_BUFFER: usize = 8 << 20;

/// How long the client waits for a reply.
const REPLY_WAIT: Duration = Duration::from_secs(5);

/// How long the test watches an idle daemon's CPU time.
const QUIET: Duration = Duration::from_secs(1);

/// A client request: version 4, mode 3, and a transmit timestamp that names it.
fn request(n: u64) -> [u8; 48] {
    let mut packet = [0; 48];
    packet[0] = 0x23;
    packet[40..48].copy_from_slice(&n.to_be_bytes());
    packet
}

/// The request a reply answers (its origin timestamp), or `None` if none came in time.
fn answered(client: &UdpSocket) -> Option<u64> {
    let mut buf = [0; 128];
    let (len, _) = client.recv_from(&mut buf).ok()?;
    assert_eq!(len, 48, "a 48-octet reply");
    Some(u64::from_be_bytes(buf[24..32].try_into().ok()?))
}

/// The descriptor number under which process `pid` holds the UDP socket bound to `local`.
fn socket_fd(pid: u32, local: SocketAddr) -> String {
    let port = format!(":{:04X} ", local.port());
    let table = fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let inode = table
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.starts_with("00000000"))
                && l.contains(&port)
        })
        .and_then(|l| l.split_whitespace().nth(9))
        .unwrap_or_else(|| panic!("no socket on {local} in /proc/net/udp:\n{table}"))
        .to_owned();
    let target = format!("socket:[{inode}]");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's descriptors")
        .filter_map(Result::ok)
        .find(|e| fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("the daemon holds no {target}"))
}

/// Whether any epoll descriptor of process `pid` watches its descriptor `fd`.
fn watched(pid: u32, fd: &str) -> bool {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:[eventpoll]")
        })
        .filter_map(|e| {
            fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .ok()
        })
        .any(|info| {
            info.lines()
                .any(|l| l.split_whitespace().take(2).eq(["tfd:", fd]))
        })
}

/// The CPU time all of process `pid`'s threads have spent so far (the first field of each
/// thread's `schedstat`, in nanoseconds).
fn cpu_time(pid: u32) -> Duration {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's threads");
    // A thread that ended meanwhile has no `schedstat` left, and spends nothing more.
    let spent = tasks
        .filter_map(|task| {
            fs::read_to_string(task.expect("a thread").path().join("schedstat")).ok()
        })
        .map(|stat| {
            stat.split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .expect("schedstat starts with the CPU time in nanoseconds")
        })
        .collect::<Vec<_>>();
    // The main thread lives as long as the daemon: no figure at all is a kernel without them.
    assert!(!spent.is_empty(), "no schedstat for process {pid}");
    Duration::from_nanos(spent.iter().sum())
}

#[test]
fn with_one_thread_the_main_loop_holds_under_a_stream_and_watches_its_sockets_after() {
    holds_under_a_stream_and_watches_its_sockets_after("1");
}

#[test]
fn the_leading_server_thread_holds_under_a_stream_and_watches_its_sockets_after() {
    holds_under_a_stream_and_watches_its_sockets_after("2");
}

/// With `--threads threads`: the loop that watches the sockets (the main loop, or the leader of
/// the server threads, which alone watches the sockets' own descriptors) stops watching them
/// while a stream of requests lasts, answers every request, and watches them again after.
fn holds_under_a_stream_and_watches_its_sockets_after(threads: &str) {
    let ntpd = Daemon::start_with(LOCAL_CLOCK_CONFIG, &["--threads", threads]);
    let serving = format!("with {threads} thread(s)");
    assert!(ntpd.log().contains(&serving), "{serving}:\n{}", ntpd.log());
    let server = ntpd.addr_v4();
    let fd = socket_fd(ntpd.pid(), server);
    assert!(watched(ntpd.pid(), &fd), "an idle loop watches socket {fd}");

    // Room for every reply, so that a receiver descheduled on a busy machine loses none.
    let options = SocketOptions {
        recv_buffer: CLIENT_BUFFER,
        ..SocketOptions::default()
    };
    let client = bind_udp((server.ip(), 0).into(), &options).expect("client socket");
    client
        .set_read_timeout(Some(REPLY_WAIT))
        .expect("read timeout");
    let sending = AtomicBool::new(true);
    let mut unwatched = false;
    let replies = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            (0..STREAM)
                .map_while(|_| answered(&client))
                .collect::<BTreeSet<u64>>()
        });
        s.spawn(|| {
            let start = Instant::now();
            for n in 0..STREAM {
                let due = start + SPACING.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                client.send_to(&request(n), server).expect("send");
            }
            sending.store(false, Ordering::Release);
        });
        // A hold lasts as long as the stream: a look every millisecond finds it.
        while sending.load(Ordering::Acquire) && !unwatched {
            unwatched = !watched(ntpd.pid(), &fd);
            std::thread::sleep(Duration::from_millis(1));
        }
        receiver.join().expect("receiver")
    });
    assert!(
        unwatched,
        "the loop never stopped watching socket {fd} while the stream lasted"
    );
    assert!(
        replies.iter().copied().eq(0..STREAM),
        "unanswered: {:?}",
        (0..STREAM)
            .filter(|n| !replies.contains(n))
            .take(20)
            .collect::<Vec<_>>()
    );

    // Quiet for longer than any hold: the loop watches its sockets again and answers at once.
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        watched(ntpd.pid(), &fd),
        "the loop watches socket {fd} again once requests stop"
    );
    // ... and sleeps while nothing comes: a loop that polled without waiting would spend a
    // good part of a CPU here even on a loaded machine; an idle daemon spends next to none.
    let before = cpu_time(ntpd.pid());
    std::thread::sleep(QUIET);
    let spent = cpu_time(ntpd.pid()) - before;
    assert!(
        spent < QUIET / 10,
        "an idle daemon spent {spent:?} of CPU time in {QUIET:?}"
    );
    client.send_to(&request(STREAM), server).expect("send");
    assert_eq!(answered(&client), Some(STREAM));

    let stopped = ntpd.stop();
    stopped.assert_success();
    let counters = stopped.counters();
    // The readiness probes of the test's daemon come on top of these requests.
    assert!(
        counters.received > STREAM && counters.replied == counters.received,
        "{counters:?}"
    );
}
