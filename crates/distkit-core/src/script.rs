//! Lua scripts embedded at compile time and called by SHA.

use std::fmt;

use redis::{FromRedisValue, ToRedisArgs};

use crate::{DistkitError, RedisConnection};

/// A Lua script of distkit, embedded at compile time from `scripts/`.
///
/// Calls go out as `EVALSHA`; when Redis answers `NOSCRIPT` (first call on a
/// node, after `SCRIPT FLUSH`, after a restart or failover) the script is
/// loaded and the call retried once. On a cluster `SCRIPT LOAD` is sent to
/// every node. Build each script once (in a `static` with
/// [`std::sync::LazyLock`]) so its SHA is computed once.
///
/// ```no_run
/// use distkit_core::{LuaScript, RedisConnection};
///
/// # async fn demo(mut conn: RedisConnection) -> Result<(), distkit_core::DistkitError> {
/// let script = LuaScript::new("example/echo", "return ARGV[1]");
/// let echoed: String = script.call().arg("hello").invoke(&mut conn).await?;
/// assert_eq!(echoed, "hello");
/// # Ok(()) }
/// ```
pub struct LuaScript {
    name: &'static str,
    source: String,
    script: redis::Script,
}

impl LuaScript {
    /// A script from its source. `name` names it in errors and traces; use the
    /// path under `scripts/` without extension, such as `counter/inc`.
    ///
    /// ```
    /// let script = distkit_core::LuaScript::new("example/one", "return 1");
    /// assert_eq!(script.name(), "example/one");
    /// ```
    pub fn new(name: &'static str, source: &str) -> Self {
        Self {
            name,
            source: source.to_owned(),
            script: redis::Script::new(source),
        }
    }

    /// A script whose source is `libraries` (in order) followed by `body`,
    /// each separated by a newline: the form scripts declaring
    /// `-- requires: lib/...` are sent in.
    ///
    /// ```
    /// use distkit_core::{scripts::INT64_LIB, LuaScript};
    /// let script = LuaScript::with_libraries("example/cmp", &[INT64_LIB], "return 1");
    /// assert!(script.source().starts_with(INT64_LIB));
    /// assert!(script.source().ends_with("\nreturn 1"));
    /// ```
    pub fn with_libraries(name: &'static str, libraries: &[&str], body: &str) -> Self {
        let mut source = String::new();
        for library in libraries {
            source.push_str(library);
            source.push('\n');
        }
        source.push_str(body);
        Self::new(name, &source)
    }

    /// The name given at construction.
    ///
    /// ```
    /// assert_eq!(distkit_core::LuaScript::new("a/b", "return 1").name(), "a/b");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The full source sent to Redis.
    ///
    /// ```
    /// assert_eq!(distkit_core::LuaScript::new("a/b", "return 1").source(), "return 1");
    /// ```
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The SHA1 of the source, as used by `EVALSHA`.
    ///
    /// ```
    /// let script = distkit_core::LuaScript::new("a/b", "return 1");
    /// assert_eq!(script.hash(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    /// ```
    pub fn hash(&self) -> &str {
        self.script.get_hash()
    }

    /// Starts a call of this script; add keys and arguments, then invoke it.
    ///
    /// ```no_run
    /// # async fn demo(mut conn: distkit_core::RedisConnection) -> Result<(), distkit_core::DistkitError> {
    /// let script = distkit_core::LuaScript::new("example/get", "return redis.call('GET', KEYS[1])");
    /// let value: Option<String> = script.call().key("some-key").invoke(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub fn call(&self) -> ScriptCall<'_> {
        ScriptCall {
            name: self.name,
            invocation: self.script.prepare_invoke(),
        }
    }

    /// Loads the script on the node(s) `conn` reaches (every node of a
    /// cluster) and returns its SHA1. Calls load on demand, so this is only
    /// needed to warm up.
    ///
    /// ```no_run
    /// # async fn demo(mut conn: distkit_core::RedisConnection) -> Result<(), distkit_core::DistkitError> {
    /// let script = distkit_core::LuaScript::new("example/one", "return 1");
    /// assert_eq!(script.load(&mut conn).await?, script.hash());
    /// # Ok(()) }
    /// ```
    pub async fn load(&self, conn: &mut RedisConnection) -> Result<String, DistkitError> {
        self.script
            .load_async(conn)
            .await
            .map_err(|e| DistkitError::redis(self.name, e))
    }
}

