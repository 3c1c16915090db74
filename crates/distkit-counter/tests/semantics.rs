//! Every method of `CounterTrait`, on both flavours, on a single node and on
//! a 3-master cluster: return values, comparators and failure cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Flavor, cluster, key, pair, prefix, single};
use distkit_counter::{
    CounterComparator::{self, *},
    CounterOptions, CounterTrait, DistkitError, RedisConnection,
};

each_counter!(
    inc_and_dec_return_the_new_value,
    set_is_absolute_and_exact_beyond_two_to_the_53,
    del_returns_the_removed_value,
    clear_removes_every_key_of_the_prefix_only,
    overflow_is_a_typed_error_and_changes_nothing,
    dec_by_i64_min_is_refused,
    conditional_writes_follow_every_comparator,
    batches_keep_order_and_apply_repeated_keys_in_order,
    batch_overflow_is_all_or_nothing,
    empty_batches_are_no_ops,
);

async fn inc_and_dec_return_the_new_value(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("inc_dec"), conn));
    let k = key("k");
    assert_eq!(on!(p.counter, get(&k)).unwrap(), 0);
    assert_eq!(on!(p.counter, inc(&k, 5)).unwrap(), 5);
    assert_eq!(on!(p.counter, inc(&k, -7)).unwrap(), -2);
    assert_eq!(on!(p.counter, dec(&k, 3)).unwrap(), -5);
    assert_eq!(on!(p.counter, dec(&k, -6)).unwrap(), 1);
    assert_eq!(on!(p.counter, get(&k)).unwrap(), 1);
    p.counter.settle().await;
    assert_eq!(p.audit.get(&k).await.unwrap(), 1);
}

async fn set_is_absolute_and_exact_beyond_two_to_the_53(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("set"), conn));
    let k = key("k");
    let big = (1i64 << 60) + 1;
    on!(p.counter, inc(&k, 3)).unwrap();
    assert_eq!(on!(p.counter, set(&k, big)).unwrap(), big);
    assert_eq!(on!(p.counter, get(&k)).unwrap(), big);
    assert_eq!(p.audit.get(&k).await.unwrap(), big);
    assert_eq!(on!(p.counter, inc(&k, 1)).unwrap(), big + 1);
    assert_eq!(on!(p.counter, set(&k, i64::MIN)).unwrap(), i64::MIN);
    assert_eq!(on!(p.counter, inc(&k, 1)).unwrap(), i64::MIN + 1);
    p.counter.settle().await;
    assert_eq!(p.audit.get(&k).await.unwrap(), i64::MIN + 1);
    let (new, old) = on!(p.counter, inc_if(&k, Eq(i64::MIN + 1), i64::MAX)).unwrap();
    assert_eq!((new, old), (0, i64::MIN + 1));
    assert_eq!(on!(p.counter, set_if(&k, Eq(0), big)).unwrap(), (big, 0));
    assert_eq!(
        on!(p.counter, inc_all(&[(&k, 2), (&k, 2)])).unwrap(),
        vec![(&k, big + 2), (&k, big + 4)]
    );
    assert_eq!(p.audit.get(&k).await.unwrap(), big + 4);
}

async fn del_returns_the_removed_value(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("del"), conn));
    let k = key("k");
    assert_eq!(on!(p.counter, del(&k)).unwrap(), 0);
    on!(p.counter, inc(&k, 4)).unwrap();
    on!(p.counter, inc(&k, 4)).unwrap();
    // Buffered increments are covered by the delete: they are not lost and
    // do not come back afterwards.
    assert_eq!(on!(p.counter, del(&k)).unwrap(), 8);
    assert_eq!(on!(p.counter, get(&k)).unwrap(), 0);
    p.counter.settle().await;
    assert_eq!(p.audit.get(&k).await.unwrap(), 0);
    assert_eq!(on!(p.counter, del(&k)).unwrap(), 0);
}

async fn clear_removes_every_key_of_the_prefix_only(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("clear"), conn.clone()));
    let other = pair(flavor, CounterOptions::new(prefix("clear_other"), conn));
    let (a, b) = (key("a"), key("b"));
    on!(p.counter, inc(&a, 1)).unwrap();
    on!(p.counter, set(&b, 2)).unwrap();
    on!(other.counter, inc(&a, 7)).unwrap();
    other.counter.settle().await;
    on!(p.counter, clear()).unwrap();
    assert_eq!(on!(p.counter, get(&a)).unwrap(), 0);
    assert_eq!(on!(p.counter, get(&b)).unwrap(), 0);
    p.counter.settle().await;
    assert_eq!(
        p.audit.get_all(&[&a, &b]).await.unwrap(),
        vec![(&a, 0), (&b, 0)]
    );
    assert_eq!(other.audit.get(&a).await.unwrap(), 7);
}

