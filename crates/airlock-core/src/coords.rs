//! The one place where provider coordinate spaces meet CSS pixels.
//!
//! Screenshots may be scaled before a model sees them, and Gemini uses a 0–999 grid. Every
//! adapter converts through a [`CoordSpace`] so a scaling bug shows up here, in tests, rather
//! than as a click on the wrong button.

use crate::action::Point;
use serde::{Deserialize, Serialize};

/// The viewport in CSS pixels. Airlock fixes it per run (1280x800 at DPR 1 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
}

impl Default for Viewport {
    fn default() -> Self {
        Viewport {
            width: 1280,
            height: 800,
        }
    }
}

/// A coordinate space a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CoordSpace {
    /// Pixels of a screenshot of `width`x`height` (possibly scaled from the viewport).
    Screenshot { width: u32, height: u32 },
    /// A normalised grid from 0 to `max` on both axes (Gemini: 999).
    Grid { max: u32 },
}

impl CoordSpace {
    /// Converts a provider point to CSS pixels, clamped into the viewport.
    pub fn to_css(&self, x: f64, y: f64, vp: Viewport) -> Point {
        let (sx, sy) = match *self {
            CoordSpace::Screenshot { width, height } => (
                f64::from(vp.width) / f64::from(width.max(1)),
                f64::from(vp.height) / f64::from(height.max(1)),
            ),
            CoordSpace::Grid { max } => (
                f64::from(vp.width) / f64::from(max.max(1) + 1),
                f64::from(vp.height) / f64::from(max.max(1) + 1),
            ),
        };
        let clamp = |v: f64, hi: u32| v.clamp(0.0, f64::from(hi.saturating_sub(1)));
        Point {
            x: clamp(x * sx, vp.width),
            y: clamp(y * sy, vp.height),
        }
    }

    /// Converts CSS pixels back to the provider's space (for click markers and feedback).
    pub fn from_css(&self, p: Point, vp: Viewport) -> (f64, f64) {
        match *self {
            CoordSpace::Screenshot { width, height } => (
                p.x * f64::from(width) / f64::from(vp.width.max(1)),
                p.y * f64::from(height) / f64::from(vp.height.max(1)),
            ),
            CoordSpace::Grid { max } => (
                p.x * f64::from(max + 1) / f64::from(vp.width.max(1)),
                p.y * f64::from(max + 1) / f64::from(vp.height.max(1)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscaled_screenshot_is_identity() {
        let vp = Viewport::default();
        let s = CoordSpace::Screenshot {
            width: 1280,
            height: 800,
        };
        assert_eq!(s.to_css(640.0, 400.0, vp), Point { x: 640.0, y: 400.0 });
    }

    #[test]
    fn scaled_screenshot_scales_up() {
        let vp = Viewport::default();
        let s = CoordSpace::Screenshot {
            width: 1024,
            height: 640,
        };
        assert_eq!(s.to_css(512.0, 320.0, vp), Point { x: 640.0, y: 400.0 });
        let (x, y) = s.from_css(Point { x: 640.0, y: 400.0 }, vp);
        assert!((x - 512.0).abs() < 1e-9 && (y - 320.0).abs() < 1e-9);
    }

    #[test]
    fn grid_maps_into_viewport_and_clamps() {
        let vp = Viewport::default();
        let g = CoordSpace::Grid { max: 999 };
        assert_eq!(g.to_css(500.0, 500.0, vp), Point { x: 640.0, y: 400.0 });
        let edge = g.to_css(5000.0, -3.0, vp);
        assert_eq!(edge, Point { x: 1279.0, y: 0.0 });
    }
}
