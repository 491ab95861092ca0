//! Debian's (NTPsec's) `ntpq` against sundial's `ntpd` with real sources: two chronyd servers
//! (`local stratum 2` and `3`) on loopback ports, an unresolvable `pool` line and the local
//! clock driver, all in one namespace. Every value Debian's ntpq renders — tally codes, the
//! `t` column (`u`, `p`, `l`), when, poll, reach in octal, delay/offset/jitter in ms, the
//! association list and the system variables — is compared with sundial's own state as
//! sundial's `ntpq --json` reports it, and the system peer with the daemon's log.
//!
//! The state moves (a poll can land between two queries), so each comparison takes sundial's
//! view before and after Debian's ntpq and only compares when both agree.
//!
//! The other way round, sundial's `ntpq -c sysstats` against NTPsec's ntpd prints the table
//! NTPsec's own ntpq prints.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::Daemon;
use crate::support::daemon::sundial_ntpq_in;
use crate::support::netns::Netns;
use crate::support::peers::{Peer, ntpsec_ntpq_in};
use crate::support::process::Run;
use crate::support::wait::eventually_every;

/// The chronyd servers: (port on 127.0.0.1, `local stratum`).
const CHRONY_SERVERS: [(u16, u8); 2] = [(11123, 2), (11124, 3)];

/// How long sundial gets to select a chronyd server.
const SYNC_LIMIT: Duration = Duration::from_secs(30);

/// Pause between two looks at whether sundial has selected a chronyd server.
const SYNC_POLL: Duration = Duration::from_millis(500);

/// How far Debian's `when` may lie outside sundial's readings just before and after it (whole
/// seconds rounded on both sides), seconds.
const WHEN_SLACK_S: u64 = 3;

/// Rounds of "sundial's view, Debian's ntpq, sundial's view again" before giving up on a
/// stable moment.
const ROUNDS: usize = 4;

/// sundial's configuration: both chronyd servers, a pool whose name cannot resolve (the `p`
/// row) and the local clock (the `l` row).
fn config() -> String {
    let mut config: String = CHRONY_SERVERS
        .iter()
        .map(|(port, _)| format!("server 127.0.0.1 port {port} iburst\n"))
        .collect();
    config.push_str("pool pool.sundial.invalid iburst\n");
    config.push_str("server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n");
    config
}

/// One object of sundial's `--json` output: field → raw JSON value (strings unquoted).
type Fields = BTreeMap<String, String>;

/// The objects of the array `key` in a one-line JSON document of sundial's ntpq (flat
/// objects whose strings hold no `,`, `{` or `}` — true of everything ntpq prints here).
fn json_array(doc: &str, key: &str) -> Vec<Fields> {
    let start = format!("\"{key}\":[");
    let Some((_, rest)) = doc.split_once(&start) else {
        return Vec::new();
    };
    let body = rest.split(']').next().unwrap_or_default();
    body.split("},{")
        .map(|obj| fields(obj.trim_matches(|c| c == '{' || c == '}')))
        .filter(|f| !f.is_empty())
        .collect()
}

/// The fields of the object `key` (`"variables":{…}`).
fn json_object(doc: &str, key: &str) -> Fields {
    let start = format!("\"{key}\":{{");
    doc.split_once(&start)
        .map(|(_, rest)| fields(rest.split('}').next().unwrap_or_default()))
        .unwrap_or_default()
}

fn fields(obj: &str) -> Fields {
    obj.split(',')
        .filter_map(|item| {
            let (k, v) = item.split_once("\":")?;
            Some((
                k.trim_matches('"').to_owned(),
                v.trim_matches('"').to_owned(),
            ))
        })
        .collect()
}

/// sundial's view: `peers` rows (numeric or named), the association list and the system
/// variables.
#[derive(Debug, Clone, PartialEq)]
struct SundialView {
    peers: Vec<Fields>,
    peers_numeric: Vec<Fields>,
    associations: Vec<Fields>,
    system: Fields,
    status: String,
}

