//! The variables of `ntpq -c kerninfo` (the kernel clock discipline, as `adjtimex` reads it
//! without changing anything) and `ntpq -c iostats` (the server's packet counters), sent only
//! when named, in NTPsec's names and units: offsets and errors in milliseconds, frequencies in
//! ppm.
//!
//! The daemon reads the kernel state once a second for its published snapshot. Without it
//! (a clock backend other than the kernel's, or the read failed) the kernel variables are
//! absent and ntpq shows `???` for them. `iostats` has the counters sundial keeps: received,
//! sent (datagrams, every fragment of a mode 6 reply), dropped and ignored datagrams, send
//! failures, and wakeups (reads of a socket reported readable, or looked at after a hold under
//! load; useful ones found datagrams).
//! sundial receives into fixed per-thread batches, not a pool of receive buffers, so
//! `total_rbuf`, `free_rbuf`, `used_rbuf` and `rbuf_lowater` are not sent.

use super::snapshot::SystemVars;
use super::vars::Var;
use crate::counters::DropReason;

/// The kernel's clock discipline (`struct timex`), in the units ntpq shows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KernelVars {
    /// `koffset`: offset the kernel PLL still slews out, seconds (sent in ms).
    pub offset: f64,
    /// `kfreq`: frequency correction, ppm.
    pub frequency_ppm: f64,
    /// `kmaxerr`: maximum error, seconds (sent in ms).
    pub max_error: f64,
    /// `kesterr`: estimated error, seconds (sent in ms).
    pub est_error: f64,
    /// `kstflags`: the `STA_*` status bits.
    pub status: i32,
    /// `ktimeconst`: PLL time constant.
    pub time_constant: i64,
    /// `kprecis`: clock precision, seconds (sent in ms).
    pub precision: f64,
    /// `kfreqtol`: frequency tolerance, ppm.
    pub tolerance_ppm: f64,
    /// `kppsfreq`: PPS frequency, ppm.
    pub pps_frequency_ppm: f64,
    /// `kppsstab`: PPS stability, ppm.
    pub pps_stability_ppm: f64,
    /// `kppsjitter`: PPS jitter, seconds (sent in ms).
    pub pps_jitter: f64,
    /// `kppscalibdur`: calibration interval, seconds.
    pub pps_calibration_interval: i64,
    /// `kppscalibs`: calibration cycles.
    pub pps_calibrations: i64,
    /// `kppsjitexc`: jitter limit exceeded.
    pub pps_jitter_exceeded: i64,
    /// `kppsstbexc`: stability limit exceeded.
    pub pps_stability_exceeded: i64,
    /// `kppscaliberrs`: calibration errors.
    pub pps_errors: i64,
}

/// `STA_*` bits and the names ntpd gives them in `kstflags`.
const STATUS_BITS: [(i32, &str); 16] = [
    (0x0001, "pll"),
    (0x0002, "ppsfreq"),
    (0x0004, "ppstime"),
    (0x0008, "fll"),
    (0x0010, "ins"),
    (0x0020, "del"),
    (0x0040, "unsync"),
    (0x0080, "freqhold"),
    (0x0100, "ppssignal"),
    (0x0200, "ppsjitter"),
    (0x0400, "ppswander"),
    (0x0800, "ppserror"),
    (0x1000, "clockerr"),
    (0x2000, "nano"),
    (0x4000, "mode=fll"),
    (0x8000, "src=B"),
];

/// The status bits as ntpd names them, space-separated (`pll nano`).
pub fn status_flags(status: i32) -> String {
    let names: Vec<&str> = STATUS_BITS
        .iter()
        .filter(|(bit, _)| status & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    names.join(" ")
}

/// A kernel variable: written only when the kernel state is known.
macro_rules! kvar {
    ($name:literal, |$k:ident| $fmt:literal, $value:expr) => {
        Var {
            name: $name,
            render: |system, _now, w| {
                if let Some($k) = system.kernel.as_ref() {
                    w.item(format_args!(concat!($name, "=", $fmt), $value));
                }
            },
        }
    };
}

/// An iostats counter.
macro_rules! io {
    ($name:literal, |$s:ident| $value:expr) => {
        Var {
            name: $name,
            render: |$s, _now, w| w.item(format_args!(concat!($name, "={}"), $value)),
        }
    };
}

/// The `kerninfo` and `iostats` variables.
pub(crate) static KERNEL_AND_IO: &[Var<SystemVars>] = &[
    kvar!("koffset", |k| "{:.6}", k.offset * 1e3),
    kvar!("kfreq", |k| "{:.6}", k.frequency_ppm),
    kvar!("kmaxerr", |k| "{:.6}", k.max_error * 1e3),
    kvar!("kesterr", |k| "{:.6}", k.est_error * 1e3),
    kvar!("kstflags", |k| "\"{}\"", status_flags(k.status)),
    kvar!("ktimeconst", |k| "{}", k.time_constant),
    kvar!("kprecis", |k| "{:.6}", k.precision * 1e3),
    kvar!("kfreqtol", |k| "{:.0}", k.tolerance_ppm),
    kvar!("kppsfreq", |k| "{:.6}", k.pps_frequency_ppm),
    kvar!("kppsstab", |k| "{:.6}", k.pps_stability_ppm),
    kvar!("kppsjitter", |k| "{:.6}", k.pps_jitter * 1e3),
    kvar!("kppscalibdur", |k| "{}", k.pps_calibration_interval),
    kvar!("kppscalibs", |k| "{}", k.pps_calibrations),
    kvar!("kppsjitexc", |k| "{}", k.pps_jitter_exceeded),
    kvar!("kppsstbexc", |k| "{}", k.pps_stability_exceeded),
    kvar!("kppscaliberrs", |k| "{}", k.pps_errors),
    io!("iostats_reset", |s| s.uptime),
    io!("io_received", |s| s.counters.received),
    io!("io_sent", |s| s.counters.sent),
    io!("io_sendfailed", |s| s.counters.send_failures),
    io!("io_wakeups", |s| s.counters.wakeups),
    io!("io_goodwakeups", |s| s.counters.useful_wakeups),
    io!("io_dropped", |s| s.counters.dropped_total()),
    io!("io_ignored", |s| s
        .counters
        .dropped(DropReason::InterfaceIgnored)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bits_are_named_as_ntpd_does() {
        assert_eq!(status_flags(0x2001), "pll nano");
        assert_eq!(status_flags(0x0040), "unsync");
        assert_eq!(status_flags(0), "");
    }
}
