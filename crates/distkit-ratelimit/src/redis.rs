//! Rate limiting shared through Redis: [`RedisRateLimiter`].
//!
//! Use it when several processes share a limit and every decision must be
//! exact: each call is one script call (one round trip), atomic on the
//! server. For hot keys where a round trip per call is too much, use the
//! [`HybridRateLimiter`](crate::HybridRateLimiter).
//!
//! Layout: one hash per limited key,
//! `distkit:ratelimit:<namespace>:{<key>}:<strategy>` (see
//! `scripts/ratelimit/README.md`); the hash tag is the limited key, so keys
//! spread over all shards of a cluster. Windows follow Redis server time, and
//! the hash expires one bucket after its newest bucket leaves the window.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

#[cfg(test)]
use distkit_core::KeyLayout;
use distkit_core::{DistkitError, DistkitRedisKey, LIBRARY_NAMESPACE, LuaScript, RedisConnection};

use crate::rng::{XorShift, random_seed};
use crate::scripts::{ABSOLUTE_INC, SUPPRESSED_INC};
use crate::window::suppression_factor;
use crate::{Decision, RateLimit, RedisOptions, Strategy};

pub(crate) const PRIMITIVE: &str = "ratelimit";

/// The window hash of `key` for a strategy (`absolute` or `suppressed`):
/// `KeyLayout::with_segments("ratelimit", &[namespace], key).key(&[part])`,
/// built with one allocation because it is on every call's path.
pub(crate) fn window_key(namespace: &DistkitRedisKey, key: &DistkitRedisKey, part: &str) -> String {
    let (namespace, key) = (namespace.as_str(), key.as_str());
    let mut name = String::with_capacity(
        LIBRARY_NAMESPACE.len() + PRIMITIVE.len() + namespace.len() + key.len() + part.len() + 8,
    );
    for piece in [
        LIBRARY_NAMESPACE,
        ":",
        PRIMITIVE,
        ":",
        namespace,
        ":{",
        key,
        "}:",
        part,
    ] {
        name.push_str(piece);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_key_follows_the_key_layout() -> Result<(), DistkitError> {
        let namespace = DistkitRedisKey::try_from("api")?;
        let key = DistkitRedisKey::try_from("user_1")?;
        assert_eq!(
            window_key(&namespace, &key, "absolute"),
            KeyLayout::with_segments(PRIMITIVE, &[&namespace], &key).key(&["absolute"])
        );
        Ok(())
    }
}

/// A sliding-window rate limiter whose state lives in Redis.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), distkit_ratelimit::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # let namespace = distkit_ratelimit::DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_redis"))?;
/// use std::time::Duration;
/// use distkit_ratelimit::{DistkitRedisKey, RateLimit, RedisOptions, RedisRateLimiter, Window};
///
/// let limit = RateLimit::per_window(2, Window::with_ten_buckets(Duration::from_secs(10))?)?;
/// let limiter = RedisRateLimiter::new(RedisOptions::new(namespace, conn, limit));
/// let user = DistkitRedisKey::try_from("user_123")?;
/// assert!(limiter.inc(&user, 1).await?.is_allowed());
/// assert!(limiter.inc(&user, 1).await?.is_allowed());
/// let refused = limiter.inc(&user, 1).await?;
/// assert!(refused.is_rejected());
/// assert!(refused.retry_after().unwrap() <= Duration::from_secs(10));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisRateLimiter {
    namespace: DistkitRedisKey,
    connection: RedisConnection,
    limit: RateLimit,
    strategy: Strategy,
    hard_limit: u64,
    script: &'static LuaScript,
    rng: Mutex<XorShift>,
}

impl RedisRateLimiter {
    /// A limiter over the options' connection (single node or cluster).
    pub fn new(options: RedisOptions) -> Self {
        let script = match options.strategy {
            Strategy::Absolute => &ABSOLUTE_INC,
            Strategy::Suppressed { .. } => &SUPPRESSED_INC,
        };
        Self {
            hard_limit: options.strategy.hard_limit(options.limit.capacity()),
            namespace: options.namespace,
            connection: options.connection,
            limit: options.limit,
            strategy: options.strategy,
            script,
            rng: Mutex::new(XorShift::new(options.seed.unwrap_or_else(random_seed))),
        }
    }

    /// Decides a call of `cost` units on `key` in one round trip, and records
    /// it if admitted (the suppressed strategy also records refused calls as
    /// observed load).
    ///
    /// A cost of 0 or above the capacity is a [`DistkitError::RateLimit`]
    /// before anything is sent. Redis failures are [`DistkitError::Redis`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after the request was sent may still record the
    /// call on the server (the caller does not learn the decision); it never
    /// records it twice.
    pub async fn inc(&self, key: &DistkitRedisKey, cost: u64) -> Result<Decision, DistkitError> {
        self.limit.check_cost(cost)?;
        let window = self.limit.window();
        let mut connection = self.connection.clone();
        match self.strategy {
            Strategy::Absolute => {
                let (allowed, admitted, retry_after_ms, reset_after_ms): (u8, u64, i64, i64) = self
                    .script
                    .call()
                    .key(window_key(&self.namespace, key, "absolute"))
                    .arg(window.bucket_ms())
                    .arg(window.buckets())
                    .arg(self.limit.capacity())
                    .arg(cost)
                    .invoke(&mut connection)
                    .await?;
                Ok(self.decision(allowed, admitted, retry_after_ms, reset_after_ms, None))
            }
            Strategy::Suppressed { .. } => {
                let draw = self
                    .rng
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .next_u53();
                let (allowed, admitted, retry_after_ms, reset_after_ms, regime, observed): (
                    u8,
                    u64,
                    i64,
                    i64,
                    u8,
                    u64,
                ) = self
                    .script
                    .call()
                    .key(window_key(&self.namespace, key, "suppressed"))
                    .arg(window.bucket_ms())
                    .arg(window.buckets())
                    .arg(self.limit.capacity())
                    .arg(self.hard_limit)
                    .arg(cost)
                    .arg(draw)
                    .invoke(&mut connection)
                    .await?;
                let factor = match regime {
                    0 => 0.0,
                    2 => 1.0,
                    _ => suppression_factor(self.limit.capacity(), observed),
                };
                Ok(self.decision(
                    allowed,
                    admitted,
                    retry_after_ms,
                    reset_after_ms,
                    Some(factor),
                ))
            }
        }
    }

    fn decision(
        &self,
        allowed: u8,
        admitted: u64,
        retry_after_ms: i64,
        reset_after_ms: i64,
        suppression_factor: Option<f64>,
    ) -> Decision {
        let capacity = self.limit.capacity();
        Decision {
            allowed: allowed == 1,
            limit: capacity,
            remaining: capacity.saturating_sub(admitted),
            retry_after: (allowed != 1).then(|| millis(retry_after_ms)),
            reset_after: millis(reset_after_ms),
            suppression_factor,
        }
    }

    /// The limit.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }
}

pub(crate) fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
