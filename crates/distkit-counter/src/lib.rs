//! Distributed `i64` counters backed by Redis.
//!
//! The counters themselves (`StrictCounter`, `LaxCounter` and their shared
//! `CounterTrait`) are being built; this crate currently re-exports the
//! foundation types they use.
//!
//! ```
//! use distkit_counter::{CounterComparator, DistkitRedisKey};
//! let key = DistkitRedisKey::try_from("page_views")?;
//! assert!(CounterComparator::Gt(0).matches(1));
//! # Ok::<(), distkit_counter::DistkitError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey, RedisConnection};
