//! The soak: fault rounds for `SOAK_SECONDS` (set by `make soak`, default
//! 600 there) on a single node and on a cluster, every workload at once
//! (distkit's primitives, and the raw Redis workloads that prove the
//! machinery), then a summary table ending with `violations: N` (the test
//! fails when N is not 0). Without `SOAK_SECONDS` (as in `cargo test
//! --workspace`) it runs a short bounded version: two rounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use distkit_testkit::faults::{FaultPlan, FaultTarget};
use distkit_testkit::history::*;
use distkit_testkit::unique_prefix;
use distkit_testkit::workloads::{RawCounterWorkload, RawLaxWorkload, RawLockWorkload};
use distkit_tests::verify::{LOCK_TTL, Row, Summary, primitives_through_faults, violations};

const WORKERS: usize = 4;

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

async fn primitives(target: FaultTarget, name: &'static str) -> Vec<Row> {
    primitives_through_faults(&target, name, plan()).await
}

async fn raw_counter(target: FaultTarget, name: &'static str) -> Row {
    let history: History<CounterOp, CounterRet> = History::new();
    let recorder = history.clone();
    let workload = RawCounterWorkload::new(unique_prefix("soak-counter"));
    let report = plan()
        .run(&target, WORKERS, move |worker| {
            workload.clone().run(worker, recorder.clone())
        })
        .await;
    let ops = history.operations();
    let found = match check_linearizable(&CounterModel, &ops, CheckOptions::default()) {
        CheckOutcome::Linearizable { .. } => Vec::new(),
        CheckOutcome::NotLinearizable(v) => vec![v.to_string()],
        undecided @ CheckOutcome::BudgetExceeded { .. } => vec![format!("{undecided:?}")],
    };
    let mut row = Row::new("raw counter", name, report);
    row.operations = ops.len();
    row.unknown = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Unknown(_)))
        .count();
    row.violations(found)
}

async fn raw_lock(target: FaultTarget, name: &'static str) -> Row {
    let log = LockLog::new();
    let recorder = log.clone();
    let clock = Clock::Monotonic(Instant::now());
    let workload = RawLockWorkload::new(unique_prefix("soak-lock"), LOCK_TTL);
    let report = plan()
        .run(&target, WORKERS, move |worker| {
            workload.clone().run(worker, recorder.clone(), clock)
        })
        .await;
    let mut row = Row::new("raw lock", name, report);
    row.operations = log.acquisitions().len();
    row.violations(log.check().iter().map(ToString::to_string).collect())
}

async fn raw_lax(target: FaultTarget, name: &'static str) -> Row {
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
    let mut found = Vec::new();
    for key in &keys {
        let value: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Err(violation) = ledger.check(key, value.unwrap_or(0)) {
            found.push(violation.to_string());
        }
    }
    let mut row = Row::new("raw lax counter", name, report);
    row.operations =
        usize::try_from(ledger.acknowledged_count()).unwrap_or(usize::MAX) + ledger.unknown_count();
    row.unknown = ledger.unknown_count();
    row.violations(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let started = Instant::now();
    let (single, cluster, raw) = tokio::join!(
        primitives(FaultTarget::single(), "single node"),
        primitives(FaultTarget::cluster(), "cluster"),
        async {
            tokio::join!(
                raw_counter(FaultTarget::single(), "single node"),
                raw_counter(FaultTarget::cluster(), "cluster"),
                raw_lock(FaultTarget::single(), "single node"),
                raw_lock(FaultTarget::cluster(), "cluster"),
                raw_lax(FaultTarget::single(), "single node"),
                raw_lax(FaultTarget::cluster(), "cluster"),
            )
        },
    );
    let mut rows = single;
    rows.extend(cluster);
    rows.extend([raw.0, raw.1, raw.2, raw.3, raw.4, raw.5]);
    println!("\n{}", Summary(&rows));
    let violations = violations(&rows);
    println!("elapsed: {:.0} s", started.elapsed().as_secs_f64());
    println!("violations: {violations}");
    assert_eq!(violations, 0, "the soak found violations (see above)");
}
