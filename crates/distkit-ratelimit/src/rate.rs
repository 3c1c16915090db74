//! Unit-carrying configuration: [`Rate`], [`Window`] and the resulting
//! [`RateLimit`].
//!
//! A limit is `rate × window` units per sliding window. The window is cut into
//! buckets: usage is recorded in the bucket of the current time, and a bucket
//! leaves the window when it is `window` old. Smaller buckets slide more
//! smoothly; a refused Redis call reads every live bucket, so a window holds at
//! most [`MAX_BUCKETS`] of them.
//!
//! # Capacity rule
//!
//! The capacity of a window is `rate × window` **without rounding down
//! floating-point error**: a product within 1e-9 (relative) of an integer is
//! that integer, so `0.29/s × 100 s` is 29, not 28. A fractional capacity
//! keeps its integral part (`2.5/s × 1 s` admits 2 units: a third would exceed
//! 2.5). A capacity below one unit is refused at construction with
//! [`RateLimitError::CapacityBelowOne`], instead of building a limiter that
//! never admits: `0.5/s` needs a window of at least 2 s, and admits 1 unit
//! per 2 s window.

use std::time::Duration;

use crate::RateLimitError;

/// Buckets per window at most.
pub const MAX_BUCKETS: u64 = 1024;

/// Largest window capacity: 2^53 units, so counts stay exact in Lua numbers.
pub const MAX_CAPACITY: u64 = 1 << 53;

/// A rate: units per unit of time. Fractional rates are fine (`0.5/s`).
///
/// ```
/// use std::time::Duration;
/// use distkit_ratelimit::Rate;
///
/// let half = Rate::per_second(0.5)?;
/// assert_eq!(Rate::new(1.0, Duration::from_secs(2))?, half);
/// assert_eq!(Rate::per_minute(30.0)?, half);
/// assert!(Rate::per_second(-1.0).is_err());
/// # Ok::<(), distkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
}

impl Rate {
    /// `amount` units per `per`. Zero, negative, NaN or infinite rates (and a
    /// zero period) are [`RateLimitError::InvalidRate`].
    pub fn new(amount: f64, per: Duration) -> Result<Self, RateLimitError> {
        let invalid = || RateLimitError::InvalidRate { amount, per };
        if !amount.is_finite() || amount <= 0.0 || per.is_zero() {
            return Err(invalid());
        }
        let per_second = amount / per.as_secs_f64();
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(invalid());
        }
        Ok(Self { per_second })
    }

    /// `amount` units per second.
    pub fn per_second(amount: f64) -> Result<Self, RateLimitError> {
        Self::new(amount, Duration::from_secs(1))
    }

    /// `amount` units per minute.
    pub fn per_minute(amount: f64) -> Result<Self, RateLimitError> {
        Self::new(amount, Duration::from_secs(60))
    }

    /// `amount` units per hour.
    pub fn per_hour(amount: f64) -> Result<Self, RateLimitError> {
        Self::new(amount, Duration::from_secs(3600))
    }

    /// The rate in units per second.
    pub fn as_per_second(&self) -> f64 {
        self.per_second
    }
}

/// A sliding window cut into buckets of equal size.
///
/// Both sizes are whole milliseconds; the window is a whole number of
/// buckets, at most [`MAX_BUCKETS`].
///
/// ```
/// use std::time::Duration;
/// use distkit_ratelimit::{RateLimitError, Window};
///
/// let window = Window::new(Duration::from_secs(1), Duration::from_millis(100))?;
/// assert_eq!(window.buckets(), 10);
/// assert!(matches!(
///     Window::new(Duration::from_millis(50), Duration::from_millis(100)),
///     Err(RateLimitError::WindowSmallerThanBucket { .. })
/// ));
/// # Ok::<(), RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    size_ms: u64,
    bucket_ms: u64,
}

fn whole_millis(what: &'static str, size: Duration) -> Result<u64, RateLimitError> {
    let invalid = RateLimitError::InvalidDuration { what, size };
    if !size.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(invalid);
    }
    match u64::try_from(size.as_millis()) {
        Ok(ms) if ms >= 1 => Ok(ms),
        _ => Err(invalid),
    }
}

