//! Redaction of secrets in every encoded form, and of optional patterns.

use crate::CANARY;
use airlock_core::manifest::RedactionSection;
use airlock_secrets::{Redactor, SecretError, SecretValue, SECRET_MARKER};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

/// A secret with characters every encoder treats differently.
const AWKWARD: &str = "pa\"ss\\w\u{f6}rd/&<\u{1F511}>";

fn redactor(patterns: &[&str]) -> Redactor {
    let secrets = [
        SecretValue::new(CANARY.into()),
        SecretValue::new(AWKWARD.into()),
        SecretValue::new("424242".into()),
        SecretValue::new("42".into()),
    ];
    Redactor::new(
        &secrets,
        &RedactionSection {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
        },
    )
    .unwrap()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Every way the two long secrets may appear in text an app, a browser or a serialiser wrote.
fn encoded_forms() -> Vec<(&'static str, String)> {
    let mut forms = Vec::new();
    for s in [CANARY, AWKWARD] {
        let percent = |b: u8, lower: bool| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        };
        let uri: String = s.bytes().map(|b| percent(b, false)).collect();
        let uri_lower: String = s.bytes().map(|b| percent(b, true)).collect();
        forms.push(("raw", s.to_string()));
        forms.push(("url %20", uri.clone()));
        forms.push(("url +", uri.replace("%20", "+")));
        forms.push(("url lower-case hex", uri_lower));
        forms.push(("base64", STANDARD.encode(s)));
        forms.push(("base64 unpadded", STANDARD_NO_PAD.encode(s)));
        forms.push(("base64url", URL_SAFE.encode(s)));
        forms.push(("base64url unpadded", URL_SAFE_NO_PAD.encode(s)));
        forms.push(("basic auth", STANDARD.encode(format!("ci-bot:{s}"))));
        forms.push((
            "base64 of a longer blob",
            STANDARD.encode(format!("xy{s}trailing data")),
        ));
        forms.push(("json", serde_json::to_string(s).unwrap()));
        let ascii_json: String = s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
        forms.push(("json all-\\u", ascii_json));
        forms.push((
            "json \\/",
            serde_json::to_string(s).unwrap().replace('/', "\\/"),
        ));
        forms.push(("hex", hex(s)));
        forms.push(("HEX", hex(s).to_uppercase()));
        let html: String = s
            .chars()
            .map(|c| match c {
                '&' => "&amp;".to_string(),
                '<' => "&lt;".to_string(),
                '>' => "&gt;".to_string(),
                '"' => "&quot;".to_string(),
                c if !c.is_ascii() => format!("&#{};", u32::from(c)),
                c => c.to_string(),
            })
            .collect();
        forms.push(("html", html));
    }
    forms
}

/// The parts of each form that would give the secret away (a base64 blob keeps its neighbours).
fn leaks(out: &str) -> Option<String> {
    let needles = [
        CANARY.to_string(),
        AWKWARD.to_string(),
        "Canary-7f3a".to_string(),
        STANDARD_NO_PAD.encode(CANARY),
        URL_SAFE_NO_PAD.encode(CANARY),
        hex(CANARY),
        "w\u{f6}rd".to_string(),
        "9%2Fx".to_string(),
        "9%2fx".to_string(),
    ];
    needles
        .into_iter()
        .find(|n| out.to_lowercase().contains(&n.to_lowercase()))
}

#[test]
fn every_encoded_form_is_redacted_inside_longer_text() {
    let r = redactor(&[]);
    for (label, form) in encoded_forms() {
        let text = format!("GET /runs?q={form}&page=2 HTTP/1.1 — seen: \"{form}\".");
        let (out, n) = r.redact_str(&text);
        assert!(n >= 2, "{label}: {n} redactions in {out}");
        assert!(out.contains(SECRET_MARKER), "{label}: {out}");
        assert!(out.starts_with("GET /runs?q="), "{label}: {out}");
        assert!(
            out.ends_with("&page=2 HTTP/1.1 — seen: \"[redacted:secret]\".")
                || label.contains("json")
                || label.contains("blob")
                || label.contains("basic"),
            "{label}: {out}"
        );
        assert_eq!(leaks(&out), None, "{label}: {out}");
        assert!(r.contains_secret(&text), "{label}");
        assert!(!r.contains_secret(&out), "{label}: {out}");
    }
}

