//! The error type every distkit primitive converts into.

use crate::InvalidKeyError;

/// A boxed error from a primitive crate, kept whole inside [`DistkitError`] so
/// callers can downcast it to the crate's own error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in distkit.
///
/// Primitive crates have small error enums of their own (a lock's
/// `LockError`, for example); each converts into this type, so an application
/// can use one error type across all primitives.
///
/// ```
/// use distkit_core::{DistkitError, DistkitRedisKey};
///
/// fn parse(name: &str) -> Result<DistkitRedisKey, DistkitError> {
///     Ok(DistkitRedisKey::try_from(name)?)
/// }
///
/// let error = parse("a:b").unwrap_err();
/// assert!(matches!(error, DistkitError::InvalidKey(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistkitError {
    /// A key broke one of the [`DistkitRedisKey`](crate::DistkitRedisKey) rules.
    #[error(transparent)]
    InvalidKey(#[from] InvalidKeyError),

    /// An argument was out of its allowed range. Nothing was changed.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// Name of the argument.
        name: &'static str,
        /// What was wrong with it, including the value given.
        reason: String,
    },

    /// A counter update would have left the `i64` range. The stored value is
    /// unchanged.
    #[error(
        "{operation} on key {key:?} would overflow i64 (operand {operand}); the value is unchanged"
    )]
    CounterOverflow {
        /// The operation that was refused (`inc`, `dec`, ...).
        operation: &'static str,
        /// The counter key.
        key: String,
        /// The operand of the refused operation.
        operand: i64,
    },

    /// Redis answered with an error, or could not be reached.
    #[error("redis error during {operation}: {source}")]
    Redis {
        /// The distkit operation that failed, such as `counter.inc`.
        operation: &'static str,
        /// The error from the Redis client.
        #[source]
        source: redis::RedisError,
    },

    /// Redis answered with a reply distkit did not expect: stored data that
    /// does not follow distkit's layout, or a script of another version.
    #[error("unexpected reply during {operation}: {detail}")]
    UnexpectedReply {
        /// The distkit operation that failed.
        operation: &'static str,
        /// What was unexpected.
        detail: String,
    },

    /// An error of a lock (`distkit_lock::LockError`, downcast to inspect it).
    #[error(transparent)]
    Lock(BoxError),

    /// An error of a rate limiter (`distkit_ratelimit`'s error, downcast to
    /// inspect it).
    #[error(transparent)]
    RateLimit(BoxError),
}

impl DistkitError {
    /// Wraps a Redis client error with the name of the operation it failed.
    ///
    /// ```
    /// use distkit_core::DistkitError;
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    /// let error = DistkitError::redis("counter.inc", redis::RedisError::from(io));
    /// assert!(error.to_string().starts_with("redis error during counter.inc"));
    /// assert!(error.is_connection_error());
    /// ```
    pub fn redis(operation: &'static str, source: redis::RedisError) -> Self {
        DistkitError::Redis { operation, source }
    }

    /// Builds an [`InvalidArgument`](DistkitError::InvalidArgument) error.
    ///
    /// ```
    /// use distkit_core::DistkitError;
    /// let error = DistkitError::invalid_argument("ttl", "must be positive, got 0 ms");
    /// assert_eq!(error.to_string(), "invalid argument `ttl`: must be positive, got 0 ms");
    /// ```
    pub fn invalid_argument(name: &'static str, reason: impl Into<String>) -> Self {
        DistkitError::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }

    /// Builds an [`UnexpectedReply`](DistkitError::UnexpectedReply) error.
    ///
    /// ```
    /// use distkit_core::DistkitError;
    /// let error = DistkitError::unexpected_reply("counter.get", "not an integer: \"x\"");
    /// assert!(matches!(error, DistkitError::UnexpectedReply { .. }));
    /// ```
    pub fn unexpected_reply(operation: &'static str, detail: impl Into<String>) -> Self {
        DistkitError::UnexpectedReply {
            operation,
            detail: detail.into(),
        }
    }

    /// Whether this error means Redis could not be reached or the connection
    /// dropped (retrying later may succeed), as opposed to a refused request.
    ///
    /// ```
    /// use distkit_core::DistkitError;
    /// assert!(!DistkitError::invalid_argument("count", "bad").is_connection_error());
    /// ```
    pub fn is_connection_error(&self) -> bool {
        match self {
            DistkitError::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_timeout()
                    || source.is_unrecoverable_error()
            }
            _ => false,
        }
    }

    /// A copy of this error for another caller, under `operation`: for one
    /// failed call that carried several callers' requests (combined calls),
    /// each caller gets its own error. A Redis error keeps its kind, and
    /// stays a timeout or a connection error when it was one; other errors
    /// become [`DistkitError::UnexpectedReply`] with the same message.
    ///
    /// ```
    /// use distkit_core::DistkitError;
    /// let timeout = DistkitError::redis(
    ///     "counter.inc",
    ///     std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out").into(),
    /// );
    /// let copy = timeout.copy_for("counter.get");
    /// assert!(copy.is_connection_error());
    /// assert!(copy.to_string().contains("counter.get"));
    /// ```
    pub fn copy_for(&self, operation: &'static str) -> DistkitError {
        match self {
            DistkitError::Redis { source, .. } => {
                let detail = format!("combined call failed: {source}");
                let copy = if source.is_timeout() {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, detail).into()
                } else if self.is_connection_error() {
                    std::io::Error::new(std::io::ErrorKind::ConnectionReset, detail).into()
                } else {
                    redis::RedisError::from((
                        source.kind(),
                        "combined call failed",
                        source.to_string(),
                    ))
                };
                DistkitError::redis(operation, copy)
            }
            other => DistkitError::unexpected_reply(operation, other.to_string()),
        }
    }
}
