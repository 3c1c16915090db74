//! Instance-aware distributed counters backed by Redis: every running
//! instance owns a slice of each counter, and the slices of instances that
//! stop heartbeating are removed by the survivors.
//!
//! The counters are being built; this crate currently re-exports the
//! foundation types they use.
//!
//! ```
//! use distkit_icounter::DistkitRedisKey;
//! let key = DistkitRedisKey::try_from("connections")?;
//! # Ok::<(), distkit_icounter::DistkitError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey, RedisConnection};
