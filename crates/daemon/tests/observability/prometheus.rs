//! Debian's `prometheus` scrapes a sundial that follows a real chronyd on loopback; a PromQL
//! query over its HTTP API returns sundial's offset and the number of requests it answered;
//! `promtool check metrics` finds no problem in the exposition; and abuse of the metrics port
//! gets clean errors or closed connections while NTP answers keep coming.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::peers::Peer;
use crate::support::process::{self, notime, output_within};
use crate::support::tempdir::TempDir;
use crate::support::wait::eventually_every;
use crate::support::{Daemon, SntpClient};

/// How long prometheus gets to start and scrape.
const SCRAPE_LIMIT: Duration = Duration::from_secs(60);

fn free_tcp_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

/// A plain HTTP/1.0 GET; returns (status line, body) or `None` when the connection failed.
fn http_get(addr: SocketAddr, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// Sends `bytes` and returns whatever comes back before the server closes (or 10 s pass).
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The one value of a PromQL instant query, if it has exactly one sample.
fn promql(prom: SocketAddr, query: &str) -> Option<f64> {
    let q: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={q}"))?;
    if !status.contains(" 200 ") || !body.contains("\"status\":\"success\"") {
        return None;
    }
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{…},"value":[T,"V"]}]}}
    let results = body.matches("\"value\":[").count();
    if results != 1 {
        return None;
    }
    let (_, rest) = body.split_once("\"value\":[")?;
    let v = rest.split(",\"").nth(1)?.split('"').next()?;
    v.parse().ok()
}

/// Debian's prometheus on loopback with its own config and storage, stopped on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Self {
        let dir = TempDir::new("prometheus");
        let port = free_tcp_port();
        let config = dir.write(
            "prometheus.yml",
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: sundial\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        );
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut cmd = notime("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let child = process::spawn_logged(&mut cmd, &dir.path().join("prometheus.log"));
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = process::stop(&mut self.child, Duration::from_secs(10));
    }
}

