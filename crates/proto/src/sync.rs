//! The system process of RFC 5905 §11.2.3 and §13: what the server claims once it follows a
//! system peer, and how the poll interval adapts to the measured jitter.

use core::net::IpAddr;

use crate::filter::Estimate;
use crate::packet::{Leap, ReferenceId};
use crate::select::Selection;
use crate::source::PeerInfo;
use crate::system::{MAX_STRATUM, SystemState};
use crate::time::{Log2Seconds, NtpDuration};

/// Smallest root dispersion a synchronised server claims (ntpd `sys_mindisp`, 1 ms).
pub const MIN_ROOT_DISPERSION: f64 = 0.001;

/// The system peer as selection saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemPeer {
    /// Its address (its refid for our clients, unless it is a reference clock).
    pub addr: Option<IpAddr>,
    /// What it said about itself.
    pub info: PeerInfo,
    /// Its filter estimate.
    pub estimate: Estimate,
}

/// The state to serve while following `peer` (RFC 5905 A.5.5.4 `clock_update`):
/// stratum one below the peer's, refid naming the peer, root delay and dispersion accumulated
/// along the path, the leap warning the sources agree on, and as reference time the moment of
/// the last clock update — when the peer's newest sample arrived (ntpd's `sys_reftime`), so it
/// moves only when the clock is updated and clients see how stale the update is.
pub fn follow(
    peer: &SystemPeer,
    selection: &Selection,
    leap: Leap,
    precision: Log2Seconds,
) -> SystemState {
    let stratum = peer.info.stratum.saturating_add(1).min(MAX_STRATUM);
    let reference_id = match peer.addr {
        // A stratum-0 or stratum-1 peer passes its clock name on unchanged only when it is a
        // reference clock; a network peer is always named by its address.
        Some(addr) => ReferenceId::from_ip(addr),
        None => peer.info.reference_id,
    };
    let est = peer.estimate;
    // The dispersion's growth since the sample (PHI per second) is added when each reply is
    // sent (`SystemState::root_dispersion_at`), counting from the reference time.
    let root_delay = peer.info.root_delay.to_seconds_f64() + est.delay;
    let root_dispersion = peer.info.root_dispersion.to_seconds_f64()
        + est.dispersion
        + (est.jitter.powi(2) + selection.jitter.powi(2)).sqrt()
        + selection.offset.abs();
    SystemState {
        leap,
        stratum,
        precision,
        root_delay: NtpDuration::from_seconds_f64(root_delay),
        root_dispersion: NtpDuration::from_seconds_f64(root_dispersion.max(MIN_ROOT_DISPERSION)),
        reference_id,
        reference_time: est.time,
    }
}

/// The leap warning to pass on: what more than half of the given sources announce, otherwise
/// none. A single rogue server cannot insert a leap second.
pub fn leap_majority(leaps: impl IntoIterator<Item = Leap>) -> Leap {
    let (mut add, mut del, mut n) = (0usize, 0usize, 0usize);
    for l in leaps {
        n += 1;
        match l {
            Leap::AddSecond => add += 1,
            Leap::DeleteSecond => del += 1,
            _ => {}
        }
    }
    if 2 * add > n {
        Leap::AddSecond
    } else if 2 * del > n {
        Leap::DeleteSecond
    } else {
        Leap::NoWarning
    }
}

/// Hysteresis of the poll adaptation (RFC 5905 §11.3 LIMIT).
const POLL_LIMIT: i32 = 30;

/// Offsets under this many jitters count as "quiet" (RFC 5905 PGATE).
const POLL_GATE: f64 = 4.0;

/// Adapts the system poll exponent to the measured jitter (RFC 5905 §11.3, ntpd's weighting):
/// quiet updates slowly lengthen the poll interval, noisy ones shorten it twice as fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollAdapter {
    tc: i8,
    counter: i32,
    min: i8,
    max: i8,
}

impl PollAdapter {
    /// Starts at `min`.
    pub fn new(min: i8, max: i8) -> Self {
        let max = max.max(min);
        Self {
            tc: min,
            counter: 0,
            min,
            max,
        }
    }

    /// The current poll exponent.
    pub fn poll(&self) -> i8 {
        self.tc
    }

