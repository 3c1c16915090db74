//! The lax counter checker: after every flush, the stored value is exactly
//! the sum of the acknowledged increments, plus some subset of the
//! increments whose outcome is unknown.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Default)]
struct Sums {
    acknowledged: i128,
    acknowledged_count: u64,
    unknown: Vec<i64>,
}

/// The increments sent to one or more lax counters, per key. Cheap to
/// clone and thread-safe.
///
/// ```
/// use distkit_testkit::history::LaxLedger;
///
/// let ledger = LaxLedger::new();
/// ledger.acknowledged("k", 3);
/// ledger.acknowledged("k", 4);
/// ledger.unknown("k", 10); // a flush cut off: applied or not
/// assert!(ledger.check("k", 7).is_ok());
/// assert!(ledger.check("k", 17).is_ok());
/// assert!(ledger.check("k", 10).is_err()); // an increment lost
/// ```
#[derive(Debug, Clone, Default)]
pub struct LaxLedger {
    sums: Arc<Mutex<BTreeMap<String, Sums>>>,
}

/// A final value no subset of the unknown increments explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaxViolation {
    /// The key.
    pub key: String,
    /// What Redis holds.
    pub final_value: i64,
    /// Sum of the acknowledged increments.
    pub acknowledged: i128,
    /// How many increments were acknowledged.
    pub acknowledged_count: u64,
    /// Increments whose outcome is unknown.
    pub unknown: Vec<i64>,
}

impl fmt::Display for LaxViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let difference = i128::from(self.final_value) - self.acknowledged;
        write!(
            f,
            "lax counter {:?} holds {} but {} acknowledged increments sum to {} \
             (difference {difference}; {} increments of unknown outcome: {:?})",
            self.key,
            self.final_value,
            self.acknowledged_count,
            self.acknowledged,
            self.unknown.len(),
            self.unknown
        )
    }
}

impl std::error::Error for LaxViolation {}

/// Up to this many unknown increments, the check is exact (subset sums);
/// beyond, it checks the bounds (every negative one applied .. every
/// positive one applied).
const EXACT_UNKNOWN: usize = 18;

impl LaxLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Sums>> {
        self.sums.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `delta` was added to `key` and acknowledged.
    pub fn acknowledged(&self, key: &str, delta: i64) {
        let mut sums = self.lock();
        let entry = sums.entry(key.to_string()).or_default();
        entry.acknowledged += i128::from(delta);
        entry.acknowledged_count += 1;
    }

    /// `delta` was sent to `key` with an unknown outcome.
    pub fn unknown(&self, key: &str, delta: i64) {
        self.lock()
            .entry(key.to_string())
            .or_default()
            .unknown
            .push(delta);
    }

    /// Acknowledged increments over all keys.
    pub fn acknowledged_count(&self) -> u64 {
        self.lock().values().map(|s| s.acknowledged_count).sum()
    }

    /// Increments of unknown outcome over all keys.
    pub fn unknown_count(&self) -> usize {
        self.lock().values().map(|s| s.unknown.len()).sum()
    }

    /// The keys with recorded increments.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Checks that `final_value` is the acknowledged sum plus a subset of
    /// the unknown increments of `key`.
    pub fn check(&self, key: &str, final_value: i64) -> Result<(), LaxViolation> {
        let sums = self.lock().get(key).cloned().unwrap_or_default();
        let surplus = i128::from(final_value) - sums.acknowledged;
        let explained = if sums.unknown.len() <= EXACT_UNKNOWN {
            let mut reachable: HashSet<i128> = HashSet::from([0]);
            for &delta in &sums.unknown {
                let shifted: Vec<i128> = reachable.iter().map(|s| s + i128::from(delta)).collect();
                reachable.extend(shifted);
            }
            reachable.contains(&surplus)
        } else {
            let low: i128 = sums
                .unknown
                .iter()
                .filter(|d| **d < 0)
                .map(|d| i128::from(*d))
                .sum();
            let high: i128 = sums
                .unknown
                .iter()
                .filter(|d| **d > 0)
                .map(|d| i128::from(*d))
                .sum();
            (low..=high).contains(&surplus)
        };
        if explained {
            Ok(())
        } else {
            Err(LaxViolation {
                key: key.to_string(),
                final_value,
                acknowledged: sums.acknowledged,
                acknowledged_count: sums.acknowledged_count,
                unknown: sums.unknown,
            })
        }
    }
}
