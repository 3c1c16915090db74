//! Instance-aware distributed counters backed by Redis: every running
//! instance owns a slice of each counter, the cumulative is the sum of the
//! slices of live instances, and the slices of instances that stop
//! heartbeating are removed by the survivors.
//!
//! - [`StrictInstanceAwareCounter`]: every operation is one atomic Lua script
//!   run in Redis.
//! - [`LaxInstanceAwareCounter`]: `inc`/`dec` are lock-free in-memory adds,
//!   flushed every `flush_interval` in one idempotent call.
//!
//! Both implement [`InstanceAwareCounterTrait`].
//!
//! # Guarantees
//!
//! - Liveness uses Redis server time only. An instance silent for longer
//!   than `dead_instance_threshold_ms` is removed by the next operation of
//!   any instance of the prefix, at most threshold/10 after the threshold
//!   (a heartbeat is stored at most every threshold/10, so
//!   [`live_instances`](InstanceAwareCounterTrait::live_instances) may show
//!   one up to that old); each of its slices is subtracted exactly once, at
//!   most 200 entries per call (the rest by later calls).
//! - A live instance stays live while its counter object exists: every
//!   operation and a background heartbeat (threshold/3) stamp it.
//! - An instance that was declared dead and comes back restores its slices
//!   on every key it remembers, never counting one twice.
//! - Global `set`/`del`/`clear` bump the key's epoch; slices of older epochs
//!   are never counted, restored or subtracted again. Invariant:
//!   `cumulative == sum of current-epoch slices of live instances` once the
//!   dead-instance queue is drained.
//! - Counts are exact over the whole i64 range; overflow is an error.
//!
//! Every key of a prefix shares one Redis Cluster hash tag; the layout is in
//! `scripts/icounter/README.md`.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
//! # let conn = distkit_testkit::shared_server().connection_manager().await;
//! use distkit_icounter::{
//!     DistkitRedisKey, InstanceAwareCounterTrait, StrictInstanceAwareCounter,
//!     StrictInstanceAwareCounterOptions,
//! };
//! # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_lib"))?;
//! let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
//! let key = DistkitRedisKey::try_from("connections")?;
//! let (cumulative, mine) = counter.inc(&key, 5).await?;
//! assert_eq!((cumulative, mine), (5, 5));
//! # Ok(()) }
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
//! use distkit_icounter::{redis, ClientConfig, DistkitRedisKey, KeyRule, RedisConnection};
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

mod counter_trait;
mod instance;
mod lax;
mod merge;
mod options;
mod protocol;
mod strict;

pub use counter_trait::InstanceAwareCounterTrait;
/// The `redis` crate distkit is built on (the version and features these
/// types need), so a user of this crate alone needs no `redis` dependency.
pub use distkit_core::redis;
pub use distkit_core::{
    ClientConfig, CounterComparator, DistkitError, DistkitRedisKey, InvalidKeyError, KeyRule,
    RedisConnection,
};
pub use instance::InstanceInfo;
pub use lax::LaxInstanceAwareCounter;
pub use options::{
    DEFAULT_DEAD_INSTANCE_THRESHOLD_MS, DEFAULT_FLUSH_INTERVAL, LaxInstanceAwareCounterOptions,
    StrictInstanceAwareCounterOptions,
};
pub use protocol::script_sources;
pub use strict::StrictInstanceAwareCounter;
