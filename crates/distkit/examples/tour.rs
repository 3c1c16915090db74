//! A guided tour of distkit: one stop per primitive.
//!
//! Run it with `make demo`, or against any Redis with
//! `REDIS_URL=redis://127.0.0.1:6379/ cargo run -p distkit --example tour --features full`.

use distkit::{CounterComparator, DistkitRedisKey, RedisConnection};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:16379/".into());
    println!("distkit tour against {url}\n");
    let conn = RedisConnection::open(&url).await?;

    keys();
    comparators();
    let _ = conn;
    println!("\ntour complete");
    Ok(())
}

fn keys() {
    println!("== keys: every Redis key is built from validated segments");
    for candidate in ["page_views", "user:42", "two words", ""] {
        match DistkitRedisKey::try_from(candidate) {
            Ok(key) => println!("  {candidate:?} -> accepted as {key}"),
            Err(error) => println!("  {candidate:?} -> rejected: {error}"),
        }
    }
}

fn comparators() {
    println!("== comparators: conditions for conditional writes");
    for comparator in [CounterComparator::Lt(10), CounterComparator::Eq(3)] {
        println!("  5 {comparator}? {}", comparator.matches(5));
    }
}
