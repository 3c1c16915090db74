//! A distributed mutual-exclusion lock.
//!
//! Use [`Mutex`] when at most one process (or task) in a fleet may run a
//! critical section at a time: one invoice charged once, one migration
//! running. It is modelled on `tokio::sync::Mutex`, but the guard holds no
//! data: it is an access token backed by a lease in Redis. When the protected
//! resource is storage, pass the guard's [fencing
//! token](MutexGuard::fencing_token) along so stale holders can be rejected
//! (a lease alone cannot exclude a holder that was paused past its ttl).
//!
//! Do not use it for locks held for microseconds inside one process:
//! `tokio::sync::Mutex` is a thousand times cheaper.

use std::sync::Arc;
use std::time::Duration;

use crate::acquire::{Bound, Target, acquire};
use crate::core::LockCore;
use crate::guard::guard_api;
use crate::lease::Lease;
use crate::{LockError, LockGuardState, LockOptions};

/// A distributed mutex backed by a Redis lease.
///
/// Every acquisition gets its own owner token, so tasks sharing one
/// `Arc<Mutex>` exclude each other exactly as separate processes do.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use distkit_lock::{DistkitRedisKey, LockOptions, Mutex};
///
/// let key = DistkitRedisKey::try_from("invoice_42")?;
/// let mutex = Mutex::new(LockOptions::new(key, conn));
///
/// let guard = mutex.lock().await?; // waits until acquired
/// println!("fencing token {}", guard.fencing_token());
/// // ... critical section ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Mutex {
    core: Arc<LockCore>,
}

impl Mutex {
    /// A mutex over `options.key`. No I/O happens until the first
    /// acquisition.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// use distkit_lock::{DistkitRedisKey, LockOptions, Mutex};
    /// let mutex = Mutex::new(LockOptions::new(DistkitRedisKey::try_from("report")?, conn));
    /// assert_eq!(mutex.options().key().as_str(), "report");
    /// # Ok(()) }
    /// ```
    pub fn new(options: LockOptions) -> Arc<Self> {
        Arc::new(Self {
            core: Arc::new(LockCore::new(options)),
        })
    }

    /// The options this mutex was built with.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions, Mutex};
    /// let mutex = Mutex::new(LockOptions::new(DistkitRedisKey::try_from("report")?, conn));
    /// assert_eq!(mutex.options().ttl(), std::time::Duration::from_secs(30));
    /// # Ok(()) }
    /// ```
    pub fn options(&self) -> &LockOptions {
        &self.core.options
    }

    /// Waits until the lock is acquired (at most `max_wait` when set). A
    /// waiter retries at once when a release is published, and otherwise
    /// every `retry_interval`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when `max_wait` ran out; [`LockError::Redis`]
    /// when Redis cannot be reached.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits leaves nothing in Redis: its
    /// waiter mark is removed in the background (and expires within three
    /// retry intervals if that fails). If it is dropped while an attempt is
    /// in flight and that attempt succeeds on the server, the lease is never
    /// renewed and expires after the ttl.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions, Mutex};
    /// let mutex = Mutex::new(LockOptions::new(DistkitRedisKey::try_from("nightly_job")?, conn));
    /// let guard = mutex.lock().await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn lock(&self) -> Result<MutexGuard, LockError> {
        let bound = Bound::Wait(self.core.options.max_wait);
        self.acquire(bound).await
    }

    /// Tries once.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when the lock is held; [`LockError::Redis`].
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Mutex::lock).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockError, LockOptions, Mutex};
    /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// let mutex = Mutex::new(LockOptions::new(key, conn));
    /// let held = mutex.try_lock().await?;
    /// assert!(matches!(mutex.try_lock().await, Err(LockError::WouldBlock { .. })));
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(&self) -> Result<MutexGuard, LockError> {
        self.acquire(Bound::Once).await
    }

    /// Waits at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] with the time waited; [`LockError::Redis`].
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Mutex::lock).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockError, LockOptions, Mutex};
    /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// use std::time::Duration;
    /// let mutex = Mutex::new(LockOptions::new(key, conn));
    /// let held = mutex.lock().await?;
    /// let error = mutex.try_lock_with_timeout(Duration::from_millis(50)).await.unwrap_err();
    /// assert!(matches!(error, LockError::Timeout { .. }));
    /// # Ok(()) }
    /// ```
    pub async fn try_lock_with_timeout(&self, timeout: Duration) -> Result<MutexGuard, LockError> {
        self.acquire(Bound::Wait(Some(timeout))).await
    }

    /// Makes at most `1 + retries` attempts (also bounded by `max_wait` when
    /// set), waiting for a release or the retry interval between them.
    ///
    /// # Errors
    ///
    /// [`LockError::RetriesExhausted`] with the attempts made;
    /// [`LockError::Timeout`]; [`LockError::Redis`].
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Mutex::lock).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockError, LockOptions, Mutex};
    /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// let options = LockOptions::builder(key, conn)
    ///     .retry_interval(std::time::Duration::from_millis(10))
    ///     .build()?;
    /// let mutex = Mutex::new(options);
    /// let held = mutex.lock().await?;
    /// let error = mutex.try_lock_with_retries(2).await.unwrap_err();
    /// assert!(matches!(error, LockError::RetriesExhausted { attempts: 3, .. }));
    /// # Ok(()) }
    /// ```
    pub async fn try_lock_with_retries(&self, retries: u32) -> Result<MutexGuard, LockError> {
        let bound = Bound::Attempts(retries.saturating_add(1), self.core.options.max_wait);
        self.acquire(bound).await
    }

    async fn acquire(&self, bound: Bound) -> Result<MutexGuard, LockError> {
        let lease = acquire(&self.core, Target::Mutex, bound).await?;
        Ok(MutexGuard { lease })
    }
}

/// Proof of holding a [`Mutex`]; holds no data. Renews its lease every
/// ttl/3 while it lives; dropping it releases the lease in the background
/// (use [`release`](MutexGuard::release) to observe the outcome).
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # use distkit_lock::{DistkitRedisKey, LockGuardState, LockOptions, Mutex};
/// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
/// let mutex = Mutex::new(LockOptions::new(key, conn));
/// let guard = mutex.lock().await?;
/// assert_eq!(guard.state(), LockGuardState::Acquired);
/// drop(guard); // released in the background
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MutexGuard {
    lease: Lease,
}

guard_api!(
    MutexGuard,
    "let lock = Mutex::new(LockOptions::new(key, conn));",
    "let guard = lock.lock().await?;"
);
