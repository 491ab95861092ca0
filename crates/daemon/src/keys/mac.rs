//! Legacy NTP MACs (RFC 5905 §7.3, RFC 8573): a 4-octet key id and a digest after the header
//! and any extension fields.
//!
//! * MD5 and SHA-1: the digest of the key followed by the packet up to the MAC —
//!   `H(key ‖ packet)`, **not** HMAC;
//! * AES-128-CMAC: `CMAC(key, packet)`, with the key zero-padded or cut to 16 octets as ntpd does.
//!
//! Received MACs are compared in constant time.

use core::fmt;

use cmac::Cmac;
use cmac::digest::generic_array::GenericArray;
use cmac::digest::{KeyInit, Mac as _};
use md5::Digest as _;
use subtle::ConstantTimeEq;
use sundial_proto::packet::Packet;

use super::{KeyType, SymmetricKey, wipe};

/// The longest digest (SHA-512's), octets.
pub const MAX_DIGEST_LEN: usize = sundial_proto::auth::MAX_DIGEST_LEN;

/// The digest length sundial sends (SHA-1's; SHA-2 digests are cut to it, as NTPsec does).
pub const SENT_DIGEST_LEN: usize = sundial_proto::auth::V4_DIGEST_LEN;

/// Octets of the key id in front of a digest.
const KEY_ID_LEN: usize = 4;

/// AES-128 key length, octets.
const CMAC_KEY_LEN: usize = 16;

/// A computed MAC digest (16 or 20 octets). Not secret, but compare it with
/// [`SymmetricKey::verify`], which takes constant time, rather than by hand.
#[derive(Clone, Copy)]
pub struct Digest {
    bytes: [u8; MAX_DIGEST_LEN],
    len: usize,
}

impl Digest {
    /// Copies up to [`MAX_DIGEST_LEN`] octets.
    fn from_slice(bytes: &[u8]) -> Self {
        let mut digest = Self {
            bytes: [0; MAX_DIGEST_LEN],
            len: bytes.len().min(MAX_DIGEST_LEN),
        };
        for (slot, &b) in digest.bytes.iter_mut().zip(bytes) {
            *slot = b;
        }
        digest
    }

    /// The digest octets.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl SymmetricKey {
    /// The digest of `data` (the packet up to the MAC) under this key as sundial sends it:
    /// SHA-2 digests cut to [`SENT_DIGEST_LEN`] octets.
    pub fn digest(&self, data: &[u8]) -> Digest {
        let mut digest = self.full_digest(data);
        digest.len = digest.len.min(self.key_type.digest_len());
        digest
    }

    /// The whole digest of `data` under this key (32, 48 or 64 octets for SHA-2), as chrony and
    /// `ntpdig` send it.
    pub fn full_digest(&self, data: &[u8]) -> Digest {
        match self.key_type {
            KeyType::Md5 => Digest::from_slice(
                &md5::Md5::new()
                    .chain_update(self.secret())
                    .chain_update(data)
                    .finalize(),
            ),
            KeyType::Sha1 => Digest::from_slice(
                &sha1::Sha1::new()
                    .chain_update(self.secret())
                    .chain_update(data)
                    .finalize(),
            ),
            KeyType::Sha256 => Digest::from_slice(
                &sha2::Sha256::new()
                    .chain_update(self.secret())
                    .chain_update(data)
                    .finalize(),
            ),
            KeyType::Sha384 => Digest::from_slice(
                &sha2::Sha384::new()
                    .chain_update(self.secret())
                    .chain_update(data)
                    .finalize(),
            ),
            KeyType::Sha512 => Digest::from_slice(
                &sha2::Sha512::new()
                    .chain_update(self.secret())
                    .chain_update(data)
                    .finalize(),
            ),
            KeyType::Aes128Cmac => {
                let mut key = [0u8; CMAC_KEY_LEN];
                for (slot, &b) in key.iter_mut().zip(self.secret()) {
                    *slot = b;
                }
                let mut mac = <Cmac<aes::Aes128> as KeyInit>::new(&GenericArray::from(key));
                wipe(&mut key);
                mac.update(data);
                Digest::from_slice(&mac.finalize().into_bytes())
            }
        }
    }

    /// Whether `tag` is the MAC of `data` under this key — the whole digest, or a longer one
    /// cut to [`SENT_DIGEST_LEN`] octets — compared in constant time (the lengths are public).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let full = self.full_digest(data);
        let full = full.as_bytes();
        let expected = if tag.len() == SENT_DIGEST_LEN && full.len() > SENT_DIGEST_LEN {
            full.get(..SENT_DIGEST_LEN).unwrap_or(full)
        } else {
            full
        };
        bool::from(expected.ct_eq(tag))
    }

    /// Appends the MAC trailer for `packet` (everything in it so far): key id, then digest.
    pub fn append_mac(&self, packet: &mut Vec<u8>) {
        let digest = self.digest(packet);
        packet.extend_from_slice(&u32::from(self.id.get()).to_be_bytes());
        packet.extend_from_slice(digest.as_bytes());
    }

    /// Octets [`append_mac`](Self::append_mac) adds: the key id and the digest.
    pub fn trailer_len(&self) -> usize {
        KEY_ID_LEN + self.key_type.digest_len()
    }
}

/// Why a packet is not authenticated by a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacFailure {
    /// Not a well-formed NTP packet, so there is no MAC to find.
    Malformed,
    /// The packet carries no MAC.
    Missing,
    /// The packet carries a crypto-NAK: a key id without a digest (the sender could not or
    /// would not authenticate).
    CryptoNak,
    /// The MAC uses another key.
    WrongKey {
        /// The key id in the packet.
        key_id: u32,
    },
    /// The digest length does not fit the key's type.
    WrongLength {
        /// Digest octets in the packet.
        len: usize,
    },
    /// The digest is not the packet's under the key: a different secret or a modified packet.
    Mismatch,
}

impl fmt::Display for MacFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed packet"),
            Self::Missing => f.write_str("no MAC"),
            Self::CryptoNak => f.write_str("crypto-NAK"),
            Self::WrongKey { key_id } => write!(f, "MAC with key {key_id}"),
            Self::WrongLength { len } => write!(f, "MAC digest of {len} octets"),
            Self::Mismatch => f.write_str("MAC does not match"),
        }
    }
}

/// Checks that `datagram` ends in a valid MAC made with `key` over everything before it.
pub fn check_mac(key: &SymmetricKey, datagram: &[u8]) -> Result<(), MacFailure> {
    let packet = Packet::parse(datagram).map_err(|_| MacFailure::Malformed)?;
    let mac = packet.mac.ok_or(MacFailure::Missing)?;
    if mac.is_crypto_nak() {
        return Err(MacFailure::CryptoNak);
    }
    if mac.key_id != u32::from(key.id.get()) {
        return Err(MacFailure::WrongKey { key_id: mac.key_id });
    }
    if mac.digest.len() != key.key_type.digest_len() {
        return Err(MacFailure::WrongLength {
            len: mac.digest.len(),
        });
    }
    let covered = datagram
        .len()
        .checked_sub(mac.len_bytes())
        .and_then(|end| datagram.get(..end))
        .ok_or(MacFailure::Malformed)?;
    if key.verify(covered, mac.digest) {
        Ok(())
    } else {
        Err(MacFailure::Mismatch)
    }
}
