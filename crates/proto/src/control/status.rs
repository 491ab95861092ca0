//! The 16-bit status words of mode 6 (RFC 9327 §2.1–2.3) and the names ntpq shows for them.
//!
//! ```text
//! system:  | LI (2) | clock source (6) | event count (4) | event code (4) |
//! peer:    | status (5) | select (3)   | event count (4) | event code (4) |
//! clock:   | unused (8)              | event count (4) | event code (4) |
//! ```
//!
//! The server builds them from typed fields; the client decodes them for `ntpq -c as`, `rv` and
//! the tally character of `ntpq -p`.

use crate::packet::Leap;
use crate::select::Tally;

/// Peer status bit: the association was configured (not ephemeral).
const PEER_CONFIGURED: u16 = 0x8000;
/// Peer status bit: authentication is enabled for it.
const PEER_AUTH_ENABLED: u16 = 0x4000;
/// Peer status bit: its last packet was authentic (or authentication is not required).
const PEER_AUTHENTIC: u16 = 0x2000;
/// Peer status bit: its reach register is non-zero.
const PEER_REACHABLE: u16 = 0x1000;
/// Peer status bit: broadcast association (ntpd also sets it for pool prototypes).
const PEER_BROADCAST: u16 = 0x0800;

/// Largest event count a status word holds.
const MAX_EVENT_COUNT: u8 = 15;

/// Where the system clock gets its time (the 6-bit field of the system status word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClockSource {
    /// 0: not synchronised, or unknown.
    #[default]
    Unspecified,
    /// 1: pulse per second.
    Pps,
    /// 2: low-frequency radio (DCF77, WWVB, …).
    LfRadio,
    /// 3: high-frequency radio (WWV, CHU).
    HfRadio,
    /// 4: UHF radio and satellite (GPS).
    UhfRadio,
    /// 5: the local clock (undisciplined, `server 127.127.1.0`, orphan mode).
    Local,
    /// 6: an NTP server.
    Ntp,
    /// 7: some other source.
    Other,
    /// 8: eyeball and wristwatch.
    Wristwatch,
    /// 9: telephone modem (ACTS).
    Telephone,
    /// 10–63: codes without a name.
    Reserved(u8),
}

impl ClockSource {
    /// The source of a 6-bit wire value.
    pub const fn from_code(code: u8) -> Self {
        match code & 0x3f {
            0 => Self::Unspecified,
            1 => Self::Pps,
            2 => Self::LfRadio,
            3 => Self::HfRadio,
            4 => Self::UhfRadio,
            5 => Self::Local,
            6 => Self::Ntp,
            7 => Self::Other,
            8 => Self::Wristwatch,
            9 => Self::Telephone,
            other => Self::Reserved(other),
        }
    }

    /// The 6-bit wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::Pps => 1,
            Self::LfRadio => 2,
            Self::HfRadio => 3,
            Self::UhfRadio => 4,
            Self::Local => 5,
            Self::Ntp => 6,
            Self::Other => 7,
            Self::Wristwatch => 8,
            Self::Telephone => 9,
            Self::Reserved(code) => code & 0x3f,
        }
    }

    /// The name ntpq shows (`sync_ntp`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "sync_unspec",
            Self::Pps => "sync_pps",
            Self::LfRadio => "sync_lf_radio",
            Self::HfRadio => "sync_hf_radio",
            Self::UhfRadio => "sync_uhf_radio",
            Self::Local => "sync_local",
            Self::Ntp => "sync_ntp",
            Self::Other => "sync_other",
            Self::Wristwatch => "sync_wristwatch",
            Self::Telephone => "sync_telephone",
            Self::Reserved(_) => "sync_reserved",
        }
    }

    /// The text ntpq shows in a status decode: the name, or `sync_N` for unnamed codes.
    pub fn describe(self) -> String {
        match self {
            Self::Reserved(code) => format!("sync_{code}"),
            named => named.name().to_owned(),
        }
    }
}

/// System event codes (ntpd `EVNT_*`), index = code.
const SYSTEM_EVENTS: [&str; 16] = [
    "unspecified",
    "freq_not_set",
    "freq_set",
    "spike_detect",
    "freq_mode",
    "clock_sync",
    "restart",
    "panic_stop",
    "no_sys_peer",
    "leap_armed",
    "leap_disarmed",
    "leap_event",
    "clock_step",
    "kern",
    "TAI",
    "stale_leapsecond_values",
];

/// Peer event codes (ntpd `PEVNT_*` without the peer flag), index = code; 0 has no name.
const PEER_EVENTS: [&str; 16] = [
    "",
    "mobilize",
    "demobilize",
    "unreachable",
    "reachable",
    "restart",
    "no_reply",
    "rate_exceeded",
    "access_denied",
    "leap_armed",
    "sys_peer",
    "clock_event",
    "bad_auth",
    "popcorn",
    "interleave",
    "interleave_err",
];

