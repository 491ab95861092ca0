//! What ntpdate prints, byte for byte as classic ntpdate 4.2.8p15 (ntpdate.md §2.5), and where
//! it goes.
//!
//! Two kinds of output:
//! * **log lines** (`27 Nov 05:06:58 ntpdate[1234]: adjust time server …`): the local time and
//!   the process id in front, errors to standard error and everything else to standard output —
//!   or all of them to syslog with `-s`;
//! * **plain lines** (the `-q` per-server lines and the `-d` dump): standard output, no prefix.

use std::io::{self, Write};
use std::net::IpAddr;

use sundial_proto::time::{Log2Seconds, NtpDuration};
use sundial_sys::syslog::{self, Facility, Priority};

/// Month names of the log-line prefix: classic ntpdate's own table, not the locale's.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Decimals of an offset (classic `lfptoa(offset, 6)`).
const OFFSET_DECIMALS: u32 = 6;

/// Decimals of a delay (classic `fptoa(delay, 5)`).
const DELAY_DECIMALS: u32 = 5;

/// The severity of a log line: errors and warnings go to standard error, the rest to standard
/// output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Failures (`no server suitable …`, `the NTP socket is in use …`, rate-limit responses).
    Error,
    /// Problems that do not stop the run (a keys file readable by everyone).
    Warning,
    /// The result (`adjust time server …`, `step time server …`) and the version line.
    Notice,
}

/// The prefix of a log line: `"%2d %s %02d:%02d:%02d ntpdate[%d]: "` with the local time
/// (classic `humanlogtime()`); `local` is `(year, month 1–12, day, hour, minute, second)`.
pub fn log_prefix(local: Option<(i32, u8, u8, u8, u8, u8)>, pid: u32) -> String {
    let Some((_, month, day, hour, minute, second)) = local else {
        // The C library could not convert the clock; the process id still identifies the run.
        return format!("ntpdate[{pid}]: ");
    };
    let name = MONTHS
        .get(usize::from(month).wrapping_sub(1))
        .copied()
        .unwrap_or("???");
    format!("{day:2} {name} {hour:02}:{minute:02}:{second:02} ntpdate[{pid}]: ")
}

/// The prefix for a line logged now, in the local time zone.
pub fn log_prefix_now() -> String {
    let now = crate::clock::kernel_now();
    log_prefix(
        sundial_sys::clock::local_time(now.secs()),
        std::process::id(),
    )
}

/// An offset as classic ntpdate prints it: six decimals, a sign always (`+0.000123`,
/// `-3.123456`; ntp.org 4.2.8p14+ prints the `+`, Bug 3491).
pub fn format_offset(offset: NtpDuration) -> String {
    fixed_point(offset, OFFSET_DECIMALS, true)
}

/// A delay as classic ntpdate prints it: five decimals, a sign only when negative (`0.02567`).
pub fn format_delay(delay: NtpDuration) -> String {
    fixed_point(delay, DELAY_DECIMALS, false)
}

/// classic ntpdate's own precision, log2 seconds (`NTPDATE_PRECISION`).
const CLASSIC_PRECISION: i8 = -6;

/// The skew allowance classic ntpdate adds to every round trip, seconds (`NTP_MAXSKW`, an
/// NTP version 2 constant: 0x28f in 16.16 fixed point).
const CLASSIC_SKEW: f64 = 0x28f as f64 / 65536.0;

/// The smallest delay classic ntpdate records, seconds (`NTP_MINDIST`, 0x51f in 16.16).
const CLASSIC_MIN_DELAY: f64 = 0x51f as f64 / 65536.0;

/// A measured round trip as classic ntpdate reports it: padded with its own precision
/// (2⁻⁶ s), the server's precision and a 0.01 s skew allowance, and at least 0.02 s (a round
/// trip that comes out negative is reported as 0). A LAN server thus shows about 0.0256 s —
/// what scripts written against classic ntpdate expect — instead of a few microseconds that
/// print as `0.00000`.
pub fn classic_delay(measured: NtpDuration, server_precision: Log2Seconds) -> NtpDuration {
    let padded = measured.to_seconds_f64()
        + Log2Seconds::new(CLASSIC_PRECISION).as_seconds_f64()
        + server_precision.as_seconds_f64()
        + CLASSIC_SKEW;
    if padded <= 0.0 {
        NtpDuration::ZERO
    } else {
        NtpDuration::from_seconds_f64(padded.max(CLASSIC_MIN_DELAY))
    }
}

