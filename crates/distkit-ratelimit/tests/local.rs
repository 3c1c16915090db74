//! The local provider and the configuration types, on a manual clock: every
//! window test runs instantly and deterministically.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use distkit_ratelimit::{
    DistkitError, LocalOptions, LocalRateLimiter, ManualClock, Rate, RateLimit, RateLimitError,
    Strategy, Window,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Capacity 10 per 1 s window of 10 buckets of 100 ms, on a manual clock.
fn limiter(capacity: u64) -> (LocalRateLimiter<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let limit = RateLimit::per_window(capacity, Window::new(ms(1000), ms(100)).unwrap()).unwrap();
    (
        LocalRateLimiter::with_clock(LocalOptions::new(limit), clock.clone()),
        clock,
    )
}

#[test]
fn admits_up_to_the_limit_then_rejects_with_an_exact_retry_after() {
    let (limiter, clock) = limiter(10);
    for _ in 0..4 {
        assert!(limiter.inc("k", 1).unwrap().is_allowed());
    }
    clock.advance(ms(300));
    let last = limiter.inc("k", 6).unwrap();
    assert!(last.is_allowed());
    assert_eq!(last.remaining(), 0);
    assert_eq!(last.limit(), 10);
    clock.advance(ms(200)); // t = 500
    let refused = limiter.inc("k", 1).unwrap();
    assert!(refused.is_rejected());
    // One unit frees when bucket 0 (4 units) leaves the window at t = 1000.
    assert_eq!(refused.retry_after(), Some(ms(500)));
    // Everything has left once bucket 3 leaves at t = 1300.
    assert_eq!(refused.reset_after(), ms(800));
    // A cost of 5 needs bucket 3 gone too.
    assert_eq!(limiter.inc("k", 5).unwrap().retry_after(), Some(ms(800)));
    clock.advance(ms(500)); // t = 1000: exactly when retry_after said
    assert!(limiter.inc("k", 4).unwrap().is_allowed());
    assert!(limiter.inc("k", 1).unwrap().is_rejected());
}

#[test]
fn a_weighted_call_never_crosses_the_limit() {
    let (limiter, _clock) = limiter(10);
    assert!(limiter.inc("k", 9).unwrap().is_allowed());
    let second = limiter.inc("k", 9).unwrap();
    assert!(second.is_rejected());
    assert_eq!(second.remaining(), 1);
    assert!(limiter.inc("k", 1).unwrap().is_allowed());
    assert!(limiter.inc("k", 1).unwrap().is_rejected());
}

#[test]
fn usage_slides_out_bucket_by_bucket() {
    let (limiter, clock) = limiter(10);
    assert!(limiter.inc("k", 5).unwrap().is_allowed()); // bucket 0
    clock.advance(ms(550));
    assert!(limiter.inc("k", 5).unwrap().is_allowed()); // bucket 5
    clock.advance(ms(449)); // t = 999: bucket 0 still live
    assert!(limiter.inc("k", 1).unwrap().is_rejected());
    clock.advance(ms(1)); // t = 1000: bucket 0 left
    for _ in 0..5 {
        assert!(limiter.inc("k", 1).unwrap().is_allowed());
    }
    assert!(limiter.inc("k", 1).unwrap().is_rejected());
    clock.advance(ms(500)); // t = 1500: bucket 5 left
    assert_eq!(limiter.inc("k", 5).unwrap().remaining(), 0);
}

#[test]
fn keys_are_independent() {
    let (limiter, _clock) = limiter(1);
    assert!(limiter.inc("a", 1).unwrap().is_allowed());
    assert!(limiter.inc("b", 1).unwrap().is_allowed());
    assert!(limiter.inc("a", 1).unwrap().is_rejected());
}

