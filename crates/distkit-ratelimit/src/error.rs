//! Errors of the rate limiter.

use std::time::Duration;

use distkit_core::DistkitError;

/// Invalid rate-limiter input, reported at construction (or, for a call's
/// cost, before anything is recorded). Converts into
/// [`DistkitError::RateLimit`]; downcast the boxed error to inspect it.
///
/// ```
/// use distkit_ratelimit::{Rate, RateLimitError};
///
/// assert!(matches!(Rate::per_second(0.0), Err(RateLimitError::InvalidRate { .. })));
/// assert!(matches!(Rate::per_second(f64::NAN), Err(RateLimitError::InvalidRate { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The rate was zero, negative, NaN or infinite.
    #[error("invalid rate: {amount} per {per:?} (must be a finite number above zero)")]
    InvalidRate {
        /// The amount given.
        amount: f64,
        /// The period it was given for.
        per: Duration,
    },
    /// The window or bucket size was zero, below one millisecond, or not a
    /// whole number of milliseconds.
    #[error("invalid {what} size {size:?}: must be a whole number of milliseconds, at least 1 ms")]
    InvalidDuration {
        /// `window` or `bucket`.
        what: &'static str,
        /// The size given.
        size: Duration,
    },
    /// The window is smaller than one bucket.
    #[error("window {window:?} is smaller than its bucket {bucket:?}")]
    WindowSmallerThanBucket {
        /// The window size.
        window: Duration,
        /// The bucket size.
        bucket: Duration,
    },
    /// The window is not a whole number of buckets.
    #[error("window {window:?} is not a whole number of buckets of {bucket:?}")]
    WindowNotMultipleOfBucket {
        /// The window size.
        window: Duration,
        /// The bucket size.
        bucket: Duration,
    },
    /// The window has more buckets than [`MAX_BUCKETS`](crate::MAX_BUCKETS)
    /// (a refused Redis call reads every live bucket).
    #[error("window of {buckets} buckets exceeds the maximum of {max}")]
    TooManyBuckets {
        /// Buckets per window asked for.
        buckets: u64,
        /// The maximum.
        max: u64,
    },
    /// `rate × window` is below one unit: no call of cost 1 could ever pass.
    /// Use a longer window (0.5/s needs a window of at least 2 s).
    #[error("rate {per_second}/s over a {window:?} window allows less than one unit")]
    CapacityBelowOne {
        /// The rate, per second.
        per_second: f64,
        /// The window size.
        window: Duration,
    },
    /// `rate × window` is above [`MAX_CAPACITY`](crate::MAX_CAPACITY).
    #[error("rate {per_second}/s over a {window:?} window exceeds the maximum capacity")]
    CapacityTooLarge {
        /// The rate, per second.
        per_second: f64,
        /// The window size.
        window: Duration,
    },
    /// The hard-limit factor of the suppressed strategy was below 1, NaN or
    /// infinite.
    #[error("invalid hard limit factor {0} (must be finite and at least 1)")]
    InvalidHardLimitFactor(f64),
    /// The slice of a hybrid limiter was zero.
    #[error("invalid hybrid slice 0: must be at least 1")]
    ZeroSlice,
    /// A call had cost 0.
    #[error("invalid cost 0: a call costs at least 1")]
    ZeroCost,
    /// A call cost more than the whole window's capacity, so it could never
    /// be admitted.
    #[error("cost {cost} exceeds the window capacity {capacity}")]
    CostExceedsCapacity {
        /// The cost asked for.
        cost: u64,
        /// The window capacity.
        capacity: u64,
    },
}

impl From<RateLimitError> for DistkitError {
    fn from(error: RateLimitError) -> Self {
        DistkitError::RateLimit(Box::new(error))
    }
}
