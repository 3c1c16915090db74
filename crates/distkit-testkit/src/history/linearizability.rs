//! A linearizability checker: the Wing & Gong search with Lowe's
//! memoization of (linearized set, state), as Porcupine does it.
//!
//! The history is first split by [`Model::partition`] (P-compositionality:
//! a history is linearizable if and only if each per-object sub-history is),
//! then each part is searched on its own, under a step budget.
//!
//! Operations with an [`Outcome::Failed`] outcome never happened and are
//! left out. Operations with an [`Outcome::Unknown`] outcome may have taken
//! effect at any time after their invocation, or never: they have no return
//! event, and the search succeeds once every operation with a known outcome
//! is placed (the unknown ones left can be placed after all of them, where
//! nothing observes them).
//!
//! On failure, the report names the shortest prefix of the part that is
//! already not linearizable (prefixes of a linearizable history are
//! linearizable, so a bisection finds it), the operation that closes it,
//! the operations concurrent with that one, and the end of the longest
//! linearization the search found for the prefix.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;

use super::record::{Operation, Outcome};

/// A sequential specification.
pub trait Model {
    /// The state of one object (one partition).
    type State: Clone + Eq + Hash + fmt::Debug;
    /// An operation with its arguments.
    type Op: Clone + fmt::Debug;
    /// A return value.
    type Ret: Clone + fmt::Debug;

    /// The state of an object before the first operation.
    fn init(&self) -> Self::State;

    /// Applies `op` to `state`. With `Some(ret)`, returns the next state if
    /// the model can answer `ret`, `None` otherwise. With `None` (the
    /// outcome is unknown), returns the state after `op` whatever it
    /// answered; it must not return `None` then.
    fn step(
        &self,
        state: &Self::State,
        op: &Self::Op,
        ret: Option<&Self::Ret>,
    ) -> Option<Self::State>;

    /// The object `op` works on; parts are checked separately. The default
    /// puts every operation in one part.
    fn partition(&self, op: &Self::Op) -> String {
        let _ = op;
        String::new()
    }
}

/// Limits of a check.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Search steps allowed per part before giving up with
    /// [`CheckOutcome::BudgetExceeded`].
    pub step_budget: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            step_budget: 20_000_000,
        }
    }
}

/// The verdict of [`check_linearizable`].
#[derive(Debug, Clone)]
pub enum CheckOutcome<Op, Ret, State> {
    /// Every part is linearizable.
    Linearizable {
        /// Parts checked.
        partitions: usize,
        /// Operations checked (failed ones excluded).
        operations: usize,
        /// Search steps over all parts.
        steps: u64,
    },
    /// A part is not linearizable.
    NotLinearizable(Box<Violation<Op, Ret, State>>),
    /// The search of a part ran out of steps: no verdict.
    BudgetExceeded {
        /// The part.
        partition: String,
        /// Its operations.
        operations: usize,
        /// Steps spent.
        steps: u64,
    },
}

impl<Op: fmt::Debug, Ret: fmt::Debug, State: fmt::Debug> CheckOutcome<Op, Ret, State> {
    /// Whether the history is linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckOutcome::Linearizable { .. })
    }

    /// Panics with the report unless the history is linearizable.
    pub fn assert_linearizable(&self) {
        match self {
            CheckOutcome::Linearizable { .. } => {}
            CheckOutcome::NotLinearizable(violation) => {
                panic!("history is not linearizable:\n{violation}")
            }
            CheckOutcome::BudgetExceeded {
                partition,
                operations,
                steps,
            } => panic!(
                "linearizability undecided: part {partition:?} ({operations} operations) \
                 exceeded the budget of {steps} steps; check smaller histories"
            ),
        }
    }
}

/// The minimal offending part of a non-linearizable history.
#[derive(Debug, Clone)]
pub struct Violation<Op, Ret, State> {
    /// The part that is not linearizable.
    pub partition: String,
    /// Operations of the part.
    pub operations: usize,
    /// Time origin of the report (the first invocation of the part).
    pub origin_ns: u64,
    /// The operation whose return closes the shortest non-linearizable
    /// prefix: no order of what came before explains it.
    pub culprit: Operation<Op, Ret>,
    /// Operations concurrent with the culprit (any of them could have been
    /// ordered around it).
    pub concurrent: Vec<Operation<Op, Ret>>,
    /// The end of the longest linearization of that prefix the search
    /// found: each operation with the model state after it.
    pub longest_linearization: Vec<(Operation<Op, Ret>, State)>,
    /// Length of that linearization (only its last steps are kept).
    pub longest_length: usize,
}

