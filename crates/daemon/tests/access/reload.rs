//! SIGHUP applies `interface` and `discard` changes to the running server at once, seen from
//! real clients (NTPsec's `ntpdig`) on the LAN and outside — loopback is always served, so the
//! interface rules can only be watched from another host.

use crate::lan::Lan;
use crate::support::Daemon;
use crate::support::process::Run;
use crate::support::wait::eventually;
use crate::{LOCAL_CLOCK, STRATUM};
use std::time::Duration;

/// What ntpdig prints when a server kisses it.
const NTPDIG_KOD: &str = "probable KOD";

/// How long the reload may take to show in the log.
const WITHIN: Duration = Duration::from_secs(10);

/// Requests in a row: under `discard minimum 2` the leak answers an over-limit request with
/// time one time in four, so six in a row all pass with a probability of one in a thousand.
const IN_A_ROW: usize = 6;

fn config(discard: &str, interface: &str) -> String {
    format!(
        "{LOCAL_CLOCK}restrict default limited kod nomodify notrap nopeer noquery\n\
         restrict 127.0.0.1\ndiscard {discard}\n{interface}"
    )
}

fn answered(run: &Run) -> bool {
    run.success && run.stdout.contains(&format!("\"stratum\":{STRATUM}"))
}

/// Runs ntpdig on `host` against `server` up to [`IN_A_ROW`] times; the runs until the first
/// kiss.
fn in_a_row(host: &crate::support::netns::Netns, server: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    for _ in 0..IN_A_ROW {
        let run = host.run("ntpdig", &["-j", "-t", "1", server]);
        let kissed = run.all().contains(NTPDIG_KOD);
        runs.push(run);
        if kissed {
            break;
        }
    }
    runs
}

#[test]
fn sighup_applies_interface_and_discard_changes_at_once() {
    let lan = Lan::new();
    let ntpd = Daemon::start_in(
        &lan.server,
        config(
            "average 3 minimum 2",
            &format!("interface ignore {}\n", Lan::SERVER_OUTSIDE),
        ),
    );
    let outside = Lan::SERVER_OUTSIDE.to_string();
    let inside = Lan::SERVER_LAN.to_string();

    let ignored = lan.outside.run("ntpdig", &["-j", "-t", "1", &outside]);
    assert!(
        !ignored.success,
        "answered on {outside} under `interface ignore {outside}`: {ignored:?}"
    );
    let runs = in_a_row(&lan.lan, &inside);
    assert!(answered(&runs[0]), "first request not answered: {runs:?}");
    assert!(
        runs.iter().any(|r| r.all().contains(NTPDIG_KOD)),
        "{IN_A_ROW} requests in a row under `discard minimum 2` were never kissed: {runs:?}"
    );

    std::fs::write(ntpd.config_path(), config("average 0 minimum 0", "")).expect("edit");
    ntpd.signal("HUP");
    assert!(
        eventually(WITHIN, || {
            let log = ntpd.log();
            log.contains("new interface rules in force")
                && log.contains("new discard/limit in force")
        }),
        "{}",
        ntpd.log()
    );
    // The outside host was never counted by the rate limiter (an ignored address is dropped
    // first), so it is a fresh client under the new limits: a mean interval of 1 s and a
    // burst of 8 let six requests in a row through.
    let runs = in_a_row(&lan.outside, &outside);
    assert!(
        runs.len() == IN_A_ROW && runs.iter().all(answered),
        "after the reload, {outside} under `discard average 0 minimum 0`: {runs:?}\n{}",
        ntpd.log()
    );
    ntpd.stop().assert_success();
}
