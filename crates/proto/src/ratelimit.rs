//! Per-client rate limiting for `restrict … limited` (and the always-on mode 6 limit), in a
//! table whose memory is fixed when it is created.
//!
//! Each client address has a leaky bucket (classic `discard average A minimum M`): a request
//! adds the average interval 2^A to the client's score, the score drains at one second per
//! second, and a request is over the limit when it comes sooner than the guard time M after the
//! previous one or the score passes `burst` average intervals. Over the limit, a request is
//! dropped or answered with a RATE kiss-o'-death (`kod`) — at most one kiss per average interval
//! per client — except that one request in `leak` is answered anyway, picked at random, so that
//! a flood spoofed from a victim's address cannot cut the victim off (chrony's "leak").
//!
//! The table is set-associative: a keyed hash (secret key, so no one can aim addresses at one
//! set) picks a set of [`WAYS`] entries, each set behind its own lock so server threads rarely
//! meet. A new client replaces the entry of its set with the least claim to stay: empty, then
//! stale, then seen the fewest times. A flood from a million spoofed addresses, each seen once,
//! therefore recycles its own entries and never pushes out clients that keep coming back.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::siphash::SipKey;
use crate::time::{MonoTime, NtpTimestamp};

/// Entries per set.
pub const WAYS: usize = 4;

/// Default table size in entries (8 MiB at 128 octets each): ntpd's `mru maxdepth` scale,
/// 16× chrony's default `clientloglimit`.
pub const DEFAULT_ENTRIES: usize = 1 << 16;

/// An entry unused for this long yields its place first.
const STALE_MS: u64 = 3_600_000;

/// Rate-limit parameters (ntp.conf `discard`, or NTPsec `limit` mapped onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitParams {
    /// Mean interval a client must keep to (classic `discard average`: 2^3 s).
    pub average: Duration,
    /// Shortest interval between two requests (classic `discard minimum`: 2 s).
    pub minimum: Duration,
    /// Bucket depth in average intervals (classic: 8).
    pub burst: u32,
    /// One over-limit request in `leak` is answered anyway (chrony's default: 1 in 4); 0 = never.
    pub leak: u32,
}

impl Default for LimitParams {
    fn default() -> Self {
        Self {
            average: Duration::from_secs(8),
            minimum: Duration::from_secs(2),
            burst: 8,
            leak: 4,
        }
    }
}

/// Mode 6 budget per client: a burst of this many requests (enough for `ntpq -p` with 60
/// associations), refilled at [`CONTROL_RATE_PER_S`].
const CONTROL_BURST: u32 = 64;
const CONTROL_RATE_PER_S: u64 = 2;

/// Mode 6 budget of the whole server, in reply octets: a burst of this many (`ntpq -p` against
/// 60 associations takes about 40 KB), refilled at [`CONTROL_GLOBAL_OCTETS_PER_S`]. The
/// per-client budget cannot bound a flood spoofed from many allowed addresses; this does.
pub const CONTROL_GLOBAL_BURST_OCTETS: u64 = 128 * 1024;

/// Refill rate of [`CONTROL_GLOBAL_BURST_OCTETS`], octets per second.
pub const CONTROL_GLOBAL_OCTETS_PER_S: u64 = 16 * 1024;

/// The decision for one time request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit (or leaked through): answer normally.
    Allow,
    /// Over the limit: answer with a RATE kiss.
    Kiss,
    /// Over the limit: drop.
    Drop,
}

/// A client address with the set of the table it hashes to ([`RateLimiter::locate`]). A server
/// that looks ahead at a batch of requests to load their sets early hands this on with each
/// request, so that its address is hashed once, not once more for every use of the table.
/// Only meaningful for the table that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    addr: IpAddr,
    set: usize,
}

impl Located {
    /// The client's address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
}

/// A client as the table's methods take it: an address, or an address already located.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Hash the address to find its set.
    Addr(IpAddr),
    /// The set is known.
    Located(Located),
}

impl From<IpAddr> for Client {
    fn from(addr: IpAddr) -> Self {
        Self::Addr(addr)
    }
}

