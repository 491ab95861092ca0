//! The read-only mode 6 responder: one request, the daemon's [`ControlSnapshot`] and the time
//! in; zero or more response fragments out through a callback.
//!
//! | opcode | answer |
//! |---|---|
//! | UNSPEC (0) | status word only |
//! | READSTAT (1) | association 0: (id, status) pairs; association N: its default variables |
//! | READVAR (2) | system (0) or peer variables; defaults or the names asked for |
//! | READCLOCK (4) | reference clock variables (reference clock associations only) |
//! | WRITEVAR, WRITECLOCK, CONFIGURE, SAVECONFIG, READ_ORDLIST_A | PERMISSION, always |
//! | SETTRAP, UNSETTRAP | PERMISSION, always: sundial has no traps (CVE-2016-9310) |
//! | REQ_NONCE | a nonce bound to the requester's address ([`super::mru`]) |
//! | READ_MRU | the client table, only with a valid nonce (else PERMISSION) |
//! | ASYNCMSG, others | BADOP |
//!
//! One reply is at most [`MAX_REPLY_FRAGMENTS`] fragments of at most 468 data octets, each
//! zero-padded to a multiple of four octets; items past that bound are left out. A source the
//! caller limits with [`ControlAccess::within`] gets a PERMISSION error instead of an answer
//! longer than that. Rate limiting is the caller's job: a 12-octet request from loopback can
//! return a few kilobytes.

use core::net::Ipv4Addr;
use core::num::NonZeroU16;
use std::sync::OnceLock;

use super::header::{ControlHeader, ErrorCode, HEADER_LEN, MAX_DATA_LEN, MAX_DATAGRAM_LEN, Opcode};
use super::mru::{self, MruContext, MruQuery, NONCE_REPLY_OCTETS, Nonce};
use super::request::{IgnoreReason, Request, RequestError, RequestFrame};
use super::snapshot::{AssociationId, ControlSnapshot, PeerVars, SystemVars};
use super::varlist::VarWriter;
use super::vars::{self, CLOCK, PEER, SYSTEM, Table};
use crate::access::RestrictFlags;
use crate::packet::Mode;
use crate::select::Tally;
use crate::time::NtpTimestamp;

/// Most fragments in one reply: ~7.3 KB, far below ntpq's limit of 32 and above anything real
/// (a peer's variables take about 600 octets, the association list 4 per association).
pub const MAX_REPLY_FRAGMENTS: usize = 16;

/// Most data octets in one reply.
pub const MAX_REPLY_DATA: usize = MAX_REPLY_FRAGMENTS * MAX_DATA_LEN;

/// What a source may do over mode 6, from the flags of its `restrict` entry, and how long a
/// reply it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlAccess {
    query: bool,
    /// `nomrulist` not set: the nonce exchange and the MRU list are served.
    mrulist: bool,
    /// Most octets (all fragments together) one reply may take; a longer answer becomes a
    /// PERMISSION error (12 octets).
    max_reply_octets: usize,
}

impl ControlAccess {
    /// Full read access: what loopback gets by default.
    pub const READ: Self = Self {
        query: true,
        mrulist: true,
        max_reply_octets: usize::MAX,
    };

    /// The access a `restrict` entry grants: `ignore` and `noquery` mean no reply at all;
    /// `nomrulist` refuses the MRU list (and its nonce) with PERMISSION. `nomodify` changes
    /// nothing: no source may modify or set traps.
    pub const fn from_restrict(flags: RestrictFlags) -> Self {
        Self {
            query: !flags.contains(RestrictFlags::IGNORE)
                && !flags.contains(RestrictFlags::NOQUERY),
            mrulist: !flags.contains(RestrictFlags::NOMRULIST),
            max_reply_octets: usize::MAX,
        }
    }

    /// The same access, with replies of at most `octets` octets: a source whose address is not
    /// proven gets nothing longer than its request (no amplification, security.md §2.2).
    /// Two replies are exempt: the fixed-size nonce ([`NONCE_REPLY_OCTETS`]) and the MRU list
    /// for a request carrying a valid nonce, which proves the address.
    #[must_use]
    pub const fn within(self, octets: usize) -> Self {
        Self {
            max_reply_octets: octets,
            ..self
        }
    }
}

/// What [`respond`] did with a request.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlOutcome {
    /// Nothing was sent.
    Ignored(IgnoreReason),
    /// A reply was sent.
    Answered(Answer),
}

