//! The time server: a request, its arrival time and the system state in; a reply or a counted
//! drop out (RFC 5905 §8–§9 "fast transmit", RFC 4330 §5).
//!
//! [`Server::handle`] is the whole per-request path. It allocates nothing, writes the reply into
//! the caller's buffer, and reads the transmit time through a callback as the very last step so
//! that T3 is taken as late as possible. A reply is never longer than its request.

use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::access::{AccessTable, RestrictFlags};
use crate::auth::{self, Authentication, KeyRing, NoKeys};
use crate::control::{
    ControlAccess, ControlOutcome, ControlSnapshot, MruContext, ntpsec_restrict_bits,
    respond_with_mru,
};
use crate::counters::{DropReason, ServerCounters};
use crate::nts::{self, CookieKeys};
use crate::packet::{HEADER_LEN, Leap, Mode, NtpHeader, Packet, ReferenceId};
use crate::ratelimit::{Located, RateLimiter, Verdict};
use crate::siphash::SipKey;
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
    /// Where the source's entry lies in the client table ([`RateLimiter::locate`] on
    /// [`Server::client_table`]), if the caller found it already, so that the address is
    /// hashed once per request. Ignored unless it is for the source's address.
    pub client: Option<Located>,
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
    NtsReply(usize),
    /// An NTS NAK of this length; `true` when the cookie did not open (else the
    /// authenticator failed).
    NtsNak(usize, bool),
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

/// The rules a time request is served under: the restrict table and the trusted symmetric
/// keys in force. Both are arguments of every call rather than fields of [`Server`]: the
/// daemon publishes the current ones (the table grows entries as associations are mobilised;
/// keys are re-read on reload) and the server threads read them lock-free.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    /// The restrict table.
    pub access: &'a AccessTable,
    /// The trusted keys (see [`crate::auth`]).
    pub keys: &'a dyn KeyRing,
    /// The NTS cookie master keys, when the server answers NTS requests (`nts enable`).
    pub nts: Option<&'a CookieKeys>,
}

impl<'a> Policy<'a> {
    /// `access` without any keys: a request with a MAC gets a crypto-NAK.
    pub fn new(access: &'a AccessTable) -> Self {
        Self {
            access,
            keys: &NoKeys,
            nts: None,
        }
    }

    /// `access` with the trusted `keys`.
    pub fn with_keys(access: &'a AccessTable, keys: &'a dyn KeyRing) -> Self {
        Self {
            access,
            keys,
            nts: None,
        }
    }

    /// This policy, also answering NTS requests with cookies under `cookies`.
    pub fn with_nts(self, cookies: Option<&'a CookieKeys>) -> Self {
        Self {
            nts: cookies,
            ..self
        }
    }
}

impl core::fmt::Debug for Policy<'_> {
    /// The restrict table; never anything about the keys.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Policy")
            .field("access", self.access)
            .finish_non_exhaustive()
    }
}

/// The stateless NTP server.
#[derive(Debug, Default)]
pub struct Server {
    counters: Arc<ServerCounters>,
    limiter: Option<Arc<RateLimiter>>,
    /// The secret of the mrulist nonces (derived from the client table's, so every server
    /// thread accepts the nonces of every other).
    nonce_key: Option<SipKey>,
    /// xorshift state for the rate limiter's random leak (one writer: this server's thread).
    random: AtomicU64,
}

impl Server {
    /// A server without rate limiting.
    pub fn new() -> Self {
        Self {
            counters: Arc::default(),
            limiter: None,
            nonce_key: None,
            random: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        }
    }

    /// A server that also rate-limits sources whose restrict entry has `limited`, with the
    /// client table `limiter` (shared by all server threads) and a random `seed` for the leak.
    pub fn with_limiter(limiter: Arc<RateLimiter>, seed: u64) -> Self {
        Self {
            nonce_key: Some(limiter.derive_key(b"mrulist nonce")),
            limiter: Some(limiter),
            random: AtomicU64::new(seed | 1),
            ..Self::new()
        }
    }

