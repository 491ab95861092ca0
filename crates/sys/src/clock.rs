//! The kernel's realtime clock: reading it, reading the kernel's discipline state, and the
//! writers a disciplined clock needs (frequency, step, PLL offset, status, `adjtime` slew).
//!
//! Reading is free of privilege. **Every writer needs `CAP_SYS_TIME`** and changes the machine's
//! clock: call them only from the daemon's system clock implementation, never from a test
//! that might run with the capability (tests assert `EPERM` under `setpriv --bounding-set
//! -sys_time`, see `DESIGN.md` §5). All calls go through glibc (`clock_gettime`,
//! `clock_adjtime`, `clock_settime`, `adjtime`) so that clock simulators can intercept them.
//!
//! Units follow the kernel's `struct timex` (see `adjtimex(2)`): frequency in ppm (the kernel's
//! 2⁻¹⁶ ppm fixed point is converted here), errors in microseconds, offsets in nanoseconds.

use std::{io, mem, ptr};

use crate::cvt;

/// The largest frequency correction the kernel accepts, in ppm (`MAXFREQ` in the kernel's
/// `timex.h`, 500 ppm); larger requests are clamped to it.
pub const MAX_FREQUENCY_PPM: f64 = 500.0;

/// The largest PLL offset the kernel takes in one update (`MAXPHASE`, 0.5 s), in nanoseconds.
const MAX_PLL_OFFSET_NS: i64 = 500_000_000;

/// The largest `maxerror` the kernel keeps (`NTP_PHASE_LIMIT`, 16 s), in microseconds.
const MAX_ERROR_LIMIT_US: i64 = 16_000_000;

/// `struct timex` frequencies are ppm scaled by 2¹⁶.
const FREQ_SCALE: f64 = 65_536.0;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A kernel timestamp (seconds and nanoseconds since the Unix epoch), kept apart from NTP's
/// era-based formats so that conversion happens once, in `sundial-proto`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespec {
    /// Whole seconds since 1970-01-01 00:00:00 UTC (negative before it).
    pub sec: i64,
    /// Nanoseconds past `sec`, always below 1 000 000 000.
    pub nsec: u32,
}

impl Timespec {
    /// Signed nanoseconds since the epoch, the easiest form in which to take differences.
    pub fn as_nanos(self) -> i128 {
        i128::from(self.sec) * i128::from(NANOS_PER_SEC) + i128::from(self.nsec)
    }

    /// Converts a kernel `timespec`, rejecting a nanosecond field outside `0..1e9` (which only a
    /// corrupt control message could carry).
    pub(crate) fn from_libc(ts: &libc::timespec) -> Option<Self> {
        let nsec = u32::try_from(ts.tv_nsec)
            .ok()
            .filter(|&n| i64::from(n) < NANOS_PER_SEC)?;
        Some(Self {
            sec: widen(ts.tv_sec),
            nsec,
        })
    }
}

/// The kernel's leap-second intent, as set with [`set_status`] (`STA_INS` / `STA_DEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelLeap {
    /// No leap second is announced.
    None,
    /// Insert a second at the end of the current UTC day (`STA_INS`).
    Insert,
    /// Delete the last second of the current UTC day (`STA_DEL`).
    Delete,
}

/// The clock state that `clock_adjtime` returns (`TIME_OK` … `TIME_ERROR`); `TIME_ERROR` is a
/// state ("unsynchronised"), not a failure of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeState {
    /// `TIME_OK`: synchronised, no leap second pending.
    Ok,
    /// `TIME_INS`: a leap second will be inserted at midnight.
    Insert,
    /// `TIME_DEL`: a leap second will be deleted at midnight.
    Delete,
    /// `TIME_OOP`: the inserted leap second is in progress.
    LeapInProgress,
    /// `TIME_WAIT`: a leap second has just happened.
    Wait,
    /// `TIME_ERROR`: the clock is not synchronised (`STA_UNSYNC` or a PPS error).
    Error,
    /// A value this crate does not know, kept for logging.
    Other(i32),
}

