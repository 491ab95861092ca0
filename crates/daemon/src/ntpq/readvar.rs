//! Classic ntpq's output of `readvar`/`rv`, `clockvar`/`cv` and `associations`/`as`.
//!
//! `rv` prints a status line (`associd=0 status=0615 leap_none, sync_ntp, 1 event,
//! clock_sync,`) unless specific variables were asked for, then the variables, ", "-separated
//! and wrapped before 72 columns. Values are shown as the server sent them, except the ones
//! classic ntpq "cooks": `leap` in two binary digits, a peer's `reach` in octal, timestamps with
//! a date, `flash` with the names of the failed tests.

use sundial_proto::control::{ClockStatus, PeerStatus, SystemStatus, peer_event_name};
use sundial_proto::time::UnixTime;

use super::values::{parse_timestamp, parse_uint, pretty_date};

/// Classic ntpq's `MAXOUTLINE`: items wrap before a line would exceed this.
const MAX_LINE: usize = 72;

/// The header of `ntpq -c as`, with its leading empty line.
pub(crate) const ASSOCIATIONS_HEADER: &str = "\nind assid status  conf reach auth condition  last_event cnt\n\
===========================================================\n";

/// Names of the `flash` bits (packet and peer tests), lowest bit first.
const FLASH_NAMES: [&str; 13] = [
    "pkt_dup",
    "pkt_bogus",
    "pkt_unsync",
    "pkt_denied",
    "pkt_auth",
    "pkt_stratum",
    "pkt_header",
    "pkt_autokey",
    "pkt_crypto",
    "peer_stratum",
    "peer_dist",
    "peer_loop",
    "peer_unreach",
];

/// Whose variables a status word and list belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    /// Association 0: the system.
    System,
    /// A peer association.
    Peer(u16),
    /// A reference clock (READCLOCK of this association; 0 = the daemon's choice).
    Clock(u16),
}

/// The output of `rv`/`cv`: the status line unless `names_given`, then the cooked variables.
pub(crate) fn render_variables(
    subject: Subject,
    status: u16,
    vars: &[(String, String)],
    names_given: bool,
    now: UnixTime,
) -> String {
    let mut out = String::new();
    if !names_given {
        let (association, decode) = match subject {
            Subject::System => (0, SystemStatus::from_word(status).describe()),
            Subject::Peer(id) => (id, PeerStatus::from_word(status).describe()),
            Subject::Clock(id) => (id, ClockStatus::from_word(status).describe()),
        };
        out.push_str(&format!(
            "associd={association} status={status:04x} {decode},\n"
        ));
    }
    let mut line_len = 0;
    for (index, (name, value)) in vars.iter().enumerate() {
        let item = format!("{name}={}", cook(subject, name, value, now));
        if index > 0 {
            if line_len + item.len() + 2 > MAX_LINE {
                out.push_str(",\n");
                line_len = 0;
            } else {
                out.push_str(", ");
                line_len += 2;
            }
        }
        out.push_str(&item);
        line_len += item.len();
    }
    if !vars.is_empty() {
        out.push('\n');
    }
    out
}

/// A value as classic ntpq displays it.
fn cook(subject: Subject, name: &str, value: &str, now: UnixTime) -> String {
    let cooked = match name {
        "leap" => parse_uint(value)
            .filter(|l| *l <= 3)
            .map(|l| format!("{l:02b}")),
        "reach" if matches!(subject, Subject::Peer(_)) => {
            parse_uint(value).map(|r| format!("{r:03o}"))
        }
        "flash" => parse_uint(value).map(flash_text),
        "reftime" | "clock" | "rec" | "xmt" | "org" | "leapsec" | "expire" => {
            parse_timestamp(value).map(|t| pretty_date(t, now))
        }
        _ => None,
    };
    cooked.unwrap_or_else(|| value.to_owned())
}

/// `flash=400 peer_dist`, or `flash=00 ok`.
fn flash_text(bits: u64) -> String {
    let mut text = format!("{bits:02x}");
    if bits == 0 {
        text.push_str(" ok");
    }
    for (bit, name) in FLASH_NAMES.iter().enumerate() {
        if bits & (1 << bit) != 0 {
            text.push(' ');
            text.push_str(name);
        }
    }
    text
}

