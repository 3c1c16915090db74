//! Distributed `Mutex` and writer-preferring `RwLock` backed by Redis,
//! modelled on `tokio::sync`.
//!
//! The locks are being built; this crate currently re-exports the foundation
//! types they use.
//!
//! ```
//! use distkit_lock::DistkitRedisKey;
//! let key = DistkitRedisKey::try_from("invoice_42")?;
//! # Ok::<(), distkit_lock::DistkitError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use distkit_core::{DistkitError, DistkitRedisKey, RedisConnection};
