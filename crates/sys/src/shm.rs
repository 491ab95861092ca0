//! The NTP shared-memory segment (System V `shmget`/`shmat`), as ntpd's driver 28 and gpsd use
//! it, behind a safe API.
//!
//! The segment is shared with a writer this process does not trust: every field is read with a
//! volatile load of a plain integer (any bit pattern is a valid value, so a hostile or
//! half-finished write can give garbage numbers but never undefined behaviour here), and what the
//! numbers are worth is decided by the caller (`sundial_proto::refclock::shm`). The segment's
//! size is fixed by the layout below; a segment of the same key that is smaller is refused by
//! the kernel (`EINVAL`), so no read can go past its end.

use std::io;
use std::ptr::{self, NonNull};

use libc::{c_int, c_uint, time_t};

/// The key of unit 0's segment ("NTP0"); unit U uses this plus U.
pub const KEY_BASE: i32 = 0x4e54_5030;

/// The segment as ntpd and gpsd lay it out (`struct shmTime`).
#[repr(C)]
struct ShmTime {
    mode: c_int,
    count: c_int,
    clock_sec: time_t,
    clock_usec: c_int,
    receive_sec: time_t,
    receive_usec: c_int,
    leap: c_int,
    precision: c_int,
    nsamples: c_int,
    valid: c_int,
    clock_nsec: c_uint,
    receive_nsec: c_uint,
    dummy: [c_int; 8],
}

/// The fields of one record as read, `count` before and after the other fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// `mode`.
    pub mode: i32,
    /// `count` read first.
    pub count_before: i32,
    /// `count` read last.
    pub count_after: i32,
    /// `clockTimeStampSec`.
    pub clock_sec: i64,
    /// `clockTimeStampUSec`.
    pub clock_usec: i32,
    /// `clockTimeStampNSec`.
    pub clock_nsec: u32,
    /// `receiveTimeStampSec`.
    pub receive_sec: i64,
    /// `receiveTimeStampUSec`.
    pub receive_usec: i32,
    /// `receiveTimeStampNSec`.
    pub receive_nsec: u32,
    /// `leap`.
    pub leap: i32,
    /// `precision`.
    pub precision: i32,
    /// `valid`.
    pub valid: i32,
}

/// What a writer puts into the segment ([`Segment::write`], for tests and tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Write {
    /// The reference clock's time: seconds and nanoseconds since 1970.
    pub clock: (i64, u32),
    /// The local clock's time of the reading.
    pub receive: (i64, u32),
    /// Leap indicator (0..=3).
    pub leap: i32,
    /// Precision, log2 s.
    pub precision: i32,
}

/// An attached segment; detached on drop.
#[derive(Debug)]
pub struct Segment {
    ptr: NonNull<ShmTime>,
    id: c_int,
}

// SAFETY: the mapping is process-wide; every access is a volatile load or store of a plain
// integer, which is as safe from another thread as from another process.
unsafe impl Send for Segment {}

impl Segment {
    /// Attaches unit `unit`'s segment, creating it if `create` (as ntpd does: units 0 and 1
    /// readable and writable by the owner only, 0600; units 2 and up by everyone, 0666).
    pub fn attach(unit: u8, create: bool) -> io::Result<Self> {
        let key = KEY_BASE + i32::from(unit);
        let perms = if unit < 2 { 0o600 } else { 0o666 };
        let flags = if create { libc::IPC_CREAT | perms } else { 0 };
        // SAFETY: shmget takes no pointers.
        let id = unsafe { libc::shmget(key, size_of::<ShmTime>(), flags) };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a null address lets the kernel choose; the result is checked below.
        let addr = unsafe { libc::shmat(id, ptr::null(), 0) };
        if addr as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(addr.cast::<ShmTime>())
            .ok_or_else(|| io::Error::other("shmat returned a null address"))?;
        Ok(Self { ptr, id })
    }

    /// Reads the record: `count`, then the fields, then `count` again.
    pub fn read(&self) -> Snapshot {
        let p = self.ptr.as_ptr();
        // SAFETY: `p` points to a live mapping at least `size_of::<ShmTime>()` long (shmget
        // refused anything smaller), suitably aligned (a mapping starts on a page); each field
        // is a plain integer, valid for any bits, and is only ever read with volatile loads.
        unsafe {
            let count_before = ptr::read_volatile(&raw const (*p).count);
            let snapshot = Snapshot {
                mode: ptr::read_volatile(&raw const (*p).mode),
                count_before,
                count_after: 0,
                clock_sec: ptr::read_volatile(&raw const (*p).clock_sec),
                clock_usec: ptr::read_volatile(&raw const (*p).clock_usec),
                clock_nsec: ptr::read_volatile(&raw const (*p).clock_nsec),
                receive_sec: ptr::read_volatile(&raw const (*p).receive_sec),
                receive_usec: ptr::read_volatile(&raw const (*p).receive_usec),
                receive_nsec: ptr::read_volatile(&raw const (*p).receive_nsec),
                leap: ptr::read_volatile(&raw const (*p).leap),
                precision: ptr::read_volatile(&raw const (*p).precision),
                valid: ptr::read_volatile(&raw const (*p).valid),
            };
            Snapshot {
                count_after: ptr::read_volatile(&raw const (*p).count),
                ..snapshot
            }
        }
    }

    /// Clears `valid` (the reader's side of the handshake).
    pub fn clear_valid(&self) {
        // SAFETY: as in `read`; a store of a plain integer.
        unsafe { ptr::write_volatile(&raw mut (*self.ptr.as_ptr()).valid, 0) }
    }

