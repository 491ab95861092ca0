//! NTS-KE records (RFC 8915 §4): what goes over the TLS connection, parsed and written here;
//! the TLS itself is the daemon's.
//!
//! A record is `C (1 bit) | type (15) | body length (16) | body`; a message is a run of records
//! ending with an End of Message record. Every length is checked against what was received and
//! a message may not exceed [`MAX_MESSAGE_LEN`], so a peer cannot make either side buffer or
//! loop without bound.

use core::fmt;

use super::aead::Aead;

/// TLS ALPN protocol id of NTS-KE.
pub const ALPN: &[u8] = b"ntske/1";

/// TLS exporter label for the NTS keys (RFC 8915 §5.1).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-network-time-security";

/// The NTS-KE TCP port.
pub const DEFAULT_PORT: u16 = 4460;

/// Longest NTS-KE message either side accepts, octets. Eight cookies of a few hundred octets
/// and a server name fit many times over.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// Most cookies a server hands out per key exchange, and a client keeps (RFC 8915 §6).
pub const COOKIES_PER_EXCHANGE: usize = 8;

/// Longest cookie a client accepts; longer ones would not fit a request.
pub const MAX_CLIENT_COOKIE_LEN: usize = 256;

/// The NTPv4 protocol id in Next Protocol records.
const PROTOCOL_NTPV4: u16 = 0;

/// Record types.
mod kind {
    pub(super) const END: u16 = 0;
    pub(super) const NEXT_PROTOCOL: u16 = 1;
    pub(super) const ERROR: u16 = 2;
    pub(super) const WARNING: u16 = 3;
    pub(super) const AEAD: u16 = 4;
    pub(super) const COOKIE: u16 = 5;
    pub(super) const SERVER: u16 = 6;
    pub(super) const PORT: u16 = 7;
}

/// Error codes of an Error record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: a critical record the peer does not know.
    UnrecognizedCritical,
    /// 1: a malformed request.
    BadRequest,
    /// 2: the server failed.
    InternalServerError,
    /// Any other code.
    Other(u16),
}

impl ErrorCode {
    fn code(self) -> u16 {
        match self {
            Self::UnrecognizedCritical => 0,
            Self::BadRequest => 1,
            Self::InternalServerError => 2,
            Self::Other(c) => c,
        }
    }

    fn from_code(code: u16) -> Self {
        match code {
            0 => Self::UnrecognizedCritical,
            1 => Self::BadRequest,
            2 => Self::InternalServerError,
            c => Self::Other(c),
        }
    }
}

/// What is wrong with an NTS-KE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeError {
    /// More than [`MAX_MESSAGE_LEN`] octets without an End of Message record.
    TooLong,
    /// The data ends inside a record, or without an End of Message record.
    Truncated,
    /// Octets follow the End of Message record.
    TrailingData,
    /// A record at `offset` has a body of the wrong length for its type.
    BadRecordLength {
        /// Record type.
        kind: u16,
        /// Offset of the record in the message.
        offset: usize,
    },
    /// A critical record of an unknown type.
    UnrecognizedCritical {
        /// Its type.
        kind: u16,
    },
    /// The same singleton record twice, or a record that does not belong in this direction.
    Unexpected {
        /// Record type.
        kind: u16,
    },
    /// No NTPv4 among the Next Protocol records (or none at all).
    NoNtpv4,
    /// No AEAD both sides implement.
    NoCommonAead,
    /// The server answered without cookies.
    NoCookies,
    /// The server sent an Error record.
    Peer(ErrorCode),
    /// A server name that is not printable ASCII.
    BadServerName,
}

