//! Scenarios: what the world looks like (client clock, servers, paths) and what a run measured.
//!
//! The presets are the acceptance scenarios of the "Discipline the clock" issue, built on
//! chrony's default simulation (client 0.1 s and 100 ppm off, 100 µs + exp(100 µs) each way).

use sundial_proto::discipline::DisciplineParams;
use sundial_proto::ratelimit::LimitParams;
use sundial_proto::select::SelectParams;
use sundial_proto::source::SourceParams;
use sundial_proto::time::NtpDuration;

use crate::clock::Oscillator;
use crate::downstream::DownstreamSpec;
use crate::network::{Link, Outage};

/// |offset| below which the client counts as synchronised, seconds (chrony's simulation tests
/// use the same 1 ms).
pub const SYNC_LIMIT_S: f64 = 1e-3;

/// One upstream server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    /// The server's clock minus true time, seconds (0 for a good server; a falseticker is far
    /// from 0).
    pub offset_s: f64,
    /// The path to it.
    pub link: Link,
    /// White phase noise of the server's clock: both timestamps of each reply are off by one
    /// normal draw with this standard deviation, seconds (0: a clean clock). Unlike queueing
    /// on the path it leaves the delay alone, so the clock filter cannot see through it.
    pub clock_noise_s: f64,
    /// From this true time on the server answers nothing (it was switched off).
    pub stops_at_s: Option<f64>,
    /// `restrict default limited kod` with these `discard` parameters: the real rate limiter
    /// of `sundial_proto::server`, which answers over-limit requests with RATE kisses.
    pub rate_limit: Option<LimitParams>,
    /// Forged replies in this server's name.
    pub spoofer: Option<Spoofer>,
    /// The options on the client's `server` line for it.
    pub options: ServerOptions,
}

/// Options of the client's `server` line that steer selection (ntp.conf `prefer`, `noselect`,
/// `true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerOptions {
    /// `prefer`: the system peer whenever it survives selection and clustering.
    pub prefer: bool,
    /// `noselect`: polled, never offered to selection.
    pub noselect: bool,
    /// `true`: always survives selection and clustering.
    pub truechimer: bool,
}

/// An attacker who forges a reply in a server's name for every request the client sends it,
/// timed to arrive before the genuine reply. It cannot read the request, so its origin
/// timestamp is wrong — except in the [`SpoofOrigin::Correct`] control case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spoofer {
    /// The origin timestamp the forgeries carry.
    pub origin: SpoofOrigin,
    /// The time the forgeries claim: their clock minus true time, seconds.
    pub offset_s: f64,
    /// How long after each request its forgery arrives, seconds (less than the path's
    /// round trip, so it comes first).
    pub lead_s: f64,
}

/// The origin timestamp of a forged reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoofOrigin {
    /// 64 random bits: a blind guess at the request's nonce.
    Guess,
    /// The nonce of the request before: a stale exchange replayed.
    Stale,
    /// The request's own nonce, as only an on-path attacker who reads the request can send
    /// it: the control case, which the origin check cannot catch.
    Correct,
}

/// A `pool` line: a name that resolves, round robin, to some of the scenario's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// The servers (indices into [`Scenario::servers`]) the name resolves to; they are
    /// mobilised only through the pool. Servers not listed are `server` lines.
    pub members: Vec<usize>,
    /// Addresses per answer: query k returns this many members starting at member
    /// k·`answer_len` (wrapping), as a round-robin DNS would.
    pub answer_len: usize,
}

/// The client: its clock and its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSpec {
    /// The client clock minus true time at the start, seconds.
    pub offset_s: f64,
    /// The client's oscillator.
    pub oscillator: Oscillator,
    /// Every association's parameters (`server … iburst minpoll … maxpoll …`).
    pub source: SourceParams,
    /// Thresholds, `-g`, `-q`, drift file.
    pub discipline: DisciplineParams,
    /// `tos minclock`, `maxclock` (also the most pool associations) and `minsane`.
    pub select: SelectParams,
}

