//! SIGHUP (`systemctl reload ntp`): re-read ntp.conf and apply what changed, without a restart.
//!
//! Classic ntpd cannot do this; sundial can because the parts of a configuration are
//! independent once typed:
//!
//! * `server`/`pool`/`peer` lines are compared by what they ask for, not where they stand: a
//!   new line starts its associations, a removed line stops them, and an unchanged line keeps
//!   its association — filter, reach register and poll interval included. A line whose options
//!   changed is a removed line plus a new one.
//! * `restrict`, `interface`, `discard`/`limit` and `tos` take effect at once.
//! * The keys file and `trustedkey` are read again on every reload, whether ntp.conf changed
//!   or not (`keys::load_trusted`, applied by the main loop); a keys file with errors keeps
//!   the running keys.
//! * The clock discipline, the frequency and the drift file are never touched. Directives that
//!   only make sense at start-up (`driftfile`, `logfile`, `pidfile`, `statsdir`, reference
//!   clocks, `tinker`, …) keep their running values; a changed one is named in the log.
//!
//! A file with errors changes nothing: the running configuration stays, and the log names the
//! errors with file:line:column.
//!
//! [`plan`] is the pure part (old config + new config → [`Plan`]), [`apply`] the thin step that
//! hands the plan to the running pieces.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use sundial_proto::time::MonoTime;

use crate::associations::Associations;
use crate::cli::NtpdArgs;
use crate::config::{self, Association, Config, Finding, LoadError, Location, Severity};
use crate::setup::Runtime;
use crate::timekeeper::Timekeeper;

