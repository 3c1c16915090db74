//! The sliding-window algorithm, in one place. The local provider runs it in
//! process; `scripts/ratelimit/*.lua` run the same rules inside Redis.
//!
//! Time is cut into buckets of `bucket_ms`; bucket `i` covers
//! `[i × bucket_ms, (i + 1) × bucket_ms)`. At time `now`, the current bucket
//! is `now / bucket_ms` and the live buckets are the `n = window / bucket`
//! buckets ending with it. A bucket leaves the window at
//! `(i + n) × bucket_ms`.
//!
//! - Absolute: a call of cost `c` is admitted iff `admitted + c ≤ capacity`;
//!   a refused call records nothing. `retry_after` is the time until enough
//!   of the oldest buckets have left for `c` to fit.
//! - Suppressed: every call counts in `observed` (admitted or not). Admitted
//!   iff `admitted + c ≤ capacity`; else refused iff `admitted + c > hard`;
//!   else refused with probability `f = 1 - capacity / (observed + c)`.

use std::collections::VecDeque;

use crate::rng::XorShift;
use crate::{Decision, RateLimit, Strategy};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    index: u64,
    admitted: u64,
    observed: u64,
}

/// The live buckets of one key.
#[derive(Debug)]
pub(crate) struct Series {
    buckets: VecDeque<Bucket>,
    admitted: u64,
    observed: u64,
    pub(crate) last_seen_ms: u64,
    rng: XorShift,
}

impl Series {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            buckets: VecDeque::new(),
            admitted: 0,
            observed: 0,
            last_seen_ms: 0,
            rng: XorShift::new(seed),
        }
    }

    fn evict(&mut self, current: u64, n: u64) {
        while let Some(front) = self.buckets.front() {
            if front.index + n > current {
                break;
            }
            self.admitted -= front.admitted;
            self.observed -= front.observed;
            self.buckets.pop_front();
        }
    }

    fn record(&mut self, current: u64, admitted: u64, observed: u64) {
        match self.buckets.back_mut() {
            Some(bucket) if bucket.index == current => {
                bucket.admitted += admitted;
                bucket.observed += observed;
            }
            _ => self.buckets.push_back(Bucket {
                index: current,
                admitted,
                observed,
            }),
        }
        self.admitted += admitted;
        self.observed += observed;
    }

    /// Whether nothing of this key is in the window any more.
    pub(crate) fn is_idle(&self, now_ms: u64, limit: &RateLimit) -> bool {
        let window = limit.window();
        let current = now_ms / window.bucket_ms();
        self.buckets
            .back()
            .is_none_or(|bucket| bucket.index + window.buckets() <= current)
    }

    /// Milliseconds until `need` admitted units have left the window.
    fn time_until_freed(&self, need: u64, now_ms: u64, bucket_ms: u64, n: u64) -> u64 {
        let mut freed = 0u64;
        for bucket in &self.buckets {
            freed += bucket.admitted;
            if freed >= need {
                let leaves_at = (bucket.index + n) * bucket_ms;
                return leaves_at.saturating_sub(now_ms);
            }
        }
        0
    }

    /// Milliseconds until every admitted unit has left the window.
    fn reset_after(&self, now_ms: u64, bucket_ms: u64, n: u64) -> u64 {
        self.buckets
            .iter()
            .rev()
            .find(|bucket| bucket.admitted > 0)
            .map_or(0, |bucket| {
                ((bucket.index + n) * bucket_ms).saturating_sub(now_ms)
            })
    }

    /// Decides one call of `cost` (already checked: 1 ≤ cost ≤ capacity).
    /// Inlined so the decision is written straight into the caller's
    /// result while the shard lock is held, not copied out of a temporary
    /// (a measured 5 ns on the warm path).
    #[inline(always)]
    pub(crate) fn decide(
        &mut self,
        limit: &RateLimit,
        strategy: &Strategy,
        now_ms: u64,
        cost: u64,
    ) -> Decision {
        let window = limit.window();
        let bucket_ms = window.bucket_ms();
        let n = window.buckets();
        let current = now_ms / bucket_ms;
        let capacity = limit.capacity();
        self.last_seen_ms = now_ms;
        self.evict(current, n);

        let (allowed, suppression_factor) = match strategy {
            Strategy::Absolute => (self.admitted + cost <= capacity, None),
            Strategy::Suppressed { .. } => {
                let hard = strategy.hard_limit(capacity);
                let observed = self.observed + cost;
                if self.admitted + cost <= capacity {
                    (true, Some(0.0))
                } else if self.admitted.saturating_add(cost) > hard {
                    (false, Some(1.0))
                } else {
                    let factor = suppression_factor(capacity, observed);
                    (self.rng.next_f64() >= factor, Some(factor))
                }
            }
        };

        let observed = if suppression_factor.is_some() {
            cost
        } else {
            0
        };
        if allowed {
            self.record(current, cost, observed);
        } else if observed > 0 {
            self.record(current, 0, observed);
        }

        let retry_after_ms = if allowed {
            0
        } else {
            let ceiling = match suppression_factor {
                Some(factor) if factor >= 1.0 => strategy.hard_limit(capacity),
                _ => capacity,
            };
            let need = (self.admitted + cost).saturating_sub(ceiling);
            if need == 0 {
                // Refused by a draw: the next bucket may draw differently.
                (current + 1) * bucket_ms - now_ms
            } else {
                self.time_until_freed(need, now_ms, bucket_ms, n)
            }
        };
        let reset_after_ms = if allowed {
            // The current bucket holds this call: it is the newest.
            (current + n) * bucket_ms - now_ms
        } else {
            self.reset_after(now_ms, bucket_ms, n)
        };
        Decision::new(
            allowed,
            capacity,
            capacity.saturating_sub(self.admitted),
            retry_after_ms,
            reset_after_ms,
            suppression_factor,
        )
    }
}

/// `1 - capacity / observed`, clamped to `[0, 1]`.
pub(crate) fn suppression_factor(capacity: u64, observed: u64) -> f64 {
    if observed == 0 {
        return 0.0;
    }
    (1.0 - capacity as f64 / observed as f64).clamp(0.0, 1.0)
}
