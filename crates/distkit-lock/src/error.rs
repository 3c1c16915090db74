//! The errors of lock acquisition and lease handling.

use std::time::Duration;

use distkit_core::DistkitError;

/// Everything that can go wrong with a lock.
///
/// Converts into [`DistkitError::Lock`]; downcast the boxed error to get it
/// back.
///
/// ```
/// use std::time::Duration;
/// use distkit_lock::{DistkitError, LockError};
///
/// let error = LockError::Timeout { key: "invoice_42".into(), waited: Duration::from_millis(250) };
/// assert!(error.to_string().contains("250ms"));
/// let wide: DistkitError = error.into();
/// let DistkitError::Lock(inner) = wide else { unreachable!() };
/// assert!(matches!(inner.downcast_ref::<LockError>(), Some(LockError::Timeout { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// A `try_*` call found the lock held and did not wait.
    #[error("lock {key:?} is held by another owner")]
    WouldBlock {
        /// The lock key.
        key: String,
    },

    /// The wait for the lock ran out (`max_wait` or `try_*_with_timeout`).
    #[error("lock {key:?} not acquired within {waited:?}")]
    Timeout {
        /// The lock key.
        key: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// `try_*_with_retries` made every attempt it was allowed.
    #[error("lock {key:?} not acquired after {attempts} attempts")]
    RetriesExhausted {
        /// The lock key.
        key: String,
        /// Attempts made (the first try plus the retries).
        attempts: u32,
    },

    /// The guard's lease is no longer held by it: it expired or was taken
    /// over by another owner.
    #[error("lock {key:?} is no longer held by this guard")]
    NotOwner {
        /// The lock key.
        key: String,
    },

    /// The lease ttl is out of range.
    #[error("invalid lock ttl {ttl:?}: {reason}")]
    InvalidTtl {
        /// The ttl given.
        ttl: Duration,
        /// The rule it broke.
        reason: &'static str,
    },

    /// The retry interval is out of range.
    #[error("invalid lock retry interval {interval:?}: {reason}")]
    InvalidRetryInterval {
        /// The interval given.
        interval: Duration,
        /// The rule it broke.
        reason: &'static str,
    },

    /// The owner id is empty, too long or contains whitespace or control
    /// characters.
    #[error("invalid lock owner id {owner:?}: {reason}")]
    InvalidOwner {
        /// The owner id given.
        owner: String,
        /// The rule it broke.
        reason: &'static str,
    },

    /// Redis failed or could not be reached.
    #[error(transparent)]
    Redis(#[from] DistkitError),
}

impl From<LockError> for DistkitError {
    fn from(error: LockError) -> Self {
        match error {
            LockError::Redis(inner) => inner,
            other => DistkitError::Lock(Box::new(other)),
        }
    }
}
