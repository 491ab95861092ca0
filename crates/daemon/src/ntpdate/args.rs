//! The `ntpdate` command line: the classic ntpdate 4.2.8 flags with their classic ranges
//! (ntpdate.md §2), checked once here so that the rest of the tool works with typed values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use super::resolve::Family;
use super::setclock::Policy;
use crate::config::KeyId;

/// Samples per server unless `-p` says otherwise (classic `DEFSAMPLES`).
pub const DEFAULT_SAMPLES: u8 = 4;

/// Most samples per server: the length of the classic clock filter (`NTP_SHIFT`).
pub const MAX_SAMPLES: u8 = 8;

/// Per-packet timeout unless `-t` says otherwise: the classic code default (`DEFTIMEOUT`, 2 s;
/// the manual page says 1 s, ntp.org Bug 3426).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The classic timer runs at 5 Hz, so timeouts are whole ticks of 0.2 s (and at least one).
const TIMEOUT_TICK: Duration = Duration::from_millis(200);

/// Ticks per second of the classic timer.
const TICKS_PER_SECOND: f64 = 5.0;

/// Longest timeout accepted. Classic ntpdate has no limit; one hour keeps every deadline far from
/// `Instant` overflow and is already absurd for a single packet.
const MAX_TIMEOUT_SECONDS: f64 = 3600.0;

/// The symmetric key file classic ntpdate reads with `-a` unless `-k` names another.
pub const DEFAULT_KEYFILE: &str = "/etc/ntp.keys";

/// The NTP port, which servers listen on and a clock-setting ntpdate sends from.
pub const NTP_PORT: u16 = 123;

/// sundial's ntpdate: sets the system clock once from NTP servers, like classic ntpdate.
///
/// Every server is asked -p times; the best sample of each (shortest round trip) takes part in a
/// selection among the servers. The clock is stepped when the offset is 0.5 s or more (or with
/// -b) and slewed otherwise (or always with -B). With -q or -d the clock is never touched. With
/// -a, requests carry a symmetric-key MAC and only servers that answer with a valid one count.
#[derive(Debug, Parser)]
#[command(
    name = "ntpdate",
    version,
    disable_version_flag = true,
    max_term_width = 100,
    override_usage = "ntpdate [-46bBdqsuv] [-a KEYID -k KEYFILE] [-e AUTHDELAY] [-o VERSION] \
                      [-p SAMPLES] [-t TIMEOUT] SERVER..."
)]
pub struct NtpdateArgs {
    /// Resolve host names to IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Resolve host names to IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Authenticate with this key id (1–65535) from the key file: requests carry its MAC, and
    /// servers whose replies lack a valid MAC with the same key are dropped as untrusted.
    #[arg(short = 'a', value_name = "KEYID", value_parser = parse_key_id)]
    pub key_id: Option<KeyId>,
    /// Always step the clock, however small the offset.
    #[arg(short = 'b', overrides_with = "slew")]
    pub step: bool,
    /// Always slew the clock, however large the offset.
    #[arg(short = 'B', overrides_with = "step")]
    pub slew: bool,
    /// Debug: dump every exchange and the selection; never touches the clock.
    #[arg(short = 'd', action = ArgAction::Count)]
    pub debug: u8,
    /// Authentication delay in seconds (below 1). Accepted and ignored: sundial computes the MAC
    /// before it reads the send time, so there is no delay to make up for.
    #[arg(short = 'e', value_name = "AUTHDELAY", value_parser = parse_authdelay)]
    pub authdelay: Option<f64>,
    /// Symmetric key file for -a (lines of KEYID TYPE KEY; types MD5, SHA1, AES128CMAC)
    /// [default: /etc/ntp.keys].
    #[arg(short = 'k', value_name = "KEYFILE")]
    pub keyfile: Option<PathBuf>,
    /// NTP version to put in requests (1–4).
    #[arg(short = 'o', value_name = "VERSION", default_value_t = 4,
          value_parser = clap::value_parser!(u8).range(1..=4))]
    pub version_number: u8,
    /// Samples per server (1–8).
    #[arg(short = 'p', value_name = "SAMPLES", default_value_t = DEFAULT_SAMPLES,
          value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_SAMPLES)))]
    pub samples: u8,
    /// Query only: print each server and the result; never touches the clock.
    #[arg(short = 'q')]
    pub query: bool,
    /// Log to syslog instead of the terminal.
    #[arg(short = 's')]
    pub syslog: bool,
    /// Seconds to wait for each reply, rounded to 0.2 s [default: 2].
    #[arg(short = 't', value_name = "TIMEOUT", default_value = "2", value_parser = parse_timeout,
          hide_default_value = true)]
    pub timeout: Duration,
    /// Send from an unprivileged port (not 123), e.g. while ntpd is running.
    #[arg(short = 'u')]
    pub unprivileged: bool,
    /// Verbose: log the version and why servers were rejected.
    #[arg(short = 'v')]
    pub verbose: bool,
    /// For testing: the servers' UDP port. A server may also be given as IPV4:PORT, or as an
    /// IPv6 address in brackets followed by :PORT (numeric addresses only).
    #[arg(long, value_name = "PORT", default_value_t = NTP_PORT, hide_short_help = true)]
    pub port: u16,
    /// Print the version and exit.
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
    /// Servers: host names or addresses.
    #[arg(value_name = "SERVER", required = true)]
    pub servers: Vec<String>,
}

