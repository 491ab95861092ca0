//! Reverse name lookup for the `remote` column: `/etc/hosts` first, then a PTR query to the
//! name servers of `/etc/resolv.conf` — the order of glibc's default `hosts: files dns`.
//!
//! getnameinfo is a raw libc call, and those live only in `sundial-sys`, so ntpq carries this
//! small, bounded resolver instead: one UDP query per server with a short timeout, answers cached
//! for the run, compression loops and oversized names rejected, and a name with anything but
//! letters, digits, `-`, `_` and `.` refused (it would go straight to the terminal). Any failure
//! falls back to the number, as classic ntpq does.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::random::Random;

/// Wait for one name server's answer.
const SERVER_TIMEOUT: Duration = Duration::from_secs(2);

/// Name servers tried, like glibc's `MAXNS`.
const MAX_SERVERS: usize = 3;

/// Longest domain name (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 255;

/// Compression pointers followed in one name before it is declared a loop.
const MAX_POINTERS: usize = 16;

/// DNS record type PTR and class IN.
const TYPE_PTR: u16 = 12;
const CLASS_IN: u16 = 1;

/// Reverse lookups with a cache.
#[derive(Debug, Default)]
pub(crate) struct ReverseDns {
    hosts: Vec<(IpAddr, String)>,
    servers: Vec<SocketAddr>,
    cache: HashMap<IpAddr, String>,
    random: Option<Random>,
}

impl ReverseDns {
    /// A resolver configured from `/etc/hosts` and `/etc/resolv.conf`.
    pub(crate) fn from_system() -> Self {
        let read = |path| fs::read_to_string(path).unwrap_or_default();
        Self {
            hosts: parse_hosts(&read("/etc/hosts")),
            servers: parse_resolv_conf(&read("/etc/resolv.conf")),
            cache: HashMap::new(),
            random: Random::open().ok(),
        }
    }

    /// The name of `addr`, or its number if it has none.
    pub(crate) fn name(&mut self, addr: IpAddr) -> String {
        if let Some(name) = self.cache.get(&addr) {
            return name.clone();
        }
        let name = self
            .hosts
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, n)| n.clone())
            .or_else(|| self.query(addr))
            .unwrap_or_else(|| addr.to_string());
        self.cache.insert(addr, name.clone());
        name
    }

    fn query(&mut self, addr: IpAddr) -> Option<String> {
        let id = self.random.as_mut().map_or(0x5d1a, |r| {
            u16::try_from(r.next_u64() & 0xffff).unwrap_or(0)
        });
        let query = build_query(id, &ptr_name(addr));
        self.servers.iter().find_map(|server| {
            let local: SocketAddr = if server.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local).ok()?;
            socket.connect(server).ok()?;
            socket.set_read_timeout(Some(SERVER_TIMEOUT)).ok()?;
            socket.send(&query).ok()?;
            let mut buf = [0u8; 1500];
            let len = socket.recv(&mut buf).ok()?;
            parse_response(id, buf.get(..len)?)
        })
    }
}

/// The first name of each address in an `/etc/hosts` text.
fn parse_hosts(text: &str) -> Vec<(IpAddr, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?;
            let mut words = line.split_whitespace();
            let addr = words.next()?.parse().ok()?;
            let name = words.next().filter(|n| is_plain_name(n))?;
            Some((addr, name.to_owned()))
        })
        .collect()
}

/// The `nameserver` addresses of a resolv.conf text (port 53), at most [`MAX_SERVERS`].
fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let addr: IpAddr = words.next()?.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(addr, 53))
        })
        .take(MAX_SERVERS)
        .collect()
}

