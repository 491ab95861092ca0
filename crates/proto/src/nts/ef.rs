//! The NTS extension fields of NTP packets (RFC 8915 §5): unique identifier, cookie, cookie
//! placeholder, and the authenticator with its encrypted extension fields.
//!
//! A request is `header | Unique Identifier | Cookie | Placeholder… | Authenticator`; the
//! authenticator's tag covers everything before it. A reply is `header | Unique Identifier |
//! Authenticator { encrypted: Cookie… }`. Fields after the authenticator are not authenticated
//! and are ignored; so are fields of unknown types. Nothing here allocates: requests and
//! replies are written into the caller's buffer, decryption happens in a stack buffer.

use core::fmt;

use super::aead::{AeadKey, TAG_LEN};
use crate::packet::{ExtensionFields, HEADER_LEN};

/// Unique Identifier field type.
pub const UNIQUE_IDENTIFIER: u16 = 0x0104;
/// NTS Cookie field type.
pub const COOKIE: u16 = 0x0204;
/// NTS Cookie Placeholder field type.
pub const COOKIE_PLACEHOLDER: u16 = 0x0304;
/// NTS Authenticator and Encrypted Extension Fields field type.
pub const AUTHENTICATOR: u16 = 0x0404;

/// Octets of the unique identifier sundial sends (RFC 8915 §5.3: at least 32).
pub const UID_LEN: usize = 32;

/// Octets of the nonces sundial sends.
pub const NONCE_LEN: usize = 16;

/// Shortest nonce accepted from a client (RFC 8915 §5.6 requires 16).
const MIN_NONCE_LEN: usize = 16;

/// Longest NTS packet handled, octets: larger requests are not answered and larger replies not
/// read. A request with eight cookies of 104 octets is about 1 KB.
pub const MAX_PACKET_LEN: usize = 2048;

/// Most cookies one reply carries (CVE-2026-26076: the cost of a request must be bounded).
pub const MAX_COOKIES_PER_REPLY: usize = 8;

/// Smallest extension field (RFC 7822).
const MIN_FIELD_LEN: usize = 16;

/// Why an NTS packet is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NtsError {
    /// No unique identifier before the authenticator.
    MissingUid,
    /// No cookie (server) or more than one.
    BadCookieCount,
    /// No authenticator.
    MissingAuthenticator,
    /// The authenticator's lengths do not fit, or the nonce is too short.
    MalformedAuthenticator,
    /// The tag does not verify: another key, or a modified packet.
    BadTag,
    /// The reply's unique identifier is not the request's.
    WrongUid,
    /// The encrypted fields are not well-formed.
    MalformedPlaintext,
    /// The packet is longer than [`MAX_PACKET_LEN`].
    TooLong,
}

impl fmt::Display for NtsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingUid => "no unique identifier",
            Self::BadCookieCount => "not exactly one cookie",
            Self::MissingAuthenticator => "no NTS authenticator",
            Self::MalformedAuthenticator => "malformed NTS authenticator",
            Self::BadTag => "NTS authenticator does not verify",
            Self::WrongUid => "unique identifier is not the request's",
            Self::MalformedPlaintext => "malformed encrypted extension fields",
            Self::TooLong => "NTS packet too long",
        })
    }
}

const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Octets taken by a field whose body is `body` octets.
pub const fn field_len(body: usize) -> usize {
    let n = 4 + pad4(body);
    if n < MIN_FIELD_LEN { MIN_FIELD_LEN } else { n }
}

/// Octets of an authenticator field with a nonce of `nonce` and `plain` octets encrypted.
pub const fn authenticator_len(nonce: usize, plain: usize) -> usize {
    4 + 4 + pad4(nonce) + pad4(TAG_LEN + plain)
}

/// Writes a field of type `kind` with `body` (or `fill` zeros when `body` is `None`) at
/// `out[at..]`; returns the offset after it.
fn put_field(
    out: &mut [u8],
    at: usize,
    kind: u16,
    body: Option<&[u8]>,
    fill: usize,
) -> Option<usize> {
    let blen = body.map_or(fill, <[u8]>::len);
    let len = field_len(blen);
    let field = out.get_mut(at..at.checked_add(len)?)?;
    field.fill(0);
    let (head, rest) = field.split_at_mut(4);
    head.copy_from_slice(&[
        kind.to_be_bytes()[0],
        kind.to_be_bytes()[1],
        u16::try_from(len).ok()?.to_be_bytes()[0],
        u16::try_from(len).ok()?.to_be_bytes()[1],
    ]);
    if let Some(body) = body {
        rest.get_mut(..blen)?.copy_from_slice(body);
    }
    Some(at + len)
}

