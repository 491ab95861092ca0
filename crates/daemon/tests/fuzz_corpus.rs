//! Replays the daemon's fuzz corpora (`fuzz/corpus/config_parse`, `ntpq_variables`,
//! `keys_parse`, `server_keyed`)
//! through the fuzz targets' entry points, so every input that once broke a parser keeps being
//! checked.

use std::fs;
use std::path::PathBuf;

#[test]
fn config_corpus_loads_without_panicking() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config_parse");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_file() {
            println!("{}", path.display());
            sundial::config::fuzz_parse(&fs::read(&path).expect("corpus file"));
            n += 1;
        }
    }
    assert!(n > 0, "empty corpus");
}

/// Every file of `fuzz/corpus/TARGET`.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let data = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

#[test]
fn keys_corpus_parses_and_every_key_verifies_its_own_mac() {
    for (path, data) in corpus("keys_parse") {
        println!("{}", path.display());
        sundial::keys::fuzz_parse(&data);
    }
}

#[test]
fn keyed_server_corpus_never_gets_a_longer_or_unauthenticated_reply() {
    for (path, data) in corpus("server_keyed") {
        println!("{}", path.display());
        sundial::keys::fuzz_server(&data);
    }
}

#[test]
fn ntpq_variables_corpus_renders_without_control_characters() {
    for (path, data) in corpus("ntpq_variables") {
        println!("{}", path.display());
        sundial::ntpq::fuzz_variables(&data);
    }
}
