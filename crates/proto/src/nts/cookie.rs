//! Server cookies: a client's session keys sealed under the server's master key, so that the
//! server keeps no state per client (RFC 8915 §6).
//!
//! Layout (server-defined; clients treat it as opaque):
//! `key id (4) | nonce (16) | SIV tag (16) | encrypted { AEAD id (2) | 0 (2) | C2S | S2C }`,
//! a multiple of four octets, so a cookie fills its extension field without padding,
//! sealed with AEAD_AES_SIV_CMAC_256 under the master key named by the key id, the key id as
//! associated data. The master key rotates; [`CookieKeys`] keeps the previous keys for a
//! window so cookies issued shortly before a rotation still open.

use core::fmt;

use super::aead::{Aead, AeadKey, SessionKeys, TAG_LEN};

/// Octets of a master key (AES-SIV-CMAC-256).
pub const MASTER_KEY_LEN: usize = 32;

/// Octets of the random nonce inside a cookie.
pub const COOKIE_NONCE_LEN: usize = 16;

/// Longest cookie this server issues: with AES-SIV-CMAC-512 session keys.
pub const MAX_COOKIE_LEN: usize = 4 + COOKIE_NONCE_LEN + TAG_LEN + 4 + 2 * 64;

/// Master keys kept: the current one and the previous ones still accepted.
pub const MAX_MASTER_KEYS: usize = 4;

/// One master key and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    /// The id written in front of every cookie sealed under it.
    pub id: u32,
    /// The secret.
    pub key: [u8; MASTER_KEY_LEN],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The server's master keys, newest first. Shared read-only by every server thread; a
/// rotation builds a new value ([`CookieKeys::rotated`]) that the daemon publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieKeys {
    keys: Vec<MasterKey>,
}

