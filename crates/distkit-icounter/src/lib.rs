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
pub use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey, RedisConnection};
pub use instance::InstanceInfo;
pub use lax::LaxInstanceAwareCounter;
pub use options::{
    DEFAULT_DEAD_INSTANCE_THRESHOLD_MS, DEFAULT_FLUSH_INTERVAL, LaxInstanceAwareCounterOptions,
    StrictInstanceAwareCounterOptions,
};
pub use strict::StrictInstanceAwareCounter;
