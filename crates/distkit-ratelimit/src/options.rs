//! Options of the three providers, and the [`Strategy`].

use std::time::Duration;

use distkit_core::{DistkitRedisKey, RedisConnection};

use crate::{RateLimit, RateLimitError};

/// How a limiter treats calls past its capacity.
///
/// ```
/// use distkit_ratelimit::Strategy;
/// let suppressed = Strategy::suppressed(2.0)?;
/// assert!(Strategy::suppressed(0.5).is_err());
/// # Ok::<(), distkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Strategy {
    /// Admit while the window has room for the whole cost, refuse otherwise.
    #[default]
    Absolute,
    /// Past the capacity (the soft limit), refuse each call with probability
    /// `factor = 1 - capacity / observed`, where `observed` counts every call
    /// in the window (admitted or not, this one included), so the admitted
    /// fraction shrinks as load grows. At `capacity × hard_limit_factor`
    /// admitted units every call is refused (factor 1).
    Suppressed {
        /// Hard limit as a multiple of the capacity (at least 1).
        hard_limit_factor: HardLimitFactor,
    },
}

impl Strategy {
    /// The suppressed strategy with a hard limit of `capacity × hard_limit_factor`.
    pub fn suppressed(hard_limit_factor: f64) -> Result<Self, RateLimitError> {
        Ok(Strategy::Suppressed {
            hard_limit_factor: HardLimitFactor::new(hard_limit_factor)?,
        })
    }

    /// The hard limit in units for a capacity (the capacity itself for the
    /// absolute strategy).
    pub(crate) fn hard_limit(&self, capacity: u64) -> u64 {
        match self {
            Strategy::Absolute => capacity,
            Strategy::Suppressed { hard_limit_factor } => {
                let hard = (capacity as f64 * hard_limit_factor.0).floor();
                // capacity ≤ 2^53; a hard limit beyond u64 saturates.
                if hard >= u64::MAX as f64 {
                    u64::MAX
                } else {
                    (hard as u64).max(capacity)
                }
            }
        }
    }
}

/// The hard-limit factor of the suppressed strategy: finite, at least 1.
///
/// ```
/// use distkit_ratelimit::HardLimitFactor;
/// assert_eq!(HardLimitFactor::new(1.5)?.get(), 1.5);
/// assert!(HardLimitFactor::new(f64::NAN).is_err());
/// # Ok::<(), distkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HardLimitFactor(f64);

impl HardLimitFactor {
    /// Validates a factor.
    pub fn new(factor: f64) -> Result<Self, RateLimitError> {
        if factor.is_finite() && factor >= 1.0 {
            Ok(Self(factor))
        } else {
            Err(RateLimitError::InvalidHardLimitFactor(factor))
        }
    }

    /// The factor.
    pub fn get(&self) -> f64 {
        self.0
    }
}

/// Default number of keys a local limiter (or the hybrid fast path) tracks
/// at most.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Options of a [`LocalRateLimiter`](crate::LocalRateLimiter).
///
/// ```
/// use std::time::Duration;
/// use distkit_ratelimit::{LocalOptions, RateLimit, Strategy, Window};
/// let limit = RateLimit::per_window(100, Window::with_ten_buckets(Duration::from_secs(60))?)?;
/// let options = LocalOptions::new(limit).strategy(Strategy::suppressed(1.5)?).max_keys(10_000);
/// # Ok::<(), distkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub(crate) limit: RateLimit,
    pub(crate) strategy: Strategy,
    pub(crate) max_keys: usize,
    pub(crate) seed: Option<u64>,
}

