//! Replays the fuzz corpora kept in `fuzz/corpus/` (seed inputs and every interesting input the
//! fuzzers found) through the same entry points the fuzz targets call, so a fixed bug stays
//! fixed without running a fuzzer.

use std::fs;
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
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
fn packet_corpus_parses_without_panicking() {
    for (path, data) in corpus("packet_parse") {
        println!("{}", path.display());
        sundial_proto::fuzzing::packet(&data);
    }
}

#[test]
fn server_corpus_never_gets_a_longer_reply() {
    for (path, data) in corpus("server_handle") {
        println!("{}", path.display());
        sundial_proto::fuzzing::server(&data);
    }
}

#[test]
fn control_corpus_frames_every_reply() {
    for (path, data) in corpus("control_respond") {
        println!("{}", path.display());
        sundial_proto::control::fuzz_respond(&data);
    }
}

#[test]
fn nts_ke_corpus_parses_and_round_trips() {
    for (path, data) in corpus("nts_ke") {
        println!("{}", path.display());
        sundial_proto::fuzzing::nts_ke(&data);
    }
}

#[test]
fn source_response_corpus_keeps_state_and_poll_within_bounds() {
    for (path, data) in corpus("source_response") {
        println!("{}", path.display());
        sundial_proto::fuzzing::source_response(&data);
    }
}

#[test]
fn nts_packet_corpus_never_gets_a_longer_or_forged_reply() {
    for (path, data) in corpus("nts_packet") {
        println!("{}", path.display());
        sundial_proto::fuzzing::nts_packet(&data);
    }
}

#[test]
fn control_reassembly_corpus_completes_only_whole_responses() {
    for (path, data) in corpus("control_reassembly") {
        println!("{}", path.display());
        sundial_proto::fuzzing::control_reassembly(&data);
    }
}

#[test]
fn refclock_corpus_takes_only_valid_records() {
    for (path, data) in corpus("refclock_input") {
        println!("{}", path.display());
        sundial_proto::fuzzing::refclock(&data);
    }
}
