//! sundial follows a real chronyd in a network namespace with statistics enabled; the files
//! it writes are read by Debian's `ntpviz` and compared with what ntpq showed and with the
//! files NTPsec's ntpd writes in the same setup.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::daemon::sundial_ntpq_in;
use crate::support::netns::Netns;
use crate::support::peers::{Peer, ntpsec_program};
use crate::support::process::{self, output_within};
use crate::support::tempdir::TempDir;
use crate::support::wait::eventually_every;
use crate::support::{Daemon, NetnsPair};

const CHRONY_PORT: u16 = 11123;

/// How long sundial gets to write enough lines (iburst, then a poll every 8 s).
const LINES_LIMIT: Duration = Duration::from_secs(90);

/// The user the daemon runs as (`-u`), who must own the files.
const USER: &str = "nobody";

fn lines(dir: &Path, stem: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{stem}.")))
        .collect();
    names.sort();
    for n in names {
        let text = fs::read_to_string(dir.join(n)).unwrap_or_default();
        out.extend(text.lines().map(str::to_owned));
    }
    out
}

fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn uid_of(user: &str) -> u32 {
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user)).then(|| f[2].parse().expect("uid"))
        })
        .expect("user nobody")
}

/// The first two fields of a statistics line as Unix time, as ntpviz computes it.
fn unix_time(f: &[&str]) -> f64 {
    let mjd: f64 = f[0].parse().expect("MJD");
    let sod: f64 = f[1].parse().expect("seconds past midnight");
    (mjd - 40_587.0) * 86_400.0 + sod
}

