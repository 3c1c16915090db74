//! The lock checker: mutual exclusion while leases are valid, and fencing
//! tokens that strictly increase in acquisition order.

use std::collections::HashMap;
use std::fmt;

/// How a lock was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// A write (or plain mutex) hold: no other holder at the same time.
    Exclusive,
    /// A read hold: other readers may overlap, writers may not.
    Shared,
}

/// One successful acquisition, with times from one clock (see
/// [`Clock`](super::Clock)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockAcquisition {
    /// Who held it (process, task, instance id).
    pub holder: String,
    /// Exclusive or shared.
    pub mode: LockMode,
    /// When the acquire call was invoked.
    pub acquire_invoked_ns: u64,
    /// When the acquire call returned success: the holder knows it holds
    /// the lock from here.
    pub acquired_ns: u64,
    /// When the holder stopped using it: the invocation of its release, or
    /// when it saw the lease lost; `None` if it never did (it crashed).
    pub released_ns: Option<u64>,
    /// Until when the holder may trust its lease, as it computed it (a
    /// correct client bounds this by the acquire *invocation* time plus the
    /// TTL, minus any renewal slack).
    pub lease_valid_until_ns: u64,
    /// The fencing token the acquisition returned, if the lock has them.
    pub fencing_token: Option<u64>,
}

impl LockAcquisition {
    /// The end of the interval in which the holder may act on the lock.
    pub fn valid_until_ns(&self) -> u64 {
        self.released_ns
            .unwrap_or(u64::MAX)
            .min(self.lease_valid_until_ns)
    }
}

/// A broken lock guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockViolation {
    /// Two holders whose valid intervals overlap, at least one exclusive.
    Overlap {
        /// The earlier acquisition.
        first: LockAcquisition,
        /// The later one, acquired before `first` stopped being valid.
        second: LockAcquisition,
        /// How long both were valid, in nanoseconds.
        overlap_ns: u64,
    },
    /// An acquisition that started after `earlier` was acquired got a token
    /// that is not larger (equal allowed between two shared holds only).
    TokenNotIncreasing {
        /// Acquired before `later` was invoked.
        earlier: LockAcquisition,
        /// Its token is not larger than `earlier`'s.
        later: LockAcquisition,
    },
    /// Two exclusive acquisitions with the same token.
    DuplicateToken {
        /// One of them.
        first: LockAcquisition,
        /// The other.
        second: LockAcquisition,
    },
}

impl fmt::Display for LockViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |a: &LockAcquisition| {
            format!(
                "{} {:?} token {:?}: invoked {} ns, acquired {} ns, valid until {} ns",
                a.holder,
                a.mode,
                a.fencing_token,
                a.acquire_invoked_ns,
                a.acquired_ns,
                a.valid_until_ns()
            )
        };
        match self {
            LockViolation::Overlap {
                first,
                second,
                overlap_ns,
            } => write!(
                f,
                "overlapping holders for {overlap_ns} ns:\n    {}\n    {}",
                show(first),
                show(second)
            ),
            LockViolation::TokenNotIncreasing { earlier, later } => write!(
                f,
                "fencing token not increasing:\n    earlier {}\n    later   {}",
                show(earlier),
                show(later)
            ),
            LockViolation::DuplicateToken { first, second } => write!(
                f,
                "one fencing token for two exclusive holds:\n    {}\n    {}",
                show(first),
                show(second)
            ),
        }
    }
}

const MAX_REPORTED: usize = 10;

