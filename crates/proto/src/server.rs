//! The time server: a request, its arrival time and the system state in; a reply or a counted
//! drop out (RFC 5905 §8–§9 "fast transmit", RFC 4330 §5).
//!
//! [`Server::handle`] is the whole per-request path. It allocates nothing, writes the reply into
//! the caller's buffer, and reads the transmit time through a callback as the very last step so
//! that T3 is taken as late as possible. A reply is never longer than its request.

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::access::{AccessTable, RestrictFlags};
use crate::control::{ControlAccess, ControlOutcome, ControlSnapshot, respond};
use crate::packet::{HEADER_LEN, Leap, Mode, NtpHeader, Packet, ParseError, ReferenceId};
use crate::ratelimit::{RateLimiter, Verdict};
use crate::system::SystemState;
use crate::time::{Log2Seconds, MonoTime, NtpTimestamp};

/// What the caller knows about a received datagram besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestMeta {
    /// Where it came from.
    pub source: SocketAddr,
    /// The local address it was sent to, if the socket reports it.
    pub destination: Option<IpAddr>,
    /// T2: when it arrived (kernel receive timestamp when available).
    pub receive_time: NtpTimestamp,
    /// When it arrived on the monotonic clock: rate limits measure intervals with it, so a
    /// step of the served clock never makes clients look faster or slower than they are.
    pub monotonic: MonoTime,
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

/// What [`Server::decide`] concluded, before counting: a kiss is a reply counted apart.
enum Decision {
    Reply(usize),
    Kiss(usize),
    Drop(DropReason),
}

