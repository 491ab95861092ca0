//! How ntpd tells whoever started it that start-up worked — or why it did not.
//!
//! Classic daemons fork and let the parent exit 0 at once, so an unknown `-u` user or a port
//! already in use shows up only in the log while the init script reports success. sundial's
//! parent instead waits on a pipe (see [`sundial_sys::process::detach`]) until the daemon has
//! bound its sockets, dropped privileges and written its pid file: it then exits 0; if the
//! daemon fails first, the parent prints the daemon's error on its own standard error and exits
//! with status 1. In the foreground (`-n`) the error is printed directly, and under systemd
//! (`Type=notify`) `READY=1` is sent at the same point ([`crate::notify`]).
//!
//! The pipe carries one message: `READY`, or `FAILED` followed by the error text.

use std::fs::File;
use std::io::{self, Read, Write};

use sundial_sys::process::Detached;

use crate::notify::Notifier;

/// What the daemon writes when it is up.
const READY: &str = "READY\n";

/// What the daemon writes, followed by the error text, when it gives up.
const FAILED: &str = "FAILED\n";

/// The longest error text the parent reads; the rest would only be a flood.
const MAX_MESSAGE: u64 = 4096;

/// The start-up reporting channels: the parent's pipe after [`Startup::detach`], and the service
/// manager's notification socket.
#[derive(Debug)]
pub struct Startup {
    handshake: Option<File>,
    notifier: Notifier,
}

impl Startup {
    /// Reporting to `$NOTIFY_SOCKET` if it is set, and to nobody else yet.
    pub fn from_env() -> Self {
        Self {
            handshake: None,
            notifier: Notifier::from_env(),
        }
    }

    /// Detaches from the terminal. Returns in the daemon only: the calling process waits for
    /// the daemon's report and exits with 0 (started) or 1 (failed, the reason on stderr).
    pub fn detach(&mut self) -> io::Result<()> {
        match sundial_sys::process::detach()? {
            Detached::Parent(pipe) => {
                let code = wait_for_daemon(pipe, &mut io::stderr().lock());
                std::process::exit(code)
            }
            Detached::Daemon(pipe) => {
                self.handshake = Some(pipe);
                Ok(())
            }
        }
    }

    /// Start-up is complete: sockets bound, privileges dropped, pid file written.
    pub fn ready(&mut self, status: &str) {
        if let Some(mut pipe) = self.handshake.take() {
            // If the parent is gone there is nobody left to tell.
            let _ = pipe.write_all(READY.as_bytes());
        }
        self.notifier.ready(status);
    }

    /// Start-up failed with `message`; the parent (if any) repeats it and exits 1.
    pub fn failed(&mut self, message: &str) {
        if let Some(mut pipe) = self.handshake.take() {
            let _ = pipe.write_all(format!("{FAILED}{message}").as_bytes());
        }
        self.notifier.send(&format!("STATUS=failed: {message}"));
    }

    /// The service manager's channel, for status updates while running.
    pub fn notifier(&mut self) -> &mut Notifier {
        &mut self.notifier
    }
}

/// Whether this process already runs as `user` (and `group`, default the user's primary group):
/// real, effective and saved ids alike, as under a systemd unit with `User=` that hands over
/// `CAP_SYS_TIME` as an ambient capability. `-u` then has nothing left to drop — and could not,
/// for lack of `CAP_SETUID`. Fails like `-u` itself for an unknown user or group.
pub fn already_running_as(user: &str, group: Option<&str>) -> io::Result<bool> {
    let ids = sundial_sys::privileges::lookup_user(user)?;
    let gid = match group {
        Some(g) => sundial_sys::privileges::lookup_group(g)?,
        None => ids.gid,
    };
    let status = std::fs::read_to_string("/proc/self/status")?;
    Ok(ids_are(&status, "Uid:", ids.uid) && ids_are(&status, "Gid:", gid))
}

/// Whether the real, effective, saved and file-system ids on the `field` line of
/// /proc/self/status all equal `id`.
fn ids_are(status: &str, field: &str, id: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() == 4 && ids.iter().all(|v| v.parse() == Ok(id))
        })
}

/// The parent's side: reads the daemon's report from `pipe` and returns the exit status,
/// writing the daemon's error (or that it died silently) to `stderr`.
fn wait_for_daemon(pipe: impl Read, stderr: &mut impl Write) -> i32 {
    let mut text = String::new();
    let read = pipe.take(MAX_MESSAGE).read_to_string(&mut text);
    if read.is_ok() && text == READY {
        return 0;
    }
    let message = match text.strip_prefix(FAILED) {
        Some(message) => message.trim_end().to_owned(),
        None if read.is_err() => "cannot read the daemon's start-up report".to_owned(),
        None => "the daemon exited during start-up without saying why (see the log)".to_owned(),
    };
    let _ = writeln!(stderr, "ntpd: {message}");
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent_sees(report: &str) -> (i32, String) {
        let mut stderr = Vec::new();
        let code = wait_for_daemon(report.as_bytes(), &mut stderr);
        (code, String::from_utf8_lossy(&stderr).into_owned())
    }

    #[test]
    fn ids_match_only_when_all_four_do() {
        let status = "Name:\tntpd\nUid:\t107\t107\t107\t107\nGid:\t112\t112\t112\t112\n";
        assert!(ids_are(status, "Uid:", 107) && ids_are(status, "Gid:", 112));
        let root_saved = "Uid:\t107\t107\t0\t107\n";
        assert!(!ids_are(root_saved, "Uid:", 107));
        assert!(!ids_are("", "Uid:", 0));
    }

    #[test]
    fn root_is_not_already_an_unprivileged_user() {
        assert!(!already_running_as("nobody", None).expect("nobody exists"));
        assert!(already_running_as("sundial-no-such-user", None).is_err());
    }

    #[test]
    fn a_ready_daemon_lets_the_parent_exit_zero_silently() {
        assert_eq!(parent_sees("READY\n"), (0, String::new()));
    }

    #[test]
    fn a_failed_daemon_makes_the_parent_repeat_the_error_and_exit_one() {
        assert_eq!(
            parent_sees("FAILED\ncannot drop privileges: no user nosuchuser"),
            (
                1,
                "ntpd: cannot drop privileges: no user nosuchuser\n".to_owned()
            )
        );
    }

    #[test]
    fn a_daemon_that_dies_silently_is_a_failure_too() {
        let (code, stderr) = parent_sees("");
        assert_eq!(code, 1);
        assert!(stderr.contains("exited during start-up"), "{stderr}");
    }
}
