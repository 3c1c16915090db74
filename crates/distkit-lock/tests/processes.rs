//! Real OS processes contend for one lock: this test binary starts copies of
//! itself (running only `worker`) that append to one file inside the
//! critical section.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::time::Duration;

use distkit_lock::{DistkitRedisKey, LockOptions, Mutex, RedisConnection};
use distkit_testkit::{shared_cluster, shared_server, unique_prefix};

const WORKERS: usize = 4;
const ROUNDS: usize = 20;

/// The worker side: does nothing unless started by `run_processes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker() {
    let Ok(urls) = std::env::var("DISTKIT_LOCK_WORKER_URLS") else {
        return;
    };
    let key = DistkitRedisKey::try_from(std::env::var("DISTKIT_LOCK_WORKER_KEY").unwrap()).unwrap();
    let path = std::env::var("DISTKIT_LOCK_WORKER_FILE").unwrap();
    let urls: Vec<&str> = urls.split(',').collect();
    let conn = if urls.len() == 1 {
        RedisConnection::open(urls[0]).await.unwrap()
    } else {
        RedisConnection::open_cluster(&urls).await.unwrap()
    };
    let mutex = Mutex::new(LockOptions::new(key, conn));
    let pid = std::process::id();
    for _ in 0..ROUNDS {
        let guard = mutex.lock().await.unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(file, "enter {pid} {}", guard.fencing_token()).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        writeln!(file, "exit {pid}").unwrap();
        drop(file);
        guard.release().await.unwrap();
    }
}

fn run_processes(urls: &[String], name: &str) {
    let key = unique_prefix(name);
    let path = std::env::temp_dir().join(format!("{key}.log"));
    std::fs::write(&path, "").unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "worker", "--test-threads", "1"])
                .env("DISTKIT_LOCK_WORKER_URLS", urls.join(","))
                .env("DISTKIT_LOCK_WORKER_KEY", &key)
                .env("DISTKIT_LOCK_WORKER_FILE", &path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a worker failed");
    }
    let log = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2 * WORKERS * ROUNDS);
    let mut last_token = 0u64;
    let mut pids = std::collections::HashSet::new();
    for pair in lines.chunks(2) {
        let enter: Vec<&str> = pair[0].split(' ').collect();
        let exit: Vec<&str> = pair[1].split(' ').collect();
        assert_eq!(enter[0], "enter", "overlap: {pair:?}");
        assert_eq!(exit, ["exit", enter[1]], "overlap: {pair:?}");
        let token: u64 = enter[2].parse().unwrap();
        assert!(
            token > last_token,
            "fencing token went back: {token} after {last_token}"
        );
        last_token = token;
        pids.insert(enter[1].to_owned());
    }
    assert_eq!(pids.len(), WORKERS);
}

#[test]
fn four_processes_never_overlap_single_node() {
    run_processes(&[shared_server().url()], "processes");
}

#[test]
fn four_processes_never_overlap_cluster() {
    run_processes(&shared_cluster().urls(), "processes_cluster");
}
