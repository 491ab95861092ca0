//! Dispatch of one line by its keyword, and the directives too small for a module of their
//! own (paths, `enable`/`disable`, `setvar`, the unsupported lists).
//!
//! Every handler builds its value completely before storing it, so a line with an error has no
//! effect at all: the same all-or-nothing rule as ntpd's "syntax error, line skipped".

use std::path::{Path, PathBuf};

use super::Location;
use super::association::{AssociationKind, parse_association};
use super::finding::Diag;
use super::interface::parse_interface;
use super::keys::{parse_key_id, parse_trustedkey};
use super::lexer::{Args, Token};
use super::ratelimit::{parse_discard, parse_limit, parse_mru};
use super::refclock::{parse_fudge, parse_refclock};
use super::restrict::parse_restrict;
use super::stats::{parse_filegen, parse_statistics};
use super::tuning::{parse_tinker, parse_tos};
use super::types::{Config, DriftFile, Ppm, SetVar, SystemFlags};

/// Where the line being applied is, and where its findings go.
pub(super) struct LineCtx<'c> {
    pub(super) config: &'c mut Config,
    pub(super) notes: &'c mut Vec<Diag>,
    pub(super) file: &'c Path,
    pub(super) line: u32,
}

impl LineCtx<'_> {
    fn location(&self, tok: Token<'_>) -> Location {
        Location::new(self.file, self.line, tok.column)
    }
}

