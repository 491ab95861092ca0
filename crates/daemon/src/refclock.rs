//! Reference clocks: the I/O around `sundial_proto::refclock` for the drivers sundial has —
//! SHM (ntpd's type 28, the System V segment gpsd writes), SOCK (the datagram protocol gpsd
//! speaks to chrony) and PPS (type 22, RFC 2783 through `/dev/ppsN`).
//!
//! Every reference clock is a source of the core's `System` (`add_refclock`). Once a second the
//! main loop calls [`Refclocks::on_tick`]: each driver reads what arrived (the segment's record,
//! the datagrams queued, the newest pulse), the local receive times — kernel time in every
//! protocol — are mapped onto the disciplined clock (so that `--clock simulated` works), the
//! reading moves by `fudge time1` and goes to `System::handle_reading`; each clock's poll
//! interval then turns the readings into one sample (`System::handle_refclock`). Nothing a
//! writer puts into a segment or a datagram can do more than be counted as bad.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use sundial_proto::packet::ReferenceId;
use sundial_proto::refclock::shm::{DEFAULT_MAX_OFFSET, ShmReader, ShmRecord, ShmReject};
use sundial_proto::refclock::{Reading, pps, sock};
use sundial_proto::source::{Outcome, PeerInfo, SourceParams};
use sundial_proto::system::{SourceId, SourceSpec, System};
use sundial_proto::time::{MonoTime, NtpDuration, UnixTime};
use sundial_sys::pps::{Edge, PpsDevice};
use sundial_sys::shm::Segment;

use crate::clock::{SteeredClock, TimeMapping, kernel_now};
use crate::config::{Association, Config, Fudge, RefclockId};

/// The counters ntpq's `clockvar` shows (`poll`, `noreply`, `badformat`, `baddata`) and the
/// readings taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Polls of the clock.
    pub polls: u32,
    /// Polls without a reading.
    pub noreply: u32,
    /// Records or datagrams that could not be read as one (wrong mode, length, magic).
    pub badformat: u32,
    /// Records read but not used (torn, stale, out of range, too far).
    pub baddata: u32,
    /// Readings handed to the filter.
    pub readings: u64,
}

/// One configured reference clock.
#[derive(Debug)]
pub struct Refclock {
    /// Association id (ntpq's), also the source id in the system process.
    pub id: u16,
    /// Driver type and unit.
    pub clock: RefclockId,
    /// What the clock claims: stratum (`fudge stratum`, default 0), refid, precision.
    pub info: PeerInfo,
    /// `fudge time1`, added to every reading.
    pub time1: NtpDuration,
    /// `fudge time2` as SHM's limit on |offset| (`None` with `flag1`).
    max_offset: Option<f64>,
    /// `flag4`: a `clockstats` line per reading (they are written whenever `clockstats` is on).
    pub flags: u8,
    /// What ntpq shows as `device`.
    pub device: String,
    driver: Driver,
    poll: Duration,
    next_poll: MonoTime,
    /// Counters for ntpq.
    pub counters: Counters,
    /// The newest reading as text (ntpq's `timecode`, a `clockstats` line).
    pub timecode: String,
    /// `clockstats` lines not yet written: (kernel time, line without the time stamp).
    pending_stats: Vec<(UnixTime, String)>,
    /// Set when a problem was logged, so it is logged once.
    logged: bool,
}

#[derive(Debug)]
enum Driver {
    Shm {
        unit: u8,
        segment: Option<Segment>,
        reader: ShmReader,
    },
    Sock {
        path: PathBuf,
        socket: Option<UnixDatagram>,
    },
    Pps {
        path: PathBuf,
        edge: Edge,
        device: Option<Box<dyn PpsDevice>>,
        last_sequence: Option<u64>,
    },
}

impl Refclock {
    /// The driver name ntpq shows, `SHM(0)`.
    pub fn name(&self) -> String {
        format!(
            "{}({})",
            self.clock.driver_name().unwrap_or("REFCLK"),
            self.clock.unit
        )
    }

    /// The pseudo address `127.127.T.U`.
    pub fn addr(&self) -> IpAddr {
        IpAddr::V4(self.clock.addr())
    }

    /// The poll exponent.
    pub fn hpoll(&self) -> i8 {
        i8::try_from(self.poll.as_secs().max(1).ilog2()).unwrap_or(4)
    }

