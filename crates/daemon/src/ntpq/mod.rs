//! sundial's `ntpq`: queries NTP servers over mode 6 (read-only) and prints what classic ntpq
//! 4.2.8p15 prints — the `-p` billboard byte for byte, `as`, `rv` and `cv` — or JSON.
//!
//! ```text
//! ntpq [-46dinpw] [-c CMD]… [--json] [-t SECONDS] [--port PORT] [HOST…]
//! ```
//!
//! Hosts default to `localhost` (the first address getaddrinfo returns, `::1` on Debian). For
//! each host, the commands of `-c` and `-p` run in order; with no command, commands are read
//! from standard input. Errors print classic ntpq's messages (`***Request timed out`,
//! `***Server error code BADASSOC`, `***Socket error; probably ntpd is not running`) and make
//! the exit status 1.

mod args;
mod collect;
mod dns;
mod escape;
mod fuzzing;
mod json;
mod mrulist;
mod peers;
mod readvar;
mod session;
mod sysstats;
mod values;

#[cfg(test)]
mod tests;

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use sundial_proto::control::{
    ErrorCode, Opcode, PeerStatus, ResponseError, parse_association_list, peer_event_name,
};
use sundial_proto::time::{NtpTimestamp, UnixTime};

pub use args::{Command, CommandError, NtpqArgs};
use dns::ReverseDns;
use escape::{escape_controls, escaped_varlist};
pub use fuzzing::fuzz_variables;
use json::Object;
use peers::{HEADER, Options, PeerLine};
use readvar::{Subject, render_associations, render_variables};
use session::{Family, QueryError, Session};

/// Peer status bits that make classic `ntpq -p` show an association: configured or reachable.
const SHOWN_BY_PEERS: u16 = 0x8000 | 0x1000;

