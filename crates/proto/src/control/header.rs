//! The 12-octet mode 6 header (RFC 9327 §2), its opcodes and its error codes.
//!
//! [`ControlHeader::decode`] is total: any 12 octets decode, and the request and response
//! checks ([`super::request`], [`super::client`]) decide what is acceptable in their context.

use crate::packet::{Leap, Mode};

/// Octets of the mode 6 header (ntpd `CTL_HEADER_LEN`).
pub const HEADER_LEN: usize = 12;

/// Largest data field of one fragment (ntpd and NTPsec `CTL_MAX_DATA_LEN`; an early RFC draft
/// said 500, clients expect 468).
pub const MAX_DATA_LEN: usize = 468;

/// Largest mode 6 datagram sundial sends: a header and a full data field (468 is a multiple of
/// four, so a full fragment needs no padding).
pub const MAX_DATAGRAM_LEN: usize = HEADER_LEN + MAX_DATA_LEN;

/// Bit of octet 1: this is a response.
const RESPONSE_BIT: u8 = 0x80;
/// Bit of octet 1: the response is an error; the code is in the high octet of the status.
const ERROR_BIT: u8 = 0x40;
/// Bit of octet 1: more fragments follow.
const MORE_BIT: u8 = 0x20;
/// Octet 1's opcode field.
const OPCODE_MASK: u8 = 0x1f;

/// A decoded mode 6 header. Field names follow RFC 9327 §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlHeader {
    /// Leap indicator: ignored in requests, the system leap in responses.
    pub leap: Leap,
    /// Version number; responses echo the request's.
    pub version: u8,
    /// Association mode; 6 in every control message.
    pub mode: Mode,
    /// R: set in responses.
    pub response: bool,
    /// E: set in error responses.
    pub error: bool,
    /// M: more fragments follow.
    pub more: bool,
    /// What is asked for.
    pub opcode: Opcode,
    /// Chosen by the client, echoed by the server; pairs fragments with their request.
    pub sequence: u16,
    /// System, peer or clock status word; `code << 8` in an error response.
    pub status: u16,
    /// 0 for the system, otherwise the association asked about.
    pub association: u16,
    /// Octet offset of this fragment's data within the whole response.
    pub offset: u16,
    /// Octets of data in this fragment.
    pub count: u16,
}

impl ControlHeader {
    /// The header of a request: version `version`, LI 0 (classic ntpq sends `0x16`), nothing
    /// but opcode, sequence, association and count set.
    pub const fn request(version: u8, opcode: Opcode, sequence: u16, association: u16) -> Self {
        Self {
            leap: Leap::NoWarning,
            version,
            mode: Mode::Control,
            response: false,
            error: false,
            more: false,
            opcode,
            sequence,
            status: 0,
            association,
            offset: 0,
            count: 0,
        }
    }

    /// Decodes the first 12 octets of a datagram. Every bit pattern decodes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let [b0, b1, s0, s1, st0, st1, a0, a1, o0, o1, c0, c1] = *bytes;
        Self {
            leap: Leap::from_bits(b0 >> 6),
            version: (b0 >> 3) & 7,
            mode: Mode::from_bits(b0),
            response: b1 & RESPONSE_BIT != 0,
            error: b1 & ERROR_BIT != 0,
            more: b1 & MORE_BIT != 0,
            opcode: Opcode::from_code(b1 & OPCODE_MASK),
            sequence: u16::from_be_bytes([s0, s1]),
            status: u16::from_be_bytes([st0, st1]),
            association: u16::from_be_bytes([a0, a1]),
            offset: u16::from_be_bytes([o0, o1]),
            count: u16::from_be_bytes([c0, c1]),
        }
    }

    /// Writes the 12 header octets. Fields wider than their wire slot are masked.
    pub fn emit(&self, out: &mut [u8; HEADER_LEN]) {
        let flags = (u8::from(self.response) * RESPONSE_BIT)
            | (u8::from(self.error) * ERROR_BIT)
            | (u8::from(self.more) * MORE_BIT)
            | (self.opcode.code() & OPCODE_MASK);
        let [s0, s1] = self.sequence.to_be_bytes();
        let [st0, st1] = self.status.to_be_bytes();
        let [a0, a1] = self.association.to_be_bytes();
        let [o0, o1] = self.offset.to_be_bytes();
        let [c0, c1] = self.count.to_be_bytes();
        *out = [
            (self.leap.bits() << 6) | ((self.version & 7) << 3) | self.mode.bits(),
            flags,
            s0,
            s1,
            st0,
            st1,
            a0,
            a1,
            o0,
            o1,
            c0,
            c1,
        ];
    }

    /// The error code of an error response (the high octet of the status word).
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error
            .then(|| ErrorCode::from_code(self.status.to_be_bytes()[0]))
    }
}