    /// Feeds one clock update with system offset and jitter; returns the new exponent.
    pub fn update(&mut self, offset: f64, jitter: f64) -> i8 {
        let weight = i32::from(self.tc.max(1));
        if offset.abs() < POLL_GATE * jitter {
            self.counter += weight;
            if self.counter >= POLL_LIMIT {
                self.counter = 0;
                self.tc = (self.tc + 1).min(self.max);
            }
        } else {
            self.counter -= 2 * weight;
            if self.counter <= -POLL_LIMIT {
                self.counter = 0;
                self.tc = (self.tc - 1).max(self.min);
            }
        }
        self.tc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::Tally;
    use crate::time::NtpShort;
    use crate::time::NtpTimestamp;

    #[test]
    fn following_a_stratum_2_peer_serves_stratum_3_named_by_its_address() {
        let now = NtpTimestamp::from_parts(0xec00_0000, 0);
        let peer = SystemPeer {
            addr: Some("192.0.2.10".parse().unwrap()),
            info: PeerInfo {
                leap: Leap::NoWarning,
                stratum: 2,
                precision: -20,
                root_delay: NtpShort::from_bits(0x0000_0100),
                root_dispersion: NtpShort::from_bits(0x0000_0200),
                reference_id: ReferenceId::from_bytes([10, 0, 0, 1]),
                reference_time: now,
                poll: 6,
            },
            estimate: Estimate {
                offset: 0.0001,
                delay: 0.0004,
                dispersion: 0.0001,
                jitter: 0.00002,
                time: now,
            },
        };
        let sel = Selection {
            tallies: vec![Tally::SystemPeer],
            system_peer: Some(0),
            offset: 0.0001,
            jitter: 0.00002,
        };
        let s = follow(&peer, &sel, Leap::NoWarning, Log2Seconds::new(-24));
        assert_eq!(s.stratum, 3);
        assert_eq!(s.reference_id.to_bytes(), [192, 0, 2, 10]);
        let delay = s.root_delay.to_seconds_f64();
        assert!((delay - (256.0 / 65536.0 + 0.0004)).abs() < 1e-9, "{delay}");
        assert!(s.root_dispersion.to_seconds_f64() >= MIN_ROOT_DISPERSION);
        assert!(s.is_synchronized());
    }

    fn peer_with(root_dispersion_bits: u32, estimate: Estimate) -> SystemPeer {
        SystemPeer {
            addr: None,
            info: PeerInfo {
                leap: Leap::NoWarning,
                stratum: 0,
                precision: -20,
                root_delay: NtpShort::from_bits(0),
                root_dispersion: NtpShort::from_bits(root_dispersion_bits),
                reference_id: ReferenceId::from_bytes(*b"GPS\0"),
                reference_time: estimate.time,
                poll: 4,
            },
            estimate,
        }
    }

    #[test]
    fn root_dispersion_adds_the_peer_s_the_filter_s_both_jitters_and_the_selected_offset() {
        let now = NtpTimestamp::from_parts(0xec00_0000, 0);
        // 2^-9 s from the peer, 3 ms from the filter, jitters 0.3 and 0.4 ms adding to 0.5 ms
        // in quadrature, and 0.7 ms of combined offset (its magnitude, whatever its sign).
        let peer = peer_with(
            128,
            Estimate {
                offset: -0.0007,
                delay: 0.0,
                dispersion: 0.003,
                jitter: 0.0003,
                time: now,
            },
        );
        let sel = Selection {
            tallies: vec![Tally::SystemPeer],
            system_peer: Some(0),
            offset: -0.0007,
            jitter: 0.0004,
        };
        let s = follow(&peer, &sel, Leap::AddSecond, Log2Seconds::new(-24));
        let expected = 128.0 / 65536.0 + 0.003 + 0.0005 + 0.0007;
        let got = s.root_dispersion.to_seconds_f64();
        assert!((got - expected).abs() < 1e-8, "{got} vs {expected}");
        // A reference clock (no address) passes its own name on; the reference time is when
        // the peer's newest sample arrived; the leap warning is the one given.
        assert_eq!(s.reference_id, ReferenceId::from_bytes(*b"GPS\0"));
        assert_eq!(s.stratum, 1);
        assert_eq!(s.reference_time, now);
        assert_eq!(s.leap, Leap::AddSecond);
    }

    #[test]
    fn a_tight_peer_still_claims_the_minimum_root_dispersion() {
        let now = NtpTimestamp::from_parts(0xec00_0000, 0);
        let est = Estimate {
            offset: 0.0,
            delay: 0.0,
            dispersion: 0.000_01,
            jitter: 0.000_001,
            time: now,
        };
        let sel = Selection {
            tallies: vec![Tally::SystemPeer],
            system_peer: Some(0),
            offset: 0.0,
            jitter: 0.000_001,
        };
        let s = follow(
            &peer_with(0, est),
            &sel,
            Leap::NoWarning,
            Log2Seconds::new(-24),
        );
        let got = s.root_dispersion.to_seconds_f64();
        assert!((got - MIN_ROOT_DISPERSION).abs() < 1e-8, "{got}");
    }

    #[test]
    fn leap_needs_a_majority() {
        use Leap::*;
        assert_eq!(leap_majority([AddSecond, AddSecond, NoWarning]), AddSecond);
        assert_eq!(leap_majority([AddSecond, NoWarning]), NoWarning);
        assert_eq!(
            leap_majority([DeleteSecond, DeleteSecond, DeleteSecond]),
            DeleteSecond
        );
        assert_eq!(leap_majority([]), NoWarning);
    }

    #[test]
    fn noisy_updates_count_twice_against_the_poll_and_limits_are_inclusive() {
        // At exponent 4 a quiet update counts 4: the seventh leaves the counter at 28, the
        // eighth reaches 32 ≥ 30 and lengthens the poll.
        let mut p = PollAdapter::new(4, 10);
        for _ in 0..7 {
            assert_eq!(p.update(1e-6, 1e-4), 4);
        }
        assert_eq!(p.update(1e-6, 1e-4), 5);
        // At exponent 5 a noisy update counts −2·5: the third reaches exactly −30 and shortens
        // the poll again.
        assert_eq!(p.update(1e-2, 1e-4), 5);
        assert_eq!(p.update(1e-2, 1e-4), 5);
        assert_eq!(p.update(1e-2, 1e-4), 4);
    }

    #[test]
    fn an_offset_of_exactly_four_jitters_is_noisy() {
        let mut quiet = PollAdapter::new(4, 10);
        let mut noisy = PollAdapter::new(4, 10);
        for _ in 0..8 {
            quiet.update(0.999, 0.25);
            noisy.update(1.0, 0.25);
        }
        assert_eq!(quiet.poll(), 5);
        assert_eq!(noisy.poll(), 4);
    }

    #[test]
    fn poll_grows_when_quiet_and_shrinks_when_noisy() {
        let mut p = PollAdapter::new(6, 10);
        for _ in 0..5 {
            p.update(1e-6, 1e-4);
        }
        assert_eq!(p.poll(), 7);
        for _ in 0..100 {
            p.update(1e-6, 1e-4);
        }
        assert_eq!(p.poll(), 10);
        for _ in 0..100 {
            p.update(1e-2, 1e-4);
        }
        assert_eq!(p.poll(), 6);
    }
}
