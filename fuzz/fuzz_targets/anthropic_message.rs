//! Anthropic Messages responses and `tool_use` blocks (legacy tool and GA toolset).
#![no_main]

#[path = "common.rs"]
mod common;

use airlock_providers::anthropic::AnthropicParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let (space, vp) = common::frame(sel);
    let mut parser = AnthropicParser::new(space, vp);
    if let Ok(m) = parser.message(&v) {
        common::check(&m.actions(), vp);
    }
    if let Ok(c) = parser.tool_use(&v) {
        common::check(&c.actions, vp);
    }
    if let Ok(a) = parser.computer_input(&v) {
        common::check(&a, vp);
    }
});
