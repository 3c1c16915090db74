//! Histories of concurrent runs and the checkers that judge them.
//!
//! - [`History`]: a thread-safe recorder of operations (process, invoke
//!   time, return time, arguments, result or error), optionally logged to a
//!   file as it happens ([`History::with_log`]) so the histories of several
//!   OS processes can be merged with [`from_lines`].
//! - [`check_linearizable`]: a Wing & Gong / Lowe search with memoization,
//!   per partition, against a [`Model`] such as [`CounterModel`].
//! - [`check_lock_history`]: no overlapping holders while their leases were
//!   valid, strictly increasing fencing tokens.
//! - [`LaxLedger`]: the final value of a lax counter is the sum of its
//!   acknowledged increments (plus any subset of the unknown ones).
//!
//! An error seen by a client is an *unknown* outcome unless the client
//! knows the operation never reached the server: it may have taken effect,
//! at any time after its invocation, so the checkers treat it as concurrent
//! with everything after it (as Porcupine and Knossos do).
//!
//! # Checking a primitive
//!
//! Write a workload as in [`crate::workloads`]: each worker wraps every
//! call in [`History::invoke`] and records the reply with
//! [`PendingOperation::ok`], [`PendingOperation::failed`] (the call
//! provably never ran, e.g. a typed argument error) or
//! [`PendingOperation::unknown`] (any connection error or timeout). Run it
//! with [`crate::faults::FaultPlan::run`], then check
//! `history.operations()` with [`check_linearizable`] and [`CounterModel`]
//! (strict counters: map `CounterComparator` to [`Comparison`]), a
//! [`LockLog`] with [`check_lock_history`], or a [`LaxLedger`] with
//! [`LaxLedger::check`] against the values read after the last flush.
//!
//! The checker is written here rather than taken from a crate: the ones on
//! crates.io either model-check actor systems (stateright, whose
//! linearizability tester has no notion of partitions, step budgets or
//! unknown outcomes after a crash) or are unmaintained ports of Porcupine;
//! the search itself is a few hundred lines and needs no dependency.

mod counter;
mod lax;
mod linearizability;
pub mod lines;
mod lock;
mod record;

pub use counter::{Comparison, CounterCall, CounterModel, CounterOp, CounterRet};
pub use lax::{LaxLedger, LaxViolation};
pub use linearizability::{CheckOptions, CheckOutcome, Model, Violation, check_linearizable};
pub use lines::{LineCodec, LineError, from_lines, to_lines};
pub use lock::{
    LockAcquisition, LockLog, LockMode, LockViolation, assert_lock_history, check_lock_history,
};
pub use record::{Clock, History, Operation, Outcome, PendingOperation};
