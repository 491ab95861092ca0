//! The classic statistics files (`statsdir`, `statistics`, `filegen`): `loopstats` at every
//! clock discipline update, `peerstats` and `rawstats` at every sample a source accepts, `protostats` at every
//! system event, and `sysstats` once an hour — in ntpd's column layout ([`line`](mod@line)) and file
//! generations ([`filegen`]), so that NTPsec's `ntpviz` and the classic awk scripts read them.
//!
//! The timekeeper records what the system process reports (its events and readouts) here; the
//! values are those ntpq shows at the same moment, taken from the mode 6 snapshot the main loop
//! publishes. Nothing here can delay or stop time service: a file that cannot be written is
//! logged once and its lines dropped.

pub mod filegen;
pub mod line;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sundial_proto::control::ControlSnapshot;
use sundial_proto::system::SystemReadout;
use sundial_proto::time::UnixTime;

use self::filegen::{FileGen, FileGenSpec};
use self::line::{LoopLine, PeerLine, ProtoLine, RawLine, SysLine};
use crate::config::{Config, FileGenType, StatsKind};

/// Where statistics go when no `statsdir` is configured (Debian's ntp and ntpsec packages use
/// this directory in their default configuration).
pub const DEFAULT_STATSDIR: &str = "/var/log/ntpstats/";

/// How often a `sysstats` line is written, as in ntpd.
pub const SYSSTATS_INTERVAL_SECS: u64 = 3600;

/// The statistics sundial writes; [`StatsKind::is_written`] says which these are.
const WRITTEN: [StatsKind; 6] = [
    StatsKind::Clockstats,
    StatsKind::Loopstats,
    StatsKind::Peerstats,
    StatsKind::Rawstats,
    StatsKind::Protostats,
    StatsKind::Sysstats,
];

/// The enabled statistics files.
#[derive(Debug)]
pub struct Stats {
    files: BTreeMap<StatsKindKey, FileGen>,
    /// Uptime (s) at which the next `sysstats` line is due.
    next_sys: u64,
}

/// `StatsKind` ordered by name, for the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct StatsKindKey(&'static str);