/// A whole simulated world.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name for tables.
    pub name: &'static str,
    /// What it checks, for tables.
    pub description: &'static str,
    /// Seed of every random number in the run.
    pub seed: u64,
    /// Length of the run, true seconds.
    pub duration_s: f64,
    /// The client.
    pub client: ClientSpec,
    /// The servers, in association order.
    pub servers: Vec<ServerSpec>,
    /// A `pool` line drawing on some of the servers, if any.
    pub pool: Option<PoolSpec>,
    /// Reference clocks the client reads once a second.
    pub refclocks: Vec<RefclockSpec>,
    /// A host that follows the client, scored by its own true offset, if any.
    pub downstream: Option<DownstreamSpec>,
    /// What a run must achieve (the table for the acceptance scenarios).
    pub target: Target,
}

/// What a reference clock reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RefclockKind {
    /// A GPS's time: each second's time code arrives `late_s` after the second it names, with
    /// Gaussian jitter `jitter_s`; `time1_s` (`fudge time1`) is added to every reading.
    Gps {
        /// How late the time code arrives, seconds.
        late_s: f64,
        /// Standard deviation of its arrival, seconds.
        jitter_s: f64,
        /// `fudge time1`, seconds.
        time1_s: f64,
    },
    /// A pulse at the start of every true second, timestamped with Gaussian jitter
    /// `jitter_s`; the preferred system peer numbers the second (the pairing rule).
    Pps {
        /// Standard deviation of the pulse's time stamp, seconds.
        jitter_s: f64,
    },
}

/// A reference clock of the client (`server 127.127.T.U minpoll P maxpoll P [prefer]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefclockSpec {
    /// What it reads.
    pub kind: RefclockKind,
    /// Its poll exponent (fixed, as ntpd polls a reference clock).
    pub poll: i8,
    /// `prefer`.
    pub prefer: bool,
}

/// The acceptance target of a scenario; `None` fields are not part of it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Target {
    /// Latest sync, seconds (any sync at all counts when only `rms_s` is set).
    pub sync_s: Option<f64>,
    /// Largest RMS offset after sync, seconds.
    pub rms_s: Option<f64>,
    /// Largest offset after sync, seconds.
    pub max_s: Option<f64>,
    /// Exactly this many steps.
    pub steps: Option<u32>,
    /// Largest |offset| at the end, seconds.
    pub final_offset_s: Option<f64>,
    /// A server (index) that must never be the system peer.
    pub never_system_peer: Option<usize>,
    /// The stratum served at the end.
    pub final_stratum: Option<u8>,
    /// Latest sync of the downstream client, seconds.
    pub downstream_sync_s: Option<f64>,
    /// Largest RMS offset of the downstream client after its sync, seconds.
    pub downstream_rms_s: Option<f64>,
}

impl Target {
    /// Target (a): in sync within 120 s, then RMS ≤ 30 µs and never beyond 150 µs.
    pub const AS_A: Self = Self {
        sync_s: Some(120.0),
        rms_s: Some(30e-6),
        max_s: Some(150e-6),
        steps: None,
        final_offset_s: None,
        never_system_peer: None,
        final_stratum: None,
        downstream_sync_s: None,
        downstream_rms_s: None,
    };

    /// Whether the run `r` meets the target.
    pub fn met_by(&self, r: &Report) -> bool {
        let sync = match (self.sync_s, self.rms_s) {
            (Some(limit), _) => r.sync_s.is_some_and(|t| t <= limit),
            (None, Some(_)) => r.sync_s.is_some(),
            (None, None) => true,
        };
        let within = |limit: Option<f64>, value: f64| limit.is_none_or(|l| value <= l);
        // Every acceptance scenario: the served time is always within the advertised bound.
        sync && r.bound_misses == 0
            && within(self.rms_s, r.rms_s)
            && within(self.max_s, r.max_s)
            && within(self.final_offset_s, r.final_offset_s.abs())
            && self.steps.is_none_or(|n| r.steps == n)
            && self.final_stratum.is_none_or(|s| r.final_stratum == s)
            && self
                .never_system_peer
                .is_none_or(|i| r.system_peer_rounds.get(i).is_none_or(|&n| n == 0))
            && self.downstream_met_by(r)
    }

