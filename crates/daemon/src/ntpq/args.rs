//! The `ntpq` command line and the ntpq commands it runs (`-c CMD`, `-p`, interactive input).
//!
//! Commands are matched like classic ntpq: an exact name or alias, else any unambiguous
//! prefix (`as` → `associations`, `pe` → `peers`).

use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

/// Default for the wait for the first fragment of a response (NTPsec and classic ntpq: 5 s).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Wait between fragments of one response (both ntpqs: 3 s), shortened if `-t` is shorter.
pub(crate) const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(3);

/// sundial's ntpq: queries NTP servers about their state with NTP mode 6 (read-only).
///
/// Output follows classic ntpq 4.2.8p15; it also works against NTPsec and ntp.org ntpd.
#[derive(Debug, Parser)]
#[command(
    name = "ntpq",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
pub struct NtpqArgs {
    /// Resolve host names to IPv4 addresses only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Resolve host names to IPv6 addresses only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Run a command (repeatable; in order, together with -p).
    #[arg(short = 'c', long = "command", value_name = "CMD", action = ArgAction::Append)]
    pub command: Vec<String>,
    /// Print the requests and responses on stderr (repeatable).
    #[arg(short = 'd', long = "debug-level", action = ArgAction::Count)]
    pub debug: u8,
    /// Read commands from standard input even if -c or -p is given.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Show addresses as numbers; no reverse DNS.
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,
    /// Print the peer billboard (same as -c peers).
    #[arg(short = 'p', long = "peers", action = ArgAction::Count)]
    pub peers: u8,
    /// Show the full remote name, on a line of its own if it is longer than 15 characters.
    #[arg(short = 'w', long = "wide")]
    pub wide: bool,
    /// Machine-readable output: one JSON object per command and host.
    #[arg(long = "json")]
    pub json: bool,
    /// Seconds to wait for the first fragment of a response (fractions allowed).
    #[arg(short = 't', long = "timeout", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
    /// UDP port of the servers (for tests; ntpd always listens on 123).
    #[arg(long = "port", value_name = "PORT", default_value_t = 123)]
    pub port: u16,
    /// Print the version and exit.
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
    /// Servers to query (default: localhost).
    #[arg(value_name = "HOST")]
    pub hosts: Vec<String>,
    /// The commands of -c and -p in command-line order (filled in by [`NtpqArgs::parse_args`]).
    #[arg(skip)]
    pub commands: Vec<String>,
}

impl NtpqArgs {
    /// Parses `args` (starting with the program name); exits with usage on errors, as clap
    /// does.
    pub fn parse_args(
        args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
    ) -> Self {
        let matches = Self::command().get_matches_from(args);
        let mut parsed = match Self::from_arg_matches(&matches) {
            Ok(parsed) => parsed,
            Err(e) => e.exit(),
        };
        // -p and -c run in the order they were given, like classic ntpq's command list.
        let mut ordered: Vec<(usize, String)> = matches
            .indices_of("command")
            .into_iter()
            .flatten()
            .zip(parsed.command.iter().cloned())
            .collect();
        if matches.value_source("peers") == Some(ValueSource::CommandLine) {
            ordered.extend(
                matches
                    .indices_of("peers")
                    .into_iter()
                    .flatten()
                    .map(|i| (i, "peers".to_owned())),
            );
        }
        ordered.sort_by_key(|(i, _)| *i);
        parsed.commands = ordered.into_iter().map(|(_, c)| c).collect();
        parsed
    }

    /// The wait for the first fragment, and the wait between fragments.
    pub fn timeouts(&self) -> (Duration, Duration) {
        let first = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        (first, FRAGMENT_TIMEOUT.min(first))
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{text}: {e}"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text}: not a positive number of seconds"))
}

