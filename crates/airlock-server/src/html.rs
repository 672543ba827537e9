//! HTML building blocks: escaping, the page frame, badges, screenshots with markers, times.
//!
//! Everything a page, a model or a reviewer wrote is untrusted text. It reaches HTML only
//! through [`esc`], which escapes the five characters that matter in text and in double-quoted
//! attributes; markup is built by this module and its callers with `format!`, never from input.

use std::fmt::Write as _;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The shared stylesheet (inline: the UI and the replay load nothing from elsewhere).
pub const CSS: &str = r#"
:root{--fg:#1f2328;--mut:#59636e;--bg:#f6f8fa;--card:#fff;--line:#d1d9e0;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--wait:#8250df;--info:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header.top{display:flex;gap:18px;align-items:center;padding:10px 20px;background:#24292f;color:#fff}
header.top a{color:#fff;text-decoration:none;font-weight:600}
header.top .brand{font-size:16px;letter-spacing:.5px}
header.top .who{margin-left:auto;color:#d0d7de}
header.top form{display:inline}
header.top button{background:none;border:1px solid #8c959f;color:#fff;border-radius:6px;padding:2px 10px;cursor:pointer}
main{padding:18px 20px;max-width:1400px;margin:0 auto}
h1{font-size:20px;margin:0 0 8px}
h2{font-size:16px;margin:18px 0 8px}
h3{font-size:14px;margin:12px 0 6px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:0 0 16px}
.muted{color:var(--mut)}
.small{font-size:12px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--mut);font-weight:600}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{white-space:pre-wrap;word-break:break-word;background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px;max-height:360px;overflow:auto;margin:4px 0}
.badge{display:inline-block;border-radius:12px;padding:1px 9px;font-size:12px;font-weight:600;border:1px solid currentColor;white-space:nowrap}
.t-ok{color:var(--ok)}.t-bad{color:var(--bad)}.t-warn{color:var(--warn)}.t-wait{color:var(--wait)}.t-info{color:var(--info)}.t-mut{color:var(--mut)}
.chip{display:inline-block;background:#eef1f4;border-radius:4px;padding:0 6px;margin:1px 2px;font-family:ui-monospace,monospace;font-size:12px}
.grid{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:16px}
@media (max-width:1000px){.grid{grid-template-columns:1fr}}
figure.shot{margin:0}
figure.shot svg{width:100%;height:auto;display:block;border:1px solid var(--line);border-radius:6px;background:#fff}
figure.shot figcaption{font-size:12px;color:var(--mut);margin-top:4px;word-break:break-all}
.mk-halo{fill:none;stroke:#fff;stroke-width:5;opacity:.6}
.mk-ring{fill:none;stroke:#e11d48;stroke-width:2.5}
.mk-dot{fill:#e11d48;stroke:#fff;stroke-width:1}
.mk-label{fill:#fff;font:bold 15px system-ui,sans-serif}
.mk-tag{fill:#e11d48}
.summary{font-size:17px;font-weight:600;margin:6px 0}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px}
.kv dt{color:var(--mut)}.kv dd{margin:0}
form.decide textarea,form.inline input[type=text],form.inline input[type=password],form.inline select,form.stop input[type=text]{width:100%;font:inherit;padding:6px 8px;border:1px solid var(--line);border-radius:6px}
form.decide textarea{min-height:56px}
.btn{font:inherit;font-weight:600;border-radius:6px;padding:6px 16px;border:1px solid var(--line);cursor:pointer;background:#f6f8fa}
.btn.approve{background:var(--ok);color:#fff;border-color:var(--ok)}
.btn.deny,.btn.stop{background:var(--bad);color:#fff;border-color:var(--bad)}
.row{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-top:8px}
.banner{padding:10px 14px;border-radius:8px;margin:0 0 14px;border:1px solid}
.banner.ok{background:#dafbe1;border-color:#4ac26b}.banner.bad{background:#ffebe9;border-color:#ff8182}.banner.wait{background:#fbefff;border-color:#c297ff}.banner.info{background:#ddf4ff;border-color:#54aeff}
ol.timeline{list-style:none;margin:0;padding:0;max-height:70vh;overflow:auto}
ol.timeline li{padding:5px 4px;border-bottom:1px solid var(--line);display:grid;grid-template-columns:44px 1fr;gap:6px}
ol.timeline li .st{color:var(--mut);font-size:12px}
ol.timeline li.t-ok,ol.timeline li.t-info,ol.timeline li.t-mut{color:var(--fg)}
ol.timeline li.t-ok .tx::before{content:"✓ ";color:var(--ok)}
ol.timeline li.t-bad .tx::before{content:"✗ ";color:var(--bad)}
ol.timeline li.t-warn .tx::before{content:"! ";color:var(--warn)}
ol.timeline li.t-wait .tx::before{content:"◆ ";color:var(--wait)}
.step{border-left:5px solid var(--line)}
.step.b-wait{border-left-color:var(--wait)}.step.b-bad{border-left-color:var(--bad)}.step.b-ok{border-left-color:var(--ok)}.step.b-info{border-left-color:var(--info)}
h1 .mono,h2 .mono{font-size:inherit}
td.nowrap,.nowrap{white-space:nowrap}
details>summary{cursor:pointer;color:var(--info)}
.fields td:first-child{font-family:ui-monospace,monospace;white-space:nowrap}
.fields td:last-child{white-space:pre-wrap;word-break:break-word}
.two{display:grid;grid-template-columns:1fr 1fr;gap:12px}
"#;

/// A badge with a tone class (`ok`, `bad`, `warn`, `wait`, `info`, `mut`).
pub fn badge(tone: &str, text: &str) -> String {
    format!(
        r#"<span class="badge t-{}">{}</span>"#,
        esc(tone),
        esc(text)
    )
}

/// Rule ids as chips.
pub fn chips(items: &[String]) -> String {
    if items.is_empty() {
        return r#"<span class="muted">none</span>"#.into();
    }
    items
        .iter()
        .map(|r| format!(r#"<span class="chip">{}</span>"#, esc(r)))
        .collect()
}

/// A point to mark on a screenshot, in the screenshot's coordinate space (viewport CSS px).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub y: f64,
    /// Short label drawn next to the marker (e.g. the action index), if any.
    pub label: Option<String>,
}

/// Radius of the ring drawn around a target, in screenshot pixels.
const MARK_R: f64 = 26.0;

/// How a screenshot's pixels are referenced.
pub enum ShotSource<'a> {
    /// A URL on this server (escaped when written).
    Url(&'a str),
    /// A `<defs>` element id in the same document (the replay embeds each image once).
    DefsId(&'a str),
}

/// A screenshot as an inline SVG, with a ring and dot at each marker so the target is visible
/// at a glance, and a caption.
pub fn shot(src: ShotSource<'_>, w: f64, h: f64, markers: &[Marker], caption: &str) -> String {
    let (w, h) = (w.max(1.0), h.max(1.0));
    let mut svg = format!(
        r#"<svg viewBox="0 0 {w} {h}" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">"#,
        esc(caption)
    );
    match src {
        ShotSource::Url(u) => {
            let _ = write!(
                svg,
                r#"<image href="{}" x="0" y="0" width="{w}" height="{h}"/>"#,
                esc(u)
            );
        }
        ShotSource::DefsId(id) => {
            let _ = write!(svg, r##"<use href="#{}"/>"##, esc(id));
        }
    }
    for m in markers {
        let (x, y) = (m.x.clamp(0.0, w), m.y.clamp(0.0, h));
        // A ring around the point with ticks outside it: the target stays readable.
        let (r, t) = (MARK_R, MARK_R + 12.0);
        let ticks = format!(
            "M{} {y}H{}M{} {y}H{}M{x} {}V{}M{x} {}V{}",
            x - t,
            x - r,
            x + r,
            x + t,
            y - t,
            y - r,
            y + r,
            y + t
        );
        let _ = write!(
            svg,
            r#"<g class="marker" data-x="{x}" data-y="{y}"><path class="mk-halo" d="{ticks}"/><circle class="mk-halo" cx="{x}" cy="{y}" r="{r}"/><path class="mk-ring" d="{ticks}"/><circle class="mk-ring" cx="{x}" cy="{y}" r="{r}"/><circle class="mk-dot" cx="{x}" cy="{y}" r="2.5"/>"#
        );
        if let Some(label) = &m.label {
            let (lx, ly) = (x + 20.0, (y - 38.0).max(0.0));
            let _ = write!(
                svg,
                r#"<rect class="mk-tag" x="{lx}" y="{ly}" rx="4" width="{}" height="22"/><text class="mk-label" x="{}" y="{}">{}</text>"#,
                12 + 9 * label.chars().count(),
                lx + 6.0,
                ly + 16.0,
                esc(label)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    let full = match src {
        ShotSource::Url(u) if !u.is_empty() => format!(
            r#" · <a href="{}" target="_blank" rel="noopener">full size</a>"#,
            esc(u)
        ),
        _ => String::new(),
    };
    format!(
        r#"<figure class="shot">{svg}<figcaption><span class="cap">{}</span>{full}</figcaption></figure>"#,
        esc(caption)
    )
}

/// Width and height from a PNG's IHDR chunk, if `bytes` is a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.get(..8)? != SIG || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// `2026-11-23 20:11:45 UTC`.
pub fn fmt_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, mo, d) = civil_from_days(days);
    let tod = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `1 min 5 s`, `42 s`.
pub fn fmt_duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s / 60) % 60),
    }
}

/// At most `max` characters, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Pretty JSON, escaped, in a `<pre>`.
pub fn json_pre(v: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    format!("<pre>{}</pre>", esc(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_in_text_and_attributes() {
        let evil = r#"<script>alert("x")</script>' onmouseover='x' &amp;"#;
        let e = esc(evil);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert!(e.contains("&lt;script&gt;"));
        assert!(e.contains("&amp;amp;"));
        assert_eq!(esc("plain"), "plain");
    }

    #[test]
    fn screenshots_carry_markers_and_escaped_captions() {
        let html = shot(
            ShotSource::Url("/runs/r/shots/ab"),
            1280.0,
            800.0,
            &[Marker {
                x: 857.5,
                y: 497.0,
                label: Some("1".into()),
            }],
            "<b>title</b>",
        );
        assert!(html.contains(r#"viewBox="0 0 1280 800""#));
        assert!(html.contains(r#"cx="857.5" cy="497""#));
        assert!(html.contains("&lt;b&gt;title"));
        assert!(!html.contains("<b>"));
        // Markers off the image are pulled onto its edge rather than lost.
        let off = shot(
            ShotSource::DefsId("s1"),
            100.0,
            100.0,
            &[Marker {
                x: 500.0,
                y: -3.0,
                label: None,
            }],
            "",
        );
        assert!(off.contains(r#"cx="100" cy="0""#));
        assert!(off.contains(r##"<use href="#s1"/>"##));
    }

    #[test]
    fn png_size_reads_ihdr_and_refuses_other_bytes() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&800u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1280, 800)));
        assert_eq!(png_size(b"GIF89a"), None);
        assert_eq!(png_size(&png[..20]), None);
    }

    #[test]
    fn times_and_durations_read_naturally() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(fmt_duration_ms(42_000), "42 s");
        assert_eq!(fmt_duration_ms(65_000), "1 min 5 s");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