/// Clock event codes (ntpd `CEVNT_*`: nominal, noreply, badformat, fault, bad signal, bad
/// date, bad time) as ntpq names them, index = code.
const CLOCK_EVENTS: [&str; 7] = [
    "clk_unspec",
    "clk_no_reply",
    "clk_bad_format",
    "clk_fault",
    "clk_bad_signal",
    "clk_bad_date",
    "clk_bad_time",
];

/// The selection conditions of `ntpq -c as`, index = select code (the tally of `ntpq -p`).
const CONDITIONS: [&str; 8] = [
    "reject",
    "falsetick",
    "excess",
    "outlier",
    "candidate",
    "backup",
    "sys.peer",
    "pps.peer",
];

/// The tally characters of `ntpq -p`, index = select code.
const TALLY_CHARS: [char; 8] = [' ', 'x', '.', '-', '+', '#', '*', 'o'];

/// The name of a system event code (`clock_sync`).
pub fn system_event_name(code: u8) -> &'static str {
    SYSTEM_EVENTS
        .get(usize::from(code & 0xf))
        .copied()
        .unwrap_or_default()
}

/// The name of a peer event code (`reachable`); empty for code 0.
pub fn peer_event_name(code: u8) -> &'static str {
    PEER_EVENTS
        .get(usize::from(code & 0xf))
        .copied()
        .unwrap_or_default()
}

/// The name of a clock event code (`clk_no_reply`); empty for codes without one.
pub fn clock_event_name(code: u8) -> &'static str {
    CLOCK_EVENTS
        .get(usize::from(code))
        .copied()
        .unwrap_or_default()
}

/// The name ntpq shows for a leap indicator (`leap_none`).
pub const fn leap_name(leap: Leap) -> &'static str {
    match leap {
        Leap::NoWarning => "leap_none",
        Leap::AddSecond => "leap_add_sec",
        Leap::DeleteSecond => "leap_del_sec",
        Leap::Unsynchronized => "leap_alarm",
    }
}

/// `N events` as ntpq writes it in a status decode.
fn event_count_text(count: u8) -> String {
    match count {
        0 => "no events".to_owned(),
        1 => "1 event".to_owned(),
        n => format!("{n} events"),
    }
}

/// The system status word: sent with READSTAT and READVAR of association 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SystemStatus {
    /// The system leap indicator.
    pub leap: Leap,
    /// What the clock is synchronised to.
    pub source: ClockSource,
    /// System events since the count was last read, saturating at 15.
    pub event_count: u8,
    /// Code of the latest system event (0–15; see [`system_event_name`]).
    pub event_code: u8,
}

impl SystemStatus {
    /// The 16-bit word.
    pub fn word(self) -> u16 {
        (u16::from(self.leap.bits()) << 14)
            | (u16::from(self.source.code()) << 8)
            | (u16::from(self.event_count.min(MAX_EVENT_COUNT)) << 4)
            | u16::from(self.event_code & 0xf)
    }

    /// Decodes a word.
    pub fn from_word(word: u16) -> Self {
        let [hi, lo] = word.to_be_bytes();
        Self {
            leap: Leap::from_bits(hi >> 6),
            source: ClockSource::from_code(hi),
            event_count: lo >> 4,
            event_code: lo & 0xf,
        }
    }

    /// The decode ntpq prints after `status=0615`: `leap_none, sync_ntp, 1 event, clock_sync`.
    pub fn describe(self) -> String {
        format!(
            "{}, {}, {}, {}",
            leap_name(self.leap),
            self.source.describe(),
            event_count_text(self.event_count),
            system_event_name(self.event_code)
        )
    }
}

/// A peer status word: sent in the READSTAT list and with READVAR of an association, where
/// its select field is the tally ntpq shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PeerStatus {
    /// Configured (not ephemeral).
    pub configured: bool,
    /// Authentication enabled for the association.
    pub auth_enabled: bool,
    /// The last packet was authentic.
    pub authentic: bool,
    /// The reach register is non-zero.
    pub reachable: bool,
    /// Broadcast association (or, in ntpd, a pool prototype).
    pub broadcast: bool,
    /// Select code 0–7: the tally (see [`Tally::select_code`]; 7 is a PPS peer).
    pub select: u8,
    /// Peer events since the count was last read, saturating at 15.
    pub event_count: u8,
    /// Code of the latest peer event (0–15; see [`peer_event_name`]).
    pub event_code: u8,
}

impl PeerStatus {
    /// The select code of a tally.
    pub const fn select_of(tally: Tally) -> u8 {
        tally.select_code()
    }

    /// The 16-bit word.
    pub fn word(self) -> u16 {
        let bit = |set: bool, mask: u16| if set { mask } else { 0 };
        bit(self.configured, PEER_CONFIGURED)
            | bit(self.auth_enabled, PEER_AUTH_ENABLED)
            | bit(self.authentic, PEER_AUTHENTIC)
            | bit(self.reachable, PEER_REACHABLE)
            | bit(self.broadcast, PEER_BROADCAST)
            | (u16::from(self.select & 7) << 8)
            | (u16::from(self.event_count.min(MAX_EVENT_COUNT)) << 4)
            | u16::from(self.event_code & 0xf)
    }

