//! sundial's `ntpdate` binary against real servers: sundial's ntpd, chronyd and NTPsec ntpd, and
//! side by side with the real (Debian, NTPsec-based) `ntpdate -q`.
//!
//! Port-123-only tools and servers run in network namespaces; everything else uses host loopback
//! at free ports. Nothing here can change the machine's clock: every NTP program, sundial's
//! ntpdate included, runs without CAP_SYS_TIME (and the suite itself should run under
//! `setpriv --bounding-set -sys_time --inh-caps -sys_time`), and all but one run use `-q`.
//!
//! Run: `setpriv --bounding-set -sys_time --inh-caps -sys_time -- cargo test -p sundial --test
//! ntpdate` as root (namespaces), with chrony and NTPsec unpacked (tools/install-test-peers).

#[path = "../integration/support/mod.rs"]
#[expect(
    dead_code,
    unused_imports,
    reason = "shared harness; this binary uses part of it"
)]
mod support;

mod auth;

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::netns::Netns;
use support::peers::{self, Peer, SntpReport};
use support::process::{notime, output_within};
use support::{Daemon, LOCAL_CLOCK_CONFIG, LOCAL_CLOCK_STRATUM};

/// The binary under test.
const NTPDATE: &str = env!("CARGO_BIN_EXE_ntpdate");

/// Stratum every peer server serves: chronyd with `local stratum 8`, NTPsec with `tos orphan 8`.
const PEER_STRATUM: u8 = peers::NTPSEC_ORPHAN_STRATUM;

/// Largest offset on loopback, and largest disagreement between two clients measuring the same
/// server there: both read the same clock as the server.
const MAX_OFFSET: f64 = 0.001;

/// Runs of each comparison: the machine is shared with builds, and a client descheduled between
/// its timestamps measures a skewed offset now and then.
const ATTEMPTS: usize = 10;

/// Of [`ATTEMPTS`] runs, how many must be within [`MAX_OFFSET`]; every run must be within
/// [`MAX_OFFSET_ANY_RUN`].
const GOOD_RUNS: usize = 8;

/// Bound on every single run, however loaded the machine.
const MAX_OFFSET_ANY_RUN: f64 = 0.01;

/// How far ahead the simulated clock of a sundial server runs in the comparisons, seconds: an
/// offset that is known and far from zero, so that a sign or scale error in either client's
/// arithmetic shows (on loopback every offset is about zero).
const SERVER_AHEAD: f64 = 0.25;

/// Upper bound for one run of a one-shot client.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// One `server …, stratum …, offset …, delay …` line of `ntpdate -q`.
#[derive(Debug, Clone, PartialEq)]
struct ServerLine {
    addr: IpAddr,
    stratum: u8,
    offset: f64,
    delay: f64,
}

/// What one run of sundial's ntpdate printed.
#[derive(Debug)]
struct Run {
    ok: bool,
    servers: Vec<ServerLine>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(output: &Output) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        Self {
            ok: output.status.success(),
            servers: stdout.lines().filter_map(parse_server_line).collect(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            stdout,
        }
    }
}

fn parse_server_line(line: &str) -> Option<ServerLine> {
    let rest = line.strip_prefix("server ")?;
    let mut parts = rest.split(", ");
    let addr = parts.next()?.parse().ok()?;
    let mut field = |name: &str| parts.next()?.strip_prefix(name)?.parse::<f64>().ok();
    let stratum = field("stratum ")?;
    Some(ServerLine {
        addr,
        stratum: u8::try_from(stratum as i64).ok()?,
        offset: field("offset ")?,
        delay: field("delay ")?,
    })
}

/// Runs sundial's ntpdate (without CAP_SYS_TIME) on host loopback.
fn ntpdate<S: AsRef<str>>(args: &[S]) -> Run {
    let mut cmd = notime(NTPDATE);
    cmd.args(args.iter().map(AsRef::as_ref));
    run(&mut cmd)
}

