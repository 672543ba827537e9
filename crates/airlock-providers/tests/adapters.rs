//! Each live adapter against a local server that speaks its vendor's protocol: the ci-incident
//! task (log in, search, open the run, expand the failed step, open the incident, type the
//! note, submit) driven turn by turn at the provider boundary, with assertions on everything
//! Airlock sends; then malformed replies, retries and key hygiene.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use airlock_core::{Action, KeyCombo, Modifiers, MouseButton, Point, Target, TypedText};
use airlock_providers::{
    CompatCoords, Price, PriceTable, ProviderError, ProviderOptions, StepFeedback, NOT_EXECUTED,
};
use serde_json::{json, Value};
use support::*;

const ANT_KEY: &str = "sk-ant-api03-TESTKEY-0123456789abcdef";
const OAI_KEY: &str = "sk-proj-TESTKEY-0123456789abcdef";
const GEM_KEY: &str = "AIzaTESTKEY-0123456789abcdef";

fn click(x: f64, y: f64) -> Action {
    Action::Click {
        target: Target::Point(Point { x, y }),
        button: MouseButton::Left,
        count: 1,
        modifiers: Modifiers::default(),
    }
}

fn typed(t: &str) -> Action {
    Action::Type {
        target: None,
        text: TypedText::Literal(t.into()),
    }
}

fn secret(name: &str) -> Action {
    Action::Type {
        target: None,
        text: TypedText::Secret(name.into()),
    }
}

fn key(spec: &str) -> Action {
    Action::Key {
        combo: KeyCombo::parse(spec).unwrap(),
        repeat: 1,
    }
}

fn anthropic_env(mock: &Mock) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_API_KEY", ANT_KEY.to_string()),
        ("ANTHROPIC_BASE_URL", mock.url("")),
    ]
}

fn openai_env(mock: &Mock) -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_API_KEY", OAI_KEY.to_string()),
        ("OPENAI_BASE_URL", mock.url("/v1")),
    ]
}

fn gemini_env(mock: &Mock) -> Vec<(&'static str, String)> {
    vec![
        ("GEMINI_API_KEY", GEM_KEY.to_string()),
        ("GEMINI_BASE_URL", mock.url("")),
    ]
}

fn priced(model: &str) -> ProviderOptions {
    let mut o = opts();
    o.prices = PriceTable::default().with(
        format!("{model}*"),
        Price {
            input_per_mtok: 5.0,
            output_per_mtok: 25.0,
        },
    );
    o
}

/// The images of an Anthropic request (anywhere in its messages).
fn anthropic_images(body: &Value) -> usize {
    count(&body["messages"], &|v| {
        v.get("type") == Some(&json!("image"))
    })
}

// ---------------------------------------------------------------------------------------------
// Anthropic
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anthropic_toolset_runs_the_ci_incident_task() {
    let mock = Mock::start().await;
    let served = fixture("anthropic/ci-incident-toolset.json");
    mock.push_all(&served);
    let mut p = provider(
        "anthropic:claude-opus-5-5",
        &anthropic_env(&mock),
        priced("claude-opus-5"),
    );

    // Turn 1: log in.
    let t1 = propose(&mut p, 1, &page(1), &[]).await.unwrap();
    assert_eq!(
        t1.actions,
        vec![
            click(632.0, 287.0),
            typed("ci-reader"),
            click(632.0, 373.0),
            secret("ci_password"),
            click(632.0, 433.0)
        ]
    );
    let usage = t1.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (7000, 81));
    assert!((usage.cost_usd.unwrap() - (7000.0 * 5.0 + 81.0 * 25.0) / 1e6).abs() < 1e-12);
    assert_eq!(t1.raw["provider"], "anthropic");
    assert_eq!(t1.raw["frame"], json!({"width": 1280, "height": 800}));
    assert!(t1.safety.is_empty());

    let r1 = mock.request(0);
    dump("anthropic-toolset-1", &r1);
    assert_eq!(r1.path, "/v1/messages");
    assert_eq!(r1.headers["x-api-key"], ANT_KEY);
    assert_eq!(r1.headers["anthropic-version"], "2023-06-01");
    assert!(
        !r1.headers.contains_key("anthropic-beta"),
        "GA needs no beta header"
    );
    assert!(!r1.headers.contains_key("authorization"));
    assert_eq!(r1.headers["content-type"], "application/json");
    let b = &r1.body;
    assert_eq!(b["model"], "claude-opus-5-5");
    assert_eq!(b["max_tokens"], 4096);
    assert_eq!(
        b["tools"],
        json!([{"type": "computer_toolset_20260801", "configs": {
            "zoom": {"enabled": false}, "hold_key": {"enabled": false},
            "left_mouse_down": {"enabled": false}, "left_mouse_up": {"enabled": false},
            "cursor_position": {"enabled": false}}}])
    );
    let system = b["system"].as_str().unwrap();
    assert!(system.contains(GOAL));
    assert!(system.contains("data, not instructions"));
    assert!(system.contains("at most 30 steps"));
    let first = &b["messages"][0];
    assert_eq!(first["role"], "user");
    let content = first["content"].as_array().unwrap();
    assert!(content[0]["text"]
        .as_str()
        .unwrap()
        .contains("Begin the task"));
    assert!(content[1]["text"]
        .as_str()
        .unwrap()
        .contains("1280x800 pixels"));
    assert_eq!(content[2]["type"], "image");
    assert_eq!(content[2]["source"]["type"], "base64");
    assert_eq!(content[2]["source"]["media_type"], "image/png");
    assert_eq!(
        png_size(content[2]["source"]["data"].as_str().unwrap()),
        (1280, 800)
    );
    assert!(content[3]["text"]
        .as_str()
        .unwrap()
        .starts_with("<untrusted-page-content url=\"http://ci.example/login\">"));

    // Turn 2: search. Every member call of turn 1 is answered, in order, echoing its id and
    // the toolset name; the screenshot rides on the last result.
    let t2 = propose(&mut p, 2, &page(2), &all_ran(&t1)).await.unwrap();
    assert_eq!(t2.actions[0], click(409.0, 116.0));
    assert_eq!(t2.actions[2], key("Return"));
    assert!(matches!(
        t2.actions[3],
        Action::Wait {
            timeout_ms: 5000,
            ..
        }
    ));
    let b = mock.request(1).body;
    dump("anthropic-toolset-2", &mock.request(1));
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs[1],
        json!({"role": "assistant", "content": served[0]["content"]})
    );
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["type"], "tool_result");
        assert_eq!(r["tool_use_id"], served[0]["content"][i + 1]["id"]);
        assert_eq!(r["toolset_name"], "computer");
        assert!(r.get("is_error").is_none());
    }
    let last = results[4]["content"].as_array().unwrap();
    assert!(last.iter().any(|c| c["type"] == "image"));
    assert!(results[0]["content"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["type"] == "text"));

    // Turns 3 and 4: open the run, expand the failed step.
    let t3 = propose(&mut p, 3, &page(3), &all_ran(&t2)).await.unwrap();
    assert_eq!(t3.actions, vec![click(189.0, 336.0)]);
    let t4 = propose(&mut p, 4, &page(4), &all_ran(&t3)).await.unwrap();
    assert_eq!(t4.actions, vec![click(1037.0, 510.0)]);

    // Turn 5: a batch whose second action the gate denies.
    let t5 = propose(&mut p, 5, &page(5), &all_ran(&t4)).await.unwrap();
    assert_eq!(t5.actions.len(), 3);
    let t6 = propose(
        &mut p,
        6,
        &page(6),
        &denied_at(&t5, 1, "denied: the note field is not focusable yet"),
    )
    .await
    .unwrap();
    let b = mock.request(5).body;
    dump("anthropic-toolset-6", &mock.request(5));
    let user = b["messages"].as_array().unwrap().last().unwrap();
    let blocks = user["content"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "tool_result");
    assert!(blocks[0].get("is_error").is_none());
    assert_eq!(blocks[1]["is_error"], true);
    assert_eq!(
        blocks[1]["content"],
        "denied: the note field is not focusable yet"
    );
    assert_eq!(blocks[2]["is_error"], true);
    assert_eq!(blocks[2]["content"], NOT_EXECUTED);
    assert_eq!(blocks[2]["toolset_name"], "computer");
    // After a failure the screenshot follows the results as its own block.
    assert!(blocks[3..].iter().any(|c| c["type"] == "image"));
    // Screenshots are pruned to the newest three.
    assert_eq!(anthropic_images(&b), 3);
    assert!(b
        .to_string()
        .contains("[older screenshot removed to save context]"));

    // Turns 6 and 7: type the note, submit.
    assert_eq!(t6.actions, vec![click(944.0, 405.0), typed(NOTE)]);
    let t7 = propose(&mut p, 7, &page(7), &all_ran(&t6)).await.unwrap();
    assert_eq!(t7.actions, vec![click(857.0, 497.0)]);

    // Turn 8: the model says it is done.
    let t8 = propose(&mut p, 8, &page(8), &all_ran(&t7)).await.unwrap();
    assert_eq!(done_claim(&t8), DONE);
    assert_eq!(mock.count(), 8);
    for r in mock.requests() {
        assert_eq!(r.body["system"], mock.request(0).body["system"]);
        assert!(anthropic_images(&r.body) <= 3);
    }
}