    fn source(&self) -> SourceId {
        SourceId(u32::from(self.id))
    }

    fn fail_once(&mut self, what: &str, e: &io::Error) {
        if !self.logged {
            tracing::warn!("{}: {what}: {e}; retrying every second", self.name());
            self.logged = true;
        }
    }

    /// The readings that arrived since the last tick.
    fn collect(&mut self, out: &mut Vec<(UnixTime, Reading)>) {
        let pivot = kernel_now();
        match &mut self.driver {
            Driver::Shm {
                unit,
                segment,
                reader,
            } => {
                if segment.is_none() {
                    match Segment::attach(*unit, true) {
                        Ok(s) => *segment = Some(s),
                        Err(e) => return self.fail_once("cannot attach the shared memory", &e),
                    }
                }
                let Some(seg) = segment.as_ref() else { return };
                let raw = seg.read();
                if raw.valid != 0 {
                    seg.clear_valid();
                }
                let record = ShmRecord {
                    mode: raw.mode,
                    count_before: raw.count_before,
                    count_after: raw.count_after,
                    clock_sec: raw.clock_sec,
                    clock_usec: raw.clock_usec,
                    clock_nsec: raw.clock_nsec,
                    receive_sec: raw.receive_sec,
                    receive_usec: raw.receive_usec,
                    receive_nsec: raw.receive_nsec,
                    leap: raw.leap,
                    precision: raw.precision,
                    valid: raw.valid,
                };
                match reader.check(&record, self.max_offset) {
                    Ok(reading) => out.push((reading.receive.to_unix(pivot), reading)),
                    Err(ShmReject::NotReady) => {}
                    Err(ShmReject::BadMode) => {
                        self.counters.badformat = self.counters.badformat.saturating_add(1)
                    }
                    Err(reason) => {
                        self.counters.baddata = self.counters.baddata.saturating_add(1);
                        tracing::debug!("{}: record dropped: {}", self.name(), reason.name());
                    }
                }
            }
            Driver::Sock { path, socket } => {
                if socket.is_none() {
                    // A socket left by an earlier run is replaced; nothing else at that path
                    // (a file, a link) is ever removed.
                    if std::fs::symlink_metadata(&*path).is_ok_and(|m| m.file_type().is_socket()) {
                        let _ = std::fs::remove_file(&*path);
                    }
                    match UnixDatagram::bind(&*path).and_then(|s| {
                        s.set_nonblocking(true)?;
                        Ok(s)
                    }) {
                        Ok(s) => *socket = Some(s),
                        Err(e) => return self.fail_once("cannot bind the socket", &e),
                    }
                }
                let Some(s) = socket.as_ref() else { return };
                let mut buf = [0u8; 64];
                // A bounded drain: a writer flooding the socket cannot hold the main loop.
                for _ in 0..64 {
                    let Ok(n) = s.recv(&mut buf) else { break };
                    match sock::parse(buf.get(..n).unwrap_or(&[])) {
                        Ok(sample) => {
                            out.push((sample.reading.receive.to_unix(pivot), sample.reading));
                        }
                        Err(sock::SockError::Range) => {
                            self.counters.baddata = self.counters.baddata.saturating_add(1)
                        }
                        Err(_) => {
                            self.counters.badformat = self.counters.badformat.saturating_add(1)
                        }
                    }
                }
            }
            Driver::Pps {
                path,
                edge,
                device,
                last_sequence,
            } => {
                if device.is_none() {
                    match sundial_sys::pps::open(path) {
                        Ok(d) => *device = Some(d),
                        Err(e) => return self.fail_once("cannot open the PPS device", &e),
                    }
                }
                let Some(dev) = device.as_mut() else { return };
                let pulse = match dev.fetch(*edge) {
                    Ok(p) => p,
                    Err(e) => return self.fail_once("PPS_FETCH failed", &e),
                };
                let Some(pulse) = pulse.filter(|p| Some(p.sequence) != *last_sequence) else {
                    return;
                };
                *last_sequence = Some(pulse.sequence);
                let kernel = UnixTime::new(pulse.secs, pulse.nanos);
                // The second the pulse starts is numbered in `on_tick`, on the disciplined
                // clock; until then the reading carries the edge's kernel time twice.
                let at = sundial_proto::time::NtpTimestamp::from_unix(kernel);
                out.push((
                    kernel,
                    Reading {
                        reference: at,
                        receive: at,
                        leap: sundial_proto::packet::Leap::NoWarning,
                    },
                ));
            }
        }
    }
}

