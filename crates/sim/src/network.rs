//! Virtual network paths: a fixed delay plus exponential queueing per direction, loss, and
//! outage windows.
//!
//! Exponential queueing is the classic model of a lightly loaded path (and chrony's simulation
//! default): most packets see little queueing, a few see a lot. A constant difference between
//! the directions' base delays is an asymmetry no NTP client can see; it shows up as an offset
//! error of half the difference.

use crate::rng::SimRng;

/// One direction of a path: a fixed delay plus exponential jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathDelay {
    /// Minimum one-way delay, seconds.
    pub base_s: f64,
    /// Mean of the exponential queueing delay added to it, seconds.
    pub jitter_mean_s: f64,
}

impl PathDelay {
    /// One sample of the one-way delay.
    pub fn sample(&self, rng: &mut SimRng) -> f64 {
        self.base_s + rng.exponential(self.jitter_mean_s)
    }
}

/// A span of true time during which a path delivers nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outage {
    /// Start, true seconds.
    pub start_s: f64,
    /// End, true seconds.
    pub end_s: f64,
}

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// The path between the client and one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Client to server.
    pub up: PathDelay,
    /// Server to client.
    pub down: PathDelay,
    /// Probability that a datagram is lost, each direction independently.
    pub loss: f64,
    /// Windows in which every datagram is lost.
    pub outages: Vec<Outage>,
}

impl Link {
    /// The same delay both ways, no loss.
    pub fn symmetric(base_s: f64, jitter_mean_s: f64) -> Self {
        let d = PathDelay {
            base_s,
            jitter_mean_s,
        };
        Self {
            up: d,
            down: d,
            loss: 0.0,
            outages: Vec::new(),
        }
    }

    /// Whether the path is in an outage at true time `t`.
    pub fn is_down(&self, t: f64) -> bool {
        self.outages.iter().any(|o| t >= o.start_s && t < o.end_s)
    }

    /// The true time a datagram sent at `t` arrives, or `None` if it is lost.
    pub fn transit(&self, direction: Direction, t: f64, rng: &mut SimRng) -> Option<f64> {
        let path = match direction {
            Direction::Up => self.up,
            Direction::Down => self.down,
        };
        // Draw both numbers every time so that loss does not shift later delays.
        let delay = path.sample(rng);
        let lost = rng.chance(self.loss);
        (!lost && !self.is_down(t)).then_some(t + delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_never_undercut_the_base_and_average_base_plus_mean() {
        let link = Link::symmetric(100e-6, 100e-6);
        let mut rng = SimRng::new(3);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let at = link.transit(Direction::Up, 0.0, &mut rng).unwrap();
            assert!(at >= 100e-6);
            sum += at;
        }
        assert!((sum / 10_000.0 - 200e-6).abs() < 5e-6);
    }

    #[test]
    fn loss_and_outages_drop_datagrams() {
        let mut link = Link::symmetric(1e-3, 0.0);
        link.loss = 0.3;
        link.outages.push(Outage {
            start_s: 10.0,
            end_s: 20.0,
        });
        let mut rng = SimRng::new(5);
        let delivered = (0..10_000)
            .filter(|_| link.transit(Direction::Down, 0.0, &mut rng).is_some())
            .count();
        assert!((6_700..7_300).contains(&delivered), "{delivered}");
        assert!(link.transit(Direction::Up, 15.0, &mut rng).is_none());
        assert!(link.is_down(10.0) && !link.is_down(20.0));
    }
}
