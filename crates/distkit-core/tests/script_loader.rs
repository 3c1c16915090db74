//! The script loader against a real Redis: single node and a 3-master cluster.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::LazyLock;

use distkit_core::{LuaScript, RedisConnection, scripts::INT64_LIB};
use distkit_testkit::{shared_cluster, shared_server, unique_prefix};

async fn single() -> RedisConnection {
    shared_server().connection_manager().await.into()
}

async fn cluster() -> RedisConnection {
    shared_cluster().connection().await.into()
}

/// A script no other test loads, so its first call really is a first call.
fn fresh_script(name: &str) -> LuaScript {
    let body = format!(
        "-- {}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])",
        unique_prefix(name)
    );
    LuaScript::new("test/incrby", &body)
}

async fn script_exists(conn: &mut RedisConnection, script: &LuaScript) -> bool {
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(script.hash())
        .query_async(conn)
        .await
        .unwrap();
    exists == vec![true]
}

async fn first_call_loads_the_script(mut conn: RedisConnection) {
    let script = fresh_script("first_call");
    let key = format!("{{{}}}:n", unique_prefix("first_call"));
    assert!(!script_exists(&mut conn, &script).await);
    let value: i64 = script
        .call()
        .key(&key)
        .arg(5)
        .invoke(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, 5);
    let value: i64 = script
        .call()
        .key(&key)
        .arg(2)
        .invoke(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, 7);
}

async fn call_after_script_flush_reloads(mut conn: RedisConnection) {
    let script = fresh_script("after_flush");
    let key = format!("{{{}}}:n", unique_prefix("after_flush"));
    let _: i64 = script
        .call()
        .key(&key)
        .arg(1)
        .invoke(&mut conn)
        .await
        .unwrap();
    // SCRIPT FLUSH goes to every node of a cluster.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let value: i64 = script
        .call()
        .key(&key)
        .arg(1)
        .invoke(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, 2, "the call after SCRIPT FLUSH ran exactly once");
}

async fn concurrent_first_calls_all_succeed_once(conn: RedisConnection) {
    static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| fresh_script("concurrent"));
    let key = format!("{{{}}}:n", unique_prefix("concurrent"));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let mut conn = conn.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let _: i64 = SCRIPT
                .call()
                .key(&key)
                .arg(1)
                .invoke(&mut conn)
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut conn = conn.clone();
    let total: i64 = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(total, 64, "every concurrent first call ran exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_first_call_loads_the_script() {
    first_call_loads_the_script(single().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_call_after_script_flush_reloads() {
    call_after_script_flush_reloads(single().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_concurrent_first_calls_succeed() {
    concurrent_first_calls_all_succeed_once(single().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_first_call_loads_the_script() {
    first_call_loads_the_script(cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_call_after_script_flush_reloads() {
    call_after_script_flush_reloads(cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_concurrent_first_calls_succeed() {
    concurrent_first_calls_all_succeed_once(cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_loads_scripts_on_every_node_keys_land_on() {
    let mut conn = cluster().await;
    let script = fresh_script("every_node");
    // Keys with different tags land on different masters.
    for tag in 0..32 {
        let key = format!("{{{}-{tag}}}:n", unique_prefix("every_node"));
        let value: i64 = script
            .call()
            .key(&key)
            .arg(1)
            .invoke(&mut conn)
            .await
            .unwrap();
        assert_eq!(value, 1);
    }
}

// --- lib/int64.lua agrees with Rust's i64 arithmetic -------------------------

const SAMPLES: [i64; 16] = [
    i64::MIN,
    i64::MIN + 1,
    -4_611_686_018_427_387_904,
    -9_007_199_254_740_993,
    -1000,
    -10,
    -1,
    0,
    1,
    9,
    10,
    999,
    9_007_199_254_740_993,
    1_152_921_504_606_846_977,
    i64::MAX - 1,
    i64::MAX,
];

static INT64_PROBE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::with_libraries(
        "test/int64_probe",
        &[INT64_LIB],
        r#"
local out = {}
for i = 1, #ARGV, 2 do
  local a, b = ARGV[i], ARGV[i + 1]
  local sum = distkit_checked_add(a, b)
  if sum == nil then sum = "overflow" end
  local ops = ""
  for _, op in ipairs({"eq", "ne", "lt", "gt", "le", "ge", "nil"}) do
    if distkit_matches(op, a, b) then ops = ops .. "1" else ops = ops .. "0" end
  end
  out[#out + 1] = sum
  out[#out + 1] = ops
  out[#out + 1] = tostring(distkit_cmp(a, b))
end
return out
"#,
    )
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int64_library_matches_rust_on_boundaries() {
    let mut conn = single().await;
    let mut call = INT64_PROBE.call();
    let mut pairs = Vec::new();
    for a in SAMPLES {
        for b in SAMPLES {
            call.push_arg(a.to_string()).push_arg(b.to_string());
            pairs.push((a, b));
        }
    }
    let reply: Vec<String> = call.invoke(&mut conn).await.unwrap();
    assert_eq!(reply.len(), pairs.len() * 3);
    for ((a, b), chunk) in pairs.iter().zip(reply.chunks(3)) {
        let expected_sum = a
            .checked_add(*b)
            .map_or("overflow".to_string(), |s| s.to_string());
        assert_eq!(chunk[0], expected_sum, "{a} + {b}");
        let expected_ops: String = [a == b, a != b, a < b, a > b, a <= b, a >= b, true]
            .iter()
            .map(|m| if *m { '1' } else { '0' })
            .collect();
        assert_eq!(chunk[1], expected_ops, "comparisons of {a} and {b}");
        assert_eq!(chunk[2], (a.cmp(b) as i8).to_string(), "cmp {a} {b}");
    }
}

static IS_INT_PROBE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::with_libraries(
        "test/is_int_probe",
        &[INT64_LIB],
        r#"
local out = {}
for i = 1, #ARGV do
  if distkit_is_int(ARGV[i]) then out[i] = 1 else out[i] = 0 end
end
return out
"#,
    )
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int64_library_accepts_only_canonical_i64() {
    let mut conn = single().await;
    let cases = [
        ("0", true),
        ("-1", true),
        ("9223372036854775807", true),
        ("-9223372036854775808", true),
        ("9223372036854775808", false),
        ("-9223372036854775809", false),
        ("-0", false),
        ("01", false),
        ("", false),
        ("1.5", false),
        ("1e3", false),
        (" 1", false),
        ("abc", false),
    ];
    let mut call = IS_INT_PROBE.call();
    for (value, _) in cases {
        call.push_arg(value);
    }
    let reply: Vec<i64> = call.invoke(&mut conn).await.unwrap();
    for ((value, expected), got) in cases.iter().zip(reply) {
        assert_eq!(got == 1, *expected, "distkit_is_int({value:?})");
    }
}

#[test]
fn embedded_library_is_exactly_the_vendored_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/lib/int64.lua");
    let vendored = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        INT64_LIB, vendored,
        "the crate embeds scripts/lib/int64.lua as is"
    );
}
