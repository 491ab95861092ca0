//! The NTP packet (RFC 5905 §7.3) with RFC 7822 extension fields and a trailing MAC.
//!
//! Parsing is in two stages: [`Packet::parse`] checks the whole datagram once — header length,
//! version, the extension-field chain and the MAC trailer — and returns a typed [`Packet`] that
//! borrows the datagram; nothing after that can fail or panic. [`NtpHeader::emit`] writes the
//! 48 header octets into a caller-owned buffer.

use core::fmt;
use core::net::IpAddr;

use crate::time::{Log2Seconds, NtpShort, NtpTimestamp};

/// Length of the fixed NTP header in octets.
pub const HEADER_LEN: usize = 48;

/// Smallest extension field (RFC 7822 §3: 16 octets).
const MIN_EXTENSION_LEN: usize = 16;

/// Octet length of a MAC trailer that is only a key id: the crypto-NAK (RFC 5905 §7.5).
const CRYPTO_NAK_LEN: usize = 4;

/// Trailer lengths recognised as a MAC: key id plus a 16-octet digest (MD5, AES-128-CMAC) or a
/// 20-octet one (SHA-1). NTPv3 also knew 8-octet DES digests.
const MAC_LENS_V4: [usize; 3] = [CRYPTO_NAK_LEN, 4 + 16, 4 + 20];

/// Trailer lengths also taken as a MAC in NTPv4 when they are not an extension field: key id
/// plus a whole SHA-256, SHA-384 or SHA-512 digest, which chrony and NTPsec's `ntpdig` send
/// (RFC 7822 caps MACs at 24 octets; chrony parses the same way: extension field first).
const LONG_MAC_LENS_V4: [usize; 3] = [4 + 32, 4 + 48, 4 + 64];
/// NTPv3 has no extension fields, so a whole SHA-2 digest is unambiguous there; chrony sends
/// its requests as NTPv3 when the key's digest is longer than 20 octets.
const MAC_LENS_V3: [usize; 7] = [
    CRYPTO_NAK_LEN,
    4 + 8,
    4 + 16,
    4 + 20,
    4 + 32,
    4 + 48,
    4 + 64,
];

/// The first four octets of the MD5 digest of `data`.
fn md5_prefix(data: &[u8]) -> [u8; 4] {
    use md5::Digest as _;
    let digest = md5::Md5::digest(data);
    let mut out = [0u8; 4];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

/// The leap indicator: a warning of a leap second at the end of the day, or "not
/// synchronised".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Leap {
    /// No leap second pending.
    #[default]
    NoWarning,
    /// The last minute of the day has 61 seconds.
    AddSecond,
    /// The last minute of the day has 59 seconds.
    DeleteSecond,
    /// The clock is not synchronised (alarm).
    Unsynchronized,
}

impl Leap {
    /// The two-bit wire value.
    pub const fn bits(self) -> u8 {
        match self {
            Self::NoWarning => 0,
            Self::AddSecond => 1,
            Self::DeleteSecond => 2,
            Self::Unsynchronized => 3,
        }
    }

    /// The leap indicator of a two-bit wire value (higher bits are ignored).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => Self::NoWarning,
            1 => Self::AddSecond,
            2 => Self::DeleteSecond,
            _ => Self::Unsynchronized,
        }
    }
}

/// The association mode of a packet (RFC 5905 Figure 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// 0: reserved (NTPv1 clients used it for requests).
    Reserved,
    /// 1: symmetric active.
    SymmetricActive,
    /// 2: symmetric passive.
    SymmetricPassive,
    /// 3: client.
    Client,
    /// 4: server.
    Server,
    /// 5: broadcast.
    Broadcast,
    /// 6: NTP control message (ntpq).
    Control,
    /// 7: reserved for private use (ntpdc). Never answered.
    Private,
}

impl Mode {
    /// The three-bit wire value.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Reserved => 0,
            Self::SymmetricActive => 1,
            Self::SymmetricPassive => 2,
            Self::Client => 3,
            Self::Server => 4,
            Self::Broadcast => 5,
            Self::Control => 6,
            Self::Private => 7,
        }
    }

    /// The mode of a three-bit wire value (higher bits are ignored).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 7 {
            0 => Self::Reserved,
            1 => Self::SymmetricActive,
            2 => Self::SymmetricPassive,
            3 => Self::Client,
            4 => Self::Server,
            5 => Self::Broadcast,
            6 => Self::Control,
            _ => Self::Private,
        }
    }
}

