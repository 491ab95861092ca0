//! Reading files: the top-level config, `includefile` (files and directories), and the checks
//! that need the whole configuration.
//!
//! Relative include paths are resolved against the including file's directory (NTPsec's rule,
//! and what ntp.org does in practice since its configs use absolute paths); classic ntpd's
//! "relative to the current directory" would make a config mean different things under
//! systemd (CWD `/`) and in a shell. A cycle is detected by canonical path, so a symlinked or
//! `..`-laden path cannot sneak around it; including the same file twice without a cycle is
//! allowed, as in ntpd.

use std::fs;
use std::path::{Path, PathBuf};

use super::address::RefclockId;
use super::directives::{LineCtx, apply};
use super::finding::{Diag, Finding, Location, Severity};
use super::lexer::{Args, Token, tokenize};
use super::types::Config;

/// Deepest `includefile` nesting: the top file is depth 0 and files may be included down to
/// depth 5 (`MAXINCLUDELEVEL` in ntp.org `ntpd/ntp_scanner.c`).
pub const MAX_INCLUDE_DEPTH: usize = 5;

/// Most octets read for one configuration, the top file and every includefile together. Depth
/// alone does not bound the work: a handful of files that each include the next many times
/// multiply (40 includes over 5 levels would be 10^8 file reads). Real configurations are a
/// few kilobytes.
pub const MAX_TOTAL_BYTES: u64 = 4 << 20;

/// Most lines parsed for one configuration, counted like [`MAX_TOTAL_BYTES`].
pub const MAX_TOTAL_LINES: u64 = 100_000;

/// File name suffix a directory include picks up (NTPsec's `*.conf`).
const DIRECTORY_SUFFIX: &str = ".conf";

/// Accumulates the configuration and findings across a file and everything it includes.
#[derive(Debug, Default)]
pub(super) struct Loader {
    config: Config,
    findings: Vec<Finding>,
    /// The include chain, outermost first, by canonical path (for cycle detection) and by the
    /// name used (for messages).
    stack: Vec<(PathBuf, PathBuf)>,
    /// Octets and lines read so far, against [`MAX_TOTAL_BYTES`] and [`MAX_TOTAL_LINES`].
    bytes_read: u64,
    lines_read: u64,
    /// Set once a budget ran out: nothing more is read or parsed.
    exhausted: bool,
}

impl Loader {
    /// Parses `text` as the contents of the top-level file `file`.
    pub(super) fn run(mut self, text: &str, file: &Path) -> (Config, Vec<Finding>) {
        self.stack.push((identity(file), file.to_path_buf()));
        self.parse_lines(text, file);
        self.stack.pop();
        self.finish()
    }

    /// Decodes a file's bytes: invalid UTF-8 (a Latin-1 comment, say) is replaced and reported
    /// once instead of losing the whole file.
    pub(super) fn decode(&mut self, bytes: Vec<u8>, file: &Path) -> String {
        match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                let valid_up_to = err.utf8_error().valid_up_to();
                let bytes = err.into_bytes();
                let valid = bytes
                    .get(..valid_up_to)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .unwrap_or_default();
                let line = valid.matches('\n').count().saturating_add(1);
                let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
                let column = valid.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
                self.findings.push(Finding {
                    severity: Severity::Warning,
                    location: Location::new(file, to_u32(line), to_u32(column)),
                    token: String::new(),
                    message: "file is not valid UTF-8; invalid bytes were replaced".to_owned(),
                });
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }

    fn parse_lines(&mut self, text: &str, file: &Path) {
        // Editors on Windows may start a file with a byte-order mark; it is not a keyword.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        self.bytes_read = self.bytes_read.saturating_add(text.len() as u64);
        for (index, line_text) in text.lines().enumerate() {
            let line = to_u32(index.saturating_add(1));
            if self.exhausted {
                return;
            }
            self.lines_read += 1;
            if self.lines_read > MAX_TOTAL_LINES {
                self.exhausted = true;
                self.findings.push(Finding {
                    severity: Severity::Error,
                    location: Location::new(file, line, 1),
                    token: String::new(),
                    message: format!(
                        "the configuration and its includefiles are longer than \
                         {MAX_TOTAL_LINES} lines in all; the rest is ignored"
                    ),
                });
                return;
            }
            let tokens = match tokenize(line_text) {
                Ok(tokens) => tokens,
                Err(diag) => {
                    self.findings.push(diag.into_finding(file, line));
                    continue;
                }
            };
            let Some((keyword, rest)) = tokens.split_first() else {
                continue;
            };
            let mut args = Args::new(*keyword, rest);
            if keyword.is("includefile") {
                if let Err(diag) = self.include(&mut args, file, line) {
                    self.findings.push(diag.into_finding(file, line));
                }
                continue;
            }
            let mut notes = Vec::new();
            let result = apply(
                &mut LineCtx {
                    config: &mut self.config,
                    notes: &mut notes,
                    file,
                    line,
                },
                &mut args,
            );
            self.findings
                .extend(notes.into_iter().map(|d| d.into_finding(file, line)));
            if let Err(diag) = result {
                self.findings.push(diag.into_finding(file, line));
            }
        }
    }

