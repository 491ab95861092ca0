//! Command-line options.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Highest offered rate, requests per second.
pub const MAX_RATE: u64 = 2_000_000;

/// Most requests in one run (bounds the reply bookkeeping to 12.5 MB).
pub const MAX_REQUESTS: u64 = 100_000_000;

/// Most client sockets (and receiver threads).
pub const MAX_SOCKETS: usize = 64;

/// Batches per second the sender aims for when `--batch` is not given: one pacing sleep per
/// millisecond keeps the rate smooth without a sleep per request.
const BATCHES_PER_SECOND: u64 = 1000;

/// The usage text.
pub const USAGE: &str = "\
usage: sundial-loadgen --target ADDR:PORT [options]

Sends NTP client requests to a loopback server at a fixed rate (open loop) and counts the
replies, matched to requests by transmit timestamp.

options:
  --target ADDR:PORT   server to load; must be a loopback address (127.0.0.0/8 or ::1)
  --rate N             requests per second (default 1000, at most 2000000)
  --duration SECS      how long to send, may be fractional (default 5, at most 600)
  --sockets N          client sockets, each with its own receiver thread (default 2, at most 64)
  --batch N            requests sent between two pacing sleeps (default: rate / 1000, at least 1)
  --drain-ms MS        how long to keep receiving after the last request (default 500)
  --version V          NTP version of the requests, 1 to 4 (default 4)
  --nts-ke PORT        NTS: run one key exchange with the target's address at this TCP port
                       first, then send NTS requests (a cookie of that exchange and an
                       authenticator each; replies are matched, not verified); NTS NAKs count
                       as unsynchronised replies
  --nts-ca FILE        the CA bundle the key-exchange server is verified against (with
                       --nts-ke; the certificate must be for the target's address)
  --json               print the report as one JSON object
  -h, --help           print this text
";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The server.
    pub target: SocketAddr,
    /// Offered rate, requests per second.
    pub rate: u64,
    /// How long to send.
    pub duration: Duration,
    /// Number of client sockets.
    pub sockets: usize,
    /// Requests per pacing step.
    pub batch: u64,
    /// How long to wait for late replies after sending.
    pub drain: Duration,
    /// NTP version of the requests.
    pub version: u8,
    /// Print JSON instead of text.
    pub json: bool,
    /// NTS requests after a key exchange on this TCP port, verified against this CA bundle.
    pub nts: Option<(u16, PathBuf)>,
}

/// The result of parsing the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Config),
    /// Print the usage text.
    Help,
}

/// A command line that does not describe a valid run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl Config {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    /// On unknown options, missing or malformed values, values out of range, and targets that are
    /// not loopback addresses.
    pub fn from_args(args: &[String]) -> Result<Parsed, ConfigError> {
        let mut target = None;
        let mut rate = 1000;
        let mut duration = Duration::from_secs(5);
        let mut sockets = 2;
        let mut batch = None;
        let mut drain = Duration::from_millis(500);
        let mut version = 4;
        let mut json = false;
        let (mut nts_ke, mut nts_ca) = (None, None);
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| ConfigError(format!("{arg} needs a value")))
            };
            match arg.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--json" => json = true,
                "--target" => target = Some(parse::<SocketAddr>(arg, value()?)?),
                "--rate" => rate = parse(arg, value()?)?,
                "--duration" => duration = parse_seconds(arg, value()?)?,
                "--sockets" => sockets = parse(arg, value()?)?,
                "--batch" => batch = Some(parse(arg, value()?)?),
                "--drain-ms" => drain = Duration::from_millis(parse(arg, value()?)?),
                "--version" => version = parse(arg, value()?)?,
                "--nts-ke" => nts_ke = Some(parse::<u16>(arg, value()?)?),
                "--nts-ca" => nts_ca = Some(PathBuf::from(value()?)),
                other => return Err(ConfigError(format!("unknown option {other}"))),
            }
        }
        let target = target.ok_or_else(|| ConfigError("--target is required".into()))?;
        if !target.ip().is_loopback() {
            return Err(ConfigError(format!("{target} is not a loopback address")));
        }
        check_range("--rate", rate, 1, MAX_RATE)?;
        check_range("--sockets", sockets, 1, MAX_SOCKETS)?;
        check_range("--version", version, 1, 4)?;
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(ConfigError(format!(
                "--duration must be above 0 and at most {MAX_DURATION:?}"
            )));
        }
        if drain > MAX_DURATION {
            return Err(ConfigError(format!(
                "--drain-ms must be at most {MAX_DURATION:?}"
            )));
        }
        let batch = batch.unwrap_or_else(|| rate.div_ceil(BATCHES_PER_SECOND));
        check_range("--batch", batch, 1, rate)?;
        let nts = match (nts_ke, nts_ca) {
            (Some(port), Some(ca)) => Some((port, ca)),
            (None, None) => None,
            _ => return Err(ConfigError("--nts-ke and --nts-ca go together".into())),
        };
        let config = Self {
            target,
            rate,
            duration,
            sockets,
            batch,
            drain,
            version,
            json,
            nts,
        };
        if config.total_requests() > MAX_REQUESTS {
            return Err(ConfigError(format!(
                "rate × duration exceeds {MAX_REQUESTS} requests"
            )));
        }
        Ok(Parsed::Run(config))
    }

    /// Requests the run sends: rate × duration, rounded to the nearest request.
    pub fn total_requests(&self) -> u64 {
        let nanos = u128::from(self.rate) * self.duration.as_nanos();
        u64::try_from((nanos + 500_000_000) / 1_000_000_000).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn parse<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError(format!("{option}: cannot parse {value:?}")))
}

