//! Keys file parsing and MAC computation: hand-computed NTP MACs, RFC 4493 AES-CMAC vectors,
//! and a property test that no text makes the parser panic.

use std::net::IpAddr;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::property;

const FILE: &str = "/etc/ntp.keys";

fn id(n: u16) -> KeyId {
    KeyId::new(n).unwrap()
}

fn parse(text: &str) -> Result<(KeyStore, Vec<KeysWarning>), KeysError> {
    KeyStore::parse(Path::new(FILE), text.as_bytes())
}

fn syntax_error(text: &str) -> (String, SyntaxProblem) {
    match parse(text) {
        Err(KeysError::Syntax { location, problem }) => (location.to_string(), problem),
        other => panic!("{text:?} must be a syntax error, got {other:?}"),
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A 48-octet client request: LI=3, VN=4, mode 3, stratum 0, poll 3, precision −6, transmit
/// timestamp e9a1b2c3.d4e5f601, everything else zero.
fn request_header() -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[..4].copy_from_slice(&[0xe3, 0x00, 0x03, 0xfa]);
    p[40..].copy_from_slice(&hex("e9a1b2c3d4e5f601"));
    p
}

#[test]
fn ascii_and_hex_keys_of_every_supported_type_parse() {
    let text = "# ntp keys\n\
                1 MD5 sundial-test\n\
                \n\
                2\tsha1  00112233445566778899aabbccddeeff0123456789abcdef  # hex: > 20 chars\n\
                3 AES128CMAC 2b7e151628aed2a6abf7158809cf4f3c\r\n\
                4 M short\n\
                5 aes 000102030405060708090a0b0c0d0e0f 192.0.2.0/24,2001:db8::1\n";
    let (store, warnings) = parse(text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(store.len(), 5);
    let types: Vec<KeyType> = store
        .ids()
        .map(|i| store.get(i).unwrap().key_type())
        .collect();
    assert_eq!(
        types,
        [
            KeyType::Md5,
            KeyType::Sha1,
            KeyType::Aes128Cmac,
            KeyType::Md5,
            KeyType::Aes128Cmac
        ]
    );
    assert_eq!(store.get(id(1)).unwrap().secret(), b"sundial-test");
    assert_eq!(
        store.get(id(2)).unwrap().secret(),
        hex("00112233445566778899aabbccddeeff0123456789abcdef")
    );
    let limited = store.get(id(5)).unwrap();
    assert!(limited.allows("192.0.2.77".parse().unwrap()));
    assert!(limited.allows("::ffff:192.0.2.77".parse().unwrap()));
    assert!(limited.allows("2001:db8::1".parse().unwrap()));
    assert!(!limited.allows("192.0.3.1".parse().unwrap()));
    assert!(!limited.allows("2001:db8::2".parse().unwrap()));
    assert!(
        store
            .get(id(1))
            .unwrap()
            .allows("203.0.113.9".parse().unwrap())
    );
}

#[test]
fn a_key_of_twenty_characters_is_ascii_and_of_twenty_two_is_hex() {
    let (store, _) = parse("1 MD5 0123456789abcdef0123\n2 MD5 0123456789abcdef012345\n").unwrap();
    assert_eq!(store.get(id(1)).unwrap().secret(), b"0123456789abcdef0123");
    assert_eq!(
        store.get(id(2)).unwrap().secret(),
        hex("0123456789abcdef012345")
    );
}

#[test]
fn a_hash_starts_a_comment_even_inside_a_word() {
    let (store, _) = parse("1 MD5 abc#def\n  # 2 MD5 x\n").unwrap();
    assert_eq!(store.get(id(1)).unwrap().secret(), b"abc");
    assert_eq!(store.len(), 1);
}

#[test]
fn syntax_errors_name_file_line_and_column_and_reject_the_file() {
    let cases: [(&str, &str, SyntaxProblem); 10] = [
        (
            "1 MD5 ok\n x MD5 abc\n",
            "/etc/ntp.keys:2:2",
            SyntaxProblem::BadKeyId { text: "x".into() },
        ),
        (
            "0 MD5 abc",
            "/etc/ntp.keys:1:1",
            SyntaxProblem::KeyIdOutOfRange { text: "0".into() },
        ),
        (
            "65536 MD5 abc",
            "/etc/ntp.keys:1:1",
            SyntaxProblem::KeyIdOutOfRange {
                text: "65536".into(),
            },
        ),
        ("7", "/etc/ntp.keys:1:2", SyntaxProblem::MissingType),
        (
            "7 MD5  # no key",
            "/etc/ntp.keys:1:8",
            SyntaxProblem::MissingKey,
        ),
        (
            "7 SHA1 0123456789abcdef0123456789abcdef012345g7",
            "/etc/ntp.keys:1:46",
            SyntaxProblem::BadHexDigit,
        ),
        (
            "7 SHA1 0123456789abcdef0123456",
            "/etc/ntp.keys:1:8",
            SyntaxProblem::OddHexLength { digits: 23 },
        ),
        (
            &format!("7 SHA1 {}", "ab".repeat(33)),
            "/etc/ntp.keys:1:8",
            SyntaxProblem::HexKeyTooLong { digits: 66 },
        ),
        (
            "7 MD5 abc 192.0.2.1,300.1.1.1",
            "/etc/ntp.keys:1:21",
            SyntaxProblem::BadAddress,
        ),
        (
            "7 MD5 abc 192.0.2.1 extra",
            "/etc/ntp.keys:1:21",
            SyntaxProblem::TrailingText,
        ),
    ];
    for (text, at, problem) in cases {
        assert_eq!(syntax_error(text), (at.to_owned(), problem), "{text:?}");
    }
    for bad_prefix in ["192.0.2.0/33", "::/129", "192.0.2.0/", "192.0.2.0/x"] {
        let (_, problem) = syntax_error(&format!("7 MD5 abc {bad_prefix}"));
        assert!(matches!(problem, SyntaxProblem::BadAddress), "{bad_prefix}");
    }
    let (at, problem) = syntax_error("7 MD5 é");
    assert_eq!(
        (at.as_str(), problem),
        ("/etc/ntp.keys:1:7", SyntaxProblem::BadAsciiKey)
    );
    // A secret with a space in it: its second half is not echoed anywhere.
    let err = parse("1 MD5 half1 half2-of-secret\n").unwrap_err();
    assert!(
        !err.to_string().contains("half2") && !format!("{err:?}").contains("half2"),
        "{err}"
    );
    let message = parse("1 MD5 ok\n x MD5 abc\n").unwrap_err().to_string();
    assert_eq!(message, "/etc/ntp.keys:2:2: key id \"x\" is not a number");
}

#[test]
fn unsupported_types_warn_and_fail_only_when_used() {
    let (store, warnings) = parse("1 MD5 abc\n2 RMD160 abc\n").unwrap();
    assert!(store.get(id(1)).is_ok());
    let Err(err) = store.get(id(2)) else {
        panic!("RMD160 is not supported");
    };
    assert_eq!(
        err.to_string(),
        "/etc/ntp.keys:2:3: authentication key 2 has type RMD160, which is not supported \
         (supported: MD5, SHA1, SHA256, SHA384, SHA512, AES128CMAC)"
    );
    assert!(matches!(
        warnings.as_slice(),
        [KeysWarning::UnsupportedType { type_name, .. }] if type_name == "RMD160"
    ));
    assert_eq!(
        store.get(id(3)).unwrap_err().to_string(),
        "authentication key 3 unknown"
    );
}

#[test]
fn a_repeated_id_warns_and_the_later_line_wins() {
    let (store, warnings) = parse("1 MD5 first\n1 MD5 second\n").unwrap();
    assert_eq!(store.get(id(1)).unwrap().secret(), b"second");
    assert_eq!(
        warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "/etc/ntp.keys:2:1: key 1 is defined again (first on line 1); this definition \
          replaces it"
        ]
    );
}

#[test]
fn cmac_keys_of_other_lengths_warn() {
    let (_, warnings) = parse("1 AES128CMAC short\n").unwrap();
    assert!(matches!(
        warnings.as_slice(),
        [KeysWarning::CmacKeyLength { len: 5, .. }]
    ));
}

#[test]
fn debug_output_never_shows_the_secret() {
    let (store, _) = parse("1 MD5 SeCrEtKeY\n").unwrap();
    let shown = format!("{store:?} {:?}", store.get(id(1)).unwrap());
    assert!(!shown.contains("SeCrEtKeY"), "{shown}");
    assert!(!shown.contains("83, 101, 67"), "{shown}");
    assert!(shown.contains("secret_len: 9"), "{shown}");
}

#[test]
fn load_warns_about_a_group_or_world_readable_file_and_names_unreadable_ones() {
    use std::os::unix::fs::PermissionsExt;

    let dir = std::env::temp_dir().join(format!("sundial-keys-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ntp.keys");
    std::fs::write(&path, "1 MD5 abc\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, warnings) = KeyStore::load(&path).unwrap();
    assert!(
        matches!(
            warnings.as_slice(),
            [KeysWarning::ReadableByOthers { mode: 0o644, .. }]
        ),
        "{warnings:?}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (_, warnings) = KeyStore::load(&path).unwrap();
    assert!(
        matches!(
            warnings.as_slice(),
            [KeysWarning::ReadableByOthers { mode: 0o640, .. }]
        ),
        "{warnings:?}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (store, warnings) = KeyStore::load(&path).unwrap();
    assert!(warnings.is_empty() && store.len() == 1, "{warnings:?}");
    let missing = dir.join("missing.keys");
    let err = KeyStore::load(&missing).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: No such file", missing.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn md5_mac_is_the_digest_of_key_then_packet() {
    // md5(b"sundial-test" ‖ request_header()), computed separately from the definition.
    let key = SymmetricKey::new(id(1), KeyType::Md5, b"sundial-test").unwrap();
    let digest = key.digest(&request_header());
    assert_eq!(digest.as_bytes(), hex("bee8f06d51baa0fbbdb78833317cb519"));
    let mut packet = request_header();
    key.append_mac(&mut packet);
    assert_eq!(packet.len(), 48 + 4 + 16);
    assert_eq!(packet[48..52], [0, 0, 0, 1]);
    assert_eq!(check_mac(&key, &packet), Ok(()));
}

#[test]
fn sha1_mac_is_the_digest_of_key_then_packet() {
    // sha1(00112233…cdef ‖ request_header()), computed separately from the definition.
    let secret = hex("00112233445566778899aabbccddeeff0123456789abcdef");
    let key = SymmetricKey::new(id(2), KeyType::Sha1, &secret).unwrap();
    let digest = key.digest(&request_header());
    assert_eq!(
        digest.as_bytes(),
        hex("39c5ed16ee12bf9610a904a7877ec4927eb808ab")
    );
    let mut packet = request_header();
    key.append_mac(&mut packet);
    assert_eq!(packet.len(), 48 + 4 + 20);
    assert_eq!(key.trailer_len(), 24);
    assert_eq!(check_mac(&key, &packet), Ok(()));
}

#[test]
fn sha2_macs_are_the_digest_of_key_then_packet_cut_to_twenty_octets() {
    // H("tEsT-sEcReT" ‖ octets 0..48), first 20 octets, computed separately (as NTPsec cuts
    // SHA-2 digests to fit NTPv4's MAC trailer).
    let data: Vec<u8> = (0..48).collect();
    for (key_type, expected) in [
        (KeyType::Sha256, "ffd4a786f4d3ee0ccd0c009d88a9cafc6c08c476"),
        (KeyType::Sha384, "b28ae518aa19ec1322bcbbbb3769868bb5118c7e"),
        (KeyType::Sha512, "dff9fcb318733ed6ee58608845584f597f1d792e"),
    ] {
        let key = SymmetricKey::new(id(3), key_type, b"tEsT-sEcReT").unwrap();
        assert_eq!(key.digest(&data).as_bytes(), hex(expected), "{key_type}");
        assert_eq!(key.trailer_len(), 24, "{key_type}");
    }
}

#[test]
fn aes_cmac_matches_rfc_4493() {
    let key = SymmetricKey::new(
        id(3),
        KeyType::Aes128Cmac,
        &hex("2b7e151628aed2a6abf7158809cf4f3c"),
    )
    .unwrap();
    let message = hex(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
         30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
    );
    for (len, tag) in [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ] {
        assert_eq!(key.digest(&message[..len]).as_bytes(), hex(tag), "{len}");
        assert!(key.verify(&message[..len], &hex(tag)));
    }
}

#[test]
fn short_cmac_keys_are_zero_padded_like_ntpd() {
    let short = SymmetricKey::new(id(3), KeyType::Aes128Cmac, b"abc").unwrap();
    let mut padded = [0u8; 16];
    padded[..3].copy_from_slice(b"abc");
    let full = SymmetricKey::new(id(3), KeyType::Aes128Cmac, &padded).unwrap();
    let data = request_header();
    assert_eq!(
        short.digest(&data).as_bytes(),
        full.digest(&data).as_bytes()
    );
}

#[test]
fn packets_without_a_valid_mac_fail_with_the_reason() {
    let key = SymmetricKey::new(id(1), KeyType::Md5, b"sundial-test").unwrap();
    let other = SymmetricKey::new(id(1), KeyType::Md5, b"other-secret").unwrap();
    let sha = SymmetricKey::new(id(1), KeyType::Sha1, b"sundial-test").unwrap();
    let plain = request_header();
    assert_eq!(check_mac(&key, &plain), Err(MacFailure::Missing));
    let mut nak = request_header();
    nak.extend_from_slice(&[0; 4]);
    assert_eq!(check_mac(&key, &nak), Err(MacFailure::CryptoNak));
    let mut signed = request_header();
    key.append_mac(&mut signed);
    assert_eq!(check_mac(&other, &signed), Err(MacFailure::Mismatch));
    assert_eq!(
        check_mac(&sha, &signed),
        Err(MacFailure::WrongLength { len: 16 })
    );
    let mut wrong_id = signed.clone();
    wrong_id[51] = 2;
    assert_eq!(
        check_mac(&key, &wrong_id),
        Err(MacFailure::WrongKey { key_id: 2 })
    );
    let mut tampered = signed.clone();
    tampered[47] ^= 1;
    assert_eq!(check_mac(&key, &tampered), Err(MacFailure::Mismatch));
    assert_eq!(check_mac(&key, &signed[..40]), Err(MacFailure::Malformed));
}

#[test]
fn secrets_must_be_one_to_thirty_two_octets() {
    assert!(SymmetricKey::new(id(1), KeyType::Md5, b"").is_none());
    assert!(SymmetricKey::new(id(1), KeyType::Md5, &[7; 33]).is_none());
    assert!(SymmetricKey::new(id(1), KeyType::Md5, &[7; 32]).is_some());
}

#[test]
fn key_type_names_are_case_insensitive() {
    for (name, t) in [
        ("md5", KeyType::Md5),
        ("M", KeyType::Md5),
        ("Sha1", KeyType::Sha1),
        ("SHA-1", KeyType::Sha1),
        ("AES128CMAC", KeyType::Aes128Cmac),
        ("aes", KeyType::Aes128Cmac),
    ] {
        assert_eq!(KeyType::from_name(name), Some(t), "{name}");
    }
    assert_eq!(KeyType::from_name("SHA256"), Some(KeyType::Sha256));
    assert_eq!(KeyType::from_name("sha-512"), Some(KeyType::Sha512));
    assert_eq!(KeyType::from_name("RMD160"), None);
    assert_eq!(KeyType::Sha1.to_string(), "SHA1");
}

#[test]
fn address_prefixes_match_their_block_only() {
    let p = |s: &str, bits| AddrPrefix::new(s.parse::<IpAddr>().unwrap(), bits).unwrap();
    assert!(p("0.0.0.0", 0).contains("203.0.113.1".parse().unwrap()));
    assert!(!p("0.0.0.0", 0).contains("::1".parse().unwrap()));
    assert!(p("::", 0).contains("2001:db8::1".parse().unwrap()));
    assert!(p("10.1.2.3", 32).contains("10.1.2.3".parse().unwrap()));
    assert!(!p("10.1.2.3", 32).contains("10.1.2.4".parse().unwrap()));
    assert!(AddrPrefix::new("10.0.0.0".parse().unwrap(), 33).is_none());
    assert_eq!(p("10.0.0.0", 8).to_string(), "10.0.0.0/8");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let checked = property::run(proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
        let _ = KeyStore::parse(Path::new(FILE), &bytes);
        Ok(())
    });
    assert_eq!(checked, property::CASES);
}

#[test]
fn arbitrary_key_lines_never_panic_and_errors_point_into_the_text() {
    // Mostly noise, which the parser rejects, and half well-formed key lines (printable ASCII
    // without `#`), so that both sides of the rule are checked.
    let strategy = prop_oneof![
        "([0-9]{1,6}|x)?[ \t]*(MD5|SHA1|AES|SHA256|é)?[ \t]*[ -~é]{0,70}[ \t]*[0-9a-f:./,]{0,40}\
         (\n[ -~]{0,30}){0,3}",
        "[1-9][0-9]{0,3}[ \t]+(MD5|SHA1|SHA256)[ \t]+[!-\"$-~]{1,20}[ \t]*",
    ];
    let (parsed, rejected) = (property::Checked::default(), property::Checked::default());
    let checked = property::run(strategy, |text| {
        match parse(&text) {
            Ok((store, _)) => {
                for i in store.ids() {
                    if let Ok(key) = store.get(i) {
                        parsed.hit();
                        prop_assert!(!key.secret().is_empty());
                        prop_assert!(key.secret().len() <= MAX_SECRET_LEN);
                    }
                }
            }
            Err(KeysError::Syntax { location, .. }) => {
                rejected.hit();
                let line = text.split('\n').nth(location.line as usize - 1);
                prop_assert!(line.is_some(), "{location} is past the end");
                let chars = line.map_or(0, |l| l.chars().count());
                prop_assert!(location.column as usize <= chars + 1, "{location}");
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        Ok(())
    });
    assert_eq!(checked, property::CASES);
    // About half the lines are keys and nearly all the noise is rejected.
    assert!(
        parsed.count() >= property::CASES / 4,
        "{} keys checked",
        parsed.count()
    );
    assert!(
        rejected.count() >= property::CASES / 4,
        "{} rejections checked",
        rejected.count()
    );
}