/// Applies one directive (anything but `includefile`, which the loader handles).
pub(super) fn apply(ctx: &mut LineCtx<'_>, args: &mut Args<'_, '_>) -> Result<(), Diag> {
    let keyword = args.keyword();
    let location = ctx.location(keyword);
    let cfg = &mut *ctx.config;
    let notes = &mut *ctx.notes;
    match keyword.text {
        _ if keyword.quoted => return Err(keyword.error("unknown keyword")),
        "server" | "pool" | "peer" => {
            let kind = match keyword.text {
                "server" => AssociationKind::Server,
                "pool" => AssociationKind::Pool,
                _ => AssociationKind::Peer,
            };
            cfg.associations
                .push(parse_association(kind, args, location, notes)?);
        }
        "refclock" => {
            if let Some((assoc, fudge)) = parse_refclock(args, &location, notes)? {
                cfg.associations.push(assoc);
                cfg.fudges.extend(fudge);
            }
        }
        "fudge" => cfg.fudges.push(parse_fudge(args, location, notes)?),
        "restrict" | "unrestrict" => {
            let unrestrict = keyword.text == "unrestrict";
            cfg.restrictions
                .push(parse_restrict(unrestrict, args, location, notes)?);
        }
        "driftfile" => {
            let path = path_arg(args)?;
            let wander = match args.next() {
                Some(tok) => Some(ratio_arg(tok, "wander threshold")?),
                None => None,
            };
            args.finish()?;
            cfg.driftfile = Some(DriftFile { path, wander });
        }
        "nonvolatile" => {
            let threshold = ratio_arg(args.required("a threshold")?, "threshold")?;
            args.finish()?;
            cfg.nonvolatile = Some(threshold);
        }
        "statsdir" => cfg.statsdir = Some(single_path(args)?),
        "metrics" => {
            let tok = args.required("[ADDR:]PORT")?;
            let addr = crate::metrics::parse_listen(tok.text).map_err(|e| tok.error(e))?;
            args.finish()?;
            cfg.metrics = Some(addr);
        }
        "logfile" => cfg.logfile = Some(single_path(args)?),
        "leapfile" => {
            cfg.leapfile = Some(single_path(args)?);
            notes.push(keyword.warning(
                "leapfile is not read yet: leap seconds come from the sources' leap indicators",
            ));
        }
        "pidfile" => cfg.pidfile = Some(single_path(args)?),
        "keys" => {
            cfg.keys = Some(single_path(args)?);
            cfg.keys_location = Some(location.clone());
        }
        "statistics" => {
            for kind in parse_statistics(args, notes)? {
                if !cfg.statistics.contains(&kind) {
                    cfg.statistics.push(kind);
                }
            }
        }
        "filegen" => cfg.filegens.push(parse_filegen(args, location, notes)?),
        "tos" => cfg.tos = parse_tos(args, &cfg.tos, notes)?,
        "tinker" => cfg.tinker = parse_tinker(args, &cfg.tinker, notes)?,
        "discard" => cfg.discard = parse_discard(args, &cfg.discard)?,
        "limit" => cfg.limit = Some(parse_limit(args, cfg.limit)?),
        "mru" => cfg.mru = parse_mru(args, &cfg.mru)?,
        "enable" | "disable" => {
            cfg.system_flags =
                parse_switches(keyword.text == "enable", args, cfg.system_flags, notes)?;
        }
        "logconfig" => {
            args.peek()
                .ok_or_else(|| keyword.error("logconfig needs at least one item"))?;
            while let Some(item) = args.next() {
                cfg.logconfig.push(item.text.to_owned());
            }
            notes.push(keyword.warning("logconfig has no effect: sundial logs every class"));
        }
        "trustedkey" => cfg.trusted_keys.extend(parse_trustedkey(args)?),
        "controlkey" => {
            let key = parse_key_id(&args.required("a key id")?, "controlkey")?;
            args.finish()?;
            cfg.control_key = Some(key);
            notes.push(
                keyword.warning("remote configuration is not supported; controlkey has no effect"),
            );
        }
        "requestkey" => {
            parse_key_id(&args.required("a key id")?, "requestkey")?;
            args.finish()?;
            notes.push(keyword.warning("requestkey is ignored: mode 7 (ntpdc) is not supported"));
        }
        "authenticate" => {
            let value = args.required("yes or no")?;
            if !(value.is("yes") || value.is("no")) {
                return Err(value.error("authenticate takes yes or no"));
            }
            args.finish()?;
            notes.push(keyword.notice(
                "a source with a key is always authenticated and one without never is; \
                 authenticate has no further effect",
            ));
        }
        "interface" | "nic" => cfg.interfaces.push(parse_interface(args, location)?),
        "setvar" => {
            cfg.setvars.push(parse_setvar(args, location)?);
            notes.push(keyword.warning("setvar has no effect: ntpq does not show the variable"));
        }
        word if BROADCAST_DIRECTIVES.contains(&word) => {
            notes.push(keyword.warning(format!(
                "{word} is not supported (no broadcast or manycast modes); line ignored"
            )));
        }
        word if IGNORED_DIRECTIVES.contains(&word) => {
            notes.push(keyword.warning(format!("{word} is not supported; line ignored")));
        }
        _ => return Err(keyword.error("unknown keyword")),
    }
    Ok(())
}

/// The first argument as a path; an empty quoted string is not one.
fn path_arg(args: &mut Args<'_, '_>) -> Result<PathBuf, Diag> {
    let tok = args.required("a file name")?;
    if tok.text.is_empty() {
        return Err(tok.error("empty file name"));
    }
    Ok(PathBuf::from(tok.text))
}

/// A directive whose only argument is a path.
fn single_path(args: &mut Args<'_, '_>) -> Result<PathBuf, Diag> {
    let path = path_arg(args)?;
    args.finish()?;
    Ok(path)
}

/// A positive frequency written as a ratio (`1e-7`), as the drift-file thresholds are.
fn ratio_arg(tok: Token<'_>, what: &str) -> Result<Ppm, Diag> {
    let ratio = tok.number(what)?;
    if ratio <= 0.0 {
        return Err(tok.error(format!("{what} must be positive")));
    }
    Ppm::from_ratio(ratio).ok_or_else(|| tok.error(format!("{what} is out of range")))
}

