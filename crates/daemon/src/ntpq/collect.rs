//! `kerninfo`, `iostats` and `ntsinfo`: one READVAR of association 0 naming a fixed list of variables,
//! each printed on its own line after its legend, as NTPsec's ntpq (`collect_display`) prints
//! them. A variable the server does not send is left out; one it does not know (UNKNOWNVAR)
//! shows `???`.

use super::sysstats::{Kind, Vars, packetize, periodize, seconds};

/// How a value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// As sent.
    Plain,
    /// A quoted string, without its quotes; nothing if empty.
    Text,
    /// One of sysstats' kinds (uptime, packet count with rate).
    Stat(Kind),
}

/// The variables of `ntsinfo`, NTPsec's NTS counters in its order and legends, then
/// sundial's refused key exchanges.
pub(crate) const NTSINFO: [(&str, &str, Show); 18] = [
    (
        "nts_client_send",
        "NTS client sends:          ",
        Show::Plain,
    ),
    (
        "nts_client_recv_good",
        "NTS client recvs good:     ",
        Show::Plain,
    ),
    (
        "nts_client_recv_bad",
        "NTS client recvs w error:  ",
        Show::Plain,
    ),
    (
        "nts_server_recv_good",
        "NTS server recvs good:     ",
        Show::Plain,
    ),
    (
        "nts_server_recv_bad",
        "NTS server recvs w error:  ",
        Show::Plain,
    ),
    (
        "nts_server_send",
        "NTS server sends:          ",
        Show::Plain,
    ),
    (
        "nts_cookie_make",
        "NTS make cookies:          ",
        Show::Plain,
    ),
    (
        "nts_cookie_decode",
        "NTS decode cookies:        ",
        Show::Plain,
    ),
    (
        "nts_cookie_decode_old",
        "NTS decode cookies old:    ",
        Show::Plain,
    ),
    (
        "nts_cookie_decode_old2",
        "NTS decode cookies old2:   ",
        Show::Plain,
    ),
    (
        "nts_cookie_decode_older",
        "NTS decode cookies older:  ",
        Show::Plain,
    ),
    (
        "nts_cookie_decode_too_old",
        "NTS decode cookies too old:",
        Show::Plain,
    ),
    (
        "nts_cookie_decode_error",
        "NTS decode cookies error:  ",
        Show::Plain,
    ),
    (
        "nts_ke_probes_good",
        "NTS KE client probes good: ",
        Show::Plain,
    ),
    (
        "nts_ke_probes_bad",
        "NTS KE client probes bad:  ",
        Show::Plain,
    ),
    (
        "nts_ke_serves_good",
        "NTS KE serves good:        ",
        Show::Plain,
    ),
    (
        "nts_ke_serves_bad",
        "NTS KE serves bad:         ",
        Show::Plain,
    ),
    ("nts_ke_refused", "NTS KE refused:            ", Show::Plain),
];

/// The variables of `kerninfo`: (name, legend, how shown).
pub(crate) const KERNINFO: [(&str, &str, Show); 16] = [
    ("koffset", "pll offset:          ", Show::Plain),
    ("kfreq", "pll frequency:       ", Show::Plain),
    ("kmaxerr", "maximum error:       ", Show::Plain),
    ("kesterr", "estimated error:     ", Show::Plain),
    ("kstflags", "kernel status:       ", Show::Text),
    ("ktimeconst", "pll time constant:   ", Show::Plain),
    ("kprecis", "precision:           ", Show::Plain),
    ("kfreqtol", "frequency tolerance: ", Show::Plain),
    ("kppsfreq", "pps frequency:       ", Show::Plain),
    ("kppsstab", "pps stability:       ", Show::Plain),
    ("kppsjitter", "pps jitter:          ", Show::Plain),
    ("kppscalibdur", "calibration interval ", Show::Plain),
    ("kppscalibs", "calibration cycles:  ", Show::Plain),
    ("kppsjitexc", "jitter exceeded:     ", Show::Plain),
    ("kppsstbexc", "stability exceeded:  ", Show::Plain),
    ("kppscaliberrs", "calibration errors:  ", Show::Plain),
];

/// The variables of `iostats`.
pub(crate) const IOSTATS: [(&str, &str, Show); 12] = [
    (
        "iostats_reset",
        "time since reset:     ",
        Show::Stat(Kind::Uptime),
    ),
    ("total_rbuf", "receive buffers:      ", Show::Plain),
    ("free_rbuf", "free receive buffers: ", Show::Plain),
    ("used_rbuf", "used receive buffers: ", Show::Plain),
    ("rbuf_lowater", "low water refills:    ", Show::Plain),
    (
        "io_dropped",
        "dropped packets:      ",
        Show::Stat(Kind::Packets),
    ),
    (
        "io_ignored",
        "ignored packets:      ",
        Show::Stat(Kind::Packets),
    ),
    (
        "io_received",
        "received packets:     ",
        Show::Stat(Kind::Packets),
    ),
    (
        "io_sent",
        "packets sent:         ",
        Show::Stat(Kind::Packets),
    ),
    (
        "io_sendfailed",
        "packet send failures: ",
        Show::Stat(Kind::Packets),
    ),
    ("io_wakeups", "input wakeups:        ", Show::Plain),
    ("io_goodwakeups", "useful input wakeups: ", Show::Plain),
];

/// The names of a table.
pub(crate) fn names(table: &[(&str, &str, Show)]) -> Vec<String> {
    table.iter().map(|(n, _, _)| (*n).to_owned()).collect()
}

/// The lines for the variables of `table` found in `vars`.
pub(crate) fn render(table: &[(&str, &str, Show)], vars: &Vars) -> String {
    let mut out = String::new();
    // Rates are per the period of the preceding uptime line.
    let mut run = None;
    for (name, legend, show) in table {
        let Some(value) = vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
        else {
            continue;
        };
        match show {
            Show::Plain => out.push_str(&format!("{legend:>13} {value:>13}\n")),
            Show::Text => {
                let text = value.trim_matches('"');
                if !text.is_empty() {
                    out.push_str(&format!("{legend:>13} {text:>13}\n"));
                }
            }
            Show::Stat(Kind::Uptime) => {
                run = seconds(value);
                out.push_str(&format!("{legend:<13} {:>13}\n", periodize(value)));
            }
            Show::Stat(Kind::Packets) => {
                let (count, rate, unit) = packetize(value, run);
                out.push_str(&format!("{legend:<13} {count:>13} {rate:>10}{unit:<3}\n"));
            }
            Show::Stat(Kind::Count) => out.push_str(&format!("{legend:<13} {value:>13}\n")),
        }
    }
    out
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
    fn kerninfo_lines_follow_ntpsecs_layout() {
        let out = render(
            &KERNINFO,
            &vars(&[
                ("koffset", "0.000000"),
                ("kfreq", "-5.123000"),
                ("kstflags", "\"pll nano\""),
                ("ktimeconst", "7"),
            ]),
        );
        assert_eq!(
            out,
            "pll offset:                0.000000\n\
             pll frequency:            -5.123000\n\
             kernel status:             pll nano\n\
             pll time constant:                7\n"
        );
    }

    #[test]
    fn iostats_rates_use_the_reset_period() {
        let out = render(
            &IOSTATS,
            &vars(&[
                ("iostats_reset", "100"),
                ("io_received", "1000"),
                ("io_sent", "10"),
            ]),
        );
        assert_eq!(
            out,
            "time since reset:           00:01:40\n\
             received packets:               1000       10.0p/s\n\
             packets sent:                     10       10.0s/p\n"
        );
    }
}