impl NtpdateArgs {
    /// Whether this run only reports: `-q` and `-d` never touch the clock.
    pub fn query_only(&self) -> bool {
        self.query || self.debug > 0
    }

    /// Whether requests leave from port 123: only when the clock is to be set and `-u` is absent,
    /// so that a running ntpd is noticed instead of being raced.
    pub fn privileged_port(&self) -> bool {
        !self.unprivileged && !self.query_only()
    }

    /// How an offset becomes a clock correction (`-b`, `-B`, or the 0.5 s rule).
    pub fn policy(&self) -> Policy {
        if self.step {
            Policy::AlwaysStep
        } else if self.slew {
            Policy::AlwaysSlew
        } else {
            Policy::Threshold
        }
    }

    /// Which address families host names resolve to.
    pub fn family(&self) -> Family {
        match (self.ipv4, self.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }

    /// Whether rejected servers and replies are explained (`-d` or `-v`).
    pub fn explains(&self) -> bool {
        self.debug > 0 || self.verbose
    }
}

/// `-t`: seconds as a decimal, rounded to whole 0.2 s ticks of the classic timer, at least one.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("timeout {text} is not a number of seconds"))?;
    if !(0.0..=MAX_TIMEOUT_SECONDS).contains(&seconds) {
        return Err(format!(
            "timeout {text} is outside 0 to {MAX_TIMEOUT_SECONDS} seconds"
        ));
    }
    // In range 0..=18000 after the check above, so the conversion is exact.
    let ticks = (seconds * TICKS_PER_SECOND).round().max(1.0);
    let ticks = u32::try_from(ticks as u64).map_err(|_| format!("timeout {text} is too large"))?;
    Ok(TIMEOUT_TICK * ticks)
}

/// `-a`: a key id, 1 to 65535 (0 means "no key" on the wire).
fn parse_key_id(text: &str) -> Result<KeyId, String> {
    text.trim()
        .parse::<u16>()
        .ok()
        .and_then(KeyId::new)
        .ok_or_else(|| format!("key id {text} is not a number from 1 to {}", KeyId::MAX))
}