#[test]
fn every_encoded_form_is_redacted_in_nested_json_values_and_keys() {
    let r = redactor(&[]);
    for (label, form) in encoded_forms() {
        let doc = json!({
            "events": [
                {"kind": "type", "text": form, "meta": {"url": format!("http://ci.example/?t={form}")}},
                [1, 2, {"deep": [format!("x{form}y")]}]
            ],
            format!("header {form}"): "v",
            "ok": true
        });
        let (out, n) = r.redact_json(doc);
        let text = out.to_string();
        assert!(n >= 4, "{label}: {n} in {text}");
        assert_eq!(leaks(&text), None, "{label}: {text}");
        // A base64 blob keeps the characters that encode its other bytes (`ci-bot:`, `xy`).
        let text_field = out["events"][0]["text"].as_str().unwrap();
        assert!(text_field.contains(SECRET_MARKER), "{label}: {text_field}");
        assert_eq!(out["ok"], json!(true));
        let keys = out.as_object().unwrap();
        assert!(
            keys.keys()
                .any(|k| k.starts_with("header ") && k.contains(SECRET_MARKER)),
            "{label}: {text}"
        );
    }
}

#[test]
fn json_numbers_and_colliding_keys_are_handled() {
    let r = redactor(&[]);
    let (out, n) = r.redact_json(json!({
        "otp": 424242,
        "count": 7,
        CANARY: 1,
        AWKWARD: 2,
        "pin": "42",
        "note": "the answer is 42"
    }));
    assert_eq!(out["otp"], json!(SECRET_MARKER));
    assert_eq!(out["count"], json!(7));
    assert_eq!(out["pin"], json!(SECRET_MARKER));
    assert_eq!(out["note"], json!("the answer is 42"));
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert!(keys.iter().any(|k| *k == SECRET_MARKER), "{keys:?}");
    assert!(
        keys.iter().any(|k| *k == "[redacted:secret] #2"),
        "{keys:?}"
    );
    assert_eq!(n, 4);
}

#[test]
fn short_secrets_only_match_whole_strings() {
    let r = redactor(&[]);
    assert_eq!(r.redact_str("42").0, SECRET_MARKER);
    assert_eq!(r.redact_str(" 42\n").0, SECRET_MARKER);
    assert_eq!(r.redact_str("4242 items, 42 pages").1, 0);
    assert!(!r.contains_secret("page 42"));
    assert!(r.contains_secret("42"));
}

const SAMPLE: &str = "mail ops@incidents.example or ops%40incidents.example; \
    POST /login user=ci&password=hunter22&next=/ pwd=abc12345 \
    Authorization: Bearer eyJhbGciOi.J9.sig-_x== \
    key sk-ant-api03-AbCdEfGhIjKlMnOpQrSt and ghp_0123456789abcdefghijABCDEFGHIJ012345 \
    AKIAIOSFODNN7EXAMPLE xoxb-123456789012-abcdefABCDEF \
    https://x.example/?api_key=0123456789abcdef0123&token=AbCdEf0123456789AbCd==";

#[test]
fn patterns_are_off_by_default() {
    let (out, n) = redactor(&[]).redact_str(SAMPLE);
    assert_eq!((out.as_str(), n), (SAMPLE, 0));
}

