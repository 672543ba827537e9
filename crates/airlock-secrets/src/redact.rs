//! The [`Redactor`]: removes secret values, in every common encoding, and optional patterns
//! (emails, `password=`, bearer tokens, API-key shapes) from text and JSON.
//!
//! It owns *what* counts as sensitive text; callers (engine, audit, provider adapters) decide
//! *where* to apply it, and apply it to everything that leaves the host's memory.
//!
//! **Secret forms.** For each secret the redactor matches the value itself and its simple
//! transforms (reversed, lower- and upper-cased), and for each of those its base64 (standard
//! and URL-safe, padded or not, and at each of the three byte alignments it can take inside a
//! longer base64 blob, as in `Authorization: Basic base64(user:pass)`) and its hex. Each of
//! those forms is matched *through* one layer of escaping, character by character: every
//! character may appear literally, percent-encoded (`%2F` or `%2f`, `+` for a space), as a JSON
//! escape (`\"`, `\/`, `\u00e4`, surrogate pairs) or as an HTML character reference (`&amp;`,
//! `&#39;`, `&#x2F;`). So the raw value, `encodeURIComponent`, form encoding, JSON-escaped and
//! HTML-escaped forms, and any mix a serialiser produces, are all one match, with no list of
//! encoder variants to keep complete.
//!
//! **Short secrets.** Values shorter than [`MIN_REDACT_CHARS`] characters are not redacted as
//! substrings (a 2-character secret would turn every other word into a marker); they are
//! redacted only where a whole string (a JSON string, a field value) equals them. The broker
//! still scopes where they may be typed.
//!
//! **Markers** are fixed strings (`[redacted:secret]`, `[redacted:email]`, …): they say what
//! kind of thing was there, never its length or any of its characters. Redacting already
//! redacted text changes nothing.
//!
//! Patterns use the `regex` crate (linear time, no backtracking blow-up on page text).

use crate::error::SecretError;
use crate::value::SecretValue;
use airlock_core::manifest::RedactionSection;
use base64::Engine as _;
use regex::Regex;
use serde_json::{Map, Value};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Secrets shorter than this (in characters) are redacted only on whole-string equality.
pub const MIN_REDACT_CHARS: usize = 4;

/// The marker that replaces a secret value.
pub const SECRET_MARKER: &str = "[redacted:secret]";

/// The marker that replaces a JSON subtree nested too deeply to walk.
pub const DEPTH_MARKER: &str = "[redacted:too-deep]";

/// JSON deeper than this is replaced whole rather than walked (fail closed, bounded stack).
const MAX_JSON_DEPTH: usize = 128;

/// A base64 run shorter than this is not matched on its own (it would match too much text).
const MIN_BASE64_CORE: usize = 4;

/// An optional, named pattern family from the manifest's `[redaction] patterns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// `user@example.com` (also `user%40example.com`).
    Email,
    /// The value of `password=`, `passwd=`, `pwd=` in query/form strings, and of a
    /// `"password": "…"` member in JSON text or in a JSON object.
    PasswordParam,
    /// The token after `Bearer `.
    Bearer,
    /// `sk-…`, `ghp_…`, `github_pat_…`, `AKIA…`, `xox[bp]-…`, `AIza…`, `glpat-…`, and long
    /// tokens after `api_key=`, `token=`, `secret=` (or as such JSON members).
    ApiKey,
}

impl Pattern {
    pub const ALL: [Pattern; 4] = [
        Pattern::Email,
        Pattern::PasswordParam,
        Pattern::Bearer,
        Pattern::ApiKey,
    ];

