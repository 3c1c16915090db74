//! Lock options and their builder.

use std::time::Duration;

use distkit_core::{DistkitRedisKey, RedisConnection};

use crate::LockError;

/// Default lease ttl: 30 s.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Default interval between polls when no release notification arrives: 100 ms.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest accepted ttl: renewal runs every ttl/3 and needs room for a round trip.
pub const MIN_TTL: Duration = Duration::from_millis(30);
/// Longest accepted ttl: one day.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest accepted owner id, in bytes.
pub const MAX_OWNER_BYTES: usize = 128;

/// What a [`Mutex`](crate::Mutex) or [`RwLock`](crate::RwLock) locks, where,
/// and how it waits.
///
/// | option | default | meaning |
/// |---|---|---|
/// | `key` | (required) | the lock's name; also its Redis Cluster hash tag |
/// | `connection` | (required) | the Redis connection |
/// | `namespace` | none | separates lock families with equal keys |
/// | `ttl` | 30 s | lease length; renewed every ttl/3 while a guard lives |
/// | `owner_id` | `pid<process id>` | readable prefix of every owner token |
/// | `max_wait` | none | bound on `lock()`/`read()`/`write()` waits |
/// | `retry_interval` | 100 ms | poll interval when no release message arrives |
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use std::time::Duration;
/// use distkit_lock::{DistkitRedisKey, LockOptions};
///
/// let key = DistkitRedisKey::try_from("invoice_42")?;
/// let options = LockOptions::builder(key, conn)
///     .ttl(Duration::from_secs(10))
///     .max_wait(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(options.ttl(), Duration::from_secs(10));
/// assert_eq!(options.retry_interval(), Duration::from_millis(100));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LockOptions {
    pub(crate) key: DistkitRedisKey,
    pub(crate) connection: RedisConnection,
    pub(crate) namespace: Option<DistkitRedisKey>,
    pub(crate) ttl: Duration,
    pub(crate) owner_id: String,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) retry_interval: Duration,
}

impl LockOptions {
    /// Options with every default: no `namespace`, `ttl` 30 s, no
    /// `max_wait`, `retry_interval` 100 ms, `owner_id` `pid<process id>`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::new(DistkitRedisKey::try_from("invoice_42")?, conn);
    /// assert!(options.namespace().is_none());
    /// assert!(options.max_wait().is_none());
    /// # Ok(()) }
    /// ```
    pub fn new(key: DistkitRedisKey, connection: impl Into<RedisConnection>) -> Self {
        Self {
            key,
            connection: connection.into(),
            namespace: None,
            ttl: DEFAULT_TTL,
            owner_id: format!("pid{}", std::process::id()),
            max_wait: None,
            retry_interval: DEFAULT_RETRY_INTERVAL,
        }
    }

    /// A builder starting from the defaults of [`LockOptions::new`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::builder(DistkitRedisKey::try_from("invoice_42")?, conn)
    ///     .namespace(DistkitRedisKey::try_from("billing")?)
    ///     .owner_id("worker-7")
    ///     .build()?;
    /// assert_eq!(options.owner_id(), "worker-7");
    /// # Ok(()) }
    /// ```
    pub fn builder(
        key: DistkitRedisKey,
        connection: impl Into<RedisConnection>,
    ) -> LockOptionsBuilder {
        LockOptionsBuilder {
            options: Self::new(key, connection),
        }
    }

    /// The lock key.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::new(DistkitRedisKey::try_from("invoice_42")?, conn);
    /// assert_eq!(options.key().as_str(), "invoice_42");
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &DistkitRedisKey {
        &self.key
    }

    /// The namespace, if one was set.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::new(DistkitRedisKey::try_from("invoice_42")?, conn);
    /// assert!(options.namespace().is_none());
    /// # Ok(()) }
    /// ```
    pub fn namespace(&self) -> Option<&DistkitRedisKey> {
        self.namespace.as_ref()
    }

    /// The lease ttl.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::new(DistkitRedisKey::try_from("invoice_42")?, conn);
    /// assert_eq!(options.ttl(), std::time::Duration::from_secs(30));
    /// # Ok(()) }
    /// ```
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The owner id every owner token starts with.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::new(DistkitRedisKey::try_from("invoice_42")?, conn);
    /// assert!(options.owner_id().starts_with("pid"));
    /// # Ok(()) }
    /// ```
    pub fn owner_id(&self) -> &str {
        &self.owner_id
    }

    /// The bound on waiting acquisitions, if any.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::new(DistkitRedisKey::try_from("invoice_42")?, conn);
    /// assert_eq!(options.max_wait(), None);
    /// # Ok(()) }
    /// ```
    pub fn max_wait(&self) -> Option<Duration> {
        self.max_wait
    }

    /// The poll interval used when no release notification arrives.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::new(DistkitRedisKey::try_from("invoice_42")?, conn);
    /// assert_eq!(options.retry_interval(), std::time::Duration::from_millis(100));
    /// # Ok(()) }
    /// ```
    pub fn retry_interval(&self) -> Duration {
        self.retry_interval
    }
}

