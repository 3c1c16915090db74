//! A connection from `RedisConnection::open_cluster` never sends a request
//! twice, yet follows the cluster when a slot moves: `MOVED` (slot moved
//! after the client learnt the map) and `ASK` (slot in the middle of a
//! migration) both reach the new owner, and each increment is applied once.
//! Each test moves slots of its own dedicated cluster.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use distkit_core::RedisConnection;
use distkit_testkit::{RedisCluster, RedisServer};

fn node_id(node: &RedisServer) -> String {
    let mut conn = node.blocking_connection();
    redis::cmd("CLUSTER").arg("MYID").query(&mut conn).unwrap()
}

fn owner_of(cluster: &RedisCluster, slot: u16) -> usize {
    let mut conn = cluster.nodes()[0].blocking_connection();
    let slots: Vec<(u16, u16, Vec<redis::Value>)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<redis::Value>>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|range| {
            let mut parts: Vec<redis::Value> = redis::from_redis_value(range).unwrap();
            let start: u16 = redis::from_redis_value(parts.remove(0)).unwrap();
            let end: u16 = redis::from_redis_value(parts.remove(0)).unwrap();
            (start, end, parts)
        })
        .collect();
    let (_, _, nodes) = slots
        .into_iter()
        .find(|(start, end, _)| (*start..=*end).contains(&slot))
        .expect("every slot is served");
    let master: Vec<redis::Value> = redis::from_redis_value(nodes[0].clone()).unwrap();
    let port: u16 = redis::from_redis_value(master[1].clone()).unwrap();
    cluster
        .nodes()
        .iter()
        .position(|node| node.port() == port)
        .expect("a node of this cluster")
}

fn setslot(node: &RedisServer, slot: u16, args: &[&str]) {
    let mut conn = node.blocking_connection();
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SETSLOT").arg(slot);
    for arg in args {
        cmd.arg(*arg);
    }
    let () = cmd.query(&mut conn).unwrap();
}

/// Marks `slot` migrating from `from` to `to` and moves `keys` across.
fn start_migration(cluster: &RedisCluster, slot: u16, from: usize, to: usize, keys: &[&str]) {
    let nodes = cluster.nodes();
    setslot(&nodes[to], slot, &["IMPORTING", &node_id(&nodes[from])]);
    setslot(&nodes[from], slot, &["MIGRATING", &node_id(&nodes[to])]);
    migrate_keys(cluster, from, to, keys);
}

/// Moves `keys` from node `from` to node `to` (`MIGRATE`).
fn migrate_keys(cluster: &RedisCluster, from: usize, to: usize, keys: &[&str]) {
    let nodes = cluster.nodes();
    let mut conn = nodes[from].blocking_connection();
    for key in keys {
        let _: redis::Value = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(nodes[to].port())
            .arg(*key)
            .arg(0)
            .arg(5000)
            .query(&mut conn)
            .unwrap();
    }
}

/// Ends the migration: every master learns that `to` owns `slot`. The old
/// owner must hold no key of the slot any more (Redis refuses otherwise,
/// unless gossip from the new owner happened to reach it first).
fn finish_migration(cluster: &RedisCluster, slot: u16, to: usize) {
    let owner = node_id(&cluster.nodes()[to]);
    for node in cluster.nodes() {
        setslot(node, slot, &["NODE", &owner]);
    }
}

async fn incr(conn: &mut RedisConnection, key: &str) -> redis::RedisResult<i64> {
    redis::cmd("INCR").arg(key).query_async(conn).await
}

#[tokio::test]
async fn moved_slots_are_followed_and_each_increment_applies_once() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut conn = RedisConnection::open_cluster(&seeds).await.unwrap();
    let key = "{moved}:n";
    let slot = cluster.key_slot(key);
    assert_eq!(incr(&mut conn, key).await.unwrap(), 1);

    // The slot moves behind the connection's back: its map is stale.
    let from = owner_of(&cluster, slot);
    let to = (from + 1) % cluster.nodes().len();
    start_migration(&cluster, slot, from, to, &[key]);
    finish_migration(&cluster, slot, to);
    assert_eq!(owner_of(&cluster, slot), to);

    assert_eq!(
        incr(&mut conn, key).await.unwrap(),
        2,
        "MOVED followed once"
    );
    assert_eq!(incr(&mut conn, key).await.unwrap(), 3);
    let mut pipe = redis::pipe();
    pipe.cmd("INCR").arg(key).cmd("GET").arg(key);
    let (after, read): (i64, i64) = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!((after, read), (4, 4), "pipelines follow the move too");
}

#[tokio::test]
async fn ask_redirects_reach_the_importing_node() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut conn = RedisConnection::open_cluster(&seeds).await.unwrap();
    let (moved, stays) = ("{ask}:moved", "{ask}:stays");
    let slot = cluster.key_slot(moved);
    assert_eq!(incr(&mut conn, moved).await.unwrap(), 1);
    assert_eq!(incr(&mut conn, stays).await.unwrap(), 1);

    // Half-way through a migration: `moved` is on the new node, `stays`
    // is still on the old one, which answers ASK for `moved`.
    let from = owner_of(&cluster, slot);
    let to = (from + 1) % cluster.nodes().len();
    start_migration(&cluster, slot, from, to, &[moved]);

    assert_eq!(
        incr(&mut conn, moved).await.unwrap(),
        2,
        "ASK followed once"
    );
    assert_eq!(incr(&mut conn, stays).await.unwrap(), 2);
    // The rest of the slot follows, then the migration ends.
    migrate_keys(&cluster, from, to, &[stays]);
    finish_migration(&cluster, slot, to);
    let mut check = cluster.nodes()[to].blocking_connection();
    let stored: (i64, i64) = redis::cmd("MGET")
        .arg(moved)
        .arg(stays)
        .query(&mut check)
        .unwrap();
    assert_eq!(stored, (2, 2));
}

#[tokio::test]
async fn a_user_cluster_connection_keeps_its_own_retry_policy() {
    let cluster = RedisCluster::start();
    let conn: RedisConnection = cluster.connection().await.into();
    assert!(conn.is_cluster());
    assert!(conn.client().is_none());
}
