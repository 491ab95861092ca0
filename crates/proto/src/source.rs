//! One upstream association (`server`, or one address of a `pool`): when to poll, the request,
//! the on-wire checks on the reply (RFC 5905 §8, §9.2), kiss-o'-death handling (§7.4), the
//! reach register and the clock filter.
//!
//! Call order, driven by the caller's event loop:
//! 1. sleep until [`Source::poll_timeout`];
//! 2. [`Source::poll_transmit`] writes a request if one is due; send it, then report the local
//!    send time with [`Source::handle_sent`];
//! 3. pass every datagram that arrives on the source's socket to [`Source::handle_response`].
//!
//! A source configured with a symmetric key (`server … key N`) signs every request with it and
//! accepts only replies whose MAC verifies under that same trusted key ([`crate::auth`]); any
//! other reply is counted and never reaches the filter, nor the kiss handling.
//!
//! A source configured with `nts` sends NTS requests (RFC 8915) with a cookie from its jar
//! ([`crate::nts::NtsClient`]) and accepts only replies whose NTS authenticator verifies; without
//! cookies it sends nothing, and the caller runs a key exchange ([`Source::needs_key_exchange`]).
//!
//! Requests carry a random transmit timestamp (RFC 9109 / data minimisation): only a reply
//! echoing that exact value can be ours, which defeats off-path spoofing; the true send time
//! never leaves the host.

use core::time::Duration;

use crate::auth::{self, Authentication, KeyRing};
use crate::filter::{ClockFilter, DelayFloor, Estimate, MAX_DISPERSION, PHI, Sample};
use crate::nts::ef::NtsError;
use crate::nts::{NtsClient, ReplyError, SessionKeys};
use crate::onwire::{self, Answer, Measurement, NotAnswer, Unusable};
use crate::packet::{HEADER_LEN, Leap, Mode, NtpHeader, Packet, ReferenceId};
use crate::refclock::MedianFilter;
use crate::select::{Candidate, Standing};
use crate::time::{Log2Seconds, MonoTime, NtpDuration, NtpShort, NtpTimestamp};

/// Requests sent by `iburst` while a source is unreachable (ntpd `NTP_IBURST`).
pub const IBURST_PACKETS: u8 = 6;

/// Most requests `burst` sends per poll (ntpd `NTP_BURST`... capped at 8).
pub const BURST_MAX: u8 = 8;

/// Requests per poll while the discipline measures the frequency at start-up
/// (`Source::set_frequency_burst`).
pub const FREQUENCY_BURST_PACKETS: u8 = 6;

/// Spacing of burst requests (ntpd `ntp_minpkt`, 2 s).
pub const BURST_SPACING: Duration = Duration::from_secs(2);

/// Longest round-trip delay a sample may have (ntpd's default `tos maxdist`, 1.5 s; NTPsec
/// rejects replies slower than that).
pub const MAX_DELAY: f64 = 1.5;

/// Polls without a reply after which the poll interval backs off (ntpd `NTP_UNREACH`).
pub const UNREACH_BACKOFF: u32 = 10;

/// Polling parameters of one association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceParams {
    /// `minpoll`, log2 s.
    pub minpoll: i8,
    /// `maxpoll`, log2 s.
    pub maxpoll: i8,
    /// `iburst`.
    pub iburst: bool,
    /// `burst`.
    pub burst: bool,
    /// NTP version to send (1–4).
    pub version: u8,
    /// `key N`: the symmetric key every request is signed with and every reply must verify
    /// under.
    pub key: Option<u32>,
    /// `nts`: requests and replies are authenticated with NTS.
    pub nts: bool,
}

impl Default for SourceParams {
    /// ntpd's defaults: minpoll 6, maxpoll 10, version 4.
    fn default() -> Self {
        Self {
            minpoll: 6,
            maxpoll: 10,
            iburst: false,
            burst: false,
            version: 4,
            key: None,
            nts: false,
        }
    }
}