impl Stats {
    /// The statistics files `config` enables (with `statsdir` overridden by `-s`), or `None`
    /// when none is. `started`: the daemon's start, for `type age`.
    pub fn new(config: &Config, statsdir: Option<&Path>, started: UnixTime) -> Option<Self> {
        if !config.system_flags.stats {
            return None;
        }
        let dir: PathBuf = statsdir
            .map(Path::to_path_buf)
            .or_else(|| config.statsdir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATSDIR));
        let pid = std::process::id();
        let mut files = BTreeMap::new();
        for kind in WRITTEN {
            let mut spec = FileGenSpec {
                dir: dir.clone(),
                file: PathBuf::from(kind.name()),
                kind: FileGenType::Day,
                link: true,
            };
            let mut enabled = config.statistics.contains(&kind);
            for g in config.filegens.iter().filter(|g| g.stats == kind) {
                if let Some(file) = &g.file {
                    spec.file.clone_from(file);
                }
                if let Some(k) = g.kind {
                    spec.kind = k;
                }
                if let Some(link) = g.link {
                    spec.link = link;
                }
                if let Some(on) = g.enabled {
                    enabled = on;
                }
            }
            if enabled {
                files.insert(StatsKindKey(kind.name()), FileGen::new(spec, started, pid));
            }
        }
        if files.is_empty() {
            return None;
        }
        if !dir.is_dir() {
            tracing::warn!(
                "statistics directory {} does not exist; statistics are written once it does",
                dir.display()
            );
        }
        Some(Self {
            files,
            next_sys: SYSSTATS_INTERVAL_SECS,
        })
    }

    /// Whether `kind` is written.
    pub fn writes(&self, kind: StatsKind) -> bool {
        self.files.contains_key(&StatsKindKey(kind.name()))
    }

    fn write(&mut self, kind: StatsKind, at: UnixTime, line: &str) {
        if let Some(f) = self.files.get_mut(&StatsKindKey(kind.name())) {
            f.write(at, line);
        }
    }

    /// A `loopstats` line: the discipline's state after an update.
    pub fn record_loop(&mut self, at: UnixTime, readout: &SystemReadout) {
        let line = LoopLine {
            offset: readout.offset.to_seconds_f64(),
            frequency: readout.frequency.value(),
            jitter: readout.clk_jitter.to_seconds_f64(),
            wander: readout.clk_wander.value(),
            tc: readout.poll,
        };
        self.write(StatsKind::Loopstats, at, &line.render(at));
    }

    /// A `clockstats` line: a reading of the reference clock at `addr` (127.127.T.U), its
    /// offset from the disciplined clock as `timecode`.
    pub fn record_clock(&mut self, at: UnixTime, addr: IpAddr, timecode: &str) {
        let line = format!("{} {addr} {timecode}\n", line::stamp(at));
        self.write(StatsKind::Clockstats, at, &line);
    }

    /// A `peerstats` line for association `id`, with the values ntpq shows for it.
    pub fn record_peer(&mut self, at: UnixTime, snapshot: &ControlSnapshot, id: u16) {
        let Some(p) = snapshot.peer(id) else {
            return;
        };
        let line = PeerLine {
            addr: p.srcadr,
            status: p.status().word(),
            offset: p.offset,
            delay: p.delay,
            dispersion: p.dispersion,
            jitter: p.jitter,
        };
        self.write(StatsKind::Peerstats, at, &line.render(at));
    }

    /// A `rawstats` line: the timestamps of a reply a source accepted.
    pub fn record_raw(&mut self, at: UnixTime, line: &RawLine) {
        self.write(StatsKind::Rawstats, at, &line.render(at));
    }

    /// A `protostats` line: event `code` named `text`, of the system (`addr` `None`, with the
    /// system status word) or of a peer.
    pub fn record_event(
        &mut self,
        at: UnixTime,
        snapshot: &ControlSnapshot,
        addr: Option<IpAddr>,
        code: u8,
        text: String,
    ) {
        let status = match addr {
            None => snapshot.system.status().word(),
            Some(a) => snapshot
                .peers
                .iter()
                .find(|p| p.srcadr == a)
                .map_or(0, |p| p.status().word()),
        };
        let line = ProtoLine {
            addr,
            status,
            code,
            text,
        };
        self.write(StatsKind::Protostats, at, &line.render(at));
    }

    /// Writes the hourly `sysstats` line once `uptime` (s) reaches the next full hour.
    pub fn maybe_record_sys(&mut self, at: UnixTime, snapshot: &ControlSnapshot, uptime: u64) {
        if uptime < self.next_sys {
            return;
        }
        self.next_sys = uptime - uptime % SYSSTATS_INTERVAL_SECS + SYSSTATS_INTERVAL_SECS;
        let s = sundial_proto::control::Sysstats::from_counters(&snapshot.system.counters, uptime);
        let line = SysLine {
            since_reset: s.uptime,
            received: s.received,
            processed: s.processed,
            current_version: s.this_version,
            old_version: s.old_version,
            restricted: s.restricted,
            bad_format: s.bad_format,
            bad_auth: s.bad_auth,
            declined: s.declined,
            limited: s.limited,
            kod_sent: s.kod_sent,
        };
        self.write(StatsKind::Sysstats, at, &line.render(at));
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::config::parse_str;

    #[test]
    fn sysstats_is_written_once_an_hour_and_only_enabled_files_exist() {
        let dir = crate::safefile::tests::scratch("stats");
        let (config, _) = parse_str(
            &format!(
                "statsdir {}/\nstatistics sysstats loopstats\nfilegen sysstats type none\n\
                 filegen loopstats disable\nfilegen peerstats enable",
                dir.display()
            ),
            Path::new("/etc/ntp.conf"),
        );
        let started = UnixTime::new(1_796_610_600, 0);
        let mut stats = Stats::new(&config, None, started).unwrap();
        assert!(stats.writes(StatsKind::Sysstats) && stats.writes(StatsKind::Peerstats));
        assert!(
            !stats.writes(StatsKind::Loopstats),
            "filegen … disable wins"
        );
        let snapshot = ControlSnapshot::default();
        let at = |up: i64| UnixTime::new(started.secs() + up, 0);
        for up in [10, 3599, 3600, 3601, 7199, 7300, 10_900] {
            stats.maybe_record_sys(at(up), &snapshot, u64::try_from(up).unwrap());
        }
        let text = fs::read_to_string(dir.join("sysstats")).unwrap();
        let uptimes: Vec<&str> = text
            .lines()
            .map(|l| l.split_whitespace().nth(2).unwrap())
            .collect();
        assert_eq!(uptimes, ["3600", "7300", "10900"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn disable_stats_or_no_statistics_writes_nothing() {
        let (config, _) = parse_str(
            "statistics loopstats\ndisable stats",
            Path::new("/etc/ntp.conf"),
        );
        assert!(Stats::new(&config, None, UnixTime::new(0, 0)).is_none());
        let (config, _) = parse_str("statsdir /tmp/\n", Path::new("/etc/ntp.conf"));
        assert!(Stats::new(&config, None, UnixTime::new(0, 0)).is_none());
    }
}