impl From<Action> for Decision {
    fn from(a: Action) -> Self {
        match a {
            Action::Reply(len) => Self::Reply(len),
            Action::Drop(reason) => Self::Drop(reason),
        }
    }
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
    /// Mode 6 (ntpq) that the control responder ignored (malformed framing), or that no
    /// control responder handles.
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
    /// `restrict … notrust` and the request carries no MAC.
    RestrictedNotrust,
    /// Sent to a local address excluded by `interface ignore|drop`.
    InterfaceIgnored,
    /// Over the `restrict … limited` rate (a RATE kiss may have been due but was itself limited),
    /// or over the always-on mode 6 budget.
    RateLimited,
    /// Mode 6 from a source that may not query (`noquery`, or not loopback without a
    /// `restrict default` line).
    ControlRefused,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [Self; 15] = [
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
        Self::RateLimited,
        Self::ControlRefused,
        Self::RestrictedNotrust,
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
            Self::RestrictedNotrust => "restricted-notrust",
            Self::InterfaceIgnored => "interface-ignored",
            Self::RateLimited => "rate-limited",
            Self::ControlRefused => "control-refused",
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
            Self::RateLimited => 12,
            Self::ControlRefused => 13,
            Self::RestrictedNotrust => 14,
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

/// Versions a datagram's version field can hold (three bits).
const VERSIONS: usize = 8;

/// Modes a datagram's mode field can hold (three bits).
const MODES: usize = 8;

/// Request and drop counters of one server. Each worker thread owns one and is its only writer;
/// the main loop reads them (relaxed atomics: exact totals, no ordering needed).
///
/// Every datagram is counted once in `received` and then exactly once more: as a reply
/// (`replied`) or as a drop under its [`DropReason`]. The other counters break those two down.
#[derive(Debug, Default)]
pub struct ServerCounters {
    received: AtomicU64,
    replied: AtomicU64,
    kisses: AtomicU64,
    crypto_naks: AtomicU64,
    control_requests: AtomicU64,
    control_replies: AtomicU64,
    versions: [AtomicU64; VERSIONS],
    ntpv1_modes: [AtomicU64; MODES],
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl ServerCounters {
    /// A copy of the current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        fn load_all<const N: usize>(counters: &[AtomicU64; N]) -> [u64; N] {
            let mut values = [0; N];
            for (v, a) in values.iter_mut().zip(counters) {
                *v = a.load(Ordering::Relaxed);
            }
            values
        }
        CounterSnapshot {
            received: self.received.load(Ordering::Relaxed),
            replied: self.replied.load(Ordering::Relaxed),
            kisses: self.kisses.load(Ordering::Relaxed),
            crypto_naks: self.crypto_naks.load(Ordering::Relaxed),
            control_requests: self.control_requests.load(Ordering::Relaxed),
            control_replies: self.control_replies.load(Ordering::Relaxed),
            versions: load_all(&self.versions),
            ntpv1_modes: load_all(&self.ntpv1_modes),
            dropped: load_all(&self.dropped),
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

    /// Counts the version (and, for NTPv1, the mode) of a datagram on the time-service path
    /// from its first octet.
    fn count_version(&self, first: u8) {
        let version = usize::from((first >> 3) & 0x07);
        if let Some(c) = self.versions.get(version) {
            Self::bump(c);
        }
        if version == 1
            && let Some(c) = self.ntpv1_modes.get(usize::from(first & 0x07))
        {
            Self::bump(c);
        }
    }
}

/// Counter values at one moment; several can be summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Datagrams received (mode 6 included).
    pub received: u64,
    /// Datagrams answered (kisses, crypto-NAKs and mode 6 included; a mode 6 reply of several
    /// fragments counts once).
    pub replied: u64,
    /// RATE kisses among the replies.
    pub kisses: u64,
    /// Time requests with a MAC the server could not verify, answered with a crypto-NAK (among
    /// the replies).
    pub crypto_naks: u64,
    /// Mode 6 (ntpq) datagrams received, whatever became of them (among `received`).
    pub control_requests: u64,
    /// Mode 6 requests answered (among the replies).
    pub control_replies: u64,
    /// Datagrams of every mode but 6 handed to [`Server::handle`], by version number (0–7).
    versions: [u64; VERSIONS],
    /// NTPv1 datagrams by mode (0–7).
    ntpv1_modes: [u64; MODES],
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

    /// Datagrams of every mode but 6 handed to [`Server::handle`] (the time-service path) whose
    /// version field is `version` (0–7; larger values have no datagrams).
    pub fn by_version(&self, version: u8) -> u64 {
        self.versions
            .get(usize::from(version))
            .copied()
            .unwrap_or(0)
    }

    /// NTPv1 datagrams of mode `mode`.
    pub fn ntpv1_by_mode(&self, mode: Mode) -> u64 {
        self.ntpv1_modes
            .get(usize::from(mode.bits()))
            .copied()
            .unwrap_or(0)
    }

    /// Adds another snapshot's counts to this one.
    pub fn accumulate(&mut self, other: &Self) {
        self.received += other.received;
        self.replied += other.replied;
        self.kisses += other.kisses;
        self.crypto_naks += other.crypto_naks;
        self.control_requests += other.control_requests;
        self.control_replies += other.control_replies;
        for (a, b) in self
            .versions
            .iter_mut()
            .chain(self.ntpv1_modes.iter_mut())
            .chain(self.dropped.iter_mut())
            .zip(
                other
                    .versions
                    .iter()
                    .chain(&other.ntpv1_modes)
                    .chain(&other.dropped),
            )
        {
            *a += b;
        }
    }
}

/// The stateless NTP server.
#[derive(Debug, Default)]
pub struct Server {
    access: AccessTable,
    counters: Arc<ServerCounters>,
    limiter: Option<Arc<RateLimiter>>,
    /// xorshift state for the rate limiter's random leak (one writer: this server's thread).
    random: AtomicU64,
}

impl Server {
    /// A server applying the given restrict table.
    pub fn new(access: AccessTable) -> Self {
        Self {
            access,
            counters: Arc::default(),
            limiter: None,
            random: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        }
    }

    /// A server that also rate-limits sources whose restrict entry has `limited`, with the
    /// client table `limiter` (shared by all server threads) and a random `seed` for the leak.
    pub fn with_limiter(access: AccessTable, limiter: Arc<RateLimiter>, seed: u64) -> Self {
        Self {
            limiter: Some(limiter),
            random: AtomicU64::new(seed | 1),
            ..Self::new(access)
        }
    }

    /// The counters this server updates.
    pub fn counters(&self) -> &ServerCounters {
        &self.counters
    }

    /// A handle on the counters for another thread (the main loop sums every server thread's
    /// counters for ntpq and the shutdown log).
    pub fn counters_handle(&self) -> Arc<ServerCounters> {
        Arc::clone(&self.counters)
    }

    /// Counts a datagram the caller dropped before handing it over (for example because of
    /// the local address it was sent to).
    pub fn count_external_drop(&self, reason: DropReason) -> Action {
        self.counters.count_received();
        self.counters.count_drop(reason);
        Action::Drop(reason)
    }

    /// Handles one mode 6 (ntpq) request: checks that the source may query at all (see
    /// [`AccessTable::control_allowed`]) and is within its own and the server-wide mode 6
    /// budget, then lets the control responder answer from `snapshot`, emitting each reply
    /// fragment through `emit`; only a loopback source may get more octets than it sent.
    /// Returns [`Action::Reply`] with the total octets sent, or the counted drop.
    pub fn handle_control(
        &self,
        meta: &RequestMeta,
        request: &[u8],
        snapshot: &ControlSnapshot,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Action {
        self.handle_control_with(&self.access, meta, request, snapshot, emit)
    }

    /// [`Self::handle_control`] under a restrict table the caller supplies (the daemon
    /// publishes the current one, which grows entries as associations are mobilised).
    pub fn handle_control_with(
        &self,
        access: &AccessTable,
        meta: &RequestMeta,
        request: &[u8],
        snapshot: &ControlSnapshot,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Action {
        self.counters.count_received();
        ServerCounters::bump(&self.counters.control_requests);
        let drop = |reason| {
            self.counters.count_drop(reason);
            Action::Drop(reason)
        };
        if meta.truncated {
            return drop(DropReason::Oversized);
        }
        if meta.source.port() == 0 {
            return drop(DropReason::SourcePortZero);
        }
        let flags = access.lookup(&meta.source).flags;
        if flags.contains(RestrictFlags::IGNORE) {
            return drop(DropReason::RestrictedIgnore);
        }
        if !access.control_allowed(&meta.source) {
            return drop(DropReason::ControlRefused);
        }
        if let Some(limiter) = &self.limiter
            && !limiter.check_control(meta.source.ip(), meta.monotonic)
        {
            return drop(DropReason::RateLimited);
        }
        // Only loopback gets replies longer than the request: any other source address may be
        // spoofed, and sundial has no address proof (REQ_NONCE) outside mrulist, which it does
        // not serve. Elsewhere a longer answer becomes a 12-octet PERMISSION error.
        let mut access_for_source = ControlAccess::from_restrict(flags);
        if !meta.source.ip().to_canonical().is_loopback() {
            access_for_source = access_for_source.within(request.len());
        }
        match respond(
            request,
            access_for_source,
            snapshot,
            meta.receive_time,
            emit,
        ) {
            ControlOutcome::Answered(answer) => {
                if let Some(limiter) = &self.limiter {
                    limiter.charge_control(answer.octets, meta.monotonic);
                }
                self.counters.count_replied();
                ServerCounters::bump(&self.counters.control_replies);
                Action::Reply(answer.octets)
            }
            ControlOutcome::Ignored(_) => drop(DropReason::ControlMode),
        }
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
        self.handle_with(&self.access, meta, request, system, out, transmit_time)
    }

    /// [`Self::handle`] under a restrict table the caller supplies (the daemon publishes the
    /// current one, which grows entries as associations are mobilised).
    pub fn handle_with(
        &self,
        access: &AccessTable,
        meta: &RequestMeta,
        request: &[u8],
        system: &SystemState,
        out: &mut [u8],
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Action {
        self.counters.count_received();
        if let Some(&first) = request.first()
            && Mode::from_bits(first) != Mode::Control
        {
            self.counters.count_version(first);
        }
        match self.decide(access, meta, request, system, out, transmit_time) {
            Decision::Reply(len) => {
                self.counters.count_replied();
                Action::Reply(len)
            }
            Decision::Kiss(len) => {
                self.counters.count_replied();
                ServerCounters::bump(&self.counters.kisses);
                Action::Reply(len)
            }
            Decision::Drop(reason) => {
                self.counters.count_drop(reason);
                Action::Drop(reason)
            }
        }
    }

    fn decide(
        &self,
        access: &AccessTable,
        meta: &RequestMeta,
        request: &[u8],
        system: &SystemState,
        out: &mut [u8],
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Decision {
        if meta.truncated {
            return Decision::Drop(DropReason::Oversized);
        }
        if meta.source.port() == 0 {
            return Decision::Drop(DropReason::SourcePortZero);
        }
        let Some(&first) = request.first() else {
            return Decision::Drop(DropReason::TooShort);
        };
        let flags = access.lookup(&meta.source).flags;
        if flags.contains(RestrictFlags::IGNORE) {
            return Decision::Drop(DropReason::RestrictedIgnore);
        }
        // Modes 6 and 7 have their own layouts: classify them before parsing as NTP.
        match Mode::from_bits(first) {
            Mode::Private => return Decision::Drop(DropReason::PrivateMode),
            Mode::Control => return Decision::Drop(DropReason::ControlMode),
            _ => {}
        }
        let packet = match Packet::parse(request) {
            Ok(p) => p,
            Err(e) => return Decision::Drop(e.into()),
        };
        let header = &packet.header;
        let reply_mode = match (header.mode, header.version) {
            (Mode::Client, _) | (Mode::Reserved, 1) => Mode::Server,
            // A symmetric active peer we have no association with gets a stateless passive
            // reply, as ntpd gives Windows w32time; no association is mobilised.
            (Mode::SymmetricActive, _) => Mode::SymmetricPassive,
            _ => return Decision::Drop(DropReason::UnexpectedMode),
        };
        if flags.contains(RestrictFlags::NOSERVE) {
            return Decision::Drop(DropReason::RestrictedNoserve);
        }
        if flags.contains(RestrictFlags::NOTRUST) && packet.mac.is_none() {
            return Decision::Drop(DropReason::RestrictedNotrust);
        }
        if flags.contains(RestrictFlags::VERSION) && header.version != 4 {
            return Decision::Drop(DropReason::RestrictedVersion);
        }
        if flags.contains(RestrictFlags::LIMITED)
            && let Some(limiter) = &self.limiter
        {
            let kod = flags.contains(RestrictFlags::KOD);
            match limiter.check(meta.source.ip(), meta.monotonic, kod, self.next_random()) {
                Verdict::Allow => {}
                Verdict::Drop => return Decision::Drop(DropReason::RateLimited),
                Verdict::Kiss => {
                    let average =
                        Log2Seconds::ceil_from_seconds(limiter.params().average.as_secs_f64());
                    return kiss(header, average, out);
                }
            }
        }
        // A MAC we cannot verify (no keys yet) is answered with a crypto-NAK: a bare zero key
        // id after the header (RFC 5905 §7.5). Either way the reply is no longer than the request.
        let reply_len = if packet.mac.is_some() {
            HEADER_LEN + 4
        } else {
            HEADER_LEN
        };
        let Some(out) = out.get_mut(..reply_len) else {
            return Decision::Drop(DropReason::Oversized);
        };
        if packet.mac.is_some() {
            ServerCounters::bump(&self.counters.crypto_naks);
        }
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
        Decision::Reply(reply_len)
    }
}

impl Server {
    fn next_random(&self) -> u32 {
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random.store(x, Ordering::Relaxed);
        // The high half of xorshift64 is the better half; after the shift it fits 32 bits.
        (x >> 32) as u32
    }
}

/// A RATE kiss-o'-death (RFC 5905 §7.4, as ntpd sends it): LI=3, stratum 0, refid RATE, the
/// poll raised to at least the average interval, and every timestamp set to the request's own
/// transmit timestamp, so the kiss reveals nothing about the server's clock. 48 octets, never
/// more than the request.
fn kiss(request: &NtpHeader, average: Log2Seconds, out: &mut [u8]) -> Decision {
    let Some(head) = out
        .get_mut(..HEADER_LEN)
        .and_then(|h| <&mut [u8; HEADER_LEN]>::try_from(h).ok())
    else {
        return Decision::Drop(DropReason::Oversized);
    };
    let xmt = request.transmit_timestamp;
    NtpHeader {
        leap: Leap::Unsynchronized,
        version: request.version,
        mode: Mode::Server,
        stratum: 0,
        poll: request.poll.max(average),
        precision: request.precision,
        root_delay: request.root_delay,
        root_dispersion: request.root_dispersion,
        reference_id: ReferenceId::RATE,
        reference_timestamp: request.reference_timestamp,
        origin_timestamp: xmt,
        receive_timestamp: xmt,
        transmit_timestamp: xmt,
    }
    .emit(head);
    Decision::Kiss(HEADER_LEN)
}

#[cfg(test)]
#[path = "server_amplification.rs"]
mod amplification;

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