impl SundialView {
    fn read(ns: &Netns) -> Self {
        let run = |args: &[&str]| {
            let r = sundial_ntpq_in(ns, args);
            assert!(r.success, "sundial's ntpq {args:?}: {r:?}");
            r.stdout
        };
        let peers = run(&["--json", "-p"]);
        let peers_numeric = run(&["--json", "-pn"]);
        let associations = run(&["--json", "-c", "as"]);
        let rv = run(&["--json", "-c", "rv"]);
        Self {
            peers: json_array(&peers, "peers"),
            peers_numeric: json_array(&peers_numeric, "peers"),
            associations: json_array(&associations, "associations"),
            system: json_object(&rv, "variables"),
            status: fields(rv.split(",\"variables\"").next().unwrap_or_default())
                .get("status")
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The view without what moves by itself from second to second.
    fn settled(&self) -> Self {
        let mut v = self.clone();
        for row in v.peers.iter_mut().chain(v.peers_numeric.iter_mut()) {
            row.remove("when");
        }
        v.system.remove("clock");
        v.system.remove("rootdisp");
        v
    }
}

/// What Debian's ntpq printed for each command.
#[derive(Debug)]
struct DebianView {
    peers: Run,
    peers_numeric: Run,
    associations: Run,
    system: Run,
    named: Run,
}

impl DebianView {
    fn read(ns: &Netns) -> Self {
        let host = "127.0.0.1";
        Self {
            peers: ntpsec_ntpq_in(ns, &["-p", host]),
            peers_numeric: ntpsec_ntpq_in(ns, &["-pn", host]),
            associations: ntpsec_ntpq_in(ns, &["-c", "as", host]),
            system: ntpsec_ntpq_in(ns, &["-c", "rv", host]),
            named: ntpsec_ntpq_in(ns, &["-c", "rv 0 stratum,offset", host]),
        }
    }
}

/// A billboard row as Debian's ntpq prints it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    tally: char,
    remote: String,
    refid: String,
    st: u64,
    t: String,
    when: Option<u64>,
    poll: u64,
    reach: u64,
    delay: f64,
    offset: f64,
    jitter: f64,
}

/// `prettyinterval` read back: `-`, seconds, or a number with `m`, `h` or `d`.
fn interval(text: &str) -> Option<u64> {
    let (number, unit) = match text.char_indices().last()? {
        (i, 'm') => (&text[..i], 60),
        (i, 'h') => (&text[..i], 3600),
        (i, 'd') => (&text[..i], 86_400),
        _ => (text, 1),
    };
    number.parse::<u64>().ok().map(|n| n * unit)
}

/// The rows of `ntpq -p` output (after the two header lines).
fn billboard(out: &str) -> Vec<Row> {
    out.lines()
        .skip(2)
        .map(|line| {
            let tally = line.chars().next().unwrap_or('?');
            let remote = line.get(1..16).unwrap_or_default().trim().to_owned();
            let refid = line.get(17..32).unwrap_or_default().trim().to_owned();
            let w: Vec<&str> = line
                .get(32..)
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            assert_eq!(w.len(), 8, "billboard row {line:?}");
            Row {
                tally,
                remote,
                refid,
                st: w[0].parse().expect("st"),
                t: w[1].to_owned(),
                when: interval(w[2]),
                poll: interval(w[3]).expect("poll"),
                reach: u64::from_str_radix(w[4], 8).expect("reach in octal"),
                delay: w[5].parse().expect("delay"),
                offset: w[6].parse().expect("offset"),
                jitter: w[7].parse().expect("jitter"),
            }
        })
        .collect()
}

fn num(fields: &Fields, name: &str) -> f64 {
    fields
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {fields:?}"))
}

fn int(fields: &Fields, name: &str) -> u64 {
    fields
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {fields:?}"))
}

/// Two renderings of the same decimal number (`1.000` and `1.0`).
fn same_number(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

/// Debian's billboard against sundial's `peers` rows read just before (`ours`) and just after
/// (`later`) it. `named` are sundial's rows with names: NTPsec's ntpq shows a reference clock by
/// its name (`LOCAL(0)`) even with `-n`, where sundial's, like classic ntpq, shows its
/// 127.127.t.u address.
fn compare_billboard(
    debian: &Run,
    ours: &[Fields],
    later: &[Fields],
    named: &[Fields],
    what: &str,
) {
    assert!(
        debian
            .stdout
            .starts_with("     remote           refid      st t when poll reach"),
        "{what}: {debian:?}"
    );
    let rows = billboard(&debian.stdout);
    assert_eq!(rows.len(), ours.len(), "{what}: {debian:?}\n{ours:?}");
    for (((row, mine), after), with_name) in rows.iter().zip(ours).zip(later).zip(named) {
        let context = format!("{what}: {row:?} vs {mine:?}");
        let field = |name: &str| mine.get(name).cloned().unwrap_or_default();
        assert_eq!(row.tally.to_string(), field("tally"), "{context}");
        let remote = if row.t == "l" {
            &with_name["remote"]
        } else {
            &mine["remote"]
        };
        let remote: String = remote.chars().take(15).collect();
        assert_eq!(row.remote, remote, "{context}");
        assert_eq!(row.refid, field("refid"), "{context}");
        assert_eq!(row.st, int(mine, "st"), "{context}");
        assert_eq!(row.t, field("t"), "{context}");
        assert_eq!(row.poll, int(mine, "poll"), "{context}");
        assert_eq!(row.reach, int(mine, "reach"), "{context}");
        // `when` moves on while Debian's ntpq runs (seconds on a loaded machine), so it lies
        // between sundial's two readings — unless a poll came in between without changing the
        // settled view (the local clock, reach already 377): then it restarted from 0 before or
        // after Debian's reading. 0 s shows as `-`, like never.
        let when = |fields: &Fields| fields.get("when").and_then(|v| v.parse::<u64>().ok());
        let (first, last) = (when(mine).unwrap_or(0), when(after).unwrap_or(0));
        let shown = row.when.unwrap_or(0);
        let since_first = first.saturating_sub(WHEN_SLACK_S) <= shown;
        let until_last = shown <= last + WHEN_SLACK_S;
        let ok = if first <= last {
            since_first && until_last
        } else {
            since_first || until_last
        };
        assert!(ok, "when {shown}, sundial {first} then {last}: {context}");
        for (shown, name) in [
            (row.delay, "delay"),
            (row.offset, "offset"),
            (row.jitter, "jitter"),
        ] {
            assert!(
                (shown - num(mine, name)).abs() < 0.0006,
                "{name}: {context}"
            );
        }
    }
}

/// Debian's `as` table against sundial's association list.
fn compare_associations(debian: &Run, ours: &[Fields]) {
    let rows: Vec<Vec<&str>> = debian
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("===="))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), ours.len(), "{debian:?}\n{ours:?}");
    for (row, mine) in rows.iter().zip(ours) {
        let context = format!("{row:?} vs {mine:?}");
        let yes = |name: &str| match mine.get(name).map(String::as_str) {
            Some("true") => "yes",
            _ => "no",
        };
        let [ind, assid, status, conf, reach, auth, condition, rest @ ..] = row.as_slice() else {
            panic!("as row {row:?}");
        };
        assert_eq!(*ind, mine["ind"], "{context}");
        assert_eq!(*assid, mine["associd"], "{context}");
        let status_word = u16::from_str_radix(status, 16).expect("status in hex");
        assert_eq!(status_word.to_string(), mine["status"], "{context}");
        assert_eq!(*conf, yes("conf"), "{context}");
        // With the broadcast bit (a pool prototype) reach is "none", otherwise yes or no.
        let expected_reach = if int(mine, "status") & 0x0800 != 0 {
            "none"
        } else {
            yes("reach")
        };
        assert_eq!(*reach, expected_reach, "{context}");
        assert_eq!(*auth, "none", "{context}");
        assert_eq!(*condition, mine["condition"], "{context}");
        let (event, count) = match rest {
            [event, count] => (*event, *count),
            [count] => ("", *count),
            _ => panic!("as row {row:?}"),
        };
        assert_eq!(event, mine["last_event"], "{context}");
        assert_eq!(count, mine["cnt"], "{context}");
    }
}