fn fmt_span<Op, Ret>(op: &Operation<Op, Ret>, origin: u64) -> String {
    let ms = |ns: u64| ns.saturating_sub(origin) as f64 / 1e6;
    match (op.returned_ns, &op.outcome) {
        (Some(r), Outcome::Ok(_)) => format!("[{:.3} ms .. {:.3} ms]", ms(op.invoked_ns), ms(r)),
        _ => format!("[{:.3} ms .. unknown]", ms(op.invoked_ns)),
    }
}

impl<Op: fmt::Debug, Ret: fmt::Debug, State: fmt::Debug> fmt::Display
    for Violation<Op, Ret, State>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = self.origin_ns;
        writeln!(
            f,
            "part {:?} ({} operations) is not linearizable.",
            self.partition, self.operations
        )?;
        writeln!(
            f,
            "  no order explains: {} {}",
            self.culprit,
            fmt_span(&self.culprit, origin)
        )?;
        writeln!(f, "  concurrent with it ({}):", self.concurrent.len())?;
        for op in &self.concurrent {
            writeln!(f, "    {op} {}", fmt_span(op, origin))?;
        }
        writeln!(
            f,
            "  longest linearization found ({} operations; last {} shown, state after each):",
            self.longest_length,
            self.longest_linearization.len()
        )?;
        for (op, state) in &self.longest_linearization {
            writeln!(f, "    {op} {}  => {state:?}", fmt_span(op, origin))?;
        }
        Ok(())
    }
}

type Parts<Op, Ret> = BTreeMap<String, Vec<Operation<Op, Ret>>>;

/// Checks `operations` against `model`, part by part.
pub fn check_linearizable<M: Model>(
    model: &M,
    operations: &[Operation<M::Op, M::Ret>],
    options: CheckOptions,
) -> CheckOutcome<M::Op, M::Ret, M::State> {
    let mut parts: Parts<M::Op, M::Ret> = BTreeMap::new();
    for operation in operations {
        if matches!(operation.outcome, Outcome::Failed(_)) {
            continue;
        }
        parts
            .entry(model.partition(&operation.op))
            .or_default()
            .push(operation.clone());
    }
    let mut steps = 0;
    let mut total = 0;
    for (partition, part) in &parts {
        total += part.len();
        match search(model, part, options.step_budget) {
            Search::Ok { steps: spent } => steps += spent,
            Search::Exhausted { steps: spent } => {
                return CheckOutcome::BudgetExceeded {
                    partition: partition.clone(),
                    operations: part.len(),
                    steps: spent,
                };
            }
            Search::Failed { .. } => {
                return CheckOutcome::NotLinearizable(Box::new(explain(
                    model,
                    partition,
                    part,
                    options.step_budget,
                )));
            }
        }
    }
    CheckOutcome::Linearizable {
        partitions: parts.len(),
        operations: total,
        steps,
    }
}

enum Search {
    Ok { steps: u64 },
    Failed { longest: Vec<usize> },
    Exhausted { steps: u64 },
}

const NIL: usize = usize::MAX;

