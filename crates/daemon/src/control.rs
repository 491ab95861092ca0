//! The daemon's side of mode 6 (what `ntpq` sees): the `ControlSnapshot` assembled from the
//! associations, the local clock and the system process, republished with every update. The
//! wire format and the responder are the core's (`sundial_proto::control`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use sundial_proto::control::{
    AssociationId, AuthVars, ClockSource, ClockVars, ControlSnapshot, FilterStage, KernelVars,
    PeerVars, SystemVars,
};
use sundial_proto::counters::CounterSnapshot;
use sundial_proto::fallback::Fallback;
use sundial_proto::packet::{Leap, Mode, ReferenceId};
use sundial_proto::select::Tally;
use sundial_proto::system::{Serving, SourceView, System, SystemReadout, SystemState};
use sundial_proto::time::{NtpDuration, NtpTimestamp};

use crate::associations::{Associations, Peer, source_id};
use crate::refclock::Refclock;

/// Peer event codes (RFC 9327 / ntpd): the last thing that happened to an association.
const EVENT_MOBILIZE: u8 = 1;
const EVENT_REACHABLE: u8 = 4;
const EVENT_SYS_PEER: u8 = 10;

/// System event code `clock_sync`.
const EVENT_CLOCK_SYNC: u8 = 5;

/// What the system process knows beyond the associations.
#[derive(Debug, Clone, Copy)]
pub struct SystemView<'a> {
    /// The state being served.
    pub state: &'a SystemState,
    /// The served time now.
    pub now: NtpTimestamp,
    /// Who is being followed.
    pub serving: Serving,
    /// The fallback configuration.
    pub fallback: &'a Fallback,
    /// Association id of the local clock driver's row.
    pub local_clock_id: Option<u16>,
    /// The system variables the discipline and selection report.
    pub readout: SystemReadout,
    /// Server counters summed over all threads (for `ntpq -c sysstats`).
    pub counters: CounterSnapshot,
    /// Time since start-up.
    pub uptime: std::time::Duration,
    /// The kernel clock discipline, read-only (`ntpq -c kerninfo`), if it could be read.
    pub kernel: Option<KernelVars>,
    /// How the symmetric keys have been used (`ntpq -c authinfo`).
    pub auth: AuthVars,
}

/// Reads the kernel's clock discipline without changing it (`adjtimex` with no modes, which
/// needs no privilege) in the units of the `kerninfo` variables.
pub fn read_kernel() -> Option<KernelVars> {
    let k = sundial_sys::clock::read_timex().ok()?;
    let us = |v: i64| v as f64 * 1e-6;
    Some(KernelVars {
        offset: k.offset_ns as f64 * 1e-9,
        frequency_ppm: k.frequency_ppm,
        max_error: us(k.max_error_us),
        est_error: us(k.est_error_us),
        status: k.status,
        time_constant: k.time_constant,
        precision: us(k.precision_us),
        tolerance_ppm: k.tolerance_ppm,
        pps_frequency_ppm: k.pps.frequency_ppm,
        pps_stability_ppm: k.pps.stability_ppm,
        pps_jitter: k.pps.jitter_ns as f64 * 1e-9,
        pps_calibration_interval: 1i64
            .checked_shl(u32::try_from(k.pps.shift).unwrap_or(0))
            .unwrap_or(0),
        pps_calibrations: k.pps.calibrations,
        pps_jitter_exceeded: k.pps.jitter_exceeded,
        pps_stability_exceeded: k.pps.stability_exceeded,
        pps_errors: k.pps.errors,
    })
}

/// The snapshot ntpq reads.
pub fn snapshot(
    associations: &Associations,
    system: &System,
    view: &SystemView<'_>,
) -> ControlSnapshot {
    let mut peers: Vec<PeerVars> = associations
        .pools()
        .iter()
        .filter_map(|pool| {
            let mut v = PeerVars::new(
                AssociationId::new(pool.id)?,
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                0,
            );
            v.srchost = Some(pool.name.clone());
            v.refid = ReferenceId::POOL;
            v.is_pool_prototype = true;
            v.event_count = 1;
            v.event_code = EVENT_MOBILIZE;
            Some(v)
        })
        .collect();
    peers.extend(associations.peers().iter().filter_map(|p| {
        let source = system.sources().find(|v| v.id == source_id(p.id))?;
        peer_vars(p, &source, view)
    }));
    peers.extend(associations.refclocks().clocks().iter().filter_map(|rc| {
        let source = system.sources().find(|v| v.id == source_id(rc.id))?;
        refclock_vars(rc, &source, view)
    }));
    if let (Some(id), Fallback::LocalClock { stratum, refid }) =
        (view.local_clock_id, view.fallback)
        && let Some(id) = AssociationId::new(id)
    {
        peers.push(local_clock(id, *stratum, *refid, view));
    }
    let mut system_vars = system_vars(view);
    nts_client_counts(system, &mut system_vars.nts);
    ControlSnapshot {
        system: system_vars,
        peers,
    }
}

