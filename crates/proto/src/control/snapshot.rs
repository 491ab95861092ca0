//! What the daemon tells the control responder: a plain, typed copy of its system and peer
//! variables, published by the main loop and read by whichever thread answers ntpq.
//!
//! Fields are named after the mode 6 variables they become (`rootdelay`, `hpoll`, …) so the
//! mapping is obvious; their doc comments give the unit. Times in seconds are rendered in
//! milliseconds, as ntpd does. Nothing here is formatted in advance except the three free-text
//! strings of the system (`version`, `processor`, `system`).

use core::net::{IpAddr, Ipv4Addr};
use core::num::NonZeroU16;

use super::auth::AuthVars;
use super::kernel::KernelVars;
use super::ntsinfo::NtsVars;
use super::status::{ClockSource, ClockStatus, PeerStatus, SystemStatus};
use crate::counters::CounterSnapshot;
use crate::filter::STAGES;
use crate::packet::{Leap, Mode, ReferenceId};
use crate::select::Tally;
use crate::time::NtpTimestamp;

/// Everything mode 6 can report, as of one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ControlSnapshot {
    /// The system variables (association 0).
    pub system: SystemVars,
    /// One entry per association, in any order (ntpq sorts by association id).
    pub peers: Vec<PeerVars>,
}

impl ControlSnapshot {
    /// The peer with association id `id`.
    pub fn peer(&self, id: u16) -> Option<&PeerVars> {
        self.peers.iter().find(|p| p.association_id.get() == id)
    }

    /// The association READCLOCK of association 0 reports: the system peer if it is a reference
    /// clock, else the first reference clock (ntpd's rule).
    pub fn default_clock(&self) -> Option<&PeerVars> {
        let system_peer = self
            .system
            .peer
            .and_then(|id| self.peer(id.get()))
            .filter(|p| p.is_refclock);
        system_peer.or_else(|| self.peers.iter().find(|p| p.is_refclock))
    }
}

/// An association id: non-zero, and stable for the association's life (ntpq caches them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssociationId(NonZeroU16);

impl AssociationId {
    /// The id `id`, or `None` for 0 (which means "the system" on the wire).
    pub const fn new(id: u16) -> Option<Self> {
        match NonZeroU16::new(id) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The id of a non-zero value.
    pub const fn from_nonzero(id: NonZeroU16) -> Self {
        Self(id)
    }

    /// The wire value.
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

/// The system variables of `ntpq -c rv` (NTPsec `sys_var[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SystemVars {
    /// Clock source of the status word.
    pub clock_source: ClockSource,
    /// System events since the last read (status word; saturates at 15).
    pub event_count: u8,
    /// Latest system event code (status word; 0–15, e.g. 5 `clock_sync`).
    pub event_code: u8,
    /// `version`: the daemon's version banner, e.g. `ntpd sundial-0.1.0`.
    pub version: String,
    /// `processor`: the machine architecture (`x86_64`).
    pub processor: String,
    /// `system`: operating system and release (`Linux/6.1.0`).
    pub system: String,
    /// `leap`: the system leap indicator (also the status word's LI).
    pub leap: Leap,
    /// `stratum`: 1–16; 16 is unsynchronised.
    pub stratum: u8,
    /// `precision`: of the local clock, log2 seconds.
    pub precision: i8,
    /// `rootdelay`: seconds (sent in ms).
    pub rootdelay: f64,
    /// `rootdisp`: seconds (sent in ms).
    pub rootdisp: f64,
    /// `refid`: shown as a dotted quad at stratum 2–15, as text otherwise.
    pub refid: ReferenceId,
    /// Whether `refid` names a clock rather than an address, so it is sent as text at any
    /// stratum: the local clock driver's `LOCL` while the server stands in on it (ntpq would
    /// otherwise show `76.79.67.76` at stratum 11).
    pub refid_is_text: bool,
    /// `reftime`: when the clock was last set or corrected.
    pub reftime: NtpTimestamp,
    /// `peer`: the system peer's association id, if there is one (sent as 0 otherwise).
    pub peer: Option<AssociationId>,
    /// `tc`: the clock discipline's time constant (poll exponent), log2 seconds.
    pub tc: i8,
    /// `mintc`: the smallest time constant allowed, log2 seconds.
    pub mintc: i8,
    /// `offset`: combined offset of the last clock update, seconds (sent in ms).
    pub offset: f64,
    /// `frequency`: the clock's frequency correction, PPM.
    pub frequency: f64,
    /// `sys_jitter`: combined jitter of the selected sources, seconds (sent in ms).
    pub sys_jitter: f64,
    /// `clk_jitter`: jitter of the clock offsets, seconds (sent in ms).
    pub clk_jitter: f64,
    /// `clk_wander`: frequency stability, PPM.
    pub clk_wander: f64,
    /// `tai`: TAI − UTC in seconds, when a leap-second file says so (omitted otherwise).
    pub tai: Option<i32>,
    /// `leapsec`: when the latest leap second of the leap file took effect (omitted without one).
    pub leapsec: Option<NtpTimestamp>,
    /// `expire`: when the leap file expires (omitted without one).
    pub expire: Option<NtpTimestamp>,
    /// `ss_uptime`: seconds since the daemon started (also `ss_reset`: sundial never resets
    /// its counters).
    pub uptime: u64,
    /// The server counters summed over every server thread, behind the `ss_*` variables of
    /// `ntpq -c sysstats` (see the `stats` module for how they map). Only sent when asked for
    /// by name, never in the defaults of `ntpq -c rv`.
    pub counters: CounterSnapshot,
    /// The kernel clock discipline (`ntpq -c kerninfo`), if the daemon read it.
    pub kernel: Option<KernelVars>,
    /// How the symmetric keys have been used (`ntpq -c authinfo`).
    pub auth: AuthVars,
    /// The NTS key-exchange counters (`ntpq -c ntsinfo`).
    pub nts: NtsVars,
}

impl SystemVars {
    /// The system status word.
    pub fn status(&self) -> SystemStatus {
        SystemStatus {
            leap: self.leap,
            source: self.clock_source,
            event_count: self.event_count,
            event_code: self.event_code,
        }
    }
}

impl Default for SystemVars {
    /// An unsynchronised server that has never had a source: LI 3, stratum 16, refid `INIT`.
    fn default() -> Self {
        Self {
            clock_source: ClockSource::Unspecified,
            event_count: 0,
            event_code: 0,
            version: String::new(),
            processor: String::new(),
            system: String::new(),
            leap: Leap::Unsynchronized,
            stratum: 16,
            precision: -20,
            rootdelay: 0.0,
            rootdisp: 0.0,
            refid: ReferenceId::INIT,
            refid_is_text: false,
            reftime: NtpTimestamp::ZERO,
            peer: None,
            tc: 0,
            mintc: 0,
            offset: 0.0,
            frequency: 0.0,
            sys_jitter: 0.0,
            clk_jitter: 0.0,
            clk_wander: 0.0,
            tai: None,
            leapsec: None,
            expire: None,
            uptime: 0,
            kernel: None,
            auth: AuthVars::default(),
            nts: NtsVars::default(),
            counters: CounterSnapshot::default(),
        }
    }
}

/// One clock filter stage as ntpq shows it (`filtdelay`, `filtoffset`, `filtdisp`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FilterStage {
    /// Round-trip delay, seconds (sent in ms).
    pub delay: f64,
    /// Offset, seconds (sent in ms).
    pub offset: f64,
    /// Dispersion, seconds (sent in ms); 16 s for an empty stage.
    pub dispersion: f64,
}

