//! `restrict … limited kod` with `discard average 3 minimum 2`: a client that asks faster than
//! every 2 s (or, on average, every 8 s) gets RATE kisses — at most one per 8 s — and, through
//! the random leak, a real answer to about one request in four; everything else is dropped.

use std::net::Ipv4Addr;
use std::thread;
use std::time::Duration;

use crate::lan::Lan;
use crate::raw::flood;
use crate::support::Daemon;
use crate::support::daemon::sundial_ntpq_in;
use crate::{LOCAL_CLOCK, STRATUM};

/// `discard average 3`: one request per 8 s on average, so at most one kiss per 8 s.
const AVERAGE_S: f64 = 8.0;

/// How often the measured client asks, and for how long.
const INTERVAL: Duration = Duration::from_millis(200);
const DURATION: Duration = Duration::from_secs(20);

/// Attempts of ntpdig to be told off (the leak answers a few of them).
const NTPDIG_ATTEMPTS: usize = 10;

/// What ntpdig prints when a server kisses it.
const NTPDIG_KOD: &str = "probable KOD";

fn config() -> String {
    format!(
        "{LOCAL_CLOCK}restrict default limited kod nomodify notrap nopeer noquery\n\
         restrict 127.0.0.1\ndiscard average 3 minimum 2\n"
    )
}

/// `name=value` of sundial's `ntpq --json -c sysstats` output.
fn json_counter(json: &str, name: &str) -> u64 {
    // `ntpq --json` gives counters as JSON numbers.
    let key = format!("\"{name}\":");
    json.split_once(&key)
        .and_then(|(_, rest)| rest.split([',', '}']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from {json}"))
}

#[test]
fn a_client_over_the_rate_gets_rate_kisses_at_the_configured_rate() {
    let lan = Lan::new();
    let ntpd = Daemon::start_in(&lan.server, config());
    let server = Lan::SERVER_OUTSIDE;

    // A real client asking twice in a row is answered, then kissed (unless the leak answers
    // again, which it does one time in four).
    let mut ntpdig = Vec::new();
    for _ in 0..NTPDIG_ATTEMPTS {
        let run = lan
            .outside
            .run("ntpdig", &["-j", "-t", "1", &server.to_string()]);
        let kissed = run.all().contains(NTPDIG_KOD);
        ntpdig.push(run);
        if kissed {
            break;
        }
    }
    assert!(
        ntpdig[0].success && ntpdig[0].stdout.contains(&format!("\"stratum\":{STRATUM}")),
        "first request not answered: {:?}",
        ntpdig[0]
    );
    let kissed = ntpdig
        .iter()
        .filter(|r| r.all().contains(NTPDIG_KOD))
        .count();
    assert_eq!(kissed, 1, "ntpdig was never kissed: {ntpdig:?}");
    let ntpdig_silent = ntpdig
        .iter()
        .filter(|r| !r.success && !r.all().contains(NTPDIG_KOD))
        .count();

    // A client asking five times a second for 20 s, from an address of its own.
    let f = flood(
        &lan.outside,
        Lan::OUTSIDE_EXTRA[0],
        server,
        INTERVAL,
        DURATION,
    );
    let kisses = f.kiss_times();
    let duration = DURATION.as_secs_f64();
    let expected = duration / AVERAGE_S;
    assert!(
        (expected - 1.0..=expected + 1.0).contains(&(kisses.len() as f64)),
        "{} kisses in {duration} s, expected about {expected}: {f:?}",
        kisses.len()
    );
    for pair in kisses.windows(2) {
        assert!(
            pair[1] - pair[0] >= AVERAGE_S - 0.2,
            "kisses closer than the average interval: {kisses:?}"
        );
    }
    for event in &f.events {
        if let crate::raw::FloodEvent::Kiss {
            well_formed, poll, ..
        } = event
        {
            assert!(*well_formed, "{event:?}");
            assert!(
                *poll >= 3,
                "the kiss asks for at least the average: {event:?}"
            );
        }
    }
    // The first request and about one in four of the rest (the leak) are answered.
    let answers = f.answers();
    let over = f.sent - 1;
    assert!(
        answers >= 3 && answers <= 1 + over / 2,
        "{answers} of {} answered: {f:?}",
        f.sent
    );
    let dropped = f.sent - answers - kisses.len();

    // The counters agree: ntpq's sysstats (after the main loop has published them) and the
    // shutdown log.
    thread::sleep(Duration::from_millis(2500));
    let json = sundial_ntpq_in(
        &lan.server,
        &["--json", "-c", "sysstats", &Ipv4Addr::LOCALHOST.to_string()],
    );
    assert!(json.success, "{json:?}");
    let all_kisses = kisses.len() + kissed;
    assert_eq!(
        json_counter(&json.stdout, "ss_kodsent"),
        all_kisses as u64,
        "{json:?}"
    );
    assert_eq!(
        json_counter(&json.stdout, "ss_limited"),
        (all_kisses + dropped + ntpdig_silent) as u64,
        "{json:?}"
    );
    let stopped = ntpd.stop();
    let counters = stopped.counters();
    assert_eq!(
        counters.dropped_by_reason.get("rate-limited").copied(),
        Some((dropped + ntpdig_silent) as u64).filter(|n| *n > 0),
        "{counters:?}\n{f:?}"
    );
}