/// The 32-bit reference identifier: a kiss code or clock name at stratum 0 and 1, the
/// upstream server's IPv4 address (or a hash of its IPv6 address) above.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReferenceId([u8; 4]);

impl ReferenceId {
    /// `INIT`: never synchronised.
    pub const INIT: Self = Self(*b"INIT");
    /// `STEP`: the clock was just stepped.
    pub const STEP: Self = Self(*b"STEP");
    /// `LOCL`: the undisciplined local clock.
    pub const LOCL: Self = Self(*b"LOCL");
    /// `RATE`: kiss code asking the client to slow down.
    pub const RATE: Self = Self(*b"RATE");
    /// `DENY`: kiss code, access denied.
    pub const DENY: Self = Self(*b"DENY");
    /// `RSTR`: kiss code, access restricted.
    pub const RSTR: Self = Self(*b"RSTR");
    /// `CRYP`: kiss code of a crypto-NAK, authentication failed.
    pub const CRYP: Self = Self(*b"CRYP");
    /// Kiss code of an NTS NAK: the server could not open the cookie (RFC 8915 §5.7).
    pub const NTSN: Self = Self(*b"NTSN");
    /// `LOOP`: orphan parent at stratum 1.
    pub const LOOP: Self = Self(*b"LOOP");
    /// `POOL`: refid ntpq shows for a pool prototype association.
    pub const POOL: Self = Self(*b"POOL");
    /// 127.0.0.1: the refid of an orphan parent above stratum 1.
    pub const LOOPBACK: Self = Self([127, 0, 0, 1]);

    /// A refid from its four octets.
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        Self(bytes)
    }

    /// The four octets.
    pub const fn to_bytes(self) -> [u8; 4] {
        self.0
    }

    /// The refid a server of stratum 2..15 sends for an upstream address: the IPv4 address
    /// itself, or the first four octets of the MD5 digest of the IPv6 address (RFC 5905 §7.3).
    pub fn from_ip(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => Self(v4.octets()),
            IpAddr::V6(v6) => {
                let digest = md5_prefix(&v6.octets());
                Self(digest)
            }
        }
    }

    /// Whether this refid is the four-letter ASCII code `code`.
    pub fn is_code(self, code: &[u8; 4]) -> bool {
        &self.0 == code
    }

    /// The refid as text the way ntpq shows it: a dotted quad for addresses (stratum 2–15),
    /// otherwise printable ASCII up to the first NUL, other octets as `.`.
    pub fn display_for_stratum(self, stratum: u8) -> String {
        if (2..16).contains(&stratum) {
            let [a, b, c, d] = self.0;
            format!("{a}.{b}.{c}.{d}")
        } else {
            self.0
                .iter()
                .take_while(|&&b| b != 0)
                .map(|&b| {
                    if b.is_ascii_graphic() {
                        char::from(b)
                    } else {
                        '.'
                    }
                })
                .collect()
        }
    }
}

impl fmt::Debug for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self
            .0
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == 0)
        {
            write!(f, "ReferenceId({:?})", self.display_for_stratum(1))
        } else {
            write!(f, "ReferenceId({})", self.display_for_stratum(2))
        }
    }
}

/// The 48-octet NTP header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpHeader {
    /// Leap indicator.
    pub leap: Leap,
    /// Version number, 1 to 4 in any accepted packet.
    pub version: u8,
    /// Association mode.
    pub mode: Mode,
    /// Stratum as on the wire: 0 means unspecified or kiss-o'-death.
    pub stratum: u8,
    /// Poll interval, log2 seconds.
    pub poll: Log2Seconds,
    /// Precision of the sender's clock, log2 seconds.
    pub precision: Log2Seconds,
    /// Round-trip delay to the reference clock.
    pub root_delay: NtpShort,
    /// Dispersion (error bound) relative to the reference clock.
    pub root_dispersion: NtpShort,
    /// Reference identifier.
    pub reference_id: ReferenceId,
    /// Time the sender's clock was last set or corrected.
    pub reference_timestamp: NtpTimestamp,
    /// T1: the request's transmit timestamp, echoed by the server.
    pub origin_timestamp: NtpTimestamp,
    /// T2: when the request arrived at the server.
    pub receive_timestamp: NtpTimestamp,
    /// T3: when the reply left the server (or, in a request, the client's nonce).
    pub transmit_timestamp: NtpTimestamp,
}

