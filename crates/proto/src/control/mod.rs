//! NTP mode 6, the control protocol `ntpq` speaks (RFC 9327; the behaviour of ntpd's and
//! NTPsec's `ntp_control.c`): a read-only responder for the daemon, and the request encoder
//! and response reassembler for sundial's `ntpq`.
//!
//! ```text
//!  daemon:  datagram ──▶ respond(request, access, &ControlSnapshot, now, emit) ──▶ emit(fragment)…
//!  ntpq:    ClientRequest::encode ──▶ socket ──▶ Reassembler::handle(datagram)… ──▶ ControlResponse
//!                                                  parse_varlist / parse_association_list ◀──┘
//! ```
//!
//! The daemon publishes a [`ControlSnapshot`] — plain typed copies of its system and peer
//! variables — and whichever thread receives a mode 6 datagram calls [`respond`] with it.
//! Parsing is in two stages ([`RequestFrame::parse`] checks the framing, [`Request::from_frame`]
//! types the request), every length is checked before use, and no input can make it panic or
//! send more than [`MAX_REPLY_FRAGMENTS`] fragments.
//!
//! Security (security.md §2.1): nothing can be changed over mode 6 — writes, configuration and
//! traps are refused; the origin and transmit timestamps of associations are never reported
//! (CVE-2015-8139); text another party chose (refids, names) cannot forge variables. Rate
//! limiting and the `restrict` lookup are the caller's; [`ControlAccess`] carries the result.
//!
//! A daemon answering ntpq:
//!
//! ```
//! use sundial_proto::control::{ControlAccess, ControlOutcome, ControlSnapshot, respond};
//! use sundial_proto::time::NtpTimestamp;
//!
//! let snapshot = ControlSnapshot::default(); // published by the main loop
//! let request = [0x16, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]; // `ntpq -c rv`
//! let mut replies = Vec::new();
//! let outcome = respond(
//!     &request,
//!     ControlAccess::READ,
//!     &snapshot,
//!     NtpTimestamp::from_parts(0xec00_0000, 0), // the `clock` variable: now
//!     &mut |fragment| replies.push(fragment.to_vec()), // send_to(source)
//! );
//! assert!(matches!(outcome, ControlOutcome::Answered(_)));
//! assert_eq!(replies.len(), 1);
//! ```

mod auth;
mod client;
mod header;
mod kernel;
mod mru;
mod ntsinfo;
mod request;
mod respond;
mod snapshot;
mod stats;
mod status;
mod values;
mod varlist;
mod vars;

#[cfg(test)]
mod tests;

pub use auth::AuthVars;
pub use client::{
    CLIENT_VERSION, ClientRequest, ControlResponse, EncodeError, FragmentDrop, MAX_RESPONSE_DATA,
    MAX_RESPONSE_FRAGMENTS, Progress, Reassembler, ResponseError, parse_association_list,
};
pub use header::{
    ControlHeader, ErrorCode, HEADER_LEN, MAX_DATA_LEN, MAX_DATAGRAM_LEN, Opcode, split_header,
};
pub use kernel::{KernelVars, status_flags};
pub use mru::{
    MruContext, MruQuery, NONCE_LIFETIME_S, NONCE_REPLY_OCTETS, Nonce, ntpsec_restrict_bits,
};
pub use ntsinfo::NtsVars;
pub use request::{
    IgnoreReason, MAX_NAME_LEN, MAX_NAMES, NameList, Request, RequestError, RequestFrame,
};
pub use respond::{
    Answer, ControlAccess, ControlOutcome, MAX_REPLY_DATA, MAX_REPLY_FRAGMENTS, fuzz_respond,
    respond, respond_with_mru,
};
pub use snapshot::{AssociationId, ClockVars, ControlSnapshot, FilterStage, PeerVars, SystemVars};
pub use stats::{StatsCategory, Sysstats, dropped_variable};
pub use status::{
    ClockSource, ClockStatus, PeerStatus, SystemStatus, clock_event_name, leap_name,
    peer_event_name, system_event_name,
};
pub use values::civil_from_days;
pub use varlist::{parse_varlist, unquote};
