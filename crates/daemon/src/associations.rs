//! The daemon's upstream associations: `server` and `pool` lines turned into polled sources.
//!
//! Each association is a source of the core's [`System`], which decides when to poll, judges
//! replies and does everything that follows (selection, the discipline). This module does the
//! I/O around it: every request leaves from a fresh ephemeral
//! socket connected to the server (a different source port each time, RFC 9109), host names are
//! resolved in the background and retried until they resolve, and pools keep up to
//! `tos maxclock` members, dropping members that stop answering and resolving the name again to
//! replace them.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use sundial_proto::clock::Clock;
use sundial_proto::pool::{Member, to_mobilize};
use sundial_proto::source::{Kiss, Outcome, Rejection, SourceParams};
use sundial_proto::system::{SourceId, SourceSpec, System};
use sundial_proto::time::{MonoTime, UnixTime};
use sundial_sys::socket::{SocketOptions, bind_udp, recv_msg};

use crate::clock::{TimeMapping, kernel_now};
use crate::config::{Association, AssociationKind, Config, Family, HostSpec, Location};
use crate::keys::TrustedKeys;
use crate::nts::sources::NtsSources;
use crate::random::Random;
use crate::refclock::Refclocks;
use crate::resolver::{Lookup, Resolver};

/// First token used for association sockets; a token is this plus the association id.
pub const TOKEN_BASE: usize = 1 << 20;

/// How long to wait before resolving a name again after a failure, doubling up to the cap.
const RETRY_MIN: Duration = Duration::from_secs(8);
const RETRY_MAX: Duration = Duration::from_secs(600);

/// How often a pool with fewer than `maxclock` members looks for more.
const POOL_REFRESH: Duration = Duration::from_secs(64);

/// Spacing of the first polls of successive associations, so they do not all send at once.
const FIRST_POLL_SPACING: Duration = Duration::from_secs(1);

/// One mobilised association.
#[derive(Debug)]
pub struct Peer {
    /// Association id, as ntpq shows it; stable for the association's life.
    pub id: u16,
    /// The name or address as configured.
    pub host: String,
    /// The server's address and port.
    pub addr: SocketAddr,
    /// Index of the pool this member came from.
    pub pool: Option<usize>,
    socket: Option<UdpSocket>,
    kiss_logged: bool,
    /// The `server` line that started it (`None` for pool members).
    line: Option<Association>,
}

impl Peer {
    /// The local address its socket sends from (the destination of its replies), once bound.
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.socket
            .as_ref()
            .and_then(|s| s.local_addr().ok())
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
    }
}

/// A `pool` line.
#[derive(Debug)]
pub struct Pool {
    /// Association id of the pool prototype row.
    pub id: u16,
    /// The pool's name.
    pub name: String,
    config: Association,
    next_resolve: MonoTime,
    failures: u32,
}

/// A `server NAME` whose name has not resolved yet.
#[derive(Debug)]
struct Pending {
    config: Association,
    name: String,
    next_try: MonoTime,
    failures: u32,
    in_flight: bool,
}

/// All associations.
#[derive(Debug)]
pub struct Associations {
    peers: Vec<Peer>,
    pools: Vec<Pool>,
    pending: Vec<Pending>,
    resolver: Resolver,
    next_id: u16,
    next_first_poll: MonoTime,
    maxclock: usize,
    family: Option<Family>,
    /// The trusted keys that sign requests to, and verify replies from, `key N` servers.
    keys: Arc<TrustedKeys>,
    /// Key exchanges of `nts` associations.
    nts: NtsSources,
    /// The reference clocks (SHM, SOCK, PPS).
    refclocks: Refclocks,
}

