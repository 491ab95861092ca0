//! Server-side parsing of a mode 6 request, in two stages: [`RequestFrame::parse`] checks the
//! framing (ntpd `process_control`, ntpq-mode6.md §7.1), then [`Request::from_frame`] types the
//! opcode and reads the variable names of a READVAR or READCLOCK.
//!
//! Every length is checked before it is used. A request that is not worth a reply (too short,
//! a response, a fragment) is ignored; one that is answerable but malformed gets BADFMT.

use core::fmt;

use super::header::{ControlHeader, ErrorCode, HEADER_LEN, MAX_DATA_LEN, Opcode, split_header};
use crate::packet::Mode;

/// Most variable names one request may carry (an empty `READVAR` asks for the defaults).
pub const MAX_NAMES: usize = 64;

/// Longest variable name or value in a request (ntpd rejects longer ones as an exploit
/// attempt: "Possible 'ntpdx' exploit").
pub const MAX_NAME_LEN: usize = 127;

/// Why a datagram gets no reply at all. The caller may count these; none is logged per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// Shorter than the 12-octet header.
    TooShort,
    /// Not mode 6.
    NotControl,
    /// Version 0 or 5–7.
    BadVersion,
    /// R, E or M set: a response or a fragment, never a request.
    NotARequest,
    /// A non-zero offset: requests are never fragmented.
    Fragment,
    /// The source may not query (`restrict … noquery` or `ignore`).
    Restricted,
}

impl IgnoreReason {
    /// A stable short name for statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TooShort => "too-short",
            Self::NotControl => "not-control",
            Self::BadVersion => "bad-version",
            Self::NotARequest => "not-a-request",
            Self::Fragment => "fragment",
            Self::Restricted => "restricted",
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a request could not be accepted as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Drop it silently.
    Ignore(IgnoreReason),
    /// Answer with this error code; the header is sound enough to echo.
    Reject {
        /// The request's header, for the reply's sequence, opcode and association.
        header: ControlHeader,
        /// The error to report (BADFMT for framing errors).
        code: ErrorCode,
    },
}

/// A request whose framing passed the checks: the header and exactly `count` octets of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFrame<'a> {
    /// The decoded header.
    pub header: ControlHeader,
    /// The request data (`count` octets; padding and any MAC trailer excluded).
    pub data: &'a [u8],
}

impl<'a> RequestFrame<'a> {
    /// Checks the framing rules of ntpd's `process_control`: ignore datagrams shorter than a
    /// header, of another mode or version, with R/E/M set or a non-zero offset; reject with
    /// BADFMT a length that is not a multiple of four or a count beyond the datagram or
    /// beyond 468.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, RequestError> {
        let ignore = |why| Err(RequestError::Ignore(why));
        let Some((header, rest)) = split_header(datagram) else {
            return ignore(IgnoreReason::TooShort);
        };
        if header.mode != Mode::Control {
            return ignore(IgnoreReason::NotControl);
        }
        if !(1..=4).contains(&header.version) {
            return ignore(IgnoreReason::BadVersion);
        }
        if header.response || header.error || header.more {
            return ignore(IgnoreReason::NotARequest);
        }
        if header.offset != 0 {
            return ignore(IgnoreReason::Fragment);
        }
        let count = usize::from(header.count);
        let bad_format = datagram.len() % 4 != 0 || count > MAX_DATA_LEN;
        let data = rest.get(..count).filter(|_| !bad_format);
        match data {
            Some(data) => Ok(Self { header, data }),
            None => Err(RequestError::Reject {
                header,
                code: ErrorCode::BadFormat,
            }),
        }
    }
}

/// A request ready to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The header the reply echoes (version, opcode, sequence, association).
    pub header: ControlHeader,
    /// The variable names asked for (READVAR, READCLOCK); empty otherwise or for defaults.
    pub names: NameList<'a>,
    /// The request data as sent (READ_MRU parses its own parameters from it).
    pub data: &'a [u8],
}

impl<'a> Request<'a> {
    /// Types a checked frame. Variable names are read for the opcodes that take them; a name
    /// list that breaks the bounds is [`ErrorCode::BadFormat`].
    pub fn from_frame(frame: RequestFrame<'a>) -> Result<Self, ErrorCode> {
        let names = match frame.header.opcode {
            Opcode::ReadVariables | Opcode::ReadClock => NameList::parse(frame.data)?,
            _ => NameList::default(),
        };
        Ok(Self {
            header: frame.header,
            names,
            data: frame.data,
        })
    }
}

/// The names of a variable request, borrowed from the datagram, at most [`MAX_NAMES`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NameList<'a> {
    names: [&'a [u8]; MAX_NAMES],
    len: usize,
}

impl Default for NameList<'_> {
    fn default() -> Self {
        Self {
            names: [&[]; MAX_NAMES],
            len: 0,
        }
    }
}

