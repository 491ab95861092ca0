//! Bad input: every problem is a finding at the right place, the line has no effect, and the
//! rest of the file still loads. Arbitrary input never panics.

use std::path::Path;

use proptest::prelude::*;

use super::{TempDir, parse, positions};
use crate::config::*;
use crate::property;

#[test]
fn bad_lines_are_reported_at_file_line_column_and_the_rest_loads() {
    let (config, findings) = parse(
        "server 0.pool.ntp.org iburst\n\
         servre 1.pool.ntp.org\n\
         restrict default nomodfy noquery\n\
         server 2.pool.ntp.org minpoll x\n\
         tos minclock\n\
         server 192.168.1.300\n\
         driftfile\n\
         setvar x = \"unterminated\n\
         server 3.pool.ntp.org iburst\n",
    );
    assert_eq!(
        positions(&findings, Severity::Error),
        [
            "2:1 servre",
            "3:18 nomodfy",
            "4:31 x",
            "5:5 minclock",
            "6:8 192.168.1.300",
            "7:1 driftfile",
            "8:12 \"unterminated",
        ]
    );
    assert_eq!(findings.len(), 7);
    assert!(
        findings
            .iter()
            .all(|f| f.location.file == Path::new("/etc/ntp.conf"))
    );
    let names: Vec<_> = config
        .associations
        .iter()
        .map(|a| a.address.to_string())
        .collect();
    assert_eq!(names, ["0.pool.ntp.org", "3.pool.ntp.org"]);
    assert!(
        config.restrictions.is_empty() && config.driftfile.is_none() && config.setvars.is_empty()
    );
    assert_eq!(config.tos, Tos::default());
}

#[test]
fn findings_display_like_compiler_diagnostics() {
    let (_, findings) = parse("\nrestrict default nomodfy\npeer 192.0.2.1\n");
    assert_eq!(
        findings[0].to_string(),
        "/etc/ntp.conf:2:18: error: unknown restrict flag ('nomodfy')"
    );
    assert_eq!(
        findings[1].to_string(),
        "/etc/ntp.conf:3:1: notice: peer is treated as server (symmetric mode is not supported) ('peer')"
    );
    let bare = Finding {
        severity: Severity::Warning,
        location: Location::new("/x", 1, 1),
        token: String::new(),
        message: "m".into(),
    };
    assert_eq!(bare.to_string(), "/x:1:1: warning: m");
}

#[test]
fn an_unknown_restrict_flag_is_an_error_and_the_line_has_no_effect() {
    let (config, findings) =
        parse("restrict 10.0.0.0 mask 255.0.0.0 nomodify ignor\nrestrict default \"noquery\"");
    assert_eq!(
        positions(&findings, Severity::Error),
        ["1:43 ignor", "2:18 noquery"]
    );
    assert_eq!(findings[0].message, "unknown restrict flag");
    assert!(config.restrictions.is_empty());
}

#[test]
fn a_line_with_an_error_changes_nothing_even_after_good_pairs() {
    let (config, findings) = parse(
        "tos minclock 5 maxclock x\ndisable kernel bogus\ntinker step 1 panic -1\ndiscard average 4 bogus 1",
    );
    assert_eq!(findings.len(), 4);
    assert_eq!(config.tos, Tos::default());
    assert!(config.system_flags.kernel);
    assert_eq!(config.tinker, Tinker::default());
    assert_eq!(config.discard, Discard::default());
}