    fn downstream_met_by(&self, r: &Report) -> bool {
        if self.downstream_sync_s.is_none() && self.downstream_rms_s.is_none() {
            return true;
        }
        r.downstream.is_some_and(|d| {
            d.sync_s
                .is_some_and(|t| self.downstream_sync_s.is_none_or(|l| t <= l))
                && self.downstream_rms_s.is_none_or(|l| d.rms_s <= l)
        })
    }
}

/// What a run measured, against the true time only the simulator knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// From when on |offset| stayed below [`SYNC_LIMIT_S`], seconds; `None` if it was not
    /// below at the end.
    pub sync_s: Option<f64>,
    /// RMS of the true offset after sync, sampled every second, seconds.
    pub rms_s: f64,
    /// Largest |true offset| after sync, seconds.
    pub max_s: f64,
    /// RMS of the true offset over the last hour before any outage, seconds: the steady state
    /// without the start-up transient.
    pub settled_rms_s: f64,
    /// Largest |true offset| over the same span, seconds.
    pub settled_max_s: f64,
    /// When the largest offset after sync occurred, true seconds.
    pub max_at_s: f64,
    /// True offset at the end, seconds.
    pub final_offset_s: f64,
    /// Frequency error left at the end with the discipline's frequency correction, ppm.
    pub final_freq_error_ppm: f64,
    /// Requests the client sent.
    pub packets_sent: u64,
    /// Clock steps.
    pub steps: u32,
    /// Whether the discipline asked the daemon to exit (panic threshold).
    pub panicked: bool,
    /// Discipline updates that changed the clock.
    pub updates: u64,
    /// Per server: selection rounds in which it was the system peer.
    pub system_peer_rounds: Vec<u64>,
    /// Per server: selection rounds after the first clock update in which it was fit but not
    /// tallied `x`.
    pub trusted_rounds: Vec<u64>,
    /// The poll exponent the discipline recommended at the end.
    pub final_poll: i8,
    /// Seconds (readings) at which the client served time as synchronised.
    pub served_readings: u64,
    /// Of those, readings at which |served time − true time| exceeded the error bound it
    /// advertised (root delay / 2 + root dispersion): a dishonest server.
    pub bound_misses: u64,
    /// Largest |served time − true time| over the advertised bound at those readings.
    pub bound_max_ratio: f64,
    /// Largest |served time − true time| while serving as synchronised, seconds.
    pub served_max_s: f64,
    /// Mean advertised bound while serving as synchronised, seconds.
    pub bound_mean_s: f64,
    /// The stratum served at the end (16: unsynchronised).
    pub final_stratum: u8,
    /// The downstream client's score, if the scenario has one.
    pub downstream: Option<DownstreamReport>,
}

/// What the downstream client of a run achieved, against true time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownstreamReport {
    /// From when on its |offset| stayed below [`SYNC_LIMIT_S`], seconds; `None` if it was not
    /// below at the end.
    pub sync_s: Option<f64>,
    /// RMS of its true offset from then on, sampled every second, seconds.
    pub rms_s: f64,
    /// Largest |true offset| from then on, seconds.
    pub max_s: f64,
    /// Requests it sent.
    pub packets_sent: u64,
}

/// A report with nothing measured yet, for a world of `servers` servers.
pub fn empty_report(servers: usize) -> Report {
    Report {
        sync_s: None,
        rms_s: 0.0,
        max_s: 0.0,
        max_at_s: 0.0,
        settled_rms_s: 0.0,
        settled_max_s: 0.0,
        final_offset_s: 0.0,
        final_freq_error_ppm: 0.0,
        packets_sent: 0,
        steps: 0,
        panicked: false,
        updates: 0,
        system_peer_rounds: vec![0; servers],
        trusted_rounds: vec![0; servers],
        final_poll: 0,
        served_readings: 0,
        bound_misses: 0,
        bound_max_ratio: 0.0,
        served_max_s: 0.0,
        bound_mean_s: 0.0,
        final_stratum: 16,
        downstream: None,
    }
}