/// `10.2.0.192.in-addr.arpa` / the nibble form under `ip6.arpa`.
fn ptr_name(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// A recursive PTR query for `name` (RFC 1035 §4.1).
fn build_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap_or(63).min(63));
        q.extend(label.bytes().take(63));
    }
    q.push(0);
    q.extend_from_slice(&TYPE_PTR.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// The first PTR name in a response to query `id`, if it is a plain host name.
fn parse_response(id: u16, msg: &[u8]) -> Option<String> {
    let u16_at = |at: usize| Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]));
    let flags = u16_at(2)?;
    // Our id, a response, RCODE 0.
    if u16_at(0)? != id || flags & 0x8000 == 0 || flags & 0x000f != 0 {
        return None;
    }
    let (questions, answers) = (u16_at(4)?, u16_at(6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(msg, at)?.1 + 4;
    }
    for _ in 0..answers {
        let after_name = read_name(msg, at)?.1;
        let (kind, class) = (u16_at(after_name)?, u16_at(after_name + 2)?);
        let rdata = after_name + 10;
        let rdlen = usize::from(u16_at(after_name + 8)?);
        if kind == TYPE_PTR && class == CLASS_IN {
            let (name, _) = read_name(msg, rdata)?;
            return is_plain_name(&name).then_some(name);
        }
        at = rdata + rdlen;
    }
    None
}

/// Reads a possibly compressed domain name at `start`: the dotted name (no trailing dot) and
/// the offset just after it in the record.
fn read_name(msg: &[u8], start: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut at = start;
    let mut after = None;
    let mut pointers = 0;
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some((name, after.unwrap_or(at + 1))),
            l if l & 0xc0 == 0xc0 => {
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return None;
                }
                after.get_or_insert(at + 2);
                at = usize::from(u16::from_be_bytes([l & 0x3f, *msg.get(at + 1)?]));
            }
            l if l & 0xc0 == 0 => {
                let label = msg.get(at + 1..at + 1 + usize::from(l))?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|&b| char::from(b)));
                if name.len() > MAX_NAME_LEN {
                    return None;
                }
                at += 1 + usize::from(l);
            }
            _ => return None, // the reserved label types 0x40 and 0x80
        }
    }
}

/// Letters, digits, `-`, `_` and `.` only: safe to print, and what host names are made of.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_resolv_conf_parse_like_glibc() {
        let hosts = parse_hosts(
            "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost # loopback\n# x\n10.0.0.1\n",
        );
        assert_eq!(
            hosts,
            [
                (IpAddr::from([127, 0, 0, 1]), "localhost".to_owned()),
                ("::1".parse().unwrap(), "localhost".to_owned()),
            ]
        );
        let servers =
            parse_resolv_conf("search x\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0], "10.0.0.53:53".parse().unwrap());
    }

    #[test]
    fn reverse_names_are_in_arpa_form() {
        assert_eq!(
            ptr_name(IpAddr::from([192, 0, 2, 10])),
            "10.2.0.192.in-addr.arpa"
        );
        let v6 = ptr_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."));
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.ip6.arpa"));
    }

    /// A response to `build_query(7, …)` with one compressed PTR answer.
    fn response(ptr: &[u8]) -> Vec<u8> {
        let mut msg = build_query(7, "10.2.0.192.in-addr.arpa");
        msg[2] = 0x81;
        msg[3] = 0x80;
        msg[7] = 1; // one answer
        msg.extend_from_slice(&[0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60]);
        msg.extend_from_slice(&u16::try_from(ptr.len()).unwrap().to_be_bytes());
        msg.extend_from_slice(ptr);
        msg
    }

    #[test]
    fn reads_a_compressed_ptr_answer() {
        let msg = response(b"\x03ntp\x07example\x03org\x00");
        assert_eq!(parse_response(7, &msg), Some("ntp.example.org".to_owned()));
        assert_eq!(parse_response(8, &msg), None, "other id");
    }

    #[test]
    fn refuses_loops_garbage_and_unprintable_names() {
        // A pointer to itself.
        let mut looped = response(b"\xc0\x00");
        let at = looped.len() - 2;
        looped[at + 1] = u8::try_from(at).unwrap();
        assert_eq!(parse_response(7, &looped), None);
        assert_eq!(parse_response(7, &response(b"\x04a\x1b[m\x00")), None);
        for len in 0..40 {
            let _ = parse_response(7, &response(b"\x03ntp\x00")[..len]);
        }
    }
}
