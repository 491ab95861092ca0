//! Tests of the ntp.conf parser, by theme: the reference configurations, each directive, the
//! findings for bad input, and includes.

mod associations;
mod directives;
mod findings;
mod includes;
mod reference;

use std::fs;
use std::path::{Path, PathBuf};

use super::{Config, Finding, Severity, parse_str};

/// The file name findings carry in tests that need no real file.
const CONF: &str = "/etc/ntp.conf";

/// Parses `text` as `/etc/ntp.conf`.
fn parse(text: &str) -> (Config, Vec<Finding>) {
    parse_str(text, Path::new(CONF))
}

/// Parses text that must produce no findings at all.
fn parse_clean(text: &str) -> Config {
    let (config, findings) = parse(text);
    assert!(findings.is_empty(), "unexpected findings: {findings:#?}");
    config
}

/// The findings of `severity`, as `line:column token`, for compact assertions.
fn positions(findings: &[Finding], severity: Severity) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| format!("{}:{} {}", f.location.line, f.location.column, f.token))
        .collect()
}

/// Whether any finding is an error.
fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_error)
}

/// A scratch directory under the system temp dir, removed on drop. Names include the process
/// id and the test's name, so parallel tests and runs never collide.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("sundial-config-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Writes `text` to `relative` (creating directories) and returns the full path.
    fn write(&self, relative: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
