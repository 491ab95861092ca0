//! sundial's `ntpq` against a real NTPsec 1.2.2 `ntpd`, compared with NTPsec's own `ntpq` on
//! the same server.
//!
//! NTPsec only answers mode 6 on port 123 and rate-limits other namespaces, so each test
//! creates a network namespace, starts NTPsec's ntpd in orphan mode there (without
//! CAP_SYS_TIME) and runs both ntpqs inside it against 127.0.0.1. Everything is stopped and
//! deleted when the test ends, also when it fails.
//!
//! Run with `tools/test-all -p sundial --test ntpq` (as root: namespaces; it unpacks NTPsec).

#[path = "../integration/support/mod.rs"]
#[expect(
    dead_code,
    unused_imports,
    reason = "shared with the integration tests; this binary uses only part of it"
)]
mod support;

mod sundial_state;

use std::collections::BTreeMap;

use support::daemon::sundial_ntpq_in;
use support::netns::Netns;
use support::peers::{Peer, ntpsec_ntpq_in};

/// Lines to add to NTPsec's orphan config for two associations that need no network: the local
/// clock driver and a pool prototype (its name cannot resolve in the namespace).
const WITH_ASSOCIATIONS_CONFIG: &str = "server 127.127.1.0
fudge 127.127.1.0 stratum 10
pool 0.debian.pool.ntp.org iburst
";

