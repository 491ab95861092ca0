//! Debian's (NTPsec's) `ntpq -c kerninfo` and `-c iostats` against sundial in a namespace: the
//! kernel clock state it shows is the kernel's own (read here with adjtimex, read-only), and
//! the packet counters count the requests sent.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::support::netns::Netns;
use crate::support::peers::{ntpsec_ntpq_in, probe_in};
use crate::support::{Daemon, LOCAL_CLOCK_CONFIG};

/// The value after `legend` in ntpq's output.
fn value<'a>(out: &'a str, legend: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(legend))
        .map(str::trim)
}

#[test]
fn debian_ntpq_shows_sundials_kernel_state_and_io_counters() {
    let ns = Netns::new("kern");
    let _ntpd = Daemon::start_in(&ns, LOCAL_CLOCK_CONFIG);
    const REQUESTS: usize = 4;
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 123));
    for _ in 0..REQUESTS {
        assert!(probe_in(&ns, server, Duration::from_secs(2)).is_some());
    }
    // The counters reach ntpq with the next publication (once a second).
    std::thread::sleep(Duration::from_millis(1500));

    let kern = ntpsec_ntpq_in(&ns, &["-c", "kerninfo", "127.0.0.1"]);
    assert!(kern.success, "{kern:?}");
    let out = &kern.stdout;
    assert!(out.starts_with("associd=0 status="), "{out}");
    let kernel = sundial_sys::clock::read_timex().expect("adjtimex (read-only)");
    let freq: f64 = value(out, "pll frequency:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("pll frequency in {out}"));
    assert!(
        (freq - kernel.frequency_ppm).abs() < 1e-3,
        "ntpq shows {freq} ppm, the kernel has {} ppm\n{out}",
        kernel.frequency_ppm
    );
    let tc: i64 = value(out, "pll time constant:")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("time constant in {out}"));
    assert_eq!(tc, kernel.time_constant, "{out}");
    assert!(value(out, "frequency tolerance:").is_some(), "{out}");
    assert!(
        !out.contains("???"),
        "every kerninfo variable is known: {out}"
    );

    let io = ntpsec_ntpq_in(&ns, &["-c", "iostats", "127.0.0.1"]);
    assert!(io.success, "{io:?}");
    let received: usize = value(&io.stdout, "received packets:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("received packets in {io:?}"));
    let sent: usize = value(&io.stdout, "packets sent:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("packets sent in {io:?}"));
    let count = |legend: &str| -> usize {
        value(&io.stdout, legend)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{legend} in {io:?}"))
    };
    // Every receive that found datagrams is a useful wakeup; nothing failed to send.
    let wakeups = count("input wakeups:");
    let useful = count("useful input wakeups:");
    assert!(useful >= 1 && useful <= wakeups, "{io:?}");
    assert_eq!(count("packet send failures:"), 0, "{io:?}");
    assert!(!io.stdout.contains("???"), "{io:?}");
    // The probes, plus the daemon's own readiness probes and the kerninfo queries.
    assert!(received >= REQUESTS, "{io:?}");
    assert!(sent >= REQUESTS && sent <= received, "{io:?}");
}