/// A read-only snapshot of the kernel's clock discipline (`struct timex` after `modes = 0`), for
/// start-up decisions and for reporting through mode 6.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelClockState {
    /// Offset the kernel PLL is still slewing out, in nanoseconds.
    pub offset_ns: i64,
    /// Frequency correction, in ppm (positive = the clock is sped up).
    pub frequency_ppm: f64,
    /// Maximum error, in microseconds (grows by 500 ppm while nobody updates it).
    pub max_error_us: i64,
    /// Estimated error, in microseconds.
    pub est_error_us: i64,
    /// Raw `STA_*` status bits; see also the helper methods.
    pub status: i32,
    /// PLL time constant (log2-ish, as `ntptime` shows it).
    pub time_constant: i64,
    /// TAI − UTC in seconds, as last set (0 when nobody has set it).
    pub tai: i32,
    /// The kernel's clock precision, in microseconds.
    pub precision_us: i64,
    /// The largest frequency correction the kernel accepts, in ppm.
    pub tolerance_ppm: f64,
    /// The PPS discipline's state (all zero without a PPS signal): frequency and stability in
    /// ppm, jitter in nanoseconds or microseconds as `STA_NANO` says (here: nanoseconds), the
    /// calibration interval exponent and the calibration, jitter, stability and error counts.
    pub pps: KernelPps,
    /// The return value of the call.
    pub state: TimeState,
}

/// The kernel PPS discipline's counters and estimates (`ntpq -c kerninfo`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KernelPps {
    /// PPS frequency, ppm.
    pub frequency_ppm: f64,
    /// PPS stability, ppm.
    pub stability_ppm: f64,
    /// PPS jitter, nanoseconds.
    pub jitter_ns: i64,
    /// Calibration interval, log2 seconds.
    pub shift: i32,
    /// Calibration cycles.
    pub calibrations: i64,
    /// Jitter limit exceeded.
    pub jitter_exceeded: i64,
    /// Stability limit exceeded.
    pub stability_exceeded: i64,
    /// Calibration errors.
    pub errors: i64,
}

impl KernelClockState {
    /// Whether the kernel considers the clock unsynchronised (`STA_UNSYNC`); the kernel then
    /// stops updating the RTC from the system clock.
    pub fn is_unsynchronized(&self) -> bool {
        self.status & libc::STA_UNSYNC != 0
    }

    /// Which leap second, if any, is armed in the kernel.
    pub fn leap(&self) -> KernelLeap {
        if self.status & libc::STA_INS != 0 {
            KernelLeap::Insert
        } else if self.status & libc::STA_DEL != 0 {
            KernelLeap::Delete
        } else {
            KernelLeap::None
        }
    }

    /// Whether the kernel PLL is active (`STA_PLL`), i.e. someone is steering via offsets.
    pub fn pll_enabled(&self) -> bool {
        self.status & libc::STA_PLL != 0
    }
}

/// The current system time (`CLOCK_REALTIME`): the reading behind every T1–T4 timestamp that
/// is not taken by the kernel itself.
pub fn realtime() -> Timespec {
    read_clock(libc::CLOCK_REALTIME, ClockCall::Time)
}

/// The resolution of `CLOCK_REALTIME`, from which ntpd derives its `precision`.
pub fn resolution() -> Timespec {
    read_clock(libc::CLOCK_REALTIME, ClockCall::Resolution)
}

