//! `ntpd`: start-up, the main loop, and shutdown.
//!
//! Start-up order matters: parse and check the configuration, set up logging, detach, open
//! every socket, drop privileges — and only then start threads, because capabilities are per
//! thread. The main loop owns the signal pipe and the timers, keeps the published system state
//! current, and (with one server thread) answers requests itself.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use sundial_proto::counters::{CounterSnapshot, DropReason, ServerCounters};
use sundial_proto::server::Server;
use sundial_proto::system::SystemState;
use sundial_proto::time::{MonoTime, NtpDuration};
use sundial_sys::signals::SignalPipe;

use crate::associations::{Associations, TOKEN_BASE};
use crate::cli::NtpdArgs;
use crate::clock::{ClockSpec, TimeMapping, kernel_now, measure_precision};
use crate::config::{self, Config, Family, Finding, Severity};
use crate::daemonize::{self, Startup};
use crate::instance::{self, InstanceLock};
use crate::interfaces::LiveFilter;
use crate::keys::{self, TrustedKeys};
use crate::logging::{self, Destination};
use crate::notify::{self, Notifier};
use crate::publish::{Publisher, Snapshot};
use crate::random::Random;
use crate::resolver::Resolver;
use crate::safefile::{self, Ownership};
use crate::serve::main_loop::MainLoopServer;
use crate::serve::{Families, ServeSocket, open_sockets, threads};
use crate::setup;
use crate::timekeeper::{Timekeeper, Verdict};

/// How often the main loop refreshes the published state (the fallback's reference time).
const TICK: Duration = Duration::from_secs(1);

/// Whether this binary was built to run under a simulator such as clknetsim
/// ([`sundial_sys::SIMULATOR_BUILD`]). mio then polls with poll(2), which disarms a raw
/// descriptor after each event until it is registered again.
const SIMULATOR_BUILD: bool = sundial_sys::SIMULATOR_BUILD;

const SIGNAL_TOKEN: Token = Token(0);
const WAKE_TOKEN: Token = Token(1);
const FIRST_SOCKET_TOKEN: usize = 2;