impl fmt::Display for KeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "message longer than {MAX_MESSAGE_LEN} octets"),
            Self::Truncated => f.write_str("message ends inside a record"),
            Self::TrailingData => f.write_str("data after the End of Message record"),
            Self::BadRecordLength { kind, offset } => {
                write!(f, "record type {kind} at offset {offset} has a bad length")
            }
            Self::UnrecognizedCritical { kind } => {
                write!(f, "unrecognised critical record type {kind}")
            }
            Self::Unexpected { kind } => write!(f, "unexpected or repeated record type {kind}"),
            Self::NoNtpv4 => f.write_str("NTPv4 not offered as next protocol"),
            Self::NoCommonAead => f.write_str("no common AEAD algorithm"),
            Self::NoCookies => f.write_str("no cookies in the response"),
            Self::Peer(code) => write!(f, "peer sent error {}", code.code()),
            Self::BadServerName => f.write_str("server name is not printable ASCII"),
        }
    }
}

/// One record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The critical bit.
    pub critical: bool,
    /// Record type.
    pub kind: u16,
    /// Body.
    pub body: &'a [u8],
    /// Offset of the record in its message.
    pub offset: usize,
}

/// Splits off the first complete message of `data`: its records, the End of Message record
/// last. `Ok(None)` if more data is needed; an error once the message cannot become valid.
pub fn split_message(data: &[u8]) -> Result<Option<(Vec<Record<'_>>, usize)>, KeError> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    loop {
        let Some(&[a, b, c, d]) = data.get(offset..).and_then(|r| r.first_chunk::<4>()) else {
            return if offset >= MAX_MESSAGE_LEN {
                Err(KeError::TooLong)
            } else {
                Ok(None)
            };
        };
        let word = u16::from_be_bytes([a, b]);
        let len = usize::from(u16::from_be_bytes([c, d]));
        let end = offset + 4 + len;
        if end > MAX_MESSAGE_LEN {
            return Err(KeError::TooLong);
        }
        let Some(body) = data.get(offset + 4..end) else {
            return Ok(None);
        };
        let record = Record {
            critical: word & 0x8000 != 0,
            kind: word & 0x7fff,
            body,
            offset,
        };
        records.push(record);
        offset = end;
        if record.kind == kind::END {
            if !body.is_empty() {
                return Err(KeError::BadRecordLength {
                    kind: kind::END,
                    offset: record.offset,
                });
            }
            return Ok(Some((records, offset)));
        }
    }
}

/// Parses one whole message: exactly one message, nothing after it.
fn whole_message(data: &[u8]) -> Result<Vec<Record<'_>>, KeError> {
    match split_message(data)? {
        None => Err(KeError::Truncated),
        Some((records, len)) if len == data.len() => Ok(records),
        Some(_) => Err(KeError::TrailingData),
    }
}

fn u16_list<'a>(r: &Record<'a>) -> Result<impl Iterator<Item = u16> + 'a, KeError> {
    if r.body.len() % 2 != 0 {
        return Err(KeError::BadRecordLength {
            kind: r.kind,
            offset: r.offset,
        });
    }
    Ok(r.body
        .chunks_exact(2)
        .filter_map(|c| <[u8; 2]>::try_from(c).ok())
        .map(u16::from_be_bytes))
}

/// A client's request as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The AEAD the server will use: the client's first choice among those implemented.
    pub aead: Aead,
}

/// Parses a client request (RFC 8915 §4.1.2–4.1.5).
pub fn parse_request(data: &[u8]) -> Result<Request, KeError> {
    let mut ntpv4 = None;
    let mut aead = None;
    for r in whole_message(data)? {
        match r.kind {
            kind::END => {}
            kind::NEXT_PROTOCOL => {
                if ntpv4.is_some() {
                    return Err(KeError::Unexpected { kind: r.kind });
                }
                ntpv4 = Some(u16_list(&r)?.any(|p| p == PROTOCOL_NTPV4));
            }
            kind::AEAD => {
                if aead.is_some() {
                    return Err(KeError::Unexpected { kind: r.kind });
                }
                aead = Some(u16_list(&r)?.find_map(Aead::from_id));
            }
            kind::ERROR | kind::WARNING | kind::COOKIE => {
                return Err(KeError::Unexpected { kind: r.kind });
            }
            // Server and port negotiation from a client are hints this server ignores.
            kind::SERVER | kind::PORT => {}
            k if r.critical => return Err(KeError::UnrecognizedCritical { kind: k }),
            _ => {}
        }
    }
    if ntpv4 != Some(true) {
        return Err(KeError::NoNtpv4);
    }
    Ok(Request {
        aead: aead.flatten().ok_or(KeError::NoCommonAead)?,
    })
}

