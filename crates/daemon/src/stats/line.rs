//! The lines of the classic statistics files, in the column layout ntpd 4.2.8 and NTPsec
//! 1.2.2 write, so that `ntpviz`, `peer.awk`/`loop.awk` and every script written for them read
//! sundial's files unchanged.
//!
//! Every line starts with the Modified Julian Day and the seconds past UTC midnight with three
//! decimals (`60999 7345.123`); NTPsec's `ntpviz` turns those two fields into Unix time.
//! Offsets, delays, dispersions and jitters are in seconds with nine decimals, frequencies in
//! ppm, as both ntpds write them.

use std::fmt::Write as _;
use std::net::IpAddr;

use sundial_proto::packet::ReferenceId;
use sundial_proto::time::{NtpTimestamp, UnixTime};

/// Days between the Modified Julian Day epoch (1858-11-17) and the Unix epoch.
const MJD_UNIX_EPOCH: i64 = 40_587;
const SECS_PER_DAY: i64 = 86_400;

/// `MJD SOD`: the day number and the seconds past midnight (milliseconds, truncated as ntpd
/// does).
pub fn stamp(t: UnixTime) -> String {
    let day = t.secs().div_euclid(SECS_PER_DAY);
    let sod = t.secs().rem_euclid(SECS_PER_DAY);
    let millis = t.subsec_nanos() / 1_000_000;
    format!("{} {sod}.{millis:03}", day + MJD_UNIX_EPOCH)
}

/// One `loopstats` line: a clock discipline update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopLine {
    /// The offset the discipline is correcting, seconds.
    pub offset: f64,
    /// The frequency correction, ppm.
    pub frequency: f64,
    /// The clock jitter (RMS of the offset differences), seconds.
    pub jitter: f64,
    /// The frequency wander (RMS of the frequency differences), ppm.
    pub wander: f64,
    /// The time constant, log2 of the poll interval.
    pub tc: i8,
}

impl LoopLine {
    /// `MJD SOD offset freq jitter wander tc` (NTPsec: `%.9f %.6f %.9f %.6f %d`).
    pub fn render(&self, at: UnixTime) -> String {
        format!(
            "{} {:.9} {:.6} {:.9} {:.6} {}\n",
            stamp(at),
            self.offset,
            self.frequency,
            self.jitter,
            self.wander,
            self.tc
        )
    }
}

/// One `peerstats` line: a sample from a source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerLine {
    /// The source's address.
    pub addr: IpAddr,
    /// Its peer status word (as ntpq's `rv ASSOC` status).
    pub status: u16,
    /// Filter offset, seconds.
    pub offset: f64,
    /// Filter delay, seconds.
    pub delay: f64,
    /// Filter dispersion, seconds.
    pub dispersion: f64,
    /// Filter jitter, seconds.
    pub jitter: f64,
}

impl PeerLine {
    /// `MJD SOD addr status offset delay dispersion jitter` (status as four hex digits).
    pub fn render(&self, at: UnixTime) -> String {
        format!(
            "{} {} {:04x} {:.9} {:.9} {:.9} {:.9}\n",
            stamp(at),
            self.addr,
            self.status,
            self.offset,
            self.delay,
            self.dispersion,
            self.jitter
        )
    }
}

/// One `rawstats` line: the four timestamps and the header of a reply a source accepted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawLine {
    /// The source's address.
    pub source: IpAddr,
    /// The local address the reply came to, if known.
    pub destination: Option<IpAddr>,
    /// T1 (request sent, local clock), T2 (server receive), T3 (server transmit), T4 (reply
    /// received, local clock).
    pub timestamps: [NtpTimestamp; 4],
    /// The reply's leap indicator, version, mode, stratum, poll and precision (log2 s).
    pub leap: u8,
    /// See `leap`.
    pub version: u8,
    /// See `leap`.
    pub mode: u8,
    /// See `leap`.
    pub stratum: u8,
    /// See `leap`.
    pub poll: i8,
    /// See `leap`.
    pub precision: i8,
    /// Root delay and dispersion, seconds.
    pub root_delay: f64,
    /// See `root_delay`.
    pub root_dispersion: f64,
    /// The reference id (a dotted quad at strata 2–15, else `.CODE.`).
    pub refid: ReferenceId,
    /// Requests that got no answer between the previous accepted reply and this one.
    pub lost: u64,
    /// Replies received and dropped since the previous accepted one.
    pub dropped: u64,
}

