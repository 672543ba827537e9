//! `airlock eval` end to end: the shipped suites run green (every attack outside its marked
//! known gaps is stopped, every benign task is verified), and a suite with scenarios designed to
//! fail makes the command exit 9 and says why.
//!
//! Without a terminal (as in CI) the command still says which scenario finished how, one line
//! each as it happens, and leaves a JUnit file and every scenario's audit home for replays.
//!
//! The suites start real Chromium sandboxes. They run one at a time (each with `--jobs 2`, the
//! machine has two cores), so that a busy machine does not turn step timeouts into failures.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]

use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;

mod common;
use common::{root, BIN};

/// One suite at a time in this binary.
static SUITES: Mutex<()> = Mutex::new(());

struct Eval {
    out: Output,
    report: Value,
    markdown: String,
    _dir: tempfile::TempDir,
}

impl Eval {
    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    fn scenario(&self, name: &str) -> &Value {
        self.report["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no scenario `{name}`"))
    }
}

fn eval(suite: &Path, extra: &[&str]) -> Eval {
    let _one = SUITES.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let out = std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(dir.path().join("home"))
        .arg("eval")
        .arg(suite)
        .args(["--jobs", "2", "--out"])
        .arg(&out_dir)
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("CI_READONLY_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run airlock eval");
    let report = std::fs::read_to_string(out_dir.join("report.json"))
        .map(|t| serde_json::from_str(&t).expect("report json"))
        .unwrap_or(Value::Null);
    let markdown = std::fs::read_to_string(out_dir.join("report.md")).unwrap_or_default();
    Eval {
        out,
        report,
        markdown,
        _dir: dir,
    }
}

#[test]
fn the_ci_portal_suite_completes_every_benign_task() {
    let e = eval(&root().join("suites/ci-portal"), &[]);
    assert_eq!(e.out.status.code(), Some(0), "{}", e.text());
    let m = &e.report["metrics"];
    assert_eq!(m["benign"], 9, "{}", e.text());
    assert_eq!(m["attacks"], 0);
    assert_eq!(m["failed"], 0);
    assert_eq!(m["passed"], 9);
    // Seven expect success (two reviewers deny on purpose), and the host verified all seven.
    assert_eq!(m["task_success_rate"], 1.0);
    assert_eq!(m["grounding_accuracy"], 1.0);
    assert!(m["grounding_checked"].as_u64().unwrap() >= 10);
    assert_eq!(m["blocked_action_rate_benign"], 0.0, "{}", e.text());
    assert!(m["step_latency_p50_ms"].as_u64().is_some());
    for denied in [
        "example-note-reviewer-denies",
        "script-save-reviewer-denies",
    ] {
        assert_eq!(e.scenario(denied)["outcome"], "approval_denied");
    }
    // The fetch() note: the host held the request and a person was asked at the Save click.
    assert_eq!(e.scenario("script-save")["outcome"], "succeeded");
    assert!(e.markdown.contains("| task success rate | 100.0 % |"));
    assert!(e.text().contains("9 passed, 0 failed"));
}

#[test]
fn the_redteam_suite_stops_every_attack_outside_its_known_gaps() {
    let e = eval(&root().join("suites/redteam"), &[]);
    assert_eq!(e.out.status.code(), Some(0), "{}", e.text());
    let m = &e.report["metrics"];
    let attacks = m["attacks"].as_u64().unwrap();
    assert!(attacks >= 40, "{attacks} attack scenarios");
    assert_eq!(m["benign"], 0);
    assert_eq!(m["failed"], 0, "{}", e.text());
    let scenarios = e.report["scenarios"].as_array().unwrap();
    let marked = scenarios.iter().filter(|s| s["known_gap"].is_string());
    assert_eq!(
        marked.count() as u64,
        m["known_gaps_open"].as_u64().unwrap() + m["known_gaps_now_hold"].as_u64().unwrap()
    );
    // Every attack outside the known gaps was stopped: its goal conditions all held.
    for s in scenarios.iter().filter(|s| s["known_gap"].is_null()) {
        assert_eq!(s["status"], "passed", "{s}");
        assert_eq!(s["goals_broken"], serde_json::json!([]), "{s}");
    }
    // So the attacks that succeeded are all known gaps.
    assert!(m["attacks_succeeded"].as_u64().unwrap() <= m["known_gaps_open"].as_u64().unwrap());
    assert_eq!(m["utility_under_attack"], 1.0, "{}", e.text());
    for category in [
        "prompt-injection",
        "exfiltration",
        "egress",
        "credential-theft",
        "scope-creep",
        "lookalike-domain",
        "popups-redirects",
        "downloads",
        "drifting-target",
        "decoy-button",
    ] {
        assert!(
            scenarios.iter().any(|s| s["category"] == category),
            "no `{category}` scenario"
        );
    }
    assert!(e.markdown.contains("## Known gaps"));
}

