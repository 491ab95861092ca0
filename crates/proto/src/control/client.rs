//! The client side of mode 6: building requests and reassembling fragmented responses the way
//! ntpq does (NTPsec `ControlSession.getresponse`, ntpq-mode6.md §7.2).
//!
//! A response may arrive in fragments, out of order, duplicated, or mixed with late replies
//! to an earlier try. [`Reassembler`] drops what does not belong (wrong sequence or opcode,
//! not a response, a length that is not a multiple of four, overlaps) and reports the whole
//! response once the final fragment is in and there are no holes.

use core::fmt;

use super::header::{ControlHeader, ErrorCode, HEADER_LEN, MAX_DATA_LEN, Opcode, split_header};
use super::request::padded_len;
use crate::packet::Mode;

/// Most fragments ntpq accepts in one response (`MAXFRAGS`).
pub const MAX_RESPONSE_FRAGMENTS: usize = 32;

/// Most data octets ntpq accepts in one response.
pub const MAX_RESPONSE_DATA: usize = MAX_RESPONSE_FRAGMENTS * MAX_DATA_LEN;

/// Version sundial's ntpq sends (both classic ntpq and NTPsec's send 2).
pub const CLIENT_VERSION: u8 = 2;

/// A request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRequest<'a> {
    /// The header's version field (1–4).
    pub version: u8,
    /// What to ask for.
    pub opcode: Opcode,
    /// Pairs the response with this request; use a new one for every try.
    pub sequence: u16,
    /// 0 for the system, otherwise an association id.
    pub association: u16,
    /// The request data: for READVAR, comma-separated variable names.
    pub data: &'a [u8],
}

impl<'a> ClientRequest<'a> {
    /// READSTAT of association 0: the association list.
    pub const fn read_status(sequence: u16) -> Self {
        Self {
            version: CLIENT_VERSION,
            opcode: Opcode::ReadStatus,
            sequence,
            association: 0,
            data: &[],
        }
    }

    /// READVAR of `association` (0: the system); `names` empty asks for the defaults.
    pub const fn read_variables(sequence: u16, association: u16, names: &'a [u8]) -> Self {
        Self {
            version: CLIENT_VERSION,
            opcode: Opcode::ReadVariables,
            sequence,
            association,
            data: names,
        }
    }

    /// Octets [`Self::encode`] writes: header, data and zero padding to a multiple of four.
    pub const fn encoded_len(&self) -> usize {
        padded_len(self.data.len())
    }

    /// Writes the request into `out` and returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        if self.data.len() > MAX_DATA_LEN {
            return Err(EncodeError::DataTooLong {
                len: self.data.len(),
            });
        }
        let len = self.encoded_len();
        let Some(out) = out.get_mut(..len) else {
            return Err(EncodeError::BufferTooSmall { need: len });
        };
        out.fill(0);
        let (head, body) = out.split_at_mut(HEADER_LEN);
        let header = ControlHeader {
            count: u16::try_from(self.data.len()).unwrap_or(0),
            ..ControlHeader::request(self.version, self.opcode, self.sequence, self.association)
        };
        if let Ok(head) = <&mut [u8; HEADER_LEN]>::try_from(head) {
            header.emit(head);
        }
        if let Some(dest) = body.get_mut(..self.data.len()) {
            dest.copy_from_slice(self.data);
        }
        Ok(len)
    }
}

/// Why a request could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// More than 468 octets of data: requests are never fragmented.
    DataTooLong {
        /// The data length asked for.
        len: usize,
    },
    /// The output buffer is shorter than the request.
    BufferTooSmall {
        /// Octets needed.
        need: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataTooLong { len } => {
                write!(f, "{len} octets of request data exceed {MAX_DATA_LEN}")
            }
            Self::BufferTooSmall { need } => write!(f, "the request needs {need} octets"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlResponse {
    /// The header of the final fragment (its status word is the response's).
    pub header: ControlHeader,
    /// The reassembled data.
    pub data: Vec<u8>,
}

/// What one datagram did to a response being reassembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// It was not a usable fragment of this response and was dropped.
    Dropped(FragmentDrop),
    /// It was kept; more fragments are needed.
    NeedMore,
    /// The response is complete.
    Complete(ControlResponse),
}

/// Why a datagram was not taken as a fragment of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FragmentDrop {
    /// Shorter than a header, or shorter than its count says.
    Truncated,
    /// Not mode 6, version not 1–4, or R not set.
    NotAResponse,
    /// Sequence or opcode of another request (a late reply to an earlier try).
    OtherRequest,
    /// Datagram length not a multiple of four.
    BadLength,
    /// Its data overlaps data already received, or runs past the final fragment.
    Overlap,
}

