//! A tiny `*` glob for host paths and URLs in manifests. `*` matches any run of characters,
//! including `/`; everything else matches literally. Deliberately no `?`, classes or braces:
//! operators should be able to read a scope at a glance.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative wildcard matching with backtracking to the last star.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn literal_and_star() {
        assert!(matches("/incidents/INC-2048", "/incidents/INC-2048"));
        assert!(!matches("/incidents/INC-2048", "/incidents/INC-20489"));
        assert!(matches(
            "/incidents/INC-2048/*",
            "/incidents/INC-2048/notes"
        ));
        assert!(!matches(
            "/incidents/INC-2048/*",
            "/incidents/INC-9911/notes"
        ));
        assert!(matches("/*", "/"));
        assert!(matches("*", ""));
        assert!(matches("/a*b*c", "/aXXbYYc"));
        assert!(!matches("/a*b*c", "/aXXbYY"));
    }
}