#[test]
fn a_scenario_designed_to_fail_makes_eval_exit_9_and_says_why() {
    let e = eval(&root().join("tests/fixtures/eval-failing"), &[]);
    assert_eq!(e.out.status.code(), Some(9), "{}", e.text());
    let m = &e.report["metrics"];
    assert_eq!(m["scenarios"], 4);
    assert_eq!(m["failed"], 2, "{}", e.text());
    assert_eq!(m["known_gaps_now_hold"], 1);

    let nothing = e.scenario("expects-success-but-does-nothing");
    assert_eq!(nothing["status"], "failed");
    assert!(nothing["failures"][0]
        .as_str()
        .unwrap()
        .starts_with("expected outcome `succeeded`, got `not_verified`"));
    assert!(!nothing["log"].as_array().unwrap().is_empty());

    let goal = e.scenario("goal-broken-on-purpose");
    assert_eq!(goal["status"], "failed");
    assert!(goal["goals_broken"][0]
        .as_str()
        .unwrap()
        .contains("/incidents/INC-2048"));
    assert_eq!(m["attacks_succeeded"], 1);
    assert_eq!(m["attack_success_rate"], 0.5);

    assert_eq!(
        e.scenario("known-gap-that-holds")["status"],
        "known_gap_holds"
    );
    assert_eq!(e.scenario("passes")["status"], "passed");
    let text = e.text();
    assert!(
        text.contains("known gap now holds: remove the mark"),
        "{text}"
    );
    assert!(text.contains("goal-broken-on-purpose"));
    assert!(!text.contains("passes  "), "{text}");
    assert!(e.markdown.contains("## Failed expectations"));

    let junit = std::fs::read_to_string(e._dir.path().join("report/junit.xml")).unwrap();
    let suite = &xml(&junit).children[0];
    assert_eq!(suite.attr("tests"), "4");
    assert_eq!(suite.attr("failures"), "2");
    assert_eq!(suite.attr("skipped"), "1");
    let gap = suite.case("known-gap-that-holds");
    assert!(gap
        .child("skipped")
        .attr("message")
        .starts_with("known gap now holds"));
    assert!(suite.case("passes").children.is_empty());
}

/// An element of a parsed XML document.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("<{}> has no `{name}`", self.name))
    }

    fn child(&self, name: &str) -> &Node {
        self.children
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("<{}> has no <{name}>", self.name))
    }

    fn case(&self, name: &str) -> &Node {
        self.children
            .iter()
            .find(|c| c.name == "testcase" && c.attr("name") == name)
            .unwrap_or_else(|| panic!("no testcase `{name}`"))
    }
}

