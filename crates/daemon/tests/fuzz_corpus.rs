//! Replays the daemon's fuzz corpora (`fuzz/corpus/config_parse`, `fuzz/corpus/ntpq_variables`)
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

#[test]
fn ntpq_variables_corpus_renders_without_control_characters() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ntpq_variables");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_file() {
            println!("{}", path.display());
            sundial::ntpq::fuzz_variables(&fs::read(&path).expect("corpus file"));
            n += 1;
        }
    }
    assert!(n > 0, "empty corpus");
}
