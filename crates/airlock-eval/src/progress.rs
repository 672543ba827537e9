//! Progress on stderr while a suite runs: one line per scenario as it finishes, written and
//! flushed at once whatever stderr is (a CI log shows each result as it happens, not at the
//! end), plus a bar redrawn in place below those lines when stderr is a terminal. Colour only
//! on a terminal and only when `NO_COLOR` is unset. Stdout stays clean for the report.
//!
//! Write errors are ignored: a closed stderr must not stop a suite.

use std::io::Write;
use std::sync::Mutex;

use crate::report::{ScenarioResult, Status};

/// How progress is shown on stderr (the caller decides, from whether stderr is a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A terminal: a bar redrawn in place, with a line per finished scenario above it.
    Bar,
    /// Not a terminal (CI, a pipe, a file): a line per finished scenario, nothing redrawn.
    Lines,
    /// Nothing at all (library callers such as the benchmarks).
    Quiet,
}

struct State {
    done: usize,
    failed: usize,
    running: Vec<String>,
    sink: Box<dyn Write + Send>,
}

pub struct Progress {
    total: usize,
    style: ProgressStyle,
    color: bool,
    state: Mutex<State>,
}

const WIDTH: usize = 28;

impl Progress {
    /// Progress on stderr.
    pub fn new(total: usize, style: ProgressStyle, color: bool) -> Progress {
        Progress::to(total, style, color, Box::new(std::io::stderr()))
    }

    /// Progress written to `sink` (tests).
    pub fn to(
        total: usize,
        style: ProgressStyle,
        color: bool,
        sink: Box<dyn Write + Send>,
    ) -> Progress {
        Progress {
            total,
            style,
            color: color && style == ProgressStyle::Bar,
            state: Mutex::new(State {
                done: 0,
                failed: 0,
                running: Vec::new(),
                sink,
            }),
        }
    }

    pub fn started(&self, name: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.running.push(name.to_string());
            if self.style == ProgressStyle::Bar {
                let bar = bar(self.total, &s, self.color);
                let _ = write!(s.sink, "\r\x1b[2K{bar}");
                let _ = s.sink.flush();
            }
        }
    }

    pub fn finished(&self, r: &ScenarioResult) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.running.retain(|n| *n != r.name);
        s.done += 1;
        if r.status.fails_suite() {
            s.failed += 1;
        }
        let line = finished_line(s.done, self.total, r, self.color);
        match self.style {
            ProgressStyle::Quiet => return,
            ProgressStyle::Lines => {
                let _ = writeln!(s.sink, "{line}");
            }
            ProgressStyle::Bar => {
                let bar = bar(self.total, &s, self.color);
                let _ = write!(s.sink, "\r\x1b[2K{line}\n{bar}");
            }
        }
        let _ = s.sink.flush();
    }

    /// Erases the bar so that the report starts on a clean line.
    pub fn clear(&self) {
        if self.style != ProgressStyle::Bar {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            let _ = write!(s.sink, "\r\x1b[2K");
            let _ = s.sink.flush();
        }
    }
}

/// `[ 3/12] FAIL      name (not_verified, 4.2 s): expected outcome ...`
fn finished_line(done: usize, total: usize, r: &ScenarioResult, color: bool) -> String {
    let width = total.to_string().len();
    let word = r.status.word();
    let word = match (color, r.status) {
        (true, Status::Failed | Status::Error) => format!("\x1b[31m{word:<9}\x1b[0m"),
        (true, Status::KnownGap | Status::KnownGapHolds) => format!("\x1b[33m{word:<9}\x1b[0m"),
        _ => format!("{word:<9}"),
    };
    let mut line = format!(
        "[{done:>width$}/{total}] {word} {} ({}, {:.1} s)",
        r.name,
        r.outcome,
        r.duration_ms as f64 / 1000.0
    );
    let reasons: Vec<&String> = r.failures.iter().chain(&r.goals_broken).collect();
    if let Some(first) = reasons.first() {
        line.push_str(": ");
        line.push_str(&first.replace('\n', " "));
        if reasons.len() > 1 {
            line.push_str(&format!(" (+{} more)", reasons.len() - 1));
        }
    }
    line
}

