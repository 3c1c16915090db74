//! The locks through the `distkit` facade: single node and cluster.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use distkit::lock::{LockError, LockGuardState, LockOptions, Mutex, RwLock};
use distkit::{DistkitError, RedisConnection};
use distkit_tests::{cluster, prefix, single_node};

/// A connection that keeps its client, so waiters can subscribe.
async fn with_client(cluster_mode: bool) -> RedisConnection {
    if cluster_mode {
        let urls = distkit_testkit::shared_cluster().urls();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        RedisConnection::open_cluster(&urls).await.unwrap()
    } else {
        RedisConnection::open(&distkit_testkit::shared_server().url())
            .await
            .unwrap()
    }
}

async fn mutual_exclusion(cluster_mode: bool) {
    let key = prefix("facade_mutex");
    let holders = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mutex = Mutex::new(LockOptions::new(
            key.clone(),
            with_client(cluster_mode).await,
        ));
        let holders = holders.clone();
        let overlap = overlap.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..20 {
                let guard = mutex.lock().await.unwrap();
                assert!(guard.fencing_token() > last);
                last = guard.fencing_token();
                if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlap.store(true, Ordering::SeqCst);
                }
                tokio::task::yield_now().await;
                holders.fetch_sub(1, Ordering::SeqCst);
                assert_eq!(guard.release().await.unwrap(), LockGuardState::Released);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(!overlap.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_excludes_across_handles_single_node() {
    mutual_exclusion(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_excludes_across_handles_cluster() {
    mutual_exclusion(true).await;
}

async fn rwlock_roles(conn: RedisConnection) {
    let lock = RwLock::new(
        LockOptions::builder(prefix("facade_rw"), conn)
            .retry_interval(Duration::from_millis(20))
            .build()
            .unwrap(),
    );
    let a = lock.read().await.unwrap();
    let b = lock.try_read().await.unwrap();
    assert!(matches!(
        lock.try_write().await,
        Err(LockError::WouldBlock { .. })
    ));
    let error = lock
        .try_write_with_timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    let wide: DistkitError = error.into();
    assert!(matches!(wide, DistkitError::Lock(_)));
    a.release().await.unwrap();
    b.release().await.unwrap();
    let writer = lock.write().await.unwrap();
    assert!(matches!(
        lock.try_read_with_retries(1).await,
        Err(LockError::RetriesExhausted { attempts: 2, .. })
    ));
    assert_eq!(writer.release().await.unwrap(), LockGuardState::Released);
}

#[tokio::test]
async fn rwlock_readers_share_and_writers_exclude_single_node() {
    rwlock_roles(single_node().await).await;
}

#[tokio::test]
async fn rwlock_readers_share_and_writers_exclude_cluster() {
    rwlock_roles(cluster().await).await;
}

async fn hand_off(cluster_mode: bool) {
    let key = prefix("facade_hand_off");
    let mut tasks = Vec::new();
    let gaps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let released_at = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    for _ in 0..8 {
        let mutex = Mutex::new(
            LockOptions::builder(key.clone(), with_client(cluster_mode).await)
                .retry_interval(Duration::from_secs(1))
                .build()
                .unwrap(),
        );
        let gaps = gaps.clone();
        let released_at = released_at.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let guard = mutex.lock().await.unwrap();
                if let Some(at) = released_at.lock().unwrap().take() {
                    gaps.lock().unwrap().push(at.elapsed());
                }
                *released_at.lock().unwrap() = Some(std::time::Instant::now());
                guard.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let gaps = gaps.lock().unwrap();
    let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).unwrap();
    println!(
        "facade hand-off (cluster: {cluster_mode}): mean gap {mean:?} over {}",
        gaps.len()
    );
    assert!(mean < Duration::from_millis(250), "mean gap {mean:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_off_is_far_below_the_retry_interval_single_node() {
    hand_off(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_off_is_far_below_the_retry_interval_cluster() {
    hand_off(true).await;
}

#[tokio::test]
async fn invalid_options_are_rejected() {
    let conn = single_node().await;
    let error = LockOptions::builder(prefix("facade_invalid"), conn.clone())
        .ttl(Duration::from_millis(1))
        .build()
        .unwrap_err();
    assert!(matches!(error, LockError::InvalidTtl { .. }));
    let error = LockOptions::builder(prefix("facade_invalid"), conn)
        .owner_id("")
        .build()
        .unwrap_err();
    assert!(matches!(error, LockError::InvalidOwner { .. }));
}