    /// The manifest name of the pattern.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Email => "email",
            Pattern::PasswordParam => "password_param",
            Pattern::Bearer => "bearer",
            Pattern::ApiKey => "api_key",
        }
    }

    /// The fixed marker that replaces a match.
    pub fn marker(self) -> &'static str {
        match self {
            Pattern::Email => "[redacted:email]",
            Pattern::PasswordParam => "[redacted:password]",
            Pattern::Bearer => "[redacted:bearer]",
            Pattern::ApiKey => "[redacted:api_key]",
        }
    }

    /// Parses a manifest name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `(regex, capture group to redact)`; group 0 is the whole match.
    fn rules(self) -> &'static [(&'static str, usize)] {
        // `(?-u:\b)`: an ASCII word boundary keeps the regex on its fast DFA for any haystack.
        match self {
            Pattern::Email => &[(
                r"(?i)[a-z0-9._%+\-]+(?:@|%40)[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}",
                0,
            )],
            Pattern::PasswordParam => &[
                (
                    r#"(?i)(?-u:\b)(?:password|passwd|pwd)(?:=|%3D)([^&\s"'<>;,]+)"#,
                    1,
                ),
                (
                    r#"(?i)"(?:password|passwd|pwd)"\s*:\s*"((?:[^"\\]|\\.)+)""#,
                    1,
                ),
            ],
            Pattern::Bearer => &[(r"(?i)(?-u:\b)bearer\s+([a-z0-9\-._~+/]{8,}=*)", 1)],
            Pattern::ApiKey => &[
                (r"(?-u:\b)(?:sk|rk)[\-_][A-Za-z0-9_\-]{16,}", 0),
                (r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{30,}", 0),
                (r"(?-u:\b)github_pat_[A-Za-z0-9_]{20,}", 0),
                (r"(?-u:\b)(?:AKIA|ASIA)[0-9A-Z]{16}(?-u:\b)", 0),
                (r"(?-u:\b)xox[baprs]-[A-Za-z0-9\-]{10,}", 0),
                (r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}", 0),
                (r"(?-u:\b)glpat-[A-Za-z0-9_\-]{20,}", 0),
                (
                    r"(?i)(?-u:\b)(?:api[_\-]?key|access[_\-]?token|auth[_\-]?token|token|secret|client[_\-]?secret)(?:=|%3D)([a-z0-9_\-+/.~%]{16,}={0,2})",
                    1,
                ),
                (
                    r#"(?i)"(?:api[_\-]?key|access[_\-]?token|auth[_\-]?token|token|secret|client[_\-]?secret)"\s*:\s*"([^"\\]{8,})""#,
                    1,
                ),
            ],
        }
    }

    /// Whether a JSON object member named `key` holds a value this pattern redacts whole.
    fn is_sensitive_key(self, key: &str) -> bool {
        let k = key.to_ascii_lowercase().replace('-', "_");
        match self {
            Pattern::PasswordParam => matches!(k.as_str(), "password" | "passwd" | "pwd"),
            Pattern::ApiKey => matches!(
                k.as_str(),
                "api_key"
                    | "apikey"
                    | "x_api_key"
                    | "access_token"
                    | "auth_token"
                    | "token"
                    | "secret"
                    | "client_secret"
            ),
            Pattern::Email | Pattern::Bearer => false,
        }
    }
}

/// What a redacted range was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Secret,
    Pattern(Pattern),
}

impl Label {
    fn marker(self) -> &'static str {
        match self {
            Label::Secret => SECRET_MARKER,
            Label::Pattern(p) => p.marker(),
        }
    }
}

fn is_marker(s: &str) -> bool {
    s == SECRET_MARKER || s == DEPTH_MARKER || Pattern::ALL.iter().any(|p| p.marker() == s)
}

/// Which form of a secret a match was: the transform applied to the value, then how it was
/// encoded. Names only: never a character of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretForm {
    /// `as is`, `reversed`, `lower-case`, `upper-case`, `reversed lower-case`,
    /// `reversed upper-case`.
    pub transform: &'static str,
    /// `plain` (also percent-, JSON- or HTML-escaped), `base64`, `base64url` or `hex`.
    pub encoding: &'static str,
}

impl fmt::Display for SecretForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.transform, self.encoding) {
            ("as is", "plain") => f.write_str("plain"),
            ("as is", e) => f.write_str(e),
            (t, "plain") => f.write_str(t),
            (t, e) => write!(f, "{e} of {t}"),
        }
    }
}

/// One form of one secret, matched through a layer of escaping.
struct Needle {
    text: Zeroizing<String>,
    /// Index of the secret this is a form of, in the order the redactor was given them.
    owner: usize,
    form: SecretForm,
    /// A whole base64 encoding: `=` padding after it belongs to the match.
    padded: bool,
    /// UTF-8 of the first character (`first_len` bytes) and the first byte of the second, for
    /// [`Needle::cannot_start_at`].
    first: [u8; 4],
    first_len: usize,
    second_lead: Option<u8>,
    second_is_space: bool,
}

impl Drop for Needle {
    fn drop(&mut self) {
        // `text` zeroises itself; these bytes are copied from the secret too.
        self.first.zeroize();
        self.second_lead.zeroize();
    }
}

/// Bytes at which any character's escaped form begins.
fn is_escape_start(b: u8) -> bool {
    matches!(b, b'%' | b'\\' | b'&')
}

