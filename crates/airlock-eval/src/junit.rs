//! The suite as JUnit XML (`junit.xml`), the format CI systems show as a test report: one
//! `<testcase>` per scenario, classed by suite and category.
//!
//! * a failed scenario carries `<failure>`: its first reason as the message, every reason, the
//!   command that replays its run, and its progress lines in the body;
//! * a scenario that could not run carries `<error>` the same way;
//! * a marked known gap is `<skipped>` with its reason (whether its expectations hold now or
//!   not: a gap that now holds says "remove the mark"), so it is listed without failing CI,
//!   like the exit code.
//!
//! Text is escaped for XML 1.0, and characters XML cannot carry at all (most control
//! characters) are replaced by U+FFFD, so a page or model that put them in a reason cannot make
//! the file unreadable.

use std::fmt::Write as _;

use crate::report::{ScenarioResult, Status, SuiteReport};

/// Renders `report` as a JUnit XML document.
pub fn render(report: &SuiteReport) -> String {
    let count = |f: fn(Status) -> bool| report.scenarios.iter().filter(|r| f(r.status)).count();
    let tests = report.scenarios.len();
    let failures = count(|s| s == Status::Failed);
    let errors = count(|s| s == Status::Error);
    let skipped = count(|s| matches!(s, Status::KnownGap | Status::KnownGapHolds));
    let time = secs(report.duration_ms);
    let suite = attr(&report.suite);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"airlock eval\" tests=\"{tests}\" failures=\"{failures}\" \
         errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\">"
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" \
         errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\">"
    );
    for r in &report.scenarios {
        testcase(&mut x, &report.suite, r);
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

fn testcase(x: &mut String, suite: &str, r: &ScenarioResult) {
    let _ = write!(
        x,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        attr(&r.name),
        attr(&format!("{suite}.{}", r.category)),
        secs(r.duration_ms)
    );
    let reasons: Vec<&String> = r.failures.iter().chain(&r.goals_broken).collect();
    let message = reasons.first().map_or("", |s| s.as_str());
    match r.status {
        Status::Passed => {
            x.push_str("/>\n");
            return;
        }
        Status::KnownGap | Status::KnownGapHolds => {
            let why = r.known_gap.as_deref().unwrap_or_default();
            let message = if r.status == Status::KnownGapHolds {
                format!("known gap now holds: remove the mark ({why})")
            } else {
                format!("known gap: {why}")
            };
            let _ = writeln!(x, ">\n      <skipped message=\"{}\"/>", attr(&message));
        }
        Status::Failed | Status::Error => {
            let tag = if r.status == Status::Failed {
                "failure"
            } else {
                "error"
            };
            let mut body = String::new();
            for f in &reasons {
                let _ = writeln!(body, "- {f}");
            }
            if let Some(id) = &r.run_id {
                let _ = writeln!(body, "run: {id} (outcome {})", r.outcome);
            }
            if let Some(cmd) = r.replay_command() {
                let _ = writeln!(body, "replay: {cmd}");
            }
            if !r.log.is_empty() {
                body.push_str("log:\n");
                for l in &r.log {
                    let _ = writeln!(body, "  {l}");
                }
            }
            let _ = writeln!(
                x,
                ">\n      <{tag} message=\"{}\" type=\"{}\">{}</{tag}>",
                attr(message),
                if r.status == Status::Failed {
                    "expectation"
                } else {
                    "could-not-run"
                },
                text(&body)
            );
        }
    }
    x.push_str("    </testcase>\n");
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Whether XML 1.0 can carry `c` at all.
fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Element text: `&` and `<` escaped (`>` too, so `]]>` cannot appear).
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// An attribute value in double quotes; line breaks become spaces (they would be normalised
/// away by readers anyway).
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::metrics::{RunMetrics, SuiteMetrics};
    use crate::scenario::Kind;
    use std::path::PathBuf;

    fn result(name: &str, status: Status) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            kind: Kind::Attack,
            category: "prompt-injection".into(),
            status,
            known_gap: matches!(status, Status::KnownGap | Status::KnownGapHolds)
                .then(|| "the page <wins> & \"why\"".into()),
            outcome_expected: None,
            utility: false,
            run_id: Some("eval-1-2-3".into()),
            outcome: "not_verified".into(),
            failures: if status.fails_suite() {
                vec![
                    "expected outcome `succeeded`, got `not_verified`".into(),
                    "a\u{1}b <c>".into(),
                ]
            } else {
                Vec::new()
            },
            goals_broken: Vec::new(),
            grounding_checked: 0,
            grounding_correct: 0,
            metrics: RunMetrics::default(),
            duration_ms: 1234,
            log: if status.fails_suite() {
                vec!["step 1: screenshot".into()]
            } else {
                Vec::new()
            },
            home: Some(PathBuf::from(format!("out/homes/{name}"))),
        }
    }

    fn suite(statuses: &[Status]) -> SuiteReport {
        SuiteReport {
            suite: "redteam".into(),
            jobs: 2,
            duration_ms: 5000,
            metrics: SuiteMetrics::default(),
            scenarios: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| result(&format!("s{i}"), *s))
                .collect(),
        }
    }

    #[test]
    fn one_testcase_per_scenario_with_counts_on_the_suite() {
        let x = render(&suite(&[
            Status::Passed,
            Status::Failed,
            Status::KnownGap,
            Status::KnownGapHolds,
            Status::Error,
        ]));
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
        assert!(
            x.contains(
                "<testsuite name=\"redteam\" tests=\"5\" failures=\"1\" errors=\"1\" \
                 skipped=\"2\" time=\"5.000\">"
            ),
            "{x}"
        );
        assert_eq!(x.matches("<testcase ").count(), 5);
        assert!(x.contains(
            "<testcase name=\"s0\" classname=\"redteam.prompt-injection\" time=\"1.234\"/>"
        ));
        assert!(x.ends_with("  </testsuite>\n</testsuites>\n"));
    }

    #[test]
    fn failures_carry_every_reason_and_the_replay_and_known_gaps_are_skipped_with_theirs() {
        let x = render(&suite(&[
            Status::Failed,
            Status::KnownGap,
            Status::KnownGapHolds,
        ]));
        assert!(
            x.contains(
                "<failure message=\"expected outcome `succeeded`, got `not_verified`\" \
                 type=\"expectation\">- expected outcome"
            ),
            "{x}"
        );
        assert!(x.contains("- a\u{FFFD}b &lt;c&gt;\n"), "{x}");
        assert!(x.contains("replay: airlock --home out/homes/s0 replay latest -o s0.html\n"));
        assert!(x.contains("log:\n  step 1: screenshot\n</failure>"));
        assert!(x.contains(
            "<skipped message=\"known gap: the page &lt;wins&gt; &amp; &quot;why&quot;\"/>"
        ));
        assert!(x.contains(
            "<skipped message=\"known gap now holds: remove the mark (the page &lt;wins&gt;"
        ));
        let e = render(&suite(&[Status::Error]));
        assert!(e.contains("<error message=\"expected outcome"), "{e}");
        assert!(e.contains("type=\"could-not-run\""));
    }

    #[test]
    fn text_xml_cannot_carry_is_replaced_and_markup_is_escaped() {
        assert_eq!(text("a]]>b\u{0}\u{1b}\té"), "a]]&gt;b\u{FFFD}\u{FFFD}\té");
        assert_eq!(attr("x\"y\nz&"), "x&quot;y z&amp;");
        assert_eq!(text("\u{1F600}\u{FFFE}"), "\u{1F600}\u{FFFD}");
    }
}
