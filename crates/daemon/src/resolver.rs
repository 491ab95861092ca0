//! Host-name resolution off the main loop.
//!
//! getaddrinfo can block for seconds when DNS is slow or unreachable, and serving must never
//! wait for it. Lookups run on one background thread; results come back over a channel and
//! wake the main loop through a mio `Waker`.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use mio::Waker;

use crate::config::Family;

/// A lookup to perform.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Identifies the association that asked.
    pub key: usize,
    /// The host name.
    pub name: String,
    /// Restrict the answer to one family.
    pub family: Option<Family>,
}

/// The answer to a [`Lookup`].
#[derive(Debug)]
pub struct Answer {
    /// The `key` of the lookup.
    pub key: usize,
    /// The host name.
    pub name: String,
    /// The addresses found (possibly none), or the error.
    pub result: io::Result<Vec<IpAddr>>,
}

/// The background resolver.
#[derive(Debug)]
pub struct Resolver {
    requests: Option<Sender<Lookup>>,
    answers: Receiver<Answer>,
    thread: Option<JoinHandle<()>>,
    waker: Arc<Waker>,
}

impl Resolver {
    /// Starts the resolver thread; `waker` is woken after every answer.
    pub fn start(waker: Arc<Waker>) -> io::Result<Self> {
        let (req_tx, req_rx) = mpsc::channel::<Lookup>();
        let (ans_tx, ans_rx) = mpsc::channel::<Answer>();
        let main_waker = Arc::clone(&waker);
        let thread = std::thread::Builder::new()
            .name("ntp-resolver".into())
            .spawn(move || {
                for lookup in req_rx {
                    let result = resolve(&lookup.name, lookup.family);
                    if ans_tx
                        .send(Answer {
                            key: lookup.key,
                            name: lookup.name,
                            result,
                        })
                        .is_err()
                    {
                        break;
                    }
                    // The main loop may be gone at shutdown; nothing to do about a failed wake.
                    let _ = waker.wake();
                }
            })?;
        Ok(Self {
            requests: Some(req_tx),
            answers: ans_rx,
            thread: Some(thread),
            waker: main_waker,
        })
    }

    /// Queues a lookup.
    pub fn submit(&self, lookup: Lookup) {
        if let Some(tx) = &self.requests {
            // The thread only exits when `requests` is dropped, so this cannot fail before.
            let _ = tx.send(lookup);
        }
    }

    /// The main loop's waker, for other background jobs (NTS key exchanges).
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Answers that have arrived.
    pub fn answers(&self) -> impl Iterator<Item = Answer> + '_ {
        self.answers.try_iter()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        // Closing the request channel ends the thread after its current lookup. A lookup that
        // hangs in getaddrinfo must not hold up shutdown, so the thread is not joined.
        self.requests = None;
        drop(self.thread.take());
    }
}

/// Resolves `name` (or parses it as an address), keeping only `family` if given. Addresses come
/// back in getaddrinfo's order, duplicates removed.
pub fn resolve(name: &str, family: Option<Family>) -> io::Result<Vec<IpAddr>> {
    let addrs = (name, 0).to_socket_addrs()?;
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in addrs.map(|a: SocketAddr| a.ip()) {
        let wanted = match family {
            Some(Family::V4) => ip.is_ipv4(),
            Some(Family::V6) => ip.is_ipv6(),
            None => true,
        };
        if wanted && !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mio::{Events, Poll, Token};

    use super::*;

    #[test]
    fn literal_addresses_resolve_without_dns() {
        assert_eq!(
            resolve("192.0.2.1", None).unwrap(),
            ["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        assert!(resolve("192.0.2.1", Some(Family::V6)).unwrap().is_empty());
        assert!(
            resolve("localhost", Some(Family::V4))
                .unwrap()
                .iter()
                .all(IpAddr::is_ipv4)
        );
    }

    #[test]
    fn answers_arrive_and_wake_the_loop() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(7)).unwrap());
        let r = Resolver::start(waker).unwrap();
        r.submit(Lookup {
            key: 3,
            name: "127.0.0.1".into(),
            family: None,
        });
        let mut events = Events::with_capacity(4);
        let mut got = Vec::new();
        for _ in 0..50 {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            got.extend(r.answers());
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].key, 3);
        assert_eq!(got[0].result.as_ref().unwrap().len(), 1);
    }
}