/// Every configured reference clock other than the local clock.
#[derive(Debug, Default)]
pub struct Refclocks {
    clocks: Vec<Refclock>,
}

impl Refclocks {
    /// The reference clocks `config` configures, as sources of `system`, with ids from `id`.
    pub fn new(
        config: &Config,
        system: &mut System,
        now: MonoTime,
        mut id: impl FnMut() -> u16,
    ) -> Self {
        let mut clocks = Vec::new();
        for assoc in &config.associations {
            let Some(clock) = assoc.refclock() else {
                continue;
            };
            if clock.is_local() || !clock.is_supported() {
                continue;
            }
            let rc = Refclock::new(assoc, clock, &config.fudges, id(), now);
            let spec = SourceSpec {
                params: SourceParams {
                    minpoll: assoc.minpoll.exponent(),
                    maxpoll: assoc.minpoll.exponent(),
                    ..SourceParams::default()
                },
                address: None,
                prefer: assoc.prefer,
                noselect: assoc.noselect,
                truechimer: assoc.truechimer,
            };
            let added = if clock.kind == RefclockId::PPS {
                system.add_pps(rc.source(), spec, now)
            } else {
                system.add_refclock(rc.source(), spec, now)
            };
            if added {
                tracing::info!(
                    "association {}: {} ({}) mobilized",
                    rc.id,
                    rc.name(),
                    rc.device
                );
                clocks.push(rc);
            }
        }
        Self { clocks }
    }

    /// The configured reference clocks.
    pub fn clocks(&self) -> &[Refclock] {
        &self.clocks
    }

    /// The reference clock with association id `id`.
    pub fn get(&self, id: u16) -> Option<&Refclock> {
        self.clocks.iter().find(|c| c.id == id)
    }

    /// Once a second: reads every clock, and polls those whose interval is over. Returns
    /// whether any poll gave a sample.
    pub fn on_tick(
        &mut self,
        now: MonoTime,
        mapping: &TimeMapping,
        system: &mut System,
        clock: &mut SteeredClock,
    ) -> bool {
        let mut sampled = false;
        let mut readings = Vec::new();
        for rc in &mut self.clocks {
            readings.clear();
            rc.collect(&mut readings);
            for (kernel, raw) in readings.drain(..) {
                // Receive times are kernel time; the filter works on the disciplined clock.
                let receive = mapping.map(kernel);
                let reference = if matches!(rc.driver, Driver::Pps { .. }) {
                    // A pulse gives the fraction; the preferred system peer numbers the second.
                    match pps::pair(receive, system.pps_numbering()) {
                        Ok(r) => r.reference,
                        Err(_) => {
                            rc.counters.baddata = rc.counters.baddata.saturating_add(1);
                            continue;
                        }
                    }
                } else {
                    raw.reference
                };
                let reading = Reading {
                    reference,
                    receive,
                    leap: raw.leap,
                }
                .corrected(rc.time1);
                if system.handle_reading(rc.source(), reading) {
                    rc.counters.readings += 1;
                    rc.timecode = format!("{:+.9}", reading.offset());
                    rc.pending_stats.push((kernel, rc.timecode.clone()));
                }
            }
            if now >= rc.next_poll {
                rc.next_poll = now + rc.poll;
                rc.counters.polls = rc.counters.polls.saturating_add(1);
                match system.handle_refclock(rc.source(), rc.info, clock, now) {
                    Some(Outcome::Sample(_)) => sampled = true,
                    Some(_) => {}
                    None => rc.counters.noreply = rc.counters.noreply.saturating_add(1),
                }
            }
        }
        sampled
    }

    /// The `clockstats` lines since the last call: (time, clock address, timecode).
    pub fn take_clockstats(&mut self) -> Vec<(UnixTime, IpAddr, String)> {
        let mut lines = Vec::new();
        for rc in &mut self.clocks {
            let addr = rc.addr();
            lines.extend(rc.pending_stats.drain(..).map(|(t, l)| (t, addr, l)));
        }
        lines
    }
}