impl Window {
    /// A window of `size`, cut into buckets of `bucket`.
    pub fn new(size: Duration, bucket: Duration) -> Result<Self, RateLimitError> {
        let size_ms = whole_millis("window", size)?;
        let bucket_ms = whole_millis("bucket", bucket)?;
        if size_ms < bucket_ms {
            return Err(RateLimitError::WindowSmallerThanBucket {
                window: size,
                bucket,
            });
        }
        if !size_ms.is_multiple_of(bucket_ms) {
            return Err(RateLimitError::WindowNotMultipleOfBucket {
                window: size,
                bucket,
            });
        }
        let buckets = size_ms / bucket_ms;
        if buckets > MAX_BUCKETS {
            return Err(RateLimitError::TooManyBuckets {
                buckets,
                max: MAX_BUCKETS,
            });
        }
        Ok(Self { size_ms, bucket_ms })
    }

    /// A window of `size` cut into 10 buckets (or 1 ms buckets for windows
    /// below 10 ms; the size must then be a multiple of 10 ms or below it).
    pub fn with_ten_buckets(size: Duration) -> Result<Self, RateLimitError> {
        let size_ms = whole_millis("window", size)?;
        let bucket_ms = (size_ms / 10).max(1);
        Self::new(size, Duration::from_millis(bucket_ms))
    }

    /// The window size.
    pub fn size(&self) -> Duration {
        Duration::from_millis(self.size_ms)
    }

    /// The bucket size.
    pub fn bucket(&self) -> Duration {
        Duration::from_millis(self.bucket_ms)
    }

    /// Buckets per window.
    pub fn buckets(&self) -> u64 {
        self.size_ms / self.bucket_ms
    }

    pub(crate) fn size_ms(&self) -> u64 {
        self.size_ms
    }

    pub(crate) fn bucket_ms(&self) -> u64 {
        self.bucket_ms
    }
}

/// A rate over a window: at most [`capacity`](RateLimit::capacity) units in
/// any window (see the [module docs](crate::rate) for the capacity rule).
///
/// ```
/// use std::time::Duration;
/// use distkit_ratelimit::{Rate, RateLimit, RateLimitError, Window};
///
/// let window = Window::new(Duration::from_secs(2), Duration::from_millis(200))?;
/// let limit = RateLimit::new(Rate::per_second(0.5)?, window)?;
/// assert_eq!(limit.capacity(), 1);
///
/// let one_second = Window::new(Duration::from_secs(1), Duration::from_millis(100))?;
/// assert!(matches!(
///     RateLimit::new(Rate::per_second(0.5)?, one_second),
///     Err(RateLimitError::CapacityBelowOne { .. })
/// ));
/// # Ok::<(), RateLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    rate: Rate,
    window: Window,
    capacity: u64,
}

impl RateLimit {
    /// `rate` over `window`.
    pub fn new(rate: Rate, window: Window) -> Result<Self, RateLimitError> {
        let exact = rate.as_per_second() * window.size_ms as f64 / 1000.0;
        let nearest = exact.round();
        let units = if (exact - nearest).abs() <= 1e-9 * nearest.abs().max(1.0) {
            nearest
        } else {
            exact.floor()
        };
        if units < 1.0 {
            return Err(RateLimitError::CapacityBelowOne {
                per_second: rate.as_per_second(),
                window: window.size(),
            });
        }
        if units > MAX_CAPACITY as f64 {
            return Err(RateLimitError::CapacityTooLarge {
                per_second: rate.as_per_second(),
                window: window.size(),
            });
        }
        // In range [1, 2^53] and integral: the conversion is exact.
        let capacity = units as u64;
        Ok(Self {
            rate,
            window,
            capacity,
        })
    }

    /// `amount` units per `window`, as a convenience.
    ///
    /// ```
    /// use std::time::Duration;
    /// use distkit_ratelimit::{RateLimit, Window};
    /// let limit = RateLimit::per_window(10, Window::with_ten_buckets(Duration::from_secs(1))?)?;
    /// assert_eq!(limit.capacity(), 10);
    /// # Ok::<(), distkit_ratelimit::RateLimitError>(())
    /// ```
    pub fn per_window(amount: u64, window: Window) -> Result<Self, RateLimitError> {
        Self::new(Rate::new(amount as f64, window.size())?, window)
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Units admitted per window at most.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Checks a call's cost: at least 1 and at most the capacity.
    pub(crate) fn check_cost(&self, cost: u64) -> Result<(), RateLimitError> {
        if cost == 0 {
            return Err(RateLimitError::ZeroCost);
        }
        if cost > self.capacity {
            return Err(RateLimitError::CostExceedsCapacity {
                cost,
                capacity: self.capacity,
            });
        }
        Ok(())
    }
}
