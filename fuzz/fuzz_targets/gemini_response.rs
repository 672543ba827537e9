//! Gemini generateContent responses (2.5 and 3.x predefined functions, safety decisions).
#![no_main]

#[path = "common.rs"]
mod common;

use airlock_providers::gemini;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let (_, vp) = common::frame(sel);
    if let Ok(p) = gemini::parse_response(&v, vp) {
        common::check(&p.actions(), vp);
        let _ = p.safety();
    }
    if let Ok(p) = gemini::parse_content(&v, vp) {
        common::check(&p.actions(), vp);
    }
    if let Ok(c) = gemini::parse_function_call(&v, vp) {
        common::check(&c.actions, vp);
    }
    if let Some(name) = v.get("name").and_then(|n| n.as_str()) {
        if let Ok(a) = gemini::parse_call(name, v.get("args").unwrap_or(&v), vp) {
            common::check(&a, vp);
        }
    }
});