/// Seals the authenticator at `out[at..]`: `plain` octets already written at the place of the
/// plaintext (see [`plaintext_offset`]) are encrypted under `key` with `nonce`, the tag over
/// `out[..at]`. Returns the offset after the field.
fn seal_authenticator(
    out: &mut [u8],
    at: usize,
    key: &AeadKey,
    nonce: &[u8; NONCE_LEN],
    plain: usize,
) -> Option<usize> {
    let len = authenticator_len(NONCE_LEN, plain);
    let end = at.checked_add(len)?;
    let (ad, field) = out.get_mut(..end)?.split_at_mut(at);
    let (head, rest) = field.split_at_mut(8);
    let ct_len = u16::try_from(TAG_LEN + plain).ok()?.to_be_bytes();
    let [l0, l1] = u16::try_from(len).ok()?.to_be_bytes();
    let [t0, t1] = AUTHENTICATOR.to_be_bytes();
    head.copy_from_slice(&[t0, t1, l0, l1, 0, NONCE_LEN as u8, ct_len[0], ct_len[1]]);
    let (n, rest) = rest.split_at_mut(NONCE_LEN);
    n.copy_from_slice(nonce);
    let (tag, rest) = rest.split_at_mut(TAG_LEN);
    let (text, padding) = rest.split_at_mut(plain);
    padding.fill(0);
    let t = key.seal(nonce, ad, text);
    tag.copy_from_slice(&t);
    Some(end)
}

/// Where the plaintext of an authenticator written at `at` by this module starts.
pub const fn plaintext_offset(at: usize) -> usize {
    at + 8 + NONCE_LEN + TAG_LEN
}

/// Appends a client request's NTS fields after the header in `out` (the header must already
/// be at `out[..HEADER_LEN]`): `uid`, `cookie`, `placeholders` placeholders of the cookie's
/// size, and the authenticator under the client-to-server key. Returns the packet length;
/// `None` if `out` is too short or the result would exceed [`MAX_PACKET_LEN`].
pub fn write_request(
    out: &mut [u8],
    uid: &[u8; UID_LEN],
    cookie: &[u8],
    placeholders: usize,
    c2s: &AeadKey,
    nonce: &[u8; NONCE_LEN],
) -> Option<usize> {
    let mut at = put_field(out, HEADER_LEN, UNIQUE_IDENTIFIER, Some(uid), 0)?;
    at = put_field(out, at, COOKIE, Some(cookie), 0)?;
    for _ in 0..placeholders {
        at = put_field(out, at, COOKIE_PLACEHOLDER, None, cookie.len())?;
    }
    let end = seal_authenticator(out, at, c2s, nonce, 0)?;
    (end <= MAX_PACKET_LEN).then_some(end)
}

/// A field and its offset in the datagram.
struct Located<'a> {
    offset: usize,
    kind: u16,
    value: &'a [u8],
}

fn located<'a>(fields: &ExtensionFields<'a>) -> impl Iterator<Item = Located<'a>> {
    let mut offset = HEADER_LEN;
    fields.iter().map(move |f| {
        let here = offset;
        offset += 4 + f.value.len();
        Located {
            offset: here,
            kind: f.field_type,
            value: f.value,
        }
    })
}

/// The nonce and ciphertext of an authenticator field's value.
fn split_authenticator(value: &[u8]) -> Result<(&[u8], &[u8]), NtsError> {
    let bad = NtsError::MalformedAuthenticator;
    let (&[n0, n1, c0, c1], rest) = value.split_first_chunk::<4>().ok_or(bad)?;
    let nlen = usize::from(u16::from_be_bytes([n0, n1]));
    let clen = usize::from(u16::from_be_bytes([c0, c1]));
    let nonce = rest.get(..nlen).ok_or(bad)?;
    let ct = rest
        .get(pad4(nlen)..)
        .and_then(|r| r.get(..clen))
        .ok_or(bad)?;
    if clen < TAG_LEN {
        return Err(bad);
    }
    Ok((nonce, ct))
}