/// The `name=value` items of `rv` output, status line left out; quotes removed.
fn readvar_items(out: &str) -> Fields {
    out.lines()
        .filter(|l| !l.starts_with("associd="))
        .collect::<Vec<_>>()
        .join(" ")
        .split(", ")
        .filter_map(|item| {
            let (name, value) = item.trim().trim_end_matches(',').split_once('=')?;
            Some((name.to_owned(), value.trim_matches('"').to_owned()))
        })
        .collect()
}

/// Debian's `rv` against sundial's system variables.
fn compare_system(debian: &Run, ours: &Fields, ours_after: &Fields, status: &str) {
    let status_line = debian.stdout.lines().next().unwrap_or_default();
    let word: u16 = status.parse().expect("status");
    assert!(
        status_line.starts_with(&format!("associd=0 status={word:04x} ")),
        "{debian:?}"
    );
    let theirs = readvar_items(&debian.stdout);
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "{debian:?}"
    );
    for (name, shown) in &theirs {
        let sent = &ours[name];
        let context = format!("{name}: Debian {shown:?}, sundial {sent:?}");
        match name.as_str() {
            "clock" => {}
            "leap" => assert_eq!(shown, &format!("{:02b}", sent.parse::<u8>().expect("leap"))),
            "reftime" => assert_eq!(
                shown.split(' ').next(),
                sent.strip_prefix("0x"),
                "{context}"
            ),
            "rootdisp" => {
                // It grows by 15 µs/s between clock updates (none came between the two reads
                // of sundial's view: the reference time is the same), so Debian's reading lies
                // between sundial's before and after, give or take the last printed digit.
                let shown: f64 = shown.parse().expect(name);
                let before: f64 = sent.parse().expect(name);
                let after: f64 = ours_after[name].parse().expect(name);
                assert!(
                    before.min(after) - 0.0011 <= shown && shown <= before.max(after) + 0.0011,
                    "{context}, sundial after {after}"
                );
            }
            _ => match (shown.parse::<f64>(), sent.parse::<f64>()) {
                (Ok(a), Ok(b)) => assert!(same_number(a, b), "{context}"),
                _ => assert_eq!(shown, sent, "{context}"),
            },
        }
    }
}

