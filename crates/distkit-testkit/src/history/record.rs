//! The recorder: what each operation of a concurrent run did and when.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::lines::{LineCodec, encode_invoke, encode_return};

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<Ret> {
    /// It took effect and returned this value.
    Ok(Ret),
    /// The client saw an error that leaves the effect unknown (a cut
    /// connection, a timeout, a crash before the reply): the operation may or
    /// may not have taken effect, at any time after its invocation.
    Unknown(String),
    /// It certainly did not take effect (the server rejected it before doing
    /// anything, such as a connection refused before the command was sent).
    Failed(String),
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<Op, Ret> {
    /// Unique within its process.
    pub id: u64,
    /// The client, task or OS process that ran it (one operation at a time).
    pub process: u64,
    /// When it was invoked, in nanoseconds of the history's clock.
    pub invoked_ns: u64,
    /// When its outcome was seen; `None` when it never returned (its
    /// process died), which the checkers treat like an unknown outcome.
    pub returned_ns: Option<u64>,
    /// The operation and its arguments.
    pub op: Op,
    /// Its result or error.
    pub outcome: Outcome<Ret>,
}

impl<Op, Ret> Operation<Op, Ret> {
    /// Whether the outcome is known to be `Ok`.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }

    /// The return time when the outcome is known, `u64::MAX` otherwise: an
    /// operation with an unknown outcome is concurrent with everything that
    /// was invoked after it.
    pub fn effective_return_ns(&self) -> u64 {
        match (&self.outcome, self.returned_ns) {
            (Outcome::Ok(_), Some(returned)) => returned,
            _ => u64::MAX,
        }
    }
}

impl<Op: fmt::Debug, Ret: fmt::Debug> fmt::Display for Operation<Op, Ret> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}#{} {:?} -> ", self.process, self.id, self.op)?;
        match &self.outcome {
            Outcome::Ok(ret) => write!(f, "{ret:?}")?,
            Outcome::Unknown(why) => write!(f, "unknown ({why})")?,
            Outcome::Failed(why) => write!(f, "failed ({why})")?,
        }
        Ok(())
    }
}

/// The time source of a [`History`].
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// Nanoseconds since the history was created, from [`Instant`]: exact
    /// and immune to clock steps, but meaningful within one OS process only.
    Monotonic(Instant),
    /// Nanoseconds since the Unix epoch, from [`SystemTime`]: comparable
    /// across the OS processes of one machine (they read the same
    /// `CLOCK_REALTIME`), but a clock step during the run (NTP, an operator)
    /// shifts the times and can make a correct history look wrong or hide a
    /// violation. Use it for multi-process histories on one machine only.
    Wall,
}

impl Clock {
    /// The current time in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        match self {
            Clock::Monotonic(start) => {
                u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
            }
            Clock::Wall => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        }
    }
}

struct Log<Op, Ret> {
    file: Mutex<File>,
    encode_op: fn(&Op) -> String,
    encode_ret: fn(&Ret) -> String,
}

struct Inner<Op, Ret> {
    clock: Clock,
    next_id: AtomicU64,
    operations: Mutex<Vec<Operation<Op, Ret>>>,
    log: Option<Log<Op, Ret>>,
}

/// A thread-safe recorder of operations: cheap to clone (an `Arc`), one
/// mutex push per completed operation.
///
/// Wrap every call of the system under test in [`invoke`](Self::invoke) and
/// complete the returned [`PendingOperation`]. A pending operation dropped
/// without an outcome (a cancelled task) is recorded as unknown.
///
/// ```
/// use distkit_testkit::history::{CounterCall, CounterOp, CounterRet, History};
///
/// let history = History::new();
/// let pending = history.invoke(1, CounterOp::new("k", CounterCall::Inc(5)));
/// pending.ok(CounterRet::Value(5));
/// assert_eq!(history.operations().len(), 1);
/// ```
pub struct History<Op, Ret> {
    inner: Arc<Inner<Op, Ret>>,
}

impl<Op, Ret> Clone for History<Op, Ret> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<Op, Ret> fmt::Debug for History<Op, Ret> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("clock", &self.inner.clock)
            .field("operations", &self.lock().len())
            .field("logged", &self.inner.log.is_some())
            .finish()
    }
}

impl<Op, Ret> Default for History<Op, Ret> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Op, Ret> History<Op, Ret> {
    /// An empty history on a [`Clock::Monotonic`] clock started now.
    pub fn new() -> Self {
        Self::with_clock(Clock::Monotonic(Instant::now()))
    }

