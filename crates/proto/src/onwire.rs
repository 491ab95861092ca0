//! The on-wire checks every reply to one of our own client requests must pass before its
//! timestamps mean anything (RFC 5905 §8 and the packet tests of §9.2), shared by the daemon's
//! associations ([`crate::source::Source`]) and the one-shot `ntpdate`, so that both agree on
//! what a reply, a kiss and a usable measurement are.
//!
//! The order matters: a datagram is first matched to the outstanding request (mode 4 and an
//! origin timestamp equal to the request's random nonce). Anything that fails the match is not
//! an answer at all ([`NotAnswer`]) and must change no state (CVE-2015-7704, CVE-2020-11868).
//! A matching reply is then a kiss-o'-death, an unusable answer, or one with timestamps.
//!
//! What each caller does beyond this is its own policy: the daemon also rejects duplicates,
//! unsynchronised servers, far root distances and long round trips; ntpdate leaves those to
//! its selection.

use core::fmt;

use crate::packet::{Mode, NtpHeader, Packet};
use crate::time::{NtpDuration, NtpTimestamp};

/// One on-wire measurement (RFC 5905 §8), exact to the wire's 2⁻³² s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// θ = ((T2 − T1) + (T3 − T4)) / 2: how far the server's clock is ahead of ours.
    pub offset: NtpDuration,
    /// δ = (T4 − T1) − (T3 − T2): the round trip without the server's processing time.
    pub delay: NtpDuration,
}

impl Measurement {
    /// The measurement of a request sent at local time `t1` and answered with the server's
    /// receive time `t2` and transmit time `t3`, arriving at local time `t4`. Era arithmetic is
    /// in `NtpTimestamp - NtpTimestamp`, so a wrap between the two clocks is harmless. The
    /// offset is always exact; a delay beyond ±2^31 s (timestamps that cannot come from one
    /// exchange) is clamped — [`Self::checked`] refuses it instead.
    pub fn new(t1: NtpTimestamp, t2: NtpTimestamp, t3: NtpTimestamp, t4: NtpTimestamp) -> Self {
        let (offset, delay) = Self::wide(t1, t2, t3, t4);
        let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
        Self {
            offset: NtpDuration::from_bits(clamp(offset)),
            delay: NtpDuration::from_bits(clamp(delay)),
        }
    }

    /// [`Self::new`], or `None` if the offset or delay does not fit a signed 32.32 value
    /// (about ±68 years): a clamped value would be an arbitrary one.
    pub fn checked(
        t1: NtpTimestamp,
        t2: NtpTimestamp,
        t3: NtpTimestamp,
        t4: NtpTimestamp,
    ) -> Option<Self> {
        let (offset, delay) = Self::wide(t1, t2, t3, t4);
        Some(Self {
            offset: NtpDuration::from_bits(i64::try_from(offset).ok()?),
            delay: NtpDuration::from_bits(i64::try_from(delay).ok()?),
        })
    }

    /// The measurement of `header`'s receive and transmit timestamps.
    pub fn of(header: &NtpHeader, t1: NtpTimestamp, t4: NtpTimestamp) -> Self {
        Self::new(t1, header.receive_timestamp, header.transmit_timestamp, t4)
    }

    /// [`Self::checked`] of `header`'s receive and transmit timestamps.
    pub fn checked_of(header: &NtpHeader, t1: NtpTimestamp, t4: NtpTimestamp) -> Option<Self> {
        Self::checked(t1, header.receive_timestamp, header.transmit_timestamp, t4)
    }

    /// Offset and delay in 2⁻³² s, exactly: `NtpDuration`'s own operators saturate, which
    /// would turn an offset of 40 years into an arbitrary 34.
    fn wide(
        t1: NtpTimestamp,
        t2: NtpTimestamp,
        t3: NtpTimestamp,
        t4: NtpTimestamp,
    ) -> (i128, i128) {
        let wide = |d: NtpDuration| i128::from(d.to_bits());
        let offset = (wide(t2 - t1) + wide(t3 - t4)) / 2;
        let delay = wide(t4 - t1) - wide(t3 - t2);
        (offset, delay)
    }
}

/// A reply that answered the outstanding request (it passed the origin check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A reply whose timestamps can be used ([`Measurement::of`]).
    Time(NtpHeader),
    /// A kiss-o'-death ([`NtpHeader::is_kiss_of_death`]): never time; its refid is the code.
    Kiss(NtpHeader),
    /// It answered the request but its timestamps cannot be used.
    Unusable {
        /// The reply's header.
        header: NtpHeader,
        /// What is wrong with it.
        reason: Unusable,
    },
}

