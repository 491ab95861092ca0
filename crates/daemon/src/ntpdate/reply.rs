//! The request ntpdate sends and the checks every reply must pass before it can count as a
//! sample (ntpdate.md §2.2, §5.2; protocol.md §3). Pure functions of bytes and timestamps, so
//! every rule is tested without a network.
//!
//! A reply is first matched to the outstanding request: mode 4, version 1–4 and an origin
//! timestamp equal to the request's random transmit timestamp. Anything that fails this match is
//! not an answer at all ([`NotAnswer`]): it is ignored and the request stays outstanding, so an
//! off-path attacker cannot even shorten our wait. A matching reply consumes the request (one
//! reply per request) and becomes an [`Answer`]: a kiss-o'-death, an unusable reply, or a sample.

use core::fmt;

use sundial_proto::onwire::{self, Measurement, Unusable};
use sundial_proto::packet::{HEADER_LEN, Leap, Mode, NtpHeader, Packet, ParseError, ReferenceId};
use sundial_proto::time::NtpTimestamp;

use crate::keys::SymmetricKey;

/// A reply that answered our outstanding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A usable measurement, with the header that describes the server.
    Sample {
        /// The reply's header.
        header: NtpHeader,
        /// The measurement.
        sample: Measurement,
    },
    /// A kiss-o'-death (stratum 0 with the leap alarm): never time, and for `RATE`, `DENY` and `RSTR` a request to
    /// stop asking (see [`ceases`]).
    Kiss {
        /// The reply's header; its refid is the kiss code.
        header: NtpHeader,
    },
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
            Self::Sample { header, .. } | Self::Kiss { header } | Self::Unusable { header, .. } => {
                header
            }
        }
    }
}

/// Why a datagram is not an answer to our request. It is dropped and the request keeps waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAnswer {
    /// Not a well-formed NTP packet: shorter than 48 octets, version 0 or 5–7, a control or
    /// private message, or a broken trailer.
    Malformed(ParseError),
    /// Longer than our receive buffer (cut by the kernel).
    Oversized,
    /// An NTP packet of a mode other than 4 (server).
    NotServerMode(Mode),
    /// Its origin timestamp is not the transmit timestamp of our outstanding request: a late
    /// duplicate, an answer to a request that timed out, or a spoofing attempt.
    WrongOrigin,
    /// It came from an address we asked nothing, or while nothing was outstanding.
    Unsolicited,
}

impl fmt::Display for NotAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed packet: {e}"),
            Self::Oversized => f.write_str("oversized packet"),
            Self::NotServerMode(m) => write!(f, "mode {} is not a server reply", m.bits()),
            Self::WrongOrigin => f.write_str("origin timestamp is not our request's"),
            Self::Unsolicited => f.write_str("no request outstanding for this address"),
        }
    }
}

/// The request: LI=3 (we have no synchronised clock), version `version`, mode 3, every other
/// field zero except the transmit timestamp, which is `nonce` — 64 random bits rather than our
/// clock, so that only a reply that saw the request can echo it and our time never leaves the
/// host (the true send time is kept locally as T1).
pub fn request(version: u8, nonce: NtpTimestamp) -> [u8; HEADER_LEN] {
    let mut header = NtpHeader::new(version, Mode::Client);
    header.leap = Leap::Unsynchronized;
    header.transmit_timestamp = nonce;
    let mut out = [0u8; HEADER_LEN];
    header.emit(&mut out);
    out
}

/// The request of [`request`] followed by `key`'s id and its MAC over the 48-octet header (as
/// classic ntpdate sends with `-a`): 68 octets with an MD5 or AES-CMAC key, 72 with SHA-1.
pub fn signed_request(version: u8, nonce: NtpTimestamp, key: &SymmetricKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + key.trailer_len());
    out.extend_from_slice(&request(version, nonce));
    key.append_mac(&mut out);
    out
}

/// Checks `datagram` against the outstanding request whose transmit timestamp was `nonce`, sent
/// at local time `t1`; the datagram arrived at local time `t4`. The rules are the daemon's
/// ([`onwire::check`]); ntpdate adds none of its own here and leaves unsynchronised servers to
/// its selection.
pub fn check(
    datagram: &[u8],
    nonce: NtpTimestamp,
    t1: NtpTimestamp,
    t4: NtpTimestamp,
) -> Result<Answer, NotAnswer> {
    let packet = Packet::parse(datagram).map_err(NotAnswer::Malformed)?;
    match onwire::check(&packet, nonce) {
        Ok(onwire::Answer::Time(header)) => Ok(match Measurement::checked_of(&header, t1, t4) {
            Some(sample) => Answer::Sample { header, sample },
            None => Answer::Unusable {
                header,
                reason: Unusable::OutOfRange,
            },
        }),
        Ok(onwire::Answer::Kiss(header)) => Ok(Answer::Kiss { header }),
        Ok(onwire::Answer::Unusable { header, reason }) => Ok(Answer::Unusable { header, reason }),
        Err(onwire::NotAnswer::NotServerMode(mode)) => Err(NotAnswer::NotServerMode(mode)),
        Err(onwire::NotAnswer::WrongOrigin) => Err(NotAnswer::WrongOrigin),
    }
}

