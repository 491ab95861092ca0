//! Running as an unprivileged user while keeping the one capability a time daemon needs.
//!
//! `ntpd -u USER[:GROUP]` opens its sockets as root, then calls [`drop_privileges`], which follows
//! the sequence of `security.md` §4: look the names up, `PR_SET_KEEPCAPS`, `setgroups`, `setgid`,
//! `setuid` (each checked, then verified with `getresuid`/`getresgid`), reduce the capability sets
//! to `CAP_SYS_TIME` (when the daemon disciplines the kernel clock; otherwise to nothing), and
//! finally `PR_SET_NO_NEW_PRIVS`.
//!
//! Capabilities belong to a thread, not to a process: **call [`drop_privileges`] before any
//! thread is spawned**, or the other threads keep running with full root capabilities. The
//! function refuses to run when `/proc/self/task` shows more than one thread.

use std::ffi::{CString, c_char};
use std::{fs, io, mem, ptr};

use crate::cvt;

/// Capability number of `CAP_NET_BIND_SERVICE` (`linux/capability.h`): binding ports below 1024,
/// needed again only if an interface rescan must bind port 123 on a new address.
pub const CAP_NET_BIND_SERVICE: u32 = 10;

/// Capability number of `CAP_SYS_TIME` (`linux/capability.h`): setting and steering the clock.
pub const CAP_SYS_TIME: u32 = 25;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set, covering capabilities 0–63.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Initial buffer for `getpwnam_r`/`getgrnam_r` when `sysconf` has no hint; grown on `ERANGE`.
const LOOKUP_BUFFER_START: usize = 1024;

/// Upper bound for that buffer, so that a broken NSS module cannot make us allocate forever.
const LOOKUP_BUFFER_MAX: usize = 1 << 20;

/// The numeric identity behind a user name, as the password database reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    /// User id.
    pub uid: libc::uid_t,
    /// The user's primary group id.
    pub gid: libc::gid_t,
}

/// Switches the whole process to `user` (and `group`, default: the user's primary group),
/// keeping `CAP_SYS_TIME` in the permitted and effective sets if `keep_sys_time` and nothing
/// else, then forbids regaining privileges through `execve`.
///
/// Must be called from the main thread **before any other thread is spawned**; fails with
/// [`io::ErrorKind::NotFound`] for an unknown user or group (before changing anything) and with
/// the kernel's error for any step that is refused.
pub fn drop_privileges(user: &str, group: Option<&str>, keep_sys_time: bool) -> io::Result<()> {
    let ids = lookup_user(user)?;
    let gid = match group {
        Some(name) => lookup_group(name)?,
        None => ids.gid,
    };
    ensure_single_threaded()?;

    prctl(libc::PR_SET_KEEPCAPS, 1)?;
    // SAFETY: the pointer refers to one valid gid_t, matching the count of 1.
    cvt(unsafe { libc::setgroups(1, &gid) })?;
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::setgid(gid) })?;
    // SAFETY: plain integer arguments.
    cvt(unsafe { libc::setuid(ids.uid) })?;
    verify_ids(ids.uid, gid)?;

    // Every socket the daemon serves on is bound already and nothing binds a privileged port
    // again, so CAP_NET_BIND_SERVICE goes too.
    let keep = if keep_sys_time {
        1u64 << CAP_SYS_TIME
    } else {
        0
    };
    keep_only(keep)
}

/// The end of [`drop_privileges`] for a daemon that a service manager already started as its
/// user, with ambient capabilities such as `CAP_NET_BIND_SERVICE` to bind port 123: once the
/// sockets are bound, keeps `CAP_SYS_TIME` if `keep_sys_time` (and the process has it) and
/// nothing else, clears the ambient set and forbids regaining privileges through `execve`.
///
/// Like [`drop_privileges`], must be called before any other thread is spawned.
pub fn reduce_capabilities(keep_sys_time: bool) -> io::Result<()> {
    ensure_single_threaded()?;
    let wanted = if keep_sys_time {
        1u64 << CAP_SYS_TIME
    } else {
        0
    };
    // A capability the process does not hold cannot be kept (capset would refuse it).
    keep_only(wanted & permitted_capabilities()?)
}

