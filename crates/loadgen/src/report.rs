//! What a run achieved, as text or JSON.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::generator::Tally;

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The server.
    pub target: SocketAddr,
    /// NTP version of the requests.
    pub version: u8,
    /// Client sockets used.
    pub sockets: usize,
    /// Offered rate, requests per second.
    pub offered_rate: u64,
    /// Planned sending time.
    pub duration: Duration,
    /// Requests handed to the kernel.
    pub sent: u64,
    /// Requests the kernel refused (full buffers, ICMP errors).
    pub send_errors: u64,
    /// The sending interval: the planned duration, or longer if the sender fell behind.
    pub elapsed: Duration,
    /// The replies.
    pub(crate) tally: Tally,
}

impl Report {
    pub(crate) fn new(
        config: &Config,
        sent: u64,
        send_errors: u64,
        elapsed: Duration,
        tally: &Tally,
    ) -> Self {
        Self {
            target: config.target,
            version: config.version,
            sockets: config.sockets,
            offered_rate: config.rate,
            duration: config.duration,
            sent,
            send_errors,
            elapsed,
            tally: tally.clone(),
        }
    }

    /// Requests answered, each counted once.
    pub fn received(&self) -> u64 {
        self.tally.matched
    }

    /// Requests sent per second of sending time.
    pub fn send_rate(&self) -> f64 {
        per_second(self.sent, self.elapsed)
    }

    /// Requests answered per second of sending time.
    pub fn reply_rate(&self) -> f64 {
        per_second(self.tally.matched, self.elapsed)
    }

    /// Share of sent requests that got no reply, in percent.
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        100.0 * (1.0 - ratio(self.tally.matched, self.sent))
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        format!(
            concat!(
                "{{\"target\":\"{}\",\"version\":{},\"sockets\":{},\"offered_rate\":{},",
                "\"duration_s\":{:.3},\"sent\":{},\"send_errors\":{},\"elapsed_s\":{:.6},",
                "\"send_rate\":{:.1},\"received\":{},\"reply_rate\":{:.1},\"loss_pct\":{:.4},",
                "\"duplicates\":{},\"unmatched\":{},\"malformed\":{},\"unsynchronised\":{}}}"
            ),
            self.target,
            self.version,
            self.sockets,
            self.offered_rate,
            self.duration.as_secs_f64(),
            self.sent,
            self.send_errors,
            self.elapsed.as_secs_f64(),
            self.send_rate(),
            self.tally.matched,
            self.reply_rate(),
            self.loss_percent(),
            self.tally.duplicates,
            self.tally.unmatched,
            self.tally.malformed,
            self.tally.unsynchronised,
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "target    {} NTPv{}, {} sockets, offered {} req/s for {:.3} s",
            self.target,
            self.version,
            self.sockets,
            self.offered_rate,
            self.duration.as_secs_f64()
        )?;
        writeln!(
            f,
            "sent      {} in {:.3} s ({:.0} req/s), {} send errors",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.send_rate(),
            self.send_errors
        )?;
        writeln!(
            f,
            "received  {} matched replies ({:.0} replies/s), loss {:.3} %",
            self.tally.matched,
            self.reply_rate(),
            self.loss_percent()
        )?;
        writeln!(
            f,
            "other     {} duplicates, {} unmatched, {} malformed; {} replies unsynchronised",
            self.tally.duplicates,
            self.tally.unmatched,
            self.tally.malformed,
            self.tally.unsynchronised
        )
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts below 2^53 are exact; this is for display"
)]
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts below 2^53 are exact; this is for display"
)]
fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            target: "127.0.0.1:123".parse().expect("addr"),
            version: 4,
            sockets: 2,
            offered_rate: 1000,
            duration: Duration::from_secs(2),
            sent: 2000,
            send_errors: 0,
            elapsed: Duration::from_secs(2),
            tally: Tally {
                matched: 1990,
                duplicates: 1,
                unmatched: 2,
                malformed: 3,
                unsynchronised: 4,
            },
        }
    }

    #[test]
    fn json_report_has_every_figure() {
        assert_eq!(
            report().to_json(),
            "{\"target\":\"127.0.0.1:123\",\"version\":4,\"sockets\":2,\"offered_rate\":1000,\
             \"duration_s\":2.000,\"sent\":2000,\"send_errors\":0,\"elapsed_s\":2.000000,\
             \"send_rate\":1000.0,\"received\":1990,\"reply_rate\":995.0,\"loss_pct\":0.5000,\
             \"duplicates\":1,\"unmatched\":2,\"malformed\":3,\"unsynchronised\":4}"
        );
    }

    #[test]
    fn text_report_shows_rates_and_loss() {
        let text = report().to_string();
        assert!(
            text.contains("sent      2000 in 2.000 s (1000 req/s)"),
            "{text}"
        );
        assert!(
            text.contains("received  1990 matched replies (995 replies/s), loss 0.500 %"),
            "{text}"
        );
    }

    #[test]
    fn nothing_sent_is_total_loss() {
        let mut r = report();
        r.sent = 0;
        r.tally.matched = 0;
        assert!((r.loss_percent() - 100.0).abs() < 1e-9);
    }
}
