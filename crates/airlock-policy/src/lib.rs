//! Airlock's decision core.
//!
//! - [`admission`]: refuses a manifest that asks for more than its task needs, before any
//!   browser starts.
//! - [`classify`]: assigns each action (with its resolved element) an effect and a risk tier.
//! - [`normalize`]: what a name or path reads like, so invisible characters and lookalikes
//!   cannot change how it is classified.
//! - [`gate`]: turns that into a [`airlock_core::Decision`] naming the rules that decided.
//!
//! Pure functions over data: no I/O, no async, no knowledge of how actions execute. The gate
//! decides on facts the sandbox measured (the element under the point, the request a form would
//! send), never on what the model claims it is doing.

pub mod admission;
pub mod cedar;
pub mod classify;
pub mod gate;
pub mod normalize;
pub mod request;
pub mod taint;

pub use admission::{admit, AdmissionError};
pub use classify::{classify, Classification};
pub use gate::{decide, GateContext};
pub use request::{check_request, request_effect, PageRequest, RequestVerdict};
