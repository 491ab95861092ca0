//! What an administrator watches sundial with, tested with the real tools: the statistics
//! files read by Debian's `ntpviz` (NTPsec 1.2.2) and compared with NTPsec's own files, and
//! the Prometheus endpoint scraped by Debian's `prometheus` and checked by `promtool`.
//!
//! Each test starts what it needs (network namespaces, chronyd, NTPsec's ntpd, sundial,
//! prometheus), without CAP_SYS_TIME, and stops it again, also when it fails.
//!
//! Run with `tools/test-all -p sundial --test observability` (as root: namespaces; the tools
//! come from tools/install-test-peers).

#[path = "../integration/support/mod.rs"]
#[expect(
    dead_code,
    unused_imports,
    reason = "shared with the integration tests; this binary uses only part of it"
)]
mod support;

mod ntpq;
mod prometheus;
mod statsfiles;
