//! One statistics file and its generations (`filegen NAME file F type T link|nolink`), as
//! ntpd names them: `F.YYYYMMDD` (`day`), `F.YYYYwWW` (`week`, ISO weeks), `F.YYYYMM`
//! (`month`), `F.YYYY` (`year`), `F.PID` (`pid`), `F.aNNNNNNNN` (`age`: seconds of uptime at
//! the start of each 24 hours) or plain `F` (`none`). With `link` the plain name is a hard link
//! to the current generation, as in ntpd.
//!
//! A file is opened when its first line is written (after the daemon dropped its privileges,
//! so it belongs to the `-u` user), appended to (a restart continues the same generation), and
//! reopened when the generation changes. Files are opened through `safefile`, relative to the
//! directory: a symbolic link, FIFO or device planted in the statistics directory is refused,
//! so it can neither redirect the writes nor block the main loop. A write that fails (full disk, missing directory, permissions) is logged once, the
//! line is dropped, and the next line tries again; time service never waits for or stops on
//! a statistics file.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use sundial_proto::time::UnixTime;

use crate::config::FileGenType;

const SECS_PER_DAY: i64 = 86_400;

/// How one statistics file is named and split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGenSpec {
    /// `statsdir`.
    pub dir: PathBuf,
    /// `file F` (default: the statistics name).
    pub file: PathBuf,
    /// `type T` (default `day`).
    pub kind: FileGenType,
    /// `link` (default) or `nolink`.
    pub link: bool,
}

/// The file being written and what went wrong last.
#[derive(Debug)]
pub struct FileGen {
    spec: FileGenSpec,
    /// The daemon's start (for `age`) and pid (for `pid`).
    started: UnixTime,
    pid: u32,
    current: Option<(PathBuf, File)>,
    /// The error last logged, so that a failing file is logged once, not once per line.
    failing: Option<String>,
}

impl FileGen {
    /// A file generation set; nothing is opened yet.
    pub fn new(spec: FileGenSpec, started: UnixTime, pid: u32) -> Self {
        Self {
            spec,
            started,
            pid,
            current: None,
            failing: None,
        }
    }

    /// The path of the generation `at` falls in.
    pub fn path_at(&self, at: UnixTime) -> PathBuf {
        let mut name = self.spec.dir.join(&self.spec.file).into_os_string();
        name.push(suffix(self.spec.kind, at, self.started, self.pid));
        PathBuf::from(name)
    }

    /// Appends `line` to the generation of `at`; a failure is logged once and the line lost.
    pub fn write(&mut self, at: UnixTime, line: &str) {
        match self.try_write(at, line) {
            Ok(()) => {
                if self.failing.take().is_some() {
                    tracing::info!(
                        "statistics file {} is written again",
                        self.path_at(at).display()
                    );
                }
            }
            Err(e) => {
                // Reopen next time: the file may have been removed or the disk emptied.
                self.current = None;
                let what = e.to_string();
                if self.failing.as_deref() != Some(what.as_str()) {
                    tracing::warn!(
                        "statistics file {}: {what} (lines are dropped until it works again; \
                         time service is not affected)",
                        self.path_at(at).display()
                    );
                    self.failing = Some(what);
                }
            }
        }
    }

    fn try_write(&mut self, at: UnixTime, line: &str) -> io::Result<()> {
        let path = self.path_at(at);
        let reopen = self.current.as_ref().is_none_or(|(p, _)| *p != path);
        if reopen {
            self.current = None;
            let file = open_append(&path)?;
            if self.spec.link && self.spec.kind != FileGenType::None {
                link_base(&self.spec.dir.join(&self.spec.file), &path);
            }
            self.current = Some((path, file));
        }
        let Some((_, file)) = self.current.as_mut() else {
            return Ok(());
        };
        file.write_all(line.as_bytes())
    }
}

/// Opens `path` for appending, creating it (mode 0644), through `safefile`: relative to the
/// directory, never through a symbolic link, and only a regular file (a planted FIFO or device
/// is refused, not waited on).
fn open_append(path: &Path) -> io::Result<File> {
    crate::safefile::open_append(path, 0o644)
}