#[test]
fn fractional_rates_are_not_rounded_down() {
    let half = Rate::per_second(0.5).unwrap();
    let two_seconds = Window::new(ms(2000), ms(200)).unwrap();
    let limit = RateLimit::new(half, two_seconds).unwrap();
    assert_eq!(limit.capacity(), 1);
    let clock = ManualClock::new();
    let limiter = LocalRateLimiter::with_clock(LocalOptions::new(limit), clock.clone());
    assert!(limiter.inc("k", 1).unwrap().is_allowed());
    let refused = limiter.inc("k", 1).unwrap();
    assert_eq!(refused.retry_after(), Some(ms(2000)));
    clock.advance(ms(2000));
    assert!(limiter.inc("k", 1).unwrap().is_allowed());

    // 0.29/s over 100 s is 29 in exact arithmetic; f64 gives 28.999999999999996.
    let window = Window::new(Duration::from_secs(100), Duration::from_secs(1)).unwrap();
    let limit = RateLimit::new(Rate::per_second(0.29).unwrap(), window).unwrap();
    assert_eq!(limit.capacity(), 29);
    // 2.5/s over 1 s: a third unit would exceed 2.5.
    let window = Window::new(ms(1000), ms(100)).unwrap();
    let limit = RateLimit::new(Rate::per_second(2.5).unwrap(), window).unwrap();
    assert_eq!(limit.capacity(), 2);
    // Rate::new carries the period: 1 per 2 s is 0.5/s.
    assert_eq!(
        Rate::new(1.0, Duration::from_secs(2))
            .unwrap()
            .as_per_second(),
        0.5
    );
}

#[test]
fn a_capacity_below_one_unit_is_an_error_not_a_limiter_that_never_admits() {
    let one_second = Window::new(ms(1000), ms(100)).unwrap();
    let error = RateLimit::new(Rate::per_second(0.5).unwrap(), one_second).unwrap_err();
    assert!(matches!(error, RateLimitError::CapacityBelowOne { .. }));
}

