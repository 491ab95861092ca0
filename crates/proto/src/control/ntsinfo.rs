//! The variables of NTPsec's `ntpq -c ntsinfo`: NTS counters in NTPsec's names, sent only
//! when named.
//!
//! The NTP-side counters come from the server counters (every server thread's sum); the
//! key-exchange counters and the client's packet counts from the daemon (the client's summed
//! over the NTS associations that exist now). In NTPsec's words a client's key exchange is a
//! "probe" and a server's a "serve". Cookies made are those of the key exchanges and of the
//! NTS replies together. A cookie that opened under a previous master key is counted by the
//! key's age: `nts_cookie_decode_old` one rotation back, `…old2` two, `…older` three. Not sent
//! (ntpq shows `???`): `nts_cookie_decode_too_old`, since a cookie under a key already
//! forgotten cannot be told from a foreign one; it counts in `nts_cookie_decode_error`.

use super::snapshot::SystemVars;
use super::vars::Var;

/// The key-exchange counters since start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NtsVars {
    /// `nts_ke_serves_good`: key exchanges served.
    pub ke_serves_good: u64,
    /// `nts_ke_serves_bad`: key exchanges a client started that failed.
    pub ke_serves_bad: u64,
    /// `nts_ke_refused` (sundial): connections closed unserved by the admission limits.
    pub ke_refused: u64,
    /// `nts_ke_probes_good`: key exchanges with a server that succeeded.
    pub ke_probes_good: u64,
    /// `nts_ke_probes_bad`: key exchanges with a server that failed.
    pub ke_probes_bad: u64,
    /// Cookies the key-exchange server sealed into its responses (part of
    /// `nts_cookie_make`).
    pub ke_cookies_made: u64,
    /// `nts_client_send`: NTS requests the NTS associations sent.
    pub client_send: u64,
    /// `nts_client_recv_good`: their replies that verified and were used.
    pub client_recv_good: u64,
    /// `nts_client_recv_bad`: their replies rejected for authentication (no or a failing
    /// authenticator, an NTS NAK).
    pub client_recv_bad: u64,
}

/// `name=N` from the system's [`NtsVars`] or counters.
macro_rules! nts {
    ($name:literal, |$s:ident| $value:expr) => {
        Var {
            name: $name,
            render: |$s, _now, w| {
                w.item(format_args!(concat!($name, "={}"), $value));
            },
        }
    };
}

/// The NTS variables, sent only when named.
pub(crate) static NTS_INFO: &[Var<SystemVars>] = &[
    nts!("nts_client_send", |s| s.nts.client_send),
    nts!("nts_client_recv_good", |s| s.nts.client_recv_good),
    nts!("nts_client_recv_bad", |s| s.nts.client_recv_bad),
    nts!("nts_server_recv_good", |s| s.counters.nts_replies),
    nts!("nts_server_recv_bad", |s| s.counters.nts_naks),
    nts!("nts_server_send", |s| s
        .counters
        .nts_replies
        .saturating_add(s.counters.nts_naks)),
    nts!("nts_cookie_decode", |s| s
        .counters
        .nts_naks
        .saturating_sub(s.counters.nts_cookie_failures)
        .saturating_add(s.counters.nts_replies)),
    nts!("nts_cookie_make", |s| s
        .counters
        .nts_cookies_made
        .saturating_add(s.nts.ke_cookies_made)),
    nts!("nts_cookie_decode_old", |s| s.counters.nts_cookies_old[0]),
    nts!("nts_cookie_decode_old2", |s| s.counters.nts_cookies_old[1]),
    nts!("nts_cookie_decode_older", |s| s.counters.nts_cookies_old[2]),
    nts!("nts_cookie_decode_error", |s| s
        .counters
        .nts_cookie_failures),
    nts!("nts_ke_probes_good", |s| s.nts.ke_probes_good),
    nts!("nts_ke_probes_bad", |s| s.nts.ke_probes_bad),
    nts!("nts_ke_serves_good", |s| s.nts.ke_serves_good),
    nts!("nts_ke_serves_bad", |s| s.nts.ke_serves_bad),
    nts!("nts_ke_refused", |s| s.nts.ke_refused),
];
