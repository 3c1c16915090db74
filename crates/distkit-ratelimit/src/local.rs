//! In-process rate limiting: [`LocalRateLimiter`].
//!
//! Use it when one process owns the limit (a single server, a CLI, a worker
//! protecting a downstream), or in front of a shared limiter to shed obvious
//! floods. A decision takes one lock, the write lock of the [`DashMap`] shard
//! holding the key, for a few dozen instructions; nothing allocates on a
//! warm key.
//! The default [`MonotonicClock`] reads the system clock on every call; for
//! the hottest paths, [`CoarseClock`](crate::CoarseClock) replaces that read
//! with an atomic load (millisecond resolution).
//!
//! Memory is bounded: a background task (when a Tokio runtime is present)
//! drops keys with nothing left in the window every window, and a new key
//! beyond [`max_keys`](crate::LocalOptions::max_keys) first drops idle keys,
//! then the least recently used eighth of the keys.

use std::sync::Arc;

use dashmap::DashMap;

use crate::clock::millis;
use crate::rng::{key_seed, random_seed};
use crate::window::Series;
use crate::{Clock, Decision, LocalOptions, MonotonicClock, RateLimit, RateLimitError, Strategy};

/// A sliding-window rate limiter in process memory, with an injectable
/// [`Clock`].
///
/// ```
/// use std::time::Duration;
/// use distkit_ratelimit::{LocalOptions, LocalRateLimiter, ManualClock, RateLimit, Window};
///
/// let clock = ManualClock::new();
/// let limit = RateLimit::per_window(10, Window::new(Duration::from_secs(1), Duration::from_millis(100))?)?;
/// let limiter = LocalRateLimiter::with_clock(LocalOptions::new(limit), clock.clone());
/// assert!(limiter.inc("user", 9)?.is_allowed());
/// let refused = limiter.inc("user", 9)?; // 9 + 9 would cross 10
/// assert!(refused.is_rejected());
/// assert_eq!(refused.retry_after(), Some(Duration::from_secs(1)));
/// clock.advance(Duration::from_secs(1));
/// assert!(limiter.inc("user", 9)?.is_allowed());
/// # Ok::<(), distkit_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug)]
pub struct LocalRateLimiter<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for LocalRateLimiter<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<C> {
    limit: RateLimit,
    strategy: Strategy,
    max_keys: usize,
    seed: u64,
    clock: C,
    series: DashMap<Box<str>, Series, ahash::RandomState>,
}

impl LocalRateLimiter<MonotonicClock> {
    /// A limiter on the real monotonic clock. Inside a Tokio runtime it also
    /// starts the idle-key sweep (it ends when the last clone is dropped).
    pub fn new(options: LocalOptions) -> Self {
        Self::with_clock(options, MonotonicClock::new())
    }
}

impl<C: Clock> LocalRateLimiter<C> {
    /// A limiter on `clock`.
    pub fn with_clock(options: LocalOptions, clock: C) -> Self {
        let inner = Arc::new(Inner {
            limit: options.limit,
            strategy: options.strategy,
            max_keys: options.max_keys,
            seed: options.seed.unwrap_or_else(random_seed),
            clock,
            series: DashMap::with_hasher(ahash::RandomState::new()),
        });
        let _sweep = distkit_core::spawn_weak_loop(
            &inner,
            options.limit.window().size(),
            |inner| async move {
                inner.evict_idle();
            },
        );
        Self { inner }
    }

    /// Decides a call of `cost` units on `key`, and records it if admitted.
    ///
    /// A cost of 0, or above the window capacity, is an error (nothing is
    /// recorded); costs are unsigned, so negative costs cannot be expressed.
    pub fn inc(&self, key: &str, cost: u64) -> Result<Decision, RateLimitError> {
        self.inner.limit.check_cost(cost)?;
        let inner = &*self.inner;
        let now_ms = millis(inner.clock.now());
        if let Some(mut series) = inner.series.get_mut(key) {
            return Ok(series.decide(&inner.limit, &inner.strategy, now_ms, cost));
        }
        if inner.series.len() >= inner.max_keys {
            inner.make_room(now_ms);
        }
        let mut series = inner
            .series
            .entry(Box::from(key))
            .or_insert_with(|| Series::new(key_seed(inner.seed, key)));
        Ok(series.decide(&inner.limit, &inner.strategy, now_ms, cost))
    }

    /// Drops every key with nothing left in its window; returns how many.
    pub fn evict_idle(&self) -> usize {
        self.inner.evict_idle()
    }

    /// Number of keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.inner.series.len()
    }

    /// The limit.
    pub fn limit(&self) -> RateLimit {
        self.inner.limit
    }
}

impl<C: Clock> Inner<C> {
    fn evict_idle(&self) -> usize {
        let now_ms = millis(self.clock.now());
        let before = self.series.len();
        self.series
            .retain(|_, series| !series.is_idle(now_ms, &self.limit));
        before.saturating_sub(self.series.len())
    }

    /// Called before inserting a key at the cap: drop idle keys, and if
    /// that is not enough, the least recently used eighth. The O(keys) scan
    /// runs at most once per `max_keys / 8` new keys.
    fn make_room(&self, now_ms: u64) {
        self.evict_idle();
        if self.series.len() < self.max_keys {
            return;
        }
        let mut last_seen: Vec<u64> = self
            .series
            .iter()
            .map(|entry| entry.value().last_seen_ms)
            .collect();
        let drop_count = (self.max_keys / 8).max(1).min(last_seen.len());
        if drop_count == 0 {
            return;
        }
        let (_, cutoff, _) = last_seen.select_nth_unstable(drop_count - 1);
        let cutoff = (*cutoff).min(now_ms);
        let mut dropped = 0usize;
        self.series.retain(|_, series| {
            if dropped >= drop_count {
                return true;
            }
            if series.last_seen_ms <= cutoff {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }
}
