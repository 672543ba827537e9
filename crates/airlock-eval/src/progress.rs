//! A one-line progress bar on stderr, drawn only when the caller says stderr is a terminal, and
//! coloured only when `NO_COLOR` is unset. Stdout stays clean for the report.

use std::io::Write;
use std::sync::Mutex;

use crate::report::Status;

#[derive(Default)]
struct State {
    done: usize,
    failed: usize,
    running: Vec<String>,
}

pub struct Progress {
    total: usize,
    draw: bool,
    color: bool,
    state: Mutex<State>,
}

const WIDTH: usize = 28;

impl Progress {
    pub fn new(total: usize, draw: bool, color: bool) -> Progress {
        Progress {
            total,
            draw,
            color,
            state: Mutex::new(State::default()),
        }
    }

    pub fn started(&self, name: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.running.push(name.to_string());
            self.render(&s);
        }
    }

    pub fn finished(&self, name: &str, status: Status) {
        if let Ok(mut s) = self.state.lock() {
            s.running.retain(|n| n != name);
            s.done += 1;
            if status.fails_suite() {
                s.failed += 1;
            }
            self.render(&s);
        }
    }

    /// Erases the bar so that the report starts on a clean line.
    pub fn clear(&self) {
        if self.draw {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }

    fn render(&self, s: &State) {
        if !self.draw {
            return;
        }
        eprint!("\r\x1b[2K{}", line(self.total, s, self.color));
        let _ = std::io::stderr().flush();
    }
}

fn line(total: usize, s: &State, color: bool) -> String {
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
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_finished_scenarios_and_colours_only_when_asked() {
        let s = State {
            done: 2,
            failed: 1,
            running: vec!["a".into()],
        };
        let plain = line(4, &s, false);
        assert!(
            plain.starts_with("[##############--------------] 2/4 1 failed a"),
            "{plain}"
        );
        assert!(!plain.contains('\x1b'));
        assert!(line(4, &s, true).contains("\x1b[31m1 failed"));
        assert!(
            line(0, &State::default(), false).starts_with(&format!("[{}] 0/0", "#".repeat(WIDTH)))
        );
    }
}