/// (a) One server, default polls, client 0.1 s and 100 ppm off, two hours.
pub fn baseline(seed: u64) -> Scenario {
    Scenario {
        name: "a",
        description: "1 server, +0.1 s, +100 ppm, 2 h",
        seed,
        duration_s: 7200.0,
        client: ClientSpec {
            offset_s: 0.1,
            oscillator: Oscillator::quartz(100.0),
            source: SourceParams::default(),
            discipline: DisciplineParams {
                frequency_hold: true,
                ..DisciplineParams::default()
            },
            select: SelectParams::default(),
        },
        servers: vec![good_server()],
        pool: None,
        refclocks: Vec::new(),
        downstream: None,
        target: Target {
            steps: Some(0),
            ..Target::AS_A
        },
    }
}

/// (b) As (a) with `iburst`.
pub fn iburst(seed: u64) -> Scenario {
    let mut s = baseline(seed);
    s.name = "b";
    s.description = "as (a) with iburst";
    s.client.source.iburst = true;
    s.target = Target {
        sync_s: Some(6.0),
        ..Target::default()
    };
    s
}

/// (c) Four servers, one of them a falseticker 50 ms off.
pub fn falseticker(seed: u64) -> Scenario {
    let mut s = baseline(seed);
    s.name = "c";
    s.description = "4 servers, one falseticker at +50 ms";
    s.servers = vec![
        good_server(),
        good_server(),
        falseticker_server(),
        good_server(),
    ];
    s.target = Target {
        never_system_peer: Some(2),
        ..Target::AS_A
    };
    s
}

/// (d) As (a) with 30 % loss of every datagram, each direction.
pub fn lossy(seed: u64) -> Scenario {
    let mut s = baseline(seed);
    s.name = "d";
    s.description = "as (a), 30 % loss each way";
    for server in &mut s.servers {
        server.link.loss = 0.3;
    }
    s.target = Target {
        rms_s: Some(60e-6),
        ..Target::default()
    };
    s
}

/// (e) The client starts 100 s off with the panic gate open (`-g`).
pub fn large_offset(seed: u64) -> Scenario {
    let mut s = baseline(seed);
    s.name = "e";
    s.description = "start 100 s off, -g";
    s.client.offset_s = 100.0;
    s.client.discipline.panic_gate = true;
    s.target = Target {
        steps: Some(1),
        ..Target::AS_A
    };
    s
}

/// (f) A 500 ppm frequency error.
pub fn large_frequency(seed: u64) -> Scenario {
    let mut s = baseline(seed);
    s.name = "f";
    s.description = "frequency error 500 ppm";
    s.client.oscillator.freq_ppm = 500.0;
    s.target = Target {
        sync_s: Some(1000.0),
        ..Target::default()
    };
    s
}

/// (g) Two hours in sync, then every server silent for an hour.
pub fn outage(seed: u64) -> Scenario {
    let mut s = baseline(seed);
    s.name = "g";
    s.description = "2 h, then all servers silent 1 h";
    s.duration_s = 3.0 * 3600.0;
    for server in &mut s.servers {
        server.link.outages.push(Outage {
            start_s: 2.0 * 3600.0,
            end_s: 3.0 * 3600.0 + 1.0,
        });
    }
    s.target = Target {
        final_offset_s: Some(1e-3),
        ..Target::default()
    };
    s
}

/// (i) A stratum-1 server: a GPS (100 ns jitter) as its only source, polled every 16 s.
pub fn gps(seed: u64) -> Scenario {
    let mut s = baseline(seed);
    s.name = "i";
    s.description = "GPS refclock, 100 ns jitter, 2 h";
    s.servers = Vec::new();
    s.refclocks = vec![RefclockSpec {
        kind: RefclockKind::Gps {
            late_s: 0.0,
            jitter_s: 100e-9,
            time1_s: 0.0,
        },
        poll: 4,
        prefer: true,
    }];
    s.target = Target {
        sync_s: Some(600.0),
        rms_s: Some(1e-6),
        final_stratum: Some(1),
        ..Target::default()
    };
    s
}

