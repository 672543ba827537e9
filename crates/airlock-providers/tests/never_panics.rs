//! Model output is untrusted: feed the parsers mutated and garbage payloads from a
//! deterministic generator and check they answer (Ok or Err) without panicking, and that
//! whatever they accept stays inside the viewport.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::{Action, Point, Target};
use airlock_providers::anthropic::{parse_computer_input, parse_toolset_member, AnthropicParser};
use airlock_providers::ScriptedProvider;
use serde_json::{json, Map, Value};

/// xorshift64*: small, deterministic, good enough to shake a parser.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMES: &[&str] = &[
    "screenshot",
    "left_click",
    "right_click",
    "middle_click",
    "double_click",
    "triple_click",
    "mouse_move",
    "left_click_drag",
    "type",
    "key",
    "scroll",
    "wait",
    "zoom",
    "hold_key",
    "left_mouse_down",
    "left_mouse_up",
    "cursor_position",
    "teleport",
    "",
    "computer",
];

const FIELDS: &[&str] = &[
    "action",
    "coordinate",
    "start_coordinate",
    "text",
    "key",
    "scroll_direction",
    "scroll_amount",
    "duration",
    "region",
    "repeat",
    "type",
    "name",
    "toolset_name",
    "input",
    "content",
    "role",
    "airlock",
    "provider",
    "kind",
    "target",
    "to",
];

fn random_number(rng: &mut Rng) -> Value {
    let n: f64 = match rng.below(12) {
        0 => 0.0,
        1 => -1.0,
        2 => 1e300,
        3 => -1e300,
        4 => f64::from(u32::MAX) + 1.0,
        5 => 2.5,
        6 => 100.0,
        7 => 101.0,
        8 => 300.0001,
        9 => 1280.0,
        10 => -0.0,
        _ => (rng.next() % 3000) as f64,
    };
    if rng.below(3) == 0 {
        json!(rng.next())
    } else {
        json!(n)
    }
}

fn random_string(rng: &mut Rng) -> Value {
    let s = match rng.below(14) {
        0 => String::new(),
        1 => "ctrl+shift".into(),
        2 => "{{secret:pw}}".into(),
        3 => "x {{secret:pw}}".into(),
        4 => "{{ SeCrEt".into(),
        5 => "+".into(),
        6 => "ctrl+".into(),
        7 => "é\u{0}\u{feff}🙂".into(),
        8 => "a ".repeat(40),
        9 => "down".into(),
        10 => "computer".into(),
        11 => "tool_use".into(),
        12 => (*rng.pick(NAMES)).to_string(),
        _ => "x".repeat(rng.below(300)),
    };
    Value::String(s)
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let kinds = if depth == 0 { 4 } else { 7 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => random_number(rng),
        3 => random_string(rng),
        4 | 5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(
                    (*rng.pick(FIELDS)).to_string(),
                    random_value(rng, depth - 1),
                );
            }
            Value::Object(m)
        }
    }
}

/// Replaces, removes or adds something at a random place in `v`.
fn mutate(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() && rng.below(3) != 0 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            match rng.below(4) {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    m.insert(key, random_value(rng, 2));
                }
                _ => mutate(rng, m.get_mut(&key).unwrap()),
            }
        }
        Value::Object(m) => {
            m.insert((*rng.pick(FIELDS)).to_string(), random_value(rng, 2));
        }
        Value::Array(items) if !items.is_empty() && rng.below(3) != 0 => {
            let i = rng.below(items.len());
            if rng.below(2) == 0 {
                items.remove(i);
            } else {
                mutate(rng, &mut items[i]);
            }
        }
        _ => *v = random_value(rng, 2),
    }
}

fn seeds() -> Vec<Value> {
    vec![
        json!({"action": "left_click", "coordinate": [500, 300], "text": "shift"}),
        json!({"action": "double_click", "coordinate": [5, 5], "key": "ctrl"}),
        json!({"action": "left_click_drag", "start_coordinate": [200, 300], "coordinate": [600, 300]}),
        json!({"action": "scroll", "coordinate": [500, 400], "scroll_direction": "down", "scroll_amount": 3}),
        json!({"action": "key", "text": "ctrl+s", "repeat": 2}),
        json!({"action": "type", "text": "{{secret:pw}}"}),
        json!({"action": "wait", "duration": 2}),
        json!({"action": "mouse_move", "coordinate": [1, 1]}),
        json!({"action": "zoom", "region": [100, 200, 400, 350]}),
        json!({"type": "tool_use", "id": "t", "name": "left_click", "toolset_name": "computer", "input": {"coordinate": [640, 742]}}),
        json!({"type": "tool_use", "name": "computer", "input": {"action": "screenshot"}}),
        json!({"type": "message", "role": "assistant", "content": [
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "name": "type", "toolset_name": "computer", "input": {"text": "17*23\n"}},
            {"type": "tool_use", "name": "scroll", "toolset_name": "computer", "input": {"scroll_direction": "up", "scroll_amount": 1}}
        ]}),
        json!({"type": "text", "text": "done"}),
        json!({"airlock": {"kind": "click", "target": {"role": {"role": "button", "name": "Save"}}}}),
        json!({"airlock": [{"kind": "drag", "from": {"x": 1, "y": 2}, "to": {"x": 3, "y": 4}}]}),
        json!({"provider": "anthropic", "action": "screenshot"}),
    ]
}

