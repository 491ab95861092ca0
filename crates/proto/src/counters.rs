//! The server's counters: why a datagram got no reply ([`DropReason`]) and how many of each
//! kind of datagram a server saw ([`ServerCounters`], [`CounterSnapshot`]).
//!
//! They live apart from [`crate::server`] because mode 6 (`control::stats`) reads them as
//! much as the server writes them; neither needs the other's code.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::packet::{Mode, ParseError};

/// Declares [`DropReason`] once: each variant with its doc, its stable name, in counter order.
/// The list [`DropReason::ALL`], the names and the counter indices all follow from it, so a
/// new reason cannot be left out of one of them.
macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])+ $variant:ident => $name:literal,)+) => {
        /// Why a datagram got no reply. Every dropped datagram is counted under exactly one
        /// reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum DropReason {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: [Self; [$($name),+].len()] = [$(Self::$variant),+];

            /// A stable short name for logs and statistics.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an NTP header (or empty).
    TooShort => "too-short",
    /// Version 0 or 5–7.
    BadVersion => "bad-version",
    /// A mode the server does not answer: 0 (except NTPv1), 2, 4 or 5.
    UnexpectedMode => "unexpected-mode",
    /// Mode 6 (ntpq) that the control responder ignored (malformed framing), or that no
    /// control responder handles.
    ControlMode => "control-mode",
    /// Mode 7 (ntpdc), never answered.
    PrivateMode => "private-mode",
    /// Extension fields or a trailer that do not parse.
    Malformed => "malformed",
    /// Larger than the receive buffer.
    Oversized => "oversized",
    /// Source port 0, which no real client uses.
    SourcePortZero => "source-port-zero",
    /// The source matches a `restrict … ignore` entry.
    RestrictedIgnore => "restricted-ignore",
    /// The source matches a `restrict … noserve` entry.
    RestrictedNoserve => "restricted-noserve",
    /// `restrict … version` and the request is not NTPv4.
    RestrictedVersion => "restricted-version",
    /// Sent to a local address excluded by `interface ignore|drop`.
    InterfaceIgnored => "interface-ignored",
    /// Over the `restrict … limited` rate (a RATE kiss may have been due but was itself
    /// limited), or over the always-on mode 6 budget.
    RateLimited => "rate-limited",
    /// Mode 6 from a source that may not query (`noquery`, or not loopback without a
    /// `restrict default` line).
    ControlRefused => "control-refused",
    /// `restrict … notrust` and the request carries no MAC.
    RestrictedNotrust => "restricted-notrust",
    /// NTS extension fields that are not a complete NTS request (RFC 8915 §5.7).
    NtsMalformed => "nts-malformed",
}

