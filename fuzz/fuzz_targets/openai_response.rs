//! OpenAI Responses API responses (`computer_call` items, GA `actions[]` and preview `action`).
#![no_main]

#[path = "common.rs"]
mod common;

use airlock_providers::openai;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let (space, vp) = common::frame(sel);
    if let Ok(p) = openai::parse_response(&v, space, vp) {
        common::check(&p.actions(), vp);
        let _ = p.safety();
    }
    if let Ok(c) = openai::parse_computer_call(&v, space, vp) {
        common::check(&c.actions, vp);
    }
    if let Ok(a) = openai::parse_action(&v, space, vp) {
        common::check(&[a], vp);
    }
});
