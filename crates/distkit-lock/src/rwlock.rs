//! A distributed, writer-preferring readers-writer lock.
//!
//! Use [`RwLock`] when many processes may read a resource together but a
//! writer needs it alone: a cache rebuild, a config reload. Readers share
//! the lock, each with its own lease; a writer excludes everyone. It is
//! **writer-preferring**: once a writer waits, new readers wait behind it,
//! so a steady stream of readers cannot starve writers. A waiting writer
//! leaves a pending mark that expires (three retry intervals, at least
//! 500 ms) unless refreshed, and is removed at once when the writer stops
//! waiting, so a writer that gives up, is cancelled or crashes never blocks
//! readers for long.
//!
//! Every read and write acquisition gets a fencing token from the same
//! sequence as the lock's writers.

use std::sync::Arc;
use std::time::Duration;

use crate::acquire::{Bound, Target, acquire};
use crate::core::LockCore;
use crate::guard::guard_api;
use crate::lease::Lease;
use crate::{LockError, LockGuardState, LockOptions};

/// A distributed readers-writer lock backed by Redis leases.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use distkit_lock::{DistkitRedisKey, LockOptions, RwLock};
///
/// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
/// let lock = RwLock::new(LockOptions::new(key, conn));
/// let a = lock.read().await?;
/// let b = lock.read().await?; // readers share
/// assert!(lock.try_write().await.is_err());
/// a.release().await?;
/// b.release().await?;
/// let writer = lock.write().await?;
/// writer.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RwLock {
    core: Arc<LockCore>,
}

macro_rules! acquire_methods {
    (
        $guard:ident, $target:expr, $verb:literal,
        $wait:ident, $try_once:ident, $try_timeout:ident, $try_retries:ident
    ) => {
        #[doc = concat!("Waits until a ", $verb, " lease is acquired (at most `max_wait` when set).")]
        ///
        /// # Errors
        ///
        /// [`LockError::Timeout`] when `max_wait` ran out; [`LockError::Redis`].
        ///
        /// # Cancel safety
        ///
        /// Dropping the future while it waits leaves nothing in Redis: its
        /// waiter mark and a writer's pending mark are removed in the
        /// background (and expire within three retry intervals if that
        /// fails). If an attempt was in flight and succeeded on the server,
        /// that lease expires after the ttl.
        ///
        /// ```
        /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// # let conn = distkit_testkit::shared_server().connection_manager().await;
        /// # use distkit_lock::*;
        /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
        /// let lock = RwLock::new(LockOptions::new(key, conn));
        #[doc = concat!("let guard = lock.", stringify!($wait), "().await?;")]
        /// guard.release().await?;
        /// # Ok(()) }
        /// ```
        pub async fn $wait(&self) -> Result<$guard, LockError> {
            self.acquire_as($target, Bound::Wait(self.core.options.max_wait))
                .await
                .map(|lease| $guard { lease })
        }

        #[doc = concat!("Tries once to take a ", $verb, " lease.")]
        ///
        /// # Errors
        ///
        /// [`LockError::WouldBlock`] when it is not available now;
        /// [`LockError::Redis`].
        ///
        /// # Cancel safety
        ///
        #[doc = concat!("As for [`", stringify!($wait), "`](RwLock::", stringify!($wait), ").")]
        ///
        /// ```
        /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// # let conn = distkit_testkit::shared_server().connection_manager().await;
        /// # use distkit_lock::*;
        /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
        /// let lock = RwLock::new(LockOptions::new(key, conn));
        /// let writer = lock.write().await?;
        #[doc = concat!("assert!(matches!(lock.", stringify!($try_once), "().await, Err(LockError::WouldBlock { .. })));")]
        /// # Ok(()) }
        /// ```
        pub async fn $try_once(&self) -> Result<$guard, LockError> {
            self.acquire_as($target, Bound::Once)
                .await
                .map(|lease| $guard { lease })
        }

        #[doc = concat!("Waits at most `timeout` for a ", $verb, " lease.")]
        ///
        /// # Errors
        ///
        /// [`LockError::Timeout`] with the time waited; [`LockError::Redis`].
        ///
        /// # Cancel safety
        ///
        #[doc = concat!("As for [`", stringify!($wait), "`](RwLock::", stringify!($wait), ").")]
        ///
        /// ```
        /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// # let conn = distkit_testkit::shared_server().connection_manager().await;
        /// # use distkit_lock::*;
        /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
        /// use std::time::Duration;
        /// let lock = RwLock::new(LockOptions::new(key, conn));
        /// let writer = lock.write().await?;
        #[doc = concat!("let error = lock.", stringify!($try_timeout), "(Duration::from_millis(30)).await.unwrap_err();")]
        /// assert!(matches!(error, LockError::Timeout { .. }));
        /// # Ok(()) }
        /// ```
        pub async fn $try_timeout(&self, timeout: Duration) -> Result<$guard, LockError> {
            self.acquire_as($target, Bound::Wait(Some(timeout)))
                .await
                .map(|lease| $guard { lease })
        }

        #[doc = concat!("Makes at most `1 + retries` attempts at a ", $verb, " lease (also bounded by `max_wait` when set).")]
        ///
        /// # Errors
        ///
        /// [`LockError::RetriesExhausted`] with the attempts made;
        /// [`LockError::Timeout`]; [`LockError::Redis`].
        ///
        /// # Cancel safety
        ///
        #[doc = concat!("As for [`", stringify!($wait), "`](RwLock::", stringify!($wait), ").")]
        ///
        /// ```
        /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// # let conn = distkit_testkit::shared_server().connection_manager().await;
        /// # use distkit_lock::*;
        /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
        /// let options = LockOptions::builder(key, conn)
        ///     .retry_interval(std::time::Duration::from_millis(10))
        ///     .build()?;
        /// let lock = RwLock::new(options);
        /// let writer = lock.write().await?;
        #[doc = concat!("let error = lock.", stringify!($try_retries), "(1).await.unwrap_err();")]
        /// assert!(matches!(error, LockError::RetriesExhausted { attempts: 2, .. }));
        /// # Ok(()) }
        /// ```
        pub async fn $try_retries(&self, retries: u32) -> Result<$guard, LockError> {
            let bound = Bound::Attempts(retries.saturating_add(1), self.core.options.max_wait);
            self.acquire_as($target, bound)
                .await
                .map(|lease| $guard { lease })
        }
    };
}