/// (h) The client as a LAN server: it starts as in (b), 0.1 s and 100 ppm off behind a perfect
/// upstream with iburst, and from the start a sundial client of its own (−50 ms, −50 ppm,
/// iburst, the same kind of path) follows it, scored by its true offset — clknetsim's
/// `downstream` scenario with sundial on both hosts.
pub fn downstream(seed: u64) -> Scenario {
    let mut s = iburst(seed);
    s.name = "h";
    s.description = "(b) serving a client of its own (−50 ms, −50 ppm, iburst)";
    s.downstream = Some(DownstreamSpec {
        client: ClientSpec {
            offset_s: -0.05,
            oscillator: Oscillator::quartz(-50.0),
            source: SourceParams {
                iburst: true,
                ..SourceParams::default()
            },
            discipline: DisciplineParams::default(),
            select: SelectParams::default(),
        },
        link: Link::symmetric(100e-6, 100e-6),
    });
    s.target = Target {
        downstream_sync_s: Some(DOWNSTREAM_SYNC_TARGET_S),
        downstream_rms_s: Some(DOWNSTREAM_RMS_TARGET_S),
        ..Target::default()
    };
    s
}

/// (h)'s downstream client is within 1 ms by then, seconds: 6–78 s over seeds 1–30 (up to 211 s
/// when the client under test claimed synchronisation from its first sample).
pub const DOWNSTREAM_SYNC_TARGET_S: f64 = 100.0;

/// (h)'s downstream client's RMS offset after its sync, over the two hours, stays within this,
/// seconds: 29–110 µs over seeds 1–30 (its own start-up included; 152 µs at worst when the
/// client under test claimed synchronisation from its first sample).
pub const DOWNSTREAM_RMS_TARGET_S: f64 = 130e-6;

/// (j) PPS (100 ns jitter, the GPS's own) numbered by a serial-timing GPS whose time codes arrive 0.4 s late
/// with 1 ms of jitter (`time1 0.4` takes the lateness out), both polled every 16 s.
pub fn pps_gps(seed: u64) -> Scenario {
    let mut s = gps(seed);
    s.name = "j";
    s.description = "PPS + serial GPS 0.4 s late, 2 h";
    s.refclocks = vec![
        RefclockSpec {
            kind: RefclockKind::Gps {
                late_s: 0.4,
                jitter_s: 1e-3,
                time1_s: 0.4,
            },
            poll: 4,
            prefer: true,
        },
        RefclockSpec {
            kind: RefclockKind::Pps { jitter_s: 100e-9 },
            poll: 4,
            prefer: false,
        },
    ];
    s
}

/// All acceptance scenarios, (a) to (h).
pub fn acceptance(seed: u64) -> Vec<Scenario> {
    vec![
        baseline(seed),
        iburst(seed),
        falseticker(seed),
        lossy(seed),
        large_offset(seed),
        large_frequency(seed),
        outage(seed),
        downstream(seed),
    ]
}

/// The reference clock scenarios, (i) and (j).
pub fn refclock(seed: u64) -> Vec<Scenario> {
    vec![gps(seed), pps_gps(seed)]
}

/// Every scenario of the accuracy table: [`acceptance`] and [`refclock`].
pub fn table(seed: u64) -> Vec<Scenario> {
    let mut all = acceptance(seed);
    all.extend(refclock(seed));
    all
}

/// A perfect server behind chrony's default path: 100 µs plus exp(100 µs) each way.
pub fn good_server() -> ServerSpec {
    ServerSpec {
        offset_s: 0.0,
        link: Link::symmetric(100e-6, 100e-6),
        clock_noise_s: 0.0,
        stops_at_s: None,
        rate_limit: None,
        spoofer: None,
        options: ServerOptions::default(),
    }
}

/// A server 50 ms ahead of true time behind the default path.
pub fn falseticker_server() -> ServerSpec {
    ServerSpec {
        offset_s: 0.05,
        ..good_server()
    }
}

/// A duration in seconds as the discipline's parameters take it.
pub fn seconds(s: f64) -> NtpDuration {
    NtpDuration::from_seconds_f64(s)
}
