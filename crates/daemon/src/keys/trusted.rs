//! The daemon's keys: the keys file named by `keys`, narrowed to the ids `trustedkey` lists,
//! as the core's [`KeyRing`].
//!
//! [`load_trusted`] is the one way the daemon gets its keys, at start-up, in `ntpd --check` and
//! on reload: it never fails, it reports every problem as a [`Finding`] (keys-file syntax
//! errors with the keys file's line and column) and yields whatever keys are usable.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sundial_proto::auth::{self, KeyRing, Verification};
use sundial_proto::control::AuthVars;

use super::{KeyStore, KeyType, KeysError, KeysWarning, SymmetricKey};
use crate::config::{Config, Finding, KeyId, KeyRange, Location, Severity};

/// The trusted keys in force.
#[derive(Default)]
pub struct TrustedKeys {
    store: KeyStore,
    trusted: Vec<KeyRange>,
    usage: Usage,
}

/// How the keys have been used since they were loaded (`ntpq -c authinfo`). Server threads and
/// the main loop all count here: relaxed atomics, exact totals, no ordering needed.
#[derive(Debug)]
struct Usage {
    loaded: Instant,
    lookups: AtomicU64,
    not_found: AtomicU64,
    digest_encrypts: AtomicU64,
    cmac_encrypts: AtomicU64,
    digest_decrypts: AtomicU64,
    digest_fails: AtomicU64,
    cmac_decrypts: AtomicU64,
    cmac_fails: AtomicU64,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            loaded: Instant::now(),
            lookups: AtomicU64::new(0),
            not_found: AtomicU64::new(0),
            digest_encrypts: AtomicU64::new(0),
            cmac_encrypts: AtomicU64::new(0),
            digest_decrypts: AtomicU64::new(0),
            digest_fails: AtomicU64::new(0),
            cmac_decrypts: AtomicU64::new(0),
            cmac_fails: AtomicU64::new(0),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl TrustedKeys {
    /// No keys: nothing signs, nothing verifies.
    pub fn none() -> Self {
        Self::default()
    }

    /// `store` narrowed to the ids in `trusted`.
    pub fn new(store: KeyStore, trusted: Vec<KeyRange>) -> Self {
        Self {
            store,
            trusted,
            usage: Usage::default(),
        }
    }

    /// The key `id` if it is trusted, of a type sundial computes, and not limited to a list of
    /// addresses (the daemon does not apply such limits, so it does not use those keys).
    pub fn usable(&self, id: KeyId) -> Option<&SymmetricKey> {
        if !self.trusted.iter().any(|r| r.contains(id)) {
            return None;
        }
        self.store
            .get(id)
            .ok()
            .filter(|key| key.allowed().is_empty())
    }

    fn by_wire_id(&self, key_id: u32) -> Option<&SymmetricKey> {
        let id = KeyId::new(u16::try_from(key_id).ok()?)?;
        self.usable(id)
    }

    /// [`Self::by_wire_id`], counted as a look-up (and a miss when there is no such key).
    fn look_up(&self, key_id: u32) -> Option<&SymmetricKey> {
        bump(&self.usage.lookups);
        let key = self.by_wire_id(key_id);
        if key.is_none() {
            bump(&self.usage.not_found);
        }
        key
    }

    /// How the keys have been used since they were loaded, for mode 6.
    pub fn usage(&self) -> AuthVars {
        let u = &self.usage;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AuthVars {
            since_reset: u.loaded.elapsed().as_secs(),
            keys: u64::try_from(self.len()).unwrap_or(u64::MAX),
            lookups: load(&u.lookups),
            not_found: load(&u.not_found),
            digest_encrypts: load(&u.digest_encrypts),
            cmac_encrypts: load(&u.cmac_encrypts),
            digest_decrypts: load(&u.digest_decrypts),
            digest_fails: load(&u.digest_fails),
            cmac_decrypts: load(&u.cmac_decrypts),
            cmac_fails: load(&u.cmac_fails),
        }
    }

    /// How many trusted keys can be used.
    pub fn len(&self) -> usize {
        self.store
            .ids()
            .filter(|&id| self.usable(id).is_some())
            .count()
    }

    /// Whether no key can be used.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for TrustedKeys {
    /// The ids in use; never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<KeyId> = self
            .store
            .ids()
            .filter(|&id| self.usable(id).is_some())
            .collect();
        f.debug_struct("TrustedKeys").field("usable", &ids).finish()
    }
}

