//! A fleet of real OS processes against one Redis: one member is killed
//! with SIGKILL mid-run, the histories of all members are merged from their
//! files and checked for linearizability.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use distkit_testkit::history::*;
use distkit_testkit::{shared_cluster, shared_server, unique_prefix};

const MEMBERS: u64 = 3;
const KILLED: u64 = 1;

fn spawn_member(process: u64, target: &[String], out: &Path, prefix: &str) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleet"));
    command
        .args([
            "--workload",
            "counter",
            "--keys",
            "2",
            "--duration-ms",
            "3000",
        ])
        .args(["--process", &process.to_string(), "--prefix", prefix])
        .arg("--out")
        .arg(out);
    match target {
        [url] => command.args(["--url", url]),
        urls => command.args(["--cluster", &urls.join(",")]),
    };
    command.spawn().expect("run the fleet binary")
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

async fn fleet_with_a_killed_member_stays_linearizable(target: Vec<String>, name: &str) {
    let prefix = unique_prefix(name);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..MEMBERS)
        .map(|p| dir.join(format!("member-{p}.log")))
        .collect();
    let mut members: Vec<Child> = (0..MEMBERS)
        .map(|p| spawn_member(p, &target, &files[p as usize], &prefix))
        .collect();

    // Kill one member once it is well into its run (by its own log, not a timer).
    let victim = &files[KILLED as usize];
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines_in(victim) < 200 {
        assert!(Instant::now() < deadline, "member {KILLED} never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    members[KILLED as usize].kill().unwrap(); // SIGKILL
    for (process, member) in members.iter_mut().enumerate() {
        let status = member.wait().unwrap();
        if process as u64 != KILLED {
            assert!(status.success(), "member {process} failed: {status}");
        }
    }

    let mut operations: Vec<Operation<CounterOp, CounterRet>> = Vec::new();
    for file in &files {
        operations.extend(
            from_lines::<CounterOp, CounterRet>(&std::fs::read_to_string(file).unwrap()).unwrap(),
        );
    }
    let killed_ops = operations.iter().filter(|op| op.process == KILLED).count();
    let after_kill = {
        let killed_last = operations
            .iter()
            .filter(|op| op.process == KILLED)
            .map(|op| op.invoked_ns)
            .max()
            .unwrap();
        operations
            .iter()
            .filter(|op| op.invoked_ns > killed_last)
            .count()
    };

    // Final reads by the checker itself, on the same (wall) clock.
    let reads: History<CounterOp, CounterRet> = History::with_clock(Clock::Wall);
    let endpoint = match target.as_slice() {
        [url] => distkit_testkit::faults::Endpoint::Single(url.clone()),
        urls => distkit_testkit::faults::Endpoint::Cluster(urls.to_vec()),
    };
    let mut conn = endpoint.connection().await;
    for key in 0..2 {
        let op = CounterOp::new(format!("{prefix}:k{key}"), CounterCall::Get);
        distkit_testkit::workloads::raw_counter_step(&mut conn, &reads, MEMBERS, op).await;
    }
    operations.extend(reads.operations());

    let outcome = check_linearizable(&CounterModel, &operations, CheckOptions::default());
    println!(
        "{name}: {} operations from {MEMBERS} processes, {killed_ops} by the killed one, \
         {after_kill} after its last; linearizable: {}",
        operations.len(),
        outcome.is_linearizable()
    );
    assert!(
        killed_ops >= 100,
        "the killed member recorded too little: {killed_ops}"
    );
    assert!(after_kill > 0, "no member outlived the killed one");
    outcome.assert_linearizable();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn fleet_with_a_killed_member_is_linearizable_single_node() {
    fleet_with_a_killed_member_stays_linearizable(vec![shared_server().url()], "fleet-single")
        .await;
}

#[tokio::test]
async fn fleet_with_a_killed_member_is_linearizable_cluster() {
    fleet_with_a_killed_member_stays_linearizable(shared_cluster().urls(), "fleet-cluster").await;
}