/// Why a reload changed nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// The file could not be read.
    Read(LoadError),
    /// The file has errors (the findings of severity error, in file order).
    Invalid(Vec<Finding>),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "{e}"),
            Self::Invalid(errors) => {
                write!(f, "configuration rejected, {} error(s)", errors.len())?;
                for e in errors {
                    write!(f, "; {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Reads `path` for a reload; a file with any error is rejected as a whole. On success the
/// findings (warnings, notices) come along for the log.
pub fn load(path: &Path) -> Result<(Config, Vec<Finding>), ReloadError> {
    let (config, findings) = config::load(path).map_err(ReloadError::Read)?;
    let errors: Vec<Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .cloned()
        .collect();
    if errors.is_empty() {
        Ok((config, findings))
    } else {
        Err(ReloadError::Invalid(errors))
    }
}

/// What a reload does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Lines to start associations for, in file order.
    pub add: Vec<Association>,
    /// Lines whose associations stop.
    pub remove: Vec<Association>,
    /// Lines present before and after: their associations carry on untouched.
    pub kept: usize,
    /// The `restrict`/`unrestrict` lines changed.
    pub restrict: bool,
    /// The `interface`/`nic` rules changed.
    pub interfaces: bool,
    /// `discard` or `limit` changed.
    pub limits: bool,
    /// `tos` changed.
    pub tos: bool,
    /// Directives that changed but take effect only at the next start.
    pub at_restart: Vec<&'static str>,
}

impl Plan {
    /// Whether the reload changes anything at all.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && !self.restrict
            && !self.interfaces
            && !self.limits
            && !self.tos
            && self.at_restart.is_empty()
    }
}

/// A line with its position blanked, so that moving a line is no change.
fn key(a: &Association) -> Association {
    Association {
        location: Location::new("", 0, 0),
        ..a.clone()
    }
}

/// Compares two configurations. Reference clock lines (the local clock driver) are start-up
/// directives, listed in [`Plan::at_restart`] when they change.
pub fn plan(old: &Config, new: &Config) -> Plan {
    let network = |c: &Config| -> Vec<Association> {
        c.associations
            .iter()
            .filter(|a| !matches!(a.address, config::HostSpec::Refclock(_)))
            .map(key)
            .collect()
    };
    let (before, after) = (network(old), network(new));
    let mut plan = Plan::default();
    let mut seen = HashSet::new();
    for line in &after {
        let position = new
            .associations
            .iter()
            .find(|a| key(a) == *line)
            .cloned()
            .unwrap_or_else(|| line.clone());
        if !seen.insert(format!("{line:?}")) {
            continue;
        }
        if before.contains(line) {
            plan.kept += 1;
        } else {
            plan.add.push(position);
        }
    }
    let mut gone = HashSet::new();
    for line in &before {
        if !after.contains(line) && gone.insert(format!("{line:?}")) {
            plan.remove.push(line.clone());
        }
    }
    let refclocks = |c: &Config| -> Vec<Association> {
        c.associations
            .iter()
            .filter(|a| matches!(a.address, config::HostSpec::Refclock(_)))
            .map(key)
            .collect()
    };
    let restrict_key = |c: &Config| -> Vec<String> {
        c.restrictions
            .iter()
            .map(|r| format!("{:?}{:?}{}", r.target, r.flags, r.unrestrict))
            .collect()
    };
    let interface_key = |c: &Config| -> Vec<String> {
        c.interfaces
            .iter()
            .map(|r| format!("{:?}{:?}", r.action, r.target))
            .collect()
    };
    plan.restrict = restrict_key(old) != restrict_key(new);
    plan.interfaces = interface_key(old) != interface_key(new);
    plan.limits = old.discard != new.discard || old.limit != new.limit;
    plan.tos = old.tos != new.tos;
    let start_up: [(&'static str, bool); 12] = [
        (
            "driftfile",
            old.driftfile != new.driftfile || old.nonvolatile != new.nonvolatile,
        ),
        ("logfile", old.logfile != new.logfile),
        ("pidfile", old.pidfile != new.pidfile),
        ("statsdir/statistics/filegen", {
            old.statsdir != new.statsdir
                || old.statistics != new.statistics
                || old.filegens != new.filegens
        }),
        (
            "reference clocks (server 127.127.t.u)",
            refclocks(old) != refclocks(new),
        ),
        ("fudge", old.fudges != new.fudges),
        ("tinker", old.tinker != new.tinker),
        ("enable/disable", old.system_flags != new.system_flags),
        ("leapfile", old.leapfile != new.leapfile),
        ("metrics", old.metrics != new.metrics),
        ("mru", old.mru != new.mru),
        (
            "setvar",
            old.setvars != new.setvars || old.logconfig != new.logconfig,
        ),
    ];
    plan.at_restart = start_up
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
    plan
}

/// Applies a reloaded `new` configuration to the running daemon and makes it the current one.
pub fn apply(
    args: &NtpdArgs,
    current: &mut Config,
    new: Config,
    runtime: &mut Runtime,
    associations: &mut Associations,
    timekeeper: &mut Timekeeper,
    now: MonoTime,
) {
    let plan = plan(current, &new);
    if plan.is_empty() {
        tracing::info!("SIGHUP: configuration unchanged");
        *current = new;
        return;
    }
    for line in &plan.remove {
        let stopped = associations.remove_configured(line, timekeeper.system_mut());
        tracing::info!(
            "SIGHUP: {} removed, {stopped} association(s) stopped",
            describe(line)
        );
    }
    for line in &plan.add {
        tracing::info!("SIGHUP: {} added", describe(line));
        associations.add_configured(line.clone(), timekeeper.system_mut(), now);
    }
    if plan.restrict || plan.interfaces || plan.limits {
        runtime.reconfigure(&new, args);
    }
    if plan.tos {
        associations.set_maxclock(new.tos.maxclock);
    }
    if plan.restrict || plan.tos {
        timekeeper.reconfigure(&new, runtime);
    }
    for (changed, what) in [
        (plan.restrict, "restrict lines"),
        (plan.interfaces, "interface rules"),
        (plan.limits, "discard/limit"),
        (plan.tos, "tos"),
    ] {
        if changed {
            tracing::info!("SIGHUP: new {what} in force");
        }
    }
    for what in &plan.at_restart {
        tracing::warn!("SIGHUP: {what} changed; this takes effect when ntpd restarts");
    }
    tracing::info!(
        "SIGHUP: configuration reloaded: {} association line(s) added, {} removed, {} unchanged",
        plan.add.len(),
        plan.remove.len(),
        plan.kept
    );
    *current = new;
}

/// "server 192.0.2.1" / "pool pool.example.org" for the log.
fn describe(line: &Association) -> String {
    let kind = match line.kind {
        config::AssociationKind::Server => "server",
        config::AssociationKind::Pool => "pool",
        config::AssociationKind::Peer => "peer",
    };
    format!("{kind} {}", line.address)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn parse(text: &str) -> Config {
        let (config, findings) = config::parse_str(text, Path::new("/etc/ntp.conf"));
        assert!(
            findings.iter().all(|f| f.severity != Severity::Error),
            "{findings:?}"
        );
        config
    }

    fn names(lines: &[Association]) -> Vec<String> {
        lines.iter().map(describe).collect()
    }

    #[test]
    fn unchanged_and_moved_lines_are_kept() {
        let old = parse("server 192.0.2.1 iburst\nserver 192.0.2.2\n");
        let new = parse("# moved\nserver 192.0.2.2\n\nserver 192.0.2.1 iburst\n");
        let p = plan(&old, &new);
        assert_eq!(p.kept, 2);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn new_lines_are_added_and_missing_ones_removed() {
        let old = parse("server 192.0.2.1\npool pool.example.org iburst\n");
        let new = parse("server 192.0.2.1\nserver 192.0.2.3\n");
        let p = plan(&old, &new);
        assert_eq!(names(&p.add), ["server 192.0.2.3"]);
        assert_eq!(names(&p.remove), ["pool pool.example.org"]);
        assert_eq!(p.kept, 1);
        // The line to add carries its real position, for the log and for `ntpq`.
        assert_eq!(p.add[0].location.line, 2);
    }

    #[test]
    fn changed_options_replace_the_association() {
        let old = parse("server 192.0.2.1 minpoll 6\n");
        let new = parse("server 192.0.2.1 minpoll 4\n");
        let p = plan(&old, &new);
        assert_eq!((p.add.len(), p.remove.len(), p.kept), (1, 1, 0));
    }

    #[test]
    fn restrict_interface_limit_and_tos_changes_are_seen() {
        let old = parse("restrict default nomodify\n");
        let p = plan(&old, &parse("restrict default nomodify noquery\n"));
        assert!(p.restrict && !p.interfaces && !p.limits && !p.tos);
        let p = plan(
            &old,
            &parse("restrict default nomodify\ninterface ignore wildcard\n"),
        );
        assert!(p.interfaces && !p.restrict);
        let p = plan(
            &old,
            &parse("restrict default nomodify\ndiscard average 4\n"),
        );
        assert!(p.limits);
        let p = plan(&old, &parse("restrict default nomodify\ntos minsane 2\n"));
        assert!(p.tos);
        assert!(p.add.is_empty() && p.remove.is_empty() && p.at_restart.is_empty());
    }

    #[test]
    fn start_up_directives_are_reported_not_applied() {
        let old = parse("driftfile /var/lib/ntp/ntp.drift\nserver 127.127.1.0\n");
        let new = parse("driftfile /tmp/other.drift\n");
        let p = plan(&old, &new);
        assert_eq!(
            p.at_restart,
            ["driftfile", "reference clocks (server 127.127.t.u)"]
        );
        assert!(p.add.is_empty() && p.remove.is_empty());
    }

    #[test]
    fn duplicate_lines_count_once() {
        let p = plan(
            &Config::default(),
            &parse("server 192.0.2.1\nserver 192.0.2.1\n"),
        );
        assert_eq!(p.add.len(), 1);
    }

    #[test]
    fn a_file_with_errors_is_rejected_with_its_locations() {
        let dir = std::env::temp_dir().join(format!("sundial-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path: PathBuf = dir.join("ntp.conf");
        std::fs::write(&path, "server 192.0.2.1\nrestrict default nomodfy\n").expect("write");
        let e = load(&path).expect_err("an unknown restrict flag is an error");
        let text = e.to_string();
        assert!(
            text.contains(&format!("{}:2:", path.display())),
            "file:line:column missing: {text}"
        );
        std::fs::write(&path, "server 192.0.2.1\n").expect("write");
        assert!(load(&path).is_ok());
        assert!(matches!(
            load(&dir.join("missing.conf")),
            Err(ReloadError::Read(_))
        ));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
