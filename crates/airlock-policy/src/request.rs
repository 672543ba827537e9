//! The request layer's verdict: what a request the *page* sends would do, and whether the task
//! lets it.
//!
//! The gate decides on the agent's actions. But a page on an allowed host can send requests of
//! its own (a script's `fetch("/incidents/INC-9911/resolve", {method: "POST"})`, a form it
//! submits from a timer, a `location =` to a destructive path, an auto-download), and those
//! must not be allowed just because their host is in scope. Interception asks this module about
//! every request that passed the host check, and it answers with the same vocabulary the gate
//! uses: the request's [`Effect`], checked against the manifest's declared effects.
//!
//! - Reads (GET, HEAD, OPTIONS) pass, except a top-level navigation to a path the manifest
//!   declares `destructive`: that is destructive, as the gate would say. Words in a path
//!   (`/docs/how-to-delete`) do not make a navigation destructive; a GET is a read.
//! - Anything else (POST, PUT, PATCH, DELETE) changes server state: `destructive` when the path
//!   reads like it or the method is DELETE, `authenticate` on a path declared for logging in,
//!   otherwise `submit`. It must be declared for that host and path. A declared `submit` or
//!   `destructive` request also needs a step of the agent that was authorised for that very
//!   scope (the gate recorded the decision and, for these effects, a human's approval) and is
//!   executing now; otherwise the page is acting on its own and is refused.
//! - A download must be declared (`download`) for the path it comes from.
//!
//! Pure: the caller supplies what is armed (the scopes of the action executing now).

use crate::classify::risky_words;
use crate::normalize::decode_path;
use airlock_core::effect::Effect;
use airlock_core::host::WebUrl;
use airlock_core::manifest::TaskManifest;

/// A request as the browser is about to send it.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    /// HTTP method as sent (any case).
    pub method: &'a str,
    pub url: &'a str,
    /// A top-level document navigation (not a frame, script or image).
    pub navigation: bool,
    /// A file the browser is about to save, rather than a request to show or run.
    pub download: bool,
}

/// Why a page's request is allowed, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestVerdict {
    /// It only reads, or its effect is declared and needs no authorisation.
    Allowed(Effect),
    /// Its effect was declared and an executing step was authorised for this scope.
    Authorised(Effect),
    /// Its effect is declared for that path, but no step of the agent authorised for it is
    /// executing: the page is acting on its own. The host refuses it, or holds it for a human
    /// when the agent's input may have caused it.
    Unauthorised { effect: Effect, reason: String },
    /// Refused, with the reason in a reviewer's words.
    Refused { effect: Effect, reason: String },
}

impl RequestVerdict {
    pub fn is_allowed(&self) -> bool {
        matches!(
            self,
            RequestVerdict::Allowed(_) | RequestVerdict::Authorised(_)
        )
    }
}

fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The effect a request would have, by method and path.
pub fn request_effect(m: &TaskManifest, method: &str, url: &WebUrl, navigation: bool) -> Effect {
    let method = method.to_ascii_uppercase();
    if is_safe(&method) {
        if navigation && m.declares(Effect::Destructive, url) {
            return Effect::Destructive;
        }
        return Effect::Read;
    }
    // As the path reads, so `/de%E2%80%8Blete` (a zero-width space inside) is a delete.
    let destructive_path = !risky_words(&decode_path(&url.path)).is_empty();
    if method == "DELETE" || destructive_path {
        return Effect::Destructive;
    }
    if m.declares(Effect::Authenticate, url) {
        return Effect::Authenticate;
    }
    Effect::Submit
}

