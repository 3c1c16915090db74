//! The outcome of one rate-limited call.

use std::fmt;
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
#[derive(Clone, Copy, PartialEq)]
pub struct Decision {
    // Plain words without padding: a decision is built under a shard lock
    // and copied out on every call, so its layout is kept copy-friendly.
    limit: u64,
    remaining: u64,
    /// Meaningful when refused; 0 when allowed.
    retry_after_ms: u64,
    reset_after_ms: u64,
    /// Meaningful when `FACTOR` is set; 0.0 otherwise.
    factor: f64,
    flags: u64,
}

const ALLOWED: u64 = 1;
const FACTOR: u64 = 2;

impl Decision {
    /// A decision: `retry_after_ms` is kept only for a refused call.
    #[inline(always)]
    pub(crate) fn new(
        allowed: bool,
        limit: u64,
        remaining: u64,
        retry_after_ms: u64,
        reset_after_ms: u64,
        suppression_factor: Option<f64>,
    ) -> Self {
        Self {
            limit,
            remaining,
            retry_after_ms: if allowed { 0 } else { retry_after_ms },
            reset_after_ms,
            factor: suppression_factor.unwrap_or(0.0),
            flags: u64::from(allowed) * ALLOWED + u64::from(suppression_factor.is_some()) * FACTOR,
        }
    }

    /// Whether the call may proceed (its cost was recorded).
    pub fn is_allowed(&self) -> bool {
        self.flags & ALLOWED != 0
    }

    /// Whether the call was refused (nothing was admitted).
    pub fn is_rejected(&self) -> bool {
        !self.is_allowed()
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
        self.is_rejected()
            .then(|| Duration::from_millis(self.retry_after_ms))
    }

    /// How long until everything counted in the window now has left it
    /// (`RateLimit-Reset`); zero for an empty window.
    pub fn reset_after(&self) -> Duration {
        Duration::from_millis(self.reset_after_ms)
    }

    /// The suppressed strategy's suppression factor for this call: `0` below
    /// the limit, `1` at the hard limit, in between the probability that a
    /// call is refused. `None` for the absolute strategy.
    pub fn suppression_factor(&self) -> Option<f64> {
        (self.flags & FACTOR != 0).then_some(self.factor)
    }
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("allowed", &self.is_allowed())
            .field("limit", &self.limit)
            .field("remaining", &self.remaining)
            .field("retry_after", &self.retry_after())
            .field("reset_after", &self.reset_after())
            .field("suppression_factor", &self.suppression_factor())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_read_the_compact_layout() {
        let allowed = Decision::new(true, 10, 4, 99, 250, None);
        assert!(allowed.is_allowed());
        assert_eq!(allowed.retry_after(), None);
        assert_eq!(allowed.reset_after(), Duration::from_millis(250));
        assert_eq!(allowed.suppression_factor(), None);
        // A retry delay given for an allowed call is not kept, so equal
        // decisions compare equal.
        assert_eq!(allowed, Decision::new(true, 10, 4, 0, 250, None));

        let refused = Decision::new(false, 10, 0, 120, 900, Some(0.5));
        assert!(refused.is_rejected());
        assert_eq!(refused.remaining(), 0);
        assert_eq!(refused.limit(), 10);
        assert_eq!(refused.retry_after(), Some(Duration::from_millis(120)));
        assert_eq!(refused.suppression_factor(), Some(0.5));
        assert_eq!(
            format!("{refused:?}"),
            "Decision { allowed: false, limit: 10, remaining: 0, retry_after: Some(120ms), \
             reset_after: 900ms, suppression_factor: Some(0.5) }"
        );
    }
}
