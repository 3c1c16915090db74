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

use std::collections::HashMap;

use distkit::DistkitRedisKey;
use distkit::counter::{CounterOptions, StrictCounter};
use distkit::icounter::InstanceAwareCounterTrait;
use distkit_testkit::faults::Endpoint;
use distkit_testkit::history::*;
use distkit_testkit::{shared_cluster, shared_server, unique_prefix};
use distkit_tests::workloads::{InstanceCounterWorkload, connect, strict_counter_step};

const MEMBERS: u64 = 3;
const KILLED: u64 = 1;

fn spawn_member(
    workload: &str,
    process: u64,
    target: &[String],
    out: &Path,
    prefix: &str,
    extra: &[&str],
) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleet"));
    command
        .args([
            "--workload",
            workload,
            "--keys",
            "2",
            "--duration-ms",
            "3000",
        ])
        .args(["--process", &process.to_string(), "--prefix", prefix])
        .args(extra)
        .arg("--out")
        .arg(out);
    match target {
        [url] => command.args(["--url", url]),
        urls => command.args(["--cluster", &urls.join(",")]),
    };
    command.spawn().expect("run the fleet binary")
}

fn endpoint(target: &[String]) -> Endpoint {
    match target {
        [url] => Endpoint::Single(url.clone()),
        urls => Endpoint::Cluster(urls.to_vec()),
    }
}