/// `enable|disable FLAG …`, on a copy.
fn parse_switches(
    on: bool,
    args: &mut Args<'_, '_>,
    mut flags: SystemFlags,
    notes: &mut Vec<Diag>,
) -> Result<SystemFlags, Diag> {
    let keyword = args.keyword();
    args.peek()
        .ok_or_else(|| keyword.error(format!("{} needs at least one flag", keyword.text)))?;
    while let Some(tok) = args.next() {
        match tok.text {
            _ if tok.quoted => return Err(tok.error("unknown system flag")),
            "auth" => flags.auth = on,
            "calibrate" => {
                flags.calibrate = on;
                notes.push(tok.warning("calibrate has no effect: no reference clock to calibrate"));
            }
            "kernel" => {
                flags.kernel = on;
                if on {
                    notes.push(tok.warning(
                        "enable kernel has no effect: sundial disciplines the clock itself, \
                         never through the kernel PLL",
                    ));
                }
            }
            "monitor" => {
                flags.monitor = on;
                notes.push(tok.warning(
                    "monitor has no effect: the client table is kept for rate limiting and ntpq",
                ));
            }
            "ntp" => {
                flags.ntp = on;
                if !on {
                    notes.push(tok.warning(
                        "disable ntp has no effect: use --clock none to leave the clock alone",
                    ));
                }
            }
            "stats" => flags.stats = on,
            "bclient" | "mode7" if !on => {}
            "bclient" => notes.push(tok.warning("broadcast client mode is not supported; ignored")),
            "mode7" => notes.push(tok.warning("mode 7 (ntpdc) is not supported; ignored")),
            "unpeer_crypto_early"
            | "unpeer_crypto_nak_early"
            | "unpeer_digest_early"
            | "peer_clear_digest_early" => {
                notes.push(tok.warning(format!("{} has no effect in sundial", tok.text)));
            }
            _ => return Err(tok.error("unknown system flag")),
        }
    }
    Ok(flags)
}

/// `setvar NAME = VALUE [default]`; ntpd's scanner splits `=` off its neighbours, so
/// `NAME=VALUE`, `NAME= VALUE` and `NAME =VALUE` are accepted too.
fn parse_setvar(args: &mut Args<'_, '_>, location: Location) -> Result<SetVar, Diag> {
    let first = args.required("NAME = \"VALUE\"")?;
    let (name, inline) = match first.text.split_once('=') {
        Some((name, rest)) if !first.quoted => (name, Some(rest)),
        _ => (first.text, None),
    };
    let value = match inline {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        Some(_) => args.required("a value after '='")?.text.to_owned(),
        None => {
            let eq = args.required("'=' and a value")?;
            match eq.text.strip_prefix('=') {
                Some(rest) if !eq.quoted && !rest.is_empty() => rest.to_owned(),
                Some(_) if !eq.quoted => args.required("a value after '='")?.text.to_owned(),
                _ => return Err(eq.error("expected '=' after the variable name")),
            }
        }
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(first.error("variable name must be letters, digits, '_', '.' or '-'"));
    }
    let default = args.peek().is_some_and(|tok| tok.is("default"));
    if default {
        args.next();
    }
    args.finish()?;
    Ok(SetVar {
        name: name.to_owned(),
        value,
        default,
        location,
    })
}

/// Broadcast and manycast directives: ntp.org only, removed from NTPsec, not in sundial.
const BROADCAST_DIRECTIVES: &[&str] = &[
    "broadcast",
    "broadcastclient",
    "broadcastdelay",
    "manycastserver",
    "manycastclient",
    "multicastclient",
];

/// Directives accepted and ignored with a warning (ntp-conf.md §13, plus rarer ntp.org
/// keywords), so a config written for either ntpd never loses its other lines over them.
const IGNORED_DIRECTIVES: &[&str] = &[
    "automax",
    "autokey",
    "calldelay",
    "crypto",
    "device",
    "dscp",
    "ident",
    "keysdir",
    "leapsmearinterval",
    "lowpriotrap",
    "mdnstries",
    "ntpsigndsocket",
    "nts",
    "phone",
    "pollskewlist",
    "qos",
    "reset",
    "revoke",
    "rlimit",
    "saveconfigdir",
    "tick",
    "trap",
    "ttl",
    "unpeer",
];