impl NtpHeader {
    /// A header of all zeroes except version and mode — the shape of an SNTP request.
    pub const fn new(version: u8, mode: Mode) -> Self {
        Self {
            leap: Leap::NoWarning,
            version,
            mode,
            stratum: 0,
            poll: Log2Seconds::new(0),
            precision: Log2Seconds::new(0),
            root_delay: NtpShort::ZERO,
            root_dispersion: NtpShort::ZERO,
            reference_id: ReferenceId::from_bytes([0; 4]),
            reference_timestamp: NtpTimestamp::ZERO,
            origin_timestamp: NtpTimestamp::ZERO,
            receive_timestamp: NtpTimestamp::ZERO,
            transmit_timestamp: NtpTimestamp::ZERO,
        }
    }

    /// Decodes the first 48 octets. Any octet values are a valid header; only the length can be
    /// wrong. Version and mode are checked by [`Packet::parse`].
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let u32_of = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap_or_default());
        let ts_of = |b: &[u8]| {
            NtpTimestamp::from_bits(u64::from_be_bytes(b.try_into().unwrap_or_default()))
        };
        Self {
            leap: Leap::from_bits(bytes[0] >> 6),
            version: (bytes[0] >> 3) & 7,
            mode: Mode::from_bits(bytes[0]),
            stratum: bytes[1],
            poll: Log2Seconds::new(i8::from_be_bytes([bytes[2]])),
            precision: Log2Seconds::new(i8::from_be_bytes([bytes[3]])),
            root_delay: NtpShort::from_bits(u32_of(&bytes[4..8])),
            root_dispersion: NtpShort::from_bits(u32_of(&bytes[8..12])),
            reference_id: ReferenceId::from_bytes(bytes[12..16].try_into().unwrap_or_default()),
            reference_timestamp: ts_of(&bytes[16..24]),
            origin_timestamp: ts_of(&bytes[24..32]),
            receive_timestamp: ts_of(&bytes[32..40]),
            transmit_timestamp: ts_of(&bytes[40..48]),
        }
    }

    /// Writes the 48 header octets.
    pub fn emit(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = (self.leap.bits() << 6) | ((self.version & 7) << 3) | self.mode.bits();
        out[1] = self.stratum;
        out[2] = self.poll.exponent().to_be_bytes()[0];
        out[3] = self.precision.exponent().to_be_bytes()[0];
        out[4..8].copy_from_slice(&self.root_delay.to_bits().to_be_bytes());
        out[8..12].copy_from_slice(&self.root_dispersion.to_bits().to_be_bytes());
        out[12..16].copy_from_slice(&self.reference_id.to_bytes());
        out[16..24].copy_from_slice(&self.reference_timestamp.to_bits().to_be_bytes());
        out[24..32].copy_from_slice(&self.origin_timestamp.to_bits().to_be_bytes());
        out[32..40].copy_from_slice(&self.receive_timestamp.to_bits().to_be_bytes());
        out[40..48].copy_from_slice(&self.transmit_timestamp.to_bits().to_be_bytes());
    }

    /// Whether this is a kiss-o'-death packet (RFC 5905 §7.4): a server reply with stratum 0
    /// and the leap alarm set, as ntpd and NTPsec recognise it. A stratum-0 reply without the
    /// alarm is just broken.
    pub fn is_kiss_of_death(&self) -> bool {
        self.stratum == 0
            && self.leap == Leap::Unsynchronized
            && matches!(self.mode, Mode::Server | Mode::SymmetricPassive)
    }
}

/// A datagram that passed [`Packet::parse`]: the header, the extension fields and the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The fixed header.
    pub header: NtpHeader,
    /// The RFC 7822 extension fields, already checked for well-formed lengths.
    pub extensions: ExtensionFields<'a>,
    /// The legacy MAC trailer (RFC 5905 §7.3; RFC 8573), if any.
    pub mac: Option<Mac<'a>>,
}

