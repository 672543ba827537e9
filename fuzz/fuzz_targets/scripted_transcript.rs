//! Whole transcripts in every provider's line format (any bytes, as text).
#![no_main]

#[path = "common.rs"]
mod common;

use airlock_providers::ScriptedProvider;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (_, vp) = common::frame(sel);
    let mut p = ScriptedProvider::from_transcript(&text);
    for _ in 0..64 {
        match p.next_proposal(vp) {
            Ok(prop) => {
                assert!(!prop.actions.is_empty());
                common::check(&prop.actions, vp);
            }
            Err(airlock_providers::ProviderError::Exhausted) => break,
            Err(_) => {}
        }
    }
});
