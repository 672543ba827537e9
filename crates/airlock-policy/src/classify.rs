//! The built-in risk classifier: what would this action do, and how much should a human care?
//!
//! It decides on the *resolved* element and on the request a form would really send, so a
//! button labelled "Save" that posts to `/runs/1/delete` is destructive, and a link the model
//! calls "docs" that points at another host is a navigation off the task.
//!
//! A navigation (typed URL, link, GET form) is a read: it is judged by what it does, not by the
//! words in its path, so `/docs/how-to-delete` and `/runs?q=delete-me` are reads. A path the
//! manifest itself declares `destructive` makes a navigation there destructive; the gate, which
//! knows the manifest, applies that ([`Classification::is_navigation`]).

use airlock_core::effect::{Effect, RiskTier};
use airlock_core::host::WebUrl;
use airlock_core::{Action, ElementFacts, TypedText};

use crate::normalize::{decode_path, for_classification, logical_reading, made_visible};

/// Words that mark an irreversible or privileged operation wherever they appear in a target's
/// name or in the path of a request that would change state (a form's POST). Navigations are
/// not judged by them.
const RISKY_WORDS: &[&str] = &[
    "delete",
    "remove",
    "destroy",
    "drop",
    "purge",
    "erase",
    "wipe",
    "rerun",
    "deploy",
    "redeploy",
    "release",
    "rollback",
    "approve",
    "merge",
    "transfer",
    "pay",
    "publish",
    "revoke",
    "terminate",
    "shutdown",
    "reset",
    "grant",
    "invite",
    "promote",
];

/// What an action would do and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub effect: Effect,
    pub tier: RiskTier,
    /// Where the effect lands (the page, or the request a form/link would send).
    pub scope: Option<WebUrl>,
    /// Rule id and plain-words reason for each finding.
    pub findings: Vec<(String, String)>,
    /// Set when the action cannot be allowed whatever the manifest says (bad scheme, etc.).
    pub refusal: Option<(String, String)>,
}

/// The finding ids of navigations: a typed URL, a link, a GET form.
const NAVIGATION_RULES: &[&str] = &[
    "builtin.risk.navigate",
    "builtin.risk.link",
    "builtin.risk.search-form",
];

impl Classification {
    /// Whether this is a navigation (classified as a read here; destructive only where the
    /// manifest declares its path so).
    pub fn is_navigation(&self) -> bool {
        self.effect == Effect::Read
            && self
                .findings
                .first()
                .is_some_and(|(rule, _)| NAVIGATION_RULES.contains(&rule.as_str()))
    }

    fn new(effect: Effect, tier: RiskTier, scope: Option<WebUrl>, rule: &str, why: String) -> Self {
        Classification {
            effect,
            tier,
            scope,
            findings: vec![(rule.to_string(), why)],
            refusal: None,
        }
    }

    fn refused(rule: &str, why: String) -> Self {
        Classification {
            effect: Effect::Read,
            tier: RiskTier::High,
            scope: None,
            findings: vec![],
            refusal: Some((rule.to_string(), why)),
        }
    }
}

/// Which risky words (if any) occur as words in `text`, as a person reads it: invisible
/// characters, compatibility forms and lookalikes do not hide a word
/// ([`for_classification`]), and a bidi override hides a word neither from the eye nor from
/// the stored order ([`logical_reading`]). A URL path goes through [`decode_path`] first.
pub fn risky_words(text: &str) -> Vec<&'static str> {
    let shown = for_classification(text);
    let mut lower = shown.to_lowercase();
    let stored = logical_reading(text);
    if stored != shown {
        // A line break: no word, and no "re run", spans the two readings.
        lower.push('\n');
        lower.push_str(&stored.to_lowercase());
    }
    let mut found: Vec<&'static str> = Vec::new();
    let tokens: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    for w in RISKY_WORDS {
        if tokens
            .iter()
            .any(|t| t == w || (t.starts_with(w) && t.len() <= w.len() + 2))
        {
            found.push(w);
        }
    }
    if (lower.contains("re-run") || lower.contains("re run")) && !found.contains(&"rerun") {
        found.push("rerun");
    }
    found
}

fn page(url: &str) -> Option<WebUrl> {
    WebUrl::parse(url).ok()
}

