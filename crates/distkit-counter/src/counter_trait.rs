//! [`CounterTrait`]: the interface both counter flavours implement.

use std::future::Future;

use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey};

/// The operations of a distributed `i64` counter, implemented by
/// [`StrictCounter`](crate::StrictCounter) and [`LaxCounter`](crate::LaxCounter),
/// so switching flavour is a one-line change.
///
/// Every method returns a `Send` future. The trait is meant for static
/// dispatch (generics); it is not dyn-compatible, which keeps the lax
/// counter's `inc` free of allocation.
///
/// Values are exact over the whole `i64` range. Invalid input (an overflowing
/// result, `dec(i64::MIN)`) is a typed error and changes nothing. Batch
/// methods keep input order, and an empty batch is a no-op that returns an
/// empty vector.
///
/// ```
/// use distkit_counter::{CounterOptions, CounterTrait, DistkitRedisKey, LaxCounter, StrictCounter};
///
/// async fn count_visit(counter: &impl CounterTrait, page: &DistkitRedisKey) -> i64 {
///     counter.inc(page, 1).await.unwrap_or(0)
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_trait"))?;
/// let options = CounterOptions::new(prefix, conn);
/// let page = DistkitRedisKey::try_from("home")?;
/// assert_eq!(count_visit(&*StrictCounter::new(options.clone()), &page).await, 1);
/// assert_eq!(count_visit(&*LaxCounter::new(options), &page).await, 2);
/// # Ok(()) }
/// ```
pub trait CounterTrait: Send + Sync {
    /// Adds `count` (which may be negative) to the counter and returns the new value.
    ///
    /// A missing counter counts as 0. If the result would leave the `i64` range the
    /// call fails with [`DistkitError::CounterOverflow`] and the value is unchanged.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_inc"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// assert_eq!(counter.inc(&key, 5).await?, 5);
    /// assert_eq!(counter.inc(&key, -2).await?, 3);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn inc(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<i64, DistkitError>> + Send;