/// The `as` table: one row per association in the given order (ntpq sorts by id).
pub(crate) fn render_associations(list: &[(u16, u16)]) -> String {
    let mut out = ASSOCIATIONS_HEADER.to_owned();
    for (index, (association, status)) in list.iter().enumerate() {
        let s = PeerStatus::from_word(*status);
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let reach = if s.broadcast {
            "none"
        } else {
            yes_no(s.reachable)
        };
        let auth = match (s.auth_enabled, s.authentic) {
            (false, _) => "none",
            (true, true) => "ok ",
            (true, false) => "bad",
        };
        out.push_str(&format!(
            "{:3} {association:5}  {status:04x}   {:>3.3}  {reach:>4}  {auth:>4.4} {:>9.9} {:>11} {:2}\n",
            index + 1,
            yes_no(s.configured),
            s.condition(),
            peer_event_name(s.event_code),
            s.event_count,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// 2026-11-27T06:22:30Z.
    const NOW: UnixTime = UnixTime::new(1_795_760_550, 0);

    #[test]
    fn associations_table_matches_ntpsec_and_the_reference() {
        let table = render_associations(&[(61234, 0x8011), (61235, 0x1614), (17769, 0x8811)]);
        assert_eq!(
            table,
            "
ind assid status  conf reach auth condition  last_event cnt
===========================================================
  1 61234  8011   yes    no  none    reject    mobilize  1
  2 61235  1614    no   yes  none  sys.peer   reachable  1
  3 17769  8811   yes  none  none    reject    mobilize  1
"
        );
    }

    #[test]
    fn system_variables_print_like_classic_rv() {
        let list = vars(&[
            ("leap", "0"),
            ("stratum", "8"),
            ("precision", "-24"),
            ("rootdelay", "0.000"),
            ("rootdisp", "0.000"),
            ("refid", "127.0.0.1"),
            ("reftime", "0x00000000.00000000"),
            ("tc", "0"),
            ("peer", "0"),
            ("clock", "0xeeb3a019.6e7b6029"),
            ("processor", "\"x86_64\""),
            ("version", "\"ntpd ntpsec-1.2.2\""),
        ]);
        let text = render_variables(Subject::System, 0x0016, &list, false, NOW);
        assert_eq!(
            text,
            "associd=0 status=0016 leap_none, sync_unspec, 1 event, restart,
leap=00, stratum=8, precision=-24, rootdelay=0.000, rootdisp=0.000,
refid=127.0.0.1,
reftime=00000000.00000000  Thu, Feb  7 2036  6:28:16.000, tc=0, peer=0,
clock=eeb3a019.6e7b6029  Fri, Nov 27 2026  6:22:17.431,
processor=\"x86_64\", version=\"ntpd ntpsec-1.2.2\"
"
        );
    }

    #[test]
    fn named_variables_skip_the_status_line() {
        let list = vars(&[("leap", "0"), ("stratum", "8")]);
        assert_eq!(
            render_variables(Subject::System, 0x0016, &list, true, NOW),
            "leap=00, stratum=8\n"
        );
    }

    #[test]
    fn peer_variables_cook_reach_and_flash() {
        let list = vars(&[
            ("srcadr", "192.0.2.10"),
            ("reach", "0xff"),
            ("flash", "0x400"),
        ]);
        assert_eq!(
            render_variables(Subject::Peer(61235), 0x1614, &list, false, NOW),
            "associd=61235 status=1614 reach, sel_sys.peer, 1 event, reachable,
srcadr=192.0.2.10, reach=377, flash=400 peer_dist
"
        );
        assert_eq!(flash_text(0), "00 ok");
    }

    #[test]
    fn clock_variables_show_the_clock_status() {
        let list = vars(&[("name", "\"LOCAL\""), ("poll", "1")]);
        assert_eq!(
            render_variables(Subject::Clock(0), 0x0000, &list, false, NOW),
            "associd=0 status=0000 no events, clk_unspec,\nname=\"LOCAL\", poll=1\n"
        );
    }
}
