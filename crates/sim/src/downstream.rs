//! A client of the client: a second sundial `System` on its own virtual clock that polls the
//! client under test over a LAN path and is scored by its own true offset — what the client
//! under test gives the hosts that follow it, with everything it serves (the corrected time,
//! the leap indicator, root delay and dispersion) going through the real `Server`.
//!
//! The world drives it exactly as it drives the client under test; its random streams are its
//! own, so a scenario without one draws the same numbers as before.

use std::net::{IpAddr, Ipv4Addr};

use sundial_proto::auth::NoKeys;
use sundial_proto::packet::HEADER_LEN;
use sundial_proto::system::{SourceId, SourceSpec, System};
use sundial_proto::time::{MonoTime, NtpTimestamp};

use crate::clock::VirtualClock;
use crate::network::{Direction, Link};
use crate::rng::SimRng;
use crate::scenario::{ClientSpec, DownstreamReport, SYNC_LIMIT_S};

/// The downstream client's only association.
const ID: SourceId = SourceId(0);

/// The client under test's address, as the downstream client's `server` line names it.
const UPSTREAM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// When the downstream client polls first, true seconds: with the client under test, which
/// starts polling its own server one second in.
const FIRST_POLL_S: f64 = 1.0;

/// A host that follows the client under test.
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamSpec {
    /// Its clock and configuration (one `server` line: the client under test).
    pub client: ClientSpec,
    /// The path between the two.
    pub link: Link,
}

/// The downstream client while the world runs.
pub(crate) struct Downstream {
    pub(crate) clock: VirtualClock,
    pub(crate) system: System,
    link: Link,
    link_rng: SimRng,
    nonces: SimRng,
    /// (true time, true offset) once a second.
    offsets: Vec<(f64, f64)>,
}

impl Downstream {
    /// The client of `spec`, seeded from `seed` on streams no other part of the world uses;
    /// `system` is its system process (configured as the client under test's would be).
    pub(crate) fn new(
        spec: &DownstreamSpec,
        seed: u64,
        epoch: sundial_proto::time::UnixTime,
        mut system: System,
    ) -> Self {
        let source = SourceSpec {
            params: spec.client.source,
            address: Some(UPSTREAM),
            prefer: false,
            noselect: false,
            truechimer: false,
        };
        system.add_source(ID, source, mono(FIRST_POLL_S));
        Self {
            clock: VirtualClock::new(
                epoch,
                spec.client.offset_s,
                spec.client.oscillator,
                SimRng::fork(seed, 40_000),
            ),
            system,
            link: spec.link.clone(),
            link_rng: SimRng::fork(seed, 40_001),
            nonces: SimRng::fork(seed, 40_002),
            offsets: Vec::new(),
        }
    }

    /// When its poll falls due, true seconds.
    pub(crate) fn poll_due(&self) -> Option<f64> {
        self.system.poll_timeout().map(MonoTime::as_seconds_f64)
    }

    /// When its discipline's timer falls due, true seconds (a nanosecond late, so that the
    /// clock has surely reached the deadline).
    pub(crate) fn timer_due(&self) -> Option<f64> {
        self.system
            .clock_timeout()
            .map(|deadline| (self.clock.true_time_of(deadline) + 1e-9).max(self.clock.true_time()))
    }

    /// Sends its request if the poll is due at `t`: returns when the request arrives at the
    /// client under test and the request (`None`: nothing sent, or lost on the way).
    pub(crate) fn poll(&mut self, t: f64) -> Option<(f64, [u8; HEADER_LEN])> {
        let due = self.system.poll_timeout()?.max(mono(t));
        let mut bytes = [0u8; HEADER_LEN];
        let nonces = &mut self.nonces;
        self.system
            .poll_transmit(ID, due, &mut || nonces.next_u64(), &NoKeys, &mut bytes)?;
        self.system
            .handle_sent(ID, sundial_proto::clock::Clock::now(&self.clock));
        let at = self.link.transit(Direction::Up, t, &mut self.link_rng)?;
        Some((at, bytes))
    }

    /// When a reply sent at `t` arrives (`None`: lost).
    pub(crate) fn reply_arrival(&mut self, t: f64) -> Option<f64> {
        self.link.transit(Direction::Down, t, &mut self.link_rng)
    }

