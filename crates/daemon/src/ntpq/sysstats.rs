//! `ntpq -c sysstats`: the server's packet counters, laid out as NTPsec's ntpq shows them, and
//! after them sundial's own breakdown of drops by reason when the server has one.
//!
//! Three READVARs of association 0, each naming its variables (the counters are not in the
//! defaults of `rv`): uptime and mode 6 requests; the counters and their `_r` twins (NTPsec
//! keeps one set since the last statistics reset and one since start; sundial sends the same
//! value twice); and `ss_replied`, `ss_dropped`, `ss_dropped_<reason>`, which only sundial's
//! ntpd knows — a server that answers UNKNOWNVAR to them just gets no third block. If a
//! server does not know one of the first two lists, the variables are asked for one at a time
//! and the unknown ones show `???`, as NTPsec's ntpq does.

use sundial_proto::control::dropped_variable;
use sundial_proto::counters::DropReason;

/// A variable list as parsed from a response: (name, raw value).
pub(crate) type Vars = Vec<(String, String)>;

/// What a value of NTPsec's `sysstats` table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Seconds, shown as `[ND ]HH:MM:SS`.
    Uptime,
    /// A plain number.
    Count,
    /// A packet count with its rate over the statistics period.
    Packets,
}

/// The first request: (variable, legend, kind).
pub(crate) const FIRST: [(&str, &str, Kind); 2] = [
    ("ss_uptime", "uptime:               ", Kind::Uptime),
    ("ss_numctlreq", "control requests:     ", Kind::Count),
];

/// The second request, each also asked for with `_r`: (variable, legend, kind).
pub(crate) const SECOND: [(&str, &str, Kind); 15] = [
    ("ss_reset", "sysstats reset:       ", Kind::Uptime),
    ("ss_received", "packets received:     ", Kind::Packets),
    ("ss_thisver", "current version:      ", Kind::Packets),
    ("ss_oldver", "older version:        ", Kind::Packets),
    ("ss_ver1", "NTPv1 total:          ", Kind::Packets),
    ("ss_ver1client", "NTPv1 clients:        ", Kind::Packets),
    ("ss_ver1zero", "NTPv1 mode0:          ", Kind::Packets),
    ("ss_ver1symm", "NTPv1 symm act:       ", Kind::Packets),
    ("ss_badformat", "bad length or format: ", Kind::Packets),
    ("ss_badauth", "authentication failed:", Kind::Packets),
    ("ss_declined", "declined:             ", Kind::Packets),
    ("ss_restricted", "restricted:           ", Kind::Packets),
    ("ss_limited", "rate limited:         ", Kind::Packets),
    ("ss_kodsent", "KoD responses:        ", Kind::Packets),
    ("ss_processed", "processed for time:   ", Kind::Packets),
];

/// Shown for a variable the server does not know.
const UNKNOWN: &str = "???";

/// The names of the first request.
pub(crate) fn first_names() -> Vec<String> {
    FIRST.iter().map(|(n, _, _)| (*n).to_owned()).collect()
}

/// The names of the second request: every counter, then every `_r` twin.
pub(crate) fn second_names() -> Vec<String> {
    let plain = SECOND.iter().map(|(n, _, _)| (*n).to_owned());
    let twins = SECOND.iter().map(|(n, _, _)| format!("{n}_r"));
    plain.chain(twins).collect()
}

/// The names of the third, sundial-only request.
pub(crate) fn sundial_names() -> Vec<String> {
    ["ss_replied".to_owned(), "ss_dropped".to_owned()]
        .into_iter()
        .chain(DropReason::ALL.into_iter().map(dropped_variable))
        .collect()
}

/// The whole output from the three responses (`sundial` is `None` when the server does not
/// have sundial's variables).
pub(crate) fn render(first: &Vars, second: &Vars, sundial: Option<&Vars>) -> String {
    let mut out = String::new();
    for (name, legend, kind) in FIRST {
        let Some(value) = lookup(first, name) else {
            continue;
        };
        let shown = match kind {
            Kind::Uptime => periodize(value),
            Kind::Count | Kind::Packets => value.to_owned(),
        };
        out.push_str(&format!("{legend} {shown:>13}\n"));
    }
    // Rates are per the statistics period of each column.
    let mut periods = (None, None);
    for (name, legend, kind) in SECOND {
        let twin = format!("{name}_r");
        let (Some(value), Some(value_r)) = (lookup(second, name), lookup(second, &twin)) else {
            continue;
        };
        match kind {
            Kind::Uptime => {
                periods = (seconds(value), seconds(value_r));
                out.push_str(&format!(
                    "{legend} {:>13} {:>13}\n",
                    periodize(value),
                    periodize(value_r)
                ));
            }
            Kind::Count => out.push_str(&format!("{legend} {value:>13} {value_r:>13}\n")),
            Kind::Packets => {
                let (count, rate, unit) = packetize(value, periods.0);
                let (count_r, rate_r, unit_r) = packetize(value_r, periods.1);
                out.push_str(&format!(
                    "{legend} {count:>13} {count_r:>13} {rate:>10}{unit:<3} {rate_r:>10}{unit_r:<3}\n"
                ));
            }
        }
    }
    if let Some(vars) = sundial {
        let count = |name: &str| lookup(vars, name).unwrap_or(UNKNOWN).to_owned();
        out.push_str(&format!(
            "{:<22} {:>13}\n",
            "replies sent:",
            count("ss_replied")
        ));
        out.push_str(&format!("{:<22} {:>13}\n", "dropped:", count("ss_dropped")));
        for reason in DropReason::ALL {
            let legend = format!("  {}:", reason.name());
            let value = count(&dropped_variable(reason));
            out.push_str(&format!("{legend:<22} {value:>13}\n"));
        }
    }
    out
}