/// Whether a kiss code asks the client to stop sending (`RATE`: slow down, which a one-shot tool
/// can only do by stopping; `DENY`, `RSTR`: access refused). Other stratum-0 replies — `INIT`
/// from a server that is not synchronised yet — only carry no time.
pub fn ceases(code: ReferenceId) -> bool {
    code.is_code(b"RATE") || code.is_code(b"DENY") || code.is_code(b"RSTR")
}

/// Whether a kiss code is `RATE`, which classic ntpdate reports as a rate limit response.
pub fn is_rate_limit(code: ReferenceId) -> bool {
    code.is_code(b"RATE")
}

#[cfg(test)]
mod tests {
    use sundial_proto::time::{Log2Seconds, NtpDuration};

    use super::*;

    const NONCE: NtpTimestamp = NtpTimestamp::from_bits(0x1234_5678_9abc_def0);
    const T1: NtpTimestamp = NtpTimestamp::from_parts(3_900_000_000, 0);

    /// A stratum-2 reply to [`NONCE`] from a server 1 s ahead, 20 ms each way, 1 ms processing.
    fn reply() -> NtpHeader {
        let mut h = NtpHeader::new(4, Mode::Server);
        h.stratum = 2;
        h.precision = Log2Seconds::new(-20);
        h.reference_id = ReferenceId::from_bytes([192, 0, 2, 1]);
        h.reference_timestamp = T1 - NtpDuration::from_seconds(60);
        h.origin_timestamp = NONCE;
        h.receive_timestamp = T1 + NtpDuration::from_seconds_f64(1.020);
        h.transmit_timestamp = T1 + NtpDuration::from_seconds_f64(1.021);
        h
    }

    fn t4() -> NtpTimestamp {
        T1 + NtpDuration::from_seconds_f64(0.041)
    }