/// Reads the kernel's discipline state without changing anything (`clock_adjtime` with
/// `modes = 0`), which needs no privilege.
pub fn read_timex() -> io::Result<KernelClockState> {
    let mut tx = empty_timex();
    let rc = adjust(&mut tx)?;
    let offset = widen(tx.offset);
    Ok(KernelClockState {
        offset_ns: if tx.status & libc::STA_NANO != 0 {
            offset
        } else {
            offset * 1000
        },
        frequency_ppm: tx.freq as f64 / FREQ_SCALE,
        max_error_us: widen(tx.maxerror),
        est_error_us: widen(tx.esterror),
        status: tx.status,
        time_constant: widen(tx.constant),
        tai: tx.tai,
        precision_us: widen(tx.precision),
        tolerance_ppm: tx.tolerance as f64 / FREQ_SCALE,
        pps: KernelPps {
            frequency_ppm: tx.ppsfreq as f64 / FREQ_SCALE,
            stability_ppm: tx.stabil as f64 / FREQ_SCALE,
            jitter_ns: if tx.status & libc::STA_NANO != 0 {
                widen(tx.jitter)
            } else {
                widen(tx.jitter) * 1000
            },
            shift: tx.shift,
            calibrations: widen(tx.calcnt),
            jitter_exceeded: widen(tx.jitcnt),
            stability_exceeded: widen(tx.stbcnt),
            errors: widen(tx.errcnt),
        },
        state: match rc {
            libc::TIME_OK => TimeState::Ok,
            libc::TIME_INS => TimeState::Insert,
            libc::TIME_DEL => TimeState::Delete,
            libc::TIME_OOP => TimeState::LeapInProgress,
            libc::TIME_WAIT => TimeState::Wait,
            libc::TIME_ERROR => TimeState::Error,
            other => TimeState::Other(other),
        },
    })
}

/// Sets the kernel's frequency correction (`ADJ_FREQUENCY`), clamped to
/// ±[`MAX_FREQUENCY_PPM`] as the kernel would; the frequency loop of the discipline lands here.
pub fn set_frequency(ppm: f64) -> io::Result<()> {
    if !ppm.is_finite() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frequency is not finite",
        ));
    }
    let mut tx = empty_timex();
    tx.modes = libc::ADJ_FREQUENCY;
    // The clamp keeps the product within ±32 768 000, which fits every `c_long`.
    tx.freq =
        (ppm.clamp(-MAX_FREQUENCY_PPM, MAX_FREQUENCY_PPM) * FREQ_SCALE).round() as libc::c_long;
    adjust(&mut tx).map(drop)
}

/// Sets the clock's rate correction in ppm over a range wider than the kernel's ±500 ppm
/// frequency offset: the whole-microsecond part goes into the tick length (`ADJ_TICK`, which
/// the kernel accepts within ±10 % of nominal) and the rest into `ADJ_FREQUENCY`, as chrony
/// does. A discipline slews phase with temporary rate corrections of several percent this way.
/// Positive values make the clock run faster.
pub fn set_frequency_wide(ppm: f64) -> io::Result<()> {
    if !ppm.is_finite() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frequency is not finite",
        ));
    }
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { widen(hz) } else { 100 };
    let nominal = 1_000_000 / hz;
    // One microsecond of tick length is this many ppm of rate.
    #[expect(
        clippy::cast_precision_loss,
        reason = "a tick is a few thousand microseconds"
    )]
    let ppm_per_tick_us = 1e6 / nominal as f64;
    let max_delta = nominal / 10;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "rounded and clamped to ±10 % of a tick"
    )]
    let delta = ((ppm / ppm_per_tick_us).round() as i64).clamp(-max_delta, max_delta);
    #[expect(clippy::cast_precision_loss, reason = "delta is small")]
    let rest = (ppm - delta as f64 * ppm_per_tick_us).clamp(-MAX_FREQUENCY_PPM, MAX_FREQUENCY_PPM);
    let mut tx = empty_timex();
    tx.modes = libc::ADJ_TICK | libc::ADJ_FREQUENCY;
    tx.tick = libc::c_long::try_from(nominal + delta)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "tick out of range"))?;
    // The clamp keeps the product within ±32 768 000, which fits every `c_long`.
    tx.freq = (rest * FREQ_SCALE).round() as libc::c_long;
    adjust(&mut tx).map(drop)
}

