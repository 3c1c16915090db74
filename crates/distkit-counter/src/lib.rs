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

pub use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey, RedisConnection};