    /// Subtracts `count` and returns the new value. `dec(key, i64::MIN)` is refused
    /// with [`DistkitError::InvalidArgument`] (its negation does not exist); overflow
    /// fails as for [`inc`](Self::inc).
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_dec"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// counter.set(&key, 10).await?;
    /// assert_eq!(counter.dec(&key, 3).await?, 7);
    /// assert!(counter.dec(&key, i64::MIN).await.is_err());
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn dec(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<i64, DistkitError>> + Send;

    /// The current value (0 for a missing counter).
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_get"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// assert_eq!(counter.get(&key).await?, 0);
    /// counter.inc(&key, 2).await?;
    /// assert_eq!(counter.get(&key).await?, 2);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn get(&self, key: &DistkitRedisKey) -> impl Future<Output = Result<i64, DistkitError>> + Send;

    /// Sets the counter to `count` (absolute, whatever was buffered) and returns `count`.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_set"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// assert_eq!(counter.set(&key, (1 << 60) + 1).await?, (1 << 60) + 1);
    /// assert_eq!(counter.get(&key).await?, (1 << 60) + 1);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn set(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<i64, DistkitError>> + Send;

    /// Deletes the counter and returns the value it held (0 if it was absent).
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_del"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// counter.set(&key, 9).await?;
    /// assert_eq!(counter.del(&key).await?, 9);
    /// assert_eq!(counter.del(&key).await?, 0);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn del(&self, key: &DistkitRedisKey) -> impl Future<Output = Result<i64, DistkitError>> + Send;

    /// Deletes every counter of this prefix.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_clear"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// counter.set(&key, 9).await?;
    /// counter.clear().await?;
    /// assert_eq!(counter.get(&key).await?, 0);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn clear(&self) -> impl Future<Output = Result<(), DistkitError>> + Send;

    /// Adds `count` only if the current value satisfies `comparator`; returns
    /// `(new, old)`. When the comparison fails, `new == old` and nothing changes.
    /// Overflow fails with [`DistkitError::CounterOverflow`], value unchanged.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_inc_if"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// assert_eq!(counter.inc_if(&key, CounterComparator::Lt(2), 1).await?, (1, 0));
    /// assert_eq!(counter.inc_if(&key, CounterComparator::Lt(1), 1).await?, (1, 1));
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn inc_if(
        &self,
        key: &DistkitRedisKey,
        comparator: CounterComparator,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// Sets the counter to `count` only if the current value satisfies
    /// `comparator`; returns `(new, old)` (`new == old` when the comparison fails).
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_set_if"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// assert_eq!(counter.set_if(&key, CounterComparator::Eq(0), 7).await?, (7, 0));
    /// assert_eq!(counter.set_if(&key, CounterComparator::Eq(0), 8).await?, (7, 7));
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn set_if(
        &self,
        key: &DistkitRedisKey,
        comparator: CounterComparator,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send;

    /// The values of several counters, in input order, in one round trip. An
    /// empty slice returns an empty vector without touching Redis.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_get_all"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// counter.set(&key, 3).await?;
    /// let other = DistkitRedisKey::try_from("other")?;
    /// assert_eq!(counter.get_all(&[&key, &other]).await?, vec![(&key, 3), (&other, 0)]);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn get_all<'k>(
        &self,
        keys: &[&'k DistkitRedisKey],
    ) -> impl Future<Output = Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError>> + Send;

    /// Adds to several counters in one atomic call and returns each new value in
    /// input order; a key repeated in the batch is applied in order. All or
    /// nothing: if any update would overflow, nothing is written.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_inc_all"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// assert_eq!(counter.inc_all(&[(&key, 2), (&key, 3)]).await?, vec![(&key, 2), (&key, 5)]);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn inc_all<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, i64)],
    ) -> impl Future<Output = Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError>> + Send;

    /// Sets several counters in one atomic call and returns the values set, in
    /// input order; for a repeated key the last value wins.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_set_all"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// assert_eq!(counter.set_all(&[(&key, 4), (&key, 6)]).await?, vec![(&key, 4), (&key, 6)]);
    /// assert_eq!(counter.get(&key).await?, 6);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn set_all<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, i64)],
    ) -> impl Future<Output = Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError>> + Send;

    /// Conditional increments of several counters in one atomic call; returns
    /// `(key, new, old)` in input order. Each update sees the effect of earlier
    /// updates of the same key. All or nothing on overflow.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_inc_all_if"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// let result = counter
    ///     .inc_all_if(&[(&key, CounterComparator::Eq(0), 5), (&key, CounterComparator::Eq(0), 5)])
    ///     .await?;
    /// assert_eq!(result, vec![(&key, 5, 0), (&key, 5, 5)]);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn inc_all_if<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, CounterComparator, i64)],
    ) -> impl Future<Output = Result<Vec<(&'k DistkitRedisKey, i64, i64)>, DistkitError>> + Send;

    /// Conditional absolute writes of several counters in one atomic call;
    /// returns `(key, new, old)` in input order.
    ///
    /// ```
    /// use distkit_counter::{CounterComparator, CounterOptions, CounterTrait, DistkitRedisKey, StrictCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_set_all_if"))?;
    /// let counter = StrictCounter::new(CounterOptions::new(prefix, conn));
    /// let key = DistkitRedisKey::try_from("k")?;
    /// let result = counter.set_all_if(&[(&key, CounterComparator::Nil, 1), (&key, CounterComparator::Gt(5), 9)]).await?;
    /// assert_eq!(result, vec![(&key, 1, 0), (&key, 1, 1)]);
    /// # let _ = CounterComparator::Nil;
    /// # Ok(()) }
    /// ```
    fn set_all_if<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, CounterComparator, i64)],
    ) -> impl Future<Output = Result<Vec<(&'k DistkitRedisKey, i64, i64)>, DistkitError>> + Send;
}
