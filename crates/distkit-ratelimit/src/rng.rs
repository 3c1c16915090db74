//! A small seedable generator (xorshift64*) for the suppressed strategy's
//! draws: statistically adequate for admission sampling, and deterministic
//! under a fixed seed so tests can check admitted fractions exactly.

/// xorshift64* (Vigna), seeded through splitmix64 so any seed works.
#[derive(Debug, Clone)]
pub(crate) struct XorShift {
    state: u64,
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        let state = splitmix64(seed);
        Self {
            state: if state == 0 {
                0x2545_F491_4F6C_DD1D
            } else {
                state
            },
        }
    }

    /// A uniform integer in `[0, 2^53)`: the draw `next_u53() / 2^53`,
    /// exact both as an `f64` and as a Lua number.
    pub(crate) fn next_u53(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11
    }

    /// A uniform draw in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.next_u53() as f64 / (1u64 << 53) as f64
    }
}

/// A seed from the process's randomness (hash of a fresh `RandomState`).
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
}

/// The seed of one key's draws, from a limiter's seed.
pub(crate) fn key_seed(seed: u64, key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    splitmix64(seed ^ hasher.finish())
}
