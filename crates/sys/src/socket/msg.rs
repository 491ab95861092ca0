//! One datagram at a time with `recvmsg`/`sendmsg`: the path for client sockets and for a server
//! that is not busy enough to batch.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::{mem, ptr};

use super::cmsg::{self, CONTROL_LEN, CmsgBuf};
use crate::{Timespec, cvt_size, retry_eintr};

/// A local address and interface, as `IP_PKTINFO`/`IPV6_PKTINFO` report them on receipt and take
/// them on sending: received as [`RecvMeta::dst`], it is passed back unchanged to [`send_msg`]
/// so that the reply leaves from the address the client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PktInfo {
    /// The destination address in the request's IP header (on sending: the source address).
    pub addr: IpAddr,
    /// The interface the request arrived on (`if_nametoindex` numbering).
    pub ifindex: u32,
}

/// Everything the kernel told us about one received datagram besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes stored in the buffer (at most its length).
    pub len: usize,
    /// The datagram was longer than the buffer and was cut (`MSG_TRUNC`); NTP drops such input.
    pub truncated: bool,
    /// The sender. An address of a family other than IPv4/IPv6, which UDP never produces, is
    /// reported as `0.0.0.0:0` so that the core's "source port 0" rule drops it.
    pub source: SocketAddr,
    /// Destination address and arrival interface, if the socket has `recv_pktinfo`.
    pub dst: Option<PktInfo>,
    /// The kernel's software receive timestamp (T2), if the socket has `rx_timestamps`. Can be
    /// missing even then, e.g. for the first datagrams after the first timestamping socket of the
    /// system was created (the kernel switches stamping on asynchronously): read the clock then.
    pub rx_time: Option<Timespec>,
}

impl RecvMeta {
    /// Assembles the metadata from what `recvmsg`/`recvmmsg` wrote into one message header.
    pub(super) fn decode(
        len: usize,
        header: &libc::msghdr,
        name: &libc::sockaddr_storage,
        control: &CmsgBuf,
    ) -> Self {
        let control_len = header.msg_controllen.min(CONTROL_LEN);
        let found = cmsg::parse_control(&control.0[..control_len]);
        Self {
            len,
            truncated: header.msg_flags & libc::MSG_TRUNC != 0,
            source: cmsg::read_sockaddr(name, header.msg_namelen)
                .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
            dst: found.pktinfo,
            rx_time: found.rx_time,
        }
    }
}

/// Receives one datagram into `buf` with its metadata. On a non-blocking socket with nothing
/// queued this fails with [`io::ErrorKind::WouldBlock`]; `EINTR` is retried.
pub fn recv_msg(socket: &impl AsFd, buf: &mut [u8]) -> io::Result<RecvMeta> {
    let fd = socket.as_fd().as_raw_fd();
    let mut name = cmsg::empty_sockaddr();
    let mut control = CmsgBuf::new();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut header = empty_msghdr();
    header.msg_name = ptr::from_mut(&mut name).cast();
    header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    header.msg_iov = &raw mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.0.as_mut_ptr().cast();
    header.msg_controllen = CONTROL_LEN as _;
    let len = retry_eintr(|| {
        // SAFETY: every pointer in `header` refers to a live local (`name`, `iov`, `control`) or
        // to `buf`, with the lengths set to their sizes; the kernel writes only within them.
        cvt_size(unsafe { libc::recvmsg(fd, &mut header, 0) })
    })?;
    Ok(RecvMeta::decode(len, &header, &name, &control))
}

/// Sends `buf` to `dst`. With `src`, the datagram leaves from that address (and, for IPv6, that
/// interface) even on a wildcard socket; pass the request's [`RecvMeta::dst`]. Returns the bytes
/// sent; `EINTR` is retried.
pub fn send_msg(
    socket: &impl AsFd,
    buf: &[u8],
    dst: SocketAddr,
    src: Option<PktInfo>,
) -> io::Result<usize> {
    let fd = socket.as_fd().as_raw_fd();
    let mut name = cmsg::empty_sockaddr();
    let name_len = cmsg::write_sockaddr(dst, &mut name);
    let mut control = CmsgBuf::new();
    let control_len = src.map_or(0, |info| cmsg::encode_pktinfo(&mut control, info));
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: buf.len(),
    };
    let mut header = empty_msghdr();
    header.msg_name = ptr::from_mut(&mut name).cast();
    header.msg_namelen = name_len;
    header.msg_iov = &raw mut iov;
    header.msg_iovlen = 1;
    if control_len > 0 {
        header.msg_control = control.0.as_mut_ptr().cast();
        header.msg_controllen = control_len as _;
    }
    retry_eintr(|| {
        // SAFETY: every pointer in `header` refers to a live local or to `buf`, with matching
        // lengths; sendmsg only reads through them (the `*mut` of iov_base is the C API's).
        cvt_size(unsafe { sendmsg(fd, &header) })
    })
}

/// `sendmsg(2)` without the C library's cancellation point.
///
/// glibc's `sendmsg` is a thread cancellation point: in a process with more than one thread it
/// makes the thread asynchronously cancellable for the duration of the call and back, two
/// atomic read-modify-writes of the thread's state around every reply — 1.3 % of the server's
/// CPU per request at 200 000 requests/s (docs/BENCHMARKS.md). sundial never cancels a thread,
/// so it enters the kernel directly. Simulator builds keep the C library's function, which is
/// what clknetsim intercepts.
///
/// # Safety
///
/// As for `sendmsg(2)`: every pointer in `header` must be valid for the lengths it gives.
unsafe fn sendmsg(fd: libc::c_int, header: &libc::msghdr) -> isize {
    if crate::SIMULATOR_BUILD {
        // SAFETY: the caller's promise.
        unsafe { libc::sendmsg(fd, header, 0) }
    } else {
        // SAFETY: the caller's promise; the arguments are sendmsg's, in its order and types
        // (the descriptor, the message header, the flags), each passed as a machine word.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sendmsg,
                libc::c_long::from(fd),
                ptr::from_ref(header),
                libc::c_long::from(0),
            )
        };
        // A system call returns at most the length it was given, which fits in an isize.
        isize::try_from(rc).unwrap_or(-1)
    }
}

/// An all-zero `msghdr`: null pointers and zero lengths, filled in by the caller.
pub(super) fn empty_msghdr() -> libc::msghdr {
    // SAFETY: `msghdr` is plain data (integers and raw pointers); all-zero is a valid value and
    // clears the private padding some C libraries have.
    unsafe { mem::zeroed() }
}