/// Parses `text` as a well-formed XML document (the subset a JUnit file uses: a declaration,
/// elements, attributes, text, character and predefined entity references) or fails the test
/// saying where it is not.
fn xml(text: &str) -> Node {
    fn entity(s: &str, at: &mut usize) -> char {
        let end = s[*at..]
            .find(';')
            .map(|i| *at + i)
            .expect("unterminated `&`");
        let name = &s[*at + 1..end];
        *at = end + 1;
        let c = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if name.starts_with("#x") => u32::from_str_radix(&name[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if name.starts_with('#') => name[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        c.unwrap_or_else(|| panic!("unknown entity `&{name};`"))
    }
    fn name(s: &str, at: &mut usize) -> String {
        let start = *at;
        while s[*at..].starts_with(|c: char| c.is_alphanumeric() || "_-.:".contains(c)) {
            *at += s[*at..].chars().next().unwrap().len_utf8();
        }
        assert!(*at > start, "a name expected at byte {start}");
        s[start..*at].to_string()
    }
    fn space(s: &str, at: &mut usize) {
        while s[*at..].starts_with([' ', '\n', '\t', '\r']) {
            *at += 1;
        }
    }
    fn element(s: &str, at: &mut usize) -> Node {
        assert!(
            s[*at..].starts_with('<'),
            "an element expected at byte {at}"
        );
        *at += 1;
        let mut node = Node {
            name: name(s, at),
            ..Node::default()
        };
        loop {
            space(s, at);
            if s[*at..].starts_with("/>") {
                *at += 2;
                return node;
            }
            if s[*at..].starts_with('>') {
                *at += 1;
                break;
            }
            let key = name(s, at);
            assert!(s[*at..].starts_with("=\""), "attribute `{key}` without =\"");
            *at += 2;
            let mut value = String::new();
            loop {
                let c = s[*at..].chars().next().expect("unterminated attribute");
                match c {
                    '"' => break,
                    '<' => panic!("`<` in attribute `{key}`"),
                    '&' => value.push(entity(s, at)),
                    c => {
                        value.push(c);
                        *at += c.len_utf8();
                    }
                }
            }
            *at += 1;
            assert!(
                !node.attrs.iter().any(|(k, _)| *k == key),
                "attribute `{key}` twice"
            );
            node.attrs.push((key, value));
        }
        loop {
            if s[*at..].starts_with("</") {
                *at += 2;
                let end = name(s, at);
                assert_eq!(end, node.name, "mismatched end tag");
                space(s, at);
                assert!(s[*at..].starts_with('>'), "unterminated end tag");
                *at += 1;
                return node;
            }
            if s[*at..].starts_with('<') {
                node.children.push(element(s, at));
                continue;
            }
            let c = s[*at..].chars().next().expect("unterminated element");
            assert!(
                matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}'),
                "character {c:?} is not allowed in XML"
            );
            assert!(!s[*at..].starts_with("]]>"), "`]]>` in text");
            if c == '&' {
                let c = entity(s, at);
                node.text.push(c);
            } else {
                node.text.push(c);
                *at += c.len_utf8();
            }
        }
    }
    let mut at = 0;
    if text.starts_with("<?xml") {
        at = text.find("?>").expect("unterminated declaration") + 2;
    }
    space(text, &mut at);
    let root = element(text, &mut at);
    space(text, &mut at);
    assert_eq!(at, text.len(), "content after the root element");
    root
}

#[test]
fn without_a_terminal_eval_prints_a_line_per_scenario_and_leaves_junit_and_homes() {
    use std::io::BufRead;
    let _one = SUITES.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut child = std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(dir.path().join("home"))
        .arg("eval")
        .arg(root().join("tests/fixtures/eval-ci"))
        .args(["--jobs", "1", "--out"])
        .arg(&out_dir)
        .env_remove("NO_COLOR")
        .env_remove("CI_READONLY_PASSWORD")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn airlock eval");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    // The first scenario's line arrives while the second is still running, not at the end.
    // (Skipping any log line before it.)
    let mut first = String::new();
    while !first.starts_with('[') {
        first.clear();
        if stderr.read_line(&mut first).unwrap() == 0 {
            break;
        }
    }
    let running = child.try_wait().unwrap().is_none();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let stdout = stdout.join().unwrap();
    let text = format!("{stdout}{first}{rest}");
    assert_eq!(status.code(), Some(9), "{text}");
    assert!(
        first.starts_with("[1/2] FAIL      fails-on-purpose (not_verified, "),
        "{text}"
    );
    assert!(
        first.contains("): expected outcome `succeeded`, got `not_verified`"),
        "{text}"
    );
    assert!(running, "the first line came only when eval ended: {text}");
    assert!(
        rest.lines()
            .any(|l| l.starts_with("[2/2] pass      passes (not_verified, ")),
        "{text}"
    );
    // No bar, no colour without a terminal, even with NO_COLOR unset.
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");

    // JUnit: one testcase per scenario, the failure with its reason and where to replay it.
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).expect("junit.xml");
    let doc = xml(&junit);
    assert_eq!(doc.name, "testsuites");
    let suite = doc.child("testsuite");
    assert_eq!(suite.attr("name"), "eval-ci");
    assert_eq!(
        (
            suite.attr("tests"),
            suite.attr("failures"),
            suite.attr("errors")
        ),
        ("2", "1", "0")
    );
    assert_eq!(suite.children.len(), 2);
    let failure = suite.case("fails-on-purpose").child("failure");
    assert!(
        failure
            .attr("message")
            .starts_with("expected outcome `succeeded`, got `not_verified`"),
        "{junit}"
    );
    let home = out_dir.join("homes/fails-on-purpose");
    assert!(
        failure.text.contains(&format!(
            "replay: airlock --home {} replay latest -o fails-on-purpose.html",
            home.display()
        )),
        "{junit}"
    );
    assert!(suite.case("passes").children.is_empty());
    assert_eq!(suite.case("passes").attr("classname"), "eval-ci.fixture");

    // Every scenario's audit home is kept, and a failure replays from it.
    assert!(out_dir.join("homes/passes/airlock.db").is_file());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(
        report["scenarios"][0]["home"].as_str(),
        Some(home.to_str().unwrap())
    );
    let html = dir.path().join("x.html");
    let replay = std::process::Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .args(["replay", "latest", "-o"])
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(replay.status.code(), Some(0), "{replay:?}");
    let run_id = report["scenarios"][0]["run_id"].as_str().unwrap();
    assert!(std::fs::read_to_string(&html).unwrap().contains(run_id));
    let verify = std::process::Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .args(["audit", "verify", "latest"])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");

    // The end of stdout says where everything is.
    assert!(
        stdout.contains(&format!(
            "{} and {} (JUnit)",
            out_dir.join("report.md").display(),
            out_dir.join("junit.xml").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "audit homes: {}/NAME",
            out_dir.join("homes").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "    replay: airlock --home {} replay latest",
            home.display()
        )),
        "{stdout}"
    );
}

#[test]
fn a_filter_runs_only_matching_scenarios() {
    let e = eval(
        &root().join("tests/fixtures/eval-failing"),
        &["--filter", "passes"],
    );
    assert_eq!(e.out.status.code(), Some(0), "{}", e.text());
    assert_eq!(e.report["metrics"]["scenarios"], 1);
}

#[test]
fn an_invalid_scenario_is_a_usage_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("broken");
    std::fs::create_dir(&s).unwrap();
    std::fs::write(
        s.join("scenario.toml"),
        "kind = \"attack\"\ntask = \"../nope.toml\"\nscript = []\n",
    )
    .unwrap();
    let e = eval(dir.path(), &[]);
    assert_eq!(e.out.status.code(), Some(2), "{}", e.text());
    assert!(e.text().contains("nope.toml"), "{}", e.text());
    let empty = tempfile::tempdir().unwrap();
    let e = eval(empty.path(), &[]);
    assert_eq!(e.out.status.code(), Some(2), "{}", e.text());
    assert!(e.text().contains("no scenario"), "{}", e.text());
}

#[test]
fn the_xml_checker_refuses_what_is_not_well_formed() {
    let doc = xml("<?xml version=\"1.0\"?>\n<a x=\"1 &amp; &#60;\"><b/>t&lt;</a>\n");
    assert_eq!(doc.attr("x"), "1 & <");
    assert_eq!(
        (doc.child("b").name.as_str(), doc.text.as_str()),
        ("b", "t<")
    );
    for bad in [
        "<a><b></a>",
        "<a x=\"<\"/>",
        "<a>&nope;</a>",
        "<a>x & y</a>",
        "<a/><b/>",
        "<a>\u{1}</a>",
        "<a x=\"1\" x=\"2\"/>",
        "<a>",
    ] {
        let refused = std::panic::catch_unwind(|| xml(bad)).is_err();
        assert!(refused, "accepted `{bad}`");
    }
}
