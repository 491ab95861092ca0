//! The drift file (`driftfile FILE`): the clock's frequency correction in ppm, one number,
//! kept across restarts so the clock is right from the first minute.
//!
//! It is read once at start-up; a missing or unreadable file is a warning and a start from
//! 0 ppm. Both go through [`crate::safefile`]: the read refuses a symbolic link, a FIFO or a
//! device and anything longer than [`MAX_FILE_LEN`]; the write goes through a randomly named
//! temporary file created exclusively in the same directory, flushed to disk and renamed over
//! the old one, so a crash at any moment leaves either the old file or the new one — never a
//! truncated file — and a link planted in the directory is never followed. ntpd's cadence is kept: checked hourly, written only when the
//! frequency moved by more than the wander threshold (which halves every hour nothing is
//! written, so a quiet system still records slow drifts), and once more at clean shutdown.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::safefile::{self, Ownership, ReadError};

/// How often the file is considered for rewriting (ntpd: hourly).
const CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Frequencies beyond this are not believed (ntpd clamps to `NTP_MAXFREQ`, 500 ppm).
const MAX_PPM: f64 = 500.0;

/// Longest drift file read: a number in ppm and a newline take a few dozen octets; anything
/// much longer is not a drift file.
pub const MAX_FILE_LEN: u64 = 4096;

/// Why a drift file could not be used.
#[derive(Debug)]
pub enum DriftError {
    /// It could not be read (other than not existing), or is not a regular file of at most
    /// [`MAX_FILE_LEN`] octets.
    Read(ReadError),
    /// Its content is not a number of ppm within ±500.
    Corrupt(PathBuf, String),
}

impl fmt::Display for DriftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read drift file: {e}"),
            Self::Corrupt(p, text) => {
                write!(
                    f,
                    "drift file {} does not hold a frequency in ppm: {text:?}",
                    p.display()
                )
            }
        }
    }
}

impl std::error::Error for DriftError {}

/// Reads the frequency; `Ok(None)` if the file does not exist yet.
pub fn read(path: &Path) -> Result<Option<f64>, DriftError> {
    let text = match safefile::read_state(path, MAX_FILE_LEN) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(ReadError::Missing(_)) => return Ok(None),
        Err(e) => return Err(DriftError::Read(e)),
    };
    let word = text.split_whitespace().next().unwrap_or_default();
    match word.parse::<f64>() {
        Ok(ppm) if ppm.is_finite() && ppm.abs() <= MAX_PPM => Ok(Some(ppm)),
        _ => Err(DriftError::Corrupt(
            path.to_owned(),
            text.chars().take(40).collect(),
        )),
    }
}

/// Writes `ppm` atomically (see [`safefile::write_atomic`]), in ntpd's classic format: three
/// decimals and a newline.
pub fn write(path: &Path, ppm: f64) -> io::Result<()> {
    safefile::write_atomic(path, format!("{ppm:.3}\n").as_bytes(), Ownership::PUBLIC)
}

/// When to write the drift file.
#[derive(Debug)]
pub struct DriftWriter {
    path: PathBuf,
    threshold_ppm: f64,
    wander_ppm: f64,
    last_written: Option<f64>,
    next_check: Instant,
}

impl DriftWriter {
    /// A writer for `path`; `wander_ppm` is the rewrite threshold (`driftfile FILE WANDER`,
    /// default 0.1 ppm); `current` is what the file holds now, if anything.
    pub fn new(path: PathBuf, wander_ppm: f64, current: Option<f64>, now: Instant) -> Self {
        Self {
            path,
            threshold_ppm: wander_ppm,
            wander_ppm,
            last_written: current,
            next_check: now + CHECK_INTERVAL,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hourly check: writes `ppm` if it moved by more than the current threshold since the
    /// last write (or nothing was ever written), otherwise halves the threshold.
    pub fn tick(&mut self, ppm: f64, now: Instant) {
        if now < self.next_check {
            return;
        }
        self.next_check = now + CHECK_INTERVAL;
        let moved = self
            .last_written
            .is_none_or(|w| (ppm - w).abs() >= self.wander_ppm);
        if moved {
            self.save(ppm);
            self.wander_ppm = self.threshold_ppm;
        } else {
            self.wander_ppm /= 2.0;
        }
    }

    /// Writes `ppm` now (clean shutdown).
    pub fn save(&mut self, ppm: f64) -> bool {
        match write(&self.path, ppm) {
            Ok(()) => {
                self.last_written = Some(ppm);
                tracing::debug!("drift file {} written: {ppm:.3} ppm", self.path.display());
                true
            }
            Err(e) => {
                tracing::warn!("cannot write drift file {}: {e}", self.path.display());
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sundial-drift-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_file_is_none_and_corrupt_file_is_an_error() {
        let d = dir("read");
        assert!(read(&d.join("ntp.drift")).unwrap().is_none());
        fs::write(d.join("bad"), "garbage\n").unwrap();
        assert!(matches!(read(&d.join("bad")), Err(DriftError::Corrupt(..))));
        fs::write(d.join("huge"), "9000\n").unwrap();
        assert!(matches!(
            read(&d.join("huge")),
            Err(DriftError::Corrupt(..))
        ));
        fs::write(d.join("ntpsec"), "-12.345678\n").unwrap();
        assert!((read(&d.join("ntpsec")).unwrap().unwrap() + 12.345_678).abs() < 1e-9);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_save_says_so() {
        let d = dir("unwritable");
        let mut w = DriftWriter::new(d.join("missing-dir/ntp.drift"), 0.1, None, Instant::now());
        assert!(
            !w.save(1.0),
            "a file in a missing directory cannot have been saved"
        );
        let mut w = DriftWriter::new(d.join("ntp.drift"), 0.1, None, Instant::now());
        assert!(w.save(1.0));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn writes_are_atomic_and_classic_formatted() {
        let d = dir("write");
        let p = d.join("ntp.drift");
        write(&p, 31.4159).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "31.416\n");
        write(&p, -2.0).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "-2.000\n");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn hourly_check_writes_only_meaningful_changes_and_halves_the_threshold() {
        let d = dir("cadence");
        let p = d.join("ntp.drift");
        let t0 = Instant::now();
        let mut w = DriftWriter::new(p.clone(), 0.1, None, t0);
        w.tick(10.0, t0 + Duration::from_secs(60));
        assert!(!p.exists(), "at most hourly");
        w.tick(10.0, t0 + CHECK_INTERVAL);
        assert_eq!(fs::read_to_string(&p).unwrap(), "10.000\n");
        w.tick(10.06, t0 + CHECK_INTERVAL * 2);
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "10.000\n",
            "0.06 ppm is below 0.1"
        );
        // The threshold halved to 0.05 ppm, so the same change is written an hour later.
        w.tick(10.06, t0 + CHECK_INTERVAL * 3);
        assert_eq!(fs::read_to_string(&p).unwrap(), "10.060\n");
        fs::remove_dir_all(&d).unwrap();
    }
}
