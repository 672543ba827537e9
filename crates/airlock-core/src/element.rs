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
