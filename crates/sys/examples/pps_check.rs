//! The PPS hardware check: reads a real `/dev/ppsN` through `PPS_FETCH` twice, 1.1 s apart,
//! and fails unless the second pulse is newer than the first. Not part of the test suite (a
//! machine without a PPS signal has nothing to check); run it where one exists:
//!
//! ```sh
//! cargo run -p sundial-sys --example pps_check -- /dev/pps0
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sundial_sys::pps::{Edge, open};

fn main() -> ExitCode {
    let path = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "/dev/pps0".into()),
    );
    let mut dev = match open(&path) {
        Ok(dev) => dev,
        Err(e) => {
            eprintln!("pps_check: cannot open {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let fetch = |dev: &mut Box<dyn sundial_sys::pps::PpsDevice>| match dev.fetch(Edge::Assert) {
        Ok(Some(pulse)) => Ok(pulse),
        Ok(None) => Err("no pulse recorded yet".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    let first = match fetch(&mut dev) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pps_check: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    std::thread::sleep(Duration::from_millis(1100));
    let second = match fetch(&mut dev) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pps_check: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: pulse {} at {}.{:09}, then pulse {} at {}.{:09}",
        path.display(),
        first.sequence,
        first.secs,
        first.nanos,
        second.sequence,
        second.secs,
        second.nanos
    );
    if second.sequence > first.sequence && second.secs > first.secs {
        ExitCode::SUCCESS
    } else {
        eprintln!("pps_check: the pulses do not advance: is the signal connected?");
        ExitCode::FAILURE
    }
}
