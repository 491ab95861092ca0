//! Symmetric key ids: `trustedkey`, `controlkey`, `requestkey` (ntp-conf.md §12).
//!
//! The keys themselves live in the `keys` file, which the daemon reads separately (it holds
//! secrets and needs its own permission checks); ntp.conf only names ids.

use std::fmt;

use super::finding::Diag;
use super::lexer::{Args, Token};

/// A symmetric key id, 1..=65535 (0 means "no key" on the wire, so it cannot be configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(u16);

impl KeyId {
    /// The largest key id (`NTP_MAXKEY` in ntp.org `include/ntp.h`).
    pub const MAX: u16 = u16::MAX;

    /// A key id; `None` for 0.
    pub const fn new(id: u16) -> Option<Self> {
        if id == 0 { None } else { Some(Self(id)) }
    }

    /// The id.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An inclusive range of trusted key ids: `trustedkey N` is `N..=N`, `(A ... B)` is `A..=B`.
///
/// Ranges are kept as ranges: `(1 ... 65535)` is a legal line and should not become a
/// 65535-element list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyRange {
    first: KeyId,
    last: KeyId,
}

impl KeyRange {
    /// The range `first..=last`; `None` if `first > last`.
    pub fn new(first: KeyId, last: KeyId) -> Option<Self> {
        (first <= last).then_some(Self { first, last })
    }

    /// A single key.
    pub fn single(key: KeyId) -> Self {
        Self {
            first: key,
            last: key,
        }
    }

    /// The lowest id in the range.
    pub fn first(self) -> KeyId {
        self.first
    }

    /// The highest id in the range.
    pub fn last(self) -> KeyId {
        self.last
    }

    /// Whether `key` is in the range.
    pub fn contains(self, key: KeyId) -> bool {
        (self.first..=self.last).contains(&key)
    }
}

/// A key id argument.
pub(super) fn parse_key_id(tok: &Token<'_>, what: &str) -> Result<KeyId, Diag> {
    let id = tok.int(what, 1..=KeyId::MAX)?;
    KeyId::new(id).ok_or_else(|| tok.error(format!("{what} must not be 0")))
}

/// `trustedkey N [N …] [(A ... B) …]`. ntp.org writes ranges with spaces around the dots and
/// parentheses (`( 10 ... 20 )`), but nothing stops `(10...20)`, so tokens are split again at
/// `(`, `)` and `...`.
pub(super) fn parse_trustedkey(args: &mut Args<'_, '_>) -> Result<Vec<KeyRange>, Diag> {
    let mut pieces = Vec::new();
    while let Some(tok) = args.next() {
        split_range_syntax(tok, &mut pieces);
    }
    let mut pieces = pieces.into_iter();
    let mut ranges = Vec::new();
    while let Some(piece) = pieces.next() {
        if !piece.is("(") {
            ranges.push(KeyRange::single(parse_key_id(&piece, "key id")?));
            continue;
        }
        let open = piece;
        let mut take = |what: &str| {
            pieces
                .next()
                .ok_or_else(|| open.error(format!("key range needs {what}")))
        };
        let first = take("a first key")?;
        let dots = take("'...'")?;
        let last = take("a last key")?;
        let close = take("')'")?;
        if !dots.is("...") {
            return Err(dots.error("expected '...' in key range"));
        }
        if !close.is(")") {
            return Err(close.error("expected ')' to end key range"));
        }
        let (first, last) = (
            parse_key_id(&first, "key id")?,
            parse_key_id(&last, "key id")?,
        );
        let range =
            KeyRange::new(first, last).ok_or_else(|| open.error("key range runs backwards"))?;
        ranges.push(range);
    }
    if ranges.is_empty() {
        return Err(args.keyword().error("trustedkey needs at least one key id"));
    }
    Ok(ranges)
}

/// Splits `tok` into `(`, `)`, `...` and the text between them, keeping columns.
fn split_range_syntax<'a>(tok: Token<'a>, out: &mut Vec<Token<'a>>) {
    if tok.quoted {
        out.push(tok);
        return;
    }
    let text = tok.text;
    let mut column = tok.column;
    let mut start = 0;
    let mut push = |from: usize, to: usize, column: u32| {
        if let Some(piece) = text.get(from..to).filter(|p| !p.is_empty()) {
            out.push(Token {
                text: piece,
                column,
                quoted: false,
            });
        }
    };
    let mut piece_column = column;
    let mut i = 0;
    while let Some(rest) = text.get(i..) {
        let Some(c) = rest.chars().next() else { break };
        let special = if rest.starts_with("...") {
            3
        } else if c == '(' || c == ')' {
            1
        } else {
            0
        };
        if special > 0 {
            push(start, i, piece_column);
            push(i, i + special, column);
            i += special;
            column = column.saturating_add(u32::try_from(special).unwrap_or(0));
            start = i;
            piece_column = column;
        } else {
            i += c.len_utf8();
            column = column.saturating_add(1);
        }
    }
    push(start, text.len(), piece_column);
}