fn assert_overflow(result: Result<impl std::fmt::Debug, DistkitError>, operation: &str) {
    match result {
        Err(DistkitError::CounterOverflow { operation: op, .. }) => assert_eq!(op, operation),
        other => panic!("expected an overflow of {operation}, got {other:?}"),
    }
}

async fn overflow_is_a_typed_error_and_changes_nothing(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("overflow"), conn));
    let (hi, lo) = (key("hi"), key("lo"));
    on!(p.counter, set(&hi, i64::MAX)).unwrap();
    on!(p.counter, set(&lo, i64::MIN)).unwrap();
    assert_overflow(on!(p.counter, inc(&hi, 1)), "inc");
    assert_overflow(on!(p.counter, dec(&lo, 1)), "dec");
    assert_overflow(on!(p.counter, inc(&lo, -1)), "inc");
    assert_overflow(on!(p.counter, inc_if(&hi, Nil, 1)), "inc_if");
    assert_overflow(on!(p.counter, inc_all(&[(&hi, 1)])), "inc_all");
    assert_overflow(
        on!(p.counter, inc_all_if(&[(&lo, Lt(0), -1)])),
        "inc_all_if",
    );
    // A failed comparison never overflows: nothing is added.
    assert_eq!(
        on!(p.counter, inc_if(&hi, Lt(0), 1)).unwrap(),
        (i64::MAX, i64::MAX)
    );
    p.counter.settle().await;
    assert_eq!(on!(p.counter, get(&hi)).unwrap(), i64::MAX);
    assert_eq!(on!(p.counter, get(&lo)).unwrap(), i64::MIN);
    assert_eq!(p.audit.get(&hi).await.unwrap(), i64::MAX);
    assert_eq!(p.audit.get(&lo).await.unwrap(), i64::MIN);
}

async fn dec_by_i64_min_is_refused(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("dec_min"), conn));
    let k = key("k");
    on!(p.counter, set(&k, -1)).unwrap();
    let result = on!(p.counter, dec(&k, i64::MIN));
    assert!(
        matches!(
            result,
            Err(DistkitError::InvalidArgument { name: "count", .. })
        ),
        "{result:?}"
    );
    p.counter.settle().await;
    assert_eq!(p.audit.get(&k).await.unwrap(), -1);
}

async fn conditional_writes_follow_every_comparator(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("cmp"), conn));
    let k = key("k");
    on!(p.counter, set(&k, 10)).unwrap();
    let cases: [(CounterComparator, bool); 13] = [
        (Eq(10), true),
        (Eq(11), false),
        (Ne(10), false),
        (Ne(9), true),
        (Lt(11), true),
        (Lt(10), false),
        (Gt(9), true),
        (Gt(10), false),
        (Le(10), true),
        (Le(9), false),
        (Ge(10), true),
        (Ge(11), false),
        (Nil, true),
    ];
    for (comparator, holds) in cases {
        on!(p.counter, set(&k, 10)).unwrap();
        let expected = if holds { (15, 10) } else { (10, 10) };
        assert_eq!(
            on!(p.counter, inc_if(&k, comparator, 5)).unwrap(),
            expected,
            "inc_if {comparator}"
        );
        assert_eq!(p.audit.get(&k).await.unwrap(), expected.0);
        on!(p.counter, set(&k, 10)).unwrap();
        let expected = if holds { (-3, 10) } else { (10, 10) };
        assert_eq!(
            on!(p.counter, set_if(&k, comparator, -3)).unwrap(),
            expected,
            "set_if {comparator}"
        );
        assert_eq!(p.audit.get(&k).await.unwrap(), expected.0);
    }
    // A missing counter compares as 0.
    let missing = key("missing");
    assert_eq!(on!(p.counter, inc_if(&missing, Eq(0), 2)).unwrap(), (2, 0));
    let absent = key("absent");
    assert_eq!(on!(p.counter, set_if(&absent, Gt(0), 2)).unwrap(), (0, 0));
    // The comparison sees buffered increments.
    on!(p.counter, set(&k, 10)).unwrap();
    on!(p.counter, inc(&k, 1)).unwrap();
    assert_eq!(on!(p.counter, get(&k)).unwrap(), 11);
    assert_eq!(on!(p.counter, inc_if(&k, Eq(11), 1)).unwrap(), (12, 11));
}