/// Checks `ciphertext` (tag, then encrypted octets) under `key` with `nonce` and associated
/// data `ad`; decrypts into `plain` and returns the plaintext length.
fn open(
    key: &AeadKey,
    nonce: &[u8],
    ad: &[u8],
    ciphertext: &[u8],
    plain: &mut [u8; MAX_PACKET_LEN],
) -> Result<usize, NtsError> {
    let (tag, sealed) = ciphertext
        .split_first_chunk::<TAG_LEN>()
        .ok_or(NtsError::MalformedAuthenticator)?;
    let text = plain.get_mut(..sealed.len()).ok_or(NtsError::TooLong)?;
    text.copy_from_slice(sealed);
    if key.open(nonce, ad, text, tag) {
        Ok(sealed.len())
    } else {
        Err(NtsError::BadTag)
    }
}

/// Walks well-formed fields in decrypted data (RFC 8915 §5.6: they are ordinary extension
/// fields); calls `each(kind, value)`.
fn encrypted_fields(mut data: &[u8], mut each: impl FnMut(u16, &[u8])) -> Result<(), NtsError> {
    while !data.is_empty() {
        let (&[t0, t1, l0, l1], _) = data
            .split_first_chunk::<4>()
            .ok_or(NtsError::MalformedPlaintext)?;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len < 4 || len % 4 != 0 {
            return Err(NtsError::MalformedPlaintext);
        }
        let field = data.get(..len).ok_or(NtsError::MalformedPlaintext)?;
        each(
            u16::from_be_bytes([t0, t1]),
            field.get(4..).unwrap_or_default(),
        );
        data = data.get(len..).unwrap_or_default();
    }
    Ok(())
}

/// An NTS request as the server parsed it, before the cookie is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The unique identifier, echoed in the reply.
    pub uid: &'a [u8],
    /// The one cookie.
    pub cookie: &'a [u8],
    /// Placeholders before the authenticator: how many more cookies the client wants.
    pub placeholders: usize,
    auth_offset: usize,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Request<'a> {
    /// Finds the NTS fields of a request. `Ok(None)` if there are none at all (plain NTP);
    /// an error if some are there but not a complete NTS request.
    pub fn find(fields: &ExtensionFields<'a>) -> Result<Option<Self>, NtsError> {
        let mut uid = None;
        let mut cookie = None;
        let mut cookies = 0usize;
        let mut placeholders = 0usize;
        let mut auth = None;
        for f in located(fields) {
            match f.kind {
                UNIQUE_IDENTIFIER if uid.is_none() => uid = Some(f.value),
                COOKIE => {
                    cookies += 1;
                    cookie = Some(f.value);
                }
                COOKIE_PLACEHOLDER => placeholders += 1,
                AUTHENTICATOR => {
                    auth = Some(f);
                    break;
                }
                _ => {}
            }
        }
        if uid.is_none() && cookies == 0 && auth.is_none() {
            return Ok(None);
        }
        let auth = auth.ok_or(NtsError::MissingAuthenticator)?;
        let uid = uid.ok_or(NtsError::MissingUid)?;
        let (Some(cookie), 1) = (cookie, cookies) else {
            return Err(NtsError::BadCookieCount);
        };
        let (nonce, ciphertext) = split_authenticator(auth.value)?;
        if nonce.len() < MIN_NONCE_LEN {
            return Err(NtsError::MalformedAuthenticator);
        }
        Ok(Some(Self {
            uid,
            cookie,
            placeholders,
            auth_offset: auth.offset,
            nonce,
            ciphertext,
        }))
    }

    /// Verifies the authenticator of `datagram` (from which this request was parsed) under
    /// the client-to-server key from the cookie. Returns how many placeholders the encrypted
    /// part adds.
    pub fn verify(&self, datagram: &[u8], c2s: &AeadKey) -> Result<usize, NtsError> {
        let ad = datagram
            .get(..self.auth_offset)
            .ok_or(NtsError::MalformedAuthenticator)?;
        let mut plain = [0u8; MAX_PACKET_LEN];
        let n = open(c2s, self.nonce, ad, self.ciphertext, &mut plain)?;
        let mut more = 0usize;
        encrypted_fields(plain.get(..n).unwrap_or_default(), |kind, _| {
            if kind == COOKIE_PLACEHOLDER {
                more += 1;
            }
        })?;
        Ok(more)
    }
}

