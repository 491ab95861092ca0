//! Symmetric-key authentication for ntpdate (`-a KEYID -k KEYFILE`), with classic ntpdate's
//! semantics:
//!
//! * every request carries the key id and a MAC over its 48-octet header (52 + digest octets);
//! * every reply that answers a request is checked: it must end in a valid MAC made with the
//!   same key id (and the key must not be limited to other addresses). A reply without a MAC, a
//!   crypto-NAK, another key id or a wrong digest counts as unauthenticated;
//! * an unauthenticated reply still answers its request, but marks the server: its *trust*
//!   register (shown as `trust NNN` by `-d`) gets a bit, and selection drops a server with any
//!   such bit as `Server dropped: Server is untrusted`.
//!
//! `-e AUTHDELAY` is accepted and ignored. Classic ntpdate reads the clock before computing the
//! MAC and adds AUTHDELAY to that reading, so that the transmit timestamp approximates the moment
//! the packet leaves. sundial computes the MAC first and reads T1 just before sending, and its
//! transmit timestamp is a random nonce rather than a time, so there is nothing to compensate.

use core::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::KeyId;
use crate::keys::{KeyStore, KeysError, KeysWarning, LookupError, MacFailure, SymmetricKey};

use super::args::DEFAULT_KEYFILE;
use super::output::error_text;

/// Why a reply is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The MAC is missing, a crypto-NAK, made with another key, or wrong.
    Mac(MacFailure),
    /// The keys file limits the key to other addresses.
    AddressNotAllowed,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mac(failure) => failure.fmt(f),
            Self::AddressNotAllowed => f.write_str("key not allowed for this address"),
        }
    }
}

/// Checks a reply from `from` that answered one of our requests.
pub fn authenticate(key: &SymmetricKey, from: IpAddr, datagram: &[u8]) -> Result<(), AuthFailure> {
    if !key.allows(from) {
        return Err(AuthFailure::AddressNotAllowed);
    }
    crate::keys::check_mac(key, datagram).map_err(AuthFailure::Mac)
}

/// Why `-a` cannot be honoured; ntpdate logs the lines and exits 1.
#[derive(Debug)]
pub enum KeySetupError {
    /// The keys file is missing, unreadable or malformed.
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: KeysError,
    },
    /// The file has no usable key with the id.
    Key(LookupError),
}

impl KeySetupError {
    /// The lines to log, in order: the detail, then classic ntpdate's own message.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::File { path, error } => {
                let detail = match error {
                    // `%m` style, as ntpdate's other messages.
                    KeysError::Read { path, error } => {
                        format!("{}: {}", path.display(), error_text(error))
                    }
                    other => other.to_string(),
                };
                vec![detail, format!("no key file <{}>, exiting", path.display())]
            }
            Self::Key(error) => vec![error.to_string()],
        }
    }
}

/// The key file of `-k`, or the classic default.
pub fn keyfile(arg: Option<&Path>) -> &Path {
    arg.unwrap_or_else(|| Path::new(DEFAULT_KEYFILE))
}

/// Loads key `id` from `path`, with the warnings that concern it or the whole file.
pub fn load_key(path: &Path, id: KeyId) -> Result<(SymmetricKey, Vec<KeysWarning>), KeySetupError> {
    let (store, warnings) = KeyStore::load(path).map_err(|error| KeySetupError::File {
        path: path.to_owned(),
        error,
    })?;
    let key = store.into_key(id).map_err(KeySetupError::Key)?;
    // Other keys' unsupported types or odd lengths do not matter to this run.
    let warnings = warnings
        .into_iter()
        .filter(|w| w.key_id().is_none_or(|other| other == id))
        .collect();
    Ok((key, warnings))
}
