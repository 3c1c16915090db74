//! Fault rounds over every primitive at once, checked afterwards: shared by
//! the CI test (`tests/verify_primitives.rs`, 10 rounds) and the soak
//! (`tests/soak.rs`, `SOAK_SECONDS`).
//!
//! One [`FaultPlan`] drives [`WORKERS_PER_PRIMITIVE`] workers of each
//! primitive workload against one [`FaultTarget`]; each primitive then gets
//! a [`Row`] with its operations, the faults it lived through and the
//! violations its checker found.

use std::fmt;
use std::time::{Duration, Instant};

use distkit::DistkitRedisKey;
use distkit::counter::{CounterOptions, CounterTrait, StrictCounter};
use distkit::icounter::InstanceAwareCounterTrait;
use distkit_testkit::faults::{Endpoint, FaultPlan, FaultReport, FaultTarget, Worker};
use distkit_testkit::history::{
    CheckOptions, CheckOutcome, Clock, CounterModel, CounterOp, CounterRet, History, LaxLedger,
    LockLog, Outcome, check_linearizable,
};
use distkit_testkit::unique_prefix;

use crate::workloads::{
    Finals, InstanceCounterWorkload, LaxCounterWorkload, LaxInstanceCounterWorkload, LockKind,
    LockWorkload, Regressions, StrictCounterWorkload, connect,
};

/// Workers per primitive (processes in the histories).
pub const WORKERS_PER_PRIMITIVE: usize = 3;
/// The primitives, in worker-index order (`index % PRIMITIVES.len()`).
pub const PRIMITIVES: [&str; 6] = [
    "StrictCounter",
    "LaxCounter",
    "Mutex",
    "RwLock",
    "StrictInstanceAwareCounter",
    "LaxInstanceAwareCounter",
];
/// The lease of the lock under test; plans must pause for longer.
pub const LOCK_TTL: Duration = Duration::from_millis(300);

/// One line of the summary: a primitive on a target.
#[derive(Debug, Clone)]
pub struct Row {
    /// The primitive.
    pub primitive: &'static str,
    /// "single node" or "cluster".
    pub target: &'static str,
    /// The fault rounds it ran through.
    pub report: FaultReport,
    /// Operations recorded.
    pub operations: usize,
    /// Operations whose outcome is unknown.
    pub unknown: usize,
    /// Violations found.
    pub violations: usize,
    /// What the checker printed, when it found something.
    pub detail: Option<String>,
}

impl Row {
    /// A row with no operations and no violations yet.
    pub fn new(primitive: &'static str, target: &'static str, report: FaultReport) -> Self {
        Self {
            primitive,
            target,
            report,
            operations: 0,
            unknown: 0,
            violations: 0,
            detail: None,
        }
    }

    /// Sets the violations found (each a printable description).
    pub fn violations(mut self, found: Vec<String>) -> Self {
        self.violations = found.len();
        if !found.is_empty() {
            self.detail = Some(found.join("\n"));
        }
        self
    }
}

/// The summary table, then each violation's detail.
#[derive(Debug)]
pub struct Summary<'a>(pub &'a [Row]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<28} {:<12} {:>7} {:>7} {:>11} {:>8} {:>11}",
            "primitive", "target", "rounds", "faults", "operations", "unknown", "violations"
        )?;
        for row in self.0 {
            writeln!(
                f,
                "{:<28} {:<12} {:>7} {:>7} {:>11} {:>8} {:>11}",
                row.primitive,
                row.target,
                row.report.rounds,
                row.report.faults,
                row.operations,
                row.unknown,
                row.violations
            )?;
        }
        for row in self.0 {
            if let Some(detail) = &row.detail {
                writeln!(f, "\n{} on {}:\n{detail}", row.primitive, row.target)?;
            }
        }
        Ok(())
    }
}

/// Total violations of `rows`.
pub fn violations(rows: &[Row]) -> usize {
    rows.iter().map(|row| row.violations).sum()
}

fn key_prefix(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(unique_prefix(name)).expect("a valid prefix")
}