impl Answer {
    /// The header of the reply.
    pub fn header(&self) -> &NtpHeader {
        match self {
            Self::Time(header) | Self::Kiss(header) | Self::Unusable { header, .. } => header,
        }
    }
}

/// Why an answer carries no usable time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// The receive or transmit timestamp is zero (RFC 5905 §8 test 3).
    ZeroTimestamp,
    /// Stratum 0 without the leap alarm of a kiss-o'-death, or above 16.
    InvalidStratum,
    /// The server's transmit time is before its receive time by more than its own precision.
    TransmitBeforeReceive,
    /// The offset or delay does not fit a signed 32.32 value (about ±68 years): the timestamps
    /// cannot come from one exchange ([`Measurement::checked`]).
    OutOfRange,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroTimestamp => "zero receive or transmit timestamp",
            Self::InvalidStratum => "stratum 0 without a kiss, or above 16",
            Self::TransmitBeforeReceive => "transmit timestamp before receive timestamp",
            Self::OutOfRange => "offset or delay beyond the representable range",
        })
    }
}

/// Why a well-formed datagram is not an answer to our request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAnswer {
    /// An NTP packet of a mode other than 4 (server).
    NotServerMode(Mode),
    /// Its origin timestamp is not the transmit timestamp of our outstanding request (or
    /// nothing is outstanding): a late duplicate, a reply to a request that timed out, or a
    /// spoofing attempt. A zero nonce never matches, not even a zero origin (CVE-2015-8138).
    WrongOrigin,
}

impl fmt::Display for NotAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotServerMode(m) => write!(f, "mode {} is not a server reply", m.bits()),
            Self::WrongOrigin => f.write_str("origin timestamp is not our request's"),
        }
    }
}

