//! Symmetric keys: the `keys` file of ntpd and ntpdate (`-k`), and the legacy NTP MACs computed
//! with them (ntp-conf.md §12, protocol.md §7, RFC 8573).
//!
//! ```text
//!  keys file ──▶ KeyStore::load ──▶ KeyStore ──get(id)──▶ &SymmetricKey ──▶ append_mac / check_mac
//!                (file.rs: syntax,        (one entry per id; a type sundial cannot compute is kept
//!                 warnings, mode check)    as "unsupported" so only its use fails)
//! ```
//!
//! File format, one key per line, `#` starts a comment anywhere:
//!
//! ```text
//! # keyno  type        key                                       [addresses]
//! 1        MD5         tEsT-sEcReT
//! 2        SHA1        8fa3c52d5ebd4b3a7f1b9a6c43e1c9d7a4b2e0f1
//! 3        AES128CMAC  000102030405060708090a0b0c0d0e0f          192.0.2.1,2001:db8::/32
//! ```
//!
//! * key ids are 1–65535;
//! * types (any case): `MD5` (or the legacy `M`), `SHA1` (or `SHA-1`), `SHA256`, `SHA384`,
//!   `SHA512` (or `SHA-256`, …), `AES128CMAC` (or NTPsec's `AES`). Other digest names that ntpd
//!   accepts through OpenSSL (`RMD160`, `SHA3-256`, …) are kept as unsupported: loading the file
//!   warns, and only using such a key fails;
//! * a key of up to 20 characters is the ASCII text itself (printable, no `#`); a longer one is
//!   hex, an even number of digits, at most 64 (32 octets);
//! * an optional comma-separated list of `ADDR[/BITS]` limits which hosts the key is good for.
//!
//! Any syntax error rejects the whole file, as ntp.org ntpd 4.2.8p11 and later do.
//!
//! Key material never reaches `Debug` output, and it is overwritten with zeros when a key is
//! dropped (best effort: with safe code and no extra crates, copies the compiler or the hash
//! implementations make are out of reach).

mod file;
mod fuzz;
mod mac;
mod trusted;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use self::fuzz::{fuzz_parse, fuzz_server};
pub use self::mac::{Digest, MAX_DIGEST_LEN, MacFailure, SENT_DIGEST_LEN, check_mac};
pub use self::trusted::{TrustedKeys, load_trusted};

use crate::config::{KeyId, Location};

/// Longest key secret, octets: 64 hex digits (classic ntpd's key buffer).
pub const MAX_SECRET_LEN: usize = 32;

/// Largest keys file read, octets. A keys file holds at most 65535 short lines; anything bigger is
/// a mistake such as `-k /dev/zero`, and must not exhaust memory.
pub const MAX_FILE_LEN: u64 = 4 << 20;

/// How a key turns a packet into a MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// MD5(key ‖ packet): a 16-octet digest. Deprecated for NTP by RFC 8573, still the most
    /// common type in existing keys files.
    Md5,
    /// SHA-1(key ‖ packet): a 20-octet digest.
    Sha1,
    /// SHA-256(key ‖ packet), cut to 20 octets as NTPsec and chrony send it (NTPv4's MAC
    /// trailer holds at most 20 digest octets).
    Sha256,
    /// SHA-384(key ‖ packet), cut to 20 octets.
    Sha384,
    /// SHA-512(key ‖ packet), cut to 20 octets.
    Sha512,
    /// AES-128-CMAC(key, packet) (RFC 8573): a 16-octet tag.
    Aes128Cmac,
}

