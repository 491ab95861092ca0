//! Process-level services: detaching from the terminal, listing local addresses, scheduling
//! priority and CPU accounting.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::time::Duration;
use std::{mem, ptr};

use crate::cvt;

/// Turns the process into a classic daemon, as `ntpd` does without `-n`: fork (the parent exits
/// with status 0), `setsid` to leave the controlling terminal, fork again (so that the daemon can
/// never reacquire one), `chdir("/")`, and point stdin/stdout/stderr at `/dev/null`. Returns in the
/// daemon process only.
///
/// Call it before any thread is spawned: `fork` copies only the calling thread, so other threads
/// (and any locks they hold) would be lost in the daemon.
pub fn daemonize() -> io::Result<()> {
    // Buffered output would otherwise be written twice (once per process) or lost.
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    fork_and_leave_parent()?;
    // SAFETY: setsid takes no arguments; after the fork we are not a process-group leader.
    cvt(unsafe { libc::setsid() })?;
    fork_and_leave_parent()?;
    // SAFETY: the path is a NUL-terminated static string.
    cvt(unsafe { libc::chdir(c"/".as_ptr()) })?;
    redirect_stdio_to_dev_null()
}

/// Which side of [`detach`] a process is on.
#[derive(Debug)]
pub enum Detached {
    /// The process that called [`detach`]: it should read the pipe to its end, learn whether
    /// the daemon started, and exit with a status that says so.
    Parent(File),
    /// The daemon: it writes how its start-up went into the pipe, then closes it.
    Daemon(File),
}

/// Like [`daemonize`], but the calling process does not exit at once: it gets the read end of
/// a pipe whose write end only the daemon holds, so that it can wait for the daemon to report
/// that it started (or why it did not) and exit with a matching status. The pipe reaches EOF
/// when the daemon closes its end or dies, so the waiting side can never hang on a daemon that
/// crashed during start-up.
///
/// As with [`daemonize`], call it before any thread is spawned.
pub fn detach() -> io::Result<Detached> {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 just returned these descriptors and nothing else owns them.
    let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: the caller is single-threaded (documented above), so the child is a complete copy.
    match cvt(unsafe { libc::fork() })? {
        0 => drop(read),
        _child => {
            drop(write);
            return Ok(Detached::Parent(read));
        }
    }
    // SAFETY: setsid takes no arguments; after the fork we are not a process-group leader.
    cvt(unsafe { libc::setsid() })?;
    fork_and_leave_parent()?;
    // SAFETY: the path is a NUL-terminated static string.
    cvt(unsafe { libc::chdir(c"/".as_ptr()) })?;
    redirect_stdio_to_dev_null()?;
    Ok(Detached::Daemon(write))
}

/// The process id and user id of the peer of a connected Unix socket (`SO_PEERCRED`): for a
/// stream connected to a listener, the process that created the listener.
pub fn peer_credentials(socket: &impl AsFd) -> io::Result<(u32, u32)> {
    // SAFETY: `ucred` is plain data; all-zero is a valid value.
    let mut cred: libc::ucred = unsafe { mem::zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the descriptor is valid for the borrow; `cred` and `len` are valid out-pointers
    // and `len` holds the size of `cred`.
    cvt(unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    })?;
    Ok((u32::try_from(cred.pid).unwrap_or(0), cred.uid))
}

/// Opens `path` read-only and close-on-exec with glibc's `open`. `std::fs::File::open` calls
/// `open64` instead, which LD_PRELOAD simulators such as clknetsim do not interpose: opened here,
/// `/dev/urandom` becomes the simulator's seeded generator, so a simulated run can be repeated.
pub fn open_read_only(path: &CStr) -> io::Result<File> {
    // SAFETY: `path` is NUL-terminated and outlives the call; open takes no other pointer.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The IPv4 and IPv6 addresses of every interface (`getifaddrs`), with the interface name: the
/// basis of implicit `restrict` entries for local addresses and of `interface` rules. An
/// interface with several addresses appears once per address.
pub fn interface_addresses() -> io::Result<Vec<(String, IpAddr)>> {
    let mut list: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: `list` is a valid out-pointer; on success it receives a list we free below.
    cvt(unsafe { libc::getifaddrs(&mut list) })?;
    let mut found = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a non-null node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        // SAFETY: a non-null ifa_addr points to a sockaddr whose family says how long it is.
        if let Some(addr) = unsafe { ip_of(entry.ifa_addr) } {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(entry.ifa_name) };
            found.push((name.to_string_lossy().into_owned(), addr));
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `list` came from a successful getifaddrs and is freed exactly once; no reference
    // into it outlives this point (names were copied).
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// Sets the scheduling niceness (−20 = most favoured … 19), as ntpd's `-N` does to keep its
/// timestamps prompt under load. Best effort: callers may log the error and carry on (lowering
/// the value needs `CAP_SYS_NICE`). On Linux the value belongs to the calling thread and is
/// inherited by threads it creates later, so call it before spawning workers.
pub fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments; who = 0 means the caller.
    cvt(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) }).map(drop)
}