    fn bytes(h: &NtpHeader) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        h.emit(&mut b);
        b
    }

    fn near(d: NtpDuration, seconds: f64) -> bool {
        (d.to_seconds_f64() - seconds).abs() < 1e-9
    }

    #[test]
    fn a_good_reply_gives_offset_and_delay() {
        let Ok(Answer::Sample { sample, header }) = check(&bytes(&reply()), NONCE, T1, t4()) else {
            panic!("a good reply must give a sample");
        };
        assert!(near(sample.offset, 1.0), "{sample:?}");
        assert!(near(sample.delay, 0.040), "{sample:?}");
        assert_eq!(header.stratum, 2);
    }

    #[test]
    fn request_is_48_octets_of_zero_but_header_bits_and_nonce() {
        let r = request(3, NONCE);
        assert_eq!(r[0], (3 << 6) | (3 << 3) | 3);
        assert!(r[1..40].iter().all(|&b| b == 0));
        assert_eq!(r[40..], NONCE.to_bits().to_be_bytes());
    }

    #[test]
    fn signed_requests_append_key_id_and_mac_over_the_header() {
        use crate::config::KeyId;
        use crate::keys::{KeyType, check_mac};

        let id = KeyId::new(258).unwrap();
        for (key_type, len) in [
            (KeyType::Md5, 68),
            (KeyType::Sha1, 72),
            (KeyType::Aes128Cmac, 68),
        ] {
            let key = SymmetricKey::new(id, key_type, b"secret").unwrap();
            let r = signed_request(4, NONCE, &key);
            assert_eq!(r.len(), len, "{key_type}");
            assert_eq!(r[..HEADER_LEN], request(4, NONCE));
            assert_eq!(r[HEADER_LEN..HEADER_LEN + 4], [0, 0, 1, 2]);
            assert_eq!(
                r[HEADER_LEN + 4..],
                *key.digest(&r[..HEADER_LEN]).as_bytes()
            );
            assert_eq!(check_mac(&key, &r), Ok(()));
        }
    }

    #[test]
    fn wrong_origin_is_not_an_answer() {
        let mut h = reply();
        h.origin_timestamp = NtpTimestamp::from_bits(NONCE.to_bits() ^ 1);
        assert_eq!(
            check(&bytes(&h), NONCE, T1, t4()),
            Err(NotAnswer::WrongOrigin)
        );
        // A zero nonce (nothing outstanding) never matches, not even a zero origin.
        h.origin_timestamp = NtpTimestamp::ZERO;
        let zero = NtpTimestamp::ZERO;
        assert_eq!(
            check(&bytes(&h), zero, T1, t4()),
            Err(NotAnswer::WrongOrigin)
        );
    }

    #[test]
    fn truncated_and_bad_version_replies_are_not_answers() {
        let b = bytes(&reply());
        assert!(matches!(
            check(&b[..47], NONCE, T1, t4()),
            Err(NotAnswer::Malformed(ParseError::TooShort { len: 47 }))
        ));
        let mut v5 = b;
        v5[0] = (5 << 3) | 4;
        assert!(matches!(
            check(&v5, NONCE, T1, t4()),
            Err(NotAnswer::Malformed(ParseError::BadVersion { version: 5 }))
        ));
    }

    #[test]
    fn only_server_mode_replies_are_answers() {
        for mode in [Mode::Client, Mode::SymmetricActive, Mode::Broadcast] {
            let mut h = reply();
            h.mode = mode;
            assert_eq!(
                check(&bytes(&h), NONCE, T1, t4()),
                Err(NotAnswer::NotServerMode(mode))
            );
        }
    }

    #[test]
    fn kiss_of_death_is_an_answer_without_time() {
        let mut h = reply();
        h.leap = Leap::Unsynchronized;
        h.stratum = 0;
        h.reference_id = ReferenceId::RATE;
        h.receive_timestamp = NtpTimestamp::ZERO;
        let answer = check(&bytes(&h), NONCE, T1, t4()).unwrap();
        assert!(matches!(answer, Answer::Kiss { .. }), "{answer:?}");
        assert!(ceases(ReferenceId::RATE) && is_rate_limit(ReferenceId::RATE));
        assert!(ceases(ReferenceId::DENY) && ceases(ReferenceId::RSTR));
        assert!(!ceases(ReferenceId::INIT) && !is_rate_limit(ReferenceId::DENY));
    }

    #[test]
    fn stratum_zero_without_the_leap_alarm_is_unusable_not_a_kiss() {
        // The daemon's rule (ntpd's and NTPsec's): a kiss needs LI=3 as well.
        let mut h = reply();
        h.stratum = 0;
        h.reference_id = ReferenceId::DENY;
        assert!(matches!(
            check(&bytes(&h), NONCE, T1, t4()),
            Ok(Answer::Unusable {
                reason: Unusable::InvalidStratum,
                ..
            })
        ));
    }

    #[test]
    fn zero_or_reversed_server_timestamps_are_unusable() {
        let mut h = reply();
        h.receive_timestamp = NtpTimestamp::ZERO;
        assert!(matches!(
            check(&bytes(&h), NONCE, T1, t4()),
            Ok(Answer::Unusable {
                reason: Unusable::ZeroTimestamp,
                ..
            })
        ));
        let mut h = reply();
        h.transmit_timestamp = NtpTimestamp::ZERO;
        assert!(matches!(
            check(&bytes(&h), NONCE, T1, t4()),
            Ok(Answer::Unusable {
                reason: Unusable::ZeroTimestamp,
                ..
            })
        ));
        let mut h = reply();
        h.transmit_timestamp = h.receive_timestamp - NtpDuration::from_seconds_f64(1e-6);
        assert!(matches!(
            check(&bytes(&h), NONCE, T1, t4()),
            Ok(Answer::Unusable {
                reason: Unusable::TransmitBeforeReceive,
                ..
            })
        ));
    }

    #[test]
    fn unsynchronised_and_stale_replies_still_measure_but_keep_their_header() {
        // Selection, not the reply check, rejects these servers: the header must survive.
        let mut h = reply();
        h.leap = Leap::Unsynchronized;
        h.stratum = 16;
        h.reference_timestamp = NtpTimestamp::ZERO;
        let Ok(Answer::Sample { header, .. }) = check(&bytes(&h), NONCE, T1, t4()) else {
            panic!("the reply passed every on-wire check");
        };
        assert_eq!((header.leap, header.stratum), (Leap::Unsynchronized, 16));
    }

    #[test]
    fn offsets_beyond_2_to_the_30_seconds_are_exact_and_impossible_delays_an_error() {
        // The server is 40 years (2^30.2 s) ahead: the classic saturation gave 2^30 s.
        let ahead = 40.0 * 365.25 * 86_400.0;
        let mut h = reply();
        h.receive_timestamp = T1 + NtpDuration::from_seconds_f64(ahead);
        h.transmit_timestamp = h.receive_timestamp;
        let Ok(Answer::Sample { sample, .. }) = check(&bytes(&h), NONCE, T1, T1) else {
            panic!("sample expected");
        };
        assert!(near(sample.offset, ahead), "{sample:?}");
        // The reply arrives 1.5e9 s before we sent the request, and the server took 1.5e9 s to
        // answer: a delay of -3e9 s, which no 32.32 value holds.
        let long = NtpDuration::from_seconds_f64(1.5e9);
        let t4 = T1 - long;
        let mut h = reply();
        h.receive_timestamp = T1;
        h.transmit_timestamp = T1 + long;
        assert!(matches!(
            check(&bytes(&h), NONCE, T1, t4),
            Ok(Answer::Unusable {
                reason: Unusable::OutOfRange,
                ..
            })
        ));
    }

    #[test]
    fn offsets_are_right_across_the_2036_era_boundary() {
        // Our clock just before the wrap, the server's just after it.
        let t1 = NtpTimestamp::from_parts(u32::MAX, 0);
        let mut h = reply();
        h.receive_timestamp = t1 + NtpDuration::from_seconds_f64(2.5);
        h.transmit_timestamp = h.receive_timestamp;
        let t4 = t1;
        let Ok(Answer::Sample { sample, .. }) = check(&bytes(&h), NONCE, t1, t4) else {
            panic!("sample expected");
        };
        assert!(near(sample.offset, 2.5), "{sample:?}");
    }
}