impl KeyType {
    /// The type named in a keys file, in any case; `None` for a type sundial cannot compute.
    pub fn from_name(name: &str) -> Option<Self> {
        const NAMES: [(&str, KeyType); 12] = [
            ("M", KeyType::Md5),
            ("MD5", KeyType::Md5),
            ("SHA1", KeyType::Sha1),
            ("SHA-1", KeyType::Sha1),
            ("SHA256", KeyType::Sha256),
            ("SHA-256", KeyType::Sha256),
            ("SHA384", KeyType::Sha384),
            ("SHA-384", KeyType::Sha384),
            ("SHA512", KeyType::Sha512),
            ("SHA-512", KeyType::Sha512),
            ("AES128CMAC", KeyType::Aes128Cmac),
            ("AES", KeyType::Aes128Cmac),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, t)| t)
    }

    /// The name ntpd writes for the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha384 => "SHA384",
            Self::Sha512 => "SHA512",
            Self::Aes128Cmac => "AES128CMAC",
        }
    }

    /// Octets of the digest or tag that follow the key id in what sundial sends (a SHA-2
    /// digest cut to 20, as NTPsec sends it).
    pub fn digest_len(self) -> usize {
        match self {
            Self::Md5 | Self::Aes128Cmac => 16,
            Self::Sha1 | Self::Sha256 | Self::Sha384 | Self::Sha512 => SENT_DIGEST_LEN,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The types sundial computes, as listed in messages.
const SUPPORTED_TYPES: &str = "MD5, SHA1, SHA256, SHA384, SHA512, AES128CMAC";

/// Key material: up to [`MAX_SECRET_LEN`] octets in place (never reallocated, so never copied
/// behind our back), zeroed on drop, never printed.
struct Secret {
    bytes: [u8; MAX_SECRET_LEN],
    len: usize,
}

impl Secret {
    /// `bytes` as a secret; `None` if empty or longer than [`MAX_SECRET_LEN`].
    fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > MAX_SECRET_LEN {
            return None;
        }
        let mut secret = Self {
            bytes: [0; MAX_SECRET_LEN],
            len: bytes.len(),
        };
        secret.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(secret)
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// Overwrites `bytes` with zeros in a way the optimiser must assume is observed.
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// An address block a key is restricted to (the optional fourth column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrPrefix {
    addr: IpAddr,
    bits: u8,
}

impl AddrPrefix {
    /// `addr/bits`; `None` if `bits` exceeds the address length.
    pub fn new(addr: IpAddr, bits: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (bits <= max).then_some(Self { addr, bits })
    }

    /// Whether `ip` lies in the block. An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.bits,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), 128, self.bits)
            }
            _ => false,
        }
    }
}

/// Whether the top `bits` of two `width`-bit numbers agree.
fn prefix_eq(a: u128, b: u128, width: u32, bits: u8) -> bool {
    let shift = width.saturating_sub(u32::from(bits));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

impl fmt::Display for AddrPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

/// One usable key: id, type, secret and the hosts it may be used with.
pub struct SymmetricKey {
    id: KeyId,
    key_type: KeyType,
    secret: Secret,
    allowed: Vec<AddrPrefix>,
}

impl SymmetricKey {
    /// A key usable with every host; `None` if `secret` is empty or longer than
    /// [`MAX_SECRET_LEN`].
    pub fn new(id: KeyId, key_type: KeyType, secret: &[u8]) -> Option<Self> {
        Some(Self {
            id,
            key_type,
            secret: Secret::new(secret)?,
            allowed: Vec::new(),
        })
    }

    /// The key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The MAC type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The address blocks the key is limited to; empty for "any host".
    pub fn allowed(&self) -> &[AddrPrefix] {
        &self.allowed
    }

    /// Whether the key may authenticate packets of `host`: always, unless the keys file limits
    /// it to a list of addresses.
    pub fn allows(&self, host: IpAddr) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|p| p.contains(host))
    }

    fn secret(&self) -> &[u8] {
        self.secret.as_bytes()
    }
}

impl fmt::Debug for SymmetricKey {
    /// Id, type, length and address limits; never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymmetricKey")
            .field("id", &self.id)
            .field("key_type", &self.key_type)
            .field("secret_len", &self.secret.len)
            .field("allowed", &self.allowed)
            .finish()
    }
}

/// What the keys file says about one id.
#[derive(Debug)]
enum Entry {
    Usable(SymmetricKey),
    /// A type sundial cannot compute: an error only when the key is used.
    Unsupported {
        type_name: String,
        location: Location,
    },
}

/// The keys of one keys file, by id.
#[derive(Debug, Default)]
pub struct KeyStore {
    entries: BTreeMap<KeyId, Entry>,
}