/// Runs sundial's ntpdate (without CAP_SYS_TIME) inside `ns`.
fn ntpdate_in(ns: &Netns, args: &[&str]) -> Run {
    let mut cmd = ns.notime(NTPDATE);
    cmd.args(args);
    run(&mut cmd)
}

fn run(cmd: &mut Command) -> Run {
    Run::of(&output_within(cmd, RUN_TIMEOUT))
}

/// Both ntpdates query 127.0.0.1:123 in `ns` [`ATTEMPTS`] times; both must see `stratum` and
/// measure `expected` (the server's clock minus the host's). sundial's ntpdate must be within
/// [`MAX_OFFSET`] of it in at least [`GOOD_RUNS`] runs and within [`MAX_OFFSET_ANY_RUN`] in every
/// run; the real ntpdate within the error bound it prints itself (`+/- DIST`, which holds half
/// the round trip: a Python client descheduled between its timestamps on a loaded machine is
/// off by milliseconds, but says so) plus [`MAX_OFFSET`], in every run. Returns sundial's last
/// run; `server_log` explains failures.
fn assert_agrees_with_real_ntpdate(
    ns: &Netns,
    stratum: u8,
    expected: f64,
    server_log: &dyn Fn() -> String,
) -> Run {
    let mut good = 0;
    let mut seen = Vec::new();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let ours = ntpdate_in(ns, &["-q", "127.0.0.1"]);
        let theirs: SntpReport = peers::ntpdate_query(ns, Ipv4Addr::LOCALHOST.into())
            .unwrap_or_else(|e| panic!("the real ntpdate failed:\n{e}\n{}", server_log()));
        let [line] = ours.servers.as_slice() else {
            panic!("expected one server line:\n{ours:?}\n{}", server_log());
        };
        assert_eq!(line.addr, IpAddr::V4(Ipv4Addr::LOCALHOST), "{ours:?}");
        assert_eq!(line.stratum, stratum, "sundial's ntpdate: {ours:?}");
        assert_eq!(theirs.stratum, stratum, "real ntpdate: {theirs:?}");
        let their_bound = theirs.error.expect("ntpdate prints +/- DIST") + MAX_OFFSET;
        seen.push((line.offset, theirs.offset, their_bound));
        assert!(
            (line.offset - expected).abs() < MAX_OFFSET_ANY_RUN
                && (theirs.offset - expected).abs() <= their_bound,
            "expected an offset of {expected} s; (sundial, real ntpdate, its bound) so far: \
             {seen:?}\n{}",
            server_log()
        );
        if (line.offset - expected).abs() < MAX_OFFSET {
            good += 1;
        }
        last = Some(ours);
    }
    assert!(
        good >= GOOD_RUNS,
        "sundial's ntpdate: only {good} of {ATTEMPTS} runs within {MAX_OFFSET} s of {expected} s: \
         {seen:?}"
    );
    last.expect("ATTEMPTS > 0")
}

#[test]
fn agrees_with_real_ntpdate_on_sundial_ntpd() {
    let ns = Netns::new("d");
    let clock = format!("simulated:{SERVER_AHEAD}:0");
    let ntpd = Daemon::start_in_clock(&ns, LOCAL_CLOCK_CONFIG, &clock);
    let ours =
        assert_agrees_with_real_ntpdate(&ns, LOCAL_CLOCK_STRATUM, SERVER_AHEAD, &|| ntpd.log());
    assert!(ours.ok, "{ours:?}\n{}", ntpd.log());
    assert!(
        ours.stdout.contains("adjust time server 127.0.0.1 offset "),
        "{ours:?}"
    );
}

