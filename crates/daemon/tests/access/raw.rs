//! Hand-built datagrams sent from inside a namespace. The test process cannot enter a
//! namespace itself (no raw `setns` call outside `sundial-sys`), so small Python clients run
//! there — Python is installed anyway, NTPsec's ntpq and ntpdig are written in it.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::support::netns::Netns;
use crate::support::process::Run;

/// Sends each datagram (hex) from `source` to `server`:123, each from a fresh socket, then
/// collects replies for `wait`. Returns, per datagram in order, the replies it got.
pub(crate) fn exchange(
    ns: &Netns,
    source: Ipv4Addr,
    server: Ipv4Addr,
    datagrams: &[Vec<u8>],
    wait: Duration,
) -> Vec<Vec<Vec<u8>>> {
    let hex: Vec<String> = datagrams.iter().map(|d| to_hex(d)).collect();
    let run = python(
        ns,
        EXCHANGE_SCRIPT,
        &[
            &source.to_string(),
            &server.to_string(),
            &wait.as_secs_f64().to_string(),
            &hex.join(","),
        ],
    );
    assert!(run.success, "exchange script failed: {run:?}");
    let mut replies = vec![Vec::new(); datagrams.len()];
    for line in run.stdout.lines() {
        let mut words = line.split_whitespace();
        let (Some(index), Some(reply)) = (words.next(), words.next()) else {
            continue;
        };
        let index: usize = index.parse().unwrap_or(usize::MAX);
        if let Some(slot) = replies.get_mut(index) {
            slot.push(from_hex(reply));
        }
    }
    replies
}

/// One datagram of the rate test's client and what came back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FloodEvent {
    /// A normal reply, this many seconds after the start.
    Answer(f64),
    /// A RATE kiss, with whether it is well formed (LI 3, stratum 0, refid RATE, origin =
    /// receive = transmit = the request's transmit timestamp) and its poll exponent.
    Kiss {
        at: f64,
        well_formed: bool,
        poll: i8,
    },
}

/// What [`flood`] saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Flood {
    /// Requests sent.
    pub(crate) sent: usize,
    /// Replies, in arrival order.
    pub(crate) events: Vec<FloodEvent>,
}

impl Flood {
    /// Normal replies.
    pub(crate) fn answers(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, FloodEvent::Answer(_)))
            .count()
    }

    /// When each kiss came, seconds after the start.
    pub(crate) fn kiss_times(&self) -> Vec<f64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                FloodEvent::Kiss { at, .. } => Some(*at),
                FloodEvent::Answer(_) => None,
            })
            .collect()
    }
}

/// Sends an NTPv4 client request from `source` to `server`:123 every `interval` for
/// `duration` (one socket, random transmit timestamps) and classifies the replies.
pub(crate) fn flood(
    ns: &Netns,
    source: Ipv4Addr,
    server: Ipv4Addr,
    interval: Duration,
    duration: Duration,
) -> Flood {
    let run = python(
        ns,
        FLOOD_SCRIPT,
        &[
            &source.to_string(),
            &server.to_string(),
            &interval.as_secs_f64().to_string(),
            &duration.as_secs_f64().to_string(),
        ],
    );
    assert!(run.success, "flood script failed: {run:?}");
    let mut flood = Flood {
        sent: 0,
        events: Vec::new(),
    };
    for line in run.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["sent", n] => flood.sent = n.parse().unwrap_or(0),
            ["answer", at] => flood
                .events
                .push(FloodEvent::Answer(at.parse().unwrap_or(-1.0))),
            ["kiss", at, ok, poll] => flood.events.push(FloodEvent::Kiss {
                at: at.parse().unwrap_or(-1.0),
                well_formed: *ok == "1",
                poll: poll.parse().unwrap_or(0),
            }),
            _ => {}
        }
    }
    flood
}

/// One request of [`sweep`] and what it cost the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SweepResult {
    pub(crate) mode: u8,
    pub(crate) version: u8,
    pub(crate) length: usize,
    pub(crate) variant: u8,
    /// Reply datagrams.
    pub(crate) datagrams: usize,
    /// Their octets in total.
    pub(crate) octets: usize,
    /// The longest one.
    pub(crate) longest: usize,
}

/// Sends requests of every mode and version at many lengths to `server`:123 (see
/// `SWEEP_SCRIPT`), from `sources` (time requests from the first, mode 6 requests from each in
/// turn), and reports the replies to each.
pub(crate) fn sweep(ns: &Netns, sources: &[Ipv4Addr], server: Ipv4Addr) -> Vec<SweepResult> {
    let sources: Vec<String> = sources.iter().map(Ipv4Addr::to_string).collect();
    let run = python(ns, SWEEP_SCRIPT, &[&server.to_string(), &sources.join(",")]);
    assert!(run.success, "sweep script failed: {run:?}");
    run.stdout
        .lines()
        .filter_map(|line| {
            let n: Vec<usize> = line
                .split_whitespace()
                .map(|w| w.parse().ok())
                .collect::<Option<_>>()?;
            let [mode, version, length, variant, datagrams, octets, longest] = n.as_slice() else {
                return None;
            };
            Some(SweepResult {
                mode: u8::try_from(*mode).ok()?,
                version: u8::try_from(*version).ok()?,
                length: *length,
                variant: u8::try_from(*variant).ok()?,
                datagrams: *datagrams,
                octets: *octets,
                longest: *longest,
            })
        })
        .collect()
}