    /// The client table this server notes every request in (shared with the other server
    /// threads), if it has one.
    pub fn client_table(&self) -> Option<&RateLimiter> {
        self.limiter.as_deref()
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

    /// Handles one mode 6 (ntpq) request under the restrict table `access`: checks that the
    /// source may query at all (see [`AccessTable::control_allowed`]) and is within its own and
    /// the server-wide mode 6 budget, then lets the control responder answer from `snapshot`,
    /// emitting each reply fragment through `emit`. Only a loopback source may get more octets
    /// than it sent, with two exceptions: the fixed 44-octet nonce reply, and the MRU list
    /// for a request whose nonce proves the source address (docs/SECURITY.md). Returns
    /// [`Action::Reply`] with the total octets sent, or the counted drop.
    pub fn handle_control(
        &self,
        access: &AccessTable,
        meta: &RequestMeta,
        request: &[u8],
        snapshot: &ControlSnapshot,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Action {
        self.counters.count_received();
        self.counters.count_control_request();
        if let Some(&first) = request.first() {
            self.counters.count_request(first);
        }
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
            && !limiter.check_control(located(limiter, meta), meta.monotonic)
        {
            return drop(DropReason::RateLimited);
        }
        if let Some(limiter) = &self.limiter {
            limiter.record(
                located(limiter, meta),
                meta.source.port(),
                meta.destination,
                meta.receive_time,
                meta.monotonic,
                request.first().copied().unwrap_or(0),
                ntpsec_restrict_bits(flags),
            );
        }
        // Only loopback gets replies longer than the request: any other source address may be
        // spoofed. The responder lifts the bound only for the nonce (fixed, 44 octets) and
        // for an MRU request whose nonce proves the address. Elsewhere a longer answer becomes
        // a 12-octet PERMISSION error.
        let mut access_for_source = ControlAccess::from_restrict(flags);
        if !meta.source.ip().to_canonical().is_loopback() {
            access_for_source = access_for_source.within(request.len());
        }
        let mru = match (&self.limiter, self.nonce_key) {
            (Some(table), Some(nonce_key)) => Some(MruContext {
                table,
                nonce_key,
                source: meta.source.ip(),
                monotonic: meta.monotonic,
            }),
            _ => None,
        };
        match respond_with_mru(
            request,
            access_for_source,
            snapshot,
            meta.receive_time,
            mru.as_ref(),
            emit,
        ) {
            ControlOutcome::Answered(answer) => {
                if let Some(limiter) = &self.limiter {
                    limiter.charge_control(answer.octets, meta.monotonic);
                }
                self.counters.count_replied();
                self.counters.count_control_reply();
                if let Some(&first) = request.first() {
                    self.counters.count_answered(first);
                }
                Action::Reply(answer.octets)
            }
            ControlOutcome::Ignored(_) => drop(DropReason::ControlMode),
        }
    }

    /// Handles one datagram under `policy`. `out` should be at least
    /// [`auth::MAX_AUTHENTICATED_LEN`] octets; the reply is written to its start.
    /// `transmit_time` is called once, last, only if the reply carries time.
    ///
    /// Symmetric keys (RFC 5905 §7.3, as ntpd): a request whose MAC verifies under a trusted
    /// key gets a reply with a MAC under the same key, of the same length; a request with any
    /// other MAC (unknown or untrusted key, wrong digest, a bare key id) gets a crypto-NAK
    /// without time. Under `restrict … notrust` only a request whose MAC verifies is answered
    /// at all. No reply is longer than its request.
    pub fn handle(
        &self,
        policy: &Policy<'_>,
        meta: &RequestMeta,
        request: &[u8],
        system: &SystemState,
        out: &mut [u8],
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Action {
        self.counters.count_received();
        if let Some(&first) = request.first() {
            self.counters.count_request(first);
            if Mode::from_bits(first) != Mode::Control {
                self.counters.count_version(first);
            }
        }
        // One restrict lookup serves the client table and the decision. The client table is
        // written first, so that nothing runs between reading T3 and sending the reply.
        let flags = policy.access.lookup(&meta.source).flags;
        self.record(flags, meta, request);
        let decision = self.decide(policy, flags, meta, request, system, out, transmit_time);
        if let (Some(&first), false) = (request.first(), matches!(decision, Decision::Drop(_))) {
            self.counters.count_answered(first);
        }
        match decision {
            Decision::Reply(len) => {
                self.counters.count_replied();
                Action::Reply(len)
            }
            Decision::Kiss(len) => {
                self.counters.count_replied();
                self.counters.count_kiss();
                Action::Reply(len)
            }
            Decision::NtsReply(len) => {
                self.counters.count_replied();
                self.counters.count_nts_reply();
                Action::Reply(len)
            }
            Decision::NtsNak(len, cookie_failed) => {
                self.counters.count_replied();
                self.counters.count_nts_nak(cookie_failed);
                Action::Reply(len)
            }
            Decision::Drop(reason) => {
                self.counters.count_drop(reason);
                Action::Drop(reason)
            }
        }
    }

    /// Notes a datagram in the client table for the MRU list (before the rate-limit check,
    /// which it leaves undisturbed: it does not touch the bucket's times).
    fn record(&self, flags: RestrictFlags, meta: &RequestMeta, request: &[u8]) {
        let (Some(limiter), Some(&first)) = (&self.limiter, request.first()) else {
            return;
        };
        if meta.source.port() == 0 || meta.truncated {
            return;
        }
        if flags.contains(RestrictFlags::IGNORE) {
            return;
        }
        limiter.record(
            located(limiter, meta),
            meta.source.port(),
            meta.destination,
            meta.receive_time,
            meta.monotonic,
            first,
            ntpsec_restrict_bits(flags),
        );
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the pieces of one request, all needed"
    )]
    fn decide(
        &self,
        policy: &Policy<'_>,
        flags: RestrictFlags,
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
        // Only a MAC that verifies under a trusted key is authentication: a trailer that merely
        // looks like one (a bare key id, an unknown key, a wrong digest) is not.
        let authentication = auth::authenticate(policy.keys, request, &packet);
        let nts = match policy
            .nts
            .map(|_| nts::ef::Request::find(&packet.extensions))
        {
            None | Some(Ok(None)) => None,
            Some(Err(_)) => return Decision::Drop(DropReason::NtsMalformed),
            Some(Ok(Some(request))) => Some(request),
        };
        // An NTS request counts as authenticated here: if its authenticator then fails it gets
        // an NTS NAK, which carries no time.
        if flags.contains(RestrictFlags::NOTRUST)
            && authentication.valid_key().is_none()
            && nts.is_none()
        {
            return Decision::Drop(DropReason::RestrictedNotrust);
        }
        if flags.contains(RestrictFlags::VERSION) && header.version != 4 {
            return Decision::Drop(DropReason::RestrictedVersion);
        }
        if flags.contains(RestrictFlags::LIMITED)
            && let Some(limiter) = &self.limiter
        {
            let kod = flags.contains(RestrictFlags::KOD);
            match limiter.check(
                located(limiter, meta),
                meta.monotonic,
                kod,
                self.next_random(),
            ) {
                Verdict::Allow => {}
                Verdict::Drop => return Decision::Drop(DropReason::RateLimited),
                Verdict::Kiss => {
                    let average =
                        Log2Seconds::ceil_from_seconds(limiter.params().average.as_secs_f64());
                    return kiss(header, average, out);
                }
            }
        }
        let key_id = match authentication {
            _ if nts.is_some() => None,
            Authentication::None => None,
            // The reply's digest is as long as the request's (a whole or a cut SHA-2 digest).
            Authentication::Valid { key_id } => {
                Some((key_id, packet.mac.map_or(0, |m| m.digest.len())))
            }
            Authentication::CryptoNak
            | Authentication::UnknownKey { .. }
            | Authentication::Mismatch { .. } => {
                let nak = crypto_nak(header, reply_mode, out);
                if matches!(nak, Decision::Reply(_)) {
                    self.counters.count_crypto_nak();
                }
                return nak;
            }
        };
        let Some(head) = out
            .get_mut(..HEADER_LEN)
            .and_then(|h| <&mut [u8; HEADER_LEN]>::try_from(h).ok())
        else {
            return Decision::Drop(DropReason::Oversized);
        };
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
        if let (Some(request_nts), Some(cookies)) = (nts, policy.nts) {
            return self.nts_reply(
                cookies,
                &request_nts,
                request,
                header,
                reply,
                out,
                transmit_time,
            );
        }
        reply.transmit_timestamp = transmit_time();
        reply.emit(head);
        match key_id {
            None => Decision::Reply(HEADER_LEN),
            // The same key and so the same digest length as the request's: never longer.
            Some((key_id, digest_len)) => {
                match auth::append_mac(policy.keys, key_id, digest_len, out, HEADER_LEN) {
                    Some(len) if len <= request.len() => Decision::Reply(len),
                    _ => Decision::Drop(DropReason::Oversized),
                }
            }
        }
    }
}

impl Server {
    /// Answers an NTS request (RFC 8915 §5.7): opens the cookie, checks the authenticator,
    /// and replies with one fresh cookie per cookie and placeholder (at most
    /// [`nts::ef::MAX_COOKIES_PER_REPLY`], and fewer if the request is too short to carry
    /// them: the reply is never longer than the request). A cookie that does not open or an
    /// authenticator that does not verify gets an NTS NAK.
    ///
    /// The transmit time is read before the reply is sealed, since the tag covers it.
    #[expect(
        clippy::too_many_arguments,
        reason = "the pieces of one request, all needed"
    )]
    fn nts_reply(
        &self,
        cookies: &CookieKeys,
        nts_request: &nts::ef::Request<'_>,
        request: &[u8],
        header: &NtpHeader,
        mut reply: NtpHeader,
        out: &mut [u8],
        transmit_time: impl FnOnce() -> NtpTimestamp,
    ) -> Decision {
        let Some((keys, age)) = cookies.open_aged(nts_request.cookie) else {
            return nts_nak(header, nts_request.uid, out, true);
        };
        self.counters.count_nts_cookie_age(age);
        let Ok(extra) = nts_request.verify(request, &keys.c2s) else {
            return nts_nak(header, nts_request.uid, out, false);
        };
        let cookie_len = CookieKeys::cookie_len(keys.aead());
        let uid_len = nts_request.uid.len();
        let mut count = nts_request
            .placeholders
            .saturating_add(extra)
            .saturating_add(1)
            .min(nts::ef::MAX_COOKIES_PER_REPLY);
        while count > 0 && nts::ef::reply_len(uid_len, count, cookie_len) > request.len() {
            count -= 1;
        }
        let len = nts::ef::reply_len(uid_len, count, cookie_len);
        let Some(head) = out
            .get_mut(..HEADER_LEN)
            .and_then(|h| <&mut [u8; HEADER_LEN]>::try_from(h).ok())
        else {
            return Decision::Drop(DropReason::Oversized);
        };
        if len > request.len() {
            return Decision::Drop(DropReason::Oversized);
        }
        reply.transmit_timestamp = transmit_time();
        reply.emit(head);
        let nonce = self.nonce();
        let written = nts::ef::write_reply(
            out,
            nts_request.uid,
            count,
            cookie_len,
            &keys.s2c,
            &nonce,
            |_, buf| cookies.seal(&keys, self.nonce(), buf),
        );
        match written {
            Some(n) if n <= request.len() => {
                self.counters.count_nts_cookies_made(count);
                Decision::NtsReply(n)
            }
            _ => Decision::Drop(DropReason::Oversized),
        }
    }