/// Sets the permitted and effective sets to `keep`, clears the inheritable and ambient sets and
/// sets `PR_SET_NO_NEW_PRIVS`.
fn keep_only(keep: u64) -> io::Result<()> {
    set_capabilities(keep)?;
    // Ambient capabilities would survive execve; clear them. Kernels before 4.3 do not know
    // PR_CAP_AMBIENT (EINVAL) and have none to clear.
    match prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    ) {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(e),
        _ => {}
    }
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
}

/// The calling thread's permitted capability set, as [`effective_capabilities`] reads it.
fn permitted_capabilities() -> io::Result<u64> {
    let status = fs::read_to_string("/proc/thread-self/status")
        .or_else(|_| fs::read_to_string("/proc/self/status"))?;
    parse_cap_line(&status, "CapPrm:")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapPrm line in status"))
}

/// Looks a user up in the password database (files, LDAP, … through NSS), so that the daemon can
/// also hand files such as the drift file to that user before dropping root.
pub fn lookup_user(name: &str) -> io::Result<UserIds> {
    let cname = c_name(name)?;
    // SAFETY: `passwd` is plain data (integers and pointers); all-zero is a valid value.
    let mut entry: libc::passwd = unsafe { mem::zeroed() };
    let found = with_lookup_buffer(libc::_SC_GETPW_R_SIZE_MAX, |buf, result| {
        let result: *mut *mut libc::passwd = result.cast();
        // SAFETY: `cname` is NUL-terminated; `entry`, `buf` (of the given length) and `result`
        // are valid and writable for the call; the strings the entry points to live in `buf`,
        // and only the integer fields are read below.
        unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                result,
            )
        }
    })?;
    if found {
        Ok(UserIds {
            uid: entry.pw_uid,
            gid: entry.pw_gid,
        })
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("unknown user '{name}'"),
        ))
    }
}

/// Looks a group up in the group database, for the `GROUP` part of `-u USER:GROUP`.
pub fn lookup_group(name: &str) -> io::Result<libc::gid_t> {
    let cname = c_name(name)?;
    // SAFETY: `group` is plain data (integers and pointers); all-zero is a valid value.
    let mut entry: libc::group = unsafe { mem::zeroed() };
    let found = with_lookup_buffer(libc::_SC_GETGR_R_SIZE_MAX, |buf, result| {
        let result: *mut *mut libc::group = result.cast();
        // SAFETY: as in `lookup_user`; only the integer `gr_gid` is read below.
        unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                result,
            )
        }
    })?;
    if found {
        Ok(entry.gr_gid)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("unknown group '{name}'"),
        ))
    }
}

/// Whether the calling thread may set the clock (`CAP_SYS_TIME` effective). Errs on the side of
/// "yes" when `/proc` cannot be read, because its main use is to keep tests away from the clock.
pub fn has_cap_sys_time() -> bool {
    effective_capabilities().map_or(true, |caps| caps & (1 << CAP_SYS_TIME) != 0)
}

