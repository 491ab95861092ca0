//! Choosing the server whose offset sets the clock, by the rules of classic ntpdate's
//! `clock_select()` (ntpdate.md §2.3):
//!
//! 1. Each server is judged alone: no usable reply, a reply that failed authentication (with
//!    `-a`), stratum 0 or above 15, a round trip over 8 s, LI=3, a reference time after its
//!    transmit time or more than a day before it, or a kiss-o'-death — and it is dropped, with
//!    the classic `Server dropped: …` reason.
//!
//!    Classic ntpdate tests authentication last; sundial tests it right after "no data", because
//!    the header fields the other tests read are unverified when authentication failed. The same
//!    servers are dropped either way; only the reason `-d` prints can differ.
//! 2. The survivors are ranked by stratum, then by dispersion; the best five are kept, and only
//!    the two lowest strata among them.
//! 3. While the worst of them disagrees with the others by more than a skew limit, it is dropped.
//! 4. The first one left wins.

use core::fmt;
use std::net::SocketAddr;

use sundial_proto::packet::{Leap, NtpHeader, ReferenceId};

use sundial_proto::onwire::Measurement;

/// Longest round trip a usable server may have, and largest root distance it may claim,
/// seconds (classic `NTP_MAXWGT`).
pub const MAX_DELAY: f64 = 8.0;

/// Largest age of a server's reference time, seconds: a server that has not synchronised for a
/// day is not trusted (classic `NTP_MAXAGE`).
pub const MAX_REFERENCE_AGE: f64 = 86_400.0;

/// Most servers that take part after ranking (classic `NTP_MAXLIST`).
pub const MAX_CANDIDATES: usize = 5;

/// What a lost or unusable sample counts as in the dispersion, seconds (RFC 5905 `MAXDISP`).
pub const MAX_DISPERSION: f64 = 16.0;

/// Skew between survivors tolerated beyond their precisions, seconds (classic `NTP_MAXSKW`).
const MAX_SKEW: f64 = 0.01;

/// Precision classic ntpdate claims for its own clock, 2⁻⁶ s (`NTPDATE_PRECISION`).
const OWN_PRECISION: f64 = 1.0 / 64.0;

/// Each further-ranked survivor weighs this much less in the outlier test (classic
/// `NTP_SELECT`, 3/4).
const RANK_WEIGHT: f64 = 0.75;

/// Everything learnt about one server address during the query.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerResult {
    /// The address asked.
    pub addr: SocketAddr,
    /// One entry per request sent: the measurement, or `None` for a lost or unusable reply.
    pub samples: Vec<Option<Measurement>>,
    /// The header of the last reply that answered one of our requests.
    pub last_header: Option<NtpHeader>,
    /// The kiss code of a kiss-o'-death that made us stop asking.
    pub kiss: Option<ReferenceId>,
    /// Classic ntpdate's trust register: shifted left by every reply that answered a request,
    /// with the low bit set when that reply failed authentication. Always 0 without `-a`; any
    /// bit makes the server untrusted (at most 8 replies per server, so none is shifted out).
    pub trust: u8,
}

impl ServerResult {
    /// A server nothing is known about yet.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            samples: Vec::new(),
            last_header: None,
            kiss: None,
            trust: 0,
        }
    }

    /// Records whether a reply that answered a request was authentic.
    pub fn record_trust(&mut self, authentic: bool) {
        self.trust = (self.trust << 1) | u8::from(!authentic);
    }

    /// The sample with the shortest round trip: the least disturbed by queueing (classic ntpdate
    /// keeps the first of equal delays).
    pub fn best(&self) -> Option<Measurement> {
        self.samples
            .iter()
            .flatten()
            .copied()
            .reduce(|best, s| if s.delay < best.delay { s } else { best })
    }

    /// The stratum the server last reported; 0 when it never answered.
    pub fn stratum(&self) -> u8 {
        self.last_header.map_or(0, |h| h.stratum)
    }

    /// How much the samples disagree with the best one, seconds: the RFC 5905 §10 filter
    /// dispersion Σ εᵢ/2ⁱ over the samples in order of delay, each εᵢ being its distance from the
    /// best offset, a lost sample counting as [`MAX_DISPERSION`]. Servers that lose packets or
    /// jitter rank lower.
    pub fn dispersion(&self) -> f64 {
        let Some(best) = self.best() else {
            return MAX_DISPERSION;
        };
        let mut good: Vec<Measurement> = self.samples.iter().flatten().copied().collect();
        good.sort_by_key(|s| s.delay);
        let lost = self.samples.len() - good.len();
        let spreads = good
            .iter()
            .map(|s| {
                (s.offset - best.offset)
                    .abs()
                    .to_seconds_f64()
                    .min(MAX_DISPERSION)
            })
            .chain(std::iter::repeat_n(MAX_DISPERSION, lost));
        let mut weight = 1.0;
        let mut sum = 0.0;
        for spread in spreads.skip(1) {
            weight /= 2.0;
            sum += spread * weight;
        }
        sum
    }

    /// Whether this server may take part in selection, or why not.
    pub fn fitness(&self) -> Result<(), Drop> {
        let (Some(header), Some(best)) = (self.last_header, self.best()) else {
            return Err(Drop::NoData);
        };
        if self.kiss.is_some() || header.stratum == 0 {
            return Err(Drop::NoData);
        }
        if self.trust != 0 {
            return Err(Drop::Untrusted);
        }
        if header.stratum > 15 {
            return Err(Drop::StrataTooHigh);
        }
        if best.delay.to_seconds_f64() > MAX_DELAY {
            return Err(Drop::TooFarAway);
        }
        // The same limit on the root distance the server claims — its own root delay and
        // dispersion and its clock's precision on top of our path — so that a server cannot
        // have its clock trusted while claiming a precision of 2^127 s or a root delay of
        // 65535 s. Classic ntpdate only looked at the path; the message is its message.
        let distance = best.delay.to_seconds_f64() / 2.0
            + header.root_delay.to_seconds_f64() / 2.0
            + header.root_dispersion.to_seconds_f64()
            + header.precision.as_seconds_f64();
        if distance.is_nan() || distance > MAX_DELAY {
            return Err(Drop::TooFarAway);
        }
        if header.leap == Leap::Unsynchronized {
            return Err(Drop::LeapNotInSync);
        }
        // A zero reference time means "never synchronised": as old as it gets.
        if header.reference_timestamp.is_zero() {
            return Err(Drop::TooLongWithoutSync);
        }
        let age = header.transmit_timestamp - header.reference_timestamp;
        if age.is_negative() {
            return Err(Drop::VeryBroken);
        }
        if age.to_seconds_f64() >= MAX_REFERENCE_AGE {
            return Err(Drop::TooLongWithoutSync);
        }
        Ok(())
    }
}

