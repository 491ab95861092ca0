//! sundial synchronising to real upstream servers: chronyd instances on loopback as sundial's
//! sources, a real chronyd as sundial's client, a hostile upstream that never wins, and one whose
//! RATE kisses slow polling only down to maxpoll.
//!
//! Every NTP program runs without CAP_SYS_TIME, on loopback ports; every process is stopped
//! by the test that started it.

#[path = "../integration/support/mod.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "shared helpers; each test binary uses a subset"
)]
mod support;

mod hostile;
mod rate_kiss;
mod step;

use std::time::{Duration, Instant};

use hostile::{Behaviour, HostileServer};
use rate_kiss::{KISSES, KissingServer};
use support::peers::Peer;
use support::{Daemon, SntpClient, eventually};

fn relay_config(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("server 127.0.0.1 port {p} iburst\n"))
        .collect()
}

#[test]
fn relay_follows_three_chronyd_servers_and_serves_stratum_3() {
    let servers = [
        Peer::chronyd_on_loopback(2),
        Peer::chronyd_on_loopback(3),
        Peer::chronyd_on_loopback(3),
    ];
    let ports: Vec<u16> = servers.iter().map(Peer::port).collect();
    let started = Instant::now();
    let daemon = Daemon::start(relay_config(&ports));
    let client = SntpClient::new(daemon.addr_v4());
    let synced = eventually(Duration::from_secs(10), || {
        client
            .query(daemon.addr_v4(), 4)
            .is_ok_and(|r| r.header.stratum == 3)
    });
    assert!(
        synced,
        "no stratum-3 service within 10 s of start; log:\n{}",
        daemon.log()
    );
    assert!(started.elapsed() < Duration::from_secs(12));
    let reply = client.query(daemon.addr_v4(), 4).expect("reply");
    assert_eq!(reply.header.leap, sundial_proto::packet::Leap::NoWarning);
    // The refid names the system peer, 127.0.0.1.
    assert_eq!(reply.header.reference_id.to_bytes(), [127, 0, 0, 1]);
    assert!(
        daemon.log().contains("system peer 127.0.0.1 (127.0.0.1:"),
        "{}",
        daemon.log()
    );

    // A real client of sundial sees stratum 3 and the time of the machine's own clock.
    let q = support::peers::chronyd_query(daemon.addr_v4());
    let last = q
        .measurements
        .last()
        .unwrap_or_else(|| panic!("chronyd measured nothing:\n{}", q.output));
    assert_eq!(last.stratum, 3, "{}", q.output);
    assert!(last.offset.abs() < 1e-3, "offset {} s", last.offset);
}

#[test]
fn chronyd_as_a_client_selects_sundial() {
    let daemon = Daemon::start(support::LOCAL_CLOCK_CONFIG);
    let client = Peer::chronyd_client(daemon.port());
    let selected = eventually(Duration::from_secs(20), || {
        client.chronyc_sources().contains("^*")
    });
    assert!(
        selected,
        "chronyc sources:\n{}\nchronyd log:\n{}",
        client.chronyc_sources(),
        client.log()
    );
}

#[test]
fn rate_kisses_slow_polling_to_maxpoll_at_most_and_answers_bring_it_back() {
    // minpoll 1, maxpoll 3: 2 s polls, 8 s at most. The server kisses the first two requests
    // asking for 2^17 s, then serves.
    let upstream = KissingServer::start();
    let daemon = Daemon::start(format!(
        "server 127.0.0.1 port {} minpoll 1 maxpoll 3\n",
        upstream.port()
    ));
    let enough = eventually(Duration::from_secs(60), || upstream.arrivals().len() >= 7);
    let log = daemon.stop().log;
    let arrivals = upstream.arrivals();
    assert!(enough, "{} requests in 60 s:\n{log}", arrivals.len());
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    // 2^maxpoll s plus its 1/16 of jitter plus scheduling slack: never the 36 h asked for.
    assert!(
        gaps.iter().all(|g| *g <= 8.0 * 17.0 / 16.0 + 1.0),
        "{gaps:?}"
    );
    // The kisses did slow polling down to maxpoll…
    assert!(gaps.iter().any(|g| *g >= 7.5), "{gaps:?}");
    // …and the answers after them bring it back below.
    assert!(gaps.last().is_some_and(|g| *g < 7.5), "{gaps:?}");
    assert!(arrivals.len() > KISSES + 2);
    assert!(log.contains("RATE") || log.contains("kiss"), "{log}");
}

