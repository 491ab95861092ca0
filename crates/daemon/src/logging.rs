//! Where ntpd's log goes: standard error in the foreground (`-n`), a file (`-l` or `logfile`),
//! or syslog otherwise — the classic ntpd choices.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sundial_sys::syslog::Priority;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Permission bits of a log file ntpd creates.
const LOG_FILE_MODE: u32 = 0o644;

/// The log file in use (its path and the handle every writer shares), for [`reopen`].
static LOG_FILE: Mutex<Option<(PathBuf, Arc<Mutex<File>>)>> = Mutex::new(None);

/// The log destination.
#[derive(Debug)]
pub enum Destination<'a> {
    /// Standard error, with timestamps.
    Stderr,
    /// Appended to a file, with timestamps (never through a symbolic link, see `safefile`).
    File(&'a Path),
    /// syslog (journald picks it up on systemd hosts), facility daemon.
    Syslog,
}

/// Installs the global logger. `debug` is ntpd's `-d` count: 0 logs info and above, 1 adds
/// debug, 2 or more trace.
pub fn init(destination: Destination<'_>, debug: u8) -> io::Result<()> {
    let level = match debug {
        0 => Level::INFO,
        1 => Level::DEBUG,
        _ => Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let result = match destination {
        Destination::Stderr => builder.with_writer(io::stderr).try_init(),
        Destination::File(path) => {
            let file = Arc::new(Mutex::new(open_log(path)?));
            *LOG_FILE.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((path.to_owned(), Arc::clone(&file)));
            builder.with_writer(SharedFile(file)).try_init()
        }
        Destination::Syslog => {
            sundial_sys::syslog::open("ntpd", sundial_sys::syslog::Facility::Daemon);
            builder
                .without_time()
                .with_level(false)
                .with_writer(Syslog)
                .try_init()
        }
    };
    // A second init (tests) keeps the first logger; that is not an error worth reporting.
    drop(result);
    Ok(())
}

/// Opens the log file for appending, never through a symbolic link or into a FIFO
/// ([`crate::safefile::open_append`]).
fn open_log(path: &Path) -> io::Result<File> {
    crate::safefile::open_append(path, LOG_FILE_MODE)
}

/// Opens the log file again by name (SIGHUP), so that after logrotate has renamed it the log
/// goes on in a fresh file without `copytruncate`. On failure the old file stays in use. Does
/// nothing when the log is not a file.
pub fn reopen() -> io::Result<()> {
    let guard = LOG_FILE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((path, shared)) = guard.as_ref() {
        let fresh = open_log(path)?;
        *shared.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
    }
    Ok(())
}

/// A log file shared by all threads; each event is written with one `write` call.
#[derive(Debug, Clone)]
struct SharedFile(Arc<Mutex<File>>);

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = LineBuffer<FileSink>;
    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer::new(FileSink(Arc::clone(&self.0)))
    }
}

/// Sends each event to syslog at the priority of its level.
#[derive(Debug, Clone, Copy)]
struct Syslog;

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = LineBuffer<SyslogSink>;
    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer::new(SyslogSink(Priority::Info))
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        let priority = match *meta.level() {
            Level::ERROR => Priority::Error,
            Level::WARN => Priority::Warning,
            Level::INFO => Priority::Info,
            _ => Priority::Debug,
        };
        LineBuffer::new(SyslogSink(priority))
    }
}

/// Where a finished log line goes.
trait Sink {
    fn emit(&mut self, line: &[u8]);
}

#[derive(Debug)]
struct FileSink(Arc<Mutex<File>>);

impl Sink for FileSink {
    fn emit(&mut self, line: &[u8]) {
        let mut file = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Nothing sensible can be done if the log itself cannot be written.
        let _ = file.write_all(line);
    }
}

#[derive(Debug)]
struct SyslogSink(Priority);

impl Sink for SyslogSink {
    fn emit(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        sundial_sys::syslog::log(self.0, text.trim_end());
    }
}

/// Collects one event's text and hands it to the sink in one piece when dropped.
#[derive(Debug)]
struct LineBuffer<S: Sink> {
    buf: Vec<u8>,
    sink: S,
}

impl<S: Sink> LineBuffer<S> {
    fn new(sink: S) -> Self {
        Self {
            buf: Vec::with_capacity(128),
            sink,
        }
    }
}

impl<S: Sink> Write for LineBuffer<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Sink> Drop for LineBuffer<S> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.sink.emit(&self.buf);
        }
    }
}