#[test]
fn queries_sundial_ntpd_on_loopback_ports_over_ipv4_and_ipv6() {
    let clock = format!("simulated:{SERVER_AHEAD}:0");
    let ntpd = Daemon::start_clock(LOCAL_CLOCK_CONFIG, &clock, &[]);
    let port = ntpd.port().to_string();
    let ours = ntpdate(&["-q", "-p", "2", "--port", &port, "127.0.0.1", "::1"]);
    assert!(ours.ok, "{ours:?}\n{}", ntpd.log());
    assert_eq!(ours.servers.len(), 2, "{ours:?}");
    for line in &ours.servers {
        assert_eq!(line.stratum, LOCAL_CLOCK_STRATUM, "{ours:?}");
        assert!(line.delay >= 0.0 && line.delay < 0.1, "{ours:?}");
    }
    for line in &ours.servers {
        assert!(
            (line.offset - SERVER_AHEAD).abs() < MAX_OFFSET_ANY_RUN,
            "{ours:?}"
        );
    }
    assert_offsets(SERVER_AHEAD, || {
        ntpdate(&["-q", "--port", &port, "127.0.0.1"])
    });
}

#[test]
fn agrees_with_real_ntpdate_on_chronyd() {
    let ns = Netns::new("c");
    let chronyd = Peer::chronyd_in(&ns, 123, PEER_STRATUM);
    let ours = assert_agrees_with_real_ntpdate(&ns, PEER_STRATUM, 0.0, &|| chronyd.log());
    assert!(ours.ok, "{ours:?}\n{}", chronyd.log());
}

#[test]
fn queries_chronyd_on_a_loopback_port() {
    let chronyd = Peer::chronyd_on_loopback(PEER_STRATUM);
    let server = format!("127.0.0.1:{}", chronyd.port());
    let ours = ntpdate(&["-q", &server]);
    assert!(ours.ok, "{ours:?}\n{}", chronyd.log());
    assert_eq!(
        ours.servers.first().map(|l| l.stratum),
        Some(PEER_STRATUM),
        "{ours:?}"
    );
    assert_offsets(0.0, || ntpdate(&["-q", &server]));
}

/// NTPsec in orphan mode sends a zero reference time. The real ntpdate (ntpdig) does not look at
/// it; classic ntpdate rules — which sundial's ntpdate keeps — drop such a server. Both must
/// still measure the same stratum and offset, and sundial must say why it refuses.
#[test]
fn agrees_with_real_ntpdate_on_ntpsec_orphan_server_and_explains_the_drop() {
    let ns = Netns::new("n");
    let ntpsec = Peer::ntpsec_orphan_in(&ns, "");
    let ours = assert_agrees_with_real_ntpdate(&ns, PEER_STRATUM, 0.0, &|| ntpsec.log());
    assert!(
        !ours.ok,
        "a zero reference time must not be accepted: {ours:?}"
    );
    assert!(
        ours.stderr
            .contains("no server suitable for synchronization found"),
        "{ours:?}"
    );
    let debug = ntpdate_in(&ns, &["-d", "-p", "1", "127.0.0.1"]);
    assert!(
        debug
            .stdout
            .contains("reference time:      00000000.00000000"),
        "{debug:?}"
    );
    assert!(
        debug
            .stdout
            .contains("127.0.0.1: Server dropped: server has gone too long without sync"),
        "{debug:?}"
    );
}

#[test]
fn three_servers_four_samples_each_take_under_a_second() {
    let daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start(LOCAL_CLOCK_CONFIG)).collect();
    let mut args = vec!["-q".to_owned(), "-p".to_owned(), "4".to_owned()];
    args.extend(daemons.iter().map(|d| d.addr_v4().to_string()));
    let mut fastest = Duration::MAX;
    for _ in 0..ATTEMPTS {
        let started = Instant::now();
        let ours = ntpdate(&args);
        fastest = fastest.min(started.elapsed());
        assert!(ours.ok, "{ours:?}");
        assert_eq!(ours.servers.len(), 3, "{ours:?}");
        assert!(
            ours.servers
                .iter()
                .all(|l| l.stratum == LOCAL_CLOCK_STRATUM),
            "{ours:?}"
        );
        if fastest < Duration::from_secs(1) {
            break;
        }
    }
    assert!(
        fastest < Duration::from_secs(1),
        "3 × 4 samples took {fastest:?}"
    );
}