impl From<Located> for Client {
    fn from(located: Located) -> Self {
        Self::Located(located)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Address; `None` for an empty slot.
    addr: Option<IpAddr>,
    /// Last request, ms since the origin of `MonoTime`.
    last_ms: u64,
    /// Leaky-bucket score, ms.
    score_ms: u64,
    /// Requests seen.
    hits: u32,
    /// Last kiss sent, ms.
    last_kiss_ms: Option<u64>,
    /// Mode 6 tokens × 1000 and the time they were last refilled.
    control_milli_tokens: u64,
    control_ms: u64,
    /// What `ntpq -c mrulist` shows of this client ([`RateLimiter::record`]).
    seen: Seen,
}

/// The traffic of one client as the MRU list reports it: every datagram the server handled,
/// limited or not.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// Datagrams recorded.
    count: u32,
    /// Monotonic time of the last, ms (what keeps an entry from going stale).
    at_ms: u64,
    /// Datagrams over the rate limit (dropped or kissed).
    drops: u32,
    /// Arrival (served time) of the first and the last.
    first: NtpTimestamp,
    last: NtpTimestamp,
    /// Source port of the last.
    port: u16,
    /// Mode and version octet of the last (the low six bits of its first octet).
    mode_version: u8,
    /// Restrict flags of the source, as [`ClientEntry::restrict`].
    restrict: u16,
    /// The local address the last was sent to, if the socket reported it.
    local: Option<IpAddr>,
}

/// One client of the table, as [`RateLimiter::clients`] reports it (for `ntpq -c mrulist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientEntry {
    /// The client's address and the source port of its last datagram.
    pub addr: SocketAddr,
    /// Its first and last datagram (served time at arrival).
    pub first: NtpTimestamp,
    /// See `first`.
    pub last: NtpTimestamp,
    /// Datagrams seen.
    pub count: u32,
    /// Datagrams over the rate limit.
    pub drops: u32,
    /// Mode and version octet of the last datagram (`mode | version << 3`).
    pub mode_version: u8,
    /// Restrict flags in NTPsec's `RES_*` bit layout (what `mrulist`'s `rs.N` reports).
    pub restrict: u16,
    /// The local address the last datagram was sent to.
    pub local: Option<IpAddr>,
}

/// The client table.
#[derive(Debug)]
pub struct RateLimiter {
    key: SipKey,
    sets: Box<[Mutex<[Entry; WAYS]>]>,
    params: SharedParams,
    control_global: Mutex<GlobalBudget>,
    /// Entries holding a client, and clients that pushed another one out.
    occupied: AtomicU64,
    evictions: AtomicU64,
}

/// The server-wide mode 6 budget: octets left (negative after a reply larger than what was
/// left) and when it was last refilled.
#[derive(Debug, Default)]
struct GlobalBudget {
    octets: i64,
    at_ms: Option<u64>,
}

impl GlobalBudget {
    fn refill(&mut self, now_ms: u64) {
        let burst = i64::try_from(CONTROL_GLOBAL_BURST_OCTETS).unwrap_or(i64::MAX);
        self.octets = match self.at_ms {
            None => burst,
            Some(at) => {
                let gained = now_ms
                    .saturating_sub(at)
                    .saturating_mul(CONTROL_GLOBAL_OCTETS_PER_S)
                    / 1000;
                self.octets
                    .saturating_add(i64::try_from(gained).unwrap_or(i64::MAX))
                    .min(burst)
            }
        };
        self.at_ms = Some(self.at_ms.map_or(now_ms, |at| at.max(now_ms)));
    }
}

/// [`LimitParams`] that a reload can replace while server threads read them, without a lock on
/// the request path: each field is its own atomic (a request that sees half of an update is
/// judged by a mix of two valid settings for that one request, which is harmless).
#[derive(Debug)]
struct SharedParams {
    average_ms: AtomicU64,
    minimum_ms: AtomicU64,
    burst: AtomicU32,
    leak: AtomicU32,
}

impl SharedParams {
    fn new(p: LimitParams) -> Self {
        Self {
            average_ms: AtomicU64::new(ms_of(p.average)),
            minimum_ms: AtomicU64::new(ms_of(p.minimum)),
            burst: AtomicU32::new(p.burst),
            leak: AtomicU32::new(p.leak),
        }
    }

    fn store(&self, p: LimitParams) {
        self.average_ms.store(ms_of(p.average), Ordering::Relaxed);
        self.minimum_ms.store(ms_of(p.minimum), Ordering::Relaxed);
        self.burst.store(p.burst, Ordering::Relaxed);
        self.leak.store(p.leak, Ordering::Relaxed);
    }