/// The Wing & Gong / Lowe search over one part.
fn search<M: Model>(model: &M, ops: &[Operation<M::Op, M::Ret>], budget: u64) -> Search {
    let n = ops.len();
    // Entries 0..2n: call of op i is 2i, return of op i is 2i + 1; 2n is
    // the head of the doubly linked list in time order.
    let mut order: Vec<usize> = (0..2 * n).collect();
    let time = |entry: usize| -> (u64, u8) {
        let op = ops.get(entry / 2);
        match op {
            Some(op) if entry.is_multiple_of(2) => (op.invoked_ns, 0),
            Some(op) => (op.effective_return_ns(), 1),
            None => (u64::MAX, 1),
        }
    };
    // Ties: calls first, so operations that touch in time count as concurrent.
    order.sort_by_key(|&e| time(e));
    let head = 2 * n;
    let mut next = vec![NIL; 2 * n + 1];
    let mut prev = vec![NIL; 2 * n + 1];
    let mut last = head;
    for &entry in &order {
        set(&mut next, last, entry);
        set(&mut prev, entry, last);
        last = entry;
    }
    let known_total = ops.iter().filter(|op| op.is_ok()).count();
    let mut known_placed = 0;
    let words = n.div_ceil(64).max(1);
    // Placed operations with a known outcome, and with an unknown one.
    let mut placed = vec![0u64; words];
    let mut placed_unknown = vec![0u64; words];
    let mut cache = Cache::<M::State>::default();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut state = model.init();
    let mut entry = get(&next, head);
    let mut steps: u64 = 0;
    loop {
        if known_placed == known_total {
            return Search::Ok { steps };
        }
        steps += 1;
        if steps > budget {
            return Search::Exhausted { steps };
        }
        if entry != NIL && entry.is_multiple_of(2) {
            let index = entry / 2;
            let Some(op) = ops.get(index) else {
                return Search::Failed { longest };
            };
            let ret = match &op.outcome {
                Outcome::Ok(ret) => Some(ret),
                _ => None,
            };
            if let Some(new_state) = model.step(&state, &op.op, ret) {
                let bits = if op.is_ok() {
                    &mut placed
                } else {
                    &mut placed_unknown
                };
                flip(bits, index);
                if cache.insert(&placed, &placed_unknown, &new_state) {
                    stack.push((entry, std::mem::replace(&mut state, new_state)));
                    if op.is_ok() {
                        known_placed += 1;
                    }
                    lift(&mut next, &mut prev, entry);
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|(e, _)| e / 2).collect();
                    }
                    entry = get(&next, head);
                    continue;
                }
                let bits = if op.is_ok() {
                    &mut placed
                } else {
                    &mut placed_unknown
                };
                flip(bits, index);
            }
            entry = get(&next, entry);
        } else {
            // A return (or the end) reached with its operation not placed:
            // undo the last placement and try the next candidate.
            let Some((call, previous)) = stack.pop() else {
                return Search::Failed { longest };
            };
            let index = call / 2;
            if ops.get(index).is_some_and(|op| op.is_ok()) {
                flip(&mut placed, index);
                known_placed -= 1;
            } else {
                flip(&mut placed_unknown, index);
            }
            state = previous;
            unlift(&mut next, &mut prev, call);
            entry = get(&next, call);
        }
    }
}

/// Lowe's memo of visited configurations, with a dominance rule for
/// operations of unknown outcome: a configuration (known placed `K`, state
/// `s`, unknown placed `U`) can do nothing that an already visited
/// (`K`, `s`, `U'`) with `U'` a subset of `U` could not (the unknown
/// operations need never be placed), so it is pruned. Without this rule,
/// every subset of the pending unknown operations is a new configuration.
struct Cache<S> {
    visited: HashMap<(Vec<u64>, S), Vec<Vec<u64>>>,
}

impl<S> Default for Cache<S> {
    fn default() -> Self {
        Self {
            visited: HashMap::new(),
        }
    }
}

impl<S: Clone + Eq + Hash> Cache<S> {
    /// Records the configuration; false if it (or one dominating it) was seen.
    fn insert(&mut self, known: &[u64], unknown: &[u64], state: &S) -> bool {
        let seen = self
            .visited
            .entry((known.to_vec(), state.clone()))
            .or_default();
        let subset = |small: &[u64], big: &[u64]| small.iter().zip(big).all(|(s, b)| s & !b == 0);
        if seen.iter().any(|earlier| subset(earlier, unknown)) {
            return false;
        }
        seen.retain(|earlier| !subset(unknown, earlier));
        seen.push(unknown.to_vec());
        true
    }
}

fn get(links: &[usize], at: usize) -> usize {
    links.get(at).copied().unwrap_or(NIL)
}

fn set(links: &mut [usize], at: usize, value: usize) {
    if let Some(slot) = links.get_mut(at) {
        *slot = value;
    }
}

fn flip(bits: &mut [u64], index: usize) {
    if let Some(word) = bits.get_mut(index / 64) {
        *word ^= 1u64 << (index % 64);
    }
}

fn remove(next: &mut [usize], prev: &mut [usize], entry: usize) {
    let (p, n) = (get(prev, entry), get(next, entry));
    set(next, p, n);
    if n != NIL {
        set(prev, n, p);
    }
}