    /// 16 octets for an AES-SIV nonce. SIV needs no unpredictable nonce for its security (a
    /// repeated nonce reveals only equal plaintexts, and cookie plaintexts never repeat for
    /// different clients); distinct values suffice, and the daemon seeds each server thread
    /// with its own random state.
    fn nonce(&self) -> [u8; 16] {
        let mut n = [0u8; 16];
        for chunk in n.chunks_exact_mut(4) {
            chunk.copy_from_slice(&self.next_random().to_be_bytes());
        }
        n
    }

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

/// A crypto-NAK (RFC 5905 §7.4, CRYP): the answer to a request whose MAC the server cannot
/// verify. It carries no time — LI=3, stratum 0, refid `CRYP`, every timestamp the request's
/// own transmit timestamp, as in a RATE kiss — and a bare zero key id: 52 octets, never more
/// than a request with a MAC.
fn crypto_nak(request: &NtpHeader, mode: Mode, out: &mut [u8]) -> Decision {
    let Some((head, nak)) = out
        .get_mut(..HEADER_LEN + auth::KEY_ID_LEN)
        .map(|o| o.split_at_mut(HEADER_LEN))
    else {
        return Decision::Drop(DropReason::Oversized);
    };
    let Ok(head) = <&mut [u8; HEADER_LEN]>::try_from(head) else {
        return Decision::Drop(DropReason::Oversized);
    };
    timeless_kiss(request, mode, ReferenceId::CRYP).emit(head);
    nak.fill(0);
    Decision::Reply(HEADER_LEN + auth::KEY_ID_LEN)
}

/// The header of a kiss that carries no time (crypto-NAK, NTS NAK): unsynchronised, stratum 0,
/// `code` as reference id, the request's own fields echoed and its transmit timestamp in every
/// timestamp, so it tells the client nothing about this server's clock.
fn timeless_kiss(request: &NtpHeader, mode: Mode, code: ReferenceId) -> NtpHeader {
    let xmt = request.transmit_timestamp;
    NtpHeader {
        leap: Leap::Unsynchronized,
        version: request.version,
        mode,
        stratum: 0,
        poll: request.poll,
        precision: request.precision,
        root_delay: request.root_delay,
        root_dispersion: request.root_dispersion,
        reference_id: code,
        reference_timestamp: request.reference_timestamp,
        origin_timestamp: xmt,
        receive_timestamp: xmt,
        transmit_timestamp: xmt,
    }
}

/// An NTS NAK (RFC 8915 §5.7): a kiss with code NTSN that carries no time, like a crypto-NAK,
/// and echoes the request's unique identifier so the client can match it. Not authenticated.
/// Shorter than the request, which also held a cookie and an authenticator.
fn nts_nak(request: &NtpHeader, uid: &[u8], out: &mut [u8], cookie_failed: bool) -> Decision {
    let len = HEADER_LEN + nts::ef::field_len(uid.len());
    let Some((head, field)) = out.get_mut(..len).map(|o| o.split_at_mut(HEADER_LEN)) else {
        return Decision::Drop(DropReason::Oversized);
    };
    let Ok(head) = <&mut [u8; HEADER_LEN]>::try_from(head) else {
        return Decision::Drop(DropReason::Oversized);
    };
    timeless_kiss(request, Mode::Server, ReferenceId::NTSN).emit(head);
    field.fill(0);
    let [t0, t1] = nts::ef::UNIQUE_IDENTIFIER.to_be_bytes();
    let [l0, l1] = u16::try_from(field.len()).unwrap_or(0).to_be_bytes();
    if let Some((h, body)) = field.split_first_chunk_mut::<4>() {
        *h = [t0, t1, l0, l1];
        if let Some(dst) = body.get_mut(..uid.len()) {
            dst.copy_from_slice(uid);
        }
    }
    Decision::NtsNak(len, cookie_failed)
}

/// The source's set in `limiter`: the one the caller found ([`RequestMeta::client`]), or
/// found now.
fn located(limiter: &RateLimiter, meta: &RequestMeta) -> Located {
    match meta.client {
        Some(client) if client.addr() == meta.source.ip() => client,
        _ => limiter.locate(meta.source.ip()),
    }
}

#[cfg(test)]
#[path = "server_amplification.rs"]
mod amplification;

#[cfg(test)]
#[path = "server_mrulist.rs"]
mod mrulist;

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "server_nts_tests.rs"]
mod nts_tests;