impl KeyRing for TrustedKeys {
    fn sign(
        &self,
        key_id: u32,
        data: &[u8],
        out: &mut [u8; auth::MAX_DIGEST_LEN],
    ) -> Option<usize> {
        let key = self.look_up(key_id)?;
        bump(if key.key_type() == KeyType::Aes128Cmac {
            &self.usage.cmac_encrypts
        } else {
            &self.usage.digest_encrypts
        });
        let digest = key.full_digest(data);
        let bytes = digest.as_bytes();
        out.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(bytes.len())
    }

    fn verify(&self, key_id: u32, data: &[u8], tag: &[u8]) -> Verification {
        let Some(key) = self.look_up(key_id) else {
            return Verification::UnknownKey;
        };
        let (checked, failed) = if key.key_type() == KeyType::Aes128Cmac {
            (&self.usage.cmac_decrypts, &self.usage.cmac_fails)
        } else {
            (&self.usage.digest_decrypts, &self.usage.digest_fails)
        };
        bump(checked);
        // Constant time, and false for a tag of the wrong length.
        if key.verify(data, tag) {
            Verification::Valid
        } else {
            bump(failed);
            Verification::Mismatch
        }
    }
}

/// Reads the keys of `config` (its `keys` file and `trustedkey` lines) and checks every
/// `key N` of its associations against them. Called at start-up, by `ntpd --check`, and again
/// on reload (SIGHUP) so that an edited keys file takes effect.
pub fn load_trusted(config: &Config) -> (TrustedKeys, Vec<Finding>) {
    let mut findings = Vec::new();
    let store = match &config.keys {
        None => KeyStore::default(),
        Some(path) => {
            let at = config
                .keys_location
                .clone()
                .unwrap_or_else(|| Location::new(path, 0, 0));
            read_store(path, &at, &mut findings)
        }
    };
    let keys = TrustedKeys::new(store, config.trusted_keys.clone());
    for assoc in &config.associations {
        let Some(id) = assoc.key else { continue };
        let problem = if config.keys.is_none() {
            Some("no keys file is configured (keys FILE)".to_owned())
        } else if !config.is_trusted(id) {
            Some(format!("key {id} is not listed by trustedkey"))
        } else {
            match keys.store.get(id) {
                Err(e) => Some(e.to_string()),
                Ok(key) if !key.allowed().is_empty() => Some(format!(
                    "key {id} is limited to addresses in the keys file, which ntpd does not apply"
                )),
                Ok(_) => None,
            }
        };
        if let Some(problem) = problem {
            findings.push(Finding {
                severity: Severity::Warning,
                location: assoc.location.clone(),
                token: id.to_string(),
                message: format!(
                    "{problem}: replies from this source can never be authenticated, so it will \
                     never be used"
                ),
            });
        }
    }
    (keys, findings)
}

fn read_store(path: &Path, at: &Location, findings: &mut Vec<Finding>) -> KeyStore {
    match KeyStore::load(path) {
        Ok((store, warnings)) => {
            for w in warnings {
                findings.push(warning_finding(&w, at));
            }
            store
        }
        Err(KeysError::Syntax { location, problem }) => {
            findings.push(Finding {
                severity: Severity::Error,
                location,
                token: String::new(),
                message: format!("{problem}; the whole keys file is ignored"),
            });
            KeyStore::default()
        }
        Err(e) => {
            findings.push(Finding {
                severity: Severity::Error,
                location: at.clone(),
                token: path.display().to_string(),
                message: format!("cannot use the keys file: {e}"),
            });
            KeyStore::default()
        }
    }
}