/// Splits a datagram into its decoded header and everything after it, or `None` if it is
/// shorter than a header.
pub fn split_header(datagram: &[u8]) -> Option<(ControlHeader, &[u8])> {
    let (head, rest) = datagram.split_first_chunk::<HEADER_LEN>()?;
    Some((ControlHeader::decode(head), rest))
}

/// A mode 6 operation (RFC 9327 §3; ntpd `CTL_OP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0: no operation; the reply carries only a status word.
    Unspec,
    /// 1: association list (association 0) or a peer's variables.
    ReadStatus,
    /// 2: system or peer variables.
    ReadVariables,
    /// 3: set system variables (always refused by sundial).
    WriteVariables,
    /// 4: reference clock variables.
    ReadClock,
    /// 5: set reference clock variables (always refused).
    WriteClock,
    /// 6: register a trap receiver (ntp.org only; sundial has no traps).
    SetTrap,
    /// 7: asynchronous message (trap delivery; never a request).
    AsyncMessage,
    /// 8: run an ntp.conf line (always refused).
    Configure,
    /// 9: write the configuration to a file (always refused).
    SaveConfig,
    /// 10: the most-recently-used client list (`ntpq -c mrulist`).
    ReadMru,
    /// 11: ordered lists (`ifstats`, `reslist`); authenticated in ntpd, refused here.
    ReadOrderedList,
    /// 12: a nonce for `READ_MRU`.
    RequestNonce,
    /// 31: remove a trap receiver (ntp.org only).
    UnsetTrap,
    /// Any other 5-bit code.
    Other(u8),
}

impl Opcode {
    /// The opcode of a 5-bit wire value (higher bits are ignored).
    pub const fn from_code(code: u8) -> Self {
        match code & OPCODE_MASK {
            0 => Self::Unspec,
            1 => Self::ReadStatus,
            2 => Self::ReadVariables,
            3 => Self::WriteVariables,
            4 => Self::ReadClock,
            5 => Self::WriteClock,
            6 => Self::SetTrap,
            7 => Self::AsyncMessage,
            8 => Self::Configure,
            9 => Self::SaveConfig,
            10 => Self::ReadMru,
            11 => Self::ReadOrderedList,
            12 => Self::RequestNonce,
            31 => Self::UnsetTrap,
            other => Self::Other(other),
        }
    }

    /// The 5-bit wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unspec => 0,
            Self::ReadStatus => 1,
            Self::ReadVariables => 2,
            Self::WriteVariables => 3,
            Self::ReadClock => 4,
            Self::WriteClock => 5,
            Self::SetTrap => 6,
            Self::AsyncMessage => 7,
            Self::Configure => 8,
            Self::SaveConfig => 9,
            Self::ReadMru => 10,
            Self::ReadOrderedList => 11,
            Self::RequestNonce => 12,
            Self::UnsetTrap => 31,
            Self::Other(code) => code & OPCODE_MASK,
        }
    }
}

