//! Placeholder authorisation: host scope, frame origin and field kind, through the broker.

use crate::{env_of, env_spec, specs, CANARY};
use airlock_core::manifest::SecretKind;
use airlock_core::ElementFacts;
use airlock_secrets::{parse_placeholder, Broker, Placeholder, SecretDenied};

async fn broker() -> Broker {
    let mut b = Broker::new(&specs(vec![
        (
            "ci-password",
            env_spec("PW", SecretKind::Password, &["ci.example"]),
        ),
        (
            "ci-user",
            env_spec("USER", SecretKind::Username, &["ci.example"]),
        ),
        ("otp", env_spec("OTP", SecretKind::Otp, &["ci.example"])),
        (
            "api",
            env_spec(
                "API",
                SecretKind::ApiToken,
                &["ci.example", "incidents.example"],
            ),
        ),
        ("pin", env_spec("PIN", SecretKind::Otp, &["ci.example"])),
    ]))
    .unwrap();
    b.resolve_all_with_env(env_of(&[
        ("PW", CANARY),
        ("USER", "ci-bot"),
        ("OTP", "424242"),
        ("API", "tok-0123456789abcdef"),
        ("PIN", "42"),
    ]))
    .await
    .unwrap();
    b
}

fn field(input_type: &str, frame_url: &str) -> ElementFacts {
    ElementFacts {
        tag: "input".into(),
        input_type: Some(input_type.into()),
        editable: true,
        frame_url: frame_url.into(),
        ..ElementFacts::default()
    }
}

const LOGIN: &str = "http://ci.example/login";

/// Denials never show the value, and the placeholder text resolves to the name used here.
fn deny(b: &Broker, name: &str, f: &ElementFacts, page: &str, top: &str) -> SecretDenied {
    let placeholder = format!("{{{{secret:{name}}}}}");
    assert_eq!(parse_placeholder(&placeholder), Placeholder::Whole(name));
    let err = b.authorize_typing(name, f, page, top).unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains(CANARY) && !msg.contains("424242"), "{msg}");
    err
}

#[tokio::test]
async fn password_placeholder_is_typed_into_the_login_form() {
    let b = broker().await;
    let v = b
        .authorize_typing("ci-password", &field("password", LOGIN), LOGIN, LOGIN)
        .unwrap();
    assert_eq!(v.expose_str(), CANARY);
    // A same-origin iframe is fine.
    b.authorize_typing(
        "ci-password",
        &field("password", "http://ci.example/frames/login"),
        LOGIN,
        LOGIN,
    )
    .unwrap();
    b.authorize_typing("ci-user", &field("email", LOGIN), LOGIN, LOGIN)
        .unwrap();
    b.authorize_typing("otp", &field("tel", LOGIN), LOGIN, LOGIN)
        .unwrap();
    b.authorize_typing(
        "api",
        &field("text", "http://incidents.example/settings"),
        "http://incidents.example/settings",
        "http://incidents.example/settings",
    )
    .unwrap();
}

#[tokio::test]
async fn lookalike_and_other_hosts_are_denied() {
    let b = broker().await;
    for page in [
        "http://ci.example.evil.example/login",
        "http://evil.example/login",
        "http://ci-example.evil/login",
        "http://ci.ex\u{0430}mple/login",
        "https://sub.ci.example/login",
    ] {
        let err = deny(&b, "ci-password", &field("password", page), page, page);
        assert!(
            matches!(err, SecretDenied::HostNotInScope { .. }),
            "{page}: {err}"
        );
    }
    let page = "http://ci.example.evil.example/login";
    let err = deny(&b, "ci-password", &field("password", page), page, page);
    assert_eq!(
        err.to_string(),
        "secret `ci-password` may not be typed on `ci.example.evil.example`; it is scoped to `ci.example`"
    );
    assert_eq!(err.rule(), "secret.host_not_in_scope");
}

#[tokio::test]
async fn password_into_a_text_field_is_denied() {
    let b = broker().await;
    let err = deny(&b, "ci-password", &field("text", LOGIN), LOGIN, LOGIN);
    assert_eq!(
        err.to_string(),
        "secret `ci-password` is a password and may only be typed into a password input; the focus is a `text` input"
    );
    let err = deny(&b, "ci-user", &field("password", LOGIN), LOGIN, LOGIN);
    assert!(matches!(err, SecretDenied::WrongFieldKind { .. }), "{err}");
    let err = deny(&b, "otp", &field("search", LOGIN), LOGIN, LOGIN);
    assert!(matches!(err, SecretDenied::WrongFieldKind { .. }), "{err}");
    let textarea = ElementFacts {
        tag: "textarea".into(),
        editable: true,
        multiline: true,
        frame_url: LOGIN.into(),
        ..ElementFacts::default()
    };
    let err = deny(&b, "api", &textarea, LOGIN, LOGIN);
    assert!(
        err.to_string().ends_with("the focus is a textarea"),
        "{err}"
    );
    let button = ElementFacts {
        tag: "button".into(),
        frame_url: LOGIN.into(),
        ..ElementFacts::default()
    };
    let err = deny(&b, "ci-password", &button, LOGIN, LOGIN);
    assert!(matches!(err, SecretDenied::NotEditable { .. }), "{err}");
}

#[tokio::test]
async fn cross_origin_iframe_is_denied_even_on_an_allowed_page() {
    let b = broker().await;
    for frame in [
        "http://evil.example/overlay",
        "https://ci.example/login",
        "http://ci.example:8443/login",
        "http://incidents.example/login",
    ] {
        let err = deny(&b, "ci-password", &field("password", frame), LOGIN, LOGIN);
        assert!(
            matches!(err, SecretDenied::CrossOriginFrame { .. }),
            "{frame}: {err}"
        );
    }
    let err = deny(
        &b,
        "ci-password",
        &field("password", "http://evil.example/overlay?token=abc"),
        LOGIN,
        LOGIN,
    );
    assert_eq!(
        err.to_string(),
        "secret `ci-password` may not be typed into a frame from `http://evil.example`: only the top frame (`http://ci.example`) or a same-origin frame may receive it"
    );
    for frame in ["about:blank", "about:srcdoc", "", "data:text/html,x"] {
        let err = deny(&b, "ci-password", &field("password", frame), LOGIN, LOGIN);
        assert!(
            matches!(err, SecretDenied::BadUrl { .. }),
            "{frame:?}: {err}"
        );
    }
}

#[tokio::test]
async fn unknown_and_bad_urls_are_denied() {
    let b = broker().await;
    let err = deny(&b, "nope", &field("password", LOGIN), LOGIN, LOGIN);
    assert_eq!(err.to_string(), "unknown secret `nope`");
    let err = deny(
        &b,
        "ci-password",
        &field("password", LOGIN),
        "javascript:alert(1)",
        LOGIN,
    );
    assert!(
        matches!(err, SecretDenied::BadUrl { what: "page", .. }),
        "{err}"
    );
    let err = deny(
        &b,
        "ci-password",
        &field("password", LOGIN),
        "http://ci.example@evil.example/",
        LOGIN,
    );
    assert!(matches!(err, SecretDenied::BadUrl { .. }), "{err}");
}

#[tokio::test]
async fn short_secrets_are_still_scoped() {
    let b = broker().await;
    b.authorize_typing("pin", &field("number", LOGIN), LOGIN, LOGIN)
        .unwrap();
    let evil = "http://evil.example/";
    let err = deny(&b, "pin", &field("number", evil), evil, evil);
    assert!(matches!(err, SecretDenied::HostNotInScope { .. }), "{err}");
}
