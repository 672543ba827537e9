//! What a name, label or path *reads like*, as opposed to the code points it is made of.
//!
//! A page controls every code point of the text the classifier judges. "Del\u{200b}ete
//! project" (a zero-width space inside), "Dеlete project" (a Cyrillic `е`), "Ｄｅｌｅｔｅ
//! project" (fullwidth) and "/projects/1/de%E2%80%8Blete" all read like "delete" to a person,
//! and must to the classifier too, or a page can relabel a destructive control as a draft.
//!
//! [`for_classification`] is the one reading every classifier match goes through:
//!
//! 1. a right-to-left override (U+202E … U+202C) is read in the order it is displayed:
//!    "\u{202e}tcejorp eteleD\u{202c}" shows as "Delete project", so it reads so
//!    ([`logical_reading`] keeps the stored order, for matchers that look at both);
//! 2. invisible characters are removed: every format character (general category `Cf`: zero
//!    width space, joiners, word joiner, byte-order mark, soft hyphen, bidi embeddings,
//!    overrides, isolates and marks) and every other default-ignorable code point (Hangul
//!    fillers, the Mongolian vowel separator, variation selectors, tag characters, the
//!    combining grapheme joiner);
//! 3. Unicode NFKC folds compatibility forms (fullwidth letters, ligatures, NBSP);
//! 4. every run of whitespace becomes one ASCII space, and the ends are trimmed;
//! 5. confusables fold to ASCII by their UTS #39 prototype (diacritics dropped), a word at a
//!    time and only when the whole word then is ASCII: "Dеlete" (Cyrillic `е`) reads "Delete",
//!    "Удалить" stays as it is, since no ASCII word looks like it.
//!
//! Case is kept, so the reading can be shown to a reviewer; matching lower-cases it. The raw
//! text is what the page says, and is what the audit keeps; [`made_visible`] renders it with
//! the characters a reviewer cannot see spelled out.

use std::borrow::Cow;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Code points that render as nothing (or that reorder what is around them), from Unicode's
/// general category `Cf` and the `Default_Ignorable_Code_Point` property.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{0600}', '\u{0605}'),   // Arabic number signs (Cf)
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah (Cf)
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark (Cf)
    ('\u{0890}', '\u{0891}'),   // Arabic pound/piastre mark above (Cf)
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah (Cf)
    ('\u{115F}', '\u{1160}'),   // Hangul choseong/jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // Mongolian variation selectors, vowel separator
    ('\u{200B}', '\u{200F}'),   // zero width space, ZWNJ, ZWJ, LRM, RLM
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{206F}'),   // word joiner, invisible operators, bidi isolates, deprecated
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // variation selectors
    ('\u{FEFF}', '\u{FEFF}'),   // byte-order mark, zero width no-break space
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{FFF0}', '\u{FFFB}'),   // unassigned specials, interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign (Cf)
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above (Cf)
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls (Cf)
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0000}', '\u{E0FFF}'), // tag characters, variation selectors supplement
];

