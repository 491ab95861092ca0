//! Reading the values of a variable list the way classic ntpq does: C-style unsigned numbers,
//! hex NTP timestamps, and its human-readable date for timestamps.

use sundial_proto::control::civil_from_days;
use sundial_proto::time::{NtpTimestamp, UnixTime, fraction_to_nanos};

/// Abbreviated weekday names, Sunday first.
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Abbreviated month names.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An unsigned number as ntpq's `decodeuint` reads it: `0x…` hex, a leading `0` octal,
/// otherwise decimal.
pub(crate) fn parse_uint(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(text.get(1..)?, 8).ok()
    } else {
        text.parse().ok()
    }
}

/// An NTP timestamp as ntpd sends it, `0xSSSSSSSS.FFFFFFFF` (the `0x` is optional).
pub(crate) fn parse_timestamp(text: &str) -> Option<NtpTimestamp> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let (seconds, fraction) = text.split_once('.')?;
    if seconds.is_empty() || seconds.len() > 8 || fraction.is_empty() || fraction.len() > 8 {
        return None;
    }
    Some(NtpTimestamp::from_parts(
        u32::from_str_radix(seconds, 16).ok()?,
        u32::from_str_radix(fraction, 16).ok()?,
    ))
}

/// Classic ntpq's `prettydate`: `eeb3a019.6e7b6029  Fri, Nov 27 2026  6:22:11.431`. The era
/// is the one closest to `pivot` (now); the date is in UTC (classic ntpq uses local time).
pub(crate) fn pretty_date(timestamp: NtpTimestamp, pivot: UnixTime) -> String {
    let unix = timestamp.to_unix(pivot);
    let days = unix.secs().div_euclid(86_400);
    let second_of_day = unix.secs().rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = WEEKDAYS
        .get(usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or_default();
    let month_name = MONTHS
        .get(usize::try_from(month).unwrap_or(1).saturating_sub(1))
        .copied()
        .unwrap_or_default();
    let millis = fraction_to_nanos(timestamp.fraction()) / 1_000_000;
    format!(
        "{:08x}.{:08x}  {weekday}, {month_name} {day:2} {year:4} {:2}:{:02}:{:02}.{millis:03}",
        timestamp.seconds(),
        timestamp.fraction(),
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_decodeuint() {
        assert_eq!(parse_uint("0xff"), Some(255));
        assert_eq!(parse_uint("0377"), Some(255));
        assert_eq!(parse_uint("377"), Some(377));
        assert_eq!(parse_uint("0"), Some(0));
        assert_eq!(parse_uint("-1"), None);
        assert_eq!(parse_uint("0x"), None);
    }

    #[test]
    fn timestamps_parse_with_or_without_prefix() {
        let t = NtpTimestamp::from_parts(0xeeb3_a019, 0x6e7b_6029);
        assert_eq!(parse_timestamp("0xeeb3a019.6e7b6029"), Some(t));
        assert_eq!(parse_timestamp("eeb3a019.6e7b6029"), Some(t));
        assert_eq!(parse_timestamp("0x123456789.0"), None);
        assert_eq!(parse_timestamp("12"), None);
    }

    #[test]
    fn dates_print_like_prettydate() {
        let now = UnixTime::new(1_795_760_000, 0);
        let t = NtpTimestamp::from_parts(0xeeb3_a019, 0x6e7b_6029);
        assert_eq!(
            pretty_date(t, now),
            "eeb3a019.6e7b6029  Fri, Nov 27 2026  6:22:17.431"
        );
        // Zero resolves to the next era's start, as in both ntpqs.
        assert_eq!(
            pretty_date(NtpTimestamp::ZERO, now),
            "00000000.00000000  Thu, Feb  7 2036  6:28:16.000"
        );
    }
}