/// The CPU time (user + system) the whole process has used so far, for benchmarks that report
/// CPU cost per request next to wall-clock rates.
pub fn process_cpu_time() -> Duration {
    // SAFETY: `rusage` is plain data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: `usage` is valid and writable. RUSAGE_SELF with a valid pointer cannot fail
    // (EFAULT/EINVAL are the only errors), so the return value carries no information.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    timeval_to_duration(&usage.ru_utime) + timeval_to_duration(&usage.ru_stime)
}

fn fork_and_leave_parent() -> io::Result<()> {
    // SAFETY: the caller is single-threaded (documented on `daemonize`), so the child is a
    // complete copy; the parent leaves with _exit, running no destructors or atexit handlers
    // that would act on state the child now owns.
    match cvt(unsafe { libc::fork() })? {
        0 => Ok(()),
        // SAFETY: _exit ends the parent at once; see above.
        _parent => unsafe { libc::_exit(0) },
    }
}

fn redirect_stdio_to_dev_null() -> io::Result<()> {
    // SAFETY: the path is a NUL-terminated static string; flags are plain integers.
    let null = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) })?;
    for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: both descriptors are open; dup2 atomically replaces `target`.
        cvt(unsafe { libc::dup2(null, target) })?;
    }
    if null > libc::STDERR_FILENO {
        // SAFETY: `null` is our own descriptor, now duplicated onto 0–2 and otherwise unused.
        unsafe { libc::close(null) };
    }
    Ok(())
}

/// Reads the IP address from a `sockaddr` of family AF_INET or AF_INET6.
///
/// # Safety
/// `addr` must be null or point to a valid socket address of the size its family implies.
unsafe fn ip_of(addr: *const libc::sockaddr) -> Option<IpAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: non-null and valid per the function's contract; every sockaddr starts with the
    // family field. read_unaligned avoids assuming more alignment than the C library gives.
    let family = unsafe { ptr::read_unaligned(&raw const (*addr).sa_family) };
    match libc::c_int::from(family) {
        libc::AF_INET => {
            // SAFETY: the family says the address is a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe { ptr::read_unaligned(addr.cast()) };
            Some(IpAddr::V4(Ipv4Addr::from(
                sin.sin_addr.s_addr.to_ne_bytes(),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the address is a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe { ptr::read_unaligned(addr.cast()) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

fn timeval_to_duration(tv: &libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn detached_daemon_reports_to_the_waiting_parent() {
        // Run the whole exchange in a child process, so that the test harness's own threads do
        // not matter: fork copies only this thread, and the copy exits with _exit.
        // SAFETY: the child only calls async-signal-safe-enough code (detach, write, _exit)
        // and never returns into the harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = match detach() {
                Ok(Detached::Parent(mut read)) => {
                    let mut text = String::new();
                    let ok = read.read_to_string(&mut text).is_ok() && text == "READY";
                    if ok { 0 } else { 1 }
                }
                Ok(Detached::Daemon(mut write)) => {
                    let _ = write.write_all(b"READY");
                    0
                }
                Err(_) => 2,
            };
            // SAFETY: leaves the forked copy at once without running the harness's code.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "the parent did not read READY"
        );
    }

    #[test]
    fn loopback_addresses_are_listed_under_lo() {
        let addrs = interface_addresses().expect("getifaddrs");
        assert!(
            addrs.contains(&("lo".to_owned(), IpAddr::V4(Ipv4Addr::LOCALHOST))),
            "{addrs:?}"
        );
    }

    #[test]
    fn cpu_time_grows_while_computing() {
        let before = process_cpu_time();
        let mut x = 0u64;
        while process_cpu_time() < before + Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(process_cpu_time() > before);
    }

    #[test]
    fn setting_the_current_niceness_succeeds() {
        // SAFETY: plain integer arguments. The call cannot fail for the caller itself, so a
        // return of -1 is the niceness -1 and needs no errno check.
        let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        set_nice(current).expect("restating the current niceness needs no privilege");
    }
}
