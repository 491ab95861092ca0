//! Network Time Security (RFC 8915): the protocol logic, without any I/O.
//!
//! NTS has two halves. The key exchange (NTS-KE, [`ke`]) runs once over TLS 1.3: the client
//! offers AEAD algorithms, the server picks one and hands out opaque *cookies*; both sides
//! derive a client-to-server and a server-to-client key from the TLS session. The daemon does
//! the TLS; this module only parses and writes the NTS-KE records.
//!
//! Then every NTP request carries a unique identifier, one cookie and an authenticator (an
//! AEAD tag over the packet) in extension fields ([`ef`]). The server keeps no per-client
//! state: it recovers the client's keys by opening the cookie under its own master key
//! ([`cookie`]), checks the authenticator and answers with fresh cookies encrypted under the
//! server-to-client key. Each cookie is used once, so requests cannot be linked to each other.
//!
//! Everything here is a pure function of its arguments: nonces and unique identifiers come
//! from the caller's randomness.

mod aead;
mod client;
pub mod cookie;
pub mod ef;
pub mod ke;

pub use aead::{Aead, AeadKey, SessionKeys, TAG_LEN};
pub use client::{NtsClient, ReplyError};
pub use cookie::CookieKeys;
