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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sundial_proto::nts::CookieKeys;

use crate::config::NtsConfig;
use crate::random::Random;

pub mod admission;
pub mod client;
pub mod keys;
pub mod server;
pub mod sources;
pub mod tls;

/// Starts the NTS-KE server if `nts enable` asks for it: loads the certificate and key, the
/// cookie keys (or makes fresh ones), and listens on the `nts port`. Returns the cookie keys
/// the NTP server threads answer NTS requests with; `None` (logged) if NTS is not enabled or
/// cannot start — the time service runs on without it.
pub fn start_server(cfg: &NtsConfig, ntp_port: u16) -> Option<Arc<CookieKeys>> {
    if !cfg.enable {
        return None;
    }
    let (Some(cert), Some(key)) = (&cfg.cert, &cfg.key) else {
        tracing::error!("nts enable needs 'nts cert FILE' and 'nts key FILE'; NTS is off");
        return None;
    };
    let tls = match tls::server_config(cert, key) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("NTS is off: {e}");
            return None;
        }
    };
    let mut random = match Random::open() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("NTS is off: /dev/urandom: {e}");
            return None;
        }
    };
    let cookies = match &cfg.cookie {
        Some(path) => match keys::load_or_create(path, &mut random) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!("NTS is off: {e}");
                return None;
            }
        },
        None => CookieKeys::new(vec![keys::fresh_key(&mut random)])?,
    };
    let cookies = Arc::new(cookies);
    let server = server::KeServer {
        tls,
        cookies: Arc::clone(&cookies),
        ntp_port,
    };
    let addrs = [
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, cfg.port)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, cfg.port)),
    ];
    match server::start(server, &addrs) {
        Ok(bound) => {
            tracing::info!("serving NTS-KE on TCP port {} ({bound:?})", cfg.port);
            Some(cookies)
        }
        Err(e) => {
            tracing::error!("NTS is off: cannot listen on TCP port {}: {e}", cfg.port);
            None
        }
    }
}

/// How long one key exchange may take, each direction, before the connection is dropped.
pub const KE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long one key exchange may take in all, however the client trickles its bytes.
pub const KE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

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
}

impl KeCounters {
    const fn new() -> Self {
        Self {
            server_good: AtomicU64::new(0),
            server_bad: AtomicU64::new(0),
            server_refused: AtomicU64::new(0),
            client_good: AtomicU64::new(0),
            client_bad: AtomicU64::new(0),
        }
    }

    /// Adds one to `counter`.
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
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