    fn load(&self) -> LimitParams {
        LimitParams {
            average: Duration::from_millis(self.average_ms.load(Ordering::Relaxed)),
            minimum: Duration::from_millis(self.minimum_ms.load(Ordering::Relaxed)),
            burst: self.burst.load(Ordering::Relaxed),
            leak: self.leak.load(Ordering::Relaxed),
        }
    }
}

impl RateLimiter {
    /// Memory one entry takes, for sizing the table from a memory budget (`mru maxmem`).
    pub const ENTRY_BYTES: usize = size_of::<Entry>();

    /// A table of about `entries` entries (rounded up to a power of two, at least one set),
    /// hashing with the secret `key`.
    pub fn new(entries: usize, params: LimitParams, key: SipKey) -> Self {
        Self::new_placed(entries, params, key, |_, _| {})
    }

    /// [`Self::new`], calling `place` with the address and length in octets of the table's
    /// memory after it is reserved and before any of it is written. The server looks up a
    /// random set of this table for every request; the daemon uses `place` to ask the kernel
    /// for huge pages there, so that those lookups do not also miss the TLB.
    pub fn new_placed(
        entries: usize,
        params: LimitParams,
        key: SipKey,
        place: impl FnOnce(usize, usize),
    ) -> Self {
        let count = (entries / WAYS).max(1).next_power_of_two();
        let mut sets: Vec<Mutex<[Entry; WAYS]>> = Vec::with_capacity(count);
        // The address is only handed on as a number; nothing here dereferences it.
        place(
            sets.as_ptr() as usize,
            count.saturating_mul(size_of::<Mutex<[Entry; WAYS]>>()),
        );
        sets.extend((0..count).map(|_| Mutex::new([Entry::default(); WAYS])));
        let sets = sets.into_boxed_slice();
        Self {
            key,
            sets,
            params: SharedParams::new(params),
            control_global: Mutex::default(),
            occupied: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Entries holding a client now.
    pub fn occupancy(&self) -> u64 {
        self.occupied.load(Ordering::Relaxed)
    }

    /// Clients that took the place of another one since start-up.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Notes one datagram from `client`, source port `port`, in its entry for the MRU list:
    /// sent to `local`, arriving at served time `arrival` (monotonic `now`), with first octet
    /// `first` (mode and version), from a source whose restrict flags are `restrict` (NTPsec's
    /// bits). May come before or after [`Self::check`] for the same datagram: it leaves the
    /// rate limit's times alone and keeps its own.
    #[expect(
        clippy::too_many_arguments,
        reason = "what the MRU list keeps of one datagram"
    )]
    pub fn record(
        &self,
        client: impl Into<Client>,
        port: u16,
        local: Option<IpAddr>,
        arrival: NtpTimestamp,
        now: MonoTime,
        first: u8,
        restrict: u16,
    ) {
        let now_ms = ms(now);
        self.with_entry(self.resolve(client), now_ms, |e| {
            let seen = &mut e.seen;
            seen.at_ms = now_ms;
            if seen.count == 0 {
                seen.first = arrival;
            }
            seen.count = seen.count.saturating_add(1);
            seen.last = arrival;
            seen.port = port;
            seen.mode_version = first & 0x3f;
            seen.restrict = restrict;
            seen.local = local;
        });
    }

    /// The memory that [`Self::record`] and [`Self::check`] touch for `client` (its set), for a
    /// caller that handles requests in batches to have loaded ahead of time; opaque: only
    /// where it lies and its size mean anything outside this module.
    pub fn set_of(&self, client: Located) -> Option<&impl Sized> {
        self.sets.get(client.set)
    }

    /// Finds the set `addr` hashes to, for [`Self::set_of`] and the methods that take a
    /// [`Client`].
    pub fn locate(&self, addr: IpAddr) -> Located {
        Located {
            addr,
            set: self.set_index(addr),
        }
    }

    fn resolve(&self, client: impl Into<Client>) -> Located {
        match client.into() {
            Client::Addr(addr) => self.locate(addr),
            Client::Located(located) => located,
        }
    }

