//! A local fast path over a shared Redis budget: [`HybridRateLimiter`].
//!
//! Use it for hot keys shared by several processes, where a round trip per
//! call costs too much and a small, bounded over-admission is acceptable.
//!
//! # How it works
//!
//! Each instance leases up to `slice` units at a time from the window in
//! Redis (`scripts/ratelimit/hybrid_lease.lua`): the lease is counted in
//! Redis as admitted in the current bucket, atomically, and only if the
//! window has room. The instance then admits calls from the lease in
//! memory, with no round trip, until the lease runs out or its bucket ends.
//! The next lease hands the unused rest back to its bucket; a reconcile task
//! (every [`reconcile_interval`](crate::HybridOptions::reconcile_interval))
//! hands back expired leases of quiet keys and drops idle keys.
//!
//! # The bound
//!
//! Redis never counts more than the capacity in a window, leases included.
//! An instance admits from a lease only while the lease's bucket is current
//! by its own clock, which can lag the server's bucket end by one
//! network latency; so the only admissions not counted in a live bucket
//! come from at most one lease per instance. **N instances together admit
//! at most `capacity + N × slice` units in any span of `window - bucket`.**
//! Leased units an instance does not use are lost to the others until they
//! are handed back (at the instance's next lease or the next reconcile), so
//! under uneven load a hybrid limiter can also admit slightly less than the
//! capacity.
//!
//! Decisions' `remaining` is an estimate from the last contact with Redis.
//! The hybrid limiter implements the absolute strategy.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use distkit_core::{DistkitError, DistkitRedisKey, LuaScript, RedisConnection};

use crate::redis::{millis as reply_millis, window_key};
use crate::{Clock, Decision, HybridOptions, MonotonicClock, RateLimit};

fn hybrid_lease_script() -> LuaScript {
    LuaScript::new(
        "ratelimit.hybrid_lease",
        include_str!("../scripts/hybrid_lease.lua"),
    )
}

/// A rate limiter deciding in memory from budget slices leased from Redis.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), distkit_ratelimit::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # let namespace = distkit_ratelimit::DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_hybrid"))?;
/// use std::time::Duration;
/// use distkit_ratelimit::{DistkitRedisKey, HybridOptions, HybridRateLimiter, RateLimit, Window};
///
/// let limit = RateLimit::per_window(100, Window::with_ten_buckets(Duration::from_secs(10))?)?;
/// let limiter = HybridRateLimiter::new(HybridOptions::new(namespace, conn, limit, 10)?);
/// let user = DistkitRedisKey::try_from("user_123")?;
/// assert!(limiter.inc(&user, 1).await?.is_allowed()); // leases 10 units
/// // The next 9 calls are decided in memory, without awaiting Redis:
/// assert!(limiter.try_inc(&user, 1)?.unwrap().is_allowed());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HybridRateLimiter<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for HybridRateLimiter<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<C> {
    namespace: DistkitRedisKey,
    connection: RedisConnection,
    limit: RateLimit,
    slice: u64,
    max_keys: usize,
    clock: C,
    script: LuaScript,
    keys: DashMap<Box<str>, Arc<KeyState>, ahash::RandomState>,
}

#[derive(Debug, Default)]
struct KeyState {
    lease: Mutex<Lease>,
    /// Serializes the slow path of one key, so an instance holds at most one
    /// lease per key.
    refill: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Lease {
    /// Server bucket index of the lease, or -1.
    bucket: i64,
    /// Unused units of the lease.
    units: u64,
    /// Local time (ms) until which the lease may be used.
    valid_until_ms: u64,
    /// Local time (ms) until which calls are refused without asking Redis:
    /// at most one bucket after a refusal, so units handed back by other
    /// instances are seen soon.
    blocked_until_ms: u64,
    /// Local time (ms) at which the last refused cost fits, by Redis' answer.
    retry_at_ms: u64,
    /// Local time (ms) at which the window known at the last contact resets.
    reset_at_ms: u64,
    /// Units counted in the window at the last contact (leases included).
    known_admitted: u64,
    last_seen_ms: u64,
}

enum Fast {
    Decided(Decision),
    NeedsRedis,
}

impl Lease {
    fn try_local(&mut self, limit: &RateLimit, now_ms: u64, cost: u64) -> Fast {
        self.last_seen_ms = now_ms;
        let capacity = limit.capacity();
        if now_ms < self.valid_until_ms && self.units >= cost {
            self.units -= cost;
            return Fast::Decided(Decision {
                allowed: true,
                limit: capacity,
                remaining: capacity.saturating_sub(self.known_admitted) + self.units,
                retry_after: None,
                reset_after: Duration::from_millis(self.reset_at_ms.saturating_sub(now_ms)),
                suppression_factor: None,
            });
        }
        if now_ms < self.blocked_until_ms {
            return Fast::Decided(Decision {
                allowed: false,
                limit: capacity,
                remaining: 0,
                retry_after: Some(Duration::from_millis(
                    self.retry_at_ms.max(self.blocked_until_ms) - now_ms,
                )),
                reset_after: Duration::from_millis(self.reset_at_ms.saturating_sub(now_ms)),
                suppression_factor: None,
            });
        }
        Fast::NeedsRedis
    }
}

impl HybridRateLimiter<MonotonicClock> {
    /// A hybrid limiter on the real monotonic clock. Inside a Tokio runtime
    /// it starts the reconcile task (it ends when the last clone is dropped).
    pub fn new(options: HybridOptions) -> Self {
        Self::with_clock(options, MonotonicClock::new())
    }
}

impl<C: Clock> HybridRateLimiter<C> {
    /// A hybrid limiter whose fast path reads `clock`. Lease lifetimes are
    /// measured on it, so it must advance at real speed; the injectable clock
    /// exists for tests that freeze or skip time between calls.
    pub fn with_clock(options: HybridOptions, clock: C) -> Self {
        let inner = Arc::new(Inner {
            namespace: options.namespace,
            connection: options.connection,
            limit: options.limit,
            slice: options.slice,
            max_keys: options.max_keys,
            clock,
            script: hybrid_lease_script(),
            keys: DashMap::with_hasher(ahash::RandomState::new()),
        });
        let _reconcile =
            distkit_core::spawn_weak_loop(&inner, options.reconcile_interval, |inner| async move {
                inner.reconcile().await;
            });
        Self { inner }
    }