fn bar(total: usize, s: &State, color: bool) -> String {
    let filled = (s.done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let bar = format!(
        "{}{}",
        "#".repeat(filled),
        "-".repeat(WIDTH.saturating_sub(filled))
    );
    let failed = if s.failed == 0 {
        String::new()
    } else if color {
        format!(" \x1b[31m{} failed\x1b[0m", s.failed)
    } else {
        format!(" {} failed", s.failed)
    };
    let running: String = s.running.join(", ").chars().take(60).collect();
    format!("[{bar}] {}/{total}{failed} {running}", s.done)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::metrics::RunMetrics;
    use crate::scenario::Kind;
    use std::sync::Arc;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn result(name: &str, status: Status, failures: &[&str]) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            kind: Kind::Benign,
            category: "c".into(),
            status,
            known_gap: None,
            outcome_expected: None,
            utility: false,
            run_id: None,
            outcome: "not_verified".into(),
            failures: failures.iter().map(|f| f.to_string()).collect(),
            goals_broken: Vec::new(),
            grounding_checked: 0,
            grounding_correct: 0,
            metrics: RunMetrics::default(),
            duration_ms: 4200,
            log: Vec::new(),
            home: None,
        }
    }

    fn empty_state() -> State {
        State {
            done: 0,
            failed: 0,
            running: Vec::new(),
            sink: Box::new(std::io::sink()),
        }
    }

    #[test]
    fn without_a_terminal_each_finished_scenario_is_one_plain_line() {
        let sink = Shared::default();
        let p = Progress::to(2, ProgressStyle::Lines, true, Box::new(sink.clone()));
        p.started("a");
        p.started("b");
        assert_eq!(sink.text(), "", "nothing is redrawn without a terminal");
        p.finished(&result("b", Status::Passed, &[]));
        assert_eq!(sink.text(), "[1/2] pass      b (not_verified, 4.2 s)\n");
        p.finished(&result("a", Status::Failed, &["expected `x`", "and `y`"]));
        p.clear();
        let text = sink.text();
        assert!(
            text.ends_with("[2/2] FAIL      a (not_verified, 4.2 s): expected `x` (+1 more)\n"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "{text}");
    }

    #[test]
    fn on_a_terminal_the_lines_go_above_the_bar() {
        let sink = Shared::default();
        let p = Progress::to(2, ProgressStyle::Bar, false, Box::new(sink.clone()));
        p.started("a");
        p.finished(&result("a", Status::Passed, &[]));
        let text = sink.text();
        assert!(
            text.ends_with("\r\x1b[2K[1/2] pass      a (not_verified, 4.2 s)\n[##############--------------] 1/2 "),
            "{text:?}"
        );
        let quiet = Shared::default();
        let p = Progress::to(1, ProgressStyle::Quiet, true, Box::new(quiet.clone()));
        p.started("a");
        p.finished(&result("a", Status::Failed, &["x"]));
        p.clear();
        assert_eq!(quiet.text(), "");
    }

    #[test]
    fn the_bar_fills_with_finished_scenarios_and_colours_only_when_asked() {
        let s = State {
            done: 2,
            failed: 1,
            running: vec!["a".into()],
            ..empty_state()
        };
        let plain = bar(4, &s, false);
        assert!(
            plain.starts_with("[##############--------------] 2/4 1 failed a"),
            "{plain}"
        );
        assert!(!plain.contains('\x1b'));
        assert!(bar(4, &s, true).contains("\x1b[31m1 failed"));
        assert!(bar(0, &empty_state(), false).starts_with(&format!("[{}] 0/0", "#".repeat(WIDTH))));
        let red = finished_line(1, 10, &result("a", Status::Error, &["boom"]), true);
        assert!(red.starts_with("[ 1/10] \x1b[31mERROR"), "{red}");
    }
}