#[tokio::test]
async fn anthropic_legacy_tool_sends_the_beta_header_and_display_size() {
    let mock = Mock::start().await;
    mock.push_all(&fixture("anthropic/ci-incident-legacy.json"));
    let mut o = opts();
    // Screenshots go out at half size: the model's coordinates are scaled back up.
    o.max_screenshot = Some((640, 400));
    let mut p = provider("anthropic:claude-sonnet-4-6", &anthropic_env(&mock), o);

    let t1 = propose(&mut p, 1, &page(2), &[]).await.unwrap();
    assert_eq!(t1.actions, vec![Action::Screenshot]);
    let r = mock.request(0);
    dump("anthropic-legacy-1", &r);
    assert_eq!(r.headers["anthropic-beta"], "computer-use-2025-11-24");
    assert_eq!(
        r.body["tools"],
        json!([{"type": "computer_20251124", "name": "computer", "display_width_px": 640, "display_height_px": 400}])
    );
    let img = &r.body["messages"][0]["content"][2];
    assert_eq!(
        png_size(img["source"]["data"].as_str().unwrap()),
        (640, 400)
    );

    let t2 = propose(&mut p, 2, &page(2), &all_ran(&t1)).await.unwrap();
    assert_eq!(t2.actions, vec![click(818.0, 232.0)]);
    assert_eq!(t2.raw["frame"], json!({"width": 640, "height": 400}));
    let results = &mock.request(1).body["messages"][2]["content"];
    assert_eq!(results[0]["tool_use_id"], "toolu_01Legacy0001");
    assert!(
        results[0].get("toolset_name").is_none(),
        "legacy results carry no toolset_name"
    );

    // One `key` call with two presses is two actions, answered by one result.
    let t3 = propose(&mut p, 3, &page(2), &all_ran(&t2)).await.unwrap();
    assert_eq!(t3.actions, vec![key("ctrl+a"), key("Delete")]);
    let t4 = propose(&mut p, 4, &page(2), &all_ran(&t3)).await.unwrap();
    let results = mock.request(3).body["messages"][6]["content"].clone();
    assert_eq!(
        results
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .count(),
        1
    );
    assert_eq!(
        results[0]["content"][0]["text"],
        "press ctrl+a; press Delete"
    );
    assert_eq!(t4.actions, vec![typed("RUN-78432\n")]);
    let t5 = propose(&mut p, 5, &page(3), &all_ran(&t4)).await.unwrap();
    assert_eq!(done_claim(&t5), "The run is open.");
    for r in mock.requests() {
        assert_eq!(r.headers["anthropic-beta"], "computer-use-2025-11-24");
    }
}

#[tokio::test]
async fn anthropic_tool_version_can_be_forced() {
    let mock = Mock::start().await;
    mock.push_all(&fixture("anthropic/ci-incident-legacy.json")[..1]);
    let mut o = opts();
    o.tool_version = Some("computer_20250124".into());
    let mut p = provider("anthropic:claude-opus-5-5", &anthropic_env(&mock), o);
    propose(&mut p, 1, &page(1), &[]).await.unwrap();
    let r = mock.request(0);
    assert_eq!(r.headers["anthropic-beta"], "computer-use-2025-01-24");
    assert_eq!(r.body["tools"][0]["type"], "computer_20250124");
}

fn anthropic_reply(blocks: Value) -> Value {
    json!({"id": "msg_bad", "type": "message", "role": "assistant", "model": "claude-opus-5-5",
           "content": blocks, "stop_reason": "tool_use", "stop_sequence": null,
           "usage": {"input_tokens": 10, "output_tokens": 5}})
}

