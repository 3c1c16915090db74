//! Tour stop: instance-aware counters. Two instances share a counter; one
//! goes silent and the survivor sees its slice vanish after the threshold.

use std::time::Duration;

use distkit::icounter::{
    InstanceAwareCounterTrait, StrictInstanceAwareCounter, StrictInstanceAwareCounterOptions,
};
use distkit::{DistkitRedisKey, RedisConnection};

pub async fn run(conn: &RedisConnection, run: &str) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== instance-aware counters");
    let prefix = DistkitRedisKey::try_from(format!("{run}_icounters"))?;
    let key = DistkitRedisKey::try_from("connections")?;
    // A short threshold so the tour does not wait 30 s.
    let options = |id: &str| -> Result<StrictInstanceAwareCounterOptions, distkit::DistkitError> {
        Ok(
            StrictInstanceAwareCounterOptions::new(prefix.clone(), conn.clone())
                .with_dead_instance_threshold_ms(1_000)
                .with_instance_id(DistkitRedisKey::try_from(id)?),
        )
    };
    let server_a = StrictInstanceAwareCounter::new(options("server-a")?);
    let server_b = StrictInstanceAwareCounter::new(options("server-b")?);

    let (total, mine) = server_a.inc(&key, 10).await?;
    println!("server-a holds 10 connections: cumulative {total}, its slice {mine}");
    let (total, mine) = server_b.inc(&key, 5).await?;
    println!("server-b holds 5 connections:  cumulative {total}, its slice {mine}");
    for instance in server_b.live_instances().await? {
        println!(
            "  live: {} (last heartbeat {} ms)",
            instance.instance_id, instance.last_heartbeat_ms
        );
    }

    println!("server-a goes silent (dropped: no more heartbeats)...");
    drop(server_a);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let (total, mine) = server_b.get(&key).await?;
    println!("after the 1 s threshold, server-b reads: cumulative {total}, its slice {mine}");

    let (total, _) = server_b.set(&key, 0).await?;
    println!("a global set bumps the epoch: cumulative {total}");
    Ok(())
}
