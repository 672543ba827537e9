//! The compact accessibility snapshot: what the model reads instead of raw HTML.
//!
//! Built from CDP `Accessibility.getFullAXTree`, i.e. Chromium's own computed roles and names,
//! so what the model reads is what assistive technology would read. Interactive elements get a
//! ref `e<backendDOMNodeId>`: stable for the element's lifetime, and resolvable back to the DOM
//! node without trusting anything the page says about itself.

#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing by key yields Null for missing keys; it does not panic"
)]

use serde_json::Value;
use std::collections::HashMap;

/// Roles that carry no meaning of their own; their children are shown in their place.
const TRANSPARENT: &[&str] = &[
    "generic",
    "none",
    "presentation",
    "LineBreak",
    "InlineTextBox",
    "RootWebArea",
    "WebArea",
    "paragraph",
    "Section",
    "group",
    "LayoutTable",
    "LayoutTableRow",
    "LayoutTableCell",
];

/// Roles that get a ref because a model may act on them.
const INTERACTIVE: &[&str] = &[
    "link",
    "button",
    "textbox",
    "searchbox",
    "checkbox",
    "radio",
    "combobox",
    "listbox",
    "option",
    "menuitem",
    "menuitemcheckbox",
    "menuitemradio",
    "tab",
    "switch",
    "slider",
    "spinbutton",
    "treeitem",
    "DisclosureTriangle",
];

/// One AX node reduced to what we use.
#[derive(Debug, Clone)]
pub struct AxNode {
    pub id: String,
    pub role: String,
    pub name: String,
    pub value: Option<String>,
    pub ignored: bool,
    pub children: Vec<String>,
    pub backend_id: Option<i64>,
    pub props: Vec<(String, String)>,
}

impl AxNode {
    pub fn node_ref(&self) -> Option<String> {
        self.backend_id.map(|b| format!("e{b}"))
    }

    pub fn is_interactive(&self) -> bool {
        INTERACTIVE.contains(&self.role.as_str())
            || self
                .props
                .iter()
                .any(|(k, v)| k == "focusable" && v == "true" && self.role != "RootWebArea")
    }
}