impl fmt::Debug for LuaScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LuaScript")
            .field("name", &self.name)
            .field("hash", &self.hash())
            .finish()
    }
}

/// Rounds of load-and-call before a persistent `NOSCRIPT` is reported.
const NOSCRIPT_ATTEMPTS: u32 = 4;

fn is_noscript(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// One prepared call of a [`LuaScript`]: its keys and arguments.
///
/// ```no_run
/// # async fn demo(mut conn: distkit_core::RedisConnection) -> Result<(), distkit_core::DistkitError> {
/// let script = distkit_core::LuaScript::new("example/sum", "return tonumber(ARGV[1]) + tonumber(ARGV[2])");
/// let mut call = script.call();
/// call = call.arg(2).arg(3);
/// let sum: i64 = call.invoke(&mut conn).await?;
/// assert_eq!(sum, 5);
/// # Ok(()) }
/// ```
pub struct ScriptCall<'a> {
    name: &'static str,
    invocation: redis::ScriptInvocation<'a>,
}

impl ScriptCall<'_> {
    /// Adds a key (`KEYS[n]`).
    ///
    /// ```
    /// let script = distkit_core::LuaScript::new("example/one", "return 1");
    /// let call = script.call().key("k1").key("k2");
    /// ```
    pub fn key<T: ToRedisArgs>(mut self, key: T) -> Self {
        self.invocation.key(key);
        self
    }

    /// Adds an argument (`ARGV[n]`).
    ///
    /// ```
    /// let script = distkit_core::LuaScript::new("example/one", "return 1");
    /// let call = script.call().arg("a").arg(42);
    /// ```
    pub fn arg<T: ToRedisArgs>(mut self, arg: T) -> Self {
        self.invocation.arg(arg);
        self
    }

    /// Adds a key in place, for building calls in a loop.
    ///
    /// ```
    /// let script = distkit_core::LuaScript::new("example/one", "return 1");
    /// let mut call = script.call();
    /// for k in ["a", "b"] {
    ///     call.push_key(k);
    /// }
    /// ```
    pub fn push_key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.invocation.key(key);
        self
    }

    /// Adds an argument in place, for building calls in a loop.
    ///
    /// ```
    /// let script = distkit_core::LuaScript::new("example/one", "return 1");
    /// let mut call = script.call();
    /// for n in 0..3 {
    ///     call.push_arg(n);
    /// }
    /// ```
    pub fn push_arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.invocation.arg(arg);
        self
    }

    /// Runs the call: `EVALSHA`, and on `NOSCRIPT` a load and one retry.
    /// Errors name the script as the failed operation.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after the request was written does not take it
    /// back: the script may still run on the server.
    ///
    /// ```no_run
    /// # async fn demo(mut conn: distkit_core::RedisConnection) -> Result<(), distkit_core::DistkitError> {
    /// let script = distkit_core::LuaScript::new("example/one", "return 1");
    /// let one: i64 = script.call().invoke(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invoke<T: FromRedisValue>(
        &self,
        conn: &mut RedisConnection,
    ) -> Result<T, DistkitError> {
        // `invoke_async` loads the script and retries once on NOSCRIPT. A
        // `SCRIPT FLUSH` (or a failover to a fresh replica) landing between
        // that load and the retry would fail the call, so a few more rounds
        // are allowed: NOSCRIPT guarantees the script did not run.
        let mut attempts_left = NOSCRIPT_ATTEMPTS;
        loop {
            match self.invocation.invoke_async(conn).await {
                Err(error) if is_noscript(&error) && attempts_left > 1 => attempts_left -= 1,
                other => return other.map_err(|e| DistkitError::redis(self.name, e)),
            }
        }
    }
}

impl fmt::Debug for ScriptCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptCall")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
