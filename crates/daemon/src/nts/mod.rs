//! NTS in the daemon: the TLS around the NTS-KE records of `sundial_proto::nts`.
//!
//! * [`server`]: the NTS-KE listener, on its own thread, never on the NTP packet path. Each
//!   connection gets a thread of its own with read and write timeouts and an overall
//!   deadline; [`admission`] caps the handshakes in progress in all and per client and rate
//!   limits each client; refused connections are closed at once, so a flood of TLS
//!   connections costs the time service nothing but the accepts.
//! * [`client`]: one key exchange as a short blocking job on a background thread; the result
//!   (keys and cookies) goes back to the main loop over a channel, like a DNS answer.
//! * [`keys`]: the cookie master keys, generated at start-up or read from the `nts cookie`
//!   file, which is written atomically with mode 0600.
//! * [`tls`]: rustls configurations (TLS 1.3 only, ALPN `ntske/1`, the ring provider).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use sundial_proto::nts::CookieKeys;

use crate::config::NtsConfig;
use crate::interfaces::LiveFilter;
use crate::publish::{Publisher, Snapshot};
use crate::random::Random;

pub mod admission;
pub mod client;
pub mod keys;
pub mod server;
pub mod sources;
pub mod tls;

/// The NTS server in force: its settings, TLS configuration (replaced on SIGHUP) and cookie
/// keys (replaced by each rotation). The cookie keys reach the NTP server threads through the
/// main loop's next publication ([`cookie_keys`]); the key-exchange server seals cookies only
/// under keys already published, so a cookie it hands out always opens.
#[derive(Debug)]
struct Running {
    cfg: NtsConfig,
    tls: Arc<ServerConfig>,
    cookies: Arc<CookieKeys>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

fn running() -> MutexGuard<'static, Option<Running>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cookie keys to publish to the NTP server threads: the newest rotation's, `None` when
/// no NTS server runs.
pub fn cookie_keys() -> Option<Arc<CookieKeys>> {
    running().as_ref().map(|r| Arc::clone(&r.cookies))
}

/// The key-exchange server's TLS configuration now.
fn current_tls() -> Option<Arc<ServerConfig>> {
    running().as_ref().map(|r| Arc::clone(&r.tls))
}

/// Starts the NTS-KE server if `nts enable` asks for it: loads the certificate and key, the
/// cookie keys (or makes fresh ones), publishes the keys to the NTP server threads, listens
/// on the `nts port` (on the addresses `filter` serves) and starts the key rotation. When NTS
/// is not enabled or cannot start (logged), the time service runs on without it.
pub fn start_server(
    cfg: &NtsConfig,
    ntp_port: u16,
    publisher: &Arc<Publisher>,
    filter: &LiveFilter,
) {
    if !cfg.enable {
        return;
    }
    let (Some(cert), Some(key)) = (&cfg.cert, &cfg.key) else {
        tracing::error!("nts enable needs 'nts cert FILE' and 'nts key FILE'; NTS is off");
        return;
    };
    let tls = match tls::server_config(cert, key) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("NTS is off: {e}");
            return;
        }
    };
    let mut random = match Random::open() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("NTS is off: /dev/urandom: {e}");
            return;
        }
    };
    let cookies = match &cfg.cookie {
        Some(path) => match keys::load_or_create(path, &mut random) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!("NTS is off: {e}");
                return;
            }
        },
        None => match CookieKeys::new(vec![keys::fresh_key(&mut random)]) {
            Some(k) => k,
            None => return,
        },
    };
    let cookies = Arc::new(cookies);
    *running() = Some(Running {
        cfg: cfg.clone(),
        tls,
        cookies: Arc::clone(&cookies),
    });
    publisher.publish(Snapshot {
        nts: Some(cookies),
        ..(*publisher.current()).clone()
    });
    let server = server::KeServer {
        publisher: Arc::clone(publisher),
        filter: filter.clone(),
        ntp_port,
    };
    // IPv6 first: on Linux its wildcard socket takes IPv4 as well, and the IPv4 one then
    // finds the port taken; where IPv6 is off or IPv6-only, the IPv4 socket serves IPv4.
    let addrs = [
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, cfg.port)),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, cfg.port)),
    ];
    match server::start(server, &addrs) {
        Ok(bound) => {
            tracing::info!("serving NTS-KE on TCP port {} ({bound:?})", cfg.port);
        }
        Err(e) => {
            tracing::error!("NTS is off: cannot listen on TCP port {}: {e}", cfg.port);
            *running() = None;
            publisher.publish(Snapshot {
                nts: None,
                ..(*publisher.current()).clone()
            });
            return;
        }
    }
    let interval = Duration::from_secs(u64::from(cfg.rotate));
    let first = first_rotation(cfg.cookie.as_deref(), interval, SystemTime::now());
    let path = cfg.cookie.clone();
    let spawned = std::thread::Builder::new()
        .name("nts-rotate".into())
        .spawn(move || {
            std::thread::sleep(first);
            loop {
                rotate(path.as_deref());
                std::thread::sleep(interval);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("NTS cookie keys will not rotate: {e}");
    }
}

/// How long until the first rotation: an interval after the cookie file was last written
/// (the last rotation, also before a restart), at once if that is past; an interval from now
/// without a file.
fn first_rotation(path: Option<&Path>, interval: Duration, now: SystemTime) -> Duration {
    let written = path
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| m.modified().ok());
    match written {
        Some(t) => (t + interval)
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(interval),
        None => interval,
    }
}

