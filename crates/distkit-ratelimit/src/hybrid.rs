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
//!
//! # Suppressed strategy
//!
//! With [`Strategy::Suppressed`](crate::Strategy::Suppressed) the lease
//! (`scripts/ratelimit/hybrid_suppressed_lease.lua`) reports the load the
//! instance observed since its last contact, and grants up to `slice`
//! units of the budget up to the **hard** limit, telling the instance how
//! many of them lie below the capacity. The instance admits those without a
//! draw (factor 0), and the others with the probability `1 - f`,
//! `f = 1 - capacity / observed`, where `observed` is the window's load at
//! the last contact plus what this instance observed since (this call
//! included): the same rule as the local and Redis providers. A call the
//! lease cannot cover goes to Redis; at the hard limit calls are refused
//! with factor 1. Redis never counts more than the hard limit, so **N
//! instances admit at most `hard + N × slice` units in any span of
//! `window - bucket`**. What other instances observed is seen at the next
//! contact (at most one bucket later), and leased units count as admitted
//! until used or handed back, so an instance may start drawing up to
//! `N × slice` units before the capacity: the hybrid suppressed limiter
//! errs towards refusing, never towards admitting.

use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::one::RefMut;
use distkit_core::{DistkitError, DistkitRedisKey, RedisConnection};

use crate::clock::millis;
use crate::redis_limiter::{reply_ms, window_key};
use crate::rng::{XorShift, key_seed, random_seed};
use crate::scripts::{HYBRID_LEASE, HYBRID_SUPPRESSED_LEASE};
use crate::window::suppression_factor;
use crate::{Clock, Decision, HybridOptions, MonotonicClock, RateLimit, Strategy};

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
///
/// The suppressed strategy: below the capacity every call passes, past it
/// the decision carries the suppression factor, and past the hard limit
/// every call is refused.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), distkit_ratelimit::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # let namespace = distkit_ratelimit::DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_hybrid_suppressed"))?;
/// use std::time::Duration;
/// use distkit_ratelimit::{DistkitRedisKey, HybridOptions, HybridRateLimiter, RateLimit, Strategy, Window};
///
/// let limit = RateLimit::per_window(10, Window::with_ten_buckets(Duration::from_secs(10))?)?;
/// let options = HybridOptions::new(namespace, conn, limit, 5)?.strategy(Strategy::suppressed(2.0)?);
/// let limiter = HybridRateLimiter::new(options);
/// let user = DistkitRedisKey::try_from("user_123")?;
/// for _ in 0..10 {
///     let decision = limiter.inc(&user, 1).await?;
///     assert!(decision.is_allowed());
///     assert_eq!(decision.suppression_factor(), Some(0.0));
/// }
/// let past_capacity = limiter.inc(&user, 1).await?; // 11 calls seen, capacity 10
/// assert_eq!(past_capacity.suppression_factor(), Some(1.0 - 10.0 / 11.0));
/// let mut admitted = 10 + u64::from(past_capacity.is_allowed());
/// while admitted < 20 {
///     admitted += u64::from(limiter.inc(&user, 1).await?.is_allowed());
/// }
/// let at_hard_limit = limiter.inc(&user, 1).await?;
/// assert!(at_hard_limit.is_rejected());
/// assert_eq!(at_hard_limit.suppression_factor(), Some(1.0));
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
    strategy: Strategy,
    hard_limit: u64,
    slice: u64,
    max_keys: usize,
    seed: u64,
    clock: C,
    keys: DashMap<Box<str>, KeyState, ahash::RandomState>,
}

/// One key's state. The fast path takes only the map shard's lock.
#[derive(Debug)]
struct KeyState {
    lease: Lease,
    /// Serializes the slow path of one key, so an instance holds at most one
    /// lease per key. Cloned only while a slow path or a reconcile runs: a
    /// key whose `refill` is shared is never evicted.
    refill: Arc<tokio::sync::Mutex<()>>,
}

impl KeyState {
    fn in_flight(&self) -> bool {
        Arc::strong_count(&self.refill) > 1
    }
}

#[derive(Debug, Clone)]
struct Lease {
    /// Server bucket index of the last contact with Redis (the lease's
    /// bucket), or -1.
    bucket: i64,
    /// Unused units of the lease.
    units: u64,
    /// Suppressed: unused units of the lease below the capacity (admitted
    /// without a draw); at most `units`.
    below_capacity: u64,
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
    /// Suppressed: units observed in the window at the last contact.
    known_observed: u64,
    /// Suppressed: units observed here since the last contact, reported at
    /// the next one.
    observed_since: u64,
    last_seen_ms: u64,
    /// Suppressed: this key's draws.
    rng: XorShift,
}