impl Needle {
    fn new(text: Zeroizing<String>, padded: bool, owner: usize, form: SecretForm) -> Self {
        let mut chars = text.chars();
        let mut first = [0u8; 4];
        let first_len = chars.next().map_or(0, |c| c.encode_utf8(&mut first).len());
        let second = chars.next();
        let mut buf = [0u8; 4];
        let second_lead = second.and_then(|c| c.encode_utf8(&mut buf).as_bytes().first().copied());
        Needle {
            text,
            owner,
            form,
            padded,
            first,
            first_len,
            second_lead,
            second_is_space: second == Some(' '),
        }
    }

    /// A cheap test that rules out most positions before the full matcher runs: if the first
    /// character is there literally, the byte after it must be able to start the second.
    fn cannot_start_at(&self, text: &[u8], p: usize) -> bool {
        let Some(lead1) = self.second_lead else {
            return false;
        };
        let first = self.first.get(..self.first_len).unwrap_or_default();
        // A first character that itself starts escapes (`%`, `\\`, `&`) may be the start of
        // its own escaped form (`%25…`): leave that to the matcher.
        if text.get(p..p + self.first_len) != Some(first)
            || first.first().copied().is_some_and(is_escape_start)
        {
            return false;
        }
        match text.get(p + self.first_len).copied() {
            Some(b) => !(b == lead1 || is_escape_start(b) || (self.second_is_space && b == b'+')),
            None => true,
        }
    }
}

/// For each byte value, the indices of the needles whose first character's UTF-8 begins with
/// it. An escape in the text is decoded first and looked up by the byte it stands for.
fn lead_table(needles: &[Needle]) -> Vec<Vec<usize>> {
    let mut table = vec![Vec::new(); 256];
    for (i, n) in needles.iter().enumerate() {
        if let Some(list) = n
            .first
            .first()
            .filter(|_| n.first_len > 0)
            .and_then(|&b| table.get_mut(usize::from(b)))
        {
            list.push(i);
        }
    }
    table
}

/// The first UTF-8 byte of the character an escape at `p` stands for: `%HH`, `+` (a space),
/// a JSON escape or an HTML character reference.
fn escaped_lead(text: &[u8], p: usize) -> Option<u8> {
    let lead = |c: char| {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf).as_bytes().first().copied()
    };
    match text.get(p)? {
        b'%' => percent_byte(text, p),
        b'+' => Some(b' '),
        b'\\' => match text.get(p + 1)? {
            b'"' | b'\\' | b'/' => text.get(p + 1).copied(),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => {
                let unit = json_unit(text, p)?;
                if (0xD800..0xDC00).contains(&unit) {
                    let lo = json_unit(text, p + 6)?;
                    let c =
                        char::decode_utf16([u16::try_from(unit).ok()?, u16::try_from(lo).ok()?])
                            .next()?
                            .ok()?;
                    lead(c)
                } else {
                    lead(char::from_u32(unit)?)
                }
            }
            _ => None,
        },
        b'&' => {
            for (name, c) in [
                (&b"&amp;"[..], b'&'),
                (b"&lt;", b'<'),
                (b"&gt;", b'>'),
                (b"&quot;", b'"'),
                (b"&apos;", b'\''),
            ] {
                if text.get(p..p + name.len()) == Some(name) {
                    return Some(c);
                }
            }
            let (c, _) = html_numeric_reference(text, p)?;
            lead(c)
        }
        _ => None,
    }
}

struct Rule {
    pattern: Pattern,
    regex: Regex,
    group: usize,
}

