//! The sequential specification of a strict counter: one `i64` per key,
//! missing keys read as 0.

use std::fmt;

use super::linearizability::Model;
use super::lines::LineCodec;

/// A comparison of the current value with an operand (mirrors
/// `distkit_core::CounterComparator`, which this crate cannot depend on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `current == operand`.
    Eq(i64),
    /// `current != operand`.
    Ne(i64),
    /// `current < operand`.
    Lt(i64),
    /// `current > operand`.
    Gt(i64),
    /// `current <= operand`.
    Le(i64),
    /// `current >= operand`.
    Ge(i64),
    /// Always true.
    Nil,
}

impl Comparison {
    /// Whether `current` satisfies the comparison.
    pub fn matches(&self, current: i64) -> bool {
        match *self {
            Comparison::Eq(o) => current == o,
            Comparison::Ne(o) => current != o,
            Comparison::Lt(o) => current < o,
            Comparison::Gt(o) => current > o,
            Comparison::Le(o) => current <= o,
            Comparison::Ge(o) => current >= o,
            Comparison::Nil => true,
        }
    }

    fn encode(&self) -> String {
        match *self {
            Comparison::Eq(o) => format!("eq {o}"),
            Comparison::Ne(o) => format!("ne {o}"),
            Comparison::Lt(o) => format!("lt {o}"),
            Comparison::Gt(o) => format!("gt {o}"),
            Comparison::Le(o) => format!("le {o}"),
            Comparison::Ge(o) => format!("ge {o}"),
            Comparison::Nil => "nil 0".into(),
        }
    }

    fn decode(name: &str, operand: i64) -> Option<Self> {
        Some(match name {
            "eq" => Comparison::Eq(operand),
            "ne" => Comparison::Ne(operand),
            "lt" => Comparison::Lt(operand),
            "gt" => Comparison::Gt(operand),
            "le" => Comparison::Le(operand),
            "ge" => Comparison::Ge(operand),
            "nil" => Comparison::Nil,
            _ => return None,
        })
    }
}

/// A counter operation, without its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterCall {
    /// Add `n`; returns [`CounterRet::Value`] with the new value. An
    /// overflow is an error that changes nothing (record it as failed).
    Inc(i64),
    /// Read; returns [`CounterRet::Value`].
    Get,
    /// Overwrite; returns [`CounterRet::Value`] with the value set.
    Set(i64),
    /// Add `count` if the current value satisfies the comparison; returns
    /// [`CounterRet::Pair`] `(new, old)` (`new == old` when it did not).
    IncIf(Comparison, i64),
    /// Set `count` if the current value satisfies the comparison; returns
    /// [`CounterRet::Pair`] `(new, old)`.
    SetIf(Comparison, i64),
}

/// A counter operation on one key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CounterOp {
    /// The key (the unit of P-compositionality: keys are checked apart).
    pub key: String,
    /// What was called.
    pub call: CounterCall,
}

impl CounterOp {
    /// `call` on `key`.
    pub fn new(key: impl Into<String>, call: CounterCall) -> Self {
        Self {
            key: key.into(),
            call,
        }
    }
}

impl fmt::Debug for CounterOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.call {
            CounterCall::Inc(n) => write!(f, "inc({n})"),
            CounterCall::Get => write!(f, "get()"),
            CounterCall::Set(v) => write!(f, "set({v})"),
            CounterCall::IncIf(c, n) => write!(f, "inc_if({c:?}, {n})"),
            CounterCall::SetIf(c, n) => write!(f, "set_if({c:?}, {n})"),
        }?;
        write!(f, "@{}", self.key)
    }
}

/// What a counter operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterRet {
    /// One value (`inc`, `get`, `set`).
    Value(i64),
    /// `(new, old)` (`inc_if`, `set_if`).
    Pair(i64, i64),
}

/// The strict counter model; every key starts at 0.
///
/// ```
/// use distkit_testkit::history::*;
///
/// let history = History::new();
/// history.invoke(1, CounterOp::new("k", CounterCall::Inc(2))).ok(CounterRet::Value(2));
/// history.invoke(2, CounterOp::new("k", CounterCall::Get)).ok(CounterRet::Value(2));
/// check_linearizable(&CounterModel, &history.operations(), CheckOptions::default())
///     .assert_linearizable();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CounterModel;

impl Model for CounterModel {
    type State = i64;
    type Op = CounterOp;
    type Ret = CounterRet;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, op: &CounterOp, ret: Option<&CounterRet>) -> Option<i64> {
        let old = *state;
        let (new, answer) = match op.call {
            CounterCall::Inc(n) => match old.checked_add(n) {
                Some(new) => (new, CounterRet::Value(new)),
                // An overflowing increment fails and changes nothing.
                None => return if ret.is_none() { Some(old) } else { None },
            },
            CounterCall::Get => (old, CounterRet::Value(old)),
            CounterCall::Set(v) => (v, CounterRet::Value(v)),
            CounterCall::IncIf(cmp, n) => {
                let new = if cmp.matches(old) {
                    match old.checked_add(n) {
                        Some(new) => new,
                        None => return if ret.is_none() { Some(old) } else { None },
                    }
                } else {
                    old
                };
                (new, CounterRet::Pair(new, old))
            }
            CounterCall::SetIf(cmp, v) => {
                let new = if cmp.matches(old) { v } else { old };
                (new, CounterRet::Pair(new, old))
            }
        };
        match ret {
            None => Some(new),
            Some(expected) if *expected == answer => Some(new),
            Some(_) => None,
        }
    }

    fn partition(&self, op: &CounterOp) -> String {
        op.key.clone()
    }
}

impl LineCodec for CounterOp {
    fn encode(&self) -> String {
        let call = match self.call {
            CounterCall::Inc(n) => format!("inc {n}"),
            CounterCall::Get => "get".into(),
            CounterCall::Set(v) => format!("set {v}"),
            CounterCall::IncIf(c, n) => format!("inc_if {} {n}", c.encode()),
            CounterCall::SetIf(c, n) => format!("set_if {} {n}", c.encode()),
        };
        format!("{call} {}", self.key)
    }

    fn decode(text: &str) -> Option<Self> {
        let (name, rest) = text.split_once(' ')?;
        let number = |s: &str| s.parse::<i64>().ok();
        let (call, key) = match name {
            "get" => (CounterCall::Get, rest),
            "inc" | "set" => {
                let (n, key) = rest.split_once(' ')?;
                let n = number(n)?;
                let call = if name == "inc" {
                    CounterCall::Inc(n)
                } else {
                    CounterCall::Set(n)
                };
                (call, key)
            }
            "inc_if" | "set_if" => {
                let mut parts = rest.splitn(4, ' ');
                let cmp = parts.next()?;
                let operand = number(parts.next()?)?;
                let n = number(parts.next()?)?;
                let key = parts.next()?;
                let cmp = Comparison::decode(cmp, operand)?;
                let call = if name == "inc_if" {
                    CounterCall::IncIf(cmp, n)
                } else {
                    CounterCall::SetIf(cmp, n)
                };
                (call, key)
            }
            _ => return None,
        };
        Some(Self::new(key, call))
    }
}

impl LineCodec for CounterRet {
    fn encode(&self) -> String {
        match self {
            CounterRet::Value(v) => v.to_string(),
            CounterRet::Pair(new, old) => format!("{new} {old}"),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        match text.split_once(' ') {
            None => text.parse().ok().map(CounterRet::Value),
            Some((new, old)) => Some(CounterRet::Pair(new.parse().ok()?, old.parse().ok()?)),
        }
    }
}
