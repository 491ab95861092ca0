//! Files opened relative to a directory handle, never through a symbolic link.
//!
//! ntpd writes its pid and drift files as root into directories that others may be able to
//! write to. Opening such a file by path lets whoever can write the directory plant a symbolic
//! link and have root truncate any file on the system. [`Dir`] closes that door: it holds an
//! open directory, and every file it opens is named relative to that descriptor with
//! `O_NOFOLLOW` (a symbolic link as the last component fails with `ELOOP`), new files are
//! created with `O_EXCL` (an existing name — link or not — fails with `EEXIST`), and opening
//! never blocks (`O_NONBLOCK`: a FIFO planted where a file should be is not waited on). The
//! policy — which names, what modes, how large a read may be — is the daemon's (`safefile`).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cvt;

/// An open directory that files are opened, renamed and removed relative to.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Opens the directory `path` (`O_DIRECTORY`: anything else fails with `ENOTDIR`).
    ///
    /// The directory's own path may go through symbolic links — only whoever can write its
    /// parent could have planted them — the names opened inside it may not.
    pub fn open(path: &Path) -> io::Result<Self> {
        let cpath = c_string(path.as_os_str())?;
        // SAFETY: `cpath` is NUL-terminated and outlives the call; no other pointer is passed.
        let fd = cvt(unsafe {
            libc::open(
                cpath.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: open just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Creates the new file `name` for writing with permission bits `mode` (before the umask).
    /// Fails with `EEXIST` if anything, a symbolic link included, already has that name.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        self.open_at(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            mode,
        )
    }

    /// Opens `name` for appending, creating it with `mode` if it does not exist. A symbolic
    /// link fails with `ELOOP`; a FIFO without a reader fails with `ENXIO` instead of blocking.
    pub fn open_append(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        self.open_at(
            name,
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            mode,
        )
    }

    /// Opens `name` for reading without following a symbolic link and without blocking: the
    /// caller checks with `metadata()` that it is a regular file before reading.
    pub fn open_read(&self, name: &OsStr) -> io::Result<File> {
        self.open_at(
            name,
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        )
    }

    /// Renames `from` to `to` within this directory, replacing `to` atomically (a symbolic link
    /// named `to` is replaced, not followed).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (cfrom, cto) = (c_string(from)?, c_string(to)?);
        let dir = self.fd.as_raw_fd();
        // SAFETY: both names are NUL-terminated and outlive the call; `dir` is our open
        // descriptor.
        cvt(unsafe { libc::renameat(dir, cfrom.as_ptr(), dir, cto.as_ptr()) }).map(drop)
    }

    /// Removes the file `name` (never a directory; a symbolic link itself, not its target).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        let cname = c_string(name)?;
        // SAFETY: `cname` is NUL-terminated and outlives the call; the descriptor is ours.
        cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), cname.as_ptr(), 0) }).map(drop)
    }

    /// Flushes the directory itself, which makes a rename or removal in it durable.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: fsync takes only our open descriptor.
        cvt(unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(drop)
    }

    fn open_at(&self, name: &OsStr, flags: libc::c_int, mode: u32) -> io::Result<File> {
        if name.is_empty() || name.as_bytes().contains(&b'/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a plain file name",
            ));
        }
        let cname = c_string(name)?;
        // SAFETY: `cname` is NUL-terminated and outlives the call; the descriptor is ours; the
        // mode is passed as the variadic argument openat expects with O_CREAT.
        let fd = cvt(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                cname.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOCTTY,
                libc::c_uint::from(mode),
            )
        })?;
        // SAFETY: openat just returned this descriptor and nothing else owns it.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn c_string(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sundial-sysfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    }

    #[test]
    fn names_that_are_symbolic_links_are_never_followed() {
        let d = scratch("links");
        std::fs::write(d.join("victim"), "precious").expect("victim");
        symlink(d.join("victim"), d.join("link")).expect("link");
        let dir = Dir::open(&d).expect("dir");
        let err = dir
            .create_new(OsStr::new("link"), 0o644)
            .expect_err("exists");
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        let err = dir.open_read(OsStr::new("link")).expect_err("a link");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        let err = dir
            .open_append(OsStr::new("link"), 0o644)
            .expect_err("a link");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        // Renaming over the link replaces the link.
        let mut f = dir.create_new(OsStr::new("new"), 0o644).expect("new");
        f.write_all(b"mine").expect("write");
        dir.rename(OsStr::new("new"), OsStr::new("link"))
            .expect("rename");
        dir.sync().expect("sync");
        assert_eq!(
            std::fs::read_to_string(d.join("victim")).expect("read"),
            "precious"
        );
        let mut text = String::new();
        dir.open_read(OsStr::new("link"))
            .expect("a file now")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "mine");
        dir.remove(OsStr::new("link")).expect("remove");
        assert!(dir.create_new(OsStr::new("../escape"), 0o644).is_err());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
