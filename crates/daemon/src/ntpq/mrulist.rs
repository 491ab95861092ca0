//! `ntpq -c mrulist`: who is using the server. Asks for a nonce, then pages through the
//! server's client table with READ_MRU (NTPsec's protocol, `docs/mode6.adoc`), and prints
//! NTPsec's table, most recent first:
//!
//! ```text
//!  lstint avgint rstr r m v  count    score   drop rport remote address
//! ==================================================================
//!       0      0    0 . 6 2      1        -      0 50000 127.0.0.1
//! ```
//!
//! Parameters (`mincount=N`, `laddr=ADDR`, `resall=0xN`, `resany=0xN`, `maxlstint=N`,
//! `minlstint=N`, `mindrop=N`, `recent=N`, `kod`, `limited`, `sort=[-]lstint|avgint|addr|count|drop`)
//! are passed to the server, except `sort`, which orders the table here.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use sundial_proto::control::{Opcode, parse_varlist};
use sundial_proto::time::NtpTimestamp;

use super::session::{QueryError, Session};

/// Most pages fetched before giving up (each page at least one new entry).
const MAX_PAGES: usize = 4096;

/// Datagrams asked for per page (ntpq's MAXFRAGS; sundial's server sends at most 16).
const FRAGS: usize = 32;

/// NTPsec's `RES_KOD` and `RES_LIMITED` bits (`rs.N`, `resany=`).
const RES_KOD: u16 = 0x0400;
const RES_LIMITED: u16 = 0x0020;

/// Longest request data (one fragment).
const MAX_REQUEST: usize = 468;

/// The header NTPsec's ntpq prints.
pub(crate) const HEADER: &str =
    " lstint avgint rstr r m v  count    score   drop rport remote address";

/// A bad `mrulist` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MruArgError(String);

impl fmt::Display for MruArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Most recent first (the default, `lstint`), or oldest first (`-lstint`).
    #[default]
    Lstint,
    /// See [`Sort::Lstint`].
    LstintDescending,
    /// Shortest average interval first, and the reverse.
    Avgint,
    /// See [`Sort::Avgint`].
    AvgintDescending,
    /// By address.
    Addr,
    /// By address, reversed.
    AddrDescending,
    /// Fewest packets first (`count`), and the reverse (`-count`).
    Count,
    /// See [`Sort::Count`].
    CountDescending,
    /// Fewest drops first (`drop`), and the reverse (`-drop`).
    Drop,
    /// See [`Sort::Drop`].
    DropDescending,
}

/// The parsed arguments of `mrulist`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MruArgs {
    /// Parameters sent to the server, `name=value`.
    pub params: Vec<(String, String)>,
    /// Client-side order.
    pub sort: Sort,
}

impl MruArgs {
    /// Parses `mincount=2 sort=-count …`.
    pub fn parse(args: &[&str]) -> Result<Self, MruArgError> {
        let mut out = Self::default();
        let mut resany: u16 = 0;
        for arg in args {
            let (name, value) = arg.split_once('=').unwrap_or((arg, ""));
            match name {
                "kod" => resany |= RES_KOD,
                "limited" => resany |= RES_LIMITED,
                "sort" => {
                    out.sort = match value {
                        "lstint" => Sort::Lstint,
                        "-lstint" => Sort::LstintDescending,
                        "avgint" => Sort::Avgint,
                        "-avgint" => Sort::AvgintDescending,
                        "addr" => Sort::Addr,
                        "-addr" => Sort::AddrDescending,
                        "count" => Sort::Count,
                        "-count" => Sort::CountDescending,
                        "drop" => Sort::Drop,
                        "-drop" => Sort::DropDescending,
                        other => return Err(MruArgError(format!("Invalid sort type: {other}"))),
                    };
                }
                "resany" => resany |= parse_bits(value)?,
                "mincount" | "mindrop" | "maxlstint" | "minlstint" | "recent" => {
                    value
                        .parse::<u32>()
                        .map_err(|_| MruArgError(format!("Invalid value for {name}: {value}")))?;
                    out.params.push((name.to_owned(), value.to_owned()));
                }
                "resall" => {
                    let bits = parse_bits(value)?;
                    out.params.push((name.to_owned(), format!("{bits:#x}")));
                }
                "laddr" => {
                    if value.is_empty() || value.contains([',', '=', ' ']) {
                        return Err(MruArgError(format!("Invalid laddr: {value}")));
                    }
                    out.params.push((name.to_owned(), value.to_owned()));
                }
                other => return Err(MruArgError(format!("Unknown parameter: {other}"))),
            }
        }
        if resany != 0 {
            out.params
                .push(("resany".to_owned(), format!("{resany:#x}")));
        }
        Ok(out)
    }
}

fn parse_bits(value: &str) -> Result<u16, MruArgError> {
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed.map_err(|_| MruArgError(format!("Invalid restrict bits: {value}")))
}

