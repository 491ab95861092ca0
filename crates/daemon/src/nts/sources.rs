//! The NTS sources' key exchanges, as the main loop sees them: which association needs one,
//! when to retry a failed one, and handing the result to the system process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use mio::Waker;
use sundial_proto::system::System;
use sundial_proto::time::MonoTime;

use super::KE_COUNTERS;
use super::client::{self, KeRequest, KeResult};
use super::tls::SYSTEM_CA_BUNDLE;
use crate::associations::source_id;
use crate::config::{Association, Config};

/// First retry after a failed key exchange; doubled per failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(4);

/// Longest wait between key-exchange attempts.
const MAX_RETRY: Duration = Duration::from_secs(1024);

#[derive(Debug)]
struct Entry {
    request: KeRequest,
    in_flight: bool,
    next_try: MonoTime,
    failures: u32,
}

/// Key exchanges of every NTS association.
#[derive(Debug)]
pub struct NtsSources {
    entries: Vec<Entry>,
    default_ca: PathBuf,
    results_tx: Sender<KeResult>,
    results: Receiver<KeResult>,
    waker: Arc<Waker>,
}

/// A key exchange that completed: where the association's NTP server now is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installed {
    /// The association.
    pub id: u16,
    /// The NTP port the server named, if any.
    pub port: Option<u16>,
}

impl NtsSources {
    /// No NTS associations yet; CAs from `nts ca` or the system bundle.
    pub fn new(config: &Config, waker: Arc<Waker>) -> Self {
        let (results_tx, results) = mpsc::channel();
        Self {
            entries: Vec::new(),
            default_ca: config
                .nts
                .ca
                .clone()
                .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE)),
            results_tx,
            results,
            waker,
        }
    }

    /// Registers association `id` for `host` at `addr` if its line says `nts`.
    pub fn register(
        &mut self,
        id: u16,
        host: &str,
        addr: std::net::IpAddr,
        line: &Association,
        now: MonoTime,
    ) {
        if !line.nts {
            return;
        }
        self.entries.retain(|e| e.request.id != id);
        self.entries.push(Entry {
            request: KeRequest {
                id,
                host: host.to_owned(),
                addr,
                port: line.nts_port,
                ca: line.ca.clone().unwrap_or_else(|| self.default_ca.clone()),
                noval: line.noval,
                ask: line.nts_ask.clone(),
            },
            in_flight: false,
            next_try: now,
            failures: 0,
        });
    }

    fn due<'a>(&'a self, system: &'a System) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| {
            !e.in_flight
                && system
                    .source(source_id(e.request.id))
                    .is_some_and(|s| s.needs_key_exchange())
        })
    }

    /// When the next key exchange is due.
    pub fn next_due(&self, system: &System) -> Option<MonoTime> {
        self.due(system).map(|e| e.next_try).min()
    }

    /// Key exchanges kept (one per NTS association).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no NTS association is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets the associations the system process no longer has (a line removed on SIGHUP,
    /// a retired pool member); a result that still arrives for one is ignored.
    pub fn prune(&mut self, system: &System) {
        let before = self.entries.len();
        self.entries
            .retain(|e| system.source(source_id(e.request.id)).is_some());
        if self.entries.len() < before {
            tracing::info!(
                "NTS: forgot the key exchanges of {} removed association(s)",
                before - self.entries.len()
            );
        }
    }

    /// Starts the key exchanges that are due (after forgetting removed associations).
    pub fn start_due(&mut self, now: MonoTime, system: &System) {
        self.prune(system);
        let ids: Vec<u16> = self
            .due(system)
            .filter(|e| e.next_try <= now)
            .map(|e| e.request.id)
            .collect();
        for e in self
            .entries
            .iter_mut()
            .filter(|e| ids.contains(&e.request.id))
        {
            e.in_flight = true;
            tracing::debug!(
                "association {}: NTS-KE with {}:{}",
                e.request.id,
                e.request.host,
                e.request.port
            );
            client::spawn(
                e.request.clone(),
                self.results_tx.clone(),
                Arc::clone(&self.waker),
            );
        }
    }

    /// Hands finished key exchanges to the system process; returns those that succeeded.
    pub fn collect(&mut self, now: MonoTime, system: &mut System) -> Vec<Installed> {
        let mut installed = Vec::new();
        while let Ok(result) = self.results.try_recv() {
            let Some(entry) = self.entries.iter_mut().find(|e| e.request.id == result.id) else {
                continue;
            };
            entry.in_flight = false;
            let host = &entry.request.host;
            match result.outcome {
                Ok(done) => {
                    tracing::info!(
                        "association {}: NTS-KE with {host} gave {} cookie(s){}{}",
                        result.id,
                        done.cookies.len(),
                        done.port
                            .map(|p| format!(", NTP port {p}"))
                            .unwrap_or_default(),
                        entry
                            .request
                            .ask
                            .as_ref()
                            .map(|a| match a.port() {
                                Some(p) => format!(" (asked for {}, port {p})", a.server()),
                                None => format!(" (asked for {})", a.server()),
                            })
                            .unwrap_or_default()
                    );
                    if let Some(server) = done.server.as_deref().filter(|s| s != host) {
                        tracing::warn!(
                            "association {}: NTS-KE names NTP server {server}; sundial keeps {host}",
                            result.id
                        );
                    }
                    KE_COUNTERS.count(&KE_COUNTERS.client_good);
                    entry.failures = 0;
                    entry.next_try = now + FIRST_RETRY;
                    system.install_nts(source_id(result.id), done.keys, done.cookies);
                    installed.push(Installed {
                        id: result.id,
                        port: done.port,
                    });
                }
                Err(e) => {
                    KE_COUNTERS.count(&KE_COUNTERS.client_bad);
                    entry.failures = entry.failures.saturating_add(1);
                    let wait = FIRST_RETRY
                        .saturating_mul(1 << entry.failures.min(10))
                        .min(MAX_RETRY);
                    entry.next_try = now + wait;
                    tracing::warn!(
                        "association {}: NTS-KE with {host}:{} failed: {e}; retrying in {}s",
                        result.id,
                        entry.request.port,
                        wait.as_secs()
                    );
                }
            }
        }
        installed
    }
}