/// Checks `packet` against the outstanding request whose transmit timestamp was `nonce`.
///
/// The rules, in order: mode 4; origin = nonce ≠ 0; a kiss-o'-death is recognised before any
/// timestamp is looked at (its timestamps are meaningless, RFC 5905 §7.4) — stratum 0 with the
/// leap alarm, as ntpd and NTPsec recognise it; then zero timestamps, an impossible stratum,
/// and a transmit time before the receive time. The last is tolerated up to the server's own
/// precision: a clock read is only that exact, so two reads of a coarse clock can come out in
/// the wrong order by that much without anything being wrong.
pub fn check(packet: &Packet<'_>, nonce: NtpTimestamp) -> Result<Answer, NotAnswer> {
    let header = packet.header;
    if header.mode != Mode::Server {
        return Err(NotAnswer::NotServerMode(header.mode));
    }
    if nonce.is_zero() || header.origin_timestamp != nonce {
        return Err(NotAnswer::WrongOrigin);
    }
    if header.is_kiss_of_death() {
        return Ok(Answer::Kiss(header));
    }
    let unusable = |reason| Ok(Answer::Unusable { header, reason });
    let (t2, t3) = (header.receive_timestamp, header.transmit_timestamp);
    if t2.is_zero() || t3.is_zero() {
        return unusable(Unusable::ZeroTimestamp);
    }
    if header.stratum == 0 || header.stratum > 16 {
        return unusable(Unusable::InvalidStratum);
    }
    if (t3 - t2).to_seconds_f64() < -header.precision.as_seconds_f64() {
        return unusable(Unusable::TransmitBeforeReceive);
    }
    Ok(Answer::Time(header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{HEADER_LEN, Leap, ReferenceId};
    use crate::time::Log2Seconds;

    const NONCE: NtpTimestamp = NtpTimestamp::from_bits(0x1234_5678_9abc_def0);
    const T1: NtpTimestamp = NtpTimestamp::from_parts(3_900_000_000, 0);

    /// A stratum-2 reply to [`NONCE`] from a server 1 s ahead, 20 ms each way, 1 ms processing.
    fn reply() -> NtpHeader {
        let mut h = NtpHeader::new(4, Mode::Server);
        h.stratum = 2;
        h.precision = Log2Seconds::new(-20);
        h.reference_id = ReferenceId::from_bytes([192, 0, 2, 1]);
        h.origin_timestamp = NONCE;
        h.receive_timestamp = T1 + NtpDuration::from_seconds_f64(1.020);
        h.transmit_timestamp = T1 + NtpDuration::from_seconds_f64(1.021);
        h
    }

    fn checked(h: &NtpHeader) -> Result<Answer, NotAnswer> {
        let mut b = [0u8; HEADER_LEN];
        h.emit(&mut b);
        check(&Packet::parse(&b).expect("a header parses"), NONCE)
    }

    fn unusable(h: &NtpHeader) -> Option<Unusable> {
        match checked(h) {
            Ok(Answer::Unusable { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn a_good_reply_measures_offset_and_delay() {
        let h = reply();
        assert_eq!(checked(&h), Ok(Answer::Time(h)));
        let m = Measurement::of(&h, T1, T1 + NtpDuration::from_seconds_f64(0.041));
        assert!((m.offset.to_seconds_f64() - 1.0).abs() < 1e-9, "{m:?}");
        assert!((m.delay.to_seconds_f64() - 0.040).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn only_a_server_reply_echoing_the_nonce_is_an_answer() {
        let mut h = reply();
        h.origin_timestamp = NtpTimestamp::from_bits(NONCE.to_bits() ^ 1);
        assert_eq!(checked(&h), Err(NotAnswer::WrongOrigin));
        let mut h = reply();
        h.mode = Mode::SymmetricPassive;
        assert_eq!(
            checked(&h),
            Err(NotAnswer::NotServerMode(Mode::SymmetricPassive))
        );
        // Nothing outstanding (a zero nonce) matches nothing, not even a zero origin.
        let mut h = reply();
        h.origin_timestamp = NtpTimestamp::ZERO;
        let mut b = [0u8; HEADER_LEN];
        h.emit(&mut b);
        let p = Packet::parse(&b).expect("parses");
        assert_eq!(check(&p, NtpTimestamp::ZERO), Err(NotAnswer::WrongOrigin));
    }

    #[test]
    fn a_kiss_is_stratum_zero_with_the_leap_alarm_and_its_timestamps_are_ignored() {
        let mut h = reply();
        h.leap = Leap::Unsynchronized;
        h.stratum = 0;
        h.reference_id = ReferenceId::RATE;
        h.receive_timestamp = NtpTimestamp::ZERO;
        assert_eq!(checked(&h), Ok(Answer::Kiss(h)));
        // Stratum 0 without the alarm is not a kiss (ntpd and NTPsec agree): just broken.
        h.leap = Leap::NoWarning;
        h.receive_timestamp = reply().receive_timestamp;
        assert_eq!(unusable(&h), Some(Unusable::InvalidStratum));
        h.stratum = 17;
        assert_eq!(unusable(&h), Some(Unusable::InvalidStratum));
    }

    #[test]
    fn zero_server_timestamps_are_unusable() {
        let mut h = reply();
        h.receive_timestamp = NtpTimestamp::ZERO;
        assert_eq!(unusable(&h), Some(Unusable::ZeroTimestamp));
        let mut h = reply();
        h.transmit_timestamp = NtpTimestamp::ZERO;
        assert_eq!(unusable(&h), Some(Unusable::ZeroTimestamp));
    }

    #[test]
    fn transmit_before_receive_is_tolerated_up_to_the_servers_precision() {
        // Precision 2^-20 s ≈ 0.95 µs: 0.5 µs out of order is a coarse clock, 2 µs is wrong.
        let mut h = reply();
        h.transmit_timestamp = h.receive_timestamp - NtpDuration::from_seconds_f64(0.5e-6);
        assert_eq!(checked(&h), Ok(Answer::Time(h)));
        h.transmit_timestamp = h.receive_timestamp - NtpDuration::from_seconds_f64(2e-6);
        assert_eq!(unusable(&h), Some(Unusable::TransmitBeforeReceive));
        // A coarser server (2^-10 s ≈ 1 ms) may be 0.5 ms out of order.
        h.precision = Log2Seconds::new(-10);
        h.transmit_timestamp = h.receive_timestamp - NtpDuration::from_seconds_f64(0.5e-3);
        assert_eq!(checked(&h), Ok(Answer::Time(h)));
    }

    #[test]
    fn unsynchronised_servers_still_answer_with_time() {
        // Whether to use an unsynchronised server is the caller's policy, not an on-wire test.
        let mut h = reply();
        h.leap = Leap::Unsynchronized;
        h.stratum = 16;
        assert_eq!(checked(&h), Ok(Answer::Time(h)));
    }

    #[test]
    fn offsets_are_right_across_the_2036_era_boundary() {
        let t1 = NtpTimestamp::from_parts(u32::MAX, 0);
        let t2 = t1 + NtpDuration::from_seconds_f64(2.5);
        let m = Measurement::new(t1, t2, t2, t1);
        assert!((m.offset.to_seconds_f64() - 2.5).abs() < 1e-9, "{m:?}");
    }
}
