//! sundial's integration tests: the `ntpd` binary as real NTP clients see it.
//!
//! * [`interop`]: NTPsec's `ntpdig`, `sntp` and `ntpdate -q` and chrony's `chronyd -Q` accept
//!   sundial's replies; hand-built requests of every version get well-formed replies.
//! * [`bad_input`]: malformed datagrams and config files neither crash the daemon nor get replies,
//!   and every dropped datagram is counted.
//! * [`access`]: `restrict` lines refuse the sources they name, and refusals are counted.
//! * [`hostile_files`]: links, FIFOs and devices planted where ntpd keeps its files, and
//!   configurations asking for unbounded memory, are refused.
//! * [`nts`], [`nts_ntpsec`]: NTS with chronyd and NTPsec, both directions; certificates.
//! * [`nts_abuse`]: NTS-KE floods, malformed records, bad cookies at a high rate.
//! * [`nts_keys`]: cookie-key rotation, SIGHUP and the interface rules of the NTS server.
//! * [`keys`]: symmetric keys with NTPsec's ntpd, chronyd, ntpdig and ntpdate, both directions.
//! * [`safety`]: nothing the tests start holds CAP_SYS_TIME.
//! * [`serving`]: the main loop serves bursts of requests (`--threads 1`).
//! * [`service`]: what a service manager relies on — start-up failures are exit codes, one
//!   daemon per port, `READY=1`, SIGHUP reloads and reopens the log, `--version`.
//!
//! Run them with `tools/test-all` (as root: they create network namespaces, and it installs the
//! peers). Nothing here can change the machine's clock: every NTP program runs without
//! CAP_SYS_TIME, and the daemon runs with `--clock none`.

mod access;
mod bad_input;
mod hostile_files;
mod interop;
mod keys;
mod nts;
mod nts_abuse;
mod nts_keys;
mod nts_ntpsec;
mod safety;
mod service;
mod serving;
#[allow(
    dead_code,
    unused_imports,
    reason = "shared helpers; each test binary uses a subset"
)]
mod support;
