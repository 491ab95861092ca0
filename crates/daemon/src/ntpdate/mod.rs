//! `ntpdate`: set the clock once from NTP servers, a drop-in for classic ntp.org ntpdate 4.2.8
//! (flags, 0.5 s step rule, output and exit codes of ntpdate.md §2).
//!
//! ```text
//!  args ─▶ resolve ─▶ [-a: auth, the key] ─▶ query (one socket, all servers, -p samples each)
//!                                             │ reply checks: mode, version, origin == random
//!                                             │ nonce, timestamps; with -a a valid MAC with our
//!                                             │ key id (else the server is marked untrusted)
//!                        ┌────────────────────┘
//!                        ▼
//!            per-server results ─▶ select (classic clock_select) ─▶ Correction ─▶ ClockSetter
//!                                                                        (never with -q / -d)
//! ```
//!
//! [`run`] is the whole tool over injectable output and clock, so tests drive it end to end
//! against a fake clock; [`main`] binds it to the terminal and the kernel clock.

pub mod args;
pub mod auth;
pub mod output;
pub mod query;
pub mod reply;
pub mod resolve;
pub mod select;
pub mod setclock;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use sundial_proto::onwire::Measurement;
use sundial_proto::packet::NtpHeader;
use sundial_proto::time::{Log2Seconds, NtpDuration};

use self::args::NtpdateArgs;
use self::output::{
    Level, Reporter, classic_delay, format_delay, format_offset, result_line, server_line,
};
use self::query::{Event, Nonces, OpenError, QueryParams};
use self::reply::Answer;
use self::select::ServerResult;
use self::setclock::{ClockSetter, Correction, SystemClock};

/// Entry point of the `ntpdate` binary.
pub fn main() -> ExitCode {
    let args = match NtpdateArgs::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            // Classic ntpdate exits 1 on bad arguments; --help is not an error.
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut reporter = Reporter::terminal(args.syslog);
    let code = run(&args, &mut reporter, &mut SystemClock);
    reporter.flush();
    code
}

/// Runs ntpdate with `args`, printing through `out` and correcting `clock` (unless `-q`/`-d`).
pub fn run<O: Write, E: Write>(
    args: &NtpdateArgs,
    out: &mut Reporter<O, E>,
    clock: &mut impl ClockSetter,
) -> ExitCode {
    if args.verbose {
        out.log(
            Level::Notice,
            &format!("ntpdate (sundial) {}", env!("CARGO_PKG_VERSION")),
        );
    }
    let mut servers: Vec<SocketAddr> = Vec::new();
    for host in &args.servers {
        match resolve::resolve(host, args.port, args.family()) {
            Ok(addrs) => {
                for addr in addrs {
                    if !servers.contains(&addr) {
                        servers.push(addr);
                    }
                }
            }
            Err(e) => out.log(Level::Error, &e.to_string()),
        }
    }
    if servers.is_empty() {
        out.log(Level::Error, "no servers can be used, exiting");
        return ExitCode::FAILURE;
    }
    // As classic ntpdate: the key is read after the servers are known, and any problem with it
    // ends the run rather than falling back to unauthenticated time.
    let key = match args.key_id {
        None => None,
        Some(id) => match auth::load_key(auth::keyfile(args.keyfile.as_deref()), id) {
            Ok((key, warnings)) => {
                for warning in &warnings {
                    out.log(Level::Warning, &warning.to_string());
                }
                Some(key)
            }
            Err(e) => {
                for line in e.lines() {
                    out.log(Level::Error, &line);
                }
                return ExitCode::FAILURE;
            }
        },
    };
    let socket = match query::open_socket(&servers, args.privileged_port()) {
        Ok(socket) => socket,
        Err(OpenError::InUse) => {
            out.log(Level::Error, "the NTP socket is in use, exiting");
            return ExitCode::FAILURE;
        }
        Err(OpenError::Bind(e)) => {
            out.log(
                Level::Error,
                &format!("bind() fails: {}", output::error_text(&e)),
            );
            return ExitCode::FAILURE;
        }
    };
    let params = QueryParams {
        samples: args.samples,
        timeout: args.timeout,
        version: args.version_number,
        key: key.as_ref(),
    };
    let queried = Nonces::open().and_then(|mut nonces| {
        query::run(&socket, &servers, params, &mut nonces, &mut |event| {
            report_event(args, out, &event);
        })
    });
    let results = match queried {
        Ok(results) => results,
        Err(e) => {
            out.log(Level::Error, &format!("cannot query servers: {e}"));
            return ExitCode::FAILURE;
        }
    };
    finish(args, out, clock, &results)
}

/// Reports the servers, selects one, and corrects the clock.
fn finish<O: Write, E: Write>(
    args: &NtpdateArgs,
    out: &mut Reporter<O, E>,
    clock: &mut impl ClockSetter,
    results: &[ServerResult],
) -> ExitCode {
    for server in results {
        if args.debug > 0 {
            dump_server(out, server);
        } else if args.query {
            let best = server.best();
            out.plain(&server_line(
                server.addr.ip(),
                server.stratum(),
                best.map_or(NtpDuration::ZERO, |s| s.offset),
                best.map_or(NtpDuration::ZERO, |s| {
                    classic_delay(s.delay, server_precision(server))
                }),
            ));
        }
    }
    let chosen = select::select(results, |i, why| {
        if args.explains()
            && let Some(server) = results.get(i)
        {
            out.plain(&format!("{}: {why}", server.addr.ip()));
        }
    });
    let Some((server, best)) = chosen
        .and_then(|i| results.get(i))
        .and_then(|s| Some((s, s.best()?)))
    else {
        out.log(Level::Error, "no server suitable for synchronization found");
        return ExitCode::FAILURE;
    };
    let correction = Correction::decide(best.offset, args.policy());
    if !args.query_only()
        && let Err(e) = correction.apply(clock)
    {
        out.log(Level::Error, &e.to_string());
        return ExitCode::FAILURE;
    }
    out.log(
        Level::Notice,
        &result_line(correction.verb(), server.addr.ip(), best.offset),
    );
    ExitCode::SUCCESS
}

