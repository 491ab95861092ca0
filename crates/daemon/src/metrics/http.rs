//! The smallest HTTP/1.1 server that Prometheus can scrape: one thread, one connection at a
//! time, `GET /metrics` and nothing else.
//!
//! Bounded in every direction a client controls: a request is read into a fixed 2 KiB buffer
//! (no allocation depends on the client), it must be complete within 2 s of the connection
//! (a slow or silent client is answered `408` and dropped, so it holds the port at most that
//! long), every reply closes the connection, and connections wait in the kernel's accept queue
//! while one is served. The thread only reads the snapshot the main loop publishes; it never
//! touches the NTP sockets, so nothing done to this port can delay time service.
//!
//! Who may connect is decided by the `restrict` table in force, with the rule of mode 6 (ntpq):
//! a source whose entry has `noquery` or `ignore` (or that mode 6 would not answer) gets the
//! connection closed without a reply.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::render::{ProcessInfo, render};
use crate::publish::Publisher;

/// The largest request (request line and headers) read.
pub const MAX_REQUEST: usize = 2048;

/// How long a client has to send its whole request, and the reply to be written.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Binds the metrics port (before privileges are dropped, like the NTP port).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Serves `/metrics` from `listener` on its own thread until the process exits.
pub fn spawn(
    listener: TcpListener,
    publisher: Arc<Publisher>,
    info: ProcessInfo,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => serve(stream, &publisher, &info),
                    Err(e) => {
                        tracing::debug!("metrics: accept: {e}");
                        // Out of descriptors, say: do not spin.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
}

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (or `HEAD`: `head` is true).
    Metrics { head: bool },
    /// Another path.
    NotFound,
    /// A method other than GET or HEAD.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// Parses the request head (everything before the blank line).
pub fn parse(head: &[u8]) -> Request {
    let Ok(text) = std::str::from_utf8(head) else {
        return Request::BadRequest;
    };
    let line = text.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Request::BadRequest;
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Request::MethodNotAllowed;
        }
        _ => return Request::BadRequest,
    };
    let path = target.split('?').next().unwrap_or_default();
    if path == "/metrics" {
        Request::Metrics { head }
    } else {
        Request::NotFound
    }
}

/// How reading the request ended.
enum Read {
    /// The head, up to the blank line, is in `buf[..n]`.
    Head(usize),
    /// The buffer filled without a blank line.
    TooLarge,
    /// The deadline passed.
    TimedOut,
    /// The client closed or the connection failed.
    Gone,
}

fn read_head(stream: &mut TcpStream, buf: &mut [u8; MAX_REQUEST], started: Instant) -> Read {
    let mut n = 0;
    loop {
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return Read::Head(end);
        }
        if n == buf.len() {
            return Read::TooLarge;
        }
        let Some(left) = REQUEST_DEADLINE.checked_sub(started.elapsed()) else {
            return Read::TimedOut;
        };
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Read::TimedOut;
        }
        match stream.read(&mut buf[n..]) {
            Ok(0) => return Read::Gone,
            Ok(k) => n += k,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Read::TimedOut;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Read::Gone,
        }
    }
}

fn serve(mut stream: TcpStream, publisher: &Publisher, info: &ProcessInfo) {
    let started = Instant::now();
    let snapshot = publisher.current();
    let allowed = stream
        .peer_addr()
        .is_ok_and(|peer| snapshot.access.control_allowed(&peer));
    if !allowed {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let mut buf = [0u8; MAX_REQUEST];
    let response = match read_head(&mut stream, &mut buf, started) {
        Read::Head(n) => match parse(&buf[..n]) {
            Request::Metrics { head } => {
                let body = render(&snapshot.control, info);
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if !head {
                    r.push_str(&body);
                }
                r
            }
            Request::NotFound => status(404, "Not Found"),
            Request::MethodNotAllowed => status(405, "Method Not Allowed"),
            Request::BadRequest => status(400, "Bad Request"),
        },
        Read::TooLarge => status(431, "Request Header Fields Too Large"),
        Read::TimedOut => status(408, "Request Timeout"),
        Read::Gone => return,
    };
    let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

fn status(code: u16, reason: &str) -> String {
    format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_and_head_of_metrics_are_served() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Request::Metrics { head: false }
        );
        assert_eq!(
            parse(b"HEAD /metrics?x=1 HTTP/1.0"),
            Request::Metrics { head: true }
        );
        assert_eq!(parse(b"GET / HTTP/1.1"), Request::NotFound);
        assert_eq!(parse(b"POST /metrics HTTP/1.1"), Request::MethodNotAllowed);
        assert_eq!(parse(b"GET /metrics"), Request::BadRequest);
        assert_eq!(parse(b"GET /metrics SPDY/3"), Request::BadRequest);
        assert_eq!(parse(b"\xff\xfe /metrics HTTP/1.1"), Request::BadRequest);
        assert_eq!(parse(b"get /metrics HTTP/1.1"), Request::BadRequest);
        assert_eq!(parse(b""), Request::BadRequest);
    }

    #[test]
    fn parse_never_panics() {
        let strategy = proptest::collection::vec(proptest::num::u8::ANY, 0..300);
        let checked = crate::property::run(strategy, |bytes| {
            let _ = parse(&bytes);
            Ok(())
        });
        assert_eq!(checked, crate::property::CASES);
    }
}
