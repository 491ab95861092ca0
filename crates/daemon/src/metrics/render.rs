//! The Prometheus text exposition (format 0.0.4) of one published snapshot.
//!
//! Written by hand rather than with a metrics crate: the format is `# HELP`, `# TYPE` and
//! `name{label="value"} number` lines, every value here is already in the snapshot the main
//! loop publishes, and a registry of live metric objects would only copy it again. Label values
//! are escaped as the format requires (`\\`, `\"`, `\n`); names are constants.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use sundial_proto::control::{ControlSnapshot, PeerVars};
use sundial_proto::counters::{CounterSnapshot, DropReason};
use sundial_proto::packet::{Leap, Mode};
use sundial_proto::ratelimit::RateLimiter;
use sundial_proto::select::Tally;

/// What the exposition needs beyond the snapshot.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// When the daemon started.
    pub start_time: SystemTime,
    /// The client table (rate limits, mode 6 budget, `mrulist`), for its occupancy.
    pub client_table: Option<Arc<RateLimiter>>,
}

/// Appends a metric family: HELP, TYPE and its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_into(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_number(self.out, value);
        self.out.push('\n');
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.header(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{v:.0}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

fn leap_value(leap: Leap) -> f64 {
    match leap {
        Leap::NoWarning => 0.0,
        Leap::AddSecond => 1.0,
        Leap::DeleteSecond => 2.0,
        Leap::Unsynchronized => 3.0,
    }
}

/// The tally's name, as the `tally` label.
pub fn tally_name(t: Tally) -> &'static str {
    match t {
        Tally::Reject => "reject",
        Tally::Falseticker => "falseticker",
        Tally::Excess => "excess",
        Tally::Outlier => "outlier",
        Tally::Candidate => "candidate",
        Tally::Backup => "backup",
        Tally::SystemPeer => "system_peer",
        Tally::PpsPeer => "pps_peer",
    }
}

const TALLIES: [Tally; 8] = [
    Tally::Reject,
    Tally::Falseticker,
    Tally::Excess,
    Tally::Outlier,
    Tally::Candidate,
    Tally::Backup,
    Tally::SystemPeer,
    Tally::PpsPeer,
];

