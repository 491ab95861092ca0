//! NTS (RFC 8915) against chronyd 4.3, both directions, on loopback. A test CA and server
//! certificate for 127.0.0.1 are made with openssl; chronyd runs without CAP_SYS_TIME.
//!
//! * chronyd as an NTS client of sundial's NTS-KE and NTP server selects it, and chronyc
//!   `authdata` shows NTS with cookies; the same client trusting another CA never does.
//! * sundial as an NTS client of chronyd's NTS server selects it; trusting another CA the key
//!   exchange fails with a log line naming the certificate problem, and no plain NTP is sent.
//! * sundial asking chronyd's key exchange for an NTP server (`ask`) still gets keys and
//!   cookies and selects it.
//! * sundial's NTS replies are never longer than the requests (server counters), and a
//!   restarted sundial with `nts cookie FILE` still opens the cookies it issued before.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::peers::Peer;
use crate::support::process;
use crate::support::{Daemon, LOCAL_CLOCK_CONFIG, TempDir, eventually, free_port};

/// How long a client gets to select its NTS server (key exchange, then iburst).
const SELECTS_WITHIN: Duration = Duration::from_secs(60);

/// How long a client is watched to show it never selects a server.
const NEVER_WITHIN: Duration = Duration::from_secs(15);

/// A CA and a server certificate it signed (`server.crt`/`server.key`); a second, unrelated
/// CA (`other-ca.crt`); and, signed by the first CA, an expired certificate (`expired.crt`)
/// and one for another name (`misnamed.crt`), each with its key.
pub(crate) struct Pki {
    dir: TempDir,
}

/// openssl's arguments for a fresh P-256 key.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

impl Pki {
    /// Certificates for 127.0.0.1 (and `localhost`).
    pub(crate) fn generate() -> Self {
        Self::generate_for("127.0.0.1")
    }

