//! Bounded polling: waiting for a condition that becomes true on its own (a server syncs, a log
//! line appears), never longer than a limit.

use std::thread;
use std::time::{Duration, Instant};

/// Pause between two looks of [`eventually`].
pub(crate) const POLL_PAUSE: Duration = Duration::from_millis(200);

/// Waits up to `limit` for `ok`, polling every [`POLL_PAUSE`]; true once `ok` returned true,
/// false if it never did within `limit`.
pub(crate) fn eventually(limit: Duration, ok: impl FnMut() -> bool) -> bool {
    eventually_every(limit, POLL_PAUSE, ok)
}

/// [`eventually`] with a pause of `pause` between two looks.
pub(crate) fn eventually_every(
    limit: Duration,
    pause: Duration,
    mut ok: impl FnMut() -> bool,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return true;
        }
        thread::sleep(pause);
    }
    false
}
