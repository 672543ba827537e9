//! Facts about a resolved element, as the sandbox measured them and the gate reasons on them.

use crate::action::Point;
use serde::{Deserialize, Serialize};

/// What the element under a click (or the focused element for typing) is and would do.
///
/// The sandbox gathers these in an isolated JavaScript world so page scripts cannot lie about
/// them; the gate decides on these facts, never on what the model said it was clicking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ElementFacts {
    /// Stable ref (`e<backend node id>`) usable in later actions.
    pub node_ref: String,
    pub tag: String,
    pub role: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<String>,
    #[serde(default)]
    pub editable: bool,
    #[serde(default)]
    pub multiline: bool,
    #[serde(default)]
    pub disabled: bool,
    /// Absolute URL a link would open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// `target` attribute of a link (a popup when `_blank`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expanded: Option<bool>,
    /// Whether activating it submits its form.
    #[serde(default)]
    pub is_submit: bool,
    /// The form it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<FormFacts>,
    /// URL of the frame the element lives in.
    pub frame_url: String,
    /// Centre of the element's box in viewport CSS pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<Point>,
    /// Effectively invisible (opacity near 0, `visibility: hidden`): a click on it is a click
    /// on something the user cannot see.
    #[serde(default)]
    pub invisible: bool,
    /// For a frame element: the URL its `src` points at. The host cannot see inside a
    /// cross-origin frame, so clicks there fail closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_src: Option<String>,
    /// Set when the element under the point is a see-through layer over this interactive
    /// element (a clickjacking overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
    /// Why a person cannot see the element, measured where a click would land (fully
    /// transparent, `visibility: hidden`, a box too small to see, outside the viewport, clipped
    /// to nothing). Measured the same way whichever form named the target, so a decoy reached
    /// by role and name is refused like one reached by point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<String>,
    /// What a click at the element's click point would reach instead of it (`elementFromPoint`
    /// there is neither the element nor inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_by: Option<String>,
}

impl ElementFacts {
    /// Why acting on this element would act on something a person cannot see or would not
    /// reach: `None` when it is visible and a click at its click point reaches it. The gate and
    /// the secrets broker refuse on this, whatever form named the target.
    pub fn unseen(&self) -> Option<String> {
        let what = format!("{} '{}'", self.role, self.name);
        if let Some(covered) = &self.covers {
            return Some(format!(
                "a layer covers {covered}; a click there would reach the layer, not the control under it"
            ));
        }
        if let Some(by) = &self.covered_by {
            return Some(format!(
                "{what} is covered by {by}; a click would not reach it"
            ));
        }
        if let Some(why) = &self.hidden {
            return Some(format!("{what} cannot be seen: {why}"));
        }
        if self.invisible {
            return Some(format!("{what} cannot be seen: it is invisible"));
        }
        None
    }
}

/// The request a form would send if submitted now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FormFacts {
    /// Absolute action URL.
    pub action: String,
    /// Upper-case method (`GET`, `POST`).
    pub method: String,
    pub has_password: bool,
    /// Field names and values that would be sent (password values are never included).
    pub fields: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_or_covered_element_is_unseen_with_the_reason() {
        let mut el = ElementFacts {
            role: "textbox".into(),
            name: "Password".into(),
            ..ElementFacts::default()
        };
        assert_eq!(el.unseen(), None);
        el.hidden = Some("fully transparent (opacity 0)".into());
        assert_eq!(
            el.unseen().as_deref(),
            Some("textbox 'Password' cannot be seen: fully transparent (opacity 0)")
        );
        el.covered_by = Some("generic 'Promo'".into());
        assert!(el
            .unseen()
            .is_some_and(|w| w.contains("covered by generic 'Promo'")));
    }
}