    /// An empty history on `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                next_id: AtomicU64::new(0),
                operations: Mutex::new(Vec::new()),
                log: None,
            }),
        }
    }

    /// An empty history on the [`Clock::Wall`] clock that also appends
    /// every invocation and every return to the file at `path` as it
    /// happens (see [`lines`](super::lines) for the format), so the history
    /// of a process killed with SIGKILL survives up to its last event.
    pub fn with_log(path: &Path) -> std::io::Result<Self>
    where
        Op: LineCodec,
        Ret: LineCodec,
    {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                clock: Clock::Wall,
                next_id: AtomicU64::new(0),
                operations: Mutex::new(Vec::new()),
                log: Some(Log {
                    file: Mutex::new(file),
                    encode_op: Op::encode,
                    encode_ret: Ret::encode,
                }),
            }),
        })
    }

    /// The clock of this history.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// The current time of this history's clock.
    pub fn now_ns(&self) -> u64 {
        self.inner.clock.now_ns()
    }

    /// Records the invocation of `op` by `process` (one operation at a time
    /// per process) and returns the handle that records its outcome.
    pub fn invoke(&self, process: u64, op: Op) -> PendingOperation<Op, Ret> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let invoked_ns = self.now_ns();
        if let Some(log) = &self.inner.log {
            let line = encode_invoke(process, id, invoked_ns, &(log.encode_op)(&op));
            write_line(&log.file, &line);
        }
        PendingOperation {
            history: self.clone(),
            id,
            process,
            invoked_ns,
            op: Some(op),
        }
    }

    /// Adds a complete operation (for histories built by hand or merged).
    pub fn push(&self, operation: Operation<Op, Ret>) {
        self.lock().push(operation);
    }

    /// The number of completed operations.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no operation completed yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A snapshot of the completed operations, in completion order.
    pub fn operations(&self) -> Vec<Operation<Op, Ret>>
    where
        Op: Clone,
        Ret: Clone,
    {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Operation<Op, Ret>>> {
        self.inner
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn complete(&self, operation: Operation<Op, Ret>) {
        if let Some(log) = &self.inner.log {
            let (status, detail) = match &operation.outcome {
                Outcome::Ok(ret) => ("ok", (log.encode_ret)(ret)),
                Outcome::Unknown(why) => ("unknown", why.clone()),
                Outcome::Failed(why) => ("failed", why.clone()),
            };
            let line = encode_return(
                operation.process,
                operation.id,
                operation.returned_ns.unwrap_or(u64::MAX),
                status,
                &detail,
            );
            write_line(&log.file, &line);
        }
        self.lock().push(operation);
    }
}

fn write_line(file: &Mutex<File>, line: &str) {
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    // One write per event; a failed write shows up as a missing event,
    // which the merge treats as an unknown outcome.
    let _ = file.write_all(line.as_bytes());
}

/// An invoked operation waiting for its outcome; see [`History::invoke`].
pub struct PendingOperation<Op, Ret> {
    history: History<Op, Ret>,
    id: u64,
    process: u64,
    invoked_ns: u64,
    op: Option<Op>,
}

impl<Op: fmt::Debug, Ret> fmt::Debug for PendingOperation<Op, Ret> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingOperation")
            .field("id", &self.id)
            .field("process", &self.process)
            .field("op", &self.op)
            .finish()
    }
}

impl<Op, Ret> PendingOperation<Op, Ret> {
    /// The operation returned `ret`.
    pub fn ok(self, ret: Ret) {
        self.finish_with(Outcome::Ok(ret));
    }

    /// The operation failed in a way that leaves its effect unknown.
    pub fn unknown(self, why: impl fmt::Display) {
        self.finish_with(Outcome::Unknown(why.to_string()));
    }

    /// The operation certainly did not take effect.
    pub fn failed(self, why: impl fmt::Display) {
        self.finish_with(Outcome::Failed(why.to_string()));
    }

    /// Records `result`, counting every error as an unknown outcome (the
    /// safe reading of a failure whose cause is not known).
    pub fn finish<E: fmt::Display>(self, result: Result<Ret, E>) {
        match result {
            Ok(ret) => self.ok(ret),
            Err(e) => self.unknown(e),
        }
    }

    fn finish_with(mut self, outcome: Outcome<Ret>) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: Outcome<Ret>) {
        if let Some(op) = self.op.take() {
            let returned_ns = self.history.now_ns();
            self.history.complete(Operation {
                id: self.id,
                process: self.process,
                invoked_ns: self.invoked_ns,
                returned_ns: Some(returned_ns),
                op,
                outcome,
            });
        }
    }
}

impl<Op, Ret> Drop for PendingOperation<Op, Ret> {
    fn drop(&mut self) {
        self.record(Outcome::Unknown(
            "dropped before its outcome was seen".into(),
        ));
    }
}
