//! Signals as readable bytes (the self-pipe trick): `SIGTERM`/`SIGINT` stop the daemon, `SIGHUP`
//! reopens log files, and the event loop learns of them by polling a file descriptor.
//!
//! The handler does the only things that are async-signal-safe here: it loads the pipe's write
//! end from an atomic and `write`s one byte (the signal number), preserving `errno`. Everything
//! else happens in the event loop, which registers [`SignalPipe::read_fd`] (with mio:
//! `mio::unix::SourceFd(&fd)`) and calls [`SignalPipe::drain`] when it is readable.
//!
//! Only one `SignalPipe` can exist per process, because a signal disposition is process-wide.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::{fmt, io, mem, ptr};

use crate::{cvt, cvt_size, retry_eintr};

/// The write end of the installed pipe, or -1; read by the signal handler.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// Installed signal handlers feeding a non-blocking pipe. Dropping it restores the previous
/// dispositions and closes the pipe.
pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalPipe {
    /// Creates the pipe and installs the handler for each of `signals` (e.g. `SIGTERM`, `SIGINT`,
    /// `SIGHUP`), with `SA_RESTART` so that blocking calls in other code are not interrupted.
    /// Fails with [`io::ErrorKind::AlreadyExists`] while another `SignalPipe` is alive.
    pub fn install(signals: &[libc::c_int]) -> io::Result<Self> {
        let (read, write) = nonblocking_pipe()?;
        WRITE_FD
            .compare_exchange(-1, write.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst)
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a SignalPipe is already installed",
                )
            })?;
        // From here on, dropping `pipe` undoes whatever was installed so far.
        let mut pipe = Self {
            read,
            write,
            previous: Vec::with_capacity(signals.len()),
        };
        for &signal in signals {
            // SAFETY: `sigaction` is plain data; all-zero is a valid value (empty mask, no flags).
            let mut action: libc::sigaction = unsafe { mem::zeroed() };
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: as above.
            let mut old: libc::sigaction = unsafe { mem::zeroed() };
            // SAFETY: both pointers refer to valid sigaction values; the handler is an
            // `extern "C" fn(c_int)` that only performs async-signal-safe operations.
            cvt(unsafe { libc::sigaction(signal, &action, &mut old) })?;
            pipe.previous.push((signal, old));
        }
        Ok(pipe)
    }

    /// The descriptor to poll for readability; it stays owned by the `SignalPipe`.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The signals received since the last call, oldest first (repeats included). Reads the pipe
    /// until it is empty; never blocks.
    pub fn drain(&self) -> Drain<'_> {
        Drain {
            fd: self.read.as_fd(),
            buf: [0; 64],
            pos: 0,
            len: 0,
        }
    }
}

impl AsFd for SignalPipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for (signal, old) in self.previous.drain(..).rev() {
            // SAFETY: `old` is the disposition the kernel reported when we installed ours.
            unsafe { libc::sigaction(signal, &old, ptr::null_mut()) };
        }
        // Stop the handler from using the descriptor before it is closed (when the fields drop).
        let _ = WRITE_FD.compare_exchange(
            self.write.as_raw_fd(),
            -1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

impl fmt::Debug for SignalPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signals: Vec<_> = self.previous.iter().map(|(signal, _)| signal).collect();
        f.debug_struct("SignalPipe")
            .field("read_fd", &self.read_fd())
            .field("signals", &signals)
            .finish()
    }
}

/// Iterator over received signal numbers, returned by [`SignalPipe::drain`].
#[derive(Debug)]
pub struct Drain<'a> {
    fd: BorrowedFd<'a>,
    buf: [u8; 64],
    pos: usize,
    len: usize,
}

impl Iterator for Drain<'_> {
    type Item = libc::c_int;

    fn next(&mut self) -> Option<libc::c_int> {
        if self.pos == self.len {
            let fd = self.fd.as_raw_fd();
            let buf = &mut self.buf;
            let read = retry_eintr(|| {
                // SAFETY: `buf` is valid and writable for its whole length.
                cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
            });
            // End of data: empty pipe (EAGAIN) or any error; the next poll will tell again.
            self.len = read.ok().filter(|&n| n > 0)?;
            self.pos = 0;
        }
        let signal = self.buf.get(self.pos).copied()?;
        self.pos += 1;
        Some(libc::c_int::from(signal))
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the thread's
    // lifetime; saving and restoring it keeps the interrupted code's errno intact.
    let errno = unsafe { *libc::__errno_location() };
    let fd = WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe and `byte` is valid for one byte. A full pipe
        // (EAGAIN) loses only a repeat of a signal that is already waiting to be read.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// A pipe whose ends are non-blocking and close-on-exec, set with fcntl after a plain `pipe`
/// like the sockets (simulators follow plain calls most easily).
fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    // SAFETY: pipe(2) succeeded, so both descriptors are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read, &write] {
        let fd = fd.as_raw_fd();
        // SAFETY: fcntl with F_GETFL/F_SETFL/F_SETFD and integer arguments on an open descriptor.
        unsafe {
            let flags = cvt(libc::fcntl(fd, libc::F_GETFL))?;
            cvt(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
            cvt(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
        }
    }
    Ok((read, write))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_handler(signal: libc::c_int) -> libc::sighandler_t {
        // SAFETY: all-zero is a valid sigaction; a null `act` only queries.
        let mut current: libc::sigaction = unsafe { mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigaction(signal, ptr::null(), &mut current) };
        current.sa_sigaction
    }

    /// One test, because the pipe is process-wide and tests run in parallel threads.
    #[test]
    fn raised_signals_arrive_in_order_and_drop_restores_the_defaults() {
        let pipe = SignalPipe::install(&[libc::SIGUSR1, libc::SIGUSR2]).expect("install");
        let err = SignalPipe::install(&[libc::SIGUSR1]).expect_err("second pipe");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(pipe.drain().count(), 0);

        for signal in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGUSR1] {
            // SAFETY: raise only sends a signal to this thread; our handler is installed.
            assert_eq!(unsafe { libc::raise(signal) }, 0);
        }
        let mut poll = libc::pollfd {
            fd: pipe.read_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        assert_eq!(ready, 1, "pipe readable after raise");
        let received: Vec<_> = pipe.drain().collect();
        assert_eq!(received, [libc::SIGUSR1, libc::SIGUSR2, libc::SIGUSR1]);
        assert_eq!(pipe.drain().next(), None);

        drop(pipe);
        assert_eq!(current_handler(libc::SIGUSR1), libc::SIG_DFL);
        assert_eq!(current_handler(libc::SIGUSR2), libc::SIG_DFL);
        let again = SignalPipe::install(&[libc::SIGUSR2]).expect("install after drop");
        drop(again);
    }
}