/// The whole `/metrics` body.
pub fn render(control: &ControlSnapshot, process: &ProcessInfo) -> String {
    let mut out = String::with_capacity(8192);
    let mut f = Family { out: &mut out };
    let s = &control.system;

    f.single(
        "ntp_system_stratum",
        "gauge",
        "Stratum served (16: unsynchronised).",
        f64::from(s.stratum),
    );
    f.single(
        "ntp_system_synchronized",
        "gauge",
        "1 when the served time is synchronised (leap indicator other than 3), else 0.",
        if s.leap == Leap::Unsynchronized {
            0.0
        } else {
            1.0
        },
    );
    f.single(
        "ntp_system_leap_indicator",
        "gauge",
        "Leap indicator served: 0 none, 1 insert, 2 delete, 3 unsynchronised.",
        leap_value(s.leap),
    );
    f.single(
        "ntp_system_offset_seconds",
        "gauge",
        "Offset of the last clock update (ntpq rv offset).",
        s.offset,
    );
    f.single(
        "ntp_system_frequency_ppm",
        "gauge",
        "Frequency correction of the clock, in parts per million.",
        s.frequency,
    );
    f.single(
        "ntp_system_jitter_seconds",
        "gauge",
        "Combined jitter of the selected sources (ntpq rv sys_jitter).",
        s.sys_jitter,
    );
    f.single(
        "ntp_system_clock_jitter_seconds",
        "gauge",
        "Jitter of the clock offsets (ntpq rv clk_jitter).",
        s.clk_jitter,
    );
    f.single(
        "ntp_system_clock_wander_ppm",
        "gauge",
        "Frequency stability of the clock, in parts per million (ntpq rv clk_wander).",
        s.clk_wander,
    );
    f.single(
        "ntp_system_root_delay_seconds",
        "gauge",
        "Root delay served.",
        s.rootdelay,
    );
    f.single(
        "ntp_system_root_dispersion_seconds",
        "gauge",
        "Root dispersion served, as of the last publication (at most a second old).",
        s.rootdisp,
    );
    f.single(
        "ntp_system_poll_interval_seconds",
        "gauge",
        "Poll interval of the clock discipline (2^tc).",
        2f64.powi(i32::from(s.tc)),
    );
    f.single(
        "ntp_system_precision_seconds",
        "gauge",
        "Precision of the local clock.",
        2f64.powi(i32::from(s.precision)),
    );

    source_families(&mut f, control);
    server_families(&mut f, control);
    if let Some(table) = &process.client_table {
        client_table_families(&mut f, table);
    }
    nts_families(&mut f, control);

    f.single(
        "ntp_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        s.uptime as f64,
    );
    let start = process
        .start_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64().floor());
    f.single(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch.",
        start,
    );
    f.header(
        "ntp_build_info",
        "gauge",
        "The daemon's implementation and version (always 1).",
    );
    f.sample(
        "ntp_build_info",
        &[
            ("implementation", "sundial"),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
    out
}

/// The labels naming a source: its address, its name (as configured) and association id.
fn source_labels(p: &PeerVars) -> [(String, String); 3] {
    [
        ("address".into(), p.srcadr.to_string()),
        (
            "name".into(),
            p.srchost.clone().unwrap_or_else(|| p.srcadr.to_string()),
        ),
        ("association".into(), p.association_id.get().to_string()),
    ]
}

/// A per-source gauge: name, help, and how to read it.
type SourceGauge = (&'static str, &'static str, fn(&PeerVars) -> f64);

fn source_families(f: &mut Family<'_>, control: &ControlSnapshot) {
    let peers: Vec<&PeerVars> = control
        .peers
        .iter()
        .filter(|p| !p.is_pool_prototype)
        .collect();
    let labels: Vec<[(String, String); 3]> = peers.iter().map(|p| source_labels(p)).collect();
    let gauges: [SourceGauge; 8] = [
        (
            "ntp_source_reachability",
            "Reach register of the source: the last 8 polls as bits, newest lowest (377 octal = 255).",
            |p| f64::from(p.reach),
        ),
        (
            "ntp_source_offset_seconds",
            "Offset of the source's clock filter estimate.",
            |p| p.offset,
        ),
        (
            "ntp_source_delay_seconds",
            "Round-trip delay of the source's clock filter estimate.",
            |p| p.delay,
        ),
        (
            "ntp_source_dispersion_seconds",
            "Dispersion of the source's clock filter estimate.",
            |p| p.dispersion,
        ),
        (
            "ntp_source_jitter_seconds",
            "Jitter of the source's clock filter.",
            |p| p.jitter,
        ),
        (
            "ntp_source_stratum",
            "Stratum the source serves (16: unsynchronised or not heard from).",
            |p| f64::from(p.stratum),
        ),
        (
            "ntp_source_poll_interval_seconds",
            "Interval at which the source is polled (2^hpoll).",
            |p| 2f64.powi(i32::from(p.hpoll)),
        ),
        (
            "ntp_source_selected",
            "1 for the system peer (tally *) and a PPS clock disciplining with it (tally o), else 0.",
            |p| {
                f64::from(u8::from(matches!(
                    p.tally,
                    Tally::SystemPeer | Tally::PpsPeer
                )))
            },
        ),
    ];
    for (name, help, value) in gauges {
        f.header(name, "gauge", help);
        for (p, l) in peers.iter().zip(&labels) {
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            f.sample(name, &l, value(p));
        }
    }
    let name = "ntp_source_tally";
    f.header(
        name,
        "gauge",
        "The source's tally in the last selection round: 1 for its tally, 0 for the others.",
    );
    for (p, l) in peers.iter().zip(&labels) {
        for t in TALLIES {
            let mut l: Vec<(&str, &str)> =
                l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            l.push(("tally", tally_name(t)));
            f.sample(name, &l, f64::from(u8::from(p.tally == t)));
        }
    }
}

fn server_families(f: &mut Family<'_>, control: &ControlSnapshot) {
    let c = &control.system.counters;
    let counters: [(&str, &str, u64); 8] = [
        (
            "ntp_server_received_packets_total",
            "Datagrams received on the NTP port, mode 6 included.",
            c.received,
        ),
        (
            "ntp_server_replied_packets_total",
            "Datagrams answered (time replies, RATE kisses, crypto-NAKs and mode 6 replies).",
            c.replied,
        ),
        (
            "ntp_server_rate_kisses_total",
            "RATE kiss-o'-death replies sent.",
            c.kisses,
        ),
        (
            "ntp_server_crypto_naks_total",
            "Requests with a MAC that could not be verified, answered with a crypto-NAK.",
            c.crypto_naks,
        ),
        (
            "ntp_server_control_requests_total",
            "Mode 6 (ntpq) datagrams received.",
            c.control_requests,
        ),
        (
            "ntp_server_control_replies_total",
            "Mode 6 (ntpq) requests answered.",
            c.control_replies,
        ),
        (
            "ntp_server_sent_packets_total",
            "Datagrams sent (every fragment of a mode 6 reply counts).",
            c.sent,
        ),
        (
            "ntp_server_send_failures_total",
            "Replies the socket refused to send.",
            c.send_failures,
        ),
    ];
    for (name, help, value) in counters {
        f.header(name, "counter", help);
        f.sample(name, &[], value as f64);
    }
    let name = "ntp_server_requests_by_version_total";
    f.header(
        name,
        "counter",
        "Datagrams of every mode but 6 on the time-service path, by NTP version field.",
    );
    for v in 0..8u8 {
        f.sample(name, &[("version", &v.to_string())], c.by_version(v) as f64);
    }
    for (name, help, value) in [
        (
            "ntp_server_requests_total",
            "Datagrams handed to the server (time and mode 6), by the version and mode of \
             their first octet; combinations never seen are left out.",
            CounterSnapshot::requests as fn(&CounterSnapshot, u8, Mode) -> u64,
        ),
        (
            "ntp_server_responses_total",
            "Requests answered (time replies, kisses, NAKs, mode 6 replies), by the request's \
             version and mode; combinations never seen are left out.",
            CounterSnapshot::answered,
        ),
    ] {
        f.header(name, "counter", help);
        for version in 0..8u8 {
            for mode in 0..8u8 {
                let mode = Mode::from_bits(mode);
                let n = value(c, version, mode);
                if n > 0 {
                    let labels = [
                        ("version", version.to_string()),
                        ("mode", mode_name(mode).to_owned()),
                    ];
                    let labels: Vec<(&str, &str)> =
                        labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    f.sample(name, &labels, n as f64);
                }
            }
        }
    }
    let name = "ntp_server_dropped_packets_total";
    f.header(
        name,
        "counter",
        "Datagrams dropped without a reply, by reason.",
    );
    for r in DropReason::ALL {
        f.sample(name, &[("reason", r.name())], c.dropped(r) as f64);
    }
}

/// The client table: how full it is and how often a new client pushed out another.
fn client_table_families(f: &mut Family<'_>, table: &RateLimiter) {
    f.single(
        "ntp_server_client_table_entries",
        "gauge",
        "Clients the client table (rate limits, mrulist) holds now.",
        table.occupancy() as f64,
    );
    f.single(
        "ntp_server_client_table_capacity",
        "gauge",
        "Clients the client table can hold (mru maxdepth / maxmem).",
        table.capacity() as f64,
    );
    f.single(
        "ntp_server_client_table_evictions_total",
        "counter",
        "Clients that took the place of another in the full table.",
        table.evictions() as f64,
    );
}

/// A mode's label value.
fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Reserved => "reserved",
        Mode::SymmetricActive => "symmetric_active",
        Mode::SymmetricPassive => "symmetric_passive",
        Mode::Client => "client",
        Mode::Server => "server",
        Mode::Broadcast => "broadcast",
        Mode::Control => "control",
        Mode::Private => "private",
    }
}

