//! The variables mode 6 reports, by name: the system table (association 0), the peer table
//! and the reference clock table, each in the order ntpd sends them.
//!
//! The order of each table is NTPsec's default order (ntpq-mode6.md §4, §6), which also
//! satisfies classic ntpq: `reftime` comes before `rec`, so NTPsec's ntpq takes `when` from
//! `rec`. A request naming variables gets them in table order, as from ntpd. Never sent: `org`
//! and `xmt` (the origin and transmit timestamps an off-path attacker would need to spoof
//! replies, CVE-2015-8139). `ntscookies` is sent for NTS sources only: NTPsec's ntpq shows a
//! value ≥ 0 as a digit in the `t` column, which is how NTPsec marks its own NTS sources.
//!
//! A [`Table`] has the variables an empty request returns and, after them, variables that are
//! only sent when asked for by name: the system counters of `ntpq -c sysstats` (the `stats`
//! module), which would otherwise make every `ntpq -c rv` twice as long.

use super::auth::AUTH_INFO;
use super::header::ErrorCode;
use super::kernel::KERNEL_AND_IO;
use super::ntsinfo::NTS_INFO;
use super::request::NameList;
use super::snapshot::{PeerVars, SystemVars};
use super::stats::SYSTEM_STATS;
use super::values::{Fixed6, Hex, LeapDate, Ms, MsArray, Refid};
use super::varlist::{SafeText, VarWriter};
use crate::time::NtpTimestamp;

/// One named variable and how to write it. `render` writes nothing when the variable has no
/// value (for example `srchost` of an association configured by address).
pub(crate) struct Var<T: 'static> {
    pub(crate) name: &'static str,
    pub(crate) render: fn(&T, NtpTimestamp, &mut VarWriter<'_>),
}

/// The variables of one kind of subject.
pub(crate) struct Table<T: 'static> {
    /// Sent for an empty request, in this order.
    pub(crate) defaults: &'static [Var<T>],
    /// Sent only when named, after the defaults in table order.
    pub(crate) on_request: &'static [&'static [Var<T>]],
}

impl<T> Table<T> {
    /// Every variable, defaults first: the order of [`Selection::Named`]'s bits.
    fn all(&self) -> impl Iterator<Item = &'static Var<T>> + use<T> {
        self.defaults
            .iter()
            .chain(self.on_request.iter().flat_map(|s| s.iter()))
    }

    /// How many variables there are.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.defaults.len() + self.on_request.iter().map(|s| s.len()).sum::<usize>()
    }
}

/// The system variables (association 0).
pub(crate) static SYSTEM: Table<SystemVars> = Table {
    defaults: SYSTEM_VARS,
    on_request: &[SYSTEM_STATS, KERNEL_AND_IO, AUTH_INFO, NTS_INFO],
};

/// The peer variables.
pub(crate) static PEER: Table<PeerVars> = Table {
    defaults: PEER_VARS,
    on_request: &[],
};

/// The reference clock variables.
pub(crate) static CLOCK: Table<PeerVars> = Table {
    defaults: CLOCK_VARS,
    on_request: &[],
};

/// Which variables of a table to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Every default variable that has a value (an empty request).
    Default,
    /// The variables whose index bits are set (indices over defaults, then on-request ones).
    Named(u128),
}

/// Resolves requested names against `table`: an empty list selects the defaults, an unknown
/// name is [`ErrorCode::UnknownVariable`] (the whole request fails, as in ntpd).
pub(crate) fn select<T>(table: &Table<T>, names: &NameList<'_>) -> Result<Selection, ErrorCode> {
    if names.is_empty() {
        return Ok(Selection::Default);
    }
    let mut mask = 0u128;
    for name in names.iter() {
        let index = table
            .all()
            .position(|v| v.name.as_bytes() == name)
            .ok_or(ErrorCode::UnknownVariable)?;
        mask |= 1u128
            .checked_shl(u32::try_from(index).unwrap_or(u32::MAX))
            .unwrap_or(0);
    }
    Ok(Selection::Named(mask))
}