    /// Decides a call from this instance's lease without awaiting: `Some`
    /// when the lease covers it (or the key is known to be over its limit),
    /// `None` when the decision needs Redis (then call [`inc`](Self::inc)).
    ///
    /// A cost of 0 or above the capacity is an error.
    pub fn try_inc(
        &self,
        key: &DistkitRedisKey,
        cost: u64,
    ) -> Result<Option<Decision>, DistkitError> {
        self.inner.limit.check_cost(cost)?;
        let now_ms = self.inner.now_ms();
        let Some(state) = self.inner.keys.get(key.as_str()) else {
            return Ok(None);
        };
        let mut lease = state.lease.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(match lease.try_local(&self.inner.limit, now_ms, cost) {
            Fast::Decided(decision) => Some(decision),
            Fast::NeedsRedis => None,
        })
    }

    /// Decides a call of `cost` units on `key`: from the local lease when it
    /// covers the call, otherwise after one lease call to Redis.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future during the lease call may leave units leased in
    /// Redis that this instance never learns of: they count against the
    /// window until it slides past them (under-admission, never over).
    pub async fn inc(&self, key: &DistkitRedisKey, cost: u64) -> Result<Decision, DistkitError> {
        if let Some(decision) = self.try_inc(key, cost)? {
            return Ok(decision);
        }
        let inner = &*self.inner;
        let state = inner.state(key);
        let _refill = state.refill.lock().await;
        let (previous_bucket, previous_units) = {
            let now_ms = inner.now_ms();
            let mut lease = state.lease.lock().unwrap_or_else(PoisonError::into_inner);
            if let Fast::Decided(decision) = lease.try_local(&inner.limit, now_ms, cost) {
                return Ok(decision);
            }
            let handed_back = (lease.bucket, lease.units);
            lease.units = 0;
            lease.bucket = -1;
            handed_back
        };
        let want = inner.slice.max(cost);
        let reply = inner
            .lease(key, want, cost, previous_bucket, previous_units)
            .await;
        let (granted, bucket, bucket_left_ms, admitted, retry_after_ms, reset_after_ms) =
            match reply {
                Ok(reply) => reply,
                Err(error) => {
                    // The handed-back units are lost to this instance either
                    // way; Redis frees them when their bucket expires.
                    return Err(error);
                }
            };
        let now_ms = inner.now_ms();
        let capacity = inner.limit.capacity();
        let mut lease = state.lease.lock().unwrap_or_else(PoisonError::into_inner);
        lease.known_admitted = admitted;
        lease.reset_at_ms = now_ms + reply_millis(reset_after_ms).as_millis() as u64;
        if granted >= cost {
            lease.bucket = bucket;
            lease.units = granted - cost;
            lease.valid_until_ms = now_ms + reply_millis(bucket_left_ms).as_millis() as u64;
            lease.blocked_until_ms = 0;
            Ok(Decision {
                allowed: true,
                limit: capacity,
                remaining: capacity.saturating_sub(admitted) + lease.units,
                retry_after: None,
                reset_after: reply_millis(reset_after_ms),
                suppression_factor: None,
            })
        } else {
            let retry_after = reply_millis(retry_after_ms);
            let retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
            lease.retry_at_ms = now_ms.saturating_add(retry_after_ms);
            lease.blocked_until_ms = now_ms + retry_after_ms.min(inner.limit.window().bucket_ms());
            Ok(Decision {
                allowed: false,
                limit: capacity,
                remaining: capacity.saturating_sub(admitted),
                retry_after: Some(retry_after),
                reset_after: reply_millis(reset_after_ms),
                suppression_factor: None,
            })
        }
    }