/// Classifies a navigation to `raw` (relative to `base`).
fn navigation(base: &str, raw: &str, rule: &str, what: &str) -> Classification {
    let parsed = if base.starts_with("http") {
        WebUrl::parse_relative(base, raw)
    } else {
        WebUrl::parse(raw)
    };
    match parsed {
        Ok(u) => {
            // A GET reads, whatever words its path holds.
            let why = format!("{what} {}", u.scope());
            Classification::new(Effect::Read, RiskTier::Low, Some(u), rule, why)
        }
        Err(e) => Classification::refused(
            "builtin.url.refused",
            format!("{what} `{raw}` refused: {e}"),
        ),
    }
}

/// Classifies submitting `el`'s form (by click, Enter, or a typed newline).
fn submission(el: &ElementFacts, page_url: &str) -> Classification {
    let Some(form) = &el.form else {
        return Classification::new(
            Effect::Draft,
            RiskTier::Medium,
            page(page_url),
            "builtin.risk.interact",
            "activates a control".into(),
        );
    };
    if form.method == "GET" {
        return navigation(
            page_url,
            &form.action,
            "builtin.risk.search-form",
            "submits a search (GET) to",
        );
    }
    let target = match WebUrl::parse_relative(page_url, &form.action) {
        Ok(u) => u,
        Err(e) => {
            return Classification::refused(
                "builtin.url.refused",
                format!("form posts to `{}`: {e}", form.action),
            )
        }
    };
    let mut words = risky_words(&el.name);
    for w in risky_words(&decode_path(&target.path)) {
        if !words.contains(&w) {
            words.push(w);
        }
    }
    if !words.is_empty() {
        let why = format!(
            "'{}' sends {} {} and reads like `{}`",
            made_visible(&el.name),
            form.method,
            target.scope(),
            words.join("`, `")
        );
        return Classification::new(
            Effect::Destructive,
            RiskTier::High,
            Some(target),
            "builtin.risk.destructive-words",
            why,
        );
    }
    if form.has_password {
        let why = format!("sends credentials to {}", target.scope());
        return Classification::new(
            Effect::Authenticate,
            RiskTier::Medium,
            Some(target),
            "builtin.risk.authenticate",
            why,
        );
    }
    let why = format!("submits a form: {} {}", form.method, target.scope());
    Classification::new(
        Effect::Submit,
        RiskTier::High,
        Some(target),
        "builtin.risk.submit",
        why,
    )
}

