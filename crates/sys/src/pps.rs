//! Pulse per second through the Linux RFC 2783 API: `/dev/ppsN` and its `PPS_FETCH` ioctl,
//! behind the [`PpsDevice`] trait so that the daemon's pairing logic can be tested with a fake
//! device on machines without a PPS source.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Which edge of the pulse marks the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The rising edge (`assert`), the usual one.
    Assert,
    /// The falling edge (`clear`; ntpd's `flag2`).
    Clear,
}

/// The newest pulse the kernel recorded on one edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulse {
    /// Kernel (`CLOCK_REALTIME`) time of the edge: seconds since 1970.
    pub secs: i64,
    /// Its nanoseconds.
    pub nanos: u32,
    /// The kernel's count of pulses on that edge; a new pulse has a new number.
    pub sequence: u64,
}

/// A source of pulses.
pub trait PpsDevice: std::fmt::Debug + Send {
    /// The newest pulse on `edge`, without waiting; `None` if none was ever recorded.
    fn fetch(&mut self, edge: Edge) -> io::Result<Option<Pulse>>;
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PpsKtime {
    sec: i64,
    nsec: i32,
    flags: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PpsKinfo {
    assert_sequence: u32,
    clear_sequence: u32,
    assert_tu: PpsKtime,
    clear_tu: PpsKtime,
    current_mode: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PpsFdata {
    info: PpsKinfo,
    timeout: PpsKtime,
}

/// `_IOWR('p', 0xa4, struct pps_fdata *)`: the size in the number is a pointer's, as the
/// kernel header defines it.
const PPS_FETCH: libc::c_ulong =
    (3 << 30) | ((size_of::<usize>() as libc::c_ulong) << 16) | (0x70 << 8) | 0xa4;

/// An open `/dev/ppsN`.
#[derive(Debug)]
pub struct Device {
    file: File,
}

/// Opens a PPS device.
pub fn open(path: &Path) -> io::Result<Box<dyn PpsDevice>> {
    let file = File::open(path)?;
    Ok(Box::new(Device { file }))
}

impl PpsDevice for Device {
    fn fetch(&mut self, edge: Edge) -> io::Result<Option<Pulse>> {
        // A zero timeout: the kernel answers at once with what it has.
        let mut data = PpsFdata::default();
        // SAFETY: `data` is a valid, writable pps_fdata that outlives the call; the request
        // number is PPS_FETCH, which reads and writes exactly that structure.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), PPS_FETCH, &raw mut data) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let (sequence, t) = match edge {
            Edge::Assert => (data.info.assert_sequence, data.info.assert_tu),
            Edge::Clear => (data.info.clear_sequence, data.info.clear_tu),
        };
        if sequence == 0 {
            return Ok(None);
        }
        let nanos = u32::try_from(t.nsec)
            .ok()
            .filter(|n| *n < 1_000_000_000)
            .ok_or_else(|| io::Error::other("PPS_FETCH gave nanoseconds out of range"))?;
        Ok(Some(Pulse {
            secs: t.sec,
            nanos,
            sequence: u64::from(sequence),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structures_are_the_kernels() {
        assert_eq!(size_of::<PpsKtime>(), 16);
        assert_eq!(size_of::<PpsKinfo>(), 48);
        assert_eq!(size_of::<PpsFdata>(), 64);
        assert_eq!(PPS_FETCH, 0xc008_70a4);
    }

    #[test]
    fn a_file_that_is_not_a_pps_device_is_an_error_not_a_pulse() {
        let mut dev = open(Path::new("/dev/null")).unwrap();
        assert!(dev.fetch(Edge::Assert).is_err());
    }
}
