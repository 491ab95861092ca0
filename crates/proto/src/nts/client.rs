//! The NTS state of one source (RFC 8915 §5.7, client side): the session keys from the last
//! key exchange, the cookie jar and the unique identifier of the request in flight.
//!
//! Each cookie is used once. A request asks, with placeholders, for as many cookies as the jar
//! is missing, so a jar stays full while replies arrive; lost replies drain it, and an empty
//! jar (or an NTS NAK) means a new key exchange, which the caller runs.

use core::fmt;
use std::collections::VecDeque;

use super::SessionKeys;
use super::ef::{self, NONCE_LEN, NtsError, Reply, UID_LEN};
use super::ke::{COOKIES_PER_EXCHANGE, MAX_CLIENT_COOKIE_LEN};
use crate::packet::{Packet, ReferenceId};

/// Why an NTS reply was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// The reply is not authenticated, or not with our keys and identifier.
    Invalid(NtsError),
    /// An NTS NAK for our request: the cookies are dropped, a key exchange is due.
    Nak,
    /// No NTS request is outstanding.
    NotExpected,
}

/// The NTS state of one source.
#[derive(Clone, Default)]
pub struct NtsClient {
    keys: Option<SessionKeys>,
    cookies: VecDeque<Vec<u8>>,
    uid: Option<[u8; UID_LEN]>,
}

impl fmt::Debug for NtsClient {
    /// How many cookies, never the cookies or keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NtsClient")
            .field("keyed", &self.keys.is_some())
            .field("cookies", &self.cookies.len())
            .finish_non_exhaustive()
    }
}

impl NtsClient {
    /// Installs the result of a key exchange: its keys and cookies replace any old ones.
    pub fn install(&mut self, keys: SessionKeys, cookies: Vec<Vec<u8>>) {
        self.keys = Some(keys);
        self.cookies = cookies
            .into_iter()
            .filter(|c| !c.is_empty() && c.len() <= MAX_CLIENT_COOKIE_LEN)
            .take(COOKIES_PER_EXCHANGE)
            .collect();
        self.uid = None;
    }

    /// Whether a key exchange is needed: no keys, or no cookie left.
    pub fn needs_key_exchange(&self) -> bool {
        self.keys.is_none() || self.cookies.is_empty()
    }

    /// Cookies in the jar.
    pub fn cookies(&self) -> usize {
        self.cookies.len()
    }

    /// Writes the NTS fields of a request after the header already at the start of `out`,
    /// spending one cookie; returns the packet length, or `None` (nothing spent) without keys
    /// or cookies or if `out` is too short.
    pub fn write_request(
        &mut self,
        out: &mut [u8],
        random: &mut impl FnMut() -> u64,
    ) -> Option<usize> {
        let keys = self.keys.as_ref()?;
        let cookie = self.cookies.front()?;
        let mut uid = [0u8; UID_LEN];
        for chunk in uid.chunks_exact_mut(8) {
            chunk.copy_from_slice(&random().to_be_bytes());
        }
        let mut nonce = [0u8; NONCE_LEN];
        for chunk in nonce.chunks_exact_mut(8) {
            chunk.copy_from_slice(&random().to_be_bytes());
        }
        let missing = COOKIES_PER_EXCHANGE.saturating_sub(self.cookies.len());
        let len = ef::write_request(out, &uid, cookie, missing, &keys.c2s, &nonce)?;
        self.cookies.pop_front();
        self.uid = Some(uid);
        Some(len)
    }

    /// Checks a reply (already past the origin check) to the outstanding request and keeps
    /// the fresh cookies it carries. A NAK empties the jar.
    pub fn check_reply(&mut self, datagram: &[u8], packet: &Packet<'_>) -> Result<(), ReplyError> {
        let (Some(uid), Some(keys)) = (self.uid, self.keys.as_ref()) else {
            return Err(ReplyError::NotExpected);
        };
        let h = &packet.header;
        let is_nak = h.is_kiss_of_death() && h.reference_id == ReferenceId::NTSN;
        let mut fresh: Vec<Vec<u8>> = Vec::new();
        let verdict =
            ef::verify_reply(datagram, &packet.extensions, &uid, &keys.s2c, is_nak, |c| {
                if !c.is_empty()
                    && c.len() <= MAX_CLIENT_COOKIE_LEN
                    && fresh.len() < COOKIES_PER_EXCHANGE
                {
                    fresh.push(c.to_vec());
                }
            });
        match verdict {
            Ok(Reply::Authentic) => {
                self.uid = None;
                for c in fresh {
                    if self.cookies.len() < COOKIES_PER_EXCHANGE {
                        self.cookies.push_back(c);
                    }
                }
                Ok(())
            }
            Ok(Reply::Nak) => {
                self.uid = None;
                self.cookies.clear();
                Err(ReplyError::Nak)
            }
            Err(e) => Err(ReplyError::Invalid(e)),
        }
    }
}