fn push_record(out: &mut Vec<u8>, critical: bool, kind: u16, body: &[u8]) {
    let word = kind | if critical { 0x8000 } else { 0 };
    out.extend_from_slice(&word.to_be_bytes());
    out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(body.get(..usize::from(u16::MAX)).unwrap_or(body));
}

/// The NTP server a client asks the key-exchange server for (NTPsec's `ask HOST[:PORT]`):
/// sent as the NTPv4 Server Negotiation record and, with a port, the NTPv4 Port Negotiation
/// record (RFC 8915 §4.1.7–4.1.8), both non-critical, so a server that does not honour them
/// still answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    server: String,
    port: Option<u16>,
}

impl Ask {
    /// An ask for `server` (an IPv4 address, an IPv6 address without brackets, or a host
    /// name) and optionally its UDP `port`. `None` if `server` is none of those: RFC 8915
    /// allows only these in the record, an IPv6 address in RFC 5952 form, which is how it
    /// is stored.
    pub fn new(server: &str, port: Option<u16>) -> Option<Self> {
        let server = if let Ok(v4) = server.parse::<core::net::Ipv4Addr>() {
            v4.to_string()
        } else if let Ok(v6) = server.parse::<core::net::Ipv6Addr>() {
            v6.to_string()
        } else if is_host_name(server) {
            server.to_ascii_lowercase()
        } else {
            return None;
        };
        Some(Self { server, port })
    }

    /// The server asked for, as sent.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The UDP port asked for, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

/// A host name (RFC 1123): dot-separated labels of letters, digits and inner hyphens, 1–63
/// octets each, 253 in all; a final dot is allowed. All-numeric names are not (they would
/// be malformed addresses).
fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Writes a client request offering NTPv4 and the implemented AEADs, and asking for the NTP
/// server of `ask` if given.
pub fn write_request(out: &mut Vec<u8>, ask: Option<&Ask>) {
    push_record(
        out,
        true,
        kind::NEXT_PROTOCOL,
        &PROTOCOL_NTPV4.to_be_bytes(),
    );
    let mut aeads = Vec::new();
    for a in Aead::ALL {
        aeads.extend_from_slice(&a.id().to_be_bytes());
    }
    push_record(out, false, kind::AEAD, &aeads);
    if let Some(ask) = ask {
        push_record(out, false, kind::SERVER, ask.server.as_bytes());
        if let Some(port) = ask.port {
            push_record(out, false, kind::PORT, &port.to_be_bytes());
        }
    }
    push_record(out, true, kind::END, &[]);
}

/// Writes a server response: NTPv4, `aead`, the `cookies`, and the NTP `port` if it is not 123.
pub fn write_response(out: &mut Vec<u8>, aead: Aead, cookies: &[&[u8]], port: Option<u16>) {
    push_record(
        out,
        true,
        kind::NEXT_PROTOCOL,
        &PROTOCOL_NTPV4.to_be_bytes(),
    );
    push_record(out, true, kind::AEAD, &aead.id().to_be_bytes());
    if let Some(port) = port {
        push_record(out, true, kind::PORT, &port.to_be_bytes());
    }
    for c in cookies {
        push_record(out, false, kind::COOKIE, c);
    }
    push_record(out, true, kind::END, &[]);
}

/// Writes an error response.
pub fn write_error(out: &mut Vec<u8>, code: ErrorCode) {
    push_record(out, true, kind::ERROR, &code.code().to_be_bytes());
    push_record(out, true, kind::END, &[]);
}

/// The error a server answers a bad request with.
pub fn error_for(e: &KeError) -> ErrorCode {
    match e {
        KeError::UnrecognizedCritical { .. } => ErrorCode::UnrecognizedCritical,
        _ => ErrorCode::BadRequest,
    }
}

/// A server's response as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The AEAD the server chose.
    pub aead: Aead,
    /// The cookies, at most [`COOKIES_PER_EXCHANGE`], each non-empty and at most
    /// [`MAX_CLIENT_COOKIE_LEN`] octets (others are ignored).
    pub cookies: Vec<Vec<u8>>,
    /// The NTP server to use, if not the key-exchange server itself.
    pub server: Option<String>,
    /// The NTP port to use, if not 123.
    pub port: Option<u16>,
}