fn page_origin(page_url: &str) -> String {
    url::Url::parse(page_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// An element inside a same-process frame of another origin: classified as usual, but its
/// scope is the frame's host, so a frame outside the task's domains is denied.
fn activation_in_frame(el: &ElementFacts, _page_url: &str) -> Classification {
    let mut inner = el.clone();
    inner.frame_url = String::new();
    let mut c = activation(&inner, &el.frame_url);
    if let Ok(frame) = WebUrl::parse(&el.frame_url) {
        c.scope = Some(frame);
    }
    c
}

const CONTROL_ROLES: &[&str] = &[
    "button",
    "menuitem",
    "menuitemcheckbox",
    "menuitemradio",
    "tab",
    "checkbox",
    "radio",
    "switch",
    "option",
    "combobox",
    "listbox",
    "slider",
    "spinbutton",
];

/// Classifies activating an element (click, or Enter/Space on it).
fn activation(el: &ElementFacts, page_url: &str) -> Classification {
    if let Some(covered) = &el.covers {
        return Classification::refused(
            "builtin.grounding.transparent-overlay",
            format!("a layer covers {covered}; a click there would reach the layer, not the control under it"),
        );
    }
    if el.invisible {
        return Classification::refused(
            "builtin.grounding.invisible-target",
            format!(
                "the element under the point ({} '{}') is invisible",
                el.role,
                made_visible(&el.name)
            ),
        );
    }
    if let Some(src) = &el.frame_src {
        let host = WebUrl::parse(src)
            .map(|u| u.host.to_string())
            .unwrap_or_else(|_| src.clone());
        return Classification::refused(
            "builtin.grounding.opaque-frame",
            format!("the point is inside a frame from {host}; the host cannot see what a click there would do"),
        );
    }
    if !el.frame_url.is_empty() && !el.frame_url.starts_with(page_origin(page_url).as_str()) {
        if let Ok(frame) = WebUrl::parse(&el.frame_url) {
            let mut c = activation_in_frame(el, page_url);
            c.scope = c.scope.or(Some(frame));
            return c;
        }
    }
    if el.disabled {
        return Classification::new(
            Effect::Read,
            RiskTier::Low,
            page(page_url),
            "builtin.risk.disabled",
            format!("'{}' is disabled", made_visible(&el.name)),
        );
    }
    if el.is_submit {
        return submission(el, page_url);
    }
    let words = risky_words(&el.name);
    if !words.is_empty() {
        let why = format!(
            "target {} '{}' reads like `{}`",
            el.role,
            made_visible(&el.name),
            words.join("`, `")
        );
        return Classification::new(
            Effect::Destructive,
            RiskTier::High,
            page(page_url),
            "builtin.risk.destructive-words",
            why,
        );
    }
    if let Some(href) = &el.href {
        let what = if el.link_target.as_deref() == Some("_blank") {
            "opens a new window at"
        } else {
            "follows a link to"
        };
        return navigation(page_url, href, "builtin.risk.link", what);
    }
    if el.expanded.is_some() {
        return Classification::new(
            Effect::Read,
            RiskTier::Medium,
            page(page_url),
            "builtin.risk.expand",
            format!("expands or collapses '{}'", made_visible(&el.name)),
        );
    }
    if el.editable {
        return Classification::new(
            Effect::Read,
            RiskTier::Low,
            page(page_url),
            "builtin.risk.focus",
            format!("focuses field '{}'", made_visible(&el.name)),
        );
    }
    if CONTROL_ROLES.contains(&el.role.as_str()) {
        return Classification::new(
            Effect::Draft,
            RiskTier::Medium,
            page(page_url),
            "builtin.risk.interact",
            format!("activates {} '{}'", el.role, made_visible(&el.name)),
        );
    }
    Classification::new(
        Effect::Read,
        RiskTier::Low,
        page(page_url),
        "builtin.risk.read",
        "clicks page content".into(),
    )
}

/// The same refusal for every action on an element, whichever form named it (point, ref,
/// role and name, selector): an element a person cannot see, or one a click would not reach,
/// is a decoy until proven otherwise. Typing without a target goes to the focused field, which
/// gets the same check (a page can focus an invisible field by script).
fn unseen_target(
    action: &Action,
    element: Option<&ElementFacts>,
    focused: Option<&ElementFacts>,
) -> Option<Classification> {
    let el = match action {
        Action::Click { .. }
        | Action::Hover { .. }
        | Action::Select { .. }
        | Action::Upload { .. } => element?,
        Action::Type { .. } => element.or(focused)?,
        _ => return None,
    };
    let why = el.unseen()?;
    let rule = if el.covers.is_some() {
        "builtin.grounding.transparent-overlay"
    } else if el.covered_by.is_some() {
        "builtin.grounding.covered-target"
    } else {
        "builtin.grounding.invisible-target"
    };
    Some(Classification::refused(rule, why))
}

/// Classifies one action given the page it runs on and the elements it concerns.
pub fn classify(
    action: &Action,
    page_url: &str,
    element: Option<&ElementFacts>,
    focused: Option<&ElementFacts>,
) -> Classification {
    let read = |why: &str| {
        Classification::new(
            Effect::Read,
            RiskTier::Low,
            page(page_url),
            "builtin.risk.read",
            why.to_string(),
        )
    };
    if let Some(refusal) = unseen_target(action, element, focused) {
        return refusal;
    }
    match action {
        Action::Navigate { url } => {
            navigation(page_url, url, "builtin.risk.navigate", "navigates to")
        }
        Action::Click { .. } => match element {
            Some(el) => activation(el, page_url),
            None => Classification::refused(
                "builtin.grounding.unresolved",
                "click target was not resolved".into(),
            ),
        },
        Action::Type { text, .. } => {
            let el = element.or(focused);
            let literal = match text {
                TypedText::Literal(t) => t.as_str(),
                TypedText::Secret(_) => "",
            };
            match el {
                Some(el) if literal.contains('\n') && !el.multiline && el.form.is_some() => {
                    let mut c = submission(el, page_url);
                    c.findings.push((
                        "builtin.risk.implicit-submit".into(),
                        "a typed newline submits the form".into(),
                    ));
                    c
                }
                Some(el) if el.editable => Classification::new(
                    Effect::Draft,
                    RiskTier::Medium,
                    page(page_url),
                    "builtin.risk.draft",
                    format!("types into field '{}'", made_visible(&el.name)),
                ),
                _ => Classification::new(
                    Effect::Draft,
                    RiskTier::Medium,
                    page(page_url),
                    "builtin.risk.draft",
                    "types with no text field focused (keys may trigger page shortcuts)".into(),
                ),
            }
        }
        Action::Key { combo, .. } => {
            let activating = combo.is_enter() || (combo.key == " " && combo.modifiers.is_empty());
            match focused {
                Some(el)
                    if combo.is_enter() && el.editable && !el.multiline && el.form.is_some() =>
                {
                    let mut c = submission(el, page_url);
                    c.findings.push((
                        "builtin.risk.implicit-submit".into(),
                        "Enter in a field submits its form".into(),
                    ));
                    c
                }
                Some(el) if activating && !el.editable => activation(el, page_url),
                Some(el) if el.editable && !combo.modifiers.ctrl && !combo.modifiers.meta => {
                    Classification::new(
                        Effect::Draft,
                        RiskTier::Medium,
                        page(page_url),
                        "builtin.risk.draft",
                        format!("presses {combo} in field '{}'", made_visible(&el.name)),
                    )
                }
                _ if combo.modifiers.ctrl || combo.modifiers.meta || combo.modifiers.alt => {
                    Classification::new(
                        Effect::Draft,
                        RiskTier::Medium,
                        page(page_url),
                        "builtin.risk.shortcut",
                        format!("presses shortcut {combo}"),
                    )
                }
                _ => read(&format!("presses {combo}")),
            }
        }
        Action::Drag { .. } => Classification::new(
            Effect::Draft,
            RiskTier::Medium,
            page(page_url),
            "builtin.risk.drag",
            "drags on the page".into(),
        ),
        Action::Scroll { .. } => read("scrolls"),
        Action::MouseMove { .. } => read("moves the mouse"),
        Action::Hover { .. } => match element {
            Some(el) => read(&format!(
                "moves the mouse over {} '{}'",
                el.role,
                made_visible(&el.name)
            )),
            None => Classification::refused(
                "builtin.grounding.unresolved",
                "hover target was not resolved".into(),
            ),
        },
        Action::Select { value, .. } => Classification::new(
            Effect::Draft,
            RiskTier::Medium,
            page(page_url),
            "builtin.risk.draft",
            match element {
                Some(el) => format!(
                    "chooses option '{value}' in {} '{}'",
                    el.role,
                    made_visible(&el.name)
                ),
                None => format!("chooses option '{value}'"),
            },
        ),
        // Which file may go where is the manifest's `[[files]]`, checked by the engine before
        // the gate; here it is a draft: nothing is sent until the form is submitted.
        Action::Upload { file, .. } => Classification::new(
            Effect::Draft,
            RiskTier::Medium,
            page(page_url),
            "builtin.risk.upload",
            format!("puts declared file `{file}` into a file input"),
        ),
        Action::Wait { .. } => read("waits for the page"),
        Action::Screenshot => read("looks at the page"),
        Action::Back => read("goes back in history"),
        Action::Forward => read("goes forward in history"),
        Action::Done { .. } => read("claims the task is done"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use airlock_core::FormFacts;

    fn button(name: &str, method: &str, action: &str, password: bool) -> ElementFacts {
        ElementFacts {
            role: "button".into(),
            name: name.into(),
            tag: "button".into(),
            is_submit: true,
            form: Some(FormFacts {
                action: action.into(),
                method: method.into(),
                has_password: password,
                fields: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn risky_words_match_as_words() {
        assert_eq!(risky_words("Delete run"), vec!["delete"]);
        assert_eq!(risky_words("Rerun deploy"), vec!["rerun", "deploy"]);
        assert!(risky_words("Re-run").contains(&"rerun"));
        assert!(risky_words("Submit note").is_empty());
        assert!(
            risky_words("Payload viewer").is_empty(),
            "pay must match as a word"
        );
    }

    #[test]
    fn a_harmless_label_on_a_destructive_request_is_destructive() {
        let page = "http://ci.example/runs/RUN-78432";
        let c = activation(
            &button(
                "OK",
                "POST",
                "http://ci.example/runs/RUN-78432/delete",
                false,
            ),
            page,
        );
        assert_eq!(c.effect, Effect::Destructive);
        assert_eq!(c.tier, RiskTier::High);
    }

    #[test]
    fn forms_are_classified_by_the_request_they_send() {
        let page = "http://incidents.example/incidents/INC-2048";
        let c = activation(
            &button(
                "Submit note",
                "POST",
                "http://incidents.example/incidents/INC-2048/notes",
                false,
            ),
            page,
        );
        assert_eq!((c.effect, c.tier), (Effect::Submit, RiskTier::High));
        assert_eq!(
            c.scope.unwrap().scope(),
            "incidents.example/incidents/INC-2048/notes"
        );
        let c = activation(
            &button("Search", "GET", "http://ci.example/runs/search", false),
            page,
        );
        assert_eq!((c.effect, c.tier), (Effect::Read, RiskTier::Low));
        let c = activation(
            &button("Sign in", "POST", "http://ci.example/login", true),
            page,
        );
        assert_eq!((c.effect, c.tier), (Effect::Authenticate, RiskTier::Medium));
    }

    #[test]
    fn enter_in_a_form_field_is_a_submission() {
        let field = ElementFacts {
            role: "textbox".into(),
            name: "Note".into(),
            editable: true,
            form: button(
                "x",
                "POST",
                "http://incidents.example/incidents/INC-2048/notes",
                false,
            )
            .form,
            ..Default::default()
        };
        let key = Action::Key {
            combo: airlock_core::KeyCombo::parse("Return").unwrap(),
            repeat: 1,
        };
        let c = classify(
            &key,
            "http://incidents.example/incidents/INC-2048",
            None,
            Some(&field),
        );
        assert_eq!(c.effect, Effect::Submit);
        let typed = Action::Type {
            target: None,
            text: TypedText::Literal("hello\n".into()),
        };
        let c = classify(
            &typed,
            "http://incidents.example/incidents/INC-2048",
            None,
            Some(&field),
        );
        assert_eq!(c.effect, Effect::Submit);
    }

    #[test]
    fn overlays_invisible_targets_and_opaque_frames_are_refused() {
        let page = "http://ci.example/runs";
        let mut el = ElementFacts {
            role: "generic".into(),
            frame_url: page.into(),
            ..Default::default()
        };
        el.covers = Some("button 'Submit'".into());
        assert!(activation(&el, page)
            .refusal
            .unwrap()
            .1
            .contains("covers button 'Submit'"));
        el.covers = None;
        el.invisible = true;
        assert_eq!(
            activation(&el, page).refusal.unwrap().0,
            "builtin.grounding.invisible-target"
        );
        el.invisible = false;
        el.frame_src = Some("http://evil.example/frame".into());
        assert!(activation(&el, page)
            .refusal
            .unwrap()
            .1
            .contains("evil.example"));
    }

    #[test]
    fn typing_or_clicking_an_unseen_element_is_refused_whatever_named_it() {
        let page = "http://ci.example/login";
        let field = ElementFacts {
            role: "textbox".into(),
            name: "Password".into(),
            editable: true,
            input_type: Some("password".into()),
            hidden: Some("fully transparent (opacity 0)".into()),
            frame_url: page.into(),
            ..Default::default()
        };
        let typed = |target| Action::Type {
            target,
            text: TypedText::Literal("x".into()),
        };
        let named = typed(Some(airlock_core::Target::Role {
            role: "textbox".into(),
            name: "Password".into(),
        }));
        let c = classify(&named, page, Some(&field), None);
        let (rule, why) = c.refusal.unwrap();
        assert_eq!(rule, "builtin.grounding.invisible-target");
        assert!(why.contains("cannot be seen: fully transparent"), "{why}");
        // The focused field gets the same check.
        let c = classify(&typed(None), page, None, Some(&field));
        assert!(c.refusal.is_some());
        let covered = ElementFacts {
            hidden: None,
            covered_by: Some("generic 'Promo'".into()),
            ..field
        };
        let click = Action::Click {
            target: airlock_core::Target::Css("#pw".into()),
            button: airlock_core::MouseButton::Left,
            count: 1,
            modifiers: airlock_core::Modifiers::default(),
        };
        let c = classify(&click, page, Some(&covered), None);
        assert_eq!(c.refusal.unwrap().0, "builtin.grounding.covered-target");
    }

    #[test]
    fn an_element_in_a_frame_is_scoped_to_the_frame_host() {
        let mut el = button("Approve", "POST", "http://evil.example/approve", false);
        el.is_submit = false;
        el.form = None;
        el.name = "Continue".into();
        el.frame_url = "http://evil.example/frame".into();
        let c = activation(&el, "http://ci.example/runs");
        assert_eq!(c.scope.unwrap().host.as_str(), "evil.example");
    }

    /// A control that is not a submit button: classified by its name alone.
    fn control(name: &str) -> ElementFacts {
        ElementFacts {
            role: "button".into(),
            name: name.into(),
            tag: "button".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_disguised_name_classifies_as_the_name_it_reads_like() {
        let page = "http://ci.example/projects/1";
        let plain = activation(&control("Delete project"), page);
        assert_eq!(
            (plain.effect, plain.tier),
            (Effect::Destructive, RiskTier::High)
        );
        let plain_form = activation(
            &button("Delete project", "POST", "/projects/1/archive", false),
            page,
        );
        assert_eq!(plain_form.effect, Effect::Destructive);
        for (how, name) in crate::normalize::tests::DISGUISED {
            let c = activation(&control(name), page);
            assert_eq!(
                (c.effect, c.tier),
                (plain.effect, plain.tier),
                "{how}: {name:?}"
            );
            assert_eq!(c.findings[0].0, plain.findings[0].0, "{how}");
            let f = activation(&button(name, "POST", "/projects/1/archive", false), page);
            assert_eq!(f.effect, plain_form.effect, "{how} (form): {name:?}");
            // Typed into, or pressed Enter on, it is not a way around either.
            let key = Action::Key {
                combo: airlock_core::KeyCombo::parse("Return").unwrap(),
                repeat: 1,
            };
            assert_eq!(
                classify(&key, page, None, Some(&control(name))).effect,
                Effect::Destructive,
                "{how} (Enter)"
            );
        }
    }

    #[test]
    fn a_disguised_path_classifies_as_the_path_it_reads_like() {
        let page = "http://ci.example/projects/1";
        let plain = activation(&button("OK", "POST", "/projects/1/delete", false), page);
        assert_eq!(plain.effect, Effect::Destructive);
        for path in [
            "/projects/1/de%E2%80%8Blete",
            "/projects/1/D%D0%B5lete",
            "/projects/1/%EF%BC%A4%EF%BD%85%EF%BD%8C%EF%BD%85%EF%BD%94%EF%BD%85",
            "/projects/1/de%C2%ADlete",
        ] {
            let c = activation(&button("OK", "POST", path, false), page);
            assert_eq!((c.effect, c.tier), (plain.effect, plain.tier), "{path}");
        }
    }

    #[test]
    fn benign_names_keep_their_reading() {
        let page = "http://ci.example/projects/1";
        for name in ["Save draft", "Save\u{a0}draft", "Save\u{200b} draft"] {
            let c = activation(&control(name), page);
            assert_eq!(c.effect, Effect::Draft, "{name:?}");
        }
        // Another script's word is read as it is, whatever it means: no panic, no false
        // lookalike of a risky word.
        for name in ["Удалить", "Сохранить черновик", "削除", "\u{202e}"]
        {
            let c = activation(&control(name), page);
            assert_eq!(c.effect, Effect::Draft, "{name:?}");
        }
    }

    #[test]
    fn bad_schemes_are_refused_outright() {
        for url in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,x",
            "http://user@ci.example/",
        ] {
            let c = classify(
                &Action::Navigate { url: url.into() },
                "http://ci.example/",
                None,
                None,
            );
            assert!(c.refusal.is_some(), "{url}");
        }
    }
}