#[test]
fn debian_ntpq_shows_what_sundial_knows_about_real_sources() {
    let ns = Netns::new("q");
    let chronyds: Vec<Peer> = CHRONY_SERVERS
        .iter()
        .map(|(port, stratum)| Peer::chronyd_in(&ns, *port, *stratum))
        .collect();
    let ntpd = Daemon::start_in(&ns, config());

    // Wait until a chronyd server is the system peer.
    let synced = eventually_every(SYNC_LIMIT, SYNC_POLL, || {
        SundialView::read(&ns)
            .peers_numeric
            .iter()
            .any(|p| p["tally"] == "*" && p["t"] == "u")
    });
    assert!(
        synced,
        "no system peer within {SYNC_LIMIT:?}:\n{}\n{}",
        ntpd.log(),
        chronyds.iter().map(Peer::log).collect::<String>()
    );

    let mut last = None;
    for _ in 0..ROUNDS {
        let before = SundialView::read(&ns);
        let debian = DebianView::read(&ns);
        let after = SundialView::read(&ns);
        if before.settled() != after.settled() {
            last = Some((before, debian, after));
            continue;
        }
        compare_billboard(
            &debian.peers_numeric,
            &before.peers_numeric,
            &after.peers_numeric,
            &before.peers,
            "-pn",
        );
        compare_billboard(
            &debian.peers,
            &before.peers,
            &after.peers,
            &before.peers,
            "-p",
        );
        compare_associations(&debian.associations, &before.associations);
        compare_system(
            &debian.system,
            &before.system,
            &after.system,
            &before.status,
        );
        let named = readvar_items(&debian.named.stdout);
        assert_eq!(named.len(), 2, "{:?}", debian.named);
        assert_eq!(named["stratum"], before.system["stratum"]);
        assert!(
            same_number(num(&named, "offset"), num(&before.system, "offset")),
            "{:?} vs {:?}",
            debian.named,
            before.system
        );

        // Every kind of row is there: the two chronyd servers, the pool, the local clock.
        let kinds: String = before
            .peers_numeric
            .iter()
            .map(|p| p["t"].clone())
            .collect();
        assert_eq!(kinds, "uupl", "{before:?}");
        // The system peer is the one the daemon logged, at the stratum it logged.
        let sys_peer = before
            .peers_numeric
            .iter()
            .find(|p| p["tally"] == "*")
            .expect("a system peer");
        let log = ntpd.log();
        let logged = log
            .lines()
            .rev()
            .find_map(|l| {
                l.split_once("system peer ")
                    .map(|(_, rest)| rest.to_owned())
            })
            .unwrap_or_else(|| panic!("no system peer in the log:\n{log}"));
        assert!(
            logged.ends_with(&format!(", stratum {}", sys_peer["st"]))
                || logged.contains(&format!(", stratum {};", sys_peer["st"])),
            "log: {logged}; row: {sys_peer:?}"
        );
        // Stratum of the service: one below the system peer's.
        assert_eq!(
            int(&before.system, "stratum"),
            int(sys_peer, "st") + 1,
            "{before:?}"
        );
        return;
    }
    panic!("sundial's state never held still over one round of queries: {last:?}");
}

