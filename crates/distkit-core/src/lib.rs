//! Shared foundation of [distkit](https://docs.rs/distkit): the pieces every
//! distributed primitive stands on.
//!
//! - [`DistkitRedisKey`]: validated key segments that can never break the key
//!   layout or forge a Redis Cluster hash tag.
//! - [`DistkitError`]: the one error type every primitive converts into.
//! - [`CounterComparator`]: the comparisons used by conditional counter writes.
//! - [`RedisConnection`]: one cheap-to-clone handle over a single-node
//!   [`ConnectionManager`](redis::aio::ConnectionManager) or a
//!   [`ClusterConnection`](redis::cluster_async::ClusterConnection).
//! - [`LuaScript`]: Lua scripts embedded at compile time, called by SHA and
//!   reloaded automatically after `NOSCRIPT`.
//! - [`KeyLayout`]: builds the Redis keys of one primitive so that every key of
//!   one call shares a hash tag.
//! - [`spawn_weak_loop`]: background work that ends when its owner is dropped.
//! - [`lax`]: the local buffer of the lax counters (lock-free per-key cells,
//!   idempotent batched flushes, eviction of idle keys).
//!
//! Most users reach these types through the `distkit` facade or a primitive
//! crate; depend on `distkit-core` directly to share keys and connections
//! between primitives.
//!
//! ```
//! use distkit_core::DistkitRedisKey;
//!
//! let key = DistkitRedisKey::try_from("page_views")?;
//! assert_eq!(key.as_str(), "page_views");
//! assert!(DistkitRedisKey::try_from("bad key").is_err());
//! # Ok::<(), distkit_core::DistkitError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod background;
pub mod combine;
mod comparator;
mod connection;
mod error;
pub mod fastkey;
mod key;
pub mod lax;
mod layout;
mod script;
pub mod scripts;

pub use background::spawn_weak_loop;
pub use comparator::CounterComparator;
pub use connection::{ClientConfig, RedisConnection};
pub use error::{BoxError, DistkitError};
pub use key::{DistkitRedisKey, InvalidKeyError, KeyRule, MAX_KEY_BYTES};
pub use layout::{KeyLayout, LIBRARY_NAMESPACE};
pub use script::{LuaScript, ScriptCall};

/// Re-export of the `redis` crate distkit is built on, so users can name the
/// connection types without adding a second, possibly mismatched, dependency.
pub use redis;
