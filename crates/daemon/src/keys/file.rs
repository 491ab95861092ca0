//! The keys file parser: bytes in, [`KeyStore`] or the first syntax error out. Works on bytes, so
//! a file that is not UTF-8 is still read (and any non-ASCII byte in a key is an error, not a
//! panic).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::{
    AddrPrefix, Entry, KeyStore, KeyType, KeysError, KeysWarning, MAX_SECRET_LEN, Secret,
    SymmetricKey, SyntaxProblem,
};
use crate::config::{KeyId, Location};

/// Keys of at most this many characters are ASCII text; longer ones are hex.
const MAX_ASCII_KEY: usize = 20;

/// A whitespace-separated word of a line and the byte offset where it starts.
#[derive(Clone, Copy)]
struct Token<'a> {
    text: &'a [u8],
    start: usize,
}

impl Token<'_> {
    fn lossy(&self) -> String {
        String::from_utf8_lossy(self.text).into_owned()
    }
}

/// One line being parsed: where it is, for messages.
struct Line<'a> {
    path: &'a Path,
    number: u32,
    bytes: &'a [u8],
}

impl Line<'_> {
    /// The location of byte `offset`: columns count characters, as in ntp.conf messages.
    fn at(&self, offset: usize) -> Location {
        let before = self.bytes.get(..offset).unwrap_or(self.bytes);
        let chars = String::from_utf8_lossy(before).chars().count();
        let column = u32::try_from(chars).unwrap_or(u32::MAX).saturating_add(1);
        Location::new(self.path, self.number, column)
    }

    fn error(&self, offset: usize, problem: SyntaxProblem) -> KeysError {
        KeysError::Syntax {
            location: self.at(offset),
            problem,
        }
    }
}

/// Parses a whole keys file.
pub(super) fn parse(path: &Path, text: &[u8]) -> Result<(KeyStore, Vec<KeysWarning>), KeysError> {
    let mut entries = BTreeMap::new();
    let mut first_seen: BTreeMap<KeyId, u32> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = Line {
            path,
            number: u32::try_from(index).unwrap_or(u32::MAX).saturating_add(1),
            bytes: raw,
        };
        let Some((id, entry)) = parse_line(&line, &mut warnings)? else {
            continue;
        };
        if let Some(&previous_line) = first_seen.get(&id) {
            warnings.push(KeysWarning::Duplicate {
                location: line.at(0),
                id,
                previous_line,
            });
        }
        first_seen.insert(id, line.number);
        entries.insert(id, entry);
    }
    Ok((KeyStore { entries }, warnings))
}

/// One line: `None` for a blank or comment line.
fn parse_line(
    line: &Line<'_>,
    warnings: &mut Vec<KeysWarning>,
) -> Result<Option<(KeyId, Entry)>, KeysError> {
    // `#` starts a comment anywhere, even inside a word (a key cannot contain it).
    let content = line
        .bytes
        .iter()
        .position(|&b| b == b'#')
        .map_or(line.bytes, |end| line.bytes.get(..end).unwrap_or_default());
    let mut tokens = tokens(content);
    let Some(id_tok) = tokens.next() else {
        return Ok(None);
    };
    let id = parse_id(line, id_tok)?;
    let end = content.len();
    let type_tok = tokens
        .next()
        .ok_or_else(|| line.error(end, SyntaxProblem::MissingType))?;
    let key_tok = tokens
        .next()
        .ok_or_else(|| line.error(end, SyntaxProblem::MissingKey))?;
    let secret = decode_key(line, key_tok)?;
    let allowed = match tokens.next() {
        Some(list) => parse_addresses(line, list)?,
        None => Vec::new(),
    };
    if let Some(extra) = tokens.next() {
        return Err(line.error(extra.start, SyntaxProblem::TrailingText));
    }
    let type_name = type_tok.lossy();
    let entry = match KeyType::from_name(&type_name) {
        Some(key_type) => {
            if key_type == KeyType::Aes128Cmac && secret.len != 16 {
                warnings.push(KeysWarning::CmacKeyLength {
                    location: line.at(key_tok.start),
                    id,
                    len: secret.len,
                });
            }
            Entry::Usable(SymmetricKey {
                id,
                key_type,
                secret,
                allowed,
            })
        }
        None => {
            let location = line.at(type_tok.start);
            warnings.push(KeysWarning::UnsupportedType {
                location: location.clone(),
                id,
                type_name: type_name.clone(),
            });
            Entry::Unsupported {
                type_name,
                location,
            }
        }
    };
    Ok(Some((id, entry)))
}