/// The calling thread's effective capability set as a bit mask (bit n = capability n), read from
/// `/proc/thread-self/status` (or `/proc/self/status` on kernels before 3.17).
pub fn effective_capabilities() -> io::Result<u64> {
    let status = fs::read_to_string("/proc/thread-self/status")
        .or_else(|_| fs::read_to_string("/proc/self/status"))?;
    parse_cap_eff(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff line in status"))
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    parse_cap_line(status, "CapEff:")
}

fn parse_cap_line(status: &str, prefix: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(prefix))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// Runs a `get*nam_r` call with a growing buffer. `call` gets the buffer and the `result`
/// out-pointer and returns the function's error number; the outcome is whether an entry was found.
fn with_lookup_buffer(
    size_hint: libc::c_int,
    mut call: impl FnMut(&mut [c_char], *mut *mut libc::c_void) -> libc::c_int,
) -> io::Result<bool> {
    // SAFETY: sysconf only reads its integer argument.
    let hint = unsafe { libc::sysconf(size_hint) };
    let mut len = usize::try_from(hint)
        .unwrap_or(0)
        .clamp(LOOKUP_BUFFER_START, LOOKUP_BUFFER_MAX);
    loop {
        let mut buf: Vec<c_char> = vec![0; len];
        let mut result: *mut libc::c_void = ptr::null_mut();
        match call(&mut buf, &mut result) {
            0 => return Ok(!result.is_null()),
            libc::ERANGE if len < LOOKUP_BUFFER_MAX => len *= 2,
            // "Not found" is reported as 0 with a null result, but some NSS back ends return
            // ENOENT/ESRCH/EBADF/EPERM instead (getpwnam_r(3), NOTES).
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(false),
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn ensure_single_threaded() -> io::Result<()> {
    // Without /proc (e.g. a chroot) the check is skipped rather than failing the start-up.
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Ok(());
    };
    if tasks.count() > 1 {
        return Err(io::Error::other(
            "privileges must be dropped before any thread is spawned (capabilities are per thread)",
        ));
    }
    Ok(())
}

fn verify_ids(uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    let (mut rgid, mut egid, mut sgid) = (0, 0, 0);
    // SAFETY: all six pointers refer to valid, writable locals.
    cvt(unsafe { libc::getresuid(&mut ruid, &mut euid, &mut suid) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::getresgid(&mut rgid, &mut egid, &mut sgid) })?;
    if [ruid, euid, suid] != [uid; 3] || [rgid, egid, sgid] != [gid; 3] {
        return Err(io::Error::other(
            "user or group ids did not change as requested",
        ));
    }
    Ok(())
}

/// `struct __user_cap_header_struct` from `linux/capability.h`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` from `linux/capability.h`; version 3 uses two of them.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets the calling thread's permitted and effective sets to `caps` and clears the inheritable
/// set, with the raw `capset` system call (glibc has no wrapper and we avoid libcap).
fn set_capabilities(caps: u64) -> io::Result<()> {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |bits: u64| CapData {
        effective: bits as u32,
        permitted: bits as u32,
        inheritable: 0,
    };
    let data = [word(caps), word(caps >> 32)];
    // SAFETY: `header` and the two-element `data` array are valid, correctly laid out
    // (`repr(C)`) for version 3, and live for the duration of the call; capset only reads them.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the options used here take integer arguments only; unused ones must be zero.
    cvt(unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_is_reported_before_anything_changes() {
        let err = drop_privileges("sundial-no-such-user", None, true).expect_err("unknown user");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("sundial-no-such-user"), "{err}");
    }

    #[test]
    fn unknown_group_is_reported_before_anything_changes() {
        let err = drop_privileges("root", Some("sundial-no-such-group"), true).expect_err("group");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn name_with_nul_is_invalid_input() {
        let err = lookup_user("ro\0ot").expect_err("NUL in name");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn root_resolves_to_ids_zero() {
        assert_eq!(
            lookup_user("root").expect("root exists"),
            UserIds { uid: 0, gid: 0 }
        );
        assert_eq!(lookup_group("root").expect("group root exists"), 0);
    }

    #[test]
    fn cap_eff_line_is_parsed_as_hex() {
        let status = "Name:\tx\nCapPrm:\t0000000000000000\nCapEff:\t0000000002000400\n";
        assert_eq!(
            parse_cap_eff(status),
            Some((1 << CAP_SYS_TIME) | (1 << CAP_NET_BIND_SERVICE))
        );
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }
}
