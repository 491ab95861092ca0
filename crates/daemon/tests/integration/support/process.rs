//! Starting and stopping child processes with bounded waits, and the no-CAP_SYS_TIME wrapper.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often a bounded wait looks at a child.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Upper bound for one run of a client tool through [`run`].
pub(crate) const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run of a tool printed.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Exit status 0.
    pub(crate) success: bool,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

impl Run {
    /// The run that produced `out`.
    pub(crate) fn of(out: &Output) -> Self {
        Self {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Both outputs, for matching messages wherever the tool printed them.
    pub(crate) fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion within [`TOOL_TIMEOUT`] (see [`output_within`]).
pub(crate) fn run(cmd: &mut Command) -> Run {
    Run::of(&output_within(cmd, TOOL_TIMEOUT))
}

/// Starts `cmd` in the background with stdin closed and stdout and stderr going to a new file at
/// `log`.
///
/// # Panics
/// If the log file cannot be created or the command cannot be started.
pub(crate) fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let out = File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// A command that runs `program` without CAP_SYS_TIME, in its bounding and inheritable sets, so
/// neither it nor anything it starts can step, slew or re-discipline the machine's clock (any such
/// call fails with EPERM). Every real NTP daemon or tool a test starts goes through this, even
/// though the suite itself already runs that way (tools/test-all).
pub(crate) fn notime(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(NOTIME_ARGS).arg(program);
    cmd
}

/// The arguments that make `setpriv` drop CAP_SYS_TIME before running the command after them.
pub(crate) const NOTIME_ARGS: [&str; 5] = [
    "--bounding-set",
    "-sys_time",
    "--inh-caps",
    "-sys_time",
    "--",
];

/// Runs `cmd` to completion with stdin closed, killing it if it takes longer than `timeout`.
///
/// # Panics
/// If the command cannot be started or outlives `timeout`.
pub(crate) fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_within(&mut child, timeout);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not finish within {timeout:?}");
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Waits up to `timeout` for `child` to exit.
pub(crate) fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Sends `signal` (a kill(1) name such as `HUP`) to process `pid`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends SIGTERM to `child` (std only knows SIGKILL, and raw libc calls live only in
/// `sundial-sys`, so this goes through kill(1)).
pub(crate) fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops `child`: SIGTERM, up to `grace` to exit, then SIGKILL. Returns the exit status and whether
/// SIGTERM alone was enough.
pub(crate) fn stop(child: &mut Child, grace: Duration) -> (Option<ExitStatus>, bool) {
    if let Ok(Some(status)) = child.try_wait() {
        return (Some(status), true);
    }
    terminate(child);
    if let Some(status) = wait_within(child, grace) {
        return (Some(status), true);
    }
    let _ = child.kill();
    (wait_within(child, grace), false)
}

/// Reads a child's pipe to the end on a separate thread, so a chatty child never blocks on a full
/// pipe while the test waits for it.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}