/// The words of a line, split at spaces, tabs, carriage returns and other ASCII whitespace.
fn tokens(content: &[u8]) -> impl Iterator<Item = Token<'_>> {
    let mut offset = 0;
    content
        .split(u8::is_ascii_whitespace)
        .filter_map(move |text| {
            let start = offset;
            offset += text.len() + 1;
            (!text.is_empty()).then_some(Token { text, start })
        })
}

/// The key id: decimal, 1 to 65535.
fn parse_id(line: &Line<'_>, tok: Token<'_>) -> Result<KeyId, KeysError> {
    if tok.text.is_empty() || !tok.text.iter().all(u8::is_ascii_digit) {
        return Err(line.error(tok.start, SyntaxProblem::BadKeyId { text: tok.lossy() }));
    }
    // All digits: only too many of them can fail to parse.
    std::str::from_utf8(tok.text)
        .ok()
        .and_then(|text| text.parse::<u16>().ok())
        .and_then(KeyId::new)
        .ok_or_else(|| {
            line.error(
                tok.start,
                SyntaxProblem::KeyIdOutOfRange { text: tok.lossy() },
            )
        })
}

/// The key column: ASCII text up to 20 characters, hex beyond.
fn decode_key(line: &Line<'_>, tok: Token<'_>) -> Result<Secret, KeysError> {
    let mut secret = Secret {
        bytes: [0; MAX_SECRET_LEN],
        len: 0,
    };
    if tok.text.len() <= MAX_ASCII_KEY {
        if let Some(bad) = tok.text.iter().position(|b| !b.is_ascii_graphic()) {
            return Err(line.error(tok.start + bad, SyntaxProblem::BadAsciiKey));
        }
        secret.len = tok.text.len();
        for (slot, &b) in secret.bytes.iter_mut().zip(tok.text) {
            *slot = b;
        }
        return Ok(secret);
    }
    if let Some(bad) = tok.text.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(line.error(tok.start + bad, SyntaxProblem::BadHexDigit));
    }
    let digits = tok.text.len();
    if digits > 2 * MAX_SECRET_LEN {
        return Err(line.error(tok.start, SyntaxProblem::HexKeyTooLong { digits }));
    }
    if digits % 2 != 0 {
        return Err(line.error(tok.start, SyntaxProblem::OddHexLength { digits }));
    }
    secret.len = digits / 2;
    for (slot, pair) in secret.bytes.iter_mut().zip(tok.text.chunks_exact(2)) {
        if let [hi, lo] = *pair {
            *slot = (hex_value(hi) << 4) | hex_value(lo);
        }
    }
    Ok(secret)
}

/// The value of a hex digit (checked by the caller; anything else is 0).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

/// The fourth column: `ADDR[/BITS]` entries separated by commas.
fn parse_addresses(line: &Line<'_>, tok: Token<'_>) -> Result<Vec<AddrPrefix>, KeysError> {
    let mut prefixes = Vec::new();
    let mut offset = tok.start;
    for entry in tok.text.split(|&b| b == b',') {
        let bad = || line.error(offset, SyntaxProblem::BadAddress);
        let text = std::str::from_utf8(entry).map_err(|_| bad())?;
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => full,
            Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
                b.parse().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        prefixes.push(AddrPrefix::new(addr, bits).ok_or_else(bad)?);
        offset += entry.len() + 1;
    }
    Ok(prefixes)
}