/// Whether `c` is invisible: removed before classification, spelled out for a reviewer.
pub fn is_invisible(c: char) -> bool {
    INVISIBLE.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// Whether `s` needs no work: printable ASCII, single spaces between words.
fn is_plain(s: &str) -> bool {
    !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains("  ")
        && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

/// The ASCII a non-ASCII character is a lookalike of, if any: its UTS #39 prototype without
/// diacritics (`е` → `e`, `ο` → `o`, `é` → `e`, `‐` → `-`).
fn ascii_lookalike(c: char) -> Option<String> {
    let mut buf = [0u8; 4];
    let folded: String = unicode_security::skeleton(c.encode_utf8(&mut buf))
        .filter(|&p| !is_combining_mark(p))
        .collect();
    (!folded.is_empty() && folded.is_ascii() && !folded.contains(char::is_whitespace))
        .then_some(folded)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Folds `word` to ASCII if every character of it has an ASCII lookalike.
fn fold_word(word: &str, out: &mut String) {
    if word.is_ascii() {
        out.push_str(word);
        return;
    }
    let mut folded = String::with_capacity(word.len());
    for c in word.chars() {
        if c.is_ascii() {
            folded.push(c);
        } else if is_combining_mark(c) {
            // A diacritic on its own (NFKC left it uncomposed): it changes no reading.
        } else if let Some(a) = ascii_lookalike(c) {
            folded.push_str(&a);
        } else {
            out.push_str(word);
            return;
        }
    }
    out.push_str(&folded);
}

/// One level of explicit bidi formatting, while reading in display order.
enum Frame {
    /// LRE, RLE, LRO: letters keep their order (Latin is strongly left-to-right).
    Kept,
    /// RLO: everything inside is shown right to left, so in reverse.
    Reversed,
    /// LRI, RLI, FSI: closed by PDI, which also closes what is open inside.
    Isolate,
}

/// `s` with the runs under a right-to-left override reversed: the order a person sees.
/// Nested runs move as one piece. Simplified from UAX #9: only overrides reorder, since
/// embeddings and isolates leave a run of Latin letters in its order.
fn display_order(s: &str) -> Cow<'_, str> {
    if !s.contains('\u{202E}') {
        return Cow::Borrowed(s);
    }
    // Each frame holds pieces: single characters, or a closed inner run.
    let mut stack: Vec<(Frame, Vec<String>)> = vec![(Frame::Kept, Vec::new())];
    fn close(stack: &mut Vec<(Frame, Vec<String>)>) {
        if stack.len() < 2 {
            return;
        }
        if let Some((frame, mut pieces)) = stack.pop() {
            if matches!(frame, Frame::Reversed) {
                pieces.reverse();
            }
            if let Some((_, outer)) = stack.last_mut() {
                outer.push(pieces.concat());
            }
        }
    }
    for c in s.chars() {
        match c {
            '\u{202A}' | '\u{202B}' | '\u{202D}' => stack.push((Frame::Kept, Vec::new())),
            '\u{202E}' => stack.push((Frame::Reversed, Vec::new())),
            '\u{2066}'..='\u{2068}' => stack.push((Frame::Isolate, Vec::new())),
            '\u{202C}' => {
                if stack.len() > 1 && !matches!(stack.last(), Some((Frame::Isolate, _))) {
                    close(&mut stack);
                }
            }
            '\u{2069}' => {
                if stack
                    .iter()
                    .skip(1)
                    .any(|(f, _)| matches!(f, Frame::Isolate))
                {
                    while !matches!(stack.last(), Some((Frame::Isolate, _))) && stack.len() > 1 {
                        close(&mut stack);
                    }
                    close(&mut stack);
                }
            }
            _ => {
                if let Some((_, pieces)) = stack.last_mut() {
                    pieces.push(c.to_string());
                }
            }
        }
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    Cow::Owned(stack.pop().map(|(_, p)| p.concat()).unwrap_or_default())
}

/// What `s` reads like: the text every classifier match is made on (see the module docs).
/// Borrowed when `s` is already plain ASCII.
pub fn for_classification(s: &str) -> Cow<'_, str> {
    if is_plain(s) {
        return Cow::Borrowed(s);
    }
    let shown = display_order(s);
    Cow::Owned(read(&shown))
}

/// [`for_classification`] in the order the characters are stored, ignoring overrides: a
/// matcher that looks for risky words looks at both, so an override can hide a word neither
/// from the eye nor from the stored text.
pub fn logical_reading(s: &str) -> Cow<'_, str> {
    if is_plain(s) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(read(s))
}

/// Steps 2–5 of the module docs.
fn read(s: &str) -> String {
    // Invisible characters go before NFKC (so they cannot block a composition) and after it
    // (NFKC maps some fillers onto others).
    let visible: String = s
        .chars()
        .filter(|&c| !is_invisible(c))
        .nfkc()
        .filter(|&c| !is_invisible(c))
        .collect();
    let mut spaced = String::with_capacity(visible.len());
    for word in visible.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if !spaced.is_empty() {
            spaced.push(' ');
        }
        spaced.push_str(word);
    }
    let mut out = String::with_capacity(spaced.len());
    let mut word = String::new();
    for c in spaced.chars() {
        if is_word_char(c) {
            word.push(c);
            continue;
        }
        fold_word(&word, &mut out);
        word.clear();
        match ascii_lookalike(c) {
            Some(a) if !c.is_ascii() => out.push_str(&a),
            _ => out.push(c),
        }
    }
    fold_word(&word, &mut out);
    out
}