impl<'a> Packet<'a> {
    /// Checks and decodes a whole datagram.
    ///
    /// Extension fields are only recognised in version 4 packets; earlier versions may carry a
    /// MAC trailer but nothing else. Mode 6 (control) and mode 7 (private) messages have their
    /// own layouts after the first octet and are rejected here with [`ParseError::NotNtp`].
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        let Some((head, rest)) = datagram.split_first_chunk::<HEADER_LEN>() else {
            return Err(ParseError::TooShort {
                len: datagram.len(),
            });
        };
        let header = NtpHeader::decode(head);
        if !(1..=4).contains(&header.version) {
            return Err(ParseError::BadVersion {
                version: header.version,
            });
        }
        if matches!(header.mode, Mode::Control | Mode::Private) {
            return Err(ParseError::NotNtp { mode: header.mode });
        }
        let (extensions, mac) = if header.version == 4 {
            split_trailer_v4(rest)?
        } else {
            split_trailer_v3(rest)?
        };
        Ok(Self {
            header,
            extensions: ExtensionFields { bytes: extensions },
            mac,
        })
    }
}

/// Splits what follows a v4 header into the extension-field region and the MAC (RFC 7822 §7:
/// a remainder of 4, 20 or 24 octets is a MAC; anything else must be an extension field).
fn split_trailer_v4(rest: &[u8]) -> Result<(&[u8], Option<Mac<'_>>), ParseError> {
    let mut offset = 0;
    loop {
        let Some(remaining) = rest.get(offset..) else {
            return Err(ParseError::TruncatedExtension {
                offset: HEADER_LEN + offset,
            });
        };
        if remaining.is_empty() {
            return Ok((rest, None));
        }
        if MAC_LENS_V4.contains(&remaining.len()) {
            let fields = rest.get(..offset).unwrap_or_default();
            return Ok((fields, Some(Mac::from_trailer(remaining))));
        }
        let Some(&[_, _, hi, lo]) = remaining.first_chunk::<4>() else {
            return Err(ParseError::BadTrailer {
                offset: HEADER_LEN + offset,
                len: remaining.len(),
            });
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let error = if len < MIN_EXTENSION_LEN || len % 4 != 0 {
            Some(ParseError::BadExtensionLength {
                offset: HEADER_LEN + offset,
                len,
            })
        } else if len > remaining.len() {
            Some(ParseError::TruncatedExtension {
                offset: HEADER_LEN + offset,
            })
        } else {
            None
        };
        if let Some(error) = error {
            // Not an extension field: a long MAC if the length is one, else broken.
            if LONG_MAC_LENS_V4.contains(&remaining.len()) {
                let fields = rest.get(..offset).unwrap_or_default();
                return Ok((fields, Some(Mac::from_trailer(remaining))));
            }
            return Err(error);
        }
        offset += len;
    }
}

/// Before NTPv4 the only thing that may follow the header is a MAC.
fn split_trailer_v3(rest: &[u8]) -> Result<(&[u8], Option<Mac<'_>>), ParseError> {
    match rest.len() {
        0 => Ok((&[], None)),
        n if MAC_LENS_V3.contains(&n) => Ok((&[], Some(Mac::from_trailer(rest)))),
        len => Err(ParseError::BadTrailer {
            offset: HEADER_LEN,
            len,
        }),
    }
}

/// The extension fields of a parsed packet, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtensionFields<'a> {
    bytes: &'a [u8],
}

impl<'a> ExtensionFields<'a> {
    /// Total octets taken by the fields (including their headers and padding).
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are no extension fields.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The fields in order.
    pub fn iter(&self) -> ExtensionIter<'a> {
        ExtensionIter { rest: self.bytes }
    }
}

impl<'a> IntoIterator for ExtensionFields<'a> {
    type Item = ExtensionField<'a>;
    type IntoIter = ExtensionIter<'a>;
    fn into_iter(self) -> ExtensionIter<'a> {
        self.iter()
    }
}

/// Iterator over [`ExtensionFields`].
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = ExtensionField<'a>;

    fn next(&mut self) -> Option<ExtensionField<'a>> {
        let &[t0, t1, l0, l1] = self.rest.first_chunk::<4>()?;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        // The chain was validated by `Packet::parse`; `get` keeps this total regardless.
        let field = self.rest.get(..len)?;
        self.rest = self.rest.get(len..).unwrap_or_default();
        Some(ExtensionField {
            field_type: u16::from_be_bytes([t0, t1]),
            value: field.get(4..).unwrap_or_default(),
        })
    }
}

/// One RFC 7822 extension field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionField<'a> {
    /// The field type.
    pub field_type: u16,
    /// The value including any zero padding.
    pub value: &'a [u8],
}

