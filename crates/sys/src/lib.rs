//! The one crate of sundial that talks to the kernel.
//!
//! # Contract
//!
//! * **All `unsafe` code of sundial lives here** (every other crate is
//!   `#![forbid(unsafe_code)]`). Each `unsafe` block carries a `// SAFETY:` comment, and each
//!   public function is safe to call: misuse shows up as an [`std::io::Error`], never as undefined
//!   behaviour.
//! * **Every kernel call goes through glibc** (the `libc` crate, plus `socket2` which itself calls
//!   glibc), never a raw `syscall()` where a glibc wrapper exists. An LD_PRELOAD clock and network
//!   simulator such as clknetsim replaces exactly those glibc symbols, so a daemon built on this
//!   crate runs unmodified in simulated time. The only raw system call is `capset` (no glibc
//!   wrapper), which simulators have no reason to intercept. For the same reason sockets are
//!   created with a plain `SOCK_DGRAM` type and made non-blocking and close-on-exec afterwards with
//!   `fcntl`, kernel receive timestamps use `SO_TIMESTAMPING` (not `SO_TIMESTAMPNS`), and
//!   replies go out with `sendmsg` (simulators have no `sendmmsg`).
//! * Nothing here decides policy: the daemon chooses what to bind, when to step the clock and whom
//!   to run as; this crate only performs the request faithfully and reports what the kernel said.
//! * The server's per-request path ([`socket::RecvBatch`], [`socket::recv_msg`],
//!   [`socket::send_msg`]) allocates nothing once its buffers exist.
//!
//! # Modules
//!
//! | module | what it gives the daemon |
//! |---|---|
//! | [`socket`] | UDP sockets with `IP_PKTINFO`, kernel RX timestamps, `recvmmsg` |
//! | [`clock`] | `clock_gettime`, read-only `clock_adjtime`, and the writers for a disciplined clock |
//! | [`fs`] | files opened relative to a directory handle, never through a symbolic link |
//! | [`privileges`] | dropping root while keeping `CAP_SYS_TIME` |
//! | [`signals`] | a self-pipe that turns `SIGTERM`/`SIGINT`/`SIGHUP` into readable bytes |
//! | [`syslog`] | classic syslog output, as ntpd logs by default |
//! | [`process`] | daemonizing, interface addresses, niceness, CPU time |
//! | [`pps`] | pulse per second: `/dev/ppsN` and `PPS_FETCH` (RFC 2783) behind a trait |
//! | [`shm`] | the NTP shared-memory segment of reference clocks (System V `shmget`/`shmat`) |
//!
//! # Use
//!
//! A server thread, in outline (every thread reads the same socket):
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use sundial_sys::socket::{bind_udp, send_msg, RecvBatch, SocketOptions};
//!
//! # fn main() -> std::io::Result<()> {
//! let opts = SocketOptions {
//!     recv_pktinfo: true,
//!     rx_timestamps: true,
//!     ..SocketOptions::default()
//! };
//! let socket = bind_udp(SocketAddr::from(([0, 0, 0, 0], 123)), &opts)?;
//! let mut rx = RecvBatch::new(32, 1024);
//! loop {
//!     let n = rx.recv_batch(&socket)?; // blocks for the first message, then takes what is queued
//!     for i in 0..n {
//!         let meta = rx.meta(i);
//!         let request = rx.data(i);
//!         // ... let the core build a reply from `request` and `meta.rx_time` ...
//!         send_msg(&socket, request, meta.source, meta.dst)?;
//!     }
//! }
//! # }
//! ```
//!
//! Privileged set-up happens once, in the main thread, before any other thread exists: bind
//! sockets, [`process::daemonize`], [`privileges::drop_privileges`], then
//! [`signals::SignalPipe::install`] and the event loop.

#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!("sundial-sys supports Linux (glibc) only");

pub mod clock;
pub mod fs;
pub mod memory;
pub mod pps;
pub mod privileges;
pub mod process;
pub mod shm;
pub mod signals;
pub mod socket;
pub mod syslog;

pub use clock::Timespec;

/// Whether this binary was built to run under an LD_PRELOAD clock and network simulator such as
/// clknetsim (`RUSTFLAGS="--cfg mio_unsupported_force_poll_poll"`, see `docs/CLKNETSIM.md`). The
/// simulator stands in for the kernel by replacing the C library's functions, so such builds
/// call those functions where others make the system call directly; mio then polls with
/// poll(2).
pub const SIMULATOR_BUILD: bool = cfg!(mio_unsupported_force_poll_poll);

use std::io;

/// Turns a C return value of -1 into the current `errno` as an [`io::Error`].
pub(crate) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// [`cvt`] for the `ssize_t` results of `read`, `recvmsg` and friends.
pub(crate) fn cvt_size(rc: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// Runs a system call again while it fails with `EINTR`: our signal handlers only write to a pipe,
/// so an interrupted call has nothing to report and should simply continue.
pub(crate) fn retry_eintr<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
