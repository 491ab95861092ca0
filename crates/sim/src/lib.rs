//! A deterministic simulator for sundial's core: virtual clocks and a virtual network drive
//! the real `sundial-proto` code in simulated time, so accuracy can be measured against a known
//! truth in milliseconds of real time.
//!
//! Everything is seeded: the same seed gives the same run, bit for bit.
//!
//! So far it simulates client/server exchanges against [`sundial_proto::server::Server`];
//! associations, selection and the clock discipline join as they are built.

use sundial_proto::packet::{HEADER_LEN, Mode, NtpHeader, Packet};
use sundial_proto::server::{Action, RequestMeta, Server};
use sundial_proto::system::SystemState;
use sundial_proto::time::{NtpDuration, NtpTimestamp, UnixTime};

/// A small, fast, seedable generator (SplitMix64): plenty for network jitter and loss.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[expect(
        clippy::cast_precision_loss,
        reason = "53 random bits are exact in f64"
    )]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponentially distributed with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }
}

/// A clock with a constant offset and frequency error relative to true time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VirtualClock {
    /// Offset from true time at true time zero, seconds.
    pub offset_s: f64,
    /// Frequency error, parts per million (positive: runs fast).
    pub freq_ppm: f64,
}

impl VirtualClock {
    /// A perfect clock.
    pub const PERFECT: Self = Self {
        offset_s: 0.0,
        freq_ppm: 0.0,
    };

    /// What the clock reads at true time `t` (seconds since the simulation epoch).
    pub fn read(&self, epoch: UnixTime, t: f64) -> NtpTimestamp {
        let reading = t + self.offset_s + t * self.freq_ppm * 1e-6;
        NtpTimestamp::from_unix(epoch.add_duration(NtpDuration::from_seconds_f64(reading)))
    }

    /// The clock's error at true time `t`, seconds.
    pub fn error_at(&self, t: f64) -> f64 {
        self.offset_s + t * self.freq_ppm * 1e-6
    }
}

/// One direction of a network path: a fixed delay plus exponential jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathDelay {
    /// Minimum one-way delay, seconds.
    pub base_s: f64,
    /// Mean of the exponential queueing delay added to it, seconds.
    pub jitter_mean_s: f64,
}

impl PathDelay {
    /// One sample of the one-way delay.
    pub fn sample(&self, rng: &mut SimRng) -> f64 {
        self.base_s + rng.exponential(self.jitter_mean_s)
    }
}

/// What a client measured in one exchange (RFC 5905 §8 on-wire calculation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// θ: server clock minus client clock, seconds.
    pub offset_s: f64,
    /// δ: round-trip delay, seconds.
    pub delay_s: f64,
    /// The reply header.
    pub reply: NtpHeader,
}

/// A client at `client` exchanges one request with `server` at true time `t`; returns what
/// the client measured, or `None` if the server dropped the request.
#[expect(
    clippy::too_many_arguments,
    reason = "a scenario is all of these at once"
)]
pub fn exchange(
    server: &Server,
    state: &SystemState,
    server_clock: VirtualClock,
    client_clock: VirtualClock,
    to_server: PathDelay,
    to_client: PathDelay,
    rng: &mut SimRng,
    epoch: UnixTime,
    t: f64,
) -> Option<Measurement> {
    let t1 = client_clock.read(epoch, t);
    let mut request = NtpHeader::new(4, Mode::Client);
    // A random transmit timestamp, as sundial's client sends: the client keeps T1 itself.
    request.transmit_timestamp = NtpTimestamp::from_bits(rng.next_u64());
    let mut req = [0u8; HEADER_LEN];
    request.emit(&mut req);

    let arrive = t + to_server.sample(rng);
    let process = 2e-6;
    let meta = RequestMeta {
        source: "192.0.2.100:40123".parse().ok()?,
        destination: None,
        receive_time: server_clock.read(epoch, arrive),
        monotonic: sundial_proto::time::MonoTime::from_duration(core::time::Duration::from_secs_f64(
            arrive.max(0.0),
        )),
        truncated: false,
    };
    let mut out = [0u8; 128];
    let Action::Reply(len) = server.handle(&meta, &req, state, &mut out, || {
        server_clock.read(epoch, arrive + process)
    }) else {
        return None;
    };
    let reply = Packet::parse(out.get(..len)?).ok()?.header;
    if reply.origin_timestamp != request.transmit_timestamp {
        return None;
    }
    let back = arrive + process + to_client.sample(rng);
    let t4 = client_clock.read(epoch, back);
    let (t2, t3) = (reply.receive_timestamp, reply.transmit_timestamp);
    let offset = ((t2 - t1) + (t3 - t4)).to_seconds_f64() / 2.0;
    let delay = ((t4 - t1) - (t3 - t2)).to_seconds_f64();
    Some(Measurement {
        offset_s: offset,
        delay_s: delay,
        reply,
    })
}