impl Associations {
    /// Mobilises the configured associations. Literal addresses start polling at once; names
    /// are handed to the resolver.
    pub fn new(
        config: &Config,
        extra_servers: &[String],
        family: Option<Family>,
        resolver: Resolver,
        system: &mut System,
        now: MonoTime,
    ) -> Self {
        let mut me = Self {
            peers: Vec::new(),
            pools: Vec::new(),
            pending: Vec::new(),
            // Association ids start at an arbitrary point and increase, as ntpd's do.
            next_id: 37_000,
            next_first_poll: now,
            maxclock: usize::from(config.tos.maxclock.max(1)),
            family,
            keys: Arc::new(TrustedKeys::none()),
            nts: NtsSources::new(config, resolver.waker()),
            resolver,
            refclocks: Refclocks::default(),
        };
        let command_line = extra_servers.iter().map(|s| command_line_server(s));
        for assoc in config.associations.iter().cloned().chain(command_line) {
            me.add(assoc, system, now);
        }
        let mut next_id = me.next_id;
        me.refclocks = Refclocks::new(config, system, now, || {
            let id = next_id;
            next_id = next_id.checked_add(1).unwrap_or(1);
            id
        });
        me.next_id = next_id;
        me
    }

    /// Sets the trusted keys (at start-up, and again when the keys file is re-read).
    pub fn set_keys(&mut self, keys: Arc<TrustedKeys>) {
        self.keys = keys;
    }

    fn add(&mut self, assoc: Association, system: &mut System, now: MonoTime) {
        match (&assoc.kind, &assoc.address) {
            (_, HostSpec::Refclock(_)) => {}
            (AssociationKind::Pool, _) => {
                let name = name_of(&assoc);
                let id = self.allocate_id();
                self.pools.push(Pool {
                    id,
                    name,
                    config: assoc,
                    next_resolve: now,
                    failures: 0,
                });
            }
            (_, HostSpec::Ip(ip)) => {
                let addr = SocketAddr::new(*ip, assoc.port);
                self.mobilize(&assoc, addr, name_of(&assoc), None, system, now);
            }
            (_, HostSpec::ScopedV6 { .. }) | (_, HostSpec::Name(_)) => {
                let name = name_of(&assoc);
                self.pending.push(Pending {
                    config: assoc,
                    name,
                    next_try: now,
                    failures: 0,
                    in_flight: false,
                });
            }
        }
    }

    /// Reserves an association id for a row that is not a network association (the local
    /// clock driver).
    pub fn reserve_id(&mut self) -> u16 {
        self.allocate_id()
    }

    fn allocate_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    fn mobilize(
        &mut self,
        assoc: &Association,
        addr: SocketAddr,
        host: String,
        pool: Option<usize>,
        system: &mut System,
        now: MonoTime,
    ) {
        if self.peers.iter().any(|p| p.addr == addr) {
            return;
        }
        let params = SourceParams {
            minpoll: assoc.minpoll.exponent(),
            maxpoll: assoc.maxpoll.exponent(),
            iburst: assoc.iburst,
            burst: assoc.burst,
            version: assoc.version,
            key: assoc.key.map(|k| u32::from(k.get())),
            nts: assoc.nts,
        };
        let first = self.next_first_poll.max(now);
        self.next_first_poll = first + FIRST_POLL_SPACING;
        let id = self.allocate_id();
        let spec = SourceSpec {
            params,
            address: Some(addr.ip()),
            prefer: assoc.prefer,
            noselect: assoc.noselect,
            truechimer: assoc.truechimer,
        };
        if !system.add_source(source_id(id), spec, first) {
            return;
        }
        tracing::info!("association {id}: {host} ({addr}) mobilized");
        // A pool member's certificate is for the pool's name; the exchange goes to the member.
        let tls_name = if pool.is_some() {
            name_of(assoc)
        } else {
            host.clone()
        };
        self.nts.register(id, &tls_name, addr.ip(), assoc, now);
        self.peers.push(Peer {
            id,
            host,
            addr,
            pool,
            socket: None,
            kiss_logged: false,
            line: pool.is_none().then(|| assoc.clone()),
        });
    }

    /// Starts what a configuration line added by a reload asks for, as at start-up.
    pub fn add_configured(&mut self, line: Association, system: &mut System, now: MonoTime) {
        self.add(line, system, now);
    }