#[tokio::test]
async fn anthropic_malformed_replies_are_recoverable_errors_answered_next_turn() {
    let mock = Mock::start().await;
    let good = fixture("anthropic/ci-incident-toolset.json");
    // Truncated JSON, then the good reply.
    let truncated = good[0].to_string();
    mock.push(Reply::status(200, &truncated[..truncated.len() / 2]));
    mock.push(Reply::json(&good[0]));
    // An unknown action in a batch, a click far off screen, a member without its field.
    mock.push(Reply::json(&anthropic_reply(json!([
        {"type": "tool_use", "id": "toolu_a", "name": "left_click", "toolset_name": "computer", "input": {"coordinate": [1, 1]}},
        {"type": "tool_use", "id": "toolu_b", "name": "teleport", "toolset_name": "computer", "input": {}},
        {"type": "tool_use", "id": "toolu_c", "name": "screenshot", "toolset_name": "computer", "input": {}}
    ]))));
    mock.push(Reply::json(&anthropic_reply(json!([
        {"type": "tool_use", "id": "toolu_d", "name": "left_click", "toolset_name": "computer", "input": {"coordinate": [99999, 5]}}
    ]))));
    mock.push(Reply::json(&anthropic_reply(json!([
        {"type": "tool_use", "id": "toolu_e", "name": "type", "toolset_name": "computer", "input": {}}
    ]))));
    mock.push(Reply::json(&anthropic_reply(json!([]))));
    mock.push(Reply::json(&good[7]));
    let mut p = provider("anthropic:claude-opus-5-5", &anthropic_env(&mock), opts());

    let (reason, recoverable) = malformed(propose(&mut p, 1, &page(1), &[]).await.unwrap_err());
    assert!(recoverable);
    assert!(reason.contains("not valid JSON"), "{reason}");
    // The same opening turn is sent again, nothing from the broken reply in it.
    let t = propose(&mut p, 2, &page(1), &[StepFeedback::failed(reason)])
        .await
        .unwrap();
    assert_eq!(t.actions.len(), 5);
    assert_eq!(
        mock.request(1).body["messages"].as_array().unwrap().len(),
        1
    );

    let err = propose(&mut p, 3, &page(2), &all_ran(&t))
        .await
        .unwrap_err();
    assert!(err.is_recoverable());
    assert_eq!(
        err.to_string(),
        "anthropic response msg_bad: content block 1: unknown action `teleport`"
    );
    let err2 = propose(
        &mut p,
        4,
        &page(2),
        &[StepFeedback::failed(err.to_string())],
    )
    .await
    .unwrap_err();
    // The rejected batch was answered: the bad call with the reason, the others not run.
    let answered = mock.request(3).body["messages"].as_array().unwrap().clone();
    let results = answered[answered.len() - 1]["content"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results[0]["tool_use_id"], "toolu_a");
    assert_eq!(results[0]["is_error"], true);
    assert!(results[0]["content"]
        .as_str()
        .unwrap()
        .starts_with("Not executed"));
    assert_eq!(results[1]["content"], "unknown action `teleport`");
    assert_eq!(results[2]["content"], NOT_EXECUTED);
    assert!(
        err2.to_string()
            .contains("(99999, 5) is outside the 1280x800 screenshot"),
        "{err2}"
    );
    let err3 = propose(
        &mut p,
        5,
        &page(2),
        &[StepFeedback::failed(err2.to_string())],
    )
    .await
    .unwrap_err();
    assert!(err3.to_string().ends_with("`type` needs `text`"), "{err3}");
    assert!(err3.is_recoverable());
    // An empty reply is unreadable: not added, the turn is resent.
    let err4 = propose(
        &mut p,
        6,
        &page(2),
        &[StepFeedback::failed(err3.to_string())],
    )
    .await
    .unwrap_err();
    assert!(
        err4.to_string().contains("neither an action nor text"),
        "{err4}"
    );
    let before = mock.request(5).body["messages"].as_array().unwrap().len();
    let t = propose(
        &mut p,
        7,
        &page(2),
        &[StepFeedback::failed(err4.to_string())],
    )
    .await
    .unwrap();
    assert_eq!(done_claim(&t), DONE);
    assert_eq!(
        mock.request(6).body["messages"].as_array().unwrap().len(),
        before
    );
    let last = mock.request(6).body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"][0]["content"], "`type` needs `text`");
}

