#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `apply.lua` answers a lone `inc` or `get` on a key the instance already
//! holds, with nothing else due, through a fast path. These tests run the
//! same history on two prefixes: on one each op is sent alone (the fast path,
//! whenever its conditions hold), on the other it is sent after a `get` of an
//! unrelated key (two ops: always the general path). Replies and every
//! stored structure (but heartbeat times) must be the same after every step.
//! The fast path's conditions hold for the lone ops on held keys here (a
//! 30 s threshold: heartbeats are due every 3 s and the next scan is 33 s
//! away); that it is taken and pays off is measured by the `icounter` bench,
//! since its commands are the general path's.

mod common;

use std::collections::BTreeMap;

use common::vendored_script;
use distkit_icounter::DistkitRedisKey;
use redis::Value;

/// What the tests compare between the twins.
#[derive(Debug, PartialEq)]
struct State {
    data: BTreeMap<String, String>,
    contrib: Vec<String>,
    meta: BTreeMap<String, String>,
    instances: Vec<String>,
    dead: Vec<String>,
    flushes: BTreeMap<String, String>,
}

/// Two prefixes with the same history.
struct Twins {
    fast: String,
    general: String,
    script: redis::Script,
    conn: redis::aio::ConnectionManager,
}

/// One op group of `apply.lua` (8 arguments), with no local memory and no
/// pending flush.
fn op(kind: &str, key: &str, value: &str, cmp: &str, operand: &str) -> [String; 8] {
    [kind, key, value, cmp, operand, "0", "0", "0"].map(str::to_owned)
}

/// `group` with the caller's local slice and epoch of the key, and a
/// pending flush (`"<sequence>:<delta>"`, or `"0"`).
fn with_memory(mut group: [String; 8], slice: &str, epoch: &str, pending: &str) -> [String; 8] {
    group[5] = slice.to_owned();
    group[6] = epoch.to_owned();
    group[7] = pending.to_owned();
    group
}

