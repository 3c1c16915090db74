//! The Redis side of the counters: one hash per prefix, and the commands and
//! scripts that read and write it. Both counter flavours go through here, so
//! they read and write the same stored values.

use std::sync::LazyLock;

use distkit_core::scripts::INT64_LIB;
use distkit_core::{
    CounterComparator, DistkitError, DistkitRedisKey, KeyLayout, LuaScript, RedisConnection,
};

static DEL: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("counter/del", include_str!("../scripts/del.lua")));
static INC_IF: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::with_libraries(
        "counter/inc_if",
        &[INT64_LIB],
        include_str!("../scripts/inc_if.lua"),
    )
});
static SET_IF: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::with_libraries(
        "counter/set_if",
        &[INT64_LIB],
        include_str!("../scripts/set_if.lua"),
    )
});
static FLUSH: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::with_libraries(
        "counter/flush",
        &[INT64_LIB],
        include_str!("../scripts/flush.lua"),
    )
});

/// The sources of the scripts, as embedded (for tests that check the crate
/// sends exactly the files of `scripts/counter/`).
#[doc(hidden)]
pub fn script_sources() -> [(&'static str, &'static str); 4] {
    [
        (DEL.name(), DEL.source()),
        (INC_IF.name(), INC_IF.source()),
        (SET_IF.name(), SET_IF.source()),
        (FLUSH.name(), FLUSH.source()),
    ]
}

/// What one flushed key looks like in Redis after a flush call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flushed {
    /// The stored value after the call.
    pub value: i64,
    /// Whether the delta was refused because it would overflow i64.
    pub refused: bool,
}

/// The values hash of one prefix and a connection to it.
#[derive(Clone)]
pub(crate) struct Store {
    layout: KeyLayout,
    values_key: String,
    conn: RedisConnection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("values_key", &self.values_key)
            .field("connection", &self.conn)
            .finish()
    }
}

fn overflow(operation: &'static str, key: &DistkitRedisKey, operand: i64) -> DistkitError {
    DistkitError::CounterOverflow {
        operation,
        key: key.as_str().to_owned(),
        operand,
    }
}

/// Whether `error` is Redis refusing an `HINCRBY` that would overflow.
fn is_hincrby_overflow(error: &redis::RedisError) -> bool {
    error.to_string().contains("would overflow")
}

/// The 1-based update index of a `distkit:<code> <n>` script error.
fn script_error_index(error: &DistkitError, code: &str) -> Option<usize> {
    let DistkitError::Redis { source, .. } = error else {
        return None;
    };
    if source.code() != Some(code) {
        return None;
    }
    source.detail()?.trim().parse().ok()
}

/// Splits a flat `new1, old1, new2, old2, ...` reply into pairs.
fn pairs(
    operation: &'static str,
    flat: Vec<i64>,
    expected: usize,
) -> Result<Vec<(i64, i64)>, DistkitError> {
    if flat.len() != expected * 2 {
        return Err(DistkitError::unexpected_reply(
            operation,
            format!("expected {} values, got {}", expected * 2, flat.len()),
        ));
    }
    Ok(flat
        .chunks_exact(2)
        .map(|c| match c {
            [new, old] => (*new, *old),
            _ => (0, 0),
        })
        .collect())
}

impl Store {
    pub(crate) fn new(prefix: &DistkitRedisKey, conn: RedisConnection) -> Self {
        let layout = KeyLayout::new("counter", prefix);
        let values_key = layout.key(&["values"]);
        Self {
            layout,
            values_key,
            conn,
        }
    }

    /// The key of the values hash.
    pub(crate) fn values_key(&self) -> &str {
        &self.values_key
    }

    /// A key of this prefix's layout (same hash tag as the values hash).
    pub(crate) fn layout_key(&self, parts: &[&str]) -> String {
        self.layout.key(parts)
    }

