//! The daemon and the simulator drive the system process (`sundial_proto::system::System`) and
//! nothing else of the core's system-level logic: selection, the start-up gate, feeding the
//! discipline and handing its corrections to the sources exist once, in the core, and both run
//! that copy. This test reads their sources and fails if either calls the pieces directly again
//! (clippy's `disallowed-methods` in the root clippy.toml says the same to `cargo clippy`).

use std::fs;
use std::path::{Path, PathBuf};

/// Names only `System` may use: the discipline and its inputs, selection's result, the start-up
/// gate, what to serve, the poll adaptation, and the `Source` setters through which `System`
/// hands out corrections and polling.
const SYSTEM_ONLY: &[&str] = &[
    "Discipline",
    "Observation",
    "Selection",
    "sources_settled",
    "follow",
    "leap_majority",
    "PollAdapter",
    "apply_clock_correction",
    "reset_filter",
    "set_system_poll",
    "set_frequency_burst",
    "set_early_polls",
];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (line comments and doc comments; the crates use no
/// block comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers in `code`.
fn identifiers(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
}

/// Whether `code` imports or calls `sundial_proto::select::select` (the daemon's ntpdate has a
/// `select` of its own, so the name alone says nothing).
fn uses_core_select(code: &str) -> bool {
    if code.contains("sundial_proto::select::select") {
        return true;
    }
    code.split(';')
        .filter(|statement| statement.contains("sundial_proto::select::"))
        .any(|statement| identifiers(statement).filter(|t| *t == "select").count() > 1)
}

fn violations() -> Vec<String> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["daemon/src", "daemon/tests", "sim/src", "sim/tests"] {
        rust_files(&crates.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut found = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let code = code(&text);
        for name in identifiers(&code).filter(|t| SYSTEM_ONLY.contains(t)) {
            found.push(format!("{}: {name}", path.display()));
        }
        if uses_core_select(&code) {
            found.push(format!("{}: sundial_proto::select::select", path.display()));
        }
    }
    found
}

#[test]
fn the_daemon_and_the_simulator_leave_selection_and_the_discipline_to_the_system_process() {
    let found = violations();
    assert!(
        found.is_empty(),
        "drive sundial_proto::system::System instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_boundary_check_sees_imports_of_the_core_select_and_ignores_comments() {
    assert!(uses_core_select(
        "use sundial_proto::select::{Candidate, Tally, select};"
    ));
    assert!(uses_core_select(
        "let s = sundial_proto::select::select(&i, &p);"
    ));
    assert!(!uses_core_select("use sundial_proto::select::Tally;"));
    assert!(!uses_core_select(
        "use self::select::ServerResult; select::select(r)"
    ));
    let code = code("let d = x; // Discipline\n/// follow the peer\nlet y = Discipline::new(p);");
    let names: Vec<&str> = identifiers(&code)
        .filter(|t| SYSTEM_ONLY.contains(t))
        .collect();
    assert_eq!(names, ["Discipline"]);
}