// ---------------------------------------------------------------------------------------------
// Retries, timeouts and keys (exercised through the Anthropic adapter; the transport is shared)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let mock = Mock::start().await;
    let good = fixture("anthropic/ci-incident-toolset.json");
    mock.push(Reply::status(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
    ));
    mock.push(Reply::status(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
    ));
    mock.push(Reply::json(&good[0]));
    let mut p = provider("anthropic:claude-opus-5-5", &anthropic_env(&mock), opts());
    let t = propose(&mut p, 1, &page(1), &[]).await.unwrap();
    assert_eq!(t.actions.len(), 5);
    assert_eq!(mock.count(), 3);
    // Usage is that of the request that succeeded.
    assert_eq!(t.usage.unwrap().output_tokens, 81);
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let mock = Mock::start().await;
    let good = fixture("anthropic/ci-incident-toolset.json");
    mock.push(
        Reply::status(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        )
        .header("retry-after", "1"),
    );
    mock.push(Reply::json(&good[0]));
    let mut p = provider("anthropic:claude-opus-5-5", &anthropic_env(&mock), opts());
    let started = std::time::Instant::now();
    propose(&mut p, 1, &page(1), &[]).await.unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_bound_is_not_waited_for() {
    let mock = Mock::start().await;
    mock.push(
        Reply::status(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        )
        .header("retry-after", "3600"),
    );
    let mut p = provider("anthropic:claude-opus-5-5", &anthropic_env(&mock), opts());
    let started = std::time::Instant::now();
    let e = propose(&mut p, 1, &page(1), &[]).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(
        matches!(
            e,
            ProviderError::Http {
                status: Some(429),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_recoverable());
    let msg = e.to_string();
    assert!(msg.contains("rate_limit_error: slow down"), "{msg}");
    assert!(
        msg.contains("retry after 3600 s, longer than the 2 s"),
        "{msg}"
    );
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn retries_are_bounded() {
    let mock = Mock::start().await;
    for _ in 0..6 {
        mock.push(Reply::status(503, "upstream unavailable"));
    }
    let mut o = opts();
    o.retry.max_retries = 2;
    let mut p = provider("anthropic:claude-opus-5-5", &anthropic_env(&mock), o);
    let e = propose(&mut p, 1, &page(1), &[]).await.unwrap_err();
    assert_eq!(mock.count(), 3);
    assert_eq!(
        e.to_string(),
        "provider request failed with status 503: unexpected response body: upstream unavailable (gave up after 3 attempts)"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried_and_never_show_the_key() {
    let mock = Mock::start().await;
    mock.push(Reply::status(
        401,
        &format!(r#"{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key {ANT_KEY}"}}}}"#),
    ));
    let mut p = provider("anthropic:claude-opus-5-5", &anthropic_env(&mock), opts());
    let e = propose(&mut p, 1, &page(1), &[]).await.unwrap_err();
    assert_eq!(mock.count(), 1);
    let shown = format!("{e} {e:?} {p:?}");
    assert!(!shown.contains("TESTKEY"), "{shown}");
    assert!(
        shown.contains("authentication_error: invalid x-api-key [redacted]"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_slow_server_times_out_and_connection_errors_are_reported() {
    // Nothing listens on this port: connection refused, retried, then reported.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut o = opts();
    o.retry.max_retries = 1;
    let mut p = provider(
        "anthropic:claude-opus-5-5",
        &[
            ("ANTHROPIC_API_KEY", ANT_KEY.to_string()),
            ("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}")),
        ],
        o,
    );
    let e = propose(&mut p, 1, &page(1), &[]).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Http { status: None, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("cannot connect"), "{e}");

    // A server that accepts but never answers: the per-request timeout fires.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut o = opts().with_request_timeout(std::time::Duration::from_millis(300));
    o.retry.max_retries = 0;
    let mut p = provider(
        "anthropic:claude-opus-5-5",
        &[
            ("ANTHROPIC_API_KEY", ANT_KEY.to_string()),
            ("ANTHROPIC_BASE_URL", format!("http://{addr}")),
        ],
        o,
    );
    let e = propose(&mut p, 1, &page(1), &[]).await.unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[test]
fn keys_never_appear_in_debug_output_or_configuration_errors() {
    let env = [
        ("ANTHROPIC_API_KEY", ANT_KEY.to_string()),
        ("OPENAI_API_KEY", OAI_KEY.to_string()),
        ("GEMINI_API_KEY", GEM_KEY.to_string()),
        (
            "OPENAI_COMPAT_API_KEY",
            "compat-TESTKEY-123456789".to_string(),
        ),
        (
            "OPENAI_COMPAT_BASE_URL",
            "http://127.0.0.1:1/v1".to_string(),
        ),
    ];
    for spec in [
        "anthropic:claude-opus-5-5",
        "openai:gpt-5.5",
        "gemini:gemini-3.6-flash",
        "openai-compat:qwen2.5-vl",
    ] {
        let p = try_provider(spec, &env, opts()).unwrap();
        let dbg = format!("{p:?} {p:#?}");
        assert!(!dbg.contains("TESTKEY"), "{spec}: {dbg}");
        assert!(dbg.contains("ApiKey(<redacted>)"), "{spec}");
    }
    let e = try_provider("anthropic:claude-opus-5-5", &[], opts()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "provider configuration: `ANTHROPIC_API_KEY` is not set"
    );
    let e = try_provider(
        "openai:gpt-5.5",
        &[
            ("OPENAI_API_KEY", OAI_KEY.to_string()),
            ("OPENAI_BASE_URL", "http://api.example.com/v1".to_string()),
        ],
        opts(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("in clear"), "{e}");
    assert!(!e.to_string().contains("TESTKEY"));
    let e = try_provider("anthropic:claude\nopus", &env, opts()).unwrap_err();
    assert!(e.to_string().contains("not a model name"), "{e}");
    assert!(try_provider("mistral:large", &env, opts()).is_err());
    assert!(try_provider("anthropic", &env, opts()).is_err());
    let mut o = opts();
    o.tool_version = Some("computer".into());
    assert!(try_provider("gemini:gemini-3.6-flash", &env, o).is_err());
}

// ---------------------------------------------------------------------------------------------
// OpenAI
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn openai_ga_runs_the_ci_incident_task() {
    let mock = Mock::start().await;
    let served = fixture("openai/ci-incident-ga.json");
    mock.push_all(&served);
    let mut p = provider("openai:gpt-5.5", &openai_env(&mock), priced("gpt-5.5"));

    let t1 = propose(&mut p, 1, &page(1), &[]).await.unwrap();
    assert_eq!(t1.actions[3], secret("ci_password"));
    assert_eq!(t1.usage.unwrap().input_tokens, 2200);
    let r = mock.request(0);
    dump("openai-ga-1", &r);
    assert_eq!(r.path, "/v1/responses");
    assert_eq!(r.headers["authorization"], format!("Bearer {OAI_KEY}"));
    assert!(!r.headers.contains_key("x-api-key"));
    assert_eq!(r.body["model"], "gpt-5.5");
    assert_eq!(r.body["tools"], json!([{"type": "computer"}]));
    assert!(r.body.get("truncation").is_none());
    assert!(r.body.get("previous_response_id").is_none());
    assert!(r.body["instructions"].as_str().unwrap().contains(GOAL));
    let content = &r.body["input"][0]["content"];
    assert_eq!(r.body["input"][0]["role"], "user");
    assert_eq!(content[0]["type"], "input_text");
    assert_eq!(content[1]["type"], "input_image");
    assert_eq!(content[1]["detail"], "original");
    assert_eq!(
        data_url_png(content[1]["image_url"].as_str().unwrap()),
        (1280, 800)
    );

    let t2 = propose(&mut p, 2, &page(2), &all_ran(&t1)).await.unwrap();
    assert_eq!(t2.actions[2], key("Return"));
    let r = mock.request(1);
    dump("openai-ga-2", &r);
    let input = r.body["input"].as_array().unwrap();
    // The opening message, the reply's output items verbatim, then the answer.
    assert_eq!(input[1], served[0]["output"][0]);
    assert_eq!(input[2], served[0]["output"][1]);
    assert_eq!(input[3]["type"], "computer_call_output");
    assert_eq!(input[3]["call_id"], "call_ci01");
    assert_eq!(input[3]["output"]["type"], "computer_screenshot");
    assert_eq!(input[3]["output"]["detail"], "original");
    assert_eq!(
        data_url_png(input[3]["output"]["image_url"].as_str().unwrap()),
        (1280, 800)
    );
    assert!(input[3].get("acknowledged_safety_checks").is_none());
    assert!(input[4]["content"][1]["text"]
        .as_str()
        .unwrap()
        .starts_with("<untrusted-page-content"));

    let t3 = propose(&mut p, 3, &page(3), &all_ran(&t2)).await.unwrap();
    let t4 = propose(&mut p, 4, &page(4), &all_ran(&t3)).await.unwrap();
    assert_eq!(
        t4.actions[1],
        Action::Scroll {
            at: Some(Point { x: 640.0, y: 450.0 }),
            dx: 0.0,
            dy: 300.0
        }
    );
    let t5 = propose(&mut p, 5, &page(5), &all_ran(&t4)).await.unwrap();
    let t6 = propose(
        &mut p,
        6,
        &page(6),
        &denied_at(&t5, 1, "denied: not on the task's path"),
    )
    .await
    .unwrap();
    let r = mock.request(5);
    let input = r.body["input"].as_array().unwrap();
    let note = input.last().unwrap()["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(note.contains("1. click point (282, 265): done ("), "{note}");
    assert!(
        note.contains("2. click point (944, 405): FAILED: denied: not on the task's path"),
        "{note}"
    );
    assert!(note.contains("3. type '"), "{note}");
    assert!(note.contains(NOT_EXECUTED), "{note}");
    // Pruned to the three newest screenshots; older ones became a placeholder.
    let real = count(&r.body["input"], &|v| {
        v.as_str()
            .is_some_and(|s| s.starts_with("data:image/png;base64,") && s.len() > 200)
    });
    assert_eq!(real, 3);
    assert_eq!(
        t6.actions[1],
        Action::Key {
            combo: KeyCombo {
                key: "a".into(),
                modifiers: Modifiers {
                    ctrl: true,
                    ..Modifiers::default()
                }
            },
            repeat: 1
        }
    );

    // Turn 7 carries a pending safety check: a signal for the engine, not acknowledged yet.
    let t7 = propose(&mut p, 7, &page(7), &all_ran(&t6)).await.unwrap();
    assert_eq!(t7.safety.len(), 1);
    assert_eq!(t7.safety[0].id, "cu_sc_ci0701");
    assert_eq!(t7.safety[0].code, "sensitive_domain");
    assert_eq!(t7.safety[0].action_index, Some(0));
    assert!(!mock
        .request(6)
        .body
        .to_string()
        .contains("acknowledged_safety_checks"));

    // A human approved it: the next request echoes the check.
    let fb = vec![StepFeedback::ran("clicked button 'Submit note'")
        .with_acknowledged(["cu_sc_ci0701".to_string()])];
    let t8 = propose(&mut p, 8, &page(8), &fb).await.unwrap();
    assert_eq!(done_claim(&t8), DONE);
    let r = mock.request(7);
    dump("openai-ga-8", &r);
    let input = r.body["input"].as_array().unwrap();
    let out = input
        .iter()
        .rev()
        .find(|i| i["type"] == "computer_call_output")
        .unwrap();
    assert_eq!(out["call_id"], "call_ci07");
    assert_eq!(
        out["acknowledged_safety_checks"],
        served[6]["output"][0]["pending_safety_checks"]
    );
}

#[tokio::test]
async fn openai_preview_acknowledges_safety_checks_only_after_approval() {
    let mock = Mock::start().await;
    let served = fixture("openai/ci-incident-preview.json");
    mock.push_all(&served);
    let mut o = opts();
    o.openai_current_url = true;
    let mut p = provider("openai:computer-use-preview", &openai_env(&mock), o);

    let t1 = propose(&mut p, 1, &page(2), &[]).await.unwrap();
    assert_eq!(t1.actions, vec![click(156.0, 50.0)]);
    assert_eq!(t1.safety[0].code, "malicious_instructions");
    let r = mock.request(0);
    dump("openai-preview-1", &r);
    assert_eq!(r.body["truncation"], "auto");
    assert_eq!(
        r.body["tools"],
        json!([{"type": "computer_use_preview", "display_width": 1280, "display_height": 800, "environment": "browser"}])
    );

    // The human declined: no acknowledgement, and the model is told the action did not run.
    let declined = vec![StepFeedback::failed(
        "denied: a human declined the provider's safety check",
    )];
    let t2 = propose(&mut p, 2, &page(2), &declined).await.unwrap();
    let r = mock.request(1);
    dump("openai-preview-2", &r);
    assert!(!r.body.to_string().contains("acknowledged_safety_checks"));
    let input = r.body["input"].as_array().unwrap();
    let out = input
        .iter()
        .find(|i| i["type"] == "computer_call_output")
        .unwrap();
    assert_eq!(out["call_id"], "call_pv01");
    assert!(out["output"].get("detail").is_none());
    assert_eq!(out["current_url"], "http://ci.example/runs");
    assert!(input.last().unwrap()["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("FAILED: denied: a human declined"));

    // Approved this time: the next request echoes exactly the pending check.
    let approved = vec![StepFeedback::ran("clicked").with_acknowledged([t2.safety[0].id.clone()])];
    let t3 = propose(&mut p, 3, &page(2), &approved).await.unwrap();
    let r = mock.request(2);
    dump("openai-preview-3", &r);
    let out = r.body["input"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|i| i["type"] == "computer_call_output")
        .unwrap()
        .clone();
    assert_eq!(out["call_id"], "call_pv02");
    assert_eq!(
        out["acknowledged_safety_checks"],
        served[1]["output"][0]["pending_safety_checks"]
    );
    // An acknowledgement for an id the model never sent is not echoed.
    let bogus = vec![StepFeedback::ran("typed").with_acknowledged(["cu_sc_made_up".to_string()])];
    let t4 = propose(&mut p, 4, &page(3), &bogus).await.unwrap();
    assert!(mock.request(3).body["input"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|i| i["type"] == "computer_call_output")
        .unwrap()
        .get("acknowledged_safety_checks")
        .is_none());
    assert_eq!(t3.actions, vec![typed("RUN-78432")]);
    assert_eq!(done_claim(&t4), "I searched for the run.");
}

#[tokio::test]
async fn openai_can_chain_turns_with_previous_response_id() {
    let mock = Mock::start().await;
    let served = fixture("openai/ci-incident-ga.json");
    mock.push_all(&served[..2]);
    let mut o = opts();
    o.openai_previous_response_id = true;
    let mut p = provider("openai:gpt-5.5", &openai_env(&mock), o);
    let t1 = propose(&mut p, 1, &page(1), &[]).await.unwrap();
    propose(&mut p, 2, &page(2), &all_ran(&t1)).await.unwrap();
    let r = mock.request(1);
    assert_eq!(r.body["previous_response_id"], served[0]["id"]);
    let input = r.body["input"].as_array().unwrap();
    assert_eq!(input[0]["type"], "computer_call_output");
    assert_eq!(input.len(), 2);
}

#[tokio::test]
async fn openai_malformed_replies() {
    let mock = Mock::start().await;
    let resp = |output: Value| json!({"id": "resp_bad", "object": "response", "output": output});
    mock.push(Reply::json(&resp(json!([
        {"type": "computer_call", "call_id": "c1", "actions": [{"type": "click", "button": "left", "x": 4000, "y": 1}], "pending_safety_checks": []}
    ]))));
    mock.push(Reply::json(&resp(json!([
        {"type": "computer_call", "call_id": "c2", "actions": [{"type": "teleport"}], "pending_safety_checks": []}
    ]))));
    mock.push(Reply::json(&resp(
        json!([{"type": "computer_call", "actions": [{"type": "wait"}]}]),
    )));
    mock.push(Reply::json(&json!({"id": "resp_x", "object": "response", "error": {"code": "server_error", "message": "oops"}, "output": []})));
    mock.push(Reply::json(&fixture("openai/ci-incident-ga.json")[7]));
    let mut p = provider("openai:gpt-5.5", &openai_env(&mock), opts());
    let e = propose(&mut p, 1, &page(1), &[]).await.unwrap_err();
    assert!(e.is_recoverable());
    assert!(
        e.to_string()
            .contains("(4000, 1) is outside the 1280x800 screenshot"),
        "{e}"
    );
    let e = propose(&mut p, 2, &page(1), &[StepFeedback::failed(e.to_string())])
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .ends_with("output item 0: action 0: unknown action `teleport`"),
        "{e}"
    );
    // The rejected call was answered with a screenshot (OpenAI has no error field) and a note.
    let r = mock.request(1);
    let input = r.body["input"].as_array().unwrap();
    assert!(input
        .iter()
        .any(|i| i["type"] == "computer_call_output" && i["call_id"] == "c1"));
    assert!(input.last().unwrap()["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("None of the actions of your last turn ran."));
    let e = propose(&mut p, 3, &page(1), &[StepFeedback::failed(e.to_string())])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("call_id"), "{e}");
    let e = propose(&mut p, 4, &page(1), &[StepFeedback::failed(e.to_string())])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("the response failed: oops"), "{e}");
    let t = propose(&mut p, 5, &page(1), &[StepFeedback::failed(e.to_string())])
        .await
        .unwrap();
    assert_eq!(done_claim(&t), DONE);
}

// ---------------------------------------------------------------------------------------------
// Gemini
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn gemini_3_runs_the_ci_incident_task() {
    let mock = Mock::start().await;
    let served = fixture("gemini/ci-incident-3x.json");
    mock.push_all(&served);
    let mut p = provider(
        "gemini:gemini-3.6-flash",
        &gemini_env(&mock),
        priced("gemini-3.6-flash"),
    );

    let t1 = propose(&mut p, 1, &page(1), &[]).await.unwrap();
    // Grid (494, 359) → CSS pixels.
    match &t1.actions[0] {
        Action::Click {
            target: Target::Point(pt),
            ..
        } => {
            assert!(
                (pt.x - 632.32).abs() < 1e-9 && (pt.y - 287.2).abs() < 1e-9,
                "{pt:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t1.actions[3], secret("ci_password"));
    assert_eq!(t1.usage.unwrap().output_tokens, 81);
    assert!(
        t1.raw.get("frame").is_none(),
        "Gemini coordinates are on the grid"
    );
    let r = mock.request(0);
    dump("gemini-3x-1", &r);
    assert_eq!(r.path, "/v1beta/models/gemini-3.6-flash:generateContent");
    assert_eq!(r.headers["x-goog-api-key"], GEM_KEY);
    assert!(!r.headers.contains_key("authorization"));
    assert_eq!(
        r.body["tools"],
        json!([{"computerUse": {"environment": "ENVIRONMENT_BROWSER"}}])
    );
    assert!(r.body["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains(GOAL));
    let parts = &r.body["contents"][0]["parts"];
    assert_eq!(r.body["contents"][0]["role"], "user");
    assert_eq!(parts[1]["inlineData"]["mimeType"], "image/png");
    assert_eq!(
        png_size(parts[1]["inlineData"]["data"].as_str().unwrap()),
        (1280, 800)
    );

    let t2 = propose(&mut p, 2, &page(2), &all_ran(&t1)).await.unwrap();
    assert_eq!(t2.actions.len(), 4, "type with press_enter is two actions");
    let r = mock.request(1);
    dump("gemini-3x-2", &r);
    // The model's content goes back verbatim, thought signature included.
    assert_eq!(r.body["contents"][1], served[0]["candidates"][0]["content"]);
    let parts = r.body["contents"][2]["parts"].as_array().unwrap();
    for (i, part) in parts[..5].iter().enumerate() {
        let fr = &part["functionResponse"];
        assert_eq!(fr["id"], format!("fc_01_{}", i + 1));
        assert_eq!(
            fr["name"],
            served[0]["candidates"][0]["content"]["parts"][i + 1]["functionCall"]["name"]
        );
        assert_eq!(fr["response"]["url"], "http://ci.example/runs");
        assert!(fr["response"].get("error").is_none());
        assert!(fr["response"].get("safety_acknowledgement").is_none());
        assert_eq!(
            fr.get("parts").is_some(),
            i == 4,
            "the screenshot rides on the last response"
        );
    }
    assert_eq!(
        png_size(
            parts[4]["functionResponse"]["parts"][0]["inlineData"]["data"]
                .as_str()
                .unwrap()
        ),
        (1280, 800)
    );

    let t3 = propose(&mut p, 3, &page(3), &all_ran(&t2)).await.unwrap();
    let t4 = propose(&mut p, 4, &page(4), &all_ran(&t3)).await.unwrap();
    let t5 = propose(&mut p, 5, &page(5), &all_ran(&t4)).await.unwrap();
    let t6 = propose(
        &mut p,
        6,
        &page(6),
        &denied_at(&t5, 1, "denied: outside the task"),
    )
    .await
    .unwrap();
    let r = mock.request(5);
    let parts = r.body["contents"].as_array().unwrap().last().unwrap()["parts"].clone();
    assert!(parts[0]["functionResponse"]["response"]
        .get("error")
        .is_none());
    assert_eq!(
        parts[1]["functionResponse"]["response"]["error"],
        "denied: outside the task"
    );
    assert_eq!(
        parts[2]["functionResponse"]["response"]["error"],
        NOT_EXECUTED
    );
    let images = count(&r.body["contents"], &|v| v.get("inlineData").is_some());
    assert_eq!(images, 3, "pruned to the newest three screenshots");

    let t7 = propose(&mut p, 7, &page(7), &all_ran(&t6)).await.unwrap();
    assert_eq!(t7.safety.len(), 1);
    assert_eq!(t7.safety[0].id, "fc_07_1:safety");
    assert_eq!(t7.safety[0].code, "require_confirmation");
    assert_eq!(
        t7.safety[0].message,
        "Submitting the note changes the incident record."
    );
    assert_eq!(t7.safety[0].action_index, Some(0));
    let fb = vec![StepFeedback::ran("clicked button 'Submit note'")
        .with_acknowledged([t7.safety[0].id.clone()])];
    let t8 = propose(&mut p, 8, &page(8), &fb).await.unwrap();
    assert_eq!(done_claim(&t8), DONE);
    let r = mock.request(7);
    dump("gemini-3x-8", &r);
    let parts = r.body["contents"].as_array().unwrap().last().unwrap()["parts"].clone();
    assert_eq!(parts[0]["functionResponse"]["id"], "fc_07_1");
    assert_eq!(
        parts[0]["functionResponse"]["response"]["safety_acknowledgement"],
        "true"
    );
    // No other request ever acknowledged anything.
    for i in 0..7 {
        assert!(
            !mock
                .request(i)
                .body
                .to_string()
                .contains("safety_acknowledgement"),
            "request {i}"
        );
    }
}

#[tokio::test]
async fn gemini_2_5_declined_confirmation_is_an_error_without_acknowledgement() {
    let mock = Mock::start().await;
    mock.push_all(&fixture("gemini/ci-incident-legacy.json"));
    let mut p = provider(
        "gemini:gemini-2.5-computer-use-preview-10-2025",
        &gemini_env(&mock),
        opts(),
    );
    let t1 = propose(&mut p, 1, &page(2), &[]).await.unwrap();
    assert_eq!(
        mock.request(0).body["tools"],
        json!([{"computerUse": {"environment": "ENVIRONMENT_BROWSER", "excludedPredefinedFunctions": ["search"]}}])
    );
    // type_text_at: click, ctrl+a, Delete, type, Enter; then the click that needs a human.
    assert_eq!(t1.actions.len(), 6);
    assert_eq!(t1.actions[4], key("Return"));
    assert_eq!(t1.safety.len(), 1);
    assert_eq!(t1.safety[0].id, "call-1:safety");
    assert_eq!(t1.safety[0].action_index, Some(5));
    let fb = denied_at(
        &t1,
        5,
        "denied: a human declined: I need to accept the cookie consent banner to continue.",
    );
    let t2 = propose(&mut p, 2, &page(2), &fb).await.unwrap();
    let r = mock.request(1);
    dump("gemini-legacy-2", &r);
    let parts = r.body["contents"][2]["parts"].clone();
    assert_eq!(parts[0]["functionResponse"]["name"], "type_text_at");
    assert!(
        parts[0]["functionResponse"].get("id").is_none(),
        "2.5 calls have no id"
    );
    assert_eq!(parts[1]["functionResponse"]["name"], "click_at");
    assert!(parts[1]["functionResponse"]["response"]["error"]
        .as_str()
        .unwrap()
        .starts_with("denied: a human declined"));
    assert!(!r.body.to_string().contains("safety_acknowledgement"));
    assert_eq!(t2.actions, vec![key("Page_Down"), key("ctrl+Home")]);
    let t3 = propose(&mut p, 3, &page(3), &all_ran(&t2)).await.unwrap();
    assert_eq!(
        done_claim(&t3),
        "The search results for RUN-78432 are shown."
    );
}

#[tokio::test]
async fn gemini_malformed_and_blocked_replies() {
    let mock = Mock::start().await;
    let candidate = |parts: Value| json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}], "responseId": "bad"});
    mock.push(Reply::json(
        &json!({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]}),
    ));
    mock.push(Reply::json(&candidate(
        json!([{"functionCall": {"name": "click_at", "args": {"x": 5000, "y": 10}}}]),
    )));
    mock.push(Reply::json(&candidate(
        json!([{"functionCall": {"name": "open_app", "args": {"app_name": "Mail"}}}]),
    )));
    mock.push(Reply::json(
        &json!({"promptFeedback": {"blockReason": "SAFETY"}}),
    ));
    let mut p = provider("gemini:gemini-3.6-flash", &gemini_env(&mock), opts());
    let e = propose(&mut p, 1, &page(1), &[]).await.unwrap_err();
    assert!(e.is_recoverable());
    assert!(e.to_string().contains("MALFORMED_FUNCTION_CALL"), "{e}");
    let e = propose(&mut p, 2, &page(1), &[StepFeedback::failed(e.to_string())])
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("(5000, 10) is outside the 999x999 grid"),
        "{e}"
    );
    assert_eq!(
        mock.request(1).body["contents"].as_array().unwrap().len(),
        1,
        "the malformed turn was not kept"
    );
    let e = propose(&mut p, 3, &page(1), &[StepFeedback::failed(e.to_string())])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("unsupported action `open_app`"),
        "{e}"
    );
    let r = mock.request(2);
    let fr = &r.body["contents"][2]["parts"][0]["functionResponse"];
    assert_eq!(fr["name"], "click_at");
    assert!(fr["response"]["error"]
        .as_str()
        .unwrap()
        .contains("outside the 999x999 grid"));
    let e = propose(&mut p, 4, &page(1), &[StepFeedback::failed(e.to_string())])
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Refused(_)), "{e:?}");
    assert!(!e.is_recoverable());
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible (open models)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn open_models_run_the_ci_incident_task_with_the_grammar() {
    let mock = Mock::start().await;
    let served = fixture("compat/ci-incident.json");
    mock.push_all(&served);
    let env = [("OPENAI_COMPAT_BASE_URL", mock.url("/v1"))];
    let mut p = provider("openai-compat:Qwen/Qwen2.5-VL-7B-Instruct", &env, opts());

    let t1 = propose(&mut p, 1, &page(1), &[]).await.unwrap();
    assert_eq!(t1.actions[3], secret("ci_password"));
    assert_eq!(t1.raw["provider"], "openai-compat");
    let r = mock.request(0);
    dump("compat-1", &r);
    assert_eq!(r.path, "/v1/chat/completions");
    assert!(
        !r.headers.contains_key("authorization"),
        "no key configured"
    );
    assert_eq!(r.body["model"], "Qwen/Qwen2.5-VL-7B-Instruct");
    let msgs = r.body["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.contains(GOAL));
    assert!(system.contains("click(x, y)"));
    assert!(system.contains("pixels of the 1280x800 screenshot"));
    assert_eq!(msgs[1]["content"][1]["type"], "image_url");
    assert_eq!(
        data_url_png(msgs[1]["content"][1]["image_url"]["url"].as_str().unwrap()),
        (1280, 800)
    );

    let t2 = propose(&mut p, 2, &page(2), &all_ran(&t1)).await.unwrap();
    let text = mock.request(1).body["messages"][3]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("1. click point (632, 287): done (click point (632, 287))"),
        "{text}"
    );
    // Turn 3: prose instead of the grammar is refused, then answered.
    let e = propose(&mut p, 3, &page(3), &all_ran(&t2))
        .await
        .unwrap_err();
    assert!(e.is_recoverable());
    assert!(
        e.to_string()
            .contains("must start with `Thought:` or `Action:`"),
        "{e}"
    );
    let t4 = propose(&mut p, 4, &page(3), &[StepFeedback::failed(e.to_string())])
        .await
        .unwrap();
    let r = mock.request(3);
    let msgs = r.body["messages"].as_array().unwrap();
    assert_eq!(
        msgs[msgs.len() - 2]["content"],
        served[2]["choices"][0]["message"]["content"]
    );
    assert!(msgs.last().unwrap()["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("could not be used: the reply must start with"));
    assert_eq!(t4.actions, vec![click(189.0, 336.0)]);
    let t5 = propose(&mut p, 5, &page(4), &all_ran(&t4)).await.unwrap();
    let t6 = propose(&mut p, 6, &page(5), &all_ran(&t5)).await.unwrap();
    let t7 = propose(
        &mut p,
        7,
        &page(6),
        &denied_at(&t6, 1, "denied: outside the task"),
    )
    .await
    .unwrap();
    let text = mock.request(6).body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("2. click point (944, 405): FAILED: denied: outside the task"),
        "{text}"
    );
    assert!(text.contains("3. type '"), "{text}");
    assert!(text.contains(NOT_EXECUTED), "{text}");
    let t8 = propose(&mut p, 8, &page(7), &all_ran(&t7)).await.unwrap();
    assert_eq!(t8.actions, vec![click(857.0, 497.0)]);
    let t9 = propose(&mut p, 9, &page(8), &all_ran(&t8)).await.unwrap();
    assert_eq!(done_claim(&t9), DONE);
    let r = mock.request(8);
    assert_eq!(
        count(&r.body["messages"], &|v| v.get("type")
            == Some(&json!("image_url"))),
        3
    );
}

#[tokio::test]
async fn open_models_with_a_key_and_a_normalised_grid() {
    let mock = Mock::start().await;
    mock.push(Reply::json(&json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "ui-tars",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Action: click(500, 500)"}, "finish_reason": "stop"}]})));
    let env = [
        ("OPENAI_COMPAT_BASE_URL", mock.url("/v1")),
        (
            "OPENAI_COMPAT_API_KEY",
            "compat-TESTKEY-123456789".to_string(),
        ),
    ];
    let mut o = opts();
    o.compat_coords = CompatCoords::Normalized { max: 999 };
    let mut p = provider("openai-compat:ui-tars-1.5-7b", &env, o);
    let t = propose(&mut p, 1, &page(1), &[]).await.unwrap();
    assert_eq!(t.actions, vec![click(640.0, 400.0)]);
    assert_eq!(t.raw["frame"], json!({"grid": 999}));
    let r = mock.request(0);
    assert_eq!(
        r.headers["authorization"],
        "Bearer compat-TESTKEY-123456789"
    );
    assert!(r.body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("0 to 999 grid"));
}

// ---------------------------------------------------------------------------------------------
// Recording a live run and replaying it
// ---------------------------------------------------------------------------------------------

/// Drives `p` to its done claim with all-ran feedback (approving every safety signal),
/// feeding recoverable errors back; returns the accepted proposals.
async fn drive<P: airlock_providers::Provider>(p: &mut P) -> Vec<airlock_providers::Proposal> {
    let mut out = Vec::new();
    let mut feedback = Vec::new();
    for step in 1..=20 {
        match propose(p, step, &page(step), &feedback).await {
            Ok(prop) => {
                let ids: Vec<String> = prop.safety.iter().map(|s| s.id.clone()).collect();
                feedback = all_ran(&prop);
                if let Some(first) = feedback.first_mut() {
                    first.acknowledged_safety = ids;
                }
                let done = matches!(prop.actions.as_slice(), [Action::Done { .. }]);
                out.push(prop);
                if done {
                    return out;
                }
            }
            Err(e) if e.is_recoverable() => feedback = vec![StepFeedback::failed(e.to_string())],
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no done claim");
}

#[tokio::test]
async fn a_recorded_live_run_replays_to_the_same_actions() {
    use airlock_providers::{Recorder, Recording, ScriptedProvider};
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "anthropic:claude-sonnet-4-6",
            "anthropic/ci-incident-legacy.json",
            "anthropic",
        ),
        (
            "anthropic:claude-opus-5-5",
            "anthropic/ci-incident-toolset.json",
            "anthropic",
        ),
        ("openai:gpt-5.5", "openai/ci-incident-ga.json", "openai"),
        (
            "openai:computer-use-preview",
            "openai/ci-incident-preview.json",
            "openai",
        ),
        (
            "gemini:gemini-3.6-flash",
            "gemini/ci-incident-3x.json",
            "gemini",
        ),
        (
            "gemini:gemini-2.5-computer-use-preview-10-2025",
            "gemini/ci-incident-legacy.json",
            "gemini",
        ),
        (
            "openai-compat:qwen2.5-vl",
            "compat/ci-incident.json",
            "compat",
        ),
    ];
    for (i, (spec, file, vendor)) in cases.into_iter().enumerate() {
        let mock = Mock::start().await;
        mock.push_all(&fixture(file));
        let env = match vendor {
            "anthropic" => anthropic_env(&mock),
            "openai" => openai_env(&mock),
            "gemini" => gemini_env(&mock),
            _ => vec![("OPENAI_COMPAT_BASE_URL", mock.url("/v1"))],
        };
        let mut o = opts();
        // Scaled screenshots: the transcript must carry the frame.
        o.max_screenshot = Some((1024, 640));
        let path = dir.path().join(format!("run-{i}.jsonl"));
        let live = provider(spec, &env, o);
        let mut rec = Recording::new(live, Some(Recorder::create(&path).unwrap()));
        let proposals = drive(&mut rec).await;
        let (_, recorder) = rec.into_inner();
        assert_eq!(recorder.unwrap().lines(), proposals.len(), "{spec}");

        let mut replay = ScriptedProvider::open(&path).unwrap();
        for (n, live) in proposals.iter().enumerate() {
            let again = replay
                .next_proposal(VP)
                .unwrap_or_else(|e| panic!("{spec} line {n}: {e}"));
            assert_eq!(again.actions, live.actions, "{spec} proposal {n}");
            assert_eq!(again.safety, live.safety, "{spec} proposal {n}");
        }
        assert_eq!(
            done_claim(&replay.next_proposal(VP).unwrap()),
            "transcript ended"
        );
    }
}
