//! Options shared by [`StrictCounter`](crate::StrictCounter) and
//! [`LaxCounter`](crate::LaxCounter).

use std::time::Duration;

use distkit_core::{DistkitRedisKey, RedisConnection};

/// The default [`allowed_lag`](CounterOptions::allowed_lag): 20 ms.
pub const DEFAULT_ALLOWED_LAG: Duration = Duration::from_millis(20);

/// Where a counter keeps its values and how a [`LaxCounter`](crate::LaxCounter)
/// flushes.
///
/// Counters built from options with the same `prefix` share their values,
/// whichever flavour they are: a [`StrictCounter`](crate::StrictCounter) reads
/// what [`LaxCounter`](crate::LaxCounter)s flushed.
///
/// ```
/// use std::time::Duration;
/// use distkit_counter::{CounterOptions, DistkitRedisKey};
///
/// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// let prefix = DistkitRedisKey::try_from("my_app")?;
/// let options = CounterOptions::new(prefix, conn).with_allowed_lag(Duration::from_millis(50));
/// assert_eq!(options.allowed_lag, Duration::from_millis(50));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CounterOptions {
    /// The namespace of the counters: every counter key lives in one Redis
    /// hash per prefix, `distkit:counter:{<prefix>}:values`. The prefix is
    /// also the Redis Cluster hash tag, so all counters of a prefix live on
    /// one shard (use several prefixes to spread load).
    pub prefix: DistkitRedisKey,
    /// The Redis connection (single node or cluster).
    pub connection: RedisConnection,
    /// How long a [`LaxCounter`](crate::LaxCounter) may keep increments in
    /// memory before flushing them: the flush period. Ignored by
    /// [`StrictCounter`](crate::StrictCounter). Default 20 ms; values below
    /// 1 ms are treated as 1 ms.
    pub allowed_lag: Duration,
}

impl CounterOptions {
    /// Options for counters under `prefix`, on `connection` (a
    /// `ConnectionManager`, a `ClusterConnection` or a [`RedisConnection`]),
    /// with the default [`allowed_lag`](Self::allowed_lag) of 20 ms.
    ///
    /// ```
    /// use distkit_counter::{CounterOptions, DistkitRedisKey, DEFAULT_ALLOWED_LAG};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// let options = CounterOptions::new(DistkitRedisKey::try_from("my_app")?, conn);
    /// assert_eq!(options.allowed_lag, DEFAULT_ALLOWED_LAG);
    /// # Ok(()) }
    /// ```
    pub fn new(prefix: DistkitRedisKey, connection: impl Into<RedisConnection>) -> Self {
        Self {
            prefix,
            connection: connection.into(),
            allowed_lag: DEFAULT_ALLOWED_LAG,
        }
    }

    /// Sets [`allowed_lag`](Self::allowed_lag).
    ///
    /// ```
    /// use std::time::Duration;
    /// use distkit_counter::{CounterOptions, DistkitRedisKey};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// let options = CounterOptions::new(DistkitRedisKey::try_from("my_app")?, conn)
    ///     .with_allowed_lag(Duration::from_millis(5));
    /// assert_eq!(options.allowed_lag, Duration::from_millis(5));
    /// # Ok(()) }
    /// ```
    pub fn with_allowed_lag(mut self, allowed_lag: Duration) -> Self {
        self.allowed_lag = allowed_lag;
        self
    }
}