    /// Hands back every expired lease and drops idle keys now (the reconcile
    /// task does this on its interval).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave some leases not handed back; they are
    /// handed back at the next reconcile or lease.
    pub async fn reconcile(&self) {
        self.inner.reconcile().await;
    }

    /// Number of keys tracked locally.
    pub fn tracked_keys(&self) -> usize {
        self.inner.keys.len()
    }

    /// The limit.
    pub fn limit(&self) -> RateLimit {
        self.inner.limit
    }
}

type LeaseReply = (u64, i64, i64, u64, i64, i64);

impl<C: Clock> Inner<C> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().as_millis()).unwrap_or(u64::MAX)
    }

    fn state(&self, key: &DistkitRedisKey) -> Arc<KeyState> {
        if let Some(state) = self.keys.get(key.as_str()) {
            return state.clone();
        }
        if self.keys.len() >= self.max_keys {
            self.make_room();
        }
        self.keys
            .entry(Box::from(key.as_str()))
            .or_insert_with(|| {
                Arc::new(KeyState {
                    lease: Mutex::new(Lease {
                        bucket: -1,
                        ..Lease::default()
                    }),
                    refill: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    async fn lease(
        &self,
        key: &DistkitRedisKey,
        want: u64,
        min: u64,
        previous_bucket: i64,
        previous_units: u64,
    ) -> Result<LeaseReply, DistkitError> {
        let window = self.limit.window();
        let mut connection = self.connection.clone();
        self.script
            .call()
            .key(window_key(&self.namespace, key, "absolute"))
            .arg(window.bucket_ms())
            .arg(window.buckets())
            .arg(self.limit.capacity())
            .arg(want)
            .arg(min)
            .arg(previous_bucket)
            .arg(previous_units)
            .invoke(&mut connection)
            .await
    }

    fn is_idle(&self, lease: &Lease, now_ms: u64) -> bool {
        lease.units == 0
            && now_ms >= lease.blocked_until_ms
            && now_ms.saturating_sub(lease.last_seen_ms) >= self.limit.window().size_ms()
    }

    async fn reconcile(&self) {
        let now_ms = self.now_ms();
        let candidates: Vec<(Box<str>, Arc<KeyState>)> = self
            .keys
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        for (name, state) in candidates {
            let Ok(_refill) = state.refill.try_lock() else {
                continue;
            };
            let handed_back = {
                let mut lease = state.lease.lock().unwrap_or_else(PoisonError::into_inner);
                if now_ms >= lease.valid_until_ms && lease.units > 0 {
                    let handed_back = (lease.bucket, lease.units);
                    lease.units = 0;
                    lease.bucket = -1;
                    Some(handed_back)
                } else {
                    None
                }
            };
            if let (Some((bucket, units)), Ok(key)) =
                (handed_back, DistkitRedisKey::try_from(&*name))
                && let Err(error) = self.lease(&key, 0, 0, bucket, units).await
            {
                tracing::debug!(%error, "distkit ratelimit: could not hand back a lease");
            }
        }
        self.keys.retain(|_, state| {
            let lease = state.lease.lock().unwrap_or_else(PoisonError::into_inner);
            !self.is_idle(&lease, now_ms)
        });
    }

    /// Drops idle keys, then (if still at the cap) the least recently used
    /// eighth; their leases stay counted in Redis until their bucket expires.
    fn make_room(&self) {
        let now_ms = self.now_ms();
        self.keys.retain(|_, state| {
            let lease = state.lease.lock().unwrap_or_else(PoisonError::into_inner);
            !self.is_idle(&lease, now_ms)
        });
        if self.keys.len() < self.max_keys {
            return;
        }
        let mut last_seen: Vec<u64> = self
            .keys
            .iter()
            .map(|entry| {
                entry
                    .value()
                    .lease
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last_seen_ms
            })
            .collect();
        let drop_count = (self.max_keys / 8).max(1).min(last_seen.len());
        if drop_count == 0 {
            return;
        }
        let (_, cutoff, _) = last_seen.select_nth_unstable(drop_count - 1);
        let cutoff = *cutoff;
        let mut dropped = 0usize;
        self.keys.retain(|_, state| {
            if dropped >= drop_count {
                return true;
            }
            let seen = state
                .lease
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last_seen_ms;
            if seen <= cutoff {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }
}
