//! The time server: a request, its arrival time and the system state in; a reply or a counted
//! drop out (RFC 5905 §8–§9 "fast transmit", RFC 4330 §5).
//!
//! [`Server::handle`] is the whole per-request path. It allocates nothing, writes the reply into
//! the caller's buffer, and reads the transmit time through a callback as the very last step so
//! that T3 is taken as late as possible. A reply is never longer than its request.

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::access::{AccessTable, RestrictFlags};
use crate::packet::{HEADER_LEN, Mode, NtpHeader, Packet, ParseError};
use crate::system::SystemState;
use crate::time::NtpTimestamp;

/// What the caller knows about a received datagram besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestMeta {
    /// Where it came from.
    pub source: SocketAddr,
    /// The local address it was sent to, if the socket reports it.
    pub destination: Option<IpAddr>,
    /// T2: when it arrived (kernel receive timestamp when available).
    pub receive_time: NtpTimestamp,
    /// The datagram did not fit the receive buffer and was cut short.
    pub truncated: bool,
}

/// The outcome of [`Server::handle`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the first `len` octets of the output buffer back to the source.
    Reply(usize),
    /// Send nothing; the reason has been counted.
    Drop(DropReason),
}

/// Why a datagram got no reply. Every dropped datagram is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Shorter than an NTP header (or empty).
    TooShort,
    /// Version 0 or 5–7.
    BadVersion,
    /// A mode the server does not answer: 0 (except NTPv1), 2, 4 or 5.
    UnexpectedMode,
    /// Mode 6 (ntpq) while no control responder handles it.
    ControlMode,
    /// Mode 7 (ntpdc), never answered.
    PrivateMode,
    /// Extension fields or a trailer that do not parse.
    Malformed,
    /// Larger than the receive buffer.
    Oversized,
    /// Source port 0, which no real client uses.
    SourcePortZero,
    /// The source matches a `restrict … ignore` entry.
    RestrictedIgnore,
    /// The source matches a `restrict … noserve` entry.
    RestrictedNoserve,
    /// `restrict … version` and the request is not NTPv4.
    RestrictedVersion,
    /// Sent to a local address excluded by `interface ignore|drop`.
    InterfaceIgnored,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [Self; 12] = [
        Self::TooShort,
        Self::BadVersion,
        Self::UnexpectedMode,
        Self::ControlMode,
        Self::PrivateMode,
        Self::Malformed,
        Self::Oversized,
        Self::SourcePortZero,
        Self::RestrictedIgnore,
        Self::RestrictedNoserve,
        Self::RestrictedVersion,
        Self::InterfaceIgnored,
    ];

    /// A stable short name for logs and statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TooShort => "too-short",
            Self::BadVersion => "bad-version",
            Self::UnexpectedMode => "unexpected-mode",
            Self::ControlMode => "control-mode",
            Self::PrivateMode => "private-mode",
            Self::Malformed => "malformed",
            Self::Oversized => "oversized",
            Self::SourcePortZero => "source-port-zero",
            Self::RestrictedIgnore => "restricted-ignore",
            Self::RestrictedNoserve => "restricted-noserve",
            Self::RestrictedVersion => "restricted-version",
            Self::InterfaceIgnored => "interface-ignored",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::TooShort => 0,
            Self::BadVersion => 1,
            Self::UnexpectedMode => 2,
            Self::ControlMode => 3,
            Self::PrivateMode => 4,
            Self::Malformed => 5,
            Self::Oversized => 6,
            Self::SourcePortZero => 7,
            Self::RestrictedIgnore => 8,
            Self::RestrictedNoserve => 9,
            Self::RestrictedVersion => 10,
            Self::InterfaceIgnored => 11,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<ParseError> for DropReason {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::TooShort { .. } => Self::TooShort,
            ParseError::BadVersion { .. } => Self::BadVersion,
            ParseError::NotNtp {
                mode: Mode::Control,
            } => Self::ControlMode,
            ParseError::NotNtp { .. } => Self::PrivateMode,
            _ => Self::Malformed,
        }
    }
}

/// Request and drop counters of one server. Each worker thread owns one and is its only writer;
/// the main loop reads them (relaxed atomics: exact totals, no ordering needed).
#[derive(Debug, Default)]
pub struct ServerCounters {
    received: AtomicU64,
    replied: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl ServerCounters {
    /// A copy of the current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let mut dropped = [0; DropReason::ALL.len()];
        for (d, a) in dropped.iter_mut().zip(&self.dropped) {
            *d = a.load(Ordering::Relaxed);
        }
        CounterSnapshot {
            received: self.received.load(Ordering::Relaxed),
            replied: self.replied.load(Ordering::Relaxed),
            dropped,
        }
    }