/// One ntpq command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `peers` (configured or reachable associations) or `lpeers` (all).
    Peers {
        /// `lpeers`: show every association.
        all: bool,
    },
    /// `associations`: the association list with status decodes.
    Associations,
    /// `readvar [ASSOC] [NAME,…]`: variables of the system (0) or an association.
    ReadVar {
        /// The association, 0 for the system.
        association: u16,
        /// Comma-separated names, empty for the defaults.
        names: String,
    },
    /// `clockvar [ASSOC] [NAME,…]`: reference clock variables.
    ClockVar {
        /// The association, 0 for the daemon's choice of clock.
        association: u16,
        /// Comma-separated names, empty for the defaults.
        names: String,
    },
    /// `sysstats`: the server's packet counters.
    SysStats,
    /// `kerninfo`: the server's kernel clock discipline.
    KernInfo,
    /// `iostats`: the server's input/output counters.
    IoStats,
    /// `mrulist [PARAM=VALUE…]`: the server's clients, most recent first.
    MruList(super::mrulist::MruArgs),
    /// `ntsinfo`: the server's NTS counters (NTPsec's command).
    NtsInfo,
    /// `quit` / `exit` (interactive).
    Quit,
}

/// Why a command line could not be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// No command has this name or prefix.
    Unknown(String),
    /// The prefix matches several commands.
    Ambiguous(String),
    /// A classic ntpq command sundial's ntpq does not implement yet.
    Unsupported(String),
    /// A bad argument, with ntpq's message.
    BadArgument(String),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(c) => write!(f, "***Command `{c}' unknown"),
            Self::Ambiguous(c) => write!(f, "***Command `{c}' ambiguous"),
            Self::Unsupported(c) => write!(f, "***Command `{c}' not yet supported"),
            Self::BadArgument(msg) => write!(f, "***{msg}"),
        }
    }
}

/// Commands sundial's ntpq runs, by full name.
const SUPPORTED: [&str; 13] = [
    "peers",
    "mrulist",
    "lpeers",
    "associations",
    "lassociations",
    "readvar",
    "clockvar",
    "sysstats",
    "kerninfo",
    "iostats",
    "ntsinfo",
    "quit",
    "exit",
];

/// Classic ntpq commands recognised but not implemented (yet).
const UNSUPPORTED: [&str; 26] = [
    "addvars",
    "apeers",
    "authenticate",
    "authinfo",
    "cooked",
    "debug",
    "delay",
    "host",
    "hostnames",
    "ifstats",
    "keyid",
    "keytype",
    "lopeers",
    "mreadlist",
    "mreadvar",
    "ntpversion",
    "opeers",
    "passociations",
    "pstats",
    "raw",
    "reslist",
    "rmvars",
    "sysinfo",
    "timeout",
    "timerstats",
    "writevar",
];

/// Short names that are not prefixes of their command.
const ALIASES: [(&str, &str); 6] = [
    ("rv", "readvar"),
    ("cv", "clockvar"),
    ("as", "associations"),
    ("pe", "peers"),
    ("mrv", "mreadvar"),
    ("?", "help"),
];

impl Command {
    /// Parses one command line (`rv 0 leap,stratum`).
    pub fn parse(line: &str) -> Result<Self, CommandError> {
        let mut words = line.split_whitespace();
        let Some(word) = words.next() else {
            return Err(CommandError::Unknown(String::new()));
        };
        let args: Vec<&str> = words.collect();
        let name = resolve(word)?;
        let association_and_names = |args: &[&str]| -> Result<(u16, String), CommandError> {
            let association = match args.first() {
                None => 0,
                Some(a) => a.parse::<u16>().map_err(|_| {
                    CommandError::BadArgument(format!("Invalid association ID `{a}'"))
                })?,
            };
            Ok((association, args.get(1..).unwrap_or_default().join("")))
        };
        match name {
            "peers" => Ok(Self::Peers { all: false }),
            "lpeers" => Ok(Self::Peers { all: true }),
            "associations" | "lassociations" => Ok(Self::Associations),
            "readvar" => {
                let (association, names) = association_and_names(&args)?;
                Ok(Self::ReadVar { association, names })
            }
            "clockvar" => {
                let (association, names) = association_and_names(&args)?;
                Ok(Self::ClockVar { association, names })
            }
            "sysstats" => Ok(Self::SysStats),
            "kerninfo" => Ok(Self::KernInfo),
            "iostats" => Ok(Self::IoStats),
            "mrulist" => super::mrulist::MruArgs::parse(&args)
                .map(Self::MruList)
                .map_err(|e| CommandError::BadArgument(e.to_string())),
            "ntsinfo" => Ok(Self::NtsInfo),
            "quit" | "exit" => Ok(Self::Quit),
            other => Err(CommandError::Unsupported(other.to_owned())),
        }
    }

