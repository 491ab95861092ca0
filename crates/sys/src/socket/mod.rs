//! UDP sockets for the NTP server and its clients: creation with the options a time server needs,
//! single-message I/O with metadata, and batched reception for the high-rate server path.
//!
//! * [`bind_udp`] creates a socket the way an LD_PRELOAD simulator can follow (plain `SOCK_DGRAM`,
//!   then `fcntl` for `O_NONBLOCK`/`FD_CLOEXEC`) and applies [`SocketOptions`].
//! * [`recv_msg`] / [`send_msg`] move one datagram together with its [`RecvMeta`]: source,
//!   destination address and interface ([`PktInfo`]) and the kernel's receive timestamp (T2).
//! * [`RecvBatch`] receives up to N datagrams per system call (`recvmmsg`) into preallocated
//!   buffers, so that serving allocates nothing.
//!
//! Kernel receive timestamps use `SO_TIMESTAMPING` with software RX stamps, which clknetsim
//! simulates; `SO_TIMESTAMPNS` is deliberately not used (see `DESIGN.md` §4).

mod batch;
mod cmsg;
mod msg;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use socket2::{Domain, Protocol, Socket, Type};

pub use self::batch::RecvBatch;
pub use self::msg::{PktInfo, RecvMeta, recv_msg, send_msg};
use crate::cvt;

/// The kernel timestamps requested with `SO_TIMESTAMPING`: software stamps taken when a datagram
/// enters the stack (`RX_SOFTWARE`), reported in control messages (`SOFTWARE`).
const RX_TIMESTAMPING_FLAGS: libc::c_uint =
    libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE;

/// How [`bind_udp`] sets a socket up. The default is a plain blocking socket with no options;
/// a server worker wants everything but `nonblocking`, a client socket in the mio loop wants
/// `rx_timestamps` and `nonblocking`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `SO_REUSEPORT`: lets N worker sockets bind the same address and port, with the kernel
    /// spreading clients across them by flow hash.
    pub reuse_port: bool,
    /// `IPV6_V6ONLY` (IPv6 addresses only): lets a `::` socket coexist with a `0.0.0.0` socket on
    /// the same port, so that IPv4 clients are seen with IPv4 addresses. `false` leaves the
    /// system default (`net.ipv6.bindv6only`, normally dual-stack).
    pub v6_only: bool,
    /// `IP_PKTINFO` / `IPV6_RECVPKTINFO`: reports each datagram's destination address and
    /// interface ([`RecvMeta::dst`]), so that a wildcard socket can reply from the address a
    /// client asked and apply per-interface rules.
    pub recv_pktinfo: bool,
    /// `SO_TIMESTAMPING` software receive timestamps ([`RecvMeta::rx_time`]). Where the kernel
    /// refuses, the socket silently works without them; see [`rx_timestamping_enabled`].
    pub rx_timestamps: bool,
    /// `O_NONBLOCK`: reads return [`io::ErrorKind::WouldBlock`] instead of waiting, as an event
    /// loop needs.
    pub nonblocking: bool,
    /// IPv4 only: `IP_MTU_DISCOVER` = `IP_PMTUDISC_DO`, so datagrams leave with "don't fragment"
    /// set and IP ID 0 (RFC 6864). Under the default (`IP_PMTUDISC_WANT`) the kernel computes a
    /// hashed IP ID for every datagram of an unconnected socket, which costs a server about 5 %
    /// of its CPU time per reply; NTP replies (at most a mode 6 fragment, 508 octets with
    /// headers) fit every IPv4 path (minimum MTU 576). Best effort, like `rx_timestamps`.
    pub dont_fragment: bool,
    /// Receive buffer size in bytes (0: the system default, `net.core.rmem_default`). The
    /// kernel doubles the value for its bookkeeping. With CAP_NET_ADMIN it may exceed
    /// `net.core.rmem_max` (`SO_RCVBUFFORCE`); without, it is capped there. Best effort.
    pub recv_buffer: usize,
}

/// Creates a UDP socket for `addr`'s family, applies `opts`, and binds it. The socket is always
/// close-on-exec. Requesting kernel timestamps never makes this fail.
pub fn bind_udp(addr: SocketAddr, opts: &SocketOptions) -> io::Result<UdpSocket> {
    let domain = Domain::for_address(addr);
    // `new_raw` passes the type through unchanged: no SOCK_CLOEXEC/SOCK_NONBLOCK bits, which
    // clknetsim does not understand. Both flags are set below with fcntl instead.
    let socket = Socket::new_raw(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_cloexec(true)?;
    if opts.nonblocking {
        socket.set_nonblocking(true)?;
    }
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() && opts.v6_only {
        socket.set_only_v6(true)?;
    }
    if opts.recv_pktinfo {
        enable_pktinfo(socket.as_fd(), addr.is_ipv6(), opts.v6_only)?;
    }
    if opts.dont_fragment && addr.is_ipv4() {
        // Best effort: without it replies are merely fragmentable, as before.
        let _ = setsockopt_int(
            socket.as_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        );
    }
    if opts.recv_buffer > 0 {
        let size = libc::c_int::try_from(opts.recv_buffer).unwrap_or(libc::c_int::MAX);
        // Best effort: the forced size needs CAP_NET_ADMIN, the plain one is capped.
        if setsockopt_int(socket.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
            let _ = setsockopt_int(socket.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, size);
        }
    }
    if opts.rx_timestamps {
        // Best effort by contract: without kernel stamps the caller reads the clock itself.
        let _ = setsockopt_int(
            socket.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            RX_TIMESTAMPING_FLAGS as libc::c_int,
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Whether the socket delivers kernel software receive timestamps, so that the daemon knows if
/// T2 comes from the kernel or must be read in user space (and can say so in its logs).
pub fn rx_timestamping_enabled(socket: &impl AsFd) -> bool {
    let mut flags: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `flags` and `len` are valid and writable, and `len` holds the size of `flags`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            (&raw mut flags).cast(),
            &mut len,
        )
    };
    rc == 0 && (flags as libc::c_uint) & libc::SOF_TIMESTAMPING_RX_SOFTWARE != 0
}

fn enable_pktinfo(fd: BorrowedFd<'_>, ipv6: bool, v6_only: bool) -> io::Result<()> {
    if !ipv6 {
        return setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1);
    }
    setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
    if !v6_only {
        // A dual-stack socket also receives IPv4 (as v4-mapped); their destination arrives as
        // IP_PKTINFO. Best effort: the IPv6 part already works.
        let _ = setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1);
    }
    Ok(())
}

fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a valid int for the duration of the call and the length matches it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}