    fn bump(counter: &AtomicU64) {
        // Single writer: a load and a store are enough and avoid a locked instruction.
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// Counts a received datagram.
    pub fn count_received(&self) {
        Self::bump(&self.received);
    }

    /// Counts a sent reply.
    pub fn count_replied(&self) {
        Self::bump(&self.replied);
    }

    /// Counts a dropped datagram.
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(c) = self.dropped.get(reason.index()) {
            Self::bump(c);
        }
    }
}

/// Counter values at one moment; several can be summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Datagrams received.
    pub received: u64,
    /// Replies sent.
    pub replied: u64,
    dropped: [u64; DropReason::ALL.len()],
}

impl CounterSnapshot {
    /// Drops for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Adds another snapshot's counts to this one.
    pub fn accumulate(&mut self, other: &Self) {
        self.received += other.received;
        self.replied += other.replied;
        for (a, b) in self.dropped.iter_mut().zip(&other.dropped) {
            *a += b;
        }
    }
}

/// The stateless NTP server.
#[derive(Debug, Default)]
pub struct Server {
    access: AccessTable,
    counters: ServerCounters,
}

impl Server {
    /// A server applying the given restrict table.
    pub fn new(access: AccessTable) -> Self {
        Self {
            access,
            counters: ServerCounters::default(),
        }
    }

    /// The counters this server updates.
    pub fn counters(&self) -> &ServerCounters {
        &self.counters
    }

    /// Counts a datagram the caller dropped before handing it over (for example because of
    /// the local address it was sent to).
    pub fn count_external_drop(&self, reason: DropReason) -> Action {
        self.counters.count_received();
        self.counters.count_drop(reason);
        Action::Drop(reason)
    }