    /// The command's name in JSON output.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Peers { all: false } => "peers",
            Self::Peers { all: true } => "lpeers",
            Self::Associations => "associations",
            Self::ReadVar { .. } => "readvar",
            Self::ClockVar { .. } => "clockvar",
            Self::SysStats => "sysstats",
            Self::KernInfo => "kerninfo",
            Self::IoStats => "iostats",
            Self::MruList(_) => "mrulist",
            Self::NtsInfo => "ntsinfo",
            Self::Quit => "quit",
        }
    }
}

/// The full command name for `word`: an exact name or alias, else a unique prefix.
fn resolve(word: &str) -> Result<&'static str, CommandError> {
    let all = || SUPPORTED.iter().chain(UNSUPPORTED.iter()).copied();
    if let Some(exact) = all().find(|c| *c == word) {
        return Ok(exact);
    }
    if let Some((_, full)) = ALIASES.iter().find(|(alias, _)| *alias == word) {
        return Ok(full);
    }
    let mut matches = all().filter(|c| c.starts_with(word));
    match (matches.next(), matches.next()) {
        (Some(only), None) => Ok(only),
        (Some(_), Some(_)) => Err(CommandError::Ambiguous(word.to_owned())),
        (None, _) => Err(CommandError::Unknown(word.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_like_classic_ntpq() {
        assert_eq!(Command::parse("pe"), Ok(Command::Peers { all: false }));
        assert_eq!(Command::parse("peers"), Ok(Command::Peers { all: false }));
        assert_eq!(Command::parse("lpeer"), Ok(Command::Peers { all: true }));
        assert_eq!(Command::parse("as"), Ok(Command::Associations));
        assert_eq!(
            Command::parse("rv 0 leap, stratum"),
            Ok(Command::ReadVar {
                association: 0,
                names: "leap,stratum".to_owned()
            })
        );
        assert_eq!(
            Command::parse("readvar 61235"),
            Ok(Command::ReadVar {
                association: 61235,
                names: String::new()
            })
        );
        assert_eq!(Command::parse("sysstats"), Ok(Command::SysStats));
        assert_eq!(Command::parse("sysst"), Ok(Command::SysStats));
        assert_eq!(Command::parse("iostats"), Ok(Command::IoStats));
        assert_eq!(Command::parse("ntsinfo"), Ok(Command::NtsInfo));
        assert_eq!(Command::parse("kern"), Ok(Command::KernInfo));
        assert!(matches!(
            Command::parse("mru mincount=2"),
            Ok(Command::MruList(args)) if args.params == [("mincount".to_owned(), "2".to_owned())]
        ));
        assert!(matches!(
            Command::parse("mrulist frags=3"),
            Err(CommandError::BadArgument(_))
        ));
        assert_eq!(
            Command::parse("ifstats"),
            Err(CommandError::Unsupported("ifstats".to_owned()))
        );
        assert_eq!(
            Command::parse("p"),
            Err(CommandError::Ambiguous("p".to_owned()))
        );
        assert_eq!(
            Command::parse("frobnicate"),
            Err(CommandError::Unknown("frobnicate".to_owned()))
        );
        assert!(matches!(
            Command::parse("rv &1"),
            Err(CommandError::BadArgument(_))
        ));
    }

    #[test]
    fn peers_flag_and_commands_keep_their_order() {
        let args = NtpqArgs::parse_args(["ntpq", "-c", "rv", "-pn", "-c", "as", "host1"]);
        assert_eq!(args.commands, ["rv", "peers", "as"]);
        assert!(args.numeric);
        assert_eq!(args.hosts, ["host1"]);
        let args = NtpqArgs::parse_args(["ntpq", "-t", "0.5", "--port", "11123"]);
        assert!(args.commands.is_empty());
        assert_eq!(
            args.timeouts(),
            (Duration::from_millis(500), Duration::from_millis(500))
        );
        assert_eq!(args.port, 11123);
    }
}