fn restore(next: &mut [usize], prev: &mut [usize], entry: usize) {
    let (p, n) = (get(prev, entry), get(next, entry));
    set(next, p, entry);
    if n != NIL {
        set(prev, n, entry);
    }
}

fn lift(next: &mut [usize], prev: &mut [usize], call: usize) {
    remove(next, prev, call);
    remove(next, prev, call + 1);
}

fn unlift(next: &mut [usize], prev: &mut [usize], call: usize) {
    restore(next, prev, call + 1);
    restore(next, prev, call);
}

/// The prefix of `ops` up to the return of its `k`-th known operation (by
/// return time): operations invoked by then, those still running then
/// turned into unknown outcomes.
fn prefix<Op: Clone, Ret: Clone>(
    ops: &[Operation<Op, Ret>],
    cut_ns: u64,
) -> Vec<Operation<Op, Ret>> {
    ops.iter()
        .filter(|op| op.invoked_ns <= cut_ns)
        .map(|op| {
            let mut op = op.clone();
            if op.effective_return_ns() > cut_ns && op.is_ok() {
                op.outcome = Outcome::Unknown("still running at the cut".into());
            }
            op
        })
        .collect()
}

const SHOWN_STEPS: usize = 12;

fn explain<M: Model>(
    model: &M,
    partition: &str,
    part: &[Operation<M::Op, M::Ret>],
    budget: u64,
) -> Violation<M::Op, M::Ret, M::State> {
    let mut returns: Vec<u64> = part
        .iter()
        .filter(|op| op.is_ok())
        .map(|op| op.effective_return_ns())
        .collect();
    returns.sort_unstable();
    returns.dedup();
    // Bisect for the first return time whose prefix fails; the whole part
    // fails. Probes get a fraction of the budget (an exhausted probe counts
    // as failing), so a report costs at most a few full searches.
    let budget = (budget / 8).max(100_000);
    let (mut good, mut bad) = (0usize, returns.len());
    while bad > good + 1 {
        let middle = good + (bad - good) / 2;
        let cut = returns.get(middle - 1).copied().unwrap_or(u64::MAX);
        match search(model, &prefix(part, cut), budget) {
            Search::Ok { .. } => good = middle,
            _ => bad = middle,
        }
    }
    let cut = returns
        .get(bad.saturating_sub(1))
        .copied()
        .unwrap_or(u64::MAX);
    let failing = prefix(part, cut);
    let longest = match search(model, &failing, budget) {
        Search::Failed { longest } => longest,
        _ => Vec::new(),
    };
    let culprit = failing
        .iter()
        .filter(|op| op.is_ok() && op.effective_return_ns() == cut)
        .find(|op| {
            !longest
                .iter()
                .any(|&i| failing.get(i).is_some_and(|l| same(l, op)))
        })
        .or_else(|| {
            failing
                .iter()
                .find(|op| op.is_ok() && op.effective_return_ns() == cut)
        })
        .cloned();
    let Some(culprit) = culprit else {
        panic!("distkit-testkit: an empty history part cannot fail the linearizability check")
    };
    let concurrent = part
        .iter()
        .filter(|op| !same(op, &culprit))
        .filter(|op| {
            op.invoked_ns <= culprit.effective_return_ns()
                && culprit.invoked_ns <= op.effective_return_ns()
        })
        .cloned()
        .collect();
    let mut state = model.init();
    let mut steps = Vec::new();
    for &index in &longest {
        if let Some(op) = failing.get(index) {
            let ret = match &op.outcome {
                Outcome::Ok(ret) => Some(ret),
                _ => None,
            };
            if let Some(next) = model.step(&state, &op.op, ret) {
                state = next;
            }
            steps.push((op.clone(), state.clone()));
        }
    }
    let longest_length = steps.len();
    let shown = steps.split_off(steps.len().saturating_sub(SHOWN_STEPS));
    Violation {
        partition: partition.to_string(),
        operations: part.len(),
        origin_ns: part.iter().map(|op| op.invoked_ns).min().unwrap_or(0),
        culprit,
        concurrent,
        longest_linearization: shown,
        longest_length,
    }
}

fn same<Op, Ret>(a: &Operation<Op, Ret>, b: &Operation<Op, Ret>) -> bool {
    a.process == b.process && a.id == b.id
}
