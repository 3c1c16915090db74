//! The checkers accept correct histories (including concurrent ones that
//! need reordering and ones with unknown outcomes) and catch broken ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use distkit_testkit::history::*;

fn op(
    process: u64,
    id: u64,
    from: u64,
    to: u64,
    call: CounterCall,
    outcome: Outcome<CounterRet>,
) -> Operation<CounterOp, CounterRet> {
    Operation {
        id,
        process,
        invoked_ns: from,
        returned_ns: Some(to),
        op: CounterOp::new("k", call),
        outcome,
    }
}

fn ok(v: i64) -> Outcome<CounterRet> {
    Outcome::Ok(CounterRet::Value(v))
}

fn unknown() -> Outcome<CounterRet> {
    Outcome::Unknown("connection reset".into())
}

fn check(ops: &[Operation<CounterOp, CounterRet>]) -> CheckOutcome<CounterOp, CounterRet, i64> {
    check_linearizable(&CounterModel, ops, CheckOptions::default())
}

fn violation(ops: &[Operation<CounterOp, CounterRet>]) -> Violation<CounterOp, CounterRet, i64> {
    match check(ops) {
        CheckOutcome::NotLinearizable(v) => *v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn sequential_history_is_linearizable() {
    let ops = [
        op(1, 0, 0, 1, CounterCall::Inc(2), ok(2)),
        op(1, 1, 2, 3, CounterCall::Get, ok(2)),
        op(1, 2, 4, 5, CounterCall::Set(10), ok(10)),
        op(1, 3, 6, 7, CounterCall::Inc(-3), ok(7)),
    ];
    check(&ops).assert_linearizable();
}

#[test]
fn concurrent_history_that_needs_reordering_is_linearizable() {
    // p2's increment was invoked later but took effect first.
    let ops = [
        op(1, 0, 0, 10, CounterCall::Inc(1), ok(2)),
        op(2, 0, 1, 9, CounterCall::Inc(1), ok(1)),
        op(3, 0, 2, 8, CounterCall::Get, ok(1)),
        op(3, 1, 11, 12, CounterCall::Get, ok(2)),
    ];
    check(&ops).assert_linearizable();
}

#[test]
fn unknown_increment_may_take_effect_late() {
    let ops = [
        op(1, 0, 0, 1, CounterCall::Inc(5), unknown()),
        op(2, 0, 10, 11, CounterCall::Get, ok(0)),
        op(2, 1, 12, 13, CounterCall::Get, ok(5)),
        op(2, 2, 14, 15, CounterCall::Get, ok(5)),
    ];
    check(&ops).assert_linearizable();
}

#[test]
fn unknown_increment_may_never_take_effect() {
    let ops = [
        op(1, 0, 0, 1, CounterCall::Inc(5), unknown()),
        op(2, 0, 10, 11, CounterCall::Get, ok(0)),
    ];
    check(&ops).assert_linearizable();
}

#[test]
fn failed_operations_are_left_out() {
    let ops = [
        op(
            1,
            0,
            0,
            1,
            CounterCall::Inc(5),
            Outcome::Failed("refused".into()),
        ),
        op(2, 0, 10, 11, CounterCall::Get, ok(0)),
    ];
    check(&ops).assert_linearizable();
}

#[test]
fn stale_read_is_caught_and_named() {
    let ops = [
        op(1, 0, 0, 1, CounterCall::Inc(1), ok(1)),
        op(1, 1, 2, 3, CounterCall::Inc(1), ok(2)),
        op(2, 0, 4, 5, CounterCall::Get, ok(1)),
        op(2, 1, 6, 7, CounterCall::Get, ok(2)),
    ];
    let v = violation(&ops);
    assert_eq!(v.partition, "k");
    assert_eq!(v.culprit.op.call, CounterCall::Get);
    assert_eq!(v.culprit.outcome, ok(1));
    assert_eq!(v.longest_length, 2, "{v}");
    let report = v.to_string();
    assert!(report.contains("get()@k -> Value(1)"), "{report}");
}

#[test]
fn unknown_write_cannot_explain_a_value_seen_before_it_was_invoked() {
    let ops = [
        op(2, 0, 0, 1, CounterCall::Get, ok(5)),
        op(1, 0, 2, 3, CounterCall::Inc(5), unknown()),
    ];
    assert!(!check(&ops).is_linearizable());
}

#[test]
fn lost_increment_is_caught() {
    let ops = [
        op(1, 0, 0, 1, CounterCall::Inc(1), ok(1)),
        op(2, 0, 2, 3, CounterCall::Inc(1), ok(1)),
    ];
    let v = violation(&ops);
    assert_eq!(v.culprit.process, 2);
}

#[test]
fn lost_increment_seen_by_a_read_is_caught() {
    let ops = [
        op(1, 0, 0, 5, CounterCall::Inc(1), ok(1)),
        op(2, 0, 1, 6, CounterCall::Inc(1), ok(2)),
        op(3, 0, 7, 8, CounterCall::Get, ok(1)),
    ];
    let v = violation(&ops);
    assert_eq!(v.culprit.process, 3);
}

#[test]
fn conditional_operations_follow_the_model() {
    let pair = |n, o| Outcome::Ok(CounterRet::Pair(n, o));
    let good = [
        op(1, 0, 0, 1, CounterCall::Inc(1), ok(1)),
        op(
            1,
            1,
            2,
            3,
            CounterCall::IncIf(Comparison::Ge(1), 5),
            pair(6, 1),
        ),
        op(
            1,
            2,
            4,
            5,
            CounterCall::IncIf(Comparison::Lt(0), 5),
            pair(6, 6),
        ),
        op(
            1,
            3,
            6,
            7,
            CounterCall::SetIf(Comparison::Eq(6), 0),
            pair(0, 6),
        ),
        op(
            1,
            4,
            8,
            9,
            CounterCall::SetIf(Comparison::Nil, 3),
            pair(3, 0),
        ),
    ];
    check(&good).assert_linearizable();
    let wrong_old = [
        op(1, 0, 0, 1, CounterCall::Inc(1), ok(1)),
        op(
            1,
            1,
            2,
            3,
            CounterCall::IncIf(Comparison::Ge(1), 5),
            pair(6, 0),
        ),
    ];
    assert!(!check(&wrong_old).is_linearizable());
    let applied_despite_comparison = [op(
        1,
        0,
        0,
        1,
        CounterCall::IncIf(Comparison::Gt(0), 5),
        pair(5, 0),
    )];
    assert!(!check(&applied_despite_comparison).is_linearizable());
}

#[test]
fn overflowing_increment_changes_nothing() {
    let ops = [
        op(1, 0, 0, 1, CounterCall::Set(i64::MAX), ok(i64::MAX)),
        op(1, 1, 2, 3, CounterCall::Inc(1), unknown()),
        op(1, 2, 4, 5, CounterCall::Get, ok(i64::MAX)),
    ];
    check(&ops).assert_linearizable();
}

#[test]
fn keys_are_checked_apart_and_the_report_names_the_key() {
    let mut ops = vec![
        op(1, 0, 0, 1, CounterCall::Inc(1), ok(1)),
        op(2, 0, 0, 1, CounterCall::Inc(7), ok(7)),
        op(2, 1, 2, 3, CounterCall::Get, ok(0)),
    ];
    ops[1].op.key = "b".into();
    ops[2].op.key = "b".into();
    let v = violation(&ops);
    assert_eq!(v.partition, "b");
    match check(&ops[..2]) {
        CheckOutcome::Linearizable { partitions, .. } => assert_eq!(partitions, 2),
        other => panic!("{other:?}"),
    }
}

/// A deterministic generator, so the tests need no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// A history of `processes` clients on one counter, each operation taking
/// effect at a random point inside its interval (so it is linearizable),
/// with some outcomes lost.
fn simulated(
    processes: u64,
    per_process: u64,
    seed: u64,
    unknown_one_in: u64,
) -> Vec<Operation<CounterOp, CounterRet>> {
    let mut rng = Lcg(seed);
    // (effect time, process, id, invoke, return, call)
    let mut planned = Vec::new();
    for process in 0..processes {
        let mut t = rng.next(50);
        for id in 0..per_process {
            let invoke = t + rng.next(20);
            let effect = invoke + 1 + rng.next(100);
            let ret = effect + 1 + rng.next(100);
            let call = match rng.next(10) {
                0..=4 => CounterCall::Inc(1 + rng.next(3) as i64),
                5..=7 => CounterCall::Get,
                8 => CounterCall::Set(rng.next(50) as i64),
                _ => CounterCall::IncIf(Comparison::Lt(40), 2),
            };
            planned.push((effect, process, id, invoke, ret, call));
            t = ret + 1;
        }
    }
    planned.sort_by_key(|p| (p.0, p.1, p.2));
    let mut value = 0i64;
    let mut ops = Vec::new();
    for (_, process, id, invoke, ret, call) in planned {
        let answer = match call {
            CounterCall::Inc(n) => {
                value += n;
                CounterRet::Value(value)
            }
            CounterCall::Get => CounterRet::Value(value),
            CounterCall::Set(v) => {
                value = v;
                CounterRet::Value(v)
            }
            CounterCall::IncIf(cmp, n) => {
                let old = value;
                if cmp.matches(old) {
                    value += n;
                }
                CounterRet::Pair(value, old)
            }
            CounterCall::SetIf(..) => unreachable!(),
        };
        let outcome = if rng.next(unknown_one_in) == 0 {
            unknown()
        } else {
            Outcome::Ok(answer)
        };
        ops.push(op(process, id, invoke, ret, call, outcome));
    }
    ops
}

#[test]
fn large_concurrent_simulated_history_is_linearizable() {
    for seed in 1..=5 {
        let ops = simulated(8, 250, seed, 40);
        check(&ops).assert_linearizable();
    }
}

#[test]
fn one_corrupted_read_in_a_large_history_is_caught() {
    let mut ops = simulated(8, 250, 42, 150);
    let target = ops
        .iter()
        .position(|o| o.op.call == CounterCall::Get && o.is_ok() && o.invoked_ns > 20_000)
        .unwrap();
    if let Outcome::Ok(CounterRet::Value(v)) = ops[target].outcome {
        ops[target].outcome = ok(v + 1_000);
    }
    let v = violation(&ops);
    assert_eq!(
        (v.culprit.process, v.culprit.id),
        (ops[target].process, ops[target].id),
        "{v}"
    );
}

#[test]
fn budget_exhaustion_is_not_a_verdict() {
    let ops = simulated(8, 100, 7, 40);
    let outcome = check_linearizable(&CounterModel, &ops, CheckOptions { step_budget: 10 });
    assert!(
        matches!(outcome, CheckOutcome::BudgetExceeded { .. }),
        "{outcome:?}"
    );
}

#[test]
fn lines_round_trip() {
    let ops = vec![
        op(1, 0, 0, 1, CounterCall::Inc(-5), ok(-5)),
        op(
            1,
            1,
            2,
            3,
            CounterCall::IncIf(Comparison::Ne(3), i64::MIN),
            Outcome::Ok(CounterRet::Pair(1, 2)),
        ),
        op(
            2,
            0,
            2,
            3,
            CounterCall::SetIf(Comparison::Nil, 9),
            Outcome::Unknown("reset\tby peer\n".into()),
        ),
        op(
            2,
            1,
            4,
            5,
            CounterCall::Get,
            Outcome::Failed("refused".into()),
        ),
    ];
    let mut keyed = ops.clone();
    keyed[0].op.key = "with space".into();
    let text = to_lines(&keyed);
    let back: Vec<Operation<CounterOp, CounterRet>> = from_lines(&text).unwrap();
    assert_eq!(back, keyed);
}

#[test]
fn missing_return_is_unknown_and_a_torn_last_line_is_ignored() {
    let text = "i\t1\t0\t10\tinc 5 k\nr\t1\t0\t20\tok\t5\ni\t1\t1\t30\tinc 1 k\ni\t1\t2\t40\tge";
    let ops: Vec<Operation<CounterOp, CounterRet>> = from_lines(text).unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[1].returned_ns, None);
    assert!(matches!(ops[1].outcome, Outcome::Unknown(_)));
    assert!(from_lines::<CounterOp, CounterRet>("x\t1\t0\t1\tget k\n").is_err());
}

#[test]
fn logged_history_reads_back_from_its_file() {
    let path = std::env::temp_dir().join(format!("distkit-history-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let history: History<CounterOp, CounterRet> = History::with_log(&path).unwrap();
    history
        .invoke(3, CounterOp::new("k", CounterCall::Inc(4)))
        .ok(CounterRet::Value(4));
    history
        .invoke(3, CounterOp::new("k", CounterCall::Get))
        .unknown("timeout");
    let pending = history.invoke(3, CounterOp::new("k", CounterCall::Get));
    std::mem::forget(pending); // as if the process died here
    let back: Vec<Operation<CounterOp, CounterRet>> =
        from_lines(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(back.len(), 3);
    assert_eq!(back[0].outcome, ok(4));
    assert!(matches!(back[1].outcome, Outcome::Unknown(ref why) if why == "timeout"));
    assert_eq!(back[2].returned_ns, None);
    check_linearizable(&CounterModel, &back, CheckOptions::default()).assert_linearizable();
}

#[test]
fn dropped_pending_operation_is_recorded_as_unknown() {
    let history: History<CounterOp, CounterRet> = History::new();
    drop(history.invoke(1, CounterOp::new("k", CounterCall::Inc(1))));
    let ops = history.operations();
    assert!(matches!(ops[0].outcome, Outcome::Unknown(_)));
}

// ---- locks ----

fn hold(
    holder: &str,
    mode: LockMode,
    from: u64,
    until: Option<u64>,
    lease: u64,
    token: u64,
) -> LockAcquisition {
    LockAcquisition {
        holder: holder.into(),
        mode,
        acquire_invoked_ns: from,
        acquired_ns: from + 1,
        released_ns: until,
        lease_valid_until_ns: from + lease,
        fencing_token: Some(token),
    }
}

use LockMode::{Exclusive, Shared};

#[test]
fn handed_over_lock_is_accepted() {
    let history = [
        hold("a", Exclusive, 0, Some(10), 100, 1),
        hold("b", Exclusive, 10, Some(20), 100, 2),
        hold("a", Exclusive, 20, Some(30), 100, 3),
    ];
    assert_lock_history(&history);
}

#[test]
fn expired_lease_lets_the_next_holder_in() {
    // a crashed (never released) but its lease ended at 50.
    let history = [
        hold("a", Exclusive, 0, None, 50, 1),
        hold("b", Exclusive, 60, Some(70), 100, 2),
    ];
    assert_lock_history(&history);
}

#[test]
fn readers_may_overlap() {
    let history = [
        hold("r1", Shared, 0, Some(50), 100, 1),
        hold("r2", Shared, 10, Some(60), 100, 1),
        hold("w", Exclusive, 60, Some(70), 100, 2),
    ];
    assert_lock_history(&history);
}

#[test]
fn overlapping_holders_are_caught() {
    let history = [
        hold("a", Exclusive, 0, Some(10), 100, 1),
        hold("b", Exclusive, 5, Some(20), 100, 2),
    ];
    let violations = check_lock_history(&history);
    assert!(
        matches!(
            violations.as_slice(),
            [LockViolation::Overlap { overlap_ns: 4, .. }]
        ),
        "{violations:?}"
    );
}

#[test]
fn writer_overlapping_a_reader_is_caught() {
    let history = [
        hold("r", Shared, 0, Some(50), 100, 1),
        hold("w", Exclusive, 10, Some(60), 100, 2),
    ];
    assert!(matches!(
        check_lock_history(&history).as_slice(),
        [LockViolation::Overlap { .. }]
    ));
}

#[test]
fn non_increasing_fencing_token_is_caught() {
    let history = [
        hold("a", Exclusive, 0, Some(10), 100, 5),
        hold("b", Exclusive, 20, Some(30), 100, 5),
    ];
    let violations = check_lock_history(&history);
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, LockViolation::TokenNotIncreasing { .. })),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, LockViolation::DuplicateToken { .. }))
    );
    let decreasing = [
        hold("a", Exclusive, 0, Some(10), 100, 5),
        hold("b", Exclusive, 20, Some(30), 100, 4),
    ];
    assert_eq!(check_lock_history(&decreasing).len(), 1);
}