impl LocalOptions {
    /// Absolute strategy, at most [`DEFAULT_MAX_KEYS`] keys, random seed.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            strategy: Strategy::Absolute,
            max_keys: DEFAULT_MAX_KEYS,
            seed: None,
        }
    }

    /// The strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Keys tracked at most (at least 1). When a new key would exceed it,
    /// idle keys are dropped first, then the least recently used eighth of
    /// the keys (which forget their usage).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// Seed of the suppressed strategy's draws (per key), for reproducible
    /// decisions in tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// Options of a [`RedisRateLimiter`](crate::RedisRateLimiter).
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), distkit_ratelimit::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use std::time::Duration;
/// use distkit_ratelimit::{DistkitRedisKey, RateLimit, RedisOptions, Window};
/// let limit = RateLimit::per_window(100, Window::with_ten_buckets(Duration::from_secs(60))?)?;
/// let options = RedisOptions::new(DistkitRedisKey::try_from("api")?, conn, limit);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub(crate) namespace: DistkitRedisKey,
    pub(crate) connection: RedisConnection,
    pub(crate) limit: RateLimit,
    pub(crate) strategy: Strategy,
    pub(crate) seed: Option<u64>,
}

impl RedisOptions {
    /// Limits keys under `namespace` (limiters with the same namespace and
    /// window share their budgets), on a single node or a cluster.
    pub fn new(
        namespace: DistkitRedisKey,
        connection: impl Into<RedisConnection>,
        limit: RateLimit,
    ) -> Self {
        Self {
            namespace,
            connection: connection.into(),
            limit,
            strategy: Strategy::Absolute,
            seed: None,
        }
    }

    /// The strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Seed of the suppressed strategy's draws (made by the client and sent
    /// to the script), for reproducible decisions in tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// Options of a [`HybridRateLimiter`](crate::HybridRateLimiter).
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), distkit_ratelimit::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use std::time::Duration;
/// use distkit_ratelimit::{DistkitRedisKey, HybridOptions, RateLimit, Strategy, Window};
/// let limit = RateLimit::per_window(1000, Window::with_ten_buckets(Duration::from_secs(1))?)?;
/// let absolute = HybridOptions::new(DistkitRedisKey::try_from("api")?, conn.clone(), limit, 20)?;
/// let suppressed = HybridOptions::new(DistkitRedisKey::try_from("api")?, conn, limit, 20)?
///     .strategy(Strategy::suppressed(1.5)?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HybridOptions {
    pub(crate) namespace: DistkitRedisKey,
    pub(crate) connection: RedisConnection,
    pub(crate) limit: RateLimit,
    pub(crate) slice: u64,
    pub(crate) reconcile_interval: Duration,
    pub(crate) max_keys: usize,
    pub(crate) strategy: Strategy,
    pub(crate) seed: Option<u64>,
}

impl HybridOptions {
    /// Leases up to `slice` units at a time from the shared window in Redis.
    /// Over-admission across N instances is bounded by `N × slice` per
    /// window (beyond the capacity for the absolute strategy, beyond the
    /// hard limit for the suppressed one); a slice of 0 is
    /// [`RateLimitError::ZeroSlice`]. Absolute strategy; the reconcile
    /// interval defaults to one bucket.
    pub fn new(
        namespace: DistkitRedisKey,
        connection: impl Into<RedisConnection>,
        limit: RateLimit,
        slice: u64,
    ) -> Result<Self, RateLimitError> {
        if slice == 0 {
            return Err(RateLimitError::ZeroSlice);
        }
        Ok(Self {
            namespace,
            connection: connection.into(),
            limit,
            slice,
            reconcile_interval: limit.window().bucket(),
            max_keys: DEFAULT_MAX_KEYS,
            strategy: Strategy::Absolute,
            seed: None,
        })
    }

    /// The strategy. Limiters of the same namespace share a key's budget
    /// with the [`RedisRateLimiter`](crate::RedisRateLimiter) of the same
    /// strategy (each strategy has its own hash).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Seed of the suppressed strategy's draws (per key, made locally), for
    /// reproducible decisions in tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How often unused leases are handed back and idle keys dropped.
    pub fn reconcile_interval(mut self, interval: Duration) -> Self {
        self.reconcile_interval = interval;
        self
    }

    /// Keys tracked locally at most (see [`LocalOptions::max_keys`]).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }
}
