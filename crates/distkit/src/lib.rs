//! # distkit
//!
//! Distributed systems primitives for Rust, backed by Redis: counters
//! (strict and lax), instance-aware counters, locks and rate limiting.
//!
//! This crate is a facade: each primitive lives in its own crate and is
//! re-exported here behind a feature flag.
//!
//! | feature | default | what |
//! |---|---|---|
//! | `counter` | yes | [`counter`]: `StrictCounter`, `LaxCounter` |
//! | `instance-aware-counter` | no | [`icounter`]: per-instance counters |
//! | `lock` | no | [`lock`]: `Mutex`, `RwLock` |
//! | `trypema` | no | [`trypema`]: the trypema rate-limiting crate |
//! | `ratelimit` | no | [`ratelimit`]: distkit's own rate limiter |
//! | `full` | no | all of the above |
//!
//! The foundation types are always available at the crate root:
//!
//! ```
//! use distkit::{CounterComparator, DistkitRedisKey};
//!
//! let key = DistkitRedisKey::try_from("page_views")?;
//! assert!(CounterComparator::Ge(1).matches(1));
//! # Ok::<(), distkit::DistkitError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use distkit_core::{
    ClientConfig, CounterComparator, DistkitError, DistkitRedisKey, InvalidKeyError, KeyRule,
    RedisConnection,
};

/// The `redis` crate distkit is built on.
pub use distkit_core::redis;

/// Distributed counters (feature `counter`, on by default).
#[cfg(feature = "counter")]
pub mod counter {
    pub use distkit_counter::*;
}

/// Instance-aware counters (feature `instance-aware-counter`).
#[cfg(feature = "instance-aware-counter")]
pub mod icounter {
    pub use distkit_icounter::*;
}

/// Distributed locks (feature `lock`).
#[cfg(feature = "lock")]
pub mod lock {
    pub use distkit_lock::*;
}

/// distkit's own rate limiter (feature `ratelimit`).
#[cfg(feature = "ratelimit")]
pub mod ratelimit {
    pub use distkit_ratelimit::*;
}

/// The [trypema](https://docs.rs/trypema) crate, re-exported unchanged
/// (feature `trypema`).
#[cfg(feature = "trypema")]
pub use distkit_ratelimit::trypema;