fn python(ns: &Netns, script: &str, args: &[&str]) -> Run {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    ns.run("python3", &all)
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// argv: source, server, wait seconds, comma-separated hex datagrams. Prints `INDEX HEX` for
/// every reply.
const EXCHANGE_SCRIPT: &str = r#"
import select, socket, sys, time
source, server, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
datagrams = [bytes.fromhex(h) for h in sys.argv[4].split(",")] if sys.argv[4] else []
socks = []
for d in datagrams:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.sendto(d, (server, 123))
    socks.append(s)
deadline = time.monotonic() + wait
while socks:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    ready, _, _ = select.select(socks, [], [], left)
    for s in ready:
        try:
            data = s.recv(65536)
        except OSError:
            continue
        print(socks.index(s), data.hex(), flush=True)
"#;

/// argv: source, server, interval seconds, duration seconds. Prints `answer T` or
/// `kiss T WELL_FORMED POLL` per reply and `sent N` at the end.
const FLOOD_SCRIPT: &str = r#"
import os, select, socket, sys, time
source, server = sys.argv[1], sys.argv[2]
interval, duration = float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((source, 0))
start = time.monotonic()
sent, next_send, last_send = 0, start, start
xmts = set()
def receive(until):
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([s], [], [], left)
        if not ready:
            return
        data = s.recv(4096)
        if len(data) < 48 or data[24:32] not in xmts:
            continue
        at = time.monotonic() - start
        if data[1] == 0 and data[12:16] == b"RATE":
            org, rec, xmt = data[24:32], data[32:40], data[40:48]
            ok = data[0] >> 6 == 3 and org == rec == xmt
            poll = data[2] - 256 if data[2] > 127 else data[2]
            print("kiss %.3f %d %d" % (at, ok, poll), flush=True)
        else:
            print("answer %.3f" % at, flush=True)
while time.monotonic() - start < duration:
    nonce = os.urandom(8)
    xmts.add(nonce)
    s.sendto(bytes([0x23]) + bytes(39) + nonce, (server, 123))
    sent += 1
    next_send += interval
    receive(next_send)
receive(time.monotonic() + 1.0)
print("sent", sent, flush=True)
"#;

/// argv: server, comma-separated sources. For every mode (0–7), version (0–7) and length in
/// LENGTHS — four variants for mode 6, one for the others — sends one datagram from a fresh
/// socket and prints `MODE VERSION LENGTH VARIANT DATAGRAMS OCTETS LONGEST` for its replies.
/// Mode 6 variants: READSTAT of the system, READVAR of association 37000 (the first id
/// sundial hands out), READVAR naming two variables, and anything. Contents are pseudo-random
/// but the same on every run.
const SWEEP_SCRIPT: &str = r#"
import random, select, socket, struct, sys, time
server, sources = sys.argv[1], sys.argv[2].split(",")
LENGTHS = [0, 1, 2, 3, 4, 8, 11, 12, 13, 16, 20, 24, 44, 47, 48, 49, 52, 56, 60, 64, 68, 72,
           96, 100, 128, 256, 480, 481, 1000, 2048]
def build(mode, version, length, variant):
    rng = random.Random(((mode * 8 + version) * 4096 + length) * 4 + variant)
    b = bytearray(rng.getrandbits(8) for _ in range(length))
    if length:
        b[0] = (b[0] & 0xC0) | (version << 3) | mode
    if mode == 6 and length >= 12:
        data = length - 12
        names = b"stratum,ss_received"
        op, assoc, count = [(1, 0, 0), (2, 37000, 0), (2, 0, min(len(names), data)),
                            (b[1] & 0x1F, rng.choice([0, 37000, 1]), min(data, 468))][variant]
        b[1] = op
        b[6:12] = struct.pack(">HHH", assoc, 0, count)
        if variant == 2:
            b[12:12 + count] = names[:count]
    return bytes(b)
requests = []
for mode in range(8):
    for version in range(8):
        for length in LENGTHS:
            for variant in range(4 if mode == 6 else 1):
                requests.append((mode, version, length, variant))
mode6_sent = 0
BATCH = 256
for first in range(0, len(requests), BATCH):
    batch = []
    for (mode, version, length, variant) in requests[first:first + BATCH]:
        if mode == 6:
            source = sources[mode6_sent % len(sources)]
            mode6_sent += 1
        else:
            source = sources[0]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((source, 0))
        s.setblocking(False)
        s.sendto(build(mode, version, length, variant), (server, 123))
        batch.append([s, (mode, version, length, variant), 0, 0, 0])
    socks = [entry[0] for entry in batch]
    deadline = time.monotonic() + 0.4
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(socks, [], [], left)
        for s in ready:
            entry = batch[socks.index(s)]
            while True:
                try:
                    data = s.recv(65536)
                except OSError:
                    break
                entry[2] += 1
                entry[3] += len(data)
                entry[4] = max(entry[4], len(data))
    for s, (mode, version, length, variant), n, octets, longest in batch:
        print(mode, version, length, variant, n, octets, longest)
        s.close()
"#;