    /// Calls `f` with every client that has been recorded, in table order (the caller sorts).
    /// Takes each set's lock in turn, so a server thread waits at most for one set.
    pub fn clients(&self, f: &mut dyn FnMut(ClientEntry)) {
        for set in &*self.sets {
            let set = set.lock().unwrap_or_else(PoisonError::into_inner);
            for e in set.iter() {
                let (Some(addr), seen) = (e.addr, &e.seen) else {
                    continue;
                };
                if seen.count == 0 {
                    continue;
                }
                f(ClientEntry {
                    addr: SocketAddr::new(addr, seen.port),
                    first: seen.first,
                    last: seen.last,
                    count: seen.count,
                    drops: seen.drops,
                    mode_version: seen.mode_version,
                    restrict: seen.restrict,
                    local: seen.local,
                });
            }
        }
    }

    /// A key for `purpose` derived from the table's secret (the hash is a PRF), so that other
    /// secrets of the server (the mrulist nonce) need no randomness of their own.
    pub fn derive_key(&self, purpose: &[u8]) -> SipKey {
        let mut input = [0u8; 64];
        let len = purpose.len().min(63);
        if let (Some(dest), Some(src)) = (input.get_mut(1..=len), purpose.get(..len)) {
            dest.copy_from_slice(src);
        }
        let k0 = self.key.hash(input.get(..=len).unwrap_or_default());
        if let Some(tag) = input.first_mut() {
            *tag = 1;
        }
        let k1 = self.key.hash(input.get(..=len).unwrap_or_default());
        SipKey::new(k0, k1)
    }

    /// Entries the table holds; its memory never grows past this.
    pub fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// The parameters in force.
    pub fn params(&self) -> LimitParams {
        self.params.load()
    }

    /// Replaces the parameters (a configuration reload); the clients' scores are kept.
    pub fn set_params(&self, params: LimitParams) {
        self.params.store(params);
    }

    /// Decides a time request from `client` at `now`. `kod` says whether the client's restrict
    /// entry has `kod`; `random` is a fresh random number (for the leak).
    pub fn check(
        &self,
        client: impl Into<Client>,
        now: MonoTime,
        kod: bool,
        random: u32,
    ) -> Verdict {
        let now_ms = ms(now);
        let p = self.params.load();
        self.with_entry(self.resolve(client), now_ms, |e| {
            let first = e.hits == 0;
            let elapsed = now_ms.saturating_sub(e.last_ms);
            let average = ms_of(p.average);
            e.score_ms = e.score_ms.saturating_sub(elapsed).saturating_add(average);
            e.hits = e.hits.saturating_add(1);
            e.last_ms = now_ms;
            let over = !first
                && (elapsed < ms_of(p.minimum)
                    || e.score_ms > average.saturating_mul(u64::from(p.burst)));
            if !over {
                return Verdict::Allow;
            }
            e.seen.drops = e.seen.drops.saturating_add(1);
            if p.leak > 0 && random % p.leak == 0 {
                return Verdict::Allow;
            }
            if kod
                && e.last_kiss_ms
                    .is_none_or(|k| now_ms.saturating_sub(k) >= average)
            {
                e.last_kiss_ms = Some(now_ms);
                return Verdict::Kiss;
            }
            Verdict::Drop
        })
    }

    /// Whether a mode 6 request from `client` is within its budget and the server-wide one
    /// (always applied: mode 6 replies can be larger than requests). The caller reports what
    /// it sent with [`Self::charge_control`].
    pub fn check_control(&self, client: impl Into<Client>, now: MonoTime) -> bool {
        let now_ms = ms(now);
        {
            let mut global = self
                .control_global
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            global.refill(now_ms);
            if global.octets <= 0 {
                return false;
            }
        }
        self.with_entry(self.resolve(client), now_ms, |e| {
            if e.control_ms == 0 && e.control_milli_tokens == 0 {
                e.control_milli_tokens = u64::from(CONTROL_BURST) * 1000;
            } else {
                let refill = now_ms
                    .saturating_sub(e.control_ms)
                    .saturating_mul(CONTROL_RATE_PER_S);
                e.control_milli_tokens = e
                    .control_milli_tokens
                    .saturating_add(refill)
                    .min(u64::from(CONTROL_BURST) * 1000);
            }
            e.control_ms = now_ms.max(1);
            e.last_ms = e.last_ms.max(now_ms);
            if e.control_milli_tokens >= 1000 {
                e.control_milli_tokens -= 1000;
                true
            } else {
                false
            }
        })
    }