/// Runs `ntpq` with the process's arguments.
pub fn main() -> ExitCode {
    let args = NtpqArgs::parse_args(std::env::args_os());
    let mut ctx = Context {
        out: Box::new(io::stdout()),
        err: Box::new(io::stderr()),
        now: Box::new(system_now),
        dns: ReverseDns::from_system(),
    };
    if run(&args, &mut ctx) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Where output goes and where the time and names come from (replaceable in tests).
pub(crate) struct Context {
    pub(crate) out: Box<dyn Write>,
    pub(crate) err: Box<dyn Write>,
    pub(crate) now: Box<dyn Fn() -> UnixTime>,
    pub(crate) dns: ReverseDns,
}

impl Context {
    // Output errors (a closed pipe, as in `ntpq -p | head -1`) end nothing: ntpq just has
    // nobody to tell.
    fn print(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    fn eprint(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
        let _ = self.err.flush();
    }
}

/// Runs every command against every host; false if anything failed.
pub(crate) fn run(args: &NtpqArgs, ctx: &mut Context) -> bool {
    let hosts: Vec<String> = if args.hosts.is_empty() {
        vec!["localhost".to_owned()]
    } else {
        args.hosts.clone()
    };
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    };
    let several = hosts.len() > 1;
    // Sequence numbers start somewhere unpredictable, so replies to an earlier run's requests
    // (or to another ntpq) do not match ours.
    let first_sequence = crate::random::Random::open()
        .map_or(0, |mut r| u16::try_from(r.next_u64() & 0xffff).unwrap_or(0));
    let mut ok = true;
    let mut sessions = Vec::new();
    for host in &hosts {
        let timeouts = args.timeouts();
        match Session::open(
            host,
            args.port,
            family,
            timeouts,
            args.debug,
            first_sequence,
        ) {
            Ok(session) => sessions.push((host.clone(), session)),
            Err(e) => {
                ctx.eprint(&format!("{e}\n"));
                ok = false;
            }
        }
    }
    let mut runner = Runner {
        options: Options {
            numeric: args.numeric,
            wide: args.wide,
        },
        json: args.json,
        several,
    };
    for (host, session) in &mut sessions {
        for line in &args.commands {
            ok &= runner.run_line(line, host, session, ctx).unwrap_or(true);
        }
    }
    if args.commands.is_empty() || args.interactive {
        let stdin = io::stdin();
        let prompt = stdin.is_terminal();
        loop {
            if prompt {
                ctx.print("ntpq> ");
            }
            let mut line = String::new();
            if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            for (host, session) in &mut sessions {
                match runner.run_line(&line, host, session, ctx) {
                    Some(result) => ok &= result,
                    None => return ok,
                }
            }
        }
    }
    ok
}

/// Runs commands and renders their results.
struct Runner {
    options: Options,
    json: bool,
    several: bool,
}

impl Runner {
    /// Runs one command line against one host: `Some(success)`, or `None` for `quit`.
    fn run_line(
        &mut self,
        line: &str,
        host: &str,
        session: &mut Session,
        ctx: &mut Context,
    ) -> Option<bool> {
        let command = match Command::parse(line) {
            Ok(Command::Quit) => return None,
            Ok(command) => command,
            Err(e) => {
                ctx.eprint(&format!("{e}\n"));
                return Some(false);
            }
        };
        let result = match &command {
            Command::Peers { all } => self.peers(*all, host, session, ctx),
            Command::Associations => self.associations(host, session, ctx),
            Command::ReadVar { association, names } => {
                let subject = if *association == 0 {
                    Subject::System
                } else {
                    Subject::Peer(*association)
                };
                let op = Opcode::ReadVariables;
                self.variables(subject, op, *association, names, host, session, ctx)
            }
            Command::ClockVar { association, names } => {
                let subject = Subject::Clock(*association);
                let op = Opcode::ReadClock;
                self.variables(subject, op, *association, names, host, session, ctx)
            }
            Command::SysStats => self.sysstats(host, session, ctx),
            Command::KernInfo => {
                self.collection(host, session, ctx, "kerninfo", &collect::KERNINFO)
            }
            Command::IoStats => self.collection(host, session, ctx, "iostats", &collect::IOSTATS),
            Command::MruList(args) => self.mrulist(args, host, session, ctx),
            Command::NtsInfo => self.collection(host, session, ctx, "ntsinfo", &collect::NTSINFO),
            Command::Quit => return None,
        };
        Some(match result {
            Ok(()) => true,
            Err(e) => {
                let prefix = self.server_prefix(host);
                ctx.eprint(&format!("{prefix}{e}\n"));
                if self.json {
                    let doc = Object::new()
                        .string("host", host)
                        .string("command", command.name())
                        .string("error", &e.to_string())
                        .finish();
                    ctx.print(&format!("{doc}\n"));
                }
                false
            }
        })
    }

    /// `server=HOST ` when several hosts are queried, as classic ntpq prefixes its output.
    fn server_prefix(&self, host: &str) -> String {
        if self.several {
            format!("server={host} ")
        } else {
            String::new()
        }
    }

    /// The association list, sorted by id as ntpq keeps it; `None` (after saying so) if empty.
    fn association_list(
        &self,
        host: &str,
        session: &mut Session,
        ctx: &mut Context,
    ) -> Result<Option<Vec<(u16, u16)>>, QueryError> {
        let response = session.query(Opcode::ReadStatus, 0, b"")?;
        let mut list = parse_association_list(&response.data);
        list.sort_by_key(|(id, _)| *id);
        list.dedup_by_key(|(id, _)| *id);
        if list.is_empty() {
            let prefix = self.server_prefix(host);
            ctx.eprint(&format!("{prefix}No association ID's returned\n"));
            return Ok(None);
        }
        Ok(Some(list))
    }

    fn peers(
        &mut self,
        all: bool,
        host: &str,
        session: &mut Session,
        ctx: &mut Context,
    ) -> Result<(), QueryError> {
        let Some(list) = self.association_list(host, session, ctx)? else {
            return Ok(());
        };
        if !self.json {
            if self.several {
                ctx.print(&format!("server={host}\n"));
            }
            ctx.print(HEADER);
        }
        let mut rows = Vec::new();
        for (association, status) in list {
            if !all && status & SHOWN_BY_PEERS == 0 {
                continue;
            }
            let response = session.query(Opcode::ReadVariables, association, b"")?;
            let vars = escaped_varlist(&response.data);
            let now = NtpTimestamp::from_unix((ctx.now)()).seconds();
            let dns = &mut ctx.dns;
            let line = PeerLine::new(response.header.status, &vars, now, self.options, &mut |a| {
                escape_controls(&dns.name(a)).into_owned()
            });
            if self.json {
                rows.push(peer_json(association, &line));
            } else {
                ctx.print(&line.render(self.options));
            }
        }
        if self.json {
            let doc = Object::new()
                .string("host", host)
                .string("command", if all { "lpeers" } else { "peers" })
                .array("peers", rows)
                .finish();
            ctx.print(&format!("{doc}\n"));
        }
        Ok(())
    }

    fn associations(
        &mut self,
        host: &str,
        session: &mut Session,
        ctx: &mut Context,
    ) -> Result<(), QueryError> {
        let Some(list) = self.association_list(host, session, ctx)? else {
            return Ok(());
        };
        if self.json {
            let rows = list.iter().enumerate().map(|(i, (id, status))| {
                let decoded = PeerStatus::from_word(*status);
                Object::new()
                    .int("ind", i64::try_from(i).unwrap_or(i64::MAX) + 1)
                    .int("associd", i64::from(*id))
                    .int("status", i64::from(*status))
                    .boolean("conf", decoded.configured)
                    .boolean("reach", decoded.reachable)
                    .string("condition", decoded.condition())
                    .string("last_event", peer_event_name(decoded.event_code))
                    .int("cnt", i64::from(decoded.event_count))
            });
            let doc = Object::new()
                .string("host", host)
                .string("command", "associations")
                .array("associations", rows.collect())
                .finish();
            ctx.print(&format!("{doc}\n"));
        } else {
            if self.several {
                ctx.print(&format!("server={host}\n"));
            }
            ctx.print(&render_associations(&list));
        }
        Ok(())
    }

    #[expect(clippy::too_many_arguments, reason = "one call site per command kind")]
    fn variables(
        &mut self,
        subject: Subject,
        opcode: Opcode,
        association: u16,
        names: &str,
        host: &str,
        session: &mut Session,
        ctx: &mut Context,
    ) -> Result<(), QueryError> {
        let response = session.query(opcode, association, names.as_bytes())?;
        let vars = escaped_varlist(&response.data);
        if self.json {
            let mut variables = Object::new();
            for (name, value) in &vars {
                variables = variables.variable(name, value);
            }
            let doc = Object::new()
                .string("host", host)
                .string(
                    "command",
                    if opcode == Opcode::ReadClock {
                        "clockvar"
                    } else {
                        "readvar"
                    },
                )
                .int("associd", i64::from(association))
                .int("status", i64::from(response.header.status))
                .object("variables", variables)
                .finish();
            ctx.print(&format!("{doc}\n"));
        } else {
            let now = (ctx.now)();
            let text = render_variables(
                subject,
                response.header.status,
                &vars,
                !names.is_empty(),
                now,
            );
            ctx.print(&format!("{}{text}", self.server_prefix(host)));
        }
        Ok(())
    }
}

impl Runner {
    /// `kerninfo`, `iostats`: one list of system variables, a line each (see [`collect`]);
    /// `kerninfo` starts with the system status line, as NTPsec's ntpq does.
    fn collection(
        &mut self,
        host: &str,
        session: &mut Session,
        ctx: &mut Context,
        command: &str,
        table: &[(&str, &str, collect::Show)],
    ) -> Result<(), QueryError> {
        let vars = read_names(session, &collect::names(table), ctx)?;
        if self.json {
            let mut variables = Object::new();
            for (name, value) in &vars {
                variables = variables.variable(name, value);
            }
            let doc = Object::new()
                .string("host", host)
                .string("command", command)
                .object("variables", variables)
                .finish();
            ctx.print(&format!("{doc}\n"));
        } else {
            let mut text = String::new();
            if command == "kerninfo" {
                let status = session.query(Opcode::ReadVariables, 0, b"")?.header.status;
                text.push_str(&render_variables(
                    Subject::System,
                    status,
                    &[],
                    false,
                    (ctx.now)(),
                ));
            }
            text.push_str(&collect::render(table, &vars));
            ctx.print(&format!("{}{text}", self.server_prefix(host)));
        }
        Ok(())
    }

    /// `sysstats`: NTPsec's counter table, then sundial's drops by reason if the server has
    /// them (see [`sysstats`]).
    fn sysstats(
        &mut self,
        host: &str,
        session: &mut Session,
        ctx: &mut Context,
    ) -> Result<(), QueryError> {
        let first = read_names(session, &sysstats::first_names(), ctx)?;
        let second = read_names(session, &sysstats::second_names(), ctx)?;
        let names = sysstats::sundial_names();
        let sundial = match session.query(Opcode::ReadVariables, 0, names.join(",").as_bytes()) {
            Ok(response) => Some(escaped_varlist(&response.data)),
            Err(QueryError::Response(ResponseError::Server(ErrorCode::UnknownVariable))) => None,
            Err(e) => return Err(e),
        };
        if self.json {
            let mut variables = Object::new();
            for (name, value) in first.iter().chain(&second).chain(sundial.iter().flatten()) {
                variables = variables.variable(name, value);
            }
            let doc = Object::new()
                .string("host", host)
                .string("command", "sysstats")
                .object("variables", variables)
                .finish();
            ctx.print(&format!("{doc}\n"));
        } else {
            let text = sysstats::render(&first, &second, sundial.as_ref());
            ctx.print(&format!("{}{text}", self.server_prefix(host)));
        }
        Ok(())
    }
}

impl Runner {
    /// `mrulist`: NTPsec's table of the server's clients, most recent first (or as sorted).
    fn mrulist(
        &mut self,
        args: &mrulist::MruArgs,
        host: &str,
        session: &mut Session,
        ctx: &mut Context,
    ) -> Result<(), QueryError> {
        let list = mrulist::fetch(session, args)?;
        let now = list.now.unwrap_or_default();
        if self.json {
            let entries = list
                .entries
                .iter()
                .map(|e| {
                    Object::new()
                        .string("addr", &e.addr.ip().to_string())
                        .int("port", i64::from(e.addr.port()))
                        .number("lstint", (now - e.last).to_seconds_f64())
                        .number("active", (e.last - e.first).to_seconds_f64())
                        .int("count", i64::try_from(e.count).unwrap_or(i64::MAX))
                        .int("mode", i64::from(e.mode_version & 7))
                        .int("version", i64::from((e.mode_version >> 3) & 7))
                        .int("restrict", i64::from(e.restrict))
                        .optional_int("drops", e.drops.and_then(|d| i64::try_from(d).ok()))
                })
                .collect();
            let doc = Object::new()
                .string("host", host)
                .string("command", "mrulist")
                .array("entries", entries)
                .finish();
            ctx.print(&format!("{doc}\n"));
            return Ok(());
        }
        let mut text = format!("{}{}\n", self.server_prefix(host), mrulist::HEADER);
        text.push_str(&"=".repeat(mrulist::HEADER.len()));
        text.push('\n');
        for entry in &list.entries {
            let name = if self.options.numeric {
                entry.addr.ip().to_string()
            } else {
                escape_controls(&ctx.dns.name(entry.addr.ip())).into_owned()
            };
            text.push_str(&mrulist::render_row(entry, now, &name));
            text.push('\n');
        }
        ctx.print(&text);
        Ok(())
    }
}

/// Reads the system variables `names` in one request; if the server does not know one of
/// them, says so and reads them one at a time, the unknown ones getting the value `???`
/// (NTPsec's ntpq does the same).
fn read_names(
    session: &mut Session,
    names: &[String],
    ctx: &mut Context,
) -> Result<sysstats::Vars, QueryError> {
    let unknown = |e: &QueryError| {
        matches!(
            e,
            QueryError::Response(ResponseError::Server(ErrorCode::UnknownVariable))
        )
    };
    match session.query(Opcode::ReadVariables, 0, names.join(",").as_bytes()) {
        Ok(response) => return Ok(escaped_varlist(&response.data)),
        Err(e) if unknown(&e) => ctx.eprint("Unknown variable.  Trying one at a time.\n"),
        Err(e) => return Err(e),
    }
    let mut vars = Vec::new();
    for name in names {
        match session.query(Opcode::ReadVariables, 0, name.as_bytes()) {
            Ok(response) => vars.extend(escaped_varlist(&response.data)),
            Err(e) if unknown(&e) => vars.push((name.clone(), "???".to_owned())),
            Err(e) => return Err(e),
        }
    }
    Ok(vars)
}

/// One `peers` row as JSON.
fn peer_json(association: u16, line: &PeerLine) -> Object {
    Object::new()
        .int("associd", i64::from(association))
        .string("tally", &line.tally.to_string())
        .string("remote", &line.remote)
        .string("refid", &line.refid)
        .int("st", i64::try_from(line.stratum).unwrap_or(i64::MAX))
        .string("t", &line.kind.to_string())
        .optional_int("when", line.when)
        .int("poll", line.poll)
        .int("reach", i64::try_from(line.reach).unwrap_or(i64::MAX))
        .number("delay", line.delay)
        .number("offset", line.offset)
        .number("jitter", line.jitter)
}

/// The system clock as Unix time.
fn system_now() -> UnixTime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UnixTime::new(
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        since.subsec_nanos(),
    )
}
