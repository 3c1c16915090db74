//! Merging the plain increments of one key that leave together in a
//! combined script run.
//!
//! Consecutive `inc`s of one key without a comparator, all of one sign, are
//! sent as one `inc` of their sum. In one script run they would be applied
//! back to back anyway, so the merged one leaves Redis exactly as they
//! would, and each caller's own result is recovered from the merged result:
//! the state after call `j` is the final state minus the deltas of the
//! calls after it. With deltas of one sign the states in between lie
//! between the state before and the state after, so none of them overflows
//! when neither end does. When the merged `inc` overflows (nothing was
//! written), its calls are sent again one by one, where each may succeed or
//! overflow on its own.

use distkit_core::CounterComparator;

use crate::protocol::{Op, OpKind, OpResult, OpStatus};

/// `ops` with runs of mergeable increments replaced by one `inc` of their
/// sum, and for every op sent, how many of `ops` it stands for.
pub(crate) fn merge(ops: &[Op]) -> (Vec<Op>, Vec<usize>) {
    let mut merged: Vec<Op> = Vec::with_capacity(ops.len());
    let mut sizes: Vec<usize> = Vec::with_capacity(ops.len());
    // the sign of the last merged run (0 while it only holds zeros)
    let mut sign = 0i64;
    for op in ops {
        if let (Some(last), Some(size)) = (merged.last_mut(), sizes.last_mut())
            && mergeable(last)
            && mergeable(op)
            && last.key == op.key
            && (sign == 0 || op.value.signum() == 0 || op.value.signum() == sign)
            && let Some(sum) = last.value.checked_add(op.value)
        {
            last.value = sum;
            *size += 1;
            if sign == 0 {
                sign = op.value.signum();
            }
            continue;
        }
        sign = op.value.signum();
        merged.push(op.clone());
        sizes.push(1);
    }
    (merged, sizes)
}

fn mergeable(op: &Op) -> bool {
    op.kind == OpKind::Inc && op.comparator == CounterComparator::Nil
}

/// The result of one of the original ops.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Its result.
    Done(OpResult),
    /// Its merged `inc` overflowed: send it again on its own.
    Retry,
}

/// The results of the original `ops` from the results of the ops
/// [`merge`] made of them (`sizes` as it returned them).
pub(crate) fn expand(ops: &[Op], sizes: &[usize], results: Vec<OpResult>) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut rest = ops;
    for (&size, result) in sizes.iter().zip(results) {
        let (group, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        if group.len() == 1 {
            outcomes.push(Outcome::Done(result));
            continue;
        }
        if result.status != OpStatus::Ok {
            outcomes.extend(group.iter().map(|_| Outcome::Retry));
            continue;
        }
        // what the calls after each one added, walking back from the end
        let mut after: i128 = group.iter().map(|op| i128::from(op.value)).sum();
        for op in group {
            after -= i128::from(op.value);
            let at = |value: i64| i64::try_from(i128::from(value) - after);
            match (at(result.cumulative), at(result.slice)) {
                (Ok(cumulative), Ok(slice)) => outcomes.push(Outcome::Done(OpResult {
                    cumulative,
                    slice,
                    ..result.clone()
                })),
                // cannot happen with deltas of one sign; refuse rather than guess
                _ => outcomes.push(Outcome::Retry),
            }
        }
    }
    outcomes
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn inc(key: &str, value: i64) -> Op {
        Op::new(OpKind::Inc, key, value, CounterComparator::Nil)
    }

    fn ok(cumulative: i64, slice: i64) -> OpResult {
        OpResult {
            status: OpStatus::Ok,
            cumulative,
            slice,
            epoch: 7,
            cursor: String::new(),
        }
    }

    fn done(outcome: &Outcome) -> (i64, i64) {
        match outcome {
            Outcome::Done(result) => (result.cumulative, result.slice),
            Outcome::Retry => panic!("retry"),
        }
    }

    #[test]
    fn runs_of_one_key_and_sign_merge() {
        let ops = vec![
            inc("a", 1),
            inc("a", 2),
            inc("a", 0),
            inc("a", 3),
            inc("a", -1),
            inc("b", 5),
            inc("a", 1),
            Op::new(OpKind::Inc, "a", 1, CounterComparator::Gt(0)),
            Op::new(OpKind::Get, "a", 0, CounterComparator::Nil),
            inc("a", i64::MAX),
            inc("a", 1),
        ];
        let (merged, sizes) = merge(&ops);
        let values: Vec<(String, i64)> =
            merged.iter().map(|op| (op.key.clone(), op.value)).collect();
        assert_eq!(
            values,
            vec![
                ("a".into(), 6),
                ("a".into(), -1),
                ("b".into(), 5),
                ("a".into(), 1),
                ("a".into(), 1),
                ("a".into(), 0),
                ("a".into(), i64::MAX),
                ("a".into(), 1),
            ]
        );
        assert_eq!(sizes, vec![4, 1, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn each_call_gets_the_state_after_it() {
        let ops = vec![inc("a", 1), inc("a", 2), inc("a", 3), inc("b", 10)];
        let (merged, sizes) = merge(&ops);
        assert_eq!(merged.len(), 2);
        // before: a = (100, 40); after the merged inc of 6: (106, 46)
        let outcomes = expand(&ops, &sizes, vec![ok(106, 46), ok(10, 10)]);
        let states: Vec<(i64, i64)> = outcomes.iter().map(done).collect();
        assert_eq!(states, vec![(101, 41), (103, 43), (106, 46), (10, 10)]);
    }

    #[test]
    fn negative_runs_and_extremes_are_exact() {
        let ops = vec![inc("a", -5), inc("a", i64::MIN + 5)];
        let (merged, sizes) = merge(&ops);
        assert_eq!(merged[0].value, i64::MIN);
        // before: (0, 0); after the merged inc: (MIN, MIN)
        let outcomes = expand(&ops, &sizes, vec![ok(i64::MIN, i64::MIN)]);
        let states: Vec<(i64, i64)> = outcomes.iter().map(done).collect();
        assert_eq!(states, vec![(-5, -5), (i64::MIN, i64::MIN)]);
    }

    #[test]
    fn an_overflowing_merge_is_retried_call_by_call() {
        let ops = vec![inc("a", 1), inc("a", 2), inc("b", 1)];
        let (_, sizes) = merge(&ops);
        let overflow = OpResult {
            status: OpStatus::Overflow,
            ..ok(0, 0)
        };
        let outcomes = expand(&ops, &sizes, vec![overflow, ok(1, 1)]);
        assert!(matches!(outcomes[0], Outcome::Retry));
        assert!(matches!(outcomes[1], Outcome::Retry));
        assert_eq!(done(&outcomes[2]), (1, 1));
    }
}