impl DropReason {
    /// The reason's counter slot: its place in [`Self::ALL`].
    const fn index(self) -> usize {
        self as usize
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

/// Ages of the previous master keys a cookie can open under, counted apart: one, two, and
/// three or more rotations back (NTPsec's `nts_cookie_decode_old`, `…old2`, `…older`).
pub const OLD_KEY_AGES: usize = 3;

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
    nts_replies: AtomicU64,
    nts_naks: AtomicU64,
    nts_cookie_failures: AtomicU64,
    nts_cookies_made: AtomicU64,
    nts_cookies_old: [AtomicU64; OLD_KEY_AGES],
    control_requests: AtomicU64,
    control_replies: AtomicU64,
    versions: [AtomicU64; VERSIONS],
    ntpv1_modes: [AtomicU64; MODES],
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Datagrams handed to the server, and those answered, by the request's version and mode
    /// (`[version][mode]`).
    requests: [[AtomicU64; MODES]; VERSIONS],
    answered: [[AtomicU64; MODES]; VERSIONS],
    /// Datagrams sent, and sends that failed (the caller's socket reports them).
    sent: AtomicU64,
    send_failures: AtomicU64,
    /// Times the socket was read after a readiness report or after a hold (the daemon's
    /// `serve::threads`), and those that found datagrams.
    wakeups: AtomicU64,
    useful_wakeups: AtomicU64,
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
            nts_replies: self.nts_replies.load(Ordering::Relaxed),
            nts_naks: self.nts_naks.load(Ordering::Relaxed),
            nts_cookie_failures: self.nts_cookie_failures.load(Ordering::Relaxed),
            nts_cookies_made: self.nts_cookies_made.load(Ordering::Relaxed),
            nts_cookies_old: load_all(&self.nts_cookies_old),
            control_requests: self.control_requests.load(Ordering::Relaxed),
            control_replies: self.control_replies.load(Ordering::Relaxed),
            versions: load_all(&self.versions),
            ntpv1_modes: load_all(&self.ntpv1_modes),
            dropped: load_all(&self.dropped),
            requests: self.requests.each_ref().map(load_all),
            answered: self.answered.each_ref().map(load_all),
            sent: self.sent.load(Ordering::Relaxed),
            send_failures: self.send_failures.load(Ordering::Relaxed),
            wakeups: self.wakeups.load(Ordering::Relaxed),
            useful_wakeups: self.useful_wakeups.load(Ordering::Relaxed),
        }
    }

    /// Counts a datagram the caller sent (`ok`) or failed to send.
    pub fn count_send(&self, ok: bool) {
        Self::bump(if ok { &self.sent } else { &self.send_failures });
    }

    /// Counts a read of the socket after it was reported readable or after a hold; `useful` if
    /// it found datagrams.
    pub fn count_wakeup(&self, useful: bool) {
        Self::bump(&self.wakeups);
        if useful {
            Self::bump(&self.useful_wakeups);
        }
    }

    /// Counts a datagram handed to the server by the version and mode of its first octet.
    pub fn count_request(&self, first: u8) {
        let (version, mode) = version_mode(first);
        if let Some(c) = self.requests.get(version).and_then(|m| m.get(mode)) {
            Self::bump(c);
        }
    }

    /// Counts an answer to a request whose first octet was `first`.
    pub fn count_answered(&self, first: u8) {
        let (version, mode) = version_mode(first);
        if let Some(c) = self.answered.get(version).and_then(|m| m.get(mode)) {
            Self::bump(c);
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

    /// Counts a RATE kiss (a reply, counted there too).
    pub(crate) fn count_kiss(&self) {
        Self::bump(&self.kisses);
    }

    /// Counts a crypto-NAK (a reply, counted there too).
    pub(crate) fn count_crypto_nak(&self) {
        Self::bump(&self.crypto_naks);
    }

    /// Counts an NTS-authenticated reply (a reply, counted there too).
    pub(crate) fn count_nts_reply(&self) {
        Self::bump(&self.nts_replies);
    }

    /// Counts an NTS NAK (a reply, counted there too); `cookie_failed` when its cookie did
    /// not open.
    pub(crate) fn count_nts_nak(&self, cookie_failed: bool) {
        Self::bump(&self.nts_naks);
        if cookie_failed {
            Self::bump(&self.nts_cookie_failures);
        }
    }

    /// Counts `n` fresh cookies sealed into an NTS reply.
    pub(crate) fn count_nts_cookies_made(&self, n: usize) {
        self.nts_cookies_made
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a cookie that opened under the master key `age` rotations old (nothing for the
    /// newest key, whose cookies `nts_cookie_decode` counts as a whole).
    pub(crate) fn count_nts_cookie_age(&self, age: usize) {
        if let Some(slot) = age
            .checked_sub(1)
            .and_then(|i| self.nts_cookies_old.get(i.min(OLD_KEY_AGES - 1)))
        {
            Self::bump(slot);
        }
    }

    /// Counts a mode 6 datagram (received, counted there too).
    pub(crate) fn count_control_request(&self) {
        Self::bump(&self.control_requests);
    }

    /// Counts a mode 6 answer (a reply, counted there too).
    pub(crate) fn count_control_reply(&self) {
        Self::bump(&self.control_replies);
    }

    /// Counts the version (and, for NTPv1, the mode) of a datagram on the time-service path
    /// from its first octet.
    pub(crate) fn count_version(&self, first: u8) {
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

/// The version and mode of a first octet, as counter indices.
fn version_mode(first: u8) -> (usize, usize) {
    (usize::from((first >> 3) & 0x07), usize::from(first & 0x07))
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
    /// NTS requests answered with an authenticated reply (among the replies).
    pub nts_replies: u64,
    /// NTS requests whose cookie or authenticator failed, answered with an NTS NAK (among the
    /// replies).
    pub nts_naks: u64,
    /// Of those NAKs, the requests whose cookie did not open (under any master key held).
    pub nts_cookie_failures: u64,
    /// Fresh cookies sealed into NTS replies (the key-exchange server counts its own).
    pub nts_cookies_made: u64,
    /// Cookies that opened under a previous master key: one, two, and three or more
    /// rotations back.
    pub nts_cookies_old: [u64; OLD_KEY_AGES],
    /// Mode 6 (ntpq) datagrams received, whatever became of them (among `received`).
    pub control_requests: u64,
    /// Mode 6 requests answered (among the replies).
    pub control_replies: u64,
    /// Datagrams of every mode but 6 handed to [`crate::server::Server::handle`], by version
    /// number (0–7).
    versions: [u64; VERSIONS],
    /// NTPv1 datagrams by mode (0–7).
    ntpv1_modes: [u64; MODES],
    dropped: [u64; DropReason::ALL.len()],
    requests: [[u64; MODES]; VERSIONS],
    answered: [[u64; MODES]; VERSIONS],
    /// Datagrams sent (every fragment of a mode 6 reply counts).
    pub sent: u64,
    /// Sends that failed.
    pub send_failures: u64,
    /// Reads of a socket reported readable.
    pub wakeups: u64,
    /// Those that found datagrams.
    pub useful_wakeups: u64,
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

    /// Datagrams of every mode but 6 handed to [`crate::server::Server::handle`] (the
    /// time-service path) whose
    /// version field is `version` (0–7; larger values have no datagrams).
    pub fn by_version(&self, version: u8) -> u64 {
        self.versions
            .get(usize::from(version))
            .copied()
            .unwrap_or(0)
    }

    /// Datagrams handed to the server whose first octet says `version` and `mode`.
    pub fn requests(&self, version: u8, mode: Mode) -> u64 {
        let (version, mode) = version_mode((version & 0x07) << 3 | mode.bits());
        self.requests
            .get(version)
            .and_then(|m| m.get(mode))
            .copied()
            .unwrap_or(0)
    }

    /// Answers to those.
    pub fn answered(&self, version: u8, mode: Mode) -> u64 {
        let (version, mode) = version_mode((version & 0x07) << 3 | mode.bits());
        self.answered
            .get(version)
            .and_then(|m| m.get(mode))
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
        self.nts_replies += other.nts_replies;
        self.nts_naks += other.nts_naks;
        self.nts_cookie_failures += other.nts_cookie_failures;
        self.nts_cookies_made += other.nts_cookies_made;
        for (a, b) in self.nts_cookies_old.iter_mut().zip(other.nts_cookies_old) {
            *a += b;
        }
        self.control_requests += other.control_requests;
        self.control_replies += other.control_replies;
        self.sent += other.sent;
        self.send_failures += other.send_failures;
        self.wakeups += other.wakeups;
        self.useful_wakeups += other.useful_wakeups;
        for (a, b) in self
            .versions
            .iter_mut()
            .chain(self.ntpv1_modes.iter_mut())
            .chain(self.dropped.iter_mut())
            .chain(self.requests.iter_mut().flatten())
            .chain(self.answered.iter_mut().flatten())
            .zip(
                other
                    .versions
                    .iter()
                    .chain(&other.ntpv1_modes)
                    .chain(&other.dropped)
                    .chain(other.requests.iter().flatten())
                    .chain(other.answered.iter().flatten()),
            )
        {
            *a += b;
        }
    }
}