/// Why a reply was not used. Counted per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Not a well-formed NTP packet, or not a server (mode 4) reply.
    Malformed,
    /// RFC test 2 (bogus): no request outstanding, or the origin timestamp is not our nonce.
    BogusOrigin,
    /// RFC test 1: the same transmit timestamp as the previous reply.
    Duplicate,
    /// RFC test 3: zero receive or transmit timestamp.
    ZeroTimestamp,
    /// RFC test 6: the server is unsynchronised (LI=3 or stratum 16).
    Unsynchronized,
    /// RFC test 7: root delay/2 + root dispersion beyond MAXDISP.
    RootDistance,
    /// The server's transmit time is before its receive time by more than its precision.
    Inconsistent,
    /// Stratum 0 without the leap alarm of a kiss-o'-death, or above 16.
    InvalidStratum,
    /// Round-trip delay beyond [`MAX_DELAY`] (NTPsec's delay test), or below zero by more than
    /// both clocks' precision (a timestamp is wrong).
    Delay,
    /// The source has a key but the reply carries no MAC, or a crypto-NAK.
    Unauthenticated,
    /// The source has a key but the reply's MAC is under another key, an unknown or untrusted
    /// one, or does not verify (another secret, or a modified packet).
    BadMac,
    /// An NTS source got an NTS NAK: its cookies were refused; a key exchange is due.
    NtsNak,
}

impl Rejection {
    /// Every rejection, in counter order.
    pub const ALL: [Self; 12] = [
        Self::Malformed,
        Self::BogusOrigin,
        Self::Duplicate,
        Self::ZeroTimestamp,
        Self::Unsynchronized,
        Self::RootDistance,
        Self::Inconsistent,
        Self::InvalidStratum,
        Self::Delay,
        Self::Unauthenticated,
        Self::BadMac,
        Self::NtsNak,
    ];

    /// Short name for logs and statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BogusOrigin => "bogus-origin",
            Self::Duplicate => "duplicate",
            Self::ZeroTimestamp => "zero-timestamp",
            Self::Unsynchronized => "unsynchronized",
            Self::RootDistance => "root-distance",
            Self::Inconsistent => "inconsistent",
            Self::InvalidStratum => "invalid-stratum",
            Self::Delay => "delay",
            Self::Unauthenticated => "unauthenticated",
            Self::BadMac => "bad-mac",
            Self::NtsNak => "nts-nak",
        }
    }
}

/// A kiss-o'-death code that passed the origin check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kiss {
    /// `RATE`: poll less often.
    Rate,
    /// `DENY` or `RSTR`: stop polling this server.
    Deny(ReferenceId),
    /// Any other code: ignored (counted).
    Other(ReferenceId),
}

/// What [`Source::handle_response`] made of a datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A good reply; the filter produced a new estimate (or `None` if its best sample is
    /// unchanged).
    Sample(Option<Estimate>),
    /// A reply that was not used.
    Rejected(Rejection),
    /// A kiss-o'-death.
    Kiss(Kiss),
}

/// What the server told us about itself in its last good reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerInfo {
    /// Leap indicator.
    pub leap: Leap,
    /// Stratum (0 read as 16).
    pub stratum: u8,
    /// The server's precision.
    pub precision: i8,
    /// Root delay.
    pub root_delay: NtpShort,
    /// Root dispersion.
    pub root_dispersion: NtpShort,
    /// Reference id.
    pub reference_id: ReferenceId,
    /// Reference time.
    pub reference_time: NtpTimestamp,
    /// The poll exponent the server put in its reply.
    pub poll: i8,
}

/// The four timestamps and the header of the reply a sample was made from, as the `rawstats`
/// file records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawExchange {
    /// T1: when the request left (local time; the wire carried a random nonce instead).
    pub t1: NtpTimestamp,
    /// T2: the server's receive timestamp.
    pub t2: NtpTimestamp,
    /// T3: the server's transmit timestamp.
    pub t3: NtpTimestamp,
    /// T4: when the reply arrived.
    pub t4: NtpTimestamp,
    /// The reply's version and mode.
    pub version: u8,
    /// See `version`.
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    nonce: NtpTimestamp,
    sent: Option<NtpTimestamp>,
}

/// The limits of RFC 5905's `fit()` that `tos` sets: who may be offered to selection at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fitness {
    /// `tos mindist`: the floor of every root distance, seconds.
    pub mindist: f64,
    /// `tos maxdist`: sources farther away are unfit, seconds.
    pub maxdist: f64,
    /// `tos floor`: sources below this stratum are unfit.
    pub floor: u8,
    /// `tos ceiling`: sources at or above this stratum are unfit.
    pub ceiling: u8,
}

impl Default for Fitness {
    /// ntpd's defaults: mindist 1 ms, maxdist 1.5 s, floor 1, ceiling 15 (`STRATUM_UNSPEC − 1`:
    /// a stratum-15 server is too far down the hierarchy to be anyone's reference).
    fn default() -> Self {
        Self {
            mindist: 0.001,
            maxdist: 1.5,
            floor: 1,
            ceiling: 15,
        }
    }
}