/// Why a server cannot set the clock. The messages are classic ntpdate's `-d` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// No usable sample, stratum 0, or a kiss-o'-death.
    NoData,
    /// Stratum 16 or more: not synchronised.
    StrataTooHigh,
    /// Best round trip, or the root distance the server claims, over [`MAX_DELAY`].
    TooFarAway,
    /// LI=3: the server says its own clock is not synchronised.
    LeapNotInSync,
    /// Reference time after the transmit time.
    VeryBroken,
    /// Reference time zero or at least [`MAX_REFERENCE_AGE`] before the transmit time.
    TooLongWithoutSync,
    /// Too far from the other survivors (classic ntpdate drops these silently).
    Outlier,
    /// A reply failed authentication (`-a`).
    Untrusted,
}

impl fmt::Display for Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoData => "Server dropped: no data",
            Self::StrataTooHigh => "Server dropped: strata too high",
            Self::TooFarAway => "Server dropped: server too far away",
            Self::LeapNotInSync => "Server dropped: leap not in sync",
            Self::VeryBroken => "Server dropped: server is very broken",
            Self::TooLongWithoutSync => "Server dropped: server has gone too long without sync",
            Self::Outlier => "Server dropped: too far from the other servers",
            Self::Untrusted => "Server dropped: Server is untrusted",
        })
    }
}

/// Runs the selection over `servers` and returns the index of the server to use. `dropped` hears
/// about every server that was rejected, in input order for step 1.
pub fn select(servers: &[ServerResult], mut dropped: impl FnMut(usize, Drop)) -> Option<usize> {
    let mut fit: Vec<(usize, u8, f64)> = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        match server.fitness() {
            Ok(()) => fit.push((i, server.stratum(), server.dispersion())),
            Err(why) => dropped(i, why),
        }
    }
    // Stable: equal servers keep their command-line order.
    fit.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)));
    fit.truncate(MAX_CANDIDATES);
    let mut strata = fit.iter().map(|c| c.1).collect::<Vec<_>>();
    strata.dedup();
    if let Some(&second) = strata.get(1) {
        fit.retain(|c| c.1 <= second);
    }
    let mut list: Vec<usize> = fit.into_iter().map(|c| c.0).collect();
    while list.len() > 1 {
        let offset = |i: usize| {
            servers
                .get(i)
                .and_then(ServerResult::best)
                .map_or(0.0, |s| s.offset.to_seconds_f64())
        };
        let badness: Vec<f64> = list
            .iter()
            .map(|&k| {
                let mut weight = 1.0;
                let mut sum = 0.0;
                for &j in &list {
                    if j != k {
                        sum += (offset(j) - offset(k)).abs() * weight;
                    }
                    weight *= RANK_WEIGHT;
                }
                sum
            })
            .collect();
        let finest = list
            .iter()
            .filter_map(|&i| servers.get(i)?.last_header)
            .map(|h| h.precision.as_seconds_f64())
            .fold(f64::INFINITY, f64::min);
        // Ties go to the lower-ranked server.
        let Some((worst, &most)) = badness
            .iter()
            .enumerate()
            .reduce(|a, b| if b.1 >= a.1 { b } else { a })
        else {
            break;
        };
        if most < OWN_PRECISION + MAX_SKEW + finest {
            break;
        }
        dropped(list.remove(worst), Drop::Outlier);
    }
    list.first().copied()
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
