//! A guided tour of distkit: one stop per primitive.
//!
//! Run it with `make demo`, or against any Redis with
//! `REDIS_URL=redis://127.0.0.1:6379/ cargo run -p distkit --example tour --features full`.

mod counters;
mod foundations;
mod icounters;
mod locks;
mod ratelimit;

use distkit::RedisConnection;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:16379/".into());
    println!("distkit tour against {url}");
    let conn = RedisConnection::open(&url).await?;
    // Every run uses fresh key prefixes, so tours never see each other's data.
    let run = format!("tour_{}", std::process::id());

    foundations::run();
    counters::run(&conn, &run).await?;
    icounters::run(&conn, &run).await?;
    locks::run(&conn, &run).await?;
    ratelimit::run(&conn, &run).await?;
    println!("\ntour complete");
    Ok(())
}
