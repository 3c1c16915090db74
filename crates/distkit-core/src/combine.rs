//! Bookkeeping for calls combined into batches: a few calls go out at once
//! ("inline"); calls arriving while those are in flight queue, and one drain
//! task sends what queued, one batch per round trip, until nothing is left.
//!
//! [`CallQueue`] holds only the state and its transitions; the owner keeps
//! it behind its own lock, spawns the drain task and runs the batches. The
//! transitions are in one place because they are easy to get subtly wrong:
//! every queued call must be answered (or its sender dropped) exactly once,
//! and a drain that never runs (no runtime, or its runtime shut down) must
//! release the queue so later calls are not stuck behind it.

/// The state of one combiner: calls in flight, whether a drain task runs,
/// and the queued calls (`W`: a call with its reply sender).
///
/// ```
/// use distkit_core::combine::CallQueue;
///
/// let mut queue: CallQueue<&str> = CallQueue::default();
/// assert!(queue.try_inline(1)); // goes out at once
/// assert!(!queue.try_inline(1)); // one is in flight: this one queues
/// queue.push("b");
/// assert!(queue.end_inline()); // the inline call ended: start a drain
/// assert_eq!(queue.next_batch(), Some(vec!["b"]));
/// assert_eq!(queue.next_batch(), None); // drained: the drain ends
/// assert!(queue.is_idle());
/// ```
#[derive(Debug)]
pub struct CallQueue<W> {
    /// Inline calls in flight, plus one for a running drain task.
    in_flight: usize,
    /// A drain task is running (or about to be spawned).
    draining: bool,
    waiting: Vec<W>,
}

impl<W> Default for CallQueue<W> {
    fn default() -> Self {
        Self {
            in_flight: 0,
            draining: false,
            waiting: Vec::new(),
        }
    }
}

impl<W> CallQueue<W> {
    /// Counts a call that goes out at once when fewer than `inline` calls
    /// are in flight (`true`); otherwise the caller must [`push`](Self::push)
    /// it (`false`).
    ///
    /// ```
    /// let mut queue: distkit_core::combine::CallQueue<()> = Default::default();
    /// assert!(queue.try_inline(2));
    /// assert!(queue.try_inline(2));
    /// assert!(!queue.try_inline(2));
    /// ```
    pub fn try_inline(&mut self, inline: usize) -> bool {
        if self.in_flight < inline {
            self.in_flight += 1;
            true
        } else {
            false
        }
    }

    /// Queues a call for the next batch. Something is in flight whenever
    /// this is called after [`try_inline`](Self::try_inline) said `false`,
    /// so an [`end_inline`](Self::end_inline) or a drain follows.
    ///
    /// ```
    /// let mut queue = distkit_core::combine::CallQueue::default();
    /// queue.push(7);
    /// assert!(!queue.is_idle());
    /// ```
    pub fn push(&mut self, waiter: W) {
        self.waiting.push(waiter);
    }

    /// An inline call ended. Returns `true` when calls queued and no drain
    /// runs: the caller must now spawn a drain task (already counted as in
    /// flight), or call [`abandon_drain`](Self::abandon_drain) if it cannot.
    ///
    /// ```
    /// let mut queue: distkit_core::combine::CallQueue<()> = Default::default();
    /// assert!(queue.try_inline(1));
    /// assert!(!queue.end_inline()); // nothing queued
    /// assert!(queue.is_idle());
    /// ```
    pub fn end_inline(&mut self) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.waiting.is_empty() || self.draining {
            return false;
        }
        self.draining = true;
        self.in_flight += 1;
        true
    }

    /// For the drain task: the calls queued since its last batch, or `None`
    /// when nothing is left, in which case the drain has ended (it is no
    /// longer counted) and must return.
    ///
    /// ```
    /// let mut queue = distkit_core::combine::CallQueue::default();
    /// assert!(queue.try_inline(1));
    /// queue.push(1);
    /// assert!(queue.end_inline());
    /// assert_eq!(queue.next_batch(), Some(vec![1]));
    /// assert_eq!(queue.next_batch(), None);
    /// ```
    pub fn next_batch(&mut self) -> Option<Vec<W>> {
        if self.waiting.is_empty() {
            self.draining = false;
            self.in_flight = self.in_flight.saturating_sub(1);
            None
        } else {
            Some(std::mem::take(&mut self.waiting))
        }
    }

    /// A drain that will not run (it could not be spawned, or its task was
    /// dropped before it finished): releases it and hands back the queued
    /// calls, which the caller answers with an error (or drops, which fails
    /// their receivers).
    ///
    /// ```
    /// let mut queue = distkit_core::combine::CallQueue::default();
    /// assert!(queue.try_inline(1));
    /// queue.push("queued");
    /// assert!(queue.end_inline());
    /// assert_eq!(queue.abandon_drain(), vec!["queued"]);
    /// assert!(queue.is_idle());
    /// assert!(queue.try_inline(1)); // nothing stuck
    /// ```
    pub fn abandon_drain(&mut self) -> Vec<W> {
        self.draining = false;
        self.in_flight = self.in_flight.saturating_sub(1);
        std::mem::take(&mut self.waiting)
    }

    /// Nothing in flight and nothing queued (an owner keeping one queue per
    /// key may forget this one).
    ///
    /// ```
    /// let queue: distkit_core::combine::CallQueue<()> = Default::default();
    /// assert!(queue.is_idle());
    /// ```
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.waiting.is_empty()
    }
}
