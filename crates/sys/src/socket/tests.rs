//! Loopback-only tests (127.0.0.0/8 and ::1, ephemeral ports) of socket set-up and I/O.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::*;
use crate::clock;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOCALHOST_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn server_options() -> SocketOptions {
    SocketOptions {
        recv_pktinfo: true,
        rx_timestamps: true,
        ..SocketOptions::default()
    }
}

fn bind(ip: IpAddr, opts: &SocketOptions) -> UdpSocket {
    bind_udp(SocketAddr::new(ip, 0), opts).expect("bind on loopback")
}

/// A plain client socket on 127.0.0.1 with a read timeout, so that a lost reply fails the test
/// instead of hanging it.
fn client() -> UdpSocket {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("client bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    socket
}

fn port_of(socket: &UdpSocket) -> u16 {
    socket.local_addr().expect("local address").port()
}

/// Gives loopback delivery time to finish, so that a batch sees every datagram sent before it.
fn settle() {
    std::thread::sleep(Duration::from_millis(50));
}

/// Waits until `server` gets kernel timestamps. The kernel switches RX stamping on for the whole
/// system asynchronously (a deferred static-key update) when the first socket asks for it, so
/// datagrams sent right after the first `bind_udp` can arrive without a stamp.
fn await_rx_timestamps(server: &UdpSocket) {
    let probe = client();
    let dst = server.local_addr().expect("server address");
    for _ in 0..200 {
        probe.send_to(b"probe", dst).expect("send probe");
        settle();
        let mut stamped = false;
        while let Ok(meta) = recv_msg(server, &mut [0; 64]) {
            stamped |= meta.rx_time.is_some();
        }
        if stamped {
            return;
        }
    }
    panic!("no kernel RX timestamps after 10 s");
}

fn fd_flags(socket: &UdpSocket) -> (libc::c_int, libc::c_int) {
    let fd = socket.as_raw_fd();
    // SAFETY: F_GETFL/F_GETFD only read flags of a descriptor the socket keeps open.
    unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
        )
    }
}

#[test]
fn sockets_are_close_on_exec_and_nonblocking_only_on_request() {
    let blocking = bind(LOCALHOST, &SocketOptions::default());
    let (status, fd) = fd_flags(&blocking);
    assert_eq!(status & libc::O_NONBLOCK, 0);
    assert_ne!(fd & libc::FD_CLOEXEC, 0);

    let nonblocking = bind(
        LOCALHOST,
        &SocketOptions {
            nonblocking: true,
            ..SocketOptions::default()
        },
    );
    let (status, fd) = fd_flags(&nonblocking);
    assert_ne!(status & libc::O_NONBLOCK, 0);
    assert_ne!(fd & libc::FD_CLOEXEC, 0);
    let err = recv_msg(&nonblocking, &mut [0; 64]).expect_err("nothing queued");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    let err = RecvBatch::new(4, 64)
        .recv_batch(&nonblocking)
        .expect_err("nothing queued");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn two_reuse_port_sockets_share_one_port() {
    let opts = SocketOptions {
        reuse_port: true,
        ..SocketOptions::default()
    };
    let first = bind(LOCALHOST, &opts);
    let addr = first.local_addr().expect("local address");
    let second = bind_udp(addr, &opts).expect("second SO_REUSEPORT socket on the same port");
    assert_eq!(second.local_addr().expect("local address"), addr);

    let err = bind_udp(addr, &SocketOptions::default()).expect_err("port taken without reuse");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
}

#[test]
fn v6_only_wildcard_coexists_with_v4_wildcard_on_one_port() {
    let v4 = bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &SocketOptions::default());
    let v6_addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port_of(&v4));
    match bind_udp(
        v6_addr,
        &SocketOptions {
            v6_only: true,
            ..SocketOptions::default()
        },
    ) {
        Ok(_) => {}
        // The suite needs IPv6 (sundial serves ::1, which Debian's ntpq asks first).
        Err(e) => panic!("v6-only wildcard next to v4 wildcard: {e}"),
    }
}

#[test]
fn pktinfo_reports_the_destination_on_a_wildcard_socket() {
    let server = bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &server_options());
    let port = port_of(&server);
    let client = client();
    let mut buf = [0; 128];
    for dst in [LOCALHOST, LOCALHOST_2] {
        client.send_to(b"request", (dst, port)).expect("send");
        let meta = recv_msg(&server, &mut buf).expect("receive");
        assert_eq!(&buf[..meta.len], b"request");
        assert_eq!(meta.source, client.local_addr().expect("client address"));
        let info = meta.dst.expect("pktinfo requested");
        assert_eq!(info.addr, dst);
        assert_ne!(info.ifindex, 0);
    }
}

fn mtu_discover(socket: &UdpSocket) -> libc::c_int {
    let mut value: libc::c_int = -1;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid and writable, and `len` holds the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt IP_MTU_DISCOVER");
    value
}

#[test]
fn dont_fragment_sets_pmtudisc_do_and_replies_still_arrive() {
    let plain = bind(LOCALHOST, &server_options());
    assert_ne!(mtu_discover(&plain), libc::IP_PMTUDISC_DO);
    let server = bind(
        LOCALHOST,
        &SocketOptions {
            dont_fragment: true,
            ..server_options()
        },
    );
    assert_eq!(mtu_discover(&server), libc::IP_PMTUDISC_DO);
    let client = client();
    client
        .send_to(b"request", (LOCALHOST, port_of(&server)))
        .expect("send");
    let meta = recv_msg(&server, &mut [0; 128]).expect("receive");
    send_msg(&server, &[7; 480], meta.source, meta.dst).expect("send a mode 6 sized reply");
    let mut buf = [0; 1024];
    let (len, _) = client.recv_from(&mut buf).expect("reply");
    assert_eq!(len, 480);
}

