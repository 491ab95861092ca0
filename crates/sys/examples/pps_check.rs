//! The PPS hardware check: reads a real `/dev/ppsN` through `PPS_FETCH` twice, 1.1 s apart,
//! and fails unless the second pulse is newer than the first. Not part of the test suite (a
//! machine without a PPS signal has nothing to check); run it where one exists:
//!
//! ```sh
//! cargo run -p sundial-sys --example pps_check -- /dev/pps0
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use sundial_sys::pps::{Edge, PpsDevice, Pulse, open};

fn main() -> ExitCode {
    let path = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "/dev/pps0".into()),
    );
    match check(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pps_check: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> Result<(), String> {
    let mut dev = open(path).map_err(|e| format!("cannot open: {e}"))?;
    let first = newest(dev.as_mut())?;
    std::thread::sleep(Duration::from_millis(1100));
    let second = newest(dev.as_mut())?;
    for (n, p) in [("first", first), ("second", second)] {
        println!("{n} pulse: #{} at {}.{:09}", p.sequence, p.secs, p.nanos);
    }
    if second.sequence > first.sequence && second.secs > first.secs {
        Ok(())
    } else {
        Err("the pulses do not advance: is the signal connected?".to_owned())
    }
}

fn newest(dev: &mut dyn PpsDevice) -> Result<Pulse, String> {
    match dev.fetch(Edge::Assert) {
        Ok(Some(pulse)) => Ok(pulse),
        Ok(None) => Err("no pulse recorded yet".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}
