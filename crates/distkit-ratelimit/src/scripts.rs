//! The Lua scripts of the limiter, embedded from `scripts/ratelimit/` with
//! `scripts/lib/window.lua` prepended (the form documented in
//! `scripts/README.md` for services that vendor the scripts).

use std::sync::LazyLock;

use distkit_core::LuaScript;

/// `scripts/lib/window.lua`: bucketed windows with running totals.
pub(crate) const WINDOW_LIB: &str = include_str!("../scripts/lib/window.lua");

fn with_window(name: &'static str, body: &str) -> LuaScript {
    LuaScript::with_libraries(name, &[WINDOW_LIB], body)
}

pub(crate) static ABSOLUTE_INC: LazyLock<LuaScript> = LazyLock::new(|| {
    with_window(
        "ratelimit/absolute_inc",
        include_str!("../scripts/ratelimit/absolute_inc.lua"),
    )
});

pub(crate) static SUPPRESSED_INC: LazyLock<LuaScript> = LazyLock::new(|| {
    with_window(
        "ratelimit/suppressed_inc",
        include_str!("../scripts/ratelimit/suppressed_inc.lua"),
    )
});

pub(crate) static HYBRID_LEASE: LazyLock<LuaScript> = LazyLock::new(|| {
    with_window(
        "ratelimit/hybrid_lease",
        include_str!("../scripts/ratelimit/hybrid_lease.lua"),
    )
});

pub(crate) static HYBRID_SUPPRESSED_LEASE: LazyLock<LuaScript> = LazyLock::new(|| {
    with_window(
        "ratelimit/hybrid_suppressed_lease",
        include_str!("../scripts/ratelimit/hybrid_suppressed_lease.lua"),
    )
});

/// The sources of the scripts as sent to Redis, by name (the path under
/// `scripts/` without extension), for tests that check the crate sends
/// exactly the files of `scripts/ratelimit/` joined with their libraries.
#[doc(hidden)]
pub fn script_sources() -> [(&'static str, &'static str); 4] {
    [
        &*ABSOLUTE_INC,
        &*SUPPRESSED_INC,
        &*HYBRID_LEASE,
        &*HYBRID_SUPPRESSED_LEASE,
    ]
    .map(|script| (script.name(), script.source()))
}