/// The variables of one association (`ntpq -c "rv ASSOC"`, one row of `ntpq -p`).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerVars {
    /// The association id.
    pub association_id: AssociationId,
    /// Status word: configured by ntp.conf (not ephemeral).
    pub configured: bool,
    /// Status word: authentication enabled for this association.
    pub auth_enabled: bool,
    /// Status word: the last packet was authentic.
    pub authentic: bool,
    /// Status word: what selection made of it; ntpq's tally character.
    pub tally: Tally,
    /// Peer events since the last read (status word; saturates at 15).
    pub event_count: u8,
    /// Latest peer event code (status word; 0–15, e.g. 4 `reachable`).
    pub event_code: u8,
    /// `srcadr`: the server's address; 0.0.0.0 for a pool prototype, 127.127.t.u for a
    /// reference clock.
    pub srcadr: IpAddr,
    /// `srcport`: the server's port (123; 0 for a pool prototype).
    pub srcport: u16,
    /// `srchost`: the configured name — a pool or server name, or a clock name like
    /// `LOCAL(0)`. ntpq shows it instead of an unspecified or 127.127.x.x address.
    pub srchost: Option<String>,
    /// `dstadr`: the local address it is polled from (0.0.0.0 if not bound yet).
    pub dstadr: IpAddr,
    /// `dstport`: the local port.
    pub dstport: u16,
    /// `leap`: the server's leap indicator.
    pub leap: Leap,
    /// `stratum`: the server's stratum (16 before its first reply).
    pub stratum: u8,
    /// `precision`: the server's precision, log2 seconds.
    pub precision: i8,
    /// `rootdelay`: the server's root delay, seconds (sent in ms).
    pub rootdelay: f64,
    /// `rootdisp`: the server's root dispersion, seconds (sent in ms).
    pub rootdisp: f64,
    /// `refid`: the server's reference id (text for reference clocks and strata 0, 1, 16).
    pub refid: ReferenceId,
    /// `reftime`: the server's reference time.
    pub reftime: NtpTimestamp,
    /// `rec`: local time of the last packet received from it (zero: never); ntpq's `when`.
    pub rec: NtpTimestamp,
    /// `reach`: the 8-bit reach shift register (sent in hex, shown in octal).
    pub reach: u8,
    /// `unreach`: polls since the server was last heard.
    pub unreach: u32,
    /// `hmode`: our association mode (3 client for server/pool lines).
    pub hmode: Mode,
    /// `pmode`: the mode of the server's last packet (4 server).
    pub pmode: Mode,
    /// `hpoll`: our poll exponent, log2 seconds.
    pub hpoll: i8,
    /// `ppoll`: the server's poll exponent, log2 seconds.
    pub ppoll: i8,
    /// `headway`: rate-limit headway, seconds (0 if unused).
    pub headway: u32,
    /// `flash`: bit mask of the packet tests that failed on the last packet.
    pub flash: u16,
    /// `keyid`: the symmetric key id, 0 for none.
    pub keyid: u32,
    /// `ntscookies`: cookies left in an NTS source's jar (NTPsec's name); `None` for a source
    /// without NTS, which shows no such variable.
    pub ntscookies: Option<u32>,
    /// `offset`: filtered offset (server − local), seconds (sent in ms).
    pub offset: f64,
    /// `delay`: filtered round-trip delay, seconds (sent in ms).
    pub delay: f64,
    /// `dispersion`: peer dispersion, seconds (sent in ms).
    pub dispersion: f64,
    /// `jitter`: peer jitter, seconds (sent in ms).
    pub jitter: f64,
    /// The clock filter, newest stage first.
    pub filter: [FilterStage; STAGES],
    /// The `pool` line's prototype association (it only spawns servers; ntpq shows `p`).
    pub is_pool_prototype: bool,
    /// A reference clock (`server 127.127.t.u`); READCLOCK answers only for these.
    pub is_refclock: bool,
    /// Reference clock variables for READCLOCK; ignored unless `is_refclock`.
    pub clock: ClockVars,
}