fn parse_seconds(option: &str, value: &str) -> Result<Duration, ConfigError> {
    let secs: f64 = parse(option, value)?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| ConfigError(format!("{option}: {value:?} is not a duration")))
}

fn check_range<T: PartialOrd + fmt::Display>(
    option: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError(format!(
            "{option} must be between {min} and {max}, not {value}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn config(line: &str) -> Config {
        match Config::from_args(&args(line)) {
            Ok(Parsed::Run(config)) => config,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_when_only_the_target_is_given() {
        let c = config("--target 127.0.0.1:123");
        assert_eq!(
            (c.rate, c.duration, c.sockets, c.batch, c.version),
            (1000, Duration::from_secs(5), 2, 1, 4)
        );
        assert!(!c.json);
        assert_eq!(c.total_requests(), 5000);
    }

    #[test]
    fn batch_defaults_to_one_millisecond_of_requests() {
        assert_eq!(config("--target 127.0.0.1:1 --rate 40000").batch, 40);
        assert_eq!(config("--target 127.0.0.1:1 --rate 1500").batch, 2);
    }

    #[test]
    fn fractional_durations_round_to_whole_requests() {
        let c = config("--target [::1]:123 --rate 3 --duration 0.5 --json");
        assert_eq!(c.total_requests(), 2);
        assert!(c.json);
    }

    #[test]
    fn targets_off_the_machine_are_refused() {
        for target in ["192.0.2.1:123", "[2001:db8::1]:123", "0.0.0.0:123"] {
            let err = Config::from_args(&args(&format!("--target {target}"))).unwrap_err();
            assert!(
                err.to_string().contains("not a loopback"),
                "{target}: {err}"
            );
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for line in [
            "--target 127.0.0.1:1 --rate 0",
            "--target 127.0.0.1:1 --rate 2000001",
            "--target 127.0.0.1:1 --sockets 0",
            "--target 127.0.0.1:1 --sockets 65",
            "--target 127.0.0.1:1 --version 5",
            "--target 127.0.0.1:1 --duration 0",
            "--target 127.0.0.1:1 --duration 601",
            "--target 127.0.0.1:1 --duration -1",
            "--target 127.0.0.1:1 --batch 0",
            "--target 127.0.0.1:1 --rate 2000000 --duration 60",
            "--rate 10",
            "--target 127.0.0.1:1 --nts-ke 4460",
            "--target 127.0.0.1:1 --nts-ca /etc/ca.pem",
            "--target",
            "--target 127.0.0.1:1 --frobnicate",
        ] {
            assert!(
                Config::from_args(&args(line)).is_err(),
                "{line} was accepted"
            );
        }
    }

    #[test]
    fn help_is_recognised_anywhere() {
        assert_eq!(
            Config::from_args(&args("--rate 5 --help")),
            Ok(Parsed::Help)
        );
    }
}