#[test]
fn each_pattern_redacts_its_shapes_only() {
    let (out, n) = redactor(&["email"]).redact_str(SAMPLE);
    assert_eq!(n, 2, "{out}");
    assert!(
        out.starts_with("mail [redacted:email] or [redacted:email];"),
        "{out}"
    );
    assert!(out.contains("password=hunter22"), "{out}");

    let (out, n) = redactor(&["password_param"]).redact_str(SAMPLE);
    assert_eq!(n, 2, "{out}");
    assert!(
        out.contains("user=ci&password=[redacted:password]&next=/ pwd=[redacted:password]"),
        "{out}"
    );

    let (out, n) = redactor(&["bearer"]).redact_str(SAMPLE);
    assert_eq!(n, 1, "{out}");
    assert!(
        out.contains("Authorization: Bearer [redacted:bearer] key"),
        "{out}"
    );

    let (out, n) = redactor(&["api_key"]).redact_str(SAMPLE);
    for gone in [
        "sk-ant-api03",
        "ghp_0123",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-1234",
        "0123456789abcdef0123",
        "AbCdEf0123456789AbCd",
    ] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    assert_eq!(n, 6, "{out}");
    assert!(
        out.ends_with("?api_key=[redacted:api_key]&token=[redacted:api_key]"),
        "{out}"
    );
    assert!(out.contains("ops@incidents.example"), "{out}");
}

#[test]
fn patterns_apply_to_json_members_and_json_text() {
    let r = redactor(&["password_param", "api_key"]);
    let (out, n) = r.redact_json(json!({
        "form": {"username": "ci", "Password": "hunter22", "api-key": "k-12345678"},
        "body": "{\"password\": \"hunter22\", \"token\": \"abcdefgh12345678\"}"
    }));
    assert_eq!(out["form"]["Password"], json!("[redacted:password]"));
    assert_eq!(out["form"]["api-key"], json!("[redacted:api_key]"));
    assert_eq!(out["form"]["username"], json!("ci"));
    assert_eq!(
        out["body"],
        json!("{\"password\": \"[redacted:password]\", \"token\": \"[redacted:api_key]\"}")
    );
    assert_eq!(n, 4);
    // Redacting again finds nothing new.
    assert_eq!(r.redact_json(out.clone()), (out, 0));
}

#[test]
fn secrets_win_over_patterns_where_they_overlap() {
    let r = redactor(&["password_param"]);
    let (out, n) = r.redact_str(&format!("password={}", STANDARD.encode(CANARY)));
    assert_eq!((out.as_str(), n), ("password=[redacted:secret]", 1));
}

#[test]
fn unknown_patterns_are_refused() {
    let err = Redactor::new(
        &[] as &[SecretValue],
        &RedactionSection {
            patterns: vec!["ssn".into()],
        },
    )
    .unwrap_err();
    assert!(matches!(err, SecretError::UnknownPattern { .. }));
    assert!(err
        .to_string()
        .starts_with("unknown redaction pattern `ssn`"));
}

#[test]
fn markers_reveal_neither_length_nor_content() {
    let short = SecretValue::new("abcd".into());
    let long = SecretValue::new("abcdefghijklmnopqrstuvwxyz0123456789".into());
    let r = Redactor::new([&short, &long], &RedactionSection::default()).unwrap();
    assert_eq!(r.redact_str("abcd").0, r.redact_str(long.expose_str()).0);
}

#[test]
fn debug_of_a_redactor_shows_no_forms() {
    let r = redactor(&["email"]);
    let shown = format!("{r:?} {r:#?}");
    assert!(leaks(&shown).is_none(), "{shown}");
    assert!(
        !shown.contains("424242") && !shown.contains("Q2FuYXJ5"),
        "{shown}"
    );
    assert!(shown.contains("secrets: 4"), "{shown}");
}

#[test]
fn redacted_json_is_still_json() {
    let r = redactor(&[]);
    let raw = format!("{{\"a\": {}}}", serde_json::to_string(AWKWARD).unwrap());
    let (text, n) = r.redact_str(&raw);
    assert_eq!(n, 1);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["a"], json!(SECRET_MARKER));
}
