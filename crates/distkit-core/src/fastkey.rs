//! Short keys on warm paths: a cheap slot hash for per-thread caches of
//! per-key state, and an inline copy of a key compared a word at a time.
//!
//! Both read the key with overlapping fixed-size loads (the last 8 bytes;
//! or the first and the last 4; or the first, middle and last byte), never
//! with a variable-length copy or comparison, which would be a call to libc
//! `memcpy` / `memcmp` costing as much as the rest of a warm lookup.
//!
//! ```
//! use distkit_core::fastkey::{self, InlineKey};
//!
//! let stored = "user:42";
//! let inline = InlineKey::new(stored);
//! assert!(inline.matches("user:42", stored));
//! assert!(!inline.matches("user:43", stored));
//! let slot = fastkey::slot(1, "user:42", 1024);
//! assert!(slot < 1024);
//! assert_eq!(slot, fastkey::slot(1, "user:42", 1024));
//! ```

/// Longest key an [`InlineKey`] holds.
pub const INLINE_KEY_BYTES: usize = 22;

/// A copy of a key of up to [`INLINE_KEY_BYTES`] bytes, kept beside the
/// state it names so that a cache hit is checked without following a
/// pointer. Longer keys are compared with the stored key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineKey {
    /// The key's length when inline, else `u8::MAX`.
    len: u8,
    bytes: [u8; INLINE_KEY_BYTES],
}

impl InlineKey {
    /// The inline copy of `key` (only its length is kept when too long).
    pub fn new(key: &str) -> Self {
        let mut bytes = [0u8; INLINE_KEY_BYTES];
        let len = match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY_BYTES => {
                for (to, from) in bytes.iter_mut().zip(key.as_bytes()) {
                    *to = *from;
                }
                len
            }
            _ => u8::MAX,
        };
        Self { len, bytes }
    }

    /// Whether `key` is the key this copy was made of; `stored` is that key
    /// (read only when it was too long to inline).
    #[inline(always)]
    pub fn matches(&self, key: &str, stored: &str) -> bool {
        match self.bytes.get(..usize::from(self.len)) {
            Some(inline) => same_bytes(inline, key.as_bytes()),
            None => stored.as_bytes() == key.as_bytes(),
        }
    }
}

/// The slot of `key` among `slots` (a power of two; another count is
/// rounded down to one, so the slot is always below `slots`, and 0 when
/// `slots` is 0 or 1) in a cache shared by several owners (`owner` tells
/// them apart). Quality only affects hit rates: a hit must still be checked
/// against the key.
#[inline(always)]
pub fn slot(owner: u64, key: &str, slots: usize) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let bytes = key.as_bytes();
    let mut hash = owner.wrapping_mul(K);
    for word in words(bytes) {
        hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
    hash = (hash.rotate_left(5) ^ tail_word(bytes) ^ bytes.len() as u64).wrapping_mul(K);
    // log2 of the largest power of two not above `slots`.
    let bits = slots.max(1).ilog2();
    if bits == 0 {
        return 0;
    }
    (hash >> (64 - bits)) as usize
}

/// Whether two byte strings are equal, compared a word at a time.
#[inline(always)]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut b_words = words(b);
    for a_word in words(a) {
        if b_words.next() != Some(a_word) {
            return false;
        }
    }
    tail_word(a) == tail_word(b)
}

/// The bytes of `bytes` past its last whole 8-byte chunk, read as one word
/// without a variable-length copy: overlapping fixed-size reads, which
/// cover every byte (two strings of equal length have equal tails iff
/// their last `len % 8` bytes are equal, given equal whole chunks).
#[inline(always)]
fn tail_word(bytes: &[u8]) -> u64 {
    if bytes.len().is_multiple_of(8) {
        return 0;
    }
    if let Some(last) = bytes.last_chunk::<8>() {
        return u64::from_le_bytes(*last);
    }
    if let (Some(first), Some(last)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        return u64::from(u32::from_le_bytes(*first))
            | (u64::from(u32::from_le_bytes(*last)) << 32);
    }
    // 1 to 3 bytes: first, middle and last cover them all.
    let byte = |at: usize| u64::from(bytes.get(at).copied().unwrap_or(0));
    byte(0) | (byte(bytes.len() / 2) << 8) | (byte(bytes.len().saturating_sub(1)) << 16)
}

/// The whole 8-byte chunks of `bytes`, as words.
#[inline(always)]
fn words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks_exact(8).map(|chunk| {
        chunk
            .first_chunk::<8>()
            .map_or(0, |word| u64::from_le_bytes(*word))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> String {
        (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect()
    }

    /// The word-wise comparison agrees with `==` for every length up to two
    /// inline keys and a difference at every position.
    #[test]
    fn same_bytes_agrees_with_slice_equality() {
        for len in 0..=2 * INLINE_KEY_BYTES {
            let a = text(len).into_bytes();
            assert!(same_bytes(&a, &a.clone()), "len {len}");
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "len {len}, differs at {at}");
            }
            if len > 0 {
                assert!(!same_bytes(&a, &a[..len - 1]), "len {len}, prefix");
            }
        }
    }

    /// Inline and long keys match exactly themselves.
    #[test]
    fn inline_key_matches_only_its_key() {
        for len in 0..=2 * INLINE_KEY_BYTES {
            let key = text(len);
            let inline = InlineKey::new(&key);
            assert!(inline.matches(&key, &key), "len {len}");
            let longer = format!("{key}x");
            assert!(!inline.matches(&longer, &key), "len {len}, longer");
            for at in 0..len {
                let mut other = key.clone().into_bytes();
                other[at] = b'0';
                let other = String::from_utf8(other).unwrap_or_default();
                assert!(!inline.matches(&other, &key), "len {len}, at {at}");
            }
        }
    }

    /// Keys that differ in one byte land in different slots often enough
    /// (the hash reads every byte), and slots stay in range.
    #[test]
    fn slot_reads_every_byte() {
        for len in 1..=2 * INLINE_KEY_BYTES {
            let key = text(len);
            let mut slots = std::collections::HashSet::new();
            for at in 0..len {
                let mut other = key.clone().into_bytes();
                other[at] = b'0';
                let other = String::from_utf8(other).unwrap_or_default();
                let slot = slot(7, &other, 4096);
                assert!(slot < 4096);
                slots.insert(slot);
            }
            assert!(
                slots.len() * 2 >= len,
                "len {len}: {} distinct slots",
                slots.len()
            );
        }
        assert_eq!(slot(1, "k", 1), 0);
        assert_eq!(slot(1, "k", 0), 0);
        for key in ["a", "user:42", "a-much-longer-key-than-inline"] {
            for slots in [2, 3, 1000, 4095, usize::MAX] {
                assert!(slot(9, key, slots) < slots.max(1), "{key} in {slots}");
            }
        }
    }
}
