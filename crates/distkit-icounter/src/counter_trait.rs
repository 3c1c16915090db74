//! [`InstanceAwareCounterTrait`]: the operations both instance-aware counters offer.

use std::future::Future;

use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey};

use crate::InstanceInfo;

/// Operations of an instance-aware counter. Unless stated otherwise every
/// method returns `(cumulative, this instance's slice)` after the operation.
///
/// Conditional forms compare the cumulative (`inc_if`, `set_if`) or this
/// instance's slice (`set_on_instance_if`); a missing value counts as 0.
///
/// # Cancel safety
///
/// Dropping a strict call's future before it completes may or may not have
/// applied the operation (the script may already be running in Redis), as
/// for any Redis command; the counter's own state stays consistent either
/// way, since its local memory is only updated from replies. A lax `inc` or
/// `dec` on a cached key is applied locally the first time its future is
/// polled, and completes in that poll.
///
/// # Generic code
///
/// The methods return `impl Future + Send` (no boxing per call, as
/// `CounterTrait` in `distkit-counter`): write code that works with either
/// counter against `impl InstanceAwareCounterTrait` (or a generic parameter);
/// the trait is not object safe.
///
/// ```
/// use distkit_icounter::{DistkitError, DistkitRedisKey, InstanceAwareCounterTrait};
///
/// async fn connection_opened(
///     counter: &impl InstanceAwareCounterTrait,
///     key: &DistkitRedisKey,
/// ) -> Result<i64, DistkitError> {
///     let (cumulative, _mine) = counter.inc(key, 1).await?;
///     Ok(cumulative)
/// }
/// # #[tokio::main] async fn main() -> Result<(), DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # use distkit_icounter::*;
/// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_generic"))?;
/// let key = DistkitRedisKey::try_from("connections")?;
/// let strict = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix.clone(), conn.clone()));
/// let lax = LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(prefix, conn));
/// assert_eq!(connection_opened(&*strict, &key).await?, 1);
/// assert_eq!(connection_opened(&*lax, &key).await?, 2); // lax: 1 known + 1 local
/// # Ok(()) }
/// ```
pub trait InstanceAwareCounterTrait: Send + Sync {
    /// Returns this instance's id.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// let id = counter.instance_id();
    /// assert!(!id.is_empty());
    /// # Ok(()) }
    /// ```
    fn instance_id(&self) -> &str;