/// Parses a server response (RFC 8915 §4.1).
pub fn parse_response(data: &[u8]) -> Result<Response, KeError> {
    let mut ntpv4 = None;
    let mut aead = None;
    let mut cookies = Vec::new();
    let mut server = None;
    let mut port = None;
    for r in whole_message(data)? {
        let bad_len = KeError::BadRecordLength {
            kind: r.kind,
            offset: r.offset,
        };
        match r.kind {
            kind::END | kind::WARNING => {}
            kind::ERROR => {
                let &[a, b] = r.body else { return Err(bad_len) };
                return Err(KeError::Peer(ErrorCode::from_code(u16::from_be_bytes([
                    a, b,
                ]))));
            }
            kind::NEXT_PROTOCOL => {
                let &[a, b] = r.body else { return Err(bad_len) };
                if ntpv4
                    .replace(u16::from_be_bytes([a, b]) == PROTOCOL_NTPV4)
                    .is_some()
                {
                    return Err(KeError::Unexpected { kind: r.kind });
                }
            }
            kind::AEAD => {
                let &[a, b] = r.body else { return Err(bad_len) };
                let chosen = Aead::from_id(u16::from_be_bytes([a, b]));
                if aead.replace(chosen).is_some() {
                    return Err(KeError::Unexpected { kind: r.kind });
                }
            }
            kind::COOKIE
                if !r.body.is_empty()
                    && r.body.len() <= MAX_CLIENT_COOKIE_LEN
                    && cookies.len() < COOKIES_PER_EXCHANGE =>
            {
                cookies.push(r.body.to_vec());
            }
            // Empty, oversized or surplus cookies are ignored.
            kind::COOKIE => {}
            kind::SERVER => {
                let name = core::str::from_utf8(r.body).map_err(|_| KeError::BadServerName)?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(KeError::BadServerName);
                }
                if server.replace(name.to_owned()).is_some() {
                    return Err(KeError::Unexpected { kind: r.kind });
                }
            }
            kind::PORT => {
                let &[a, b] = r.body else { return Err(bad_len) };
                if port.replace(u16::from_be_bytes([a, b])).is_some() {
                    return Err(KeError::Unexpected { kind: r.kind });
                }
            }
            k if r.critical => return Err(KeError::UnrecognizedCritical { kind: k }),
            _ => {}
        }
    }
    if ntpv4 != Some(true) {
        return Err(KeError::NoNtpv4);
    }
    let aead = aead.flatten().ok_or(KeError::NoCommonAead)?;
    if cookies.is_empty() {
        return Err(KeError::NoCookies);
    }
    Ok(Response {
        aead,
        cookies,
        server,
        port,
    })
}

/// The TLS exporter context for one direction's key: protocol id (NTPv4), AEAD id, then
/// 0 for client-to-server or 1 for server-to-client (RFC 8915 §5.1).
pub fn exporter_context(aead: Aead, server_to_client: bool) -> [u8; 5] {
    let [p0, p1] = PROTOCOL_NTPV4.to_be_bytes();
    let [a0, a1] = aead.id().to_be_bytes();
    [p0, p1, a0, a1, u8::from(server_to_client)]
}

#[cfg(test)]
#[path = "ke_tests.rs"]
mod tests;
