//! Fuzzing entry points for the keys file and for the server's handling of MAC'd requests
//! (`fuzz/fuzz_targets/keys_parse.rs`, `fuzz/fuzz_targets/server_keyed.rs`), also replayed by
//! `tests/fuzz_corpus.rs`. Each checks, for every input, the properties that must always hold,
//! and panics (which the fuzzer reports) only when one does not.

use std::net::SocketAddr;
use std::path::Path;

use sundial_proto::access::{AccessTable, RestrictFlags};
use sundial_proto::auth::{self, Authentication, MAX_AUTHENTICATED_LEN};
use sundial_proto::packet::{HEADER_LEN, Packet};
use sundial_proto::server::{Action, Policy, RequestMeta, Server};
use sundial_proto::system::SystemState;
use sundial_proto::time::{Log2Seconds, MonoTime, NtpTimestamp};

use super::{KeyStore, KeyType, KeysError, TrustedKeys};
use crate::config::{KeyId, KeyRange};

/// The path fuzzed keys files are named by.
const FUZZ_PATH: &str = "/nonexistent/fuzz/ntp.keys";

/// Any bytes as a keys file: no panic; a syntax error points into the text; every usable key
/// verifies its own MAC, whole and (for SHA-2) cut to 20 octets.
pub fn fuzz_parse(data: &[u8]) {
    let lines = u32::try_from(data.split(|&b| b == b'\n').count()).unwrap_or(u32::MAX);
    match KeyStore::parse(Path::new(FUZZ_PATH), data) {
        Err(KeysError::Syntax { location, .. }) => {
            assert!(
                (1..=lines).contains(&location.line),
                "error past the end: {location}"
            );
        }
        Err(_) => {}
        Ok((store, _warnings)) => {
            for id in store.ids() {
                let Ok(key) = store.get(id) else { continue };
                let packet = [0x23u8; HEADER_LEN];
                let whole = key.full_digest(&packet);
                assert!(key.verify(&packet, whole.as_bytes()), "key {id}: whole");
                let sent = key.digest(&packet);
                assert!(key.verify(&packet, sent.as_bytes()), "key {id}: sent");
            }
        }
    }
}

/// A key of every type, ids 1–6, all trusted.
fn fuzz_keys() -> TrustedKeys {
    let types = [
        KeyType::Md5,
        KeyType::Sha1,
        KeyType::Sha256,
        KeyType::Sha384,
        KeyType::Sha512,
        KeyType::Aes128Cmac,
    ];
    let mut text = String::new();
    for (i, t) in types.iter().enumerate() {
        text.push_str(&format!("{} {t} fuzz-secret-{i}\n", i + 1));
    }
    let store = KeyStore::parse(Path::new(FUZZ_PATH), text.as_bytes())
        .map(|(s, _)| s)
        .unwrap_or_default();
    let range = KeyId::new(1)
        .zip(KeyId::new(6))
        .and_then(|(a, b)| KeyRange::new(a, b));
    TrustedKeys::new(store, range.into_iter().collect())
}

/// A MAC'd request to the server. The first octet picks `notrust` (bit 0) and whether the rest
/// is sent as it is or first signed under key 1–6 (bits 1–3; 0 or 7: as it is) with its digest
/// whole or cut (bit 4). Properties: no panic; no reply is longer than the request; a request
/// whose MAC verifies is answered with a MAC under the same key that verifies; any other MAC
/// gets at most a 52-octet crypto-NAK, and under `notrust` nothing.
pub fn fuzz_server(data: &[u8]) {
    let (control, rest) = data.split_first().map_or((0, data), |(c, r)| (*c, r));
    let keys = fuzz_keys();
    let mut request = rest.to_vec();
    let signer = (control >> 1) & 0x07;
    if (1..=6).contains(&signer) && request.len() >= HEADER_LEN {
        let cut = control & 0x10 != 0;
        if let Some(key) = KeyId::new(u16::from(signer)).and_then(|id| keys.usable(id)) {
            let digest = if cut {
                key.digest(&request)
            } else {
                key.full_digest(&request)
            };
            request.extend_from_slice(&u32::from(signer).to_be_bytes());
            request.extend_from_slice(digest.as_bytes());
        }
    }
    let mut table = AccessTable::new();
    let notrust = control & 1 != 0;
    let flags = if notrust {
        RestrictFlags::NOTRUST
    } else {
        RestrictFlags::NONE
    };
    table.add_default(true, true, flags);
    let meta = RequestMeta {
        source: SocketAddr::from(([192, 0, 2, 1], 40000)),
        destination: None,
        receive_time: NtpTimestamp::from_parts(0xec00_0000, 0),
        monotonic: MonoTime::ZERO,
        truncated: false,
        client: None,
    };
    let state = SystemState::unsynchronized(Log2Seconds::new(-20));
    let mut out = [0u8; 1024];
    let action = Server::new().handle(
        &Policy::with_keys(&table, &keys),
        &meta,
        &request,
        &state,
        &mut out,
        || NtpTimestamp::from_parts(0xec00_0000, 1),
    );
    let Action::Reply(len) = action else { return };
    assert!(
        len <= request.len(),
        "{len}-octet reply to {}",
        request.len()
    );
    let parsed = Packet::parse(&request).ok();
    let verdict = parsed.map(|p| auth::authenticate(&keys, &request, &p));
    let reply = out.get(..len).unwrap_or_default();
    match verdict {
        Some(Authentication::Valid { key_id }) => {
            assert!(len <= MAX_AUTHENTICATED_LEN);
            let back = Packet::parse(reply).map(|p| auth::authenticate(&keys, reply, &p));
            assert_eq!(back, Ok(Authentication::Valid { key_id }), "reply MAC");
        }
        Some(Authentication::None) => assert!(!notrust, "notrust answered without a MAC"),
        _ => {
            assert!(!notrust, "notrust answered a MAC that does not verify");
            assert!(len <= HEADER_LEN + 4, "more than a crypto-NAK: {len}");
        }
    }
}