    /// Stops everything the configuration line `line` started — the server, its pending name
    /// lookup, or the pool with all its members — wherever the line stood in the file. Servers
    /// given on the command line are never stopped; every other association keeps its state in
    /// the system process. Returns how many associations ended.
    pub fn remove_configured(&mut self, line: &Association, system: &mut System) -> usize {
        let before = self.peers.len() + self.pending.len() + self.pools.len();
        self.pending.retain(|p| !same_line(&p.config, line));
        let mut stop = |p: &Peer| {
            system.remove_source(source_id(p.id));
        };
        self.peers.retain(|p| {
            let gone = p.line.as_ref().is_some_and(|l| same_line(l, line));
            if gone {
                stop(p);
            }
            !gone
        });
        while let Some(index) = self.pools.iter().position(|p| same_line(&p.config, line)) {
            let pool = self.pools.remove(index);
            tracing::info!("pool {} ({}) removed", pool.name, pool.id);
            self.peers.retain(|p| {
                let gone = p.pool == Some(index);
                if gone {
                    stop(p);
                }
                !gone
            });
            for peer in &mut self.peers {
                if let Some(i) = peer.pool.as_mut()
                    && *i > index
                {
                    *i -= 1;
                }
            }
        }
        self.nts.prune(system);
        before - (self.peers.len() + self.pending.len() + self.pools.len())
    }

    /// `tos maxclock` after a reload: how many pool members to keep.
    pub fn set_maxclock(&mut self, maxclock: u8) {
        self.maxclock = usize::from(maxclock.max(1));
    }

    /// The associations that have an address.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The reference clocks.
    pub fn refclocks(&self) -> &Refclocks {
        &self.refclocks
    }

    /// The reference clocks, to read and poll them (`Refclocks::on_tick`).
    pub fn refclocks_mut(&mut self) -> &mut Refclocks {
        &mut self.refclocks
    }

