//! The NTS-KE server (RFC 8915 §4): a TCP listener on its own thread; one short-lived thread
//! per connection, admitted by [`super::admission`] (a total and a per-client cap, a
//! per-client rate), each bounded by [`super::KE_TIMEOUT`] per read and write, by
//! [`super::KE_DEADLINE`] in all, and by the record parser's message limit.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use rustls::{ServerConnection, StreamOwned};
use sundial_proto::nts::ke::{self, COOKIES_PER_EXCHANGE, EXPORTER_LABEL};
use sundial_proto::nts::{AeadKey, SessionKeys};

use super::admission::Admission;
use super::{KE_COUNTERS, KE_DEADLINE, KE_TIMEOUT};
use crate::interfaces::LiveFilter;
use crate::publish::Publisher;
use crate::random::Random;

/// What the listener needs to answer.
#[derive(Debug, Clone)]
pub struct KeServer {
    /// The published snapshot: cookies are sealed under the keys the NTP server threads
    /// hold, so a cookie handed out always opens.
    pub publisher: Arc<Publisher>,
    /// The `interface` rules: a connection to an address they do not serve is closed.
    pub filter: LiveFilter,
    /// The NTP port announced to clients when it is not 123.
    pub ntp_port: u16,
}

/// Binds the NTS-KE port on `addrs` and serves on background threads.
pub fn start(server: KeServer, addrs: &[SocketAddr]) -> io::Result<Vec<SocketAddr>> {
    let mut bound = Vec::new();
    let admission = Arc::new(Mutex::new(Admission::default()));
    let mut last_error = None;
    for addr in addrs {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!("NTS-KE: cannot listen on {addr}: {e}");
                last_error = Some(e);
                continue;
            }
        };
        bound.push(listener.local_addr()?);
        let server = server.clone();
        let admission = Arc::clone(&admission);
        thread::Builder::new()
            .name("nts-ke-listen".into())
            .spawn(move || listen(&listener, &server, &admission))?;
    }
    match last_error {
        Some(e) if bound.is_empty() => Err(e),
        _ => Ok(bound),
    }
}

fn listen(listener: &TcpListener, server: &KeServer, admission: &Arc<Mutex<Admission>>) {
    let mut filter = server.filter.reader();
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
        let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
            continue;
        };
        // IPv4 clients of the dual-stack socket as IPv4 addresses, in the log and the rules.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let local = SocketAddr::new(local.ip().to_canonical(), local.port());
        if !filter.get().serves(local.ip()) {
            KE_COUNTERS.count(&KE_COUNTERS.server_refused);
            tracing::debug!("NTS-KE from {peer} to {local} refused: interface rules");
            continue;
        }
        let ip: IpAddr = peer.ip();
        if let Err(why) = lock(admission).admit(ip, Instant::now()) {
            KE_COUNTERS.count(&KE_COUNTERS.server_refused);
            tracing::debug!("NTS-KE from {peer} refused: {why}");
            drop(stream);
            continue;
        }
        let server = server.clone();
        let mine = Arc::clone(admission);
        let spawned = thread::Builder::new().name("nts-ke".into()).spawn(move || {
            match serve_one(stream, &server) {
                Ok(()) => KE_COUNTERS.count(&KE_COUNTERS.server_good),
                Err(e) => {
                    KE_COUNTERS.count(&KE_COUNTERS.server_bad);
                    tracing::info!("NTS-KE with {peer} failed: {e}");
                }
            }
            lock(&mine).release(ip);
        });
        if spawned.is_err() {
            lock(admission).release(ip);
        }
    }
}

/// The admission table, also after a thread panicked holding it (its counts stay usable).
fn lock(admission: &Mutex<Admission>) -> MutexGuard<'_, Admission> {
    admission.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TCP stream whose reads and writes each wait at most [`KE_TIMEOUT`] and all end by a
/// deadline, so a client trickling a byte now and then cannot hold a slot for long.
#[derive(Debug)]
pub(super) struct Deadlined {
    tcp: TcpStream,
    until: Instant,
}

impl Deadlined {
    pub(super) fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            until: Instant::now() + KE_DEADLINE,
        }
    }

    /// Ends the sending side and reads what the client still sends (up to 64 KiB, within the
    /// deadline) before the close: closing with unread data would reset the connection and
    /// could destroy the answer before the client reads it.
    fn linger(&mut self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Write);
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match self.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn left(&self) -> io::Result<std::time::Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("key exchange not done within {}s", KE_DEADLINE.as_secs()),
            ));
        }
        Ok(left.min(KE_TIMEOUT))
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.left()?))?;
        self.tcp.read(buf)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.left()?))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

fn serve_one(tcp: TcpStream, server: &KeServer) -> Result<(), String> {
    let tls = super::current_tls().ok_or("NTS is off")?;
    let conn = ServerConnection::new(tls).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, Deadlined::new(tcp));
    let request = match read_message(&mut tls) {
        Ok(r) => r,
        Err(MessageError::Ke(e)) => {
            // Records that can never parse (too long, a bad length): say so, then close.
            let mut response = Vec::new();
            ke::write_error(&mut response, ke::error_for(&e));
            let _ = tls.write_all(&response);
            tls.conn.send_close_notify();
            let _ = tls.flush();
            tls.sock.linger();
            return Err(format!("bad request: {e}"));
        }
        Err(e) => return Err(e.to_string()),
    };
    if tls.conn.alpn_protocol() != Some(ke::ALPN) {
        return Err("client did not negotiate ALPN ntske/1".into());
    }
    let mut response = Vec::new();
    match ke::parse_request(&request) {
        Ok(req) => {
            let keys = export_keys(&tls.conn, req.aead)?;
            let snapshot = server.publisher.current();
            let cookie_keys = snapshot.nts.as_deref().ok_or("no cookie keys published")?;
            let mut random = Random::open().map_err(|e| e.to_string())?;
            let mut cookies = Vec::with_capacity(COOKIES_PER_EXCHANGE);
            for _ in 0..COOKIES_PER_EXCHANGE {
                let mut nonce = [0u8; 16];
                for c in nonce.chunks_exact_mut(8) {
                    c.copy_from_slice(&random.next_u64().to_ne_bytes());
                }
                let mut buf = [0u8; sundial_proto::nts::cookie::MAX_COOKIE_LEN];
                let n = cookie_keys
                    .seal(&keys, nonce, &mut buf)
                    .ok_or("cookie does not fit")?;
                cookies.push(buf.get(..n).unwrap_or_default().to_vec());
                KE_COUNTERS.count(&KE_COUNTERS.cookies_made);
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

/// Why no NTS-KE message was read.
#[derive(Debug)]
pub(super) enum MessageError {
    /// The records do not parse.
    Ke(ke::KeError),
    /// The connection failed or closed first.
    Io(String),
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ke(e) => e.fmt(f),
            Self::Io(e) => f.write_str(e),
        }
    }
}

/// Reads one NTS-KE message (bounded by the parser's limit).
pub(super) fn read_message(tls: &mut impl Read) -> Result<Vec<u8>, MessageError> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match ke::split_message(&data) {
            Ok(Some((_, len))) => {
                data.truncate(len);
                return Ok(data);
            }
            Ok(None) => {}
            Err(e) => return Err(MessageError::Ke(e)),
        }
        let n = tls
            .read(&mut buf)
            .map_err(|e| MessageError::Io(e.to_string()))?;
        if n == 0 {
            return Err(MessageError::Io(
                "connection closed before the end of the message".into(),
            ));
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
