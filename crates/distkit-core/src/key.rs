//! Validated key segments.

use std::fmt;
use std::str::FromStr;

/// Longest key segment accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 255;

/// How many characters of an offending value an error message shows.
const SHOWN_CHARS: usize = 64;

/// A validated segment of a Redis key: a counter name, a prefix, a lock name.
///
/// distkit builds every Redis key it touches from these segments, so the rules
/// guarantee that user input can never break the key layout or forge a Redis
/// Cluster hash tag:
///
/// - not empty, and at most [`MAX_KEY_BYTES`] (255) bytes of UTF-8;
/// - none of `:` (the layout separator), `{` or `}` (hash tag delimiters);
/// - no whitespace and no control characters.
///
/// ```
/// use distkit_core::{DistkitRedisKey, KeyRule};
///
/// let key: DistkitRedisKey = "orders".parse()?;
/// assert_eq!(key.to_string(), "orders");
///
/// let error = DistkitRedisKey::try_from("user:42").unwrap_err();
/// assert_eq!(error.rule(), KeyRule::ForbiddenCharacter(':'));
/// # Ok::<(), distkit_core::InvalidKeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistkitRedisKey(String);

impl DistkitRedisKey {
    /// Validates `value` and wraps it.
    ///
    /// ```
    /// use distkit_core::DistkitRedisKey;
    /// let key = DistkitRedisKey::new("cart_items".to_string())?;
    /// assert_eq!(key.as_str(), "cart_items");
    /// # Ok::<(), distkit_core::InvalidKeyError>(())
    /// ```
    pub fn new(value: String) -> Result<Self, InvalidKeyError> {
        match validate(&value) {
            Ok(()) => Ok(Self(value)),
            Err(rule) => Err(InvalidKeyError::new(rule, &value)),
        }
    }

    /// The key as a string slice.
    ///
    /// ```
    /// use distkit_core::DistkitRedisKey;
    /// assert_eq!(DistkitRedisKey::try_from("a")?.as_str(), "a");
    /// # Ok::<(), distkit_core::InvalidKeyError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the key and returns its string.
    ///
    /// ```
    /// use distkit_core::DistkitRedisKey;
    /// let owned: String = DistkitRedisKey::try_from("a")?.into_string();
    /// assert_eq!(owned, "a");
    /// # Ok::<(), distkit_core::InvalidKeyError>(())
    /// ```
    pub fn into_string(self) -> String {
        self.0
    }
}

fn validate(value: &str) -> Result<(), KeyRule> {
    if value.is_empty() {
        return Err(KeyRule::Empty);
    }
    if value.len() > MAX_KEY_BYTES {
        return Err(KeyRule::TooLong { bytes: value.len() });
    }
    for character in value.chars() {
        if matches!(character, ':' | '{' | '}') {
            return Err(KeyRule::ForbiddenCharacter(character));
        }
        if character.is_whitespace() {
            return Err(KeyRule::Whitespace(character));
        }
        if character.is_control() {
            return Err(KeyRule::ControlCharacter(character));
        }
    }
    Ok(())
}

/// The rule a rejected key broke.
///
/// ```
/// use distkit_core::{DistkitRedisKey, KeyRule};
/// let error = DistkitRedisKey::try_from("").unwrap_err();
/// assert_eq!(error.rule(), KeyRule::Empty);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyRule {
    /// The key was empty.
    Empty,
    /// The key was longer than [`MAX_KEY_BYTES`].
    TooLong {
        /// Length of the rejected key, in bytes.
        bytes: usize,
    },
    /// The key held `:`, `{` or `}`, which would break the key layout or
    /// forge a hash tag.
    ForbiddenCharacter(char),
    /// The key held a whitespace character.
    Whitespace(char),
    /// The key held a control character.
    ControlCharacter(char),
}

impl fmt::Display for KeyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRule::Empty => write!(f, "must not be empty"),
            KeyRule::TooLong { bytes } => write!(
                f,
                "must be at most {MAX_KEY_BYTES} bytes long, but is {bytes} bytes"
            ),
            KeyRule::ForbiddenCharacter(c) => {
                write!(f, "must not contain {c:?} (reserved by the key layout)")
            }
            KeyRule::Whitespace(c) => write!(f, "must not contain whitespace ({c:?})"),
            KeyRule::ControlCharacter(c) => {
                write!(f, "must not contain control characters ({c:?})")
            }
        }
    }
}

/// A key was rejected: which rule it broke, and the offending value
/// (shortened to its first 64 characters when longer).
///
/// ```
/// use distkit_core::DistkitRedisKey;
/// let error = DistkitRedisKey::try_from("two words").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "invalid key \"two words\": must not contain whitespace (' ')"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key {shown:?}: {rule}")]
pub struct InvalidKeyError {
    rule: KeyRule,
    shown: String,
}

impl InvalidKeyError {
    fn new(rule: KeyRule, value: &str) -> Self {
        let mut shown: String = value.chars().take(SHOWN_CHARS).collect();
        if shown.len() < value.len() {
            shown.push('…');
        }
        Self { rule, shown }
    }