enum Fast {
    Decided(Decision),
    NeedsRedis,
}

impl Lease {
    fn new(seed: u64) -> Self {
        Self {
            bucket: -1,
            units: 0,
            below_capacity: 0,
            valid_until_ms: 0,
            blocked_until_ms: 0,
            retry_at_ms: 0,
            reset_at_ms: 0,
            known_admitted: 0,
            known_observed: 0,
            observed_since: 0,
            last_seen_ms: 0,
            rng: XorShift::new(seed),
        }
    }

    #[inline(always)]
    fn decision(
        &self,
        limit: &RateLimit,
        now_ms: u64,
        allowed: bool,
        retry_after_ms: u64,
        suppression_factor: Option<f64>,
    ) -> Decision {
        let capacity = limit.capacity();
        let remaining = if allowed {
            (capacity + self.units).saturating_sub(self.known_admitted)
        } else {
            capacity.saturating_sub(self.known_admitted)
        };
        Decision::new(
            allowed,
            capacity,
            remaining,
            retry_after_ms,
            self.reset_at_ms.saturating_sub(now_ms),
            suppression_factor,
        )
    }

    /// Decides from the lease a call whose factor is computed from
    /// `observed` (this call included), once the lease covers its cost.
    fn admit_suppressed(
        &mut self,
        limit: &RateLimit,
        now_ms: u64,
        cost: u64,
        observed: u64,
    ) -> Decision {
        let (allowed, factor) = if self.below_capacity >= cost {
            (true, 0.0)
        } else {
            let factor = suppression_factor(limit.capacity(), observed);
            (self.rng.next_f64() >= factor, factor)
        };
        if allowed {
            self.units -= cost;
            self.below_capacity = self.below_capacity.saturating_sub(cost);
            self.decision(limit, now_ms, true, 0, Some(factor))
        } else {
            // Refused by a draw: the next bucket may draw differently.
            let retry_after_ms = self.valid_until_ms.saturating_sub(now_ms);
            self.decision(limit, now_ms, false, retry_after_ms, Some(factor))
        }
    }

    /// Inlined for the same reason as `Series::decide`.
    #[inline(always)]
    fn try_local(
        &mut self,
        limit: &RateLimit,
        strategy: &Strategy,
        now_ms: u64,
        cost: u64,
    ) -> Fast {
        self.last_seen_ms = now_ms;
        let suppressed = matches!(strategy, Strategy::Suppressed { .. });
        if now_ms < self.valid_until_ms && self.units >= cost {
            if !suppressed {
                self.units -= cost;
                return Fast::Decided(self.decision(limit, now_ms, true, 0, None));
            }
            self.observed_since += cost;
            let observed = self.known_observed + self.observed_since;
            return Fast::Decided(self.admit_suppressed(limit, now_ms, cost, observed));
        }
        if now_ms < self.blocked_until_ms {
            let retry_after_ms = self.retry_at_ms.max(self.blocked_until_ms) - now_ms;
            let factor = if suppressed {
                self.observed_since += cost;
                Some(1.0)
            } else {
                None
            };
            return Fast::Decided(self.decision(limit, now_ms, false, retry_after_ms, factor));
        }
        Fast::NeedsRedis
    }

    /// Takes what the next contact reports: the lease's bucket, its unused
    /// units and the load observed since the last contact.
    fn hand_back(&mut self) -> HandBack {
        let handed_back = HandBack {
            bucket: self.bucket,
            units: self.units,
            observed: self.observed_since,
        };
        self.units = 0;
        self.below_capacity = 0;
        self.observed_since = 0;
        handed_back
    }

    fn has_something_to_report(&self) -> bool {
        self.units > 0 || self.observed_since > 0
    }
}

/// What an instance reports to Redis about its previous lease.
#[derive(Debug, Clone, Copy)]
struct HandBack {
    bucket: i64,
    units: u64,
    observed: u64,
}