/// A phase slew the discipline has committed and is still carrying out, and the clock's own
/// drift while the discipline measures its frequency (`Discipline::pending_slew`). Stored
/// samples are moved by a slew's whole phase when it is committed; a sample measured while it
/// runs has seen only part of it, and is stored as of the slew's end by subtracting the rest.
/// While the clock drifts uncorrected, samples are stored as of `end` the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingSlew {
    /// Local time at which the slew ends (with no slew: the discipline's last update), the
    /// instant stored samples refer to.
    pub end: NtpTimestamp,
    /// Phase the slew adds per second of local time (positive: the clock moves forward), s/s.
    pub rate: f64,
    /// Phase the clock gains per second on its own, s/s: non-zero only while the discipline
    /// measures the frequency before correcting it (ntpd's FREQ state). Samples are then
    /// stored as of `end` (the discipline's last update), so that sources measured a minute
    /// apart by a clock 100 ppm off still agree in selection.
    pub drift: f64,
}

impl PendingSlew {
    /// The phase the clock still gains between local time `at` and `end`, seconds: what the
    /// slew has left to do, plus the drift over that span (negative for `at` after `end`, so a
    /// sample measured later is brought back to `end`).
    pub fn remaining_after(&self, at: NtpTimestamp) -> f64 {
        let until_end = (self.end - at).to_seconds_f64();
        let phase = self.rate * until_end.max(0.0) + self.drift * until_end;
        if phase.is_finite() { phase } else { 0.0 }
    }
}

/// One association's state.
#[derive(Debug, Clone)]
pub struct Source {
    params: SourceParams,
    hpoll: i8,
    /// The poll floor RATE kisses set (`minpoll` without one); never above `maxpoll`, and one
    /// step lower for every answer that comes without a kiss.
    kod_minpoll: i8,
    /// What the system last asked for ([`Self::set_system_poll`]), within minpoll..maxpoll.
    system_poll: i8,
    reach: u8,
    unreach: u32,
    burst_left: u8,
    frequency_burst: bool,
    early_polls: bool,
    next_poll: MonoTime,
    outstanding: Option<Outstanding>,
    last_transmit: NtpTimestamp,
    denied: Option<ReferenceId>,
    filter: ClockFilter,
    estimate: Option<Estimate>,
    latest: Option<Sample>,
    raw: Option<RawExchange>,
    delay_floor: DelayFloor,
    pending_slew: Option<PendingSlew>,
    polls_since_reset: u32,
    peer: Option<PeerInfo>,
    last_receive: NtpTimestamp,
    authentic: bool,
    nts: NtsClient,
    rejections: [u64; Rejection::ALL.len()],
    sent: u64,
    received: u64,
    /// A reference clock's readings since its last poll; `None` for a network source. A
    /// reference clock sends no requests: its samples come through [`Self::handle_refclock`].
    readings: Option<MedianFilter>,
}

impl Source {
    /// A new association whose first poll is at `first_poll` (callers spread the first polls of
    /// several sources over a few seconds).
    pub fn new(params: SourceParams, first_poll: MonoTime) -> Self {
        let minpoll = params.minpoll.clamp(0, 17);
        let params = SourceParams {
            minpoll,
            maxpoll: params.maxpoll.clamp(minpoll, 17),
            ..params
        };
        Self {
            params,
            hpoll: params.minpoll,
            kod_minpoll: params.minpoll,
            system_poll: params.minpoll,
            reach: 0,
            unreach: 0,
            burst_left: 0,
            frequency_burst: false,
            early_polls: false,
            next_poll: first_poll,
            outstanding: None,
            last_transmit: NtpTimestamp::ZERO,
            denied: None,
            filter: ClockFilter::new(),
            estimate: None,
            latest: None,
            raw: None,
            delay_floor: DelayFloor::default(),
            pending_slew: None,
            polls_since_reset: 0,
            peer: None,
            last_receive: NtpTimestamp::ZERO,
            authentic: false,
            nts: NtsClient::default(),
            rejections: [0; Rejection::ALL.len()],
            sent: 0,
            received: 0,
            readings: None,
        }
    }

    /// A reference clock's source. It never sends: once per poll interval its driver hands it
    /// the median of the clock's readings ([`Self::handle_refclock`]). Its poll stays at
    /// `minpoll` (ntpd polls a reference clock at a fixed interval).
    pub fn new_refclock(params: SourceParams, now: MonoTime) -> Self {
        let params = SourceParams {
            maxpoll: params.minpoll,
            iburst: false,
            burst: false,
            key: None,
            nts: false,
            ..params
        };
        Self {
            readings: Some(MedianFilter::new()),
            ..Self::new(params, now)
        }
    }

