//! `statistics` and `filegen` (ntp-conf.md §8).

use std::fmt;
use std::path::PathBuf;

use super::Location;
use super::finding::Diag;
use super::lexer::{Args, Token};

/// A statistics file kind, the union of ntp.org's and NTPsec's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsKind {
    /// `clockstats`: reference clock readings.
    Clockstats,
    /// `cryptostats`: autokey events (ntp.org).
    Cryptostats,
    /// `loopstats`: clock discipline updates.
    Loopstats,
    /// `peerstats`: per-source samples.
    Peerstats,
    /// `protostats`: protocol events.
    Protostats,
    /// `rawstats`: raw timestamps of every packet.
    Rawstats,
    /// `sysstats`: hourly system counters.
    Sysstats,
    /// `timingstats`: internal timing (ntp.org).
    Timingstats,
    /// `usestats`: resource usage (NTPsec).
    Usestats,
}

impl StatsKind {
    const ALL: [Self; 9] = [
        Self::Clockstats,
        Self::Cryptostats,
        Self::Loopstats,
        Self::Peerstats,
        Self::Protostats,
        Self::Rawstats,
        Self::Sysstats,
        Self::Timingstats,
        Self::Usestats,
    ];

    /// The kind a keyword names.
    pub fn from_keyword(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == word)
    }

    /// The keyword, which is also the default file name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Clockstats => "clockstats",
            Self::Cryptostats => "cryptostats",
            Self::Loopstats => "loopstats",
            Self::Peerstats => "peerstats",
            Self::Protostats => "protostats",
            Self::Rawstats => "rawstats",
            Self::Sysstats => "sysstats",
            Self::Timingstats => "timingstats",
            Self::Usestats => "usestats",
        }
    }

    /// Whether sundial writes this file; the others are accepted with a warning.
    pub fn is_written(self) -> bool {
        matches!(
            self,
            Self::Loopstats
                | Self::Peerstats
                | Self::Rawstats
                | Self::Sysstats
                | Self::Protostats
                | Self::Clockstats
        )
    }

    /// Why sundial does not write this file (for the warning), if it does not.
    pub fn not_written_because(self) -> Option<&'static str> {
        Some(match self {
            Self::Cryptostats => "autokey is not supported",
            Self::Timingstats => "it records ntp.org-internal timing",
            Self::Usestats => "sundial does not write resource usage statistics",
            Self::Loopstats
            | Self::Peerstats
            | Self::Rawstats
            | Self::Sysstats
            | Self::Protostats
            | Self::Clockstats => return None,
        })
    }
}

impl fmt::Display for StatsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a statistics file is split into generations (`filegen … type T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileGenType {
    /// `none`: one file forever.
    None,
    /// `pid`: one file per daemon process.
    Pid,
    /// `day`: one file per day, suffix `.YYYYMMDD` (the default).
    Day,
    /// `week`: one file per week.
    Week,
    /// `month`: one file per month.
    Month,
    /// `year`: one file per year.
    Year,
    /// `age`: a new file every 24 hours of daemon uptime.
    Age,
}

impl FileGenType {
    fn from_keyword(word: &str) -> Option<Self> {
        Some(match word {
            "none" => Self::None,
            "pid" => Self::Pid,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "year" => Self::Year,
            "age" => Self::Age,
            _ => return None,
        })
    }
}

/// `filegen NAME [file F] [type T] [link|nolink] [enable|disable]`; unset options keep the
/// daemon's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGen {
    /// Which statistics.
    pub stats: StatsKind,
    /// `file F`: the file name prefix inside `statsdir`.
    pub file: Option<PathBuf>,
    /// `type T`: the generation scheme.
    pub kind: Option<FileGenType>,
    /// `link` (true) or `nolink` (false): hard-link the current generation to the plain name.
    pub link: Option<bool>,
    /// `enable` (true) or `disable` (false).
    pub enabled: Option<bool>,
    /// Where the line is.
    pub location: Location,
}

/// `statistics NAME …`; notes the names sundial does not write.
pub(super) fn parse_statistics(
    args: &mut Args<'_, '_>,
    notes: &mut Vec<Diag>,
) -> Result<Vec<StatsKind>, Diag> {
    let mut kinds = Vec::new();
    args.peek()
        .ok_or_else(|| args.keyword().error("statistics needs at least one name"))?;
    while let Some(tok) = args.next() {
        let kind = stats_kind(&tok)?;
        if let Some(why) = kind.not_written_because() {
            notes.push(tok.warning(format!("{kind} is not written ({why}); ignored")));
        }
        kinds.push(kind);
    }
    Ok(kinds)
}

/// `filegen NAME [option …]`.
pub(super) fn parse_filegen(
    args: &mut Args<'_, '_>,
    location: Location,
    notes: &mut Vec<Diag>,
) -> Result<FileGen, Diag> {
    let name = args.required("a statistics name")?;
    let stats = stats_kind(&name)?;
    if let Some(why) = stats.not_written_because() {
        notes.push(name.warning(format!("{stats} is not written ({why}); filegen ignored")));
    }
    let mut filegen = FileGen {
        stats,
        file: None,
        kind: None,
        link: None,
        enabled: None,
        location,
    };
    while let Some(opt) = args.next() {
        match opt.text {
            _ if opt.quoted => return Err(opt.error("unknown filegen option")),
            "file" => filegen.file = Some(PathBuf::from(args.value_of(opt)?.text)),
            "type" => {
                let value = args.value_of(opt)?;
                let kind = FileGenType::from_keyword(value.text).ok_or_else(|| {
                    value.error("filegen type must be none, pid, day, week, month, year or age")
                })?;
                filegen.kind = Some(kind);
            }
            "link" => filegen.link = Some(true),
            "nolink" => filegen.link = Some(false),
            "enable" => filegen.enabled = Some(true),
            "disable" => filegen.enabled = Some(false),
            _ => return Err(opt.error("unknown filegen option")),
        }
    }
    Ok(filegen)
}

fn stats_kind(tok: &Token<'_>) -> Result<StatsKind, Diag> {
    StatsKind::from_keyword(tok.text)
        .filter(|_| !tok.quoted)
        .ok_or_else(|| tok.error("unknown statistics name"))
}