/// A lease call's reply, for either strategy.
#[derive(Debug, Clone, Copy)]
struct LeaseReply {
    granted: u64,
    below_capacity: u64,
    bucket: i64,
    bucket_left_ms: i64,
    admitted: u64,
    observed: u64,
    retry_after_ms: i64,
    reset_after_ms: i64,
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
            strategy: options.strategy,
            hard_limit: options.strategy.hard_limit(options.limit.capacity()),
            slice: options.slice,
            max_keys: options.max_keys,
            seed: options.seed.unwrap_or_else(random_seed),
            clock,
            keys: DashMap::with_hasher(ahash::RandomState::new()),
        });
        let _reconcile =
            distkit_core::spawn_weak_loop(&inner, options.reconcile_interval, |inner| async move {
                inner.reconcile().await;
            });
        Self { inner }
    }

    /// Decides a call from this instance's lease without awaiting: `Some`
    /// when the lease covers it (or the key is known to be at its limit),
    /// `None` when the decision needs Redis (then call [`inc`](Self::inc)).
    ///
    /// A cost of 0 or above the capacity is an error.
    pub fn try_inc(
        &self,
        key: &DistkitRedisKey,
        cost: u64,
    ) -> Result<Option<Decision>, DistkitError> {
        let inner = &*self.inner;
        inner.limit.check_cost(cost)?;
        let Some(mut state) = inner.keys.get_mut(key.as_str()) else {
            return Ok(None);
        };
        let now_ms = inner.now_ms();
        Ok(
            match state
                .lease
                .try_local(&inner.limit, &inner.strategy, now_ms, cost)
            {
                Fast::Decided(decision) => Some(decision),
                Fast::NeedsRedis => None,
            },
        )
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
        // Shard guards are never held across an await.
        let refill = inner.state(key).refill.clone();
        let _refill = refill.lock().await;
        let handed_back = {
            let now_ms = inner.now_ms();
            let mut state = inner.state(key);
            if let Fast::Decided(decision) =
                state
                    .lease
                    .try_local(&inner.limit, &inner.strategy, now_ms, cost)
            {
                return Ok(decision);
            }
            state.lease.hand_back()
        };
        let want = inner.slice.max(cost);
        // On an error the handed-back units are lost to this instance; Redis
        // frees them when their bucket leaves the window.
        let reply = inner.lease(key, want, cost, handed_back, cost).await?;
        let now_ms = inner.now_ms();
        let mut state = inner.state(key);
        let lease = &mut state.lease;
        lease.bucket = reply.bucket;
        lease.known_admitted = reply.admitted;
        lease.known_observed = reply.observed;
        lease.reset_at_ms = now_ms.saturating_add(reply_ms(reply.reset_after_ms));
        let suppressed = matches!(inner.strategy, Strategy::Suppressed { .. });
        if reply.granted >= cost {
            lease.units = reply.granted;
            lease.below_capacity = reply.below_capacity;
            lease.valid_until_ms = now_ms.saturating_add(reply_ms(reply.bucket_left_ms));
            lease.blocked_until_ms = 0;
            if suppressed {
                // The script counted this call as observed already.
                let observed = reply.observed;
                return Ok(lease.admit_suppressed(&inner.limit, now_ms, cost, observed));
            }
            lease.units -= cost;
            return Ok(lease.decision(&inner.limit, now_ms, true, 0, None));
        }
        let retry_after_ms = reply_ms(reply.retry_after_ms);
        lease.retry_at_ms = now_ms.saturating_add(retry_after_ms);
        lease.blocked_until_ms =
            now_ms.saturating_add(retry_after_ms.min(inner.limit.window().bucket_ms()));
        let factor = suppressed.then_some(1.0);
        Ok(lease.decision(&inner.limit, now_ms, false, retry_after_ms, factor))
    }

    /// Hands back every expired lease (and, for the suppressed strategy,
    /// reports the load observed locally) and drops idle keys now; the
    /// reconcile task does this on its interval.
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

impl<C: Clock> Inner<C> {
    fn now_ms(&self) -> u64 {
        millis(self.clock.now())
    }