    /// Whether this is a reference clock's source.
    pub fn is_refclock(&self) -> bool {
        self.readings.is_some()
    }

    /// A reading of a reference clock, kept for its next poll; `false` if it was dropped (a
    /// repeat, out of order, or this is not a reference clock).
    pub fn add_reading(&mut self, reading: crate::refclock::Reading) -> bool {
        self.readings.as_mut().is_some_and(|f| f.add(reading))
    }

    /// The readings held for the next poll of a reference clock.
    pub fn readings_held(&self) -> usize {
        self.readings.as_ref().map_or(0, MedianFilter::len)
    }

    /// One poll of a reference clock: the median filter turns the readings held into a sample
    /// for the clock filter; without readings the reach register shows the miss. `info` is what the clock
    /// claims (stratum, reference id, leap, precision). Returns what the clock filter made of
    /// the sample, `None` for a miss or a source that is not a reference clock.
    pub fn handle_refclock(&mut self, info: PeerInfo, precision: f64) -> Option<Outcome> {
        let sample = self.readings.as_mut()?.take(precision);
        self.polls_since_reset = self.polls_since_reset.saturating_add(1);
        self.sent += 1;
        self.reach <<= 1;
        let Some(sample) = sample else {
            self.unreach = self.unreach.saturating_add(1);
            if self.reach & 0x07 == 0 && self.reach != 0 {
                self.filter.add_gap(self.last_receive);
            }
            return None;
        };
        self.reach |= 1;
        self.unreach = 0;
        self.received += 1;
        self.last_receive = sample.time;
        self.peer = Some(PeerInfo {
            leap: sample.leap,
            reference_time: sample.time,
            ..info
        });
        if sample.leap == Leap::Unsynchronized {
            return Some(Outcome::Rejected(Rejection::Unsynchronized));
        }
        let sample = Sample {
            offset: sample.offset,
            delay: precision,
            dispersion: sample.dispersion + precision,
            time: sample.time,
        };
        Some(self.accept(sample, precision, sample.time))
    }