/// Checks a lock history; returns every violation found (at most ten).
///
/// ```
/// use distkit_testkit::history::{LockAcquisition, LockMode, check_lock_history};
///
/// let hold = |holder: &str, from, until, token| LockAcquisition {
///     holder: holder.into(),
///     mode: LockMode::Exclusive,
///     acquire_invoked_ns: from,
///     acquired_ns: from + 1,
///     released_ns: Some(until),
///     lease_valid_until_ns: from + 1_000,
///     fencing_token: Some(token),
/// };
/// assert!(check_lock_history(&[hold("a", 0, 10, 1), hold("b", 10, 20, 2)]).is_empty());
/// assert_eq!(check_lock_history(&[hold("a", 0, 10, 1), hold("b", 5, 20, 2)]).len(), 1);
/// ```
pub fn check_lock_history(acquisitions: &[LockAcquisition]) -> Vec<LockViolation> {
    let mut violations = Vec::new();
    let mut by_start: Vec<&LockAcquisition> = acquisitions.iter().collect();
    by_start.sort_by_key(|a| a.acquired_ns);
    // Overlaps: sorted by start, the holds that overlap `first` follow it.
    for (i, first) in by_start.iter().enumerate() {
        for second in by_start.iter().skip(i + 1) {
            if second.acquired_ns >= first.valid_until_ns() {
                break;
            }
            let conflicting =
                first.mode == LockMode::Exclusive || second.mode == LockMode::Exclusive;
            let end = first.valid_until_ns().min(second.valid_until_ns());
            if conflicting && end > second.acquired_ns && violations.len() < MAX_REPORTED {
                violations.push(LockViolation::Overlap {
                    first: (*first).clone(),
                    second: (*second).clone(),
                    overlap_ns: end - second.acquired_ns,
                });
            }
        }
    }
    // Tokens: for each acquisition, every hold acquired before it was
    // invoked must have a smaller token (prefix maxima over `by_start`).
    let tokened: Vec<&LockAcquisition> = by_start
        .iter()
        .copied()
        .filter(|a| a.fencing_token.is_some())
        .collect();
    let mut max_exclusive: Vec<Option<&LockAcquisition>> = Vec::with_capacity(tokened.len());
    let mut max_any: Vec<Option<&LockAcquisition>> = Vec::with_capacity(tokened.len());
    let (mut best_exclusive, mut best_any): (Option<&LockAcquisition>, Option<&LockAcquisition>) =
        (None, None);
    for a in &tokened {
        if best_any.is_none_or(|b| a.fencing_token > b.fencing_token) {
            best_any = Some(a);
        }
        if a.mode == LockMode::Exclusive
            && best_exclusive.is_none_or(|b| a.fencing_token > b.fencing_token)
        {
            best_exclusive = Some(a);
        }
        max_exclusive.push(best_exclusive);
        max_any.push(best_any);
    }
    for later in &tokened {
        let before = tokened.partition_point(|a| a.acquired_ns < later.acquire_invoked_ns);
        if before == 0 {
            continue;
        }
        let exclusive = max_exclusive.get(before - 1).copied().flatten();
        let any = max_any.get(before - 1).copied().flatten();
        let offending = match later.mode {
            LockMode::Exclusive => any.filter(|e| e.fencing_token >= later.fencing_token),
            LockMode::Shared => exclusive
                .filter(|e| e.fencing_token >= later.fencing_token)
                .or_else(|| any.filter(|e| e.fencing_token > later.fencing_token)),
        };
        if let Some(earlier) = offending
            && violations.len() < MAX_REPORTED
        {
            violations.push(LockViolation::TokenNotIncreasing {
                earlier: earlier.clone(),
                later: (*later).clone(),
            });
        }
    }
    let mut seen: HashMap<u64, &LockAcquisition> = HashMap::new();
    for a in tokened.iter().filter(|a| a.mode == LockMode::Exclusive) {
        if let Some(token) = a.fencing_token
            && let Some(first) = seen.insert(token, a)
            && violations.len() < MAX_REPORTED
        {
            violations.push(LockViolation::DuplicateToken {
                first: first.clone(),
                second: (*a).clone(),
            });
        }
    }
    violations
}

/// Panics with every violation of [`check_lock_history`], if any.
pub fn assert_lock_history(acquisitions: &[LockAcquisition]) {
    let violations = check_lock_history(acquisitions);
    if !violations.is_empty() {
        let report: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        panic!(
            "lock history of {} acquisitions is wrong:\n  {}",
            acquisitions.len(),
            report.join("\n  ")
        );
    }
}

/// A thread-safe list of [`LockAcquisition`]s, cheap to clone.
///
/// ```
/// use distkit_testkit::history::{LockAcquisition, LockLog, LockMode};
///
/// let log = LockLog::new();
/// log.record(LockAcquisition {
///     holder: "a".into(),
///     mode: LockMode::Exclusive,
///     acquire_invoked_ns: 0,
///     acquired_ns: 1,
///     released_ns: Some(5),
///     lease_valid_until_ns: 100,
///     fencing_token: Some(1),
/// });
/// assert!(log.check().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct LockLog {
    acquisitions: std::sync::Arc<std::sync::Mutex<Vec<LockAcquisition>>>,
}

impl LockLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one acquisition.
    pub fn record(&self, acquisition: LockAcquisition) {
        self.acquisitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(acquisition);
    }

    /// A snapshot of the acquisitions.
    pub fn acquisitions(&self) -> Vec<LockAcquisition> {
        self.acquisitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// [`check_lock_history`] over the snapshot.
    pub fn check(&self) -> Vec<LockViolation> {
        check_lock_history(&self.acquisitions())
    }
}