/// Makes a fresh cookie key, keeps the previous ones for the window, and writes them to the
/// cookie file if there is one. A file that cannot be written is logged: the new key is used
/// anyway, but its cookies will not survive a restart.
fn rotate(path: Option<&Path>) {
    let mut random = match Random::open() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("NTS cookie key not rotated: /dev/urandom: {e}");
            return;
        }
    };
    // This thread is the only one that rotates: the keys cannot change between here and the
    // end, and the file is written without holding the lock the main loop reads through.
    let Some(current) = cookie_keys() else {
        return;
    };
    let fresh = keys::fresh_key(&mut random);
    let id = fresh.id;
    let rotated = Arc::new(current.rotated(fresh));
    if let Some(path) = path
        && let Err(e) = keys::store(path, &rotated)
    {
        tracing::error!(
            "NTS cookie key rotated, but {e}: cookies sealed under the new key will not open \
             after a restart"
        );
    }
    tracing::info!(
        "NTS cookie key rotated: new key {id}, {} key(s) accepted",
        rotated.keys().len()
    );
    if let Some(run) = running().as_mut() {
        run.cookies = rotated;
    }
}

/// SIGHUP: reads the certificate and key again (a renewed certificate is served without a
/// restart; a broken one keeps the running one) and names the `nts` settings that only take
/// effect at a restart.
pub fn reload(cfg: &NtsConfig) {
    let mut guard = running();
    let Some(run) = guard.as_mut() else {
        if cfg.enable {
            tracing::warn!("SIGHUP: nts enable takes effect at the next restart");
        }
        return;
    };
    let restart: Vec<&str> = [
        ("enable", run.cfg.enable != cfg.enable),
        ("port", run.cfg.port != cfg.port),
        ("cookie", run.cfg.cookie != cfg.cookie),
        ("rotate", run.cfg.rotate != cfg.rotate),
        ("ca", run.cfg.ca != cfg.ca),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    if !restart.is_empty() {
        tracing::warn!(
            "SIGHUP: nts {} changed; takes effect at the next restart",
            restart.join(", ")
        );
    }
    let (Some(cert), Some(key)) = (&cfg.cert, &cfg.key) else {
        tracing::error!("SIGHUP: nts cert or key missing; keeping the running certificate");
        return;
    };
    match tls::server_config(cert, key) {
        Ok(tls) => {
            run.tls = tls;
            run.cfg.cert = Some(PathBuf::from(cert));
            run.cfg.key = Some(PathBuf::from(key));
            tracing::info!(
                "SIGHUP: NTS-KE certificate read again from {}",
                cert.display()
            );
        }
        Err(e) => {
            tracing::error!("SIGHUP: {e}; keeping the running NTS-KE certificate");
        }
    }
}

/// How long one key exchange may take, each direction, before the connection is dropped.
pub const KE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one key exchange may take in all, however the client trickles its bytes.
pub const KE_DEADLINE: Duration = Duration::from_secs(10);

/// Key exchanges since start-up, both roles, in NTPsec's terms: a client's key exchange is a
/// "probe", a server's a "serve".
#[derive(Debug)]
pub struct KeCounters {
    /// Key exchanges served to a client.
    pub server_good: AtomicU64,
    /// Key exchanges a client started that failed (TLS, timeout, bad request).
    pub server_bad: AtomicU64,
    /// Connections closed unserved by the admission limits.
    pub server_refused: AtomicU64,
    /// Key exchanges with a server that gave keys and cookies.
    pub client_good: AtomicU64,
    /// Key exchanges with a server that failed.
    pub client_bad: AtomicU64,
    /// Cookies sealed into key-exchange responses.
    pub cookies_made: AtomicU64,
}

impl KeCounters {
    const fn new() -> Self {
        Self {
            server_good: AtomicU64::new(0),
            server_bad: AtomicU64::new(0),
            server_refused: AtomicU64::new(0),
            client_good: AtomicU64::new(0),
            client_bad: AtomicU64::new(0),
            cookies_made: AtomicU64::new(0),
        }
    }

    /// Adds one to `counter`.
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The cookies sealed into key-exchange responses so far.
    pub fn cookies_made(&self) -> u64 {
        self.cookies_made.load(Ordering::Relaxed)
    }

    /// The values now: (server good, server bad, server refused, client good, client bad).
    pub fn get(&self) -> [u64; 5] {
        [
            &self.server_good,
            &self.server_bad,
            &self.server_refused,
            &self.client_good,
            &self.client_bad,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// The key-exchange counters of this process (the listener and client threads count here).
pub static KE_COUNTERS: KeCounters = KeCounters::new();