    /// Hands it a reply that arrived at true time `t`.
    pub(crate) fn receive(&mut self, t: f64, bytes: &[u8; HEADER_LEN]) {
        let t4: NtpTimestamp = sundial_proto::clock::Clock::now(&self.clock);
        self.system
            .handle_response(ID, t4, bytes, &NoKeys, &mut self.clock, mono(t));
        self.drain_events();
    }

    /// Runs its discipline's timer.
    pub(crate) fn handle_timeout(&mut self) {
        self.system.handle_timeout(&mut self.clock);
        self.drain_events();
    }

    /// Its events only matter to its own clock, which the system has already steered.
    fn drain_events(&mut self) {
        while self.system.poll_event().is_some() {}
    }

    /// Records its true offset at true time `t`.
    pub(crate) fn record(&mut self, t: f64) {
        self.offsets.push((t, self.clock.offset()));
    }

    /// Its score: from when on its true offset stayed under [`SYNC_LIMIT_S`], and the RMS and
    /// maximum of the true offset from then to the end.
    pub(crate) fn report(&self) -> DownstreamReport {
        let last_out = self
            .offsets
            .iter()
            .rposition(|&(_, o)| o.abs() >= SYNC_LIMIT_S);
        let from = last_out.map_or(0, |i| i + 1);
        let sync_s = self.offsets.get(from).map(|&(t, _)| t);
        let after = self.offsets.get(from..).unwrap_or_default();
        #[expect(clippy::cast_precision_loss, reason = "hours of seconds")]
        let n = after.len().max(1) as f64;
        DownstreamReport {
            sync_s,
            rms_s: (after.iter().map(|&(_, o)| o * o).sum::<f64>() / n).sqrt(),
            max_s: after.iter().map(|&(_, o)| o.abs()).fold(0.0, f64::max),
            packets_sent: self
                .system
                .sources()
                .map(|v| v.source.packet_counts().0)
                .sum(),
        }
    }
}

/// The address the client under test sees the downstream client's requests come from.
pub(crate) const DOWNSTREAM_ADDRESS: ([u8; 4], u16) = ([192, 0, 2, 2], 123);

fn mono(secs: f64) -> MonoTime {
    MonoTime::from_duration(std::time::Duration::from_secs_f64(secs.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Oscillator;
    use sundial_proto::discipline::DisciplineParams;
    use sundial_proto::fallback::Fallback;
    use sundial_proto::select::SelectParams;
    use sundial_proto::source::{Fitness, SourceParams};
    use sundial_proto::system::SystemParams;
    use sundial_proto::time::{Log2Seconds, UnixTime};

    fn downstream(offsets: &[f64]) -> Downstream {
        let spec = DownstreamSpec {
            client: ClientSpec {
                offset_s: 0.0,
                oscillator: Oscillator::constant(0.0),
                source: SourceParams::default(),
                discipline: DisciplineParams::default(),
                select: SelectParams::default(),
            },
            link: Link::symmetric(100e-6, 0.0),
        };
        let params = SystemParams {
            select: SelectParams::default(),
            fitness: Fitness::default(),
            discipline: None,
            poll_range: (6, 10),
            fallback: Fallback::None,
            upstream_configured: true,
            precision: Log2Seconds::new(-20),
            one_shot: false,
        };
        let mut d = Downstream::new(
            &spec,
            1,
            UnixTime::new(1_800_000_000, 0),
            System::new(params, mono(0.0)),
        );
        d.offsets = (1..).map(f64::from).zip(offsets.iter().copied()).collect();
        d
    }

    #[test]
    fn the_score_starts_after_the_last_reading_beyond_a_millisecond() {
        let r = downstream(&[0.05, 2e-3, 1e-4, 2e-3, 3e-4, -4e-4]).report();
        assert_eq!(r.sync_s, Some(5.0));
        assert!((r.max_s - 4e-4).abs() < 1e-12);
        assert!((r.rms_s - (12.5e-8_f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_client_still_a_millisecond_off_at_the_end_never_synchronised() {
        let r = downstream(&[1e-4, 2e-3]).report();
        assert_eq!(r.sync_s, None);
    }
}
