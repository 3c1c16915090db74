//! [`StrictCounter`]: every call is one atomic Redis round trip.
//!
//! Use it when every read must reflect every acknowledged write: billing,
//! inventory, quotas. Each operation is a single Redis command or Lua script
//! on the prefix's hash, so it is atomic and linearizable, and costs one round
//! trip. When increments are frequent and a short lag is acceptable, use
//! [`LaxCounter`](crate::LaxCounter) instead.

use std::sync::Arc;

use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey};

use crate::store::Store;
use crate::{CounterOptions, CounterTrait};

/// A distributed counter where every call goes to Redis at once.
///
/// `inc`/`dec` are a plain `HINCRBY` (exact, refused by Redis on overflow),
/// `get`/`get_all`/`set`/`set_all`/`clear` are `HGET`/`HMGET`/`HSET`/`DEL`, and
/// `del` and the conditional and batch increments are the Lua scripts of
/// `scripts/counter/`. Every call is one round trip.
///
/// # Cancel safety
///
/// Dropping a future after its request was sent does not take the request
/// back: the write may still be applied. The same holds when a call fails
/// because the connection dropped: an `inc` that returned `Err` may have
/// been applied once (never twice).
///
/// ```
/// use distkit_counter::{CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
///
/// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_strict"))?;
/// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
/// let orders = DistkitRedisKey::try_from("orders")?;
/// assert_eq!(counter.inc(&orders, 1).await?, 1);
/// assert_eq!(counter.get(&orders).await?, 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StrictCounter {
    store: Store,
}

impl StrictCounter {
    /// A strict counter over `options.prefix`.
    ///
    /// ```
    /// use distkit_counter::{CounterOptions, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// let counter = StrictCounter::new(CounterOptions::new(DistkitRedisKey::try_from("my_app")?, conn));
    /// # Ok(()) }
    /// ```
    pub fn new(options: CounterOptions) -> Arc<Self> {
        Arc::new(Self {
            store: Store::new(&options.prefix, options.connection),
        })
    }
}

/// `-count`, or the typed error for `dec(i64::MIN)`.
/// The one result of a conditional write sent as a batch of one.
pub(crate) fn single_result(
    results: Vec<(i64, i64)>,
    operation: &'static str,
) -> Result<(i64, i64), DistkitError> {
    results
        .first()
        .copied()
        .ok_or_else(|| DistkitError::unexpected_reply(operation, "empty reply"))
}

pub(crate) fn negate(count: i64) -> Result<i64, DistkitError> {
    count.checked_neg().ok_or_else(|| {
        DistkitError::invalid_argument(
            "count",
            format!("dec by {count} is not representable (its negation leaves the i64 range)"),
        )
    })
}

pub(crate) fn zip_keys<'k>(
    keys: impl Iterator<Item = &'k DistkitRedisKey>,
    values: Vec<i64>,
) -> Vec<(&'k DistkitRedisKey, i64)> {
    keys.zip(values).collect()
}

pub(crate) fn zip_pairs<'k>(
    keys: impl Iterator<Item = &'k DistkitRedisKey>,
    values: Vec<(i64, i64)>,
) -> Vec<(&'k DistkitRedisKey, i64, i64)> {
    keys.zip(values)
        .map(|(k, (new, old))| (k, new, old))
        .collect()
}

impl CounterTrait for StrictCounter {
    async fn inc(&self, key: &DistkitRedisKey, count: i64) -> Result<i64, DistkitError> {
        self.store.inc("inc", key, count, count).await
    }

    async fn dec(&self, key: &DistkitRedisKey, count: i64) -> Result<i64, DistkitError> {
        let delta = negate(count)?;
        self.store.inc("dec", key, delta, count).await
    }

    async fn get(&self, key: &DistkitRedisKey) -> Result<i64, DistkitError> {
        self.store.get(key).await
    }

    async fn set(&self, key: &DistkitRedisKey, count: i64) -> Result<i64, DistkitError> {
        self.store.set(key, count).await
    }

    async fn del(&self, key: &DistkitRedisKey) -> Result<i64, DistkitError> {
        self.store.del(key).await
    }

    async fn clear(&self) -> Result<(), DistkitError> {
        self.store.clear().await
    }

    async fn inc_if(
        &self,
        key: &DistkitRedisKey,
        comparator: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        single_result(
            self.store
                .inc_if_many("inc_if", &[(key, comparator, count)])
                .await?,
            "counter.inc_if",
        )
    }

    async fn set_if(
        &self,
        key: &DistkitRedisKey,
        comparator: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        single_result(
            self.store
                .set_if_many("set_if", &[(key, comparator, count)])
                .await?,
            "counter.set_if",
        )
    }

    async fn get_all<'k>(
        &self,
        keys: &[&'k DistkitRedisKey],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError> {
        let values = self.store.get_many(keys).await?;
        Ok(zip_keys(keys.iter().copied(), values))
    }

    async fn inc_all<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError> {
        let conditional: Vec<_> = updates
            .iter()
            .map(|(key, delta)| (*key, CounterComparator::Nil, *delta))
            .collect();
        let result = self.store.inc_if_many("inc_all", &conditional).await?;
        Ok(zip_keys(
            updates.iter().map(|(k, _)| *k),
            result.into_iter().map(|(new, _)| new).collect(),
        ))
    }

    async fn set_all<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError> {
        self.store.set_many(updates).await?;
        Ok(updates.to_vec())
    }

    async fn inc_all_if<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64, i64)>, DistkitError> {
        let result = self.store.inc_if_many("inc_all_if", updates).await?;
        Ok(zip_pairs(updates.iter().map(|(k, _, _)| *k), result))
    }

    async fn set_all_if<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64, i64)>, DistkitError> {
        let result = self.store.set_if_many("set_all_if", updates).await?;
        Ok(zip_pairs(updates.iter().map(|(k, _, _)| *k), result))
    }
}
