//! The variables of `ntpq -c authinfo` and `authdelay` (`ntpq -c sysinfo`): how the symmetric
//! keys are used, in NTPsec's names, sent only when named.
//!
//! The counters come from the daemon's key ring and start again when the keys are (re)loaded,
//! which is what `authreset` counts from. sundial has no key cache, so `authfreek`,
//! `authkuncached` and `authkexpired` are not sent (ntpq shows `???` for them, as it does
//! against NTPsec for the last two). `authdelay` is 0: sundial computes a reply's MAC after
//! reading its transmit timestamp and does not advance that timestamp for the MAC's cost, as
//! NTPsec does not either.

use super::snapshot::SystemVars;
use super::vars::Var;

/// How the symmetric keys have been used since they were loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthVars {
    /// `authreset`: seconds since the keys were loaded.
    pub since_reset: u64,
    /// `authkeys`: trusted keys in use.
    pub keys: u64,
    /// `authklookups`: look-ups of a key by id (every MAC made or checked).
    pub lookups: u64,
    /// `authknotfound`: look-ups of an id that is not a usable trusted key.
    pub not_found: u64,
    /// `authdigestencrypts`: MACs made with a digest key (MD5, SHA-1, SHA-2).
    pub digest_encrypts: u64,
    /// `authcmacencrypts`: MACs made with an AES-128-CMAC key.
    pub cmac_encrypts: u64,
    /// `authdigestdecrypts`: MACs checked with a digest key.
    pub digest_decrypts: u64,
    /// `authdigestfails`: of those, the ones that did not verify.
    pub digest_fails: u64,
    /// `authcmacdecrypts`: MACs checked with an AES-128-CMAC key.
    pub cmac_decrypts: u64,
    /// `authcmacfails`: of those, the ones that did not verify.
    pub cmac_fails: u64,
}

/// `name=N` from the system's [`AuthVars`].
macro_rules! auth {
    ($name:literal, |$a:ident| $value:expr) => {
        Var {
            name: $name,
            render: |system, _now, w| {
                let $a = &system.auth;
                w.item(format_args!(concat!($name, "={}"), $value));
            },
        }
    };
}

/// The authentication variables, sent only when named.
pub(crate) static AUTH_INFO: &[Var<SystemVars>] = &[
    Var {
        name: "authdelay",
        render: |_system, _now, w| w.item(format_args!("authdelay=0.000")),
    },
    auth!("authreset", |a| a.since_reset),
    auth!("authkeys", |a| a.keys),
    auth!("authklookups", |a| a.lookups),
    auth!("authknotfound", |a| a.not_found),
    auth!("authencrypts", |a| a
        .digest_encrypts
        .saturating_add(a.cmac_encrypts)),
    auth!("authdigestencrypts", |a| a.digest_encrypts),
    auth!("authcmacencrypts", |a| a.cmac_encrypts),
    auth!("authdecrypts", |a| a
        .digest_decrypts
        .saturating_add(a.cmac_decrypts)),
    auth!("authdigestdecrypts", |a| a.digest_decrypts),
    auth!("authdigestfails", |a| a.digest_fails),
    auth!("authcmacdecrypts", |a| a.cmac_decrypts),
    auth!("authcmacfails", |a| a.cmac_fails),
];