/// NTS: authenticated replies, NAKs, cookies that did not open, and key exchanges by role
/// and result.
fn nts_families(f: &mut Family<'_>, control: &ControlSnapshot) {
    let c = &control.system.counters;
    let n = &control.system.nts;
    let counters: [(&str, &str, u64); 3] = [
        (
            "ntp_nts_replies_total",
            "NTS requests answered with an authenticated reply.",
            c.nts_replies,
        ),
        (
            "ntp_nts_naks_total",
            "NTS requests answered with an NTS NAK (cookie or authenticator failed).",
            c.nts_naks,
        ),
        (
            "ntp_nts_cookie_decrypt_failures_total",
            "NTS requests whose cookie did not open under any cookie key held.",
            c.nts_cookie_failures,
        ),
    ];
    for (name, help, value) in counters {
        f.header(name, "counter", help);
        f.sample(name, &[], value as f64);
    }
    let name = "ntp_nts_ke_total";
    f.header(
        name,
        "counter",
        "NTS key exchanges by role (server, client) and result (good, failed, refused).",
    );
    for (role, result, value) in [
        ("server", "good", n.ke_serves_good),
        ("server", "failed", n.ke_serves_bad),
        ("server", "refused", n.ke_refused),
        ("client", "good", n.ke_probes_good),
        ("client", "failed", n.ke_probes_bad),
    ] {
        f.sample(name, &[("role", role), ("result", result)], value as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_proto::control::{AssociationId, PeerVars};

    fn snapshot() -> ControlSnapshot {
        let mut c = ControlSnapshot::default();
        c.system.stratum = 3;
        c.system.leap = Leap::NoWarning;
        c.system.offset = -0.000_125;
        let mut p = PeerVars::new(
            AssociationId::new(7).unwrap(),
            "192.0.2.1".parse().unwrap(),
            123,
        );
        p.srchost = Some("ntp \"a\"\\b".into());
        p.tally = Tally::SystemPeer;
        p.reach = 0o377;
        p.offset = 0.0015;
        c.peers.push(p);
        c
    }

    fn body() -> String {
        render(
            &snapshot(),
            &ProcessInfo {
                start_time: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
                client_table: None,
            },
        )
    }

    #[test]
    fn system_values_are_in_seconds_with_their_names() {
        let b = body();
        assert!(b.contains("\nntp_system_stratum 3\n"), "{b}");
        assert!(b.contains("\nntp_system_offset_seconds -1.25e-4\n"), "{b}");
        assert!(b.contains("\nntp_system_synchronized 1\n"), "{b}");
        assert!(
            b.contains("\nprocess_start_time_seconds 1700000000\n"),
            "{b}"
        );
    }

    #[test]
    fn source_labels_are_escaped_and_the_system_peer_is_selected() {
        let b = body();
        let labels = r#"address="192.0.2.1",name="ntp \"a\"\\b",association="7""#;
        assert!(
            b.contains(&format!("ntp_source_selected{{{labels}}} 1\n")),
            "{b}"
        );
        assert!(
            b.contains(&format!("ntp_source_reachability{{{labels}}} 255\n")),
            "{b}"
        );
        assert!(
            b.contains(&format!(
                "ntp_source_tally{{{labels},tally=\"system_peer\"}} 1\n"
            )),
            "{b}"
        );
        assert!(
            b.contains(&format!(
                "ntp_source_tally{{{labels},tally=\"candidate\"}} 0\n"
            )),
            "{b}"
        );
    }

    #[test]
    fn requests_by_version_and_mode_and_the_client_table_are_exposed() {
        use sundial_proto::counters::ServerCounters;
        use sundial_proto::ratelimit::{LimitParams, RateLimiter};
        use sundial_proto::siphash::SipKey;
        use sundial_proto::time::{MonoTime, NtpTimestamp};

        let counters = ServerCounters::default();
        for _ in 0..3 {
            counters.count_request(0x23);
            counters.count_answered(0x23);
        }
        counters.count_request(0x16);
        let mut c = snapshot();
        c.system.counters = counters.snapshot();
        let table = Arc::new(RateLimiter::new(
            8,
            LimitParams::default(),
            SipKey::new(1, 2),
        ));
        for n in 0..20u8 {
            table.record(
                std::net::IpAddr::from([192, 0, 2, n]),
                123,
                None,
                NtpTimestamp::ZERO,
                MonoTime::ZERO,
                0x23,
                0,
            );
        }
        let b = render(
            &c,
            &ProcessInfo {
                start_time: SystemTime::UNIX_EPOCH,
                client_table: Some(table),
            },
        );
        assert!(
            b.contains("\nntp_server_requests_total{version=\"4\",mode=\"client\"} 3\n"),
            "{b}"
        );
        assert!(
            b.contains("\nntp_server_requests_total{version=\"2\",mode=\"control\"} 1\n"),
            "{b}"
        );
        assert!(
            b.contains("\nntp_server_responses_total{version=\"4\",mode=\"client\"} 3\n"),
            "{b}"
        );
        assert!(
            !b.contains("ntp_server_responses_total{version=\"2\""),
            "{b}"
        );
        // Eight entries, twenty clients: full, and twelve pushed out another.
        assert!(b.contains("\nntp_server_client_table_entries 8\n"), "{b}");
        assert!(b.contains("\nntp_server_client_table_capacity 8\n"), "{b}");
        assert!(
            b.contains("\nntp_server_client_table_evictions_total 12\n"),
            "{b}"
        );
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let b = body();
        let mut declared = std::collections::BTreeSet::new();
        for line in b.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{name} before its TYPE");
            }
        }
        assert!(b.ends_with('\n'));
    }
}