impl Refclock {
    fn new(
        assoc: &Association,
        clock: RefclockId,
        fudges: &[Fudge],
        id: u16,
        now: MonoTime,
    ) -> Self {
        let fudges = || fudges.iter().filter(move |f| f.clock == clock);
        let stratum: u8 = fudges().filter_map(|f| f.stratum).next_back().unwrap_or(0);
        let default_refid = match clock.kind {
            RefclockId::PPS => *b"PPS\0",
            RefclockId::SOCK => *b"SOCK",
            _ => *b"SHM\0",
        };
        let refid = fudges()
            .filter_map(|f| f.refid)
            .next_back()
            .unwrap_or_else(|| ReferenceId::from_bytes(default_refid));
        let time1 = fudges()
            .filter_map(|f| f.time1)
            .next_back()
            .unwrap_or(NtpDuration::ZERO);
        let flag = |i: usize| {
            fudges()
                .filter_map(|f| f.flags.get(i).copied().flatten())
                .next_back()
                .unwrap_or(false)
        };
        let time2 = fudges()
            .filter_map(|f| f.time2)
            .next_back()
            .map(NtpDuration::to_seconds_f64);
        let max_offset = if flag(0) {
            None
        } else {
            Some(
                time2
                    .filter(|t| (1.0..=86_400.0).contains(t))
                    .unwrap_or(DEFAULT_MAX_OFFSET),
            )
        };
        let flags = (0..4).fold(0u8, |acc, i| acc | (u8::from(flag(i)) << i));
        let (driver, device) = match clock.kind {
            RefclockId::PPS => {
                let path = assoc
                    .path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(format!("/dev/pps{}", clock.unit)));
                let device = format!("PPS {}", path.display());
                (
                    Driver::Pps {
                        path,
                        edge: if flag(1) { Edge::Clear } else { Edge::Assert },
                        device: None,
                        last_sequence: None,
                    },
                    device,
                )
            }
            RefclockId::SOCK => {
                let path = assoc.path.clone().unwrap_or_default();
                let device = format!("SOCK {}", path.display());
                (Driver::Sock { path, socket: None }, device)
            }
            _ => (
                Driver::Shm {
                    unit: clock.unit,
                    segment: None,
                    reader: ShmReader::new(),
                },
                format!(
                    "SHM key {:#x}",
                    sundial_sys::shm::KEY_BASE + i32::from(clock.unit)
                ),
            ),
        };
        let poll = Duration::from_secs(1 << assoc.minpoll.exponent().clamp(0, 17));
        Self {
            id,
            clock,
            info: PeerInfo {
                stratum,
                precision: -20,
                reference_id: refid,
                poll: assoc.minpoll.exponent(),
                ..PeerInfo::default()
            },
            time1,
            max_offset: if clock.kind == RefclockId::SHM {
                max_offset
            } else {
                None
            },
            flags,
            device,
            driver,
            poll,
            next_poll: now + poll,
            counters: Counters::default(),
            timecode: String::new(),
            pending_stats: Vec::new(),
            logged: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sundial_proto::fallback::Fallback;
    use sundial_proto::packet::Leap;
    use sundial_proto::select::SelectParams;
    use sundial_proto::source::Fitness;
    use sundial_proto::system::SystemParams;
    use sundial_proto::time::{Log2Seconds, NtpTimestamp};
    use sundial_sys::pps::{Edge, PpsDevice, Pulse};

    use super::*;

    /// A PPS device whose pulses arrive `late` seconds after each whole second of `base` + n.
    #[derive(Debug)]
    struct FakePps {
        base: i64,
        late_nanos: u32,
        n: u64,
    }

    impl PpsDevice for FakePps {
        fn fetch(&mut self, edge: Edge) -> io::Result<Option<Pulse>> {
            assert_eq!(edge, Edge::Assert);
            self.n += 1;
            Ok(Some(Pulse {
                secs: self.base + i64::try_from(self.n).unwrap_or(0),
                nanos: self.late_nanos,
                sequence: self.n,
            }))
        }
    }

    struct Rig {
        system: System,
        clock: SteeredClock,
        mapping: TimeMapping,
        refclocks: Refclocks,
        gps: SourceId,
        base: i64,
        now: MonoTime,
    }

    /// A system that steers nothing, a serial GPS (`prefer` or not) added directly, and a PPS
    /// clock on a fake device whose pulses come 3 ms after the second.
    fn make_rig(prefer: bool) -> Rig {
        let base = 1_800_000_000;
        let mapping = TimeMapping::new(UnixTime::new(base, 0), NtpDuration::ZERO, 0.0);
        let params = SystemParams {
            select: SelectParams::default(),
            fitness: Fitness::default(),
            discipline: None,
            poll_range: (2, 2),
            fallback: Fallback::None,
            upstream_configured: true,
            precision: Log2Seconds::new(-20),
            one_shot: false,
        };
        let now = MonoTime::ZERO;
        let mut system = System::new(params, now);
        let gps = SourceId(1);
        let spec = SourceSpec {
            params: SourceParams {
                minpoll: 2,
                maxpoll: 2,
                ..SourceParams::default()
            },
            address: None,
            prefer,
            noselect: false,
            truechimer: false,
        };
        assert!(system.add_refclock(gps, spec, now));
        let (config, _) = crate::config::parse_str(
            "server 127.127.22.0 minpoll 2 maxpoll 2\nfudge 127.127.22.0 refid PPS\n",
            Path::new("/nonexistent/ntp.conf"),
        );
        let mut refclocks = Refclocks::new(&config, &mut system, now, || 2);
        for rc in &mut refclocks.clocks {
            if let Driver::Pps { device, .. } = &mut rc.driver {
                *device = Some(Box::new(FakePps {
                    base,
                    late_nanos: 3_000_000,
                    n: 0,
                }));
            }
        }
        Rig {
            system,
            clock: SteeredClock::read_only(mapping),
            mapping,
            refclocks,
            gps,
            base,
            now,
        }
    }

    impl Rig {
        /// One second: a serial GPS reading whose lateness `fudge time1` has taken out to 2 ms
        /// (with `gps`), then the PPS tick.
        fn second(&mut self, n: i64, gps: bool) {
            self.now = self.now + Duration::from_secs(1);
            if gps {
                let t = NtpTimestamp::from_unix(UnixTime::new(self.base + n, 0));
                let reading = Reading {
                    reference: t,
                    receive: t + NtpDuration::from_seconds_f64(0.002),
                    leap: Leap::NoWarning,
                };
                assert!(self.system.handle_reading(self.gps, reading));
                if n % 4 == 0 {
                    let info = PeerInfo {
                        reference_id: ReferenceId::from_bytes(*b"GPS\0"),
                        ..PeerInfo::default()
                    };
                    self.system
                        .handle_refclock(self.gps, info, &mut self.clock, self.now);
                }
            }
            self.refclocks
                .on_tick(self.now, &self.mapping, &mut self.system, &mut self.clock);
        }

        fn pps(&self) -> &Refclock {
            self.refclocks.get(2).expect("the PPS clock")
        }
    }

    #[test]
    fn the_pulse_gives_the_fraction_while_a_preferred_gps_numbers_the_second() {
        let mut rig = make_rig(true);
        for n in 1..=16 {
            rig.second(n, true);
        }
        // The PPS clock took over as the system peer; the GPS still numbers its seconds.
        assert_eq!(rig.system.system_peer(), Some(SourceId(2)));
        assert!(rig.system.pps_numbering().is_some());
        let pps = rig.system.source(SourceId(2)).expect("PPS source");
        let est = pps.estimate().expect("the PPS clock has samples");
        // The pulses come 3 ms after the second; the GPS, 2 ms off, only numbers it.
        assert!((est.offset + 0.003).abs() < 1e-6, "{est:?}");
        // The three pulses before the GPS's first poll had no second to belong to.
        assert_eq!(rig.pps().counters.baddata, 3);
        assert_eq!(rig.pps().counters.readings, 13);
        assert_eq!(rig.pps().name(), "PPS(0)");
    }

    #[test]
    fn without_a_preferred_system_peer_no_pulse_is_used() {
        let mut rig = make_rig(false);
        for n in 1..=12 {
            rig.second(n, true);
        }
        assert_eq!(rig.system.system_peer(), Some(rig.gps));
        assert!(rig.system.source(SourceId(2)).unwrap().estimate().is_none());
        assert_eq!(rig.pps().counters.readings, 0);
        assert_eq!(rig.pps().counters.baddata, 12);
        // And with no GPS at all, none either.
        let mut lone = make_rig(true);
        for n in 1..=8 {
            lone.second(n, false);
        }
        assert_eq!(lone.pps().counters.readings, 0);
    }
}