    /// When the source next wants to send; `None` once a server has denied us service.
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        (self.denied.is_none() && self.readings.is_none()).then_some(self.next_poll)
    }

    /// If a poll is due at `now`, writes the request into `out` and returns its length.
    /// `random` supplies 64 unpredictable bits per call (the nonce and the poll jitter). A
    /// source with a key signs the request with it from `keys`, which needs `out` to hold
    /// [`auth::MAX_AUTHENTICATED_LEN`] octets; if the key cannot sign (unknown or untrusted),
    /// the request goes out without a MAC and its reply will be counted as unauthenticated.
    /// `out` must hold at least [`HEADER_LEN`] octets, else nothing is sent.
    pub fn poll_transmit(
        &mut self,
        now: MonoTime,
        random: &mut impl FnMut() -> u64,
        keys: &dyn KeyRing,
        out: &mut [u8],
    ) -> Option<usize> {
        let head = out
            .get_mut(..HEADER_LEN)
            .and_then(|h| <&mut [u8; HEADER_LEN]>::try_from(h).ok())?;
        if self.denied.is_some() || self.readings.is_some() || now < self.next_poll {
            return None;
        }
        self.polls_since_reset = self.polls_since_reset.saturating_add(1);
        if self.burst_left > 0 {
            self.burst_left -= 1;
        } else {
            self.reach <<= 1;
            if self.reach == 0 {
                self.unreach = self.unreach.saturating_add(1);
                if self.unreach >= UNREACH_BACKOFF {
                    self.hpoll = (self.hpoll + 1).min(self.params.maxpoll);
                }
                if self.params.iburst && self.unreach <= 1 {
                    self.burst_left = IBURST_PACKETS - 1;
                } else if self.frequency_burst && self.unreach <= 1 {
                    self.burst_left = FREQUENCY_BURST_PACKETS - 1;
                }
            } else {
                if self.reach & 0x07 == 0 {
                    self.filter.add_gap(self.last_receive);
                }
                if self.frequency_burst && !self.params.burst {
                    self.burst_left = FREQUENCY_BURST_PACKETS - 1;
                } else if self.params.burst {
                    let n = 1u8
                        .checked_shl(u32::try_from(self.hpoll - self.params.minpoll).unwrap_or(0))
                        .unwrap_or(BURST_MAX);
                    self.burst_left = n.clamp(1, BURST_MAX) - 1;
                }
            }
        }
        self.next_poll = if self.burst_left > 0 {
            now + BURST_SPACING
        } else {
            // Up to 1/16 of the interval later, so sources and clients do not synchronise.
            let interval = if self.early_polls {
                self.poll_interval() / 2
            } else {
                self.poll_interval()
            };
            let jitter = interval.mul_f64(f64::from((random() & 0xff) as u8) / 4096.0);
            now + interval + jitter
        };
        let nonce = NtpTimestamp::from_bits(random());
        self.outstanding = Some(Outstanding { nonce, sent: None });
        let mut request = NtpHeader::new(self.params.version, Mode::Client);
        request.poll = Log2Seconds::new(self.hpoll);
        request.transmit_timestamp = nonce;
        request.emit(head);
        if self.params.nts {
            let sent = self.nts.write_request(out, random);
            match sent {
                Some(_) => self.sent += 1,
                None => self.outstanding = None,
            }
            return sent;
        }
        self.sent += 1;
        let signed = self
            .params
            .key
            .and_then(|key| auth::append_mac(keys, key, auth::V4_DIGEST_LEN, out, HEADER_LEN));
        Some(signed.unwrap_or(HEADER_LEN))
    }

    /// Records the local time at which the last request left (T1).
    pub fn handle_sent(&mut self, t1: NtpTimestamp) {
        if let Some(o) = self.outstanding.as_mut() {
            o.sent = Some(t1);
        }
    }

    /// Processes a datagram from the server that arrived at local time `t4`. `precision` is the
    /// local clock's precision in seconds; `keys` verifies the MAC of a source with a key.
    pub fn handle_response(
        &mut self,
        t4: NtpTimestamp,
        datagram: &[u8],
        precision: f64,
        keys: &dyn KeyRing,
    ) -> Outcome {
        let outcome = self.check_response(t4, datagram, precision, keys);
        if let Outcome::Rejected(r) = outcome
            && let Some(c) = self
                .rejections
                .get_mut(Rejection::ALL.iter().position(|x| *x == r).unwrap_or(0))
        {
            *c += 1;
        }
        outcome
    }

    fn check_response(
        &mut self,
        t4: NtpTimestamp,
        datagram: &[u8],
        precision: f64,
        keys: &dyn KeyRing,
    ) -> Outcome {
        let Ok(packet) = Packet::parse(datagram) else {
            return Outcome::Rejected(Rejection::Malformed);
        };
        // The origin check comes first: nothing that fails it may change any state.
        let nonce = self.outstanding.map_or(NtpTimestamp::ZERO, |o| o.nonce);
        let answer = match onwire::check(&packet, nonce) {
            Ok(answer) => answer,
            Err(NotAnswer::NotServerMode(_)) => return Outcome::Rejected(Rejection::Malformed),
            Err(NotAnswer::WrongOrigin) => return Outcome::Rejected(Rejection::BogusOrigin),
        };
        let Some(out) = self.outstanding else {
            return Outcome::Rejected(Rejection::BogusOrigin);
        };
        // Then, for a source with a key, the MAC: an unauthenticated reply changes nothing, not
        // even as a kiss (a crypto-NAK never denies or slows anything, CVE-2015-7871).
        if let Some(key) = self.params.key {
            match auth::authenticate(keys, datagram, &packet) {
                Authentication::Valid { key_id } if key_id == key => {}
                Authentication::None | Authentication::CryptoNak => {
                    return Outcome::Rejected(Rejection::Unauthenticated);
                }
                Authentication::Valid { .. }
                | Authentication::UnknownKey { .. }
                | Authentication::Mismatch { .. } => return Outcome::Rejected(Rejection::BadMac),
            }
        }
        // For an NTS source, the authenticator: the same rule as a MAC. A NAK is only believed
        // with our unique identifier, and then only drops the cookies.
        if self.params.nts {
            match self.nts.check_reply(datagram, &packet) {
                Ok(()) => {}
                Err(ReplyError::Nak) => {
                    self.outstanding = None;
                    return Outcome::Rejected(Rejection::NtsNak);
                }
                Err(ReplyError::Invalid(NtsError::BadTag | NtsError::WrongUid)) => {
                    return Outcome::Rejected(Rejection::BadMac);
                }
                Err(_) => return Outcome::Rejected(Rejection::Unauthenticated),
            }
        }
        let h = *answer.header();
        match answer {
            Answer::Kiss(_) => {
                self.outstanding = None;
                return Outcome::Kiss(self.handle_kiss(&h));
            }
            Answer::Unusable {
                reason: Unusable::ZeroTimestamp,
                ..
            } => return Outcome::Rejected(Rejection::ZeroTimestamp),
            Answer::Unusable { .. } | Answer::Time(_) => {}
        }
        if h.transmit_timestamp == self.last_transmit {
            return Outcome::Rejected(Rejection::Duplicate);
        }
        // One reply per request: a replay or a second reply now fails the origin check.
        self.outstanding = None;
        self.last_transmit = h.transmit_timestamp;
        self.authentic = self.params.key.is_some() || self.params.nts;
        self.reach |= 1;
        self.unreach = 0;
        self.received += 1;
        self.relax_rate_floor();
        self.last_receive = t4;
        if let Answer::Unusable {
            reason: Unusable::InvalidStratum,
            ..
        } = answer
        {
            return Outcome::Rejected(Rejection::InvalidStratum);
        }
        let stratum = h.stratum;
        self.peer = Some(PeerInfo {
            leap: h.leap,
            stratum,
            precision: h.precision.exponent(),
            root_delay: h.root_delay,
            root_dispersion: h.root_dispersion,
            reference_id: h.reference_id,
            reference_time: h.reference_timestamp,
            poll: h.poll.exponent(),
        });
        if h.leap == Leap::Unsynchronized || stratum >= 16 {
            return Outcome::Rejected(Rejection::Unsynchronized);
        }
        if h.root_delay.to_seconds_f64() / 2.0 + h.root_dispersion.to_seconds_f64()
            >= MAX_DISPERSION
        {
            return Outcome::Rejected(Rejection::RootDistance);
        }
        if let Answer::Unusable {
            reason: Unusable::TransmitBeforeReceive,
            ..
        } = answer
        {
            return Outcome::Rejected(Rejection::Inconsistent);
        }
        let Some(t1) = out.sent else {
            // The caller never told us when the request left; without T1 there is no sample.
            return Outcome::Rejected(Rejection::BogusOrigin);
        };
        let measured = Measurement::of(&h, t1, t4);
        let offset = measured.offset.to_seconds_f64();
        let delay = measured.delay.to_seconds_f64();
        if delay > MAX_DELAY {
            return Outcome::Rejected(Rejection::Delay);
        }
        // A round trip shorter than zero by more than both clocks' precision means one of the
        // four timestamps is wrong (a late T1, a server clock read out of order): such a sample
        // would also set the path's minimum delay, which weighs every later sample.
        if delay < -(precision + h.precision.as_seconds_f64()) {
            return Outcome::Rejected(Rejection::Delay);
        }
        let delay = delay.max(precision);
        let dispersion =
            h.precision.as_seconds_f64() + precision + PHI * (t4 - t1).to_seconds_f64().max(0.0);
        let sample = Sample {
            offset,
            delay,
            dispersion,
            time: t4,
        };
        let midpoint = t4 - NtpDuration::from_seconds_f64(delay / 2.0);
        self.raw = Some(RawExchange {
            t1,
            t2: h.receive_timestamp,
            t3: h.transmit_timestamp,
            t4,
            version: h.version,
            mode: h.mode,
        });
        self.accept(sample, precision, midpoint)
    }

    /// A measured sample into the filter; `midpoint` is the local time the offset refers to.
    fn accept(&mut self, sample: Sample, precision: f64, midpoint: NtpTimestamp) -> Outcome {
        let delay = sample.delay;
        self.latest = Some(sample);
        // Selection compares stored offsets as of the end of the committed corrections; the
        // discipline takes the sample as measured (`latest_sample`) and knows the slew itself.
        let still_to_come = self
            .pending_slew
            .map_or(0.0, |s| s.remaining_after(midpoint));
        let stored = Sample {
            offset: sample.offset - still_to_come,
            ..sample
        };
        let fresh = self.filter.add(stored, precision);
        self.delay_floor
            .add(delay, self.filter.min_delay().unwrap_or(delay));
        // Dispersion and jitter improve with every sample even when the best offset is old.
        self.estimate = self.filter.latest();
        Outcome::Sample(fresh)
    }

    fn handle_kiss(&mut self, h: &NtpHeader) -> Kiss {
        let code = h.reference_id;
        if code.is_code(b"RATE") {
            // Poll no faster than the server asks and at least one step slower than now — but
            // never slower than maxpoll, whatever the server asked: a kiss that could ask for
            // 2^17 s would let one hostile (or mistaken) reply silence the source for 36 hours.
            let asked = h
                .poll
                .exponent()
                .clamp(self.params.minpoll, self.params.maxpoll);
            self.kod_minpoll = asked.max(self.hpoll + 1).min(self.params.maxpoll);
            self.hpoll = self.hpoll.max(self.kod_minpoll);
            self.burst_left = 0;
            Kiss::Rate
        } else if code.is_code(b"DENY") || code.is_code(b"RSTR") {
            self.denied = Some(code);
            Kiss::Deny(code)
        } else {
            Kiss::Other(code)
        }
    }

    /// An answer without a kiss: the server serves us again, so the RATE floor comes down one
    /// step (a server still limiting us kisses again and puts it back), and the poll with it
    /// unless the system or an unreachable-source back-off holds it up.
    fn relax_rate_floor(&mut self) {
        if self.kod_minpoll > self.params.minpoll {
            self.kod_minpoll -= 1;
            self.hpoll = self.hpoll.min(self.kod_minpoll.max(self.system_poll));
        }
    }

    /// Sets the poll exponent the system wants (RFC 5905 §13: every association tracks the
    /// system time constant within its own minpoll..maxpoll and any RATE limit).
    pub fn set_system_poll(&mut self, tc: i8) {
        self.system_poll = tc.clamp(self.params.minpoll, self.params.maxpoll);
        let wanted = self.system_poll.max(self.kod_minpoll);
        // An association that stopped answering keeps the back-off it earned (RFC 5905 §13)
        // rather than being polled at the system's pace.
        self.hpoll = if self.unreach >= UNREACH_BACKOFF {
            wanted.max(self.hpoll)
        } else {
            wanted
        };
    }

    /// Whether each poll should be a short burst ([`FREQUENCY_BURST_PACKETS`] requests
    /// [`BURST_SPACING`] apart) because the discipline is measuring the frequency
    /// (`Discipline::measuring_frequency`).
    pub fn set_frequency_burst(&mut self, on: bool) {
        self.frequency_burst = on;
    }

    /// Whether polls should come at half the poll interval because the clock was corrected on a
    /// frequency still being learned (`Discipline::learning_frequency`): after an iburst, the
    /// next sample comes before a rough frequency can take the clock a millisecond away. It
    /// applies from the next poll scheduled (an iburst's last request schedules the first).
    pub fn set_early_polls(&mut self, on: bool) {
        self.early_polls = on;
    }

    /// Forgets all samples (after the clock was stepped).
    pub fn reset_filter(&mut self) {
        // A step ends any slew.
        self.pending_slew = None;
        self.filter.reset();
        if let Some(r) = self.readings.as_mut() {
            r.clear();
        }
        self.estimate = None;
        self.latest = None;
        self.polls_since_reset = 0;
    }

    /// Accounts for a correction of the local clock by `phase` seconds (positive: moved
    /// forward) in the stored samples and the current estimate, so that selection compares
    /// offsets of the clock as it will be once the correction is done. Call it on every
    /// association with the phase the discipline reports for each update
    /// ([`crate::discipline::Update::Slewed`]) or slew end, and the slew then under way
    /// (`Discipline::pending_slew`), which later samples are corrected for as they arrive.
    pub fn apply_clock_correction(&mut self, phase: f64, pending: Option<PendingSlew>) {
        self.pending_slew = pending;
        if !phase.is_finite() {
            return;
        }
        self.filter.apply_clock_correction(phase);
        if let Some(e) = self.estimate.as_mut() {
            e.offset -= phase;
        }
    }

    /// The timestamps and header of the reply the latest sample came from (`rawstats`).
    pub fn raw_exchange(&self) -> Option<RawExchange> {
        self.raw
    }

    /// The newest sample exactly as measured (not moved by later clock corrections), which is
    /// what the discipline consumes; `None` after a filter reset until the next good reply.
    pub fn latest_sample(&self) -> Option<Sample> {
        self.latest
    }

    /// The long-term lowest delay of the path (kept across filter resets: a step does not
    /// change the network).
    pub fn delay_floor(&self) -> &DelayFloor {
        &self.delay_floor
    }

    /// Polls sent since the source was created or its filter was last reset. Together with
    /// [`Self::estimate`] it tells whether a source has had its chance to answer (see
    /// [`crate::discipline::sources_settled`]).
    pub fn polls_since_reset(&self) -> u32 {
        self.polls_since_reset
    }

    /// The association as an input to selection at local time `now`, or `None` if it is unfit
    /// (RFC 5905 A.5.5.3 `fit()`): unreachable, unsynchronised, outside the stratum limits
    /// (`tos floor`/`ceiling`, and never 16 or more), or too far away (`tos maxdist`).
    pub fn candidate(&self, now: NtpTimestamp, fitness: &Fitness) -> Option<Candidate> {
        let peer = self.peer?;
        let est = self.estimate?;
        if self.reach == 0
            || peer.leap == Leap::Unsynchronized
            || peer.stratum >= fitness.ceiling.min(16)
            // `tos floor` keeps network servers of too low a stratum out; a reference clock
            // is stratum 0 by nature.
            || (peer.stratum < fitness.floor && self.readings.is_none())
        {
            return None;
        }
        let distance = self.root_distance(now)?.max(fitness.mindist);
        if distance > fitness.maxdist + PHI * self.poll_interval().as_secs_f64() {
            return None;
        }
        Some(Candidate {
            offset: est.offset,
            root_distance: distance,
            stratum: peer.stratum,
            jitter: est.jitter,
            prefer: false,
            truechimer: false,
            was_system_peer: false,
        })
    }

    /// What this source offers to selection at local time `now` given its `standing`: nothing
    /// for `noselect` or while [`Self::candidate`] finds it unfit. The daemon and the simulator
    /// both build their selection inputs here.
    pub fn selection_input(
        &self,
        now: NtpTimestamp,
        fitness: &Fitness,
        standing: Standing,
    ) -> Option<Candidate> {
        if standing.noselect {
            return None;
        }
        self.candidate(now, fitness).map(|c| Candidate {
            prefer: standing.prefer,
            truechimer: standing.truechimer,
            was_system_peer: standing.was_system_peer,
            ..c
        })
    }

    /// λ = (root delay + δ)/2 + root dispersion + ε + PHI·age + ψ (RFC 5905 A.5.5.2).
    ///
    /// As in ntpd (`peer->update`), the age counts from the last filter update, not from the
    /// chosen sample: ε already grew each stage by PHI up to that update, so counting from an
    /// older chosen sample would add its age twice (docs/algorithm.md §2).
    pub fn root_distance(&self, now: NtpTimestamp) -> Option<f64> {
        let peer = self.peer?;
        let est = self.estimate?;
        let updated = self.latest.map_or(est.time, |s| s.time);
        let age = (now - updated).to_seconds_f64().max(0.0);
        Some(
            (peer.root_delay.to_seconds_f64() + est.delay) / 2.0
                + peer.root_dispersion.to_seconds_f64()
                + est.dispersion
                + PHI * age
                + est.jitter,
        )
    }

    /// The current poll interval.
    pub fn poll_interval(&self) -> Duration {
        // hpoll stays within 0..=17 (minpoll and maxpoll are clamped there).
        Duration::from_secs(1u64 << self.hpoll.clamp(0, 17))
    }

    /// The poll exponent in use (ntpq `hpoll`).
    pub fn hpoll(&self) -> i8 {
        self.hpoll
    }

    /// The reach register: bit 0 is the latest poll.
    pub fn reach(&self) -> u8 {
        self.reach
    }

    /// Polls since the source was last heard from.
    pub fn unreach(&self) -> u32 {
        self.unreach
    }

    /// The kiss code that stopped polling, if any.
    pub fn denied(&self) -> Option<ReferenceId> {
        self.denied
    }

    /// The filter's current estimate.
    pub fn estimate(&self) -> Option<Estimate> {
        self.estimate
    }

    /// What the server said about itself.
    pub fn peer(&self) -> Option<PeerInfo> {
        self.peer
    }

    /// Local time of the last good reply.
    pub fn last_receive(&self) -> NtpTimestamp {
        self.last_receive
    }

    /// The clock filter (for ntpq's `filtdelay`/`filtoffset`/`filtdisp`).
    pub fn filter(&self) -> &ClockFilter {
        &self.filter
    }

    /// Whether this NTS source needs a key exchange: no keys yet, or no cookie left.
    pub fn needs_key_exchange(&self) -> bool {
        self.params.nts && self.nts.needs_key_exchange()
    }

    /// Installs the keys and cookies of a completed key exchange.
    pub fn install_nts(&mut self, keys: SessionKeys, cookies: Vec<Vec<u8>>) {
        self.nts.install(keys, cookies);
    }

    /// The NTS state (how many cookies are left).
    pub fn nts(&self) -> &NtsClient {
        &self.nts
    }

    /// Whether the last reply that answered a request was authenticated under the source's key
    /// (ntpq's `authentic` status bit); always false for a source without a key.
    pub fn authentic(&self) -> bool {
        self.authentic
    }

    /// The configured parameters.
    pub fn params(&self) -> &SourceParams {
        &self.params
    }

    /// Requests sent and good replies received.
    pub fn packet_counts(&self) -> (u64, u64) {
        (self.sent, self.received)
    }

    /// How many replies were rejected for `reason`.
    pub fn rejected(&self, reason: Rejection) -> u64 {
        Rejection::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.rejections.get(i))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "source_nts_tests.rs"]
mod nts_tests;
