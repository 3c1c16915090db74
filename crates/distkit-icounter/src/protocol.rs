//! The wire protocol of `scripts/icounter/apply.lua`: keys, operations and
//! replies.

use std::sync::LazyLock;

use distkit_core::redis::Value;
use distkit_core::scripts::INT64_LIB;
use distkit_core::{CounterComparator, DistkitError, KeyLayout, LuaScript};

/// Entries of dead instances removed per call, and entries per
/// `clear_on_instance` page.
pub(crate) const CLEANUP_BUDGET: usize = 200;

pub(crate) static APPLY: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::with_libraries(
        "icounter.apply",
        &[INT64_LIB],
        include_str!("../scripts/apply.lua"),
    )
});

/// The source of `apply.lua`, as embedded (its library first), for tests and
/// benchmarks that check or call exactly what the crate sends.
#[doc(hidden)]
pub fn script_sources() -> [(&'static str, &'static str); 1] {
    [(APPLY.name(), APPLY.source())]
}

/// The six fixed keys of one prefix (one hash tag).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) all: [String; 6],
}

impl Keys {
    pub(crate) fn new(layout: &KeyLayout) -> Self {
        let names = ["instances", "dead", "meta", "data", "contrib", "flushes"];
        Self {
            all: names.map(|name| layout.key(&[name])),
        }
    }

    pub(crate) fn instances(&self) -> &str {
        &self.all[0]
    }

    pub(crate) fn flushes(&self) -> &str {
        &self.all[5]
    }
}

/// One operation of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Get,
    Inc,
    Set,
    SetOnInstance,
    Del,
    DelOnInstance,
    Clear,
    ClearOnInstance,
}

impl OpKind {
    fn code(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Inc => "inc",
            OpKind::Set => "set",
            OpKind::SetOnInstance => "seti",
            OpKind::Del => "del",
            OpKind::DelOnInstance => "deli",
            OpKind::Clear => "clear",
            OpKind::ClearOnInstance => "cleari",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            OpKind::Get => "icounter.get",
            OpKind::Inc => "icounter.inc",
            OpKind::Set => "icounter.set",
            OpKind::SetOnInstance => "icounter.set_on_instance",
            OpKind::Del => "icounter.del",
            OpKind::DelOnInstance => "icounter.del_on_instance",
            OpKind::Clear => "icounter.clear",
            OpKind::ClearOnInstance => "icounter.clear_on_instance",
        }
    }
}

/// An operation as sent: kind, user key (or cursor), value and comparator.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    pub(crate) key: String,
    pub(crate) value: i64,
    pub(crate) comparator: CounterComparator,
    pub(crate) cursor: String,
}

impl Op {
    pub(crate) fn new(kind: OpKind, key: &str, value: i64, comparator: CounterComparator) -> Self {
        Self {
            kind,
            key: key.to_owned(),
            value,
            comparator,
            cursor: String::new(),
        }
    }

    /// Pushes this op's 8 arguments; `pending`: the sequence and delta of an
    /// unconfirmed lax flush of this key.
    pub(crate) fn push_args(
        &self,
        call: &mut distkit_core::ScriptCall<'_>,
        local: (i64, u64),
        pending: Option<(u64, i64)>,
    ) {
        let (code, operand) = self.comparator.script_args();
        call.push_arg(self.kind.code()).push_arg(&self.key);
        if self.kind == OpKind::ClearOnInstance {
            call.push_arg(&self.cursor);
        } else {
            call.push_arg(self.value.to_string());
        }
        call.push_arg(code)
            .push_arg(operand)
            .push_arg(local.0.to_string())
            .push_arg(local.1.to_string());
        match pending {
            Some((sequence, delta)) => call.push_arg(format!("{sequence}:{delta}")),
            None => call.push_arg("0"),
        };
    }
}

/// Result of one key operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpStatus {
    Ok,
    NoMatch,
    Overflow,
}

#[derive(Debug, Clone)]
pub(crate) struct OpResult {
    pub(crate) status: OpStatus,
    pub(crate) cumulative: i64,
    pub(crate) slice: i64,
    pub(crate) epoch: u64,
    /// `clear_on_instance` only: the next page cursor ("" when done).
    pub(crate) cursor: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) rejoined: bool,
    pub(crate) seq: u64,
    pub(crate) results: Vec<OpResult>,
    /// For a flush, or a run whose ops carried a pending flush: the last lax
    /// flush sequence applied at the end of the run (its deltas are in the
    /// results); else 0.
    pub(crate) flushed: u64,
    /// The number of this instance's current membership: it changes when
    /// the instance rejoins after being declared dead.
    pub(crate) joined: u64,
}

fn text(op: &'static str, value: &Value) -> Result<String, DistkitError> {
    match value {
        Value::BulkString(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(DistkitError::unexpected_reply(
            op,
            format!("expected a string, got {other:?}"),
        )),
    }
}

fn int<T: std::str::FromStr>(op: &'static str, value: &Value) -> Result<T, DistkitError> {
    let s = text(op, value)?;
    s.parse()
        .map_err(|_| DistkitError::unexpected_reply(op, format!("not an integer: {s:?}")))
}

fn array<'a>(op: &'static str, value: &'a Value) -> Result<&'a [Value], DistkitError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(DistkitError::unexpected_reply(
            op,
            format!("expected an array, got {other:?}"),
        )),
    }
}

fn short(op: &'static str) -> DistkitError {
    DistkitError::unexpected_reply(op, "reply too short")
}

pub(crate) fn parse_reply(op: &'static str, value: &Value) -> Result<Reply, DistkitError> {
    let top = array(op, value)?;
    let [rejoined, seq, _duplicate, results, flushed, joined] = top else {
        return Err(short(op));
    };
    let mut parsed = Vec::new();
    for item in array(op, results)? {
        let fields = array(op, item)?;
        let status = match text(op, fields.first().ok_or_else(|| short(op))?)?.as_str() {
            "ok" => OpStatus::Ok,
            "nomatch" => OpStatus::NoMatch,
            "overflow" => OpStatus::Overflow,
            other => {
                return Err(DistkitError::unexpected_reply(
                    op,
                    format!("unknown status {other:?}"),
                ));
            }
        };
        let result = if let [_, cursor] = fields {
            OpResult {
                status,
                cumulative: 0,
                slice: 0,
                epoch: 0,
                cursor: text(op, cursor)?,
            }
        } else if let [_, cumulative, slice, epoch] = fields {
            OpResult {
                status,
                cumulative: int(op, cumulative)?,
                slice: int(op, slice)?,
                epoch: int(op, epoch)?,
                cursor: String::new(),
            }
        } else {
            return Err(short(op));
        };
        parsed.push(result);
    }
    Ok(Reply {
        rejoined: int::<i64>(op, rejoined)? == 1,
        seq: int(op, seq)?,
        results: parsed,
        flushed: int(op, flushed)?,
        joined: int(op, joined)?,
    })
}
