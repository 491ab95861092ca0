//! ntp.conf: the classic ntpd configuration file, read into a typed [`Config`].
//!
//! sundial reads the same `/etc/ntp.conf` as ntp.org ntpd 4.2.8 and NTPsec 1.2.2; the grammar
//! and the behaviour it must reproduce are in `shared/reference/ntp-conf.md`. Where the two
//! ntpds differ the classic meaning wins and NTPsec-only syntax (`refclock`, `limit`,
//! `ADDR/LEN`, `unrestrict`, `nts`) is accepted as well.
//!
//! # Parse, don't validate
//!
//! The parser turns text straight into the values the daemon acts on — poll exponents as
//! [`Log2Seconds`](sundial_proto::time::Log2Seconds), thresholds as
//! [`NtpDuration`](sundial_proto::time::NtpDuration), restrict flags as
//! [`RestrictFlags`](sundial_proto::access::RestrictFlags) — so nothing downstream re-checks
//! a string. [`Config::default()`] is what an empty file means, with the defaults as named
//! constants next to the types that use them.
//!
//! # Findings, not failures
//!
//! Like ntpd, a bad line never stops the daemon: it becomes a [`Finding`] naming file, line,
//! column and the offending token, the line is skipped as a whole, and parsing goes on with the
//! next line. Things sundial recognises but does not do (broadcast modes, autokey, …) are
//! warnings; accepted lines that behave unlike classic ntpd (`peer` is a `server`) are notices.
//! `ntpd --check` prints the findings and fails if any is an [`Severity::Error`]. The only hard
//! failure is a top-level file that cannot be read ([`LoadError`]).
//!
//! Host names are kept as names ([`HostSpec::Name`], [`RestrictTarget::Name`]): resolving
//! them is the daemon's business, so loading a config does no I/O beyond reading files.
//!
//! # Entry points
//!
//! * [`load`] reads a file and everything it includes.
//! * [`parse_str`] parses text as if it were the file `file` (includes are resolved against
//!   its directory); tests and `ntpd` command-line servers use it.
//!
//! ```no_run
//! use std::path::Path;
//!
//! let (config, findings) = sundial::config::load(Path::new("/etc/ntp.conf"))?;
//! for finding in &findings {
//!     eprintln!("{finding}"); // /etc/ntp.conf:7:21: error: unknown restrict flag ('nomodfy')
//! }
//! println!("{} associations", config.associations.len());
//! # Ok::<(), sundial::config::LoadError>(())
//! ```
//!
//! # Layout
//!
//! `lexer` (tokens and typed values) → `directives` (dispatch by keyword) → one module per
//! directive family (`association`, `refclock`, `restrict`, `tuning`, `ratelimit`, `stats`, `keys`,
//! `interface`) → `include` (files, includes and whole-config checks).

#![warn(missing_docs, clippy::indexing_slicing)]

mod address;
mod association;
mod directives;
mod finding;
mod include;
mod interface;
mod keys;
mod lexer;
mod ratelimit;
mod refclock;
mod restrict;
mod stats;
mod tuning;
mod types;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use address::{HostSpec, RefclockId};
pub use association::{
    Association, AssociationKind, DEFAULT_MAXPOLL, DEFAULT_MINPOLL, DEFAULT_VERSION,
    POLL_LIMIT_MAX, POLL_LIMIT_MIN,
};
pub use finding::{Finding, LoadError, Location, Severity};
pub use include::{MAX_INCLUDE_DEPTH, MAX_TOTAL_BYTES, MAX_TOTAL_LINES};
pub use interface::{InterfaceAction, InterfaceRule, InterfaceTarget};
pub use keys::{KeyId, KeyRange};
pub use ratelimit::{
    DEFAULT_DISCARD_AVERAGE, DEFAULT_DISCARD_MINIMUM, DEFAULT_DISCARD_MONITOR,
    DEFAULT_LIMIT_AVERAGE, DEFAULT_LIMIT_BURST, DEFAULT_LIMIT_KOD, Discard, Limit, MAX_MRU_ENTRIES,
    MAX_MRU_KIB, Mru,
};
pub use refclock::Fudge;
pub use restrict::{RestrictLine, RestrictTarget};
pub use stats::{FileGen, FileGenType, StatsKind};
pub use tuning::{
    BaseDate, DEFAULT_ALLAN, DEFAULT_CEILING, DEFAULT_DISPERSION, DEFAULT_FLOOR, DEFAULT_MAXCLOCK,
    DEFAULT_MAXDISP, DEFAULT_MAXDIST, DEFAULT_MINCLOCK, DEFAULT_MINDIST, DEFAULT_MINSANE,
    DEFAULT_ORPHANWAIT, DEFAULT_PANIC, DEFAULT_STEP, DEFAULT_STEPOUT, MAX_FREQ_PPM, ORPHAN_OFF,
    Threshold, Tinker, Tos,
};
pub use types::{Config, DEFAULT_WANDER_THRESHOLD, DriftFile, Family, Ppm, SetVar, SystemFlags};

/// Reads the configuration file `path` and everything it includes.
///
/// Fails only when `path` itself cannot be read; every other problem, including a missing or
/// cyclic includefile, is a [`Finding`] and the rest of the configuration still loads.
pub fn load(path: &Path) -> Result<(Config, Vec<Finding>), LoadError> {
    let bytes = crate::safefile::read_config(path, MAX_TOTAL_BYTES)
        .map_err(|e| LoadError::read(path, e.into()))?;
    let mut loader = include::Loader::default();
    let text = loader.decode(bytes, path);
    Ok(loader.run(&text, path))
}

/// Parses `text` as the contents of the file `file`, which need not exist: it names the file
/// in findings and anchors relative `includefile` paths (those are read from disk).
pub fn parse_str(text: &str, file: &Path) -> (Config, Vec<Finding>) {
    include::Loader::default().run(text, file)
}

/// Fuzzing entry point (`fuzz/fuzz_targets/config_parse.rs` and the corpus regression test):
/// any bytes, read as a configuration file, give findings — never a panic — and every finding
/// points into the text.
pub fn fuzz_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (_, findings) = parse_str(&text, Path::new("/nonexistent/fuzz/ntp.conf"));
    let lines = u32::try_from(text.lines().count())
        .unwrap_or(u32::MAX)
        .max(1);
    for f in &findings {
        if f.location.file == Path::new("/nonexistent/fuzz/ntp.conf") {
            assert!(f.location.line <= lines, "finding past the end: {f}");
        }
    }
}
