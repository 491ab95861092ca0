//! Symmetric-key authentication of NTP packets (RFC 5905 §7.3, RFC 8573): the rules, not the
//! cryptography.
//!
//! A MAC trailer is a 4-octet key id and a digest over everything before it. The core decides
//! *when* a packet must carry one, *which* key it must be under and what happens when it does
//! not verify; the digests themselves are computed behind [`KeyRing`], which the daemon
//! implements over its keys file and `trustedkey` list. That keeps key material, file handling
//! and the hash crates out of the core, and lets the simulator run without keys ([`NoKeys`]).
//!
//! Only *trusted* keys count: a [`KeyRing`] answers for a key id only if the key exists, is of
//! a type it can compute and is trusted; any other id is [`Verification::UnknownKey`].

use core::fmt;

use crate::packet::{HEADER_LEN, Packet};

/// Longest digest, octets: SHA-512's 64. chrony and NTPsec's `ntpdig` send whole SHA-2
/// digests; NTPsec's ntpd cuts them to [`V4_DIGEST_LEN`].
pub const MAX_DIGEST_LEN: usize = 64;

/// Longest digest a request of ours carries, octets: SHA-1's 20. Longer digests are cut to it,
/// as NTPsec sends them, which keeps the MAC within NTPv4's 24-octet trailer (RFC 7822) that
/// every implementation parses.
pub const V4_DIGEST_LEN: usize = 20;

/// Octets of the key id in front of a digest.
pub const KEY_ID_LEN: usize = 4;

/// Longest MAC trailer: key id and digest.
pub const MAX_MAC_LEN: usize = KEY_ID_LEN + MAX_DIGEST_LEN;

/// Longest authenticated packet this core writes: a header and the longest MAC (a reply to a
/// request with a whole SHA-512 digest).
pub const MAX_AUTHENTICATED_LEN: usize = HEADER_LEN + MAX_MAC_LEN;

/// The trusted symmetric keys, as the core sees them: ids that can sign and verify.
///
/// Implementations must compare digests in constant time and must never reveal key material.
pub trait KeyRing {
    /// Writes the whole digest of `data` under the trusted key `key_id` to the start of `out`
    /// and returns its length; `None` if the key is unknown, untrusted or of a type that cannot
    /// be computed.
    fn sign(&self, key_id: u32, data: &[u8], out: &mut [u8; MAX_DIGEST_LEN]) -> Option<usize>;

    /// Whether `tag` is the digest of `data` under the trusted key `key_id`: the whole digest,
    /// or its first [`V4_DIGEST_LEN`] octets for a longer one.
    fn verify(&self, key_id: u32, data: &[u8], tag: &[u8]) -> Verification;
}

/// What [`KeyRing::verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The digest is right.
    Valid,
    /// No usable trusted key has this id.
    UnknownKey,
    /// The key exists and is trusted, but the digest (or its length) is wrong.
    Mismatch,
}

/// No keys at all: nothing signs, nothing verifies.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeys;

impl KeyRing for NoKeys {
    fn sign(&self, _: u32, _: &[u8], _: &mut [u8; MAX_DIGEST_LEN]) -> Option<usize> {
        None
    }

    fn verify(&self, _: u32, _: &[u8], _: &[u8]) -> Verification {
        Verification::UnknownKey
    }
}

/// What a received packet's trailer proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// No MAC at all.
    None,
    /// A crypto-NAK: a key id with no digest. Never authentication of anything
    /// (CVE-2015-7871).
    CryptoNak,
    /// The MAC verifies under the trusted key `key_id` (as [`authenticate`] found).
    Valid {
        /// The key.
        key_id: u32,
    },
    /// A MAC under a key that is unknown or not trusted.
    UnknownKey {
        /// The key id in the packet.
        key_id: u32,
    },
    /// A MAC under a trusted key that does not verify: another secret, or a modified packet.
    Mismatch {
        /// The key id in the packet.
        key_id: u32,
    },
}

impl Authentication {
    /// The key the packet is authenticated under, if it is.
    pub fn valid_key(self) -> Option<u32> {
        match self {
            Self::Valid { key_id } => Some(key_id),
            _ => None,
        }
    }
}

impl fmt::Display for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("no MAC"),
            Self::CryptoNak => f.write_str("crypto-NAK"),
            Self::Valid { key_id } => write!(f, "authenticated with key {key_id}"),
            Self::UnknownKey { key_id } => write!(f, "MAC with unknown or untrusted key {key_id}"),
            Self::Mismatch { key_id } => write!(f, "MAC with key {key_id} does not verify"),
        }
    }
}

/// Checks the MAC trailer of `packet`, parsed from `datagram`, against `keys`. The digest
/// covers everything before the trailer (header and extension fields).
pub fn authenticate(keys: &dyn KeyRing, datagram: &[u8], packet: &Packet<'_>) -> Authentication {
    let Some(mac) = packet.mac else {
        return Authentication::None;
    };
    if mac.is_crypto_nak() {
        return Authentication::CryptoNak;
    }
    let key_id = mac.key_id;
    let Some(covered) = datagram
        .len()
        .checked_sub(mac.len_bytes())
        .and_then(|end| datagram.get(..end))
    else {
        return Authentication::Mismatch { key_id };
    };
    match keys.verify(key_id, covered, mac.digest) {
        Verification::Valid => Authentication::Valid { key_id },
        Verification::UnknownKey => Authentication::UnknownKey { key_id },
        Verification::Mismatch => Authentication::Mismatch { key_id },
    }
}