#[test]
fn malformed_arguments_are_errors_naming_the_token() {
    let cases: &[(&str, &str)] = &[
        ("server", "server"),
        ("server iburst", "iburst"),
        ("server a.example bogus", "bogus"),
        ("pool 127.127.1.0", "127.127.1.0"),
        ("server -4 2001:db8::1", "2001:db8::1"),
        ("server -6 [fe80::1]%eth0 version 5", "5"),
        ("server a.example key 0", "0"),
        ("server a.example port 0", "0"),
        ("server a.example minpoll", "minpoll"),
        ("server [2001:db8::1", "[2001:db8::1"),
        ("restrict", "restrict"),
        ("restrict 10.0.0.0 mask ::", "::"),
        ("restrict 10.0.0.0/8 mask 255.0.0.0", "255.0.0.0"),
        ("restrict 10.0.0.0/33", "10.0.0.0/33"),
        ("restrict -4 source", "source"),
        ("restrict 10.0.0.1 serverresponse slow", "slow"),
        ("restrict 10.0.0.1 ippeerlimit -2", "-2"),
        ("restrict fe80::1%eth0", "fe80::1%eth0"),
        ("fudge 192.0.2.1 stratum 3", "192.0.2.1"),
        ("fudge 127.127.1.0 stratum 16", "16"),
        ("fudge 127.127.1.0 flag1 2", "2"),
        ("fudge 127.127.1.0 refid \"\"", ""),
        ("refclock local unit 300", "300"),
        ("trustedkey (20 ... 10)", "("),
        ("trustedkey (1 ...", "("),
        ("trustedkey 1 (2 .. 3)", ".."),
        ("trustedkey", "trustedkey"),
        // NTPsec wants the parentheses too (a syntax error at the dots).
        ("trustedkey 1 ... 20", "..."),
        ("authenticate maybe", "maybe"),
        ("interface listen", "interface"),
        ("interface listen eth0 extra", "extra"),
        ("interface open all", "open"),
        ("tinker bogus 1", "bogus"),
        ("tinker allan x", "x"),
        ("tos orphan 0", "0"),
        ("tos basedate 2024-13-01", "2024-13-01"),
        ("statistics bogusstats", "bogusstats"),
        ("filegen loopstats type hourly", "hourly"),
        ("driftfile /x 0", "0"),
        ("nonvolatile -1", "-1"),
        ("setvar = x", "="),
        ("setvar a b", "b"),
        ("disable bogus", "bogus"),
        ("\"server\" 192.0.2.1", "server"),
        ("pidfile /a /b", "/b"),
        ("limit average 0", "0"),
        ("mru maxdepth -1", "-1"),
        ("includefile", "includefile"),
        ("controlkey 70000", "70000"),
    ];
    for (line, token) in cases {
        let (config, findings) = parse(line);
        let errors: Vec<_> = findings.iter().filter(|f| f.is_error()).collect();
        assert_eq!(errors.len(), 1, "{line}: {findings:#?}");
        assert_eq!(errors[0].token, *token, "{line}");
        assert_eq!(errors[0].location.line, 1, "{line}");
        assert!(
            config.associations.is_empty() && config.restrictions.is_empty(),
            "{line}"
        );
    }
}

#[test]
fn odd_but_harmless_values_are_warnings() {
    let (config, findings) = parse(
        "fudge 127.127.1.0 refid TOOLONG\nrestrict default mask 0.0.0.0 nomodify\nfudge 127.127.2.0",
    );
    assert_eq!(
        config.fudges[0].refid,
        Some(sundial_proto::packet::ReferenceId::from_bytes(*b"TOOL"))
    );
    assert_eq!(
        config.restrictions[0].flags,
        sundial_proto::access::RestrictFlags::NOMODIFY
    );
    // Two fudges for clocks no server line configures, checked once the whole file is read.
    assert_eq!(
        positions(&findings, Severity::Warning),
        [
            "1:25 TOOLONG",
            "2:23 0.0.0.0",
            "1:1 127.127.1.0",
            "3:1 127.127.2.0"
        ]
    );
    assert_eq!(positions(&findings, Severity::Notice), ["3:7 127.127.2.0"]);
}

#[test]
fn byte_order_marks_windows_line_endings_and_tabs_are_harmless() {
    let (config, findings) = parse("\u{feff}server\ta.example\tiburst\r\nrestrict\t127.0.0.1 \r\n");
    assert!(findings.is_empty(), "{findings:#?}");
    assert!(config.associations[0].iburst);
    assert_eq!(config.restrictions.len(), 1);
}

