//! Key layout: every key of one call shares one hash tag.

use crate::DistkitRedisKey;

/// The first segment of every key distkit writes.
pub const LIBRARY_NAMESPACE: &str = "distkit";

/// Builds the Redis keys of one primitive instance.
///
/// Every key has the form
/// `distkit:<primitive>[:<segment>...]:{<tag>}[:<part>...]`. The hash tag
/// `{<tag>}` decides the Redis Cluster slot, so all keys built from one
/// layout land on one slot and a script may touch any of them in one call.
/// Segments and the tag are [`DistkitRedisKey`]s, which cannot contain `:`,
/// `{` or `}`, so user input can neither collide with another layout nor
/// forge a tag.
///
/// Choose the tag per structure (DESIGN §3): the prefix for counters (batch
/// operations span a prefix), the lock key for locks, the limiter key for
/// rate limits. Everything under one tag lives on one shard.
///
/// ```
/// use distkit_core::{DistkitRedisKey, KeyLayout};
///
/// let prefix = DistkitRedisKey::try_from("my_app")?;
/// let layout = KeyLayout::new("counter", &prefix);
/// assert_eq!(layout.key(&["values"]), "distkit:counter:{my_app}:values");
/// assert_eq!(layout.hash_tag(), "my_app");
/// # Ok::<(), distkit_core::InvalidKeyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyLayout {
    base: String,
    tag: DistkitRedisKey,
}

impl KeyLayout {
    /// The layout `distkit:<primitive>:{<tag>}`.
    ///
    /// ```
    /// use distkit_core::{DistkitRedisKey, KeyLayout};
    /// let layout = KeyLayout::new("lock", &DistkitRedisKey::try_from("invoice_42")?);
    /// assert_eq!(layout.base(), "distkit:lock:{invoice_42}");
    /// # Ok::<(), distkit_core::InvalidKeyError>(())
    /// ```
    pub fn new(primitive: &'static str, tag: &DistkitRedisKey) -> Self {
        Self::with_segments(primitive, &[], tag)
    }

    /// The layout `distkit:<primitive>:<segment>...:{<tag>}`, for primitives
    /// with a namespace in front of the tagged key.
    ///
    /// ```
    /// use distkit_core::{DistkitRedisKey, KeyLayout};
    /// let namespace = DistkitRedisKey::try_from("billing")?;
    /// let key = DistkitRedisKey::try_from("invoice_42")?;
    /// let layout = KeyLayout::with_segments("lock", &[&namespace], &key);
    /// assert_eq!(layout.key(&["owner"]), "distkit:lock:billing:{invoice_42}:owner");
    /// # Ok::<(), distkit_core::InvalidKeyError>(())
    /// ```
    pub fn with_segments(
        primitive: &'static str,
        segments: &[&DistkitRedisKey],
        tag: &DistkitRedisKey,
    ) -> Self {
        let mut base = String::with_capacity(64);
        base.push_str(LIBRARY_NAMESPACE);
        base.push(':');
        base.push_str(primitive);
        for segment in segments {
            base.push(':');
            base.push_str(segment.as_str());
        }
        base.push_str(":{");
        base.push_str(tag.as_str());
        base.push('}');
        Self {
            base,
            tag: tag.clone(),
        }
    }

    /// The key up to and including the hash tag.
    ///
    /// ```
    /// use distkit_core::{DistkitRedisKey, KeyLayout};
    /// let layout = KeyLayout::new("counter", &DistkitRedisKey::try_from("a")?);
    /// assert_eq!(layout.base(), "distkit:counter:{a}");
    /// # Ok::<(), distkit_core::InvalidKeyError>(())
    /// ```
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The hash tag (without braces).
    ///
    /// ```
    /// use distkit_core::{DistkitRedisKey, KeyLayout};
    /// let layout = KeyLayout::new("counter", &DistkitRedisKey::try_from("a")?);
    /// assert_eq!(layout.hash_tag(), "a");
    /// # Ok::<(), distkit_core::InvalidKeyError>(())
    /// ```
    pub fn hash_tag(&self) -> &str {
        self.tag.as_str()
    }

    /// The base followed by `:<part>` for each part. Parts come from the
    /// primitive's own code or from validated keys; they follow the tag, so
    /// they cannot change the slot.
    ///
    /// ```
    /// use distkit_core::{DistkitRedisKey, KeyLayout};
    /// let layout = KeyLayout::new("icounter", &DistkitRedisKey::try_from("app")?);
    /// assert_eq!(layout.key(&["slices", "page"]), "distkit:icounter:{app}:slices:page");
    /// assert_eq!(layout.key(&[]), "distkit:icounter:{app}");
    /// # Ok::<(), distkit_core::InvalidKeyError>(())
    /// ```
    pub fn key(&self, parts: &[&str]) -> String {
        let extra: usize = parts.iter().map(|p| p.len() + 1).sum();
        let mut key = String::with_capacity(self.base.len() + extra);
        key.push_str(&self.base);
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }
}
