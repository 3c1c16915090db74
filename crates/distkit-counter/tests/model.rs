//! Property test: random sequences of operations give the same results on
//! the counters as on an in-memory model (a map of `i64`). Sequences come
//! from a small seeded generator, so a failure names the seed that
//! reproduces it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Counter, Flavor, cluster, key, pair, prefix, single};
use distkit_counter::{
    CounterComparator, CounterOptions, CounterTrait, DistkitError, DistkitRedisKey, RedisConnection,
};

const SEEDS: u64 = 12;
const STEPS: usize = 150;

/// xorshift64*: tiny, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Mostly small values, sometimes values at or near the i64 limits.
    fn value(&mut self) -> i64 {
        match self.below(10) {
            0 => i64::MAX - self.below(3) as i64,
            1 => i64::MIN + self.below(3) as i64,
            2 => (1i64 << 60) + self.below(5) as i64,
            _ => self.below(21) as i64 - 10,
        }
    }
    fn comparator(&mut self) -> CounterComparator {
        let operand = if self.below(4) == 0 {
            self.value()
        } else {
            self.below(7) as i64 - 3
        };
        match self.below(7) {
            0 => CounterComparator::Eq(operand),
            1 => CounterComparator::Ne(operand),
            2 => CounterComparator::Lt(operand),
            3 => CounterComparator::Gt(operand),
            4 => CounterComparator::Le(operand),
            5 => CounterComparator::Ge(operand),
            _ => CounterComparator::Nil,
        }
    }
}

/// What a call returned, comparable between model and counter.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Value(i64),
    Pair(i64, i64),
    Values(Vec<(String, i64)>),
    Triples(Vec<(String, i64, i64)>),
    Unit,
    Overflow,
    InvalidArgument,
}

