//! Sliding-window rate limiting for distkit, on one process, on Redis (single
//! node or cluster), or both.
//!
//! Two layers live here:
//!
//! - With the `trypema` feature, the [trypema](https://docs.rs/trypema) crate
//!   is re-exported unchanged as `trypema`, with its local, Redis and hybrid
//!   providers. trypema's Redis scripts touch several keys without a common
//!   hash tag and take a single-node `ConnectionManager`, so they **do not run
//!   on Redis Cluster**.
//! - The native limiter, always built: [`LocalRateLimiter`],
//!   [`RedisRateLimiter`] and [`HybridRateLimiter`], configured with
//!   unit-carrying [`Rate`], [`Window`] and [`RateLimit`], returning a
//!   [`Decision`] with `retry_after`, `remaining` and `reset_after`. Every
//!   Redis call touches one key (hash tag = the limited key), so it runs on a
//!   cluster with keys spread over all shards; windows follow Redis server
//!   time; every key has a TTL, so nothing needs a cleanup loop.
//!
//! Where the native limiter differs from trypema on purpose:
//!
//! | trypema 2.2 | native limiter |
//! |---|---|
//! | a weighted call that crosses the limit is admitted (limit 10: cost 9 then 9 both pass) | admitted only if the whole cost fits |
//! | capacity is `rate × window` rounded down, so 0.5/s over 1 s never admits | float error is not rounded down; a capacity below 1 is an error at construction |
//! | hybrid instances each may take the whole remaining budget | each instance leases at most a slice: over-admission ≤ N × slice per window |
//! | Redis keys lack a TTL until a cleanup loop runs | every key expires one bucket after its newest bucket leaves the window |
//! | suppressed: the factor ignores the call being decided, so the call crossing the capacity always passes (any cost) | the factor counts the call: `1 - capacity / (observed + cost)` |
//! | suppressed: the factor is cached (100 ms by default) | computed for every call |
//! | suppressed: everything is refused once *observed* calls reach the hard limit | the hard limit applies to admitted units |
//!
//! All three providers implement both strategies ([`Strategy`]).
//!
//! ```
//! use std::time::Duration;
//! use distkit_ratelimit::{LocalOptions, LocalRateLimiter, Rate, RateLimit, Window};
//!
//! let window = Window::new(Duration::from_secs(1), Duration::from_millis(100))?;
//! let limit = RateLimit::new(Rate::per_second(3.0)?, window)?;
//! let limiter = LocalRateLimiter::new(LocalOptions::new(limit));
//! for _ in 0..3 {
//!     assert!(limiter.inc("user_123", 1)?.is_allowed());
//! }
//! let refused = limiter.inc("user_123", 1)?;
//! assert!(refused.is_rejected());
//! assert!(refused.retry_after().is_some());
//! # Ok::<(), distkit_ratelimit::RateLimitError>(())
//! ```
//!
//! ## Foundation types
//!
//! This crate re-exports what its API needs from `distkit-core`, and the
//! `redis` crate itself, so it can be used alone: building a connection with
//! the client kept (for pub/sub hand-offs and dedicated connections) takes no
//! other dependency.
//!
//! ```no_run
//! use distkit_ratelimit::{redis, ClientConfig, DistkitRedisKey, KeyRule, RedisConnection};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let error = DistkitRedisKey::try_from("user:42").unwrap_err();
//! assert_eq!(error.rule(), KeyRule::ForbiddenCharacter(':'));
//!
//! // A connection manager with its own settings, client kept.
//! let client = redis::Client::open("redis://127.0.0.1/")?;
//! let config = redis::aio::ConnectionManagerConfig::new()
//!     .set_response_timeout(Some(std::time::Duration::from_secs(5)));
//! let manager = client.get_connection_manager_with_config(config).await?;
//! let conn = RedisConnection::from(manager).with_client(ClientConfig::Single(client));
//! # let _ = conn;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clock;
mod decision;
mod error;
mod hybrid;
mod local;
mod options;
pub mod rate;
mod redis_limiter;
mod rng;
mod scripts;
mod window;

pub use clock::{Clock, CoarseClock, ManualClock, MonotonicClock};
pub use decision::Decision;
/// The `redis` crate distkit is built on (the version and features these
/// types need), so a user of this crate alone needs no `redis` dependency.
pub use distkit_core::redis;
pub use distkit_core::{
    ClientConfig, DistkitError, DistkitRedisKey, InvalidKeyError, KeyRule, RedisConnection,
};
pub use error::RateLimitError;

pub use hybrid::HybridRateLimiter;
pub use local::LocalRateLimiter;
pub use options::{
    DEFAULT_MAX_KEYS, HardLimitFactor, HybridOptions, LocalOptions, RedisOptions, Strategy,
};
pub use rate::{MAX_BUCKETS, MAX_CAPACITY, Rate, RateLimit, Window};
pub use redis_limiter::RedisRateLimiter;
pub use scripts::script_sources;

/// The [trypema](https://docs.rs/trypema) rate-limiting crate, re-exported
/// unchanged (feature `trypema`). Single-node Redis only.
#[cfg(feature = "trypema")]
pub use trypema;