/// The reply [`respond`] sent, for statistics and the per-source byte budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The request's opcode.
    pub opcode: Opcode,
    /// The error code, if the reply was an error.
    pub error: Option<ErrorCode>,
    /// Datagrams sent.
    pub fragments: usize,
    /// Octets sent, headers and padding included.
    pub octets: usize,
    /// Some variables or associations were left out to stay within [`MAX_REPLY_DATA`].
    pub truncated: bool,
}

/// Answers one mode 6 request. `emit` is called once per response datagram, in order, each at
/// most [`MAX_DATAGRAM_LEN`] octets and a multiple of four. `now` is the `clock` variable.
///
/// The caller has already decided that the source may use mode 6 at all (rate limit,
/// interface); `access` carries what its restrict entry allows. Never panics, whatever the
/// bytes.
pub fn respond(
    request: &[u8],
    access: ControlAccess,
    snapshot: &ControlSnapshot,
    now: NtpTimestamp,
    emit: &mut dyn FnMut(&[u8]),
) -> ControlOutcome {
    respond_with_mru(request, access, snapshot, now, None, emit)
}

/// [`respond`], also serving REQ_NONCE and READ_MRU from `mru` (without it both are
/// PERMISSION errors).
pub fn respond_with_mru(
    request: &[u8],
    access: ControlAccess,
    snapshot: &ControlSnapshot,
    now: NtpTimestamp,
    mru: Option<&MruContext<'_>>,
    emit: &mut dyn FnMut(&[u8]),
) -> ControlOutcome {
    if !access.query {
        return ControlOutcome::Ignored(IgnoreReason::Restricted);
    }
    let mut replier = Replier {
        snapshot,
        now,
        max_octets: access.max_reply_octets,
        mru: mru.filter(|_| access.mrulist),
        emit,
    };
    let frame = match RequestFrame::parse(request) {
        Ok(frame) => frame,
        Err(RequestError::Ignore(why)) => return ControlOutcome::Ignored(why),
        Err(RequestError::Reject { header, code }) => return replier.error(&header, code),
    };
    match Request::from_frame(frame) {
        Ok(request) => replier.answer(&request),
        Err(code) => replier.error(&frame.header, code),
    }
}

/// Runs [`respond`] on arbitrary bytes against a fixed snapshot with two associations and
/// checks the shape of every datagram, then reads them as MRU list parameters and lists a
/// small client table with them: the body of the `control_respond` fuzz target.
///
/// # Panics
/// If a datagram breaks the framing rules (a bug, which is what fuzzing looks for).
pub fn fuzz_respond(data: &[u8]) {
    static SNAPSHOT: OnceLock<ControlSnapshot> = OnceLock::new();
    let snapshot = SNAPSHOT.get_or_init(fuzz_snapshot);
    let mut fragments = 0;
    let outcome = respond(
        data,
        ControlAccess::READ,
        snapshot,
        NtpTimestamp::from_parts(0xec00_0000, 0),
        &mut |datagram| {
            fragments += 1;
            assert!(datagram.len() >= HEADER_LEN && datagram.len() <= MAX_DATAGRAM_LEN);
            assert_eq!(datagram.len() % 4, 0);
        },
    );
    assert!(fragments <= MAX_REPLY_FRAGMENTS);
    if let ControlOutcome::Answered(answer) = outcome {
        assert_eq!(answer.fragments, fragments);
    }
    // The MRU parameters, from the data of a request or from the bytes as they are.
    match RequestFrame::parse(data) {
        Ok(frame) => mru::fuzz_list(frame.data),
        Err(_) => mru::fuzz_list(data),
    }
}

fn fuzz_snapshot() -> ControlSnapshot {
    let first = AssociationId::from_nonzero(NonZeroU16::MIN);
    let second = AssociationId::from_nonzero(NonZeroU16::MIN.saturating_add(1));
    let mut peer = PeerVars::new(first, Ipv4Addr::new(192, 0, 2, 1).into(), 123);
    peer.tally = Tally::SystemPeer;
    peer.reach = 0xff;
    let mut clock = PeerVars::new(second, Ipv4Addr::new(127, 127, 1, 0).into(), 123);
    clock.is_refclock = true;
    clock.srchost = Some("LOCAL(0)".to_owned());
    ControlSnapshot {
        system: SystemVars::default(),
        peers: vec![peer, clock],
    }
}

/// Sends the reply to one request.
struct Replier<'s, 'e> {
    snapshot: &'s ControlSnapshot,
    now: NtpTimestamp,
    /// [`ControlAccess::within`]: a longer answer is refused with PERMISSION.
    max_octets: usize,
    /// The client table and nonce secret, when the MRU list is served to this source.
    mru: Option<&'e MruContext<'e>>,
    emit: &'e mut dyn FnMut(&[u8]),
}

