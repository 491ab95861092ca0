//! Byte-level helpers shared by single and batched I/O: control-message buffers (`cmsghdr`
//! walking and encoding) and conversion between `std::net` and `sockaddr` addresses.
//!
//! Parsing treats the control area as untrusted bytes: every header is bounds-checked before its
//! payload is read, so a malformed area ends the walk instead of reading out of bounds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::{mem, ptr};

use super::msg::PktInfo;
use crate::Timespec;

/// Room for the control messages a datagram can carry here: `IPV6_PKTINFO` (40 bytes on 64-bit),
/// `SCM_TIMESTAMPING` (64 bytes), `IP_PKTINFO` (32 bytes), with slack for any message the kernel
/// adds on its own.
pub(super) const CONTROL_LEN: usize = 256;

/// A control-message buffer aligned for `cmsghdr` (whose alignment is that of `size_t`).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(super) struct CmsgBuf(pub(super) [u8; CONTROL_LEN]);

impl CmsgBuf {
    pub(super) const fn new() -> Self {
        Self([0; CONTROL_LEN])
    }
}

/// `struct scm_timestamping` from `linux/errqueue.h` (libc has no definition): software stamp,
/// deprecated field, raw hardware stamp.
type ScmTimestamping = [libc::timespec; 3];

/// What the control messages of one received datagram said.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Control {
    pub(super) pktinfo: Option<PktInfo>,
    pub(super) rx_time: Option<Timespec>,
}

/// Walks the `len` valid bytes of a control area and picks out packet info and timestamps.
pub(super) fn parse_control(control: &[u8]) -> Control {
    let mut found = Control::default();
    let mut offset = 0;
    while let Some(header_bytes) = control.get(offset..offset + size_of::<libc::cmsghdr>()) {
        // SAFETY: `header_bytes` holds exactly size_of::<cmsghdr>() initialised bytes;
        // read_unaligned has no alignment requirement and cmsghdr is plain integers.
        let header: libc::cmsghdr = unsafe { ptr::read_unaligned(header_bytes.as_ptr().cast()) };
        let len = header.cmsg_len as usize;
        let end = offset.checked_add(len).filter(|_| len >= CMSG_HEADER_LEN);
        let Some(data) = end.and_then(|end| control.get(offset + CMSG_HEADER_LEN..end)) else {
            break;
        };
        match (header.cmsg_level, header.cmsg_type) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                if let Some(info) = read_payload::<libc::in_pktinfo>(data) {
                    found.pktinfo = Some(PktInfo {
                        addr: IpAddr::V4(ipv4_from(info.ipi_addr)),
                        ifindex: info.ipi_ifindex as u32,
                    });
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                if let Some(info) = read_payload::<libc::in6_pktinfo>(data) {
                    found.pktinfo = Some(PktInfo {
                        addr: IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)),
                        ifindex: info.ipi6_ifindex,
                    });
                }
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING) => {
                if let Some(stamps) = read_payload::<ScmTimestamping>(data) {
                    // An all-zero software stamp means "only a hardware stamp was taken".
                    let software = &stamps[0];
                    if software.tv_sec != 0 || software.tv_nsec != 0 {
                        found.rx_time = Timespec::from_libc(software);
                    }
                }
            }
            _ => {}
        }
        offset += cmsg_align(len);
    }
    found
}

/// Encodes `info` as the `IP_PKTINFO` / `IPV6_PKTINFO` message that makes `sendmsg` use it as the
/// source, and returns the control length to pass along.
///
/// For IPv4 only `ipi_spec_dst` (the source address) is set and routing chooses the interface; for
/// IPv6 the address and interface index are both given, as link-local addresses need the latter.
pub(super) fn encode_pktinfo(buf: &mut CmsgBuf, info: PktInfo) -> usize {
    match info.addr {
        IpAddr::V4(addr) => {
            // SAFETY: `in_pktinfo` is plain integers; all-zero is valid (index 0 = any).
            let mut pktinfo: libc::in_pktinfo = unsafe { mem::zeroed() };
            pktinfo.ipi_spec_dst = in_addr_from(addr);
            write_cmsg(buf, libc::IPPROTO_IP, libc::IP_PKTINFO, pktinfo)
        }
        IpAddr::V6(addr) => {
            let pktinfo = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: addr.octets(),
                },
                ipi6_ifindex: info.ifindex,
            };
            write_cmsg(buf, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, pktinfo)
        }
    }
}