impl KeyStore {
    /// Reads and parses the keys file `path`. The warnings include a file its group or every
    /// user can read (it should be readable by root or the ntp user only).
    pub fn load(path: &Path) -> Result<(Self, Vec<KeysWarning>), KeysError> {
        let read_error = |error| KeysError::Read {
            path: path.to_owned(),
            error,
        };
        // Regular files only, opened without blocking (a FIFO there must not hang start-up).
        let file = crate::safefile::open_config(path).map_err(|e| read_error(e.into()))?;
        let mode = file.metadata().map_err(read_error)?.permissions().mode();
        let mut bytes = Vec::new();
        file.take(MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_LEN {
            wipe(&mut bytes);
            return Err(KeysError::TooLarge {
                path: path.to_owned(),
            });
        }
        let parsed = Self::parse(path, &bytes);
        wipe(&mut bytes);
        let (store, mut warnings) = parsed?;
        if mode & 0o044 != 0 {
            warnings.insert(
                0,
                KeysWarning::ReadableByOthers {
                    path: path.to_owned(),
                    mode: mode & 0o7777,
                },
            );
        }
        Ok((store, warnings))
    }

    /// Parses `text` as the contents of the keys file `path` (which only names it in messages).
    pub fn parse(path: &Path, text: &[u8]) -> Result<(Self, Vec<KeysWarning>), KeysError> {
        file::parse(path, text)
    }

    /// The key `id`, if the file has it with a type sundial supports.
    pub fn get(&self, id: KeyId) -> Result<&SymmetricKey, LookupError> {
        match self.entries.get(&id) {
            Some(Entry::Usable(key)) => Ok(key),
            Some(Entry::Unsupported {
                type_name,
                location,
            }) => Err(LookupError::Unsupported {
                id,
                type_name: type_name.clone(),
                location: location.clone(),
            }),
            None => Err(LookupError::Unknown(id)),
        }
    }

    /// Takes the key `id` out of the store, dropping (and wiping) all others.
    pub fn into_key(mut self, id: KeyId) -> Result<SymmetricKey, LookupError> {
        self.get(id)?;
        match self.entries.remove(&id) {
            Some(Entry::Usable(key)) => Ok(key),
            _ => Err(LookupError::Unknown(id)),
        }
    }

    /// The ids in the file, supported or not, in increasing order.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.entries.keys().copied()
    }

    /// How many ids the file defines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file defines no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The keys file has no key with this id.
    Unknown(KeyId),
    /// The key has a type sundial does not implement.
    Unsupported {
        /// The key id.
        id: KeyId,
        /// The type as written in the file.
        type_name: String,
        /// Where the type is written.
        location: Location,
    },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Classic ntpdate's wording.
            Self::Unknown(id) => write!(f, "authentication key {id} unknown"),
            Self::Unsupported {
                id,
                type_name,
                location,
            } => write!(
                f,
                "{location}: authentication key {id} has type {type_name}, which is not \
                 supported (supported: {SUPPORTED_TYPES})"
            ),
        }
    }
}

impl std::error::Error for LookupError {}

/// Something about a keys file that does not stop it from being used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysWarning {
    /// Users other than the owner (its group, or everyone) can read the secrets.
    ReadableByOthers {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key of a type sundial cannot compute; using it fails.
    UnsupportedType {
        /// Where the type is written.
        location: Location,
        /// The key id.
        id: KeyId,
        /// The type as written.
        type_name: String,
    },
    /// A second line for the same id; the later one wins, as in ntpd.
    Duplicate {
        /// Where the later line starts.
        location: Location,
        /// The key id.
        id: KeyId,
        /// The line of the earlier definition.
        previous_line: u32,
    },
    /// An AES128CMAC key that is not 16 octets long: like ntpd, sundial pads a shorter one with
    /// zeros and uses the first 16 octets of a longer one.
    CmacKeyLength {
        /// Where the key is written.
        location: Location,
        /// The key id.
        id: KeyId,
        /// Its length in octets.
        len: usize,
    },
}

impl KeysWarning {
    /// The key the warning is about; `None` for the file as a whole.
    pub fn key_id(&self) -> Option<KeyId> {
        match self {
            Self::ReadableByOthers { .. } => None,
            Self::UnsupportedType { id, .. }
            | Self::Duplicate { id, .. }
            | Self::CmacKeyLength { id, .. } => Some(*id),
        }
    }
}

