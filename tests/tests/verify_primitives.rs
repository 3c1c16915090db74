//! distkit's own primitives through ten rounds of faults (connections cut,
//! traffic paused longer than the lock TTL, Redis restarted), all at once,
//! on a single node and on a cluster; then each primitive's checker:
//! strict counter histories are linearizable, lax counters hold exactly the
//! acknowledged increments and never read backwards, lock holds never
//! overlap and fencing tokens follow acquisition order, instance slices
//! match what each instance was told and sum to the cumulative.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use distkit_testkit::faults::{FaultPlan, FaultTarget};
use distkit_tests::verify::{LOCK_TTL, Summary, primitives_through_faults, violations};

const ROUNDS: usize = 10;

async fn primitives_keep_their_guarantees(target: FaultTarget, name: &'static str) {
    let plan = FaultPlan::rounds(ROUNDS).pause(LOCK_TTL * 3);
    let rows = primitives_through_faults(&target, name, plan).await;
    println!("{}", Summary(&rows));
    for row in &rows {
        assert_eq!(
            row.report.rounds, ROUNDS,
            "{} ran every round",
            row.primitive
        );
        assert!(row.operations > 0, "{} did some work", row.primitive);
    }
    assert_eq!(
        violations(&rows),
        0,
        "violations on {name}:\n{}",
        Summary(&rows)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primitives_keep_their_guarantees_through_fault_rounds_single_node() {
    primitives_keep_their_guarantees(FaultTarget::single(), "single node").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primitives_keep_their_guarantees_through_fault_rounds_cluster() {
    primitives_keep_their_guarantees(FaultTarget::cluster(), "cluster").await;
}
