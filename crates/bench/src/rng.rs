//! The harnesses' random choices: a seeded generator, so that a run is replayed from the
//! seed it printed, wherever it runs.

/// splitmix64 (Steele, Lea and Flood, 2014): the few choices of a benchmark need no more,
/// and the same seed must make the same choices on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % n).unwrap_or(0)
    }

    /// A number in `lo..=hi` (`lo` when the range is empty).
    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        let span = usize::try_from(hi - lo).unwrap_or(usize::MAX - 1) + 1;
        lo + u32::try_from(self.below(span)).unwrap_or(0)
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.below(items.len()))
    }

    /// Fisher–Yates, from the same stream.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// An independent generator for one part of a run (`part`: its index), so that the
    /// choices of one part do not depend on how many the parts before it made.
    pub fn fork(seed: u64, part: u64) -> Rng {
        let mut mixer = Rng(seed ^ part.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        Rng(mixer.next_u64())
    }
}

/// A seed from the clock and the pid, for runs given none.
pub fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // The low 64 bits change fastest; the pid separates two benchmarks started together.
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_choices_and_ranges_hold() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            let mut v = [1, 2, 3, 4, 5];
            rng.shuffle(&mut v);
            (rng.below(200), rng.between(3, 7), v)
        };
        assert_eq!(draw(42), draw(42));
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let n = rng.between(2, 4);
            assert!((2..=4).contains(&n));
        }
        assert_eq!(rng.between(5, 5), 5);
        assert_eq!(Rng::new(1).pick::<u8>(&[]), None);
        assert_ne!(Rng::fork(9, 0).next_u64(), Rng::fork(9, 1).next_u64());
    }
}
