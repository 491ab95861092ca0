//! What a server claims when it has no upstream source: the local clock driver
//! (`server 127.127.1.0` + `fudge 127.127.1.0 stratum N`) or orphan mode (`tos orphan N`).
//!
//! Both keep serving an undisciplined clock so a LAN stays together when the uplink is gone.
//! Both keep the reference time current: classic ntpdate rejects a server whose reference time
//! is more than 24 hours old, and an orphan that reported a stale one would be dropped by it.

use core::time::Duration;

use crate::packet::{Leap, ReferenceId};
use crate::system::SystemState;
use crate::time::{Log2Seconds, NtpDuration, NtpTimestamp};

/// Stratum of the local clock driver when no `fudge … stratum` is given (ntpd's default).
pub const LOCAL_CLOCK_DEFAULT_STRATUM: u8 = 5;

/// Dispersion the local clock driver reports: it "agrees" with the system clock to 10 ms.
pub const LOCAL_CLOCK_DISPERSION_S: f64 = 0.01;

/// Default `tos orphanwait`: seconds without a selectable source before orphan mode.
pub const DEFAULT_ORPHAN_WAIT: Duration = Duration::from_secs(300);

/// The configured fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Nothing: without a source the server stays unsynchronised.
    #[default]
    None,
    /// The local clock driver: served like a source of `stratum`, so the server claims
    /// `stratum + 1` (classic ntpd: fudge stratum 10 serves 11).
    LocalClock {
        /// The driver's stratum (`fudge … stratum`).
        stratum: u8,
        /// The driver's refid (`fudge … refid`), `LOCL` by default.
        refid: ReferenceId,
    },
    /// Orphan mode: after `wait` without a source, claim `stratum` itself.
    Orphan {
        /// `tos orphan` stratum.
        stratum: u8,
        /// `tos orphanwait`.
        wait: Duration,
    },
}

impl Fallback {
    /// The stratum served while this fallback is in use, if any.
    pub fn served_stratum(&self) -> Option<u8> {
        match *self {
            Self::None => None,
            Self::LocalClock { stratum, .. } => Some(stratum.saturating_add(1).min(16)),
            Self::Orphan { stratum, .. } => Some(stratum.min(16)),
        }
    }

    /// The system state to serve at `now`, `since_start` after the daemon started without any
    /// selectable source; `None` while the server should stay unsynchronised.
    pub fn state(
        &self,
        now: NtpTimestamp,
        since_start: Duration,
        precision: Log2Seconds,
    ) -> Option<SystemState> {
        let stratum = self.served_stratum().filter(|s| *s < 16)?;
        let (reference_id, root_dispersion) = match *self {
            Self::None => return None,
            Self::LocalClock { refid, .. } => (
                refid,
                NtpDuration::from_seconds_f64(LOCAL_CLOCK_DISPERSION_S),
            ),
            Self::Orphan { wait, .. } => {
                if since_start < wait {
                    return None;
                }
                let refid = if stratum > 1 {
                    ReferenceId::LOOPBACK
                } else {
                    ReferenceId::LOOP
                };
                (refid, NtpDuration::ZERO)
            }
        };
        Some(SystemState {
            leap: Leap::NoWarning,
            stratum,
            precision,
            root_delay: NtpDuration::ZERO,
            root_dispersion,
            reference_id,
            reference_time: now,
        })
    }

    /// A phrase for the log: what the server serves while it falls back.
    pub fn describe(&self) -> String {
        match *self {
            Self::None => "nothing (unsynchronised)".to_owned(),
            Self::LocalClock { refid, .. } => format!(
                "the local clock at stratum {} (refid {})",
                self.served_stratum().unwrap_or(16),
                refid.display_for_stratum(1)
            ),
            Self::Orphan { stratum, .. } => format!("orphan mode at stratum {stratum}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: NtpTimestamp = NtpTimestamp::from_parts(0xed00_0000, 0);
    const P: Log2Seconds = Log2Seconds::new(-24);

    #[test]
    fn local_clock_serves_one_below_its_stratum_with_fresh_reftime() {
        let f = Fallback::LocalClock {
            stratum: 10,
            refid: ReferenceId::LOCL,
        };
        let s = f.state(NOW, Duration::ZERO, P).unwrap();
        assert_eq!(
            (s.leap, s.stratum, s.reference_id),
            (Leap::NoWarning, 11, ReferenceId::LOCL)
        );
        assert_eq!(s.reference_time, NOW);
        assert!(s.is_synchronized());
    }

    #[test]
    fn orphan_waits_then_claims_its_stratum() {
        let f = Fallback::Orphan {
            stratum: 10,
            wait: Duration::from_secs(300),
        };
        assert!(f.state(NOW, Duration::from_secs(299), P).is_none());
        let s = f.state(NOW, Duration::from_secs(300), P).unwrap();
        assert_eq!((s.stratum, s.reference_id), (10, ReferenceId::LOOPBACK));
        let one = Fallback::Orphan {
            stratum: 1,
            wait: Duration::ZERO,
        };
        assert_eq!(
            one.state(NOW, Duration::ZERO, P).unwrap().reference_id,
            ReferenceId::LOOP
        );
    }

    #[test]
    fn a_local_clock_at_stratum_15_or_more_cannot_serve() {
        let f = Fallback::LocalClock {
            stratum: 15,
            refid: ReferenceId::LOCL,
        };
        assert!(f.state(NOW, Duration::ZERO, P).is_none());
        assert!(Fallback::None.state(NOW, Duration::ZERO, P).is_none());
    }

    #[test]
    fn the_log_names_the_fallback_with_the_stratum_it_serves() {
        let local = Fallback::LocalClock {
            stratum: 10,
            refid: ReferenceId::LOCL,
        };
        assert_eq!(
            local.describe(),
            "the local clock at stratum 11 (refid LOCL)"
        );
        let orphan = Fallback::Orphan {
            stratum: 7,
            wait: Duration::ZERO,
        };
        assert_eq!(orphan.describe(), "orphan mode at stratum 7");
        assert_eq!(Fallback::None.describe(), "nothing (unsynchronised)");
    }
}
