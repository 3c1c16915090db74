//! Comparisons for conditional counter writes.

use std::fmt;

/// A condition on a counter's current value, for conditional writes such as
/// `inc_if` and `set_if`.
///
/// Each comparison reads as `current <op> operand`; [`Nil`](Self::Nil) always
/// holds. Comparisons are exact over the whole `i64` range, in Rust
/// ([`matches`](Self::matches)) and in the Lua scripts alike.
///
/// ```
/// use distkit_core::CounterComparator;
///
/// assert!(CounterComparator::Lt(10).matches(9));
/// assert!(!CounterComparator::Lt(10).matches(10));
/// assert!(CounterComparator::Nil.matches(i64::MIN));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterComparator {
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
    /// Always true: the write is unconditional.
    Nil,
}

impl CounterComparator {
    /// Whether `current` satisfies this comparison.
    ///
    /// ```
    /// use distkit_core::CounterComparator;
    /// assert!(CounterComparator::Ge(i64::MAX).matches(i64::MAX));
    /// assert!(CounterComparator::Ne(0).matches(-1));
    /// ```
    pub fn matches(&self, current: i64) -> bool {
        match *self {
            CounterComparator::Eq(operand) => current == operand,
            CounterComparator::Ne(operand) => current != operand,
            CounterComparator::Lt(operand) => current < operand,
            CounterComparator::Gt(operand) => current > operand,
            CounterComparator::Le(operand) => current <= operand,
            CounterComparator::Ge(operand) => current >= operand,
            CounterComparator::Nil => true,
        }
    }

    /// The operator code the Lua scripts understand: `eq`, `ne`, `lt`, `gt`,
    /// `le`, `ge` or `nil` (see `scripts/lib/int64.lua`).
    ///
    /// ```
    /// use distkit_core::CounterComparator;
    /// assert_eq!(CounterComparator::Le(3).script_code(), "le");
    /// assert_eq!(CounterComparator::Nil.script_code(), "nil");
    /// ```
    pub fn script_code(&self) -> &'static str {
        match self {
            CounterComparator::Eq(_) => "eq",
            CounterComparator::Ne(_) => "ne",
            CounterComparator::Lt(_) => "lt",
            CounterComparator::Gt(_) => "gt",
            CounterComparator::Le(_) => "le",
            CounterComparator::Ge(_) => "ge",
            CounterComparator::Nil => "nil",
        }
    }

    /// The operand, or `None` for [`Nil`](Self::Nil).
    ///
    /// ```
    /// use distkit_core::CounterComparator;
    /// assert_eq!(CounterComparator::Gt(5).operand(), Some(5));
    /// assert_eq!(CounterComparator::Nil.operand(), None);
    /// ```
    pub fn operand(&self) -> Option<i64> {
        match *self {
            CounterComparator::Eq(operand)
            | CounterComparator::Ne(operand)
            | CounterComparator::Lt(operand)
            | CounterComparator::Gt(operand)
            | CounterComparator::Le(operand)
            | CounterComparator::Ge(operand) => Some(operand),
            CounterComparator::Nil => None,
        }
    }

    /// The two script arguments encoding this comparison: the operator code
    /// and the operand as a decimal string (`"0"` for `Nil`). Passing the
    /// operand as a string keeps it exact: Lua numbers are doubles.
    ///
    /// ```
    /// use distkit_core::CounterComparator;
    /// assert_eq!(
    ///     CounterComparator::Eq(i64::MIN).script_args(),
    ///     ("eq", "-9223372036854775808".to_string())
    /// );
    /// ```
    pub fn script_args(&self) -> (&'static str, String) {
        (self.script_code(), self.operand().unwrap_or(0).to_string())
    }
}

impl fmt::Display for CounterComparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CounterComparator::Eq(operand) => write!(f, "== {operand}"),
            CounterComparator::Ne(operand) => write!(f, "!= {operand}"),
            CounterComparator::Lt(operand) => write!(f, "< {operand}"),
            CounterComparator::Gt(operand) => write!(f, "> {operand}"),
            CounterComparator::Le(operand) => write!(f, "<= {operand}"),
            CounterComparator::Ge(operand) => write!(f, ">= {operand}"),
            CounterComparator::Nil => write!(f, "always"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CounterComparator::{self, *};

    const SAMPLES: [i64; 9] = [
        i64::MIN,
        i64::MIN + 1,
        -2,
        -1,
        0,
        1,
        2,
        i64::MAX - 1,
        i64::MAX,
    ];

    fn expected(comparator: CounterComparator, current: i64) -> bool {
        match comparator {
            Eq(o) => current.cmp(&o).is_eq(),
            Ne(o) => current.cmp(&o).is_ne(),
            Lt(o) => current.cmp(&o).is_lt(),
            Gt(o) => current.cmp(&o).is_gt(),
            Le(o) => current.cmp(&o).is_le(),
            Ge(o) => current.cmp(&o).is_ge(),
            Nil => true,
        }
    }

    #[test]
    fn every_variant_agrees_with_ordering_on_boundaries() {
        for operand in SAMPLES {
            for comparator in [
                Eq(operand),
                Ne(operand),
                Lt(operand),
                Gt(operand),
                Le(operand),
                Ge(operand),
                Nil,
            ] {
                for current in SAMPLES {
                    assert_eq!(
                        comparator.matches(current),
                        expected(comparator, current),
                        "{current} {comparator}"
                    );
                }
            }
        }
    }

    #[test]
    fn boundaries_are_strict_or_inclusive_as_named() {
        assert!(!Lt(0).matches(0) && Lt(0).matches(-1));
        assert!(!Gt(0).matches(0) && Gt(0).matches(1));
        assert!(Le(0).matches(0) && !Le(0).matches(1));
        assert!(Ge(0).matches(0) && !Ge(0).matches(-1));
        assert!(Gt(i64::MIN).matches(i64::MIN + 1) && !Gt(i64::MAX).matches(i64::MAX));
        assert!(Lt(i64::MAX).matches(i64::MAX - 1) && !Lt(i64::MIN).matches(i64::MIN));
    }

    #[test]
    fn script_encoding_is_exact() {
        assert_eq!(
            Eq(i64::MAX).script_args(),
            ("eq", "9223372036854775807".into())
        );
        assert_eq!(Ne(-1).script_args(), ("ne", "-1".into()));
        assert_eq!(Lt(1).script_args().0, "lt");
        assert_eq!(Gt(1).script_args().0, "gt");
        assert_eq!(Le(1).script_args().0, "le");
        assert_eq!(Ge(1).script_args().0, "ge");
        assert_eq!(Nil.script_args(), ("nil", "0".into()));
    }
}