    /// The pool prototypes.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Whether anything is configured to poll at all.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.pools.is_empty() && self.pending.is_empty()
    }

    /// The earliest time something needs doing.
    pub fn next_timeout(&self, system: &System) -> Option<MonoTime> {
        let polls = system.poll_timeout().into_iter();
        let names = self
            .pending
            .iter()
            .filter(|p| !p.in_flight)
            .map(|p| p.next_try);
        let pools = self
            .pools
            .iter()
            .filter(|p| self.pool_needs_members(p))
            .map(|p| p.next_resolve);
        let nts = self.nts.next_due(system);
        polls.chain(names).chain(pools).chain(nts).min()
    }

    fn pool_members(&self, pool: usize) -> usize {
        self.peers.iter().filter(|p| p.pool == Some(pool)).count()
    }

    fn pool_needs_members(&self, pool: &Pool) -> bool {
        let index = self.pools.iter().position(|p| p.id == pool.id).unwrap_or(0);
        self.peers.len() < self.maxclock && self.pool_members(index) < self.maxclock
    }

    /// Sends due polls and starts due lookups.
    pub fn on_timer(
        &mut self,
        now: MonoTime,
        registry: &Registry,
        mapping: &TimeMapping,
        random: &mut Random,
        system: &mut System,
    ) {
        for p in &mut self.pending {
            if !p.in_flight && p.next_try <= now {
                p.in_flight = true;
                self.resolver.submit(Lookup {
                    key: usize::MAX,
                    name: p.name.clone(),
                    family: self.family.or(p.config.family),
                });
            }
        }
        let needing: Vec<usize> = (0..self.pools.len())
            .filter(|&i| {
                self.pools
                    .get(i)
                    .is_some_and(|p| p.next_resolve <= now && self.pool_needs_members(p))
            })
            .collect();
        for i in needing {
            if let Some(pool) = self.pools.get_mut(i) {
                pool.next_resolve = now + POOL_REFRESH;
                self.resolver.submit(Lookup {
                    key: usize::from(pool.id),
                    name: pool.name.clone(),
                    family: self.family.or(pool.config.family),
                });
            }
        }
        self.retire_silent_pool_members(system);
        self.nts.start_due(now, system);
        for peer in &mut self.peers {
            let mut request = [0u8; sundial_proto::nts::ef::MAX_PACKET_LEN];
            let mut rng = || random.next_u64();
            let id = source_id(peer.id);
            let keys = &*self.keys;
            let Some(len) = system.poll_transmit(id, now, &mut rng, keys, &mut request) else {
                continue;
            };
            let sent = peer.send(request.get(..len).unwrap_or_default(), registry, mapping);
            match sent {
                Ok(t1) => system.handle_sent(id, t1),
                Err(e) => {
                    tracing::debug!(
                        "association {}: sending to {} failed: {e}",
                        peer.id,
                        peer.addr
                    );
                }
            }
        }
    }

    /// Pool members that have not answered for UNREACH polls make room for fresh addresses.
    fn retire_silent_pool_members(&mut self, system: &mut System) {
        let before = self.peers.len();
        self.peers.retain(|p| {
            let Some(source) = system.source(source_id(p.id)) else {
                return false;
            };
            let member = Member {
                addr: p.addr,
                reach: source.reach(),
                unreach: source.unreach(),
                denied: source.denied().is_some(),
            };
            let retire = p.pool.is_some() && member.should_retire();
            if retire {
                system.remove_source(source_id(p.id));
                let why = if member.denied {
                    "access denied"
                } else {
                    "unreachable"
                };
                tracing::info!(
                    "association {}: {} ({}) demobilized: {why}",
                    p.id,
                    p.host,
                    p.addr
                );
            }
            !retire
        });
        if self.peers.len() < before {
            for pool in &mut self.pools {
                pool.next_resolve = MonoTime::ZERO;
            }
        }
    }

    /// Handles finished lookups: mobilises servers and pool members.
    pub fn on_answers(&mut self, system: &mut System, now: MonoTime) {
        for done in self.nts.collect(now, system) {
            if let Some(port) = done.port
                && let Some(peer) = self.peers.iter_mut().find(|p| p.id == done.id)
            {
                peer.addr.set_port(port);
            }
        }
        let answers: Vec<_> = self.resolver.answers().collect();
        for answer in answers {
            if answer.key == usize::MAX {
                self.server_resolved(answer.name, answer.result, system, now);
            } else {
                // Pools are looked up by id: a reload may have removed or moved one meanwhile.
                if let Some(index) = self
                    .pools
                    .iter()
                    .position(|p| usize::from(p.id) == answer.key)
                {
                    self.pool_resolved(index, answer.result, system, now);
                }
            }
        }
    }

    fn server_resolved(
        &mut self,
        name: String,
        result: io::Result<Vec<IpAddr>>,
        system: &mut System,
        now: MonoTime,
    ) {
        let Some(pos) = self
            .pending
            .iter()
            .position(|p| p.in_flight && p.name == name)
        else {
            return;
        };
        match result.as_ref().map(|a| a.first().copied()) {
            Ok(Some(ip)) => {
                let pending = self.pending.remove(pos);
                if pending.failures > 0 {
                    tracing::info!(
                        "{name} resolved to {ip} after {} failed attempt(s)",
                        pending.failures
                    );
                }
                let addr = SocketAddr::new(ip, pending.config.port);
                self.mobilize(&pending.config, addr, name, None, system, now);
            }
            Ok(None) | Err(_) => {
                let Some(p) = self.pending.get_mut(pos) else {
                    return;
                };
                p.in_flight = false;
                p.failures += 1;
                if p.failures == 1 {
                    let why = result
                        .err()
                        .map_or_else(|| "no usable address".to_owned(), |e| e.to_string());
                    tracing::warn!("cannot resolve {name}: {why}; retrying in the background");
                }
                p.next_try = now + backoff(p.failures);
            }
        }
    }

    fn pool_resolved(
        &mut self,
        index: usize,
        result: io::Result<Vec<IpAddr>>,
        system: &mut System,
        now: MonoTime,
    ) {
        let Some(pool) = self.pools.get_mut(index) else {
            return;
        };
        let name = pool.name.clone();
        let addrs = match result {
            Ok(a) if !a.is_empty() => {
                if pool.failures > 0 {
                    tracing::info!(
                        "pool {name} resolved after {} failed attempt(s)",
                        pool.failures
                    );
                }
                pool.failures = 0;
                a
            }
            other => {
                pool.failures += 1;
                if pool.failures == 1 {
                    let why = other
                        .err()
                        .map_or_else(|| "no usable address".to_owned(), |e| e.to_string());
                    tracing::warn!("cannot resolve pool {name}: {why}; retrying in the background");
                }
                pool.next_resolve = now + backoff(pool.failures);
                return;
            }
        };
        let config = pool.config.clone();
        let in_use: Vec<SocketAddr> = self.peers.iter().map(|p| p.addr).collect();
        for addr in to_mobilize(&addrs, config.port, &in_use, self.maxclock) {
            self.mobilize(
                &config,
                addr,
                addr.ip().to_string(),
                Some(index),
                system,
                now,
            );
        }
    }

    /// Reads replies on an association's socket and hands them to the system process, which
    /// may steer `clock`. Returns whether a good reply arrived.
    pub fn on_readable<C: Clock>(
        &mut self,
        token: Token,
        mapping: &TimeMapping,
        system: &mut System,
        clock: &mut C,
        now: MonoTime,
    ) -> bool {
        let Some(peer) = self
            .peers
            .iter_mut()
            .find(|p| TOKEN_BASE + usize::from(p.id) == token.0)
        else {
            return false;
        };
        peer.receive(mapping, system, &self.keys, clock, now)
    }

    /// The association with this source id.
    pub fn peer(&self, id: SourceId) -> Option<&Peer> {
        self.peers.iter().find(|p| source_id(p.id) == id)
    }

    /// Logs each association's packet counts and rejected replies by reason (at shutdown).
    pub fn log_counters(&self, system: &System) {
        for p in &self.peers {
            let Some(source) = system.source(source_id(p.id)) else {
                continue;
            };
            let (sent, received) = source.packet_counts();
            let rejected: Vec<String> = Rejection::ALL
                .iter()
                .filter_map(|r| {
                    let n = source.rejected(*r);
                    (n > 0).then(|| format!("{}={n}", r.name()))
                })
                .collect();
            let rejected = if rejected.is_empty() {
                "none".to_owned()
            } else {
                rejected.join(", ")
            };
            tracing::info!(
                "association {}: {} ({}): sent {sent}, answered {received}, rejected {rejected}",
                p.id,
                p.host,
                p.addr
            );
        }
    }

    /// A one-line summary of every association's tally, for the log.
    pub fn tally_line(&self, system: &System) -> String {
        system
            .sources()
            .filter_map(|v| {
                let tally = v.tally.symbol();
                if let Some(rc) = u16::try_from(v.id.0)
                    .ok()
                    .and_then(|id| self.refclocks.get(id))
                {
                    return Some(format!("{tally}{}", rc.name()));
                }
                let p = self.peer(v.id)?;
                Some(if p.addr.port() == 123 {
                    format!("{tally}{}", p.host)
                } else {
                    format!("{tally}{}:{}", p.host, p.addr.port())
                })
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Peer {
    /// Sends a request from a fresh socket; returns when it left (T1).
    fn send(
        &mut self,
        request: &[u8],
        registry: &Registry,
        mapping: &TimeMapping,
    ) -> io::Result<sundial_proto::time::NtpTimestamp> {
        if let Some(old) = self.socket.take() {
            let _ = registry.deregister(&mut SourceFd(&old.as_raw_fd()));
        }
        let local = match self.addr {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        let opts = SocketOptions {
            rx_timestamps: true,
            nonblocking: true,
            ..SocketOptions::default()
        };
        let socket = bind_udp(local, &opts)?;
        socket.connect(self.addr)?;
        registry.register(
            &mut SourceFd(&socket.as_raw_fd()),
            Token(TOKEN_BASE + usize::from(self.id)),
            Interest::READABLE,
        )?;
        let t1 = mapping.map(kernel_now());
        socket.send(request)?;
        self.socket = Some(socket);
        Ok(t1)
    }

    fn receive<C: Clock>(
        &mut self,
        mapping: &TimeMapping,
        system: &mut System,
        keys: &TrustedKeys,
        clock: &mut C,
        now: MonoTime,
    ) -> bool {
        let Some(socket) = self.socket.take() else {
            return false;
        };
        let mut buf = [0u8; sundial_proto::nts::ef::MAX_PACKET_LEN];
        let mut arrived = false;
        // Bounded: a connected socket only queues datagrams from the server.
        for _ in 0..16 {
            let meta = match recv_msg(&socket, &mut buf) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP port unreachable and friends: the poll simply goes unanswered.
                    tracing::debug!("association {}: receive failed: {e}", self.id);
                    break;
                }
            };
            let kernel = meta
                .rx_time
                .map_or_else(kernel_now, |t| UnixTime::new(t.sec, t.nsec));
            let t4 = mapping.map(kernel);
            let data = buf.get(..meta.len).unwrap_or_default();
            let data = if meta.truncated { &[][..] } else { data };
            let id = source_id(self.id);
            match system.handle_response(id, t4, data, keys, clock, now) {
                None => break,
                Some(Outcome::Sample(_)) => arrived = true,
                Some(Outcome::Rejected(reason)) => {
                    tracing::debug!(
                        "association {}: reply from {} rejected: {}",
                        self.id,
                        self.addr,
                        reason.name()
                    );
                }
                Some(Outcome::Kiss(kiss)) => {
                    let hpoll = system.source(id).map_or(0, |s| s.hpoll());
                    self.log_kiss(kiss, hpoll);
                }
            }
        }
        self.socket = Some(socket);
        arrived
    }

    fn log_kiss(&mut self, kiss: Kiss, hpoll: i8) {
        match kiss {
            Kiss::Rate => {
                if !self.kiss_logged {
                    tracing::info!(
                        "association {}: {} asked us to slow down (RATE); poll raised to 2^{} s",
                        self.id,
                        self.addr,
                        hpoll
                    );
                }
            }
            Kiss::Deny(code) => {
                tracing::warn!(
                    "association {}: {} refused service ({}); no longer polling it",
                    self.id,
                    self.addr,
                    code.display_for_stratum(0)
                );
            }
            Kiss::Other(code) => {
                if !self.kiss_logged {
                    tracing::info!(
                        "association {}: kiss code {} from {} ignored",
                        self.id,
                        code.display_for_stratum(0),
                        self.addr
                    );
                }
            }
        }
        self.kiss_logged = true;
    }
}

/// The system process's name for association `id`.
pub fn source_id(id: u16) -> SourceId {
    SourceId(u32::from(id))
}

fn backoff(failures: u32) -> Duration {
    RETRY_MIN
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(RETRY_MAX)
}

/// A server named on ntpd's command line: a `server NAME iburst` line, as classic ntpd treats
/// it.
/// Whether two configuration lines ask for the same association, wherever they stand. Servers
/// from the command line match nothing: a reload never stops them.
fn same_line(a: &Association, b: &Association) -> bool {
    a.location.file != Path::new(COMMAND_LINE)
        && *a
            == Association {
                location: a.location.clone(),
                ..b.clone()
            }
}

/// The file name in the location of servers given on the command line.
const COMMAND_LINE: &str = "<command line>";

fn command_line_server(text: &str) -> Association {
    let address = text
        .parse::<IpAddr>()
        .map_or_else(|_| HostSpec::Name(text.to_owned()), HostSpec::Ip);
    let mut assoc = Association::new(
        AssociationKind::Server,
        address,
        Location::new(COMMAND_LINE, 1, 1),
    );
    assoc.iburst = true;
    assoc
}

fn name_of(assoc: &Association) -> String {
    assoc.address.to_string()
}