#[cfg(test)]
mod tests {
    use sundial_proto::packet::{Leap, ReferenceId};
    use sundial_proto::time::Log2Seconds;

    use super::*;

    const EPOCH: UnixTime = UnixTime::new(1_800_000_000, 0);

    fn synced() -> SystemState {
        SystemState {
            leap: Leap::NoWarning,
            stratum: 2,
            precision: Log2Seconds::new(-24),
            root_delay: NtpDuration::ZERO,
            root_dispersion: NtpDuration::ZERO,
            reference_id: ReferenceId::from_bytes([192, 0, 2, 1]),
            reference_time: NtpTimestamp::from_unix(EPOCH),
        }
    }

    #[test]
    fn symmetric_paths_measure_the_true_offset() {
        let mut rng = SimRng::new(1);
        let server = Server::default();
        let server_clock = VirtualClock {
            offset_s: 0.005,
            freq_ppm: 0.0,
        };
        let path = PathDelay {
            base_s: 100e-6,
            jitter_mean_s: 0.0,
        };
        let m = exchange(
            &server,
            &synced(),
            server_clock,
            VirtualClock::PERFECT,
            path,
            path,
            &mut rng,
            EPOCH,
            10.0,
        )
        .unwrap();
        assert!((m.offset_s - 0.005).abs() < 1e-8, "{}", m.offset_s);
        assert!((m.delay_s - 200e-6).abs() < 1e-8, "{}", m.delay_s);
        assert_eq!(m.reply.stratum, 2);
    }

    #[test]
    fn jitter_errors_are_bounded_by_half_the_extra_delay() {
        let mut rng = SimRng::new(7);
        let server = Server::default();
        let path = PathDelay {
            base_s: 100e-6,
            jitter_mean_s: 100e-6,
        };
        for i in 0..1000 {
            let t = f64::from(i) * 64.0;
            let m = exchange(
                &server,
                &synced(),
                VirtualClock::PERFECT,
                VirtualClock::PERFECT,
                path,
                path,
                &mut rng,
                EPOCH,
                t,
            )
            .unwrap();
            // |θ error| ≤ (δ − minimum δ) / 2 for any queueing delays.
            assert!(m.offset_s.abs() <= (m.delay_s - 200e-6) / 2.0 + 1e-8);
        }
        assert_eq!(server.counters().snapshot().replied, 1000);
    }

    #[test]
    fn runs_are_deterministic_by_seed() {
        let run = |seed| {
            let mut rng = SimRng::new(seed);
            let path = PathDelay {
                base_s: 1e-3,
                jitter_mean_s: 1e-3,
            };
            (0..10)
                .map(|i| {
                    exchange(
                        &Server::default(),
                        &synced(),
                        VirtualClock::PERFECT,
                        VirtualClock::PERFECT,
                        path,
                        path,
                        &mut rng,
                        EPOCH,
                        f64::from(i),
                    )
                    .unwrap()
                    .offset_s
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
