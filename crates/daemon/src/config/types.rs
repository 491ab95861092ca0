//! The typed configuration: what an ntp.conf means once it has been read.
//!
//! Every field holds the value the daemon acts on, never text to be interpreted later, and
//! [`Config::default`] is exactly what an empty file means. Lists keep file order, because
//! order matters to some consumers (`interface` rules, `restrict`/`unrestrict` pairs).

use std::path::PathBuf;

use super::Location;
use super::association::Association;
use super::interface::InterfaceRule;
use super::keys::{KeyId, KeyRange};
use super::ratelimit::{Discard, Limit, Mru};
use super::refclock::Fudge;
use super::restrict::RestrictLine;
use super::stats::{FileGen, StatsKind};
use super::tuning::{Tinker, Tos};

/// Drift-file wander threshold when neither `driftfile FILE WANDER` nor `nonvolatile` sets it:
/// 1e-7 (0.1 PPM), `wander_threshold` in ntp.org `ntpd/ntp_util.c` and NTPsec alike.
pub const DEFAULT_WANDER_THRESHOLD: Ppm = Ppm::from_const(0.1);

/// A complete, typed ntp.conf.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `server`, `pool`, `peer` and `refclock` lines, in file order.
    pub associations: Vec<Association>,
    /// `fudge` lines, in file order; several for one clock apply in order.
    pub fudges: Vec<Fudge>,
    /// `restrict` and `unrestrict` lines, in file order (the daemon builds its table from
    /// them; order only matters for `unrestrict`).
    pub restrictions: Vec<RestrictLine>,
    /// `driftfile`; `None` means no frequency is saved across restarts.
    pub driftfile: Option<DriftFile>,
    /// `nonvolatile THRESHOLD`, overriding the `driftfile` wander argument.
    pub nonvolatile: Option<Ppm>,
    /// `statsdir`: the directory statistics files are written to.
    pub statsdir: Option<PathBuf>,
    /// `statistics` names, each once, in first-seen order.
    pub statistics: Vec<StatsKind>,
    /// `filegen` lines, in file order.
    pub filegens: Vec<FileGen>,
    /// `metrics [ADDR:]PORT` (a sundial extension): serve Prometheus metrics there.
    pub metrics: Option<std::net::SocketAddr>,
    /// `tos`: selection and orphan-mode parameters.
    pub tos: Tos,
    /// `tinker`: clock discipline thresholds.
    pub tinker: Tinker,
    /// `enable`/`disable` switches.
    pub system_flags: SystemFlags,
    /// `logfile`: log there instead of to syslog.
    pub logfile: Option<PathBuf>,
    /// `logconfig` items such as `=syncall` or `+clockall`, as written; sundial maps them to
    /// log levels (or ignores them) in the logging setup.
    pub logconfig: Vec<String>,
    /// `leapfile`: the IERS/NIST `leap-seconds.list`.
    pub leapfile: Option<PathBuf>,
    /// `pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `keys`: the symmetric key file.
    pub keys: Option<PathBuf>,
    /// Where the `keys` line is (findings about the file that have no line of their own).
    pub keys_location: Option<Location>,
    /// `trustedkey` ids and ranges, in file order.
    pub trusted_keys: Vec<KeyRange>,
    /// `controlkey`: parsed for compatibility; sundial never allows remote configuration.
    pub control_key: Option<KeyId>,
    /// `interface`/`nic` rules, in file order (later rules override earlier ones in ntpd).
    pub interfaces: Vec<InterfaceRule>,
    /// `discard`: classic rate-limit parameters, used whenever a restrict entry has `limited`.
    pub discard: Discard,
    /// NTPsec `limit`; when present it is mapped onto the same limiter as `discard`.
    pub limit: Option<Limit>,
    /// `mru`: bounds of the per-client monitor table.
    pub mru: Mru,
    /// `setvar` system variables, in file order.
    pub setvars: Vec<SetVar>,
}

impl Config {
    /// Whether `key` is listed by some `trustedkey` line.
    pub fn is_trusted(&self, key: KeyId) -> bool {
        self.trusted_keys.iter().any(|range| range.contains(key))
    }

    /// The smallest `minpoll` and the largest `maxpoll` of the associations (ntpd's defaults 6
    /// and 10 without any): the range the system poll moves in.
    pub fn poll_range(&self) -> (i8, i8) {
        let min = self.associations.iter().map(|a| a.minpoll.exponent()).min();
        let max = self.associations.iter().map(|a| a.maxpoll.exponent()).max();
        (min.unwrap_or(6), max.unwrap_or(10))
    }

    /// The drift-file write threshold: `nonvolatile` if given, else the `driftfile` wander
    /// argument, else [`DEFAULT_WANDER_THRESHOLD`].
    pub fn wander_threshold(&self) -> Ppm {
        self.nonvolatile
            .or_else(|| self.driftfile.as_ref().and_then(|d| d.wander))
            .unwrap_or(DEFAULT_WANDER_THRESHOLD)
    }
}

/// An address family, from the `-4`/`-6` prefix of an address argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `-4`: resolve to IPv4 only.
    V4,
    /// `-6`: resolve to IPv6 only.
    V6,
}

/// A frequency in parts per million: the core's type, so that the discipline's parameters
/// take what the configuration parsed.
pub use sundial_proto::time::Ppm;

/// `driftfile FILE [WANDER]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftFile {
    /// Where the frequency is saved (written via a temporary file and `rename`).
    pub path: PathBuf,
    /// The optional second argument: how far the frequency must move before the file is
    /// rewritten (given as a ratio in the file, e.g. `1e-7`).
    pub wander: Option<Ppm>,
}

/// The `enable`/`disable` switches. [`Default`] is classic ntpd's: see each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemFlags {
    /// `auth`: require authentication to mobilise associations from packets (default on).
    pub auth: bool,
    /// `bclient`: listen for broadcast servers (default off; sundial never does).
    pub bclient: bool,
    /// `calibrate`: refclock calibration (default off).
    pub calibrate: bool,
    /// `kernel`: use the kernel PLL when available (default on).
    pub kernel: bool,
    /// `monitor`: keep the MRU table (default on; `limited` forces it on regardless).
    pub monitor: bool,
    /// `ntp`: discipline the clock at all (default on).
    pub ntp: bool,
    /// `stats`: write statistics files (default on, as in ntp.org; NTPsec defaults off).
    pub stats: bool,
}

impl Default for SystemFlags {
    fn default() -> Self {
        Self {
            auth: true,
            bclient: false,
            calibrate: false,
            kernel: true,
            monitor: true,
            ntp: true,
            stats: true,
        }
    }
}

/// `setvar NAME = "VALUE" [default]`: an extra system variable shown by `ntpq -c rv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetVar {
    /// The variable name.
    pub name: String,
    /// Its value, without quotes.
    pub value: String,
    /// `default`: include it in the default `rv` listing.
    pub default: bool,
    /// Where it was set.
    pub location: Location,
}