    /// Handles one datagram. `out` should be at least [`HEADER_LEN`] + 4 octets; the reply is
    /// written to its start. `transmit_time` is called once, last, only if there is a reply.
    pub fn handle(
        &self,
        meta: &RequestMeta,
        request: &[u8],
        system: &SystemState,
        out: &mut [u8],
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Action {
        self.counters.count_received();
        let action = self.decide(meta, request, system, out, transmit_time);
        match action {
            Action::Reply(_) => self.counters.count_replied(),
            Action::Drop(reason) => self.counters.count_drop(reason),
        }
        action
    }

    fn decide(
        &self,
        meta: &RequestMeta,
        request: &[u8],
        system: &SystemState,
        out: &mut [u8],
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Action {
        if meta.truncated {
            return Action::Drop(DropReason::Oversized);
        }
        if meta.source.port() == 0 {
            return Action::Drop(DropReason::SourcePortZero);
        }
        let Some(&first) = request.first() else {
            return Action::Drop(DropReason::TooShort);
        };
        let flags = self.access.lookup(&meta.source).flags;
        if flags.contains(RestrictFlags::IGNORE) {
            return Action::Drop(DropReason::RestrictedIgnore);
        }
        // Modes 6 and 7 have their own layouts: classify them before parsing as NTP.
        match Mode::from_bits(first) {
            Mode::Private => return Action::Drop(DropReason::PrivateMode),
            Mode::Control => return Action::Drop(DropReason::ControlMode),
            _ => {}
        }
        let packet = match Packet::parse(request) {
            Ok(p) => p,
            Err(e) => return Action::Drop(e.into()),
        };
        let header = &packet.header;
        let reply_mode = match (header.mode, header.version) {
            (Mode::Client, _) | (Mode::Reserved, 1) => Mode::Server,
            // A symmetric active peer we have no association with gets a stateless passive
            // reply, as ntpd gives Windows w32time; no association is mobilised.
            (Mode::SymmetricActive, _) => Mode::SymmetricPassive,
            _ => return Action::Drop(DropReason::UnexpectedMode),
        };
        if flags.contains(RestrictFlags::NOSERVE) {
            return Action::Drop(DropReason::RestrictedNoserve);
        }
        if flags.contains(RestrictFlags::VERSION) && header.version != 4 {
            return Action::Drop(DropReason::RestrictedVersion);
        }
        // A MAC we cannot verify (no keys yet) is answered with a crypto-NAK: a bare zero key
        // id after the header (RFC 5905 §7.5). Either way the reply is no longer than the request.
        let reply_len = if packet.mac.is_some() {
            HEADER_LEN + 4
        } else {
            HEADER_LEN
        };
        let Some(out) = out.get_mut(..reply_len) else {
            return Action::Drop(DropReason::Oversized);
        };
        let (head, nak) = out.split_at_mut(HEADER_LEN);
        nak.fill(0);
        let mut reply = NtpHeader {
            leap: system.leap,
            version: header.version,
            mode: reply_mode,
            stratum: system.wire_stratum(),
            poll: header.poll,
            precision: system.precision,
            root_delay: system.root_delay.to_short(),
            root_dispersion: system.root_dispersion_at(meta.receive_time).to_short(),
            reference_id: system.reference_id,
            reference_timestamp: system.reference_time,
            origin_timestamp: header.transmit_timestamp,
            receive_timestamp: meta.receive_time,
            transmit_timestamp: NtpTimestamp::ZERO,
        };
        reply.transmit_timestamp = transmit_time();
        if let Ok(head) = <&mut [u8; HEADER_LEN]>::try_from(head) {
            reply.emit(head);
        }
        Action::Reply(reply_len)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::access::RestrictEntry;
    use crate::packet::{Leap, ReferenceId};
    use crate::time::{Log2Seconds, NtpDuration};

    const T2: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0x8000_0000);
    const T3: NtpTimestamp = NtpTimestamp::from_parts(0xec00_0000, 0x8000_1000);

    fn meta() -> RequestMeta {
        RequestMeta {
            source: "192.0.2.7:40000".parse().unwrap(),
            destination: None,
            receive_time: T2,
            truncated: false,
        }
    }

    fn synced() -> SystemState {
        SystemState {
            leap: Leap::NoWarning,
            stratum: 3,
            precision: Log2Seconds::new(-24),
            root_delay: NtpDuration::from_seconds_f64(0.0015),
            root_dispersion: NtpDuration::from_seconds_f64(0.002),
            reference_id: ReferenceId::from_bytes([192, 0, 2, 1]),
            reference_time: NtpTimestamp::from_parts(0xebff_fff0, 0),
        }
    }

    fn request(version: u8, mode: Mode) -> Vec<u8> {
        let mut h = NtpHeader::new(version, mode);
        h.poll = Log2Seconds::new(6);
        h.transmit_timestamp = NtpTimestamp::from_bits(0x0123_4567_89ab_cdef);
        let mut b = [0u8; 48];
        h.emit(&mut b);
        b.to_vec()
    }

    fn answer(server: &Server, req: &[u8], state: &SystemState) -> Result<NtpHeader, DropReason> {
        let mut out = [0u8; 128];
        match server.handle(&meta(), req, state, &mut out, || T3) {
            Action::Reply(len) => {
                assert!(len <= req.len(), "reply longer than request");
                Ok(Packet::parse(&out[..len]).unwrap().header)
            }
            Action::Drop(r) => Err(r),
        }
    }

    #[test]
    fn client_request_gets_server_reply_with_copied_fields() {
        let server = Server::default();
        for version in 1..=4 {
            let reply = answer(&server, &request(version, Mode::Client), &synced()).unwrap();
            assert_eq!(reply.version, version);
            assert_eq!(reply.mode, Mode::Server);
            assert_eq!(reply.stratum, 3);
            assert_eq!(reply.poll.exponent(), 6);
            assert_eq!(reply.precision.exponent(), -24);
            assert_eq!(reply.origin_timestamp.to_bits(), 0x0123_4567_89ab_cdef);
            assert_eq!(reply.receive_timestamp, T2);
            assert_eq!(reply.transmit_timestamp, T3);
            assert_eq!(reply.reference_id.to_bytes(), [192, 0, 2, 1]);
        }
        assert_eq!(server.counters().snapshot().replied, 4);
    }

    #[test]
    fn root_dispersion_grows_with_the_age_of_the_last_update() {
        let reply = answer(&Server::default(), &request(4, Mode::Client), &synced()).unwrap();
        // 0.002 s + 16 s × 15 PPM = 0.00224 s.
        let disp = reply.root_dispersion.to_seconds_f64();
        assert!((disp - 0.00224).abs() < 2e-5, "{disp}");
    }

    #[test]
    fn unsynchronised_server_says_so() {
        let state = SystemState::unsynchronized(Log2Seconds::new(-20));
        let reply = answer(&Server::default(), &request(4, Mode::Client), &state).unwrap();
        assert_eq!(reply.leap, Leap::Unsynchronized);
        assert_eq!(reply.stratum, 0);
        assert_eq!(reply.reference_id, ReferenceId::INIT);
    }

    #[test]
    fn ntpv1_mode_0_is_a_request_but_mode_0_otherwise_is_not() {
        let server = Server::default();
        assert_eq!(
            answer(&server, &request(1, Mode::Reserved), &synced())
                .unwrap()
                .mode,
            Mode::Server
        );
        assert_eq!(
            answer(&server, &request(4, Mode::Reserved), &synced()),
            Err(DropReason::UnexpectedMode)
        );
    }

    #[test]
    fn symmetric_active_gets_a_stateless_passive_reply() {
        let reply = answer(
            &Server::default(),
            &request(4, Mode::SymmetricActive),
            &synced(),
        )
        .unwrap();
        assert_eq!(reply.mode, Mode::SymmetricPassive);
    }

    #[test]
    fn every_drop_is_counted_under_its_reason() {
        let server = Server::default();
        let mut bad_version = request(4, Mode::Client);
        bad_version[0] = (5 << 3) | 3;
        let mut mode7 = request(2, Mode::Client);
        mode7[0] = (2 << 3) | 7;
        let mut mode6 = request(2, Mode::Client);
        mode6[0] = (2 << 3) | 6;
        let mut bad_ef = request(4, Mode::Client);
        bad_ef.extend_from_slice(&[0, 1, 0, 9, 0, 0, 0]);
        let cases: [(&[u8], DropReason); 8] = [
            (&[], DropReason::TooShort),
            (&request(4, Mode::Client)[..47], DropReason::TooShort),
            (&bad_version, DropReason::BadVersion),
            (&mode7, DropReason::PrivateMode),
            (&mode6, DropReason::ControlMode),
            (&request(4, Mode::Server), DropReason::UnexpectedMode),
            (&request(4, Mode::Broadcast), DropReason::UnexpectedMode),
            (&bad_ef, DropReason::Malformed),
        ];
        for (bytes, reason) in cases {
            assert_eq!(answer(&server, bytes, &synced()), Err(reason), "{bytes:?}");
        }
        let snap = server.counters().snapshot();
        assert_eq!(snap.received, 8);
        assert_eq!(snap.dropped_total(), 8);
        assert_eq!(snap.dropped(DropReason::TooShort), 2);
    }

    #[test]
    fn restrict_ignore_and_noserve_are_honoured() {
        let mut table = AccessTable::new();
        table.add(RestrictEntry::host(
            "192.0.2.7".parse().unwrap(),
            RestrictFlags::NOSERVE,
        ));
        let server = Server::new(table);
        assert_eq!(
            answer(&server, &request(4, Mode::Client), &synced()),
            Err(DropReason::RestrictedNoserve)
        );
        let mut table = AccessTable::new();
        table.add_default(true, true, RestrictFlags::IGNORE);
        let server = Server::new(table);
        assert_eq!(
            answer(&server, &request(4, Mode::Client), &synced()),
            Err(DropReason::RestrictedIgnore)
        );
    }

    #[test]
    fn unverifiable_mac_gets_a_crypto_nak_no_longer_than_the_request() {
        let mut req = request(4, Mode::Client);
        req.extend_from_slice(&[0, 0, 0, 5]);
        req.extend_from_slice(&[0x55; 16]);
        let mut out = [0xffu8; 128];
        let Action::Reply(len) =
            Server::default().handle(&meta(), &req, &synced(), &mut out, || T3)
        else {
            panic!("no reply");
        };
        assert_eq!(len, 52);
        assert_eq!(&out[48..52], &[0, 0, 0, 0]);
    }

    #[test]
    fn truncated_and_port_zero_datagrams_are_dropped() {
        let server = Server::default();
        let mut out = [0u8; 64];
        let mut m = meta();
        m.truncated = true;
        assert_eq!(
            server.handle(&m, &request(4, Mode::Client), &synced(), &mut out, || T3),
            Action::Drop(DropReason::Oversized)
        );
        let mut m = meta();
        m.source.set_port(0);
        assert_eq!(
            server.handle(&m, &request(4, Mode::Client), &synced(), &mut out, || T3),
            Action::Drop(DropReason::SourcePortZero)
        );
    }

    proptest! {
        #[test]
        fn no_input_panics_or_gets_a_longer_reply(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = [0u8; 256];
            if let Action::Reply(len) = Server::default().handle(&meta(), &bytes, &synced(), &mut out, || T3) {
                prop_assert!(len <= bytes.len());
            }
        }
    }
}