impl RwLock {
    /// A readers-writer lock over `options.key`. No I/O happens until the
    /// first acquisition.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// use distkit_lock::{DistkitRedisKey, LockOptions, RwLock};
    /// let lock = RwLock::new(LockOptions::new(DistkitRedisKey::try_from("config")?, conn));
    /// assert_eq!(lock.options().key().as_str(), "config");
    /// # Ok(()) }
    /// ```
    pub fn new(options: LockOptions) -> Arc<Self> {
        Arc::new(Self {
            core: Arc::new(LockCore::new(options)),
        })
    }

    /// The options this lock was built with.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions, RwLock};
    /// let lock = RwLock::new(LockOptions::new(DistkitRedisKey::try_from("config")?, conn));
    /// assert!(lock.options().max_wait().is_none());
    /// # Ok(()) }
    /// ```
    pub fn options(&self) -> &LockOptions {
        &self.core.options
    }

    acquire_methods!(
        RwLockReadGuard,
        Target::Read,
        "shared (read)",
        read,
        try_read,
        try_read_with_timeout,
        try_read_with_retries
    );

    acquire_methods!(
        RwLockWriteGuard,
        Target::Write,
        "exclusive (write)",
        write,
        try_write,
        try_write_with_timeout,
        try_write_with_retries
    );

    async fn acquire_as(&self, target: Target, bound: Bound) -> Result<Lease, LockError> {
        acquire(&self.core, target, bound).await
    }
}

/// Proof of holding a shared (read) lease of an [`RwLock`]; holds no data.
/// Renews its lease every ttl/3; dropping it releases it in the background.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # use distkit_lock::*;
/// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
/// let lock = RwLock::new(LockOptions::new(key, conn));
/// let reader = lock.read().await?;
/// assert_eq!(reader.state(), LockGuardState::Acquired);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RwLockReadGuard {
    lease: Lease,
}

/// Proof of holding the exclusive (write) lease of an [`RwLock`]; holds no
/// data. Renews its lease every ttl/3; dropping it releases it in the
/// background.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # use distkit_lock::*;
/// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
/// let lock = RwLock::new(LockOptions::new(key, conn));
/// let writer = lock.write().await?;
/// assert!(lock.try_read().await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RwLockWriteGuard {
    lease: Lease,
}

guard_api!(
    RwLockReadGuard,
    "let lock = RwLock::new(LockOptions::new(key, conn));",
    "let guard = lock.read().await?;"
);

guard_api!(
    RwLockWriteGuard,
    "let lock = RwLock::new(LockOptions::new(key, conn));",
    "let guard = lock.write().await?;"
);