/// The error codes of an error response (RFC 9327 §2, ntpd `CERR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0: unspecified.
    Unspec,
    /// 1: not allowed (sundial: every write, configure and ordered-list request).
    Permission,
    /// 2: malformed request (bad length, count, or variable list).
    BadFormat,
    /// 3: opcode not implemented.
    BadOpcode,
    /// 4: no such association (or, for READCLOCK, not a reference clock).
    BadAssociation,
    /// 5: a requested variable name is unknown.
    UnknownVariable,
    /// 6: a value in the request is bad.
    BadValue,
    /// 7: refused by access restrictions.
    Restricted,
    /// Any other code.
    Other(u8),
}

impl ErrorCode {
    /// The code of a wire value.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Unspec,
            1 => Self::Permission,
            2 => Self::BadFormat,
            3 => Self::BadOpcode,
            4 => Self::BadAssociation,
            5 => Self::UnknownVariable,
            6 => Self::BadValue,
            7 => Self::Restricted,
            other => Self::Other(other),
        }
    }

    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unspec => 0,
            Self::Permission => 1,
            Self::BadFormat => 2,
            Self::BadOpcode => 3,
            Self::BadAssociation => 4,
            Self::UnknownVariable => 5,
            Self::BadValue => 6,
            Self::Restricted => 7,
            Self::Other(code) => code,
        }
    }

    /// The status word of an error response: the code in the high octet.
    pub const fn status_word(self) -> u16 {
        (self.code() as u16) << 8
    }

    /// The name ntpq prints (`***Server error code BADASSOC`), or `None` for unknown codes.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::Unspec => "UNSPEC",
            Self::Permission => "PERMISSION",
            Self::BadFormat => "BADFMT",
            Self::BadOpcode => "BADOP",
            Self::BadAssociation => "BADASSOC",
            Self::UnknownVariable => "UNKNOWNVAR",
            Self::BadValue => "BADVALUE",
            Self::Restricted => "RESTRICT",
            Self::Other(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::property;

    /// Debian ntpq's READVAR for association 61234 (ntpq-mode6.md §8).
    const NTPSEC_READVAR: [u8; 12] = [
        0xd6, 0x02, 0x00, 0x02, 0x00, 0x00, 0xef, 0x32, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn decodes_debian_ntpq_readvar() {
        let h = ControlHeader::decode(&NTPSEC_READVAR);
        assert_eq!(h.leap, Leap::Unsynchronized);
        assert_eq!(h.version, 2);
        assert_eq!(h.mode, Mode::Control);
        assert!(!h.response && !h.error && !h.more);
        assert_eq!(h.opcode, Opcode::ReadVariables);
        assert_eq!((h.sequence, h.association, h.count), (2, 61234, 0));
    }

    #[test]
    fn error_reply_fixture_round_trips() {
        // `16 c2 0007 0400 03e7 0000 0000`: BADASSOC for READVAR of association 999.
        let bytes = [
            0x16, 0xc2, 0x00, 0x07, 0x04, 0x00, 0x03, 0xe7, 0x00, 0x00, 0x00, 0x00,
        ];
        let h = ControlHeader::decode(&bytes);
        assert_eq!(h.error_code(), Some(ErrorCode::BadAssociation));
        assert_eq!(h.association, 999);
        let mut out = [0u8; HEADER_LEN];
        h.emit(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn opcodes_and_error_codes_keep_their_wire_values() {
        for code in 0..32u8 {
            assert_eq!(Opcode::from_code(code).code(), code);
        }
        for code in 0..=255u8 {
            assert_eq!(ErrorCode::from_code(code).code(), code);
        }
        assert_eq!(ErrorCode::BadAssociation.status_word(), 0x0400);
        assert_eq!(ErrorCode::UnknownVariable.name(), Some("UNKNOWNVAR"));
    }

    #[test]
    fn any_header_round_trips() {
        let checked = property::run(proptest::array::uniform12(any::<u8>()), |bytes| {
            let mut out = [0u8; HEADER_LEN];
            ControlHeader::decode(&bytes).emit(&mut out);
            prop_assert_eq!(out, bytes);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }
}
