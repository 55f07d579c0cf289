//! The sim's only source of randomness: xoshiro256** seeded through SplitMix64.
//!
//! Self-written so the stream never changes under us with a dependency upgrade: a seed names
//! the same market forever.

/// xoshiro256** (Blackman and Vigna). Not cryptographic; fast and well distributed.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeds the four state words from SplitMix64, as the xoshiro authors recommend (a state of
    /// all zeros is impossible this way).
    pub(crate) fn new(seed: u64) -> Self {
        let mut state = seed;
        let mut next = || splitmix64(&mut state);
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// A seed for an independent stream named `name` under `seed`.
    pub(crate) fn derive(seed: u64, name: &str) -> Self {
        let mut state = seed ^ fnv1a(name);
        Self::new(splitmix64(&mut state))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-64 * n). `n` must be > 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `0..n` for sizes and indices.
    pub(crate) fn below_usize(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `0..n` for tick and lot counts. `n` must be > 0.
    pub(crate) fn below_i64(&mut self, n: i64) -> i64 {
        self.below(n.unsigned_abs()) as i64
    }

    /// True with probability `p`. Draws nothing when `p <= 0`, so a switched-off fault does not
    /// consume randomness.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        unit < p
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bit: a stable hash of a name (std's hashers are randomly seeded or unspecified).
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ_by_name() {
        let take = |mut rng: Rng| (0..8).map(|_| rng.next_u64()).collect::<Vec<_>>();
        assert_eq!(take(Rng::new(7)), take(Rng::new(7)));
        assert_ne!(take(Rng::new(7)), take(Rng::new(8)));
        assert_ne!(
            take(Rng::derive(7, "BTC-USDT")),
            take(Rng::derive(7, "ETH-USDT"))
        );
    }

    #[test]
    fn below_and_chance_stay_in_range() {
        let mut rng = Rng::new(1);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            seen[rng.below_usize(5)] += 1;
            assert!(!rng.chance(0.0));
            assert!(rng.chance(1.0));
        }
        assert!(seen.iter().all(|&n| n > 1500), "{seen:?}");
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a(""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a("a"), 0xAF63_DC4C_8601_EC8C);
    }
}