/// Writes the selected variables of `value` in table order.
pub(crate) fn write<T>(
    table: &Table<T>,
    selection: Selection,
    value: &T,
    now: NtpTimestamp,
    out: &mut VarWriter<'_>,
) {
    for (index, var) in table.all().enumerate() {
        let wanted = match selection {
            Selection::Default => index < table.defaults.len(),
            Selection::Named(mask) => {
                let bit = 1u128.checked_shl(u32::try_from(index).unwrap_or(u32::MAX));
                bit.is_some_and(|bit| mask & bit != 0)
            }
        };
        if wanted {
            (var.render)(value, now, out);
        }
    }
}

/// A variable that always has a value: `name=FORMAT` with `args` computed from `$v`.
macro_rules! var {
    ($name:literal, |$v:ident| $fmt:literal, $($arg:expr),+) => {
        Var {
            name: $name,
            render: |$v, _now, w| w.item(format_args!(concat!($name, "=", $fmt), $($arg),+)),
        }
    };
}

/// The system variables (`ntpq -c rv`), NTPsec's default order.
const SYSTEM_VARS: &[Var<SystemVars>] = &[
    var!("leap", |s| "{}", s.leap.bits()),
    var!("stratum", |s| "{}", s.stratum),
    var!("precision", |s| "{}", s.precision),
    var!("rootdelay", |s| "{}", Ms::three(s.rootdelay)),
    var!("rootdisp", |s| "{}", Ms::three(s.rootdisp)),
    var!(
        "refid",
        |s| "{}",
        Refid {
            refid: s.refid,
            stratum: s.stratum,
            as_text: s.refid_is_text
        }
    ),
    var!("reftime", |s| "{}", Hex(s.reftime)),
    var!("tc", |s| "{}", s.tc),
    var!("peer", |s| "{}", s.peer.map_or(0, |p| p.get())),
    var!("offset", |s| "{}", Ms::six(s.offset)),
    var!("frequency", |s| "{}", Fixed6(s.frequency)),
    var!("sys_jitter", |s| "{}", Ms::six(s.sys_jitter)),
    var!("clk_jitter", |s| "{}", Ms::six(s.clk_jitter)),
    Var {
        name: "clock",
        render: |_, now, w| w.item(format_args!("clock={}", Hex(now))),
    },
    var!("processor", |s| "\"{}\"", SafeText(&s.processor)),
    var!("system", |s| "\"{}\"", SafeText(&s.system)),
    var!("version", |s| "\"{}\"", SafeText(&s.version)),
    var!("clk_wander", |s| "{}", Fixed6(s.clk_wander)),
    Var {
        name: "tai",
        render: |s, _, w| {
            if let Some(tai) = s.tai {
                w.item(format_args!("tai={tai}"));
            }
        },
    },
    Var {
        name: "leapsec",
        render: |s, _, w| {
            if let Some(t) = s.leapsec {
                w.item(format_args!("leapsec={}", LeapDate(t)));
            }
        },
    },
    Var {
        name: "expire",
        render: |s, _, w| {
            if let Some(t) = s.expire {
                w.item(format_args!("expire={}", LeapDate(t)));
            }
        },
    },
    var!("mintc", |s| "{}", s.mintc),
];

