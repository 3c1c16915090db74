#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Lax flushes are applied at most once per sequence, even when a batch is
//! resent after its reply was lost; the vendored script files are the ones
//! Redis runs.

mod common;

use std::time::Duration;

use common::{vendored_script, vendored_source};

use distkit_icounter::{
    DistkitRedisKey, InstanceAwareCounterTrait, LaxInstanceAwareCounter,
    LaxInstanceAwareCounterOptions, RedisConnection, StrictInstanceAwareCounter,
    StrictInstanceAwareCounterOptions,
};

fn key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(name).unwrap()
}

fn prefix(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).unwrap()
}

#[test]
fn the_crate_sends_the_vendored_files() {
    let [(name, source)] = distkit_icounter::script_sources();
    assert_eq!(name, "icounter.apply");
    assert!(
        source == vendored_source(),
        "the embedded apply.lua differs from scripts/"
    );
}

async fn flush_call(conn: &mut RedisConnection, p: &DistkitRedisKey, seq: u64) -> redis::Value {
    let base = format!("distkit:icounter:{{{}}}", p.as_str());
    let inc = ["inc", "k", "5", "nil", "0", "0", "0", "0"];
    distkit_testkit::icounter::apply(&vendored_script(), &base, "vendor", seq, &[inc])
        .invoke_async(conn)
        .await
        .unwrap()
}

async fn same_sequence_applies_once(conn: RedisConnection) {
    let p = prefix("icf_seq");
    let mut raw = conn.clone();
    flush_call(&mut raw, &p, 1).await;
    let repeated = flush_call(&mut raw, &p, 1).await;
    let redis::Value::Array(parts) = repeated else {
        panic!("{repeated:?}")
    };
    assert_eq!(parts[2], redis::Value::Int(1), "reported as a duplicate");
    flush_call(&mut raw, &p, 2).await;
    // a Rust instance on the same keys sees the vendored writes
    let reader = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(p, conn));
    assert_eq!(reader.get(&key("k")).await.unwrap(), (10, 0));
}

#[tokio::test]
async fn same_sequence_applies_once_single_node() {
    same_sequence_applies_once(
        distkit_testkit::shared_server()
            .connection_manager()
            .await
            .into(),
    )
    .await;
}

