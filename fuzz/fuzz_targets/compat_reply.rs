//! Open-model replies in Airlock's action grammar (any bytes, as text).
#![no_main]

#[path = "common.rs"]
mod common;

use airlock_providers::compat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (space, vp) = common::frame(sel);
    if let Ok(r) = compat::parse_reply(&text, space, vp) {
        assert!(!r.actions.is_empty());
        common::check(&r.actions, vp);
    }
});