    /// Certificates for the address `ip`: the name is both an IP and a DNS subject
    /// alternative name, since some clients (NTPsec) check a literal address as a host name.
    pub(crate) fn generate_for(ip: &str) -> Self {
        let dir = TempDir::new("nts-pki");
        let d = dir.path().to_path_buf();
        for ca in ["ca", "other-ca"] {
            openssl(
                &d,
                &[
                    &["req", "-x509"],
                    &EC_KEY[..],
                    &[
                        "-keyout",
                        &format!("{ca}.key"),
                        "-out",
                        &format!("{ca}.crt"),
                        "-days",
                        "2",
                        "-subj",
                        &format!("/CN=sundial test {ca}"),
                    ],
                ]
                .concat(),
            );
        }
        let san = format!("IP:{ip},DNS:{ip},DNS:localhost");
        // `-days -1`: valid until a day before it was issued, i.e. expired.
        for (name, san, days) in [
            ("server", san.as_str(), "2"),
            ("expired", san.as_str(), "-1"),
            ("misnamed", "DNS:time.invalid", "2"),
        ] {
            let ext = dir.write(
                &format!("{name}.ext"),
                format!(
                    "subjectAltName={san}\nbasicConstraints=CA:FALSE\n\
                     keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
                ),
            );
            let cn = if name == "misnamed" {
                "time.invalid"
            } else {
                ip
            };
            openssl(
                &d,
                &[
                    &["req"],
                    &EC_KEY[..],
                    &[
                        "-keyout",
                        &format!("{name}.key"),
                        "-out",
                        &format!("{name}.csr"),
                        "-subj",
                        &format!("/CN={cn}"),
                    ],
                ]
                .concat(),
            );
            openssl(
                &d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.crt"),
                    "-days",
                    days,
                    "-extfile",
                    ext.to_str().unwrap_or_default(),
                ],
            );
        }
        Self { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn show(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    let run = process::run(&mut cmd);
    assert!(run.success, "openssl {args:?}: {run:?}");
}

/// sundial serving its local clock with NTS-KE on `ke_port`.
pub(crate) fn nts_server(pki: &Pki, ke_port: u16, extra: &str) -> Daemon {
    Daemon::start(format!(
        "{LOCAL_CLOCK_CONFIG}nts enable\nnts cert {}\nnts key {}\nnts port {ke_port}\n{extra}",
        pki.show("server.crt"),
        pki.show("server.key"),
    ))
}

pub(crate) fn chronyd_nts_client(ca: &str, ntp_port: u16, ke_port: u16) -> Peer {
    Peer::chronyd_client_with(&format!(
        "ntstrustedcerts {ca}\nserver 127.0.0.1 port {ntp_port} nts ntsport {ke_port} \
         iburst minpoll 0 maxpoll 0\n"
    ))
}

#[test]
fn chronyd_selects_sundial_over_nts_and_refuses_it_under_another_ca() {
    let pki = Pki::generate();
    let ke_port = free_port();
    let ntpd = nts_server(&pki, ke_port, "");
    let client = chronyd_nts_client(&pki.show("ca.crt"), ntpd.port(), ke_port);
    let mut last = String::new();
    let selected = eventually(SELECTS_WITHIN, || {
        last = client.chronyc_sources();
        last.lines().any(|l| l.starts_with("^*"))
    });
    assert!(
        selected,
        "chronyd never selected sundial:\n{last}\n{}\n{}",
        client.log(),
        ntpd.log()
    );
    let authdata = client.chronyc(&["-n", "authdata"]);
    assert!(authdata.contains("NTS"), "{authdata}");
    drop(client);

    let refused = chronyd_nts_client(&pki.show("other-ca.crt"), ntpd.port(), ke_port);
    let selected = eventually(NEVER_WITHIN, || {
        last = refused.chronyc_sources();
        last.lines().any(|l| l.starts_with("^*"))
    });
    assert!(
        !selected,
        "selected under the wrong CA:\n{last}\n{}",
        refused.log()
    );
    drop(refused);

    let log = ntpd.stop().log;
    let replies = counter(&log, "NTS repl");
    assert!(replies > 0, "no NTS reply counted:\n{log}");
    assert!(log.contains("serving NTS-KE on TCP port"), "{log}");
}

/// chronyd serving its own clock at stratum 8 with NTS on loopback.
fn chronyd_nts_server(pki: &Pki, ntp_port: u16, ke_port: u16) -> Peer {
    Peer::chronyd_server_with(
        &format!(
            "port {ntp_port}\nbindaddress 127.0.0.1\nallow 127.0.0.0/8\nlocal stratum 8\n\
             ntsport {ke_port}\nntsservercert {}\nntsserverkey {}\n",
            pki.show("server.crt"),
            pki.show("server.key"),
        ),
        ntp_port,
    )
}

fn sundial_nts_client(ca: &str, ntp_port: u16, ke_port: u16) -> Daemon {
    Daemon::start(format!(
        "nts ca {ca}\nserver 127.0.0.1 port {ntp_port} nts ntsport {ke_port} iburst minpoll 3 maxpoll 3\n"
    ))
}

#[test]
fn sundial_selects_chronyd_over_nts_and_refuses_it_under_another_ca() {
    let pki = Pki::generate();
    let (ntp_port, ke_port) = (free_port(), free_port());
    let chronyd = chronyd_nts_server(&pki, ntp_port, ke_port);
    let ntpd = sundial_nts_client(&pki.show("ca.crt"), ntp_port, ke_port);
    let log = stop_once_it_selects(ntpd, &chronyd);
    assert!(log.contains("NTS-KE with 127.0.0.1 gave"), "{log}");

    let ntpd = sundial_nts_client(&pki.show("other-ca.crt"), ntp_port, ke_port);
    let failed = eventually(NEVER_WITHIN, || {
        ntpd.log().contains("NTS-KE with 127.0.0.1:")
    });
    std::thread::sleep(Duration::from_secs(5));
    let log = ntpd.stop().log;
    assert!(failed, "no key-exchange failure logged:\n{log}");
    assert!(
        log.to_lowercase().contains("certificate"),
        "the log names the certificate: {log}"
    );
    assert!(
        !log.contains("system peer 127.0.0.1"),
        "selected under the wrong CA:\n{log}"
    );
    // No plain NTP went out instead: the association sent nothing at all.
    assert!(log.contains(": sent 0,"), "{log}");
}

#[test]
fn a_pool_with_nts_keys_its_servers_and_selects_one_over_nts() {
    let pki = Pki::generate();
    let (ntp_port, ke_port) = (free_port(), free_port());
    let chronyd = chronyd_nts_server(&pki, ntp_port, ke_port);
    // `localhost` is the name the certificate is checked against, for each address the pool
    // finds (chronyd listens on 127.0.0.1 only).
    let ntpd = Daemon::start(format!(
        "nts ca {}\npool localhost port {ntp_port} nts ntsport {ke_port} iburst minpoll 3 maxpoll 3\n",
        pki.show("ca.crt")
    ));
    let log = stop_once_it_selects(ntpd, &chronyd);
    assert!(log.contains("NTS-KE with localhost gave"), "{log}");
    // Every request the pool's association sent was authenticated.
    let sent: u64 = log
        .split("): sent ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no association summary:\n{log}"));
    let stats = chronyd.chronyc(&["serverstats"]);
    let stat = |label: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {label} in chronyd's serverstats:\n{stats}"))
    };
    assert_eq!(stat("NTS-KE connections accepted"), 1, "{stats}");
    assert!(sent > 0, "{log}");
    assert_eq!(stat("Authenticated NTP packets"), sent, "{stats}\n{log}");
}