/// Every workload of one run and what it records; cheap to clone (the
/// recorders are shared handles), one clone per worker.
#[derive(Clone)]
struct Suite {
    strict: StrictCounterWorkload,
    strict_history: History<CounterOp, CounterRet>,
    lax: LaxCounterWorkload,
    lax_ledger: LaxLedger,
    regressions: Regressions,
    mutex: LockWorkload,
    mutex_log: LockLog,
    rwlock: LockWorkload,
    rwlock_log: LockLog,
    clock: Clock,
    icounter: InstanceCounterWorkload,
    slice_ledger: LaxLedger,
    finals: Finals,
    lax_icounter: LaxInstanceCounterWorkload,
    lax_slice_ledger: LaxLedger,
    lax_finals: Finals,
}

impl Suite {
    fn new() -> Self {
        Self {
            strict: StrictCounterWorkload::new(key_prefix("v-strict")),
            strict_history: History::new(),
            lax: LaxCounterWorkload::new(key_prefix("v-lax")),
            lax_ledger: LaxLedger::new(),
            regressions: Regressions::default(),
            mutex: LockWorkload::new(LockKind::Mutex, key_prefix("v-mutex"), LOCK_TTL),
            mutex_log: LockLog::new(),
            rwlock: LockWorkload::new(LockKind::RwLock, key_prefix("v-rwlock"), LOCK_TTL),
            rwlock_log: LockLog::new(),
            clock: Clock::Monotonic(Instant::now()),
            icounter: InstanceCounterWorkload::new(key_prefix("v-icounter")),
            slice_ledger: LaxLedger::new(),
            finals: Finals::default(),
            lax_icounter: LaxInstanceCounterWorkload::new(key_prefix("v-lax-icounter")),
            lax_slice_ledger: LaxLedger::new(),
            lax_finals: Finals::default(),
        }
    }

    /// Worker `index` runs primitive `index % PRIMITIVES.len()`.
    async fn work(self, worker: Worker) {
        let process = (worker.index() / PRIMITIVES.len()) as u64;
        let endpoint = worker.endpoint().clone();
        let running = || worker.running();
        let Suite { clock, .. } = self;
        match worker.index() % PRIMITIVES.len() {
            0 => {
                let history = self.strict_history;
                self.strict.run(&endpoint, process, history, running).await;
            }
            1 => {
                let (ledger, regressions) = (self.lax_ledger, self.regressions);
                self.lax
                    .run(&endpoint, process, ledger, regressions, running)
                    .await;
            }
            2 => {
                let log = self.mutex_log;
                self.mutex
                    .run(&endpoint, process, log, clock, running)
                    .await;
            }
            3 => {
                let log = self.rwlock_log;
                self.rwlock
                    .run(&endpoint, process, log, clock, running)
                    .await;
            }
            4 => {
                let (ledger, finals) = (self.slice_ledger, self.finals);
                self.icounter
                    .run(&endpoint, process, ledger, finals, running)
                    .await;
            }
            _ => {
                let (ledger, finals) = (self.lax_slice_ledger, self.lax_finals);
                self.lax_icounter
                    .run(&endpoint, process, ledger, finals, running)
                    .await;
            }
        }
    }
}

/// Runs `plan` against `target` with every primitive's workload at once,
/// then checks each: strict counter histories for linearizability, lax
/// sums and monotonic reads, mutex and readers-writer holds for exclusion
/// and fencing order, strict and lax instance slices and their sum.
pub async fn primitives_through_faults(
    target: &FaultTarget,
    target_name: &'static str,
    plan: FaultPlan,
) -> Vec<Row> {
    let suite = Suite::new();
    let workers = WORKERS_PER_PRIMITIVE * PRIMITIVES.len();
    let report = {
        let suite = suite.clone();
        plan.run(target, workers, move |worker| suite.clone().work(worker))
            .await
    };
    let endpoint = target.endpoint();
    let Suite {
        strict_history,
        lax,
        lax_ledger,
        regressions,
        mutex_log,
        rwlock_log,
        icounter,
        slice_ledger,
        finals,
        lax_icounter,
        lax_slice_ledger,
        lax_finals,
        ..
    } = suite;
    vec![
        check_strict(target_name, report, &strict_history),
        check_lax(
            target_name,
            report,
            &endpoint,
            &lax,
            &lax_ledger,
            &regressions,
        )
        .await,
        check_lock("Mutex", target_name, report, &mutex_log),
        check_lock("RwLock", target_name, report, &rwlock_log),
        check_icounter(
            "StrictInstanceAwareCounter",
            target_name,
            report,
            &endpoint,
            &icounter,
            &slice_ledger,
            &finals,
        )
        .await,
        check_icounter(
            "LaxInstanceAwareCounter",
            target_name,
            report,
            &endpoint,
            lax_icounter.strict(),
            &lax_slice_ledger,
            &lax_finals,
        )
        .await,
    ]
}

