//! Which file may go into which input: the manifest's `[[files]]`, checked before the gate.
//!
//! The model names a declared file by its id and never gives a path; the host chose where it
//! goes (the declared input, on the declared host). Anything else is refused with the reason.

use airlock_core::host::WebUrl;
use airlock_core::manifest::TaskManifest;
use airlock_core::{Action, ElementFacts};

/// Why an `Upload` must not run, as (rule, reason); `None` for any other action, or an upload
/// of a declared file into its declared input on its declared host.
pub(crate) fn denial(
    action: &Action,
    m: &TaskManifest,
    page_url: &str,
    element: Option<&ElementFacts>,
) -> Option<(String, String)> {
    let Action::Upload { target, file } = action else {
        return None;
    };
    let deny = |rule: &str, why: String| Some((rule.to_string(), why));
    let Some(decl) = m.files.iter().find(|f| &f.id == file) else {
        let ids: Vec<&str> = m.files.iter().map(|f| f.id.as_str()).collect();
        return deny(
            "upload.undeclared_file",
            format!(
                "file `{file}` is not declared in the task's [[files]] (declared: {})",
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            ),
        );
    };
    let host = WebUrl::parse(page_url).ok().map(|u| u.host.to_string());
    if host.as_deref() != Some(decl.host.as_str()) {
        return deny(
            "upload.host_not_declared",
            format!(
                "file `{file}` may only be uploaded on {}, not on `{}`",
                decl.host,
                host.unwrap_or_else(|| page_url.to_string())
            ),
        );
    }
    if *target != decl.input_target() {
        return deny(
            "upload.input_not_declared",
            format!(
                "file `{file}` may only go into its declared input `{}`",
                decl.input
            ),
        );
    }
    match element {
        Some(el) if el.tag == "input" && el.input_type.as_deref() == Some("file") => None,
        Some(el) => deny(
            "upload.not_a_file_input",
            format!("{} '{}' is not a file input", el.role, el.name),
        ),
        None => deny(
            "upload.no_input",
            format!("the declared input `{}` was not found", decl.input),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::Target;

    fn manifest() -> TaskManifest {
        let toml = r#"
[task]
name = "t"
goal = "g"
start_url = "http://ci.example/"
[scope]
domains = ["ci.example", "incidents.example"]
[[files]]
id = "report"
path = "/tmp/report.txt"
host = "incidents.example"
input = "attachment"
"#;
        match TaskManifest::from_toml(toml) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    fn file_input() -> ElementFacts {
        ElementFacts {
            tag: "input".into(),
            input_type: Some("file".into()),
            ..Default::default()
        }
    }

    fn upload(file: &str, css: &str) -> Action {
        Action::Upload {
            target: Target::Css(css.into()),
            file: file.into(),
        }
    }

    #[test]
    fn only_a_declared_file_into_its_input_on_its_host_is_allowed() {
        let m = manifest();
        let input = r#"input[type=file][name="attachment"]"#;
        let page = "http://incidents.example/lab/forms";
        let el = file_input();
        assert_eq!(denial(&upload("report", input), &m, page, Some(&el)), None);
        let rule = |a: &Action, page: &str, el: Option<&ElementFacts>| {
            denial(a, &m, page, el).map(|(r, _)| r)
        };
        assert_eq!(
            rule(&upload("/etc/passwd", input), page, Some(&el)).as_deref(),
            Some("upload.undeclared_file")
        );
        assert_eq!(
            rule(&upload("report", input), "http://ci.example/x", Some(&el)).as_deref(),
            Some("upload.host_not_declared")
        );
        assert_eq!(
            rule(&upload("report", "#other"), page, Some(&el)).as_deref(),
            Some("upload.input_not_declared")
        );
        let text = ElementFacts {
            tag: "input".into(),
            input_type: Some("text".into()),
            ..Default::default()
        };
        assert_eq!(
            rule(&upload("report", input), page, Some(&text)).as_deref(),
            Some("upload.not_a_file_input")
        );
        assert_eq!(rule(&Action::Back, page, None), None);
    }
}
