//! Classic syslog output through glibc's `openlog`/`syslog`, which is where ntpd logs by default
//! (and where administrators' log rotation and monitoring already look).
//!
//! Messages are always passed as the argument of a `"%s"` format, never as the format itself, so
//! text from the network or a config file cannot be interpreted as format directives.

use std::ffi::CString;
use std::sync::Mutex;

/// The identifier glibc keeps a pointer to after `openlog`; it must outlive every later
/// `syslog` call, so it lives here until the next [`open`] replaces it.
static IDENT: Mutex<Option<CString>> = Mutex::new(None);

/// The facility (`LOG_DAEMON`, …) that routes messages in the syslog configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facility {
    /// `LOG_DAEMON`: system daemons; ntpd's default.
    Daemon,
    /// `LOG_USER`: user programs such as `ntpdate`.
    User,
    /// `LOG_LOCAL0` … `LOG_LOCAL7` (the number is taken modulo 8).
    Local(u8),
}

impl Facility {
    fn to_c(self) -> libc::c_int {
        match self {
            Self::Daemon => libc::LOG_DAEMON,
            Self::User => libc::LOG_USER,
            Self::Local(n) => libc::LOG_LOCAL0 + (libc::c_int::from(n % 8) << 3),
        }
    }
}

/// The severity of a message (`LOG_ERR`, …), for filtering by the syslog daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// `LOG_EMERG`: the system is unusable.
    Emergency,
    /// `LOG_ALERT`: action must be taken immediately.
    Alert,
    /// `LOG_CRIT`: critical conditions.
    Critical,
    /// `LOG_ERR`: errors.
    Error,
    /// `LOG_WARNING`: warnings, such as unsupported ntp.conf directives.
    Warning,
    /// `LOG_NOTICE`: significant normal events, such as a clock step.
    Notice,
    /// `LOG_INFO`: informational messages.
    Info,
    /// `LOG_DEBUG`: debugging output.
    Debug,
}

impl Priority {
    fn to_c(self) -> libc::c_int {
        match self {
            Self::Emergency => libc::LOG_EMERG,
            Self::Alert => libc::LOG_ALERT,
            Self::Critical => libc::LOG_CRIT,
            Self::Error => libc::LOG_ERR,
            Self::Warning => libc::LOG_WARNING,
            Self::Notice => libc::LOG_NOTICE,
            Self::Info => libc::LOG_INFO,
            Self::Debug => libc::LOG_DEBUG,
        }
    }
}

/// Connects to syslog as `ident` (e.g. `"ntpd"`) with the process id in each line, as ntpd does.
/// The connection is opened at once (`LOG_NDELAY`), so that it still works after a chroot or
/// privilege drop. A NUL byte in `ident` ends it there.
pub fn open(ident: &str, facility: Facility) {
    let ident = c_text(ident);
    let mut slot = IDENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: `ident` is NUL-terminated and is kept alive in IDENT until a later `open` has
    // replaced glibc's pointer (glibc serialises openlog and syslog with an internal lock).
    unsafe {
        libc::openlog(
            ident.as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            facility.to_c(),
        )
    };
    *slot = Some(ident);
}

/// Sends one message; without [`open`], glibc uses the program name and `LOG_USER`. A NUL byte in
/// `message` ends it there.
pub fn log(priority: Priority, message: &str) {
    let message = c_text(message);
    // SAFETY: the format is a static "%s" consuming exactly one argument, a NUL-terminated string
    // that lives until the call returns.
    unsafe { libc::syslog(priority.to_c(), c"%s".as_ptr(), message.as_ptr()) };
}

/// Closes the connection, e.g. before `daemonize` closes descriptors; a later [`log`] reopens it.
pub fn close() {
    // SAFETY: closelog has no arguments and is always safe to call.
    unsafe { libc::closelog() };
}

/// Converts to a C string, cutting at the first NUL rather than failing: a log line should
/// never be lost to a stray NUL byte.
fn c_text(text: &str) -> CString {
    let bytes = text.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    // Cannot fail: the slice ends before the first NUL.
    CString::new(&bytes[..end]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_the_first_nul() {
        assert_eq!(c_text("ntpd\0extra").as_bytes(), b"ntpd");
        assert_eq!(c_text("100% %s %n").as_bytes(), b"100% %s %n");
    }

    #[test]
    fn local_facilities_map_to_their_c_values() {
        assert_eq!(Facility::Local(0).to_c(), libc::LOG_LOCAL0);
        assert_eq!(Facility::Local(7).to_c(), libc::LOG_LOCAL7);
        assert_eq!(Facility::Local(9).to_c(), libc::LOG_LOCAL1);
    }

    #[test]
    fn logging_with_format_directives_does_not_crash() {
        open("sundial-sys-test", Facility::User);
        log(Priority::Debug, "format directives are data: %s %n %x");
        close();
    }
}
