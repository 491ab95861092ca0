//! How single values are written in a variable list: milliseconds with a fixed number of
//! decimals, timestamps in hex, reference ids, and leap-file dates.
//!
//! Every formatter here is total and bounded: non-finite numbers print as zero and magnitudes
//! are clamped, so a bogus value in the snapshot can never make an item too long to send.

use core::fmt;

use crate::packet::ReferenceId;
use crate::time::{NtpTimestamp, UnixTime};

use super::varlist::SafeText;

/// Largest magnitude printed, in the printed unit (1e12 ms is about 31 years).
const MAX_PRINTED: f64 = 1e12;

/// A time in seconds, printed in milliseconds with `decimals` decimals (`%.3f`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ms {
    pub(crate) seconds: f64,
    pub(crate) decimals: usize,
}

impl Ms {
    /// ntpd's `%.3f` milliseconds (classic ntpq's three-decimal columns).
    pub(crate) const fn three(seconds: f64) -> Self {
        Self {
            seconds,
            decimals: 3,
        }
    }

    /// NTPsec's `%.6f` milliseconds, for the system offset and jitters.
    pub(crate) const fn six(seconds: f64) -> Self {
        Self {
            seconds,
            decimals: 6,
        }
    }
}

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.*}", self.decimals, bounded(self.seconds * 1e3))
    }
}

/// A plain number (PPM) with six decimals, bounded like [`Ms`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fixed6(pub(crate) f64);

impl fmt::Display for Fixed6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", bounded(self.0))
    }
}

/// Eight filter values in milliseconds, each as `" %.2f"` (ntpd's `ctl_putarray`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MsArray(pub(crate) [f64; 8]);

impl fmt::Display for MsArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for seconds in self.0 {
            write!(f, " {:.2}", bounded(seconds * 1e3))?;
        }
        Ok(())
    }
}

/// Zero for NaN, otherwise clamped to ±[`MAX_PRINTED`].
fn bounded(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-MAX_PRINTED, MAX_PRINTED)
    }
}

/// A timestamp as ntpd sends it: `0xSSSSSSSS.FFFFFFFF`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hex(pub(crate) NtpTimestamp);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}.{:08x}", self.0.seconds(), self.0.fraction())
    }
}

/// A reference id as ntpd sends it: a dotted quad when it stands for an address (strata
/// 2–15 of a network source), otherwise its text, bare (`INIT`, not `.INIT.`; ntpq adds the
/// dots). `as_text` forces text (reference clocks, whose refid names the clock type).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refid {
    pub(crate) refid: ReferenceId,
    pub(crate) stratum: u8,
    pub(crate) as_text: bool,
}

impl fmt::Display for Refid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Stratum 1 selects the text form of `display_for_stratum`.
        let stratum = if self.as_text { 1 } else { self.stratum };
        let text = self.refid.display_for_stratum(stratum);
        // A refid is four octets another server chose: keep it from forging separators.
        write!(f, "{}", SafeText(&text))
    }
}

/// The Unix time 2036-02-07T06:28:16Z, the first NTP era boundary: the pivot for dates of
/// leap-second files, which resolves them to 1968–2104.
const DATE_PIVOT: UnixTime = UnixTime::new(2_085_978_496, 0);

/// A leap-file date as NTPsec sends it, quoted: `"2017-01-01T00:00Z"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeapDate(pub(crate) NtpTimestamp);

impl fmt::Display for LeapDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unix = self.0.to_unix(DATE_PIVOT).secs();
        let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
        let seconds_of_day = unix.rem_euclid(86_400);
        write!(
            f,
            "\"{year:04}-{month:02}-{day:02}T{:02}:{:02}Z\"",
            seconds_of_day / 3600,
            seconds_of_day % 3600 / 60
        )
    }
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), by the era/day-of-era
/// method: 400-year eras of 146 097 days, years starting on 1 March so the leap day is last.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097); // 0 ..= 146096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0 = March … 11 = February
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_print_like_printf() {
        assert_eq!(Ms::three(0.0012346).to_string(), "1.235");
        assert_eq!(Ms::three(-0.0001236).to_string(), "-0.124");
        assert_eq!(Ms::six(0.0000123456).to_string(), "0.012346");
        assert_eq!(Ms::three(f64::NAN).to_string(), "0.000");
        assert_eq!(Ms::three(f64::INFINITY).to_string(), "1000000000000.000");
        assert_eq!(
            MsArray([0.00005, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 16.0]).to_string(),
            " 0.05 0.00 0.00 0.00 0.00 0.00 0.00 16000.00"
        );
    }

    #[test]
    fn refids_follow_the_stratum_rule() {
        let show = |refid, stratum, as_text| {
            Refid {
                refid,
                stratum,
                as_text,
            }
            .to_string()
        };
        assert_eq!(show(ReferenceId::LOOPBACK, 8, false), "127.0.0.1");
        assert_eq!(show(ReferenceId::INIT, 16, false), "INIT");
        assert_eq!(show(ReferenceId::LOCL, 10, true), "LOCL");
        assert_eq!(show(ReferenceId::from_bytes(*b"A,B="), 1, false), "A.B.");
    }

    #[test]
    fn timestamps_and_dates_print_like_ntpsec() {
        let t = NtpTimestamp::from_parts(0xeeb3_8f2d, 0x849c_d400);
        assert_eq!(Hex(t).to_string(), "0xeeb38f2d.849cd400");
        // 2017-01-01T00:00Z is NTP second 3 692 217 600.
        let leap = NtpTimestamp::from_parts(3_692_217_600, 0);
        assert_eq!(LeapDate(leap).to_string(), "\"2017-01-01T00:00Z\"");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
