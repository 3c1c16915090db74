//! The outcome of one rate-limited call.

use std::time::Duration;

/// What the limiter decided for one call, with what an HTTP layer needs for
/// `Retry-After` and `RateLimit-*` headers.
///
/// ```
/// use std::time::Duration;
/// use distkit_ratelimit::{LocalOptions, LocalRateLimiter, RateLimit, Window};
///
/// let limit = RateLimit::per_window(2, Window::with_ten_buckets(Duration::from_secs(1))?)?;
/// let limiter = LocalRateLimiter::new(LocalOptions::new(limit));
/// let first = limiter.inc("user", 1)?;
/// assert!(first.is_allowed());
/// assert_eq!(first.remaining(), 1);
/// limiter.inc("user", 1)?;
/// let third = limiter.inc("user", 1)?;
/// assert!(third.is_rejected());
/// assert!(third.retry_after().unwrap() <= Duration::from_secs(1));
/// # Ok::<(), distkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub(crate) allowed: bool,
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) reset_after: Duration,
    pub(crate) suppression_factor: Option<f64>,
}

impl Decision {
    /// Whether the call may proceed (its cost was recorded).
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Whether the call was refused (nothing was admitted).
    pub fn is_rejected(&self) -> bool {
        !self.allowed
    }

    /// The window capacity (`RateLimit-Limit`).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Units left in the current window after this call (`RateLimit-Remaining`).
    /// For the hybrid provider an estimate from the last contact with Redis.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// For a refused call, how long until a call of the same cost fits
    /// (`Retry-After`); `None` when allowed. Exact for the local and Redis
    /// providers when no other call lands in between.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// How long until everything counted in the window now has left it
    /// (`RateLimit-Reset`); zero for an empty window.
    pub fn reset_after(&self) -> Duration {
        self.reset_after
    }

    /// The suppressed strategy's suppression factor for this call: `0` below
    /// the limit, `1` at the hard limit, in between the probability that a
    /// call is refused. `None` for the absolute strategy.
    pub fn suppression_factor(&self) -> Option<f64> {
        self.suppression_factor
    }
}