fn check_strict(
    target: &'static str,
    report: FaultReport,
    history: &History<CounterOp, CounterRet>,
) -> Row {
    let operations = history.operations();
    let mut row = Row::new("StrictCounter", target, report);
    row.operations = operations.len();
    row.unknown = operations
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Unknown(_)))
        .count();
    let found = match check_linearizable(&CounterModel, &operations, CheckOptions::default()) {
        CheckOutcome::Linearizable { .. } => Vec::new(),
        CheckOutcome::NotLinearizable(violation) => vec![violation.to_string()],
        undecided @ CheckOutcome::BudgetExceeded { .. } => vec![format!("{undecided:?}")],
    };
    row.violations(found)
}

/// Reads `key` through a strict counter of `prefix`, retrying while Redis
/// recovers.
async fn read_back(endpoint: &Endpoint, prefix: &DistkitRedisKey, key: &DistkitRedisKey) -> i64 {
    let counter = StrictCounter::new(CounterOptions::new(prefix.clone(), connect(endpoint).await));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match counter.get(key).await {
            Ok(value) => return value,
            Err(error) if Instant::now() > deadline => panic!("cannot read {key}: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn check_lax(
    target: &'static str,
    report: FaultReport,
    endpoint: &Endpoint,
    workload: &LaxCounterWorkload,
    ledger: &LaxLedger,
    regressions: &Regressions,
) -> Row {
    let mut row = Row::new("LaxCounter", target, report);
    row.operations = usize::try_from(ledger.acknowledged_count()).unwrap_or(usize::MAX);
    let mut found = regressions.all();
    for key in workload.keys() {
        let stored = read_back(endpoint, workload.prefix(), &key).await;
        if let Err(violation) = ledger.check(key.as_str(), stored) {
            found.push(violation.to_string());
        }
    }
    row.violations(found)
}

fn check_lock(
    primitive: &'static str,
    target: &'static str,
    report: FaultReport,
    log: &LockLog,
) -> Row {
    let mut row = Row::new(primitive, target, report);
    row.operations = log.acquisitions().len();
    let found = log.check().iter().map(ToString::to_string).collect();
    row.violations(found)
}

async fn check_icounter(
    primitive: &'static str,
    target: &'static str,
    report: FaultReport,
    endpoint: &Endpoint,
    workload: &InstanceCounterWorkload,
    ledger: &LaxLedger,
    finals: &Finals,
) -> Row {
    let mut row = Row::new(primitive, target, report);
    row.operations =
        usize::try_from(ledger.acknowledged_count()).unwrap_or(usize::MAX) + ledger.unknown_count();
    row.unknown = ledger.unknown_count();
    let finals = finals.all();
    let mut found = Vec::new();
    let observer = workload.instance(connect(endpoint).await, None);
    for key in workload.keys() {
        let mut sum = 0i64;
        for process in 0..WORKERS_PER_PRIMITIVE as u64 {
            let name = InstanceCounterWorkload::slice_name(process, &key);
            match finals.get(&name) {
                Some(&slice) => {
                    sum += slice;
                    if let Err(violation) = ledger.check(&name, slice) {
                        found.push(format!("slice {violation}"));
                    }
                }
                None => found.push(format!("instance w{process} never read its slice of {key}")),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let cumulative = loop {
            match observer.get(&key).await {
                Ok((cumulative, _)) => break cumulative,
                Err(error) if Instant::now() > deadline => panic!("cannot read {key}: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        if cumulative != sum {
            found.push(format!(
                "cumulative of {key} is {cumulative}, but the live slices sum to {sum}"
            ));
        }
    }
    row.violations(found)
}