impl Twins {
    async fn new(name: &str) -> Self {
        let p = DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).unwrap();
        Self {
            fast: format!("distkit:icounter:{{{}_f}}", p.as_str()),
            general: format!("distkit:icounter:{{{}_g}}", p.as_str()),
            script: vendored_script(),
            conn: distkit_testkit::shared_server().connection_manager().await,
        }
    }

    async fn call(&self, base: &str, instance: &str, ops: &[[String; 8]]) -> Vec<Value> {
        let reply: Value = distkit_testkit::icounter::apply(&self.script, base, instance, 0, ops)
            .invoke_async(&mut self.conn.clone())
            .await
            .unwrap();
        let Value::Array(parts) = reply else {
            panic!("{reply:?}")
        };
        parts
    }

    /// Everything a run may write, but for what depends on the time of the
    /// run (heartbeat scores and `check_at`).
    async fn state(&self, base: &str) -> State {
        let mut conn = self.conn.clone();
        let hash = |name: &str| redis::cmd("HGETALL").arg(format!("{base}:{name}")).clone();
        let members = |name: &str| {
            redis::cmd("ZRANGE")
                .arg(format!("{base}:{name}"))
                .arg(0)
                .arg(-1)
                .clone()
        };
        let mut meta: BTreeMap<String, String> = hash("meta").query_async(&mut conn).await.unwrap();
        meta.retain(|field, _| field != "check_at" && !field.starts_with("h:"));
        State {
            data: hash("data").query_async(&mut conn).await.unwrap(),
            contrib: members("contrib").query_async(&mut conn).await.unwrap(),
            meta,
            instances: members("instances").query_async(&mut conn).await.unwrap(),
            dead: members("dead").query_async(&mut conn).await.unwrap(),
            flushes: hash("flushes").query_async(&mut conn).await.unwrap(),
        }
    }

    /// Records lax flush `sequence` of `instance` as applied, on both twins.
    async fn set_last_flush(&self, instance: &str, sequence: u64) {
        let mut conn = self.conn.clone();
        for base in [&self.fast, &self.general] {
            let () = redis::cmd("HSET")
                .arg(format!("{base}:flushes"))
                .arg(instance)
                .arg(sequence)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    /// Removes `instance`'s entry of `key` on both twins as dead-instance
    /// cleanup does (its slice leaves the cumulative with it).
    async fn remove_entry(&self, instance: &str, key: &str) {
        let mut conn = self.conn.clone();
        for base in [&self.fast, &self.general] {
            let data = format!("{base}:data");
            let entry = format!("{instance}:{key}");
            let (record, stored): (String, String) = redis::cmd("HMGET")
                .arg(&data)
                .arg(key)
                .arg(&entry)
                .query_async(&mut conn)
                .await
                .unwrap();
            let (epoch, total) = record.split_once(':').unwrap();
            let (_, slice) = stored.split_once(':').unwrap();
            let left = total.parse::<i64>().unwrap() - slice.parse::<i64>().unwrap();
            let () = redis::pipe()
                .hset(&data, key, format!("{epoch}:{left}"))
                .ignore()
                .hdel(&data, &entry)
                .ignore()
                .zrem(format!("{base}:contrib"), &entry)
                .ignore()
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    /// Sends `group` alone on the fast twin and after a `get` of another
    /// key on the general twin; both must answer and end alike. Returns the
    /// op's result.
    async fn both(&self, instance: &str, group: [String; 8]) -> Vec<Value> {
        let fast = self
            .call(&self.fast, instance, std::slice::from_ref(&group))
            .await;
        let unrelated = op("get", "unrelated", "0", "nil", "0");
        let general = self
            .call(&self.general, instance, &[unrelated, group])
            .await;
        let result = |parts: &[Value], at: usize| {
            let Value::Array(results) = &parts[3] else {
                panic!("{parts:?}")
            };
            let Value::Array(result) = &results[at] else {
                panic!("{results:?}")
            };
            result.clone()
        };
        let context = format!("fast {fast:?}\ngeneral {general:?}");
        assert_eq!(fast.len(), 6, "{context}");
        assert_eq!(general.len(), 6, "{context}");
        for at in [0, 1, 2, 4, 5] {
            assert_eq!(fast[at], general[at], "reply field {at}\n{context}");
        }
        let (result_fast, result_general) = (result(&fast, 0), result(&general, 1));
        assert_eq!(result_fast, result_general, "{context}");
        assert_eq!(
            self.state(&self.fast).await,
            self.state(&self.general).await
        );
        result_fast
    }

    /// [`both`](Self::both), then the op's `{status, cumulative, slice}`
    /// must be `expected`.
    async fn check(&self, instance: &str, group: [String; 8], expected: [&str; 3]) {
        let result = self.both(instance, group).await;
        let got = [&result[0], &result[1], &result[2]].map(text);
        assert_eq!(got, expected, "{instance}: {result:?}");
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).unwrap(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn lone_inc_and_get_match_the_general_path() {
    let twins = Twins::new("icfast").await;
    let inc = |value: &str| op("inc", "k", value, "nil", "0");
    // a new entry (general path on both), then current entries
    twins.check("a", inc("4"), ["ok", "4", "4"]).await;
    twins.check("b", inc("10"), ["ok", "14", "10"]).await;
    twins.check("a", inc("5"), ["ok", "19", "9"]).await;
    twins.check("a", inc("-12"), ["ok", "7", "-3"]).await;
    let get = op("get", "k", "0", "nil", "0");
    twins.check("a", get.clone(), ["ok", "7", "-3"]).await;
    // comparators on the cumulative, false then true
    let nomatch = op("inc", "k", "1", "gt", "100");
    twins.check("a", nomatch, ["nomatch", "7", "-3"]).await;
    let matching = op("inc", "k", "1", "lt", "100");
    twins.check("a", matching, ["ok", "8", "-2"]).await;
    // beyond Lua's exact doubles, and past i64
    let big = op("inc", "k", "9000000000000000000", "nil", "0");
    twins
        .check(
            "a",
            big,
            ["ok", "9000000000000000008", "8999999999999999998"],
        )
        .await;
    let past = op("inc", "k", "300000000000000000", "nil", "0");
    twins
        .check(
            "a",
            past,
            ["overflow", "9000000000000000008", "8999999999999999998"],
        )
        .await;
    // another instance's global set: this instance's entry is stale and
    // counts as 0 before it contributes again
    let set = op("set", "k", "100", "nil", "0");
    twins.check("b", set, ["ok", "100", "100"]).await;
    twins.check("a", get.clone(), ["ok", "100", "0"]).await;
    twins.check("a", inc("3"), ["ok", "103", "3"]).await;
    // a clear removes every entry: the next inc creates this instance's
    // entry again (general path on both), the one after is fast again
    let clear = op("clear", "", "0", "nil", "0");
    twins.both("b", clear).await;
    twins.check("c", inc("1"), ["ok", "1", "1"]).await;
    twins.check("a", get, ["ok", "1", "0"]).await;
    twins.check("a", inc("2"), ["ok", "3", "2"]).await;
    twins.check("a", inc("2"), ["ok", "5", "4"]).await;
    // only the slice leaves i64, upwards then downwards
    twins.both("b", inc("-9000000000000000000")).await;
    twins
        .check(
            "a",
            inc("9223372036854775000"),
            ["ok", "223372036854775005", "9223372036854775004"],
        )
        .await;
    twins
        .check(
            "a",
            inc("1000"),
            ["overflow", "223372036854775005", "9223372036854775004"],
        )
        .await;
    twins
        .check(
            "b",
            inc("-300000000000000000"),
            ["overflow", "223372036854775005", "-9000000000000000000"],
        )
        .await;
    twins
        .check(
            "b",
            inc("1"),
            ["ok", "223372036854775006", "-8999999999999999999"],
        )
        .await;
}

#[tokio::test]
async fn the_fast_path_declines_pending_flushes_and_missing_entries() {
    let twins = Twins::new("icfast_decline").await;
    let inc = |value: &str| op("inc", "k", value, "nil", "0");
    let get = op("get", "k", "0", "nil", "0");
    twins.check("a", inc("4"), ["ok", "4", "4"]).await;
    twins.check("b", inc("6"), ["ok", "10", "6"]).await;
    // a lone inc carrying an unconfirmed lax flush that Redis applied (the
    // reply must say so in `flushed`)
    twins.set_last_flush("a", 9).await;
    let pending = with_memory(inc("1"), "4", "0", "9:3");
    twins.check("a", pending, ["ok", "11", "5"]).await;
    // cleanup removed the entry while the instance still holds its slice:
    // a lone inc restores it from the caller's memory, then adds
    twins.remove_entry("a", "k").await;
    twins.check("b", get.clone(), ["ok", "6", "6"]).await;
    let restoring = with_memory(inc("2"), "5", "0", "0");
    twins.check("a", restoring, ["ok", "13", "7"]).await;
    twins.check("a", inc("1"), ["ok", "14", "8"]).await;
    // a lone get with the entry gone and a local epoch that is not the
    // key's: nothing is restored
    twins.remove_entry("a", "k").await;
    let stale = with_memory(get, "8", "99", "0");
    twins.check("a", stale, ["ok", "6", "0"]).await;
}