/// A keys-file warning as a finding: at its own place in the keys file, or at the `keys` line
/// for one about the file as a whole. The message never quotes key material.
fn warning_finding(w: &KeysWarning, at: &Location) -> Finding {
    let location = match w {
        KeysWarning::ReadableByOthers { .. } => at.clone(),
        KeysWarning::UnsupportedType { location, .. }
        | KeysWarning::Duplicate { location, .. }
        | KeysWarning::CmacKeyLength { location, .. } => location.clone(),
    };
    // The warning's text starts with its location already; keep only the message.
    let text = w.to_string();
    let message = text
        .strip_prefix(&format!("{location}: "))
        .unwrap_or(&text)
        .to_owned();
    Finding {
        severity: Severity::Warning,
        location,
        token: String::new(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config;

    fn setup(name: &str, keys: &str, conf: &str) -> (std::path::PathBuf, Config, Vec<Finding>) {
        let dir =
            std::env::temp_dir().join(format!("sundial-trusted-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_path = dir.join("ntp.keys");
        std::fs::write(&key_path, keys).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = conf.replace("KEYS", key_path.to_str().unwrap());
        let (cfg, findings) = config::parse_str(&text, &dir.join("ntp.conf"));
        assert!(findings.iter().all(|f| !f.is_error()), "{findings:?}");
        (dir, cfg, findings)
    }

    #[test]
    fn only_trusted_keys_sign_and_verify() {
        let (dir, cfg, _) = setup(
            "trust",
            "1 MD5 one\n2 SHA256 two\n3 AES 0123456789abcdef\n",
            "keys KEYS\ntrustedkey 1 (2 ... 2)\nserver 192.0.2.1 key 1\n",
        );
        let (keys, findings) = load_trusted(&cfg);
        assert!(findings.is_empty(), "{findings:?}");
        let mut out = [0u8; auth::MAX_DIGEST_LEN];
        assert_eq!(keys.sign(1, b"data", &mut out), Some(16));
        let md5 = out;
        assert_eq!(keys.verify(1, b"data", &md5[..16]), Verification::Valid);
        assert_eq!(keys.verify(1, b"datb", &md5[..16]), Verification::Mismatch);
        assert_eq!(keys.verify(1, b"data", &md5[..15]), Verification::Mismatch);
        assert_eq!(
            keys.sign(2, b"data", &mut out),
            Some(32),
            "a whole SHA256 digest"
        );
        let sha = out;
        assert_eq!(keys.verify(2, b"data", &sha[..32]), Verification::Valid);
        assert_eq!(
            keys.verify(2, b"data", &sha[..20]),
            Verification::Valid,
            "cut, as NTPsec"
        );
        assert_eq!(keys.verify(2, b"data", &sha[..24]), Verification::Mismatch);
        assert_eq!(keys.sign(3, b"data", &mut out), None, "not trusted");
        assert_eq!(keys.verify(3, b"data", &[0; 16]), Verification::UnknownKey);
        assert_eq!(
            keys.verify(70_000, b"data", &[0; 16]),
            Verification::UnknownKey
        );
        assert_eq!(keys.len(), 2);
        assert!(!format!("{keys:?}").contains("one"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keys_problems_are_findings_at_their_place() {
        let (dir, cfg, _) = setup(
            "findings",
            "1 MD5 one\n2 SHA1 zz-not-hex-but-longer-than-20\n",
            "keys KEYS\ntrustedkey 1\nserver 192.0.2.1 key 1\nserver 192.0.2.2 key 4\n",
        );
        let (keys, findings) = load_trusted(&cfg);
        let key_path = dir.join("ntp.keys");
        let syntax = findings
            .iter()
            .find(|f| f.is_error())
            .expect("a syntax error");
        assert_eq!(syntax.location.file, key_path);
        assert_eq!((syntax.location.line, syntax.location.column), (2, 8));
        assert!(keys.is_empty(), "a bad file is ignored as a whole");
        let untrusted = findings
            .iter()
            .find(|f| f.token == "4")
            .expect("key 4 is reported");
        assert_eq!(untrusted.location.line, 4);
        assert!(untrusted.message.contains("not listed by trustedkey"));

        // A keys file its group may read is a warning at the `keys` line.
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(&key_path, "1 MD5 one\n").unwrap();
        let (keys, findings) = load_trusted(&cfg);
        assert_eq!(keys.len(), 1);
        let readable = findings
            .iter()
            .find(|f| f.message.contains("readable by its group"))
            .expect("group-readable warning");
        assert_eq!(
            (readable.location.line, readable.severity),
            (1, Severity::Warning)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_without_a_keys_file_is_a_warning() {
        let (cfg, _) = config::parse_str(
            "trustedkey 1\nserver 192.0.2.1 key 1\n",
            Path::new("/nonexistent/ntp.conf"),
        );
        let (_, findings) = load_trusted(&cfg);
        assert!(
            findings
                .iter()
                .any(|f| f.message.starts_with("no keys file is configured")),
            "{findings:?}"
        );
    }
}