impl<'a> NameList<'a> {
    /// Reads `name[=value], …` the way ntpd's `ctl_getitem` does: commas and white space
    /// between items are skipped, a value is read up to the next comma and ignored (all of
    /// sundial's variables are read-only), the data ends at its first NUL.
    pub fn parse(data: &'a [u8]) -> Result<Self, ErrorCode> {
        let data = data.split(|&b| b == 0).next().unwrap_or_default();
        let mut list = Self::default();
        let mut rest = data;
        loop {
            rest = trim_start(rest, |b| b == b',' || b.is_ascii_whitespace());
            if rest.is_empty() {
                return Ok(list);
            }
            let name_end = rest
                .iter()
                .position(|&b| b == b',' || b == b'=')
                .unwrap_or(rest.len());
            let (name, after) = rest.split_at(name_end);
            let name = trim_end(name);
            rest = after;
            if let Some(value_and_rest) = after.strip_prefix(b"=") {
                let value_end = value_and_rest
                    .iter()
                    .position(|&b| b == b',')
                    .unwrap_or(value_and_rest.len());
                let (value, after_value) = value_and_rest.split_at(value_end);
                if value.len() > MAX_NAME_LEN {
                    return Err(ErrorCode::BadFormat);
                }
                rest = after_value;
            }
            if name.len() > MAX_NAME_LEN {
                return Err(ErrorCode::BadFormat);
            }
            let slot = list.names.get_mut(list.len).ok_or(ErrorCode::BadFormat)?;
            *slot = name;
            list.len += 1;
        }
    }

    /// Whether no names were given (the request asks for the default list).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many names were given.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The names in request order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.names.iter().take(self.len).copied()
    }
}

impl fmt::Debug for NameList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|n| String::from_utf8_lossy(n)))
            .finish()
    }
}

fn trim_start(bytes: &[u8], skip: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|&b| !skip(b)).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    bytes.get(..end).unwrap_or_default()
}

/// Octets of a request that carries `data`: header, data, zero padding to a multiple of 4.
pub(crate) const fn padded_len(data_len: usize) -> usize {
    HEADER_LEN + data_len.div_ceil(4) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u8, flags_op: u8, offset: u16, count: u16, data: &[u8]) -> Vec<u8> {
        let mut b = vec![first, flags_op, 0, 1, 0, 0, 0, 0];
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(data);
        b
    }

    fn ignored(datagram: &[u8]) -> Option<IgnoreReason> {
        match RequestFrame::parse(datagram) {
            Err(RequestError::Ignore(why)) => Some(why),
            _ => None,
        }
    }

    #[test]
    fn ignores_what_ntpd_ignores() {
        assert_eq!(ignored(&[0x16; 11]), Some(IgnoreReason::TooShort));
        assert_eq!(
            ignored(&frame(0x13, 2, 0, 0, &[])),
            Some(IgnoreReason::NotControl)
        );
        assert_eq!(
            ignored(&frame(0x06, 2, 0, 0, &[])),
            Some(IgnoreReason::BadVersion)
        );
        assert_eq!(
            ignored(&frame(0x2e, 2, 0, 0, &[])),
            Some(IgnoreReason::BadVersion)
        );
        for flag in [0x80, 0x40, 0x20] {
            let f = frame(0x16, flag | 2, 0, 0, &[]);
            assert_eq!(ignored(&f), Some(IgnoreReason::NotARequest));
        }
        assert_eq!(
            ignored(&frame(0x16, 2, 4, 0, &[])),
            Some(IgnoreReason::Fragment)
        );
    }

    #[test]
    fn accepts_every_version_from_one_to_four() {
        for vn in 1..=4u8 {
            let f = frame((vn << 3) | 6, 1, 0, 0, &[]);
            assert_eq!(RequestFrame::parse(&f).unwrap().header.version, vn);
        }
    }

    #[test]
    fn rejects_bad_lengths_and_counts_with_badfmt() {
        let bad = |f: &[u8]| {
            matches!(
                RequestFrame::parse(f),
                Err(RequestError::Reject {
                    code: ErrorCode::BadFormat,
                    ..
                })
            )
        };
        assert!(bad(&frame(0x16, 2, 0, 2, b"ab")), "length 14");
        assert!(bad(&frame(0x16, 2, 0, 8, b"abcd")), "count past the end");
        assert!(bad(&frame(0x16, 2, 0, 472, &[b'a'; 472])), "count over 468");
        assert!(!bad(&frame(0x16, 2, 0, 468, &[b'a'; 468])));
    }

    #[test]
    fn reads_names_like_ctl_getitem() {
        let list = NameList::parse(b",, leap , stratum=3,\r\nrefid\0junk").unwrap();
        let names: Vec<_> = list.iter().collect();
        assert_eq!(names, [&b"leap"[..], b"stratum", b"refid"]);
        assert!(NameList::parse(b"").unwrap().is_empty());
        assert!(NameList::parse(b" , ,").unwrap().is_empty());
    }

    #[test]
    fn bounds_names_values_and_their_number() {
        let long = vec![b'n'; 128];
        assert_eq!(NameList::parse(&long), Err(ErrorCode::BadFormat));
        let mut long_value = b"leap=".to_vec();
        long_value.extend_from_slice(&[b'v'; 128]);
        assert_eq!(NameList::parse(&long_value), Err(ErrorCode::BadFormat));
        let many = "a,".repeat(MAX_NAMES + 1);
        assert_eq!(NameList::parse(many.as_bytes()), Err(ErrorCode::BadFormat));
        let enough = "a,".repeat(MAX_NAMES);
        assert_eq!(NameList::parse(enough.as_bytes()).unwrap().len(), MAX_NAMES);
    }
}