/// The legacy MAC trailer: a key id and a digest (empty for a crypto-NAK).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Mac<'a> {
    /// The key identifier.
    pub key_id: u32,
    /// The digest octets; empty for a crypto-NAK.
    pub digest: &'a [u8],
}

impl<'a> Mac<'a> {
    fn from_trailer(trailer: &'a [u8]) -> Self {
        let (id, digest) = trailer
            .split_first_chunk::<4>()
            .map_or(([0; 4], &[][..]), |(a, b)| (*a, b));
        Self {
            key_id: u32::from_be_bytes(id),
            digest,
        }
    }

    /// Whether this is a crypto-NAK: a key id with no digest.
    pub fn is_crypto_nak(&self) -> bool {
        self.digest.is_empty()
    }

    /// Octets the trailer takes on the wire.
    pub fn len_bytes(&self) -> usize {
        4 + self.digest.len()
    }
}

impl fmt::Debug for Mac<'_> {
    /// Shows the key id and digest length, never the digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mac")
            .field("key_id", &self.key_id)
            .field("digest_len", &self.digest.len())
            .finish()
    }
}

/// Why a datagram is not a well-formed NTP packet. Every variant means "drop it silently";
/// the variant says why, for counters and debug logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Shorter than the 48-octet header.
    TooShort {
        /// Octets received.
        len: usize,
    },
    /// Version 0 or 5–7.
    BadVersion {
        /// The version field.
        version: u8,
    },
    /// Mode 6 or 7: not a time packet.
    NotNtp {
        /// The mode field.
        mode: Mode,
    },
    /// An extension field whose length is under 16 or not a multiple of 4.
    BadExtensionLength {
        /// Octet offset of the field in the datagram.
        offset: usize,
        /// The length it claims.
        len: usize,
    },
    /// An extension field that runs past the end of the datagram.
    TruncatedExtension {
        /// Octet offset of the field in the datagram.
        offset: usize,
    },
    /// Trailing octets that are neither an extension field nor a MAC.
    BadTrailer {
        /// Octet offset of the trailer.
        offset: usize,
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "{len} octets is shorter than an NTP header"),
            Self::BadVersion { version } => write!(f, "unsupported NTP version {version}"),
            Self::NotNtp { mode } => write!(f, "mode {} is not a time packet", mode.bits()),
            Self::BadExtensionLength { offset, len } => {
                write!(
                    f,
                    "extension field at octet {offset} has invalid length {len}"
                )
            }
            Self::TruncatedExtension { offset } => {
                write!(
                    f,
                    "extension field at octet {offset} runs past the end of the packet"
                )
            }
            Self::BadTrailer { offset, len } => {
                write!(
                    f,
                    "{len} trailing octets at {offset} are neither extension field nor MAC"
                )
            }
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::property;

    /// A stratum-8 reply with a local-reference refid, in the shape chronyd sends.
    const CHRONY_REPLY: [u8; 48] = [
        0x24, 0x08, 0x06, 0xe9, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7f, 0x7f, 0x01,
        0x01, 0xec, 0xd4, 0x6f, 0x10, 0x27, 0x1e, 0x6b, 0x32, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
        0xde, 0xf0, 0xec, 0xd4, 0x6f, 0x1a, 0x85, 0x1e, 0xb8, 0x51, 0xec, 0xd4, 0x6f, 0x1a, 0x85,
        0x23, 0x00, 0x00,
    ];

    fn request(version: u8) -> [u8; 48] {
        let mut b = [0u8; 48];
        NtpHeader::new(version, Mode::Client).emit(&mut b);
        b
    }

    #[test]
    fn decodes_a_chrony_reply() {
        let p = Packet::parse(&CHRONY_REPLY).unwrap();
        assert_eq!(p.header.leap, Leap::NoWarning);
        assert_eq!(p.header.version, 4);
        assert_eq!(p.header.mode, Mode::Server);
        assert_eq!(p.header.stratum, 8);
        assert_eq!(p.header.poll.exponent(), 6);
        assert_eq!(p.header.precision.exponent(), -23);
        assert_eq!(p.header.reference_id.display_for_stratum(8), "127.127.1.1");
        assert_eq!(p.header.origin_timestamp.to_bits(), 0x1234_5678_9abc_def0);
        assert!(p.extensions.is_empty());
        assert!(p.mac.is_none());
    }

    #[test]
    fn emit_then_decode_is_identity_on_a_capture() {
        let h = NtpHeader::decode(&CHRONY_REPLY);
        let mut out = [0u8; 48];
        h.emit(&mut out);
        assert_eq!(out, CHRONY_REPLY);
    }

    #[test]
    fn rejects_short_datagrams_and_bad_versions() {
        assert_eq!(
            Packet::parse(&[0u8; 47]),
            Err(ParseError::TooShort { len: 47 })
        );
        for v in [0u8, 5, 6, 7] {
            let mut b = request(4);
            b[0] = (v << 3) | 3;
            assert_eq!(
                Packet::parse(&b),
                Err(ParseError::BadVersion { version: v })
            );
        }
    }

    #[test]
    fn control_and_private_modes_are_not_time_packets() {
        let mut b = request(2);
        b[0] = (2 << 3) | 6;
        assert!(matches!(
            Packet::parse(&b),
            Err(ParseError::NotNtp {
                mode: Mode::Control
            })
        ));
        b[0] = (2 << 3) | 7;
        assert!(matches!(
            Packet::parse(&b),
            Err(ParseError::NotNtp {
                mode: Mode::Private
            })
        ));
    }

    #[test]
    fn recognises_mac_trailers_and_crypto_nak() {
        let mut b = request(4).to_vec();
        b.extend_from_slice(&[0, 0, 0, 7]);
        b.extend_from_slice(&[0xaa; 16]);
        let p = Packet::parse(&b).unwrap();
        let mac = p.mac.unwrap();
        assert_eq!(mac.key_id, 7);
        assert_eq!(mac.digest.len(), 16);

        let mut nak = request(4).to_vec();
        nak.extend_from_slice(&[0; 4]);
        assert!(Packet::parse(&nak).unwrap().mac.unwrap().is_crypto_nak());
    }

    #[test]
    fn ntpv3_takes_whole_sha2_digests_as_chrony_sends_them() {
        let mut b = request(3).to_vec();
        b.extend_from_slice(&[0, 0, 0, 33]);
        b.extend_from_slice(&[0xaa; 32]);
        let mac = Packet::parse(&b).unwrap().mac.unwrap();
        assert_eq!((mac.key_id, mac.digest.len()), (33, 32));
    }

    #[test]
    fn whole_sha2_digests_are_macs_unless_they_read_as_an_extension_field() {
        for digest in [32, 48, 64] {
            let mut b = request(4).to_vec();
            b.extend_from_slice(&[0, 0, 0, 33]);
            b.extend_from_slice(&vec![0xaa; digest]);
            let mac = Packet::parse(&b).unwrap().mac.unwrap();
            assert_eq!((mac.key_id, mac.digest.len()), (33, digest));
        }
        // 36 octets whose first four read as a valid 36-octet field stay an extension field.
        let mut b = request(4).to_vec();
        b.extend_from_slice(&[0x01, 0x04, 0x00, 0x24]);
        b.extend_from_slice(&[0xaa; 32]);
        let p = Packet::parse(&b).unwrap();
        assert!(p.mac.is_none() && p.extensions.len_bytes() == 36);
        // Other lengths that are neither stay errors.
        let mut b = request(4).to_vec();
        b.extend_from_slice(&[0, 0, 0, 33]);
        b.extend_from_slice(&[0xaa; 40]);
        assert!(Packet::parse(&b).is_err());
    }

    #[test]
    fn walks_extension_fields_then_a_mac() {
        let mut b = request(4).to_vec();
        // A 16-octet field, then a 28-octet field, then a SHA-1 MAC.
        b.extend_from_slice(&[0x01, 0x04, 0x00, 0x10]);
        b.extend_from_slice(&[1; 12]);
        b.extend_from_slice(&[0x02, 0x04, 0x00, 0x1c]);
        b.extend_from_slice(&[2; 24]);
        b.extend_from_slice(&[0, 0, 0, 9]);
        b.extend_from_slice(&[3; 20]);
        let p = Packet::parse(&b).unwrap();
        let fields: Vec<_> = p.extensions.iter().collect();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].field_type, 0x0104);
        assert_eq!(fields[0].value, &[1; 12]);
        assert_eq!(fields[1].field_type, 0x0204);
        assert_eq!(fields[1].value.len(), 24);
        assert_eq!(p.mac.unwrap().key_id, 9);
    }

    #[test]
    fn rejects_malformed_extension_fields() {
        let with = |ef: &[u8]| {
            let mut b = request(4).to_vec();
            b.extend_from_slice(ef);
            Packet::parse(&b).map(|_| ())
        };
        // Length below 16.
        let mut short = vec![0, 1, 0, 8];
        short.extend_from_slice(&[0; 24]);
        assert!(matches!(
            with(&short),
            Err(ParseError::BadExtensionLength { len: 8, .. })
        ));
        // Length not a multiple of 4.
        let mut odd = vec![0, 1, 0, 30];
        odd.extend_from_slice(&[0; 28]);
        assert!(matches!(
            with(&odd),
            Err(ParseError::BadExtensionLength { len: 30, .. })
        ));
        // Length past the end.
        let mut long = vec![0, 1, 0, 64];
        long.extend_from_slice(&[0; 28]);
        assert!(matches!(
            with(&long),
            Err(ParseError::TruncatedExtension { .. })
        ));
        // Three stray octets.
        assert!(matches!(
            with(&[1, 2, 3]),
            Err(ParseError::BadTrailer { .. })
        ));
    }

    #[test]
    fn old_versions_take_only_a_mac() {
        let mut b = request(3).to_vec();
        b.extend_from_slice(&[0; 12]);
        assert!(Packet::parse(&b).unwrap().mac.is_some());
        let mut b = request(3).to_vec();
        b.extend_from_slice(&[0; 28]);
        assert!(matches!(
            Packet::parse(&b),
            Err(ParseError::BadTrailer { .. })
        ));
    }

    #[test]
    fn ipv6_refid_is_md5_prefix() {
        let id = ReferenceId::from_ip("::1".parse().unwrap());
        assert_eq!(
            id.to_bytes(),
            md5_prefix(&core::net::Ipv6Addr::LOCALHOST.octets())
        );
        // MD5("") = d41d8cd9…, a known vector for the helper itself.
        assert_eq!(md5_prefix(b""), [0xd4, 0x1d, 0x8c, 0xd9]);
        assert_eq!(
            ReferenceId::from_ip("192.0.2.1".parse().unwrap()).to_bytes(),
            [192, 0, 2, 1]
        );
    }

    #[test]
    fn refid_text_matches_ntpq() {
        assert_eq!(ReferenceId::INIT.display_for_stratum(16), "INIT");
        assert_eq!(
            ReferenceId::from_bytes(*b"GP\0\0").display_for_stratum(1),
            "GP"
        );
        assert_eq!(
            ReferenceId::from_bytes([10, 0, 0, 1]).display_for_stratum(3),
            "10.0.0.1"
        );
    }

    #[test]
    fn parse_never_panics_on_any_bytes() {
        let checked = property::run(proptest::collection::vec(any::<u8>(), 0..400), |bytes| {
            let _ = Packet::parse(&bytes);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn header_round_trips() {
        let strategy = (
            proptest::array::uniform32(any::<u8>()),
            proptest::array::uniform16(any::<u8>()),
        );
        let checked = property::run(strategy, |(bytes, tail)| {
            let mut b = [0u8; 48];
            b[..32].copy_from_slice(&bytes);
            b[32..].copy_from_slice(&tail);
            let h = NtpHeader::decode(&b);
            let mut out = [0u8; 48];
            h.emit(&mut out);
            prop_assert_eq!(out, b);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn accepted_extension_chains_cover_the_region() {
        let strategy = (0usize..4, proptest::collection::vec(4usize..12, 4));
        let accepted = property::Checked::default();
        let checked = property::run(strategy, |(n, lens)| {
            let mut b = request(4).to_vec();
            for len in lens.iter().take(n) {
                let total = len * 4 + 12;
                b.extend_from_slice(&[0, 9]);
                b.extend_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
                b.resize(b.len() + total - 4, 0);
            }
            if let Ok(p) = Packet::parse(&b) {
                accepted.hit();
                let sum: usize = p.extensions.iter().map(|f| f.value.len() + 4).sum();
                prop_assert_eq!(
                    sum + p.mac.map_or(0, |m| m.len_bytes()),
                    b.len() - HEADER_LEN
                );
            }
            Ok(())
        });
        assert_eq!(checked, property::CASES);
        // Every chain built here is well formed (lengths multiple of 4, at least 16 octets), so
        // every one must parse and be checked; a quarter have no extension at all.
        assert_eq!(accepted.count(), property::CASES);
    }
}