    /// The rule the key broke.
    ///
    /// ```
    /// use distkit_core::{DistkitRedisKey, KeyRule};
    /// let error = DistkitRedisKey::try_from("{tag}").unwrap_err();
    /// assert_eq!(error.rule(), KeyRule::ForbiddenCharacter('{'));
    /// ```
    pub fn rule(&self) -> KeyRule {
        self.rule
    }

    /// The offending value, shortened to 64 characters (and an ellipsis) when longer.
    ///
    /// ```
    /// use distkit_core::DistkitRedisKey;
    /// let error = DistkitRedisKey::try_from("a b").unwrap_err();
    /// assert_eq!(error.value(), "a b");
    /// ```
    pub fn value(&self) -> &str {
        &self.shown
    }
}

impl TryFrom<String> for DistkitRedisKey {
    type Error = InvalidKeyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<&str> for DistkitRedisKey {
    type Error = InvalidKeyError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        match validate(value) {
            Ok(()) => Ok(Self(value.to_owned())),
            Err(rule) => Err(InvalidKeyError::new(rule, value)),
        }
    }
}

impl FromStr for DistkitRedisKey {
    type Err = InvalidKeyError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::try_from(value)
    }
}

impl fmt::Display for DistkitRedisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DistkitRedisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DistkitRedisKey").field(&self.0).finish()
    }
}

impl AsRef<str> for DistkitRedisKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<DistkitRedisKey> for String {
    fn from(key: DistkitRedisKey) -> Self {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DistkitError;

    fn rule_of(value: &str) -> Option<KeyRule> {
        DistkitRedisKey::try_from(value).err().map(|e| e.rule())
    }

    #[test]
    fn valid_keys_are_accepted_unchanged() {
        let long_ascii = "a".repeat(255);
        // 85 three-byte characters: exactly 255 bytes.
        let long_multibyte = "€".repeat(85);
        for value in [
            "a",
            "page_views",
            "user-42.cart",
            "Ünïcödé",
            "日本語",
            "emoji😀",
            long_ascii.as_str(),
            long_multibyte.as_str(),
        ] {
            let key = DistkitRedisKey::try_from(value).unwrap();
            assert_eq!(key.as_str(), value);
            assert_eq!(key.to_string(), value);
            assert_eq!(value.parse::<DistkitRedisKey>().unwrap(), key);
            assert_eq!(DistkitRedisKey::try_from(value.to_string()).unwrap(), key);
        }
    }

    #[test]
    fn each_broken_rule_is_reported() {
        let cases: Vec<(String, KeyRule)> = vec![
            (String::new(), KeyRule::Empty),
            ("a".repeat(256), KeyRule::TooLong { bytes: 256 }),
            // 86 three-byte characters: 258 bytes though only 86 characters.
            ("€".repeat(86), KeyRule::TooLong { bytes: 258 }),
            ("a:b".into(), KeyRule::ForbiddenCharacter(':')),
            ("a{b".into(), KeyRule::ForbiddenCharacter('{')),
            ("a}b".into(), KeyRule::ForbiddenCharacter('}')),
            ("{tag}".into(), KeyRule::ForbiddenCharacter('{')),
            ("a b".into(), KeyRule::Whitespace(' ')),
            ("a\tb".into(), KeyRule::Whitespace('\t')),
            ("a\nb".into(), KeyRule::Whitespace('\n')),
            ("a\u{a0}b".into(), KeyRule::Whitespace('\u{a0}')),
            ("a\u{0}b".into(), KeyRule::ControlCharacter('\u{0}')),
            ("a\u{7f}b".into(), KeyRule::ControlCharacter('\u{7f}')),
            ("a\u{1b}b".into(), KeyRule::ControlCharacter('\u{1b}')),
        ];
        for (value, expected) in cases {
            assert_eq!(rule_of(&value), Some(expected), "key {value:?}");
        }
    }

    #[test]
    fn error_names_the_rule_and_the_value() {
        let error = DistkitRedisKey::try_from("user:42").unwrap_err();
        assert_eq!(error.value(), "user:42");
        assert_eq!(
            error.to_string(),
            "invalid key \"user:42\": must not contain ':' (reserved by the key layout)"
        );
    }

    #[test]
    fn long_offending_values_are_truncated_in_errors() {
        let value = "x".repeat(1000);
        let error = DistkitRedisKey::try_from(value.as_str()).unwrap_err();
        assert_eq!(error.value().chars().count(), 65);
        assert!(error.value().ends_with('…'));
        assert!(
            error
                .to_string()
                .contains("must be at most 255 bytes long, but is 1000 bytes")
        );
    }

    #[test]
    fn keys_order_and_hash_by_their_text() {
        let a = DistkitRedisKey::try_from("a").unwrap();
        let b = DistkitRedisKey::try_from("b").unwrap();
        assert!(a < b);
        let set: std::collections::HashSet<_> = [a.clone(), a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert_eq!(format!("{a:?}"), "DistkitRedisKey(\"a\")");
    }

    #[test]
    fn invalid_key_converts_into_distkit_error() {
        let error: DistkitError = DistkitRedisKey::try_from("").unwrap_err().into();
        assert!(matches!(error, DistkitError::InvalidKey(ref e) if e.rule() == KeyRule::Empty));
    }
}
