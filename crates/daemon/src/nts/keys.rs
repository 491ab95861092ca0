//! The cookie master keys: random at start-up, or kept in the `nts cookie` file so that
//! cookies survive a restart.
//!
//! File format: one key per line, newest first, `ID HEX` (a decimal id and 64 hex digits).
//! The file holds secrets: it is written through [`crate::safefile::write_atomic`] with mode
//! 0600 (a temporary file created exclusively, synced, renamed over the old one; no planted link
//! is followed) and read through [`crate::safefile::read_state`] (no link, regular files only,
//! bounded); a file its group or others can read is refused.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sundial_proto::nts::CookieKeys;
use sundial_proto::nts::cookie::{MASTER_KEY_LEN, MasterKey};

use crate::random::Random;
use crate::safefile::{self, Ownership, ReadError};

/// Longest cookie key file read: [`sundial_proto::nts::cookie::MAX_MASTER_KEYS`] lines.
const MAX_FILE_LEN: u64 = 4096;

/// A fresh random master key.
pub fn fresh_key(random: &mut Random) -> MasterKey {
    let mut key = [0u8; MASTER_KEY_LEN];
    for chunk in key.chunks_exact_mut(8) {
        chunk.copy_from_slice(&random.next_u64().to_ne_bytes());
    }
    MasterKey {
        id: (random.next_u64() >> 32) as u32,
        key,
    }
}

/// The keys in `path` if it exists and is valid, else fresh ones written to it.
pub fn load_or_create(path: &Path, random: &mut Random) -> Result<CookieKeys, String> {
    match safefile::read_state(path, MAX_FILE_LEN) {
        Ok(bytes) => {
            let mode =
                fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if mode.permissions().mode() & 0o077 != 0 {
                return Err(format!(
                    "{}: readable by others; chmod go-rwx (it holds the cookie keys)",
                    path.display()
                ));
            }
            core::str::from_utf8(&bytes)
                .ok()
                .and_then(parse)
                .ok_or_else(|| format!("{}: not a cookie key file", path.display()))
        }
        Err(ReadError::Missing(_)) => {
            let keys =
                CookieKeys::new(vec![fresh_key(random)]).ok_or_else(|| "no key".to_owned())?;
            store(path, &keys)?;
            Ok(keys)
        }
        Err(e) => Err(e.to_string()),
    }
}

fn parse(text: &str) -> Option<CookieKeys> {
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (id, hex) = line.split_once(' ')?;
        let id: u32 = id.parse().ok()?;
        let hex = hex.trim().as_bytes();
        if hex.len() != 2 * MASTER_KEY_LEN {
            return None;
        }
        let mut key = [0u8; MASTER_KEY_LEN];
        for (k, pair) in key.iter_mut().zip(hex.chunks_exact(2)) {
            let s = core::str::from_utf8(pair).ok()?;
            *k = u8::from_str_radix(s, 16).ok()?;
        }
        keys.push(MasterKey { id, key });
    }
    CookieKeys::new(keys)
}

/// Writes `keys` to `path` atomically with mode 0600.
pub fn store(path: &Path, keys: &CookieKeys) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut text = String::new();
    for k in keys.keys() {
        text.push_str(&k.id.to_string());
        text.push(' ');
        for b in k.key {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
    }
    let private = Ownership {
        mode: 0o600,
        owner: None,
    };
    safefile::write_atomic(path, text.as_bytes(), private).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_store_and_load_and_the_file_is_private() {
        let dir = std::env::temp_dir().join(format!("sundial-cookie-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let path = dir.join("cookie.keys");
        let _ = fs::remove_file(&path);
        let mut random = Random::open().unwrap();
        let first = load_or_create(&path, &mut random).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = load_or_create(&path, &mut random).unwrap();
        assert_eq!(first, again, "the stored keys are read back");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            load_or_create(&path, &mut random).is_err(),
            "world-readable refused"
        );
        fs::write(&path, "1 zz\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            load_or_create(&path, &mut random).is_err(),
            "garbage refused"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