impl<'s> Replier<'s, '_> {
    fn answer(&mut self, request: &Request<'_>) -> ControlOutcome {
        let header = &request.header;
        let association = header.association;
        let snapshot = self.snapshot;
        let system_status = snapshot.system.status().word();
        match header.opcode {
            Opcode::Unspec => match self.lookup(association) {
                Ok(None) => self.data(header, system_status, &[], false),
                Ok(Some(peer)) => self.data(header, peer.status().word(), &[], false),
                Err(code) => self.error(header, code),
            },
            Opcode::ReadStatus if association == 0 => self.association_list(header),
            Opcode::ReadStatus => match self.lookup(association) {
                Ok(Some(peer)) => {
                    self.variables(header, peer.status().word(), &PEER, peer, request)
                }
                Ok(None) | Err(_) => self.error(header, ErrorCode::BadAssociation),
            },
            Opcode::ReadVariables => match self.lookup(association) {
                Ok(None) => {
                    let system = &snapshot.system;
                    self.variables(header, system_status, &SYSTEM, system, request)
                }
                Ok(Some(peer)) => {
                    self.variables(header, peer.status().word(), &PEER, peer, request)
                }
                Err(code) => self.error(header, code),
            },
            Opcode::ReadClock => {
                let clock = if association == 0 {
                    snapshot.default_clock()
                } else {
                    snapshot.peer(association).filter(|p| p.is_refclock)
                };
                match clock {
                    Some(peer) => {
                        self.variables(header, peer.clock.status().word(), &CLOCK, peer, request)
                    }
                    None => self.error(header, ErrorCode::BadAssociation),
                }
            }
            Opcode::WriteVariables
            | Opcode::WriteClock
            | Opcode::Configure
            | Opcode::SaveConfig
            | Opcode::ReadOrderedList
            | Opcode::SetTrap
            | Opcode::UnsetTrap => self.error(header, ErrorCode::Permission),
            Opcode::RequestNonce => self.nonce(header),
            Opcode::ReadMru => self.mru_list(header, request.data),
            Opcode::AsyncMessage | Opcode::Other(_) => self.error(header, ErrorCode::BadOpcode),
        }
    }

    /// REQ_NONCE: a fixed-size reply, allowed to exceed the request up to
    /// [`NONCE_REPLY_OCTETS`] whatever the source.
    fn nonce(&mut self, header: &ControlHeader) -> ControlOutcome {
        let Some(context) = self.mru else {
            return self.error(header, ErrorCode::Permission);
        };
        let mut data = [0u8; MAX_DATA_LEN];
        let len = mru::write_nonce(context, &mut data);
        self.max_octets = self.max_octets.max(NONCE_REPLY_OCTETS);
        let status = self.snapshot.system.status().word();
        self.data(header, status, data.get(..len).unwrap_or_default(), false)
    }

    /// READ_MRU: only for a request that plays back a valid nonce, which proves that the
    /// source receives at its address; then the reply may be as long as the list (at most
    /// [`MAX_REPLY_FRAGMENTS`]). Anything else gets a 12-octet error.
    fn mru_list(&mut self, header: &ControlHeader, data: &[u8]) -> ControlOutcome {
        let Some(context) = self.mru else {
            return self.error(header, ErrorCode::Permission);
        };
        let query = match MruQuery::parse(data) {
            Ok(query) => query,
            Err(code) => return self.error(header, code),
        };
        let proven = query.nonce.is_some_and(|nonce| {
            Nonce::verify(&context.nonce_key, context.source, context.monotonic, nonce)
        });
        if !proven {
            return self.error(header, ErrorCode::Permission);
        }
        let mut buf = vec![0u8; MAX_REPLY_DATA];
        match mru::write_list(context, &query, self.now, &mut buf) {
            Ok(len) => {
                self.max_octets = usize::MAX;
                let status = self.snapshot.system.status().word();
                self.data(header, status, buf.get(..len).unwrap_or_default(), false)
            }
            Err(code) => self.error(header, code),
        }
    }

    /// The peer of a non-zero association id; `Ok(None)` for the system (id 0).
    fn lookup(&self, association: u16) -> Result<Option<&'s PeerVars>, ErrorCode> {
        if association == 0 {
            return Ok(None);
        }
        self.snapshot
            .peer(association)
            .map(Some)
            .ok_or(ErrorCode::BadAssociation)
    }

    fn association_list(&mut self, header: &ControlHeader) -> ControlOutcome {
        let mut data = [0u8; MAX_REPLY_DATA];
        let mut len = 0;
        let mut truncated = false;
        for peer in &self.snapshot.peers {
            let [a0, a1] = peer.association_id.get().to_be_bytes();
            let [s0, s1] = peer.status().word().to_be_bytes();
            match data.get_mut(len..len + 4) {
                Some(slot) => slot.copy_from_slice(&[a0, a1, s0, s1]),
                None => {
                    truncated = true;
                    break;
                }
            }
            len += 4;
        }
        let status = self.snapshot.system.status().word();
        self.data(
            header,
            status,
            data.get(..len).unwrap_or_default(),
            truncated,
        )
    }

    fn variables<T>(
        &mut self,
        header: &ControlHeader,
        status: u16,
        table: &Table<T>,
        value: &T,
        request: &Request<'_>,
    ) -> ControlOutcome {
        let selection = match vars::select(table, &request.names) {
            Ok(selection) => selection,
            Err(code) => return self.error(header, code),
        };
        let mut data = [0u8; MAX_REPLY_DATA];
        let mut writer = VarWriter::new(&mut data);
        vars::write(table, selection, value, self.now, &mut writer);
        let (len, truncated) = writer.finish();
        self.data(
            header,
            status,
            data.get(..len).unwrap_or_default(),
            truncated,
        )
    }

    fn error(&mut self, request: &ControlHeader, code: ErrorCode) -> ControlOutcome {
        let header = ControlHeader {
            error: true,
            status: code.status_word(),
            ..self.reply_header(request)
        };
        let mut out = [0u8; HEADER_LEN];
        header.emit(&mut out);
        (self.emit)(&out);
        ControlOutcome::Answered(Answer {
            opcode: request.opcode,
            error: Some(code),
            fragments: 1,
            octets: HEADER_LEN,
            truncated: false,
        })
    }

    /// Sends `data` in fragments of at most 468 octets, each zero-padded to four; an empty
    /// reply is one fragment with no data.
    fn data(
        &mut self,
        request: &ControlHeader,
        status: u16,
        data: &[u8],
        truncated: bool,
    ) -> ControlOutcome {
        let fragments = data.len().div_ceil(MAX_DATA_LEN).max(1);
        // Every fragment but the last is full; the last is padded to four octets.
        let last = data.len() - (fragments - 1) * MAX_DATA_LEN;
        let total = (fragments - 1) * MAX_DATAGRAM_LEN + (HEADER_LEN + last).next_multiple_of(4);
        if total > self.max_octets {
            return self.error(request, ErrorCode::Permission);
        }
        let mut octets = 0;
        for index in 0..fragments {
            let start = index * MAX_DATA_LEN;
            let chunk = data
                .get(start..data.len().min(start + MAX_DATA_LEN))
                .unwrap_or_default();
            let header = ControlHeader {
                status,
                more: index + 1 < fragments,
                // Both fit: a reply holds at most MAX_REPLY_DATA (7488) octets.
                offset: u16::try_from(start).unwrap_or(u16::MAX),
                count: u16::try_from(chunk.len()).unwrap_or(0),
                ..self.reply_header(request)
            };
            let mut out = [0u8; MAX_DATAGRAM_LEN];
            let (head, body) = out.split_at_mut(HEADER_LEN);
            if let Ok(head) = <&mut [u8; HEADER_LEN]>::try_from(head) {
                header.emit(head);
            }
            if let Some(dest) = body.get_mut(..chunk.len()) {
                dest.copy_from_slice(chunk);
            }
            let len = (HEADER_LEN + chunk.len()).next_multiple_of(4);
            (self.emit)(out.get(..len).unwrap_or_default());
            octets += len;
        }
        ControlOutcome::Answered(Answer {
            opcode: request.opcode,
            error: None,
            fragments,
            octets,
            truncated,
        })
    }

    /// The header fields every fragment shares: the request's version, opcode, sequence and
    /// association; the system leap; R set.
    fn reply_header(&self, request: &ControlHeader) -> ControlHeader {
        ControlHeader {
            leap: self.snapshot.system.leap,
            version: request.version,
            mode: Mode::Control,
            response: true,
            error: false,
            more: false,
            opcode: request.opcode,
            sequence: request.sequence,
            status: 0,
            association: request.association,
            offset: 0,
            count: 0,
        }
    }
}