#[test]
fn bad_input_is_a_typed_error() {
    for amount in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(
            matches!(
                Rate::per_second(amount),
                Err(RateLimitError::InvalidRate { .. })
            ),
            "{amount}"
        );
    }
    assert!(matches!(
        Rate::new(1.0, Duration::ZERO),
        Err(RateLimitError::InvalidRate { .. })
    ));
    assert!(matches!(
        Window::new(ms(100), ms(200)),
        Err(RateLimitError::WindowSmallerThanBucket { .. })
    ));
    assert!(matches!(
        Window::new(ms(1000), ms(300)),
        Err(RateLimitError::WindowNotMultipleOfBucket { .. })
    ));
    assert!(matches!(
        Window::new(ms(0), ms(0)),
        Err(RateLimitError::InvalidDuration { .. })
    ));
    assert!(matches!(
        Window::new(Duration::from_secs(100), ms(1)),
        Err(RateLimitError::TooManyBuckets { .. })
    ));
    assert!(matches!(
        Strategy::suppressed(0.9),
        Err(RateLimitError::InvalidHardLimitFactor(_))
    ));
    let (limiter, _clock) = limiter(10);
    assert_eq!(limiter.inc("k", 0), Err(RateLimitError::ZeroCost));
    assert_eq!(
        limiter.inc("k", 11),
        Err(RateLimitError::CostExceedsCapacity {
            cost: 11,
            capacity: 10
        })
    );
    // Nothing was recorded by the refused inputs.
    assert_eq!(limiter.inc("k", 10).unwrap().remaining(), 0);
    let error: DistkitError = RateLimitError::ZeroCost.into();
    match error {
        DistkitError::RateLimit(inner) => {
            assert_eq!(
                inner.downcast_ref::<RateLimitError>(),
                Some(&RateLimitError::ZeroCost)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn idle_keys_are_evicted() {
    let (limiter, clock) = limiter(10);
    limiter.inc("a", 1).unwrap();
    clock.advance(ms(500));
    limiter.inc("b", 1).unwrap();
    clock.advance(ms(500)); // t = 1000: "a" has left its window, "b" has not
    assert_eq!(limiter.evict_idle(), 1);
    assert_eq!(limiter.tracked_keys(), 1);
    clock.advance(ms(500));
    assert_eq!(limiter.evict_idle(), 1);
    assert_eq!(limiter.tracked_keys(), 0);
}

#[test]
fn a_flood_of_distinct_keys_stays_bounded() {
    let clock = ManualClock::new();
    let limit = RateLimit::per_window(10, Window::new(ms(60_000), ms(1000)).unwrap()).unwrap();
    let limiter =
        LocalRateLimiter::with_clock(LocalOptions::new(limit).max_keys(1000), clock.clone());
    for i in 0..50_000u64 {
        if i % 100 == 0 {
            clock.advance(ms(1));
        }
        assert!(limiter.inc(&format!("flood-{i}"), 1).unwrap().is_allowed());
        assert!(limiter.tracked_keys() <= 1000);
    }
    // The most recent keys keep their usage.
    assert!(limiter.inc("flood-49999", 10).unwrap().is_rejected());
}

#[test]
fn concurrent_callers_never_exceed_the_capacity() {
    let (limiter, _clock) = limiter(100);
    let admitted: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                scope.spawn(move || {
                    (0..1000)
                        .filter(|_| limiter.inc("hot", 1).unwrap().is_allowed())
                        .count() as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 100);
}

/// Offered load rises through the window: the suppression factor rises with
/// it, and the admitted count of the suppressed calls matches the sum of
/// their admission probabilities within 4 standard deviations.
#[test]
fn suppression_factor_rises_with_load_and_predicts_the_admitted_fraction() {
    let clock = ManualClock::new();
    let limit = RateLimit::per_window(100, Window::new(ms(10_000), ms(100)).unwrap()).unwrap();
    let options = LocalOptions::new(limit)
        .strategy(Strategy::suppressed(10.0).unwrap())
        .seed(7);
    let limiter = LocalRateLimiter::with_clock(options, clock.clone());
    let mut previous_factor = 0.0;
    let mut expected = 0.0;
    let mut variance = 0.0;
    let mut admitted_suppressed = 0.0;
    let mut admitted_total = 0;
    for _ in 0..2000 {
        let decision = limiter.inc("k", 1).unwrap();
        let factor = decision.suppression_factor().unwrap();
        assert!(factor >= previous_factor, "{factor} < {previous_factor}");
        previous_factor = factor;
        if decision.is_allowed() {
            admitted_total += 1;
        }
        if factor > 0.0 && factor < 1.0 {
            let p = 1.0 - factor;
            expected += p;
            variance += p * (1.0 - p);
            if decision.is_allowed() {
                admitted_suppressed += 1.0;
            }
        }
        clock.advance(ms(2)); // 2000 calls over 4 s of a 10 s window
    }
    // After 2000 calls against a capacity of 100: factor = 1 - 100/2000.
    assert!((previous_factor - 0.95).abs() < 1e-3, "{previous_factor}");
    let sigma = variance.sqrt();
    assert!(
        (admitted_suppressed - expected).abs() <= 4.0 * sigma + 1.0,
        "admitted {admitted_suppressed}, expected {expected} ± {sigma}"
    );
    // capacity × (1 + ln(2000 / 100)) ≈ 400 are admitted in all.
    assert!((300..=500).contains(&admitted_total), "{admitted_total}");
}

#[test]
fn suppressed_refuses_everything_past_the_hard_limit() {
    let clock = ManualClock::new();
    let limit = RateLimit::per_window(10, Window::new(ms(1000), ms(100)).unwrap()).unwrap();
    let options = LocalOptions::new(limit)
        .strategy(Strategy::suppressed(1.5).unwrap())
        .seed(1);
    let limiter = LocalRateLimiter::with_clock(options, clock);
    let admitted = (0..1000)
        .filter(|_| limiter.inc("k", 1).unwrap().is_allowed())
        .count();
    assert!((10..=15).contains(&admitted), "{admitted}");
    let last = limiter.inc("k", 1).unwrap();
    assert_eq!(last.suppression_factor(), Some(1.0));
    assert!(last.retry_after().is_some());
}