/// Checks the column layout every classic reader relies on.
#[expect(
    clippy::unwrap_used,
    reason = "a field that does not parse fails the test"
)]
fn check_layout(stem: &str, line: &str, now: f64) {
    let f = fields(line);
    let expected = match stem {
        "loopstats" => 7,
        "peerstats" => 8,
        "protostats" => 6,
        _ => unreachable!(),
    };
    if stem == "protostats" {
        assert!(f.len() >= expected, "{stem}: {line:?}");
    } else {
        assert_eq!(f.len(), expected, "{stem}: {line:?}");
    }
    let sod_decimals = f[1].split_once('.').map(|(_, d)| d.len());
    assert_eq!(
        sod_decimals,
        Some(3),
        "{stem}: seconds past midnight with ms: {line:?}"
    );
    let t = unix_time(&f);
    assert!(
        (t - now).abs() < 600.0,
        "{stem}: time {t} is not now ({now}): {line:?}"
    );
    match stem {
        "loopstats" => {
            let offset: f64 = f[2].parse().unwrap();
            let freq: f64 = f[3].parse().unwrap();
            assert!(offset.abs() < 0.5, "offset in seconds: {line:?}");
            assert!(freq.abs() < 500.0, "frequency in ppm: {line:?}");
            assert_eq!(f[2].split_once('.').unwrap().1.len(), 9, "{line:?}");
            assert_eq!(f[3].split_once('.').unwrap().1.len(), 6, "{line:?}");
            f[6].parse::<i8>().expect("time constant");
        }
        "peerstats" => {
            assert_eq!(f[2], "127.0.0.1", "{line:?}");
            u16::from_str_radix(f[3], 16).expect("hex status");
            assert_eq!(f[3].len(), 4, "{line:?}");
            for v in &f[4..8] {
                assert_eq!(v.split_once('.').unwrap().1.len(), 9, "{line:?}");
                let v: f64 = v.parse().unwrap();
                assert!(v.abs() < 1.0, "seconds: {line:?}");
            }
        }
        _ => {}
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// sundial's offset, delay and jitter (ms) of its one source, as its own `ntpq -pn` shows them
/// (three decimals).
fn ntpq_peer(ns: &Netns) -> Option<(f64, f64, f64)> {
    let out = sundial_ntpq_in(ns, &["--json", "-pn"]).stdout;
    let get = |name: &str| -> Option<f64> {
        let (_, rest) = out.split_once(&format!("\"{name}\":"))?;
        rest.split([',', '}'])
            .next()?
            .trim_matches('"')
            .parse()
            .ok()
    };
    Some((get("offset")?, get("delay")?, get("jitter")?))
}

#[test]
fn ntpviz_plots_sundials_statistics_and_they_match_ntpq() {
    let ns = Netns::new("stats");
    let _chronyd = Peer::chronyd_in(&ns, CHRONY_PORT, 2);
    let dir = TempDir::new("statsdir");
    let stats = dir.path().join("stats");
    fs::create_dir(&stats).unwrap();
    let uid = uid_of(USER);
    std::os::unix::fs::chown(&stats, Some(uid), None).unwrap();
    let config = format!(
        "server 127.0.0.1 port {CHRONY_PORT} iburst minpoll 3 maxpoll 3\n\
         statsdir {}/\n\
         statistics loopstats peerstats protostats sysstats\n\
         filegen loopstats file loopstats type day link enable\n\
         filegen peerstats file peerstats type day link enable\n",
        stats.display()
    );
    let ntpd = Daemon::start_in_with(&ns, config, "simulated:0.002:3", &["-u", USER]);
    let enough = eventually_every(LINES_LIMIT, Duration::from_secs(1), || {
        lines(&stats, "loopstats").len() >= 4 && lines(&stats, "peerstats").len() >= 8
    });
    assert!(enough, "too few lines; log:\n{}", ntpd.log());

    // The files belong to the -u user; the link names today's generation.
    for stem in ["loopstats", "peerstats", "protostats"] {
        let link = stats.join(stem);
        let meta = fs::metadata(&link).unwrap_or_else(|e| panic!("{stem} link: {e}"));
        assert_eq!(meta.uid(), uid, "{stem} is owned by {USER}");
        assert!(meta.nlink() >= 2, "{stem} is a hard link to its generation");
    }

    // The values of a peerstats line are those ntpq shows for the same sample.
    let mut compared = false;
    for _ in 0..20 {
        let before = ntpq_peer(&ns);
        let last = lines(&stats, "peerstats").pop().unwrap();
        let after = ntpq_peer(&ns);
        if let Some((offset_ms, delay_ms, jitter_ms)) = before
            && before == after
        {
            let f: Vec<f64> = fields(&last)[4..8]
                .iter()
                .map(|v| v.parse().unwrap())
                .collect();
            assert!(
                (f[0] * 1e3 - offset_ms).abs() <= 0.0006,
                "offset {last:?} vs {offset_ms} ms"
            );
            assert!(
                (f[1] * 1e3 - delay_ms).abs() <= 0.0006,
                "delay {last:?} vs {delay_ms} ms"
            );
            assert!(
                (f[3] * 1e3 - jitter_ms).abs() <= 0.0006,
                "jitter {last:?} vs {jitter_ms} ms"
            );
            compared = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(compared, "no quiet moment to compare peerstats with ntpq");

    let t = now();
    for stem in ["loopstats", "peerstats", "protostats"] {
        for line in lines(&stats, stem) {
            check_layout(stem, &line, t);
        }
    }
    let proto = lines(&stats, "protostats");
    assert!(
        proto
            .iter()
            .any(|l| l.contains(" 0.0.0.0 ") && l.ends_with("clock_sync")),
        "protostats has the clock_sync event: {proto:#?}"
    );
    assert!(
        proto
            .iter()
            .any(|l| l.contains(" 127.0.0.1 ") && l.contains(" 8a sys_peer")),
        "protostats has the sys_peer event: {proto:#?}"
    );
    drop(ntpd);
    // ntpviz ends its period at the current whole second (`int(time.time())`) and leaves out
    // lines after it: a line written in the last fraction of a second before it runs would be
    // missing from its plots. The daemon has stopped; a little over a second later every line
    // is inside the period.
    std::thread::sleep(Duration::from_millis(1100));

    // ntpviz reads them: its gnuplot data for the offset plot are sundial's loopstats offsets,
    // and for the peer offsets sundial's peerstats offsets.
    // Each data point is (Unix time, offset) of a loopstats line, as ntpviz converts MJD and
    // seconds past midnight.
    let loop_points: Vec<(f64, f64)> = lines(&stats, "loopstats")
        .iter()
        .map(|l| {
            let f = fields(l);
            (unix_time(&f), f[2].parse().unwrap())
        })
        .collect();
    let plot = ntpviz(&stats, "--local-offset");
    let plotted = first_block(&plot);
    assert!(plotted.len() >= 4, "ntpviz plotted too little:\n{plot}");
    for p in &plotted {
        assert!(
            loop_points
                .iter()
                .any(|(t, o)| (t - p[0]).abs() < 1e-3 && (o - p[1]).abs() < 1e-12),
            "plotted point {p:?} is not a loopstats line {loop_points:?}"
        );
    }
    let jitter = ntpviz(&stats, "--local-jitter");
    assert!(first_block(&jitter).len() >= 4, "no jitter plot:\n{jitter}");
    let peers = ntpviz(&stats, "--peer-offsets=127.0.0.1");
    assert_eq!(
        first_block(&peers).len(),
        lines(&stats, "peerstats").len(),
        "peer offsets from every peerstats line:\n{peers}"
    );
}

/// ntpviz's gnuplot script for one plot of the statistics in `dir`.
fn ntpviz(dir: &Path, plot: &str) -> String {
    let mut cmd = Command::new("ntpviz");
    cmd.arg("-d").arg(dir).args(["-p", "1", plot]);
    let out = output_within(&mut cmd, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ntpviz {plot}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The inline data of the first series of a gnuplot script: lines of numbers up to `e`.
fn first_block(script: &str) -> Vec<Vec<f64>> {
    script
        .lines()
        .skip_while(|l| !l.starts_with("plot"))
        .skip(1)
        .take_while(|l| *l != "e")
        .filter_map(|l| {
            l.split_whitespace()
                .map(str::parse)
                .collect::<Result<Vec<f64>, _>>()
                .ok()
                .filter(|f| f.len() >= 2)
        })
        .collect()
}

/// How long NTPsec's ntpd gets to select sundial and write its loopstats.
const NTPSEC_LIMIT: Duration = Duration::from_secs(150);

/// The shape of a statistics field: what NTPsec's readers rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// A decimal number with this many digits after the point.
    Decimal(usize),
    /// An integer.
    Integer,
    /// Four hex digits (a status word).
    Hex4,
    /// Anything else (an address, an event name).
    Text,
}

fn shape(field: &str) -> Shape {
    if let Some((int, frac)) = field.split_once('.')
        && int
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
        && !int.trim_start_matches('-').is_empty()
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Shape::Decimal(frac.len());
    }
    if field
        .trim_start_matches('-')
        .bytes()
        .all(|b| b.is_ascii_digit())
        && !field.is_empty()
    {
        return Shape::Integer;
    }
    if field.len() == 4 && field.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Shape::Hex4;
    }
    Shape::Text
}

/// The shapes of a line's fields; `text_at` lists fields that are names or addresses.
fn shapes(line: &str, text_at: &[usize]) -> Vec<Shape> {
    fields(line)
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if text_at.contains(&i) {
                Shape::Text
            } else {
                shape(f)
            }
        })
        .collect()
}

/// sundial follows chronyd in one namespace and NTPsec's ntpd (1.2.2, without CAP_SYS_TIME)
/// follows sundial from another, both writing statistics: every line of both has the same
/// fields with the same number of decimals (status words as four hex digits, units as NTPsec).
#[test]
fn ntpsec_writes_the_same_columns_as_sundial() {
    let pair = NetnsPair::new();
    let _chronyd = Peer::chronyd_in(&pair.server, CHRONY_PORT, 2);
    let dir = TempDir::new("statscmp");
    let ours = dir.path().join("sundial");
    let theirs = dir.path().join("ntpsec");
    fs::create_dir(&ours).unwrap();
    fs::create_dir(&theirs).unwrap();
    let stats_lines = "statistics loopstats peerstats protostats rawstats\n";
    let sundial = Daemon::start_in_with(
        &pair.server,
        format!(
            "server 127.0.0.1 port {CHRONY_PORT} iburst minpoll 3 maxpoll 3\nstatsdir {}/\n{stats_lines}",
            ours.display()
        ),
        "simulated:0.001:2",
        &[],
    );
    let config = dir.write(
        "ntpsec.conf",
        format!(
            // Without `disable kernel`, NTPsec (unable to use the kernel PLL without
            // CAP_SYS_TIME) writes no loopstats.
            "server {} iburst minpoll 3 maxpoll 3\ndisable kernel\ndriftfile {1}/ntp.drift\n\
             statsdir {1}/\n{stats_lines}",
            NetnsPair::SERVER_V4,
            theirs.display()
        ),
    );
    let mut cmd = pair.client.notime(ntpsec_program("usr/sbin/ntpd"));
    cmd.arg("-n")
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(dir.path().join("ntpsec.pid"))
        .arg("-l")
        .arg(dir.path().join("ntpsec.log"));
    let mut ntpsec = process::spawn_logged(&mut cmd, &dir.path().join("ntpsec.out"));
    let written = eventually_every(NTPSEC_LIMIT, Duration::from_secs(1), || {
        ["loopstats", "peerstats", "rawstats"]
            .iter()
            .all(|stem| !lines(&theirs, stem).is_empty() && lines(&ours, stem).len() >= 2)
    });
    let _ = process::stop(&mut ntpsec, Duration::from_secs(5));
    let ntpsec_log = fs::read_to_string(dir.path().join("ntpsec.log")).unwrap_or_default();
    let counts: Vec<(&str, usize, usize)> = ["loopstats", "peerstats", "protostats", "rawstats"]
        .iter()
        .map(|stem| (*stem, lines(&theirs, stem).len(), lines(&ours, stem).len()))
        .collect();
    assert!(
        written,
        "too few lines (file, NTPsec's, sundial's): {counts:?}\nNTPsec log:\n{ntpsec_log}"
    );
    drop(sundial);

    // loopstats: every field alike. peerstats: field 2 is the address. rawstats: fields 2 and
    // 3 are the addresses, 16 the refid; the twenty fields of NTPsec 1.2 (the timestamps with
    // nine decimals, root delay and dispersion with six).
    for (stem, text_at) in [
        ("loopstats", &[][..]),
        ("peerstats", &[2][..]),
        ("rawstats", &[2, 3, 16][..]),
    ] {
        let reference = shapes(&lines(&theirs, stem)[0], text_at);
        for line in lines(&theirs, stem) {
            assert_eq!(shapes(&line, text_at), reference, "NTPsec {stem} {line:?}");
        }
        for line in lines(&ours, stem) {
            assert_eq!(
                shapes(&line, text_at),
                reference,
                "sundial's {stem} {line:?} differs from NTPsec's {:?}",
                lines(&theirs, stem)[0]
            );
        }
    }
    // rawstats: the four timestamps are those of one exchange on loopback — a round trip of
    // less than a second, T2 ≤ T3 and T1 ≤ T4 — and the line's own time is T4's.
    for line in lines(&ours, "rawstats") {
        let f = fields(&line);
        let t: Vec<f64> = f[4..8].iter().map(|v| v.parse().unwrap()).collect();
        let delay = (t[3] - t[0]) - (t[2] - t[1]);
        assert!(t[0] <= t[3] && t[1] <= t[2], "{line}");
        assert!((0.0..1.0).contains(&delay), "{line}");
        let ntp_unix = 2_208_988_800.0;
        assert!((t[3] - ntp_unix - unix_time(&f)).abs() < 2.0, "{line}");
    }
    // protostats: MJD, seconds, address, status word, event code, then the event's text.
    let proto_head = |line: &str| {
        let f = fields(line);
        (
            shape(f[0]),
            shape(f[1]),
            f[3].len() == 4 && u16::from_str_radix(f[3], 16).is_ok(),
            f[4].len() == 2 && u8::from_str_radix(f[4], 16).is_ok(),
        )
    };
    let reference = proto_head(&lines(&theirs, "protostats")[0]);
    assert_eq!(reference, (Shape::Integer, Shape::Decimal(3), true, true));
    for line in lines(&ours, "protostats") {
        assert_eq!(
            proto_head(&line),
            reference,
            "sundial's protostats {line:?}"
        );
    }
}
