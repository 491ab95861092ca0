//! Unpredictable numbers for request nonces and poll jitter.
//!
//! A client's transmit timestamp is its defence against off-path spoofing, so it must come from
//! the kernel's CSPRNG. Reading `/dev/urandom` goes through glibc's `open` and `read` like every
//! other call the daemon makes, so simulators that interpose on libc (clknetsim) see it and
//! substitute their seeded generator; it costs one read per poll — polls are seconds apart.

use std::fs::File;
use std::io::{self, Read};

/// A handle on the kernel's random number generator.
#[derive(Debug)]
pub struct Random {
    source: File,
}

impl Random {
    /// Opens `/dev/urandom`.
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            source: sundial_sys::process::open_read_only(c"/dev/urandom")?,
        })
    }

    /// 64 random bits. Should the read ever fail, the value still differs between calls: a
    /// counter mixed with the time keeps nonces unique (if no longer secret), which beats
    /// stopping time service.
    pub fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        match self.source.read_exact(&mut b) {
            Ok(()) => u64::from_ne_bytes(b),
            Err(e) => {
                tracing::warn!("reading /dev/urandom failed: {e}");
                let t = crate::clock::kernel_now();
                u64::from(t.subsec_nanos())
                    ^ (t.secs().unsigned_abs() << 30)
                    ^ 0x9e37_79b9_7f4a_7c15
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successive_values_differ() {
        let mut r = Random::open().unwrap();
        let a = r.next_u64();
        let b = r.next_u64();
        assert_ne!(a, b);
    }
}
