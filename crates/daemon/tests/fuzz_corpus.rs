//! Replays the config-parser fuzz corpus (`fuzz/corpus/config_parse`) through the fuzz target's
//! entry point, so every input that once broke the parser keeps being checked.

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
