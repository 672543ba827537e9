//! Never panics: garbage into the redactor and the masker, plus two properties of redaction
//! (idempotent; an embedded secret never survives) over generated inputs.

use crate::masking::make_png;
use crate::CANARY;
use airlock_core::manifest::RedactionSection;
use airlock_secrets::{mask_png, Rect, Redactor, SecretValue};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Text made of the pieces the matcher treats specially, plus fragments of the secret.
fn garbage_text(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "%",
        "%2",
        "%2B",
        "%2b",
        "%zz",
        "+",
        "\\",
        "\\u",
        "\\u00",
        "\\ud83d",
        "\\ude00",
        "\\\"",
        "&",
        "&#",
        "&#x",
        "&#39;",
        "&#99999999999;",
        "&amp",
        ";",
        "=",
        "==",
        "Canary",
        "-7f3a",
        "C",
        "a",
        "\u{f6}",
        "\u{1F511}",
        "\u{0}",
        "\n",
        " ",
        "password=",
        "Bearer ",
        "sk-",
        "@",
        ".example",
        "[redacted:secret]",
        "Q2FuYXJ5",
        "ZQ",
        "x",
    ];
    let n = rng.below(40);
    (0..n).map(|_| *rng.pick(PIECES)).collect()
}

fn redactor() -> Redactor {
    let secrets = [
        SecretValue::new(CANARY.into()),
        SecretValue::new("\u{1F511}%\\&".into()),
        SecretValue::new("ab".into()),
    ];
    Redactor::new(
        &secrets,
        &RedactionSection {
            patterns: vec![
                "email".into(),
                "password_param".into(),
                "bearer".into(),
                "api_key".into(),
            ],
        },
    )
    .unwrap()
}

#[test]
fn redactor_never_panics_and_is_idempotent_on_garbage() {
    let r = redactor();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let text = garbage_text(&mut rng);
        let (once, _) = r.redact_str(&text);
        let (twice, n) = r.redact_str(&once);
        assert_eq!(twice, once, "not idempotent on {text:?}");
        assert_eq!(n, 0, "{text:?}");
        let _ = r.contains_secret(&text);
    }
    // Arbitrary bytes, lossily decoded, including lone surrogates written as JSON escapes.
    for _ in 0..500 {
        let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = r.redact_str(&text);
    }
}

#[test]
fn an_embedded_secret_never_survives_whatever_surrounds_it() {
    let r = redactor();
    let mut rng = Rng(42);
    let forms = [
        CANARY.to_string(),
        "Canary-7f3a%2B9%2Fx+y".to_string(),
        "Canary-7f3a+9\\/x y".to_string(),
        STANDARD.encode(CANARY),
    ];
    for _ in 0..2000 {
        let form = rng.pick(&forms).clone();
        let text = format!("{}{form}{}", garbage_text(&mut rng), garbage_text(&mut rng));
        let (out, n) = r.redact_str(&text);
        assert!(n >= 1, "{text:?}");
        assert!(!out.contains(&form), "{text:?} -> {out:?}");
        assert!(
            !r.contains_secret(&out) || out.contains("Canary"),
            "{text:?} -> {out:?}"
        );
    }
}

fn garbage_json(rng: &mut Rng, depth: usize) -> Value {
    match if depth > 6 {
        rng.below(3)
    } else {
        rng.below(6)
    } {
        0 => Value::String(garbage_text(rng)),
        1 => json!(rng.next() as i64),
        2 => json!(null),
        3 => Value::Array(
            (0..rng.below(5))
                .map(|_| garbage_json(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(5))
                .map(|_| (garbage_text(rng), garbage_json(rng, depth + 1)))
                .collect(),
        ),
    }
}

#[test]
fn json_walk_never_panics_and_bounds_depth() {
    let r = redactor();
    let mut rng = Rng(7);
    for _ in 0..500 {
        let _ = r.redact_json(garbage_json(&mut rng, 0));
    }
    let mut deep = json!(CANARY);
    for _ in 0..500 {
        deep = json!([deep]);
    }
    let (out, n) = r.redact_json(deep);
    assert!(n >= 1);
    assert!(!out.to_string().contains("Canary"));
}

#[test]
fn masker_never_panics_on_garbage_or_wild_rects() {
    let mut rng = Rng(0xDEAD_BEEF);
    let valid = make_png(16, 12, png::ColorType::Rgba, png::BitDepth::Eight);
    let wild = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
        -0.0,
        0.5,
        1e308,
        -3.0,
        7.9,
        16.0,
    ];
    for _ in 0..2000 {
        let rects: Vec<Rect> = (0..rng.below(4))
            .map(|_| {
                Rect::new(
                    *rng.pick(&wild),
                    *rng.pick(&wild),
                    *rng.pick(&wild),
                    *rng.pick(&wild),
                )
            })
            .collect();
        let input = match rng.below(4) {
            0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            1 => valid[..rng.below(valid.len())].to_vec(),
            2 => {
                let mut v = valid.clone();
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
                v
            }
            _ => valid.clone(),
        };
        let _ = mask_png(&input, &rects);
    }
}