/// The `-q` line for one server: `server 192.0.2.1, stratum 2, offset +0.000123, delay 0.02567`.
/// A server that never answered shows stratum 0 and zeros, as in classic ntpdate.
pub fn server_line(addr: IpAddr, stratum: u8, offset: NtpDuration, delay: NtpDuration) -> String {
    format!(
        "server {addr}, stratum {stratum}, offset {}, delay {}",
        format_offset(offset),
        format_delay(delay)
    )
}

/// The result line (logged): `adjust time server 192.0.2.1 offset +0.000123 sec`, with `verb`
/// `adjust` for a slew and `step` for a step.
pub fn result_line(verb: &str, addr: IpAddr, offset: NtpDuration) -> String {
    format!(
        "{verb} time server {addr} offset {} sec",
        format_offset(offset)
    )
}

/// An I/O error as C's `%m` prints it (`Operation not permitted`), without the
/// ` (os error 1)` that Rust appends, so messages read like classic ntpdate's.
pub fn error_text(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if text.ends_with(')') => text.get(..cut).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

/// `d` rounded half away from zero to `decimals` places, from its exact 32.32 bits (no float
/// rounding surprises).
fn fixed_point(d: NtpDuration, decimals: u32, plus: bool) -> String {
    let magnitude = i128::from(d.to_bits()).unsigned_abs();
    let scale = 10u128.pow(decimals);
    let units = (magnitude * scale + (1 << 31)) >> 32;
    let sign = if d.is_negative() {
        "-"
    } else if plus {
        "+"
    } else {
        ""
    };
    let width = decimals as usize;
    format!("{sign}{}.{:0width$}", units / scale, units % scale)
}

/// Where output goes: two writers standing for the terminal (standard output and error), or
/// syslog for log lines with `-s`. Generic so that tests capture exact bytes.
#[derive(Debug)]
pub struct Reporter<O: Write, E: Write> {
    out: O,
    err: E,
    syslog: bool,
    prefix: fn() -> String,
}

impl Reporter<io::Stdout, io::Stderr> {
    /// The terminal, or syslog as `ntpdate[PID]` with facility daemon (classic ntpdate's
    /// `LOG_NTP`) when `to_syslog` is set.
    pub fn terminal(to_syslog: bool) -> Self {
        if to_syslog {
            syslog::open("ntpdate", Facility::Daemon);
        }
        Self::new(io::stdout(), io::stderr(), to_syslog, log_prefix_now)
    }
}

impl<O: Write, E: Write> Reporter<O, E> {
    /// Output to `out` and `err`; `prefix` supplies the log-line prefix (tests pin the time).
    pub fn new(out: O, err: E, syslog: bool, prefix: fn() -> String) -> Self {
        Self {
            out,
            err,
            syslog,
            prefix,
        }
    }

    /// Logs one line. Write errors are ignored: there is nowhere left to report them.
    pub fn log(&mut self, level: Level, message: &str) {
        if self.syslog {
            let priority = match level {
                Level::Error => Priority::Error,
                Level::Warning => Priority::Warning,
                Level::Notice => Priority::Notice,
            };
            syslog::log(priority, message);
            return;
        }
        let prefix = (self.prefix)();
        let sink: &mut dyn Write = match level {
            Level::Error | Level::Warning => &mut self.err,
            Level::Notice => &mut self.out,
        };
        let _ = writeln!(sink, "{prefix}{message}");
        let _ = sink.flush();
    }

    /// Prints one line to standard output as it is (`-q` lines, `-d` dump), also with `-s`.
    pub fn plain(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    /// Flushes standard output (before exiting or blocking).
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// The writers, for tests to inspect.
    pub fn into_parts(self) -> (O, E) {
        (self.out, self.err)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn d(seconds: f64) -> NtpDuration {
        NtpDuration::from_seconds_f64(seconds)
    }

    fn fixed_prefix() -> String {
        log_prefix(Some((2026, 11, 27, 5, 6, 58)), 1234)
    }

    #[test]
    fn prefix_pads_the_day_to_two_columns_and_the_time_with_zeros() {
        assert_eq!(fixed_prefix(), "27 Nov 05:06:58 ntpdate[1234]: ");
        assert_eq!(
            log_prefix(Some((2026, 1, 7, 0, 0, 9)), 7),
            " 7 Jan 00:00:09 ntpdate[7]: "
        );
        assert_eq!(log_prefix(None, 7), "ntpdate[7]: ");
        let now = log_prefix_now();
        assert!(
            now.ends_with(&format!(" ntpdate[{}]: ", std::process::id())),
            "{now}"
        );
    }

    #[test]
    fn query_line_matches_classic_ntpdate() {
        assert_eq!(
            server_line(SERVER, 2, d(0.000123), d(0.025_67)),
            "server 192.0.2.1, stratum 2, offset +0.000123, delay 0.02567"
        );
        assert_eq!(
            server_line(
                "::1".parse().unwrap(),
                0,
                NtpDuration::ZERO,
                NtpDuration::ZERO
            ),
            "server ::1, stratum 0, offset +0.000000, delay 0.00000"
        );
    }

    #[test]
    fn result_lines_match_classic_ntpdate() {
        assert_eq!(
            result_line("adjust", SERVER, d(0.000123)),
            "adjust time server 192.0.2.1 offset +0.000123 sec"
        );
        assert_eq!(
            result_line("step", SERVER, d(-3.123_456)),
            "step time server 192.0.2.1 offset -3.123456 sec"
        );
    }

    #[test]
    fn numbers_round_half_away_from_zero_from_exact_bits() {
        assert_eq!(format_offset(d(1.000_000_6)), "+1.000001");
        assert_eq!(format_offset(d(-1.000_000_6)), "-1.000001");
        assert_eq!(format_offset(d(-0.000_000_1)), "-0.000000");
        assert_eq!(format_offset(d(12_345.5)), "+12345.500000");
        assert_eq!(format_delay(d(0.000_004_9)), "0.00000");
        // A 4 µs LAN round trip to a server of precision 2^-20 reads as classic ntpdate's.
        let lan = classic_delay(d(0.000_004), Log2Seconds::new(-20));
        assert_eq!(format_delay(lan), "0.02562");
        let slow = classic_delay(d(0.1), Log2Seconds::new(-20));
        assert_eq!(format_delay(slow), "0.12562");
        assert_eq!(
            classic_delay(d(-1.0), Log2Seconds::new(-20)),
            NtpDuration::ZERO
        );
        assert_eq!(
            format_delay(classic_delay(d(-0.02), Log2Seconds::new(-20))),
            "0.02000"
        );
        assert_eq!(format_delay(d(0.000_005_1)), "0.00001");
        assert_eq!(format_delay(d(-0.25)), "-0.25000");
        assert_eq!(format_offset(NtpDuration::MIN), "-2147483648.000000");
    }

    #[test]
    fn os_errors_read_like_c_strerror() {
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(error_text(&eperm), "Operation not permitted");
        let custom = io::Error::other("step target out of range");
        assert_eq!(error_text(&custom), "step target out of range");
    }

    #[test]
    fn log_lines_go_to_stdout_or_stderr_by_level_with_the_prefix() {
        let mut r = Reporter::new(Vec::new(), Vec::new(), false, fixed_prefix);
        r.log(Level::Notice, &result_line("adjust", SERVER, d(1.2e-6)));
        r.plain(&server_line(SERVER, 2, d(1.2e-6), d(0.001)));
        r.log(Level::Error, "no server suitable for synchronization found");
        let (out, err) = r.into_parts();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "27 Nov 05:06:58 ntpdate[1234]: adjust time server 192.0.2.1 offset +0.000001 sec\n\
             server 192.0.2.1, stratum 2, offset +0.000001, delay 0.00100\n"
        );
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "27 Nov 05:06:58 ntpdate[1234]: no server suitable for synchronization found\n"
        );
    }
}