/// The NTS associations' requests and replies (`ntpq -c ntsinfo`'s `nts_client_*`), summed
/// over the associations that exist now.
fn nts_client_counts(system: &System, nts: &mut sundial_proto::control::NtsVars) {
    use sundial_proto::source::Rejection;
    for view in system.sources().filter(|v| v.source.params().nts) {
        let (sent, received) = view.source.packet_counts();
        nts.client_send += sent;
        nts.client_recv_good += received;
        nts.client_recv_bad += [
            Rejection::BadMac,
            Rejection::Unauthenticated,
            Rejection::NtsNak,
        ]
        .into_iter()
        .map(|r| view.source.rejected(r))
        .sum::<u64>();
    }
}

fn system_vars(view: &SystemView<'_>) -> SystemVars {
    let s = view.state;
    let peer = match view.serving {
        Serving::Peer(id) => u16::try_from(id.0).ok().and_then(AssociationId::new),
        Serving::Fallback => view.local_clock_id.and_then(AssociationId::new),
        Serving::Unsynchronized => None,
    };
    let synced = s.is_synchronized();
    SystemVars {
        clock_source: match view.serving {
            Serving::Peer(_) => ClockSource::Ntp,
            Serving::Fallback => ClockSource::Local,
            Serving::Unsynchronized => ClockSource::Unspecified,
        },
        event_count: u8::from(synced),
        event_code: if synced { EVENT_CLOCK_SYNC } else { 0 },
        version: format!("ntpd sundial-{}", env!("CARGO_PKG_VERSION")),
        processor: std::env::consts::ARCH.to_owned(),
        system: system_name().to_owned(),
        leap: s.leap,
        stratum: s.stratum,
        precision: s.precision.exponent(),
        rootdelay: s.root_delay.to_seconds_f64(),
        rootdisp: s.root_dispersion_at(view.now).to_seconds_f64(),
        refid: s.reference_id,
        // A reference clock's name, as a stratum-1 server (or the local clock) claims it.
        refid_is_text: matches!(
            (view.serving, view.fallback),
            (Serving::Fallback, Fallback::LocalClock { .. })
        ) || (s.stratum == 1 && matches!(view.serving, Serving::Peer(_))),
        reftime: s.reference_time,
        peer,
        tc: view.readout.poll,
        mintc: view.readout.min_poll,
        offset: view.readout.offset.to_seconds_f64(),
        frequency: view.readout.frequency.value(),
        sys_jitter: view.readout.jitter.to_seconds_f64(),
        clk_jitter: view.readout.clk_jitter.to_seconds_f64(),
        clk_wander: view.readout.clk_wander.value(),
        tai: None,
        leapsec: None,
        expire: None,
        uptime: view.uptime.as_secs(),
        counters: view.counters,
        kernel: view.kernel,
        auth: view.auth,
        nts: nts_vars(),
    }
}

/// The key-exchange counters of this process.
fn nts_vars() -> sundial_proto::control::NtsVars {
    let [serves_good, serves_bad, refused, probes_good, probes_bad] = crate::nts::KE_COUNTERS.get();
    sundial_proto::control::NtsVars {
        ke_serves_good: serves_good,
        ke_serves_bad: serves_bad,
        ke_refused: refused,
        ke_probes_good: probes_good,
        ke_probes_bad: probes_bad,
        ke_cookies_made: crate::nts::KE_COUNTERS.cookies_made(),
        ..Default::default()
    }
}

/// What every association's row takes from its source, server or reference clock alike: the
/// tally, reach, polls, last receive time, event, the filter's estimate and its stages.
fn source_vars(v: &mut PeerVars, s: &SourceView<'_>, view: &SystemView<'_>) {
    let source = s.source;
    v.tally = s.tally;
    v.reach = source.reach();
    v.unreach = source.unreach();
    v.hpoll = source.hpoll();
    v.ppoll = source.hpoll();
    v.rec = source.last_receive();
    v.event_count = 1;
    v.event_code = match (view.serving, v.reach) {
        (Serving::Peer(id), _) if id == s.id => EVENT_SYS_PEER,
        (_, 0) => EVENT_MOBILIZE,
        _ => EVENT_REACHABLE,
    };
    if let Some(est) = source.estimate() {
        v.offset = est.offset;
        v.delay = est.delay;
        v.dispersion = est.dispersion;
        v.jitter = est.jitter;
    }
    for (stage, (delay, offset, disp)) in v.filter.iter_mut().zip(source.filter().stages(view.now))
    {
        *stage = FilterStage {
            delay,
            offset,
            dispersion: disp,
        };
    }
}