    /// `includefile FILE|DIR`.
    fn include(&mut self, args: &mut Args<'_, '_>, file: &Path, line: u32) -> Result<(), Diag> {
        let arg = args.required("a file or directory name")?;
        args.finish()?;
        if arg.text.is_empty() {
            return Err(arg.error("empty file name"));
        }
        let target = match Path::new(arg.text) {
            path if path.is_absolute() => path.to_path_buf(),
            path => file.parent().unwrap_or_else(|| Path::new("")).join(path),
        };
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            return Err(arg.error(format!(
                "includefile nesting is deeper than {MAX_INCLUDE_DEPTH}"
            )));
        }
        let metadata = fs::metadata(&target)
            .map_err(|e| arg.error(format!("cannot read includefile {}: {e}", target.display())))?;
        if metadata.is_file() {
            return self.include_file(&target, arg);
        }
        if !metadata.is_dir() {
            // A device or FIFO (`/dev/zero`) would never finish reading.
            return Err(arg.error(format!(
                "includefile {} is not a regular file",
                target.display()
            )));
        }
        let entries = fs::read_dir(&target)
            .map_err(|e| arg.error(format!("cannot read directory {}: {e}", target.display())))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.ends_with(DIRECTORY_SUFFIX) && !name.starts_with('.'))
                    && path.is_file()
            })
            .collect();
        files.sort();
        for path in files {
            if let Err(diag) = self.include_file(&path, arg) {
                self.findings.push(diag.into_finding(file, line));
            }
        }
        Ok(())
    }

    fn include_file(&mut self, path: &Path, arg: Token<'_>) -> Result<(), Diag> {
        let id = identity(path);
        if self.stack.iter().any(|(seen, _)| *seen == id) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .map(|(_, named)| named.display().to_string())
                .chain(std::iter::once(path.display().to_string()))
                .collect();
            return Err(arg.error(format!("include cycle: {}", chain.join(" -> "))));
        }
        if self.exhausted {
            return Ok(());
        }
        let left = MAX_TOTAL_BYTES.saturating_sub(self.bytes_read);
        let bytes = match crate::safefile::read_config(path, left) {
            Ok(bytes) => bytes,
            Err(crate::safefile::ReadError::TooLarge(..)) => {
                self.exhausted = true;
                return Err(arg.error(format!(
                    "includefile {}: the configuration and its includefiles are larger than \
                     {MAX_TOTAL_BYTES} octets in all; the rest is ignored",
                    path.display()
                )));
            }
            Err(e) => return Err(arg.error(format!("cannot read includefile {e}"))),
        };
        let text = self.decode(bytes, path);
        self.stack.push((id, path.to_path_buf()));
        self.parse_lines(&text, path);
        self.stack.pop();
        Ok(())
    }

    /// Checks that need the whole configuration, then hands it over.
    fn finish(mut self) -> (Config, Vec<Finding>) {
        for fudge in &self.config.fudges {
            for option in super::refclock::unused_fudge_options(fudge) {
                let driver = fudge.clock.driver_name().unwrap_or("this driver");
                self.findings.push(Finding {
                    severity: Severity::Warning,
                    location: fudge.location.clone(),
                    token: option.to_owned(),
                    message: if option == "flag3" && fudge.clock.kind == RefclockId::PPS {
                        "PPS flag3 (the kernel's PPS discipline) is not supported: sundial \
                         disciplines the clock itself; ignored"
                            .to_owned()
                    } else {
                        format!("fudge {option} has no effect for {driver}; ignored")
                    },
                });
            }
            let configured = self
                .config
                .associations
                .iter()
                .any(|a| a.refclock() == Some(fudge.clock));
            if !configured {
                self.findings.push(Finding {
                    severity: Severity::Warning,
                    location: fudge.location.clone(),
                    token: fudge.clock.to_string(),
                    message: "fudge for a reference clock that no server line configures"
                        .to_owned(),
                });
            }
        }
        (self.config, self.findings)
    }
}

/// A file's identity for cycle detection: its canonical path, or the absolute path when it
/// does not exist (a [`parse_str`](super::parse_str) name).
fn identity(path: &Path) -> PathBuf {
    fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
