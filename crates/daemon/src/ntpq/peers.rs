//! The `ntpq -p` billboard in classic ntpq 4.2.8p15's layout, byte for byte: a 78-column
//! header, `%c%-15.15s %-15.15s`, then `" %2ld %c %4.4s %4.4s  %3lo  %7.7s %8.7s %7.7s"` with
//! three-decimal milliseconds and an explicit `+` on non-negative offsets.
//!
//! A row is built from one association's READVAR reply: the tally comes from the peer status
//! word in that reply's header (not from the association list), everything else from its
//! variables (ntpq-mode6.md §2.4).

use std::collections::HashMap;
use std::net::IpAddr;

use sundial_proto::control::{PeerStatus, unquote};

use super::values::{parse_timestamp, parse_uint};

/// The two header lines of classic `ntpq -p`.
pub(crate) const HEADER: &str = "     remote           refid      st t when poll reach   delay   offset  jitter\n\
==============================================================================\n";

/// Width of the remote and refid columns.
const NAME_WIDTH: usize = 15;

/// Stratum shown when the server did not send one (unsynchronised).
const MISSING_STRATUM: u64 = 16;

/// How to render names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Options {
    /// `-n`: addresses as numbers.
    pub(crate) numeric: bool,
    /// `-w`: full remote names, on their own line if longer than 15 characters.
    pub(crate) wide: bool,
}

/// One row of the billboard, decoded (also the JSON form of `peers`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerLine {
    /// The tally character.
    pub(crate) tally: char,
    /// The `remote` column, untruncated.
    pub(crate) remote: String,
    /// The `refid` column as shown (`.POOL.`, `192.0.2.1`).
    pub(crate) refid: String,
    /// Stratum.
    pub(crate) stratum: u64,
    /// The `t` column.
    pub(crate) kind: char,
    /// Seconds since the last packet (or reference time), if known and positive.
    pub(crate) when: Option<i64>,
    /// Poll interval in seconds.
    pub(crate) poll: i64,
    /// The reach register.
    pub(crate) reach: u64,
    /// Delay, offset and jitter in milliseconds.
    pub(crate) delay: f64,
    /// Offset (server − local), milliseconds.
    pub(crate) offset: f64,
    /// Jitter (or dispersion if the server sends no jitter), milliseconds.
    pub(crate) jitter: f64,
}

impl PeerLine {
    /// Decodes one association: `status` from the READVAR header, `vars` its variables,
    /// `now_seconds` the local time's NTP seconds field, `reverse` the reverse DNS lookup.
    pub(crate) fn new(
        status: u16,
        vars: &[(String, String)],
        now_seconds: u32,
        options: Options,
        reverse: &mut dyn FnMut(IpAddr) -> String,
    ) -> Self {
        let map: HashMap<&str, &str> = vars.iter().map(|(n, v)| (n.as_str(), unquote(v))).collect();
        let get = |name: &str| map.get(name).copied();
        let number = |name: &str| get(name).and_then(|v| v.trim().parse::<f64>().ok());
        let srcadr = get("srcadr").and_then(|a| a.parse::<IpAddr>().ok());
        let dstadr = get("dstadr").and_then(|a| a.parse::<IpAddr>().ok());
        let srchost = get("srchost").filter(|h| !h.is_empty());
        let poll_exponent = |name: &str| get(name).and_then(|v| v.parse::<i64>().ok());
        let poll = match (poll_exponent("hpoll"), poll_exponent("ppoll")) {
            (Some(h), Some(p)) => h.min(p),
            (Some(e), None) | (None, Some(e)) => e,
            (None, None) => 0,
        };
        let last = [get("rec"), get("reftime")]
            .into_iter()
            .flatten()
            .filter_map(parse_timestamp)
            .find(|t| !t.is_zero());
        Self {
            tally: PeerStatus::from_word(status).tally_char(),
            remote: remote_name(srcadr, srchost, options.numeric, reverse),
            refid: refid_column(get("refid").unwrap_or_default()),
            stratum: get("stratum")
                .and_then(parse_uint)
                .unwrap_or(MISSING_STRATUM),
            kind: kind_column(get("hmode").and_then(parse_uint), srcadr, dstadr),
            when: last
                .map(|t| seconds_since(now_seconds, t.seconds()))
                .filter(|&d| d > 0),
            poll: 1_i64 << poll.clamp(0, 36),
            reach: get("reach").and_then(parse_uint).unwrap_or(0),
            delay: number("delay").unwrap_or(0.0),
            offset: number("offset").unwrap_or(0.0),
            jitter: number("jitter")
                .or_else(|| number("dispersion"))
                .unwrap_or(0.0),
        }
    }