/// `-e`: the time a MAC takes to compute, in seconds; classic ntpdate refuses a second or more as
/// "unlikely".
fn parse_authdelay(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("encryption delay {text} is not a number of seconds"))?;
    if (0.0..1.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!("encryption delay {text} is unlikely"))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<NtpdateArgs, clap::Error> {
        NtpdateArgs::try_parse_from(std::iter::once("ntpdate").chain(args.iter().copied()))
    }

    #[test]
    fn classic_defaults_apply_without_flags() {
        let a = parse(&["pool.example.org"]).unwrap();
        assert_eq!(a.samples, DEFAULT_SAMPLES);
        assert_eq!(a.timeout, DEFAULT_TIMEOUT);
        assert_eq!(a.version_number, 4);
        assert_eq!(a.port, NTP_PORT);
        assert_eq!(a.policy(), Policy::Threshold);
        assert_eq!(a.family(), Family::Any);
        assert!(a.privileged_port() && !a.query_only() && !a.explains());
    }

    #[test]
    fn combined_short_flags_parse_like_getopt() {
        let a = parse(&["-4bdqsuv", "-p2", "-t", "0.5", "-o", "3", "a", "b"]).unwrap();
        assert!(a.ipv4 && a.step && a.query && a.syslog && a.unprivileged && a.verbose);
        assert_eq!((a.debug, a.samples, a.version_number), (1, 2, 3));
        assert_eq!(a.servers, ["a", "b"]);
        assert_eq!(a.family(), Family::V4);
    }

    #[test]
    fn query_and_debug_never_use_the_privileged_port() {
        assert!(!parse(&["-q", "h"]).unwrap().privileged_port());
        assert!(!parse(&["-d", "h"]).unwrap().privileged_port());
        assert!(!parse(&["-u", "h"]).unwrap().privileged_port());
        assert!(parse(&["-d", "h"]).unwrap().query_only());
    }

    #[test]
    fn the_last_of_step_and_slew_wins() {
        assert_eq!(
            parse(&["-b", "-B", "h"]).unwrap().policy(),
            Policy::AlwaysSlew
        );
        assert_eq!(
            parse(&["-B", "-b", "h"]).unwrap().policy(),
            Policy::AlwaysStep
        );
    }

    #[test]
    fn timeout_is_rounded_to_fifth_seconds_and_at_least_one_tick() {
        let t = |s: &str| parse(&["-t", s, "h"]).unwrap().timeout;
        assert_eq!(t("1"), Duration::from_secs(1));
        assert_eq!(t("0.35"), Duration::from_millis(400));
        assert_eq!(t("0.29"), Duration::from_millis(200));
        assert_eq!(t("0"), Duration::from_millis(200));
        assert_eq!(t("2.5"), Duration::from_millis(2600));
        for bad in ["-1", "x", "NaN", "inf", "1e9"] {
            assert!(parse(&["-t", bad, "h"]).is_err(), "-t {bad}");
        }
    }

    #[test]
    fn samples_version_key_and_authdelay_ranges_are_enforced() {
        for bad in [
            &["-p", "0", "h"][..],
            &["-p", "9", "h"],
            &["-o", "0", "h"],
            &["-o", "5", "h"],
            &["-a", "0", "h"],
            &["-a", "65536", "h"],
            &["-e", "1", "h"],
            &["-e", "-0.1", "h"],
            &["-4", "-6", "h"],
            &[],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be rejected");
        }
        let a = parse(&[
            "-p", "8", "-o", "1", "-a", "7", "-e", "0.0001", "-k", "/k", "h",
        ])
        .unwrap();
        assert_eq!((a.samples, a.version_number), (8, 1));
        assert_eq!(a.key_id, KeyId::new(7));
        assert_eq!(a.keyfile, Some(PathBuf::from("/k")));
    }

    #[test]
    fn port_option_is_documented_as_for_testing_in_long_help_only() {
        let mut cmd = NtpdateArgs::command();
        let long = cmd.render_long_help().to_string();
        assert!(
            long.contains("--port") && long.contains("For testing"),
            "{long}"
        );
        let short = NtpdateArgs::command().render_help().to_string();
        assert!(!short.contains("--port"), "{short}");
        NtpdateArgs::command().debug_assert();
    }
}
