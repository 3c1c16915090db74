//! The test kit tests itself: servers, cluster, restarts and the fault proxy.

use std::time::Duration;

use distkit_testkit::{FaultProxy, RedisServer, ServerOptions, shared_cluster, shared_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_server_answers() {
    let mut conn = shared_server().connection_manager().await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn cluster_routes_one_hash_tag_to_one_slot() {
    let cluster = shared_cluster();
    assert_eq!(cluster.nodes().len(), 3);
    let slot = cluster.key_slot("distkit:counter:{app}:values");
    assert_eq!(slot, cluster.key_slot("distkit:counter:{app}:other"));
    assert_eq!(slot, cluster.key_slot("app"));
    assert_ne!(cluster.key_slot("{a}"), cluster.key_slot("{b}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_runs_multi_key_commands_on_one_tag() {
    let mut conn = shared_cluster().connection().await;
    let prefix = distkit_testkit::unique_prefix("cluster_tag");
    let a = format!("{{{prefix}}}:a");
    let b = format!("{{{prefix}}}:b");
    let _: () = redis::cmd("MSET")
        .arg(&a)
        .arg(1)
        .arg(&b)
        .arg(2)
        .query_async(&mut conn)
        .await
        .unwrap();
    let values: Vec<i64> = redis::cmd("MGET")
        .arg(&a)
        .arg(&b)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(values, vec![1, 2]);
    // Keys of different tags are spread over the masters.
    let mut slots: Vec<u16> = (0..30)
        .map(|i| shared_cluster().key_slot(&format!("{{tag{i}}}")))
        .collect();
    slots.sort_unstable();
    assert!(slots.first() < Some(&5461) && slots.last() > Some(&10922));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_port_keeps_appendonly_data() {
    let server = RedisServer::start_with(ServerOptions::default().appendonly(true));
    let port = server.port();
    let mut conn = server.blocking_connection();
    let _: () = redis::cmd("SET")
        .arg("kept")
        .arg("yes")
        .query(&mut conn)
        .unwrap();
    server.kill();
    assert!(
        redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .is_err()
    );
    server.restart();
    assert_eq!(server.port(), port);
    let mut conn = server.blocking_connection();
    let kept: String = redis::cmd("GET").arg("kept").query(&mut conn).unwrap();
    assert_eq!(kept, "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_manager_reconnects_after_a_restart() {
    let server = RedisServer::start();
    let mut conn = server.connection_manager().await;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    server.restart();
    let mut recovered = false;
    for _ in 0..100 {
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        if pong.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recovered,
        "the connection manager reconnected to the restarted server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_cut_fails_open_connections_and_manager_recovers() {
    let proxy = FaultProxy::start(shared_server().port());
    let client = redis::Client::open(proxy.url()).unwrap();
    let mut conn = client.get_connection_manager().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");

    // A plain multiplexed connection dies with the cut and stays dead.
    let mut plain = client.get_multiplexed_async_connection().await.unwrap();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after_cut: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut plain).await;
    assert!(after_cut.is_err(), "an open connection fails after a cut");

    // The manager reconnects through the proxy.
    let mut recovered = false;
    for _ in 0..100 {
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        if pong.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recovered, "the connection manager recovered after the cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_refuses_then_accepts_new_connections() {
    let proxy = FaultProxy::start(shared_server().port());
    let client = redis::Client::open(proxy.url()).unwrap();
    proxy.set_refusing(true);
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "no connection while refusing"
    );
    proxy.heal();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_pause_holds_replies_until_resume() {
    let proxy = FaultProxy::start(shared_server().port());
    let client = redis::Client::open(proxy.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    proxy.pause();
    let held = tokio::time::timeout(
        Duration::from_millis(200),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await;
    assert!(held.is_err(), "no reply while paused");
    proxy.resume();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_delay_slows_every_reply() {
    let proxy = FaultProxy::start(shared_server().port());
    let client = redis::Client::open(proxy.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    proxy.set_delay(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "both directions delayed"
    );
}
