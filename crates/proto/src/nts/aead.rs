//! The AEAD algorithms NTS uses: AES-SIV-CMAC (RFC 5297) with 256- and 512-bit keys.
//!
//! SIV is deterministic and nonce-misuse resistant, which is why RFC 8915 makes it mandatory: a
//! repeated nonce reveals only that two plaintexts were equal. The nonce is the last
//! associated-data component (RFC 5297 §3), so any nonce length is accepted; clients of other
//! implementations do not all send 16 octets.

use core::fmt;

use aes_siv::KeyInit;
use aes_siv::aead::generic_array::GenericArray;
use aes_siv::siv::{Aes128Siv, Aes256Siv};

/// Octets of the synthetic IV that authenticates a SIV ciphertext (it precedes the ciphertext
/// on the wire).
pub const TAG_LEN: usize = 16;

/// Longest key: AES-SIV-CMAC-512's 64 octets.
const MAX_KEY_LEN: usize = 64;

/// An AEAD algorithm from the IANA "AEAD Algorithms" registry that sundial implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead {
    /// AEAD_AES_SIV_CMAC_256 (id 15), mandatory to implement.
    AesSivCmac256,
    /// AEAD_AES_SIV_CMAC_512 (id 17).
    AesSivCmac512,
}

impl Aead {
    /// The algorithms in order of preference: the mandatory one first, as chrony and NTPsec
    /// prefer it too (shorter cookies).
    pub const ALL: [Self; 2] = [Self::AesSivCmac256, Self::AesSivCmac512];

    /// The IANA id.
    pub const fn id(self) -> u16 {
        match self {
            Self::AesSivCmac256 => 15,
            Self::AesSivCmac512 => 17,
        }
    }

    /// The algorithm with IANA id `id`, if implemented.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            15 => Some(Self::AesSivCmac256),
            17 => Some(Self::AesSivCmac512),
            _ => None,
        }
    }

    /// Key length in octets.
    pub const fn key_len(self) -> usize {
        match self {
            Self::AesSivCmac256 => 32,
            Self::AesSivCmac512 => 64,
        }
    }
}

/// A key for one algorithm. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AeadKey {
    aead: Aead,
    bytes: [u8; MAX_KEY_LEN],
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadKey")
            .field("aead", &self.aead)
            .finish_non_exhaustive()
    }
}

impl AeadKey {
    /// A key for `aead` from exactly [`Aead::key_len`] octets.
    pub fn new(aead: Aead, key: &[u8]) -> Option<Self> {
        if key.len() != aead.key_len() {
            return None;
        }
        let mut bytes = [0u8; MAX_KEY_LEN];
        bytes.get_mut(..key.len())?.copy_from_slice(key);
        Some(Self { aead, bytes })
    }

    /// The algorithm.
    pub fn aead(&self) -> Aead {
        self.aead
    }

    /// The key octets (for sealing them into a cookie).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.aead.key_len()).unwrap_or_default()
    }

    /// Encrypts `buf` in place under `nonce` with associated data `ad`; returns the tag that
    /// goes in front of the ciphertext.
    pub fn seal(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let headers: [&[u8]; 2] = [ad, nonce];
        let tag = match self.aead {
            Aead::AesSivCmac256 => Aes128Siv::new(GenericArray::from_slice(self.as_bytes()))
                .encrypt_in_place_detached(headers, buf),
            Aead::AesSivCmac512 => Aes256Siv::new(GenericArray::from_slice(self.as_bytes()))
                .encrypt_in_place_detached(headers, buf),
        };
        // Only more than 126 headers can fail; there are two.
        tag.map(Into::into).unwrap_or([0; TAG_LEN])
    }

    /// Decrypts `buf` in place if `tag` authenticates it under `nonce` and `ad`; on failure
    /// `buf` is left unspecified and `false` returned.
    pub fn open(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let headers: [&[u8]; 2] = [ad, nonce];
        let tag = GenericArray::from_slice(tag);
        match self.aead {
            Aead::AesSivCmac256 => Aes128Siv::new(GenericArray::from_slice(self.as_bytes()))
                .decrypt_in_place_detached(headers, buf, tag)
                .is_ok(),
            Aead::AesSivCmac512 => Aes256Siv::new(GenericArray::from_slice(self.as_bytes()))
                .decrypt_in_place_detached(headers, buf, tag)
                .is_ok(),
        }
    }
}

/// The two keys of one NTS association, derived from the TLS session (RFC 8915 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Client-to-server: requests.
    pub c2s: AeadKey,
    /// Server-to-client: replies.
    pub s2c: AeadKey,
}

impl SessionKeys {
    /// The negotiated algorithm.
    pub fn aead(&self) -> Aead {
        self.c2s.aead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_under_the_same_ad_and_nonce() {
        for aead in Aead::ALL {
            let key = AeadKey::new(aead, &vec![7u8; aead.key_len()]).expect("length");
            let mut buf = *b"sixteen octets!!";
            let tag = key.seal(b"nonce", b"ad", &mut buf);
            assert_ne!(&buf, b"sixteen octets!!");
            let mut copy = buf;
            assert!(key.open(b"nonce", b"ad", &mut copy, &tag));
            assert_eq!(&copy, b"sixteen octets!!");
            let mut copy = buf;
            assert!(
                !key.open(b"nonce", b"ae", &mut copy, &tag),
                "AD is authenticated"
            );
            let mut copy = buf;
            assert!(!key.open(b"nonc3", b"ad", &mut copy, &tag), "nonce is");
        }
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(AeadKey::new(Aead::AesSivCmac256, &[0; 31]).is_none());
        assert!(AeadKey::new(Aead::AesSivCmac512, &[0; 32]).is_none());
        assert_eq!(Aead::from_id(15), Some(Aead::AesSivCmac256));
        assert_eq!(Aead::from_id(30), None);
    }
}
