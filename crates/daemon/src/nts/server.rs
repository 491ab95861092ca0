//! The NTS-KE server (RFC 8915 §4): a TCP listener on its own thread; one short-lived thread
//! per connection, at most [`MAX_CONNECTIONS`] at a time, each bounded by
//! [`super::KE_TIMEOUT`] per read and write and by the record parser's message limit.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use sundial_proto::nts::ke::{self, COOKIES_PER_EXCHANGE, EXPORTER_LABEL};
use sundial_proto::nts::{AeadKey, CookieKeys, SessionKeys};

use super::KE_TIMEOUT;
use crate::random::Random;

/// Most key exchanges in progress at once (CVE-2024-38528: unbounded connections exhausted
/// ntpd-rs' file descriptors).
pub const MAX_CONNECTIONS: usize = 32;

/// What the listener needs to answer.
#[derive(Debug, Clone)]
pub struct KeServer {
    /// TLS configuration (certificate and key).
    pub tls: Arc<ServerConfig>,
    /// The cookie master keys the NTP server threads open cookies with.
    pub cookies: Arc<CookieKeys>,
    /// The NTP port announced to clients when it is not 123.
    pub ntp_port: u16,
}

/// Binds the NTS-KE port on `addrs` and serves on background threads.
pub fn start(server: KeServer, addrs: &[SocketAddr]) -> io::Result<Vec<SocketAddr>> {
    let mut bound = Vec::new();
    let active = Arc::new(AtomicUsize::new(0));
    for addr in addrs {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) if addr.is_ipv6() => {
                tracing::debug!("NTS-KE: cannot listen on {addr}: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        bound.push(listener.local_addr()?);
        let server = server.clone();
        let active = Arc::clone(&active);
        thread::Builder::new()
            .name("nts-ke-listen".into())
            .spawn(move || listen(&listener, &server, &active))?;
    }
    Ok(bound)
}

fn listen(listener: &TcpListener, server: &KeServer, active: &Arc<AtomicUsize>) {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning or exiting.
                tracing::debug!("NTS-KE: accept failed: {e}");
                thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let server = server.clone();
        let mine = Arc::clone(active);
        let spawned = thread::Builder::new().name("nts-ke".into()).spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(e) = serve_one(stream, &server) {
                tracing::info!("NTS-KE with {peer:?} failed: {e}");
            }
            mine.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn serve_one(tcp: TcpStream, server: &KeServer) -> Result<(), String> {
    tcp.set_read_timeout(Some(KE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(KE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let conn = ServerConnection::new(Arc::clone(&server.tls)).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    let request = read_message(&mut tls)?;
    if tls.conn.alpn_protocol() != Some(ke::ALPN) {
        return Err("client did not negotiate ALPN ntske/1".into());
    }
    let mut response = Vec::new();
    match ke::parse_request(&request) {
        Ok(req) => {
            let keys = export_keys(&tls.conn, req.aead)?;
            let mut random = Random::open().map_err(|e| e.to_string())?;
            let mut cookies = Vec::with_capacity(COOKIES_PER_EXCHANGE);
            for _ in 0..COOKIES_PER_EXCHANGE {
                let mut nonce = [0u8; 16];
                for c in nonce.chunks_exact_mut(8) {
                    c.copy_from_slice(&random.next_u64().to_ne_bytes());
                }
                let mut buf = [0u8; sundial_proto::nts::cookie::MAX_COOKIE_LEN];
                let n = server
                    .cookies
                    .seal(&keys, nonce, &mut buf)
                    .ok_or("cookie does not fit")?;
                cookies.push(buf.get(..n).unwrap_or_default().to_vec());
            }
            let refs: Vec<&[u8]> = cookies.iter().map(Vec::as_slice).collect();
            let port = (server.ntp_port != 123).then_some(server.ntp_port);
            ke::write_response(&mut response, req.aead, &refs, port);
        }
        Err(e) => {
            ke::write_error(&mut response, ke::error_for(&e));
            tls.write_all(&response).map_err(|e| e.to_string())?;
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return Err(format!("bad request: {e}"));
        }
    }
    tls.write_all(&response).map_err(|e| e.to_string())?;
    tls.conn.send_close_notify();
    tls.flush().map_err(|e| e.to_string())
}

/// Reads one NTS-KE message (bounded by the parser's limit).
pub(super) fn read_message(tls: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match ke::split_message(&data) {
            Ok(Some((_, len))) => {
                data.truncate(len);
                return Ok(data);
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the end of the message".into());
        }
        data.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

/// The two keys of RFC 8915 §5.1 from the TLS session.
pub(super) fn export_keys<D>(
    conn: &rustls::ConnectionCommon<D>,
    aead: sundial_proto::nts::Aead,
) -> Result<SessionKeys, String> {
    let key = |s2c: bool| -> Result<AeadKey, String> {
        let mut out = [0u8; 64];
        let out = out.get_mut(..aead.key_len()).ok_or("key length")?;
        let ctx = ke::exporter_context(aead, s2c);
        conn.export_keying_material(&mut *out, EXPORTER_LABEL, Some(&ctx))
            .map_err(|e| e.to_string())?;
        AeadKey::new(aead, out).ok_or_else(|| "key length".to_owned())
    };
    Ok(SessionKeys {
        c2s: key(false)?,
        s2c: key(true)?,
    })
}
