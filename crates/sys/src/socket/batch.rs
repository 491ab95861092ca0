//! Batched datagram reception for the server's hot path: `recvmmsg` into buffers that are
//! allocated once, so that serving a request allocates nothing. Replies go out one `sendmsg`
//! each ([`super::send_msg`]), right after their transmit timestamp is taken: a batch would
//! hold the first reply back while the others are built.
//!
//! The kernel-facing arrays (`mmsghdr`, `iovec`) hold raw pointers into the batch's own buffers.
//! They are rewritten from `&mut self` before every system call rather than kept from
//! construction, so no pointer ever outlives a borrow that Rust knows about.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::{fmt, ptr};

use super::cmsg::{self, CONTROL_LEN, CmsgBuf};
use super::msg::{RecvMeta, empty_msghdr};
use crate::{cvt, retry_eintr};

/// The kernel handles at most `UIO_MAXIOV` (1024) messages per `recvmmsg` call.
const MAX_BATCH: usize = 1024;

/// Up to N received datagrams with their metadata, refilled by each [`RecvBatch::recv_batch`].
pub struct RecvBatch {
    buf_size: usize,
    data: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    controls: Box<[CmsgBuf]>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    received: usize,
}

// SAFETY: the raw pointers inside `iovecs` and `headers` only ever point into this batch's own
// heap buffers and are rewritten before each use; nothing is shared with another thread, so
// moving the batch to a worker thread is sound.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Allocates room for `capacity` datagrams (clamped to 1..=1024) of up to `buf_size` bytes
    /// each (at least 1). Datagrams longer than `buf_size` are reported as truncated.
    ///
    /// # Panics
    /// If `capacity × buf_size` overflows `usize`.
    pub fn new(capacity: usize, buf_size: usize) -> Self {
        let (capacity, buf_size, data) = allocate(capacity, buf_size);
        Self {
            buf_size,
            data,
            names: vec![cmsg::empty_sockaddr(); capacity].into_boxed_slice(),
            controls: vec![CmsgBuf::new(); capacity].into_boxed_slice(),
            iovecs: vec![empty_iovec(); capacity].into_boxed_slice(),
            headers: vec![empty_mmsghdr(); capacity].into_boxed_slice(),
            received: 0,
        }
    }

    /// How many datagrams one call can receive.
    pub fn capacity(&self) -> usize {
        self.headers.len()
    }

    /// How many datagrams the last call received.
    pub fn len(&self) -> usize {
        self.received
    }

    /// Whether the last call received nothing (or no call was made yet).
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Receives up to [`capacity`](Self::capacity) datagrams in one `recvmmsg` call, replacing the
    /// previous contents, and returns how many arrived. With `MSG_WAITFORONE` a blocking socket
    /// waits for the first datagram and then takes only what is already queued; a non-blocking
    /// socket fails with [`io::ErrorKind::WouldBlock`] when nothing is queued.
    pub fn recv_batch(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        self.received = 0;
        let slots = self.data.chunks_exact_mut(self.buf_size);
        let meta = self.names.iter_mut().zip(self.controls.iter_mut());
        let kernel = self.iovecs.iter_mut().zip(self.headers.iter_mut());
        for ((buf, (name, control)), (iov, header)) in slots.zip(meta).zip(kernel) {
            *iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            header.msg_len = 0;
            header.msg_hdr.msg_name = ptr::from_mut(name).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = ptr::from_mut(iov);
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = CONTROL_LEN as _;
            header.msg_hdr.msg_flags = 0;
        }
        let fd = socket.as_fd().as_raw_fd();
        let headers = self.headers.as_mut_ptr();
        let count = self.headers.len() as libc::c_uint;
        let received = retry_eintr(|| {
            // SAFETY: `headers` points to `count` message headers whose pointers were just set
            // to this batch's live buffers with matching lengths; the kernel writes only within
            // them, and a null timeout means "none".
            cvt(unsafe {
                libc::recvmmsg(fd, headers, count, libc::MSG_WAITFORONE, ptr::null_mut())
            })
        })?;
        self.received = usize::try_from(received)
            .unwrap_or(0)
            .min(self.headers.len());
        Ok(self.received)
    }

    /// The bytes of datagram `index` of the last call.
    ///
    /// # Panics
    /// If `index >= self.len()`.
    pub fn data(&self, index: usize) -> &[u8] {
        assert!(
            index < self.received,
            "datagram {index} of {} received",
            self.received
        );
        let len = (self.headers[index].msg_len as usize).min(self.buf_size);
        let start = index * self.buf_size;
        &self.data[start..start + len]
    }

    /// The metadata of datagram `index` of the last call.
    ///
    /// # Panics
    /// If `index >= self.len()`.
    pub fn meta(&self, index: usize) -> RecvMeta {
        assert!(
            index < self.received,
            "datagram {index} of {} received",
            self.received
        );
        let header = &self.headers[index];
        let len = (header.msg_len as usize).min(self.buf_size);
        RecvMeta::decode(
            len,
            &header.msg_hdr,
            &self.names[index],
            &self.controls[index],
        )
    }

    /// Every datagram of the last call with its metadata, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], RecvMeta)> + '_ {
        (0..self.received).map(|i| (self.data(i), self.meta(i)))
    }
}

impl fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("buf_size", &self.buf_size)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// Clamps the batch dimensions and allocates the datagram area.
fn allocate(capacity: usize, buf_size: usize) -> (usize, usize, Box<[u8]>) {
    let capacity = capacity.clamp(1, MAX_BATCH);
    let buf_size = buf_size.max(1);
    let total = capacity
        .checked_mul(buf_size)
        .expect("batch size overflows usize");
    (capacity, buf_size, vec![0; total].into_boxed_slice())
}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }
}

fn empty_mmsghdr() -> libc::mmsghdr {
    libc::mmsghdr {
        msg_hdr: empty_msghdr(),
        msg_len: 0,
    }
}