impl RawLine {
    /// `MJD SOD src dst T1 T2 T3 T4 leap version mode stratum poll precision rootdelay
    /// rootdisp refid lost dropped flash`: timestamps as NTP seconds with nine decimals, root
    /// delay and dispersion in seconds with six. The first seventeen fields are ntpd 4.2.8's;
    /// the last three NTPsec 1.2's (the flash bits in hex, always 0: only accepted replies are
    /// recorded).
    pub fn render(&self, at: UnixTime) -> String {
        let mut line = format!("{} {} ", stamp(at), self.source);
        match self.destination {
            Some(d) => {
                let _ = write!(line, "{d}");
            }
            None => line.push('-'),
        }
        for t in self.timestamps {
            let _ = write!(line, " {}", ntp_seconds(t));
        }
        let refid = if (2..16).contains(&self.stratum) {
            self.refid.display_for_stratum(self.stratum)
        } else {
            format!(".{}.", self.refid.display_for_stratum(self.stratum))
        };
        let _ = writeln!(
            line,
            " {} {} {} {} {} {} {:.6} {:.6} {refid} {} {} 0",
            self.leap,
            self.version,
            self.mode,
            self.stratum,
            self.poll,
            self.precision,
            self.root_delay,
            self.root_dispersion,
            self.lost,
            self.dropped,
        );
        line
    }
}

/// An NTP timestamp as seconds of its era with nine decimals (ntpd's `ulfptoa(t, 9)`).
fn ntp_seconds(t: NtpTimestamp) -> String {
    let nanos = (u128::from(t.fraction()) * 1_000_000_000 + (1 << 31)) >> 32;
    let (seconds, nanos) = if nanos >= 1_000_000_000 {
        (u64::from(t.seconds()) + 1, nanos - 1_000_000_000)
    } else {
        (u64::from(t.seconds()), nanos)
    };
    format!("{seconds}.{nanos:09}")
}

/// One `sysstats` line: the server counters, written once an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysLine {
    /// Seconds since the counters started (sundial never resets them: the uptime).
    pub since_reset: u64,
    /// Datagrams received.
    pub received: u64,
    /// Requests processed for time.
    pub processed: u64,
    /// Datagrams of the current version (4).
    pub current_version: u64,
    /// Datagrams of older versions (1–3).
    pub old_version: u64,
    /// Refused by `restrict`.
    pub restricted: u64,
    /// Bad length or format.
    pub bad_format: u64,
    /// Failed authentication.
    pub bad_auth: u64,
    /// Declined (a mode or source not served).
    pub declined: u64,
    /// Over a rate limit.
    pub limited: u64,
    /// RATE kisses sent.
    pub kod_sent: u64,
}

impl SysLine {
    /// `MJD SOD` and the eleven counters in ntpd's order.
    pub fn render(&self, at: UnixTime) -> String {
        let mut line = stamp(at);
        for n in [
            self.since_reset,
            self.received,
            self.processed,
            self.current_version,
            self.old_version,
            self.restricted,
            self.bad_format,
            self.bad_auth,
            self.declined,
            self.limited,
            self.kod_sent,
        ] {
            let _ = write!(line, " {n}");
        }
        line.push('\n');
        line
    }
}

/// One `protostats` line: a system or peer event, as ntpd's event reports
/// (`ADDR STATUS CODE NAME`, the system's address being `0.0.0.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoLine {
    /// The peer's address, or `None` for a system event.
    pub addr: Option<IpAddr>,
    /// The system or peer status word after the event.
    pub status: u16,
    /// The event code (RFC 9327 tables; ntpq-mode6.md §5.2).
    pub code: u8,
    /// The event's name and any detail (`clock_step +0.500000 s`).
    pub text: String,
}