#[test]
fn sundial_asking_chronyd_for_an_ntp_server_still_synchronises() {
    // `ask` puts the NTPv4 Server and Port Negotiation records in the request; chronyd's
    // server takes them as the hints they are and answers with keys and cookies.
    let pki = Pki::generate();
    let (ntp_port, ke_port) = (free_port(), free_port());
    let chronyd = chronyd_nts_server(&pki, ntp_port, ke_port);
    let ntpd = Daemon::start(format!(
        "nts ca {}\nserver 127.0.0.1 port {ntp_port} nts ntsport {ke_port} \
         ask 127.0.0.1:{ntp_port} iburst minpoll 3 maxpoll 3\n",
        pki.show("ca.crt")
    ));
    let log = stop_once_it_selects(ntpd, &chronyd);
    assert!(
        log.contains(&format!("(asked for 127.0.0.1, port {ntp_port})")),
        "{log}"
    );
    assert!(
        !log.contains("NTS-KE with 127.0.0.1:"),
        "no failed exchange: {log}"
    );
}

#[test]
fn cookies_survive_a_restart_with_a_cookie_file() {
    let pki = Pki::generate();
    let ke_port = free_port();
    let cookie = pki.path("cookie.keys");
    let extra = format!("nts cookie {}\n", cookie.display());
    let first = nts_server(&pki, ke_port, &extra);
    let ntp_port = first.port();
    let client = chronyd_nts_client(&pki.show("ca.crt"), ntp_port, ke_port);
    let mut last = String::new();
    let selected = eventually(SELECTS_WITHIN, || {
        last = client.chronyc_sources();
        last.lines().any(|l| l.starts_with("^*"))
    });
    assert!(selected, "{last}\n{}", client.log());
    let _ = first.stop();
    // The same port and key file, but the NTS-KE port closed: chronyd can only go on with the
    // cookies it holds, which the restarted server must still open.
    let second = Daemon::start_on_port(
        format!(
            "{LOCAL_CLOCK_CONFIG}nts enable\nnts cert {}\nnts key {}\nnts port {}\n{extra}",
            pki.show("server.crt"),
            pki.show("server.key"),
            free_port(),
        ),
        ntp_port,
    );
    // chronyd polls every second; the shutdown log counts what the restarted server did.
    std::thread::sleep(Duration::from_secs(8));
    let log = second.stop().log;
    assert!(
        counter(&log, "NTS repl") > 0,
        "old cookies not accepted:\n{log}\n{}",
        client.log()
    );
    assert_eq!(counter(&log, "NTS NAK"), 0, "{log}");
}

/// Waits until sundial takes the server at 127.0.0.1 as its system peer, then stops it and
/// returns its log; fails with both logs if that does not happen within [`SELECTS_WITHIN`].
fn stop_once_it_selects(ntpd: Daemon, server: &Peer) -> String {
    let selected = eventually(SELECTS_WITHIN, || {
        ntpd.log().contains("system peer 127.0.0.1")
    });
    let log = ntpd.stop().log;
    assert!(
        selected,
        "sundial never selected the server:\n{log}\n{}",
        server.log()
    );
    log
}

/// A number the shutdown log prints before `what`, e.g. `3 NTS repl(ies)`.
pub(crate) fn counter(log: &str, what: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split(what).next())
        .filter_map(|head| head.trim_end().rsplit(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}