async fn batches_keep_order_and_apply_repeated_keys_in_order(
    flavor: Flavor,
    conn: RedisConnection,
) {
    let p = pair(flavor, CounterOptions::new(prefix("batch"), conn));
    let (a, b, c) = (key("a"), key("b"), key("c"));
    on!(p.counter, set(&b, 5)).unwrap();
    assert_eq!(
        on!(p.counter, get_all(&[&c, &b, &a, &b])).unwrap(),
        vec![(&c, 0), (&b, 5), (&a, 0), (&b, 5)]
    );
    assert_eq!(
        on!(p.counter, inc_all(&[(&a, 1), (&b, 2), (&a, 3)])).unwrap(),
        vec![(&a, 1), (&b, 7), (&a, 4)]
    );
    assert_eq!(
        on!(p.counter, set_all(&[(&c, 9), (&a, 8), (&c, 10)])).unwrap(),
        vec![(&c, 9), (&a, 8), (&c, 10)]
    );
    assert_eq!(
        p.audit.get_all(&[&a, &b, &c]).await.unwrap(),
        vec![(&a, 8), (&b, 7), (&c, 10)]
    );
    assert_eq!(
        on!(
            p.counter,
            inc_all_if(&[
                (&a, Eq(8), 1),
                (&a, Eq(8), 1),
                (&b, Gt(0), -7),
                (&c, Nil, 0)
            ])
        )
        .unwrap(),
        vec![(&a, 9, 8), (&a, 9, 9), (&b, 0, 7), (&c, 10, 10)]
    );
    assert_eq!(
        on!(
            p.counter,
            set_all_if(&[
                (&a, Eq(9), 1),
                (&a, Eq(9), 2),
                (&a, Eq(1), 3),
                (&b, Lt(0), 4)
            ])
        )
        .unwrap(),
        vec![(&a, 1, 9), (&a, 1, 1), (&a, 3, 1), (&b, 0, 0)]
    );
    assert_eq!(
        on!(p.counter, get_all(&[&a, &b, &c])).unwrap(),
        vec![(&a, 3), (&b, 0), (&c, 10)]
    );
    p.counter.settle().await;
    assert_eq!(
        p.audit.get_all(&[&a, &b, &c]).await.unwrap(),
        vec![(&a, 3), (&b, 0), (&c, 10)]
    );
}

async fn batch_overflow_is_all_or_nothing(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("batch_overflow"), conn));
    let (a, b) = (key("a"), key("b"));
    on!(p.counter, set(&b, i64::MAX - 1)).unwrap();
    // The second update of `b` overflows: the first updates are not written.
    assert_overflow(
        on!(p.counter, inc_all(&[(&a, 1), (&b, 1), (&b, 1)])),
        "inc_all",
    );
    assert_overflow(
        on!(
            p.counter,
            inc_all_if(&[(&a, Nil, 1), (&b, Ge(0), 1), (&b, Ge(0), 1)])
        ),
        "inc_all_if",
    );
    assert_eq!(
        p.audit.get_all(&[&a, &b]).await.unwrap(),
        vec![(&a, 0), (&b, i64::MAX - 1)]
    );
    // Earlier updates are undone exactly, even by i64::MIN and i64::MAX.
    on!(p.counter, set(&a, 5)).unwrap();
    assert_overflow(
        on!(
            p.counter,
            inc_all(&[(&a, i64::MIN), (&a, i64::MAX), (&a, -3), (&b, 2)])
        ),
        "inc_all",
    );
    assert_eq!(p.audit.get(&a).await.unwrap(), 5);
    assert_eq!(on!(p.counter, get(&a)).unwrap(), 5);
    match on!(p.counter, inc_all(&[(&a, 1), (&b, 2)])) {
        Err(DistkitError::CounterOverflow { key, operand, .. }) => {
            assert_eq!((key.as_str(), operand), ("b", 2));
        }
        other => panic!("expected an overflow, got {other:?}"),
    }
}

async fn empty_batches_are_no_ops(flavor: Flavor, conn: RedisConnection) {
    let p = pair(flavor, CounterOptions::new(prefix("empty"), conn));
    assert!(on!(p.counter, get_all(&[])).unwrap().is_empty());
    assert!(on!(p.counter, inc_all(&[])).unwrap().is_empty());
    assert!(on!(p.counter, set_all(&[])).unwrap().is_empty());
    assert!(on!(p.counter, inc_all_if(&[])).unwrap().is_empty());
    assert!(on!(p.counter, set_all_if(&[])).unwrap().is_empty());
}