#[test]
fn invalid_utf8_is_replaced_with_a_warning_and_the_file_still_loads() {
    let dir = TempDir::new("invalid_utf8");
    let path = dir.write(
        "ntp.conf",
        b"server a.example\n# caf\xe9\nserver b.example\n",
    );
    let (config, findings) = load(&path).unwrap();
    assert_eq!(config.associations.len(), 2);
    assert_eq!(positions(&findings, Severity::Warning), ["2:6 "]);
}

#[test]
fn an_unreadable_top_file_is_a_load_error() {
    let err = load(Path::new("/nonexistent-sundial/ntp.conf")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read configuration file /nonexistent-sundial/ntp.conf: ")
    );
    assert!(std::error::Error::source(&err).is_some());
}

/// Words the fuzzer builds lines from: every keyword and option plus values of each shape, so
/// that generated lines get deep into the directive parsers.
const VOCABULARY: &[&str] = &[
    "server",
    "pool",
    "peer",
    "refclock",
    "local",
    "shm",
    "fudge",
    "restrict",
    "unrestrict",
    "driftfile",
    "statsdir",
    "statistics",
    "filegen",
    "tos",
    "tinker",
    "enable",
    "disable",
    "logfile",
    "logconfig",
    "leapfile",
    "pidfile",
    "keys",
    "trustedkey",
    "controlkey",
    "requestkey",
    "interface",
    "nic",
    "discard",
    "limit",
    "mru",
    "setvar",
    "nonvolatile",
    "broadcast",
    "-4",
    "-6",
    "default",
    "source",
    "mask",
    "iburst",
    "minpoll",
    "maxpoll",
    "version",
    "key",
    "mode",
    "ttl",
    "bias",
    "port",
    "unit",
    "stratum",
    "refid",
    "time1",
    "flag1",
    "ntpport",
    "ippeerlimit",
    "serverresponse",
    "fuzz",
    "nomodify",
    "kod",
    "orphan",
    "basedate",
    "panic",
    "step",
    "freq",
    "average",
    "burst",
    "maxdepth",
    "listen",
    "all",
    "file",
    "type",
    "day",
    "auth",
    "=",
    "\"",
    "(",
    ")",
    "...",
    "(1",
    "5)",
    "0",
    "1",
    "-1",
    "17",
    "99999999999999999999",
    "1e308",
    "-0.5",
    "nan",
    "inf",
    "127.127.1.0",
    "127.127.20.3",
    "10.0.0.0/8",
    "::1",
    "[::1]",
    "[fe80::1]%eth0",
    "fe80::1%",
    "1.2.3.4.5",
    "a.example",
    "255.0.0.0",
    "2024-02-30",
    "#",
    "é",
    "\t",
    "x=y",
];

#[test]
fn arbitrary_text_never_panics() {
    let checked = property::run("\\PC*", |text| {
        let (_, findings) = parse_str(&text, Path::new("/nonexistent-sundial/ntp.conf"));
        let lines = u32::try_from(text.lines().count()).unwrap();
        prop_assert!(findings.iter().all(|f| f.location.line <= lines.max(1)));
        Ok(())
    });
    assert_eq!(checked, property::CASES);
}

#[test]
fn keyword_soup_never_panics_and_errors_carry_positions() {
    let strategy = prop::collection::vec(
        prop::collection::vec(prop::sample::select(VOCABULARY), 0..9),
        0..12,
    );
    let with_findings = property::Checked::default();
    let checked = property::run(strategy, |lines| {
        let text: Vec<String> = lines.iter().map(|words| words.join(" ")).collect();
        let (_, findings) = parse_str(&text.join("\n"), Path::new("/nonexistent-sundial/ntp.conf"));
        if !findings.is_empty() {
            with_findings.hit();
        }
        for finding in &findings {
            prop_assert!(finding.location.line >= 1 && finding.location.column >= 1);
            prop_assert!(!finding.message.is_empty());
        }
        Ok(())
    });
    assert_eq!(checked, property::CASES);
    // Most soups are wrong somewhere; the positions rule must have been checked on them.
    assert!(
        with_findings.count() >= property::CASES / 2,
        "only {} inputs had findings",
        with_findings.count()
    );
}