fn point_ok(p: &Point, vp: Viewport) -> bool {
    p.x.is_finite()
        && p.y.is_finite()
        && (0.0..=f64::from(vp.width)).contains(&p.x)
        && (0.0..=f64::from(vp.height)).contains(&p.y)
}

/// What any accepted action must satisfy.
fn check(actions: &[Action], vp: Viewport, what: &Value) {
    assert!(!actions.is_empty(), "empty batch for {what}");
    for a in actions {
        let points: Vec<&Point> = match a {
            Action::Click {
                target: Target::Point(p),
                ..
            } => vec![p],
            Action::MouseMove { to } => vec![to],
            Action::Drag { from, to } => vec![from, to],
            Action::Scroll { at, dx, dy } => {
                assert!(dx.is_finite() && dy.is_finite(), "{a:?} from {what}");
                at.iter().collect()
            }
            _ => vec![],
        };
        for p in points {
            assert!(point_ok(p, vp), "{a:?} from {what} leaves the viewport");
        }
    }
}

const SPACES: &[CoordSpace] = &[
    CoordSpace::Screenshot {
        width: 1280,
        height: 800,
    },
    CoordSpace::Screenshot {
        width: 1024,
        height: 640,
    },
    CoordSpace::Screenshot {
        width: 0,
        height: 0,
    },
    CoordSpace::Grid { max: 999 },
];

const VIEWPORTS: &[Viewport] = &[
    Viewport {
        width: 1280,
        height: 800,
    },
    Viewport {
        width: 0,
        height: 0,
    },
];

fn exercise(rng: &mut Rng, value: &Value) {
    let space = *rng.pick(SPACES);
    let vp = *rng.pick(VIEWPORTS);
    if let Ok(actions) = parse_computer_input(value, space, vp) {
        check(&actions, vp, value);
    }
    let name = *rng.pick(NAMES);
    if let Ok(actions) = parse_toolset_member(name, value, space, vp) {
        check(&actions, vp, value);
    }
    let mut parser = AnthropicParser::new(space, vp);
    if rng.below(2) == 0 {
        parser.set_cursor(Some(Point { x: 3.0, y: 4.0 }));
    }
    if let Ok(call) = parser.tool_use(value) {
        check(&call.actions, vp, value);
    }
    if let Ok(msg) = parser.message(value) {
        let actions = msg.actions();
        if !actions.is_empty() {
            check(&actions, vp, value);
        }
    }
    let line = value.to_string();
    let mut scripted = ScriptedProvider::from_transcript(&line);
    if let Ok(p) = scripted.next_proposal(vp) {
        check(&p.actions, vp, value);
    }
}

#[test]
fn mutated_payloads_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    let mut fed = 0;
    for seed in &seeds {
        exercise(&mut rng, seed);
        for _ in 0..40 {
            let mut v = seed.clone();
            for _ in 0..=rng.below(3) {
                mutate(&mut rng, &mut v);
            }
            exercise(&mut rng, &v);
            fed += 1;
        }
    }
    for _ in 0..300 {
        let v = random_value(&mut rng, 4);
        exercise(&mut rng, &v);
        fed += 1;
    }
    assert!(fed >= 900);
}

#[test]
fn garbage_transcript_lines_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let alphabet: Vec<char> = "{}[]\":,#\\ \n\r\t0123456789.-+eE truefalsnul actionxyé🙂\u{feff}"
        .chars()
        .collect();
    let seed_lines: Vec<String> = seeds().iter().map(Value::to_string).collect();
    for _ in 0..400 {
        let text = if rng.below(2) == 0 {
            (0..rng.below(120))
                .map(|_| *rng.pick(&alphabet))
                .collect::<String>()
        } else {
            // A valid line cut at a random character boundary.
            let line = rng.pick(&seed_lines).clone();
            line.chars()
                .take(rng.below(line.chars().count() + 1))
                .collect()
        };
        let mut p = ScriptedProvider::from_transcript(&text);
        for _ in 0..4 {
            let _ = p.next_proposal(*rng.pick(VIEWPORTS));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI, Gemini and open-model replies
// ---------------------------------------------------------------------------------------------

use airlock_providers::{compat, gemini, openai};

/// Every served fixture (responses), flattened: the seeds for vendor mutation.
fn vendor_seeds(dir: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        match v {
            Value::Array(items) => out.extend(items),
            one => out.push(one),
        }
    }
    out
}

const VENDOR_FIELDS: &[&str] = &[
    "output",
    "type",
    "actions",
    "action",
    "call_id",
    "x",
    "y",
    "button",
    "keys",
    "path",
    "scroll_x",
    "scroll_y",
    "text",
    "pending_safety_checks",
    "candidates",
    "content",
    "parts",
    "functionCall",
    "name",
    "args",
    "safety_decision",
    "decision",
    "magnitude",
    "direction",
    "start_x",
    "destination_x",
    "seconds",
    "press_enter",
    "url",
    "role",
    "frame",
    "provider",
];

fn vendor_mutate(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() && rng.below(3) != 0 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            match rng.below(4) {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    m.insert(key, random_value(rng, 2));
                }
                _ => vendor_mutate(rng, m.get_mut(&key).unwrap()),
            }
        }
        Value::Object(m) => {
            m.insert((*rng.pick(VENDOR_FIELDS)).to_string(), random_value(rng, 2));
        }
        Value::Array(items) if !items.is_empty() && rng.below(3) != 0 => {
            let i = rng.below(items.len());
            match rng.below(3) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let dup = items[i].clone();
                    items.push(dup);
                }
                _ => vendor_mutate(rng, &mut items[i]),
            }
        }
        _ => *v = random_value(rng, 2),
    }
}

