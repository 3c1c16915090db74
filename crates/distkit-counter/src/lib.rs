//! Distributed `i64` counters backed by Redis, in two flavours behind one
//! trait, [`CounterTrait`]:
//!
//! - [`StrictCounter`]: every call is one atomic Redis round trip; reads
//!   always reflect every acknowledged write.
//! - [`LaxCounter`]: `inc` is an atomic add in memory; deltas are flushed to
//!   Redis every [`allowed_lag`](CounterOptions::allowed_lag) (20 ms by
//!   default), exactly once, and reads return the local view.
//!
//! Both store their values in one Redis hash per prefix
//! (`distkit:counter:{<prefix>}:values`, field = counter key, value = decimal
//! `i64`), so counters of both flavours on the same prefix share values, and
//! a service in another language can use the scripts in `scripts/counter/`
//! on the same keys. Values are exact over the whole `i64` range; overflow is
//! a typed error ([`DistkitError::CounterOverflow`]) and never wraps.
//!
//! ```
//! use distkit_counter::{CounterOptions, CounterTrait, DistkitRedisKey, LaxCounter, StrictCounter};
//!
//! # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
//! # let conn = distkit_testkit::shared_server().connection_manager().await;
//! # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_lib"))?;
//! let options = CounterOptions::new(prefix, conn);
//! let key = DistkitRedisKey::try_from("page_views")?;
//!
//! let strict = StrictCounter::new(options.clone());
//! assert_eq!(strict.inc(&key, 1).await?, 1);
//!
//! let lax = LaxCounter::new(options);
//! assert_eq!(lax.inc(&key, 1).await?, 2); // local view: remote 1 + pending 1
//! lax.flush().await?;
//! assert_eq!(strict.get(&key).await?, 2);
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
//! use distkit_counter::{redis, ClientConfig, DistkitRedisKey, KeyRule, RedisConnection};
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
pub mod lax;
mod options;
mod store;
mod strict;

pub use counter_trait::CounterTrait;
pub use lax::LaxCounter;
pub use options::{CounterOptions, DEFAULT_ALLOWED_LAG};
#[doc(hidden)]
pub use store::script_sources;
pub use strict::StrictCounter;

/// The `redis` crate distkit is built on (the version and features these
/// types need), so a user of this crate alone needs no `redis` dependency.
pub use distkit_core::redis;
pub use distkit_core::{
    ClientConfig, CounterComparator, DistkitError, DistkitRedisKey, InvalidKeyError, KeyRule,
    RedisConnection,
};