impl PeerVars {
    /// An association that has not heard from its server yet: stratum 16, refid `INIT`, empty
    /// filter, client mode.
    pub fn new(association_id: AssociationId, srcadr: IpAddr, srcport: u16) -> Self {
        Self {
            association_id,
            configured: true,
            auth_enabled: false,
            authentic: false,
            tally: Tally::Reject,
            event_count: 0,
            event_code: 0,
            srcadr,
            srcport,
            srchost: None,
            dstadr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dstport: 0,
            leap: Leap::Unsynchronized,
            stratum: 16,
            precision: 0,
            rootdelay: 0.0,
            rootdisp: 0.0,
            refid: ReferenceId::INIT,
            reftime: NtpTimestamp::ZERO,
            rec: NtpTimestamp::ZERO,
            reach: 0,
            unreach: 0,
            hmode: Mode::Client,
            pmode: Mode::Reserved,
            hpoll: 6,
            ppoll: 6,
            headway: 0,
            flash: 0,
            keyid: 0,
            ntscookies: None,
            offset: 0.0,
            delay: 0.0,
            dispersion: crate::filter::MAX_DISPERSION,
            jitter: 0.0,
            filter: [FilterStage {
                dispersion: crate::filter::MAX_DISPERSION,
                ..FilterStage::default()
            }; STAGES],
            is_pool_prototype: false,
            is_refclock: false,
            clock: ClockVars::default(),
        }
    }

    /// The peer status word. The reach bit follows the reach register; the broadcast bit is
    /// set for pool prototypes, as ntpd does (ntpq then shows reach `none`).
    pub fn status(&self) -> PeerStatus {
        PeerStatus {
            configured: self.configured,
            auth_enabled: self.auth_enabled,
            authentic: self.authentic,
            reachable: self.reach != 0,
            broadcast: self.is_pool_prototype,
            select: self.tally.select_code(),
            event_count: self.event_count,
            event_code: self.event_code,
        }
    }
}

/// Reference clock variables of READCLOCK (`ntpq -c cv`; ntpd `clock_var[]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClockVars {
    /// Clock events since the last read (clock status word; saturates at 15).
    pub event_count: u8,
    /// Latest clock event code (clock status word; 0 nominal, 1 noreply, …).
    pub event_code: u8,
    /// `name`: the driver's short name (`LOCAL`).
    pub name: String,
    /// `device`: the driver's description (`Undisciplined local clock`).
    pub device: String,
    /// `timecode`: the last time code received, as text (empty for the local clock).
    pub timecode: String,
    /// `poll`: polls of the clock since start.
    pub polls: u32,
    /// `noreply`: polls without an answer.
    pub noreply: u32,
    /// `badformat`: time codes that did not parse.
    pub badformat: u32,
    /// `baddata`: time codes with invalid data.
    pub baddata: u32,
    /// `fudgetime1`: `fudge time1`, seconds (sent in ms).
    pub fudgetime1: f64,
    /// `fudgetime2`: `fudge time2`, seconds (sent in ms).
    pub fudgetime2: f64,
    /// `stratum`: `fudge stratum`.
    pub stratum: u8,
    /// `refid`: `fudge refid` (text).
    pub refid: ReferenceId,
    /// `flags`: `fudge flag1`…`flag4` as bits 0–3.
    pub flags: u8,
}

impl ClockVars {
    /// The clock status word.
    pub fn status(&self) -> ClockStatus {
        ClockStatus {
            event_count: self.event_count,
            event_code: self.event_code,
        }
    }
}
