//! The `ntpd` command line: the union of classic ntpd 4.2.8 and NTPsec flags, plus sundial's
//! long options (`--check`, `--clock`, `--port`, `--threads`).

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::clock::ClockSpec;

/// Where ntpd reads its configuration unless `-c` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/ntp.conf";

/// sundial's ntpd: synchronises the system clock to NTP servers and serves time to clients.
///
/// Reads the classic /etc/ntp.conf. Flags that classic ntpd or NTPsec accept but sundial has no
/// use for are accepted and ignored with a log line, so existing service files keep working.
#[derive(Debug, Parser)]
#[command(
    name = "ntpd",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
pub struct NtpdArgs {
    /// Resolve host names to IPv4 only and serve on IPv4 only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Resolve host names to IPv6 only and serve on IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Require authentication for broadcast and symmetric passive (accepted; no effect).
    #[arg(short = 'a', long = "authreq")]
    pub authreq: bool,
    /// Do not require authentication (accepted; no effect).
    #[arg(short = 'A', long = "authnoreq")]
    pub authnoreq: bool,
    /// Allow synchronisation to broadcast servers (accepted; broadcast is not supported).
    #[arg(short = 'b', long = "bcastsync")]
    pub bcastsync: bool,
    /// Configuration file.
    #[arg(short = 'c', long = "configfile", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Raise the debug level (repeatable); any debug level keeps ntpd in the foreground.
    #[arg(short = 'd', long = "debug-level", action = ArgAction::Count)]
    pub debug: u8,
    /// Set the debug level.
    #[arg(short = 'D', long = "set-debug-level", value_name = "LEVEL")]
    pub set_debug: Option<u8>,
    /// Drift file (same as the `driftfile` directive).
    #[arg(short = 'f', long = "driftfile", value_name = "FILE")]
    pub driftfile: Option<PathBuf>,
    /// Allow the first clock correction to exceed the panic threshold, once.
    #[arg(short = 'g', long = "panicgate")]
    pub panicgate: bool,
    /// Step the first correction, whatever its size.
    #[arg(short = 'G', long = "force-step-once")]
    pub force_step_once: bool,
    /// chroot directory (not supported; use systemd's sandboxing).
    #[arg(short = 'i', long = "jaildir", value_name = "DIR")]
    pub jaildir: Option<PathBuf>,
    /// Serve only on this interface or address (repeatable; like `interface listen`).
    #[arg(short = 'I', long = "interface", value_name = "IFACE")]
    pub interface: Vec<String>,
    /// Symmetric key file (same as `keys`).
    #[arg(short = 'k', long = "keyfile", value_name = "FILE")]
    pub keyfile: Option<PathBuf>,
    /// Log to this file instead of syslog (same as `logfile`).
    #[arg(short = 'l', long = "logfile", value_name = "FILE")]
    pub logfile: Option<PathBuf>,
    /// Do not listen on virtual interfaces (accepted; no effect).
    #[arg(short = 'L', long = "novirtualips")]
    pub novirtualips: bool,
    /// Register with mDNS (accepted; no effect).
    #[arg(short = 'm', long = "mdns")]
    pub mdns: bool,
    /// Stay in the foreground and log to standard error.
    #[arg(short = 'n', long = "nofork")]
    pub nofork: bool,
    /// Run at a raised scheduling priority (best effort).
    #[arg(short = 'N', long = "nice")]
    pub nice: bool,
    /// Write the process id to this file.
    #[arg(short = 'p', long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Real-time scheduling priority (best effort).
    #[arg(short = 'P', long = "priority", value_name = "N")]
    pub priority: Option<i32>,
    /// Set the clock once, then exit.
    #[arg(short = 'q', long = "quit")]
    pub quit: bool,
    /// Broadcast propagation delay (accepted; no effect).
    #[arg(short = 'r', long = "propagationdelay", value_name = "DELAY")]
    pub propagation_delay: Option<f64>,
    /// Serve Prometheus metrics on `[ADDR:]PORT` (address 127.0.0.1 when omitted; the usual
    /// port is 9975). Same as the `metrics` line of ntp.conf, which it overrides.
    #[arg(long = "metrics", value_name = "[ADDR:]PORT", value_parser = crate::metrics::parse_listen)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Statistics directory (same as `statsdir`).
    #[arg(short = 's', long = "statsdir", value_name = "DIR")]
    pub statsdir: Option<PathBuf>,
    /// Trust this key (repeatable; same as `trustedkey`).
    #[arg(short = 't', long = "trustedkey", value_name = "KEY")]
    pub trustedkey: Vec<u32>,
    /// Drop root privileges to USER (or USER:GROUP), keeping only the right to set the clock.
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Seconds between interface rescans (accepted; sundial serves on wildcard sockets).
    #[arg(short = 'U', long = "updateinterval", value_name = "SECONDS")]
    pub update_interval: Option<u32>,
    /// Wait up to this many seconds for the first synchronisation before detaching.
    #[arg(short = 'w', long = "wait-sync", value_name = "SECONDS")]
    pub wait_sync: Option<u32>,
    /// Slew only: raise the step threshold to 600 s.
    #[arg(short = 'x', long = "slew")]
    pub slew: bool,
    /// Define a writable system variable (accepted; mode 6 is read-only).
    #[arg(long = "var", value_name = "VAR")]
    pub var: Vec<String>,
    /// Define a default system variable (accepted; mode 6 is read-only).
    #[arg(long = "dvar", value_name = "VAR")]
    pub dvar: Vec<String>,
    /// Check the configuration, print every finding, and exit: non-zero if any is an error.
    #[arg(long)]
    pub check: bool,
    /// Clock to discipline: `system` (the kernel clock), `none` (read it, never write it:
    /// serve and report only) or `simulated[:OFFSET_S:FREQ_PPM]` (an in-process clock that
    /// starts OFFSET_S seconds and FREQ_PPM off the system clock; needs no privilege).
    #[arg(long, value_name = "KIND", default_value = "system")]
    pub clock: ClockSpec,
    /// UDP port to serve on (for tests; the configuration file stays classic).
    #[arg(long, value_name = "PORT", default_value_t = 123)]
    pub port: u16,
    /// Server threads; 0 or 1 serves from the main loop. Default: one per CPU.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the version and exit.
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
    /// Servers to use in addition to the configuration file's.
    #[arg(value_name = "SERVER")]
    pub servers: Vec<String>,
}