/// Steps the clock by `by_nanos` at once (`ADJ_SETOFFSET | ADJ_NANO`), falling back to
/// `clock_settime` where the kernel or a simulator rejects `ADJ_SETOFFSET` as invalid.
pub fn step(by_nanos: i64) -> io::Result<()> {
    let mut tx = empty_timex();
    tx.modes = libc::ADJ_SETOFFSET | libc::ADJ_NANO;
    // With ADJ_NANO the `tv_usec` field carries nanoseconds, which must be in 0..1e9.
    tx.time.tv_sec = to_time_t(by_nanos.div_euclid(NANOS_PER_SEC))?;
    tx.time.tv_usec = by_nanos.rem_euclid(NANOS_PER_SEC) as libc::suseconds_t;
    match adjust(&mut tx) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
            step_with_settime(by_nanos)
        }
        Err(e) => Err(e),
    }
}

/// Hands an offset to the kernel PLL (`ADJ_OFFSET | ADJ_NANO`), which then slews it out
/// smoothly; switches the PLL on (`STA_PLL`, `STA_FLL` off) in the same call because the kernel
/// ignores offsets otherwise. The offset is clamped to the kernel's ±0.5 s.
pub fn set_offset_pll(offset_ns: i64) -> io::Result<()> {
    let current = read_timex()?.status;
    let mut tx = empty_timex();
    tx.modes = libc::ADJ_OFFSET | libc::ADJ_NANO | libc::ADJ_STATUS;
    tx.status = (current & !(libc::STA_RONLY | libc::STA_FLL)) | libc::STA_PLL;
    // The clamp keeps the value within ±5e8, which fits every `c_long`.
    tx.offset = offset_ns.clamp(-MAX_PLL_OFFSET_NS, MAX_PLL_OFFSET_NS) as libc::c_long;
    adjust(&mut tx).map(drop)
}

/// Publishes the daemon's synchronisation state to the kernel: the leap second to apply at
/// midnight, whether the clock is unsynchronised, and the error bounds that `ntptime` and
/// `adjtimex` readers (and the kernel's 11-minute RTC sync) rely on. Other status bits such as
/// `STA_PLL` are preserved.
pub fn set_status(
    leap: KernelLeap,
    unsync: bool,
    est_error_us: i64,
    max_error_us: i64,
) -> io::Result<()> {
    let current = read_timex()?.status;
    let mut status =
        current & !(libc::STA_RONLY | libc::STA_INS | libc::STA_DEL | libc::STA_UNSYNC);
    status |= match leap {
        KernelLeap::None => 0,
        KernelLeap::Insert => libc::STA_INS,
        KernelLeap::Delete => libc::STA_DEL,
    };
    if unsync {
        status |= libc::STA_UNSYNC;
    }
    let mut tx = empty_timex();
    tx.modes = libc::ADJ_STATUS | libc::ADJ_ESTERROR | libc::ADJ_MAXERROR;
    tx.status = status;
    // Both clamps keep the values within 0..=16e6, which fits every `c_long`.
    tx.esterror = est_error_us.clamp(0, MAX_ERROR_LIMIT_US) as libc::c_long;
    tx.maxerror = max_error_us.clamp(0, MAX_ERROR_LIMIT_US) as libc::c_long;
    adjust(&mut tx).map(drop)
}

/// Slews the clock by `by_nanos` with the classic `adjtime(2)` (rounded to microseconds), as
/// `ntpdate` does without `-b`; glibc rejects corrections beyond about ±2145 s with `EINVAL`.
pub fn adjtime_slew(by_nanos: i64) -> io::Result<()> {
    let micros = by_nanos.saturating_add(by_nanos.signum() * 500) / 1000;
    // SAFETY: `timeval` is plain data; all-zero is a valid value (and zeroes any padding).
    let mut delta: libc::timeval = unsafe { mem::zeroed() };
    delta.tv_sec = to_time_t(micros.div_euclid(1_000_000))?;
    delta.tv_usec = micros.rem_euclid(1_000_000) as libc::suseconds_t;
    // SAFETY: `delta` is a valid timeval for the duration of the call; a null `olddelta` is
    // allowed and means "do not report the previous adjustment".
    cvt(unsafe { libc::adjtime(&delta, ptr::null_mut()) }).map(drop)
}

