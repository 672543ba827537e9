//! Airlock's provider-neutral vocabulary.
//!
//! This crate owns the types every other crate speaks: the closed set of UI [`action::Action`]s a
//! model may propose, the [`manifest::TaskManifest`] an operator writes, the [`effect::Effect`]s
//! and [`effect::RiskTier`]s the gate reasons about, and the [`decision::Decision`] it records.
//!
//! It is pure: no I/O, no async runtime, no knowledge of browsers, HTTP or SQL. Everything here
//! can be unit-tested and fuzzed in isolation, which is what a decision core should be.

pub mod action;
pub mod coords;
pub mod decision;
pub mod effect;
pub mod element;
pub mod glob;
pub mod host;
pub mod manifest;
pub mod observation;

pub use action::{
    Action, KeyCombo, Modifiers, MouseButton, Point, Target, TypedText, WaitCondition,
};
pub use decision::{Decision, Verdict};
pub use effect::{Effect, RiskTier};
pub use element::{ElementFacts, FormFacts};
pub use manifest::TaskManifest;
pub use observation::Observation;
