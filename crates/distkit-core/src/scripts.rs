//! Lua libraries shared by the scripts of several primitives.
//!
//! A script that starts with `-- requires: lib/<name>.lua` is sent to Redis
//! with that library prepended; [`LuaScript::with_libraries`](crate::LuaScript::with_libraries)
//! does the joining, and `scripts/README.md` documents it for services in
//! other languages that vendor the scripts.

/// `scripts/lib/int64.lua`: exact signed 64-bit arithmetic and comparisons on
/// decimal strings (`distkit_is_int`, `distkit_cmp`, `distkit_checked_add`,
/// `distkit_matches`, `distkit_or_zero`).
///
/// ```
/// assert!(distkit_core::scripts::INT64_LIB.contains("local function distkit_checked_add"));
/// ```
pub const INT64_LIB: &str = include_str!("../scripts/int64.lua");