/// Entry point of the `ntpd` binary.
pub fn main() -> ExitCode {
    let args = NtpdArgs::parse();
    if args.check {
        return check(&args.config);
    }
    let mut startup = Startup::from_env();
    match run(args, &mut startup) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ntpd: {e}");
            startup.failed(&e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// `ntpd --check`: print every finding; fail if any is an error.
fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok((config, mut findings)) => {
            findings.extend(keys::load_trusted(&config).1);
            for f in &findings {
                println!("{f}");
            }
            let errors = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            println!(
                "{}: {} error(s), {} warning(s), {} notice(s)",
                path.display(),
                errors,
                findings
                    .iter()
                    .filter(|f| f.severity == Severity::Warning)
                    .count(),
                findings
                    .iter()
                    .filter(|f| f.severity == Severity::Notice)
                    .count(),
            );
            if errors > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("ntpd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors that stop the daemon.
#[derive(Debug)]
enum StartError {
    Config(config::LoadError),
    Log(PathBuf, io::Error),
    Bind(u16, io::Error),
    Io(&'static str, io::Error),
    /// Another sundial ntpd serves the same port.
    Instance(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Log(p, e) => write!(f, "cannot open log file {}: {e}", p.display()),
            Self::Bind(port, e) => write!(f, "{}", instance::describe_bind_error(*port, e)),
            Self::Instance(message) => write!(f, "{message}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

/// Runs the daemon; the exit status on a clean stop (non-zero after a panic-threshold stop).
fn run(args: NtpdArgs, startup: &mut Startup) -> Result<u8, StartError> {
    let (config, findings) = config::load(&args.config).map_err(StartError::Config)?;
    let logfile = args.logfile.clone().or_else(|| config.logfile.clone());
    let destination = match (&logfile, args.nofork || args.debug_level() > 0) {
        (Some(path), _) => Destination::File(path),
        (None, true) => Destination::Stderr,
        (None, false) => Destination::Syslog,
    };
    logging::init(destination, args.debug_level())
        .map_err(|e| StartError::Log(logfile.clone().unwrap_or_default(), e))?;
    log_findings(&findings);
    tracing::info!(
        "sundial ntpd {} starting: config {}, clock {}",
        env!("CARGO_PKG_VERSION"),
        args.config.display(),
        args.clock
    );
    note_ignored_flags(&args);

    let mut random = Random::open().map_err(|e| StartError::Io("cannot open /dev/urandom", e))?;
    let runtime = setup::Runtime::from_config(&config, &args, &mut random);
    if !args.foreground() {
        startup
            .detach()
            .map_err(|e| StartError::Io("cannot detach", e))?;
    }
    let pidfile = args.pidfile.clone().or_else(|| config.pidfile.clone());
    if let Some(path) = &pidfile {
        write_pidfile(path).map_err(|e| StartError::Io("cannot write pid file", e))?;
    }
    if args.nice {
        if let Err(e) = sundial_sys::process::set_nice(-12) {
            tracing::warn!("-N: cannot raise the scheduling priority: {e}");
        }
    }
    let (keys, key_findings) = keys::load_trusted(&config);
    log_findings(&key_findings);
    let result = serve(&args, config, runtime, random, startup, Arc::new(keys));
    if let Some(path) = &pidfile {
        remove_pidfile(path);
    }
    result
}

/// Runs the daemon: start-up, the main loop, shutdown.
fn serve(
    args: &NtpdArgs,
    config: Config,
    runtime: setup::Runtime,
    random: Random,
    startup: &mut Startup,
    keys: Arc<TrustedKeys>,
) -> Result<u8, StartError> {
    let mut daemon = start(args, config, runtime, keys)?;
    startup.ready(&notify::status_line(&daemon.publisher.current().control));
    let result = main_loop(args, &mut daemon, random, startup);
    startup.notifier().send("STOPPING=1");
    shutdown(daemon);
    result
}

/// What the main loop owns while ntpd runs.
struct Daemon {
    started: Instant,
    /// The configuration in force (a reload replaces it).
    config: Config,
    runtime: setup::Runtime,
    /// Held while ntpd runs: one daemon per port.
    _instance: Option<InstanceLock>,
    poll: Poll,
    signals: SignalPipe,
    publisher: Arc<Publisher>,
    /// The interface rules every server thread reads (a reload replaces them).
    live_filter: LiveFilter,
    /// Tells the server threads to stop.
    stop: Arc<AtomicBool>,
    workers: Vec<(JoinHandle<()>, Arc<Waker>)>,
    counters: Vec<Arc<ServerCounters>>,
    /// With one server thread, the main loop serves.
    local: Option<MainLoopServer>,
    associations: Associations,
    timekeeper: Timekeeper,
}

/// Opens every socket, drops privileges, starts the server threads and the resolver, and
/// mobilises the associations.
fn start(
    args: &NtpdArgs,
    config: Config,
    runtime: setup::Runtime,
    keys: Arc<TrustedKeys>,
) -> Result<Daemon, StartError> {
    let precision = measure_precision();
    let started = Instant::now();
    let mapping = initial_mapping(args.clock);
    let publisher = Publisher::new(Snapshot {
        system: SystemState::unsynchronized(precision),
        mapping,
        control: Arc::default(),
        access: Arc::new(runtime.access.clone()),
        keys: Arc::clone(&keys),
        nts: None,
    });
    let families = Families {
        v4: !args.ipv6,
        v6: !args.ipv4,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let workers = threads.max(1);
    // Port 0 (tests only) means a fresh port every time: nothing to exclude.
    // A simulator node is alone on its simulated host, and LD_PRELOAD simulators such as
    // clknetsim refuse Unix sockets (EINVAL), which would stop ntpd before it binds anything.
    let instance = if args.port == 0 || SIMULATOR_BUILD {
        None
    } else {
        Some(InstanceLock::acquire(args.port).map_err(StartError::Instance)?)
    };
    // One socket per family, whatever the thread count: every server thread reads the same
    // sockets (see `serve::threads` for why they do not each get their own).
    let sockets = open_sockets(families, args.port).map_err(|e| StartError::Bind(args.port, e))?;
    let metrics = match args.metrics.or(config.metrics) {
        Some(addr) => Some((
            addr,
            crate::metrics::http::bind(addr)
                .map_err(|e| StartError::Io("cannot bind the metrics port", e))?,
        )),
        None => None,
    };
    // Before privileges are dropped: the certificate, key and cookie key files may be root's.
    let live_filter = LiveFilter::new(runtime.filter.clone());
    crate::nts::start_server(&config.nts, args.port, &publisher, &live_filter);
    if let Some(spec) = &args.user {
        let (user, group) = spec
            .split_once(':')
            .map_or((spec.as_str(), None), |(u, g)| (u, Some(g)));
        if daemonize::already_running_as(user, group)
            .map_err(|e| StartError::Io("cannot drop privileges", e))?
        {
            // The service manager's ambient capabilities served to bind port 123; keep only
            // what the running daemon needs, as drop_privileges does. A sandbox that forbids
            // capset leaves them as the unit's bounding set allows: say so, but serve.
            if let Err(e) =
                sundial_sys::privileges::reduce_capabilities(args.clock.writes_kernel_clock())
            {
                tracing::warn!("cannot drop the capabilities the service manager granted: {e}");
            }
            tracing::info!("already running as {spec} (started so by the service manager)");
        } else {
            sundial_sys::privileges::drop_privileges(user, group, args.clock.writes_kernel_clock())
                .map_err(|e| StartError::Io("cannot drop privileges", e))?;
            tracing::info!("running as {spec}");
        }
    }
    if let Some((addr, listener)) = metrics {
        let info = crate::metrics::render::ProcessInfo {
            start_time: std::time::SystemTime::now(),
            client_table: Some(Arc::clone(&runtime.limiter)),
        };
        crate::metrics::http::spawn(listener, Arc::clone(&publisher), info)
            .map_err(|e| StartError::Io("cannot start the metrics thread", e))?;
        tracing::info!("serving Prometheus metrics on http://{addr}/metrics");
    }
    let signals = SignalPipe::install(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
        .map_err(|e| StartError::Io("cannot install signal handlers", e))?;
    let poll = Poll::new().map_err(|e| StartError::Io("cannot create poller", e))?;
    poll.registry()
        .register(
            &mut SourceFd(&signals.read_fd()),
            SIGNAL_TOKEN,
            Interest::READABLE,
        )
        .map_err(|e| StartError::Io("cannot poll signals", e))?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<(JoinHandle<()>, Arc<Waker>)> = Vec::new();
    let mut counters: Vec<Arc<ServerCounters>> = Vec::new();
    let mut local: Option<MainLoopServer> = None;
    if workers == 1 {
        let sockets: Vec<ServeSocket> = sockets.into_iter().map(ServeSocket::new).collect();
        let server = runtime.server(0);
        counters.push(server.counters_handle());
        local = Some(
            MainLoopServer::new(server, sockets, poll.registry(), FIRST_SOCKET_TOKEN)
                .map_err(|e| StartError::Io("cannot poll server socket", e))?,
        );
    } else {
        let servers: Vec<Server> = (0..workers).map(|n| runtime.server(n)).collect();
        counters.extend(servers.iter().map(Server::counters_handle));
        let shared = threads::Shared {
            filter: live_filter.clone(),
            publisher: Arc::clone(&publisher),
            stop: Arc::clone(&stop),
            origin: started,
        };
        handles = threads::start(sockets, servers, &shared)
            .map_err(|e| StartError::Io("cannot start server thread", e))?;
    }
    tracing::info!(
        "serving NTP on UDP port {} ({}) with {} thread(s), precision 2^{} s",
        args.port,
        match (families.v4, families.v6) {
            (true, true) => "IPv4 and IPv6",
            (true, false) => "IPv4",
            _ => "IPv6",
        },
        workers,
        precision.exponent()
    );
    let waker = Arc::new(
        Waker::new(poll.registry(), WAKE_TOKEN)
            .map_err(|e| StartError::Io("cannot create waker", e))?,
    );
    let resolver =
        Resolver::start(waker).map_err(|e| StartError::Io("cannot start the resolver", e))?;
    let family = match families {
        Families {
            v4: true,
            v6: false,
        } => Some(Family::V4),
        Families {
            v4: false,
            v6: true,
        } => Some(Family::V6),
        _ => None,
    };
    let now = mono(started);
    let mut timekeeper = Timekeeper::new(&config, args, &runtime, precision, mapping, now);
    let mut associations = Associations::new(
        &config,
        &args.servers,
        family,
        resolver,
        timekeeper.system_mut(),
        now,
    );
    associations.set_keys(keys);
    timekeeper.reserve_local_clock_id(&mut associations);
    Ok(Daemon {
        started,
        config,
        runtime,
        _instance: instance,
        poll,
        signals,
        publisher,
        live_filter,
        stop,
        workers: handles,
        counters,
        local,
        associations,
        timekeeper,
    })
}

/// The main loop: polls, replies, the discipline's timer, requests (with one server thread),
/// signals (stop, reload) and name lookups, until a signal or the system process says stop.
/// Returns the exit status.
fn main_loop(
    args: &NtpdArgs,
    d: &mut Daemon,
    mut random: Random,
    startup: &mut Startup,
) -> Result<u8, StartError> {
    let started = d.started;
    let mut reader = d.publisher.reader();
    let mut filter = d.live_filter.reader();
    let mut events = Events::with_capacity(64);
    let mut next_tick = Instant::now();
    loop {
        let now = Instant::now();
        let mapping = d.timekeeper.clock_mapping();
        if d.associations
            .next_timeout(d.timekeeper.system())
            .is_some_and(|t| t <= mono(started))
        {
            d.associations.on_timer(
                mono(started),
                d.poll.registry(),
                &mapping,
                &mut random,
                d.timekeeper.system_mut(),
            );
        }
        if d.timekeeper.timeout().is_some_and(|t| t.is_zero())
            && let Verdict::Exit(code) = d.timekeeper.on_timer(&d.associations, &d.publisher)
        {
            return Ok(code);
        }
        if now >= next_tick {
            let (system, clock) = d.timekeeper.parts();
            d.associations
                .refclocks_mut()
                .on_tick(mono(started), &mapping, system, clock);
            let lines = d.associations.refclocks_mut().take_clockstats();
            d.timekeeper.record_clockstats(lines);
            if let Verdict::Exit(code) =
                d.timekeeper
                    .update(&d.associations, &d.publisher, true, mono(started))
            {
                return Ok(code);
            }
            next_tick = now + TICK;
            // Once a second is soon enough for `systemctl status`, and keeps the formatting
            // off the per-reply path.
            if startup.notifier().is_active() {
                startup
                    .notifier()
                    .status(&notify::status_line(&d.publisher.current().control));
            }
        }
        let mut timeout = next_tick.saturating_duration_since(Instant::now());
        if let Some(t) = d.associations.next_timeout(d.timekeeper.system()) {
            timeout = timeout.min(t.saturating_since(mono(started)));
        }
        if let Some(t) = d.timekeeper.timeout() {
            timeout = timeout.min(t);
        }
        if let Some(local) = &d.local {
            timeout = local.wait_for_look(timeout);
        }
        if let Err(e) = d.poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                // The signal that interrupted us is in the pipe now. Simulator builds learn of
                // it only here: their poller never reports the pipe again (SIMULATOR_BUILD).
                match handle_signals(&d.signals) {
                    SignalAction::Stop => return Ok(0),
                    SignalAction::Reload => {
                        reload(args, d, startup.notifier(), mono(started));
                        // Publish the new restrict table and peer list now, not in a second.
                        next_tick = Instant::now();
                    }
                    SignalAction::None => {}
                }
                continue;
            }
            return Err(StartError::Io("poll failed", e));
        }
        let mut arrived = false;
        // Requests the server sockets reported held, and whether any reported.
        let mut served = (0, false);
        for event in &events {
            match event.token() {
                SIGNAL_TOKEN => match handle_signals(&d.signals) {
                    SignalAction::Stop => return Ok(0),
                    SignalAction::Reload => {
                        reload(args, d, startup.notifier(), mono(started));
                        // Publish the new restrict table and peer list now, not in a second.
                        next_tick = Instant::now();
                    }
                    SignalAction::None => {}
                },
                WAKE_TOKEN => d
                    .associations
                    .on_answers(d.timekeeper.system_mut(), mono(started)),
                Token(t) if t >= TOKEN_BASE => {
                    let (system, clock) = d.timekeeper.parts();
                    arrived |= d.associations.on_readable(
                        Token(t),
                        &mapping,
                        system,
                        clock,
                        mono(started),
                    );
                }
                token => {
                    if let Some(local) = d.local.as_mut()
                        && let Some(n) = local.on_readable(
                            token,
                            d.poll.registry(),
                            &mut reader,
                            filter.get(),
                            started,
                        )
                    {
                        served = (served.0 + n, true);
                    }
                }
            }
        }
        if let Some(local) = d.local.as_mut() {
            local.after_poll(
                d.poll.registry(),
                &mut reader,
                filter.get(),
                started,
                served,
            );
        }
        if arrived
            && let Verdict::Exit(code) =
                d.timekeeper
                    .update(&d.associations, &d.publisher, false, mono(started))
        {
            return Ok(code);
        }
        d.timekeeper.set_counters(sum(&d.counters));
    }
}

/// Stops the server threads, saves the drift file and logs the counters.
fn shutdown(mut d: Daemon) {
    d.stop.store(true, Ordering::Release);
    for (handle, waker) in d.workers {
        let _ = waker.wake();
        if handle.join().is_err() {
            tracing::error!("a server thread failed");
        }
    }
    d.timekeeper.shutdown();
    log_counters(&sum(&d.counters));
    d.associations.log_counters(d.timekeeper.system());
}

/// What the signals received so far ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignalAction {
    None,
    /// SIGHUP: reopen the log file and reload the configuration.
    Reload,
    /// SIGTERM or SIGINT.
    Stop,
}

/// Drains the signal pipe: a stop request wins over a reload, several SIGHUPs are one reload.
fn handle_signals(signals: &SignalPipe) -> SignalAction {
    let mut action = SignalAction::None;
    for sig in signals.drain() {
        if sig == libc::SIGHUP {
            action = SignalAction::Reload;
        } else {
            tracing::info!("signal {sig} received, shutting down");
            return SignalAction::Stop;
        }
    }
    action
}

/// SIGHUP: reopen the log file (for logrotate), then re-read the configuration and apply what
/// changed ([`crate::reload`]); a file with errors changes nothing.
fn reload(args: &NtpdArgs, d: &mut Daemon, notifier: &mut Notifier, now: MonoTime) {
    if let Err(e) = logging::reopen() {
        tracing::warn!("SIGHUP: cannot reopen the log file: {e}");
    }
    notifier.send("RELOADING=1");
    tracing::info!("SIGHUP: reloading {}", args.config.display());
    match crate::reload::load(&args.config) {
        Ok((new, findings)) => {
            log_findings(&findings);
            crate::reload::apply(
                args,
                &mut d.config,
                new,
                &mut d.runtime,
                &mut d.associations,
                &mut d.timekeeper,
                now,
            );
            d.live_filter.set(d.runtime.filter.clone());
            reload_keys(&d.config, &mut d.associations, &d.publisher);
            crate::nts::reload(&d.config.nts);
        }
        Err(e) => {
            tracing::error!("SIGHUP: {e}; keeping the running configuration");
        }
    }
    notifier.send("READY=1");
}

/// SIGHUP: reads the keys file and `trustedkey` lines again — also when ntp.conf is unchanged,
/// since the keys file may have changed on its own — and hands the keys to the associations and
/// the server threads. A keys file with errors keeps the running keys.
fn reload_keys(config: &Config, associations: &mut Associations, publisher: &Publisher) {
    let (keys, findings) = keys::load_trusted(config);
    log_findings(&findings);
    if findings.iter().any(Finding::is_error) {
        tracing::error!("SIGHUP: the keys file has errors; keeping the running keys");
        return;
    }
    tracing::info!("SIGHUP: {} trusted key(s) in force", keys.len());
    let keys = Arc::new(keys);
    associations.set_keys(Arc::clone(&keys));
    publisher.publish(Snapshot {
        keys,
        ..(*publisher.current()).clone()
    });
}

/// Monotonic time since start-up, as the core counts it.
fn mono(started: Instant) -> MonoTime {
    MonoTime::from_duration(started.elapsed())
}

/// The starting mapping of served time to kernel time for the chosen clock.
fn initial_mapping(spec: ClockSpec) -> TimeMapping {
    match spec {
        ClockSpec::System | ClockSpec::None => TimeMapping::IDENTITY,
        ClockSpec::Simulated { offset_s, freq_ppm } => TimeMapping::new(
            kernel_now(),
            NtpDuration::from_seconds_f64(offset_s),
            freq_ppm,
        ),
    }
}

fn log_findings(findings: &[Finding]) {
    for f in findings {
        match f.severity {
            Severity::Error => tracing::error!("{f}"),
            Severity::Warning => tracing::warn!("{f}"),
            Severity::Notice => tracing::info!("{f}"),
        }
    }
}

fn note_ignored_flags(args: &NtpdArgs) {
    let ignored = [
        (args.authreq, "-a"),
        (args.authnoreq, "-A"),
        (args.bcastsync, "-b (broadcast is not supported)"),
        (
            args.jaildir.is_some(),
            "-i (use systemd sandboxing instead of chroot)",
        ),
        (args.novirtualips, "-L"),
        (args.mdns, "-m"),
        (args.propagation_delay.is_some(), "-r"),
        (
            args.update_interval.is_some(),
            "-U (sundial serves on wildcard sockets)",
        ),
        (
            !args.var.is_empty() || !args.dvar.is_empty(),
            "--var/--dvar (mode 6 is read-only)",
        ),
    ];
    for (set, flag) in ignored {
        if set {
            tracing::info!("ignoring {flag}");
        }
    }
}

/// Writes the pid file atomically, never through a link planted in its directory
/// ([`safefile::write_atomic`]).
fn write_pidfile(path: &Path) -> io::Result<()> {
    let pid = format!("{}\n", std::process::id());
    safefile::write_atomic(path, pid.as_bytes(), Ownership::PUBLIC)
}

/// Removes the pid file at exit. After `-u` the directory (root's `/run`) is usually not
/// writable by the daemon's user any more, so the file stays: say so rather than fail.
fn remove_pidfile(path: &Path) {
    if let Err(e) = safefile::remove(path) {
        tracing::info!("pid file {} left in place: {e}", path.display());
    }
}

/// The counters of every server thread, added up.
fn sum(counters: &[Arc<ServerCounters>]) -> CounterSnapshot {
    let mut total = CounterSnapshot::default();
    for c in counters {
        total.accumulate(&c.snapshot());
    }
    total
}

fn log_counters(c: &CounterSnapshot) {
    tracing::info!(
        "server counters: received {}, replied {}, dropped {}",
        c.received,
        c.replied,
        c.dropped_total()
    );
    tracing::info!(
        "replies included {} RATE kiss(es) and {} crypto-NAK(s); mode 6: {} request(s), {} answered",
        c.kisses,
        c.crypto_naks,
        c.control_requests,
        c.control_replies
    );
    if c.nts_replies > 0 || c.nts_naks > 0 {
        tracing::info!(
            "NTS: {} NTS repl(ies), {} NTS NAK(s), {} cookie(s) that did not open",
            c.nts_replies,
            c.nts_naks,
            c.nts_cookie_failures
        );
    }
    let [served, serve_failed, refused, probed, probe_failed] = crate::nts::KE_COUNTERS.get();
    if served + serve_failed + refused + probed + probe_failed > 0 {
        tracing::info!(
            "NTS-KE: served {served}, failed {serve_failed}, refused {refused}; \
             as a client {probed} good, {probe_failed} failed"
        );
    }
    for reason in DropReason::ALL {
        let n = c.dropped(reason);
        if n > 0 {
            tracing::info!("dropped ({}): {n}", reason.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;

    #[test]
    fn pidfile_is_written_whole() {
        let dir = std::env::temp_dir().join(format!("sundial-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ntpd.pid");
        write_pidfile(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