/// The peer variables (`ntpq -c "rv ASSOC"`, one READVAR per row of `ntpq -p`), NTPsec's
/// default order with classic `%.3f` milliseconds.
const PEER_VARS: &[Var<PeerVars>] = &[
    var!("srcadr", |p| "{}", p.srcadr),
    var!("srcport", |p| "{}", p.srcport),
    var!("dstadr", |p| "{}", p.dstadr),
    var!("dstport", |p| "{}", p.dstport),
    var!("leap", |p| "{}", p.leap.bits()),
    var!("hmode", |p| "{}", p.hmode.bits()),
    var!("stratum", |p| "{}", p.stratum),
    var!("ppoll", |p| "{}", p.ppoll),
    var!("hpoll", |p| "{}", p.hpoll),
    var!("precision", |p| "{}", p.precision),
    var!("rootdelay", |p| "{}", Ms::three(p.rootdelay)),
    var!("rootdisp", |p| "{}", Ms::three(p.rootdisp)),
    var!(
        "refid",
        |p| "{}",
        Refid {
            refid: p.refid,
            stratum: p.stratum,
            as_text: p.is_refclock
        }
    ),
    var!("reftime", |p| "{}", Hex(p.reftime)),
    var!("rec", |p| "{}", Hex(p.rec)),
    var!("reach", |p| "{:#x}", p.reach),
    var!("unreach", |p| "{}", p.unreach),
    var!("delay", |p| "{}", Ms::three(p.delay)),
    var!("offset", |p| "{}", Ms::three(p.offset)),
    var!("jitter", |p| "{}", Ms::three(p.jitter)),
    var!("dispersion", |p| "{}", Ms::three(p.dispersion)),
    var!("keyid", |p| "{}", p.keyid),
    var!("filtdelay", |p| "{}", MsArray(p.filter.map(|s| s.delay))),
    var!("filtoffset", |p| "{}", MsArray(p.filter.map(|s| s.offset))),
    var!("pmode", |p| "{}", p.pmode.bits()),
    var!(
        "filtdisp",
        |p| "{}",
        MsArray(p.filter.map(|s| s.dispersion))
    ),
    var!("flash", |p| "{:#x}", p.flash),
    var!("headway", |p| "{}", p.headway),
    Var {
        name: "ntscookies",
        render: |p, _, w| {
            if let Some(n) = p.ntscookies {
                w.item(format_args!("ntscookies={n}"));
            }
        },
    },
    Var {
        name: "srchost",
        render: |p, _, w| {
            if let Some(host) = &p.srchost {
                w.item(format_args!("srchost=\"{}\"", SafeText(host)));
            }
        },
    },
];

/// The reference clock variables (`ntpq -c cv`), in ntpd's order. The fudge times are sent
/// only when set, like NTPsec.
const CLOCK_VARS: &[Var<PeerVars>] = &[
    var!("name", |p| "\"{}\"", SafeText(&p.clock.name)),
    var!("timecode", |p| "\"{}\"", SafeText(&p.clock.timecode)),
    var!("poll", |p| "{}", p.clock.polls),
    var!("noreply", |p| "{}", p.clock.noreply),
    var!("badformat", |p| "{}", p.clock.badformat),
    var!("baddata", |p| "{}", p.clock.baddata),
    Var {
        name: "fudgetime1",
        render: |p, _, w| {
            if p.clock.fudgetime1 != 0.0 {
                w.item(format_args!("fudgetime1={}", Ms::three(p.clock.fudgetime1)));
            }
        },
    },
    Var {
        name: "fudgetime2",
        render: |p, _, w| {
            if p.clock.fudgetime2 != 0.0 {
                w.item(format_args!("fudgetime2={}", Ms::three(p.clock.fudgetime2)));
            }
        },
    },
    var!("stratum", |p| "{}", p.clock.stratum),
    var!(
        "refid",
        |p| "{}",
        Refid {
            refid: p.clock.refid,
            stratum: p.clock.stratum,
            as_text: true
        }
    ),
    var!("flags", |p| "{}", p.clock.flags),
    var!("device", |p| "\"{}\"", SafeText(&p.clock.device)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_fits_the_selection_mask() {
        // `Selection::Named` is a 128-bit mask over table indices.
        assert!(SYSTEM.len() <= 128 && PEER.len() <= 128 && CLOCK.len() <= 128);
    }

    #[test]
    fn no_table_reports_origin_or_transmit() {
        for name in ["org", "xmt"] {
            assert!(PEER.all().all(|v| v.name != name), "{name}");
            assert!(SYSTEM.all().all(|v| v.name != name), "{name}");
        }
    }

    #[test]
    fn reftime_precedes_rec() {
        let pos = |n| PEER_VARS.iter().position(|v| v.name == n).unwrap();
        assert!(pos("reftime") < pos("rec"));
    }

    #[test]
    fn names_are_unique_per_table() {
        for table in [
            SYSTEM.all().map(|v| v.name).collect::<Vec<_>>(),
            PEER.all().map(|v| v.name).collect(),
            CLOCK.all().map(|v| v.name).collect(),
        ] {
            let mut sorted = table.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), table.len());
        }
    }
}
