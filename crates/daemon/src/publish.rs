//! The snapshot the main loop publishes for the server workers: the system state that goes
//! into replies and the mapping from kernel time to served time.
//!
//! Workers read it on every batch without taking a lock: they compare a generation counter
//! with the one of their cached copy and only lock (briefly) when the main loop has published
//! something new, which happens a few times a minute.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sundial_proto::access::AccessTable;
use sundial_proto::control::ControlSnapshot;
use sundial_proto::system::SystemState;

use crate::clock::TimeMapping;
use crate::keys::TrustedKeys;

/// What the workers need from the main loop.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The system variables copied into every reply.
    pub system: SystemState,
    /// How served time follows the kernel clock.
    pub mapping: TimeMapping,
    /// What mode 6 (ntpq) reports.
    pub control: Arc<ControlSnapshot>,
    /// The restrict table in force (it grows `restrict source` entries as associations are
    /// mobilised).
    pub access: Arc<AccessTable>,
    /// The trusted symmetric keys that authenticated requests are verified and answered with
    /// (replaced when the keys file is re-read).
    pub keys: Arc<TrustedKeys>,
    /// The NTS cookie master keys, when `nts enable` is in force.
    pub nts: Option<Arc<sundial_proto::nts::CookieKeys>>,
}

/// The main loop's side: publishes new snapshots.
#[derive(Debug)]
pub struct Publisher {
    current: Mutex<Arc<Snapshot>>,
    generation: AtomicU64,
}

impl Publisher {
    /// A publisher holding `initial`.
    pub fn new(initial: Snapshot) -> Arc<Self> {
        Arc::new(Self {
            current: Mutex::new(Arc::new(initial)),
            generation: AtomicU64::new(0),
        })
    }

    /// Replaces the snapshot; readers see it at their next batch.
    pub fn publish(&self, snapshot: Snapshot) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A reader for one worker.
    pub fn reader(self: &Arc<Self>) -> Reader {
        let generation = self.generation.load(Ordering::Acquire);
        Reader {
            shared: Arc::clone(self),
            cached: self.current(),
            generation,
        }
    }
}

/// A worker's side: a cached snapshot refreshed when the generation moves.
#[derive(Debug)]
pub struct Reader {
    shared: Arc<Publisher>,
    cached: Arc<Snapshot>,
    generation: u64,
}

impl Reader {
    /// The latest snapshot.
    pub fn get(&mut self) -> &Snapshot {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.cached = self.shared.current();
            self.generation = generation;
        }
        &self.cached
    }
}

#[cfg(test)]
impl Snapshot {
    /// What a server publishes before it has synchronised, with no access rules, keys or NTS:
    /// the starting point of tests that serve.
    pub(crate) fn unsynchronised() -> Self {
        Self {
            system: SystemState::unsynchronized(sundial_proto::time::Log2Seconds::new(-20)),
            mapping: TimeMapping::IDENTITY,
            control: Arc::default(),
            access: Arc::default(),
            keys: Arc::default(),
            nts: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_new_snapshots() {
        let first = Snapshot::unsynchronised();
        let publisher = Publisher::new(first.clone());
        let mut reader = publisher.reader();
        assert_eq!(reader.get().system.stratum, 16);
        let mut second = first;
        second.system.stratum = 3;
        publisher.publish(second);
        assert_eq!(reader.get().system.stratum, 3);
    }
}