#[test]
fn hostile_upstream_replies_never_change_the_selection() {
    let good = Peer::chronyd_on_loopback(2);
    let hostiles: Vec<HostileServer> = Behaviour::ALL
        .iter()
        .map(|b| HostileServer::start(*b))
        .collect();
    let mut config = format!("server 127.0.0.1 port {} iburst\n", good.port());
    for h in &hostiles {
        config.push_str(&format!("server 127.0.0.1 port {} iburst\n", h.port()));
    }
    let daemon = Daemon::start(config);
    let client = SntpClient::new(daemon.addr_v4());
    let synced = eventually(Duration::from_secs(15), || {
        client
            .query(daemon.addr_v4(), 4)
            .is_ok_and(|r| r.header.stratum == 3)
    });
    assert!(synced, "log:\n{}", daemon.log());
    // Let every hostile server answer a few polls (iburst), then check who was ever selected.
    let answered = eventually(Duration::from_secs(20), || {
        hostiles.iter().all(|h| h.requests() >= 3)
    });
    assert!(
        answered,
        "{:?}",
        hostiles
            .iter()
            .map(|h| (h.behaviour(), h.requests()))
            .collect::<Vec<_>>()
    );
    let log = daemon.stop().log;
    let peers: Vec<&str> = log.lines().filter(|l| l.contains("system peer")).collect();
    assert!(!peers.is_empty(), "{log}");
    let good_peer = format!("(127.0.0.1:{})", good.port());
    for line in &peers {
        assert!(
            line.contains(&good_peer),
            "a hostile server was selected: {line}"
        );
    }
    for h in &hostiles {
        assert!(h.requests() > 0, "{:?} was never polled", h.behaviour());
        // At shutdown each association logs its rejected replies by reason.
        let tag = format!("(127.0.0.1:{}): sent", h.port());
        let line = log
            .lines()
            .find(|l| l.contains(&tag))
            .unwrap_or_else(|| panic!("no counters for {tag}:\n{log}"));
        let reason = h.behaviour().rejection();
        assert!(
            line.contains(&format!("rejected {reason}=")),
            "{:?}: {line}",
            h.behaviour()
        );
    }
}

#[test]
fn sundial_answers_from_both_loopback_families_while_relaying() {
    let server = Peer::chronyd_on_loopback(2);
    let daemon = Daemon::start(relay_config(&[server.port()]));
    let v6 = SntpClient::new(daemon.addr_v6());
    assert!(eventually(Duration::from_secs(10), || {
        v6.query(daemon.addr_v6(), 4)
            .is_ok_and(|r| r.header.stratum == 3 && r.from == daemon.addr_v6())
    }));
}

#[test]
fn a_silent_pool_member_is_demobilized_and_the_pool_resolved_again() {
    // The pool's one server goes silent after sundial has selected it. Polling every second
    // keeps the test short: reach empties after 8 polls, and 10 more make the member give way.
    let server = Peer::chronyd_on_loopback(2);
    let port = server.port();
    let config = format!(
        "pool 127.0.0.1 port {port} iburst minpoll 0 maxpoll 0\ntos orphan 12 orphanwait 0\n"
    );
    let daemon = Daemon::start(config);
    assert!(
        eventually(Duration::from_secs(15), || daemon
            .log()
            .contains("system peer 127.0.0.1")),
        "{}",
        daemon.log()
    );
    drop(server);
    let demobilized = eventually(Duration::from_secs(45), || {
        daemon.log().contains("demobilized: unreachable")
    });
    assert!(demobilized, "{}", daemon.log());
    // The pool was resolved again and the address mobilised anew under a new association id.
    let remobilized = eventually(Duration::from_secs(5), || {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("mobilized") && !l.contains("demobilized"))
            .count()
            >= 2
    });
    let log = daemon.log();
    assert!(remobilized, "{log}");
    // Meanwhile the server fell back to orphan mode and said so.
    assert!(
        log.contains("lost all upstream sources: serving orphan mode at stratum 12"),
        "{log}"
    );
}
