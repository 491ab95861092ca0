//! The simulator's only source of randomness: a seeded generator, so a seed names a run.

/// Golden-ratio increment of SplitMix64 (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", 2014).
const SPLITMIX_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A small, fast, seedable generator (SplitMix64): plenty for network jitter, loss and
/// oscillator noise, and trivially reproducible.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// An independent generator for one part of a world (a clock, a link), so that adding
    /// randomness in one part does not shift the numbers another part sees.
    pub fn fork(seed: u64, stream: u64) -> Self {
        let mut base = Self(seed ^ stream.wrapping_mul(SPLITMIX_GAMMA).rotate_left(17));
        Self(base.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(SPLITMIX_GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[expect(
        clippy::cast_precision_loss,
        reason = "53 random bits are exact in f64"
    )]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponentially distributed with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }

    /// Standard normal (Box–Muller; one of the pair is dropped for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * core::f64::consts::PI * v).cos()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.uniform() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_forks_differ() {
        let a: Vec<u64> = (0..4).map(|_| SimRng::new(9).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(SimRng::fork(9, 1).next_u64(), SimRng::fork(9, 2).next_u64());
    }

    #[test]
    fn distributions_have_their_moments() {
        let mut rng = SimRng::new(42);
        let n = 20_000;
        let (mut sum_e, mut sum_n, mut sum_n2) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            sum_e += rng.exponential(2.0);
            let x = rng.normal();
            sum_n += x;
            sum_n2 += x * x;
        }
        let n = f64::from(n);
        assert!((sum_e / n - 2.0).abs() < 0.05, "{}", sum_e / n);
        assert!((sum_n / n).abs() < 0.03);
        assert!((sum_n2 / n - 1.0).abs() < 0.05);
    }
}