impl fmt::Display for KeysWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadableByOthers { path, mode } => write!(
                f,
                "key file {} is readable by {} (mode {mode:04o}); it holds secrets and should \
                 be readable only by its owner (chmod go-rwx)",
                path.display(),
                if mode & 0o004 != 0 {
                    "all users"
                } else {
                    "its group"
                }
            ),
            Self::UnsupportedType {
                location,
                id,
                type_name,
            } => write!(
                f,
                "{location}: key {id} has type {type_name}, which is not supported \
                 (supported: {SUPPORTED_TYPES}); it cannot be used"
            ),
            Self::Duplicate {
                location,
                id,
                previous_line,
            } => write!(
                f,
                "{location}: key {id} is defined again (first on line {previous_line}); this \
                 definition replaces it"
            ),
            Self::CmacKeyLength { location, id, len } => write!(
                f,
                "{location}: AES128CMAC key {id} has {len} octets instead of 16; it is {} to 16 \
                 as ntpd does",
                if *len < 16 {
                    "padded with zeros"
                } else {
                    "cut"
                }
            ),
        }
    }
}

/// Why a keys file cannot be used at all.
#[derive(Debug)]
pub enum KeysError {
    /// It cannot be opened or read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// It is larger than [`MAX_FILE_LEN`].
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line does not parse; the whole file is rejected.
    Syntax {
        /// Where the offending text starts.
        location: Location,
        /// What is wrong with it.
        problem: SyntaxProblem,
    },
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => write!(f, "{}: {error}", path.display()),
            Self::TooLarge { path } => write!(
                f,
                "{}: larger than {MAX_FILE_LEN} octets, not a keys file",
                path.display()
            ),
            Self::Syntax { location, problem } => write!(f, "{location}: {problem}"),
        }
    }
}

impl std::error::Error for KeysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { error, .. } => Some(error),
            Self::TooLarge { .. } | Self::Syntax { .. } => None,
        }
    }
}

/// What is wrong with a line of a keys file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxProblem {
    /// The first column is not a decimal number.
    BadKeyId {
        /// The text found.
        text: String,
    },
    /// The key id is 0 or above 65535.
    KeyIdOutOfRange {
        /// The text found.
        text: String,
    },
    /// The line ends after the key id.
    MissingType,
    /// The line ends after the type.
    MissingKey,
    /// A key of up to 20 characters holds a character other than printable ASCII.
    BadAsciiKey,
    /// A key of more than 20 characters (hex) holds a character that is not a hex digit.
    BadHexDigit,
    /// A hex key has an odd number of digits.
    OddHexLength {
        /// Digits found.
        digits: usize,
    },
    /// A hex key is longer than [`MAX_SECRET_LEN`] octets.
    HexKeyTooLong {
        /// Digits found.
        digits: usize,
    },
    /// An entry of the address list is not `ADDR` or `ADDR/BITS`. The text is not kept: a key
    /// written with a space in it lands here, and must not reach a log.
    BadAddress,
    /// Text after the address list (not kept, for the same reason).
    TrailingText,
}

impl fmt::Display for SyntaxProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadKeyId { text } => write!(f, "key id {text:?} is not a number"),
            Self::KeyIdOutOfRange { text } => {
                write!(f, "key id {text} is outside 1 to {}", KeyId::MAX)
            }
            Self::MissingType => f.write_str("key type missing after the key id"),
            Self::MissingKey => f.write_str("key missing after the key type"),
            Self::BadAsciiKey => f.write_str(
                "a key of up to 20 characters must be printable ASCII (longer keys are hex)",
            ),
            Self::BadHexDigit => {
                f.write_str("not a hex digit (a key of more than 20 characters is hex)")
            }
            Self::OddHexLength { digits } => {
                write!(f, "hex key has an odd number of digits ({digits})")
            }
            Self::HexKeyTooLong { digits } => write!(
                f,
                "hex key has {digits} digits; at most {} ({MAX_SECRET_LEN} octets) are allowed",
                2 * MAX_SECRET_LEN
            ),
            Self::BadAddress => {
                f.write_str("not an address or ADDRESS/BITS (a key cannot contain spaces)")
            }
            Self::TrailingText => f.write_str("unexpected text after the address list"),
        }
    }
}
