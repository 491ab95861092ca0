//! Prometheus metrics (`ntpd --metrics [ADDR:]PORT`, or the `metrics` line of ntp.conf): off
//! by default; when on, a thread of its own serves `/metrics` ([`http`]) rendered from the
//! snapshot the main loop publishes once a second and after every reply ([`render`]).

pub mod http;
pub mod render;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The conventional port of NTP exporters (ntpd-rs uses it too).
pub const DEFAULT_PORT: u16 = 9975;

/// Parses `[ADDR:]PORT` (`9975`, `0.0.0.0:9975`, `[::1]:9975`); the address defaults to
/// 127.0.0.1.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("'{text}' is not [ADDR:]PORT (e.g. 9975, 0.0.0.0:9975 or [::1]:9975)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_listens_on_loopback() {
        assert_eq!(parse_listen("9975"), Ok("127.0.0.1:9975".parse().unwrap()));
        assert_eq!(parse_listen("[::1]:1"), Ok("[::1]:1".parse().unwrap()));
        assert_eq!(
            parse_listen("0.0.0.0:9975"),
            Ok("0.0.0.0:9975".parse().unwrap())
        );
        assert!(parse_listen("::1").is_err());
        assert!(parse_listen("70000").is_err());
        assert!(parse_listen("host:1").is_err());
    }
}