/// The value of `name` in `vars`.
fn lookup<'v>(vars: &'v Vars, name: &str) -> Option<&'v str> {
    vars.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A whole number of seconds (or packets), if `value` is one.
pub(crate) fn seconds(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

/// Seconds as NTPsec's ntpq shows a period: `HH:MM:SS`, with `ND ` in front from a day on;
/// `???` if the value is not a number.
pub(crate) fn periodize(value: &str) -> String {
    let Some(s) = seconds(value) else {
        return UNKNOWN.to_owned();
    };
    let days = if s >= 86_400 {
        format!("{}D ", s / 86_400)
    } else {
        String::new()
    };
    format!(
        "{days}{:02}:{:02}:{:02}",
        s % 86_400 / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// A packet count and its rate over `period` seconds as NTPsec's ntpq shows them: packets per
/// second (`p/s`) when there were more packets than seconds, else seconds per packet (`s/p`),
/// rounded to a whole number; no rate for zero packets or an unknown period. A value that is
/// not a number is shown as it came.
pub(crate) fn packetize(value: &str, period: Option<u64>) -> (String, String, &'static str) {
    let Some(packets) = seconds(value) else {
        return (value.to_owned(), String::new(), "");
    };
    let count = packets.to_string();
    match period {
        Some(period) if packets > 0 && period > 0 => {
            let (ratio, unit) = if packets > period {
                (packets as f64 / period as f64, "p/s")
            } else {
                (period as f64 / packets as f64, "s/p")
            };
            (count, format!("{:.1}", ratio.round_ties_even()), unit)
        }
        _ => (count, String::new(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vars {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn periods_and_rates_read_like_ntpsecs_ntpq() {
        assert_eq!(periodize("3"), "00:00:03");
        assert_eq!(periodize("3725"), "01:02:05");
        assert_eq!(periodize("90061"), "1D 01:01:01");
        assert_eq!(periodize("x"), "???");
        assert_eq!(
            packetize("2", Some(3)),
            ("2".to_owned(), "2.0".to_owned(), "s/p")
        );
        assert_eq!(
            packetize("4", Some(3)),
            ("4".to_owned(), "1.0".to_owned(), "p/s")
        );
        // Python rounds halves to even, as here: 5 s / 2 packets = 2.5 → 2.
        assert_eq!(packetize("2", Some(5)).1, "2.0");
        assert_eq!(packetize("0", Some(5)), ("0".to_owned(), String::new(), ""));
        assert_eq!(packetize("7", None), ("7".to_owned(), String::new(), ""));
        assert_eq!(packetize("???", Some(5)).0, "???");
    }

    /// What NTPsec 1.2.2's ntpq printed for NTPsec's ntpd with these counters (trailing
    /// spaces included).
    const NTPSEC_FIXTURE: &str = "uptime:                     00:00:03\n\
control requests:                  1\n\
sysstats reset:             00:00:03      00:00:03\n\
packets received:                  2             2        2.0s/p        2.0s/p\n\
current version:                   0             0                            \n\
older version:                     0             0                            \n\
NTPv1 total:                       0             0                            \n\
NTPv1 clients:                     0             0                            \n\
NTPv1 mode0:                       0             0                            \n\
NTPv1 symm act:                    0             0                            \n\
bad length or format:              0             0                            \n\
authentication failed:             0             0                            \n\
declined:                          0             0                            \n\
restricted:                        0             0                            \n\
rate limited:                      0             0                            \n\
KoD responses:                     0             0                            \n\
processed for time:                1             1        3.0s/p        3.0s/p\n\
";

    #[test]
    fn the_table_has_ntpsecs_layout() {
        let first = vars(&[("ss_uptime", "3"), ("ss_numctlreq", "1")]);
        let mut second = Vars::new();
        for (n, _, _) in SECOND {
            let v = match n {
                "ss_reset" => "3",
                "ss_received" => "2",
                "ss_processed" => "1",
                _ => "0",
            };
            second.push((n.to_owned(), v.to_owned()));
            second.push((format!("{n}_r"), v.to_owned()));
        }
        assert_eq!(render(&first, &second, None), NTPSEC_FIXTURE);
    }

    #[test]
    fn sundials_block_lists_every_drop_reason() {
        let mut extra = vars(&[("ss_replied", "5"), ("ss_dropped", "2")]);
        for reason in DropReason::ALL {
            let n = u8::from(reason == DropReason::TooShort) * 2;
            extra.push((dropped_variable(reason), n.to_string()));
        }
        let text = render(&Vars::new(), &Vars::new(), Some(&extra));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + DropReason::ALL.len());
        assert_eq!(lines[0], "replies sent:                      5");
        assert_eq!(lines[1], "dropped:                           2");
        assert_eq!(lines[2], "  too-short:                       2");
        assert!(lines.contains(&"  restricted-noserve:              0"));
    }
}