/// Reports a query event: always the classic rate-limit line for a `RATE` kiss; with `-d` every
/// exchange; with `-v` replies that were not used.
fn report_event<O: Write, E: Write>(
    args: &NtpdateArgs,
    out: &mut Reporter<O, E>,
    event: &Event<'_>,
) {
    let debug = args.debug > 0;
    match event {
        Event::Transmit { server } if debug => out.plain(&format!("transmit({})", server.ip())),
        Event::SendFailed { server, error } => {
            if args.explains() {
                out.plain(&format!("transmit({}): {error}", server.ip()));
            }
        }
        Event::Answer {
            server,
            answer,
            authentication,
        } => {
            if debug {
                out.plain(&format!("receive({})", server.ip()));
            }
            // Classic ntpdate's `receive: authentication passed|failed`, with the reason.
            match authentication {
                Some(Ok(())) if debug => {
                    out.plain(&format!("receive({}): authentication passed", server.ip()))
                }
                Some(Err(why)) if args.explains() => out.plain(&format!(
                    "receive({}): authentication failed: {why}",
                    server.ip()
                )),
                _ => {}
            }
            match answer {
                Answer::Kiss { header } => {
                    let code = header.reference_id;
                    if reply::is_rate_limit(code) {
                        let line = format!("{} rate limit response from server.", server.ip());
                        out.log(Level::Error, &line);
                    } else if args.explains() {
                        let code = code.display_for_stratum(0);
                        out.plain(&format!("receive({}): kiss code {code}", server.ip()));
                    }
                }
                Answer::Unusable { reason, .. } if args.explains() => {
                    out.plain(&format!(
                        "receive({}): reply not used: {reason}",
                        server.ip()
                    ));
                }
                Answer::Sample { .. } | Answer::Unusable { .. } => {}
            }
        }
        Event::Dropped { from, reason } if args.explains() => {
            out.plain(&format!("receive({}): dropped: {reason}", from.ip()));
        }
        Event::Timeout { server } if args.explains() => {
            out.plain(&format!(
                "{}: no reply within {:?}",
                server.ip(),
                args.timeout
            ));
        }
        Event::Transmit { .. } | Event::Dropped { .. } | Event::Timeout { .. } => {}
    }
}

/// The `-d` dump of one server: what it said about itself and every sample.
/// The precision the server last reported (for [`classic_delay`]).
fn server_precision(server: &ServerResult) -> Log2Seconds {
    server
        .last_header
        .map_or(Log2Seconds::new(-32), |h| h.precision)
}

fn dump_server<O: Write, E: Write>(out: &mut Reporter<O, E>, server: &ServerResult) {
    out.plain(&format!(
        "server {}, port {}",
        server.addr.ip(),
        server.addr.port()
    ));
    if let Some(h) = server.last_header {
        dump_header(out, &h, server.trust);
    }
    let column = |f: &dyn Fn(&Measurement) -> String| -> String {
        server
            .samples
            .iter()
            .map(|s| s.as_ref().map_or_else(|| "    -    ".to_owned(), f))
            .collect::<Vec<_>>()
            .join(" ")
    };
    out.plain(&format!(
        "filter delay:  {}",
        column(&|s| format!(
            "{:>9}",
            format_delay(classic_delay(s.delay, server_precision(server)))
        ))
    ));
    out.plain(&format!(
        "filter offset: {}",
        column(&|s| format_offset(s.offset))
    ));
    if let Some(best) = server.best() {
        out.plain(&format!(
            "delay {}, dispersion {}",
            format_delay(classic_delay(best.delay, server_precision(server))),
            format_delay(NtpDuration::from_seconds_f64(server.dispersion()))
        ));
        out.plain(&format!("offset {}", format_offset(best.offset)));
    }
    out.plain("");
}

/// The header fields of the `-d` dump, with the trust register in octal as classic ntpdate
/// prints it (000: every reply authenticated, or no `-a`).
fn dump_header<O: Write, E: Write>(out: &mut Reporter<O, E>, h: &NtpHeader, trust: u8) {
    out.plain(&format!(
        "stratum {}, precision {}, leap {:02b}, trust {trust:03o}",
        h.stratum,
        h.precision.exponent(),
        h.leap.bits()
    ));
    out.plain(&format!(
        "refid [{}], root delay {}, root dispersion {}",
        h.reference_id.display_for_stratum(h.stratum),
        format_offset(h.root_delay.to_duration()),
        format_offset(h.root_dispersion.to_duration()),
    ));
    out.plain(&format!("reference time:      {}", h.reference_timestamp));
    out.plain(&format!("originate timestamp: {}", h.origin_timestamp));
    out.plain(&format!("receive timestamp:   {}", h.receive_timestamp));
    out.plain(&format!("transmit timestamp:  {}", h.transmit_timestamp));
}

#[cfg(test)]
mod tests;