fn peer_vars(p: &Peer, s: &SourceView<'_>, view: &SystemView<'_>) -> Option<PeerVars> {
    let mut v = PeerVars::new(AssociationId::new(p.id)?, p.addr.ip(), p.addr.port());
    source_vars(&mut v, s, view);
    v.configured = p.pool.is_none();
    let source = s.source;
    if p.host != p.addr.ip().to_string() {
        v.srchost = Some(p.host.clone());
    }
    // As NTPsec: `authenb` for an association with a key, `authentic` once its last reply
    // verified under it; `keyid` names the key.
    if let Some(key) = source.params().key {
        v.auth_enabled = true;
        v.authentic = source.authentic();
        v.keyid = key;
    }
    // An NTS source is authenticated the same way (NTPsec shows it `authenb`/`authentic`
    // with no key id).
    if source.params().nts {
        v.auth_enabled = true;
        v.authentic = source.authentic();
        v.ntscookies = Some(u32::try_from(source.nts().cookies()).unwrap_or(u32::MAX));
    }
    if let Some(info) = source.peer() {
        v.leap = info.leap;
        v.stratum = info.stratum;
        v.precision = info.precision;
        v.rootdelay = info.root_delay.to_seconds_f64();
        v.rootdisp = info.root_dispersion.to_seconds_f64();
        v.refid = info.reference_id;
        v.reftime = info.reference_time;
        v.ppoll = info.poll;
        v.pmode = Mode::Server;
    }
    if let Some(denied) = source.denied() {
        // A server that refused service shows its kiss code, as ntpd does.
        v.refid = denied;
        v.stratum = 16;
    }
    Some(v)
}

/// A reference clock's row: ntpd's `SHM(0)` name and `127.127.T.U` address, what the clock
/// claims (stratum, refid as text), the source's filter, and the driver's counters for
/// `ntpq -c cv`.
fn refclock_vars(rc: &Refclock, s: &SourceView<'_>, view: &SystemView<'_>) -> Option<PeerVars> {
    let mut v = PeerVars::new(AssociationId::new(rc.id)?, rc.addr(), 123);
    source_vars(&mut v, s, view);
    let source = s.source;
    v.srchost = Some(rc.name());
    v.is_refclock = true;
    v.hmode = Mode::Client;
    v.refid = rc.info.reference_id;
    v.stratum = rc.info.stratum;
    v.precision = rc.info.precision;
    v.leap = source.peer().map_or(Leap::Unsynchronized, |p| p.leap);
    v.reftime = source
        .peer()
        .map_or(NtpTimestamp::ZERO, |p| p.reference_time);
    v.clock = ClockVars {
        name: rc.name(),
        device: rc.device.clone(),
        timecode: rc.timecode.clone(),
        polls: rc.counters.polls,
        noreply: rc.counters.noreply,
        badformat: rc.counters.badformat,
        baddata: rc.counters.baddata,
        fudgetime1: rc.time1.to_seconds_f64(),
        stratum: rc.info.stratum,
        refid: rc.info.reference_id,
        flags: rc.flags,
        ..ClockVars::default()
    };
    Some(v)
}

/// The local clock driver's row: always "reachable", offset 0, ntpd's `LOCAL(0)` name.
fn local_clock(
    id: AssociationId,
    stratum: u8,
    refid: ReferenceId,
    view: &SystemView<'_>,
) -> PeerVars {
    let mut v = PeerVars::new(id, IpAddr::V4(Ipv4Addr::new(127, 127, 1, 0)), 123);
    v.srchost = Some("LOCAL(0)".to_owned());
    v.is_refclock = true;
    v.refid = refid;
    v.stratum = stratum;
    v.leap = Leap::NoWarning;
    v.reach = 0o377;
    v.hpoll = 6;
    v.ppoll = 6;
    // The driver is "polled" every 64 s like ntpd's; `when` counts from the last of those.
    let since_poll =
        NtpDuration::from_seconds(i32::try_from(view.now.seconds() % 64).unwrap_or(0) + 1);
    v.rec = view.now - since_poll;
    v.reftime = v.rec;
    v.offset = 0.0;
    v.delay = 0.0;
    v.dispersion = sundial_proto::fallback::LOCAL_CLOCK_DISPERSION_S;
    v.hmode = Mode::Client;
    v.tally = if view.serving == Serving::Fallback {
        Tally::SystemPeer
    } else {
        Tally::Reject
    };
    v.event_count = 1;
    v.event_code = EVENT_REACHABLE;
    v.clock = ClockVars {
        name: "LOCAL(0)".to_owned(),
        device: "local clock".to_owned(),
        stratum,
        refid,
        ..ClockVars::default()
    };
    v
}

/// `Linux/RELEASE`, as ntpd reports `system`.
fn system_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        format!("Linux/{}", release.trim())
    })
}