    /// Takes `octets` of mode 6 replies sent at `now` from the server-wide budget. Requests
    /// are refused while it is used up, so the octets sent in any interval T stay below
    /// [`CONTROL_GLOBAL_BURST_OCTETS`] + T · [`CONTROL_GLOBAL_OCTETS_PER_S`] plus one reply
    /// per server thread.
    pub fn charge_control(&self, octets: usize, now: MonoTime) {
        let mut global = self
            .control_global
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        global.refill(ms(now));
        global.octets = global
            .octets
            .saturating_sub(i64::try_from(octets).unwrap_or(i64::MAX));
    }

    /// Runs `f` on `client`'s entry, creating it (and evicting another) if needed.
    fn with_entry<R>(&self, client: Located, now_ms: u64, f: impl FnOnce(&mut Entry) -> R) -> R {
        let Located { addr, set: index } = client;
        let Some(set) = self.sets.get(index) else {
            // The index is masked to the table size (a `Located` of a larger table aside);
            // never panic.
            return f(&mut Entry {
                addr: Some(addr),
                ..Entry::default()
            });
        };
        let mut set = set.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = match set.iter().position(|e| e.addr == Some(addr)) {
            Some(i) => i,
            None => {
                let victim = set
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| claim(e, now_ms))
                    .map_or(0, |(i, _)| i);
                if let Some(e) = set.get_mut(victim) {
                    if e.addr.is_some() {
                        self.evictions.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.occupied.fetch_add(1, Ordering::Relaxed);
                    }
                    *e = Entry {
                        addr: Some(addr),
                        last_ms: now_ms,
                        ..Entry::default()
                    };
                }
                victim
            }
        };
        match set.get_mut(slot) {
            Some(e) => f(e),
            None => f(&mut Entry {
                addr: Some(addr),
                ..Entry::default()
            }),
        }
    }

    fn set_index(&self, addr: IpAddr) -> usize {
        // An IPv4 client (also as an IPv4-mapped IPv6 address) is hashed as its four octets:
        // the same set either way, and four SipHash rounds fewer than sixteen octets take.
        let h = match addr.to_canonical() {
            IpAddr::V4(v4) => self.key.hash(&v4.octets()),
            IpAddr::V6(v6) => self.key.hash(&v6.octets()),
        };
        let mask = self.sets.len() - 1;
        // Truncation keeps the low bits, which the mask selects anyway.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "only the low bits are used"
        )]
        let index = h as usize;
        index & mask
    }
}

// An entry with its mrulist record stays within 128 octets (the memory figures in the docs).
const _: () = assert!(RateLimiter::ENTRY_BYTES <= 128);

/// An entry's claim to keep its place: empty slots first, then stale ones, then the fewest
/// hits, then the least recently seen.
fn claim(e: &Entry, now_ms: u64) -> (u8, u32, u64) {
    let last_ms = e.last_ms.max(e.seen.at_ms);
    match e.addr {
        None => (0, 0, 0),
        Some(_) if now_ms.saturating_sub(last_ms) > STALE_MS => (1, 0, last_ms),
        Some(_) => (2, e.hits.max(e.seen.count), last_ms),
    }
}

fn ms(t: MonoTime) -> u64 {
    u64::try_from(t.as_duration().as_millis()).unwrap_or(u64::MAX)
}

fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;

    fn at(ms: u64) -> MonoTime {
        MonoTime::from_duration(Duration::from_millis(ms))
    }

    fn limiter() -> RateLimiter {
        let params = LimitParams {
            leak: 0,
            ..LimitParams::default()
        };
        RateLimiter::new(1024, params, SipKey::new(1, 2))
    }

    fn client(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn occupancy_counts_the_clients_held_and_evictions_the_ones_pushed_out() {
        // One set of WAYS entries: the next client takes the place of another.
        let table = RateLimiter::new(WAYS, LimitParams::default(), SipKey::new(1, 2));
        assert_eq!((table.occupancy(), table.evictions()), (0, 0));
        for n in 0..WAYS as u32 {
            let _ = table.check(client(n), at(1000), false, 1);
        }
        let _ = table.check(client(0), at(2000), false, 1);
        assert_eq!((table.occupancy(), table.evictions()), (WAYS as u64, 0));
        for n in 0..3 {
            let _ = table.check(client(100 + n), at(3000), false, 1);
        }
        assert_eq!((table.occupancy(), table.evictions()), (WAYS as u64, 3));
    }

    #[test]
    fn new_params_apply_to_the_next_request() {
        let l = limiter();
        let limited = (0..20).any(|i| l.check(client(7), at(i * 1000), true, 1) != Verdict::Allow);
        assert!(limited, "one request a second exceeds an 8 s average");
        l.set_params(LimitParams {
            average: Duration::from_millis(500),
            minimum: Duration::ZERO,
            burst: 8,
            leak: 0,
        });
        assert_eq!(l.params().average, Duration::from_millis(500));
        for i in 0..20 {
            assert_eq!(l.check(client(8), at(i * 1000), true, 1), Verdict::Allow);
        }
    }

    #[test]
    fn a_client_polling_every_64_s_is_never_limited() {
        let l = limiter();
        for i in 0..1000 {
            assert_eq!(l.check(client(1), at(i * 64_000), true, 1), Verdict::Allow);
        }
    }

    #[test]
    fn ntpdate_style_bursts_pass_but_floods_do_not() {
        let l = limiter();
        for i in 0..8 {
            assert_eq!(
                l.check(client(1), at(i * 2_000), false, 1),
                Verdict::Allow,
                "sample {i}"
            );
        }
        let l = limiter();
        let verdicts: Vec<_> = (0..20)
            .map(|i| l.check(client(2), at(i * 100), false, 1))
            .collect();
        assert_eq!(verdicts[0], Verdict::Allow);
        assert!(verdicts[1..].iter().all(|v| *v == Verdict::Drop));
    }

    #[test]
    fn kisses_are_themselves_rate_limited() {
        let l = limiter();
        // 10 requests per second for 60 s: one kiss per 8 s average interval at most.
        let kisses = (0..600)
            .filter(|i| l.check(client(3), at(i * 100), true, 1) == Verdict::Kiss)
            .count();
        assert!((7..=8).contains(&kisses), "{kisses}");
    }

    #[test]
    fn the_leak_answers_one_in_four_of_a_flood() {
        let params = LimitParams {
            leak: 4,
            ..LimitParams::default()
        };
        let l = RateLimiter::new(1024, params, SipKey::new(1, 2));
        let mut state = 12345u32;
        let allowed = (0..4000)
            .filter(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                l.check(client(4), at(i * 10), false, state >> 8) == Verdict::Allow
            })
            .count();
        assert!((800..1200).contains(&allowed), "{allowed}");
    }

    #[test]
    fn a_spoofed_flood_does_not_evict_regular_clients_or_grow_the_table() {
        let l = limiter();
        let regulars: Vec<_> = (0..100).map(|n| client(1_000_000 + n)).collect();
        for k in 0..3 {
            for r in &regulars {
                let _ = l.check(*r, at(k * 64_000), false, 1);
            }
        }
        // A million one-off addresses over 100 s, while the regulars keep polling every 64 s.
        let start = 3 * 64_000;
        for n in 0..1_000_000u64 {
            let now = start + n / 10;
            let _ = l.check(client(u32::try_from(n).unwrap()), at(now), false, 1);
            if n % 640_000 == 0 {
                for r in &regulars {
                    let _ = l.check(*r, at(now), false, 1);
                }
            }
        }
        assert_eq!(l.capacity(), 1024);
        let remembered = regulars.iter().filter(|r| l.knows(**r)).count();
        assert!(remembered >= 95, "{remembered} of 100 remembered");
    }

    impl RateLimiter {
        fn knows(&self, addr: IpAddr) -> bool {
            self.sets
                .iter()
                .any(|s| s.lock().unwrap().iter().any(|e| e.addr == Some(addr)))
        }
    }

    #[test]
    fn control_budget_allows_a_burst_then_refills_slowly() {
        let l = limiter();
        let ok = (0..100)
            .filter(|_| l.check_control(client(5), at(1_000)))
            .count();
        assert_eq!(ok, 64);
        assert!(!l.check_control(client(5), at(1_100)));
        assert!(l.check_control(client(5), at(1_600)));
    }

    #[test]
    fn the_bucket_holds_exactly_burst_average_intervals() {
        let l = RateLimiter::new(
            1024,
            LimitParams {
                minimum: Duration::ZERO,
                leak: 0,
                ..LimitParams::default()
            },
            SipKey::new(1, 2),
        );
        // One request a second against an 8 s average: the score starts at 8 s and gains 7 s
        // per request, reaching exactly 8 · 8 s at the ninth, which still passes; the tenth
        // is over.
        for i in 0..9 {
            assert_eq!(
                l.check(client(6), at(i * 1_000), false, 1),
                Verdict::Allow,
                "{i}"
            );
        }
        assert_eq!(l.check(client(6), at(9_000), false, 1), Verdict::Drop);
    }

    #[test]
    fn the_server_wide_control_budget_refills_at_16_kib_per_second() {
        let l = limiter();
        let burst = usize::try_from(CONTROL_GLOBAL_BURST_OCTETS).unwrap();
        l.charge_control(burst, at(1_000));
        assert!(!l.check_control(client(20), at(1_000)), "used up");
        assert!(
            l.check_control(client(21), at(2_000)),
            "a second refills 16 KiB"
        );
        l.charge_control(16 * 1024, at(2_000));
        assert!(!l.check_control(client(22), at(2_000)), "used up again");
        assert!(
            l.check_control(client(23), at(2_001)),
            "16 octets a millisecond"
        );
    }

    #[test]
    fn placement_sees_the_whole_table_once_before_it_is_filled() {
        let mut seen = Vec::new();
        let l = RateLimiter::new_placed(1024, LimitParams::default(), SipKey::new(1, 2), |a, n| {
            seen.push((a, n));
        });
        assert_eq!(l.capacity(), 1024);
        let [(addr, len)] = seen.as_slice() else {
            panic!("{seen:?}");
        };
        assert_eq!(*addr, l.sets.as_ptr() as usize, "the table did not move");
        assert_eq!(*len, 1024 / WAYS * size_of::<Mutex<[Entry; WAYS]>>());
    }

    #[test]
    fn a_stale_client_yields_its_place_before_a_busy_recent_one() {
        // One set of four entries.
        let l = RateLimiter::new(WAYS, LimitParams::default(), SipKey::new(1, 2));
        assert_eq!(l.capacity(), WAYS);
        let old = client(30);
        for i in 0..10 {
            let _ = l.check(old, at(i * 64_000), false, 1);
        }
        // Three clients seen once each, more than an hour after the old one's last request.
        let hour = 3_600_000;
        for n in 31..34 {
            let _ = l.check(client(n), at(hour + 640_000 + u64::from(n)), false, 1);
        }
        let _ = l.check(client(40), at(hour + 700_000), false, 1);
        assert!(!l.knows(old), "the stale entry is evicted despite its hits");
        assert!((31..34).all(|n| l.knows(client(n))));
        assert!(l.knows(client(40)));
    }

    #[test]
    fn a_client_silent_for_exactly_an_hour_is_not_yet_stale() {
        let l = RateLimiter::new(WAYS, LimitParams::default(), SipKey::new(1, 2));
        let old = client(30);
        for i in 0..10 {
            let _ = l.check(old, at(i * 64_000), false, 1);
        }
        let last = 9 * 64_000;
        for n in 31..34 {
            let _ = l.check(client(n), at(last + 1_000 + u64::from(n)), false, 1);
        }
        // At exactly STALE_MS the old client still counts by its hits; a newcomer takes the
        // place of the least recently seen one-off client.
        let _ = l.check(client(40), at(last + STALE_MS), false, 1);
        assert!(l.knows(old));
        assert!(!l.knows(client(31)));
    }

    #[test]
    fn an_ipv4_client_and_its_ipv4_mapped_form_share_a_set() {
        let l = limiter();
        for n in 0..256 {
            let IpAddr::V4(v4) = client(n) else {
                unreachable!("client() makes IPv4 addresses")
            };
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            assert_eq!(l.set_index(IpAddr::V4(v4)), l.set_index(mapped), "{v4}");
            assert!(core::ptr::eq(
                l.set_of(l.locate(IpAddr::V4(v4))).expect("a set"),
                l.set_of(l.locate(mapped)).expect("a set")
            ));
        }
        // Hashed, not taken from the address: neighbours spread over the table.
        let sets: std::collections::HashSet<_> = (0..256).map(|n| l.set_index(client(n))).collect();
        assert!(sets.len() > 128, "{} sets for 256 clients", sets.len());
    }

    #[test]
    fn the_default_table_holds_65536_clients_in_8_mib() {
        // Each entry carries its mrulist record too (first/last seen, count, mode, restrict
        // bits, local address).
        let l = RateLimiter::new(DEFAULT_ENTRIES, LimitParams::default(), SipKey::new(1, 2));
        assert_eq!(l.capacity(), 1 << 16);
        let bytes = l.capacity() * RateLimiter::ENTRY_BYTES;
        assert!(bytes <= 8 << 20, "{bytes} octets");
    }
}
