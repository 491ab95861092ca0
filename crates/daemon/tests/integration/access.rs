//! `restrict` lines decide who gets an answer; refused requests are counted by reason.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use sundial_proto::packet::{HEADER_LEN, Mode, NtpHeader};
use sundial_proto::time::NtpTimestamp;

use crate::support::{Daemon, LOCAL_CLOCK_CONFIG, LOCAL_CLOCK_STRATUM, SntpClient};

/// How long a refused request is given to (wrongly) produce a reply.
const NO_REPLY_WAIT: Duration = Duration::from_millis(300);

#[test]
fn restricted_sources_get_no_reply_and_are_counted() {
    // 127.0.0.1 may ask; ::1 may not be served; every other source is ignored.
    let config = format!(
        "{LOCAL_CLOCK_CONFIG}restrict default ignore\nrestrict 127.0.0.1\nrestrict ::1 noserve\n"
    );
    let ntpd = Daemon::start(&config);

    let allowed = SntpClient::bound((Ipv4Addr::LOCALHOST, 0).into());
    let reply = allowed
        .query(ntpd.addr_v4(), 4)
        .unwrap_or_else(|e| panic!("127.0.0.1: {e}"));
    assert_eq!(reply.header.stratum, LOCAL_CLOCK_STRATUM);

    let refused: [(SocketAddr, SocketAddr); 2] = [
        // Loopback, but not 127.0.0.1: the default entry applies.
        ((Ipv4Addr::new(127, 0, 0, 2), 0).into(), ntpd.addr_v4()),
        ((Ipv6Addr::LOCALHOST, 0).into(), ntpd.addr_v6()),
    ];
    for (source, server) in refused {
        let client = SntpClient::bound(source);
        client.send_raw(server, &request());
        if let Some((reply, _)) = client.recv_within(NO_REPLY_WAIT) {
            panic!("a request from {source} was answered: {reply:02x?}");
        }
    }

    let stopped = ntpd.stop();
    stopped.assert_success();
    let counters = stopped.counters();
    assert_eq!(
        counters.dropped_by_reason.get("restricted-ignore"),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(
        counters.dropped_by_reason.get("restricted-noserve"),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(counters.dropped, 2, "{counters:?}");
}

/// A plain NTPv4 client request.
fn request() -> Vec<u8> {
    let mut header = NtpHeader::new(4, Mode::Client);
    header.transmit_timestamp = NtpTimestamp::from_parts(0xec00_0000, 1);
    let mut bytes = [0u8; HEADER_LEN];
    header.emit(&mut bytes);
    bytes.to_vec()
}
