//! Raw runs of `scripts/icounter/apply.lua`, as a service in another
//! language would send them: for tests of the vendored script and for the
//! benchmark that measures it without the crate around it.

/// The six keys of an instance-aware counter prefix, under `base`
/// (`distkit:icounter:{<prefix>}`), in the order `apply.lua` takes them.
pub const KEYS: [&str; 6] = ["instances", "dead", "meta", "data", "contrib", "flushes"];

/// The invocation of `script` (`apply.lua` with its library) by `instance`
/// on the keys under `base`, with the default threshold (30 000 ms), the
/// crate's cleanup budget (200), lax flush sequence `flush_seq` (`0`: not a
/// flush) and `ops`, each a group of 8 arguments (op, key, value,
/// comparator, operand, local slice, local epoch, pending).
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// let script = redis::Script::new("return #ARGV"); // apply.lua in real use
/// let mut conn = distkit_testkit::shared_server().connection_manager().await;
/// let inc = ["inc", "k", "5", "nil", "0", "0", "0", "0"];
/// let args: i64 = distkit_testkit::icounter::apply(&script, "distkit:icounter:{p}", "me", 0, &[inc])
///     .invoke_async(&mut conn)
///     .await
///     .unwrap();
/// assert_eq!(args, 13);
/// # }
/// ```
pub fn apply<'s, S: redis::ToRedisArgs>(
    script: &'s redis::Script,
    base: &str,
    instance: &str,
    flush_seq: u64,
    ops: &[[S; 8]],
) -> redis::ScriptInvocation<'s> {
    let mut invocation = script.prepare_invoke();
    for name in KEYS {
        invocation.key(format!("{base}:{name}"));
    }
    invocation
        .arg(instance)
        .arg(30_000)
        .arg(200)
        .arg(flush_seq)
        .arg(ops.len());
    for group in ops {
        invocation.arg(group.as_slice());
    }
    invocation
}