#[tokio::test]
async fn same_sequence_applies_once_cluster() {
    same_sequence_applies_once(distkit_testkit::shared_cluster().connection().await.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_resent_after_a_lost_reply_applies_once() {
    let server = distkit_testkit::shared_server();
    let proxy = distkit_testkit::FaultProxy::start(server.port());
    let client = redis::Client::open(proxy.url()).unwrap();
    let conn: RedisConnection = client.get_connection_manager().await.unwrap().into();
    let p = prefix("icf_lost");
    let lax = LaxInstanceAwareCounter::new(
        LaxInstanceAwareCounterOptions::new(p.clone(), conn)
            .with_flush_interval(Duration::from_secs(3600)),
    );
    let k = key("k");
    lax.inc(&k, 0).await.unwrap();
    lax.flush().await.unwrap(); // learns its flush sequence
    lax.inc(&k, 5).await.unwrap();
    proxy.pause();
    // the flush is sent, held by the proxy, and abandoned before its reply
    let abandoned = tokio::time::timeout(Duration::from_millis(200), lax.flush()).await;
    assert!(abandoned.is_err());
    proxy.resume();
    let reader = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(
        p,
        server.connection_manager().await,
    ));
    // the held request lands once the proxy resumes
    let mut landed = false;
    for _ in 0..50 {
        if reader.get(&k).await.unwrap().0 == 5 {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(landed);
    // the resend carries the same sequence: not applied again
    lax.inc(&k, 1).await.unwrap();
    lax.flush().await.unwrap();
    assert_eq!(reader.get(&k).await.unwrap(), (6, 0));
    assert_eq!(lax.get(&k).await.unwrap(), (6, 6));
}

/// Network faults for one instance: on a single node through the fault
/// proxy; on a cluster, writes held with `CLIENT PAUSE ... WRITE` on the
/// shard of the prefix, and the instance cut off with its own ACL user.
enum Net {
    Single(distkit_testkit::FaultProxy),
    Cluster(distkit_testkit::AclCut),
}

impl Net {
    async fn single() -> Self {
        Net::Single(distkit_testkit::FaultProxy::start(
            distkit_testkit::shared_server().port(),
        ))
    }

    async fn cluster(user: &str) -> Self {
        Net::Cluster(distkit_testkit::AclCut::new(distkit_testkit::shared_cluster(), user).await)
    }

    /// The instance's connection (300 ms timeouts), through the fault.
    async fn instance_connection(&self) -> RedisConnection {
        let timeout = Duration::from_millis(300);
        match self {
            Net::Single(proxy) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeout))
                    .set_connection_timeout(Some(timeout));
                redis::Client::open(proxy.url())
                    .unwrap()
                    .get_connection_manager_with_config(config)
                    .await
                    .unwrap()
                    .into()
            }
            Net::Cluster(cut) => {
                let builder = cut
                    .client_builder(distkit_testkit::shared_cluster())
                    .response_timeout(timeout)
                    .connection_timeout(timeout);
                RedisConnection::open_cluster_with(builder).await.unwrap()
            }
        }
    }

    /// A connection that no fault touches.
    async fn direct(&self) -> RedisConnection {
        match self {
            Net::Single(_) => distkit_testkit::shared_server()
                .connection_manager()
                .await
                .into(),
            Net::Cluster(_) => distkit_testkit::shared_cluster().connection().await.into(),
        }
    }

    /// The node serving the prefix's keys (cluster only).
    async fn owner(p: &DistkitRedisKey) -> redis::aio::MultiplexedConnection {
        let cluster = distkit_testkit::shared_cluster();
        let node = cluster
            .owner_of(&format!("distkit:icounter:{{{}}}:meta", p.as_str()))
            .unwrap();
        node.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Requests are held before Redis runs them.
    async fn hold_writes(&self, p: &DistkitRedisKey) {
        match self {
            Net::Single(proxy) => proxy.pause(),
            Net::Cluster(_) => {
                let mut owner = Self::owner(p).await;
                let () = redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(10_000)
                    .arg("WRITE")
                    .query_async(&mut owner)
                    .await
                    .unwrap();
            }
        }
    }

    /// Held requests run (their callers gave up on them meanwhile).
    async fn release_writes(&self, p: &DistkitRedisKey) {
        match self {
            Net::Single(proxy) => proxy.resume(),
            Net::Cluster(_) => {
                let mut owner = Self::owner(p).await;
                let () = redis::cmd("CLIENT")
                    .arg("UNPAUSE")
                    .query_async(&mut owner)
                    .await
                    .unwrap();
            }
        }
    }

    async fn partition(&self) {
        match self {
            Net::Single(proxy) => proxy.partition(),
            Net::Cluster(cut) => cut.cut().await,
        }
    }

    async fn heal(&self) {
        match self {
            Net::Single(proxy) => proxy.heal(),
            Net::Cluster(cut) => cut.heal().await,
        }
    }
}

/// The hardest case for a lax instance: a flush lands but its reply is
/// lost, the instance is then cut off long enough to be declared dead, a
/// survivor's cleanup removes its entries (the per-call budget is 200: with
/// 250 keys only part of them; with 50 all of them, which also forgets the
/// instance's flush sequence), and then it comes back. Every key must end
/// up with the instance's whole slice, the lost-reply batch included,
/// counted once: on the cleaned keys the batch is restored with the rest of
/// the slice, on the others it is not applied again.
async fn lost_reply_then_cleanup_restores_every_delta_once(net: Net, keys_count: usize) {
    const THRESHOLD_MS: u64 = 1_000;
    let p = prefix("icf_lost_cleanup");
    let conn = net.instance_connection().await;
    let lax = LaxInstanceAwareCounter::new(
        LaxInstanceAwareCounterOptions::new(p.clone(), conn)
            .with_dead_instance_threshold_ms(THRESHOLD_MS)
            .with_flush_interval(Duration::from_secs(3600)),
    );
    // A prefix cleared once: epochs are no longer "0".
    lax.clear().await.unwrap();
    let keys: Vec<DistkitRedisKey> = (0..keys_count).map(|i| key(&format!("k{i}"))).collect();
    // Even keys get 1 first; odd keys are first written by the lost batch
    // (only read before it).
    for (i, k) in keys.iter().enumerate() {
        if i % 2 == 0 {
            lax.inc(k, 1).await.unwrap();
        } else {
            lax.get(k).await.unwrap();
        }
    }
    lax.flush().await.unwrap();
    for k in &keys {
        lax.inc(k, 10).await.unwrap();
    }
    let expected: Vec<i64> = (0..keys_count)
        .map(|i| if i % 2 == 0 { 11 } else { 10 })
        .collect();
    // The +10 batch is sent, held by the proxy, and its flush abandoned
    // before the reply: it stays in flight.
    net.hold_writes(&p).await;
    let abandoned = tokio::time::timeout(Duration::from_millis(200), lax.flush()).await;
    assert!(abandoned.is_err());
    net.release_writes(&p).await;
    let direct = || net.direct();
    let fresh_reader = |conn| {
        StrictInstanceAwareCounter::new(
            StrictInstanceAwareCounterOptions::new(p.clone(), conn)
                .with_dead_instance_threshold_ms(THRESHOLD_MS),
        )
    };
    let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
    let totals = |values: Vec<(&DistkitRedisKey, i64, i64)>| -> Vec<i64> {
        values.into_iter().map(|(_, total, _)| total).collect()
    };
    // The held request lands once the proxy resumes.
    let mut landed = false;
    for _ in 0..50 {
        let probe = fresh_reader(direct().await);
        if probe
            .get(&keys[0])
            .await
            .is_ok_and(|(total, _)| total == 11)
        {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(landed, "the +10 batch reached Redis");
    // Cut off for longer than the threshold.
    net.partition().await;
    tokio::time::sleep(Duration::from_millis(THRESHOLD_MS * 13 / 10)).await;
    // One call of a survivor declares it dead and removes up to 200 of its
    // entries; the survivor is then dropped, so nothing removes the rest.
    let survivor = fresh_reader(direct().await);
    let seen = totals(survivor.get_all(&refs).await.unwrap());
    drop(survivor);
    let cleaned = seen.iter().filter(|total| **total == 0).count();
    assert_eq!(cleaned, keys_count.min(200), "cleanup: {seen:?}");
    assert!(
        seen.iter()
            .zip(&expected)
            .all(|(total, expected)| *total == 0 || total == expected)
    );
    // Back: the in-flight batch is resent, the instance restores its slices.
    net.heal().await;
    let mut flushed = false;
    for _ in 0..50 {
        if lax.flush().await.is_ok() {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(flushed);
    lax.strict().heartbeat().await.unwrap();
    let reader = fresh_reader(direct().await);
    let after = totals(reader.get_all(&refs).await.unwrap());
    assert_eq!(after, expected, "every key holds the whole slice once");
    for (k, expected) in keys.iter().zip(&expected).take(4) {
        assert_eq!(lax.get(k).await.unwrap(), (*expected, *expected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_reply_then_partial_cleanup_restores_every_delta_once() {
    lost_reply_then_cleanup_restores_every_delta_once(Net::single().await, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_reply_then_full_cleanup_restores_every_delta_once() {
    lost_reply_then_cleanup_restores_every_delta_once(Net::single().await, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_reply_then_partial_cleanup_restores_every_delta_once_cluster() {
    let net = Net::cluster(&distkit_testkit::unique_prefix("icf-cut-partial")).await;
    lost_reply_then_cleanup_restores_every_delta_once(net, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_reply_then_full_cleanup_restores_every_delta_once_cluster() {
    let net = Net::cluster(&distkit_testkit::unique_prefix("icf-cut-full")).await;
    lost_reply_then_cleanup_restores_every_delta_once(net, 50).await;
}

#[tokio::test]
async fn generated_ids_are_unique_and_listed_with_heartbeats() {
    let p = prefix("icf_ids");
    let server = distkit_testkit::shared_server();
    let a = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(
        p.clone(),
        server.connection_manager().await,
    ));
    let b = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(
        p,
        server.connection_manager().await,
    ));
    assert_ne!(a.instance_id(), b.instance_id());
    b.heartbeat().await.unwrap();
    let live = a.live_instances().await.unwrap();
    assert_eq!(live.len(), 2);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // server time on the same machine: close to the local clock
    assert!(
        live.iter()
            .all(|i| i.last_heartbeat_ms.abs_diff(now_ms) < 5_000)
    );
}