/// Waits until `file` has `lines` lines (the member is well into its run).
async fn wait_for_lines(file: &Path, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines_in(file) < lines {
        assert!(
            Instant::now() < deadline,
            "{} never got going",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// `workload` is `counter` (raw commands) or `strict-counter` (distkit's
/// `StrictCounter`, keys `k0`, `k1` under the prefix).
async fn fleet_with_a_killed_member_stays_linearizable(
    workload: &str,
    target: Vec<String>,
    name: &str,
) {
    let prefix = unique_prefix(name);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..MEMBERS)
        .map(|p| dir.join(format!("member-{p}.log")))
        .collect();
    let mut members: Vec<Child> = (0..MEMBERS)
        .map(|p| spawn_member(workload, p, &target, &files[p as usize], &prefix, &[]))
        .collect();

    // Kill one member once it is well into its run (by its own log, not a timer).
    wait_for_lines(&files[KILLED as usize], 200).await;
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
    let endpoint = endpoint(&target);
    if workload == "strict-counter" {
        let counter = StrictCounter::new(CounterOptions::new(
            DistkitRedisKey::try_from(prefix.clone()).unwrap(),
            connect(&endpoint).await,
        ));
        for key in ["k0", "k1"] {
            let key = DistkitRedisKey::try_from(key).unwrap();
            strict_counter_step(&counter, &reads, MEMBERS, &key, CounterCall::Get).await;
        }
    } else {
        let mut conn = endpoint.connection().await;
        for key in 0..2 {
            let op = CounterOp::new(format!("{prefix}:k{key}"), CounterCall::Get);
            distkit_testkit::workloads::raw_counter_step(&mut conn, &reads, MEMBERS, op).await;
        }
    }
    operations.extend(reads.operations());

    let outcome = check_linearizable(&CounterModel, &operations, CheckOptions::default());
    println!(
        "{name} ({workload}): {} operations from {MEMBERS} processes, {killed_ops} by the killed one, \
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
    let target = vec![shared_server().url()];
    fleet_with_a_killed_member_stays_linearizable("counter", target, "fleet-single").await;
}

#[tokio::test]
async fn fleet_with_a_killed_member_is_linearizable_cluster() {
    let target = shared_cluster().urls();
    fleet_with_a_killed_member_stays_linearizable("counter", target, "fleet-cluster").await;
}

#[tokio::test]
async fn strict_counter_fleet_with_a_killed_member_is_linearizable_single_node() {
    let target = vec![shared_server().url()];
    fleet_with_a_killed_member_stays_linearizable("strict-counter", target, "fleet-strict").await;
}

#[tokio::test]
async fn strict_counter_fleet_with_a_killed_member_is_linearizable_cluster() {
    let target = shared_cluster().urls();
    fleet_with_a_killed_member_stays_linearizable("strict-counter", target, "fleet-strict-c").await;
}

/// Sums of one instance's ledger lines: acknowledged, unknown and final
/// slices per key.
#[derive(Default)]
struct InstanceLedger {
    ledger: LaxLedger,
    finals: HashMap<String, (i64, i64)>,
}

fn read_instance_ledger(path: &Path) -> InstanceLedger {
    let mut parsed = InstanceLedger::default();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["ack", key, delta] => parsed.ledger.acknowledged(key, delta.parse().unwrap()),
            ["unknown", key, delta] => parsed.ledger.unknown(key, delta.parse().unwrap()),
            ["final", key, slice, cumulative] => {
                parsed.finals.insert(
                    key.to_string(),
                    (slice.parse().unwrap(), cumulative.parse().unwrap()),
                );
            }
            _ => {} // a line cut short by SIGKILL
        }
    }
    parsed
}

/// Five instances in five processes, one SIGKILLed mid-run: once the
/// threshold has passed, the survivors' operations remove its slice, and
/// the cumulative equals the sum of the survivors' slices: the dead slice
/// was subtracted exactly once (twice would leave less), and every
/// survivor's slice is exactly what it was told it added.
async fn icounter_fleet_removes_a_killed_instance_once(target: Vec<String>, name: &str) {
    const INSTANCES: u64 = 5;
    const THRESHOLD_MS: u64 = 2_000;
    let prefix = unique_prefix(name);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..INSTANCES)
        .map(|p| dir.join(format!("instance-{p}.log")))
        .collect();
    let threshold = THRESHOLD_MS.to_string();
    let extra = [
        "--threshold-ms",
        threshold.as_str(),
        "--duration-ms",
        "6000",
    ];
    let mut members: Vec<Child> = (0..INSTANCES)
        .map(|p| spawn_member("icounter", p, &target, &files[p as usize], &prefix, &extra))
        .collect();
    wait_for_lines(&files[KILLED as usize], 100).await;
    members[KILLED as usize].kill().unwrap(); // SIGKILL
    for (process, member) in members.iter_mut().enumerate() {
        let status = member.wait().unwrap();
        if process as u64 != KILLED {
            assert!(status.success(), "instance {process} failed: {status}");
        }
    }

    let workload = InstanceCounterWorkload::new(DistkitRedisKey::try_from(prefix.clone()).unwrap())
        .threshold_ms(THRESHOLD_MS);
    let observer = workload.instance(connect(&endpoint(&target)).await, None);
    let ledgers: Vec<InstanceLedger> = files.iter().map(|f| read_instance_ledger(f)).collect();
    for key in workload.keys() {
        let (cumulative, own) = observer.get(&key).await.unwrap();
        assert_eq!(own, 0, "the observer added nothing");
        let killed = &ledgers[KILLED as usize].ledger;
        assert!(
            killed.acknowledged_count() > 0,
            "the killed instance contributed to {key}"
        );
        let mut survivors = 0;
        for (process, ledger) in ledgers.iter().enumerate() {
            if process as u64 == KILLED {
                continue;
            }
            let (slice, _) = ledger.finals[key.as_str()];
            ledger
                .ledger
                .check(key.as_str(), slice)
                .unwrap_or_else(|v| panic!("instance {process}: {v}"));
            survivors += slice;
        }
        println!("{name}: {key}: cumulative {cumulative}, survivors' slices sum to {survivors}");
        assert_eq!(
            cumulative, survivors,
            "the killed instance's slice of {key} was removed exactly once"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn icounter_fleet_removes_a_killed_instance_once_single_node() {
    icounter_fleet_removes_a_killed_instance_once(vec![shared_server().url()], "fleet-ic").await;
}

#[tokio::test]
async fn icounter_fleet_removes_a_killed_instance_once_cluster() {
    icounter_fleet_removes_a_killed_instance_once(shared_cluster().urls(), "fleet-ic-c").await;
}

/// Four processes take one `Mutex` over and over and write to one shared
/// file inside the critical section, through a storage that rejects stale
/// fencing tokens; one member is SIGKILLed mid-run. The file never
/// interleaves two holders, the storage never rejects a write (no holder
/// ever carries a stale token), and accepted tokens strictly increase.
async fn lock_fleet_never_interleaves(target: Vec<String>, name: &str) {
    const MEMBERS: u64 = 4;
    let prefix = unique_prefix(name);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let shared = dir.join("shared.txt");
    let storage = shared.with_extension("storage");
    let shared_arg = shared.to_str().unwrap().to_string();
    let extra = ["--file", shared_arg.as_str(), "--ttl-ms", "500"];
    let mut members: Vec<Child> = (0..MEMBERS)
        .map(|p| {
            let out = dir.join(format!("member-{p}.log"));
            spawn_member("lock", p, &target, &out, &prefix, &extra)
        })
        .collect();
    // Kill a member in the middle of its critical section when possible.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&shared).unwrap_or_default();
        if text.lines().count() >= 40
            && text
                .lines()
                .last()
                .is_some_and(|l| l.starts_with(&format!("start {KILLED} ")))
        {
            break;
        }
        if text.lines().count() >= 200 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    members[KILLED as usize].kill().unwrap(); // SIGKILL
    for (process, member) in members.iter_mut().enumerate() {
        let status = member.wait().unwrap();
        if process as u64 != KILLED {
            assert!(status.success(), "member {process} failed: {status}");
        }
    }

    let text = std::fs::read_to_string(&shared).unwrap();
    let mut open: Option<(String, String)> = None;
    let mut holds = 0;
    let mut holders = std::collections::HashSet::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["start", process, token] => {
                if let Some((p, t)) = &open {
                    // Only the killed member may leave a hold unfinished.
                    assert_eq!(
                        p,
                        &KILLED.to_string(),
                        "{name}: holder {p} (token {t}) interleaved with {process} (token {token})"
                    );
                }
                open = Some((process.to_string(), token.to_string()));
                holders.insert(process.to_string());
                holds += 1;
            }
            ["end", process, token] => {
                assert_eq!(
                    open.take(),
                    Some((process.to_string(), token.to_string())),
                    "{name}: end without its start: {line}"
                );
            }
            _ => panic!("{name}: unexpected line {line:?}"),
        }
    }
    let verdicts = std::fs::read_to_string(&storage).unwrap();
    assert!(
        !verdicts.lines().any(|l| l.starts_with("reject ")),
        "{name}: the storage rejected a stale token:\n{verdicts}"
    );
    let tokens: Vec<u64> = verdicts
        .lines()
        .filter_map(|l| l.split(' ').nth(2)?.parse().ok())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "{name}: tokens increase"
    );
    println!(
        "{name}: {holds} holds by {} members, tokens strictly increasing",
        holders.len()
    );
    assert!(
        holds >= 40,
        "{name}: the members took the lock often ({holds})"
    );
    assert!(
        holders.len() as u64 >= MEMBERS - 1,
        "{name}: every member held it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn lock_fleet_never_interleaves_single_node() {
    lock_fleet_never_interleaves(vec![shared_server().url()], "fleet-lock").await;
}

#[tokio::test]
async fn lock_fleet_never_interleaves_cluster() {
    lock_fleet_never_interleaves(shared_cluster().urls(), "fleet-lock-c").await;
}