#[test]
fn reply_with_source_pktinfo_leaves_from_that_address() {
    let server = bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &server_options());
    let port = port_of(&server);
    let client = client();
    client
        .send_to(b"request", (LOCALHOST_2, port))
        .expect("send");
    let meta = recv_msg(&server, &mut [0; 128]).expect("receive");

    let sent = send_msg(&server, b"reply", meta.source, meta.dst).expect("send reply");
    assert_eq!(sent, 5);
    let mut buf = [0; 128];
    let (len, from) = client.recv_from(&mut buf).expect("reply");
    assert_eq!(&buf[..len], b"reply");
    assert_eq!(from, SocketAddr::new(LOCALHOST_2, port));
}

#[test]
fn kernel_rx_timestamps_are_close_to_realtime() {
    let server = bind(
        LOCALHOST,
        &SocketOptions {
            nonblocking: true,
            ..server_options()
        },
    );
    assert!(rx_timestamping_enabled(&server));
    assert!(!rx_timestamping_enabled(&bind(
        LOCALHOST,
        &SocketOptions::default()
    )));
    await_rx_timestamps(&server);

    let before = clock::realtime();
    client()
        .send_to(b"x", (LOCALHOST, port_of(&server)))
        .expect("send");
    settle();
    let meta = recv_msg(&server, &mut [0; 16]).expect("receive");
    let after = clock::realtime();
    let stamp = meta.rx_time.expect("kernel timestamp requested");
    assert!(
        (stamp.as_nanos() - after.as_nanos()).abs() < 1_000_000_000,
        "{stamp:?} vs {after:?}"
    );
    // Allow for the coarse clock some kernels stamp with.
    assert!(
        stamp.as_nanos() >= before.as_nanos() - 10_000_000,
        "{stamp:?} before {before:?}"
    );
}

#[test]
fn ipv6_loopback_reports_destination_and_replies_from_it() {
    let opts = SocketOptions {
        v6_only: true,
        nonblocking: true,
        ..server_options()
    };
    let server = bind_udp("[::1]:0".parse().expect("literal"), &opts)
        .unwrap_or_else(|e| panic!("IPv6 loopback, which the suite needs: {e}"));
    let client = UdpSocket::bind("[::1]:0").expect("client bind");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    client
        .send_to(b"six", server.local_addr().expect("address"))
        .expect("send");
    settle();
    let meta = recv_msg(&server, &mut [0; 64]).expect("receive");
    let info = meta.dst.expect("pktinfo requested");
    assert_eq!(info.addr, IpAddr::V6(Ipv6Addr::LOCALHOST));

    send_msg(&server, b"reply", meta.source, meta.dst).expect("reply");
    let (len, from) = client.recv_from(&mut [0; 64]).expect("reply arrives");
    assert_eq!((len, from), (5, server.local_addr().expect("address")));
}

#[test]
fn batch_receive_gets_several_datagrams_in_one_call() {
    let server = bind(
        LOCALHOST,
        &SocketOptions {
            nonblocking: true,
            ..server_options()
        },
    );
    await_rx_timestamps(&server);
    let client = client();
    for i in 0..5u8 {
        client
            .send_to(&[i; 48], (LOCALHOST, port_of(&server)))
            .expect("send");
    }
    settle();
    let mut batch = RecvBatch::new(8, 256);
    assert_eq!(batch.recv_batch(&server).expect("batch"), 5);
    assert_eq!(batch.len(), 5);
    let now = clock::realtime();
    for (i, (data, meta)) in batch.iter().enumerate() {
        assert_eq!(data, &[i as u8; 48]);
        assert_eq!((meta.len, meta.truncated), (48, false));
        assert_eq!(meta.source, client.local_addr().expect("client address"));
        assert_eq!(meta.dst.map(|d| d.addr), Some(LOCALHOST));
        let stamp = meta.rx_time.expect("kernel timestamp requested");
        assert!((now.as_nanos() - stamp.as_nanos()).abs() < 1_000_000_000);
    }
}

#[test]
fn batch_receive_takes_at_most_its_capacity() {
    let server = bind(
        LOCALHOST,
        &SocketOptions {
            nonblocking: true,
            ..SocketOptions::default()
        },
    );
    let client = client();
    for _ in 0..3 {
        client
            .send_to(b"abc", (LOCALHOST, port_of(&server)))
            .expect("send");
    }
    settle();
    let mut batch = RecvBatch::new(2, 64);
    assert_eq!(batch.recv_batch(&server).expect("first batch"), 2);
    assert_eq!(batch.recv_batch(&server).expect("second batch"), 1);
    assert_eq!(batch.data(0), b"abc");
}

#[test]
fn datagram_larger_than_the_buffer_is_reported_truncated() {
    let server = bind(
        LOCALHOST,
        &SocketOptions {
            nonblocking: true,
            ..SocketOptions::default()
        },
    );
    let client = client();
    let port = port_of(&server);
    client.send_to(&[7; 100], (LOCALHOST, port)).expect("send");
    settle();
    let meta = recv_msg(&server, &mut [0; 16]).expect("receive");
    assert_eq!((meta.len, meta.truncated), (16, true));

    client.send_to(&[7; 100], (LOCALHOST, port)).expect("send");
    client.send_to(&[8; 16], (LOCALHOST, port)).expect("send");
    settle();
    let mut batch = RecvBatch::new(4, 16);
    assert_eq!(batch.recv_batch(&server).expect("batch"), 2);
    assert_eq!((batch.meta(0).len, batch.meta(0).truncated), (16, true));
    assert_eq!(batch.data(0), &[7; 16]);
    assert_eq!((batch.meta(1).len, batch.meta(1).truncated), (16, false));
}