/// The civil time of `secs` (seconds since the Unix epoch) in the local time zone (`TZ`, else
/// `/etc/localtime`), as `(year, month 1–12, day 1–31, hour, minute, second)`.
///
/// Classic tools such as `ntpdate` start every log line with the local time
/// (`27 Nov 05:06:58 ntpdate[1234]: …`); time-zone rules live in the C library, so this is the
/// one safe door to them. `None` when the C library cannot represent the time (a year beyond
/// `i32`), never a panic.
pub fn local_time(secs: i64) -> Option<(i32, u8, u8, u8, u8, u8)> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain data (integers and a zone-name pointer that localtime_r sets); all-zero
    // is a valid value.
    let mut tm: libc::tm = unsafe { mem::zeroed() };
    // SAFETY: both pointers refer to live locals for the duration of the call; localtime_r is the
    // re-entrant variant, reads only `t` and writes only into `tm`.
    let result = unsafe { libc::localtime_r(&t, &mut tm) };
    if result.is_null() {
        return None;
    }
    let field = |v: libc::c_int| u8::try_from(v).ok();
    Some((
        tm.tm_year.checked_add(1900)?,
        field(tm.tm_mon.checked_add(1)?)?,
        field(tm.tm_mday)?,
        field(tm.tm_hour)?,
        field(tm.tm_min)?,
        field(tm.tm_sec)?,
    ))
}

/// Which of the two read-only clock calls [`read_clock`] makes.
enum ClockCall {
    Time,
    Resolution,
}

fn read_clock(clock: libc::clockid_t, call: ClockCall) -> Timespec {
    // SAFETY: `timespec` is plain data; all-zero is a valid value (and zeroes any padding).
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe {
        match call {
            ClockCall::Time => libc::clock_gettime(clock, &mut ts),
            ClockCall::Resolution => libc::clock_getres(clock, &mut ts),
        }
    };
    // The only documented errors are EFAULT (bad pointer) and EINVAL (unknown clock); neither
    // can happen for CLOCK_REALTIME with a stack timespec, so `rc` is not inspected further.
    debug_assert_eq!(rc, 0, "clock_gettime/clock_getres on CLOCK_REALTIME failed");
    Timespec::from_libc(&ts).unwrap_or_default()
}

fn step_with_settime(by_nanos: i64) -> io::Result<()> {
    let target = realtime().as_nanos() + i128::from(by_nanos);
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "step target out of range");
    let sec = i64::try_from(target.div_euclid(i128::from(NANOS_PER_SEC))).map_err(|_| invalid())?;
    // SAFETY: `timespec` is plain data; all-zero is a valid value (and zeroes any padding).
    let mut ts: libc::timespec = unsafe { mem::zeroed() };
    ts.tv_sec = to_time_t(sec)?;
    ts.tv_nsec = target.rem_euclid(i128::from(NANOS_PER_SEC)) as libc::c_long;
    // SAFETY: `ts` is a valid, normalised timespec for the duration of the call.
    cvt(unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) }).map(drop)
}

/// Calls `clock_adjtime(CLOCK_REALTIME, tx)` and returns the clock state it reports.
fn adjust(tx: &mut libc::timex) -> io::Result<libc::c_int> {
    // SAFETY: `tx` is a valid, initialised, writable timex for the duration of the call; with
    // `modes == 0` the kernel only writes into it.
    cvt(unsafe { libc::clock_adjtime(libc::CLOCK_REALTIME, tx) })
}

fn empty_timex() -> libc::timex {
    // SAFETY: `timex` is plain data (integers and a timeval); all-zero is valid, means
    // "modes = 0, change nothing", and clears the reserved padding the kernel checks.
    unsafe { mem::zeroed() }
}

/// Widens a C `long` or `time_t` (32 bits on some targets, 64 on others) to `i64`.
fn widen(value: impl Into<i64>) -> i64 {
    value.into()
}