/// Redacts secrets and configured patterns. `Debug` shows counts, never forms.
pub struct Redactor {
    needles: Vec<Needle>,
    /// For each byte value, the needles whose first character begins with that byte.
    leads: Vec<Vec<usize>>,
    /// Secrets too short for substring matching, redacted on whole-string equality.
    short: Vec<Zeroizing<String>>,
    rules: Vec<Rule>,
    patterns: Vec<Pattern>,
    secrets: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets)
            .field("forms", &self.needles.len())
            .field(
                "patterns",
                &self.patterns.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Redactor {
    /// Builds the redaction set for `secrets` and the manifest's `[redaction]` patterns.
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = &'a SecretValue>,
        redaction: &RedactionSection,
    ) -> Result<Self, SecretError> {
        let mut patterns = Vec::new();
        for name in &redaction.patterns {
            let p = Pattern::from_name(name.trim()).ok_or_else(|| SecretError::UnknownPattern {
                pattern: name.clone(),
            })?;
            if !patterns.contains(&p) {
                patterns.push(p);
            }
        }
        let mut rules = Vec::new();
        for &p in &patterns {
            for &(re, group) in p.rules() {
                let regex = Regex::new(re).map_err(|e| SecretError::PatternBuild {
                    pattern: p.name().to_string(),
                    reason: e.to_string(),
                })?;
                rules.push(Rule {
                    pattern: p,
                    regex,
                    group,
                });
            }
        }
        let mut needles = Vec::new();
        let mut short = Vec::new();
        let mut count = 0;
        for s in secrets {
            let owner = count;
            count += 1;
            if s.is_empty() {
                continue;
            }
            if s.char_len() < MIN_REDACT_CHARS {
                short.push(Zeroizing::new(s.expose_str().to_string()));
                continue;
            }
            // The value and the simple transforms a page script applies before sending it
            // somewhere (reversed, lower- or upper-cased), each also as base64 and hex.
            for (transform, form) in transforms(s.expose_str()) {
                base64_forms(form.as_bytes(), owner, transform, &mut needles);
                hex_forms(form.as_bytes(), owner, transform, &mut needles);
                let plain = SecretForm {
                    transform,
                    encoding: "plain",
                };
                needles.push(Needle::new(form, false, owner, plain));
            }
        }
        // Identical forms of one secret are one needle; the same text as forms of two secrets
        // stays two, so that [`Redactor::secrets_in`] can name both.
        needles.sort_by(|a, b| {
            (a.text.as_str(), a.padded, a.owner).cmp(&(b.text.as_str(), b.padded, b.owner))
        });
        needles.dedup_by(|a, b| {
            a.text.as_str() == b.text.as_str() && a.padded == b.padded && a.owner == b.owner
        });
        let leads = lead_table(&needles);
        Ok(Redactor {
            needles,
            leads,
            short,
            rules,
            patterns,
            secrets: count,
        })
    }

    /// [`Redactor::new`] from a resolved broker.
    pub fn from_broker(
        broker: &crate::Broker,
        redaction: &RedactionSection,
    ) -> Result<Self, SecretError> {
        if let Some(name) = broker.first_unresolved() {
            return Err(SecretError::NotResolved {
                name: name.to_string(),
            });
        }
        Self::new(broker.values(), redaction)
    }

    /// The pattern families in force.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// `text` with every secret form and pattern match replaced by its marker, and the number
    /// of replacements.
    pub fn redact_str(&self, text: &str) -> (String, usize) {
        if self.short.iter().any(|s| s.as_str() == text.trim()) {
            return (SECRET_MARKER.to_string(), 1);
        }
        let mut ranges = Vec::new();
        self.scan(text.as_bytes(), |_, s, e| {
            ranges.push((s, e, Label::Secret));
            true
        });
        for rule in &self.rules {
            for caps in rule.regex.captures_iter(text) {
                if let Some(m) = caps.get(rule.group) {
                    if !m.as_str().is_empty() && !is_marker(m.as_str()) {
                        ranges.push((m.start(), m.end(), Label::Pattern(rule.pattern)));
                    }
                }
            }
        }
        if ranges.is_empty() {
            return (text.to_string(), 0);
        }
        splice(text, ranges)
    }

    /// `value` with [`Redactor::redact_str`] applied to every string and object key, numbers
    /// equal to a secret replaced, and (with `password_param` / `api_key`) the whole value of
    /// members such as `"password"` or `"api_key"` replaced.
    pub fn redact_json(&self, value: Value) -> (Value, usize) {
        let mut count = 0;
        let v = self.walk(value, 0, &mut count);
        (v, count)
    }

    fn walk(&self, value: Value, depth: usize, count: &mut usize) -> Value {
        if depth > MAX_JSON_DEPTH {
            *count += 1;
            return Value::String(DEPTH_MARKER.to_string());
        }
        match value {
            Value::String(s) => {
                let (r, n) = self.redact_str(&s);
                *count += n;
                if n == 0 {
                    Value::String(s)
                } else {
                    Value::String(r)
                }
            }
            Value::Number(n) => {
                // An OTP or PIN can travel as a JSON number.
                let s = n.to_string();
                if self.contains_secret(&s) {
                    *count += 1;
                    Value::String(SECRET_MARKER.to_string())
                } else {
                    Value::Number(n)
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|v| self.walk(v, depth + 1, count))
                    .collect(),
            ),
            Value::Object(members) => {
                let mut out = Map::new();
                for (key, v) in members {
                    let sensitive = self
                        .patterns
                        .iter()
                        .copied()
                        .find(|p| p.is_sensitive_key(&key));
                    let v = match (sensitive, v) {
                        (Some(p), Value::String(s)) if !s.is_empty() && !is_marker(&s) => {
                            *count += 1;
                            Value::String(p.marker().to_string())
                        }
                        (_, v) => self.walk(v, depth + 1, count),
                    };
                    let (k, n) = self.redact_str(&key);
                    *count += n;
                    let k = if n == 0 { key } else { k };
                    let k = unique_key(&out, k);
                    out.insert(k, v);
                }
                Value::Object(out)
            }
            other => other,
        }
    }

    /// Whether `text` contains any secret in any form this redactor knows (patterns are not
    /// consulted). For deciding which screen regions to mask.
    pub fn contains_secret(&self, text: &str) -> bool {
        if self.short.iter().any(|s| s.as_str() == text.trim()) {
            return true;
        }
        let mut found = false;
        self.scan(text.as_bytes(), |_, _, _| {
            found = true;
            false
        });
        found
    }

    /// Which secrets `bytes` contains, in any form this redactor knows: `(index, form)` per
    /// secret found (its first match), the index counting the secrets in the order
    /// [`Redactor::new`] was given them. Secrets shorter than [`MIN_REDACT_CHARS`] are not
    /// looked for (as substrings they are everywhere). For the egress scan, which must know
    /// *whose* value a request carries to tell a secret's own host from any other.
    pub fn secrets_in(&self, bytes: &[u8]) -> Vec<(usize, SecretForm)> {
        let mut out: Vec<(usize, SecretForm)> = Vec::new();
        self.scan(bytes, |i, _, _| {
            if let Some(n) = self.needles.get(i) {
                if !out.iter().any(|(o, _)| *o == n.owner) {
                    out.push((n.owner, n.form));
                }
            }
            true
        });
        out
    }

    /// The longest any secret's form can be in bytes, escaped (a JSON `\uXXXX\uXXXX` pair is
    /// twelve bytes for one character): a rolling window of this many bytes carried from one
    /// chunk of a stream to the next finds a secret split across them.
    pub fn window(&self) -> usize {
        self.needles
            .iter()
            .map(|n| n.text.chars().count() * 12)
            .max()
            .unwrap_or(0)
    }

    /// One pass over `text`: at each byte, only the needles that can start there are tried.
    /// Calls `found(needle, start, end)` per match (longest at that start, one per needle and
    /// start); stops when `found` returns false.
    fn scan(&self, text: &[u8], mut found: impl FnMut(usize, usize, usize) -> bool) {
        let mut scratch = Scratch::default();
        // Per needle, where its previous match ended: matches of one needle do not overlap.
        let mut resume = vec![0usize; self.needles.len()];
        for (p, &b) in text.iter().enumerate() {
            // Written as plain branches: this loop runs once per byte of every page, also in
            // unoptimised builds.
            if let Some(list) = self.leads.get(usize::from(b)) {
                if !list.is_empty()
                    && !self.try_at(text, p, list, &mut resume, &mut scratch, &mut found)
                {
                    return;
                }
            }
            if is_escape_start(b) || b == b'+' {
                if let Some(list) =
                    escaped_lead(text, p).and_then(|d| self.leads.get(usize::from(d)))
                {
                    if !list.is_empty()
                        && !self.try_at(text, p, list, &mut resume, &mut scratch, &mut found)
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Tries the needles `list` at `p`; false when `found` asked to stop.
    fn try_at(
        &self,
        text: &[u8],
        p: usize,
        list: &[usize],
        resume: &mut [usize],
        scratch: &mut Scratch,
        found: &mut impl FnMut(usize, usize, usize) -> bool,
    ) -> bool {
        for &i in list {
            let (Some(needle), Some(next)) = (self.needles.get(i), resume.get_mut(i)) else {
                continue;
            };
            if p < *next || needle.cannot_start_at(text, p) {
                continue;
            }
            if let Some(end) = match_at(text, p, needle, scratch) {
                *next = end;
                if !found(i, p, end) {
                    return false;
                }
            }
        }
        true
    }
}

/// `key`, or `key #2`, `key #3`… if a redacted key collides with one already present.
fn unique_key(map: &Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2..)
        .map(|i| format!("{key} #{i}"))
        .find(|k| !map.contains_key(k))
        .unwrap_or(key)
}

/// Replaces the union of `ranges` with markers; overlapping ranges become one replacement, a
/// secret's marker winning over a pattern's.
fn splice(text: &str, mut ranges: Vec<(usize, usize, Label)>) -> (String, usize) {
    for r in &mut ranges {
        r.0 = floor_boundary(text, r.0);
        r.1 = ceil_boundary(text, r.1);
    }
    ranges.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut merged: Vec<(usize, usize, Label)> = Vec::new();
    for (s, e, label) in ranges {
        match merged.last_mut() {
            Some(last) if s < last.1 => {
                last.1 = last.1.max(e);
                if label == Label::Secret {
                    last.2 = Label::Secret;
                }
            }
            _ => merged.push((s, e, label)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for &(s, e, label) in &merged {
        out.push_str(text.get(at..s).unwrap_or_default());
        out.push_str(label.marker());
        at = e;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    (out, merged.len())
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// A secret and its simple transforms: reversed, lower-case, upper-case, and reversed in
/// each case, without duplicates. A reversed password in a page title or an upper-cased token
/// in a query string is the same secret.
fn transforms(value: &str) -> Vec<(&'static str, Zeroizing<String>)> {
    let reversed = Zeroizing::new(value.chars().rev().collect::<String>());
    let mut out: Vec<(&'static str, Zeroizing<String>)> = Vec::new();
    for (names, base) in [
        (
            ["as is", "lower-case", "upper-case"],
            Zeroizing::new(value.to_string()),
        ),
        (
            ["reversed", "reversed lower-case", "reversed upper-case"],
            reversed,
        ),
    ] {
        let lower = Zeroizing::new(base.to_lowercase());
        let upper = Zeroizing::new(base.to_uppercase());
        for (name, form) in names.into_iter().zip([base, lower, upper]) {
            if !out.iter().any(|(_, o)| o.as_str() == form.as_str()) {
                out.push((name, form));
            }
        }
    }
    out
}

/// Base64 forms of `bytes`: the whole encoding (padding optional) and, for each of the three
/// alignments inside a longer encoded blob, the run of characters that depends only on `bytes`.
fn base64_forms(bytes: &[u8], owner: usize, transform: &'static str, out: &mut Vec<Needle>) {
    let engines = [
        (&base64::engine::general_purpose::STANDARD_NO_PAD, "base64"),
        (
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            "base64url",
        ),
    ];
    for (engine, encoding) in engines {
        let form = SecretForm {
            transform,
            encoding,
        };
        out.push(Needle::new(
            Zeroizing::new(engine.encode(bytes)),
            true,
            owner,
            form,
        ));
        for k in 0..3usize {
            let mut shifted = Zeroizing::new(Vec::with_capacity(k + bytes.len()));
            shifted.extend(std::iter::repeat_n(0u8, k));
            shifted.extend_from_slice(bytes);
            let encoded = Zeroizing::new(engine.encode(shifted.as_slice()));
            // Character i covers bits [6i, 6i+6); the secret occupies bits [8k, 8(k+len)).
            let start = (8 * k).div_ceil(6);
            let end = (8 * (k + bytes.len())) / 6;
            if let Some(core) = encoded.get(start..end) {
                if core.len() >= MIN_BASE64_CORE {
                    out.push(Needle::new(
                        Zeroizing::new(core.to_string()),
                        false,
                        owner,
                        form,
                    ));
                }
            }
        }
    }
}

/// Lower- and upper-case hex of `bytes`.
fn hex_forms(bytes: &[u8], owner: usize, transform: &'static str, out: &mut Vec<Needle>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut lower = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for &b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            if let Some(&d) = DIGITS.get(usize::from(nibble)) {
                lower.push(char::from(d));
            }
        }
    }
    let upper = Zeroizing::new(lower.to_ascii_uppercase());
    let form = SecretForm {
        transform,
        encoding: "hex",
    };
    out.push(Needle::new(lower, false, owner, form));
    out.push(Needle::new(upper, false, owner, form));
}

/// Reused position sets for the matcher.
#[derive(Default)]
struct Scratch {
    cur: Vec<usize>,
    next: Vec<usize>,
    byte_cur: Vec<usize>,
    byte_next: Vec<usize>,
}

/// The furthest end of a match of `needle` starting at `start`, if any.
fn match_at(text: &[u8], start: usize, needle: &Needle, s: &mut Scratch) -> Option<usize> {
    s.cur.clear();
    s.cur.push(start);
    for c in needle.text.chars() {
        s.next.clear();
        for i in 0..s.cur.len() {
            let Some(&p) = s.cur.get(i) else { break };
            char_ends(text, p, c, &mut s.byte_cur, &mut s.byte_next, &mut s.next);
        }
        s.next.sort_unstable();
        s.next.dedup();
        if s.next.is_empty() {
            return None;
        }
        std::mem::swap(&mut s.cur, &mut s.next);
    }
    let mut end = s.cur.iter().copied().max()?;
    if needle.padded {
        for _ in 0..2 {
            match pct_or_literal(text, end, b'=') {
                Some(e) => end = e,
                None => break,
            }
        }
    }
    Some(end)
}

/// `b` at `p`, literally or as `%HH`: the end position.
fn pct_or_literal(text: &[u8], p: usize, b: u8) -> Option<usize> {
    if text.get(p) == Some(&b) {
        Some(p + 1)
    } else if percent_byte(text, p) == Some(b) {
        Some(p + 3)
    } else {
        None
    }
}

/// Every end position of one representation of `c` starting at `p`.
fn char_ends(
    text: &[u8],
    p: usize,
    c: char,
    byte_cur: &mut Vec<usize>,
    byte_next: &mut Vec<usize>,
    out: &mut Vec<usize>,
) {
    // Literal or percent-encoded UTF-8 bytes (both may mix, as `%C3%A4` or a literal `ä`).
    let mut buf = [0u8; 4];
    byte_cur.clear();
    byte_cur.push(p);
    for &b in c.encode_utf8(&mut buf).as_bytes() {
        byte_next.clear();
        for &q in byte_cur.iter() {
            if text.get(q) == Some(&b) {
                byte_next.push(q + 1);
            }
            if percent_byte(text, q) == Some(b) {
                byte_next.push(q + 3);
            }
        }
        std::mem::swap(byte_cur, byte_next);
        if byte_cur.is_empty() {
            break;
        }
    }
    out.extend_from_slice(byte_cur);
    match text.get(p) {
        Some(b'+') if c == ' ' => out.push(p + 1),
        Some(b'\\') => {
            if let Some(e) = json_escape_end(text, p, c) {
                out.push(e);
            }
        }
        Some(b'&') => {
            if let Some(e) = html_reference_end(text, p, c) {
                out.push(e);
            }
        }
        _ => {}
    }
}

fn hex_value(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// The byte encoded by `%HH` at `p`.
fn percent_byte(text: &[u8], p: usize) -> Option<u8> {
    if text.get(p) != Some(&b'%') {
        return None;
    }
    let hi = hex_value(*text.get(p + 1)?)?;
    let lo = hex_value(*text.get(p + 2)?)?;
    u8::try_from(hi * 16 + lo).ok()
}

/// `\uXXXX` at `p` as a UTF-16 unit.
fn json_unit(text: &[u8], p: usize) -> Option<u32> {
    if text.get(p) != Some(&b'\\') || text.get(p + 1) != Some(&b'u') {
        return None;
    }
    let mut v = 0;
    for i in 2..6 {
        v = v * 16 + hex_value(*text.get(p + i)?)?;
    }
    Some(v)
}

/// The end of a JSON escape of `c` at `p`.
fn json_escape_end(text: &[u8], p: usize, c: char) -> Option<usize> {
    let short = match c {
        '"' => Some(b'"'),
        '\\' => Some(b'\\'),
        '/' => Some(b'/'),
        '\u{8}' => Some(b'b'),
        '\u{c}' => Some(b'f'),
        '\n' => Some(b'n'),
        '\r' => Some(b'r'),
        '\t' => Some(b't'),
        _ => None,
    };
    if short.is_some() && text.get(p + 1).copied() == short {
        return Some(p + 2);
    }
    let mut units = [0u16; 2];
    match c.encode_utf16(&mut units) {
        [unit] => (json_unit(text, p)? == u32::from(*unit)).then_some(p + 6),
        [hi, lo] => (json_unit(text, p)? == u32::from(*hi)
            && json_unit(text, p + 6)? == u32::from(*lo))
        .then_some(p + 12),
        _ => None,
    }
}

/// The end of an HTML character reference for `c` at `p` (`&amp;`, `&#39;`, `&#x2F;`).
fn html_reference_end(text: &[u8], p: usize, c: char) -> Option<usize> {
    let named: &[u8] = match c {
        '&' => b"&amp;",
        '<' => b"&lt;",
        '>' => b"&gt;",
        '"' => b"&quot;",
        '\'' => b"&apos;",
        _ => b"",
    };
    if !named.is_empty() && text.get(p..p + named.len()) == Some(named) {
        return Some(p + named.len());
    }
    let (v, end) = html_numeric_reference(text, p)?;
    (v == c).then_some(end)
}

/// `&#DDD;` or `&#xHH;` at `p`: the character and the end position.
fn html_numeric_reference(text: &[u8], p: usize) -> Option<(char, usize)> {
    if text.get(p) != Some(&b'&') || text.get(p + 1) != Some(&b'#') {
        return None;
    }
    let (radix, mut q) = match text.get(p + 2) {
        Some(b'x' | b'X') => (16, p + 3),
        _ => (10, p + 2),
    };
    let digits_start = q;
    let mut v: u32 = 0;
    while let Some(d) = text.get(q).and_then(|&b| char::from(b).to_digit(radix)) {
        v = v.checked_mul(radix)?.checked_add(d)?;
        q += 1;
        if q - digits_start > 8 {
            return None;
        }
    }
    if q > digits_start && text.get(q) == Some(&b';') {
        Some((char::from_u32(v)?, q + 1))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str], patterns: &[&str]) -> Redactor {
        let values: Vec<SecretValue> = secrets
            .iter()
            .map(|s| SecretValue::new(s.to_string()))
            .collect();
        Redactor::new(
            &values,
            &RedactionSection {
                patterns: patterns.iter().map(|p| p.to_string()).collect(),
            },
        )
        .unwrap()
    }

    #[test]
    fn reversed_and_case_folded_secrets_are_the_same_secret() {
        let r = redactor(&["Hunter2-Rose"], &[]);
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let hex = |t: &str| t.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        for form in [
            "esoR-2retnuH".to_string(),
            "hunter2-rose".to_string(),
            "HUNTER2-ROSE".to_string(),
            "esor-2retnuh".to_string(),
            b64("esoR-2retnuH"),
            b64("hunter2-rose"),
            hex("esoR-2retnuH"),
            hex("HUNTER2-ROSE").to_uppercase(),
            // Percent-encoded reversed, as in an image URL's query string.
            "esoR%2D2retnuH".to_string(),
        ] {
            let text = format!("<title>{form}</title>");
            assert!(r.contains_secret(&text), "{form}");
            let (out, n) = r.redact_str(&text);
            assert_eq!(n, 1, "{form}: {out}");
            assert_eq!(out, format!("<title>{SECRET_MARKER}</title>"));
        }
        // A different word of the same letters is not the secret.
        assert!(!r.contains_secret("Hunter2-Rosa"));
    }

    #[test]
    fn base64_cores_cover_every_alignment() {
        let r = redactor(&["hunter2!"], &[]);
        for prefix in ["", "a", "ab", "abc", "user:"] {
            let blob =
                base64::engine::general_purpose::STANDARD.encode(format!("{prefix}hunter2!tail"));
            assert!(r.contains_secret(&blob), "prefix {prefix:?}: {blob}");
        }
    }

    #[test]
    fn escapes_are_matched_character_by_character() {
        let r = redactor(&["p\u{e4}ss w/\"d&<\u{1F600}"], &[]);
        for form in [
            "p\u{e4}ss w/\"d&<\u{1F600}",
            "p%C3%A4ss%20w%2F%22d%26%3C%F0%9F%98%80",
            "p%c3%a4ss+w%2f%22d%26%3c%f0%9f%98%80",
            "p\\u00e4ss w\\/\\\"d&<\\ud83d\\ude00",
            "p&#228;ss w&#x2F;&quot;d&amp;&lt;&#128512;",
        ] {
            let (out, n) = r.redact_str(&format!("x={form};"));
            assert_eq!((out.as_str(), n), ("x=[redacted:secret];", 1), "{form}");
        }
    }

    #[test]
    fn secrets_that_begin_with_an_escape_character_are_found_escaped() {
        let r = redactor(&["%abc-def", "&xyz-uvw", "\\qrs-tuv"], &[]);
        for text in [
            "q=%25abc-def&",
            "q=%abc-def&",
            "<p>&amp;xyz-uvw</p>",
            "{\"k\":\"\\\\qrs-tuv\"}",
            "%5Cqrs-tuv",
        ] {
            assert!(r.contains_secret(text), "{text}");
            assert_eq!(r.redact_str(text).1, 1, "{text}");
        }
    }

    #[test]
    fn markers_are_stable_under_repeated_redaction() {
        let r = redactor(
            &["hunter2-canary"],
            &["password_param", "email", "bearer", "api_key"],
        );
        let once = r
            .redact_str("password=hunter2-canary&u=a@b.example Bearer abcdefghijkl token=0123456789abcdef0123")
            .0;
        let (twice, n) = r.redact_str(&once);
        assert_eq!(twice, once);
        assert_eq!(n, 0, "{once}");
    }

    #[test]
    fn html_references_need_their_semicolon_and_fit_in_u32() {
        assert_eq!(html_reference_end(b"&#39;", 0, '\''), Some(5));
        assert_eq!(html_reference_end(b"&#39", 0, '\''), None);
        assert_eq!(html_reference_end(b"&#99999999999999;", 0, '\''), None);
        assert_eq!(html_reference_end(b"&#x;", 0, '\''), None);
    }
}