    /// Adds `count` to this instance's slice; returns `(cumulative, slice)`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.inc(&key, 5).await?, (5, 5));
    /// # Ok(()) }
    /// ```
    fn inc(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Subtracts `count` from this instance's slice (slices may go negative).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.dec(&key, 2).await?, (-2, -2));
    /// # Ok(()) }
    /// ```
    fn dec(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Reads `(cumulative, slice)` without changing them.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.get(&key).await?, (0, 0));
    /// # Ok(()) }
    /// ```
    fn get(
        &self,
        key: &DistkitRedisKey,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Sets the cumulative to `count` and bumps the key's epoch: this instance's slice becomes `count`, every other instance's slice is reset to 0 (lazily, before it contributes again).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.set(&key, 100).await?, (100, 100));
    /// # Ok(()) }
    /// ```
    fn set(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Sets this instance's slice to `count` (no epoch bump); the cumulative moves by the difference.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// counter.inc(&key, 3).await?;
    /// assert_eq!(counter.set_on_instance(&key, 10).await?, (10, 10));
    /// # Ok(()) }
    /// ```
    fn set_on_instance(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Deletes the key globally and bumps its epoch; returns `(old cumulative, 0)`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// counter.inc(&key, 4).await?;
    /// assert_eq!(counter.del(&key).await?, (4, 0));
    /// assert_eq!(counter.get(&key).await?, (0, 0));
    /// # Ok(()) }
    /// ```
    fn del(
        &self,
        key: &DistkitRedisKey,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Removes this instance's slice; returns `(cumulative after, slice removed)`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// counter.inc(&key, 4).await?;
    /// assert_eq!(counter.del_on_instance(&key).await?, (0, 4));
    /// # Ok(()) }
    /// ```
    fn del_on_instance(
        &self,
        key: &DistkitRedisKey,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Deletes every key of the prefix and starts a new epoch for all of them (one call).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// counter.inc(&key, 4).await?;
    /// counter.clear().await?;
    /// assert_eq!(counter.get(&key).await?, (0, 0));
    /// # Ok(()) }
    /// ```
    fn clear(&self) -> impl Future<Output = Result<(), DistkitError>> + Send;

    /// Sets every slice of this instance to 0, in pages of bounded size (one call per page: not atomic across pages).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// counter.inc(&key, 4).await?;
    /// counter.clear_on_instance().await?;
    /// assert_eq!(counter.get(&key).await?, (0, 0));
    /// # Ok(()) }
    /// ```
    fn clear_on_instance(&self) -> impl Future<Output = Result<(), DistkitError>> + Send;

    /// Adds `count` to this instance's slice if the cumulative matches `cmp`; otherwise changes nothing and returns the current values.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.inc_if(&key, CounterComparator::Lt(10), 5).await?, (5, 5));
    /// assert_eq!(counter.inc_if(&key, CounterComparator::Gt(10), 5).await?, (5, 5));
    /// # Ok(()) }
    /// ```
    fn inc_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// [`set`](Self::set) if the cumulative matches `cmp`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.set_if(&key, CounterComparator::Eq(0), 7).await?, (7, 7));
    /// # Ok(()) }
    /// ```
    fn set_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// [`set_on_instance`](Self::set_on_instance) if this instance's slice matches `cmp`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.set_on_instance_if(&key, CounterComparator::Eq(0), 7).await?, (7, 7));
    /// # Ok(()) }
    /// ```
    fn set_on_instance_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Reads several keys in one call; results keep the input order as `(key, cumulative, slice)`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// counter.inc(&key, 1).await?;
    /// assert_eq!(counter.get_all(&[&key, &other]).await?, vec![(&key, 1, 1), (&other, 0, 0)]);
    /// # Ok(()) }
    /// ```
    fn get_all<'a>(
        &self,
        keys: &[&'a DistkitRedisKey],
    ) -> impl Future<Output = Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>> + Send;

    /// Reads this instance's slice of several keys in one call, in input order.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// counter.inc(&key, 1).await?;
    /// assert_eq!(counter.get_all_on_instance(&[&key, &other]).await?, vec![(&key, 1), (&other, 0)]);
    /// # Ok(()) }
    /// ```
    fn get_all_on_instance<'a>(
        &self,
        keys: &[&'a DistkitRedisKey],
    ) -> impl Future<Output = Result<Vec<(&'a DistkitRedisKey, i64)>, DistkitError>> + Send;

    /// [`inc`](Self::inc) on several keys in one call (duplicates apply in order). If one would overflow, it is skipped and the call returns [`DistkitError::CounterOverflow`]; the other updates are applied.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.inc_all(&[(&key, 1), (&other, 2), (&key, 3)]).await?, vec![(&key, 1, 1), (&other, 2, 2), (&key, 4, 4)]);
    /// # Ok(()) }
    /// ```
    fn inc_all<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, i64)],
    ) -> impl Future<Output = Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>> + Send;

    /// [`inc_if`](Self::inc_if) on several keys in one call.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// let out = counter.inc_all_if(&[(&key, CounterComparator::Nil, 1), (&other, CounterComparator::Gt(0), 2)]).await?;
    /// assert_eq!(out, vec![(&key, 1, 1), (&other, 0, 0)]);
    /// # Ok(()) }
    /// ```
    fn inc_all_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> impl Future<Output = Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>> + Send;

    /// [`set`](Self::set) on several keys in one call.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.set_all(&[(&key, 5), (&other, 6)]).await?, vec![(&key, 5, 5), (&other, 6, 6)]);
    /// # Ok(()) }
    /// ```
    fn set_all<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, i64)],
    ) -> impl Future<Output = Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>> + Send;

    /// [`set_if`](Self::set_if) on several keys in one call.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// let out = counter.set_all_if(&[(&key, CounterComparator::Eq(0), 5), (&other, CounterComparator::Ne(0), 6)]).await?;
    /// assert_eq!(out, vec![(&key, 5, 5), (&other, 0, 0)]);
    /// # Ok(()) }
    /// ```
    fn set_all_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> impl Future<Output = Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>> + Send;

    /// [`set_on_instance`](Self::set_on_instance) on several keys in one call.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// assert_eq!(counter.set_all_on_instance(&[(&key, 5), (&other, 6)]).await?, vec![(&key, 5, 5), (&other, 6, 6)]);
    /// # Ok(()) }
    /// ```
    fn set_all_on_instance<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, i64)],
    ) -> impl Future<Output = Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>> + Send;

    /// [`set_on_instance_if`](Self::set_on_instance_if) on several keys in one call.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// let out = counter.set_all_on_instance_if(&[(&key, CounterComparator::Eq(0), 5)]).await?;
    /// assert_eq!(out, vec![(&key, 5, 5)]);
    /// # Ok(()) }
    /// ```
    fn set_all_on_instance_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> impl Future<Output = Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>> + Send;

    /// The live instances of this prefix with their last heartbeat (server time, ms).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
    /// # let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn));
    /// # let key = DistkitRedisKey::try_from("connections")?;
    /// # let other = DistkitRedisKey::try_from("sessions")?;
    /// let live = InstanceAwareCounterTrait::live_instances(&*counter).await?;
    /// assert_eq!(live.len(), 1);
    /// # Ok(()) }
    /// ```
    fn live_instances(
        &self,
    ) -> impl Future<Output = Result<Vec<InstanceInfo>, DistkitError>> + Send;
}
