//! One NTS key exchange as a client: connect, TLS 1.3 with ALPN `ntske/1`, send the request,
//! read the response, export the keys. Blocking and bounded by [`super::KE_TIMEOUT`] per read
//! and write and [`super::KE_DEADLINE`] in all; run on
//! a background thread, whose result the main loop collects.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread;

use mio::Waker;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use sundial_proto::nts::SessionKeys;
use sundial_proto::nts::ke;

use super::KE_TIMEOUT;
use super::server::{Deadlined, export_keys, read_message};
use super::tls;

/// A key exchange to perform.
#[derive(Debug, Clone)]
pub struct KeRequest {
    /// The association that asked.
    pub id: u16,
    /// The server's name as configured: the certificate must be for it.
    pub host: String,
    /// The address to connect to: the association's (for a pool member, the member's, while
    /// the certificate is checked for the pool's name).
    pub addr: std::net::IpAddr,
    /// The NTS-KE port.
    pub port: u16,
    /// CA bundle to verify the server against.
    pub ca: PathBuf,
    /// `noval`: do not verify the certificate.
    pub noval: bool,
    /// `ask HOST[:PORT]`: the NTP server to ask the key-exchange server for.
    pub ask: Option<ke::Ask>,
}

/// A completed key exchange.
#[derive(Debug)]
pub struct KeResult {
    /// The association that asked.
    pub id: u16,
    /// Keys and cookies, the NTP server and port the response named, or why it failed.
    pub outcome: Result<Exchanged, String>,
}

/// What a successful exchange gives the association.
#[derive(Debug)]
pub struct Exchanged {
    /// The session keys.
    pub keys: SessionKeys,
    /// The cookies.
    pub cookies: Vec<Vec<u8>>,
    /// The NTP server the response named, if any.
    pub server: Option<String>,
    /// The NTP port the response named, if any.
    pub port: Option<u16>,
}

/// Runs `request` on a new thread; the result goes to `results`, then `waker` wakes the main
/// loop.
pub fn spawn(request: KeRequest, results: Sender<KeResult>, waker: Arc<Waker>) {
    let id = request.id;
    let spawned = thread::Builder::new()
        .name("nts-ke-client".into())
        .spawn(move || {
            let outcome = exchange(&request);
            let _ = results.send(KeResult { id, outcome });
            let _ = waker.wake();
        });
    if let Err(e) = spawned {
        tracing::warn!("association {id}: cannot start NTS-KE: {e}");
    }
}

/// One key exchange, blocking.
pub fn exchange(request: &KeRequest) -> Result<Exchanged, String> {
    let config = tls::client_config(&request.ca, request.noval)?;
    let name =
        ServerName::try_from(request.host.clone()).map_err(|e| format!("{}: {e}", request.host))?;
    let addr = SocketAddr::new(request.addr, request.port);
    let tcp = TcpStream::connect_timeout(&addr, KE_TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    // A server that trickles its bytes cannot hold the exchange past the deadline either.
    let mut tls = StreamOwned::new(conn, Deadlined::new(tcp));
    let mut message = Vec::new();
    ke::write_request(&mut message, request.ask.as_ref());
    tls.write_all(&message)
        .and_then(|()| tls.flush())
        .map_err(|e| format!("TLS with {addr}: {e}"))?;
    let data = read_message(&mut tls).map_err(|e| format!("TLS with {addr}: {e}"))?;
    if tls.conn.alpn_protocol() != Some(ke::ALPN) {
        return Err(format!("{addr} did not negotiate ALPN ntske/1"));
    }
    let response = ke::parse_response(&data).map_err(|e| format!("{addr}: {e}"))?;
    let keys = export_keys(&tls.conn, response.aead)?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(Exchanged {
        keys,
        cookies: response.cookies,
        server: response.server,
        port: response.port,
    })
}
