//! Options of the instance-aware counters.

use std::time::Duration;

use distkit_core::{DistkitRedisKey, RedisConnection};

/// Default dead-instance threshold: 30 seconds.
pub const DEFAULT_DEAD_INSTANCE_THRESHOLD_MS: u64 = 30_000;

/// Default flush interval and allowed lag of [`LaxInstanceAwareCounter`](crate::LaxInstanceAwareCounter): 20 ms.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Options of a [`StrictInstanceAwareCounter`](crate::StrictInstanceAwareCounter).
///
/// Every instance that shares a `prefix` must use the same
/// `dead_instance_threshold_ms`: the threshold of the caller decides whom it
/// declares dead.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use distkit_icounter::{DistkitRedisKey, StrictInstanceAwareCounterOptions};
///
/// let prefix = DistkitRedisKey::try_from("my_app")?;
/// let options = StrictInstanceAwareCounterOptions::new(prefix, conn)
///     .with_instance_id(DistkitRedisKey::try_from("web-1")?);
/// assert_eq!(options.dead_instance_threshold_ms, 30_000);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StrictInstanceAwareCounterOptions {
    /// Namespace of the counters; also the Redis Cluster hash tag, so all
    /// counters of one prefix live on one shard.
    pub prefix: DistkitRedisKey,
    /// Connection to a single node or a cluster.
    pub connection_manager: RedisConnection,
    /// An instance silent for longer than this is removed by the next
    /// operation of any instance (default 30 000 ms).
    pub dead_instance_threshold_ms: u64,
    /// This instance's id; `None` generates a unique one.
    pub instance_id: Option<DistkitRedisKey>,
}

impl StrictInstanceAwareCounterOptions {
    /// Options with the defaults: 30 s threshold and a generated instance id.
    pub fn new(prefix: DistkitRedisKey, conn: impl Into<RedisConnection>) -> Self {
        Self {
            prefix,
            connection_manager: conn.into(),
            dead_instance_threshold_ms: DEFAULT_DEAD_INSTANCE_THRESHOLD_MS,
            instance_id: None,
        }
    }

    /// Sets the dead-instance threshold in milliseconds.
    pub fn with_dead_instance_threshold_ms(mut self, threshold_ms: u64) -> Self {
        self.dead_instance_threshold_ms = threshold_ms;
        self
    }

    /// Sets this instance's id (one live process per id: a process that
    /// reuses the id of a live or not yet cleaned-up instance inherits its
    /// slices).
    pub fn with_instance_id(mut self, instance_id: DistkitRedisKey) -> Self {
        self.instance_id = Some(instance_id);
        self
    }
}

/// Options of a [`LaxInstanceAwareCounter`](crate::LaxInstanceAwareCounter).
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use distkit_icounter::{DistkitRedisKey, LaxInstanceAwareCounterOptions};
///
/// let options = LaxInstanceAwareCounterOptions::new(DistkitRedisKey::try_from("my_app")?, conn);
/// assert_eq!(options.flush_interval, std::time::Duration::from_millis(20));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LaxInstanceAwareCounterOptions {
    /// Namespace of the counters (see [`StrictInstanceAwareCounterOptions::prefix`]).
    pub prefix: DistkitRedisKey,
    /// Connection to a single node or a cluster.
    pub connection_manager: RedisConnection,
    /// Dead-instance threshold in milliseconds (default 30 000).
    pub dead_instance_threshold_ms: u64,
    /// How often pending deltas are flushed (default 20 ms).
    pub flush_interval: Duration,
    /// How old a remote value may be before `get` reads Redis again (default 20 ms).
    pub allowed_lag: Duration,
    /// This instance's id; `None` generates a unique one.
    pub instance_id: Option<DistkitRedisKey>,
}

impl LaxInstanceAwareCounterOptions {
    /// Options with the defaults.
    pub fn new(prefix: DistkitRedisKey, conn: impl Into<RedisConnection>) -> Self {
        Self {
            prefix,
            connection_manager: conn.into(),
            dead_instance_threshold_ms: DEFAULT_DEAD_INSTANCE_THRESHOLD_MS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            allowed_lag: DEFAULT_FLUSH_INTERVAL,
            instance_id: None,
        }
    }

    /// Sets the dead-instance threshold in milliseconds.
    pub fn with_dead_instance_threshold_ms(mut self, threshold_ms: u64) -> Self {
        self.dead_instance_threshold_ms = threshold_ms;
        self
    }

    /// Sets this instance's id.
    pub fn with_instance_id(mut self, instance_id: DistkitRedisKey) -> Self {
        self.instance_id = Some(instance_id);
        self
    }

    /// Sets the flush interval.
    pub fn with_flush_interval(mut self, flush_interval: Duration) -> Self {
        self.flush_interval = flush_interval;
        self
    }

    pub(crate) fn strict(&self) -> StrictInstanceAwareCounterOptions {
        StrictInstanceAwareCounterOptions {
            prefix: self.prefix.clone(),
            connection_manager: self.connection_manager.clone(),
            dead_instance_threshold_ms: self.dead_instance_threshold_ms,
            instance_id: self.instance_id.clone(),
        }
    }
}