fn sundial_offset_ms(daemon: &Daemon) -> Option<f64> {
    let mut cmd = notime(env!("CARGO_BIN_EXE_ntpq"));
    cmd.args([
        "--port",
        &daemon.port().to_string(),
        "-c",
        "rv 0 offset",
        "127.0.0.1",
    ]);
    let out = output_within(&mut cmd, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (_, v) = text.split_once("offset=")?;
    v.split([',', '\n', ' ']).next()?.trim().parse().ok()
}

#[test]
fn prometheus_scrapes_sundials_offset_and_answered_requests() {
    let chronyd = Peer::chronyd_on_loopback(2);
    let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let config = format!(
        "server 127.0.0.1 port {} iburst minpoll 3 maxpoll 3\n",
        chronyd.port()
    );
    let daemon = Daemon::start_clock(
        config,
        "simulated:0.003:4",
        &["--metrics", &metrics.to_string()],
    );
    let client = SntpClient::new(daemon.addr_v4());
    const REQUESTS: u32 = 5;
    for _ in 0..REQUESTS {
        client.query(daemon.addr_v4(), 4).expect("an NTP reply");
    }

    // promtool finds nothing wrong with the exposition.
    let (status, body) = http_get(metrics, "/metrics").expect("metrics");
    assert!(status.contains(" 200 "), "{status}");
    let mut check = Command::new("promtool");
    check
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = check
        .spawn()
        .expect("promtool (tools/install-test-peers installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let prom = Prometheus::start(metrics);
    // The requests answered, as Prometheus stored them: at least the ones sent above (ntpq's
    // and sundial's own mode 6 replies may add to it).
    let answered = eventually_every(SCRAPE_LIMIT, Duration::from_millis(500), || {
        promql(
            prom.addr,
            "ntp_server_replied_packets_total{job=\"sundial\"}",
        )
        .is_some_and(|v| v >= f64::from(REQUESTS))
    });
    assert!(
        answered,
        "no answered-requests series; prometheus log:\n{}",
        prom.log()
    );
    let up = promql(prom.addr, "up{job=\"sundial\"}");
    assert_eq!(up, Some(1.0), "the target is up");
    // The same requests by version and mode, received and answered, and the client table
    // holding the client that sent them.
    for family in ["ntp_server_requests_total", "ntp_server_responses_total"] {
        let query = format!("{family}{{job=\"sundial\",version=\"4\",mode=\"client\"}}");
        let counted = eventually_every(SCRAPE_LIMIT, Duration::from_millis(500), || {
            promql(prom.addr, &query).is_some_and(|v| v >= f64::from(REQUESTS))
        });
        assert!(counted, "{query}; prometheus log:\n{}", prom.log());
    }
    let clients = promql(
        prom.addr,
        "ntp_server_client_table_entries{job=\"sundial\"}",
    );
    assert!(clients.is_some_and(|n| n >= 1.0), "{clients:?}");

    // sundial's offset, once it corrects the clock, is what ntpq shows for it.
    let mut matched = false;
    let deadline = Instant::now() + SCRAPE_LIMIT;
    while Instant::now() < deadline && !matched {
        let before = sundial_offset_ms(&daemon);
        // A scrape after `before` was read.
        thread::sleep(Duration::from_millis(2500));
        let stored = promql(prom.addr, "ntp_system_offset_seconds{job=\"sundial\"}");
        let after = sundial_offset_ms(&daemon);
        if let (Some(b), Some(s), Some(a)) = (before, stored, after)
            && b.to_bits() == a.to_bits()
            && b.abs() > 0.0
        {
            assert!(
                (s * 1e3 - b).abs() < 1e-3,
                "Prometheus has {s} s, ntpq shows {b} ms"
            );
            matched = true;
        }
    }
    assert!(
        matched,
        "no settled offset to compare; log:\n{}",
        daemon.log()
    );
}

#[test]
fn abuse_of_the_metrics_port_never_delays_ntp_answers() {
    let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let daemon = Daemon::start_with(
        crate::support::LOCAL_CLOCK_CONFIG,
        &["--metrics", &metrics.to_string()],
    );
    let server = daemon.addr_v4();

    // NTP requests every 50 ms for as long as the abuse lasts; every one must be answered
    // quickly.
    let stop = Arc::new(AtomicBool::new(false));
    let slowest_us = Arc::new(AtomicU64::new(0));
    let prober = {
        let (stop, slowest_us) = (Arc::clone(&stop), Arc::clone(&slowest_us));
        thread::spawn(move || {
            let client = SntpClient::new(server);
            let mut answered = 0u32;
            let mut missed = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match client.query(server, 4) {
                    Ok(_) => {
                        answered += 1;
                        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                        slowest_us.fetch_max(us, Ordering::Relaxed);
                    }
                    Err(_) => missed += 1,
                }
                thread::sleep(Duration::from_millis(50));
            }
            (answered, missed)
        })
    };

    // Slowloris: connections that send a byte now and then and never finish.
    let loris: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(metrics).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(15)))
                    .expect("timeout");
                let t = Instant::now();
                for b in b"GET /metrics HTTP/1.1\r\nX: " {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(300));
                }
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                (t.elapsed(), String::from_utf8_lossy(&out).into_owned())
            })
        })
        .collect();
    let oversized = {
        let mut req = b"GET /metrics HTTP/1.1\r\nX-Fill: ".to_vec();
        req.resize(1 << 20, b'a');
        raw_exchange(metrics, &req)
    };
    let garbage = raw_exchange(
        metrics,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    );
    let wrong_path = raw_exchange(metrics, b"GET /admin HTTP/1.1\r\n\r\n");
    let wrong_method = raw_exchange(metrics, b"DELETE /metrics HTTP/1.1\r\n\r\n");
    let loris: Vec<(Duration, String)> = loris
        .into_iter()
        .map(|h| h.join().expect("slowloris thread"))
        .collect();
    // A real scrape still works afterwards.
    let after = http_get(metrics, "/metrics");
    stop.store(true, Ordering::Relaxed);
    let (answered, missed) = prober.join().expect("prober");

    assert!(
        oversized.is_empty() || oversized.starts_with("HTTP/1.1 431 "),
        "oversized: {oversized:?}"
    );
    assert!(garbage.starts_with("HTTP/1.1 400 "), "garbage: {garbage:?}");
    assert!(wrong_path.starts_with("HTTP/1.1 404 "), "{wrong_path:?}");
    assert!(
        wrong_method.starts_with("HTTP/1.1 405 "),
        "{wrong_method:?}"
    );
    for (took, reply) in &loris {
        // Served one after another, each cut off at the 2 s deadline.
        assert!(
            reply.starts_with("HTTP/1.1 408 ") || reply.is_empty(),
            "slowloris got {reply:?}"
        );
        assert!(*took < Duration::from_secs(8 * 2 + 5), "held for {took:?}");
    }
    let (status, body) = after.expect("a scrape after the abuse");
    assert!(
        status.contains(" 200 ") && body.contains("ntp_system_stratum 11"),
        "{status}"
    );
    assert!(
        answered >= 20,
        "only {answered} NTP answers during the abuse"
    );
    assert_eq!(missed, 0, "NTP requests went unanswered during the abuse");
    let slowest = Duration::from_micros(slowest_us.load(Ordering::Relaxed));
    assert!(
        slowest < Duration::from_millis(500),
        "an NTP answer took {slowest:?}"
    );
}

#[test]
fn noquery_closes_the_metrics_port_to_that_source_and_a_reload_opens_it() {
    let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let base = crate::support::LOCAL_CLOCK_CONFIG;
    let daemon = Daemon::start_with(
        format!("{base}restrict 127.0.0.1 noquery\n"),
        &["--metrics", &metrics.to_string()],
    );
    // The same rules as mode 6: the connection is closed without a word.
    assert_eq!(
        raw_exchange(metrics, b"GET /metrics HTTP/1.0\r\n\r\n"),
        "",
        "answered under noquery"
    );
    std::fs::write(daemon.config_path(), base).expect("edit");
    daemon.signal("HUP");
    assert!(
        crate::support::eventually(Duration::from_secs(10), || http_get(metrics, "/metrics")
            .is_some_and(
                |(status, body)| status.contains(" 200 ") && body.contains("ntp_system_stratum")
            )),
        "no metrics once noquery is gone:\n{}",
        daemon.log()
    );
    daemon.stop().assert_success();
}
