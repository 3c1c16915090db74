//! Instance ids and the list of live instances.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A live instance of a counter prefix, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The instance id.
    pub instance_id: String,
    /// Its last heartbeat, in Redis server time (milliseconds since the Unix epoch).
    pub last_heartbeat_ms: u64,
}

/// A fresh instance id: process id, time and per-process randomness, so two
/// processes (or two counters of one process) never share an id. Hex digits,
/// `i` and `-` always satisfy the key rules.
pub(crate) fn generate_instance_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("i{:x}-{:016x}", std::process::id(), hasher.finish())
}
