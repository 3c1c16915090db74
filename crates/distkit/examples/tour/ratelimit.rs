use std::time::Duration;

use distkit::RedisConnection;
use distkit::ratelimit::{
    DistkitRedisKey, HybridOptions, HybridRateLimiter, Rate, RateLimit, RedisOptions,
    RedisRateLimiter, Window,
};

pub async fn run(conn: &RedisConnection, run: &str) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== ratelimit: sliding windows in Redis (single node or cluster)");
    let namespace = DistkitRedisKey::try_from(format!("{run}_api"))?;
    // 0.5 requests per second over a 10 s window of 1 s buckets: 5 per window.
    let window = Window::new(Duration::from_secs(10), Duration::from_secs(1))?;
    let limit = RateLimit::new(Rate::per_second(0.5)?, window)?;
    let limiter = RedisRateLimiter::new(RedisOptions::new(namespace.clone(), conn.clone(), limit));
    let user = DistkitRedisKey::try_from("user_123")?;
    for request in 1..=6 {
        let decision = limiter.inc(&user, 1).await?;
        if decision.is_allowed() {
            println!(
                "request {request}: allowed, {} of {} left",
                decision.remaining(),
                decision.limit()
            );
        } else {
            let retry_after = decision.retry_after().unwrap_or_default();
            println!(
                "request {request}: rejected -> HTTP 429, Retry-After: {}s ({retry_after:?})",
                retry_after.as_secs_f64().ceil()
            );
        }
    }
    // A weighted call never crosses the limit.
    let report = DistkitRedisKey::try_from("report_job")?;
    let first = limiter.inc(&report, 4).await?;
    let second = limiter.inc(&report, 4).await?;
    println!(
        "weighted: cost 4 -> allowed={}, cost 4 again -> allowed={} (only {} left)",
        first.is_allowed(),
        second.is_allowed(),
        second.remaining()
    );

    // Hybrid: most decisions come from a slice leased from the same budget.
    let hybrid_limit = RateLimit::per_window(1000, window)?;
    let hybrid = HybridRateLimiter::new(HybridOptions::new(
        DistkitRedisKey::try_from(format!("{run}_hot"))?,
        conn.clone(),
        hybrid_limit,
        50,
    )?);
    let mut in_memory = 0;
    for _ in 0..200 {
        match hybrid.try_inc(&user, 1)? {
            Some(_) => in_memory += 1,
            None => {
                hybrid.inc(&user, 1).await?;
            }
        }
    }
    println!("hybrid: 200 calls, {in_memory} decided in memory from 50-unit leases");
    Ok(())
}
