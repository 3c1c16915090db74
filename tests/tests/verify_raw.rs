//! The verification machinery end to end, on raw Redis workloads: a raw
//! counter stays linearizable and a raw lock keeps its guarantees through
//! rounds of cuts, pauses and restarts; deliberately broken clients are
//! caught.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use distkit_testkit::faults::{FaultPlan, FaultReport, FaultTarget};
use distkit_testkit::history::*;
use distkit_testkit::unique_prefix;
use distkit_testkit::workloads::{RawCounterWorkload, RawLaxWorkload, RawLockWorkload};

const WORKERS: usize = 4;

async fn run_counter(
    target: &FaultTarget,
    plan: FaultPlan,
    workload: RawCounterWorkload,
) -> (FaultReport, Vec<Operation<CounterOp, CounterRet>>) {
    let history: History<CounterOp, CounterRet> = History::new();
    let recorder = history.clone();
    let report = plan
        .run(target, WORKERS, move |worker| {
            workload.clone().run(worker, recorder.clone())
        })
        .await;
    (report, history.operations())
}

fn unknown_count(ops: &[Operation<CounterOp, CounterRet>]) -> usize {
    ops.iter()
        .filter(|op| matches!(op.outcome, Outcome::Unknown(_)))
        .count()
}

async fn raw_counter_survives_fault_rounds(target: FaultTarget, name: &str) {
    let (report, ops) = run_counter(
        &target,
        FaultPlan::rounds(10),
        RawCounterWorkload::new(unique_prefix(name)),
    )
    .await;
    let unknown = unknown_count(&ops);
    println!(
        "{name}: {report}; {} operations ({unknown} unknown); checking",
        ops.len()
    );
    if let Ok(dir) = std::env::var("VERIFY_HISTORY_DIR") {
        std::fs::write(format!("{dir}/{name}.history"), to_lines(&ops)).unwrap();
    }
    let started = Instant::now();
    let outcome = check_linearizable(&CounterModel, &ops, CheckOptions::default());
    println!(
        "{name}: {report}; {} operations ({unknown} unknown), checked in {:?}: {}",
        ops.len(),
        started.elapsed(),
        outcome.is_linearizable()
    );
    assert_eq!(report.rounds, 10);
    assert!(unknown > 0, "the faults never reached the workload");
    assert!(
        ops.iter().filter(|op| op.is_ok()).count() > 500,
        "too little traffic"
    );
    outcome.assert_linearizable();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_counter_is_linearizable_across_fault_rounds_single_node() {
    raw_counter_survives_fault_rounds(FaultTarget::single(), "verify-counter-single").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_counter_is_linearizable_across_fault_rounds_cluster() {
    raw_counter_survives_fault_rounds(FaultTarget::cluster(), "verify-counter-cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reading_client_is_caught() {
    let target = FaultTarget::single();
    let (_, ops) = run_counter(
        &target,
        FaultPlan::rounds(2),
        RawCounterWorkload::new(unique_prefix("verify-stale")).stale_reads(),
    )
    .await;
    match check_linearizable(&CounterModel, &ops, CheckOptions::default()) {
        CheckOutcome::NotLinearizable(violation) => {
            println!("caught as expected:\n{violation}");
            assert_eq!(violation.culprit.op.call, CounterCall::Get, "{violation}");
        }
        other => panic!("a client serving stale reads was not caught: {other:?}"),
    }
}

async fn run_lock(
    target: &FaultTarget,
    plan: FaultPlan,
    workload: RawLockWorkload,
) -> (FaultReport, LockLog) {
    let log = LockLog::new();
    let recorder = log.clone();
    let clock = Clock::Monotonic(Instant::now());
    let report = plan
        .run(target, WORKERS, move |worker| {
            workload.clone().run(worker, recorder.clone(), clock)
        })
        .await;
    (report, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_lock_keeps_exclusion_and_fencing_across_fault_rounds() {
    let target = FaultTarget::single();
    let ttl = Duration::from_millis(300);
    // The pause (1 s) outlasts the lease: holders cut off mid-hold lose it.
    let plan = FaultPlan::rounds(10).pause(Duration::from_secs(1));
    let (report, log) = run_lock(
        &target,
        plan,
        RawLockWorkload::new(unique_prefix("verify-lock"), ttl),
    )
    .await;
    let acquisitions = log.acquisitions();
    println!("raw lock: {report}; {} acquisitions", acquisitions.len());
    // Progress, not speed: the machine may be loaded.
    assert!(
        acquisitions.len() >= 10,
        "too few acquisitions: {}",
        acquisitions.len()
    );
    assert_lock_history(&acquisitions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_holder_ignoring_its_lease_is_caught() {
    let target = FaultTarget::single();
    let ttl = Duration::from_millis(100);
    let (_, log) = run_lock(
        &target,
        FaultPlan::rounds(1).pause(Duration::from_millis(200)),
        RawLockWorkload::new(unique_prefix("verify-lock-broken"), ttl).ignore_lease(),
    )
    .await;
    let violations = log.check();
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, LockViolation::Overlap { .. })),
        "a holder acting past its lease was not caught ({} acquisitions)",
        log.acquisitions().len()
    );
    println!("caught as expected:\n{}", violations[0]);
}

async fn run_lax(
    target: &FaultTarget,
    plan: FaultPlan,
    workload: RawLaxWorkload,
) -> (FaultReport, Vec<(String, Result<(), LaxViolation>)>) {
    let ledger = LaxLedger::new();
    let recorder = ledger.clone();
    let keys = workload.keys();
    let report = plan
        .run(target, WORKERS, move |worker| {
            workload.clone().run(worker, recorder.clone())
        })
        .await;
    let mut conn = target.endpoint().connection().await;
    let mut results = Vec::new();
    for key in keys {
        let value: Option<i64> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        results.push((key.clone(), ledger.check(&key, value.unwrap_or(0))));
    }
    (report, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_lax_counter_keeps_the_final_sum_across_fault_rounds() {
    let target = FaultTarget::single();
    let (report, results) = run_lax(
        &target,
        FaultPlan::rounds(10),
        RawLaxWorkload::new(unique_prefix("verify-lax")),
    )
    .await;
    println!("raw lax: {report}");
    for (key, result) in results {
        if let Err(violation) = result {
            panic!("{key}: {violation}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lax_client_resending_unknown_flushes_is_caught() {
    let target = FaultTarget::single();
    let (_, results) = run_lax(
        &target,
        FaultPlan::rounds(2),
        RawLaxWorkload::new(unique_prefix("verify-lax-broken")).retry_unknown_flushes(),
    )
    .await;
    let caught: Vec<String> = results
        .into_iter()
        .filter_map(|(_, r)| r.err())
        .map(|v| v.to_string())
        .collect();
    assert!(
        !caught.is_empty(),
        "a client applying flushes twice was not caught"
    );
    println!("caught as expected:\n{}", caught.join("\n"));
}