    /// The row as classic ntpq prints it, with its newline.
    pub(crate) fn render(&self, options: Options) -> String {
        let remote = if options.wide && self.remote.chars().count() > NAME_WIDTH {
            format!("{}{}\n{:17}", self.tally, self.remote, "")
        } else {
            format!("{}{} ", self.tally, column(&self.remote))
        };
        format!(
            "{remote}{} {:2} {} {:>4.4} {:>4.4}  {:3o}  {:>7.7} {:>8.7} {:>7.7}\n",
            column(&self.refid),
            self.stratum,
            self.kind,
            self.when.map_or_else(|| "-".to_owned(), pretty_interval),
            pretty_interval(self.poll),
            self.reach,
            milliseconds(self.delay, false),
            milliseconds(self.offset, true),
            milliseconds(self.jitter, false),
        )
    }
}

/// Seconds from `then` to `now`, both NTP seconds fields: the wrapped difference read as
/// signed, so it is right across an era boundary.
fn seconds_since(now: u32, then: u32) -> i64 {
    i64::from(i32::from_be_bytes(now.wrapping_sub(then).to_be_bytes()))
}

/// `%-15.15s`: truncated to 15 characters, padded to 15.
fn column(text: &str) -> String {
    let truncated: String = text.chars().take(NAME_WIDTH).collect();
    format!("{truncated:<NAME_WIDTH$}")
}

/// Classic `lfptoms(x, 3)`: three decimals; `+` on non-negative offsets (4.2.8p14, bug 3491).
fn milliseconds(ms: f64, signed: bool) -> String {
    let sign = if ms < 0.0 {
        "-"
    } else if signed {
        "+"
    } else {
        ""
    };
    format!("{sign}{:.3}", ms.abs())
}

/// ntpq's `prettyinterval`: seconds up to 2048, then minutes, hours and days.
pub(crate) fn pretty_interval(seconds: i64) -> String {
    if seconds <= 0 {
        return "-".to_owned();
    }
    if seconds <= 2048 {
        return seconds.to_string();
    }
    let minutes = (seconds + 29) / 60;
    if minutes <= 300 {
        return format!("{minutes}m");
    }
    let hours = (minutes + 29) / 60;
    if hours <= 96 {
        return format!("{hours}h");
    }
    format!("{}d", (hours + 11) / 24)
}

/// The `remote` column: the configured name for pool prototypes and (without `-n`) for
/// anything that has one, the number with `-n`, otherwise reverse DNS of the address.
fn remote_name(
    srcadr: Option<IpAddr>,
    srchost: Option<&str>,
    numeric: bool,
    reverse: &mut dyn FnMut(IpAddr) -> String,
) -> String {
    match (srcadr, srchost) {
        (None, Some(host)) => host.to_owned(),
        (Some(addr), Some(host)) if addr.is_unspecified() || !numeric => host.to_owned(),
        (Some(addr), _) if numeric || is_refclock(addr) => addr.to_string(),
        (Some(addr), _) => reverse(addr),
        (None, None) => String::new(),
    }
}

/// Reference clocks have pseudo-addresses 127.127.t.u.
fn is_refclock(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V4(v4) if v4.octets()[..2] == [127, 127])
}

/// Classic ntpq wraps short refids in dots (`INIT` → `.INIT.`); addresses print as they are.
fn refid_column(refid: &str) -> String {
    if refid.len() <= 4 {
        format!(".{refid}.")
    } else {
        refid.to_owned()
    }
}