    /// The key's state, created if missing. Never hold it across an await.
    fn state(&self, key: &DistkitRedisKey) -> RefMut<'_, Box<str>, KeyState> {
        if let Some(state) = self.keys.get_mut(key.as_str()) {
            return state;
        }
        if self.keys.len() >= self.max_keys {
            self.make_room();
        }
        self.keys
            .entry(Box::from(key.as_str()))
            .or_insert_with(|| KeyState {
                lease: Lease::new(key_seed(self.seed, key.as_str())),
                refill: Arc::new(tokio::sync::Mutex::new(())),
            })
    }

    /// One lease call: hands `back` to Redis, then leases up to `want`
    /// units if at least `min` are free; `cost` is the waiting call's cost
    /// (counted as observed by the suppressed strategy).
    async fn lease(
        &self,
        key: &DistkitRedisKey,
        want: u64,
        min: u64,
        back: HandBack,
        cost: u64,
    ) -> Result<LeaseReply, DistkitError> {
        let window = self.limit.window();
        let mut connection = self.connection.clone();
        match self.strategy {
            Strategy::Absolute => {
                let (granted, bucket, bucket_left_ms, admitted, retry_after_ms, reset_after_ms): (
                    u64,
                    i64,
                    i64,
                    u64,
                    i64,
                    i64,
                ) = HYBRID_LEASE
                    .call()
                    .key(window_key(&self.namespace, key, "absolute"))
                    .arg(window.bucket_ms())
                    .arg(window.buckets())
                    .arg(self.limit.capacity())
                    .arg(want)
                    .arg(min)
                    .arg(back.bucket)
                    .arg(back.units)
                    .invoke(&mut connection)
                    .await?;
                Ok(LeaseReply {
                    granted,
                    below_capacity: granted,
                    bucket,
                    bucket_left_ms,
                    admitted,
                    observed: 0,
                    retry_after_ms,
                    reset_after_ms,
                })
            }
            Strategy::Suppressed { .. } => {
                let reply: (u64, u64, i64, i64, u64, u64, i64, i64) = HYBRID_SUPPRESSED_LEASE
                    .call()
                    .key(window_key(&self.namespace, key, "suppressed"))
                    .arg(window.bucket_ms())
                    .arg(window.buckets())
                    .arg(self.limit.capacity())
                    .arg(self.hard_limit)
                    .arg(want)
                    .arg(min)
                    .arg(back.bucket)
                    .arg(back.units)
                    .arg(back.observed)
                    .arg(cost)
                    .invoke(&mut connection)
                    .await?;
                let (granted, below_capacity, bucket, bucket_left_ms, admitted, observed) =
                    (reply.0, reply.1, reply.2, reply.3, reply.4, reply.5);
                Ok(LeaseReply {
                    granted,
                    below_capacity,
                    bucket,
                    bucket_left_ms,
                    admitted,
                    observed,
                    retry_after_ms: reply.6,
                    reset_after_ms: reply.7,
                })
            }
        }
    }

    fn is_idle(&self, lease: &Lease, now_ms: u64) -> bool {
        !lease.has_something_to_report()
            && now_ms >= lease.blocked_until_ms
            && now_ms.saturating_sub(lease.last_seen_ms) >= self.limit.window().size_ms()
    }

    async fn reconcile(&self) {
        let now_ms = self.now_ms();
        let candidates: Vec<(Box<str>, Arc<tokio::sync::Mutex<()>>)> = self
            .keys
            .iter()
            .filter(|entry| {
                now_ms >= entry.lease.valid_until_ms && entry.lease.has_something_to_report()
            })
            .map(|entry| (entry.key().clone(), entry.refill.clone()))
            .collect();
        for (name, refill) in candidates {
            let Ok(_refill) = refill.try_lock() else {
                continue;
            };
            let handed_back = self.keys.get_mut(&name).and_then(|mut state| {
                let lease = &mut state.lease;
                (now_ms >= lease.valid_until_ms && lease.has_something_to_report())
                    .then(|| lease.hand_back())
            });
            if let (Some(back), Ok(key)) = (handed_back, DistkitRedisKey::try_from(&*name))
                && let Err(error) = self.lease(&key, 0, 0, back, 0).await
            {
                tracing::debug!(%error, "distkit ratelimit: could not hand back a lease");
            }
        }
        self.keys
            .retain(|_, state| state.in_flight() || !self.is_idle(&state.lease, now_ms));
    }

    /// Drops idle keys, then (if still at the cap) the least recently used
    /// eighth; their leases stay counted in Redis until their bucket expires.
    fn make_room(&self) {
        let now_ms = self.now_ms();
        self.keys
            .retain(|_, state| state.in_flight() || !self.is_idle(&state.lease, now_ms));
        if self.keys.len() < self.max_keys {
            return;
        }
        let mut last_seen: Vec<u64> = self
            .keys
            .iter()
            .map(|entry| entry.value().lease.last_seen_ms)
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
            if !state.in_flight() && state.lease.last_seen_ms <= cutoff {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }
}