/// Decides one request of the page. `armed` are the scopes (`host/path`, as in
/// [`WebUrl::scope`]) of the agent's step executing now, when it was authorised for a
/// `submit` or `destructive` effect.
pub fn check_request(m: &TaskManifest, req: &PageRequest<'_>, armed: &[String]) -> RequestVerdict {
    let url = match WebUrl::parse(req.url) {
        Ok(u) => u,
        Err(e) => {
            return RequestVerdict::Refused {
                effect: Effect::Read,
                reason: e.to_string(),
            }
        }
    };
    let method = req.method.to_ascii_uppercase();
    if req.download {
        if m.declares(Effect::Download, &url) {
            return RequestVerdict::Allowed(Effect::Download);
        }
        return RequestVerdict::Refused {
            effect: Effect::Download,
            reason: format!(
                "a download from {}: `download` is not declared for that path",
                url.scope()
            ),
        };
    }
    let effect = request_effect(m, &method, &url, req.navigation);
    let what = if req.navigation {
        format!("navigation to {}", url.scope())
    } else {
        format!("{method} {} sent by the page", url.scope())
    };
    match effect {
        Effect::Read => RequestVerdict::Allowed(effect),
        _ if !m.declares(effect, &url) => RequestVerdict::Refused {
            effect,
            reason: format!("{what}: `{effect}` is not declared for that path"),
        },
        Effect::Submit | Effect::Destructive => {
            if armed.iter().any(|s| *s == url.scope()) {
                RequestVerdict::Authorised(effect)
            } else {
                RequestVerdict::Unauthorised {
                    effect,
                    reason: format!(
                        "{what}: a `{effect}` request needs an approved step of the agent for \
                         that path, and none is executing"
                    ),
                }
            }
        }
        _ => RequestVerdict::Allowed(effect),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> TaskManifest {
        TaskManifest::from_toml(MANIFEST).unwrap()
    }

    const MANIFEST: &str = r#"
[task]
name = "t"
goal = "g"
start_url = "http://ci.example/"
[scope]
domains = ["ci.example", "incidents.example"]
[[effects]]
host = "ci.example"
paths = ["/*"]
allow = ["read", "draft"]
[[effects]]
host = "ci.example"
paths = ["/login"]
allow = ["authenticate"]
[[effects]]
host = "incidents.example"
paths = ["/incidents/INC-2048/notes"]
allow = ["submit"]
[[effects]]
host = "ci.example"
paths = ["/artifacts/*"]
allow = ["download"]
[budgets]
max_steps = 5
"#;

    fn req<'a>(method: &'a str, url: &'a str) -> PageRequest<'a> {
        PageRequest {
            method,
            url,
            navigation: false,
            download: false,
        }
    }

    #[test]
    fn a_script_post_to_an_undeclared_path_is_refused_with_the_path() {
        let v = check_request(
            &manifest(),
            &req(
                "POST",
                "http://incidents.example/incidents/INC-9911/resolve",
            ),
            &[],
        );
        let RequestVerdict::Refused { effect, reason } = v else {
            panic!("{v:?}")
        };
        assert_eq!(effect, Effect::Submit);
        assert!(
            reason.contains("incidents.example/incidents/INC-9911/resolve"),
            "{reason}"
        );
        assert!(reason.contains("not declared"), "{reason}");
    }

    #[test]
    fn a_declared_submit_needs_the_authorised_step_executing() {
        let m = manifest();
        let r = req("post", "http://incidents.example/incidents/INC-2048/notes");
        assert!(matches!(
            check_request(&m, &r, &[]),
            RequestVerdict::Unauthorised {
                effect: Effect::Submit,
                ..
            }
        ));
        assert!(
            !check_request(&m, &r, &["incidents.example/incidents/INC-9911".into()]).is_allowed()
        );
        assert_eq!(
            check_request(
                &m,
                &r,
                &["incidents.example/incidents/INC-2048/notes".into()]
            ),
            RequestVerdict::Authorised(Effect::Submit)
        );
    }

    #[test]
    fn reads_pass_and_declared_destructive_navigations_do_not() {
        let m = manifest();
        assert!(
            check_request(&m, &req("GET", "http://ci.example/runs/RUN-1/rerun"), &[]).is_allowed()
        );
        assert!(check_request(&m, &req("HEAD", "http://ci.example/x"), &[]).is_allowed());
        let nav = |url| PageRequest {
            navigation: true,
            ..req("GET", url)
        };
        // Words in the path are not what a GET does.
        for url in [
            "http://ci.example/runs/RUN-1/rerun",
            "http://ci.example/docs/how-to-delete",
            "http://ci.example/runs?q=delete-me",
        ] {
            assert_eq!(
                check_request(&m, &nav(url), &[]),
                RequestVerdict::Allowed(Effect::Read),
                "{url}"
            );
        }
        // A path the manifest declares destructive is destructive, and needs the agent's step.
        let text = format!(
            "{}\n[[effects]]\nhost = \"ci.example\"\npaths = [\"/runs/*/purge\"]\nallow = [\"destructive\"]\n",
            MANIFEST
        );
        let m = TaskManifest::from_toml(&text).unwrap();
        let v = check_request(&m, &nav("http://ci.example/runs/RUN-1/purge"), &[]);
        assert!(
            matches!(
                v,
                RequestVerdict::Unauthorised {
                    effect: Effect::Destructive,
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn delete_is_destructive_even_on_a_declared_submit_path() {
        let m = manifest();
        let v = check_request(
            &m,
            &req(
                "DELETE",
                "http://incidents.example/incidents/INC-2048/notes",
            ),
            &["incidents.example/incidents/INC-2048/notes".into()],
        );
        assert!(
            matches!(
                v,
                RequestVerdict::Refused {
                    effect: Effect::Destructive,
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn a_path_with_invisible_characters_reads_as_what_it_says() {
        let m = manifest();
        for path in [
            "/projects/1/delete",
            "/projects/1/de%E2%80%8Blete",
            "/projects/1/d%D0%B5lete",
            "/projects/1/%E2%80%AEdelete",
        ] {
            let url = WebUrl::parse(&format!("http://ci.example{path}")).unwrap();
            assert_eq!(
                request_effect(&m, "POST", &url, false),
                Effect::Destructive,
                "{path}"
            );
        }
        let url = WebUrl::parse("http://ci.example/projects/1/caf%C3%A9").unwrap();
        assert_eq!(request_effect(&m, "POST", &url, false), Effect::Submit);
    }

    #[test]
    fn login_posts_are_authentication_where_declared() {
        let m = manifest();
        assert_eq!(
            check_request(&m, &req("POST", "http://ci.example/login"), &[]),
            RequestVerdict::Allowed(Effect::Authenticate)
        );
        // A POST anywhere else on the read-only host is a submit the task never declared.
        assert!(!check_request(&m, &req("POST", "http://ci.example/search"), &[]).is_allowed());
    }

    #[test]
    fn downloads_must_be_declared_for_their_path() {
        let m = manifest();
        let d = |url| PageRequest {
            download: true,
            ..req("GET", url)
        };
        assert!(check_request(&m, &d("http://ci.example/artifacts/log.txt"), &[]).is_allowed());
        let v = check_request(&m, &d("http://ci.example/lab/files/installer.sh"), &[]);
        assert!(
            matches!(
                v,
                RequestVerdict::Refused {
                    effect: Effect::Download,
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn unparseable_urls_are_refused() {
        assert!(!check_request(&manifest(), &req("POST", "javascript:alert(1)"), &[]).is_allowed());
    }
}