/// Writes `addr` as a `sockaddr_in`/`sockaddr_in6` into `storage` and returns its length.
pub(super) fn write_sockaddr(
    addr: SocketAddr,
    storage: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: `sockaddr_in` is plain data; all-zero is valid and zeroes `sin_zero`.
            let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = in_addr_from(*v4.ip());
            // SAFETY: sockaddr_storage is larger than and at least as aligned as sockaddr_in,
            // which is how the sockets API is meant to be used.
            unsafe { ptr::write(ptr::from_mut(storage).cast(), sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: `sockaddr_in6` is plain data; all-zero is a valid value.
            let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_scope_id = v6.scope_id();
            // SAFETY: as above, for sockaddr_in6.
            unsafe { ptr::write(ptr::from_mut(storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads the address the kernel wrote into `storage` (`len` bytes valid); `None` for a family
/// other than IPv4/IPv6 or a short length.
pub(super) fn read_sockaddr(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, the length covers it,
            // and sockaddr_storage is suitably aligned for it.
            let sin = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                ipv4_from(sin.sin_addr),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// An all-zero `sockaddr_storage`, the starting state of every name buffer.
pub(super) fn empty_sockaddr() -> libc::sockaddr_storage {
    // SAFETY: `sockaddr_storage` is plain data; all-zero is a valid (AF_UNSPEC) value.
    unsafe { mem::zeroed() }
}

/// `CMSG_ALIGN`: glibc aligns control messages to `size_t`.
pub(super) const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// `CMSG_LEN(0)`: the aligned header that precedes every payload.
const CMSG_HEADER_LEN: usize = cmsg_align(size_of::<libc::cmsghdr>());

/// `CMSG_SPACE(len)`: header plus payload plus trailing padding.
pub(super) const fn cmsg_space(len: usize) -> usize {
    CMSG_HEADER_LEN + cmsg_align(len)
}

fn write_cmsg<T: Copy>(buf: &mut CmsgBuf, level: libc::c_int, ty: libc::c_int, value: T) -> usize {
    const { assert!(cmsg_space(size_of::<T>()) <= CONTROL_LEN) };
    // SAFETY: `cmsghdr` is plain integers; all-zero is a valid value (and clears any padding).
    let mut header: libc::cmsghdr = unsafe { mem::zeroed() };
    header.cmsg_len = (CMSG_HEADER_LEN + size_of::<T>()) as _;
    header.cmsg_level = level;
    header.cmsg_type = ty;
    let base = buf.0.as_mut_ptr();
    // SAFETY: the const assertion above guarantees that header and payload fit in the buffer;
    // write_unaligned has no alignment requirement.
    unsafe {
        ptr::write_unaligned(base.cast(), header);
        ptr::write_unaligned(base.add(CMSG_HEADER_LEN).cast(), value);
    }
    cmsg_space(size_of::<T>())
}

fn read_payload<T: Copy>(data: &[u8]) -> Option<T> {
    let bytes = data.get(..size_of::<T>())?;
    // SAFETY: `bytes` holds size_of::<T>() initialised bytes, T is a plain C struct for which
    // any bit pattern is valid, and read_unaligned has no alignment requirement.
    Some(unsafe { ptr::read_unaligned(bytes.as_ptr().cast()) })
}

fn ipv4_from(addr: libc::in_addr) -> Ipv4Addr {
    Ipv4Addr::from(addr.s_addr.to_ne_bytes())
}

fn in_addr_from(addr: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from_ne_bytes(addr.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_the_c_macros() {
        for len in [0usize, 1, 12, 20, 48] {
            // SAFETY: CMSG_LEN/CMSG_SPACE are pure arithmetic on their argument.
            let (c_len, c_space) =
                unsafe { (libc::CMSG_LEN(len as u32), libc::CMSG_SPACE(len as u32)) };
            assert_eq!(CMSG_HEADER_LEN + len, c_len as usize);
            assert_eq!(cmsg_space(len), c_space as usize);
        }
    }

    #[test]
    fn encoded_pktinfo_parses_back() {
        let v6 = PktInfo {
            addr: "fe80::1".parse().expect("literal"),
            ifindex: 7,
        };
        let mut buf = CmsgBuf::new();
        let len = encode_pktinfo(&mut buf, v6);
        assert_eq!(
            parse_control(&buf.0[..len]),
            Control {
                pktinfo: Some(v6),
                rx_time: None
            }
        );
    }

    #[test]
    fn malformed_control_area_is_ignored_without_panicking() {
        let mut buf = CmsgBuf::new();
        let len = encode_pktinfo(
            &mut buf,
            PktInfo {
                addr: "::1".parse().expect("literal"),
                ifindex: 1,
            },
        );
        for cut in 0..len {
            let _ = parse_control(&buf.0[..cut]);
        }
        // A header claiming to be longer than the area, and one claiming zero length.
        for bogus in [usize::MAX, 0, 1] {
            buf.0[..size_of::<usize>()].copy_from_slice(&bogus.to_ne_bytes());
            assert_eq!(parse_control(&buf.0[..len]).pktinfo, None);
        }
    }

    #[test]
    fn sockaddr_round_trips() {
        for text in ["127.0.0.2:123", "[::1]:4460", "[fe80::1%3]:9"] {
            let addr: SocketAddr = text.parse().expect("literal");
            let mut storage = empty_sockaddr();
            let len = write_sockaddr(addr, &mut storage);
            assert_eq!(read_sockaddr(&storage, len), Some(addr));
            assert_eq!(read_sockaddr(&storage, len - 1), None);
        }
        assert_eq!(read_sockaddr(&empty_sockaddr(), 128), None);
    }
}
