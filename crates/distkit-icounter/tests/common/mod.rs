//! Shared by the integration tests of this crate.

/// The script's source exactly as a service in another language would send
/// it: `lib/int64.lua`, a newline, then `icounter/apply.lua`.
pub fn vendored_source() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts");
    let lib = std::fs::read_to_string(format!("{root}/lib/int64.lua")).unwrap();
    let body = std::fs::read_to_string(format!("{root}/icounter/apply.lua")).unwrap();
    format!("{lib}\n{body}")
}

/// [`vendored_source`] as a script.
pub fn vendored_script() -> redis::Script {
    redis::Script::new(&vendored_source())
}
