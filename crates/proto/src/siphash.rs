//! SipHash-2-4, the keyed hash that places client addresses in the rate-limit table.
//!
//! With a secret random key an attacker cannot choose source addresses that collide in one
//! bucket (hash flooding), and the table stays fair. Written here because the core takes its
//! randomness as an argument: the standard library's hasher seeds itself from the OS.

/// SipHash-2-4 with the key (`k0`, `k1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipKey {
    k0: u64,
    k1: u64,
}

impl SipKey {
    /// A key from 128 random bits.
    pub const fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }

    /// The 64-bit hash of `data`.
    pub fn hash(&self, data: &[u8]) -> u64 {
        let mut v = [
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
            self.k0 ^ 0x6c79_6765_6e65_7261,
            self.k1 ^ 0x7465_6462_7974_6573,
        ];
        let mut chunks = data.chunks_exact(8);
        for chunk in &mut chunks {
            let m = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            compress(&mut v, m);
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        for (l, r) in last.iter_mut().zip(rest) {
            *l = *r;
        }
        #[expect(
            clippy::cast_possible_truncation,
            reason = "SipHash keeps only the low length byte"
        )]
        let len_byte = data.len() as u8;
        last[7] = len_byte;
        compress(&mut v, u64::from_le_bytes(last));
        v[2] ^= 0xff;
        for _ in 0..4 {
            round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vector of the SipHash paper (appendix A): key 00..0f, message 00..0e.
    #[test]
    fn matches_the_reference_vector() {
        let key = SipKey::new(
            u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        );
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(key.hash(&msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn different_keys_give_different_hashes() {
        let a = SipKey::new(1, 2).hash(b"192.0.2.1");
        let b = SipKey::new(3, 4).hash(b"192.0.2.1");
        assert_ne!(a, b);
    }
}
