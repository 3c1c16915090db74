//! The methods every guard type shares, generated once for each.

/// Implements the shared guard API for `$guard` (a struct with a `lease:
/// Lease` field). `$acquire` is the doc-test line that produces a guard
/// named `guard` from a lock named `lock`; `$new` builds that lock.
macro_rules! guard_api {
    ($guard:ident, $new:literal, $acquire:literal) => {
        impl $guard {
            /// The lease state as known locally, read without I/O.
            /// `Acquired` turns `Lost` as soon as a renewal finds another
            /// owner or cannot reach Redis before the lease would run out.
            ///
            /// ```
            /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let conn = distkit_testkit::shared_server().connection_manager().await;
            /// # use distkit_lock::*;
            /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
            #[doc = $new]
            #[doc = $acquire]
            /// assert_eq!(guard.state(), LockGuardState::Acquired);
            /// # Ok(()) }
            /// ```
            pub fn state(&self) -> LockGuardState {
                self.lease.state()
            }

            /// The fencing token of this acquisition: strictly greater than
            /// every token handed out before for this lock key, by any
            /// process. Pass it to storage that rejects writes carrying a
            /// token lower than one it has seen.
            ///
            /// ```
            /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let conn = distkit_testkit::shared_server().connection_manager().await;
            /// # use distkit_lock::*;
            /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
            #[doc = $new]
            #[doc = $acquire]
            /// let first = guard.fencing_token();
            /// guard.release().await?;
            #[doc = $acquire]
            /// assert!(guard.fencing_token() > first);
            /// # Ok(()) }
            /// ```
            pub fn fencing_token(&self) -> u64 {
                self.lease.fencing_token()
            }

            /// The attempt (1-based) on which the lock was obtained.
            ///
            /// ```
            /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let conn = distkit_testkit::shared_server().connection_manager().await;
            /// # use distkit_lock::*;
            /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
            #[doc = $new]
            #[doc = $acquire]
            /// assert_eq!(guard.acquired_on_attempt(), 1);
            /// # Ok(()) }
            /// ```
            pub fn acquired_on_attempt(&self) -> u32 {
                self.lease.attempt()
            }

            /// The owner token of this acquisition (`<owner_id>:<random>`),
            /// unique per guard: the identity Redis checks on renewal and
            /// release.
            ///
            /// ```
            /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let conn = distkit_testkit::shared_server().connection_manager().await;
            /// # use distkit_lock::*;
            /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
            #[doc = $new]
            #[doc = $acquire]
            /// assert!(guard.owner_token().starts_with("pid"));
            /// # Ok(()) }
            /// ```
            pub fn owner_token(&self) -> &str {
                self.lease.owner_token()
            }

            /// Completes when the lease is lost (never, if it is released
            /// first). Race the critical section against it to stop work
            /// that is no longer protected.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: it only watches local state.
            ///
            /// ```
            /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let conn = distkit_testkit::shared_server().connection_manager().await;
            /// # use distkit_lock::*;
            /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
            #[doc = $new]
            #[doc = $acquire]
            /// tokio::select! {
            ///     () = guard.lost() => println!("lease lost: stop"),
            ///     () = tokio::time::sleep(std::time::Duration::from_millis(10)) => println!("work done"),
            /// }
            /// # Ok(()) }
            /// ```
            pub async fn lost(&self) {
                self.lease.lost().await
            }

            /// Renews the lease now (the guard also renews it every ttl/3 in
            /// the background).
            ///
            /// # Errors
            ///
            /// [`LockError::NotOwner`] when the lease is no longer this
            /// guard's (the guard turns `Lost`); [`LockError::Redis`] when
            /// Redis cannot be reached.
            ///
            /// # Cancel safety
            ///
            /// Dropping the future may leave the renewal applied or not;
            /// either way the lease stays this guard's.
            ///
            /// ```
            /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let conn = distkit_testkit::shared_server().connection_manager().await;
            /// # use distkit_lock::*;
            /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
            #[doc = $new]
            #[doc = $acquire]
            /// guard.renew().await?;
            /// # Ok(()) }
            /// ```
            pub async fn renew(&self) -> Result<(), LockError> {
                self.lease.renew().await
            }

            /// Releases the lease and reports the final state truthfully:
            /// `Released` when this guard still held it, `Lost` when the
            /// lease was already gone (expired or taken over).
            ///
            /// # Errors
            ///
            /// [`LockError::Redis`] when Redis cannot be reached; the lease
            /// then expires by its ttl.
            ///
            /// # Cancel safety
            ///
            /// Dropping the future may leave the lease held until its ttl
            /// runs out (renewal has stopped).
            ///
            /// ```
            /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let conn = distkit_testkit::shared_server().connection_manager().await;
            /// # use distkit_lock::*;
            /// # let key = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc"))?;
            #[doc = $new]
            #[doc = $acquire]
            /// assert_eq!(guard.release().await?, LockGuardState::Released);
            /// # Ok(()) }
            /// ```
            pub async fn release(self) -> Result<LockGuardState, LockError> {
                self.lease.release().await
            }
        }
    };
}

pub(crate) use guard_api;
