//! A plain line format for histories, so histories recorded by several OS
//! processes can be written as they happen and merged afterwards.
//!
//! One event per line, fields separated by a tab (tabs, newlines and
//! backslashes inside a field are escaped as `\t`, `\n`, `\\`):
//!
//! ```text
//! i <process> <id> <invoked_ns> <op>
//! r <process> <id> <returned_ns> ok <ret>
//! r <process> <id> <returned_ns> unknown <why>
//! r <process> <id> <returned_ns> failed <why>
//! ```
//!
//! An invocation without a return line (its process was killed) becomes an
//! operation with an unknown outcome. A last line without its newline (torn
//! by a kill) is ignored. Times come from the history's
//! [`Clock`](super::Clock); histories of several processes are only
//! comparable on [`Clock::Wall`](super::Clock::Wall).

use std::collections::BTreeMap;
use std::fmt;

use super::record::{Operation, Outcome};

/// How an operation or a return value is written in one line field.
pub trait LineCodec: Sized {
    /// The text of `self` (may contain spaces; tabs and newlines are escaped
    /// by the caller).
    fn encode(&self) -> String;
    /// Parses what [`encode`](Self::encode) wrote.
    fn decode(text: &str) -> Option<Self>;
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "history line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for LineError {}

fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn encode_invoke(process: u64, id: u64, at_ns: u64, op: &str) -> String {
    format!("i\t{process}\t{id}\t{at_ns}\t{}\n", escape(op))
}

pub(crate) fn encode_return(
    process: u64,
    id: u64,
    at_ns: u64,
    status: &str,
    detail: &str,
) -> String {
    format!(
        "r\t{process}\t{id}\t{at_ns}\t{status}\t{}\n",
        escape(detail)
    )
}

/// Writes `operations` as lines (an invocation and a return line each).
pub fn to_lines<Op: LineCodec, Ret: LineCodec>(operations: &[Operation<Op, Ret>]) -> String {
    let mut out = String::new();
    for operation in operations {
        out.push_str(&encode_invoke(
            operation.process,
            operation.id,
            operation.invoked_ns,
            &operation.op.encode(),
        ));
        let Some(returned) = operation.returned_ns else {
            continue;
        };
        let (status, detail) = match &operation.outcome {
            Outcome::Ok(ret) => ("ok", ret.encode()),
            Outcome::Unknown(why) => ("unknown", why.clone()),
            Outcome::Failed(why) => ("failed", why.clone()),
        };
        out.push_str(&encode_return(
            operation.process,
            operation.id,
            returned,
            status,
            &detail,
        ));
    }
    out
}

struct Partial<Op, Ret> {
    invoked: Option<(u64, Op)>,
    returned: Option<(u64, Outcome<Ret>)>,
}

/// Reads the operations of one or more logs (concatenate the files of
/// several processes, or call this once per file and chain the results).
/// Operations are keyed by (process, id); give each process its own id.
pub fn from_lines<Op: LineCodec, Ret: LineCodec>(
    text: &str,
) -> Result<Vec<Operation<Op, Ret>>, LineError> {
    let mut partial: BTreeMap<(u64, u64), Partial<Op, Ret>> = BTreeMap::new();
    let complete_lines = match text.rfind('\n') {
        Some(end) => text.get(..=end).unwrap_or(""),
        None => "",
    };
    for (index, line) in complete_lines.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let error = |reason: &str| LineError {
            line: number,
            reason: format!("{reason}: {line:?}"),
        };
        let fields: Vec<&str> = line.split('\t').collect();
        let number_at = |i: usize| -> Result<u64, LineError> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| error("bad number"))
        };
        let kind = fields.first().copied().unwrap_or("");
        let process = number_at(1)?;
        let id = number_at(2)?;
        let at_ns = number_at(3)?;
        let entry = partial.entry((process, id)).or_insert(Partial {
            invoked: None,
            returned: None,
        });
        match kind {
            "i" => {
                let text = unescape(fields.get(4).ok_or_else(|| error("missing op"))?);
                let op = Op::decode(&text).ok_or_else(|| error("bad op"))?;
                entry.invoked = Some((at_ns, op));
            }
            "r" => {
                let status = fields.get(4).ok_or_else(|| error("missing status"))?;
                let detail = unescape(fields.get(5).copied().unwrap_or(""));
                let outcome = match *status {
                    "ok" => Outcome::Ok(Ret::decode(&detail).ok_or_else(|| error("bad return"))?),
                    "unknown" => Outcome::Unknown(detail),
                    "failed" => Outcome::Failed(detail),
                    _ => return Err(error("bad status")),
                };
                entry.returned = Some((at_ns, outcome));
            }
            _ => return Err(error("bad event kind")),
        }
    }
    let mut operations = Vec::with_capacity(partial.len());
    for ((process, id), entry) in partial {
        let Some((invoked_ns, op)) = entry.invoked else {
            return Err(LineError {
                line: 0,
                reason: format!("process {process} operation {id} returned but was never invoked"),
            });
        };
        let (returned_ns, outcome) = match entry.returned {
            Some((at, outcome)) => (Some(at), outcome),
            None => (None, Outcome::Unknown("no return recorded".into())),
        };
        operations.push(Operation {
            id,
            process,
            invoked_ns,
            returned_ns,
            op,
            outcome,
        });
    }
    Ok(operations)
}
