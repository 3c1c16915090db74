use std::time::Duration;

use distkit::counter::{CounterOptions, CounterTrait, LaxCounter, StrictCounter};
use distkit::{CounterComparator, DistkitRedisKey, RedisConnection};

pub async fn run(conn: &RedisConnection, run: &str) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== counters: strict and lax, one trait, one Redis hash per prefix");
    let prefix = DistkitRedisKey::try_from(format!("{run}_counters"))?;
    let options = CounterOptions::new(prefix, conn.clone());
    let orders = DistkitRedisKey::try_from("orders")?;
    let views = DistkitRedisKey::try_from("page_views")?;

    let strict = StrictCounter::new(options.clone());
    println!(
        "  strict inc orders by 3 -> {}",
        strict.inc(&orders, 3).await?
    );
    println!("  strict get orders      -> {}", strict.get(&orders).await?);
    let (new, old) = strict.inc_if(&orders, CounterComparator::Lt(3), 1).await?;
    println!("  strict inc_if orders < 3 -> (new {new}, old {old}): refused, unchanged");
    match strict
        .set(&orders, i64::MAX)
        .await
        .and(strict.inc(&orders, 1).await)
    {
        Err(error) => println!("  strict inc past i64::MAX -> {error}"),
        Ok(value) => println!("  unexpected: {value}"),
    }

    let lax = LaxCounter::new(options.clone().with_allowed_lag(Duration::from_millis(20)));
    for _ in 0..10_000 {
        lax.inc(&views, 1).await?;
    }
    println!(
        "  lax 10 000 x inc(page_views) in memory; lax get -> {}",
        lax.get(&views).await?
    );
    println!(
        "  stored before flush (strict get) -> {}",
        strict.get(&views).await?
    );
    lax.flush().await?;
    println!(
        "  stored after lax.flush()          -> {}",
        strict.get(&views).await?
    );
    let removed = lax.del(&views).await?;
    println!(
        "  lax del(page_views) -> removed {removed}; strict get -> {}",
        strict.get(&views).await?
    );
    lax.shutdown().await?;
    strict.clear().await?;
    Ok(())
}
