//! Access control and abuse resistance over a real network: sundial's `ntpd` in a namespace
//! on a bridge with a LAN host and an outside host ([`lan`]), asked by real clients — NTPsec's
//! `ntpdig` and Debian's (NTPsec's) `ntpq` — and by hand-built datagrams ([`raw`]).
//!
//! * [`restrict`]: with the seed's restrict lines the LAN host gets time and read-only ntpq,
//!   the outside host time but no ntpq; writes over mode 6 are refused from everywhere;
//!   `restrict default ignore` leaves the outside host with nothing.
//! * [`ratelimit`]: a client over the `discard` rate gets RATE kisses at the configured rate.
//! * [`amplification`]: no request of any mode, version or length gets a longer reply, except
//!   mode 6 from loopback, which is bounded; the LAN may query, but only gets answers that fit
//!   in its request.
//! * [`mrulist`]: both ntpqs list the clients from the LAN after the nonce exchange; a forged
//!   or borrowed nonce gets a 12-octet error.
//! * [`reload`]: SIGHUP applies `interface` and `discard` changes at once.
//! * [`sysstats`]: Debian's `ntpq -c sysstats` and sundial's show the counters the daemon logs
//!   at shutdown.
//!
//! Run with `tools/test-all -p sundial --test access` (as root: namespaces). Nothing here can
//! change the machine's clock: every program runs without CAP_SYS_TIME and the daemon with
//! `--clock none`.

#[path = "../integration/support/mod.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "shared with the other integration test binaries; this one uses part of it"
)]
mod support;

mod amplification;
mod lan;
mod mrulist;
mod ratelimit;
mod raw;
mod reload;
mod restrict;
mod sysstats;

/// The local clock driver, so the server has time to give from the start (stratum 11).
const LOCAL_CLOCK: &str = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n";

/// The seed configuration's restrict lines (etc/ntp.conf): time for everyone, ntpq for
/// localhost and the LAN, no changes from anywhere.
const SEED_RESTRICT: &str = "restrict default kod nomodify notrap nopeer noquery
restrict 127.0.0.1
restrict ::1
restrict 192.168.1.0 mask 255.255.255.0 nomodify notrap
";

/// The stratum a server with [`LOCAL_CLOCK`] serves.
const STRATUM: u8 = 11;

/// [`LOCAL_CLOCK`] with the seed's restrict lines.
fn seed_config() -> String {
    format!("{LOCAL_CLOCK}{SEED_RESTRICT}")
}