fn exercise_vendor(rng: &mut Rng, v: &Value) {
    let space = *rng.pick(SPACES);
    let vp = *rng.pick(VIEWPORTS);
    if let Ok(p) = openai::parse_response(v, space, vp) {
        check_opt(&p.actions(), vp, v);
        let _ = p.safety();
    }
    if let Some(Value::Array(items)) = v.get("output") {
        for item in items {
            if let Ok(c) = openai::parse_computer_call(item, space, vp) {
                check(&c.actions, vp, item);
            }
            for a in item
                .get("actions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Ok(a) = openai::parse_action(a, space, vp) {
                    check(&[a], vp, item);
                }
            }
        }
    }
    if let Ok(p) = gemini::parse_response(v, vp) {
        check_opt(&p.actions(), vp, v);
        let _ = p.safety();
    }
    for part in v
        .pointer("/candidates/0/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(fc) = part.get("functionCall") {
            if let Ok(c) = gemini::parse_function_call(fc, vp) {
                check(&c.actions, vp, fc);
            }
            let name = *rng.pick(&[
                "click_at",
                "type_text_at",
                "scroll_at",
                "scroll",
                "drag_and_drop",
                "hotkey",
                "wait",
                "navigate",
            ]);
            if let Ok(a) = gemini::parse_call(name, fc.get("args").unwrap_or(&Value::Null), vp) {
                check(&a, vp, fc);
            }
        }
    }
    if let Some(Value::String(text)) = v.pointer("/choices/0/message/content") {
        if let Ok(r) = compat::parse_reply(text, space, vp) {
            check(&r.actions, vp, v);
        }
    }
    // The same value as a transcript line of each provider.
    for provider in ["openai", "gemini", "openai-compat", "anthropic"] {
        let mut line = v.clone();
        if let Value::Object(m) = &mut line {
            m.insert("provider".into(), json!(provider));
        }
        let mut scripted = ScriptedProvider::from_transcript(&line.to_string());
        if let Ok(p) = scripted.next_proposal(vp) {
            check(&p.actions, vp, &line);
        }
    }
}

fn check_opt(actions: &[Action], vp: Viewport, what: &Value) {
    if !actions.is_empty() {
        check(actions, vp, what);
    }
}

#[test]
fn mutated_vendor_responses_never_panic() {
    let mut rng = Rng(0x5151_2026_0801_abcd);
    let mut seeds = vendor_seeds("openai");
    seeds.extend(vendor_seeds("gemini"));
    seeds.extend(vendor_seeds("compat"));
    let mut fed = 0;
    for seed in &seeds {
        exercise_vendor(&mut rng, seed);
        for _ in 0..30 {
            let mut v = seed.clone();
            for _ in 0..=rng.below(4) {
                vendor_mutate(&mut rng, &mut v);
            }
            exercise_vendor(&mut rng, &v);
            fed += 1;
        }
    }
    assert!(fed >= 500, "{fed}");
}

#[test]
fn garbage_open_model_replies_never_panic() {
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    let alphabet: Vec<char> = "Thought:Action: click(type\"\\,)-.0123456789e+ \n\t<think></think>done key scroll wait é🙂\u{0}"
        .chars()
        .collect();
    let replies: Vec<String> = vendor_seeds("compat")
        .iter()
        .filter_map(|v| {
            v.pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    for _ in 0..2000 {
        let text: String = match rng.below(3) {
            0 => (0..rng.below(200)).map(|_| *rng.pick(&alphabet)).collect(),
            1 => {
                let r = rng.pick(&replies);
                r.chars().take(rng.below(r.chars().count() + 1)).collect()
            }
            _ => {
                let mut chars: Vec<char> = rng.pick(&replies).chars().collect();
                for _ in 0..=rng.below(5) {
                    if !chars.is_empty() {
                        let i = rng.below(chars.len());
                        chars[i] = *rng.pick(&alphabet);
                    }
                }
                chars.into_iter().collect()
            }
        };
        let space = *rng.pick(SPACES);
        let vp = *rng.pick(VIEWPORTS);
        if let Ok(r) = compat::parse_reply(&text, space, vp) {
            check(&r.actions, vp, &json!(text));
        }
    }
}
