use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A key prefix unique to this call: the test's `name`, this process, a
/// per-process sequence number and the start time of the process. It obeys
/// distkit's key rules (no `:`, braces or whitespace), so it can be turned
/// into a `DistkitRedisKey` directly.
///
/// ```
/// let a = distkit_testkit::unique_prefix("counter_inc");
/// let b = distkit_testkit::unique_prefix("counter_inc");
/// assert_ne!(a, b);
/// assert!(a.starts_with("t_counter_inc_"));
/// ```
pub fn unique_prefix(name: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    });
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!(
        "t_{cleaned}_{}_{}_{}",
        std::process::id(),
        start % 1_000_000_000,
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}