impl CookieKeys {
    /// Keys from `keys`, newest first; at most [`MAX_MASTER_KEYS`] are kept. `None` if empty.
    pub fn new(mut keys: Vec<MasterKey>) -> Option<Self> {
        keys.truncate(MAX_MASTER_KEYS);
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// These keys after a rotation to `fresh`: `fresh` seals from now on, the oldest key is
    /// forgotten once more than [`MAX_MASTER_KEYS`] are held.
    pub fn rotated(&self, fresh: MasterKey) -> Self {
        let mut keys = Vec::with_capacity(MAX_MASTER_KEYS);
        keys.push(fresh);
        keys.extend(self.keys.iter().take(MAX_MASTER_KEYS - 1).cloned());
        Self { keys }
    }

    /// The keys, newest first (for storing them).
    pub fn keys(&self) -> &[MasterKey] {
        &self.keys
    }

    /// The length of a cookie for session keys of `aead`.
    pub const fn cookie_len(aead: Aead) -> usize {
        4 + COOKIE_NONCE_LEN + TAG_LEN + 4 + 2 * aead.key_len()
    }

    /// Seals `session` into a cookie written to the start of `out` under the newest key, with
    /// the caller's random `nonce`; returns its length, `None` if `out` is too short.
    pub fn seal(
        &self,
        session: &SessionKeys,
        nonce: [u8; COOKIE_NONCE_LEN],
        out: &mut [u8],
    ) -> Option<usize> {
        let master = self.keys.first()?;
        let aead = session.aead();
        let len = Self::cookie_len(aead);
        let out = out.get_mut(..len)?;
        let (id, rest) = out.split_at_mut(4);
        id.copy_from_slice(&master.id.to_be_bytes());
        let (n, rest) = rest.split_at_mut(COOKIE_NONCE_LEN);
        n.copy_from_slice(&nonce);
        let (tag, plain) = rest.split_at_mut(TAG_LEN);
        let (alg, keys) = plain.split_at_mut(4);
        alg.copy_from_slice(&[0; 4]);
        alg.get_mut(..2)?.copy_from_slice(&aead.id().to_be_bytes());
        let (c2s, s2c) = keys.split_at_mut(aead.key_len());
        c2s.copy_from_slice(session.c2s.as_bytes());
        s2c.copy_from_slice(session.s2c.as_bytes());
        let sealer = AeadKey::new(Aead::AesSivCmac256, &master.key)?;
        let t = sealer.seal(&nonce, &master.id.to_be_bytes(), plain);
        tag.copy_from_slice(&t);
        Some(len)
    }

    /// Opens a cookie: the session keys it holds, or `None` if it is not one of ours (unknown
    /// or expired key id, wrong length, modified).
    pub fn open(&self, cookie: &[u8]) -> Option<SessionKeys> {
        self.open_aged(cookie).map(|(keys, _)| keys)
    }

    /// [`Self::open`], with the age of the master key that opened the cookie: 0 for the
    /// newest, 1 for the one before the last rotation, and so on (for NTPsec's
    /// `nts_cookie_decode_old*` counters).
    pub fn open_aged(&self, cookie: &[u8]) -> Option<(SessionKeys, usize)> {
        let (id, rest) = cookie.split_first_chunk::<4>()?;
        let (nonce, rest) = rest.split_first_chunk::<COOKIE_NONCE_LEN>()?;
        let (tag, sealed) = rest.split_first_chunk::<TAG_LEN>()?;
        let (age, master) = self
            .keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.id.to_be_bytes() == *id)?;
        let mut plain = [0u8; MAX_COOKIE_LEN];
        let plain = plain.get_mut(..sealed.len())?;
        plain.copy_from_slice(sealed);
        let opener = AeadKey::new(Aead::AesSivCmac256, &master.key)?;
        if !opener.open(nonce, id, plain, tag) {
            return None;
        }
        let (&[a0, a1, _, _], keys) = plain.split_first_chunk::<4>()?;
        let aead = Aead::from_id(u16::from_be_bytes([a0, a1]))?;
        if keys.len() != 2 * aead.key_len() {
            return None;
        }
        let (c2s, s2c) = keys.split_at(aead.key_len());
        let session = SessionKeys {
            c2s: AeadKey::new(aead, c2s)?,
            s2c: AeadKey::new(aead, s2c)?,
        };
        Some((session, age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(aead: Aead) -> SessionKeys {
        SessionKeys {
            c2s: AeadKey::new(aead, &vec![1; aead.key_len()]).expect("len"),
            s2c: AeadKey::new(aead, &vec![2; aead.key_len()]).expect("len"),
        }
    }

    fn master(id: u32) -> MasterKey {
        MasterKey {
            id,
            key: [id as u8; MASTER_KEY_LEN],
        }
    }

    #[test]
    fn a_sealed_cookie_opens_to_the_same_keys() {
        let keys = CookieKeys::new(vec![master(1)]).expect("one key");
        for aead in Aead::ALL {
            let mut out = [0u8; MAX_COOKIE_LEN];
            let len = keys.seal(&session(aead), [9; 16], &mut out).expect("fits");
            assert_eq!(len, CookieKeys::cookie_len(aead));
            assert_eq!(keys.open(&out[..len]), Some(session(aead)));
        }
        assert_eq!(CookieKeys::cookie_len(Aead::AesSivCmac256), 104);
        assert_eq!(CookieKeys::cookie_len(Aead::AesSivCmac512) % 4, 0);
    }

    #[test]
    fn a_modified_or_foreign_cookie_does_not_open() {
        let keys = CookieKeys::new(vec![master(1)]).expect("one key");
        let mut out = [0u8; MAX_COOKIE_LEN];
        let len = keys
            .seal(&session(Aead::AesSivCmac256), [9; 16], &mut out)
            .expect("fits");
        for i in 0..len {
            let mut c = out;
            c[i] ^= 1;
            assert_eq!(keys.open(&c[..len]), None, "octet {i}");
        }
        assert_eq!(keys.open(&out[..len - 1]), None);
        let other = CookieKeys::new(vec![MasterKey {
            id: 1,
            key: [7; 32],
        }])
        .expect("key");
        assert_eq!(other.open(&out[..len]), None);
        assert_eq!(keys.open(&[]), None);
    }

    #[test]
    fn cookies_survive_rotations_while_their_key_is_kept() {
        let mut keys = CookieKeys::new(vec![master(1)]).expect("one key");
        let mut out = [0u8; MAX_COOKIE_LEN];
        let len = keys
            .seal(&session(Aead::AesSivCmac256), [3; 16], &mut out)
            .expect("fits");
        assert_eq!(keys.open_aged(&out[..len]).map(|(_, age)| age), Some(0));
        for id in 2..=MAX_MASTER_KEYS as u32 {
            keys = keys.rotated(master(id));
            let age = keys.open_aged(&out[..len]).map(|(_, age)| age);
            assert_eq!(age, Some(id as usize - 1), "after rotation to {id}");
        }
        keys = keys.rotated(master(99));
        assert_eq!(keys.open(&out[..len]), None, "the oldest key is gone");
        assert_eq!(keys.keys().len(), MAX_MASTER_KEYS);
        assert_eq!(keys.keys()[0].id, 99);
    }
}