fn ax_str(v: &Value, key: &str) -> String {
    match v.get(key).and_then(|x| x.get("value")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Parses the `nodes` array of `Accessibility.getFullAXTree`.
pub fn parse_ax_nodes(result: &Value) -> Vec<AxNode> {
    let Some(nodes) = result.get("nodes").and_then(Value::as_array) else {
        return Vec::new();
    };
    nodes
        .iter()
        .filter_map(|n| {
            let id = n.get("nodeId")?.as_str()?.to_string();
            let props = n
                .get("properties")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| {
                            let k = p.get("name")?.as_str()?.to_string();
                            let v = match p.get("value").and_then(|v| v.get("value")) {
                                Some(Value::String(s)) => s.clone(),
                                Some(other) => other.to_string(),
                                None => String::new(),
                            };
                            Some((k, v))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let value = Some(ax_str(n, "value")).filter(|s| !s.is_empty());
            Some(AxNode {
                id,
                role: ax_str(n, "role"),
                name: ax_str(n, "name"),
                value,
                ignored: n.get("ignored").and_then(Value::as_bool).unwrap_or(false),
                children: n
                    .get("childIds")
                    .and_then(Value::as_array)
                    .map(|c| {
                        c.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                backend_id: n.get("backendDOMNodeId").and_then(Value::as_i64),
                props,
            })
        })
        .collect()
}

/// The rendered snapshot and the refs it contains.
pub struct Snapshot {
    pub text: String,
    pub refs: Vec<String>,
}

const MAX_LINES: usize = 600;

/// Renders nodes as indented lines: `- button "Submit note" [ref=e42]`.
pub fn render(nodes: &[AxNode]) -> Snapshot {
    let by_id: HashMap<&str, &AxNode> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out = Vec::new();
    let mut refs = Vec::new();
    if let Some(root) = nodes.first() {
        walk(root, &by_id, 0, &mut out, &mut refs, None);
    }
    if out.len() > MAX_LINES {
        let extra = out.len() - MAX_LINES;
        out.truncate(MAX_LINES);
        out.push(format!("- … {extra} more lines not shown"));
    }
    Snapshot {
        text: out.join("\n"),
        refs,
    }
}

fn quote(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let short = airlock_core::action::truncate(&one_line, 200);
    format!("\"{}\"", short.replace('"', "\\\""))
}

/// How a state property reads in the snapshot, or `None` when it says nothing (its default):
/// `[disabled]`, `[required]`, `[invalid]`, `[selected]`, `[focused]` only when they hold;
/// `checked`, `pressed` and `expanded` also when false, since "unchecked" and "collapsed" are
/// states a person sees; `level` always.
fn state(k: &str, v: &str) -> Option<String> {
    let off = v.is_empty() || v == "false";
    match k {
        "level" => Some(format!(" [level={v}]")),
        "checked" | "pressed" | "expanded" => Some(format!(" [{k}={v}]")),
        "disabled" | "required" | "selected" | "focused" | "invalid" if off => None,
        "disabled" | "required" | "selected" | "focused" if v == "true" => Some(format!(" [{k}]")),
        // `invalid` is `true`, `spelling` or `grammar` when it holds.
        "invalid" if v == "true" => Some(" [invalid]".into()),
        "invalid" => Some(format!(" [invalid={v}]")),
        _ => None,
    }
}

fn walk(
    node: &AxNode,
    by_id: &HashMap<&str, &AxNode>,
    depth: usize,
    out: &mut Vec<String>,
    refs: &mut Vec<String>,
    parent_name: Option<&str>,
) {
    let transparent = node.ignored || TRANSPARENT.contains(&node.role.as_str());
    let mut child_depth = depth;
    let mut name_for_children = parent_name;
    if !transparent {
        if node.role == "StaticText" {
            if !node.name.trim().is_empty() && parent_name != Some(node.name.as_str()) {
                out.push(format!(
                    "{}- text {}",
                    "  ".repeat(depth),
                    quote(&node.name)
                ));
            }
            return;
        }
        let mut line = format!("{}- {}", "  ".repeat(depth), node.role);
        if !node.name.is_empty() {
            line.push(' ');
            line.push_str(&quote(&node.name));
        }
        for (k, v) in &node.props {
            if let Some(shown) = state(k, v) {
                line.push_str(&shown);
            }
        }
        if let Some(v) = &node.value {
            line.push_str(&format!(" value={}", quote(v)));
        }
        if node.is_interactive() {
            if let Some(r) = node.node_ref() {
                line.push_str(&format!(" [ref={r}]"));
                refs.push(r);
            }
        }
        out.push(line);
        child_depth = depth + 1;
        name_for_children = Some(node.name.as_str());
    }
    for c in &node.children {
        if let Some(child) = by_id.get(c.as_str()) {
            walk(child, by_id, child_depth, out, refs, name_for_children);
        }
    }
}

/// Non-ignored nodes whose role and name match exactly.
pub fn find_by_role<'a>(nodes: &'a [AxNode], role: &str, name: &str) -> Vec<&'a AxNode> {
    let name = name.trim();
    nodes
        .iter()
        .filter(|n| {
            !n.ignored
                && n.role.eq_ignore_ascii_case(role)
                && n.name.trim() == name
                && n.backend_id.is_some()
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> Value {
        json!({"nodes": [
            {"nodeId":"1","role":{"value":"RootWebArea"},"name":{"value":"Run"},"childIds":["2","3","5"],"backendDOMNodeId":1},
            {"nodeId":"2","role":{"value":"heading"},"name":{"value":"RUN-78432"},"properties":[{"name":"level","value":{"value":1}}],"childIds":["4"],"backendDOMNodeId":7},
            {"nodeId":"4","role":{"value":"StaticText"},"name":{"value":"RUN-78432"},"backendDOMNodeId":8},
            {"nodeId":"3","role":{"value":"button"},"name":{"value":"Delete run"},"backendDOMNodeId":9},
            {"nodeId":"5","role":{"value":"generic"},"ignored":true,"childIds":["6"]},
            {"nodeId":"6","role":{"value":"button"},"name":{"value":"Delete run"},"backendDOMNodeId":11}
        ]})
    }

    #[test]
    fn renders_roles_names_and_refs_for_interactive_nodes() {
        let nodes = parse_ax_nodes(&tree());
        let s = render(&nodes);
        assert!(
            s.text.contains("- heading \"RUN-78432\" [level=1]"),
            "{}",
            s.text
        );
        assert!(
            !s.text.contains("text \"RUN-78432\""),
            "duplicate static text shown"
        );
        assert!(s.text.contains("- button \"Delete run\" [ref=e9]"));
        assert_eq!(s.refs, vec!["e9", "e11"]);
    }

    #[test]
    fn default_states_are_left_out_and_held_ones_shown() {
        let nodes = parse_ax_nodes(&json!({"nodes": [
            {"nodeId":"1","role":{"value":"RootWebArea"},"childIds":["2","3","4"]},
            {"nodeId":"2","role":{"value":"textbox"},"name":{"value":"Note"},"backendDOMNodeId":5,
             "properties":[{"name":"invalid","value":{"value":"false"}},{"name":"required","value":{"value":false}},
                           {"name":"disabled","value":{"value":false}},{"name":"focusable","value":{"value":true}}]},
            {"nodeId":"3","role":{"value":"checkbox"},"name":{"value":"Notify"},"backendDOMNodeId":6,
             "properties":[{"name":"checked","value":{"value":"false"}},{"name":"required","value":{"value":true}},
                           {"name":"invalid","value":{"value":"true"}}]},
            {"nodeId":"4","role":{"value":"option"},"name":{"value":"High"},"backendDOMNodeId":7,
             "properties":[{"name":"selected","value":{"value":false}},{"name":"disabled","value":{"value":true}}]}
        ]}));
        let s = render(&nodes).text;
        assert!(s.contains("- textbox \"Note\" [ref=e5]"), "{s}");
        assert!(
            !s.contains("invalid=false") && !s.contains("required=false"),
            "{s}"
        );
        assert!(
            s.contains("- checkbox \"Notify\" [checked=false] [required] [invalid] [ref=e6]"),
            "{s}"
        );
        assert!(s.contains("- option \"High\" [disabled] [ref=e7]"), "{s}");
    }

    #[test]
    fn role_lookup_counts_every_match() {
        let nodes = parse_ax_nodes(&tree());
        assert_eq!(find_by_role(&nodes, "button", "Delete run").len(), 2);
        assert_eq!(find_by_role(&nodes, "button", "Submit note").len(), 0);
    }

    #[test]
    fn garbage_input_gives_an_empty_snapshot() {
        let nodes = parse_ax_nodes(&json!({"nodes": [1, "x", {"nodeId": 3}]}));
        assert!(nodes.is_empty());
        assert_eq!(render(&nodes).text, "");
    }
}