/// One client as the server reported it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MruEntry {
    /// Address and port.
    pub addr: SocketAddr,
    /// Last and first datagram.
    pub last: NtpTimestamp,
    /// See `last`.
    pub first: NtpTimestamp,
    /// Datagrams.
    pub count: u64,
    /// Mode and version octet.
    pub mode_version: u8,
    /// NTPsec restrict bits.
    pub restrict: u16,
    /// Drops, if the server counts them.
    pub drops: Option<u64>,
}

impl MruEntry {
    fn average_interval(&self) -> f64 {
        if self.count <= 1 {
            0.0
        } else {
            (self.last - self.first).to_seconds_f64() / (self.count - 1) as f64
        }
    }
}

/// The complete list and the server's time at the end of the fetch.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct MruList {
    /// One entry per address, the newest copy.
    pub entries: Vec<MruEntry>,
    /// The server's `now`.
    pub now: Option<NtpTimestamp>,
}

/// Fetches the whole list.
pub(crate) fn fetch(session: &mut Session, args: &MruArgs) -> Result<MruList, QueryError> {
    let mut nonce = request_nonce(session)?;
    let mut by_addr: HashMap<SocketAddr, MruEntry> = HashMap::new();
    // The newest entries received, newest last (for the resume point).
    let mut received: Vec<(SocketAddr, NtpTimestamp)> = Vec::new();
    for page in 0..MAX_PAGES {
        let mut data = format!("{nonce}, frags={FRAGS}");
        // `recent` only on the first request, as NTPsec's ntpq does.
        for (name, value) in &args.params {
            if name != "recent" || page == 0 {
                data.push_str(&format!(", {name}={value}"));
            }
        }
        for (i, (addr, last)) in received.iter().rev().take(16).enumerate() {
            let pair = format!(
                ", addr.{i}={addr}, last.{i}=0x{:08x}.{:08x}",
                last.seconds(),
                last.fraction()
            );
            if data.len() + pair.len() >= MAX_REQUEST {
                break;
            }
            data.push_str(&pair);
        }
        let response = session.query(Opcode::ReadMru, 0, data.as_bytes())?;
        let page = parse_page(&response.data);
        if let Some(next) = page.nonce {
            nonce = format!("nonce={next}");
        } else {
            nonce = request_nonce(session)?;
        }
        for entry in page.entries {
            received.push((entry.addr, entry.last));
            let keep = by_addr
                .get(&entry.addr)
                .is_none_or(|old| (entry.last - old.last).to_seconds_f64() >= 0.0);
            if keep {
                by_addr.insert(entry.addr, entry);
            }
        }
        if page.now.is_some() {
            let mut entries: Vec<MruEntry> = by_addr.into_values().collect();
            sort(&mut entries, args.sort, page.now);
            return Ok(MruList {
                entries,
                now: page.now,
            });
        }
    }
    Err(QueryError::Incomplete)
}

fn request_nonce(session: &mut Session) -> Result<String, QueryError> {
    let response = session.query(Opcode::RequestNonce, 0, b"")?;
    let vars = parse_varlist(&response.data);
    vars.into_iter()
        .find(|(name, _)| name == "nonce")
        .map(|(_, value)| format!("nonce={value}"))
        .ok_or(QueryError::Incomplete)
}

/// What one READ_MRU response holds.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) nonce: Option<String>,
    pub(crate) entries: Vec<MruEntry>,
    pub(crate) now: Option<NtpTimestamp>,
}

/// Reads one response; entries with a missing or malformed `addr`, `last`, `first` or `ct`
/// are skipped, unknown tags ignored (the protocol allows noise tags).
pub(crate) fn parse_page(data: &[u8]) -> Page {
    let mut page = Page::default();
    let mut fields: Vec<HashMap<String, String>> = Vec::new();
    for (name, value) in parse_varlist(data) {
        match name.as_str() {
            "nonce" => page.nonce = Some(value),
            "now" => page.now = parse_timestamp(&value),
            _ => {
                let Some((stem, index)) = name.split_once('.') else {
                    continue;
                };
                let Ok(index) = index.parse::<usize>() else {
                    continue;
                };
                if index >= 4096 {
                    continue;
                }
                if fields.len() <= index {
                    fields.resize_with(index + 1, HashMap::new);
                }
                if let Some(slot) = fields.get_mut(index) {
                    slot.insert(stem.to_owned(), value);
                }
            }
        }
    }
    page.entries = fields.iter().filter_map(entry_of).collect();
    page
}

fn entry_of(f: &HashMap<String, String>) -> Option<MruEntry> {
    let int = |name: &str| -> Option<u64> {
        let v = f.get(name)?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    };
    Some(MruEntry {
        addr: f.get("addr")?.parse().ok()?,
        last: parse_timestamp(f.get("last")?)?,
        first: parse_timestamp(f.get("first")?)?,
        count: int("ct")?,
        mode_version: u8::try_from(int("mv").unwrap_or(0) & 0xff).unwrap_or(0),
        restrict: u16::try_from(int("rs").unwrap_or(0) & 0xffff).unwrap_or(0),
        drops: int("dr"),
    })
}

