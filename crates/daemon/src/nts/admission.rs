//! Who may start an NTS-KE handshake now: at most [`MAX_CONNECTIONS`] in progress, at most
//! [`MAX_PER_CLIENT`] of them from one client, and each client's new handshakes limited to a
//! burst of [`CLIENT_BURST`] and then one per [`CLIENT_REFILL`].
//!
//! A client is an IPv4 address or an IPv6 /64 (one host usually has a whole /64). A key
//! exchange is needed once per association start and then rarely (its cookies last), so these
//! limits never touch a normal client, while one address cannot hold every slot or make the
//! server run TLS handshakes back to back. Many addresses together can still fill
//! [`MAX_CONNECTIONS`]; the time service does not depend on the key exchange (clients that
//! already hold cookies go on), and every slot is freed after [`super::KE_DEADLINE`].
//!
//! The table of clients is bounded ([`MAX_CLIENTS`]): when full, idle clients with a full
//! burst are forgotten first, then the idle one heard from longest ago.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most key exchanges in progress at once (CVE-2024-38528: unbounded connections exhausted
/// ntpd-rs' file descriptors).
pub const MAX_CONNECTIONS: usize = 32;

/// Most key exchanges in progress at once from one client.
pub const MAX_PER_CLIENT: usize = 4;

/// Key exchanges a client may start in a burst.
pub const CLIENT_BURST: u32 = 16;

/// A client may start one more key exchange per this interval once its burst is spent.
pub const CLIENT_REFILL: Duration = Duration::from_secs(4);

/// Clients tracked at most.
pub const MAX_CLIENTS: usize = 4096;

/// Why a connection was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// [`MAX_CONNECTIONS`] handshakes are in progress.
    Busy,
    /// This client has [`MAX_PER_CLIENT`] handshakes in progress.
    ClientBusy,
    /// This client has spent its burst.
    ClientRate,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Busy => "too many key exchanges in progress",
            Self::ClientBusy => "too many key exchanges in progress from this client",
            Self::ClientRate => "this client starts key exchanges too often",
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    active: usize,
    tokens: u32,
    /// When `tokens` was last refilled.
    refilled: Instant,
}

impl Client {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = elapsed.as_nanos() / CLIENT_REFILL.as_nanos().max(1);
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(CLIENT_BURST);
            self.refilled = now;
        }
    }

    fn idle_and_full(&self) -> bool {
        self.active == 0 && self.tokens >= CLIENT_BURST
    }
}

/// The handshakes in progress and each client's budget.
#[derive(Debug, Default)]
pub struct Admission {
    clients: HashMap<IpAddr, Client>,
    active: usize,
}

/// The client an address belongs to: itself for IPv4, its /64 for IPv6.
fn client_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl Admission {
    /// Admits a handshake from `addr` at `now`, or says why not. An admitted handshake must
    /// be [`Self::release`]d.
    pub fn admit(&mut self, addr: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.active >= MAX_CONNECTIONS {
            return Err(Refusal::Busy);
        }
        let key = client_of(addr);
        if !self.clients.contains_key(&key) && self.clients.len() >= MAX_CLIENTS {
            self.make_room(now);
        }
        let client = self.clients.entry(key).or_insert(Client {
            active: 0,
            tokens: CLIENT_BURST,
            refilled: now,
        });
        client.refill(now);
        if client.active >= MAX_PER_CLIENT {
            return Err(Refusal::ClientBusy);
        }
        if client.tokens == 0 {
            return Err(Refusal::ClientRate);
        }
        client.tokens -= 1;
        client.active += 1;
        self.active += 1;
        Ok(())
    }

    /// Ends a handshake [`Self::admit`] admitted.
    pub fn release(&mut self, addr: IpAddr) {
        if let Some(client) = self.clients.get_mut(&client_of(addr)) {
            client.active = client.active.saturating_sub(1);
        }
        self.active = self.active.saturating_sub(1);
    }

    /// Handshakes in progress.
    pub fn active(&self) -> usize {
        self.active
    }

    fn make_room(&mut self, now: Instant) {
        for client in self.clients.values_mut() {
            client.refill(now);
        }
        self.clients.retain(|_, c| !c.idle_and_full());
        if self.clients.len() >= MAX_CLIENTS {
            let oldest = self
                .clients
                .iter()
                .filter(|(_, c)| c.active == 0)
                .min_by_key(|(_, c)| c.refilled)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.clients.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn one_client_holds_at_most_its_share_while_others_get_in() {
        let mut a = Admission::default();
        let now = Instant::now();
        for _ in 0..MAX_PER_CLIENT {
            a.admit(v4(1), now).unwrap();
        }
        assert_eq!(a.admit(v4(1), now), Err(Refusal::ClientBusy));
        assert_eq!(a.admit(v4(2), now), Ok(()));
        a.release(v4(1));
        assert_eq!(a.admit(v4(1), now), Ok(()));
    }

    #[test]
    fn the_total_is_capped_across_clients() {
        let mut a = Admission::default();
        let now = Instant::now();
        let mut last = 0u8;
        while a.active() < MAX_CONNECTIONS {
            last += 1;
            for _ in 0..MAX_PER_CLIENT {
                let _ = a.admit(v4(last), now);
            }
        }
        assert_eq!(a.admit(v4(250), now), Err(Refusal::Busy));
        a.release(v4(1));
        assert_eq!(a.admit(v4(250), now), Ok(()));
    }

    #[test]
    fn a_client_spends_its_burst_and_then_gets_one_per_refill() {
        let mut a = Admission::default();
        let start = Instant::now();
        for _ in 0..CLIENT_BURST {
            a.admit(v4(1), start).unwrap();
            a.release(v4(1));
        }
        assert_eq!(a.admit(v4(1), start), Err(Refusal::ClientRate));
        let later = start + CLIENT_REFILL / 2;
        assert_eq!(a.admit(v4(1), later), Err(Refusal::ClientRate));
        let later = start + CLIENT_REFILL;
        assert_eq!(a.admit(v4(1), later), Ok(()));
        a.release(v4(1));
        assert_eq!(a.admit(v4(1), later), Err(Refusal::ClientRate));
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let mut a = Admission::default();
        let now = Instant::now();
        for host in 1..=MAX_PER_CLIENT {
            let host = u16::try_from(host).unwrap();
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, host);
            a.admit(addr.into(), now).unwrap();
        }
        let same = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9);
        assert_eq!(a.admit(same.into(), now), Err(Refusal::ClientBusy));
        let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1);
        assert_eq!(a.admit(other.into(), now), Ok(()));
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_idle_clients() {
        let mut a = Admission::default();
        let now = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            a.admit(addr, now).unwrap();
            a.release(addr);
            assert!(a.clients.len() <= MAX_CLIENTS);
        }
    }
}