/// Makes `base` a hard link to `current`. An existing `base` that is a link to an older
/// generation (or a symbolic link) is replaced; a plain file of its own (written with `type
/// none` earlier) is kept and the link not made, so no data is ever deleted.
///
/// The link is made under a temporary name and renamed over `base`, so `base` always names a
/// whole file for a reader such as ntpviz, and a symbolic link planted at either name is
/// replaced or removed, never followed (neither `link` nor `rename` follows one).
fn link_base(base: &Path, current: &Path) {
    match fs::symlink_metadata(base) {
        Ok(m) if !m.file_type().is_symlink() && m.nlink() == 1 => {
            tracing::debug!(
                "statistics link {}: a file of its own is there; not linked",
                base.display()
            );
            return;
        }
        _ => {}
    }
    let Some(name) = base.file_name() else {
        return;
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".link");
    let tmp = base.with_file_name(tmp_name);
    // A leftover of an interrupted run, or anything planted there: unlink removes a symbolic
    // link itself, and `hard_link` then fails rather than write through whatever appears.
    let _ = fs::remove_file(&tmp);
    if let Err(e) = fs::hard_link(current, &tmp).and_then(|()| fs::rename(&tmp, base)) {
        let _ = fs::remove_file(&tmp);
        tracing::debug!("statistics link {}: {e}", base.display());
    }
}

/// The file name suffix of the generation `at` falls in.
pub fn suffix(kind: FileGenType, at: UnixTime, started: UnixTime, pid: u32) -> String {
    let day = at.secs().div_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(day);
    match kind {
        FileGenType::None => String::new(),
        FileGenType::Pid => format!(".{pid}"),
        FileGenType::Day => format!(".{y:04}{m:02}{d:02}"),
        FileGenType::Week => {
            let (iso_year, week) = iso_week(day);
            format!(".{iso_year:04}w{week:02}")
        }
        FileGenType::Month => format!(".{y:04}{m:02}"),
        FileGenType::Year => format!(".{y:04}"),
        FileGenType::Age => {
            let up = (at.secs() - started.secs()).max(0);
            format!(".a{:08}", up - up % SECS_PER_DAY)
        }
    }
}

/// (year, month 1–12, day 1–31) of a day number since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day number of 1 January of `year`.
fn days_from_civil_jan1(year: i64) -> i64 {
    let y = year - 1;
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    // 1 January is day 306 of the March-based year before.
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + 306;
    era * 146_097 + doe - 719_468
}