    /// Decodes a word.
    pub fn from_word(word: u16) -> Self {
        let [hi, lo] = word.to_be_bytes();
        Self {
            configured: word & PEER_CONFIGURED != 0,
            auth_enabled: word & PEER_AUTH_ENABLED != 0,
            authentic: word & PEER_AUTHENTIC != 0,
            reachable: word & PEER_REACHABLE != 0,
            broadcast: word & PEER_BROADCAST != 0,
            select: hi & 7,
            event_count: lo >> 4,
            event_code: lo & 0xf,
        }
    }

    /// The tally character of `ntpq -p` (`*` for the system peer).
    pub fn tally_char(self) -> char {
        TALLY_CHARS
            .get(usize::from(self.select))
            .copied()
            .unwrap_or(' ')
    }

    /// The `condition` column of `ntpq -c as` (`sys.peer`).
    pub fn condition(self) -> &'static str {
        CONDITIONS
            .get(usize::from(self.select))
            .copied()
            .unwrap_or_default()
    }

    /// The decode ntpq prints after `status=1614`: `reach, sel_sys.peer, 1 event, reachable`.
    pub fn describe(self) -> String {
        let mut parts: Vec<String> = [
            (self.configured, "conf"),
            (self.auth_enabled, "authenb"),
            (self.authentic, "auth"),
            (self.reachable, "reach"),
            (self.broadcast, "bcast"),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| (*name).to_owned())
        .collect();
        parts.push(format!("sel_{}", self.condition()));
        parts.push(event_count_text(self.event_count));
        let event = peer_event_name(self.event_code);
        if !event.is_empty() {
            parts.push(event.to_owned());
        }
        parts.join(", ")
    }
}

/// The clock status word of READCLOCK: the reference clock's own event count and last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClockStatus {
    /// Clock events since the count was last read, saturating at 15.
    pub event_count: u8,
    /// Code of the latest clock event (0 nominal … 6 bad_time; see [`clock_event_name`]).
    pub event_code: u8,
}

impl ClockStatus {
    /// The 16-bit word.
    pub fn word(self) -> u16 {
        (u16::from(self.event_count.min(MAX_EVENT_COUNT)) << 4) | u16::from(self.event_code & 0xf)
    }

    /// Decodes a word (the high octet is unused).
    pub fn from_word(word: u16) -> Self {
        let [_, lo] = word.to_be_bytes();
        Self {
            event_count: lo >> 4,
            event_code: lo & 0xf,
        }
    }

    /// The decode ntpq prints after `status=0000`: `no events, clk_unspec`.
    pub fn describe(self) -> String {
        let name = clock_event_name(self.event_code);
        let name = if name.is_empty() {
            format!("clk_{}", self.event_code)
        } else {
            name.to_owned()
        };
        format!("{}, {name}", event_count_text(self.event_count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_word_0615_is_synced_to_ntp_after_clock_sync() {
        let s = SystemStatus::from_word(0x0615);
        assert_eq!(s.leap, Leap::NoWarning);
        assert_eq!(s.source, ClockSource::Ntp);
        assert_eq!((s.event_count, s.event_code), (1, 5));
        assert_eq!(s.describe(), "leap_none, sync_ntp, 1 event, clock_sync");
        assert_eq!(s.word(), 0x0615);
    }

    #[test]
    fn peer_words_from_the_reference_decode_like_ntpq() {
        let sys_peer = PeerStatus::from_word(0x1614);
        assert_eq!(sys_peer.tally_char(), '*');
        assert_eq!(sys_peer.condition(), "sys.peer");
        assert_eq!(
            sys_peer.describe(),
            "reach, sel_sys.peer, 1 event, reachable"
        );
        assert_eq!(
            SystemStatus::from_word(0x3f18).describe(),
            "leap_none, sync_63, 1 event, no_sys_peer"
        );
        assert_eq!(
            ClockStatus::from_word(0x0021).describe(),
            "2 events, clk_no_reply"
        );
        assert_eq!(
            ClockStatus::from_word(0x0009).describe(),
            "no events, clk_9"
        );
        let mobilized = PeerStatus::from_word(0x8011);
        assert!(mobilized.configured && !mobilized.reachable);
        assert_eq!(mobilized.condition(), "reject");
        assert_eq!(peer_event_name(mobilized.event_code), "mobilize");
    }

    #[test]
    fn peer_word_is_built_from_a_tally() {
        let s = PeerStatus {
            configured: true,
            reachable: true,
            select: PeerStatus::select_of(Tally::Candidate),
            event_count: 20,
            event_code: 4,
            ..PeerStatus::default()
        };
        assert_eq!(s.word(), 0x94f4);
        assert_eq!(s.tally_char(), '+');
    }

    #[test]
    fn every_status_word_round_trips() {
        let mut checked = 0u32;
        for word in 0..=u16::MAX {
            assert_eq!(SystemStatus::from_word(word).word(), word);
            assert_eq!(PeerStatus::from_word(word).word(), word);
            checked += 1;
        }
        assert_eq!(checked, 1 << 16);
    }
}
