//! Every file ntpd writes, and every state file it reads at start-up, goes through here.
//!
//! ntpd starts as root and its files live in directories that other users may be able to
//! write to (a pid file in a shared run directory, a drift file in a directory handed to the
//! `-u` user). Opening such a file by its path lets whoever can write the directory plant a
//! symbolic link, a FIFO or a device node there and have root overwrite any file, hang at
//! start-up or read without end. So:
//!
//! * **Writing** ([`write_atomic`]) opens the directory once and works relative to that handle:
//!   a temporary file with a random name is created exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`, so
//!   no planted name is ever opened), given its mode (and owner) through the descriptor, written,
//!   flushed, renamed over the final name (a symbolic link there is replaced, not followed), and
//!   the directory is flushed so the rename survives a crash. Readers see the old file or the new
//!   one, never half of one.
//! * **Appending** ([`open_append`], log files) refuses a symbolic link and anything that is not
//!   a regular file.
//! * **Reading** state ([`read_state`]) refuses a symbolic link, opens without blocking (a FIFO
//!   is not waited on), accepts regular files only and reads at most a given number of octets.
//!   [`read_config`] is the same for files root owns (configuration, keys), whose path may go
//!   through symbolic links that an administrator set up.
//!
//! All system calls are in `sundial_sys::fs`; this module is the policy.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sundial_sys::fs::Dir;

/// Attempts at a fresh temporary name before giving up (a collision of 64 random bits means
/// someone is guessing, or the random source is broken).
const TEMP_ATTEMPTS: u32 = 4;

/// Who owns a written file, and with which permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// Permission bits (`0o644` for the pid and drift files).
    pub mode: u32,
    /// Owner and group to give the file, if not the writer's own.
    pub owner: Option<(u32, u32)>,
}

impl Ownership {
    /// World-readable, owned by the writer: the pid and drift files.
    pub const PUBLIC: Self = Self {
        mode: 0o644,
        owner: None,
    };
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file does not exist.
    Missing(PathBuf),
    /// The name is a symbolic link, where none is accepted.
    SymbolicLink(PathBuf),
    /// Not a regular file (a FIFO, device, socket or directory).
    NotRegular(PathBuf),
    /// Longer than the caller's limit (octets).
    TooLarge(PathBuf, u64),
    /// Any other error.
    Io(PathBuf, io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "{}: no such file", p.display()),
            Self::SymbolicLink(p) => {
                write!(
                    f,
                    "{} is a symbolic link, which is never opened",
                    p.display()
                )
            }
            Self::NotRegular(p) => write!(f, "{} is not a regular file", p.display()),
            Self::TooLarge(p, max) => {
                write!(f, "{} is larger than {max} octets", p.display())
            }
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(_, e) => e,
            ReadError::Missing(_) => Self::from_raw_os_error(libc::ENOENT),
            ReadError::SymbolicLink(_) => Self::from_raw_os_error(libc::ELOOP),
            other => Self::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// Writes `contents` to `path` atomically (see the module documentation).
pub fn write_atomic(path: &Path, contents: &[u8], ownership: Ownership) -> io::Result<()> {
    let (dir_path, name) = split(path)?;
    let dir = Dir::open(dir_path)?;
    let (tmp, mut file) = create_temporary(&dir, name, ownership.mode)?;
    let result = (|| {
        // The umask applied at creation; the descriptor gets exactly the wanted mode.
        file.set_permissions(Permissions::from_mode(ownership.mode))?;
        if let Some((uid, gid)) = ownership.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        dir.rename(&tmp, name)
    })();
    if let Err(e) = result {
        let _ = dir.remove(&tmp);
        return Err(e);
    }
    dir.sync()
}

/// Removes `path` if it is there (a symbolic link is removed, not its target).
pub fn remove(path: &Path) -> io::Result<()> {
    let (dir_path, name) = split(path)?;
    let dir = Dir::open(dir_path)?;
    match dir.remove(name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(()) => dir.sync(),
    }
}

/// Opens `path` for appending (a log file), creating it with `mode`; refuses a symbolic link
/// and anything but a regular file.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    let (dir_path, name) = split(path)?;
    let file = Dir::open(dir_path)?.open_append(name, mode)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Reads a state file that lives in a directory others may write (the drift file): no symbolic
/// link, regular files only, at most `max` octets, never blocking.
pub fn read_state(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let io_error = |e: io::Error| classify(path, e);
    let (dir_path, name) = split(path).map_err(io_error)?;
    let file = Dir::open(dir_path)
        .and_then(|dir| dir.open_read(name))
        .map_err(io_error)?;
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Io(path.to_owned(), e))?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(path.to_owned()));
    }
    read_capped(path, &file, max)
}

/// Opens a file root owns (configuration, keys) for reading: symbolic links in its path are
/// followed, opening it never blocks, and it must be a regular file or a character device —
/// `/dev/null` is the classic empty keys file, and a device such as `/dev/zero` is harmless
/// because [`read_capped`] stops at its limit. A FIFO, socket or directory is refused.
pub fn open_config(path: &Path) -> Result<File, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| classify(path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Io(path.to_owned(), e))?;
    if !meta.is_file() && !meta.file_type().is_char_device() {
        return Err(ReadError::NotRegular(path.to_owned()));
    }
    Ok(file)
}

/// [`open_config`] and [`read_capped`] in one.
pub fn read_config(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_config(path)?;
    read_capped(path, &file, max)
}

/// Reads all of `file` (named `path` in errors), opened by [`open_config`] or [`read_state`],
/// up to `max` octets; more is an error. The limit holds even if the file grows while it is
/// read, or is a device without end.
pub fn read_capped(path: &Path, file: &File, max: u64) -> Result<Vec<u8>, ReadError> {
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Io(path.to_owned(), e))?;
    if meta.len() > max {
        return Err(ReadError::TooLarge(path.to_owned(), max));
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(path.to_owned(), e))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
        return Err(ReadError::TooLarge(path.to_owned(), max));
    }
    Ok(bytes)
}

/// The directory to open and the name in it.
fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    Ok((dir, name))
}

/// Creates `.NAME.XXXXXXXXXXXXXXXX` exclusively, with a random suffix nobody can predict.
fn create_temporary(dir: &Dir, name: &OsStr, mode: u32) -> io::Result<(OsString, File)> {
    let mut last = io::Error::other("no temporary name tried");
    for _ in 0..TEMP_ATTEMPTS {
        let mut tmp = OsString::from(".");
        tmp.push(name);
        tmp.push(format!(".{:016x}", random_u64()?));
        match dir.create_new(&tmp, mode) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// 64 bits from the kernel's random source (through glibc, as `random` does).
fn random_u64() -> io::Result<u64> {
    let mut buf = [0u8; 8];
    sundial_sys::process::open_read_only(c"/dev/urandom")?.read_exact(&mut buf)?;
    Ok(u64::from_ne_bytes(buf))
}

fn classify(path: &Path, e: io::Error) -> ReadError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => ReadError::Missing(path.to_owned()),
        Some(libc::ELOOP) => ReadError::SymbolicLink(path.to_owned()),
        Some(libc::ENXIO | libc::ENODEV) => ReadError::NotRegular(path.to_owned()),
        _ => ReadError::Io(path.to_owned(), e),
    }
}

#[cfg(test)]
#[path = "safefile_tests.rs"]
pub(crate) mod tests;