/// The ISO 8601 (year, week) of a day number since 1970-01-01.
fn iso_week(day: i64) -> (i64, i64) {
    // 1970-01-01 was a Thursday; ISO weekday 1 = Monday.
    let weekday = (day + 3).rem_euclid(7) + 1;
    let thursday = day - weekday + 4;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil_jan1(year)) / 7 + 1;
    (year, week)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> UnixTime {
        UnixTime::new(secs, 0)
    }

    /// 2026-12-07 02:30:00 UTC, a Monday.
    const NOW: i64 = 1_796_610_600;

    #[test]
    fn suffixes_are_ntpds() {
        let started = t(NOW - 3 * SECS_PER_DAY - 10);
        let s = |kind| suffix(kind, t(NOW), started, 4242);
        assert_eq!(s(FileGenType::None), "");
        assert_eq!(s(FileGenType::Pid), ".4242");
        assert_eq!(s(FileGenType::Day), ".20261207");
        assert_eq!(s(FileGenType::Week), ".2026w50");
        assert_eq!(s(FileGenType::Month), ".202612");
        assert_eq!(s(FileGenType::Year), ".2026");
        assert_eq!(s(FileGenType::Age), ".a00259200");
    }

    #[test]
    fn iso_weeks_cross_year_boundaries() {
        // 2027-01-01 is a Friday: ISO week 53 of 2026.
        let jan1 = (NOW / SECS_PER_DAY) + 25;
        assert_eq!(civil_from_days(jan1), (2027, 1, 1));
        assert_eq!(iso_week(jan1), (2026, 53));
        // 2024-12-30 is a Monday: ISO week 1 of 2025.
        assert_eq!(iso_week(20_087), (2025, 1));
        assert_eq!(civil_from_days(20_087), (2024, 12, 30));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn day_generations_rotate_at_midnight_and_link_follows() {
        let dir = crate::safefile::tests::scratch("filegen-day");
        let spec = FileGenSpec {
            dir: dir.clone(),
            file: "loopstats".into(),
            kind: FileGenType::Day,
            link: true,
        };
        let midnight = NOW - NOW % SECS_PER_DAY + SECS_PER_DAY;
        let mut fg = FileGen::new(spec.clone(), t(NOW), 1);
        fg.write(t(midnight - 1), "a\n");
        fg.write(t(midnight), "b\n");
        // A restart appends to the same generation.
        let mut again = FileGen::new(spec, t(NOW), 2);
        again.write(t(midnight + 5), "c\n");
        let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read("loopstats.20261207"), "a\n");
        assert_eq!(read("loopstats.20261208"), "b\nc\n");
        assert_eq!(
            read("loopstats"),
            "b\nc\n",
            "the link names the newest generation"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_loses_lines_and_recovers() {
        let dir = crate::safefile::tests::scratch("filegen-gone");
        fs::remove_dir(&dir).unwrap();
        let mut fg = FileGen::new(
            FileGenSpec {
                dir: dir.clone(),
                file: "peerstats".into(),
                kind: FileGenType::None,
                link: true,
            },
            t(NOW),
            1,
        );
        fg.write(t(NOW), "lost\n");
        assert!(fg.failing.is_some());
        fs::create_dir_all(&dir).unwrap();
        fg.write(t(NOW), "kept\n");
        assert!(fg.failing.is_none());
        assert_eq!(fs::read_to_string(dir.join("peerstats")).unwrap(), "kept\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = crate::safefile::tests::scratch("filegen-link");
        let target = dir.join("victim");
        fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("sysstats")).unwrap();
        let mut fg = FileGen::new(
            FileGenSpec {
                dir: dir.clone(),
                file: "sysstats".into(),
                kind: FileGenType::None,
                link: false,
            },
            t(NOW),
            1,
        );
        fg.write(t(NOW), "x\n");
        assert_eq!(fs::read_to_string(&target).unwrap(), "");
        assert!(fg.failing.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn links_planted_at_the_base_and_temporary_names_are_replaced_not_followed() {
        let dir = crate::safefile::tests::scratch("filegen-base");
        let victim = dir.join("victim");
        fs::write(&victim, "secret\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("loopstats")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(".loopstats.link")).unwrap();
        let mut fg = FileGen::new(
            FileGenSpec {
                dir: dir.clone(),
                file: "loopstats".into(),
                kind: FileGenType::Day,
                link: true,
            },
            t(NOW),
            1,
        );
        fg.write(t(NOW), "line\n");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "secret\n");
        let base = fs::symlink_metadata(dir.join("loopstats")).unwrap();
        assert!(!base.file_type().is_symlink() && base.nlink() == 2);
        assert_eq!(fs::read_to_string(dir.join("loopstats")).unwrap(), "line\n");
        assert!(fs::symlink_metadata(dir.join(".loopstats.link")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_fifo_is_refused_not_waited_on() {
        let dir = crate::safefile::tests::scratch("filegen-fifo");
        let fifo = dir.join("loopstats");
        crate::safefile::tests::mkfifo(&fifo);
        let mut fg = FileGen::new(
            FileGenSpec {
                dir: dir.clone(),
                file: "loopstats".into(),
                kind: FileGenType::None,
                link: false,
            },
            t(NOW),
            1,
        );
        fg.write(t(NOW), "x\n");
        assert!(fg.failing.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }
}