fn to_time_t(sec: i64) -> io::Result<libc::time_t> {
    libc::time_t::try_from(sec).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "seconds out of range for time_t",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privileges::has_cap_sys_time;

    #[test]
    fn realtime_is_after_2020_and_matches_std() {
        let now = realtime();
        assert!(now.sec > 1_577_836_800, "clock reads {now:?}");
        let std_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("system clock before 1970")
            .as_nanos() as i128;
        assert!((std_now - now.as_nanos()).abs() < 1_000_000_000);
    }

    #[test]
    fn timespec_rejects_out_of_range_nanoseconds_and_orders_by_time() {
        // SAFETY: `timespec` is plain data; all-zero is a valid value.
        let mut raw: libc::timespec = unsafe { mem::zeroed() };
        raw.tv_sec = -1;
        raw.tv_nsec = 999_999_999;
        let before_epoch = Timespec::from_libc(&raw).expect("valid");
        assert_eq!(before_epoch.as_nanos(), -1);
        assert!(before_epoch < Timespec::default());
        raw.tv_nsec = 1_000_000_000;
        assert_eq!(Timespec::from_libc(&raw), None);
        raw.tv_nsec = -1;
        assert_eq!(Timespec::from_libc(&raw), None);
    }

    #[test]
    fn local_time_keeps_the_seconds_and_rejects_unrepresentable_years() {
        // Zone offsets are whole minutes today, so the seconds field is the UTC one.
        let (year, month, day, hour, minute, second) =
            local_time(1_700_000_000).expect("a 2023 time is representable");
        assert!((2023..=2024).contains(&year), "{year}");
        assert!(
            (1..=12).contains(&month) && (1..=31).contains(&day),
            "{month} {day}"
        );
        assert!(hour < 24 && minute < 60, "{hour}:{minute}");
        assert_eq!(second, 20);
        assert!(local_time(realtime().sec).is_some());
        assert_eq!(local_time(i64::MAX), None);
    }

    #[test]
    fn resolution_is_at_most_one_millisecond() {
        let res = resolution();
        assert_eq!(res.sec, 0);
        assert!(res.nsec > 0 && res.nsec <= 1_000_000, "resolution {res:?}");
    }

    #[test]
    fn read_timex_reports_a_plausible_state() {
        let state = read_timex().expect("read-only clock_adjtime needs no privilege");
        assert!(
            state.frequency_ppm.abs() <= MAX_FREQUENCY_PPM + 1.0,
            "{state:?}"
        );
        assert!(
            state.max_error_us >= 0 && state.est_error_us >= 0,
            "{state:?}"
        );
        assert!(!matches!(state.state, TimeState::Other(_)), "{state:?}");
    }

    #[test]
    fn set_frequency_rejects_nan_before_any_system_call() {
        let err = set_frequency(f64::NAN).expect_err("NaN must be rejected");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// Asserts that every writer fails with EPERM. Fails at once, before any write, when
    /// CAP_SYS_TIME is effective: the suite must run under `setpriv --bounding-set -sys_time`
    /// (tools/test-all), and then this test can never change the machine's clock.
    #[test]
    fn writers_fail_with_eperm_without_cap_sys_time() {
        assert!(
            !has_cap_sys_time(),
            "CAP_SYS_TIME is effective; run the tests under \
             `setpriv --bounding-set -sys_time --inh-caps -sys_time` (tools/test-all)"
        );
        // Belt and braces: even if a writer did get through, these values restate what the
        // kernel already has (or step and slew by zero).
        let now = read_timex().expect("read-only clock_adjtime needs no privilege");
        let results = [
            ("set_frequency", set_frequency(now.frequency_ppm)),
            ("set_frequency_wide", set_frequency_wide(now.frequency_ppm)),
            ("step", step(0)),
            ("set_offset_pll", set_offset_pll(0)),
            (
                "set_status",
                set_status(
                    now.leap(),
                    now.is_unsynchronized(),
                    now.est_error_us,
                    now.max_error_us,
                ),
            ),
            ("adjtime_slew", adjtime_slew(0)),
        ];
        for (name, result) in results {
            let err = result.expect_err(name);
            assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{name}: {err}");
        }
    }
}