/// The `t` column from the association mode, as classic ntpq decides it.
fn kind_column(hmode: Option<u64>, srcadr: Option<IpAddr>, dstadr: Option<IpAddr>) -> char {
    let multicast = srcadr.is_some_and(|a| a.is_multicast());
    match hmode {
        Some(3) if srcadr.is_some_and(|a| a.is_unspecified()) => 'p',
        Some(3) if srcadr.is_some_and(is_refclock) => 'l',
        Some(3) if multicast => 'a',
        Some(3) => 'u',
        Some(1) => 's',
        Some(2) => 'S',
        Some(5) if multicast => 'M',
        Some(5) => 'B',
        Some(6) => 'b',
        Some(_) => '-',
        // Without hmode, guess from the local address like classic ntpq.
        None => match dstadr {
            Some(a) if a.is_multicast() => 'm',
            Some(a) if a.is_loopback() => 'l',
            Some(_) => 'u',
            None => '-',
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local NTP time of the examples: 35 s after `rec` of the system peer.
    const NOW: u32 = 0xeeb3_a04b + 35;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn row(status: u16, list: &[(&str, &str)], options: Options) -> String {
        let mut no_dns = |a: IpAddr| format!("dns-of-{a}");
        PeerLine::new(status, &vars(list), NOW, options, &mut no_dns).render(options)
    }

    fn numeric() -> Options {
        Options {
            numeric: true,
            wide: false,
        }
    }

    /// The four rows of ntpq-mode6.md §2.5's classic 4.2.8p15 example, as sundial's daemon
    /// sends them (three decimals, bare refids, srchost for pool and clock).
    fn example_rows(options: Options) -> String {
        let pool = row(
            0x8811,
            &[
                ("srcadr", "0.0.0.0"),
                ("hmode", "3"),
                ("stratum", "16"),
                ("ppoll", "6"),
                ("hpoll", "6"),
                ("refid", "POOL"),
                ("reftime", "0x00000000.00000000"),
                ("rec", "0x00000000.00000000"),
                ("reach", "0x0"),
                ("delay", "0.000"),
                ("offset", "0.000"),
                ("jitter", "0.000"),
                ("srchost", "\"0.ubuntu.pool.ntp.org\""),
            ],
            options,
        );
        let sys_peer = row(
            0x161a,
            &[
                ("srcadr", "192.0.2.10"),
                ("hmode", "3"),
                ("stratum", "2"),
                ("ppoll", "10"),
                ("hpoll", "10"),
                ("refid", "203.0.113.5"),
                ("reftime", "0xeeb3a000.00000000"),
                ("rec", "0xeeb3a04b.4a281b94"),
                ("reach", "0xff"),
                ("delay", "1.235"),
                ("offset", "-0.123"),
                ("jitter", "0.046"),
            ],
            options,
        );
        let candidate = row(
            0x9414,
            &[
                ("srcadr", "198.51.100.20"),
                ("hmode", "3"),
                ("stratum", "1"),
                ("ppoll", "10"),
                ("hpoll", "10"),
                ("refid", "GPS"),
                ("reftime", "0xeeb39000.00000000"),
                ("rec", "0xeeb394b6.00000000"),
                ("reach", "0x7f"),
                ("delay", "25.123"),
                ("offset", "1.988"),
                ("jitter", "0.877"),
            ],
            options,
        );
        let local = row(
            0x8014,
            &[
                ("srcadr", "127.127.1.0"),
                ("hmode", "3"),
                ("stratum", "10"),
                ("ppoll", "6"),
                ("hpoll", "6"),
                ("refid", "LOCL"),
                ("reftime", "0x00000000.00000000"),
                ("rec", "0xeeb3a064.00000000"),
                ("reach", "0x0"),
                ("delay", "0.000"),
                ("offset", "0.000"),
                ("jitter", "0.000"),
                ("srchost", "\"LOCAL(0)\""),
            ],
            options,
        );
        format!("{HEADER}{pool}{sys_peer}{candidate}{local}")
    }

    #[test]
    fn billboard_matches_the_classic_4_2_8p15_example() {
        let expected =
            "     remote           refid      st t when poll reach   delay   offset  jitter
==============================================================================
 0.ubuntu.pool.n .POOL.          16 p    -   64    0    0.000   +0.000   0.000
*192.0.2.10      203.0.113.5      2 u   35 1024  377    1.235   -0.123   0.046
+198.51.100.20   .GPS.            1 u  50m 1024  177   25.123   +1.988   0.877
 127.127.1.0     .LOCL.          10 l   10   64    0    0.000   +0.000   0.000
";
        assert_eq!(example_rows(numeric()), expected);
        assert_eq!(HEADER.lines().map(str::len).collect::<Vec<_>>(), [78, 78]);
    }

    #[test]
    fn local_clock_row_shows_when_and_srchost_without_n() {
        let mut no_dns = |a: IpAddr| format!("dns-of-{a}");
        let list = vars(&[
            ("srcadr", "127.127.1.0"),
            ("hmode", "3"),
            ("stratum", "10"),
            ("hpoll", "6"),
            ("ppoll", "6"),
            ("refid", "LOCL"),
            ("rec", "0xeeb3a064.00000000"),
            ("reach", "0x0"),
            ("srchost", "\"LOCAL(0)\""),
        ]);
        let now = 0xeeb3_a064 + 10;
        let line = PeerLine::new(0x8014, &list, now, numeric(), &mut no_dns);
        assert_eq!(
            line.render(numeric()),
            " 127.127.1.0     .LOCL.          10 l   10   64    0    0.000   +0.000   0.000\n"
        );
        let named = PeerLine::new(0x8014, &list, now, Options::default(), &mut no_dns);
        assert_eq!(
            named.render(Options::default()),
            " LOCAL(0)        .LOCL.          10 l   10   64    0    0.000   +0.000   0.000\n"
        );
    }

    #[test]
    fn names_come_from_reverse_dns_unless_numeric() {
        let text = example_rows(Options::default());
        assert!(text.contains("*dns-of-192.0.2. 203.0.113.5"), "{text}");
        assert!(text.contains(" 0.ubuntu.pool.n .POOL."), "{text}");
    }

    #[test]
    fn wide_names_get_a_line_of_their_own() {
        let mut dns = |_| "a-very-long-host-name.example.org".to_owned();
        let list = vars(&[("srcadr", "192.0.2.10"), ("hmode", "3"), ("refid", "GPS")]);
        let wide = Options {
            numeric: false,
            wide: true,
        };
        let text = PeerLine::new(0x1614, &list, NOW, wide, &mut dns).render(wide);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("*a-very-long-host-name.example.org"));
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("                 .GPS.           16 u")
        );
    }

    #[test]
    fn intervals_and_numbers_degrade_like_classic_ntpq() {
        let shown: Vec<String> = [0, 1024, 2048, 2049, 4096, 65536, 1_000_000]
            .into_iter()
            .map(pretty_interval)
            .collect();
        assert_eq!(shown, ["-", "1024", "2048", "34m", "68m", "18h", "12d"]);
        let list = vars(&[
            ("srcadr", "203.0.113.77"),
            ("hmode", "3"),
            ("stratum", "3"),
            ("refid", "RATE"),
            ("reach", "0x1"),
            ("delay", "123.457"),
            ("offset", "-1234.568"),
            ("jitter", "12345.679"),
        ]);
        let mut dns = |a: IpAddr| a.to_string();
        let text = PeerLine::new(0x1114, &list, NOW, numeric(), &mut dns).render(numeric());
        assert_eq!(
            text,
            "x203.0.113.77    .RATE.           3 u    -    1    1  123.457  -1234.5 12345.6\n"
        );
    }

    #[test]
    fn mode_column_covers_every_association_kind() {
        let v4 = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(kind_column(Some(3), v4("239.1.1.1"), None), 'a');
        assert_eq!(kind_column(Some(1), v4("192.0.2.1"), None), 's');
        assert_eq!(kind_column(Some(2), v4("192.0.2.1"), None), 'S');
        assert_eq!(kind_column(Some(5), v4("239.1.1.1"), None), 'M');
        assert_eq!(kind_column(Some(5), v4("192.0.2.255"), None), 'B');
        assert_eq!(kind_column(Some(6), v4("192.0.2.1"), None), 'b');
        assert_eq!(kind_column(None, None, v4("127.0.0.1")), 'l');
        assert_eq!(kind_column(None, None, None), '-');
    }
}