    /// `HINCRBY`: exact, and refused by Redis (value unchanged) on overflow.
    pub(crate) async fn inc(
        &self,
        operation: &'static str,
        key: &DistkitRedisKey,
        delta: i64,
        reported_operand: i64,
    ) -> Result<i64, DistkitError> {
        let mut conn = self.conn.clone();
        redis::cmd("HINCRBY")
            .arg(&self.values_key)
            .arg(key.as_str())
            .arg(delta)
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                if is_hincrby_overflow(&e) {
                    overflow(operation, key, reported_operand)
                } else {
                    DistkitError::redis("counter.inc", e)
                }
            })
    }

    pub(crate) async fn get(&self, key: &DistkitRedisKey) -> Result<i64, DistkitError> {
        let mut conn = self.conn.clone();
        let value: Option<i64> = redis::cmd("HGET")
            .arg(&self.values_key)
            .arg(key.as_str())
            .query_async(&mut conn)
            .await
            .map_err(|e| DistkitError::redis("counter.get", e))?;
        Ok(value.unwrap_or(0))
    }

    pub(crate) async fn get_many(
        &self,
        keys: &[&DistkitRedisKey],
    ) -> Result<Vec<i64>, DistkitError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&self.values_key);
        for key in keys {
            cmd.arg(key.as_str());
        }
        let values: Vec<Option<i64>> = cmd
            .query_async(&mut conn)
            .await
            .map_err(|e| DistkitError::redis("counter.get_all", e))?;
        if values.len() != keys.len() {
            return Err(DistkitError::unexpected_reply(
                "counter.get_all",
                format!("asked for {} values, got {}", keys.len(), values.len()),
            ));
        }
        Ok(values.into_iter().map(|v| v.unwrap_or(0)).collect())
    }

    pub(crate) async fn set(&self, key: &DistkitRedisKey, value: i64) -> Result<i64, DistkitError> {
        self.set_many(&[(key, value)]).await?;
        Ok(value)
    }

    /// One `HSET` with every pair; Redis applies them in order, so the last
    /// of a repeated key wins.
    pub(crate) async fn set_many(
        &self,
        updates: &[(&DistkitRedisKey, i64)],
    ) -> Result<(), DistkitError> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&self.values_key);
        for (key, value) in updates {
            cmd.arg(key.as_str()).arg(*value);
        }
        let _: i64 = cmd
            .query_async(&mut conn)
            .await
            .map_err(|e| DistkitError::redis("counter.set", e))?;
        Ok(())
    }

    pub(crate) async fn del(&self, key: &DistkitRedisKey) -> Result<i64, DistkitError> {
        let mut conn = self.conn.clone();
        DEL.call()
            .key(&self.values_key)
            .arg(key.as_str())
            .invoke(&mut conn)
            .await
    }

    pub(crate) async fn clear(&self) -> Result<(), DistkitError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(&self.values_key)
            .query_async(&mut conn)
            .await
            .map_err(|e| DistkitError::redis("counter.clear", e))?;
        Ok(())
    }

    /// Conditional increments, all or nothing: `(new, old)` per update.
    pub(crate) async fn inc_if_many(
        &self,
        operation: &'static str,
        updates: &[(&DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(i64, i64)>, DistkitError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut call = INC_IF.call();
        call.push_key(&self.values_key);
        for (key, comparator, delta) in updates {
            let (code, operand) = comparator.script_args();
            call.push_arg(key.as_str())
                .push_arg(code)
                .push_arg(operand)
                .push_arg(*delta);
        }
        match call.invoke::<Vec<i64>>(&mut conn).await {
            Ok(flat) => pairs(operation, flat, updates.len()),
            Err(error) => {
                if let Some(index) = script_error_index(&error, "distkit:overflow")
                    && let Some((key, _, delta)) = index.checked_sub(1).and_then(|i| updates.get(i))
                {
                    return Err(overflow(operation, key, *delta));
                }
                Err(error)
            }
        }
    }

    /// Conditional absolute writes: `(new, old)` per update.
    pub(crate) async fn set_if_many(
        &self,
        operation: &'static str,
        updates: &[(&DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(i64, i64)>, DistkitError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut call = SET_IF.call();
        call.push_key(&self.values_key);
        for (key, comparator, value) in updates {
            let (code, operand) = comparator.script_args();
            call.push_arg(key.as_str())
                .push_arg(code)
                .push_arg(operand)
                .push_arg(*value);
        }
        let flat: Vec<i64> = call.invoke(&mut conn).await?;
        pairs(operation, flat, updates.len())
    }

    /// Applies one flush batch exactly once (see `scripts/counter/flush.lua`).
    pub(crate) async fn flush(
        &self,
        flush_key: &str,
        sequence: u64,
        record_ttl_ms: u64,
        deltas: impl Iterator<Item = (&DistkitRedisKey, i128)>,
    ) -> Result<(bool, Vec<Flushed>), DistkitError> {
        let mut conn = self.conn.clone();
        let mut call = FLUSH.call();
        call.push_key(&self.values_key)
            .push_key(flush_key)
            .push_arg(sequence)
            .push_arg(record_ttl_ms);
        let mut expected = 0usize;
        for (key, delta) in deltas {
            // A pending delta may exceed the i64 range (only the stored
            // result must fit), so it travels as a decimal string.
            call.push_arg(key.as_str()).push_arg(delta.to_string());
            expected += 1;
        }
        let reply: Vec<i64> = call.invoke(&mut conn).await?;
        let (applied, rest) = match reply.split_first() {
            Some((applied, rest)) if rest.len() == expected * 2 => (*applied == 1, rest),
            _ => {
                return Err(DistkitError::unexpected_reply(
                    "counter.flush",
                    format!("expected {} values, got {}", expected * 2 + 1, reply.len()),
                ));
            }
        };
        let flushed = rest
            .chunks_exact(2)
            .map(|c| match c {
                [value, refused] => Flushed {
                    value: *value,
                    refused: *refused == 1,
                },
                _ => Flushed {
                    value: 0,
                    refused: false,
                },
            })
            .collect();
        Ok((applied, flushed))
    }
}
