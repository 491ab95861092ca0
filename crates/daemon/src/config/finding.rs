//! What the parser reports about a configuration besides the [`Config`](super::Config) itself.
//!
//! ntpd never refuses to start over a bad line: it logs `syntax error in FILE line N, column M`
//! and carries on. sundial keeps that contract, so everything it has to say about a file is a
//! [`Finding`] rather than an error return; only an unreadable top-level file is a
//! [`LoadError`], because then there is no configuration at all.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A position in a configuration file, 1-based, as editors and ntpd's own messages count.
///
/// Columns count characters, not bytes, so that the caret lines up in a terminal even when a
/// comment holds non-ASCII text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file as it was named (an includefile's path joined to its includer's directory).
    pub file: PathBuf,
    /// Line number, starting at 1.
    pub line: u32,
    /// Column of the token the location points at, starting at 1.
    pub column: u32,
}

impl Location {
    /// A location in `file`.
    pub fn new(file: impl Into<PathBuf>, line: u32, column: u32) -> Self {
        Self {
            file: file.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// How much a finding matters. `ntpd --check` fails on any [`Severity::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The line (or include) was skipped: a syntax error, an unknown keyword, a value out of
    /// range, an unreadable or cyclic includefile. Classic ntpd skips such lines too.
    Error,
    /// The line was understood but sundial does not do what it asks (broadcast modes,
    /// autokey, …), or a value was adjusted (a clamped poll exponent).
    Warning,
    /// The line takes effect, but not quite as classic ntpd would apply it (`peer` is treated
    /// as `server`, statistics sundial does not write).
    Notice,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Notice => "notice",
        })
    }
}

/// One thing the parser has to say about a line.
///
/// Displays as `FILE:LINE:COL: warning: MESSAGE ('TOKEN')`, the shape compilers use, so
/// editors can jump to it; the token part is left out when there is none (an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// Where: the offending token's position.
    pub location: Location,
    /// The offending token as written (without quotes), or empty.
    pub token: String,
    /// What is wrong, in words an administrator can act on.
    pub message: String,
}

impl Finding {
    /// Whether this finding means a line or include was skipped.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.severity, self.message)?;
        if !self.token.is_empty() {
            write!(f, " ('{}')", self.token)?;
        }
        Ok(())
    }
}

/// Why there is no configuration at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The top-level file could not be read: usually a wrong `-c` path or missing permission.
    /// (An unreadable includefile is only a [`Finding`], as in ntpd.)
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
}

impl LoadError {
    pub(super) fn read(path: &Path, source: io::Error) -> Self {
        Self::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(
                    f,
                    "cannot read configuration file {}: {source}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
        }
    }
}

/// A finding before it knows its file and line: what directive parsers produce. The driver
/// that owns the line turns it into a [`Finding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Diag {
    pub(super) severity: Severity,
    pub(super) column: u32,
    pub(super) token: String,
    pub(super) message: String,
}

impl Diag {
    pub(super) fn new(severity: Severity, column: u32, token: &str, message: String) -> Self {
        Self {
            severity,
            column,
            token: token.to_owned(),
            message,
        }
    }

    pub(super) fn into_finding(self, file: &Path, line: u32) -> Finding {
        Finding {
            severity: self.severity,
            location: Location::new(file, line, self.column),
            token: self.token,
            message: self.message,
        }
    }
}
