//! A log-linear latency histogram in microseconds (HdrHistogram's layout, hand-rolled so the
//! benchmark adds no dependency).
//!
//! Values below 128 µs have their own bucket; above, each power of two is split into 64
//! buckets, so a reported quantile is within 1/64 (1.6 %) of the true value. Recording is an
//! index computation and one increment: no allocation, no branch on the data beyond one compare.

/// Values below this are recorded exactly.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above [`LINEAR`] (log2 = 6).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered above [`LINEAR`]: 2^7 µs up to 2^47 µs (about 4.5 years).
const OCTAVES: usize = 40;
const BUCKETS: usize = LINEAR as usize + OCTAVES * SUB as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

fn index(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    // value >= 128, so the highest set bit is at least 7.
    let top = 63 - value.leading_zeros();
    let octave = (top - 7) as usize;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = ((value >> (top - SUB_BITS)) & (SUB - 1)) as usize;
    LINEAR as usize + octave * SUB as usize + sub
}

/// The highest value that falls into bucket `index`.
fn upper_bound(index: usize) -> u64 {
    if index < LINEAR as usize {
        return index as u64;
    }
    let octave = ((index - LINEAR as usize) / SUB as usize) as u32;
    let sub = ((index - LINEAR as usize) % SUB as usize) as u64;
    let top = octave + 7;
    let low = (1u64 << top) + (sub << (top - SUB_BITS));
    low + (1u64 << (top - SUB_BITS)) - 1
}

impl Histogram {
    /// Records one value in microseconds; negative values (clock steps) count as 0.
    #[inline]
    pub fn record(&mut self, micros: i64) {
        let value = u64::try_from(micros).unwrap_or(0);
        self.counts[index(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest recorded value (exact), µs.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), µs: the upper bound of the bucket holding it, capped
    /// at the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        for value in (0..200_000u64).chain([1 << 30, (1 << 40) + 12345]) {
            let i = index(value);
            assert!(upper_bound(i) >= value, "{value}");
            if i > 0 {
                assert!(upper_bound(i - 1) < value, "{value}");
            }
            // Relative error of the reported bound stays under 1/64.
            assert!((upper_bound(i) - value) as f64 <= value as f64 / 64.0 + 1.0);
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        let within = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 / 60.0;
        assert!(within(h.quantile(0.5), 5_000), "{}", h.quantile(0.5));
        assert!(within(h.quantile(0.99), 9_900), "{}", h.quantile(0.99));
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(h.max(), 10_000);
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn merge_adds_counts_and_keeps_max() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(10);
        b.record(-5);
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.quantile(0.0), 0);
        assert_eq!(Histogram::default().quantile(0.99), 0);
    }
}