    /// Writes a record as a mode 1 writer does: `count` bumped, the fields, `count` bumped,
    /// `valid` set.
    pub fn write(&self, w: &Write) {
        self.write_with(w, 1, true);
    }

    /// [`Self::write`] with a chosen `mode`; `finish: false` leaves the record half-written
    /// (`count` bumped once, `valid` set) as a writer interrupted mid-way would, for tests.
    pub fn write_with(&self, w: &Write, mode: i32, finish: bool) {
        let p = self.ptr.as_ptr();
        // SAFETY: as in `read`; stores of plain integers.
        unsafe {
            let count = ptr::read_volatile(&raw const (*p).count);
            ptr::write_volatile(&raw mut (*p).mode, mode);
            ptr::write_volatile(&raw mut (*p).count, count.wrapping_add(1));
            ptr::write_volatile(&raw mut (*p).clock_sec, w.clock.0 as time_t);
            ptr::write_volatile(&raw mut (*p).clock_usec, (w.clock.1 / 1000) as c_int);
            ptr::write_volatile(&raw mut (*p).clock_nsec, w.clock.1);
            ptr::write_volatile(&raw mut (*p).receive_sec, w.receive.0 as time_t);
            ptr::write_volatile(&raw mut (*p).receive_usec, (w.receive.1 / 1000) as c_int);
            ptr::write_volatile(&raw mut (*p).receive_nsec, w.receive.1);
            ptr::write_volatile(&raw mut (*p).leap, w.leap);
            ptr::write_volatile(&raw mut (*p).precision, w.precision);
            ptr::write_volatile(&raw mut (*p).nsamples, 3);
            if finish {
                ptr::write_volatile(&raw mut (*p).count, count.wrapping_add(2));
            }
            ptr::write_volatile(&raw mut (*p).valid, 1);
        }
    }

    /// Sets `valid` without writing a record (a writer repeating its last record: stale).
    pub fn set_valid(&self) {
        // SAFETY: as in `read`; a store of a plain integer.
        unsafe { ptr::write_volatile(&raw mut (*self.ptr.as_ptr()).valid, 1) }
    }

    /// Marks the segment for removal once every process has detached (`IPC_RMID`).
    pub fn remove(&self) -> io::Result<()> {
        // SAFETY: IPC_RMID takes no buffer.
        if unsafe { libc::shmctl(self.id, libc::IPC_RMID, ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The segment's permission bits and owner uid, as the kernel reports them.
    pub fn permissions(&self) -> io::Result<(u32, u32)> {
        // SAFETY: an all-zero shmid_ds is a valid value to be overwritten by IPC_STAT.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `ds` is a valid, writable shmid_ds.
        if unsafe { libc::shmctl(self.id, libc::IPC_STAT, &mut ds) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((u32::from(ds.shm_perm.mode) & 0o777, ds.shm_perm.uid))
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: the address came from shmat and is detached once, here.
        unsafe {
            libc::shmdt(self.ptr.as_ptr().cast());
        }
    }
}

/// Moves the calling thread (and the processes it starts from then on) into a new, private
/// System V IPC namespace, so that the segments it creates and reads are not the host's.
/// Needs `CAP_SYS_ADMIN`. Tests use it to run a writer and the daemon side by side.
pub fn enter_private_ipc_namespace() -> io::Result<()> {
    // SAFETY: unshare takes no pointers.
    if unsafe { libc::unshare(libc::CLONE_NEWIPC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_ntpds() {
        assert_eq!(size_of::<ShmTime>(), 96);
        assert_eq!(std::mem::offset_of!(ShmTime, valid), 48);
        assert_eq!(std::mem::offset_of!(ShmTime, receive_nsec), 56);
    }

    #[test]
    fn a_written_record_reads_back_and_units_get_ntpds_permissions() {
        // A private IPC namespace: the host's segments are never touched.
        enter_private_ipc_namespace().expect("unshare(CLONE_NEWIPC) needs CAP_SYS_ADMIN");
        let zero = Segment::attach(0, true).unwrap();
        assert_eq!(zero.permissions().unwrap().0, 0o600);
        let two = Segment::attach(2, true).unwrap();
        assert_eq!(two.permissions().unwrap().0, 0o666);
        assert!(
            Segment::attach(3, false).is_err(),
            "no segment without create"
        );
        let w = Write {
            clock: (1_800_000_000, 123_456_789),
            receive: (1_800_000_001, 5_000),
            leap: 1,
            precision: -20,
        };
        zero.write(&w);
        let r = zero.read();
        assert_eq!((r.mode, r.valid, r.leap, r.precision), (1, 1, 1, -20));
        assert_eq!(
            (r.clock_sec, r.clock_usec, r.clock_nsec),
            (1_800_000_000, 123_456, 123_456_789)
        );
        assert_eq!(
            (r.receive_sec, r.receive_usec, r.receive_nsec),
            (1_800_000_001, 5, 5_000)
        );
        assert_eq!((r.count_before, r.count_after), (2, 2));
        zero.clear_valid();
        assert_eq!(zero.read().valid, 0);
        zero.write_with(&w, 1, false);
        let torn = zero.read();
        assert_eq!((torn.count_before, torn.valid), (3, 1));
        // Another attachment sees the same memory.
        let again = Segment::attach(0, false).unwrap();
        assert_eq!(again.read().count_after, 3);
        for s in [&zero, &two] {
            s.remove().unwrap();
        }
    }
}