/// Appends the MAC of `buf[..len]` under `key_id` to `buf` (key id, then the digest cut to at
/// most `digest_len` octets) and returns the new length; `None`, with `buf` unchanged past
/// `len`, if the key cannot sign or `buf` is too short.
pub fn append_mac(
    keys: &dyn KeyRing,
    key_id: u32,
    digest_len: usize,
    buf: &mut [u8],
    len: usize,
) -> Option<usize> {
    let mut digest = [0u8; MAX_DIGEST_LEN];
    let n = keys.sign(key_id, buf.get(..len)?, &mut digest)?;
    let digest = digest.get(..n.min(digest_len))?;
    let n = digest.len();
    let end = len.checked_add(KEY_ID_LEN)?.checked_add(n)?;
    let trailer = buf.get_mut(len..end)?;
    let (id, tag) = trailer.split_at_mut(KEY_ID_LEN);
    id.copy_from_slice(&key_id.to_be_bytes());
    tag.copy_from_slice(digest);
    Some(end)
}

/// A [`KeyRing`] for tests: key `id` with a toy digest (a keyed byte sum, NOT a MAC) of `len`
/// octets; compares in constant time like a real one must.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TestKeys {
    /// The one trusted key.
    pub id: u32,
    /// Its secret byte.
    pub secret: u8,
    /// Digest length.
    pub len: usize,
}

#[cfg(test)]
impl KeyRing for TestKeys {
    fn sign(&self, key_id: u32, data: &[u8], out: &mut [u8; MAX_DIGEST_LEN]) -> Option<usize> {
        if key_id != self.id {
            return None;
        }
        let mut acc = self.secret;
        for (i, slot) in out.iter_mut().take(self.len).enumerate() {
            for &b in data {
                acc = acc.rotate_left(3) ^ b ^ (i as u8);
            }
            *slot = acc;
        }
        Some(self.len)
    }

    fn verify(&self, key_id: u32, data: &[u8], tag: &[u8]) -> Verification {
        let mut expected = [0u8; MAX_DIGEST_LEN];
        let Some(n) = self.sign(key_id, data, &mut expected) else {
            return Verification::UnknownKey;
        };
        let wanted = if tag.len() == V4_DIGEST_LEN && n > V4_DIGEST_LEN {
            V4_DIGEST_LEN
        } else {
            n
        };
        let ok = tag.len() == wanted
            && expected
                .iter()
                .zip(tag)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if ok {
            Verification::Valid
        } else {
            Verification::Mismatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Mode, NtpHeader};

    const KEYS: TestKeys = TestKeys {
        id: 7,
        secret: 0x5a,
        len: 20,
    };

    fn signed(key_id: u32) -> Vec<u8> {
        let mut buf = [0u8; MAX_AUTHENTICATED_LEN];
        let mut head = [0u8; HEADER_LEN];
        NtpHeader::new(4, Mode::Client).emit(&mut head);
        buf[..HEADER_LEN].copy_from_slice(&head);
        let len =
            append_mac(&KEYS, key_id, V4_DIGEST_LEN, &mut buf, HEADER_LEN).unwrap_or(HEADER_LEN);
        buf[..len].to_vec()
    }

    fn check(datagram: &[u8]) -> Authentication {
        authenticate(&KEYS, datagram, &Packet::parse(datagram).expect("parses"))
    }

    #[test]
    fn a_mac_appended_under_a_trusted_key_verifies() {
        let d = signed(7);
        assert_eq!(d.len(), 72);
        assert_eq!(d[48..52], [0, 0, 0, 7]);
        assert_eq!(check(&d), Authentication::Valid { key_id: 7 });
    }

    #[test]
    fn a_flipped_bit_anywhere_fails() {
        let d = signed(7);
        for i in 0..d.len() {
            let mut t = d.clone();
            t[i] ^= 0x10;
            // A first octet that no longer parses is not a packet, let alone authenticated.
            if let Ok(p) = Packet::parse(&t) {
                let got = authenticate(&KEYS, &t, &p);
                assert!(got.valid_key().is_none(), "octet {i}: {got:?}");
            }
        }
    }

    #[test]
    fn unknown_keys_crypto_naks_and_missing_macs_are_not_authentication() {
        assert_eq!(signed(8).len(), 48, "an unknown key signs nothing");
        let mut d = signed(7);
        d[48..52].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(check(&d), Authentication::UnknownKey { key_id: 9 });
        let mut nak = d[..48].to_vec();
        nak.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(check(&nak), Authentication::CryptoNak);
        assert_eq!(check(&d[..48]), Authentication::None);
        // A 16-octet digest under a key whose digests are 20 octets long.
        let mut short = d[..48].to_vec();
        short.extend_from_slice(&7u32.to_be_bytes());
        short.extend_from_slice(&[0; 16]);
        assert_eq!(check(&short), Authentication::Mismatch { key_id: 7 });
    }

    #[test]
    fn append_mac_never_writes_past_the_buffer() {
        let mut buf = [0u8; HEADER_LEN + 10];
        assert_eq!(append_mac(&KEYS, 7, 20, &mut buf, HEADER_LEN), None);
        assert!(buf[HEADER_LEN..].iter().all(|&b| b == 0));
        assert_eq!(append_mac(&NoKeys, 7, 20, &mut [0u8; 80], HEADER_LEN), None);
    }
}