#[test]
fn concurrent_acquire_calls_may_get_tokens_in_either_order() {
    // b's acquire was invoked before a's returned: their order is unknown.
    let mut a = hold("a", Exclusive, 0, Some(10), 100, 2);
    let mut b = hold("b", Exclusive, 0, Some(30), 100, 1);
    a.acquired_ns = 5;
    b.acquire_invoked_ns = 3;
    b.acquired_ns = 12;
    assert_lock_history(&[a, b]);
}

// ---- lax counters ----

#[test]
fn lax_sum_of_acknowledged_increments_is_accepted() {
    let ledger = LaxLedger::new();
    for delta in [1, 2, 3, -4] {
        ledger.acknowledged("k", delta);
    }
    assert!(ledger.check("k", 2).is_ok());
    assert!(ledger.check("other", 0).is_ok());
}

#[test]
fn lax_unknown_increments_count_zero_or_one_time() {
    let ledger = LaxLedger::new();
    ledger.acknowledged("k", 10);
    ledger.unknown("k", 5);
    ledger.unknown("k", 7);
    for fine in [10, 15, 17, 22] {
        assert!(ledger.check("k", fine).is_ok(), "{fine}");
    }
    for wrong in [9, 12, 27, 20] {
        assert!(ledger.check("k", wrong).is_err(), "{wrong}");
    }
}

#[test]
fn lax_lost_increment_is_caught() {
    let ledger = LaxLedger::new();
    ledger.acknowledged("k", 3);
    ledger.acknowledged("k", 4);
    let error = ledger.check("k", 3).unwrap_err();
    assert_eq!(error.acknowledged, 7);
    assert!(error.to_string().contains("difference -4"), "{error}");
}

#[test]
fn lax_double_applied_increment_is_caught() {
    let ledger = LaxLedger::new();
    ledger.acknowledged("k", 3);
    ledger.acknowledged("k", 4);
    ledger.unknown("k", 4);
    // 4 acknowledged once, flushed twice, and the unknown one applied too.
    assert!(ledger.check("k", 15).is_err());
}

#[test]
fn lax_many_unknown_increments_fall_back_to_bounds() {
    let ledger = LaxLedger::new();
    for _ in 0..100 {
        ledger.unknown("k", 1);
    }
    ledger.unknown("k", -1);
    assert!(ledger.check("k", 50).is_ok());
    assert!(ledger.check("k", -1).is_ok());
    assert!(ledger.check("k", 101).is_err());
    assert!(ledger.check("k", -2).is_err());
}