/// Why a response failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// The server answered with an error (`***Server error code BADASSOC`).
    Server(ErrorCode),
    /// The response is larger than [`MAX_RESPONSE_DATA`] or [`MAX_RESPONSE_FRAGMENTS`].
    TooMuch,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(code) => match code.name() {
                Some(name) => write!(f, "***Server error code {name}"),
                None => write!(f, "***Server error code {}", code.code()),
            },
            Self::TooMuch => f.write_str("***Buffer size exceeded for returned data"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// Collects the fragments of the response to one request.
#[derive(Debug, Clone)]
pub struct Reassembler {
    opcode: Opcode,
    sequence: u16,
    /// Fragments kept so far: (offset, data), sorted by offset, never overlapping.
    fragments: Vec<(usize, Vec<u8>)>,
    /// The final fragment's header and the response's total length, once it has arrived.
    last: Option<(ControlHeader, usize)>,
}

impl Reassembler {
    /// Waits for the response to the request with `opcode` and `sequence`.
    pub fn new(opcode: Opcode, sequence: u16) -> Self {
        Self {
            opcode,
            sequence,
            fragments: Vec::new(),
            last: None,
        }
    }

    /// Takes one received datagram.
    pub fn handle(&mut self, datagram: &[u8]) -> Result<Progress, ResponseError> {
        let drop = |why| Ok(Progress::Dropped(why));
        let Some((header, rest)) = split_header(datagram) else {
            return drop(FragmentDrop::Truncated);
        };
        if header.mode != Mode::Control || !(1..=4).contains(&header.version) || !header.response {
            return drop(FragmentDrop::NotAResponse);
        }
        if header.sequence != self.sequence || header.opcode != self.opcode {
            return drop(FragmentDrop::OtherRequest);
        }
        if let Some(code) = header.error_code() {
            return Err(ResponseError::Server(code));
        }
        if datagram.len() % 4 != 0 {
            return drop(FragmentDrop::BadLength);
        }
        let Some(data) = rest.get(..usize::from(header.count)) else {
            return drop(FragmentDrop::Truncated);
        };
        let start = usize::from(header.offset);
        let end = start + data.len();
        if end > MAX_RESPONSE_DATA || self.fragments.len() >= MAX_RESPONSE_FRAGMENTS {
            return Err(ResponseError::TooMuch);
        }
        let past_last = self.last.is_some_and(|(_, total)| end > total);
        let conflicting_last = !header.more && self.last.is_some();
        let overlaps = self
            .fragments
            .iter()
            .any(|(s, d)| start < s + d.len().max(1) && *s < end.max(start + 1));
        if past_last || conflicting_last || overlaps {
            return drop(FragmentDrop::Overlap);
        }
        let at = self.fragments.partition_point(|(s, _)| *s < start);
        self.fragments.insert(at, (start, data.to_vec()));
        if !header.more {
            self.last = Some((header, end));
        }
        Ok(self
            .complete()
            .map_or(Progress::NeedMore, Progress::Complete))
    }

    /// The response, if the final fragment is in and the data has no holes.
    fn complete(&self) -> Option<ControlResponse> {
        let (header, total) = self.last?;
        let mut expected = 0;
        for (start, data) in &self.fragments {
            if *start != expected {
                return None;
            }
            expected += data.len();
        }
        (expected == total).then(|| ControlResponse {
            header,
            data: self
                .fragments
                .iter()
                .flat_map(|(_, d)| d.iter().copied())
                .collect(),
        })
    }
}

/// The (association id, peer status word) pairs of a READSTAT response; a trailing partial
/// pair is ignored.
pub fn parse_association_list(data: &[u8]) -> Vec<(u16, u16)> {
    data.chunks_exact(4)
        .map(|c| match *c {
            [a0, a1, s0, s1] => (u16::from_be_bytes([a0, a1]), u16::from_be_bytes([s0, s1])),
            _ => (0, 0),
        })
        .collect()
}