/// Builder of [`LockOptions`]; [`build`](LockOptionsBuilder::build) checks
/// every value.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use std::time::Duration;
/// use distkit_lock::{DistkitRedisKey, LockError, LockOptions};
///
/// let key = DistkitRedisKey::try_from("invoice_42")?;
/// let error = LockOptions::builder(key, conn).ttl(Duration::ZERO).build().unwrap_err();
/// assert!(matches!(error, LockError::InvalidTtl { .. }));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LockOptionsBuilder {
    options: LockOptions,
}

impl LockOptionsBuilder {
    /// Sets a namespace (default: none). Locks with equal keys in different
    /// namespaces are independent.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::builder(DistkitRedisKey::try_from("k")?, conn)
    ///     .namespace(DistkitRedisKey::try_from("billing")?)
    ///     .build()?;
    /// assert_eq!(options.namespace().map(|n| n.as_str()), Some("billing"));
    /// # Ok(()) }
    /// ```
    pub fn namespace(mut self, namespace: DistkitRedisKey) -> Self {
        self.options.namespace = Some(namespace);
        self
    }

    /// Sets the lease ttl (default 30 s; between 30 ms and 24 h).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// use std::time::Duration;
    /// let options = LockOptions::builder(DistkitRedisKey::try_from("k")?, conn)
    ///     .ttl(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(options.ttl(), Duration::from_secs(5));
    /// # Ok(()) }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = ttl;
        self
    }

    /// Sets the owner id: a readable prefix of every owner token, such as a
    /// host or worker name (1 to 128 bytes, no whitespace or control
    /// characters). Each acquisition still gets its own unique token.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// let options = LockOptions::builder(DistkitRedisKey::try_from("k")?, conn)
    ///     .owner_id("api-3")
    ///     .build()?;
    /// assert_eq!(options.owner_id(), "api-3");
    /// # Ok(()) }
    /// ```
    pub fn owner_id(mut self, owner_id: impl Into<String>) -> Self {
        self.options.owner_id = owner_id.into();
        self
    }

    /// Bounds `lock()`, `read()` and `write()`: they fail with
    /// [`LockError::Timeout`] after waiting this long (default: no bound).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// use std::time::Duration;
    /// let options = LockOptions::builder(DistkitRedisKey::try_from("k")?, conn)
    ///     .max_wait(Duration::from_secs(1))
    ///     .build()?;
    /// assert_eq!(options.max_wait(), Some(Duration::from_secs(1)));
    /// # Ok(()) }
    /// ```
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.options.max_wait = Some(max_wait);
        self
    }

    /// Sets the poll interval used while waiting when no release message
    /// arrives (default 100 ms; between 1 ms and 1 h). Waiters are woken by
    /// release notifications, so this only bounds the cost of a lost message
    /// or a crashed holder.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockOptions};
    /// use std::time::Duration;
    /// let options = LockOptions::builder(DistkitRedisKey::try_from("k")?, conn)
    ///     .retry_interval(Duration::from_millis(20))
    ///     .build()?;
    /// assert_eq!(options.retry_interval(), Duration::from_millis(20));
    /// # Ok(()) }
    /// ```
    pub fn retry_interval(mut self, retry_interval: Duration) -> Self {
        self.options.retry_interval = retry_interval;
        self
    }

    /// Checks the values and builds the options.
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidTtl`], [`LockError::InvalidRetryInterval`] or
    /// [`LockError::InvalidOwner`] naming the value that broke a rule.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_lock::{DistkitRedisKey, LockError, LockOptions};
    /// let error = LockOptions::builder(DistkitRedisKey::try_from("k")?, conn)
    ///     .owner_id("two words")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(error, LockError::InvalidOwner { .. }));
    /// # Ok(()) }
    /// ```
    pub fn build(self) -> Result<LockOptions, LockError> {
        let options = self.options;
        if options.ttl < MIN_TTL {
            return Err(LockError::InvalidTtl {
                ttl: options.ttl,
                reason: "must be at least 30 ms",
            });
        }
        if options.ttl > MAX_TTL {
            return Err(LockError::InvalidTtl {
                ttl: options.ttl,
                reason: "must be at most 24 h",
            });
        }
        if options.retry_interval < Duration::from_millis(1) {
            return Err(LockError::InvalidRetryInterval {
                interval: options.retry_interval,
                reason: "must be at least 1 ms",
            });
        }
        if options.retry_interval > Duration::from_secs(3600) {
            return Err(LockError::InvalidRetryInterval {
                interval: options.retry_interval,
                reason: "must be at most 1 h",
            });
        }
        validate_owner(&options.owner_id)?;
        Ok(options)
    }
}

fn validate_owner(owner: &str) -> Result<(), LockError> {
    let reason = if owner.is_empty() {
        Some("must not be empty")
    } else if owner.len() > MAX_OWNER_BYTES {
        Some("must be at most 128 bytes")
    } else if owner.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain whitespace or control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LockError::InvalidOwner {
            owner: owner.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}