#[test]
fn without_u_a_running_ntpd_holds_the_port_and_ntpdate_exits_1() {
    let ns = Netns::new("p");
    let ntpd = Daemon::start_in(&ns, LOCAL_CLOCK_CONFIG);
    let blocked = ntpdate_in(&ns, &["127.0.0.1"]);
    assert!(!blocked.ok, "{blocked:?}");
    assert!(
        blocked
            .stderr
            .ends_with(" the NTP socket is in use, exiting\n"),
        "{blocked:?}\n{}",
        ntpd.log()
    );
    assert!(blocked.stdout.is_empty(), "{blocked:?}");
    // With -u it gets as far as the clock, which refuses: there is no CAP_SYS_TIME here.
    let refused = ntpdate_in(&ns, &["-u", "-p", "1", "127.0.0.1"]);
    assert!(!refused.ok, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("Can't adjust the time of day: Operation not permitted"),
        "{refused:?}"
    );
    assert!(
        !refused.stdout.contains("adjust time server"),
        "{refused:?}"
    );
}

#[test]
fn unknown_hosts_are_named_and_nothing_suitable_exits_1() {
    let run = ntpdate(&["-q", "no-such-host.invalid"]);
    assert!(!run.ok, "{run:?}");
    assert!(
        run.stderr.contains(" ntpdate[")
            && run
                .stderr
                .contains("Can't find host no-such-host.invalid: "),
        "{run:?}"
    );
    assert!(
        run.stderr.ends_with(": no servers can be used, exiting\n"),
        "{run:?}"
    );
    // A port nobody answers on: every sample times out.
    let port = support::free_port().to_string();
    let run = ntpdate(&["-q", "-p", "1", "-t", "0.2", "--port", &port, "127.0.0.1"]);
    assert!(!run.ok, "{run:?}");
    assert!(
        run.stdout
            .starts_with("server 127.0.0.1, stratum 0, offset +0.000000, delay 0.00000\n"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .ends_with(": no server suitable for synchronization found\n"),
        "{run:?}"
    );
}

#[test]
fn bad_arguments_exit_1_and_help_documents_the_test_port() {
    let out = output_within(notime(NTPDATE).args(["-p", "9", "127.0.0.1"]), RUN_TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = output_within(notime(NTPDATE).arg("--help"), RUN_TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--port <PORT>") && help.contains("For testing"),
        "{help}"
    );
}

/// Runs `query` [`ATTEMPTS`] times: the first server's offset must be within
/// [`MAX_OFFSET_ANY_RUN`] of `expected` in every run and within [`MAX_OFFSET`] in at least
/// [`GOOD_RUNS`].
fn assert_offsets(expected: f64, mut query: impl FnMut() -> Run) {
    let offsets: Vec<f64> = (0..ATTEMPTS)
        .map(|_| {
            let run = query();
            run.servers
                .first()
                .map(|l| l.offset)
                .unwrap_or_else(|| panic!("no server line: {run:?}"))
        })
        .collect();
    assert_eq!(offsets.len(), ATTEMPTS);
    assert!(
        offsets
            .iter()
            .all(|o| (o - expected).abs() < MAX_OFFSET_ANY_RUN),
        "expected {expected} s, measured {offsets:?}"
    );
    let good = offsets
        .iter()
        .filter(|o| (*o - expected).abs() < MAX_OFFSET)
        .count();
    assert!(
        good >= GOOD_RUNS,
        "only {good} of {ATTEMPTS} within {MAX_OFFSET} s of {expected} s: {offsets:?}"
    );
}

#[test]
fn server_lines_parse() {
    let line = parse_server_line("server ::1, stratum 11, offset -0.000123, delay 0.00010");
    assert_eq!(
        line,
        Some(ServerLine {
            addr: "::1".parse().unwrap(),
            stratum: 11,
            offset: -0.000123,
            delay: 0.0001,
        })
    );
    assert_eq!(
        parse_server_line("27 Nov 05:06:58 ntpdate[1]: adjust"),
        None
    );
}