impl ProtoLine {
    /// `MJD SOD ADDR STATUS(hex4) CODE(hex2) TEXT`.
    pub fn render(&self, at: UnixTime) -> String {
        let addr = self
            .addr
            .map_or_else(|| "0.0.0.0".to_owned(), |a| a.to_string());
        format!(
            "{} {addr} {:04x} {:02x} {}\n",
            stamp(at),
            self.status,
            self.code,
            self.text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 02:30:00.250 UTC.
    fn at() -> UnixTime {
        UnixTime::new(1_796_610_600, 250_000_000)
    }

    #[test]
    fn stamp_is_mjd_and_seconds_past_midnight_with_milliseconds() {
        // 1796610600 / 86400 = 20794 days (+ 9000 s) after 1970-01-01; MJD 40587 + 20794.
        assert_eq!(stamp(at()), "61381 9000.250");
        assert_eq!(stamp(UnixTime::new(0, 999_999_999)), "40587 0.999");
    }

    #[test]
    fn loopstats_has_seven_fields_in_ntpsec_precision() {
        let line = LoopLine {
            offset: -0.000_123_456_7,
            frequency: 12.5,
            jitter: 0.000_01,
            wander: 0.002,
            tc: 6,
        }
        .render(at());
        assert_eq!(
            line,
            "61381 9000.250 -0.000123457 12.500000 0.000010000 0.002000 6\n"
        );
    }

    #[test]
    fn peerstats_has_eight_fields_with_a_hex_status() {
        let line = PeerLine {
            addr: "10.200.0.2".parse().unwrap(),
            status: 0x9614,
            offset: 0.001,
            delay: 0.000_2,
            dispersion: 0.03,
            jitter: 0.000_004,
        }
        .render(at());
        assert_eq!(
            line,
            "61381 9000.250 10.200.0.2 9614 0.001000000 0.000200000 0.030000000 0.000004000\n"
        );
        assert_eq!(line.split_whitespace().count(), 8);
    }

    #[test]
    fn rawstats_has_ntpsecs_twenty_fields_with_nine_decimal_timestamps() {
        let t = |s: u32, f: u32| NtpTimestamp::from_parts(s, f);
        let raw = RawLine {
            source: "192.0.2.1".parse().unwrap(),
            destination: Some("192.0.2.2".parse().unwrap()),
            timestamps: [
                t(3_900_000_000, 0),
                t(3_900_000_000, 0x8000_0000),
                t(3_900_000_000, 0x8000_1000),
                t(3_900_000_001, 0xffff_ffff),
            ],
            leap: 0,
            version: 4,
            mode: 4,
            stratum: 2,
            poll: 6,
            precision: -20,
            root_delay: 0.001_5,
            root_dispersion: 0.25,
            refid: ReferenceId::from_bytes([10, 0, 0, 1]),
            lost: 1,
            dropped: 0,
        };
        let line = raw.render(at());
        assert_eq!(
            line,
            "61381 9000.250 192.0.2.1 192.0.2.2 3900000000.000000000 3900000000.500000000 \
             3900000000.500000954 3900000002.000000000 0 4 4 2 6 -20 0.001500 0.250000 10.0.0.1 1 0 0\n"
        );
        assert_eq!(line.split_whitespace().count(), 20);
        let gps = RawLine {
            stratum: 1,
            refid: ReferenceId::from_bytes(*b"GPS\0"),
            ..raw
        };
        assert!(gps.render(at()).contains(" 0.250000 .GPS. 1 0 0\n"));
    }

    #[test]
    fn sysstats_has_thirteen_fields() {
        let line = SysLine {
            since_reset: 3600,
            received: 10,
            processed: 7,
            current_version: 9,
            old_version: 1,
            restricted: 0,
            bad_format: 1,
            bad_auth: 0,
            declined: 0,
            limited: 2,
            kod_sent: 1,
        }
        .render(at());
        assert_eq!(line, "61381 9000.250 3600 10 7 9 1 0 1 0 0 2 1\n");
    }

    #[test]
    fn protostats_names_the_system_as_zero_address() {
        let line = ProtoLine {
            addr: None,
            status: 0x0615,
            code: 5,
            text: "clock_sync".into(),
        }
        .render(at());
        assert_eq!(line, "61381 9000.250 0.0.0.0 0615 05 clock_sync\n");
    }
}
