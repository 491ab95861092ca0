//! The `nts` directive (NTPsec): the NTS key-exchange server and the trust anchors of NTS
//! clients.
//!
//! `nts enable|disable`, `nts cert FILE` (the certificate chain), `nts key FILE` (its private
//! key), `nts ca FILE` (CA bundle that NTS sources are verified against instead of the system
//! store), `nts cookie FILE` (where the cookie master keys are kept across restarts) and the
//! sundial extensions `nts port N` (the key-exchange TCP port, 4460) and `nts rotate SECONDS`
//! (how often a fresh cookie key is made, a day). Several may share a line.
//! NTPsec's TLS tuning options (`mintls`, `maxtls`, `tlsciphersuites`, `tlsecdhcurves`) and
//! `aead` are accepted with a warning: sundial speaks TLS 1.3 only with rustls' defaults and
//! prefers AES-SIV-CMAC-256.

use std::path::PathBuf;

use sundial_proto::nts::ke::DEFAULT_PORT;

use super::Location;
use super::finding::Diag;
use super::lexer::Args;

/// Seconds between cookie key rotations unless `nts rotate` says otherwise: a day, as NTPsec.
pub(crate) const DEFAULT_ROTATE: u32 = 86_400;

/// The `nts` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtsConfig {
    /// `nts enable`: run the NTS-KE server and answer NTS requests.
    pub enable: bool,
    /// `nts cert FILE`: PEM certificate chain of the NTS-KE server.
    pub cert: Option<PathBuf>,
    /// `nts key FILE`: PEM private key of that certificate.
    pub key: Option<PathBuf>,
    /// `nts ca FILE`: PEM CA bundle for NTS sources without their own `ca`.
    pub ca: Option<PathBuf>,
    /// `nts cookie FILE`: the cookie master keys, kept across restarts.
    pub cookie: Option<PathBuf>,
    /// `nts port N`: TCP port of the NTS-KE server.
    pub port: u16,
    /// `nts rotate SECONDS`: how often a fresh cookie master key is made; cookies sealed under
    /// the previous keys stay valid for three more rotations.
    pub rotate: u32,
    /// Where the first `nts` line is.
    pub location: Option<Location>,
}

impl Default for NtsConfig {
    fn default() -> Self {
        Self {
            enable: false,
            cert: None,
            key: None,
            ca: None,
            cookie: None,
            port: DEFAULT_PORT,
            rotate: DEFAULT_ROTATE,
            location: None,
        }
    }
}

/// Applies one `nts` line.
pub(super) fn parse_nts(
    cfg: &mut NtsConfig,
    args: &mut Args<'_, '_>,
    location: Location,
    notes: &mut Vec<Diag>,
) -> Result<(), Diag> {
    if cfg.location.is_none() {
        cfg.location = Some(location);
    }
    let mut any = false;
    while let Some(opt) = args.next() {
        any = true;
        match opt.text {
            "enable" => cfg.enable = true,
            "disable" => cfg.enable = false,
            "cert" => cfg.cert = Some(PathBuf::from(args.value_of(opt)?.text)),
            "key" => cfg.key = Some(PathBuf::from(args.value_of(opt)?.text)),
            "ca" => cfg.ca = Some(PathBuf::from(args.value_of(opt)?.text)),
            "cookie" => cfg.cookie = Some(PathBuf::from(args.value_of(opt)?.text)),
            "port" => cfg.port = args.value_of(opt)?.int("port", 1..=u16::MAX)?,
            "rotate" => {
                let value = args.value_of(opt)?;
                cfg.rotate = value.int("rotate", 1..=u32::MAX)?;
                if cfg.rotate < 3600 {
                    notes.push(value.warning(format!(
                        "nts rotate {}: cookies stay valid for only {} s; meant for tests",
                        cfg.rotate,
                        u64::from(cfg.rotate) * 3
                    )));
                }
            }
            "mintls" | "maxtls" | "tlsciphersuites" | "tlsecdhcurves" | "aead" => {
                args.value_of(opt)?;
                notes.push(opt.warning(format!(
                    "nts {} is not supported (TLS 1.3 with rustls defaults; AES-SIV-CMAC); ignored",
                    opt.text
                )));
            }
            _ => return Err(opt.error(format!("unknown nts option '{}'", opt.text))),
        }
    }
    if !any {
        return Err(args
            .keyword()
            .error("nts needs an option (enable, cert, key, ca, cookie, port, rotate)"));
    }
    Ok(())
}