/// A URL path's text: percent-decoded, invalid UTF-8 replaced. What a matcher reads next
/// (both readings, see [`logical_reading`]).
pub fn decode_path(path: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(path).decode_utf8_lossy()
}

/// What a URL path reads like: [`decode_path`], then [`for_classification`], so
/// `/projects/1/de%E2%80%8Blete` reads `/projects/1/delete`.
pub fn path_for_classification(path: &str) -> String {
    for_classification(&decode_path(path)).into_owned()
}

/// `s` with what a reviewer cannot see spelled out: invisible and control characters as
/// `⟨U+200B⟩`, and a lookalike of another script followed by its code point (`е⟨U+0435⟩`),
/// so "the page says" shows why the page's text and Airlock's reading differ.
pub fn made_visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_invisible(c) || c.is_control() {
            out.push_str(&format!("⟨U+{:04X}⟩", u32::from(c)));
        } else if !c.is_ascii()
            && unicode_security::is_potential_mixed_script_confusable_char(c)
            && c.nfkc().all(|n| !n.is_ascii())
        {
            out.push(c);
            out.push_str(&format!("⟨U+{:04X}⟩", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `s` holds something a reviewer could not see or would misread: an invisible or
/// control character, a lookalike of another script, or a compatibility form NFKC folds.
/// Accents alone are not remarkable: "Löschen" is what it looks like.
fn is_remarkable(s: &str) -> bool {
    s.chars().any(|c| {
        is_invisible(c)
            || c.is_control()
            || (!c.is_ascii() && unicode_security::is_potential_mixed_script_confusable_char(c))
    }) || s.nfkc().ne(s.chars())
}

/// "the page says '…'; Airlock read it as '…'" when `raw` holds something a reviewer could
/// not see or would misread, and Airlock's reading differs from it.
pub fn contrast(raw: &str) -> Option<String> {
    let read = for_classification(raw);
    (read != raw && is_remarkable(raw)).then(|| {
        format!(
            "the page says '{}'; Airlock read it as '{read}'",
            made_visible(raw)
        )
    })
}

/// Like [`contrast`], for a URL path, after percent-decoding: `/caf%C3%A9` is not worth a
/// remark, `/de%E2%80%8Blete` is.
pub fn contrast_path(raw: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let read = for_classification(&decoded);
    (read != decoded && is_remarkable(&decoded)).then(|| {
        format!(
            "the path is '{}'; Airlock read it as '{read}'",
            made_visible(&decoded)
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every way of writing "Delete project" that a person reads as "Delete project".
    pub(crate) const DISGUISED: &[(&str, &str)] = &[
        ("zero width space", "Del\u{200b}ete project"),
        ("zero width joiner", "De\u{200d}lete pro\u{200d}ject"),
        ("zero width non-joiner", "D\u{200c}elete project"),
        ("word joiner", "Dele\u{2060}te project"),
        ("byte-order mark", "\u{feff}Delete project"),
        ("soft hyphen", "De\u{ad}lete project"),
        ("bidi override", "\u{202e}\u{202d}Delete project\u{202c}"),
        ("reversed under rlo", "\u{202e}tcejorp eteleD\u{202c}"),
        ("partly reversed", "De\u{202e}el\u{202c}te project"),
        (
            "rlo in an isolate",
            "\u{2067}\u{202e}tcejorp eteleD\u{2069}",
        ),
        ("bidi isolate", "\u{2066}Del\u{2069}ete project"),
        ("rtl mark", "Delete\u{200f} project"),
        ("combining grapheme joiner", "Del\u{34f}ete project"),
        ("variation selector", "Dele\u{fe0f}te project"),
        ("tag characters", "Delete\u{e0041}\u{e007f} project"),
        ("hangul filler", "Del\u{3164}ete project"),
        ("cyrillic e", "D\u{435}lete project"),
        ("cyrillic e and o", "D\u{435}l\u{435}te pr\u{43e}ject"),
        ("greek omicron", "Delete pr\u{3bf}ject"),
        ("fullwidth", "Ｄｅｌｅｔｅ project"),
        ("nbsp", "Delete\u{a0}project"),
        ("ideographic space", "Delete\u{3000}project"),
        ("padding", "  Delete \t\n project  "),
        ("diacritic", "Dél\u{0301}ete project"),
    ];

    #[test]
    fn every_disguise_reads_like_the_plain_name() {
        for (how, name) in DISGUISED {
            assert_eq!(
                for_classification(name),
                "Delete project",
                "{how}: {name:?}"
            );
        }
    }

    #[test]
    fn overrides_read_in_display_order_and_stored_order_is_kept_too() {
        assert_eq!(for_classification("\u{202e}eteleD"), "Delete");
        assert_eq!(logical_reading("\u{202e}eteleD"), "eteleD");
        // An LTR run nested in an RTL override moves as one piece.
        assert_eq!(
            for_classification("\u{202e}ab\u{202d}Delete\u{202c}cd\u{202c}"),
            "dcDeleteba"
        );
        // Unbalanced controls do not panic or lose text.
        assert_eq!(for_classification("\u{202c}\u{2069}ab\u{202e}"), "ab");
    }

    #[test]
    fn plain_text_is_borrowed_and_unchanged() {
        for s in ["Delete project", "Save draft", "/runs/RUN-78432/delete", ""] {
            assert!(matches!(for_classification(s), Cow::Borrowed(_)), "{s}");
        }
        // ASCII is never folded, even where UTS #39 has a prototype (`m` → `rn`, `1` → `l`).
        assert_eq!(for_classification("Merge  1 item"), "Merge 1 item");
    }

    #[test]
    fn words_of_other_scripts_stay_as_they_are() {
        for s in [
            "Удалить проект",
            "删除项目",
            "プロジェクトを削除",
            "حذف المشروع",
        ] {
            assert_eq!(for_classification(s), s);
        }
        // A whole word of lookalikes is read as the ASCII word it looks like.
        assert_eq!(for_classification("\u{440}\u{430}\u{443}"), "pay");
    }

    #[test]
    fn paths_are_percent_decoded_then_read() {
        assert_eq!(
            path_for_classification("/projects/1/de%E2%80%8Blete"),
            "/projects/1/delete"
        );
        assert_eq!(
            path_for_classification("/projects/1/d%D0%B5lete"),
            "/projects/1/delete"
        );
        assert_eq!(
            path_for_classification("/projects/1/%FF%FE"),
            "/projects/1/\u{fffd}\u{fffd}"
        );
        assert_eq!(contrast_path("/caf%C3%A9"), None);
        assert_eq!(
            contrast_path("/de%E2%80%8Blete").as_deref(),
            Some("the path is '/de⟨U+200B⟩lete'; Airlock read it as '/delete'")
        );
    }

    #[test]
    fn the_reviewer_sees_what_the_page_says_and_what_was_read() {
        assert_eq!(contrast("Delete project"), None);
        assert_eq!(contrast("Löschen"), None, "accents are visible");
        assert_eq!(contrast("Удалить"), None, "read as it is");
        assert_eq!(
            contrast("Del\u{200b}ete project").as_deref(),
            Some("the page says 'Del⟨U+200B⟩ete project'; Airlock read it as 'Delete project'")
        );
        assert_eq!(
            contrast("D\u{435}lete project").as_deref(),
            Some(
                "the page says 'D\u{435}⟨U+0435⟩lete project'; Airlock read it as 'Delete project'"
            )
        );
        assert_eq!(
            made_visible("\u{202e}tcejorp eteleD"),
            "⟨U+202E⟩tcejorp eteleD"
        );
        // Fullwidth letters are visibly different; they are not annotated one by one.
        assert_eq!(made_visible("Ｄｅｌｅｔｅ"), "Ｄｅｌｅｔｅ");
    }

    #[test]
    fn no_input_panics() {
        for s in [
            "\u{0}",
            "\u{10ffff}",
            "\u{301}",
            "\u{301}\u{301}x",
            "\u{200b}",
            "%",
            "%E2%80",
            "\u{fdfa}",
            "ǅ",
        ] {
            let _ = for_classification(s);
            let _ = path_for_classification(s);
            let _ = contrast(s);
        }
        assert_eq!(for_classification("\u{200b} \u{200d}"), "");
    }
}