/// The `name=value` items of ntpq's `rv` output (status line excluded), quotes kept.
fn variables(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter(|l| !l.starts_with("associd="))
        .flat_map(|l| l.split(", "))
        .filter_map(|item| {
            let (name, value) = item.trim().trim_end_matches(',').split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

#[test]
fn readvar_shows_the_orphan_system_like_ntpsecs_ntpq() {
    let ns = Netns::new("q");
    let server = Peer::ntpsec_orphan_in(&ns, "");
    let ours = sundial_ntpq_in(&ns, &["-c", "rv", "127.0.0.1"]);
    assert!(ours.success, "{ours:?}\n{}", server.log());
    let status_line = ours.stdout.lines().next().unwrap_or_default();
    assert!(
        status_line.starts_with("associd=0 status=") && status_line.contains(" leap_none, "),
        "{}",
        ours.stdout
    );
    let theirs = ntpsec_ntpq_in(&ns, &["-c", "rv", "127.0.0.1"]);
    assert!(theirs.success, "{theirs:?}");
    let (ours_vars, theirs_vars) = (variables(&ours.stdout), variables(&theirs.stdout));
    assert_eq!(ours_vars.get("stratum").map(String::as_str), Some("8"));
    assert_eq!(
        ours_vars.get("refid").map(String::as_str),
        Some("127.0.0.1")
    );
    // Both ntpqs show these the same way; numbers differ only in how they are rounded, times
    // in how the date is written.
    for name in [
        "leap",
        "stratum",
        "precision",
        "refid",
        "tc",
        "peer",
        "mintc",
        "processor",
        "system",
        "version",
    ] {
        assert_eq!(
            ours_vars.get(name),
            theirs_vars.get(name),
            "{name}:\nours:\n{}\ntheirs:\n{}",
            ours.stdout,
            theirs.stdout
        );
    }
    assert_eq!(
        ours_vars.keys().collect::<Vec<_>>(),
        theirs_vars.keys().collect::<Vec<_>>()
    );
}

#[test]
fn named_variables_print_exactly_like_ntpsecs_ntpq() {
    let ns = Netns::new("q");
    let _server = Peer::ntpsec_orphan_in(&ns, "");
    let args = ["-c", "rv 0 stratum,leap,refid", "127.0.0.1"];
    let ours = sundial_ntpq_in(&ns, &args);
    let theirs = ntpsec_ntpq_in(&ns, &args);
    assert!(ours.success, "{ours:?}");
    assert_eq!(ours.stdout, "leap=00, stratum=8, refid=127.0.0.1\n");
    // NTPsec's ntpq prints a "No association IDs returned" line first (it reads the list).
    assert!(theirs.stdout.ends_with(&ours.stdout), "{theirs:?}");
}

#[test]
fn peers_without_associations_says_so_like_ntpsecs_ntpq() {
    let ns = Netns::new("q");
    let _server = Peer::ntpsec_orphan_in(&ns, "");
    // The second run also covers the default host, localhost (::1 first on Debian).
    for args in [["-p", "127.0.0.1"], ["-c", "as"]] {
        let ours = sundial_ntpq_in(&ns, &args);
        assert!(ours.success, "{ours:?}");
        assert_eq!(ours.stdout, "", "no billboard header without associations");
        assert_eq!(ours.stderr, "No association ID's returned\n");
    }
    let theirs = ntpsec_ntpq_in(&ns, &["-p", "127.0.0.1"]);
    assert_eq!(
        theirs.stdout.trim(),
        "server=127.0.0.1 No association IDs returned"
    );
}

#[test]
fn billboard_rows_match_ntpsecs_ntpq() {
    let ns = Netns::new("q");
    let server = Peer::ntpsec_orphan_in(&ns, WITH_ASSOCIATIONS_CONFIG);
    // Columns up to `t` (37 characters), then poll and reach; `when` and the numbers may
    // differ between two runs, and NTPsec prints four decimals where classic ntpq prints three.
    //
    // NTPsec 1.2.2's ntpd sends stale buffer bytes inside filtdelay, filtoffset and filtdisp
    // (e.g. `0.Q\xbe\xb3\xee`: part of a timestamp). When one of them is a '"', its ntpq
    // reads the rest of the reply as one string, loses srchost and names the row by srcadr
    // (127.127.1.0, type `u`; 0.0.0.0 for the pool) — for as long as that timestamp stays in
    // the buffer. Such a row is compared by refid, stratum, poll and reach: its name and type
    // then come from NTPsec's parsing, not from the server's state.
    let key = |row: &str, name: bool| {
        let mut words = row.get(37..).unwrap_or_default().split_whitespace().skip(1);
        let (poll, reach) = (words.next(), words.next());
        let columns = if name { 0..37 } else { 16..35 };
        format!("{}|{poll:?}|{reach:?}", row.get(columns).unwrap_or(row))
    };
    // The name starts after the tally character.
    let lost_srchost = |row: &str| {
        let name = row.get(1..).unwrap_or_default();
        name.starts_with("127.127.1.0 ") || name.starts_with("0.0.0.0 ")
    };
    let matching_rows = |ours: &str, theirs: &str| {
        let (ours, theirs) = (ours.lines().skip(2), theirs.lines().skip(2));
        ours.clone().count() == 2
            && theirs.clone().count() == 2
            && ours.zip(theirs).all(|(o, t)| {
                let name = !lost_srchost(t);
                key(o, name) == key(t, name)
            })
    };
    let mut last = (String::new(), String::new());
    // The server polls its local clock at start-up, so reach can change between the two runs
    // (seconds apart when the machine is busy); one run of each that agrees is enough.
    for attempt in 0..10 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let ours = sundial_ntpq_in(&ns, &["-p", "127.0.0.1"]);
        let theirs = ntpsec_ntpq_in(&ns, &["-p", "127.0.0.1"]);
        assert!(ours.success, "{ours:?}\n{}", server.log());
        let header = ours.stdout.lines().next().unwrap_or_default();
        assert_eq!(
            header,
            "     remote           refid      st t when poll reach   delay   offset  jitter"
        );
        if matching_rows(&ours.stdout, &theirs.stdout) {
            assert!(
                ours.stdout
                    .contains("\n LOCAL(0)        .LOCL.          10 l ")
            );
            assert!(
                ours.stdout
                    .contains("\n 0.debian.pool.n .POOL.          16 p ")
            );
            return;
        }
        last = (ours.stdout, format!("{}{}", theirs.stdout, theirs.stderr));
    }
    panic!("rows differ:\nours:\n{}\ntheirs:\n{}", last.0, last.1);
}

#[test]
fn associations_match_ntpsecs_ntpq() {
    let ns = Netns::new("q");
    let _server = Peer::ntpsec_orphan_in(&ns, WITH_ASSOCIATIONS_CONFIG);
    // The event columns change when the local clock is polled; compare up to `condition`.
    let cut = |out: &str| {
        out.lines()
            .map(|l| l.get(..41).unwrap_or(l).to_owned())
            .collect::<Vec<_>>()
    };
    // The condition can change between the two runs while the server starts; one run of each
    // that agrees is enough.
    let mut last = (Vec::new(), Vec::new());
    for attempt in 0..10 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let ours = sundial_ntpq_in(&ns, &["-c", "as", "127.0.0.1"]);
        let theirs = ntpsec_ntpq_in(&ns, &["-c", "as", "127.0.0.1"]);
        assert!(ours.success, "{ours:?}");
        if cut(&ours.stdout) == cut(&theirs.stdout) {
            return;
        }
        last = (cut(&ours.stdout), cut(&theirs.all()));
    }
    assert_eq!(last.0, last.1);
}

#[test]
fn errors_print_classic_messages_and_fail() {
    let ns = Netns::new("q");
    let server = Peer::ntpsec_orphan_in(&ns, "");
    let unknown = sundial_ntpq_in(&ns, &["-c", "rv 12345", "127.0.0.1"]);
    assert!(!unknown.success);
    assert_eq!(unknown.stderr, "***Server error code BADASSOC\n");
    let unknown_var = sundial_ntpq_in(&ns, &["-c", "rv 0 nosuchvar", "127.0.0.1"]);
    assert_eq!(unknown_var.stderr, "***Server error code UNKNOWNVAR\n");
    let theirs = ntpsec_ntpq_in(&ns, &["-c", "rv 0 nosuchvar", "127.0.0.1"]);
    assert!(
        format!("{}{}", theirs.stdout, theirs.stderr).contains("***Server error code UNKNOWNVAR"),
        "{theirs:?}"
    );
    drop(server);
    let refused = sundial_ntpq_in(&ns, &["-t", "1", "-c", "rv", "127.0.0.1"]);
    assert!(!refused.success);
    assert_eq!(
        refused.stderr,
        "***Socket error; probably ntpd is not running\n"
    );
    let theirs = ntpsec_ntpq_in(&ns, &["-c", "rv", "127.0.0.1"]);
    assert!(
        format!("{}{}", theirs.stdout, theirs.stderr)
            .contains("***Socket error; probably ntpd is not running")
    );
}

#[test]
fn json_output_carries_the_system_variables() {
    let ns = Netns::new("q");
    let _server = Peer::ntpsec_orphan_in(&ns, "");
    let ours = sundial_ntpq_in(&ns, &["--json", "-c", "rv", "127.0.0.1"]);
    assert!(ours.success, "{ours:?}");
    let line = ours.stdout.trim();
    assert!(
        line.starts_with(r#"{"host":"127.0.0.1","command":"readvar","associd":0,"status":"#),
        "{line}"
    );
    // Numbers are JSON numbers, text stays a string.
    assert!(line.contains(r#""stratum":8,"#), "{line}");
    assert!(line.contains(r#""version":"ntpd ntpsec-1.2.2""#), "{line}");
}