/// The length of a reply echoing `uid_len` octets of unique identifier and carrying `cookies`
/// cookies of `cookie_len` octets.
pub const fn reply_len(uid_len: usize, cookies: usize, cookie_len: usize) -> usize {
    HEADER_LEN + field_len(uid_len) + authenticator_len(NONCE_LEN, cookies * field_len(cookie_len))
}

/// Appends a server reply's NTS fields after the header in `out`: the echoed `uid`, then the
/// authenticator under the server-to-client key, encrypting `cookies` fresh cookies of
/// `cookie_len` octets each, which `seal(i, buf)` writes (returning the length written, which
/// must be `cookie_len`). Returns the packet length.
pub fn write_reply(
    out: &mut [u8],
    uid: &[u8],
    cookies: usize,
    cookie_len: usize,
    s2c: &AeadKey,
    nonce: &[u8; NONCE_LEN],
    mut seal: impl FnMut(usize, &mut [u8]) -> Option<usize>,
) -> Option<usize> {
    let at = put_field(out, HEADER_LEN, UNIQUE_IDENTIFIER, Some(uid), 0)?;
    let mut p = plaintext_offset(at);
    for i in 0..cookies {
        let next = put_field(out, p, COOKIE, None, cookie_len)?;
        let body = out.get_mut(p + 4..next)?;
        if seal(i, body)? != cookie_len {
            return None;
        }
        p = next;
    }
    seal_authenticator(out, at, s2c, nonce, p - plaintext_offset(at))
}

/// What a reply to an NTS request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Authenticated; the fresh cookies it carried were passed on.
    Authentic,
    /// An NTS NAK (kiss code NTSN with our unique identifier): the server could not open the
    /// cookie. Not authenticated.
    Nak,
}

/// Checks a reply to a request that carried `uid`: the unique identifier must match and the
/// authenticator verify under the server-to-client key `s2c`; every cookie in the encrypted
/// part is passed to `cookie`. `is_nak` says whether the header is an NTSN kiss.
pub fn verify_reply(
    datagram: &[u8],
    fields: &ExtensionFields<'_>,
    uid: &[u8; UID_LEN],
    s2c: &AeadKey,
    is_nak: bool,
    mut cookie: impl FnMut(&[u8]),
) -> Result<Reply, NtsError> {
    if datagram.len() > MAX_PACKET_LEN {
        return Err(NtsError::TooLong);
    }
    let mut seen_uid = None;
    let mut auth = None;
    for f in located(fields) {
        match f.kind {
            UNIQUE_IDENTIFIER if seen_uid.is_none() => seen_uid = Some(f.value),
            AUTHENTICATOR => {
                auth = Some(f);
                break;
            }
            _ => {}
        }
    }
    let got = seen_uid.ok_or(NtsError::MissingUid)?;
    if got.get(..UID_LEN) != Some(uid.as_slice())
        || got
            .get(UID_LEN..)
            .is_some_and(|p| p.iter().any(|&b| b != 0))
    {
        return Err(NtsError::WrongUid);
    }
    if is_nak {
        return Ok(Reply::Nak);
    }
    let auth = auth.ok_or(NtsError::MissingAuthenticator)?;
    let (nonce, ciphertext) = split_authenticator(auth.value)?;
    let ad = datagram
        .get(..auth.offset)
        .ok_or(NtsError::MalformedAuthenticator)?;
    let mut plain = [0u8; MAX_PACKET_LEN];
    let n = open(s2c, nonce, ad, ciphertext, &mut plain)?;
    encrypted_fields(plain.get(..n).unwrap_or_default(), |kind, value| {
        if kind == COOKIE {
            cookie(value);
        }
    })?;
    Ok(Reply::Authentic)
}

#[cfg(test)]
#[path = "ef_tests.rs"]
mod tests;