impl NtpdArgs {
    /// The effective debug level.
    pub fn debug_level(&self) -> u8 {
        self.set_debug.unwrap_or(self.debug)
    }

    /// Whether ntpd stays in the foreground.
    pub fn foreground(&self) -> bool {
        self.nofork || self.quit || self.check || self.debug_level() > 0
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn debian_service_flags_parse() {
        let a = NtpdArgs::try_parse_from([
            "ntpd",
            "-p",
            "/run/ntpd.pid",
            "-g",
            "-N",
            "-u",
            "ntpsec:ntpsec",
            "-c",
            "/etc/ntpsec/ntp.conf",
        ])
        .unwrap();
        assert!(a.panicgate && a.nice);
        assert_eq!(a.user.as_deref(), Some("ntpsec:ntpsec"));
        assert_eq!(a.config, PathBuf::from("/etc/ntpsec/ntp.conf"));
        assert!(!a.foreground());
    }

    #[test]
    fn combined_short_flags_and_servers_parse() {
        let a = NtpdArgs::try_parse_from(["ntpd", "-ngq", "-dd", "time.example.org"]).unwrap();
        assert!(a.nofork && a.panicgate && a.quit);
        assert_eq!(a.debug_level(), 2);
        assert_eq!(a.servers, ["time.example.org"]);
    }

    #[test]
    fn clock_and_port_options_parse() {
        let a =
            NtpdArgs::try_parse_from(["ntpd", "--clock", "simulated:0.5:30", "--port", "11123"])
                .unwrap();
        assert_eq!(
            a.clock,
            ClockSpec::Simulated {
                offset_s: 0.5,
                freq_ppm: 30.0
            }
        );
        assert_eq!(a.port, 11123);
        assert!(NtpdArgs::try_parse_from(["ntpd", "--clock", "sundial"]).is_err());
    }

    #[test]
    fn help_is_well_formed() {
        NtpdArgs::command().debug_assert();
    }
}