fn parse_timestamp(text: &str) -> Option<NtpTimestamp> {
    let (seconds, fraction) = text.strip_prefix("0x")?.split_once('.')?;
    Some(NtpTimestamp::from_parts(
        u32::from_str_radix(seconds, 16).ok()?,
        u32::from_str_radix(fraction, 16).ok()?,
    ))
}

fn sort(entries: &mut [MruEntry], sort: Sort, now: Option<NtpTimestamp>) {
    let now = now.unwrap_or_default();
    let age = |e: &MruEntry| (now - e.last).to_seconds_f64();
    let by = |a: f64, b: f64| a.total_cmp(&b);
    match sort {
        Sort::Lstint => entries.sort_by(|a, b| by(age(a), age(b))),
        Sort::LstintDescending => entries.sort_by(|a, b| by(age(b), age(a))),
        Sort::Avgint => entries.sort_by(|a, b| by(a.average_interval(), b.average_interval())),
        Sort::AvgintDescending => {
            entries.sort_by(|a, b| by(b.average_interval(), a.average_interval()));
        }
        Sort::Addr => entries.sort_by_key(|e| e.addr),
        Sort::AddrDescending => entries.sort_by_key(|e| std::cmp::Reverse(e.addr)),
        Sort::Count => entries.sort_by_key(|e| e.count),
        Sort::CountDescending => entries.sort_by_key(|e| std::cmp::Reverse(e.count)),
        Sort::Drop => entries.sort_by_key(|e| e.drops),
        Sort::DropDescending => entries.sort_by_key(|e| std::cmp::Reverse(e.drops)),
    }
}

/// One row of NTPsec's table; `name` is the remote column.
pub(crate) fn render_row(entry: &MruEntry, now: NtpTimestamp, name: &str) -> String {
    let lstint = ((now - entry.last).to_seconds_f64() + 0.5).floor() as i64;
    let average = entry.average_interval();
    let avgint = if entry.count <= 1 || average > 5.0 {
        format!("{:6}", (average + 0.5).floor() as i64)
    } else if average >= 1.0 {
        format!("{average:6.2}")
    } else {
        format!("{average:6.3}")
    };
    let code = if entry.restrict & RES_KOD != 0 {
        'K'
    } else if entry.restrict & RES_LIMITED != 0 {
        'L'
    } else {
        '.'
    };
    let drops = entry
        .drops
        .map_or_else(|| "-".to_owned(), |d| format!("{d:4}"));
    format!(
        "{lstint:7} {avgint} {:4x} {code} {} {} {:6} {:>8} {drops:>6} {:5} {name}",
        entry.restrict,
        entry.mode_version & 7,
        (entry.mode_version >> 3) & 7,
        entry.count,
        "-",
        entry.addr.port(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_parses_into_entries_and_the_end_marker() {
        let data = b"nonce=a00000100112233445566778, addr.0=192.0.2.1:123, \
            last.0=0xec000010.00000000, first.0=0xec000000.00000000, ct.0=3, mv.0=35, \
            rs.0=0x420, dr.0=1, addr.1=[2001:db8::1]:40000, last.1=0xec000011.80000000, \
            first.1=0xec000011.80000000, ct.1=1, mv.1=36, rs.1=0x0, xyz=noise, \
            now=0xec000012.00000000, last.newest=0xec000011.80000000\r\n";
        let page = parse_page(data);
        assert_eq!(page.nonce.as_deref(), Some("a00000100112233445566778"));
        assert_eq!(page.now, Some(NtpTimestamp::from_parts(0xec00_0012, 0)));
        assert_eq!(page.entries.len(), 2);
        let now = page.now.unwrap();
        assert_eq!(
            render_row(&page.entries[0], now, "192.0.2.1"),
            "      2      8  420 K 3 4      3        -      1   123 192.0.2.1"
        );
        assert_eq!(
            render_row(&page.entries[1], now, "2001:db8::1"),
            "      1      0    0 . 4 4      1        -      - 40000 2001:db8::1"
        );
    }

    #[test]
    fn arguments_become_parameters_and_a_sort() {
        let args =
            MruArgs::parse(&["mincount=2", "kod", "sort=-count", "laddr=192.0.2.1"]).unwrap();
        assert_eq!(args.sort, Sort::CountDescending);
        assert_eq!(
            args.params,
            [
                ("mincount".to_owned(), "2".to_owned()),
                ("laddr".to_owned(), "192.0.2.1".to_owned()),
                ("resany".to_owned(), "0x400".to_owned()),
            ]
        );
        assert!(MruArgs::parse(&["bogus=1"]).is_err());
        assert!(MruArgs::parse(&["sort=nothing"]).is_err());
        assert!(MruArgs::parse(&["mincount=x"]).is_err());
    }

    #[test]
    fn garbage_pages_yield_no_entries() {
        for data in [
            &b""[..],
            b"addr.0=nonsense, last.0=0x1.2",
            b"ct.99999999999=1",
            b"=,=,",
        ] {
            assert!(parse_page(data).entries.is_empty());
        }
    }
}
