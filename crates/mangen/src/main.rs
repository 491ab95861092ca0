//! `sundial-mangen OUTDIR [DATE]`: writes the manual pages `ntpd.8`, `ntpq.1`, `ntpdate.8` and
//! `ntp.conf.5` into OUTDIR.
//!
//! The command-line pages come from the very clap definitions the binaries parse with
//! (`NtpdArgs`, `NtpqArgs`, `NtpdateArgs`), so an option cannot exist in one and not the other;
//! `ntp.conf(5)` is docs/CONFIGURATION.md, compiled into this program, converted to roff. DATE
//! (for example the Debian changelog's) goes into every page's title line.

mod markdown;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use sundial::cli::NtpdArgs;
use sundial::ntpdate::args::NtpdateArgs;
use sundial::ntpq::NtpqArgs;

/// The configuration reference the ntp.conf(5) page is made from.
const CONFIGURATION_MD: &str = include_str!("../../../docs/CONFIGURATION.md");

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One page to write.
struct Page {
    file: &'static str,
    command: clap::Command,
    section: &'static str,
    /// Extra sections after the options, as roff.
    extra: &'static str,
}

const NTPD_EXTRA: &str = r#".SH SIGNALS
.TP
\fBSIGHUP\fR
Reopen the log file, then re-read the configuration file: new \fBserver\fR and \fBpool\fR lines
start associations, removed ones stop, unchanged ones keep their state; \fBrestrict\fR,
\fBinterface\fR, \fBdiscard\fR, \fBlimit\fR and \fBtos\fR apply at once. A file with errors
changes nothing; the log names each error's file, line and column.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Save the drift file and exit.
.SH EXIT STATUS
0 after a clean stop. 1 when start\-up fails: the configuration file cannot be read, the user
of \fB\-u\fR does not exist, or UDP port 123 is taken (by another sundial or another NTP
daemon). Without \fB\-n\fR the starting process waits until the daemon has bound its sockets,
dropped its privileges and written its pid file, and exits 1 with the daemon's error if it
did not get that far. Under systemd (\fBType=notify\fR) \fBREADY=1\fR is sent at that point.
.SH FILES
.TP
\fI/etc/ntp.conf\fR
The configuration file; see \fBntp.conf\fR(5).
.TP
\fI/etc/default/ntp\fR
\fBNTPD_OPTS\fR, the options the service starts ntpd with.
.TP
\fI/var/lib/ntp/ntp.drift\fR
The clock's frequency correction, kept across restarts.
.SH SEE ALSO
\fBntp.conf\fR(5), \fBntpq\fR(1), \fBntpdate\fR(8), \fBsystemctl\fR(1)
"#;

const NTPQ_EXTRA: &str = r#".SH SEE ALSO
\fBntpd\fR(8), \fBntp.conf\fR(5)
"#;

const NTPDATE_EXTRA: &str = r#".SH SEE ALSO
\fBntpd\fR(8), \fBntpq\fR(1)
"#;

fn pages() -> Vec<Page> {
    vec![
        Page {
            file: "ntpd.8",
            command: NtpdArgs::command(),
            section: "8",
            extra: NTPD_EXTRA,
        },
        Page {
            file: "ntpq.1",
            command: NtpqArgs::command(),
            section: "1",
            extra: NTPQ_EXTRA,
        },
        Page {
            file: "ntpdate.8",
            command: NtpdateArgs::command(),
            section: "8",
            extra: NTPDATE_EXTRA,
        },
    ]
}

/// The roff source of a command's page.
fn command_page(page: &Page, date: Option<&str>) -> io::Result<Vec<u8>> {
    let mut man = clap_mangen::Man::new(page.command.clone())
        .section(page.section)
        .source(format!("sundial {VERSION}"))
        .manual(if page.section == "1" {
            "User Commands"
        } else {
            "System Administration"
        });
    if let Some(date) = date {
        man = man.date(date);
    }
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    out.extend_from_slice(page.extra.as_bytes());
    Ok(out)
}

/// The roff source of ntp.conf(5).
fn ntp_conf_page(date: Option<&str>) -> String {
    let mut out = format!(
        ".TH NTP.CONF 5 \"{}\" \"sundial {VERSION}\" \"File Formats\"\n\
         .SH NAME\nntp.conf \\- configuration file of sundial's ntpd\n\
         .SH SYNOPSIS\n\\fI/etc/ntp.conf\\fR\n.SH DESCRIPTION\n",
        date.unwrap_or("")
    );
    out.push_str(&markdown::to_roff(CONFIGURATION_MD));
    out.push_str(".SH SEE ALSO\n\\fBntpd\\fR(8), \\fBntpq\\fR(1)\n");
    out
}

/// Writes every page into `dir`; returns their paths.
fn write_all(dir: &Path, date: Option<&str>) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for page in pages() {
        let path = dir.join(page.file);
        std::fs::write(&path, command_page(&page, date)?)?;
        written.push(path);
    }
    let path = dir.join("ntp.conf.5");
    std::fs::write(&path, ntp_conf_page(date))?;
    written.push(path);
    Ok(written)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: sundial-mangen OUTDIR [DATE]");
        return ExitCode::from(2);
    };
    let date = args.next().map(|d| d.to_string_lossy().into_owned());
    match write_all(Path::new(&dir), date.as_deref()) {
        Ok(paths) => {
            let mut stdout = io::stdout().lock();
            for p in paths {
                let _ = writeln!(stdout, "{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sundial-mangen: {}: {e}", dir.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Every page must pass `mandoc -T lint` with no warning: what lintian and `man` would
    /// complain about shows up here first. mandoc is installed by tools/install-test-peers.
    #[test]
    fn pages_render_without_warnings() {
        let dir = std::env::temp_dir().join(format!("sundial-mangen-{}", std::process::id()));
        let pages = write_all(&dir, Some("2026-12-07")).expect("pages written");
        assert_eq!(pages.len(), 4);
        for page in &pages {
            let out = Command::new("mandoc")
                .args(["-T", "lint", "-W", "warning"])
                .arg(page)
                .output()
                .expect("mandoc (apt-get install mandoc; tools/install-test-peers does)");
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && report.trim().is_empty(),
                "{}:\n{report}",
                page.display()
            );
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn every_option_of_every_binary_is_on_its_page() {
        for page in pages() {
            let text = String::from_utf8(command_page(&page, None).expect("page")).expect("utf8");
            for arg in page.command.get_arguments() {
                if arg.is_hide_set() {
                    continue;
                }
                if let Some(long) = arg.get_long() {
                    let roff_long = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(text.contains(&roff_long), "{}: --{long} missing", page.file);
                }
            }
        }
    }

    #[test]
    fn ntp_conf_page_covers_the_configuration_reference() {
        let page = ntp_conf_page(None);
        assert!(page.contains(".SH \"ACCESS CONTROL\""));
        assert!(page.contains("\\fBrestrict"));
    }
}
