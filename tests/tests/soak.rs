//! The soak: fault rounds for `SOAK_SECONDS` (set by `make soak`, default
//! 600 there) on a single node and on a cluster, every workload at once,
//! then a summary table ending with `violations: N` (the test fails when N
//! is not 0). Without `SOAK_SECONDS` (as in `cargo test --workspace`) it
//! runs a short bounded version: two rounds per workload.
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
const LOCK_TTL: Duration = Duration::from_millis(300);

fn plan() -> FaultPlan {
    let plan = match std::env::var("SOAK_SECONDS") {
        Ok(seconds) if !seconds.trim().is_empty() => {
            let seconds: u64 = seconds
                .trim()
                .parse()
                .expect("SOAK_SECONDS is a number of seconds");
            FaultPlan::for_duration(Duration::from_secs(seconds))
        }
        _ => FaultPlan::rounds(2),
    };
    // Pause longer than the lock TTL: holders cut off must lose their lease.
    plan.pause(LOCK_TTL * 3)
}

/// One line of the summary.
struct Row {
    workload: &'static str,
    target: &'static str,
    report: FaultReport,
    operations: usize,
    unknown: usize,
    violations: usize,
    detail: Option<String>,
}

async fn counter(target: FaultTarget, name: &'static str) -> Row {
    let history: History<CounterOp, CounterRet> = History::new();
    let recorder = history.clone();
    let workload = RawCounterWorkload::new(unique_prefix("soak-counter"));
    let report = plan()
        .run(&target, WORKERS, move |worker| {
            workload.clone().run(worker, recorder.clone())
        })
        .await;
    let ops = history.operations();
    let (violations, detail) =
        match check_linearizable(&CounterModel, &ops, CheckOptions::default()) {
            CheckOutcome::Linearizable { .. } => (0, None),
            CheckOutcome::NotLinearizable(v) => (1, Some(v.to_string())),
            undecided @ CheckOutcome::BudgetExceeded { .. } => (1, Some(format!("{undecided:?}"))),
        };
    Row {
        workload: "raw counter (INCRBY/GET/SET)",
        target: name,
        report,
        operations: ops.len(),
        unknown: ops
            .iter()
            .filter(|op| matches!(op.outcome, Outcome::Unknown(_)))
            .count(),
        violations,
        detail,
    }
}

async fn lock(target: FaultTarget, name: &'static str) -> Row {
    let log = LockLog::new();
    let recorder = log.clone();
    let clock = Clock::Monotonic(Instant::now());
    let workload = RawLockWorkload::new(unique_prefix("soak-lock"), LOCK_TTL);
    let report = plan()
        .run(&target, WORKERS, move |worker| {
            workload.clone().run(worker, recorder.clone(), clock)
        })
        .await;
    let violations = log.check();
    Row {
        workload: "raw lock (SET NX PX + INCR token)",
        target: name,
        report,
        operations: log.acquisitions().len(),
        unknown: 0,
        violations: violations.len(),
        detail: (!violations.is_empty()).then(|| {
            violations
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        }),
    }
}

async fn lax(target: FaultTarget, name: &'static str) -> Row {
    let ledger = LaxLedger::new();
    let recorder = ledger.clone();
    let workload = RawLaxWorkload::new(unique_prefix("soak-lax"));
    let keys = workload.keys();
    let report = plan()
        .run(&target, WORKERS, move |worker| {
            workload.clone().run(worker, recorder.clone())
        })
        .await;
    let mut conn = target.endpoint().connection().await;
    let mut failures = Vec::new();
    for key in &keys {
        let value: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Err(violation) = ledger.check(key, value.unwrap_or(0)) {
            failures.push(violation.to_string());
        }
    }
    Row {
        workload: "raw lax counter (batched INCRBY)",
        target: name,
        report,
        operations: usize::try_from(ledger.acknowledged_count()).unwrap_or(usize::MAX)
            + ledger.unknown_count(),
        unknown: ledger.unknown_count(),
        violations: failures.len(),
        detail: (!failures.is_empty()).then(|| failures.join("\n")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let started = Instant::now();
    let rows = tokio::join!(
        counter(FaultTarget::single(), "single node"),
        counter(FaultTarget::cluster(), "cluster"),
        lock(FaultTarget::single(), "single node"),
        lock(FaultTarget::cluster(), "cluster"),
        lax(FaultTarget::single(), "single node"),
        lax(FaultTarget::cluster(), "cluster"),
    );
    let rows = [rows.0, rows.1, rows.2, rows.3, rows.4, rows.5];
    println!();
    println!(
        "{:<34} {:<12} {:>7} {:>7} {:>11} {:>8} {:>11}",
        "workload", "target", "rounds", "faults", "operations", "unknown", "violations"
    );
    for row in &rows {
        println!(
            "{:<34} {:<12} {:>7} {:>7} {:>11} {:>8} {:>11}",
            row.workload,
            row.target,
            row.report.rounds,
            row.report.faults,
            row.operations,
            row.unknown,
            row.violations
        );
    }
    for row in &rows {
        if let Some(detail) = &row.detail {
            println!("\n{} on {}:\n{detail}", row.workload, row.target);
        }
    }
    let violations: usize = rows.iter().map(|r| r.violations).sum();
    println!("elapsed: {:.0} s", started.elapsed().as_secs_f64());
    println!("violations: {violations}");
    assert_eq!(violations, 0, "the soak found violations (see above)");
}
