//! Distributed [`Mutex`] and writer-preferring [`RwLock`] backed by Redis,
//! modelled on `tokio::sync`.
//!
//! A lock is a lease in Redis with a ttl; the guard renews it every ttl/3 in
//! the background and releases it when dropped (or awaitably with
//! `release()`, which reports the final [`LockGuardState`]). Guards hold no
//! data: they are access tokens, each with its own owner token, so tasks
//! sharing one `Arc<Mutex>` exclude each other exactly as processes do.
//!
//! - **Waiting** (`lock`, `read`, `write`) is woken by release notifications
//!   (pub/sub, sharded on a cluster) and falls back to polling every
//!   `retry_interval`. `try_*` tries once; `try_*_with_timeout` and
//!   `try_*_with_retries` bound the wait. Errors are typed: [`LockError`].
//! - **Loss**: a renewal that finds another owner, or cannot reach Redis
//!   before the lease would have expired, turns the guard `Lost` and wakes
//!   `lost()`.
//! - **Fencing tokens**: every acquisition gets a token strictly greater
//!   than all earlier ones for that key, across processes, expiry and key
//!   deletion (tokens are at least the Redis server time in microseconds).
//!
//! # What a lease guarantees, and what it does not
//!
//! While Redis keeps its data, no two guards hold a lock at once *as seen by
//! Redis*. A holder that is paused (GC, swap, SIGSTOP) past its ttl may
//! still believe it holds the lock after another took it over, and a
//! failover to a replica that missed the acquisition can admit two holders.
//! Storage that checks fencing tokens (rejecting a token lower than one it
//! has seen) closes that gap.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let conn = distkit_testkit::shared_server().connection_manager().await;
//! use distkit_lock::{DistkitRedisKey, LockOptions, Mutex};
//!
//! let key = DistkitRedisKey::try_from("invoice_42")?;
//! let mutex = Mutex::new(LockOptions::new(key, conn));
//!
//! let guard = mutex.lock().await?; // waits until acquired
//! let token = guard.fencing_token(); // hand to storage that checks it
//! // ... critical section ...
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! # Design notes
//!
//! - **Keys**: `distkit:lock[:<namespace>]:{<key>}:<part>`; every key of a
//!   lock shares the hash tag `{<key>}`, so locks spread over cluster shards.
//!   The Redis keys and Lua scripts are documented in `scripts/lock/README.md`.
//! - **Notifications**: one subscriber connection per lock object, opened
//!   when its first waiter waits and closed 5 to 10 s after the last one left. It
//!   needs the client configuration: build the connection with
//!   [`RedisConnection::open`] or [`RedisConnection::open_cluster`] (or
//!   attach a client with [`RedisConnection::with_client`]); otherwise
//!   waiters poll. On a cluster the subscriber uses sharded pub/sub, which
//!   redis-rs offers over RESP3: a RESP3 cluster client of the user is used as
//!   is; with a RESP2 client, a RESP3 client to the masters listed by
//!   `CLUSTER SLOTS` is opened (without the original client's credentials or
//!   TLS settings: where those are needed, waiters fall back to polling).
//!   A write release publishes only while a waiter mark exists (every
//!   attempt of a waiting caller marks it for three retry intervals, and it
//!   removes its mark when it stops waiting), so uncontended locks send no
//!   pub/sub traffic.
//! - **Renewal tasks**: a lease gets its renewal task from the lock object's
//!   scheduler only once it has lived ttl/6, so an uncontended acquire and
//!   release spawns no task; the uncontended path is two round trips.
//! - **Loss detection**: the guard counts the lease from the moment the
//!   acquire or renew request was *sent* (so never later than Redis does) and
//!   declares it lost a tenth of the ttl before it would end unless a renewal
//!   succeeded; renewals run every ttl/3 and are retried on errors.
//! - **Cancel safety**: a waiting acquisition that gives up or is dropped
//!   removes its waiter mark and pending-writer mark (from a background task
//!   when dropped; they expire on their own if that fails). An acquire request whose reply is lost (future dropped
//!   mid-call, connection cut) may have taken the lease on the server; that
//!   lease is never renewed and expires after the ttl.
//!
//! ## Foundation types
//!
//! This crate re-exports what its API needs from `distkit-core`, and the
//! `redis` crate itself, so it can be used alone: building a connection with
//! the client kept (for pub/sub hand-offs and dedicated connections) takes no
//! other dependency.
//!
//! ```no_run
//! use distkit_lock::{redis, ClientConfig, DistkitRedisKey, KeyRule, RedisConnection};
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

mod acquire;
mod core;
mod error;
mod guard;
mod lease;
mod mutex;
mod notify;
mod options;
mod renewal;
mod rwlock;

/// The `redis` crate distkit is built on (the version and features these
/// types need), so a user of this crate alone needs no `redis` dependency.
pub use distkit_core::redis;
pub use distkit_core::{
    ClientConfig, DistkitError, DistkitRedisKey, InvalidKeyError, KeyRule, RedisConnection,
};
pub use error::LockError;
pub use lease::LockGuardState;
pub use mutex::{Mutex, MutexGuard};
pub use options::{
    DEFAULT_RETRY_INTERVAL, DEFAULT_TTL, LockOptions, LockOptionsBuilder, MAX_OWNER_BYTES, MAX_TTL,
    MIN_TTL,
};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The Lua sources of the lock scripts, exactly as embedded, for tests and
/// for services that vendor `scripts/lock/`.
///
/// ```
/// assert!(distkit_lock::SCRIPT_SOURCES.iter().any(|(name, _)| *name == "acquire_write"));
/// ```
pub const SCRIPT_SOURCES: &[(&str, &str)] = &[
    (
        "acquire_write",
        include_str!("../scripts/acquire_write.lua"),
    ),
    ("acquire_read", include_str!("../scripts/acquire_read.lua")),
    (
        "release_write",
        include_str!("../scripts/release_write.lua"),
    ),
    ("release_read", include_str!("../scripts/release_read.lua")),
    ("renew_write", include_str!("../scripts/renew_write.lua")),
    ("renew_read", include_str!("../scripts/renew_read.lua")),
    ("cancel_wait", include_str!("../scripts/cancel_wait.lua")),
];