fn outcome<T>(result: Result<T, DistkitError>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
    match result {
        Ok(value) => ok(value),
        Err(DistkitError::CounterOverflow { .. }) => Outcome::Overflow,
        Err(DistkitError::InvalidArgument { .. }) => Outcome::InvalidArgument,
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[derive(Default, Clone)]
struct Model(BTreeMap<String, i64>);

impl Model {
    fn get(&self, k: &DistkitRedisKey) -> i64 {
        self.0.get(k.as_str()).copied().unwrap_or(0)
    }
    fn put(&mut self, k: &DistkitRedisKey, v: i64) {
        self.0.insert(k.as_str().to_owned(), v);
    }
    fn inc(&mut self, k: &DistkitRedisKey, d: i64) -> Outcome {
        match self.get(k).checked_add(d) {
            Some(v) => {
                self.put(k, v);
                Outcome::Value(v)
            }
            None => Outcome::Overflow,
        }
    }
    fn cond(
        &mut self,
        k: &DistkitRedisKey,
        c: CounterComparator,
        n: i64,
        inc: bool,
    ) -> Option<(i64, i64)> {
        let old = self.get(k);
        if !c.matches(old) {
            return Some((old, old));
        }
        let new = if inc { old.checked_add(n)? } else { n };
        self.put(k, new);
        Some((new, old))
    }
    /// All or nothing, in order.
    fn cond_all(
        &mut self,
        updates: &[(&DistkitRedisKey, CounterComparator, i64)],
        inc: bool,
    ) -> Option<Vec<(String, i64, i64)>> {
        let mut copy = self.clone();
        let mut out = Vec::new();
        for (k, c, n) in updates {
            let (new, old) = copy.cond(k, *c, *n, inc)?;
            out.push((k.as_str().to_owned(), new, old));
        }
        *self = copy;
        Some(out)
    }
}

fn named(v: Vec<(&DistkitRedisKey, i64)>) -> Outcome {
    Outcome::Values(
        v.into_iter()
            .map(|(k, n)| (k.as_str().to_owned(), n))
            .collect(),
    )
}

fn named3(v: Vec<(&DistkitRedisKey, i64, i64)>) -> Outcome {
    Outcome::Triples(
        v.into_iter()
            .map(|(k, a, b)| (k.as_str().to_owned(), a, b))
            .collect(),
    )
}

async fn step(
    counter: &Counter,
    model: &mut Model,
    rng: &mut Rng,
    keys: &[DistkitRedisKey],
) -> (String, Outcome, Outcome) {
    let k = &keys[rng.below(keys.len() as u64) as usize];
    let batch_len = rng.below(4) as usize;
    let picks: Vec<&DistkitRedisKey> = (0..batch_len)
        .map(|_| &keys[rng.below(keys.len() as u64) as usize])
        .collect();
    match rng.below(14) {
        0..=2 => {
            let d = rng.value();
            (
                format!("inc({k}, {d})"),
                outcome(on!(counter, inc(k, d)), Outcome::Value),
                model.inc(k, d),
            )
        }
        3 => {
            let d = rng.value();
            let expected = match d.checked_neg() {
                None => Outcome::InvalidArgument,
                Some(neg) => model.inc(k, neg),
            };
            (
                format!("dec({k}, {d})"),
                outcome(on!(counter, dec(k, d)), Outcome::Value),
                expected,
            )
        }
        4 => (
            format!("get({k})"),
            outcome(on!(counter, get(k)), Outcome::Value),
            Outcome::Value(model.get(k)),
        ),
        5 => {
            let v = rng.value();
            model.put(k, v);
            (
                format!("set({k}, {v})"),
                outcome(on!(counter, set(k, v)), Outcome::Value),
                Outcome::Value(v),
            )
        }
        6 => {
            let old = model.get(k);
            model.0.remove(k.as_str());
            (
                format!("del({k})"),
                outcome(on!(counter, del(k)), Outcome::Value),
                Outcome::Value(old),
            )
        }
        7 if rng.below(4) == 0 => {
            model.0.clear();
            (
                "clear()".into(),
                outcome(on!(counter, clear()), |_| Outcome::Unit),
                Outcome::Unit,
            )
        }
        7 | 8 => {
            let (c, n) = (rng.comparator(), rng.value());
            let expected = match model.cond(k, c, n, true) {
                Some((new, old)) => Outcome::Pair(new, old),
                None => Outcome::Overflow,
            };
            (
                format!("inc_if({k}, {c}, {n})"),
                outcome(on!(counter, inc_if(k, c, n)), |(a, b)| Outcome::Pair(a, b)),
                expected,
            )
        }
        9 => {
            let (c, n) = (rng.comparator(), rng.value());
            let (new, old) = model.cond(k, c, n, false).unwrap();
            (
                format!("set_if({k}, {c}, {n})"),
                outcome(on!(counter, set_if(k, c, n)), |(a, b)| Outcome::Pair(a, b)),
                Outcome::Pair(new, old),
            )
        }
        10 => {
            let expected = Outcome::Values(
                picks
                    .iter()
                    .map(|k| (k.as_str().to_owned(), model.get(k)))
                    .collect(),
            );
            (
                format!("get_all({picks:?})"),
                outcome(on!(counter, get_all(&picks)), named),
                expected,
            )
        }
        11 => {
            let updates: Vec<(&DistkitRedisKey, i64)> =
                picks.iter().map(|k| (*k, rng.value())).collect();
            let conditional: Vec<_> = updates
                .iter()
                .map(|(k, n)| (*k, CounterComparator::Nil, *n))
                .collect();
            let expected = match model.cond_all(&conditional, true) {
                Some(v) => Outcome::Values(v.into_iter().map(|(k, new, _)| (k, new)).collect()),
                None => Outcome::Overflow,
            };
            (
                format!("inc_all({updates:?})"),
                outcome(on!(counter, inc_all(&updates)), named),
                expected,
            )
        }
        12 => {
            let updates: Vec<(&DistkitRedisKey, i64)> =
                picks.iter().map(|k| (*k, rng.value())).collect();
            for (k, v) in &updates {
                model.put(k, *v);
            }
            let expected = Outcome::Values(
                updates
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), *v))
                    .collect(),
            );
            (
                format!("set_all({updates:?})"),
                outcome(on!(counter, set_all(&updates)), named),
                expected,
            )
        }
        _ => {
            let updates: Vec<(&DistkitRedisKey, CounterComparator, i64)> = picks
                .iter()
                .map(|k| (*k, rng.comparator(), rng.value()))
                .collect();
            if rng.below(2) == 0 {
                let expected = match model.cond_all(&updates, true) {
                    Some(v) => Outcome::Triples(v),
                    None => Outcome::Overflow,
                };
                (
                    format!("inc_all_if({updates:?})"),
                    outcome(on!(counter, inc_all_if(&updates)), named3),
                    expected,
                )
            } else {
                let expected = Outcome::Triples(model.cond_all(&updates, false).unwrap());
                (
                    format!("set_all_if({updates:?})"),
                    outcome(on!(counter, set_all_if(&updates)), named3),
                    expected,
                )
            }
        }
    }
}

async fn counters_agree_with_the_model(flavor: Flavor, conn: RedisConnection) {
    for seed in 1..=SEEDS {
        let options = CounterOptions::new(prefix("model"), conn.clone())
            .with_allowed_lag(Duration::from_millis(3));
        let p = pair(flavor, options);
        let keys: Vec<DistkitRedisKey> = ["a", "b", "c"].into_iter().map(key).collect();
        let mut model = Model::default();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut history = Vec::new();
        for _ in 0..STEPS {
            let (call, actual, expected) = step(&p.counter, &mut model, &mut rng, &keys).await;
            history.push(call);
            assert_eq!(
                actual,
                expected,
                "{flavor:?} seed {seed} diverged; calls so far:\n{}",
                history.join("\n")
            );
        }
        p.counter.settle().await;
        for k in &keys {
            assert_eq!(
                p.audit.get(k).await.unwrap(),
                model.get(k),
                "{flavor:?} seed {seed}: stored {k}"
            );
        }
    }
}

each_counter!(counters_agree_with_the_model);