/// (legend, first number) of each line of `sysstats` output.
fn sysstats_lines(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let (legend, rest) = line.split_once(':')?;
            let first = rest.split_whitespace().next()?;
            Some((legend.trim().to_owned(), first.to_owned()))
        })
        .collect()
}

#[test]
fn sundials_sysstats_prints_ntpsecs_table_against_ntpsec() {
    let ns = Netns::new("q");
    let server = Peer::ntpsec_orphan_in(&ns, "");
    let ours = sundial_ntpq_in(&ns, &["-c", "sysstats", "127.0.0.1"]);
    let theirs = ntpsec_ntpq_in(&ns, &["-c", "sysstats", "127.0.0.1"]);
    assert!(
        ours.success && ours.stderr.is_empty(),
        "{ours:?}\n{}",
        server.log()
    );
    let (ours_lines, theirs_lines) = (sysstats_lines(&ours.stdout), sysstats_lines(&theirs.stdout));
    // The same seventeen lines, and no sundial block: NTPsec's ntpd has no `ss_dropped_*`.
    let legends =
        |lines: &[(String, String)]| lines.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
    assert_eq!(
        legends(&ours_lines),
        legends(&theirs_lines),
        "{ours:?}\n{theirs:?}"
    );
    assert_eq!(ours_lines.len(), 17, "{ours:?}");
    // Counters the two ntpqs' own requests do not move are the same.
    for (legend, value) in &theirs_lines {
        if [
            "NTPv1 total",
            "NTPv1 clients",
            "NTPv1 mode0",
            "NTPv1 symm act",
            "bad length or format",
            "authentication failed",
            "declined",
            "restricted",
            "rate limited",
            "KoD responses",
        ]
        .contains(&legend.as_str())
        {
            assert!(
                ours_lines.contains(&(legend.clone(), value.clone())),
                "{legend}: {ours:?}"
            );
        }
    }
}
