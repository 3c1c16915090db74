//! Sliding-window rate limiting for distkit.
//!
//! With the `trypema` feature, the [trypema](https://docs.rs/trypema) crate is
//! re-exported as [`trypema`], with its local, Redis and hybrid providers.
//!
//! ```
//! use distkit_ratelimit::DistkitRedisKey;
//! let key = DistkitRedisKey::try_from("user_123")?;
//! # Ok::<(), distkit_ratelimit::DistkitError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use distkit_core::{DistkitError, DistkitRedisKey, RedisConnection};

/// The [trypema](https://docs.rs/trypema) rate-limiting crate, re-exported
/// unchanged (feature `trypema`).
#[cfg(feature = "trypema")]
pub use trypema;
