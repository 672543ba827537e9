//! What the host saw after (or before) a step.

use crate::element::ElementFacts;
use serde::{Deserialize, Serialize};

/// One observation of the page. Everything in it came from the page and is untrusted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observation {
    pub url: String,
    pub title: String,
    /// PNG bytes at the viewport size; stored as a content-addressed blob, not inline.
    #[serde(skip)]
    pub screenshot_png: Vec<u8>,
    /// Compact accessibility snapshot, one element per line with `[ref=eN]` markers.
    pub snapshot: String,
    /// The element that has keyboard focus, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focused: Option<ElementFacts>,
    /// Refs present in the snapshot; a ref outside this set is refused by the gate.
    #[serde(default)]
    pub refs: Vec<String>,
}

impl Observation {
    /// The snapshot wrapped as untrusted content, the only form in which it reaches a model.
    pub fn untrusted_snapshot(&self) -> String {
        format!(
            "<untrusted-page-content url=\"{}\">\n{}\n</untrusted-page-content>",
            self.url.replace('"', "%22"),
            self.snapshot
                .replace("</untrusted-page-content", "<\\/untrusted-page-content")
        )
    }
}

/// A piece of page text and where it was found (`visible`, `hidden`, `offscreen`, `aria-label`,
/// `alt`, `title`, `placeholder`, prefixed `frame:` inside a frame). Used by the injection
/// scanner, which must see what a human would not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageText {
    pub location: String,
    pub text: String,
}
